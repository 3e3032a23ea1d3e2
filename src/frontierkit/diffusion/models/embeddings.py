"""Timestep embeddings of diffusion models: the sinusoidal (Fourier-feature) embedding of Vaswani et al. 2017
§3.5 as the DDPM UNet uses it for t (Ho et al. 2020, App. B), followed by a two-layer MLP; SDXL embeds its
micro-conditioning time_ids (original size, crop top-left, target size) the same way (Podell et al. 2023 §2.2).
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


def timestep_embedding(timesteps: torch.Tensor, dim: int, flip_sin_to_cos: bool = False,
                       downscale_freq_shift: float = 1.0, scale: float = 1.0, max_period: int = 10000) -> torch.Tensor:
    """[sin(t ω_k), cos(t ω_k)] with ω_k = max_period^(-k / (dim/2 - shift)), Vaswani et al. §3.5 (diffusers'
    get_timestep_embedding). timesteps (N,) -> (N, dim) float32."""
    half = dim // 2
    k = torch.arange(half, dtype=torch.float32, device=timesteps.device)        # (half,)
    omega = torch.exp(-math.log(max_period) * k / (half - downscale_freq_shift))  # (half,)
    arg = scale * timesteps[:, None].float() * omega[None, :]                  # (N, half)
    emb = torch.cat([torch.cos(arg), torch.sin(arg)] if flip_sin_to_cos else [torch.sin(arg), torch.cos(arg)], -1)
    return F.pad(emb, (0, 1)) if dim % 2 else emb                              # (N, dim)


class Timesteps(nn.Module):
    """The parameter-free sinusoidal projection of timesteps (diffusers' ``Timesteps``)."""

    def __init__(self, dim: int, flip_sin_to_cos: bool, downscale_freq_shift: float):
        super().__init__()
        self.dim, self.flip_sin_to_cos, self.downscale_freq_shift = dim, flip_sin_to_cos, downscale_freq_shift

    def forward(self, timesteps: torch.Tensor) -> torch.Tensor:
        return timestep_embedding(timesteps, self.dim, self.flip_sin_to_cos, self.downscale_freq_shift)


class TimestepEmbedding(nn.Module):
    """emb = W2 SiLU(W1 e(t) + b1) + b2: the DDPM UNet's timestep MLP (Ho et al. 2020, App. B)."""

    def __init__(self, in_dim: int, time_embed_dim: int):
        super().__init__()
        self.linear_1 = nn.Linear(in_dim, time_embed_dim)
        self.linear_2 = nn.Linear(time_embed_dim, time_embed_dim)

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        return self.linear_2(F.silu(self.linear_1(e)))                         # (B, time_embed_dim)


def timesteps_for(timestep: torch.Tensor | float | int, batch: int, device: torch.device) -> torch.Tensor:
    """A scalar, 0-d or (B,) timestep as a (B,) tensor (diffusers broadcasts the same way)."""
    t = timestep if torch.is_tensor(timestep) else torch.tensor(timestep, device=device)
    t = t.to(device)
    if t.ndim == 0:
        t = t[None]
    return t.expand(batch)                                                     # (B,)
