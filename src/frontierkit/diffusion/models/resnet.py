"""The residual blocks of the diffusion UNet and its autoencoder (He et al. 2016) in the form of the DDPM UNet
(Ho et al. 2020, App. B, from PixelCNN++/Wide ResNet): GroupNorm (Wu & He 2018) -> SiLU -> conv, with the
timestep embedding added between the two convolutions; stride-2 conv downsampling and nearest x2 upsampling.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class ResnetBlock2D(nn.Module):
    """h = conv1(SiLU(GN(x))) + W_t SiLU(emb); h = conv2(drop(SiLU(GN(h)))); y = (shortcut(x) + h) / s
    (Ho et al. 2020, App. B; diffusers' ResnetBlock2D). ``temb_channels=None``: no time input (the VAE)."""

    def __init__(self, in_channels: int, out_channels: int, temb_channels: int | None, groups: int, eps: float,
                 dropout: float = 0.0, output_scale_factor: float = 1.0):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, in_channels, eps=eps)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.time_emb_proj = nn.Linear(temb_channels, out_channels) if temb_channels else None
        self.norm2 = nn.GroupNorm(groups, out_channels, eps=eps)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else None
        self.output_scale_factor = output_scale_factor

    def forward(self, x: torch.Tensor, temb: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, C_in, H, W), temb (B, T) or None -> (B, C_out, H, W)."""
        h = self.conv1(F.silu(self.norm1(x)))                                  # (B, C_out, H, W)
        if self.time_emb_proj is not None and temb is not None:
            h = h + self.time_emb_proj(F.silu(temb))[:, :, None, None]         # (B, C_out, 1, 1) broadcast
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))                    # (B, C_out, H, W)
        skip = x if self.conv_shortcut is None else self.conv_shortcut(x)
        out = skip + h
        return out if self.output_scale_factor == 1.0 else out / self.output_scale_factor


class Downsample2D(nn.Module):
    """3x3 convolution with stride 2 (padding 0: pad right/bottom by one first, as the LDM autoencoder does)."""

    def __init__(self, channels: int, padding: int = 1):
        super().__init__()
        self.padding = padding
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.padding == 0:
            x = F.pad(x, (0, 1, 0, 1))                                         # (B, C, H+1, W+1)
        return self.conv(x)                                                    # (B, C, H/2, W/2)


class Upsample2D(nn.Module):
    """Nearest-neighbour x2 (or to ``size``, the skip connection's) upsampling followed by a 3x3 convolution."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        if size is None or (size[0] == 2 * x.shape[-2] and size[1] == 2 * x.shape[-1]):
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")             # (B, C, 2H, 2W)
        else:
            x = F.interpolate(x, size=size, mode="nearest")                    # (B, C, *size)
        return self.conv(x)
