"""Structured pruning: remove whole conv filters / linear neurons with the smallest L1 norm (Li et al. 2017,
"Pruning Filters for Efficient ConvNets", §3.1), giving a physically smaller, faster dense model.

Dependencies come from the traced graph (``torch.fx``): a producer's output channels flow through
channel-wise ops (BatchNorm, activations, pooling, dropout, spatial mean) into consumers (Conv2d / Linear),
whose input channels are removed with them; a BatchNorm on the path is sliced too. A producer whose
channels reach anything else (a residual add, a concat, a reshape, the output) is left whole: its
channels are tied to another tensor's (residual connections), so it is not pruned.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.fx as fx
from torch import nn

from ..errors import ConfigError
from .quantize import _set_module, record_transform

__all__ = ["channel_groups", "prune_channels", "apply_channels"]

PRODUCERS = (nn.Conv2d, nn.Linear)
PASS_MODULES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.ReLU, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid, nn.MaxPool2d,
                nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.Dropout, nn.Identity)
PASS_FUNCTIONS = (torch.relu, torch.nn.functional.relu, torch.nn.functional.gelu)
PASS_METHODS = ("relu", "contiguous")


def _passes(node: fx.Node, modules: dict[str, nn.Module]) -> bool:
    """Whether ``node`` maps channel c of its input to channel c of its output."""
    if node.op == "call_module":
        return isinstance(modules[node.target], PASS_MODULES)
    if node.op == "call_method" and node.target in ("mean", "flatten"):
        return _keeps_channel_dim(node)
    if node.op == "call_function" and node.target is torch.flatten:
        return _keeps_channel_dim(node)
    return (node.op == "call_method" and node.target in PASS_METHODS) or \
        (node.op == "call_function" and node.target in PASS_FUNCTIONS)


def _keeps_channel_dim(node: fx.Node) -> bool:
    """mean over spatial dims (2, 3) or flatten(1) of a (B, C, 1, 1) map keep dim 1 as the channels."""
    args = list(node.args[1:]) + list(node.kwargs.values())
    if node.target == "mean":
        dims = args[0] if args else None
        return isinstance(dims, (tuple, list)) and 1 not in dims and 0 not in dims
    return False                                           # flatten: channel blocks would mix with space


def channel_groups(model: nn.Module) -> dict[str, dict[str, list[str]]]:
    """Producer name -> {"norms": BatchNorms to slice, "consumers": layers whose inputs follow}, for every
    Conv2d/Linear whose output channels reach only channel-wise ops and other Conv2d/Linear layers."""
    try:
        gm = fx.symbolic_trace(model)
    except Exception as e:  # noqa: BLE001 (fx raises many types)
        raise ConfigError(f"structured pruning needs a traceable model; torch.fx failed on "
                          f"{type(model).__name__}: {str(e).splitlines()[0]}") from None
    modules = dict(gm.named_modules())
    groups = {}
    for node in gm.graph.nodes:
        if node.op == "call_module" and isinstance(modules[node.target], PRODUCERS):
            group = _follow(node, modules)
            if group is not None and group["consumers"] and getattr(modules[node.target], "groups", 1) == 1:
                groups[node.target] = group
    return groups


def _follow(node: fx.Node, modules: dict[str, nn.Module]) -> dict[str, list[str]] | None:
    """Walk forward from a producer; None when its channels reach an op we cannot slice through."""
    norms, consumers, todo = [], [], list(node.users)
    while todo:
        n = todo.pop()
        if n.op == "call_module" and isinstance(modules[n.target], PRODUCERS):
            consumers.append(n.target)
        elif _passes(n, modules):
            if n.op == "call_module" and isinstance(modules[n.target], (nn.BatchNorm1d, nn.BatchNorm2d)):
                norms.append(n.target)
            todo.extend(n.users)
        else:
            return None                                    # add / cat / view / output: channels are tied
    return {"norms": norms, "consumers": consumers}


def _slice_producer(m: nn.Module, keep: torch.Tensor) -> nn.Module:
    if isinstance(m, nn.Conv2d):
        new = nn.Conv2d(m.in_channels, len(keep), m.kernel_size, m.stride, m.padding, m.dilation,
                        bias=m.bias is not None)
    else:
        new = nn.Linear(m.in_features, len(keep), bias=m.bias is not None)
    new.weight.data = m.weight.data[keep].clone()
    if m.bias is not None:
        new.bias.data = m.bias.data[keep].clone()
    return new


def _slice_consumer(m: nn.Module, keep: torch.Tensor) -> nn.Module:
    if isinstance(m, nn.Conv2d):
        new = nn.Conv2d(len(keep), m.out_channels, m.kernel_size, m.stride, m.padding, m.dilation,
                        bias=m.bias is not None)
    else:
        new = nn.Linear(len(keep), m.out_features, bias=m.bias is not None)
    new.weight.data = m.weight.data[:, keep].clone()
    if m.bias is not None:
        new.bias.data = m.bias.data.clone()
    return new


def _slice_norm(m: nn.Module, keep: torch.Tensor) -> nn.Module:
    new = type(m)(len(keep), eps=m.eps, momentum=m.momentum, affine=m.affine,
                  track_running_stats=m.track_running_stats)
    for name in ("weight", "bias", "running_mean", "running_var"):
        if getattr(m, name, None) is not None:
            getattr(new, name).data = getattr(m, name).data[keep].clone()
    if m.num_batches_tracked is not None:
        new.num_batches_tracked = m.num_batches_tracked.clone()
    return new


@torch.no_grad()
def _shrink(model: nn.Module, keep: dict[str, torch.Tensor], groups: dict[str, dict[str, list[str]]]) -> nn.Module:
    """Replace every producer / BatchNorm / consumer by a copy holding only the kept channels."""
    for name, idx in keep.items():
        g = groups[name]
        _set_module(model, name, _slice_producer(model.get_submodule(name), idx))
        for bn in g["norms"]:
            _set_module(model, bn, _slice_norm(model.get_submodule(bn), idx))
        for c in g["consumers"]:
            _set_module(model, c, _slice_consumer(model.get_submodule(c), idx))
    return model


def _l1_keep(m: nn.Module, amount: float) -> torch.Tensor:
    """Indices of the round((1 - amount) * C) filters with the largest L1 norm (Li et al. 2017 §3.1), sorted."""
    norms = m.weight.detach().abs().flatten(1).sum(dim=1)                     # (C_out,)
    n_keep = max(1, round((1 - amount) * len(norms)))
    return torch.sort(torch.topk(norms, n_keep).indices).values


def prune_channels(model: nn.Module, amount: float, skip: tuple[str, ...] = ()) -> nn.Module:
    """A copy of ``model`` with ``amount`` of the output channels of every prunable Conv2d/Linear removed
    (those with the smallest filter L1 norm); the last layer (the logits) is never a producer here."""
    import copy
    if not 0 <= amount < 1:
        raise ConfigError(f"amount={amount} is invalid: the fraction of channels to remove, in [0, 1)")
    model = copy.deepcopy(model)
    groups = {n: g for n, g in channel_groups(model).items() if n not in skip}
    if not groups:
        raise ConfigError(f"{type(model).__name__} has no channels that can be removed (every Conv2d/Linear "
                          f"feeds a residual add, a reshape or the output)")
    keep = {n: _l1_keep(model.get_submodule(n), amount) for n in groups}
    spec = {"name": "compress.channels", "channels": {n: len(k) for n, k in keep.items()}}
    return record_transform(_shrink(model, keep, groups), spec)


def apply_channels(model: nn.Module, spec: dict[str, Any]) -> nn.Module:
    """Registry transform ``compress.channels``: the pruned shapes (the first n channels; weights load next)."""
    groups = channel_groups(model)
    keep = {n: torch.arange(c) for n, c in spec["channels"].items()}
    return record_transform(_shrink(model, keep, groups), spec)
