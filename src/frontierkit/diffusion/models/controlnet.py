"""ControlNet (Zhang, Rao & Agrawala 2023, "Adding Conditional Control to Text-to-Image Diffusion Models"): a
trainable copy of the UNet's encoder and bottleneck that also sees a control image (through a tiny conv
encoder), connected back to the frozen UNet by zero-initialised 1x1 convolutions (§3.1, eq. 2), so a fresh
ControlNet leaves the UNet unchanged. Guess mode scales the residuals by 10^(-1 ... 0) from shallow to deep.
diffusers' ControlNetModel layout and call.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from .configs import ControlNetConfig
from .unet_2d_condition import UNet2DConditionModel, UNetEncoder


def zero_module(m: nn.Module) -> nn.Module:
    """A layer with all parameters zero: the "zero convolution" of Zhang et al. 2023 §3.1."""
    for p in m.parameters():
        nn.init.zeros_(p)
    return m


class ControlNetConditioningEmbedding(nn.Module):
    """The tiny encoder E(c_i) of the control image to the UNet's first feature map (Zhang et al. §3.2): conv, then
    (conv, stride-2 conv) pairs with SiLU, then a zero conv."""

    def __init__(self, out_channels: int, conditioning_channels: int, block_out_channels: tuple[int, ...]):
        super().__init__()
        self.conv_in = nn.Conv2d(conditioning_channels, block_out_channels[0], 3, padding=1)
        self.blocks = nn.ModuleList()
        for c_in, c_out in zip(block_out_channels[:-1], block_out_channels[1:]):
            self.blocks.append(nn.Conv2d(c_in, c_in, 3, padding=1))
            self.blocks.append(nn.Conv2d(c_in, c_out, 3, padding=1, stride=2))
        self.conv_out = zero_module(nn.Conv2d(block_out_channels[-1], out_channels, 3, padding=1))

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        """c (B, C_c, H, W) -> (B, C0, H / 2^(n-1), W / 2^(n-1))."""
        h = F.silu(self.conv_in(c))
        for conv in self.blocks:
            h = F.silu(conv(h))
        return self.conv_out(h)


class ControlNetModel(UNetEncoder):
    """y_c = F(x + Z(c); Θ_c) read out through zero convs Z (Zhang et al. 2023 eq. 2) at every skip and the
    mid block."""

    def __init__(self, cfg: ControlNetConfig):
        super().__init__()
        self.cfg = cfg
        self._build_encoder(cfg)
        self.cross_attention = "CrossAttnDownBlock2D" in cfg.down_block_types \
            or cfg.mid_block_type == "UNetMidBlock2DCrossAttn"
        c0 = cfg.block_out_channels[0]
        self.controlnet_cond_embedding = ControlNetConditioningEmbedding(
            c0, cfg.conditioning_channels, cfg.conditioning_embedding_out_channels)
        zero_conv = lambda c: zero_module(nn.Conv2d(c, c, 1))                  # noqa: E731
        blocks = [zero_conv(c0)]
        for i, (c, n) in enumerate(zip(cfg.block_out_channels, cfg.block("layers_per_block"))):
            blocks += [zero_conv(c) for _ in range(n + (i < cfg.n_blocks - 1))]
        self.controlnet_down_blocks = nn.ModuleList(blocks)
        self.controlnet_mid_block = zero_conv(cfg.block_out_channels[-1])

    @classmethod
    def from_unet(cls, unet: UNet2DConditionModel,
                  conditioning_embedding_out_channels: tuple[int, ...] = (16, 32, 96, 256),
                  conditioning_channels: int = 3, load_weights_from_unet: bool = True) -> "ControlNetModel":
        """A ControlNet whose encoder starts as a copy of ``unet``'s (Zhang et al. §3.2), zero convs at zero."""
        fields = {k: v for k, v in unet.cfg.to_dict().items() if k in ControlNetConfig.__dataclass_fields__}
        cfg = ControlNetConfig.from_dict({**fields, "conditioning_channels": conditioning_channels,
                                          "conditioning_embedding_out_channels": conditioning_embedding_out_channels})
        net = cls(cfg)
        if load_weights_from_unet:
            own = net.state_dict()
            shared = {k: v for k, v in unet.state_dict().items() if k in own and not k.startswith("controlnet_")}
            net.load_state_dict(shared, strict=False)
        return net

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor | float | int,
                encoder_hidden_states: torch.Tensor | None, controlnet_cond: torch.Tensor,
                conditioning_scale: float = 1.0, guess_mode: bool = False, class_labels: torch.Tensor | None = None,
                added_cond_kwargs: dict[str, Any] | None = None) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
        """sample (B, C, H, W), controlnet_cond (B, C_c, H * 2^(n-1), ...) -> (down residuals, mid residual)."""
        self._check_context(encoder_hidden_states)
        if self.cfg.controlnet_conditioning_channel_order == "bgr":
            controlnet_cond = torch.flip(controlnet_cond, dims=[1])
        emb = self.embed(sample, timestep, class_labels, added_cond_kwargs)    # (B, 4*C0)
        h = self.conv_in(sample) + self.controlnet_cond_embedding(controlnet_cond)    # (B, C0, H, W)
        h, skips = self.encode(h, emb, encoder_hidden_states)
        if self.mid_block is not None:
            h = self.mid_block(h, emb, encoder_hidden_states)                  # (B, C_last, h, w)
        down = [z(s) for z, s in zip(self.controlnet_down_blocks, skips)]      # zero convs, eq. (2)
        mid = self.controlnet_mid_block(h)
        if guess_mode and not self.cfg.global_pool_conditions:
            scales = torch.logspace(-1, 0, len(down) + 1, device=sample.device) * conditioning_scale
            down, mid = [d * s for d, s in zip(down, scales)], mid * scales[-1]
        else:
            down, mid = [d * conditioning_scale for d in down], mid * conditioning_scale
        if self.cfg.global_pool_conditions:
            down, mid = [d.mean(dim=(2, 3), keepdim=True) for d in down], mid.mean(dim=(2, 3), keepdim=True)
        return tuple(down), mid
