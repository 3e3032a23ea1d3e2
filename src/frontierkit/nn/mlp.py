"""Transformer feed-forward blocks: GELU MLP (Hendrycks & Gimpel 2016; GPT-2) and SwiGLU
(Shazeer 2020, "GLU Variants Improve Transformer", eq. 6; LLaMA)."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class GeluMLP(nn.Module):
    """FFN(x) = W2 GELU(W1 x + b1) + b2 (Vaswani et al. 2017 eq. 2 with GELU; GPT-2 uses tanh GELU)."""

    def __init__(self, dim: int, hidden: int, bias: bool = True, approximate: str = "tanh"):
        super().__init__()
        self.fc = nn.Linear(dim, hidden, bias=bias)
        self.proj = nn.Linear(hidden, dim, bias=bias)
        self.approximate = approximate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(F.gelu(self.fc(x), approximate=self.approximate))   # (B, T, C)


class SwiGLU(nn.Module):
    """FFN_SwiGLU(x) = W2 (SiLU(x W) * x V), Shazeer 2020 eq. (6); gate and up fused in one matmul."""

    def __init__(self, dim: int, hidden: int, bias: bool = False):
        super().__init__()
        self.hidden = hidden
        self.gate_up = nn.Linear(dim, 2 * hidden, bias=bias)   # rows [gate; up]
        self.down = nn.Linear(hidden, dim, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up(x).split(self.hidden, dim=-1)              # (B, T, H) each
        return self.down(F.silu(gate) * up)                                # (B, T, C)
