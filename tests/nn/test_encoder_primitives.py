"""Encoder primitives: bidirectional/padded/causal/cross attention against a written-out softmax
(Vaswani et al. eq. 1) and against torch.nn.MultiheadAttention with the same weights; the encoder
block against a hand-written pre-norm block and transformers' CLIPEncoderLayer; quick_gelu against
transformers' QuickGELUActivation."""
from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

from frontierkit.nn import EncoderAttention, EncoderBlock, attention, quick_gelu

B, H, T, S, HD = 2, 3, 7, 5, 8


def naive_attention(q, k, v, key_valid=None, causal=False):
    """softmax(q k^T / sqrt(d) + mask) v written out with -inf on masked logits; returns (output, weights)."""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])                 # (B, H, T, S)
    allowed = torch.ones(scores.shape[-2:], dtype=torch.bool)                  # (T, S)
    if causal:
        allowed = allowed.tril()
    if key_valid is not None:
        allowed = allowed & key_valid[:, None, None, :]                        # (B, 1, T, S)
    weights = scores.masked_fill(~allowed, float("-inf")).softmax(-1)         # (B, H, T, S)
    return weights @ v, weights


def naive_encoder_attention(m, x, context=None, key_valid=None, causal=False):
    """EncoderAttention written out from its weights: per-head naive_attention, then the out projection."""
    kv = x if context is None else context
    split = lambda t: t.unflatten(-1, (m.n_heads, m.head_dim)).transpose(1, 2)  # noqa: E731
    q, k, v = (split(F.linear(t, p.weight, p.bias)) for t, p in
               ((x, m.q_proj), (kv, m.k_proj), (kv, m.v_proj)))
    y, _ = naive_attention(q, k, v, key_valid, causal)
    return F.linear(y.transpose(1, 2).flatten(2), m.out_proj.weight, m.out_proj.bias)


def qkv(t, s, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(B, H, t, HD, generator=g, requires_grad=True),
            torch.randn(B, H, s, HD, generator=g, requires_grad=True),
            torch.randn(B, H, s, HD, generator=g, requires_grad=True))


def padding(s, lengths):
    return torch.arange(s)[None, :] < torch.tensor(lengths)[:, None]           # (B, S) right padding


def assert_same_grads(out, ref, inputs, atol):
    go = torch.randn_like(out)
    for a, b in zip(torch.autograd.grad(out, inputs, go), torch.autograd.grad(ref, inputs, go)):
        torch.testing.assert_close(a, b, atol=atol, rtol=0)


def test_bidirectional_attention_with_padding_matches_naive_softmax():
    """Oracle: naive_attention (written-out softmax, -inf on padded keys); tol 1e-6 forward, 1e-5 on q/k/v grads."""
    q, k, v = qkv(T, S)
    valid = padding(S, [S, 3])
    ours = attention(q, k, v, valid)
    ref, _ = naive_attention(q, k, v, valid)
    torch.testing.assert_close(ours, ref, atol=1e-6, rtol=0)
    assert_same_grads(ours, ref, (q, k, v), atol=1e-5)


def test_padded_keys_get_exactly_zero_weight():
    """Invariant: changing padded keys/values leaves the output bit-identical and their gradients are exactly 0."""
    q, k, v = qkv(T, S)
    valid = padding(S, [4, 2])
    out = attention(q, k, v, valid)
    k2 = torch.where(valid[:, None, :, None], k, 100 * torch.randn_like(k))
    v2 = torch.where(valid[:, None, :, None], v, 1e6 * torch.randn_like(v))
    assert torch.equal(attention(q, k2, v2, valid), out)
    _, weights = naive_attention(q, k, v, valid)
    assert torch.all(weights.masked_select(~valid[:, None, None, :]) == 0)
    gk, gv = torch.autograd.grad(out.sum(), (k, v))
    assert torch.all(gk.masked_select(~valid[:, None, :, None]) == 0)
    assert torch.all(gv.masked_select(~valid[:, None, :, None]) == 0)


@pytest.mark.parametrize("lengths", [None, [T, 4]])
def test_causal_attention_matches_naive_causal_reference(lengths):
    """Oracle: naive_attention with a lower-triangular (and key padding) mask; tol 1e-6 forward, 1e-5
    on q/k/v grads, on the real queries (a padding query sees itself here instead of a masked future)."""
    q, k, v = qkv(T, T, seed=1)
    valid = None if lengths is None else padding(T, lengths)
    ours = attention(q, k, v, valid, causal=True)
    ref, _ = naive_attention(q, k, v, valid, causal=True)
    keep = torch.ones(B, T, dtype=torch.bool) if valid is None else valid
    ours, ref = ours.transpose(1, 2)[keep], ref.transpose(1, 2)[keep]          # (real queries, H, hd)
    torch.testing.assert_close(ours, ref, atol=1e-6, rtol=0)
    assert_same_grads(ours, ref, (q, k, v), atol=1e-5)


def test_cross_attention_over_a_longer_wider_context_matches_naive_reference():
    """Oracle: naive_encoder_attention (projections + written-out softmax) with T=7 queries of width 24
    over S=11 context tokens of width 40, context padding; tol 1e-6 forward, 1e-5 on grads of x, context and weights."""
    torch.manual_seed(0)
    m = EncoderAttention(24, 4, context_dim=40)
    x = torch.randn(B, 7, 24, requires_grad=True)
    context = torch.randn(B, 11, 40, requires_grad=True)
    valid = padding(11, [11, 6])
    ours = m(x, context, valid)
    assert ours.shape == (B, 7, 24)
    ref = naive_encoder_attention(m, x, context, valid)
    torch.testing.assert_close(ours, ref, atol=1e-6, rtol=0)
    assert_same_grads(ours, ref, (x, context, *m.parameters()), atol=1e-5)


def copy_into_torch_mha(m: EncoderAttention, dim: int, context_dim: int | None = None) -> torch.nn.MultiheadAttention:
    kv = context_dim or dim
    mha = torch.nn.MultiheadAttention(dim, m.n_heads, batch_first=True, kdim=kv, vdim=kv)
    with torch.no_grad():
        if mha._qkv_same_embed_dim:
            mha.in_proj_weight.copy_(torch.cat([m.q_proj.weight, m.k_proj.weight, m.v_proj.weight]))
        else:
            mha.q_proj_weight.copy_(m.q_proj.weight)
            mha.k_proj_weight.copy_(m.k_proj.weight)
            mha.v_proj_weight.copy_(m.v_proj.weight)
        mha.in_proj_bias.copy_(torch.cat([m.q_proj.bias, m.k_proj.bias, m.v_proj.bias]))
        mha.out_proj.weight.copy_(m.out_proj.weight)
        mha.out_proj.bias.copy_(m.out_proj.bias)
    return mha


def test_self_attention_with_key_padding_matches_torch_multihead_attention():
    """Oracle: torch.nn.MultiheadAttention(batch_first=True) with our weights and key_padding_mask = ~valid;
    tol 1e-5 on outputs and on the input gradient."""
    torch.manual_seed(0)
    m = EncoderAttention(32, 4)
    mha = copy_into_torch_mha(m, 32)
    x = torch.randn(B, 9, 32, requires_grad=True)
    valid = padding(9, [9, 5])
    ours = m(x, key_valid=valid)
    ref, _ = mha(x, x, x, key_padding_mask=~valid, need_weights=False)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)
    assert_same_grads(ours, ref, (x,), atol=1e-5)


def test_cross_attention_matches_torch_multihead_attention_kdim_vdim():
    """Oracle: torch.nn.MultiheadAttention(kdim=vdim=context width, batch_first=True) with our weights;
    tol 1e-5 on outputs and on the gradients of x and context."""
    torch.manual_seed(1)
    m = EncoderAttention(32, 4, context_dim=48)
    mha = copy_into_torch_mha(m, 32, 48)
    x = torch.randn(B, 6, 32, requires_grad=True)
    context = torch.randn(B, 13, 48, requires_grad=True)
    valid = padding(13, [13, 8])
    ours = m(x, context, valid)
    ref, _ = mha(x, context, context, key_padding_mask=~valid, need_weights=False)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)
    assert_same_grads(ours, ref, (x, context), atol=1e-5)


def reference_block(blk: EncoderBlock, x, context=None, key_valid=None, context_valid=None):
    """The block written by hand: LayerNorms from F.layer_norm, attention from naive_encoder_attention, the MLP
    from its weights (GEGLU: GELU on the first half of the fused projection)."""
    ln = lambda t, n: F.layer_norm(t, (t.shape[-1],), n.weight, n.bias, n.eps)  # noqa: E731
    x = x + naive_encoder_attention(blk.attn, ln(x, blk.attn_norm), None, key_valid, blk.causal)
    if context is not None:
        x = x + naive_encoder_attention(blk.cross_attn, ln(x, blk.cross_norm), context, context_valid)
    h = ln(x, blk.mlp_norm)
    mlp = blk.mlp
    if hasattr(mlp, "gate_up"):
        gate, up = F.linear(h, mlp.gate_up.weight, mlp.gate_up.bias).chunk(2, -1)
        return x + F.linear(F.gelu(gate) * up, mlp.down.weight, mlp.down.bias)
    act = {"none": F.gelu, "tanh": lambda t: F.gelu(t, approximate="tanh"),
           "sigmoid": lambda t: t * torch.sigmoid(1.702 * t)}[mlp.approximate]
    return x + F.linear(act(F.linear(h, mlp.fc.weight, mlp.fc.bias)), mlp.proj.weight, mlp.proj.bias)


@pytest.mark.parametrize("activation, causal, context_dim", [
    ("gelu", False, None),          # ViT
    ("quick_gelu", True, None),     # CLIP text tower
    ("gelu_tanh", False, None),
    ("geglu", False, 20),           # diffusers BasicTransformerBlock: self-attn, cross-attn, GEGLU
])
def test_encoder_block_matches_hand_written_reference(activation, causal, context_dim):
    """Oracle: reference_block (pre-norm residual block written out); tol 1e-5 forward and on all gradients."""
    torch.manual_seed(2)
    blk = EncoderBlock(16, 2, mlp_hidden=40, activation=activation, causal=causal, context_dim=context_dim,
                       eps=1e-6, qkv_bias=context_dim is None)
    for p in blk.parameters():                            # non-trivial LayerNorm weights and biases
        torch.nn.init.normal_(p, std=0.3)
    x = torch.randn(B, T, 16, requires_grad=True)
    valid = padding(T, [T, T - 2])
    context = None if context_dim is None else torch.randn(B, S, context_dim, requires_grad=True)
    cvalid = None if context_dim is None else padding(S, [3, S])
    ours = blk(x, context, valid, cvalid)
    ref = reference_block(blk, x, context, valid, cvalid)
    keep = valid                                          # causal: padding queries differ by design
    torch.testing.assert_close(ours[keep], ref[keep], atol=1e-5, rtol=0)
    inputs = (x, *blk.parameters()) + (() if context is None else (context,))
    assert_same_grads(ours[keep], ref[keep], inputs, atol=1e-5)


def test_encoder_block_refuses_a_missing_or_unexpected_context():
    with pytest.raises(ValueError, match="context"):
        EncoderBlock(16, 2, context_dim=8)(torch.randn(1, 3, 16))
    with pytest.raises(ValueError, match="context"):
        EncoderBlock(16, 2)(torch.randn(1, 3, 16), torch.randn(1, 2, 16))


def test_quick_gelu_matches_transformers():
    """Oracle: transformers' QuickGELUActivation (CLIP's activation); tol 0 (the same formula)."""
    from transformers.activations import QuickGELUActivation

    x = torch.linspace(-6, 6, 101)
    torch.testing.assert_close(quick_gelu(x), QuickGELUActivation()(x), atol=0, rtol=0)


@pytest.mark.parametrize("causal", [False, True])
def test_encoder_block_matches_transformers_clip_encoder_layer(causal):
    """Oracle: transformers' CLIPEncoderLayer (quick_gelu, eager attention) with our weights; the text tower's
    causal + key padding mask given to it as an additive (B, 1, T, T) mask; tol 1e-5 on the real tokens."""
    from transformers import CLIPTextConfig
    from transformers.models.clip.modeling_clip import CLIPEncoderLayer

    cfg = CLIPTextConfig(hidden_size=32, intermediate_size=48, num_attention_heads=4, hidden_act="quick_gelu",
                         layer_norm_eps=1e-5, attn_implementation="eager")
    torch.manual_seed(3)
    hf = CLIPEncoderLayer(cfg).eval()
    ours = EncoderBlock(32, 4, mlp_hidden=48, activation="quick_gelu", causal=causal).eval()
    names = {"layer_norm1": "attn_norm", "layer_norm2": "mlp_norm", "self_attn.": "attn.", "mlp.fc1": "mlp.fc",
             "mlp.fc2": "mlp.proj"}
    sd = {}
    for key, value in hf.state_dict().items():
        for a, b in names.items():
            key = key.replace(a, b)
        sd[key] = value
    ours.load_state_dict(sd)
    x = torch.randn(B, T, 32)
    valid = padding(T, [T, 4])
    allowed = valid[:, None, None, :] & (torch.ones(T, T, dtype=torch.bool).tril() if causal else True)
    additive = torch.zeros(B, 1, T, T).masked_fill(~allowed, torch.finfo(torch.float32).min)
    ref = hf(x, additive)
    ref = ref[0] if isinstance(ref, tuple) else ref
    torch.testing.assert_close(ours(x, key_valid=valid)[valid], ref[valid], atol=1e-5, rtol=0)
