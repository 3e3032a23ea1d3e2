"""Rotary position embeddings (Su et al. 2021, RoFormer, eq. 34) and their context-extension
scalings, with the semantics of Hugging Face ``rope_parameters``:

- ``linear``: position interpolation, Chen et al. 2023 (inv_freq / factor);
- ``dynamic``: dynamic NTK-aware scaling (bloc97 2023; Peng et al. 2023 §3.3), base grown with the
  current sequence length once it exceeds ``max_seq_len``;
- ``yarn``: YaRN, Peng et al. 2023 eq. (18)-(23): NTK-by-parts ramp + attention temperature;
- ``llama3``: Meta's Llama 3.1 wavelength-banded interpolation.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from ..config import require

RopeType = Literal["none", "linear", "dynamic", "yarn", "llama3"]


@dataclass(frozen=True, kw_only=True)
class RopeConfig:
    theta: float = 10000.0
    """RoPE base (rope_theta)"""
    type: RopeType = "none"
    """scaling: none, linear (position interpolation), dynamic (NTK), yarn, llama3"""
    factor: float = 1.0
    """context extension factor (linear, dynamic, yarn, llama3)"""
    original_max_seq_len: int | None = None
    """pre-training context length (yarn, llama3); None: the model's max_seq_len"""
    low_freq_factor: float = 1.0
    """llama3: wavelengths above original_max_seq_len / low_freq_factor are fully interpolated"""
    high_freq_factor: float = 4.0
    """llama3: wavelengths below original_max_seq_len / high_freq_factor are kept"""
    beta_fast: float = 32.0
    """yarn: rotations bounding the extrapolated band (paper's beta)"""
    beta_slow: float = 1.0
    """yarn: rotations bounding the interpolated band (paper's alpha)"""
    attention_factor: float | None = None
    """yarn: cos/sin multiplier (None: 0.1 ln(factor) + 1, paper eq. 22)"""
    mscale: float | None = None
    """yarn (DeepSeek form): numerator mscale of the attention factor"""
    mscale_all_dim: float | None = None
    """yarn (DeepSeek form): denominator mscale of the attention factor"""
    truncate: bool = True
    """yarn: round the correction range to whole dimensions"""

    def __post_init__(self) -> None:
        require(self.theta > 0, "model.rope.theta", self.theta, "must be > 0")
        require(self.factor >= 1.0 or self.type == "none", "model.rope.factor", self.factor,
                "must be >= 1 when scaling is used")
        require(self.type != "llama3" or self.high_freq_factor > self.low_freq_factor,
                "model.rope.high_freq_factor", self.high_freq_factor, "must exceed low_freq_factor")


def default_inv_freq(dim: int, theta: float | torch.Tensor) -> torch.Tensor:
    """theta_i = base^(-2i/d), RoFormer eq. (15)."""
    return 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))   # (D/2,)


def yarn_inv_freq(dim: int, cfg: RopeConfig, original: int) -> tuple[torch.Tensor, float]:
    """YaRN NTK-by-parts, Peng et al. 2023 eq. (18)-(21), and attention factor eq. (22)."""
    def mscale(scale: float, m: float = 1.0) -> float:
        return 1.0 if scale <= 1 else 0.1 * m * math.log(scale) + 1.0

    factor, base = cfg.factor, cfg.theta
    if cfg.attention_factor is not None:
        attn = cfg.attention_factor
    elif cfg.mscale and cfg.mscale_all_dim:
        attn = float(mscale(factor, cfg.mscale) / mscale(factor, cfg.mscale_all_dim))
    else:
        attn = mscale(factor)

    def correction_dim(rotations: float) -> float:             # eq. (20) solved for d
        return dim * math.log(original / (rotations * 2 * math.pi)) / (2 * math.log(base))

    low, high = correction_dim(cfg.beta_fast), correction_dim(cfg.beta_slow)
    if cfg.truncate:
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, dim - 1)
    if low == high:
        high += 0.001
    ramp = ((torch.arange(dim // 2, dtype=torch.float32) - low) / (high - low)).clamp(0, 1)
    pos_freqs = base ** (torch.arange(0, dim, 2).float() / dim)
    extrapolation, interpolation = 1.0 / pos_freqs, 1.0 / (factor * pos_freqs)
    keep = 1 - ramp                                            # 1: extrapolate (high frequency)
    return interpolation * (1 - keep) + extrapolation * keep, attn


def llama3_inv_freq(dim: int, cfg: RopeConfig, original: int) -> torch.Tensor:
    """Llama 3.1 scaling: keep short wavelengths, divide long ones by factor, blend between."""
    inv_freq = default_inv_freq(dim, cfg.theta)
    low_wavelen = original / cfg.low_freq_factor
    high_wavelen = original / cfg.high_freq_factor
    wavelen = 2 * math.pi / inv_freq
    scaled = torch.where(wavelen > low_wavelen, inv_freq / cfg.factor, inv_freq)
    smooth = (original / wavelen - cfg.low_freq_factor) / (cfg.high_freq_factor - cfg.low_freq_factor)
    blended = (1 - smooth) * scaled / cfg.factor + smooth * scaled
    medium = ~(wavelen < high_wavelen) * ~(wavelen > low_wavelen)
    return torch.where(medium, blended, scaled)


def dynamic_ntk_inv_freq(dim: int, cfg: RopeConfig, max_seq_len: int, seq_len: int) -> torch.Tensor:
    """Dynamic NTK: base' = base * (s * L / L_train - (s - 1))^(d / (d - 2)) for L > L_train."""
    seq = torch.tensor(max(seq_len, max_seq_len))
    base = cfg.theta * ((cfg.factor * seq / max_seq_len) - (cfg.factor - 1)) ** (dim / (dim - 2))
    return default_inv_freq(dim, base)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """(x1, x2) -> (-x2, x1) on the two halves of the last dim (the GPT-NeoX/HF RoPE layout)."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """RoFormer eq. (34): x * cos + rotate_half(x) * sin; x (B, H, T, D), cos/sin (B, 1, T, D)."""
    return x * cos + rotate_half(x) * sin


class RotaryEmbedding(nn.Module):
    """cos/sin tables for integer positions under a ``RopeConfig`` scaling."""

    def __init__(self, head_dim: int, cfg: RopeConfig, max_seq_len: int):
        super().__init__()
        self.dim, self.cfg, self.max_seq_len = head_dim, cfg, max_seq_len
        original = cfg.original_max_seq_len or max_seq_len
        self.attention_scaling = 1.0
        if cfg.type == "yarn":
            inv_freq, self.attention_scaling = yarn_inv_freq(head_dim, cfg, original)
        elif cfg.type == "llama3":
            inv_freq = llama3_inv_freq(head_dim, cfg, original)
        else:
            inv_freq = default_inv_freq(head_dim, cfg.theta)
            if cfg.type == "linear":
                inv_freq = inv_freq / cfg.factor
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def frequencies(self, positions: torch.Tensor) -> torch.Tensor:
        """inv_freq for this call; dynamic NTK grows the base with max(position) + 1."""
        if self.cfg.type != "dynamic":
            return self.inv_freq
        seq_len = int(positions.max()) + 1
        if seq_len <= self.max_seq_len:
            return self.inv_freq
        return dynamic_ntk_inv_freq(self.dim, self.cfg, self.max_seq_len, seq_len).to(self.inv_freq.device)

    def forward(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """positions (B, T) int -> cos, sin (B, T, D) in fp32."""
        inv_freq = self.frequencies(positions)
        freqs = positions.float()[..., None] * inv_freq.float()              # (B, T, D/2)
        emb = torch.cat((freqs, freqs), dim=-1)                               # (B, T, D)
        if self.attention_scaling == 1.0:
            return emb.cos(), emb.sin()
        return emb.cos() * self.attention_scaling, emb.sin() * self.attention_scaling


def prompt_positions(valid: torch.Tensor) -> torch.Tensor:
    """Positions of left-padded prompts: 0 at each row's first real token, pads at 1 (transformers' rule:
    cumsum - 1). valid (B, T) bool -> (B, T) long."""
    return (valid.long().cumsum(-1) - 1).masked_fill(~valid, 1)                # (B, T)
