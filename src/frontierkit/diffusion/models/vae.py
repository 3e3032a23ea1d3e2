"""The KL-regularised autoencoder of latent diffusion (Rombach et al. 2022 §3.1 and App. G; Kingma & Welling 2014):
an encoder to the mean and log-variance of a diagonal Gaussian q(z|x), and a decoder p(x|z), with diffusers'
AutoencoderKL layout. Latents are scaled by ``scaling_factor`` before diffusion (unit variance, §4.3.2).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .configs import VAEConfig
from .resnet import Downsample2D, ResnetBlock2D, Upsample2D
from .unet_2d_blocks import UNetMidBlock2D

EPS = 1e-6
"""GroupNorm epsilon of the autoencoder (diffusers' Encoder/Decoder)"""


class DiagonalGaussian:
    """q(z|x) = N(μ, diag σ²) from the encoder's moments [μ; log σ²] (log σ² clamped to [-30, 20] as in LDM)."""

    def __init__(self, moments: torch.Tensor):
        self.mean, logvar = moments.chunk(2, dim=1)                            # (B, L, h, w) each
        self.logvar = logvar.clamp(-30.0, 20.0)
        self.std = torch.exp(0.5 * self.logvar)
        self.var = torch.exp(self.logvar)

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """z = μ + σ ε, ε ~ N(0, I) (the reparameterisation trick, Kingma & Welling 2014 §2.4)."""
        eps = torch.randn(self.mean.shape, generator=generator, device=self.mean.device, dtype=self.mean.dtype)
        return self.mean + self.std * eps

    def mode(self) -> torch.Tensor:
        return self.mean

    def kl(self, other: "DiagonalGaussian | None" = None) -> torch.Tensor:
        """KL(q || N(0, I)) = ½ Σ (μ² + σ² − 1 − log σ²) per sample (Kingma & Welling 2014, App. B),
        or KL(q || other) between two diagonal Gaussians."""
        dims = list(range(1, self.mean.ndim))
        if other is None:
            return 0.5 * torch.sum(self.mean.pow(2) + self.var - 1.0 - self.logvar, dim=dims)   # (B,)
        return 0.5 * torch.sum((self.mean - other.mean).pow(2) / other.var + self.var / other.var - 1.0
                               - self.logvar + other.logvar, dim=dims)                          # (B,)


class Encoder(nn.Module):
    """x -> conv -> [ResNet blocks, downsample] per level -> mid (ResNet, attention, ResNet) -> 2L moments."""

    def __init__(self, cfg: VAEConfig):
        super().__init__()
        ch, g, n = cfg.block_out_channels, cfg.norm_num_groups, len(cfg.block_out_channels)
        self.conv_in = nn.Conv2d(cfg.in_channels, ch[0], 3, padding=1)
        self.down_blocks = nn.ModuleList()
        for i in range(n):
            block = nn.Module()
            block.resnets = nn.ModuleList(ResnetBlock2D(ch[max(i - 1, 0)] if j == 0 else ch[i], ch[i], None, g, EPS)
                                          for j in range(cfg.layers_per_block))
            block.downsamplers = nn.ModuleList([Downsample2D(ch[i], padding=0)]) if i < n - 1 else None
            self.down_blocks.append(block)
        self.mid_block = UNetMidBlock2D(ch[-1], None, g, EPS, attention="self" if cfg.mid_block_add_attention else None)
        self.conv_norm_out = nn.GroupNorm(g, ch[-1], eps=EPS)
        self.conv_out = nn.Conv2d(ch[-1], 2 * cfg.latent_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, C, H, W) -> moments (B, 2L, H/2^(n-1), W/2^(n-1))."""
        h = self.conv_in(x)                                                    # (B, ch0, H, W)
        for block in self.down_blocks:
            for resnet in block.resnets:
                h = resnet(h)
            if block.downsamplers is not None:
                h = block.downsamplers[0](h)                                   # (B, c, H/2, W/2)
        h = self.mid_block(h, None)
        return self.conv_out(F.silu(self.conv_norm_out(h)))                    # (B, 2L, h, w)


class Decoder(nn.Module):
    """z -> conv -> mid -> [ResNet blocks, upsample] per level (widest first) -> image."""

    def __init__(self, cfg: VAEConfig):
        super().__init__()
        rev, g, n = list(reversed(cfg.block_out_channels)), cfg.norm_num_groups, len(cfg.block_out_channels)
        self.conv_in = nn.Conv2d(cfg.latent_channels, rev[0], 3, padding=1)
        self.mid_block = UNetMidBlock2D(rev[0], None, g, EPS, attention="self" if cfg.mid_block_add_attention else None)
        self.up_blocks = nn.ModuleList()
        for i in range(n):
            block = nn.Module()
            block.resnets = nn.ModuleList(ResnetBlock2D(rev[max(i - 1, 0)] if j == 0 else rev[i], rev[i], None, g, EPS)
                                          for j in range(cfg.layers_per_block + 1))
            block.upsamplers = nn.ModuleList([Upsample2D(rev[i])]) if i < n - 1 else None
            self.up_blocks.append(block)
        self.conv_norm_out = nn.GroupNorm(g, rev[-1], eps=EPS)
        self.conv_out = nn.Conv2d(rev[-1], cfg.out_channels, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, L, h, w) -> x (B, C, h*2^(n-1), w*2^(n-1))."""
        h = self.mid_block(self.conv_in(z), None)                              # (B, c, h, w)
        for block in self.up_blocks:
            for resnet in block.resnets:
                h = resnet(h)
            if block.upsamplers is not None:
                h = block.upsamplers[0](h)                                     # (B, c, 2h, 2w)
        return self.conv_out(F.silu(self.conv_norm_out(h)))                    # (B, C, H, W)


class AutoencoderKL(nn.Module):
    """E(x) -> q(z|x), D(z) -> x̂ (Rombach et al. 2022 §3.1), with diffusers' quant_conv / post_quant_conv 1x1s."""

    def __init__(self, cfg: VAEConfig):
        super().__init__()
        self.cfg = cfg
        lat = cfg.latent_channels
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        self.quant_conv = nn.Conv2d(2 * lat, 2 * lat, 1)
        self.post_quant_conv = nn.Conv2d(lat, lat, 1)

    @property
    def scaling_factor(self) -> float:
        return self.cfg.scaling_factor

    def encode(self, x: torch.Tensor) -> DiagonalGaussian:
        """x (B, C, H, W) in [-1, 1] -> q(z|x) over (B, L, h, w)."""
        return DiagonalGaussian(self.quant_conv(self.encoder(x)))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, L, h, w) (unscaled: divide diffusion latents by scaling_factor first) -> x̂ (B, C, H, W)."""
        return self.decoder(self.post_quant_conv(z))

    def forward(self, x: torch.Tensor, sample_posterior: bool = False,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """Reconstruction D(z), z = μ (or a sample of q(z|x))."""
        q = self.encode(x)
        return self.decode(q.sample(generator) if sample_posterior else q.mode())
