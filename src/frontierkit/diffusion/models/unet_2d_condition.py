"""The conditional UNet of latent diffusion (Rombach et al. 2022, "High-Resolution Image Synthesis with Latent
Diffusion Models", §3.3): a DDPM UNet (Ho et al. 2020; Ronneberger et al. 2015) whose levels interleave ResNet
blocks with spatial transformers cross-attending to text tokens, conditioned on the timestep through a
sinusoidal embedding; optionally on a class (class-conditional DDPM) and on SDXL's micro-conditioning
(Podell et al. 2023 §2.2: pooled text embedding + Fourier-embedded original size, crop and target size).
ControlNet residuals (Zhang et al. 2023, eq. 4) are added to the skip connections and the bottleneck.
Module names follow diffusers' UNet2DConditionModel so its checkpoints map one to one (see ``convert``).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from .configs import UNetConfig, _UNetEncoderConfig
from .embeddings import TimestepEmbedding, Timesteps, timesteps_for
from .unet_2d_blocks import DownBlock2D, UNetMidBlock2D, UpBlock2D


class UNetEncoder(nn.Module):
    """What a UNet and its ControlNet copy share: conv_in, the time/class/SDXL embeddings, the down levels
    and the mid block (the ControlNet's "trainable copy", Zhang et al. 2023 §3.2)."""

    def _build_encoder(self, cfg: _UNetEncoderConfig) -> None:
        c0 = cfg.block_out_channels[0]
        time_dim = 4 * c0
        kernel = getattr(cfg, "conv_in_kernel", 3)
        self.conv_in = nn.Conv2d(cfg.in_channels, c0, kernel, padding=(kernel - 1) // 2)
        self.time_proj = Timesteps(c0, cfg.flip_sin_to_cos, cfg.freq_shift)
        self.time_embedding = TimestepEmbedding(c0, time_dim)
        self.class_embedding = nn.Embedding(cfg.num_class_embeds, time_dim) if cfg.num_class_embeds else None
        if cfg.addition_embed_type == "text_time":
            self.add_time_proj = Timesteps(cfg.addition_time_embed_dim, cfg.flip_sin_to_cos, cfg.freq_shift)
            self.add_embedding = TimestepEmbedding(cfg.projection_class_embeddings_input_dim, time_dim)
        heads, layers = cfg.block("attention_head_dim"), cfg.block("layers_per_block")
        tlayers, ctx = cfg.block("transformer_layers_per_block"), cfg.block("cross_attention_dim")
        self.down_blocks = nn.ModuleList()
        for i, kind in enumerate(cfg.down_block_types):
            c_in, c_out = cfg.block_out_channels[max(i - 1, 0)], cfg.block_out_channels[i]
            self.down_blocks.append(DownBlock2D(
                c_in, c_out, time_dim, layers[i], cfg.norm_num_groups, cfg.norm_eps, i < cfg.n_blocks - 1,
                cfg.downsample_padding, cfg.dropout, cross_attention=kind == "CrossAttnDownBlock2D",
                heads=heads[i], transformer_layers=tlayers[i], context_dim=ctx[i],
                linear_projection=cfg.use_linear_projection))
        c = cfg.block_out_channels[-1]
        if cfg.mid_block_type == "UNetMidBlock2DCrossAttn":
            self.mid_block = UNetMidBlock2D(c, time_dim, cfg.norm_num_groups, cfg.norm_eps, attention="cross",
                                            heads=heads[-1], transformer_layers=tlayers[-1], context_dim=ctx[-1],
                                            linear_projection=cfg.use_linear_projection, dropout=cfg.dropout,
                                            output_scale_factor=cfg.mid_block_scale_factor)
        elif cfg.mid_block_type == "UNetMidBlock2D":
            self.mid_block = UNetMidBlock2D(c, time_dim, cfg.norm_num_groups, cfg.norm_eps, attention=None,
                                            num_layers=0, dropout=cfg.dropout,
                                            output_scale_factor=cfg.mid_block_scale_factor)
        else:
            self.mid_block = None

    def embed(self, sample: torch.Tensor, timestep: torch.Tensor | float | int, class_labels: torch.Tensor | None,
              added_cond_kwargs: dict[str, torch.Tensor] | None) -> torch.Tensor:
        """emb = MLP(e(t)) [+ E[class]] [+ MLP([pooled text; e(time_ids)])] (Ho et al. App. B; Podell et al. §2.2)."""
        b = sample.shape[0]
        t = timesteps_for(timestep, b, sample.device)                          # (B,)
        emb = self.time_embedding(self.time_proj(t).to(sample.dtype))          # (B, 4*C0)
        if self.class_embedding is not None:
            if class_labels is None:
                raise ValueError("this UNet is class-conditional (num_class_embeds set): pass class_labels (B,)")
            emb = emb + self.class_embedding(class_labels).to(emb.dtype)       # (B, 4*C0)
        if getattr(self, "add_embedding", None) is not None:
            if not added_cond_kwargs or "text_embeds" not in added_cond_kwargs or "time_ids" not in added_cond_kwargs:
                raise ValueError("addition_embed_type='text_time' (SDXL) needs added_cond_kwargs="
                                 "{'text_embeds': (B, P), 'time_ids': (B, 6)}")
            text_embeds, time_ids = added_cond_kwargs["text_embeds"], added_cond_kwargs["time_ids"]
            time_embeds = self.add_time_proj(time_ids.flatten()).reshape(time_ids.shape[0], -1)  # (B, 6*d)
            add = torch.cat([text_embeds, time_embeds.to(text_embeds.dtype)], dim=-1)           # (B, P + 6*d)
            emb = emb + self.add_embedding(add.to(emb.dtype))                  # (B, 4*C0)
        return emb

    def encode(self, h: torch.Tensor, emb: torch.Tensor, context: torch.Tensor | None,
               context_valid: torch.Tensor | None = None) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """Down levels: h (B, C0, H, W) after conv_in -> bottleneck input and all skips (conv_in's output first)."""
        skips: tuple[torch.Tensor, ...] = (h,)
        for block in self.down_blocks:
            h, res = block(h, emb, context, context_valid)
            skips += res
        return h, skips

    def _check_context(self, context: torch.Tensor | None) -> None:
        if context is None and self.cross_attention:
            raise ValueError("this UNet has cross-attention blocks: pass encoder_hidden_states (B, L, "
                             "cross_attention_dim)")


class UNet2DConditionModel(UNetEncoder):
    """ε_θ(z_t, t, τ(y)) of Rombach et al. 2022 eq. (3) with diffusers' UNet2DConditionModel's layout and call."""

    def __init__(self, cfg: UNetConfig):
        super().__init__()
        self.cfg = cfg
        self._build_encoder(cfg)
        self.cross_attention = any(t.startswith("CrossAttn") for t in cfg.down_block_types + cfg.up_block_types) \
            or cfg.mid_block_type == "UNetMidBlock2DCrossAttn"
        rev = list(reversed(cfg.block_out_channels))
        heads, layers = cfg.block("attention_head_dim")[::-1], cfg.block("layers_per_block")[::-1]
        tlayers, ctx = cfg.block("transformer_layers_per_block")[::-1], cfg.block("cross_attention_dim")[::-1]
        time_dim = 4 * cfg.block_out_channels[0]
        self.up_blocks = nn.ModuleList()
        for i, kind in enumerate(cfg.up_block_types):
            prev, c_out, c_in = rev[max(i - 1, 0)], rev[i], rev[min(i + 1, cfg.n_blocks - 1)]
            self.up_blocks.append(UpBlock2D(
                c_in, prev, c_out, time_dim, layers[i] + 1, cfg.norm_num_groups, cfg.norm_eps, i < cfg.n_blocks - 1,
                cfg.dropout, cross_attention=kind == "CrossAttnUpBlock2D", heads=heads[i],
                transformer_layers=tlayers[i], context_dim=ctx[i], linear_projection=cfg.use_linear_projection))
        self.conv_norm_out = nn.GroupNorm(cfg.norm_num_groups, cfg.block_out_channels[0], eps=cfg.norm_eps)
        k = cfg.conv_out_kernel
        self.conv_out = nn.Conv2d(cfg.block_out_channels[0], cfg.out_channels, k, padding=(k - 1) // 2)

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor | float | int,
                encoder_hidden_states: torch.Tensor | None = None, class_labels: torch.Tensor | None = None,
                added_cond_kwargs: dict[str, Any] | None = None,
                down_block_additional_residuals: tuple[torch.Tensor, ...] | None = None,
                mid_block_additional_residual: torch.Tensor | None = None,
                encoder_attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """sample (B, C, H, W), timestep (B,) or scalar, encoder_hidden_states (B, L, D) -> ε (B, C_out, H, W).

        ``encoder_attention_mask`` (B, L): 1 for real text tokens, 0 for padding the cross-attention ignores."""
        self._check_context(encoder_hidden_states)
        valid = None if encoder_attention_mask is None else encoder_attention_mask.bool()   # (B, L)
        if self.cfg.center_input_sample:
            sample = 2 * sample - 1.0
        emb = self.embed(sample, timestep, class_labels, added_cond_kwargs)    # (B, 4*C0)
        h, skips = self.encode(self.conv_in(sample), emb, encoder_hidden_states, valid)
        if down_block_additional_residuals is not None:                        # ControlNet, Zhang et al. eq. (4)
            if len(down_block_additional_residuals) != len(skips):
                raise ValueError(f"down_block_additional_residuals has {len(down_block_additional_residuals)} "
                                 f"tensors; this UNet has {len(skips)} skip connections")
            skips = tuple(s + r for s, r in zip(skips, down_block_additional_residuals))
        if self.mid_block is not None:
            h = self.mid_block(h, emb, encoder_hidden_states, valid)           # (B, C_last, h, w)
        if mid_block_additional_residual is not None:
            h = h + mid_block_additional_residual
        for i, block in enumerate(self.up_blocks):
            n = len(block.resnets)
            res, skips = skips[-n:], skips[:-n]
            size = tuple(skips[-1].shape[-2:]) if skips else None              # next level's resolution
            h = block(h, res, emb, encoder_hidden_states, size, valid)         # (B, C, H', W')
        return self.conv_out(F.silu(self.conv_norm_out(h)))                    # (B, C_out, H, W)
