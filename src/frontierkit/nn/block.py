"""The pre-norm encoder block shared by the ViT (Dosovitskiy et al. 2021, eqs. 2-3), CLIP's text and
vision towers (Radford et al. 2021) and a diffusion UNet's transformer blocks (Rombach et al. 2022 §3.3;
diffusers' BasicTransformerBlock), which add a cross-attention sub-block over the conditioning.
"""
from __future__ import annotations

import torch
from torch import nn

from .attention import EncoderAttention
from .mlp import make_mlp
from .norms import LayerNorm


class EncoderBlock(nn.Module):
    """x += Attn(LN(x)); x += CrossAttn(LN(x), context) if ``context_dim``; x += MLP(LN(x)).

    ``activation``: "gelu" (ViT), "quick_gelu" (OpenAI CLIP), "gelu_tanh", "geglu" (diffusers) or "swiglu";
    ``mlp_hidden`` defaults to 4 * dim; ``causal`` masks the future in self-attention (CLIP's text tower);
    ``qkv_bias=False`` with ``head_dim`` set gives diffusers' attention layout."""

    def __init__(self, dim: int, n_heads: int, *, mlp_hidden: int | None = None, activation: str = "gelu",
                 context_dim: int | None = None, causal: bool = False, eps: float = 1e-5,
                 head_dim: int | None = None, qkv_bias: bool = True):
        super().__init__()
        self.causal = causal
        self.attn_norm = LayerNorm(dim, eps)
        self.attn = EncoderAttention(dim, n_heads, head_dim=head_dim, qkv_bias=qkv_bias)
        self.cross_norm = LayerNorm(dim, eps) if context_dim else None
        self.cross_attn = (EncoderAttention(dim, n_heads, head_dim=head_dim, context_dim=context_dim,
                                            qkv_bias=qkv_bias) if context_dim else None)
        self.mlp_norm = LayerNorm(dim, eps)
        self.mlp = make_mlp(activation, dim, mlp_hidden or 4 * dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None, key_valid: torch.Tensor | None = None,
                context_valid: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, T, dim); key_valid (B, T) bool; context (B, S, context_dim), context_valid (B, S) bool."""
        if (context is None) != (self.cross_attn is None):
            raise ValueError("pass context= exactly when the block was built with context_dim (context_dim "
                             f"given: {self.cross_attn is not None}, context given: {context is not None})")
        x = x + self.attn(self.attn_norm(x), key_valid=key_valid, causal=self.causal)      # (B, T, dim)
        if self.cross_attn is not None:
            x = x + self.cross_attn(self.cross_norm(x), context, context_valid)             # (B, T, dim)
        return x + self.mlp(self.mlp_norm(x))                                              # (B, T, dim)
