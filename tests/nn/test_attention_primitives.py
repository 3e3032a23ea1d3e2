"""nn primitives: blockwise sliding window == dense masked attention (oracle: SDPA with a full
(n, n) window mask, tol 1e-5, forward and backward); KV-cache bytes ratio; RoPE and RMSNorm against
transformers' own functions."""
from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from frontierkit.nn import KVCache, RMSNorm, RopeConfig, RotaryEmbedding, sliding_window_attention


def dense_window_reference(q, k, v, window, key_valid=None):
    n = q.shape[2]
    i = torch.arange(n)[:, None]
    j = torch.arange(n)[None, :]
    mask = (j <= i) & (i - j < window)                                         # (n, n)
    if key_valid is not None:
        mask = (mask & key_valid[:, None, None, :]) | (i == j)
    rep = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


@pytest.mark.parametrize("n, window, block, heads, kv", [
    (37, 8, None, 4, 4), (64, 16, 4, 4, 2), (50, 7, 16, 6, 1), (9, 32, None, 2, 2), (130, 33, 32, 4, 2)])
def test_sliding_window_matches_dense_mask(n, window, block, heads, kv):
    """Oracle: dense SDPA with the (n, n) window mask; tol 1e-5 on outputs and on q/k/v gradients."""
    g = torch.Generator().manual_seed(n)
    q = torch.randn(2, heads, n, 16, generator=g, requires_grad=True)
    k = torch.randn(2, kv, n, 16, generator=g, requires_grad=True)
    v = torch.randn(2, kv, n, 16, generator=g, requires_grad=True)
    ours = sliding_window_attention(q, k, v, window, block)
    ref = dense_window_reference(q, k, v, window)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)
    go = torch.randn_like(ours)
    g1 = torch.autograd.grad(ours, (q, k, v), go)
    g2 = torch.autograd.grad(ref, (q, k, v), go)
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_sliding_window_with_left_padding_matches_dense_mask():
    """Oracle: dense masked SDPA; padded keys masked, tol 1e-5 on the real (non-padding) queries."""
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 2, 40, 8, generator=g) for _ in range(3))
    valid = torch.ones(2, 40, dtype=torch.bool)
    valid[0, :13] = False
    ours = sliding_window_attention(q, k, v, 10, 8, key_valid=valid)
    ref = dense_window_reference(q, k, v, 10, valid)
    torch.testing.assert_close(ours[:, :, 13:], ref[:, :, 13:], atol=1e-5, rtol=0)


@pytest.mark.parametrize("kv", [8, 2, 1])
def test_kv_cache_bytes_ratio_is_exactly_n_kv_over_n_heads(kv):
    """Invariant: the cache stores n_kv heads only, so bytes(GQA)/bytes(MHA) == n_kv/n_heads exactly."""
    mha = KVCache(2, 8, 16, 100)
    gqa = KVCache(2, kv, 16, 100)
    assert gqa.nbytes * 8 == mha.nbytes * kv


def test_rolling_cache_holds_window_slots_only():
    """Invariant: a sliding-window cache allocates window positions, not max_len."""
    assert KVCache(1, 2, 8, 4096, window=256).k.shape[2] == 256
    assert KVCache(1, 2, 8, 100, window=256).k.shape[2] == 100


@pytest.mark.parametrize("kind, extra", [
    ("default", {}), ("linear", dict(factor=4.0)), ("dynamic", dict(factor=4.0)),
    ("yarn", dict(factor=8.0, original_max_position_embeddings=32, beta_fast=16.0, beta_slow=2.0)),
    ("yarn", dict(factor=8.0, original_max_position_embeddings=32, mscale=0.707, mscale_all_dim=1.0)),
    ("llama3", dict(factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0, original_max_position_embeddings=32))])
def test_rope_cos_sin_match_transformers(kind, extra):
    """Oracle: transformers LlamaRotaryEmbedding cos/sin at positions beyond max_position_embeddings, tol 1e-6."""
    tf = pytest.importorskip("transformers")
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding
    from frontierkit.llm.convert import read_rope

    params = {"rope_type": kind, "rope_theta": 10000.0, **extra}
    cfg = tf.LlamaConfig(hidden_size=64, num_attention_heads=2, max_position_embeddings=64, rope_parameters=params)
    pos = torch.arange(0, 150)[None]
    ref_cos, ref_sin = LlamaRotaryEmbedding(cfg)(torch.zeros(1, dtype=torch.float32), pos)
    cos, sin = RotaryEmbedding(32, read_rope({"rope_parameters": params}), 64)(pos)
    torch.testing.assert_close(cos, ref_cos, atol=1e-6, rtol=0)
    torch.testing.assert_close(sin, ref_sin, atol=1e-6, rtol=0)


def test_rmsnorm_matches_transformers():
    """Oracle: transformers LlamaRMSNorm, tol 1e-6."""
    pytest.importorskip("transformers")
    from transformers.models.llama.modeling_llama import LlamaRMSNorm

    ref = LlamaRMSNorm(32, eps=1e-6)
    ours = RMSNorm(32, eps=1e-6)
    with torch.no_grad():
        ref.weight.normal_()
        ours.weight.copy_(ref.weight)
    x = torch.randn(3, 5, 32)
    torch.testing.assert_close(ours(x), ref(x), atol=1e-6, rtol=0)


def test_rope_config_rejects_bad_values():
    from frontierkit.config import ConfigError
    with pytest.raises(ConfigError, match="model.rope.factor"):
        RopeConfig(type="linear", factor=0.5)
