"""DP-SGD's clipped gradient sum without per-example gradients: ghost norms + book-keeping.

For a Linear (or, unfolded, a Conv2d) layer, example i's weight gradient is ∇W_i = g_iᵀ a_i with a_i (T, d) the
layer's inputs and g_i (T, p) the loss gradient at its outputs, over T positions. Its squared norm is
‖∇W_i‖² = Σ_{t,s} (a_t·a_s)(g_t·g_s) (the "ghost norm": Goodfellow 2015, "Efficient Per-Example Gradient
Computations"; Li, Tramèr, Liang, Hashimoto 2022, "Large Language Models Can Be Strong Differentially Private
Learners", Sec. 4), computed from (T, T) Gram matrices, or from the instantiated (p, d) per-example gradient when
that is cheaper (Bu, Mao, Xu 2023, mixed ghost clipping). With c_i = min(1, C/‖∇θ_i‖) the clipped sum is
Σ_i c_i ∇W_i = (c ⊙ g)ᵀ a: one matmul per layer from the same activations and output gradients ("book-keeping":
Bu, Wang, Zha, Karypis 2023, "Differentially Private Optimization on Large Model at Small Cost"). So a DP step
costs one forward, one backward to the layer outputs (no weight gradients) and one weighted weight-gradient
matmul per layer, instead of B per-example gradients.

Supported: models whose trainable parameters all live in nn.Linear and nn.Conv2d (groups = 1, numeric padding,
zeros padding mode), each called once per forward; the loss must be a mean over examples (cross-entropy).
Other models use the torch.func path (dp.per_sample_grads); ``ghost_supported`` says which.
The result equals ``clipped_sum(per_sample_grads(...))`` (tests/privacy/test_privacy_ghost.py, 1e-6).
"""
from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..train import per_sample as ps


def _conv_ok(m: nn.Conv2d) -> bool:
    return m.groups == 1 and m.padding_mode == "zeros" and not isinstance(m.padding, str)


def ghost_supported(model: nn.Module) -> bool:
    """True when every trainable parameter is the weight/bias of an nn.Linear or a plain nn.Conv2d."""
    owned = set()
    for m in model.modules():
        if isinstance(m, nn.Linear) or (isinstance(m, nn.Conv2d) and _conv_ok(m)):
            owned.update(id(p) for p in m.parameters(recurse=False))
    return all(id(p) in owned for p in ps.trainable_parameters(model).values())


def layer_sq_norms(a: torch.Tensor, g: torch.Tensor, bias: bool) -> torch.Tensor:
    """‖∇W_i‖² (+ ‖∇b_i‖²) per example from a (B, T, d), g (B, T, p): ghost Gram form or instantiated, cheaper one."""
    T, d, p = a.shape[1], a.shape[2], g.shape[2]
    if T == 1:                                                          # ‖g aᵀ‖² = ‖a‖² ‖g‖² (Goodfellow 2015)
        sq = a[:, 0].pow(2).sum(1) * g[:, 0].pow(2).sum(1)              # (B,)
    elif T * (d + p) < d * p:                                           # ghost norm (Li et al. 2022, eq. 4)
        aa = torch.bmm(a, a.transpose(1, 2))                            # (B, T, T)
        gg = torch.bmm(g, g.transpose(1, 2))                            # (B, T, T)
        sq = (aa * gg).sum((1, 2))                                      # (B,)
    else:                                                               # per-example gradient of this layer only
        sq = torch.bmm(g.transpose(1, 2), a).pow(2).sum((1, 2))         # (B, p, d) -> (B,)
    if bias:
        sq = sq + g.sum(1).pow(2).sum(1)                                # ∇b_i = Σ_t g_it, (B,)
    return sq


class _Linear:
    """One nn.Linear call: inputs a (B, T, d), per-example output gradients g (B, T, p)."""

    def __init__(self, m: nn.Linear, a: torch.Tensor, g: torch.Tensor):
        B = a.shape[0]
        self.m, self.a, self.g = m, a.reshape(B, -1, a.shape[-1]), g.reshape(B, -1, g.shape[-1])

    def sq_norms(self) -> torch.Tensor:
        return layer_sq_norms(self.a, self.g, _trains(self.m.bias))     # (B,)

    def clipped(self, factor: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(Σ_i c_i g_iᵀ a_i, Σ_i c_i Σ_t g_it): book-keeping, one matmul (Bu et al. 2023)."""
        cg = self.g * factor[:, None, None]                             # (B, T, p)
        w = cg.reshape(-1, cg.shape[-1]).T @ self.a.reshape(-1, self.a.shape[-1])   # (B·T, p)ᵀ (B·T, d) -> (p, d)
        return w, cg.sum((0, 1)) if _trains(self.m.bias) else None


class _Conv2d:
    """One nn.Conv2d call: inputs a (B, C, H, W), per-example output gradients g (B, C', H', W')."""

    def __init__(self, m: nn.Conv2d, a: torch.Tensor, g: torch.Tensor):
        self.m, self.a, self.g = m, a, g

    def _weight_grad(self, a: torch.Tensor, g: torch.Tensor, groups: int) -> torch.Tensor:
        m = self.m
        shape = (g.shape[1], a.shape[1] // groups, *m.kernel_size)
        return torch.nn.grad.conv2d_weight(a, shape, g, m.stride, m.padding, m.dilation, groups)

    def sq_norms(self) -> torch.Tensor:
        B, C, H, W = self.a.shape
        T = self.g.shape[2] * self.g.shape[3]
        d, p = C * self.m.kernel_size[0] * self.m.kernel_size[1], self.g.shape[1]
        if T * (d + p) < d * p:                                         # ghost norm on unfolded inputs
            cols = F.unfold(self.a, self.m.kernel_size, dilation=self.m.dilation, padding=self.m.padding,
                            stride=self.m.stride).transpose(1, 2)       # (B, T, d)
            return layer_sq_norms(cols, self.g.flatten(2).transpose(1, 2), _trains(self.m.bias))
        # every example's weight gradient at once: a grouped convolution with the batch as the groups; kept, so
        # the clipped sum is a (B,)-weighted sum of them rather than a second weight-gradient convolution
        per = self._weight_grad(self.a.reshape(1, B * C, H, W), self.g.reshape(1, B * p, *self.g.shape[2:]), B)
        self.per = per.reshape(B, -1)                                   # (B·p, C, kh, kw) -> (B, p·C·kh·kw)
        sq = self.per.pow(2).sum(1)                                     # (B,)
        if _trains(self.m.bias):
            sq = sq + self.g.sum((2, 3)).pow(2).sum(1)                  # ∇b_i = Σ_hw g_i, (B,)
        return sq

    def clipped(self, factor: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Σ_i c_i ∇W_i as one weight-gradient convolution of the re-weighted output gradients (book-keeping)."""
        cg = self.g * factor[:, None, None, None]                       # (B, C', H', W')
        bias = cg.sum((0, 2, 3)) if _trains(self.m.bias) else None
        if getattr(self, "per", None) is not None:
            return factor.to(self.per.dtype) @ self.per, bias          # (B,) @ (B, p·d) -> (p·d,)
        return self._weight_grad(self.a, cg, 1), bias


def _trains(p: torch.Tensor | None) -> bool:
    return p is not None and p.requires_grad


def ghost_clipped_sum(model: nn.Module, loss_fn: Callable[[nn.Module, Any], Any], batch: Any,
                      max_grad_norm: float) -> tuple[dict[str, torch.Tensor], torch.Tensor, dict[str, Any]]:
    """(name -> Σ_i min(1, C/‖∇θ_i‖) ∇θ_i, mean loss, metrics) with one backward (Bu et al. 2023, book-keeping).

    ``loss_fn(model, batch)`` returns the *mean* of per-example losses (or ``(mean, metrics)``), as the loop's
    loss functions do; per-example output gradients are B × the mean loss's.
    """
    layers = [m for m in model.modules()
              if (isinstance(m, nn.Linear) or isinstance(m, nn.Conv2d)) and any(p.requires_grad for p in
                                                                                 m.parameters(recurse=False))]
    seen: dict[nn.Module, list[tuple[torch.Tensor, torch.Tensor, int]]] = {m: [] for m in layers}

    def save(m: nn.Module, inputs: tuple, out: torch.Tensor) -> None:
        seen[m].append((inputs[0].detach(), out, out._version))

    handles = [m.register_forward_hook(save) for m in layers]
    try:
        out = loss_fn(model, batch)
    finally:
        for h in handles:
            h.remove()
    loss, metrics = (out[0], out[1]) if isinstance(out, tuple) else (out, {})
    calls = {m: len(v) for m, v in seen.items()}
    if any(n != 1 for n in calls.values()):
        raise ValueError("ghost clipping needs each Linear/Conv2d called exactly once per forward (no weight "
                         "sharing); use the per-example (torch.func) path")
    outputs = [seen[m][0][1] for m in layers]
    if any(o._version != v for o, (_, _, v) in zip(outputs, (seen[m][0] for m in layers))):
        raise ValueError("a layer output was modified in place (e.g. ReLU(inplace=True)); ghost clipping needs the "
                         "outputs intact: use inplace=False or the per-example path")
    B = outputs[0].shape[0]
    grads = torch.autograd.grad(loss, outputs, allow_unused=True)       # ∂L/∂out, no weight gradients
    calls = []
    for m, o, g in zip(layers, outputs, grads):
        g = torch.zeros_like(o) if g is None else g * B                 # per-example ∂ℓ_i/∂out
        calls.append((_Conv2d if isinstance(m, nn.Conv2d) else _Linear)(m, seen[m][0][0], g))
    sq = torch.stack([c.sq_norms() for c in calls]).sum(0)              # (B,)
    factor = (max_grad_norm / (sq.sqrt() + 1e-6)).clamp(max=1.0)        # (B,) Abadi 2016 Alg. 1 clip factor
    names = {p: n for n, p in ps.trainable_parameters(model).items()}
    summed: dict[str, torch.Tensor] = {}
    for c in calls:
        w, b = c.clipped(factor)
        if c.m.weight.requires_grad:
            summed[names[c.m.weight]] = w.reshape(c.m.weight.shape)
        if b is not None:
            summed[names[c.m.bias]] = b
    return summed, loss.detach(), metrics


def ghost_dp_loss(max_grad_norm: float, expected_batch: float,
                  loss_fn: Callable[[nn.Module, Any], Any]) -> Callable[[nn.Module, Any], Any]:
    """A loop loss whose ``.backward()`` leaves Σ_i c_i ∇θ_i / (qN) in ``p.grad`` and whose value is the plain mean
    loss: the ghost-clipped sum enters as Σ_p ⟨θ_p, G_p⟩ − its detached value (DP-SGD's normaliser, Opacus')."""
    def dp_loss(model: nn.Module, batch: Any) -> Any:
        summed, loss, metrics = ghost_clipped_sum(model, loss_fn, batch, max_grad_norm)
        params = ps.trainable_parameters(model)
        linear = sum((params[n] * (g / expected_batch)).sum() for n, g in summed.items())   # () ; ∂/∂θ = G/(qN)
        surrogate = linear - linear.detach() + loss                      # value: the mean loss
        return (surrogate, metrics) if metrics else surrogate
    return dp_loss
