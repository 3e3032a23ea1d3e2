"""Per-example gradients with torch.func: ``vmap(grad(loss of one example))`` over a batch.

DP-SGD (Abadi et al. 2016, "Deep Learning with Differential Privacy", Algorithm 1) clips each
example's gradient before summing, which needs one gradient per example rather than the batch
mean that backward returns. Any model whose loss can be written per example works: the
vmapped function calls ``loss_fn(model, batch)`` with a batch of one row (every tensor of the
batch keeps a leading dimension of size 1), with the model's trainable parameters swapped in by
``functional_call``. Buffers are read, never written: BatchNorm in training mode has no
per-example form (use GroupNorm/LayerNorm, as DP-SGD models do). Dropout draws independently per
example (``randomness="different"``). ``loss_fn`` must stay in tensors (no ``.item()``).
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn
from torch.func import functional_call, grad, vmap

PREFIX = "model."


class _LossModule(nn.Module):
    """``loss_fn(model, batch)`` as a module, so ``functional_call`` can swap the model's parameters."""

    def __init__(self, model: nn.Module, loss_fn: Callable[[nn.Module, Any], Any]):
        super().__init__()
        self.model = model
        self.loss_fn = loss_fn

    def forward(self, batch: Any) -> Any:
        return self.loss_fn(self.model, batch)


def _one_row(example: Any) -> Any:
    """One vmapped example back into a batch of one: each tensor (*shape) -> (1, *shape)."""
    if isinstance(example, torch.Tensor):
        return example.unsqueeze(0)                                     # (1, *shape)
    if isinstance(example, (tuple, list)):
        return type(example)(_one_row(e) for e in example)
    if isinstance(example, dict):
        return {k: _one_row(v) for k, v in example.items()}
    raise TypeError(f"per-example gradients need a batch of tensors (tuple, list or dict of tensors with a "
                    f"leading batch dimension), found {type(example).__name__}")


def _split(out: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``loss`` or ``(loss, metrics)`` -> (loss, metrics as tensors)."""
    loss, metrics = (out[0], dict(out[1])) if isinstance(out, tuple) else (out, {})
    return loss, {k: torch.as_tensor(v, dtype=torch.float32) for k, v in metrics.items()}


def trainable_parameters(model: nn.Module) -> dict[str, torch.Tensor]:
    """Name -> parameter for every parameter that requires grad (tied weights listed once)."""
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


def per_sample_grads_and_losses(model: nn.Module, loss_fn: Callable[[nn.Module, Any], Any], batch: Any,
                                ) -> tuple[dict[str, torch.Tensor], torch.Tensor, dict[str, torch.Tensor]]:
    """(name -> per-example grads (B, *shape), per-example losses (B,), name -> per-example metrics (B,))."""
    wrapper = _LossModule(model, loss_fn)
    params = {PREFIX + n: p.detach() for n, p in trainable_parameters(model).items()}

    def loss_of_one(p: dict[str, torch.Tensor], example: Any) -> tuple[torch.Tensor, Any]:
        loss, metrics = _split(functional_call(wrapper, p, (_one_row(example),)))
        return loss, (loss.detach(), metrics)                          # () each

    per_example = vmap(grad(loss_of_one, has_aux=True), in_dims=(None, 0), randomness="different")
    try:
        grads, (losses, metrics) = per_example(params, batch)         # (B, *shape) each; (B,)
    except RuntimeError as e:
        if ".item()" in str(e) or "data-dependent" in str(e):
            raise RuntimeError(f"per-example gradients vmap the loss over examples; it must stay in tensors "
                               f"(return metrics as tensors, not .item() floats): {e}") from None
        raise
    return {n[len(PREFIX):]: g for n, g in grads.items()}, losses, metrics


def per_sample_grads(model: nn.Module, loss_fn: Callable[[nn.Module, Any], Any], batch: Any,
                     ) -> dict[str, torch.Tensor]:
    """Name -> gradient of each example's loss, (B, *param.shape), for every trainable parameter."""
    return per_sample_grads_and_losses(model, loss_fn, batch)[0]


def per_example_norms(grads: dict[str, torch.Tensor]) -> torch.Tensor:
    """L2 norm of each example's whole gradient (all parameters together), (B,)."""
    squares = [g.flatten(1).float().pow(2).sum(1) for g in grads.values()]  # (B,) per parameter
    return torch.stack(squares).sum(0).sqrt()                           # (B,)


def add_to_grads(model: nn.Module, combined: dict[str, torch.Tensor], scale: float) -> None:
    """``p.grad += scale * combined[name]`` for every trainable parameter (created when None)."""
    params = trainable_parameters(model)
    missing = sorted(set(params) - set(combined))
    if missing:
        raise KeyError(f"the per_sample_grads hook returned no gradient for {missing[:5]}; it must return "
                       f"name -> combined gradient for every trainable parameter")
    for name, p in params.items():
        g = combined[name]
        if g.shape != p.shape:
            raise ValueError(f"the per_sample_grads hook returned {name} of shape {tuple(g.shape)}; "
                             f"the parameter is {tuple(p.shape)} (sum over the example dimension)")
        g = (g * scale).to(p.dtype)
        p.grad = g if p.grad is None else p.grad + g
