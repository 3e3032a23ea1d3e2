"""The resolution levels of the latent-diffusion UNet (Rombach et al. 2022 §3.3; Ronneberger et al. 2015) and of
its KL autoencoder (§3.1), with diffusers' block names and layouts so checkpoints map one to one:
encoder levels (ResNet blocks [+ spatial transformers], then a stride-2 downsample), the bottleneck, and decoder
levels that concatenate the encoder's skip activations before each ResNet block.
"""
from __future__ import annotations

import torch
from torch import nn

from .attention import SpatialSelfAttention, Transformer2DModel
from .resnet import Downsample2D, ResnetBlock2D, Upsample2D


def _transformers(n: int, channels: int, heads: int, layers: int, context_dim: int | None, groups: int,
                  linear: bool) -> nn.ModuleList:
    return nn.ModuleList(Transformer2DModel(channels, heads, layers, context_dim, groups, linear) for _ in range(n))


class DownBlock2D(nn.Module):
    """An encoder level: ``num_layers`` ResNet blocks [each followed by a spatial transformer], then a downsample.

    Returns the output and every intermediate activation (the UNet's skip connections)."""

    def __init__(self, in_channels: int, out_channels: int, temb_channels: int, num_layers: int, groups: int,
                 eps: float, add_downsample: bool, downsample_padding: int = 1, dropout: float = 0.0,
                 cross_attention: bool = False, heads: int = 1, transformer_layers: int = 1,
                 context_dim: int | None = None, linear_projection: bool = False):
        super().__init__()
        self.resnets = nn.ModuleList(
            ResnetBlock2D(in_channels if i == 0 else out_channels, out_channels, temb_channels, groups, eps, dropout)
            for i in range(num_layers))
        if cross_attention:
            self.attentions = _transformers(num_layers, out_channels, heads, transformer_layers, context_dim, groups,
                                            linear_projection)
        self.downsamplers = nn.ModuleList([Downsample2D(out_channels, downsample_padding)]) if add_downsample else None

    def forward(self, h: torch.Tensor, temb: torch.Tensor | None, context: torch.Tensor | None = None,
                context_valid: torch.Tensor | None = None) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """h (B, C_in, H, W) -> (B, C_out, H/2, W/2) and the skips [(B, C_out, H, W)] * n [+ the downsampled]."""
        skips = []
        attentions = getattr(self, "attentions", None)
        for i, resnet in enumerate(self.resnets):
            h = resnet(h, temb)                                                # (B, C_out, H, W)
            if attentions is not None:
                h = attentions[i](h, context, context_valid)
            skips.append(h)
        if self.downsamplers is not None:
            h = self.downsamplers[0](h)                                        # (B, C_out, H/2, W/2)
            skips.append(h)
        return h, tuple(skips)


class UpBlock2D(nn.Module):
    """A decoder level: ``num_layers`` ResNet blocks on [h; skip] [each followed by a spatial transformer], then
    an upsample to the next skip's size."""

    def __init__(self, in_channels: int, prev_output_channel: int, out_channels: int, temb_channels: int,
                 num_layers: int, groups: int, eps: float, add_upsample: bool, dropout: float = 0.0,
                 cross_attention: bool = False, heads: int = 1, transformer_layers: int = 1,
                 context_dim: int | None = None, linear_projection: bool = False):
        super().__init__()
        self.resnets = nn.ModuleList()
        for i in range(num_layers):
            skip = in_channels if i == num_layers - 1 else out_channels
            first = prev_output_channel if i == 0 else out_channels
            self.resnets.append(ResnetBlock2D(first + skip, out_channels, temb_channels, groups, eps, dropout))
        if cross_attention:
            self.attentions = _transformers(num_layers, out_channels, heads, transformer_layers, context_dim, groups,
                                            linear_projection)
        self.upsamplers = nn.ModuleList([Upsample2D(out_channels)]) if add_upsample else None

    def forward(self, h: torch.Tensor, skips: tuple[torch.Tensor, ...], temb: torch.Tensor | None,
                context: torch.Tensor | None = None, upsample_size: tuple[int, int] | None = None,
                context_valid: torch.Tensor | None = None) -> torch.Tensor:
        """h (B, C_prev, H, W), skips (last one first used) -> (B, C_out, 2H, 2W) (or (H, W) if last level)."""
        attentions = getattr(self, "attentions", None)
        for i, resnet in enumerate(self.resnets):
            h = resnet(torch.cat([h, skips[-1 - i]], dim=1), temb)             # (B, C_out, H, W)
            if attentions is not None:
                h = attentions[i](h, context, context_valid)
        if self.upsamplers is not None:
            h = self.upsamplers[0](h, upsample_size)                           # (B, C_out, 2H, 2W)
        return h


class UNetMidBlock2D(nn.Module):
    """The bottleneck: ResNet, then (n times) [spatial transformer (cross-attention) or pixel self-attention
    (VAE) or nothing], ResNet."""

    def __init__(self, channels: int, temb_channels: int | None, groups: int, eps: float, *, attention: str | None,
                 num_layers: int = 1, heads: int = 1, transformer_layers: int = 1, context_dim: int | None = None,
                 linear_projection: bool = False, dropout: float = 0.0, output_scale_factor: float = 1.0):
        super().__init__()
        n = num_layers
        self.resnets = nn.ModuleList(
            ResnetBlock2D(channels, channels, temb_channels, groups, eps, dropout, output_scale_factor)
            for _ in range(n + 1))
        if attention == "cross":
            self.attentions = _transformers(n, channels, heads, transformer_layers, context_dim, groups,
                                            linear_projection)
        elif attention == "self":
            self.attentions = nn.ModuleList(SpatialSelfAttention(channels, groups, eps) for _ in range(n))

    def forward(self, h: torch.Tensor, temb: torch.Tensor | None, context: torch.Tensor | None = None,
                context_valid: torch.Tensor | None = None) -> torch.Tensor:
        h = self.resnets[0](h, temb)                                           # (B, C, H, W)
        attentions = getattr(self, "attentions", None)
        for i, resnet in enumerate(self.resnets[1:]):
            if isinstance(attentions, nn.ModuleList) and isinstance(attentions[i], Transformer2DModel):
                h = attentions[i](h, context, context_valid)
            elif attentions is not None:
                h = attentions[i](h)
            h = resnet(h, temb)                                                # (B, C, H, W)
        return h
