"""Text encoders through the model registry (a tiny kit CLIP tagged "text-encoder", its encode_prompts adapted to
the pipeline's ``text_encoder(prompts) -> (hidden, pooled)``), diffusers folders in and out of
``frontier diffusion sample/export``, and the ControlNet's outline / mask conditions."""
from __future__ import annotations

import json

import pytest
import torch

from frontierkit import models
from frontierkit.cli import main
from frontierkit.diffusion.data import shapes_data
from frontierkit.diffusion.experiments import generate, pipeline_for
from frontierkit.diffusion.folders import condition_of, is_diffusers_pipeline
from frontierkit.diffusion.text import TEXT_ENCODER_TAG, CaptionEncoder, RegistryTextEncoder, load_text_encoder
from frontierkit.diffusion.train import (ControlNetRunConfig, DiffusionDataConfig, DiffusionModelConfig,
                                         DiffusionRunConfig, train_controlnet, train_unet, train_vae)
from frontierkit.train import TrainConfig

TINY = dict(shapes_n=40, shapes_size=16)


def _train(steps: int = 2) -> TrainConfig:
    return TrainConfig(steps=steps, batch_size=8, lr=1e-3, warmup_steps=0, log_every=50, weight_decay=0.0)


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    """A tiny untrained kit CLIP saved through the registry (skipped until the clip kind is a text encoder)."""
    if TEXT_ENCODER_TAG not in models.model_kinds()["clip"].tags:
        pytest.skip("the multimodal clip kind is not tagged text-encoder yet")
    from frontierkit.multimodal import CLIP                              # test-only: src never imports an area
    from frontierkit.multimodal.train import default_clip_model
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("clip") / "clip"
    models.save(CLIP(default_clip_model()).eval(), out)
    return out


@pytest.fixture(scope="module")
def latent_runs(tmp_path_factory):
    """A 2-step shapes VAE (16 px, latents 8×8) and a 2-step text UNet on its latents (caption encoder)."""
    root = tmp_path_factory.mktemp("latent")
    train_vae(DiffusionRunConfig(stage="vae", data=DiffusionDataConfig(name="shapes", **TINY), train=_train()),
              root / "vae")
    cfg = DiffusionRunConfig(model=DiffusionModelConfig(width=16, prediction_type="v_prediction"),
                             data=DiffusionDataConfig(name="shapes", condition="text", vae=str(root / "vae"), **TINY),
                             train=_train())
    train_unet(cfg, root / "t2i")
    return root


def test_registry_text_encoder_is_clip_encode_prompts(clip_dir):
    """load_text_encoder(dir) opens the CLIP by its tag and returns exactly its encode_prompts (hidden, pooled)."""
    enc = load_text_encoder(str(clip_dir))
    assert isinstance(enc, RegistryTextEncoder)
    prompts = ["a large red circle at the top left", "a small blue cross in the center"]
    h, pooled = enc(prompts)
    ref_h, ref_p = models.open_model(clip_dir, tags=TEXT_ENCODER_TAG).model.encode_prompts(prompts)
    assert torch.equal(h, ref_h) and torch.equal(pooled, ref_p)
    assert h.shape[:2] == (2, ref_h.shape[1]) and not torch.equal(h[0], h[1])
    assert isinstance(load_text_encoder(""), CaptionEncoder)


def test_text_unet_trains_and_samples_through_a_registry_clip(clip_dir, tmp_path, capsys):
    """--text-encoder CLIP: the UNet's cross-attention width is CLIP's hidden width, the sampled image depends on
    the prompt, and `frontier diffusion sample` reads the encoder from the run config."""
    run = tmp_path / "t2i-clip"
    assert main(["diffusion", "train", "--data", "shapes", "--condition", "text", "--text-encoder", str(clip_dir),
                 "--data.shapes_n", "40", "--data.shapes_size", "16", "--model.width", "16", "--train.steps", "2",
                 "--train.batch_size", "8", "--train.warmup_steps", "0", "--tracker", "none", "--quiet",
                 "--out", str(run)]) == 0
    capsys.readouterr()
    width = load_text_encoder(str(clip_dir))(["a"])[0].shape[-1]
    unet = models.open_model(run, kind="diffusion-unet").model
    assert unet.cfg.cross_attention_dim == width != CaptionEncoder().dim
    pipe = pipeline_for(run)
    assert isinstance(pipe.text_encoder, RegistryTextEncoder)
    a = generate(pipe, 2, 2, seed=0, prompts=["a large red circle at the top left"] * 2, guidance_scale=3.0)
    b = generate(pipe, 2, 2, seed=0, prompts=["a small blue cross in the center"] * 2, guidance_scale=3.0)
    assert a.shape == (2, 3, 16, 16) and (a - b).abs().max() > 1e-6
    assert main(["diffusion", "sample", "--model", str(run), "--prompt", "a large red circle in the center",
                 "--steps", "2", "--out", str(tmp_path / "x.png"), "--quiet"]) == 0
    assert (tmp_path / "x.png").read_bytes()[:4] == b"\x89PNG"


def test_a_folder_without_the_text_encoder_tag_is_refused(latent_runs, capsys):
    """--text-encoder of a UNet folder: exit 2, one line naming the tag."""
    assert main(["diffusion", "train", "--data", "shapes", "--condition", "text", "--text-encoder",
                 str(latent_runs / "t2i"), "--print-config"]) == 2
    err = capsys.readouterr().err
    assert "text-encoder" in err and err.count("\n") == 1 and "Traceback" not in err


def test_sample_reads_a_diffusers_pipeline_folder_exported_from_a_run(latent_runs, tmp_path, capsys):
    """export --pipeline writes model_index.json + unet/ vae/ scheduler/; sampling that folder gives the run's
    images exactly (same seed), and the lone unet/ folder is a text UNet the registry and sample accept."""
    out = tmp_path / "pipe"
    assert main(["diffusion", "export", "--model", str(latent_runs / "t2i"), "--out", str(out), "--pipeline"]) == 0
    capsys.readouterr()
    assert is_diffusers_pipeline(out) and {"unet", "vae", "scheduler"} <= {p.name for p in out.iterdir()}
    assert json.loads((out / "model_index.json").read_text())["vae"] == ["diffusers", "AutoencoderKL"]
    prompts = ["a large red circle at the top left", "a small green square in the center"]
    ours = generate(pipeline_for(latent_runs / "t2i", "DDIMScheduler"), 2, 3, seed=1, prompts=prompts,
                    guidance_scale=2.0)
    theirs = generate(pipeline_for(out, "DDIMScheduler"), 2, 3, seed=1, prompts=prompts, guidance_scale=2.0)
    assert torch.equal(ours, theirs)
    assert condition_of(models.open_model(out / "unet", kind="diffusion-unet").model) == "text"
    for folder in (out, out / "unet"):
        assert main(["diffusion", "sample", "--model", str(folder), "--prompt", prompts[0], "--steps", "2",
                     "--out", str(tmp_path / "d.png"), "--quiet"]) == 0
    capsys.readouterr()


def test_sample_refuses_an_unrelated_folder(tmp_path, capsys):
    """A folder that is neither a kit run nor a diffusers folder: exit 2, one line."""
    (tmp_path / "junk").mkdir()
    assert main(["diffusion", "sample", "--model", str(tmp_path / "junk"), "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert "--model" in err and err.count("\n") == 1


def test_controlnet_conditions_outline_and_mask(latent_runs, tmp_path):
    """ShapesSplit.control: outline ⊂ mask (3 equal channels); a ControlNet trained on masks records it and
    its residuals react to the mask (zero convolutions after one step are no longer all zero)."""
    s = shapes_data("test", **{"n": 40, "size": 16})
    ol, mk = s.control("outline"), s.control("mask")
    assert ol.shape == mk.shape == (10, 3, 16, 16) and torch.equal(mk[:, 0].bool(), s.masks)
    assert bool((ol <= mk).all()) and ol.sum() < mk.sum()
    cfg = ControlNetRunConfig(unet=str(latent_runs / "t2i"), condition="mask", train=_train(2))
    cn = train_controlnet(cfg, tmp_path / "cn")
    assert models.open_model(tmp_path / "cn", kind="controlnet").run["condition"] == "mask"
    zero_convs = [p for n, p in cn.named_parameters() if n.startswith(("controlnet_down_blocks", "controlnet_mid_block"))]
    assert zero_convs and any(p.abs().sum() > 0 for p in zero_convs)
