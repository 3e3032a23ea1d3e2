"""SHAP values (Lundberg & Lee, 2017, "A Unified Approach to Interpreting Model Predictions"):

- ``DeepExplainer``: DeepSHAP = DeepLIFT's rescale rule (Shrikumar et al., 2017) with each background
  row as a reference, averaged over the background (Lundberg & Lee, sec. 4.2). Exact additivity:
  sum_i phi_i = f(x) - E[f(background)] (see ``deeplift.py`` for the per-op rules).
- ``GradientExplainer``: expected gradients (Erion et al., 2021, "Improving performance of deep
  learning models with axiomatic attribution priors", eq. 4), i.e. Integrated Gradients averaged over
  background references and random path points.
- ``KernelExplainer``: Kernel SHAP (Lundberg & Lee, 2017, theorem 2): Shapley-kernel weighted linear
  regression over feature coalitions, with the efficiency constraint, for any callable.
- ``exact_shapley``: Shapley values by enumerating all 2^M coalitions (Shapley, 1953), the invariant
  Kernel SHAP must reproduce when every coalition is evaluated.

Attributions come back as tensors (Deep/Gradient) or arrays (Kernel) shaped like the inputs with a
trailing outputs axis when no ``target`` is given, as in shap >= 0.45.
"""
from __future__ import annotations

import itertools
import math
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from ..errors import FrontierError
from .deeplift import deeplift_rules
from .gradcam import class_targets


class AdditivityError(FrontierError):
    """sum(SHAP values) differs from f(x) - E[f(background)] by more than the tolerance."""


def _outputs_2d(out: torch.Tensor) -> torch.Tensor:
    return out[:, None] if out.ndim == 1 else out.flatten(1)


class _eval_mode:
    """Put a module in eval mode (BatchNorm running stats, no dropout) and restore its mode after."""

    def __init__(self, model: nn.Module):
        self.model = model

    def __enter__(self) -> nn.Module:
        self.modes = [(m, m.training) for m in self.model.modules()]
        return self.model.eval()

    def __exit__(self, *exc: Any) -> None:
        for m, mode in self.modes:
            m.training = mode


class DeepExplainer:
    """DeepSHAP (Lundberg & Lee, 2017, sec. 4.2): DeepLIFT-rescale attributions averaged over references."""

    def __init__(self, model: nn.Module, background: torch.Tensor, *, eps: float = 1e-6,
                 max_rows: int = 8192, check_additivity: bool = True, tolerance: float = 1e-4):
        self.model, self.background = model, background.detach()
        self.eps, self.max_rows = eps, max_rows
        self.check_additivity, self.tolerance = check_additivity, tolerance
        with torch.no_grad(), _eval_mode(model):
            self.background_outputs = _outputs_2d(model(self.background))   # (K, C)
        self.expected_value = self.background_outputs.mean(0)               # (C,)

    def _chunk(self, x: torch.Tensor, targets: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """phi (m, *in, C') and f(x) (m, C) for a chunk of m inputs against all K references."""
        m, K = x.shape[0], self.background.shape[0]
        xs = x.repeat_interleave(K, 0)                                 # (mK, *in)  x_j paired with ...
        rs = self.background.repeat(m, *([1] * (x.ndim - 1)))          # (mK, *in)  ... every b_k
        inp = torch.cat([xs, self.background]).requires_grad_(True)    # (mK + K, *in) references once
        with torch.enable_grad(), deeplift_rules(m * K, K, eps=self.eps):
            out = _outputs_2d(self.model(inp))[: m * K]                # (mK, C) outputs for x
        delta_x = (xs - rs).unsqueeze(-1)                              # (mK, *in, 1)
        if targets is not None:
            columns = [out.gather(1, targets.repeat_interleave(K)[:, None]).sum()]
        else:
            columns = [out[:, c].sum() for c in range(out.shape[1])]
        grads = [torch.autograd.grad(s, inp, retain_graph=i < len(columns) - 1)[0][: m * K]
                 for i, s in enumerate(columns)]                       # C' x (mK, *in)
        phi = (torch.stack(grads, -1) * delta_x)                       # (mK, *in, C')
        phi = phi.view(m, K, *phi.shape[1:]).mean(1)                   # (m, *in, C')
        return phi.detach(), out.detach().view(m, K, -1)[:, 0]

    def shap_values(self, x: torch.Tensor, target: int | torch.Tensor | list[int] | None = None
                    ) -> torch.Tensor:
        """(n, *in, C) SHAP values for every output, or (n, *in) for ``target`` (int or (n,) classes)."""
        K = self.background.shape[0]
        per = max(1, self.max_rows // K - 1)
        phis, fxs = [], []
        with _eval_mode(self.model):
            targets = None
            if target is not None:
                with torch.no_grad():
                    targets = class_targets(_outputs_2d(self.model(x)), target)
            for i in range(0, x.shape[0], per):
                t = None if targets is None else targets[i:i + per]
                phi, fx = self._chunk(x[i:i + per].detach(), t)
                phis.append(phi)
                fxs.append(fx if t is None else fx.gather(1, t[:, None]))
        phi, fx = torch.cat(phis), torch.cat(fxs)
        base = self.expected_value if targets is None else self.expected_value[targets][:, None]
        if self.check_additivity:
            check_additivity(phi, fx - base, self.tolerance)
        return phi if targets is None else phi[..., 0]


def check_additivity(phi: torch.Tensor, delta: torch.Tensor, tolerance: float) -> float:
    """max |sum_i phi_i - (f(x) - E f(b))| over rows and outputs; raises AdditivityError above ``tolerance``."""
    sums = phi.flatten(1, -2).sum(1) if phi.ndim > 2 else phi.sum(1, keepdim=True)   # (n, C)
    err = float((sums - delta).abs().max())
    if err > tolerance:
        raise AdditivityError(f"SHAP values do not add up: max |sum(phi) - (f(x) - E f(b))| = {err:.3g} "
                              f"> {tolerance:g}; the model likely uses an op without an exact DeepLIFT rule")
    return err


class GradientExplainer:
    """Expected gradients (Erion et al., 2021, eq. 4): E_{b, a~U(0,1)}[(x - b) * grad f(b + a (x - b))]."""

    def __init__(self, model: nn.Module, background: torch.Tensor, *, max_rows: int = 4096):
        self.model, self.background, self.max_rows = model, background.detach(), max_rows
        with torch.no_grad(), _eval_mode(model):
            self.expected_value = _outputs_2d(model(self.background)).mean(0)   # (C,)

    def shap_values(self, x: torch.Tensor, target: int | torch.Tensor | list[int] | None = None, *,
                    nsamples: int = 200, seed: int = 0) -> torch.Tensor:
        """(n, *in, C) or, with ``target``, (n, *in): Monte-Carlo estimate with ``nsamples`` draws per input."""
        g = torch.Generator().manual_seed(seed)
        n, K = x.shape[0], self.background.shape[0]
        idx = torch.randint(0, K, (n, nsamples), generator=g)             # background draws
        alpha = torch.rand(n, nsamples, generator=g)                      # path positions
        with _eval_mode(self.model):
            targets = None
            if target is not None:
                with torch.no_grad():
                    targets = class_targets(_outputs_2d(self.model(x)), target)
            out = [self._one(x[j].detach(), self.background[idx[j]], alpha[j], targets, j) for j in range(n)]
        phi = torch.stack(out)                                            # (n, *in, C')
        return phi if targets is None else phi[..., 0]

    def _one(self, x: torch.Tensor, refs: torch.Tensor, alpha: torch.Tensor, targets, j: int) -> torch.Tensor:
        """One input: mean over draws of (x - b) * grad at b + a (x - b); (*in, C')."""
        delta = x[None] - refs                                            # (S, *in)
        a = alpha.view(-1, *([1] * x.ndim))
        points = (refs + a * delta).requires_grad_(True)                  # (S, *in)
        with torch.enable_grad():
            out = _outputs_2d(self.model(points))                         # (S, C)
            cols = [out[:, int(targets[j])]] if targets is not None else [out[:, c] for c in range(out.shape[1])]
            grads = [torch.autograd.grad(c.sum(), points, retain_graph=True)[0] for c in cols]
        return torch.stack([(gr * delta).mean(0) for gr in grads], -1).detach()


# ---------------------------------------------------------------------------------------------------
# Model-agnostic: Kernel SHAP and exact Shapley values
# ---------------------------------------------------------------------------------------------------

def _as_2d(y: Any) -> np.ndarray:
    y = np.asarray(y, dtype=np.float64)
    return y[:, None] if y.ndim == 1 else y.reshape(len(y), -1)


def coalition_values(f: Callable, x: np.ndarray, background: np.ndarray, z: np.ndarray) -> np.ndarray:
    """v(z) = mean_k f(x where z else b_k) for coalitions z (S, M) -> (S, C) (interventional value)."""
    S, K = z.shape[0], background.shape[0]
    mixed = np.where(z[:, None, :], x[None, None, :], background[None, :, :])   # (S, K, M)
    out = _as_2d(f(mixed.reshape(S * K, -1)))                                  # (S*K, C)
    return out.reshape(S, K, -1).mean(1)


def exact_shapley(f: Callable, x: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Shapley (1953): phi_i = sum_S |S|!(M-|S|-1)!/M! [v(S+i) - v(S)] over all 2^M coalitions; (M, C)."""
    x, background = np.asarray(x, dtype=np.float64), np.asarray(background, dtype=np.float64)
    M = x.shape[-1]
    if M > 16:
        raise ValueError(f"exact_shapley enumerates 2^M coalitions; M={M} is too many (use KernelExplainer)")
    z = np.array(list(itertools.product([0, 1], repeat=M)), dtype=bool)      # (2^M, M)
    v = coalition_values(f, x, background, z)                                # (2^M, C)
    code = z @ (1 << np.arange(M)[::-1])                                     # row index of each coalition
    pos = np.empty(len(z), dtype=int)
    pos[code] = np.arange(len(z))
    size = z.sum(1)
    weight = np.array([math.factorial(s) * math.factorial(M - s - 1) / math.factorial(M) if s < M else 0.0
                       for s in size])
    phi = np.zeros((M, v.shape[1]))
    for i in range(M):
        bit = 1 << (M - 1 - i)
        without = ~z[:, i]
        phi[i] = (weight[without, None] * (v[pos[code[without] | bit]] - v[without])).sum(0)
    return phi


def shapley_kernel_weight(M: int, s: int) -> float:
    """Lundberg & Lee (2017) theorem 2: pi(z) = (M - 1) / (C(M, |z|) |z| (M - |z|))."""
    return (M - 1) / (math.comb(M, s) * s * (M - s))


def _coalitions(M: int, nsamples: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """All proper coalitions with kernel weights when 2^M - 2 <= nsamples; else paired kernel samples."""
    if 2 ** M - 2 <= nsamples:
        z = np.array([c for c in itertools.product([0, 1], repeat=M) if 0 < sum(c) < M], dtype=bool)
        return z, np.array([shapley_kernel_weight(M, int(s)) for s in z.sum(1)])
    sizes = np.arange(1, M)
    p = np.array([(M - 1) / (s * (M - s)) for s in sizes])
    half = nsamples // 2
    draws = rng.choice(sizes, size=half, p=p / p.sum())
    z = np.zeros((half, M), dtype=bool)
    for r, s in enumerate(draws):
        z[r, rng.choice(M, size=s, replace=False)] = True
    z = np.concatenate([z, ~z])                                             # paired (antithetic) samples
    return z, np.ones(len(z))                                               # already drawn from the kernel


def kernel_regression(z: np.ndarray, w: np.ndarray, v: np.ndarray, v0: np.ndarray, v1: np.ndarray) -> np.ndarray:
    """Weighted least squares v(z) - v0 = z @ phi subject to sum(phi) = v1 - v0 (eliminating phi_M); (M, C)."""
    zf = z.astype(np.float64)
    total = v1 - v0                                                         # (C,)
    y = (v - v0) - zf[:, -1:] * total                                       # (S, C)
    X = zf[:, :-1] - zf[:, -1:]                                             # (S, M-1)
    sw = np.sqrt(w)[:, None]
    head = np.linalg.lstsq(X * sw, y * sw, rcond=None)[0]                   # (M-1, C)
    return np.concatenate([head, total[None] - head.sum(0, keepdims=True)])


class KernelExplainer:
    """Kernel SHAP (Lundberg & Lee, 2017, theorem 2) for any ``f: (N, M) array -> (N,) or (N, C)``."""

    def __init__(self, f: Callable, background: np.ndarray):
        self.f = f
        self.background = np.asarray(background, dtype=np.float64)
        self.expected_value = _as_2d(f(self.background)).mean(0)           # (C,)

    def shap_values(self, X: np.ndarray, nsamples: int | str = "auto", seed: int = 0) -> np.ndarray:
        """(n, M, C), or (n, M) for a single-output f; exact Shapley values when 2^M - 2 <= nsamples."""
        X = np.atleast_2d(np.asarray(X, dtype=np.float64))
        M = X.shape[1]
        n_s = 2 * M + 2048 if nsamples == "auto" else int(nsamples)
        rng = np.random.default_rng(seed)
        out = []
        for x in X:
            z, w = _coalitions(M, n_s, rng)
            v = coalition_values(self.f, x, self.background, z)            # (S, C)
            fx = _as_2d(self.f(x[None]))[0]                                 # (C,)
            out.append(kernel_regression(z, w, v, self.expected_value, fx))
        phi = np.stack(out)                                                # (n, M, C)
        return phi[..., 0] if phi.shape[-1] == 1 else phi
