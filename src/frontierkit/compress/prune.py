"""Unstructured magnitude pruning (Han et al. 2015, "Learning both Weights and Connections for Efficient
Neural Networks": remove the smallest |w|, fine-tune, repeat) with the gradual schedule of Zhu & Gupta
(2017, "To prune, or not to prune", eq. 1: s_t = s_f (1 - (1 - t/n)^3)).

Fixed versus the seed's ``prune.global_unstructured`` snippet: only weights that exist count (modules
without a ``weight`` are skipped), a tied weight is one tensor counted once (its mask applies to every
module that shares it), frozen weights (``requires_grad=False``) are left alone, and exactly
round(amount x prunable weights) entries are zero afterwards (ties broken by position, not by ``<=``).

A mask is a parametrization ``weight = original * mask``: gradients of pruned entries are zero, so the
shared training loop fine-tunes without hooks; :func:`make_permanent` bakes the zeros in.
"""
from __future__ import annotations

import tempfile
from typing import Any, Callable

import torch
from torch import nn
from torch.nn.utils import parametrize

from ..errors import ConfigError
from ..models import TRANSFORMS_ATTR
from .quantize import record_transform

__all__ = ["Mask", "prunable", "prune_global", "prune_layerwise", "sparsity", "make_permanent",
           "cubic_schedule", "iterative_prune", "finetune_classifier", "apply_masks"]

PRUNABLE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


class Mask(nn.Module):
    """weight = original * mask (a 0/1 buffer of the weight's shape)."""

    def __init__(self, shape: torch.Size):
        super().__init__()
        self.register_buffer("mask", torch.ones(shape))

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return w * self.mask


def _weight(module: nn.Module) -> torch.Tensor:
    """The trainable tensor behind ``module.weight`` (the parametrization's original when masked)."""
    return module.parametrizations.weight.original if parametrize.is_parametrized(module, "weight") else module.weight


def prunable(model: nn.Module, types: tuple[type, ...] = PRUNABLE) -> dict[str, list[str]]:
    """First owner name -> every module name sharing that weight, for trainable weights of ``types``."""
    owners: dict[int, list[str]] = {}
    for name, m in model.named_modules(remove_duplicate=False):
        if isinstance(m, types) and isinstance(getattr(m, "weight", None), torch.Tensor):
            w = _weight(m)
            if w.requires_grad:
                owners.setdefault(id(w), []).append(name)
    return {names[0]: list(dict.fromkeys(names)) for names in owners.values()}


def _set_masks(model: nn.Module, groups: dict[str, list[str]], masks: dict[str, torch.Tensor]) -> nn.Module:
    """Install (or update) the masks; tied owners share one Mask module."""
    for first, names in groups.items():
        m0 = model.get_submodule(first)
        if not parametrize.is_parametrized(m0, "weight"):
            param = Mask(m0.weight.shape)
            for n in names:
                parametrize.register_parametrization(model.get_submodule(n), "weight", param, unsafe=True)
        m0.parametrizations.weight[0].mask.copy_(masks[first])
    spec = {"name": "compress.prune_mask", "weights": sorted(n for names in groups.values() for n in names)}
    setattr(model, TRANSFORMS_ATTR, [t for t in getattr(model, TRANSFORMS_ATTR, []) if t["name"] != spec["name"]])
    return record_transform(model, spec)


def _lowest(scores: torch.Tensor, k: int) -> torch.Tensor:
    """A 0/1 keep-vector zeroing exactly the ``k`` smallest scores (stable: ties go to the earlier index)."""
    keep = torch.ones_like(scores)
    keep[torch.argsort(scores, stable=True)[:k]] = 0
    return keep


def _check_amount(amount: float) -> None:
    if not 0 <= amount < 1:
        raise ConfigError(f"amount={amount} is invalid: the fraction of weights to prune, in [0, 1)")


@torch.no_grad()
def prune_global(model: nn.Module, amount: float, types: tuple[type, ...] = PRUNABLE) -> nn.Module:
    """Global L1 unstructured pruning (Han et al. 2015): zero exactly round(amount * N) of the N prunable
    weights with the smallest |w| across all layers (in place; already-pruned weights count as zeros)."""
    _check_amount(amount)
    groups = prunable(model, types)
    if not groups:
        raise ConfigError(f"{type(model).__name__} has no trainable weights of {[t.__name__ for t in types]} to prune")
    weights = {n: model.get_submodule(n).weight for n in groups}          # effective (masked) weights
    scores = torch.cat([w.abs().flatten() for w in weights.values()])     # (N,)
    keep = _lowest(scores, round(amount * scores.numel()))
    masks, i = {}, 0
    for n, w in weights.items():
        masks[n] = keep[i:i + w.numel()].view_as(w)
        i += w.numel()
    return _set_masks(model, groups, masks)


@torch.no_grad()
def prune_layerwise(model: nn.Module, amount: float, types: tuple[type, ...] = PRUNABLE) -> nn.Module:
    """Layer-scope L1 unstructured pruning: round(amount * n_l) smallest |w| of each layer (in place)."""
    _check_amount(amount)
    groups = prunable(model, types)
    masks = {}
    for n in groups:
        w = model.get_submodule(n).weight
        masks[n] = _lowest(w.abs().flatten(), round(amount * w.numel())).view_as(w)
    return _set_masks(model, groups, masks)


@torch.no_grad()
def sparsity(model: nn.Module, types: tuple[type, ...] = PRUNABLE) -> dict[str, Any]:
    """Fraction of zero weights per prunable layer and in total (each tied weight once)."""
    groups = prunable(model, types) or {n: [n] for n, m in model.named_modules() if isinstance(m, types)}
    zeros = {n: int((model.get_submodule(n).weight == 0).sum()) for n in groups}
    sizes = {n: model.get_submodule(n).weight.numel() for n in groups}
    return {"layers": {n: zeros[n] / sizes[n] for n in groups},
            "total": sum(zeros.values()) / max(1, sum(sizes.values()))}


def make_permanent(model: nn.Module) -> nn.Module:
    """Bake the masks into plain weights (zeros stay zeros) and drop the mask transform."""
    for _, m in list(model.named_modules()):
        if parametrize.is_parametrized(m, "weight"):
            parametrize.remove_parametrizations(m, "weight", leave_parametrized=True)
    setattr(model, TRANSFORMS_ATTR, [t for t in getattr(model, TRANSFORMS_ATTR, [])
                                     if t["name"] != "compress.prune_mask"])
    return model


def apply_masks(model: nn.Module, spec: dict[str, Any]) -> nn.Module:
    """Registry transform ``compress.prune_mask``: all-ones masks on the named weights (then loaded)."""
    groups = {n: names for n, names in prunable(model).items() if any(x in spec["weights"] for x in names)}
    return _set_masks(model, groups, {n: torch.ones_like(model.get_submodule(n).weight) for n in groups})


def cubic_schedule(final: float, rounds: int) -> list[float]:
    """Zhu & Gupta (2017) eq. 1: s_t = s_f (1 - (1 - t/n)^3), t = 1..n."""
    return [final * (1 - (1 - t / rounds) ** 3) for t in range(1, rounds + 1)]


def iterative_prune(model: nn.Module, amount: float, rounds: int, finetune: Callable[[nn.Module], Any],
                    prune: Callable[[nn.Module, float], nn.Module] = prune_global) -> list[float]:
    """Prune to the cubic schedule's sparsity, fine-tune, repeat (Han et al. 2015 §3.3); the sparsities."""
    levels = cubic_schedule(amount, rounds)
    for s in levels:
        prune(model, s)
        finetune(model)
    return levels


def finetune_classifier(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int = 100, lr: float = 1e-3,
                        hooks: Any = None, batch_size: int = 64, seed: int = 0,
                        loss_fn: Callable | None = None) -> nn.Module:
    """Cross-entropy fine-tuning through the shared Trainer (masks keep pruned weights at zero)."""
    from ..data import TensorBatches
    from ..train import TrainConfig, Trainer
    from ..vision.train import cross_entropy_loss
    cfg = TrainConfig(steps=steps, batch_size=batch_size, lr=lr, warmup_steps=min(10, steps // 10),
                      weight_decay=0.0, log_every=max(1, steps), seed=seed)
    model.train()
    with tempfile.TemporaryDirectory() as out:
        Trainer(model, loss_fn or cross_entropy_loss, TensorBatches(x, y, batch_size=batch_size, seed=seed), cfg,
                out=out, hooks=hooks, quiet=True).fit()
    return model.eval()
