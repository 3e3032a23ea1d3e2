"""Attention-head pruning (Michel et al. 2019) with GQA groups: the pruned model is exactly the original
with those heads gated off, importance finds a dead head, the smaller model saves, reloads and decodes
with its KV cache."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from frontierkit import models
from frontierkit.compress.heads import _gate_hook, attention_modules, head_importance, prune_heads
from frontierkit.errors import ConfigError
from frontierkit.llm import Transformer, TransformerConfig


def _lm(n_heads: int, n_kv_heads: int, seed: int = 0) -> Transformer:
    torch.manual_seed(seed)
    return Transformer(TransformerConfig(vocab_size=97, n_layers=3, n_heads=n_heads, n_kv_heads=n_kv_heads,
                                         d_model=48, d_ff=96, max_seq_len=32)).eval()


def _lm_loss(model, ids):
    logits = model(ids[:, :-1])                                                # (B, T-1, V)
    return F.cross_entropy(logits.flatten(0, 1), ids[:, 1:].flatten())


def _batches(n: int = 3):
    g = torch.Generator().manual_seed(1)
    return [torch.randint(0, 97, (4, 17), generator=g) for _ in range(n)]


def _gated_forward(model, ids, gates):
    """The original model with head h of attention ``name`` scaled by gates[name][h] (ξ of eq. 2)."""
    attns = attention_modules(model)
    hs = [attns[n].out.register_forward_pre_hook(_gate_hook(g, attns[n].n_heads, attns[n].head_dim))
          for n, g in gates.items()]
    try:
        return model(ids)
    finally:
        for h in hs:
            h.remove()


@pytest.mark.parametrize("n_heads,n_kv_heads", [(6, 6), (6, 2)], ids=["mha", "gqa"])
def test_pruned_heads_equal_the_original_with_those_heads_gated_off(n_heads, n_kv_heads):
    """Invariant (exact up to fp32 summation order, 1e-5): slicing q/k/v/out for the kept groups computes
    what the full model computes with the removed query heads' gates ξ_h = 0; GQA removes whole groups
    (K/V head + its query heads) so n_heads % n_kv_heads == 0 still holds."""
    model = _lm(n_heads, n_kv_heads)
    imp = head_importance(model, _batches(), _lm_loss)
    pruned = prune_heads(model, 0.34, imp)
    ids = _batches(1)[0]
    gates = {}
    for name, m in attention_modules(model).items():
        kept = attention_modules(pruned)[name]
        assert kept.n_heads % kept.n_kv_heads == 0 and kept.n_kv_heads >= 1
        g = n_heads // n_kv_heads
        spec = pruned.frontier_transforms[-1]["keep_groups"][name]
        gates[name] = torch.tensor([float(h // g in spec) for h in range(n_heads)])
    removed = sum(m.n_kv_heads for m in attention_modules(model).values()) - \
        sum(m.n_kv_heads for m in attention_modules(pruned).values())
    assert removed == round(0.34 * 3 * n_kv_heads)
    with torch.no_grad():
        torch.testing.assert_close(pruned(ids), _gated_forward(model, ids, gates), atol=1e-5, rtol=1e-5)
    assert pruned.num_params() < model.num_params()


def test_head_importance_scores_a_dead_head_zero_and_prunes_it_first():
    """Michel et al. eq. 2: a head whose output projection columns are zero has ∂L/∂ξ_h = 0, so it is
    the first one removed."""
    model = _lm(4, 4)
    name = "layers.1.attn"
    with torch.no_grad():
        model.get_submodule(name).out.weight[:, 2 * 12:3 * 12] = 0            # head 2 of layer 1 (head_dim 12)
    imp = head_importance(model, _batches(), _lm_loss)
    assert imp[name][2] == 0 and all(float(s.min()) > 0 for n, s in imp.items() if n != name)
    pruned = prune_heads(model, 1 / 12, imp)                                  # remove exactly one group
    assert pruned.frontier_transforms[-1]["keep_groups"][name] == [0, 1, 3]


def test_head_pruned_llm_saves_reloads_and_decodes_with_its_kv_cache(tmp_path):
    """Registry round trip (transform ``compress.heads`` rebuilds the smaller attentions, logits equal
    exactly) and cached decoding over layers of different head counts equals the uncached forward (1e-5)."""
    model = _lm(4, 2)
    pruned = prune_heads(model, 0.5, head_importance(model, _batches(), _lm_loss))
    assert sorted(m.n_kv_heads for m in attention_modules(pruned).values()) == [1, 1, 1]
    d = models.save(pruned, tmp_path / "pruned")
    back = models.load(d)
    ids = _batches(1)[0][:, :9]
    with torch.no_grad():
        torch.testing.assert_close(back(ids), pruned(ids), atol=0, rtol=0)
        cache = back.new_cache(ids.shape[0], 16)
        step_logits = [back(ids[:, :5], cache=cache)[:, -1]]
        for t in range(5, 9):
            step_logits.append(back(ids[:, t:t + 1], cache=cache)[:, -1])
    full = back(ids)
    torch.testing.assert_close(torch.stack(step_logits[1:], 1), full[:, 5:9].detach(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(step_logits[0], full[:, 4].detach(), atol=1e-5, rtol=1e-5)


def test_head_pruning_refuses_bad_amounts_and_models_without_attention():
    model = _lm(4, 2)
    imp = head_importance(model, _batches(1), _lm_loss)
    with pytest.raises(ConfigError, match="amount"):
        prune_heads(model, 1.0, imp)
    with pytest.raises(ConfigError, match="no frontierkit attention"):
        head_importance(torch.nn.Linear(3, 3), [torch.zeros(1, 3)], lambda m, b: m(b).sum())


def test_frontier_compress_prune_heads_writes_a_smaller_llm_that_generates(tiny_llm_dir, tmp_path, capsys):
    """`frontier compress prune --heads` on a kit LLM: half its K/V groups gone (4 of 4 -> 2 groups, 8 -> 4
    heads over 2 layers), fewer parameters in the table, and `frontier llm generate` runs the saved model;
    on a classifier it is one clear line."""
    import json

    from frontierkit.cli import main
    src, _ = tiny_llm_dir
    out = tmp_path / "heads"
    assert main(["compress", "prune", "--heads", "--amount", "0.5", "--calib-batches", "1",
                 "--model", str(src), "--out", str(out)]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert rows[1]["heads"] == 4 and rows[1]["MB"] < rows[0]["MB"]
    assert main(["llm", "generate", "--model", str(out), "--prompt", "def", "--max-new-tokens", "4"]) == 0
    assert capsys.readouterr().out.strip()
