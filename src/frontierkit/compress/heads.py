"""Attention-head pruning (Michel et al. 2019, "Are Sixteen Heads Really Better than One?"; Voita et al.
2019): score every head by its importance I_h = E_x |∂L/∂ξ_h| (Michel et al. eq. 2, ξ_h a gate on head h's
output), remove the least important ones and slice the q/k/v and output projections: a physically
smaller attention.

With grouped-query attention (Ainslie et al. 2023) g = n_heads / n_kv_heads query heads share one K/V
head; the unit removed is a whole group (its K/V head and its g query heads), scored by the sum of its
query heads' importances, so n_heads % n_kv_heads == 0 still holds after pruning. Multi-head attention
is the case g = 1 (a group is one head). Works on every module built on the core's
:class:`frontierkit.nn.attention.Attention` (the kit's LLMs and whatever else uses it).
"""
from __future__ import annotations

import copy
from typing import Any, Callable, Iterable

import torch
from torch import nn

from ..errors import ConfigError
from ..nn.attention import Attention
from .quantize import record_transform

__all__ = ["attention_modules", "head_importance", "group_importance", "prune_heads", "apply_heads"]


def attention_modules(model: nn.Module) -> dict[str, Attention]:
    """The model's attentions by module name (fused qkv + out projections, GQA groups)."""
    return {n: m for n, m in model.named_modules() if isinstance(m, Attention)}


def _gate_hook(gate: torch.Tensor, n_heads: int, head_dim: int):
    """Forward pre-hook on ``attn.out``: multiply head h's slice of the concatenated heads by ξ_h."""
    def hook(_module: nn.Module, args: tuple) -> tuple:
        y = args[0]                                                            # (B, T, H*D)
        gated = y.unflatten(-1, (n_heads, head_dim)) * gate[:, None]           # (B, T, H, D)
        return (gated.flatten(-2), *args[1:])
    return hook


def head_importance(model: nn.Module, batches: Iterable[Any],
                    loss_fn: Callable[[nn.Module, Any], torch.Tensor]) -> dict[str, torch.Tensor]:
    """Michel et al. eq. 2: I_h = mean over batches of |∂L/∂ξ_h| at ξ = 1, per attention module -> (H,)."""
    attns = attention_modules(model)
    if not attns:
        raise ConfigError("head pruning: the model has no frontierkit attention modules (nn.attention.Attention)")
    gates = {n: torch.ones(m.n_heads, requires_grad=True) for n, m in attns.items()}
    handles = [m.out.register_forward_pre_hook(_gate_hook(gates[n], m.n_heads, m.head_dim)) for n, m in attns.items()]
    scores = {n: torch.zeros(m.n_heads) for n, m in attns.items()}
    count = 0
    was_training = model.training
    model.eval()
    try:
        for batch in batches:
            loss = loss_fn(model, batch)
            grads = torch.autograd.grad(loss, list(gates.values()))
            for n, g in zip(gates, grads):
                scores[n] += g.abs()                                           # (H,)
            count += 1
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    if count == 0:
        raise ConfigError("head pruning: no calibration batches were given")
    return {n: s / count for n, s in scores.items()}


def group_importance(importance: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Per K/V group: the sum of its g query heads' importances -> (n_kv_heads,) per attention."""
    attns = attention_modules(model)
    return {n: s.view(attns[n].n_kv_heads, -1).sum(-1) for n, s in importance.items()}


def prune_heads(model: nn.Module, amount: float, importance: dict[str, torch.Tensor]) -> nn.Module:
    """A copy of ``model`` without the ``amount`` fraction of K/V groups (all layers pooled, Michel et al.
    §4: global ranking) of lowest importance; every attention keeps at least one group."""
    if not 0 <= amount < 1:
        raise ConfigError(f"head pruning: amount={amount} is invalid; use a fraction in [0, 1)")
    groups = group_importance(importance, model)
    ranked = sorted((float(s), name, j) for name, gs in groups.items() for j, s in enumerate(gs))
    n_remove = int(round(amount * len(ranked)))
    remove: dict[str, set[int]] = {name: set() for name in groups}
    for _score, name, j in ranked:
        if n_remove == 0:
            break
        if len(remove[name]) + 1 < len(groups[name]):                         # keep >= 1 group per layer
            remove[name].add(j)
            n_remove -= 1
    keep = {name: [j for j in range(len(groups[name])) if j not in remove[name]] for name in groups}
    return apply_heads(copy.deepcopy(model), {"name": "compress.heads", "keep_groups": keep})


def _rows(m: Attention, groups: list[int]) -> torch.Tensor:
    """Row indices of the fused qkv projection for the kept groups: their q heads, then k, then v."""
    h, hk, d = m.n_heads, m.n_kv_heads, m.head_dim
    g = h // hk
    q_heads = [j * g + i for j in groups for i in range(g)]
    q = [hd * d + i for hd in q_heads for i in range(d)]
    k = [h * d + j * d + i for j in groups for i in range(d)]
    v = [(h + hk) * d + j * d + i for j in groups for i in range(d)]
    return torch.tensor(q + k + v)


def _linear(weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Linear:
    lin = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    lin.weight = nn.Parameter(weight.clone())
    if bias is not None:
        lin.bias = nn.Parameter(bias.clone())
    return lin


def apply_heads(model: nn.Module, spec: dict[str, Any]) -> nn.Module:
    """Registry transform ``compress.heads``: keep only the listed K/V groups of each named attention."""
    attns = attention_modules(model)
    with torch.no_grad():
        for name, groups in spec["keep_groups"].items():
            m = attns[name]
            g = m.n_heads // m.n_kv_heads
            rows = _rows(m, groups)
            cols = torch.tensor([(j * g + i) * m.head_dim + c for j in groups for i in range(g)
                                 for c in range(m.head_dim)])
            m.qkv = _linear(m.qkv.weight[rows], None if m.qkv.bias is None else m.qkv.bias[rows])
            m.out = _linear(m.out.weight[:, cols], m.out.bias)
            m.n_heads, m.n_kv_heads = len(groups) * g, len(groups)
    return record_transform(model, spec)
