"""The diffusion area's manifest: ``frontier diffusion``, its tour section and the model kinds
``diffusion-unet``, ``diffusion-vae`` and ``controlnet`` (our checkpoints and diffusers folders)."""
from __future__ import annotations

from ..areas import Manifest, ModelKind

_K = "frontierkit.diffusion.models.kinds"

MANIFEST = Manifest(
    name="diffusion", help="DDPM/DDIM/Euler/DPM-Solver++, Stable Diffusion, ControlNet, SDXL on digits/shapes",
    commands="frontierkit.diffusion.commands:register",
    tour={"diffusion": "frontierkit.diffusion.demo:tour"},
    kinds=(ModelKind("diffusion-unet", build=f"{_K}:build_unet",
                     classes=("frontierkit.diffusion.models.unet_2d_condition:UNet2DConditionModel",),
                     tags=frozenset({"diffusion"}), config_of=f"{_K}:config_of", detect=f"{_K}:detect_unet",
                     load_foreign=f"{_K}:load_diffusers",
                     description="conditional UNet: (x_t, t, text embeddings) -> ε / v / x_0 prediction"),
           ModelKind("diffusion-vae", build=f"{_K}:build_vae",
                     classes=("frontierkit.diffusion.models.vae:AutoencoderKL",),
                     config_of=f"{_K}:config_of", detect=f"{_K}:detect_vae", load_foreign=f"{_K}:load_diffusers",
                     description="KL autoencoder: images <-> latents (scaling_factor)"),
           ModelKind("controlnet", build=f"{_K}:build_controlnet",
                     classes=("frontierkit.diffusion.models.controlnet:ControlNetModel",),
                     config_of=f"{_K}:config_of", detect=f"{_K}:detect_controlnet",
                     load_foreign=f"{_K}:load_diffusers",
                     description="ControlNet: (x_t, t, text, control image) -> UNet residuals")),
)
