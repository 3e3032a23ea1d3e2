"""``frontier robust attack|train|eval`` on models loaded through the registry; one-line errors."""
from __future__ import annotations

import json

import numpy as np
import pytest

from frontierkit.cli import main


@pytest.mark.parametrize("arch", ["mlp", "cnn", "resnet", "vit"])
def test_attack_cli_works_for_every_classifier_kind(arch, tmp_path, capsys):
    """Any vision classifier the registry loads is attacked: files written, perturbation within eps, in [0, 1]."""
    from frontierkit.vision import run_config_for, train_classifier
    train_classifier(run_config_for(arch, steps=3, warmup_steps=0), tmp_path / arch)
    out = tmp_path / "att"
    assert main(["robust", "attack", "--model", str(tmp_path / arch), "--eps", "0.1", "--steps", "5", "--n", "6",
                 "--out", str(out)]) == 0
    info = json.loads((out / "attack.json").read_text())
    adv = np.load(out / "adv.npy")
    assert adv.shape == (6, 1, 8, 8) and 0 <= adv.min() and adv.max() <= 1 and info["max_linf"] <= 0.1 + 1e-6
    assert (out / "attack.png").stat().st_size > 1000


def test_eval_cli_prints_the_ladder_table_and_checks(cnn, tmp_path, capsys):
    model_dir, _ = cnn
    assert main(["robust", "eval", "--model", str(model_dir), "--eps-list", "0,0.1,0.3", "--n", "40",
                 "--restarts", "2", "--long-steps", "20", "--out", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    for col in ("clean", "fgsm", "pgd-20", "pgd-20x2", "apgd-ce", "worst", "accuracy ~0 at eps = whole range"):
        assert col in text
    rows = json.loads((tmp_path / "robust_eval.json").read_text())["rows"]
    assert [r["eps"] for r in rows] == [0, 0.1, 0.3] and rows[2]["worst"] <= rows[1]["worst"] <= rows[0]["worst"]


def test_eval_cli_with_purification_uses_bpda(cnn, tmp_path, capsys):
    model_dir, _ = cnn
    assert main(["robust", "eval", "--model", str(model_dir), "--eps-list", "0.3", "--n", "30", "--restarts", "1",
                 "--long-steps", "10", "--purify", "bits:2", "--out", str(tmp_path)]) == 0
    info = json.loads((tmp_path / "robust_eval.json").read_text())
    assert info["purify"] == "bits:2" and info["rows"][0]["worst"] <= 0.1     # BPDA breaks 2-bit squeezing


def test_train_cli_pgd_then_fine_tune_from_a_model_folder(tmp_path, capsys):
    """`robust train --model mlp --method pgd` writes a vision model the registry loads as a classifier; a model
    folder as --model fine-tunes it (TRADES here)."""
    from frontierkit.models import open_model
    out = tmp_path / "at"
    assert main(["robust", "train", "--model", "mlp", "--method", "pgd", "--out", str(out), "--tracker", "none",
                 "--quiet", "--train.steps", "4", "--train.warmup_steps", "0", "--adv.steps", "2"]) == 0
    assert open_model(out, tags="classifier").kind.name == "vision"
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["method"] == "pgd"
    assert main(["robust", "train", "--model", str(out), "--method", "trades", "--out", str(tmp_path / "ft"),
                 "--tracker", "none", "--quiet", "--train.steps", "2", "--train.warmup_steps", "0", "--adv.steps", "1"]) == 0


@pytest.mark.parametrize("argv,needle", [
    (["eval", "--eps-list", "0,a"], "--eps-list"),
    (["attack", "--attack", "fgsm", "--norm", "l2"], "--norm l2"),
    (["attack", "--clip-max", "0.5"], "outside --clip-min"),
    (["attack", "--start", "9999"], "--start"),
    (["attack", "--purify", "blur"], "--purify"),
])
def test_user_mistakes_are_one_line_errors(cnn, argv, needle, capsys):
    model_dir, _ = cnn
    assert main(["robust", *argv, "--model", str(model_dir)]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err
