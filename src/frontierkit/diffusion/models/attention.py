"""Attention layers of the latent-diffusion UNet and autoencoder on the core's primitives
(:class:`frontierkit.nn.EncoderBlock`, :class:`frontierkit.nn.EncoderAttention`):

- ``Transformer2DModel``: the spatial transformer of Rombach et al. 2022 §3.3 (Fig. 3): GroupNorm, a 1x1
  conv (or Linear, SD 2 / SDXL) into tokens, pre-norm blocks of self-attention, cross-attention to the text
  tokens and a GEGLU MLP (Shazeer 2020), back out, plus the residual.
- ``SpatialSelfAttention``: one-head self-attention over pixels with GroupNorm and a residual, in the VAE's
  mid blocks (Rombach et al. 2022 App. G, after the DDPM UNet's attention, Ho et al. 2020).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ...nn import EncoderAttention, EncoderBlock


class Transformer2DModel(nn.Module):
    """y = x + proj_out(Blocks(proj_in(GN(x)), context)), Rombach et al. 2022 §3.3; diffusers' Transformer2DModel."""

    def __init__(self, channels: int, n_heads: int, n_layers: int, context_dim: int | None, groups: int,
                 use_linear_projection: bool):
        super().__init__()
        self.use_linear_projection = use_linear_projection
        self.norm = nn.GroupNorm(groups, channels, eps=1e-6)
        proj = (lambda: nn.Linear(channels, channels)) if use_linear_projection else \
            (lambda: nn.Conv2d(channels, channels, 1))
        self.proj_in = proj()
        self.transformer_blocks = nn.ModuleList(
            EncoderBlock(channels, n_heads, head_dim=channels // n_heads, activation="geglu", mlp_hidden=4 * channels,
                         context_dim=context_dim, qkv_bias=False)
            for _ in range(n_layers))
        self.proj_out = proj()

    def forward(self, x: torch.Tensor, context: torch.Tensor | None,
                context_valid: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, C, H, W), context (B, L, D), context_valid (B, L) bool -> (B, C, H, W). A 1x1 conv is a Linear
        over channels: both projections run as matmuls on the (B, HW, C) tokens (the same numbers, faster on CPU)."""
        b, c, h, w = x.shape
        t = self.norm(x).flatten(2).transpose(1, 2)                            # (B, HW, C)
        t = F.linear(t, self.proj_in.weight.flatten(1), self.proj_in.bias)     # (B, HW, C)
        for block in self.transformer_blocks:
            t = block(t, context, context_valid=context_valid)                 # (B, HW, C)
        t = F.linear(t, self.proj_out.weight.flatten(1), self.proj_out.bias)   # (B, HW, C)
        return x + t.transpose(1, 2).reshape(b, c, h, w)     # (B, C, H, W); x first keeps NCHW-contiguous output


class SpatialSelfAttention(nn.Module):
    """y = x + Attn(GN(x)) over the H*W pixels as tokens (one head of width C), the VAE mid block's attention."""

    def __init__(self, channels: int, groups: int, eps: float = 1e-6):
        super().__init__()
        self.group_norm = nn.GroupNorm(groups, channels, eps=eps)
        self.attn = EncoderAttention(channels, 1, head_dim=channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        t = self.group_norm(x).flatten(2).transpose(1, 2)                      # (B, HW, C)
        t = self.attn(t)                                                       # (B, HW, C)
        return x + t.transpose(1, 2).reshape(b, c, h, w)     # (B, C, H, W); x first keeps NCHW-contiguous output
