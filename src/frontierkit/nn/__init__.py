"""Shared neural-network primitives: norms, RoPE (+ scaling), attention (MHA/GQA/MQA, sliding
window, KV cache; bidirectional, padded and cross-attention for encoders), MLPs (GELU, quick_gelu,
SwiGLU, GEGLU) and the pre-norm encoder block (ViT, CLIP, diffusion UNet transformer blocks)."""
from .attention import (Attention, EncoderAttention, KVCache, LayerCache, attention, cached_attention, sdpa,
                        self_attention, sliding_window_attention)
from .block import EncoderBlock
from .mlp import GEGLU, MLP_ACTIVATIONS, GatedMLP, GeluMLP, SwiGLU, make_mlp, quick_gelu
from .norms import LayerNorm, RMSNorm, make_norm
from .rope import RopeConfig, RotaryEmbedding, apply_rope, prompt_positions, rotate_half

__all__ = ["Attention", "EncoderAttention", "KVCache", "LayerCache", "attention", "cached_attention", "sdpa",
           "self_attention", "sliding_window_attention", "EncoderBlock", "GEGLU", "MLP_ACTIVATIONS", "GatedMLP",
           "GeluMLP", "SwiGLU", "make_mlp", "quick_gelu", "LayerNorm", "RMSNorm", "make_norm", "RopeConfig",
           "RotaryEmbedding", "apply_rope", "prompt_positions", "rotate_half"]
