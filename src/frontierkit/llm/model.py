"""One config-driven decoder-only Transformer for the GPT-2 (Radford et al. 2019), LLaMA 1/2/3
(Touvron et al. 2023; Dubey et al. 2024), Mistral (Jiang et al. 2023) and Qwen2 (Yang et al. 2024)
families. What differs between them is data in ``TransformerConfig``: norm (LayerNorm/RMSNorm),
MLP (GELU/SwiGLU), positions (learned/RoPE + scaling), biases, tied embeddings, K/V heads
(MHA/GQA/MQA) and the attention window. Checkpoint key names live in ``convert.py``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal, Sequence

import torch
from torch import nn

from ..config import ConfigError, require
from ..nn import Attention, GeluMLP, KVCache, LayerCache, RopeConfig, RotaryEmbedding, SwiGLU, make_norm

Family = Literal["gpt2", "llama", "mistral", "qwen2"]


@dataclass(frozen=True, kw_only=True)
class TransformerConfig:
    family: Family = "llama"
    """checkpoint family for HF export (gpt2, llama, mistral, qwen2); the maths follows the fields below"""
    vocab_size: int = 2048
    """token vocabulary size"""
    n_layers: int = 4
    """transformer blocks"""
    n_heads: int = 4
    """query heads"""
    n_kv_heads: int | None = None
    """key/value heads: n_heads (MHA), a divisor of it (GQA) or 1 (MQA); None: n_heads"""
    d_model: int = 128
    """residual stream width"""
    head_dim: int | None = None
    """width of one head; None: d_model // n_heads"""
    d_ff: int | None = None
    """MLP hidden width; None: 4*d_model (gelu) or 8/3*d_model rounded up to 64 (swiglu)"""
    max_seq_len: int = 256
    """context length (learned positions table size; dynamic NTK's original length)"""
    norm: Literal["rmsnorm", "layernorm"] = "rmsnorm"
    """RMSNorm (LLaMA) or LayerNorm (GPT-2)"""
    norm_eps: float = 1e-5
    """epsilon inside the norm"""
    norm_bias: bool = True
    """LayerNorm only: learn a bias"""
    mlp: Literal["swiglu", "gelu"] = "swiglu"
    """feed-forward block: SwiGLU (LLaMA) or GELU MLP (GPT-2)"""
    gelu_approximate: Literal["tanh", "none"] = "tanh"
    """GELU form: tanh (GPT-2's gelu_new) or exact erf"""
    positions: Literal["rope", "learned"] = "rope"
    """rotary (LLaMA) or learned absolute (GPT-2) positions"""
    rope: RopeConfig = field(default_factory=RopeConfig)
    """RoPE base and scaling"""
    qkv_bias: bool = False
    """bias on the q/k/v projections (GPT-2, Qwen2)"""
    out_bias: bool = False
    """bias on the attention output projection (GPT-2)"""
    mlp_bias: bool = False
    """biases in the MLP (GPT-2)"""
    tie_embeddings: bool = False
    """share the token embedding with the output head"""
    sliding_window: int | None = None
    """attention window in tokens (Mistral); None: full causal attention"""
    init_std: float = 0.02
    """std of the normal weight init (residual projections scaled by 1/sqrt(2 n_layers))"""

    def __post_init__(self) -> None:
        for name in ("vocab_size", "n_layers", "n_heads", "d_model", "max_seq_len"):
            require(getattr(self, name) > 0, f"model.{name}", getattr(self, name), "must be > 0")
        kv = self.n_heads if self.n_kv_heads is None else self.n_kv_heads
        require(kv > 0 and self.n_heads % kv == 0, "model.n_kv_heads", self.n_kv_heads,
                f"must divide model.n_heads={self.n_heads} (MHA: equal, GQA: a divisor, MQA: 1)")
        require(self.head_dim is not None or self.d_model % self.n_heads == 0, "model.d_model", self.d_model,
                f"must be divisible by model.n_heads={self.n_heads} (or set model.head_dim)")
        head_dim = self.head_dim or self.d_model // self.n_heads
        require(self.positions != "rope" or head_dim % 2 == 0, "model.head_dim", head_dim, "must be even for RoPE")
        require(self.sliding_window is None or self.sliding_window > 0, "model.sliding_window",
                self.sliding_window, "must be > 0 or none")
        require(self.norm_eps > 0, "model.norm_eps", self.norm_eps, "must be > 0")
        d_ff = self.d_ff or (4 * self.d_model if self.mlp == "gelu" else 64 * math.ceil(8 * self.d_model / 3 / 64))
        object.__setattr__(self, "n_kv_heads", kv)
        object.__setattr__(self, "head_dim", head_dim)
        object.__setattr__(self, "d_ff", d_ff)


_GPT2 = dict(family="gpt2", vocab_size=50257, max_seq_len=1024, norm="layernorm", mlp="gelu",
             positions="learned", qkv_bias=True, out_bias=True, mlp_bias=True, tie_embeddings=True)
_LLAMA2 = dict(family="llama", vocab_size=32000, max_seq_len=4096, norm_eps=1e-5)
_LLAMA3 = dict(family="llama", vocab_size=128256, max_seq_len=8192, n_layers=32, n_heads=32, n_kv_heads=8,
               d_model=4096, d_ff=14336, rope=RopeConfig(theta=500000.0))
PRESETS: dict[str, dict[str, Any]] = {
    "gpt2": dict(_GPT2, n_layers=12, n_heads=12, d_model=768),
    "gpt2-medium": dict(_GPT2, n_layers=24, n_heads=16, d_model=1024),
    "gpt2-large": dict(_GPT2, n_layers=36, n_heads=20, d_model=1280),
    "llama2-7b": dict(_LLAMA2, n_layers=32, n_heads=32, d_model=4096, d_ff=11008),
    "llama2-13b": dict(_LLAMA2, n_layers=40, n_heads=40, d_model=5120, d_ff=13824),
    "llama3-8b": _LLAMA3,
    "llama3.1-8b": dict(_LLAMA3, max_seq_len=131072, rope=RopeConfig(
        theta=500000.0, type="llama3", factor=8.0, original_max_seq_len=8192)),
    "llama3.2-1b": dict(_LLAMA3, n_layers=16, d_model=2048, d_ff=8192, head_dim=64, tie_embeddings=True,
                        max_seq_len=131072, rope=RopeConfig(theta=500000.0, type="llama3", factor=32.0,
                                                            original_max_seq_len=8192)),
    "mistral-7b": dict(family="mistral", vocab_size=32000, max_seq_len=32768, n_layers=32, n_heads=32,
                       n_kv_heads=8, d_model=4096, d_ff=14336, sliding_window=4096),
    "qwen2-0.5b": dict(family="qwen2", vocab_size=151936, max_seq_len=32768, n_layers=24, n_heads=14,
                       n_kv_heads=2, d_model=896, d_ff=4864, norm_eps=1e-6, qkv_bias=True,
                       tie_embeddings=True, rope=RopeConfig(theta=1000000.0)),
    "qwen2-7b": dict(family="qwen2", vocab_size=152064, max_seq_len=32768, n_layers=28, n_heads=28,
                     n_kv_heads=4, d_model=3584, d_ff=18944, norm_eps=1e-6, qkv_bias=True,
                     rope=RopeConfig(theta=1000000.0)),
    "tiny-gpt2": dict(_GPT2, vocab_size=256, max_seq_len=128, n_layers=2, n_heads=4, d_model=64),
    "tiny-llama": dict(family="llama", vocab_size=256, max_seq_len=128, n_layers=2, n_heads=4, n_kv_heads=2,
                       d_model=64, d_ff=128),
    "tiny-mistral": dict(family="mistral", vocab_size=256, max_seq_len=128, n_layers=2, n_heads=4,
                         n_kv_heads=2, d_model=64, d_ff=128, sliding_window=16),
    "tiny-qwen2": dict(family="qwen2", vocab_size=256, max_seq_len=128, n_layers=2, n_heads=4, n_kv_heads=2,
                       d_model=64, d_ff=128, qkv_bias=True, norm_eps=1e-6),
}


def config_from_name(name: str, **overrides: Any) -> TransformerConfig:
    """A named preset's sizes (no weights), with field overrides."""
    if name not in PRESETS:
        raise ConfigError(f"model preset {name!r} is unknown; choose one of: {', '.join(PRESETS)}")
    return TransformerConfig(**{**PRESETS[name], **overrides})


def _tracing() -> bool:
    """True under torch.export / torch.compile / jit tracing (ONNX export): skip data-dependent checks."""
    return torch.compiler.is_compiling() or torch.jit.is_tracing()


class Block(nn.Module):
    """Pre-norm residual block: x + Attn(Norm(x)), then x + MLP(Norm(x)) (GPT-2 §2.3, LLaMA §2.2)."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.attn_norm = make_norm(cfg.norm, cfg.d_model, cfg.norm_eps, cfg.norm_bias)
        self.attn = Attention(cfg.d_model, cfg.n_heads, cfg.n_kv_heads, cfg.head_dim, qkv_bias=cfg.qkv_bias,
                              out_bias=cfg.out_bias, window=cfg.sliding_window)
        self.mlp_norm = make_norm(cfg.norm, cfg.d_model, cfg.norm_eps, cfg.norm_bias)
        if cfg.mlp == "swiglu":
            self.mlp: nn.Module = SwiGLU(cfg.d_model, cfg.d_ff, bias=cfg.mlp_bias)
        else:
            self.mlp = GeluMLP(cfg.d_model, cfg.d_ff, bias=cfg.mlp_bias, approximate=cfg.gelu_approximate)

    def forward(self, x: torch.Tensor, cos: torch.Tensor | None, sin: torch.Tensor | None,
                cache: LayerCache | None, valid: torch.Tensor | None) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x), cos, sin, cache, valid)           # (B, T, C)
        return x + self.mlp(self.mlp_norm(x))                                  # (B, T, C)


class Transformer(nn.Module):
    """Token ids (B, T) -> next-token logits (B, T, V)."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.pos_emb = nn.Embedding(cfg.max_seq_len, cfg.d_model) if cfg.positions == "learned" else None
        self.rope = (RotaryEmbedding(cfg.head_dim, cfg.rope, cfg.max_seq_len)
                     if cfg.positions == "rope" else None)
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm = make_norm(cfg.norm, cfg.d_model, cfg.norm_eps, cfg.norm_bias)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.tok_emb.weight
        self.apply(self._init_weights)

    @classmethod
    def from_name(cls, name: str, **overrides: Any) -> "Transformer":
        """Randomly initialised model of a named preset (``gpt2``, ``llama3-8b``, ``tiny-llama``...)."""
        return cls(config_from_name(name, **overrides))

    def _init_weights(self, module: nn.Module) -> None:
        """N(0, 0.02) weights, zero biases; residual outputs scaled by 1/sqrt(2L) (GPT-2 §2.3)."""
        std = self.cfg.init_std
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, 0.0, std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, 0.0, std)
        elif isinstance(module, Block):
            out_std = std / math.sqrt(2 * self.cfg.n_layers)
            nn.init.normal_(module.attn.out.weight, 0.0, out_std)
            down = module.mlp.down if isinstance(module.mlp, SwiGLU) else module.mlp.proj
            nn.init.normal_(down.weight, 0.0, out_std)

    def new_cache(self, batch: int, max_len: int, dtype: torch.dtype | None = None) -> list[KVCache]:
        """Pre-allocated per-layer KV caches (each layer's n_kv_heads heads: head pruning may leave layers
        with fewer; window slots if sliding)."""
        cfg, p = self.cfg, self.tok_emb.weight
        return [KVCache(batch, layer.attn.n_kv_heads, cfg.head_dim, max_len, cfg.sliding_window,
                        dtype=dtype or p.dtype, device=p.device) for layer in self.layers]

    def forward(self, idx: torch.Tensor | None, positions: torch.Tensor | None = None,
                valid: torch.Tensor | None = None, cache: Sequence[LayerCache] | None = None,
                inputs_embeds: torch.Tensor | None = None) -> torch.Tensor:
        """idx (B, T), or ``inputs_embeds`` (B, T, C) instead (LLaVA's spliced image tokens); positions
        (B, T) (default: after the cache, which needs a ``length``); valid (B, T) False on padding;
        ``cache``: one ``LayerCache`` per layer (``new_cache``'s contiguous ones, or a paged cache)."""
        x = self.tok_emb(idx) if inputs_embeds is None else inputs_embeds      # (B, T, C)
        b, t = x.shape[:2]
        if positions is None:
            start = cache[0].length if cache else 0
            positions = torch.arange(start, start + t, device=x.device).expand(b, t)     # (B, T)
        cos = sin = None
        if self.pos_emb is not None:
            if not _tracing() and int(positions.max()) >= self.cfg.max_seq_len:
                raise ValueError(f"position {int(positions.max())} exceeds model.max_seq_len="
                                 f"{self.cfg.max_seq_len} of the learned position table")
            x = x + self.pos_emb(positions)                                    # (B, T, C)
        if self.rope is not None:
            cos, sin = self.rope(positions)                                    # (B, T, D) each
            cos, sin = cos.to(x.dtype)[:, None], sin.to(x.dtype)[:, None]      # (B, 1, T, D)
        for i, layer in enumerate(self.layers):
            x = layer(x, cos, sin, cache[i] if cache else None, valid)
        return self.lm_head(self.norm(x))                                      # (B, T, V)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())
