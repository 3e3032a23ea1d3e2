"""Shared neural-network primitives: norms, RoPE (+ scaling), attention (MHA/GQA/MQA, sliding
window, KV cache), MLPs (GELU, SwiGLU)."""
from .attention import Attention, KVCache, cached_attention, sdpa, self_attention, sliding_window_attention
from .mlp import GeluMLP, SwiGLU
from .norms import LayerNorm, RMSNorm, make_norm
from .rope import RopeConfig, RotaryEmbedding, apply_rope, rotate_half

__all__ = ["Attention", "KVCache", "cached_attention", "sdpa", "self_attention", "sliding_window_attention",
           "GeluMLP", "SwiGLU", "LayerNorm", "RMSNorm", "make_norm", "RopeConfig", "RotaryEmbedding",
           "apply_rope", "rotate_half"]
