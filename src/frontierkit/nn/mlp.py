"""Transformer feed-forward blocks: GELU MLP (Hendrycks & Gimpel 2016; GPT-2; CLIP's quick_gelu,
Radford et al. 2021) and the gated GLU variants SwiGLU (LLaMA) and GEGLU (Stable Diffusion's
transformer blocks) of Shazeer 2020, "GLU Variants Improve Transformer", eqs. (5)-(6)."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def quick_gelu(x: torch.Tensor) -> torch.Tensor:
    """x * sigmoid(1.702 x): GELU's sigmoid approximation (Hendrycks & Gimpel 2016 §2); CLIP (Radford et al. 2021)."""
    return x * torch.sigmoid(1.702 * x)


class GeluMLP(nn.Module):
    """FFN(x) = W2 GELU(W1 x + b1) + b2 (Vaswani et al. 2017 eq. 2 with GELU; GPT-2 uses tanh GELU).

    ``approximate``: "none" (exact erf), "tanh" (GPT-2's gelu_new) or "sigmoid" (CLIP's quick_gelu)."""

    def __init__(self, dim: int, hidden: int, bias: bool = True, approximate: str = "tanh"):
        super().__init__()
        if approximate not in ("none", "tanh", "sigmoid"):
            raise ValueError(f"approximate={approximate!r} is invalid: choose 'none', 'tanh' or 'sigmoid'")
        self.fc = nn.Linear(dim, hidden, bias=bias)
        self.proj = nn.Linear(hidden, dim, bias=bias)
        self.approximate = approximate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc(x)                                                       # (B, T, H)
        h = quick_gelu(h) if self.approximate == "sigmoid" else F.gelu(h, approximate=self.approximate)
        return self.proj(h)                                                  # (B, T, C)


class GatedMLP(nn.Module):
    """FFN_GLU(x) = W2 (act(x W) * x V), Shazeer 2020 eqs. (5)-(6); gate and up fused in one matmul."""

    activation = staticmethod(F.silu)

    def __init__(self, dim: int, hidden: int, bias: bool = False):
        super().__init__()
        self.hidden = hidden
        self.gate_up = nn.Linear(dim, 2 * hidden, bias=bias)   # rows [gate; up]
        self.down = nn.Linear(hidden, dim, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up(x).split(self.hidden, dim=-1)              # (B, T, H) each
        return self.down(self.activation(gate) * up)                       # (B, T, C)


class SwiGLU(GatedMLP):
    """FFN_SwiGLU(x) = W2 (SiLU(x W) * x V), Shazeer 2020 eq. (6); LLaMA's MLP."""

    activation = staticmethod(F.silu)


class GEGLU(GatedMLP):
    """FFN_GEGLU(x) = W2 (GELU(x W) * x V), Shazeer 2020 eq. (5) with exact GELU; diffusers'
    FeedForward("geglu"), whose fused ``proj`` stores the halves as [up; gate] (a converter swaps them)."""

    activation = staticmethod(F.gelu)


MLP_ACTIVATIONS: tuple[str, ...] = ("gelu", "gelu_tanh", "quick_gelu", "geglu", "swiglu")


def make_mlp(activation: str, dim: int, hidden: int, bias: bool = True) -> nn.Module:
    """A feed-forward block by activation name: one of ``MLP_ACTIVATIONS``."""
    gelus = {"gelu": "none", "gelu_tanh": "tanh", "quick_gelu": "sigmoid"}
    if activation in gelus:
        return GeluMLP(dim, hidden, bias, approximate=gelus[activation])
    if activation == "geglu":
        return GEGLU(dim, hidden, bias)
    if activation == "swiglu":
        return SwiGLU(dim, hidden, bias)
    raise ValueError(f"activation={activation!r} is invalid: choose one of {', '.join(MLP_ACTIVATIONS)}")
