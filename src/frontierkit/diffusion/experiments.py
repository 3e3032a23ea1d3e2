"""The measured runs behind benchmarks/diffusion_quality.py and the tour: pixel DDPM on digits
(unconditional and class-conditional, Ho et al. 2020; CFG, Ho & Salimans 2022), latent text-to-image on
shapes captions (VAE then UNet, Rombach et al. 2022), ControlNet on outlines (Zhang et al. 2023), and
DDIM vs DPM-Solver++(2M) at few steps against a 1000-step reference (Lu et al. 2022 Table/Fig. 1 ordering).
Runs are cached under ``$FRONTIERKIT_CACHE/diffusion/`` so the tour reuses them."""
from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data import cache_dir
from ..train import TrainConfig
from .pipelines import StableDiffusionPipeline
from .schedulers import SCHEDULERS
from .train import (ControlNetRunConfig, DiffusionDataConfig, DiffusionModelConfig, DiffusionRunConfig,
                    train_controlnet, train_unet, train_vae)

STEPS = {  # training steps (quick, full) — sized for a shared 2-core CPU
    "digits": (400, 1500), "digits-class": (400, 1500), "vae": (800, 2000), "shapes-text": (400, 4000),
    "controlnet": (150, 800), "classifier": (400, 800)}


def _train_cfg(name: str, quick: bool, batch_size: int = 32, lr: float = 2e-3) -> TrainConfig:
    steps = STEPS[name][0 if quick else 1]
    return TrainConfig(steps=steps, batch_size=batch_size, lr=lr, warmup_steps=20, weight_decay=0.0,
                       log_every=50, beta2=0.99)


def run_dir(name: str, quick: bool) -> Path:
    return cache_dir() / "diffusion" / f"{name}-{'quick' if quick else 'full'}"


def _cached(name: str, quick: bool, train_fn, cfg: Any, quiet: bool) -> Path:
    out = run_dir(name, quick)
    if not (out / "model" / "config.json").is_file():
        shutil.rmtree(out, ignore_errors=True)
        train_fn(cfg, out, quiet=quiet)
    return out


def digits_run(quick: bool, condition: str = "none", quiet: bool = True) -> Path:
    """Pixel DDPM on 8×8 digits (v-prediction, cosine schedule), unconditional or class-conditional.

    v rather than ε: the cosine schedule's last step has ᾱ_T ≈ 2e-9, where x̂_0 from ε̂ amplifies the
    model's error ×2·10⁴ and the ODE from x_T is ill-conditioned (Lin et al. 2023 sec. 3.1)."""
    name = "digits" if condition == "none" else "digits-class"
    cfg = DiffusionRunConfig(model=DiffusionModelConfig(width=16, prediction_type="v_prediction"),
                             train=_train_cfg(name, quick),
                             data=DiffusionDataConfig(name="digits", condition=condition))
    return _cached(name, quick, train_unet, cfg, quiet)


def vae_run(quick: bool, quiet: bool = True) -> Path:
    cfg = DiffusionRunConfig(stage="vae", data=DiffusionDataConfig(name="shapes"),
                             train=_train_cfg("vae", quick, batch_size=16, lr=3e-3))
    return _cached("vae", quick, train_vae, cfg, quiet)


def shapes_text_run(quick: bool, quiet: bool = True) -> Path:
    """Latent text-to-image: the UNet learns the shapes VAE's latents conditioned on caption embeddings."""
    vae = vae_run(quick, quiet)
    cfg = DiffusionRunConfig(model=DiffusionModelConfig(width=16 if quick else 32, heads=2,
                                                        prediction_type="v_prediction"),
                             train=_train_cfg("shapes-text", quick),
                             data=DiffusionDataConfig(name="shapes", condition="text", vae=str(vae)))
    return _cached("shapes-text", quick, train_unet, cfg, quiet)


def controlnet_run(quick: bool, quiet: bool = True, condition: str = "outline") -> Path:
    """ControlNet on the frozen shapes text UNet, conditioned on the shape's outline (edges) or filled mask."""
    cfg = ControlNetRunConfig(unet=str(shapes_text_run(quick, quiet)), condition=condition,
                              train=_train_cfg("controlnet", quick, batch_size=16, lr=1e-3))
    name = "controlnet" if condition == "outline" else f"controlnet-{condition}"
    return _cached(name, quick, train_controlnet, cfg, quiet)


def classifier_run(data: str, quick: bool, quiet: bool = True) -> Path:
    """The kit classifier (vision kind, small CNN) whose features define the Fréchet distance."""
    from ..vision.train import run_config_for, train_classifier
    out = run_dir(f"classifier-{data}", quick)
    if not (out / "model" / "config.json").is_file():
        shutil.rmtree(out, ignore_errors=True)
        cfg = run_config_for("cnn", data, steps=STEPS["classifier"][0 if quick else 1], batch_size=32)
        if data == "shapes":
            cfg = replace(cfg, model=replace(cfg.model, width=16))
        train_classifier(cfg, out, quiet=quiet)
    return out


def load_classifier(path: Path) -> nn.Module:
    from ..models import open_model
    return open_model(path, tags="classifier").model.eval()


# ------------------------------------------------------------------------------------------- sampling
def pipeline_for(run: Path, scheduler: str = "DPMSolverMultistepScheduler", controlnet: Path | None = None,
                 text_encoder: str = "") -> StableDiffusionPipeline:
    """A pipeline over a trained run or a diffusers folder: its UNet, noise schedule, VAE and text encoder
    (``text_encoder``: a kit folder tagged "text-encoder" replacing the run's own)."""
    from ..models import open_model
    from .folders import open_parts
    parts = open_parts(run, text_encoder)
    sched = SCHEDULERS[scheduler].from_config(parts.scheduler_config)
    cn = open_model(controlnet, kind="controlnet").model.eval() if controlnet else None
    return StableDiffusionPipeline(unet=parts.unet, scheduler=sched, vae=parts.vae, text_encoder=parts.text_encoder,
                                   controlnet=cn, force_zeros_for_empty_prompt=parts.force_zeros_for_empty_prompt)


@torch.no_grad()
def generate(pipe: StableDiffusionPipeline, n: int, steps: int, seed: int = 0, batch: int = 100,
             guidance_scale: float = 1.0, prompts: list[str] | None = None, labels: torch.Tensor | None = None,
             control: torch.Tensor | None = None, eta: float = 0.0, progress: bool = False,
             negative_prompt: str | None = None) -> torch.Tensor:
    """(n, C, H, W) images in [0, 1], in batches, each batch from its own seeded generator."""
    out = []
    for i in range(0, n, batch):
        j = min(i + batch, n)
        g = torch.Generator().manual_seed(seed * 100_003 + i)
        kw: dict[str, Any] = dict(num_inference_steps=steps, guidance_scale=guidance_scale, generator=g, eta=eta,
                                  progress=progress)
        if prompts is not None:
            kw["prompt"] = prompts[i:j]
            if negative_prompt is not None:
                kw["negative_prompt"] = negative_prompt
        if labels is not None:
            kw["class_labels"] = labels[i:j]
        if control is not None:
            kw["control_image"] = control[i:j]
        if prompts is None and labels is None:
            kw["prompt_embeds"] = None
            kw["num_images_per_prompt"] = j - i
        out.append(pipe(**kw).images)
    return torch.cat(out)
