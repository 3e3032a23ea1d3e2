"""Diffusion: schedulers, pipelines (Stable Diffusion, img2img, ControlNet, SDXL) and training on the
kit's small datasets. Papers: Ho et al. 2020 (DDPM), Song et al. 2021 (DDIM), Rombach et al. 2022 (LDM),
Zhang et al. 2023 (ControlNet), Podell et al. 2023 (SDXL), Ho & Salimans 2022 (classifier-free guidance)."""
from __future__ import annotations

from typing import Any

from .schedulers import (DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler,
                         EulerAncestralDiscreteScheduler, EulerDiscreteScheduler)

__all__ = ["from_diffusers", "to_diffusers", "DDPMScheduler", "DDIMScheduler", "EulerDiscreteScheduler",
           "EulerAncestralDiscreteScheduler", "DPMSolverMultistepScheduler"]


def from_diffusers(path: Any, *args: Any, **kwargs: Any):
    """A diffusers UNet / VAE / ControlNet folder as a kit ``nn.Module`` (see :mod:`.convert`)."""
    from .convert import from_diffusers as _from_diffusers
    return _from_diffusers(path, *args, **kwargs)


def to_diffusers(module: Any, path: Any) -> Any:
    """Write a kit UNet / VAE / ControlNet as a diffusers folder (see :mod:`.convert`)."""
    from .convert import to_diffusers as _to_diffusers
    return _to_diffusers(module, path)
