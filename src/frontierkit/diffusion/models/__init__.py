"""Diffusion models with diffusers' names and call signatures: the conditional UNet of latent diffusion
(Rombach et al. 2022) with SDXL's micro-conditioning (Podell et al. 2023), the KL autoencoder (Rombach et al.
2022 §3.1) and ControlNet (Zhang et al. 2023)."""
from .configs import ControlNetConfig, UNetConfig, VAEConfig
from .controlnet import ControlNetModel
from .embeddings import timestep_embedding
from .unet_2d_condition import UNet2DConditionModel
from .vae import AutoencoderKL, DiagonalGaussian

__all__ = ["UNetConfig", "UNet2DConditionModel", "VAEConfig", "AutoencoderKL", "DiagonalGaussian", "ControlNetConfig",
           "ControlNetModel", "timestep_embedding"]
