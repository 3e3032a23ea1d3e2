"""Diffusion training on the core Trainer, the registry round trip, the CLI, and the quality metrics."""
from __future__ import annotations

import json

import pytest
import torch

from frontierkit import models
from frontierkit.config import ConfigError
from frontierkit.diffusion import metrics as M
from frontierkit.diffusion.data import outline, shapes_data
from frontierkit.diffusion.schedulers import DDIMScheduler, DDPMScheduler
from frontierkit.diffusion.text import CaptionEncoder
from frontierkit.diffusion.train import (DiffusionDataConfig, DiffusionModelConfig, DiffusionRunConfig, _drop,
                                         ddpm_loss, scheduler_config, train_unet, vae_loss)
from frontierkit.errors import DataError
from frontierkit.train import TrainConfig


def _cfg(steps: int, **model) -> DiffusionRunConfig:
    return DiffusionRunConfig(model=DiffusionModelConfig(width=16, **model),
                              data=DiffusionDataConfig(name="digits", condition="class"),
                              train=TrainConfig(steps=steps, batch_size=16, lr=3e-3, warmup_steps=0, log_every=50,
                                                weight_decay=0.0))


def test_train_unet_saves_a_registry_model(tmp_path):
    """train_unet writes <out>/model as kind diffusion-unet; the registry loads the same function back (exact)."""
    unet = train_unet(_cfg(2), tmp_path / "run")
    loaded = models.open_model(tmp_path / "run", kind="diffusion-unet")
    assert loaded.kind.name == "diffusion-unet" and loaded.run["data"]["condition"] == "class"
    x, t, y = torch.randn(2, 1, 8, 8), torch.tensor([3, 700]), torch.tensor([1, 10])
    with torch.no_grad():
        assert torch.equal(unet(x, t, None, class_labels=y), loaded.model.eval()(x, t, None, class_labels=y))
    sched = json.loads((tmp_path / "run" / "scheduler_config.json").read_text())
    assert DDPMScheduler.from_config(sched).config.beta_schedule == "squaredcos_cap_v2"


def test_condition_dropout_uses_the_null_condition():
    """Ho & Salimans 2022 Alg. 1: p = 1 replaces every condition by the null one, p = 0 keeps all."""
    c, null = torch.arange(6), torch.tensor(10)
    assert torch.equal(_drop(c, null, 0.0), c)
    assert torch.equal(_drop(c, null, 0.999999), torch.full((6,), 10))
    emb = torch.randn(4, 3, 5)
    assert torch.equal(_drop(emb, torch.zeros(1, 3, 5), 0.999999), torch.zeros(4, 3, 5))


def test_ddpm_loss_target_is_the_prediction_type():
    """The loss regresses ε (epsilon) or v (v_prediction): an oracle model returning the target has loss 0."""
    torch.manual_seed(0)
    x0 = torch.randn(8, 1, 4, 4)
    for pred in ("epsilon", "v_prediction", "sample"):
        sched = DDPMScheduler.from_config(scheduler_config(DiffusionModelConfig(prediction_type=pred)))
        state = torch.get_rng_state()
        t = torch.randint(0, 1000, (8,))
        noise = torch.randn_like(x0)
        target = sched.training_target(x0, noise, t)
        torch.set_rng_state(state)
        oracle = lambda xt, tt, enc: target  # noqa: E731
        assert float(ddpm_loss(sched, "none", 0.0, None)(oracle, (x0,))) == 0.0


@pytest.mark.learned
def test_ddpm_learns_a_single_image(tmp_path):
    """120 steps on one repeated digit (x_0-prediction): DDIM 10-step samples from fresh noise land on it
    (mean |x̂ − x| < 0.12, vs ≈ 0.8 for the noise itself)."""
    from frontierkit.data import TensorBatches
    from frontierkit.diffusion.data import digits_data
    from frontierkit.diffusion.models import UNet2DConditionModel
    from frontierkit.diffusion.train import unet_config
    from frontierkit.train import Trainer

    x, _ = digits_data("train")
    target = x[:1] * 2 - 1                                              # (1, 1, 8, 8) in [−1, 1]
    cfg = DiffusionRunConfig(model=DiffusionModelConfig(width=16, prediction_type="sample"),
                             data=DiffusionDataConfig(name="digits"))
    torch.manual_seed(0)
    unet = UNet2DConditionModel(unet_config(cfg, 1, 8))
    sched = DDPMScheduler.from_config(scheduler_config(cfg.model))
    tc = TrainConfig(steps=120, batch_size=16, lr=3e-3, warmup_steps=10, weight_decay=0.0, log_every=1000)
    Trainer(unet, ddpm_loss(sched, "none", 0.0, None), TensorBatches(target.repeat(64, 1, 1, 1), batch_size=16),
            tc, out=tmp_path / "run", quiet=True).fit(resume=False)
    ddim = DDIMScheduler.from_config(scheduler_config(cfg.model))
    ddim.set_timesteps(10)
    xt = torch.randn(8, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    noise_err = (xt - target).abs().mean()
    with torch.no_grad():
        for t in ddim.timesteps:
            xt = ddim.step(unet.eval()(xt, t, None), t, xt).prev_sample
    err = (xt - target).abs().mean()
    assert err < 0.12 and noise_err > 0.6, (float(err), float(noise_err))


def test_frechet_distance_properties():
    """Heusel et al. 2017 eq. 6: FD(X, X) ≈ 0; shifting by c adds ‖c‖²; it is symmetric."""
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(500, 6, generator=g), torch.randn(400, 6, generator=g) * 1.5
    assert abs(M.frechet_distance(a, a)) < 1e-6
    c = torch.tensor([1.0, -2.0, 0, 0, 0, 0.5])
    assert M.frechet_distance(a + c, a) == pytest.approx(float(c.pow(2).sum()), abs=1e-6)
    assert M.frechet_distance(a, b) == pytest.approx(M.frechet_distance(b, a), rel=1e-6)


def test_shapes_measurements_read_real_images():
    """On real held-out shapes, colour and position read from the foreground match the captions exactly,
    a mask's IoU with itself is 1, and the outline is the mask's boundary (inside the mask)."""
    te = shapes_data("test", n=200)
    labels = te.labels
    assert (M.color_of(te.images) == labels["color"]).float().mean() == 1.0
    assert (M.position_of(te.images) == labels["position"]).float().mean() >= 0.97     # jitter near cell edges
    assert M.mask_iou(te.images, te.masks) == 1.0
    ol = outline(te.masks)
    assert bool((ol <= te.masks).all()) and 0 < ol.sum() < te.masks.sum()


class _FixedDecoder(torch.nn.Module):
    """A stand-in VAE whose decoder always returns ``recon`` and whose posterior is N(0, I) (KL = 0): only the
    reconstruction terms are left."""

    def __init__(self, recon: torch.Tensor):
        super().__init__()
        self.recon = recon

    def encode(self, x):
        from frontierkit.diffusion.models.vae import DiagonalGaussian
        return DiagonalGaussian(torch.zeros(x.shape[0], 8, 2, 2))

    def decode(self, z):
        return self.recon


def test_vae_loss_charges_a_blob_for_the_background_it_fills():
    """A cross drawn back as its filled bounding square (the blob the old VAE made), against a cross missing one
    arm's tip: weighting only the shape's own pixels, the blob costs 1.5× the tip; weighting the dilated mask and
    adding the image-gradient term, 11.7×. Asserted: the blob's relative cost grows > 4×."""
    S = 16
    img = torch.full((1, 3, S, S), 0.08)
    cross = torch.zeros(S, S, dtype=torch.bool)
    cross[7:9, 3:13] = True
    cross[3:13, 7:9] = True
    img[:, :, cross] = 0.9
    blob = img.clone()
    blob[:, :, 3:13, 3:13] = 0.9                                         # notches filled
    tip = img.clone()
    tip[:, :, 7:9, 11:13] = 0.08                                         # one arm's tip missing
    batch, to_pm = (img, cross[None]), (lambda x: x * 2 - 1)             # images in [0, 1]; the VAE sees [−1, 1]

    def cost(recon, **kw):
        return float(vae_loss(**kw)(_FixedDecoder(to_pm(recon)), batch)[0])

    old, new = dict(foreground_weight=10.0), dict(foreground_weight=10.0, dilation=2, edge_weight=1.0)
    assert cost(img, **old) < 1e-3 and cost(img, **new) < 1e-3           # a perfect reconstruction is free
    ratio_old, ratio_new = cost(blob, **old) / cost(tip, **old), cost(blob, **new) / cost(tip, **new)
    assert ratio_new > 4 * ratio_old, (ratio_old, ratio_new)


def test_caption_encoder():
    """One-hot words + positions; "" is only <bos>; an unknown word is a one-line DataError."""
    enc = CaptionEncoder()
    h, pooled = enc(["a large red circle at the top left", ""])
    assert h.shape == (2, enc.max_len, enc.dim) and pooled.shape == (2, enc.dim)
    assert h[1, 1:].abs().sum() == 0 and h[0, :9].sum(-1).eq(2).all()     # word + position, 9 tokens
    with pytest.raises(DataError, match="vocabulary"):
        enc(["a purple circle"])


def test_cli_errors_are_one_line(tmp_path, capsys):
    """Bad CLI input exits 2 with a message, no traceback: captions on digits, a text prompt to a class model."""
    from frontierkit.cli import main

    assert main(["diffusion", "train", "--data.name", "digits", "--data.condition", "text", "--print-config"]) == 2
    assert "digits have no captions" in capsys.readouterr().err
    run = tmp_path / "run"
    train_unet(_cfg(2), run)
    assert main(["diffusion", "sample", "--model", str(run), "--prompt", "a red circle", "--out",
                 str(tmp_path / "x.png")]) == 2
    assert "not text-conditioned" in capsys.readouterr().err
    assert main(["diffusion", "sample", "--model", str(run), "--label", "3", "--steps", "2", "--out",
                 str(tmp_path / "x.png"), "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["n"] == 1
    assert (tmp_path / "x.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ConfigError):
        DiffusionDataConfig(name="digits", condition="text")
