"""Registry hooks of the diffusion model kinds "diffusion-unet", "diffusion-vae" and "controlnet" (declared in
the area's manifest): build from a config dict (diffusers' config.json keys), the config of a module, recognise
a diffusers folder, and load one (Rombach et al. 2022; Zhang et al. 2023)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn


def build_unet(config: dict[str, Any]) -> nn.Module:
    """A fresh UNet2DConditionModel from its config dict."""
    from .configs import UNetConfig
    from .unet_2d_condition import UNet2DConditionModel
    return UNet2DConditionModel(UNetConfig.from_dict(config))


def build_vae(config: dict[str, Any]) -> nn.Module:
    """A fresh AutoencoderKL from its config dict."""
    from .configs import VAEConfig
    from .vae import AutoencoderKL
    return AutoencoderKL(VAEConfig.from_dict(config))


def build_controlnet(config: dict[str, Any]) -> nn.Module:
    """A fresh ControlNetModel from its config dict."""
    from .configs import ControlNetConfig
    from .controlnet import ControlNetModel
    return ControlNetModel(ControlNetConfig.from_dict(config))


def config_of(model: nn.Module) -> dict[str, Any]:
    """The config dict (diffusers' keys) of one of our diffusion modules."""
    return model.cfg.to_dict()


def detect_unet(meta: dict[str, Any]) -> bool:
    """A diffusers UNet2DConditionModel folder."""
    return meta.get("_class_name") == "UNet2DConditionModel"


def detect_vae(meta: dict[str, Any]) -> bool:
    """A diffusers AutoencoderKL folder."""
    return meta.get("_class_name") == "AutoencoderKL"


def detect_controlnet(meta: dict[str, Any]) -> bool:
    """A diffusers ControlNetModel folder."""
    return meta.get("_class_name") == "ControlNetModel"


def load_diffusers(path: Path, meta: dict[str, Any]) -> nn.Module:
    """A diffusers model folder as our module."""
    from ..convert import from_diffusers
    return from_diffusers(path)
