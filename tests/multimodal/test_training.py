"""CLIP and LLaVA trained on shapes with the shared loop (tiny models, few steps): learned behaviour on
colour x shape x position combinations never seen in training, asserted with a wide margin above chance;
the zero-shot classifier through the registry as a "classifier"; the CLI's one-line errors."""
from __future__ import annotations

import json

import pytest
import torch

from frontierkit import models
from frontierkit.errors import DataError
from frontierkit.multimodal.clip import LOGIT_SCALE_MAX
from frontierkit.multimodal.data import WordTokenizer, combo, held_out_combos, shapes_splits

STEPS = 300


@pytest.fixture(scope="module")
def clip_run(tmp_path_factory):
    from frontierkit.multimodal.train import quick_clip_config, train_clip
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("clip")
    cfg = quick_clip_config(STEPS, n=3000)
    model, metrics = train_clip(cfg, out)
    return cfg, model, metrics, out


def test_held_out_split_shares_no_combination_with_training():
    """Invariant: no (colour, shape, position) of the held-out split occurs in training; every colour, shape and
    position still does."""
    train, held = shapes_splits(2000)
    assert not set(combo(train.labels).tolist()) & set(combo(held.labels).tolist())
    assert set(combo(held.labels).tolist()) <= set(held_out_combos().tolist())
    for k in ("color", "shape", "position"):
        assert set(train.labels[k].tolist()) == set(held.labels[k].tolist())


def test_tokenizer_round_trips_and_refuses_unknown_words():
    tok = WordTokenizer()
    ids, valid = tok.batch(["a large red circle at the top left"], 12)
    assert ids[0, 8].item() == tok.eos and valid.sum().item() == 9
    assert tok.decode(ids[0].tolist()) == "a large red circle at the top left"
    with pytest.raises(DataError, match="'dog' is not in the shapes vocabulary"):
        tok.encode("a red dog")


@pytest.mark.learned
def test_clip_learns_colour_zero_shot_and_retrieval_on_unseen_combinations(clip_run):
    """Learned: after 300 steps the zero-shot colour accuracy on held-out combinations is >= 0.6 (chance 1/6;
    measured 0.96) and image->text recall@5 >= 0.25 (chance ~5/256 exact-caption hits ≈ 0.07);
    the temperature stays <= 100."""
    _, model, m, _ = clip_run
    assert m["zeroshot_color"] >= 0.6, m
    assert m["i2t_r@5"] >= 0.25 and m["t2i_r@5"] >= 0.25, m
    assert model.logit_scale.item() <= LOGIT_SCALE_MAX + 1e-6


def test_zero_shot_classifier_is_a_registry_classifier_with_its_dataset(clip_run):
    """The saved zero-shot classifier opens as tags="classifier", knows its held-out data, and its logits equal
    exp(t) * cos(image, class text embedding) computed from the CLIP itself."""
    from frontierkit.multimodal.train import zero_shot_classifier
    cfg, model, m, out = clip_run
    loaded = models.open_model(out / "zeroshot", tags="classifier")
    x, y = loaded.dataset("held_out")
    assert x.shape[1:] == (3, 48, 48) and y.max() < 24 and len(x) == len(y)
    with torch.no_grad():
        logits = loaded.model(x[:16])
        ref = zero_shot_classifier(model, cfg.data)(x[:16])
    assert logits.shape == (16, 24)
    torch.testing.assert_close(logits, ref, atol=1e-5, rtol=0)
    acc_color = ((logits.argmax(-1) // 4) == (y[:16] // 4)).float().mean().item()
    assert acc_color >= 0.5


def test_cli_zero_shot_and_retrieval_read_the_run(clip_run, capsys):
    """`frontier multimodal zero-shot/retrieval --model RUN` print the same numbers the run measured."""
    from frontierkit.cli import main
    _, _, m, out = clip_run
    assert main(["multimodal", "zero-shot", "--model", str(out)]) == 0
    zs = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert zs["color"] == pytest.approx(m["zeroshot_color"], abs=1e-6)
    assert main(["multimodal", "retrieval", "--model", str(out)]) == 0
    r = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert r["i2t_r@5"] == pytest.approx(m["i2t_r@5"], abs=1e-6)


def test_cli_refuses_a_non_clip_model_in_one_line(clip_run, capsys):
    from frontierkit.cli import main
    _, _, _, out = clip_run
    code = main(["multimodal", "retrieval", "--model", str(out / "zeroshot")])
    err = capsys.readouterr().err
    assert code != 0 and "clip" in err and "Traceback" not in err


@pytest.mark.learned
@pytest.mark.slow
def test_llava_answers_colour_questions_from_the_image_better_than_text_only(clip_run, tmp_path):
    """Learned: LLaVA on the CLIP above (stages 0-2, ~200 steps) answers held-out colour questions >= 0.35 better
    than the text-only baseline (which can only guess among 6 colours); the saved model answers through `ask`."""
    from frontierkit.cli import main
    from frontierkit.multimodal.vqa import quick_llava_config, train_llava
    cfg, model, _, _ = clip_run
    _, res = train_llava(quick_llava_config(data=cfg.data), tmp_path / "llava", clip=model,
                         baselines=("text_only",))
    assert res["llava"]["color"] >= res["text_only"]["color"] + 0.35, res
    assert set(res) == {"llava", "text_only"}
    assert main(["multimodal", "ask", "--model", str(tmp_path / "llava"), "--image", "held_out:0",
                 "--question", "what color is the shape?"]) == 0


def test_explain_gradcam_runs_on_the_zero_shot_classifier(clip_run, tmp_path):
    """Composition through the registry: `frontier explain gradcam --model RUN/zeroshot` explains CLIP's zero-shot
    prediction (tokens reshaped to the patch grid via cam_layer/grid_size); heatmaps (4, 48, 48) in [0, 1]."""
    import numpy as np

    from frontierkit.cli import main
    _, _, _, out = clip_run
    assert main(["explain", "gradcam", "--model", str(out / "zeroshot"), "--input", "test:0-3",
                 "--out", str(tmp_path)]) == 0
    maps = np.load(tmp_path / "gradcam.npy")
    assert maps.shape == (4, 48, 48) and maps.min() >= 0 and maps.max() <= 1 + 1e-6


def test_robust_attack_runs_on_the_zero_shot_classifier(clip_run, tmp_path, capsys):
    """Composition through the registry: `frontier robust attack --model RUN/zeroshot` attacks CLIP's zero-shot
    classifier; the perturbation stays in the L∞ ball and the range, and PGD never raises accuracy."""
    import json

    from frontierkit.cli import main
    _, _, _, out = clip_run
    assert main(["robust", "attack", "--model", str(out / "zeroshot"), "--attack", "pgd", "--eps", "0.05",
                 "--n", "8", "--out", str(tmp_path)]) == 0
    info = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert info["max_linf"] <= 0.05 + 1e-6 and info["adv_acc"] <= info["clean_acc"]


def test_cli_train_clip_and_train_llava_write_registry_models(clip_run, tmp_path, capsys):
    """`train-clip` and `train-llava --clip RUN` (a few steps each) write models the registry opens by kind, and
    train-llava follows the CLIP run's held-out split; a missing --clip is a one-line error."""
    from frontierkit.cli import main
    few = ["--train.steps", "2", "--train.warmup_steps", "0", "--model.vision.patch_size", "8", "--data.n", "300",
           "--tracker", "none", "--quiet"]
    assert main(["multimodal", "train-clip", "--out", str(tmp_path / "c"), *few]) == 0
    assert models.open_model(tmp_path / "c", kind="clip").model.cfg.vision.patch_size == 8
    stages = [x for s in ("pretrain", "stage1", "stage2") for x in (f"--{s}.steps", "2", f"--{s}.warmup_steps", "0")]
    assert main(["multimodal", "train-llava", "--clip", str(tmp_path / "c"), "--out", str(tmp_path / "l"),
                 "--eval_n", "4", "--tracker", "none", "--quiet", *stages]) == 0
    loaded = models.open_model(tmp_path / "l", kind="llava")
    assert loaded.run["data"]["n"] == 300
    capsys.readouterr()
    assert main(["multimodal", "train-llava", "--out", str(tmp_path / "x"), "--tracker", "none"]) == 2
    assert "--clip" in capsys.readouterr().err


@pytest.mark.learned
def test_vision_tower_sees_shape_when_its_patch_grid_is_the_position_grid(tmp_path):
    """Learned (the recipe fix of issue 13): CLIP's default vision tower (48 px, 16-px patches = the shapes 3x3
    position grid) trained on the shape label alone for 200 steps classifies shape on held-out colour x shape x
    position combinations >= 0.8 (measured 0.947 under both ATEN capabilities; chance 0.25; the old 32 px / 4-px
    tower reached 0.53 in 300 steps, see
    benchmarks/results/multimodal_clip.md)."""
    from dataclasses import replace

    from frontierkit.multimodal.train import quick_clip_config, train_supervised
    torch.set_num_threads(1)
    cfg = quick_clip_config(200, n=3000)
    cfg = replace(cfg, train=replace(cfg.train, warmup_steps=20))
    r = train_supervised(cfg, tmp_path, target="shape")
    assert r["shape"] >= 0.8, r
