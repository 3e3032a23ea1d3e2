"""Causal self-attention (Vaswani et al. 2017, eq. 1) with multi-query (Shazeer 2019) and
grouped-query attention (Ainslie et al. 2023, GQA) by ``n_kv_heads``; sliding-window attention
(Child et al. 2019; Beltagy et al. 2020; Mistral, Jiang et al. 2023) computed blockwise in
O(n·w); and a pre-allocated KV cache that stores only the ``n_kv_heads`` key/value heads (a
rolling buffer of ``window`` slots for sliding-window layers, Mistral §2). For encoders and
conditioning (ViT, CLIP towers, a diffusion UNet's transformer blocks): bidirectional attention with a
key padding mask, and cross-attention to an external context (``EncoderAttention``).

Window semantics follow Mistral/HF: query i sees keys j with 0 <= i - j < window.
All kernels go through ``torch.nn.functional.scaled_dot_product_attention``.
"""
from __future__ import annotations

from typing import Protocol

import torch
from torch import nn
from torch.nn import functional as F

from .rope import apply_rope


def sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None,
         causal: bool = False) -> torch.Tensor:
    """softmax(q k^T / sqrt(d) + mask) v, Vaswani et al. eq. (1); GQA heads broadcast, never copied."""
    gqa = bool(q.shape[-3] != k.shape[-3])                                     # a constant when traced
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal, enable_gqa=gqa)


def padded_causal_mask(t: int, key_valid: torch.Tensor, offset: int = 0) -> torch.Tensor:
    """(B, 1, t, s) bool: causal (query i at offset+i sees keys <= offset+i) and key not padding.

    The diagonal stays open so a padding query never has an empty row (softmax would give NaN)."""
    s = key_valid.shape[-1]
    qpos = torch.arange(t, device=key_valid.device)[:, None] + offset          # (t, 1)
    kpos = torch.arange(s, device=key_valid.device)[None, :]                   # (1, s)
    causal = kpos <= qpos                                                      # (t, s)
    return (causal & key_valid[:, None, None, :]) | (kpos == qpos)             # (B, 1, t, s)


def sliding_window_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, window: int,
                             block: int | None = None, key_valid: torch.Tensor | None = None) -> torch.Tensor:
    """Blockwise causal sliding-window attention in O(n·(block + window)) time and memory.

    Queries are cut into blocks of ``block`` rows; block b attends only to the ``block + window - 1``
    keys ending at its last row, gathered with ``unfold`` (a view) from K/V padded on the left.
    q (B, H, n, D), k/v (B, Hkv, n, D), key_valid (B, n) bool or None -> (B, H, n, D)."""
    bsz, _, n, _ = q.shape
    blk = block or max(16, min(window // 4, 64))
    nb = -(-n // blk)
    span = blk + window - 1                                                    # keys per block
    right = nb * blk - n
    qb = F.pad(q, (0, 0, 0, right)).unflatten(2, (nb, blk)).transpose(1, 2)    # (B, nb, H, blk, D)
    kb = _blocks(k, window - 1, right, span, blk)                              # (B, nb, Hkv, span, D)
    vb = _blocks(v, window - 1, right, span, blk)                              # (B, nb, Hkv, span, D)
    valid = torch.ones(bsz, n, dtype=torch.bool, device=q.device) if key_valid is None else key_valid
    valid = F.pad(valid, (window - 1, right), value=False)                     # (B, window-1+nb*blk)
    ok = valid.unfold(1, span, blk)                                            # (B, nb, span)
    a = torch.arange(blk, device=q.device)[:, None]                            # query row in block
    c = torch.arange(span, device=q.device)[None, :]                           # key column in span
    in_window = (c >= a) & (c <= a + window - 1)                               # (blk, span)
    diag = c == a + window - 1                                                 # key == query
    mask = in_window & (ok[:, :, None, :] | diag)                              # (B, nb, blk, span)
    flat = lambda x: x.reshape(-1, *x.shape[2:])                               # noqa: E731  (B*nb, ...)
    y = sdpa(flat(qb), flat(kb), flat(vb), flat(mask).unsqueeze(1))            # (B*nb, H, blk, D)
    return y.unflatten(0, (bsz, nb)).transpose(1, 2).flatten(2, 3)[:, :, :n]   # (B, H, n, D)


def _blocks(x: torch.Tensor, left: int, right: int, span: int, step: int) -> torch.Tensor:
    """(B, H, n, D) -> overlapping key blocks (B, nb, H, span, D) of the left/right padded sequence
    (a strided view: block b starts ``step`` rows after block b-1; rows stay contiguous)."""
    x = F.pad(x, (0, 0, left, right))                                          # (B, H, L, D)
    b, h, length, d = x.shape
    nb = (length - span) // step + 1
    return x.as_strided((b, nb, h, span, d), (h * length * d, step * d, length * d, d, 1))


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_valid: torch.Tensor | None = None,
              causal: bool = False) -> torch.Tensor:
    """softmax(q k^T / sqrt(d) + mask) v, Vaswani et al. eq. (1), masking padded keys and (if causal) the future.

    q (B, H, T, D), k/v (B, Hkv, S, D), key_valid (B, S) bool (True: a real key) or None -> (B, H, T, D).
    Padded keys get exactly zero weight; without ``causal`` each query needs one real key (else NaN, as
    in torch.nn.MultiheadAttention). ``causal`` needs T == S; a padding query then still sees itself."""
    if key_valid is None or bool(key_valid.all()):
        return sdpa(q, k, v, causal=causal)
    if causal:
        return sdpa(q, k, v, padded_causal_mask(q.shape[2], key_valid))        # (B, 1, T, S) mask
    return sdpa(q, k, v, key_valid[:, None, None, :])                          # (B, 1, 1, S) mask


def self_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, window: int | None = None,
                   key_valid: torch.Tensor | None = None) -> torch.Tensor:
    """Causal attention of a whole sequence to itself (training and prefill)."""
    if window is not None and q.shape[2] > window:
        return sliding_window_attention(q, k, v, window, key_valid=key_valid)
    return attention(q, k, v, key_valid, causal=True)


class LayerCache(Protocol):
    """What ``Attention`` needs from one layer's cache: store the new keys/values and attend to all of them.

    ``KVCache`` (contiguous) implements it; so can a paged cache (Kwon et al. 2023, PagedAttention: keys
    in fixed-size blocks found through a per-sequence block table), which plugs in without the model
    knowing its layout. q (B, H, t, D), k/v (B, Hkv, t, D), valid (B, t) or None -> (B, H, t, D)."""

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, valid: torch.Tensor | None,
               window: int | None) -> torch.Tensor: ...


class KVCache:
    """Pre-allocated keys/values of one layer: (B, Hkv, S, D) with S = max_len, or S = window as a
    rolling buffer (slot = position mod window). ``valid`` marks real (non-padding) tokens."""

    def __init__(self, batch: int, n_kv_heads: int, head_dim: int, max_len: int, window: int | None = None,
                 dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu"):
        self.rolling = window is not None and window < max_len
        size = window if self.rolling else max_len
        self.k = torch.zeros(batch, n_kv_heads, size, head_dim, dtype=dtype, device=device)
        self.v = torch.zeros_like(self.k)
        self.valid = torch.zeros(batch, size, dtype=torch.bool, device=device)
        self.size, self.max_len, self.length = size, max_len, 0
        self.has_padding = False

    @property
    def nbytes(self) -> int:
        return self.k.numel() * self.k.element_size() + self.v.numel() * self.v.element_size()

    def store(self, k: torch.Tensor, v: torch.Tensor, valid: torch.Tensor | None) -> None:
        """Write t new positions (B, Hkv, t, D) at ``length`` (the last ``size`` of them if rolling);
        ``valid`` (B, t) marks real tokens, None: all real."""
        t = k.shape[2]
        if self.length + t > self.max_len:
            raise ValueError(f"KV cache holds {self.max_len} positions; cannot add {t} to {self.length}")
        self.has_padding |= valid is not None and not bool(valid.all())
        keep = min(t, self.size)
        start = self.length + t - keep
        first = start % self.size if self.rolling else start
        if first + keep <= self.size:                     # one contiguous run of slots: plain copy
            slots: slice | torch.Tensor = slice(first, first + keep)
        else:                                             # a rolling prefill that wraps around
            slots = torch.arange(start, start + keep, device=k.device) % self.size
        self.k[:, :, slots] = k[:, :, t - keep:]
        self.v[:, :, slots] = v[:, :, t - keep:]
        self.valid[:, slots] = True if valid is None else valid[:, t - keep:]
        self.length += t

    def filled(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Keys, values and validity of every stored position (rolling: slot order)."""
        n = min(self.length, self.size)
        return self.k[:, :, :n], self.v[:, :, :n], self.valid[:, :n]

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, valid: torch.Tensor | None,
               window: int | None) -> torch.Tensor:
        """``LayerCache``: store k/v and attend to the whole cache (see ``cached_attention``)."""
        return cached_attention(q, k, v, valid, self, window)


def cached_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, valid: torch.Tensor | None,
                     cache: KVCache, window: int | None) -> torch.Tensor:
    """Attention of t new tokens against the cache; an empty cache is a prefill. valid (B, t) or None."""
    t = q.shape[2]
    if cache.length == 0:
        cache.store(k, v, valid)
        return self_attention(q, k, v, window, valid)
    if cache.rolling and t != 1:
        raise ValueError("a rolling (sliding-window) KV cache takes one token per step after the prompt")
    offset = cache.length
    cache.store(k, v, valid)
    k_all, v_all, kv_valid = cache.filled()                                    # (B, Hkv, S, D)
    if cache.rolling:                       # every stored slot is inside the window of the new token
        mask = kv_valid[:, None, None, :] if cache.has_padding else None
        return sdpa(q, k_all, v_all, mask)
    if t == 1 and not cache.has_padding and window is None:
        return sdpa(q, k_all, v_all)
    mask = padded_causal_mask(t, kv_valid, offset)                             # (B, 1, t, S)
    if window is not None:
        kpos = torch.arange(k_all.shape[2], device=q.device)
        qpos = torch.arange(t, device=q.device)[:, None] + offset
        mask = mask & (qpos - kpos < window)
    return sdpa(q, k_all, v_all, mask)


class Attention(nn.Module):
    """Multi-head attention with ``n_kv_heads`` K/V heads (MHA: = n_heads, GQA: divides it, MQA: 1).

    One fused projection produces [q; k; v]; RoPE (if given cos/sin) rotates q and k."""

    def __init__(self, dim: int, n_heads: int, n_kv_heads: int, head_dim: int, *, qkv_bias: bool = False,
                 out_bias: bool = False, window: int | None = None):
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim, self.window = n_heads, n_kv_heads, head_dim, window
        self.qkv = nn.Linear(dim, (n_heads + 2 * n_kv_heads) * head_dim, bias=qkv_bias)
        self.out = nn.Linear(n_heads * head_dim, dim, bias=out_bias)

    def forward(self, x: torch.Tensor, cos: torch.Tensor | None = None, sin: torch.Tensor | None = None,
                cache: LayerCache | None = None, valid: torch.Tensor | None = None) -> torch.Tensor:
        b, t, _ = x.shape
        h, hk, d = self.n_heads, self.n_kv_heads, self.head_dim
        q, k, v = self.qkv(x).split([h * d, hk * d, hk * d], dim=-1)
        q = q.view(b, t, h, d).transpose(1, 2)                                 # (B, H, T, D)
        k = k.view(b, t, hk, d).transpose(1, 2)                                # (B, Hkv, T, D)
        v = v.view(b, t, hk, d).transpose(1, 2)                                # (B, Hkv, T, D)
        if cos is not None:
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if cache is not None:
            y = cache.attend(q, k, v, valid, self.window)
        else:
            y = self_attention(q, k, v, self.window, valid)
        return self.out(y.transpose(1, 2).reshape(b, t, h * d))              # (B, T, C)


class EncoderAttention(nn.Module):
    """Multi-head attention with separate, biased q/k/v/out projections (Vaswani et al. 2017 §3.2.2), as
    CLIP, ViT and diffusers lay it out: self-attention over x, or cross-attention from x (B, T, dim) to a
    ``context`` (B, S, context_dim) with its own key/value input width (Rombach et al. 2022 §3.3).

    Bidirectional unless ``causal``; no RoPE, GQA or KV cache (those live in ``Attention``, the decoder's)."""

    def __init__(self, dim: int, n_heads: int, *, head_dim: int | None = None, context_dim: int | None = None,
                 qkv_bias: bool = True, out_bias: bool = True):
        super().__init__()
        if head_dim is None and dim % n_heads:
            raise ValueError(f"dim={dim} is not divisible by n_heads={n_heads}: change one or pass head_dim")
        self.n_heads, self.head_dim = n_heads, head_dim or dim // n_heads
        inner, kv_dim = n_heads * self.head_dim, context_dim or dim
        self.q_proj = nn.Linear(dim, inner, bias=qkv_bias)
        self.k_proj = nn.Linear(kv_dim, inner, bias=qkv_bias)
        self.v_proj = nn.Linear(kv_dim, inner, bias=qkv_bias)
        self.out_proj = nn.Linear(inner, dim, bias=out_bias)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None, key_valid: torch.Tensor | None = None,
                causal: bool = False) -> torch.Tensor:
        """x (B, T, dim); context (B, S, context_dim) or None (self-attention: S = T); key_valid (B, S) bool."""
        kv = x if context is None else context                                 # (B, S, kv_dim)
        q = self._split_heads(self.q_proj(x))                                  # (B, H, T, hd)
        k = self._split_heads(self.k_proj(kv))                                 # (B, H, S, hd)
        v = self._split_heads(self.v_proj(kv))                                 # (B, H, S, hd)
        y = attention(q, k, v, key_valid, causal)                              # (B, H, T, hd)
        return self.out_proj(y.transpose(1, 2).flatten(2))                     # (B, T, dim)

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.unflatten(-1, (self.n_heads, self.head_dim)).transpose(1, 2)  # (B, L, H*hd) -> (B, H, L, hd)
