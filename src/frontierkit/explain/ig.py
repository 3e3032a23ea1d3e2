"""Integrated Gradients (Sundararajan, Taly & Yan, 2017, "Axiomatic Attribution for Deep Networks",
eq. 1 and its Riemann / Gauss-Legendre approximations, sec. 4) with the completeness gap reported as
the convergence delta, and its layer form for token attributions through an embedding layer.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np
import torch
from torch import nn

from ..config import ConfigError
from .gradcam import class_targets

METHODS = ("gausslegendre", "riemann_trapezoid", "riemann_left", "riemann_right", "riemann_middle")


class IGResult(NamedTuple):
    attributions: torch.Tensor
    """(B, *in): (x - x') * integrated gradient"""
    delta: torch.Tensor
    """(B,): sum(attributions) - (f(x) - f(x')); 0 for the exact integral (completeness)"""


def path_points(steps: int, method: str = "gausslegendre") -> tuple[np.ndarray, np.ndarray]:
    """(alphas, weights) on [0, 1] for the path integral, as in captum's approximation methods."""
    if steps < 1:
        raise ConfigError(f"steps={steps} is invalid: must be >= 1")
    if method == "gausslegendre":
        nodes, w = np.polynomial.legendre.leggauss(steps)
        return 0.5 * (nodes + 1), 0.5 * w
    if method not in METHODS:
        raise ConfigError(f"method={method!r} is invalid: choose one of {', '.join(METHODS)}")
    if method == "riemann_trapezoid":
        if steps < 2:
            raise ConfigError("riemann_trapezoid needs steps >= 2")
        w = np.full(steps, 1.0 / (steps - 1))
        w[[0, -1]] /= 2
        return np.linspace(0, 1, steps), w
    offset = {"riemann_left": 0.0, "riemann_right": 1.0, "riemann_middle": 0.5}[method]
    return (np.arange(steps) + offset) / steps, np.full(steps, 1.0 / steps)


def _score(forward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    out = forward(x)
    out = out[:, None] if out.ndim == 1 else out.flatten(1)
    return out.gather(1, t[:, None])[:, 0]                          # (B,)


def integrated_gradients(forward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                         target: int | torch.Tensor | list[int] | None = None,
                         baseline: torch.Tensor | float | None = None, *, steps: int = 50,
                         method: str = "gausslegendre", max_rows: int = 4096) -> IGResult:
    """Sundararajan et al. (2017) eq. 1: (x - x') * sum_k w_k grad f(x' + a_k (x - x')), plus the delta."""
    x = x.detach()
    base = torch.zeros_like(x) if baseline is None else torch.as_tensor(baseline, dtype=x.dtype).expand_as(x)
    with torch.no_grad():
        out = forward(x)
        t = class_targets(out[:, None] if out.ndim == 1 else out.flatten(1), target)
    alphas, weights = path_points(steps, method)
    total = torch.zeros_like(x)
    per = max(1, max_rows // x.shape[0])                            # path points per forward pass
    for i in range(0, steps, per):
        a = torch.tensor(alphas[i:i + per], dtype=x.dtype)
        w = torch.tensor(weights[i:i + per], dtype=x.dtype)
        shape = (-1,) + (1,) * x.ndim
        pts = (base[None] + a.view(shape) * (x - base)[None]).flatten(0, 1).requires_grad_(True)  # (S*B, *in)
        with torch.enable_grad():
            s = _score(forward, pts, t.repeat(len(a)))
            g = torch.autograd.grad(s.sum(), pts)[0].view(len(a), *x.shape)     # (S, B, *in)
        total += (w.view(shape) * g).sum(0)
    attr = (x - base) * total                                       # (B, *in)
    with torch.no_grad():
        delta = attr.flatten(1).sum(1) - (_score(forward, x, t) - _score(forward, base, t))
    return IGResult(attr, delta)


def layer_integrated_gradients(model: nn.Module, layer: nn.Module, inputs: torch.Tensor,
                               score: Callable[[torch.Tensor], torch.Tensor], *,
                               baseline: torch.Tensor | None = None, steps: int = 50,
                               method: str = "gausslegendre") -> IGResult:
    """IG on ``layer``'s output (e.g. token embeddings (B, T, D)): the layer output is replaced by
    points on the path from ``baseline`` (default zeros) to its value; ``score(model_output) -> (B,)``."""
    store: dict[str, torch.Tensor] = {}
    h = layer.register_forward_hook(lambda m, i, o: store.__setitem__("a", o.detach()))
    try:
        with torch.no_grad():
            model(inputs)
    finally:
        h.remove()
    emb = store["a"]
    base = torch.zeros_like(emb) if baseline is None else baseline.expand_as(emb)
    B = emb.shape[0]

    def forward_from_layer(e: torch.Tensor) -> torch.Tensor:
        reps = e.shape[0] // B
        handle = layer.register_forward_hook(lambda m, i, o: e)
        try:
            out = model(inputs.repeat(reps, *([1] * (inputs.ndim - 1))))
        finally:
            handle.remove()
        return score(out)[:, None]                                  # (reps*B, 1)

    return integrated_gradients(forward_from_layer, emb, 0, base, steps=steps, method=method)


def _logits(out) -> torch.Tensor:
    """Model output -> logits tensor (plain tensors, ``.logits`` objects or (logits, ...) tuples)."""
    if isinstance(out, torch.Tensor):
        return out
    if hasattr(out, "logits"):
        return out.logits
    return out[0]


def token_attributions(model: nn.Module, embedding: nn.Module, input_ids: torch.Tensor, *,
                       token: int | torch.Tensor | None = None, position: int = -1,
                       baseline: torch.Tensor | None = None, steps: int = 50) -> tuple[IGResult, torch.Tensor]:
    """Per-token IG of the next-token logit at ``position`` through ``embedding`` (summed over the
    embedding dim): (IGResult with attributions (B, T) and delta (B,), explained token ids (B,)).
    ``baseline``: embeddings to start the path from (default zeros; captum uses embedding(0))."""
    with torch.no_grad():
        last = _logits(model(input_ids))[:, position]                # (B, V)
    tok = last.argmax(-1) if token is None else torch.as_tensor(token).long().expand(last.shape[0])

    def score(out) -> torch.Tensor:
        logits = _logits(out)[:, position]                          # (S*B, V)
        return logits.gather(1, tok.repeat(logits.shape[0] // tok.shape[0])[:, None])[:, 0]

    res = layer_integrated_gradients(model, embedding, input_ids, score, baseline=baseline, steps=steps)
    return IGResult(res.attributions.sum(-1), res.delta), tok
