"""DeepLIFT's rescale rule as modified gradients (Shrikumar et al., 2017, "Learning Important Features
Through Propagating Activation Differences", sec. 3.3-3.5; Ancona et al., 2018, "Towards better
understanding of gradient-based attribution methods", sec. 3.2).

The batch is ``[x; r]``: n explained rows, then K reference rows; input row i is paired with
reference row i % K (so each reference is run once, not once per input). While ``deeplift_rules()`` is active, a
``TorchFunctionMode`` intercepts every call of a nonlinear torch function - whether it comes from an
``nn.Module`` or is called functionally, and however often a module is reused - and returns a tensor
whose *value* is the ordinary output but whose *gradient* is the DeepLIFT multiplier:

- element-wise f (ReLU, GELU, SiLU, sigmoid, tanh, ...): m = (f(x) - f(r)) / (x - r), falling back
  to f'(x) where |x - r| < eps (the rescale rule, eq. 3.3 of Shrikumar et al.);
- max-pool: per window, Delta y = (max(y, y_r) - y_r) + (y - max(y, y_r)); the first part goes to the
  input's argmax, the second to the reference's argmax (the rule of shap and captum), but the
  contributions of overlapping windows are *summed* (unfold/fold) instead of overwritten;
- log-softmax / softmax: z - c - log(sum exp(z - c)) with c = max over the pair (a constant shared by
  x and r), so exp and log take the rescale rule and sums stay linear; softmax = exp(log-softmax).

Linear maps (Linear, Conv, average pooling, eval-mode BatchNorm, reshapes, residual adds) keep their
ordinary gradient, which is already their multiplier. Each rule satisfies Delta y = sum_i m_i Delta x_i
exactly, so the chain rule preserves summation-to-delta: sum (x - r) * grad = f(x) - f(r).
Operations with no DeepLIFT rule here (LayerNorm, attention, products of two activations) raise.
"""
from __future__ import annotations

import functools
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch.nn.modules.utils import _pair
from torch.overrides import TorchFunctionMode

from ..errors import FrontierError


class UnsupportedOpError(FrontierError):
    """The model uses an operation that has no DeepLIFT rule in frontierkit."""


def with_multiplier(y: torch.Tensor, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Value ``y``, gradient w.r.t. ``x`` = ``m`` (element-wise): y + m * (x - stopgrad(x))."""
    return y.detach() + m.detach() * (x - x.detach())


class Pairing:
    """Rows of a (n + K, ...) batch: n explained rows, row i paired with reference row i % K of the last K."""

    def __init__(self, n: int, k: int):
        if n % k:
            raise ValueError(f"{n} input rows do not tile over {k} references")
        self.n, self.k = n, k

    @property
    def rows(self) -> int:
        return self.n + self.k

    def split(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(inputs (n, ...), references (K, ...))."""
        return t[: self.n], t[self.n:]

    def expand(self, ref: torch.Tensor) -> torch.Tensor:
        """(K, ...) reference values -> (n, ...) aligned with the input rows (detached)."""
        return ref.detach().repeat(self.n // self.k, *([1] * (ref.ndim - 1)))


def slope(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """f'(x) element-wise (f element-wise), by autograd."""
    with torch.enable_grad():
        xg = x.detach().clone().requires_grad_(True)
        return torch.autograd.grad(f(xg + 0).sum(), xg)[0]


def rescale_pair(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, r: torch.Tensor,
                 eps: float) -> torch.Tensor:
    """f(x) for input rows with gradient m = (f(x) - f(r)) / (x - r) (f'(x) where |x - r| < eps)."""
    xd = x.detach()
    y, yr = f(xd.clone()), f(r.clone())                          # clones: an in-place f is harmless
    dx = xd - r
    small = dx.abs() < eps
    m = (y - yr) / torch.where(small, torch.ones_like(dx), dx)
    if bool(small.any()):
        m = torch.where(small, slope(f, xd), m)
    return with_multiplier(y, x, m)


def rescale(f: Callable[[torch.Tensor], torch.Tensor], t: torch.Tensor, pairing: Pairing,
            eps: float) -> torch.Tensor:
    """Rescale rule for an element-wise f on a paired batch; reference rows carry values only."""
    x, r = pairing.split(t)
    return torch.cat([rescale_pair(f, x, pairing.expand(r), eps), f(r.detach().clone())])


def max_pool2d_rule(t: torch.Tensor, pairing: Pairing, kernel_size: Any, stride: Any = None,
                    padding: Any = 0, dilation: Any = 1, ceil_mode: bool = False,
                    return_indices: bool = False, eps: float = 1e-10) -> torch.Tensor:
    """DeepLIFT max-pool (shap/captum rule) with overlapping windows summed, via unfold."""
    if ceil_mode or return_indices:
        raise UnsupportedOpError("DeepExplainer supports max_pool2d without ceil_mode/return_indices")
    k, d, p = _pair(kernel_size), _pair(dilation), _pair(padding)
    s = _pair(stride if stride not in (None, [], ()) else kernel_size)
    x, r = pairing.split(t)
    xd, rd = x.detach(), pairing.expand(r)
    n, C, H, W = xd.shape
    pool = lambda v: F.max_pool2d(v, k, s, p, d)                 # noqa: E731
    padded = lambda v: F.pad(v, (p[1], p[1], p[0], p[0]), value=float("-inf")) if any(p) else v  # noqa: E731
    cols = lambda v: F.unfold(padded(v).reshape(n * C, 1, *padded(v).shape[2:]), k, dilation=d, stride=s)  # noqa: E731
    ci, cr = cols(xd), cols(rd)                                  # (nC, K, L) window entries
    yi, a = ci.max(1, keepdim=True)                              # input's max and argmax (nC, 1, L)
    yr, b = cr.max(1, keepdim=True)                              # reference's max and argmax
    cross = torch.maximum(yi, yr)
    t_in, t_ref = cross - yr, yi - cross                         # parts of Delta y: >= 0 and <= 0
    d_in, d_ref = (ci - cr).gather(1, a), (ci - cr).gather(1, b)  # Delta x at the two argmaxes
    M = (torch.zeros_like(ci).scatter_add_(1, a, _safe_div(t_in, d_in, eps))
         .scatter_add_(1, b, _safe_div(t_ref, d_ref, eps)))     # (nC, K, L) multipliers
    delta = F.unfold((x - xd).reshape(n * C, 1, H, W), k, dilation=d, padding=p, stride=s)   # (nC, K, L)
    y = pool(xd)                                                 # (n, C, Ho, Wo)
    y_x = y + (delta * M).sum(1).view_as(y)                      # value y, gradient fold(M * grad)
    return torch.cat([y_x, pool(r.detach())])


def _safe_div(num: torch.Tensor, den: torch.Tensor, eps: float) -> torch.Tensor:
    """num / den, 0 where |den| < eps (there |num| <= |den|, so the lost contribution is below eps)."""
    small = den.abs() < eps
    return torch.where(small, torch.zeros_like(num), num / torch.where(small, torch.ones_like(den), den))


def log_softmax_rule(t: torch.Tensor, dim: int, pairing: Pairing, eps: float) -> torch.Tensor:
    """log_softmax(z) = (z - c) - log(sum(exp(z - c))) with c shared by each pair; exp and log rescaled."""
    z, zr_rows = pairing.split(t)
    zr = pairing.expand(zr_rows)                                 # (n, ...) paired references
    c = torch.maximum(z.detach().amax(dim, keepdim=True), zr.amax(dim, keepdim=True))
    u, ur = z - c, zr - c                                        # linear: Delta u = Delta z
    e = rescale_pair(torch.exp, u, ur, eps)                      # (n, ...)
    lse = rescale_pair(torch.log, e.sum(dim, keepdim=True), torch.exp(ur).sum(dim, keepdim=True), eps)
    return torch.cat([u - lse, torch.log_softmax(zr_rows.detach(), dim)])


def softmax_rule(t: torch.Tensor, dim: int, pairing: Pairing, eps: float) -> torch.Tensor:
    """softmax = exp(log_softmax), with the rescale rule on the final exp."""
    return rescale(torch.exp, log_softmax_rule(t, dim, pairing, eps), pairing, eps)


def _dim_arg(args: tuple, kwargs: dict, ndim: int) -> int:
    dim = kwargs.get("dim", args[1] if len(args) > 1 else None)
    if dim is None:
        raise UnsupportedOpError("DeepExplainer needs softmax/log_softmax with an explicit dim")
    dim = dim % ndim
    if dim == 0:
        raise UnsupportedOpError("softmax over the batch dimension has no per-sample DeepLIFT rule")
    return dim


_ELEMENTWISE = [F.relu, torch.relu, torch.Tensor.relu, F.relu6, F.gelu, F.silu, F.elu, F.selu, F.celu,
                F.leaky_relu, F.softplus, F.mish, F.hardtanh, F.hardswish, F.hardsigmoid, F.logsigmoid,
                F.tanhshrink, F.softsign, torch.sigmoid, torch.Tensor.sigmoid, F.sigmoid, torch.tanh,
                torch.Tensor.tanh, F.tanh, torch.exp, torch.Tensor.exp, torch.special.expit]
_LOG_SOFTMAX = [F.log_softmax, torch.log_softmax, torch.Tensor.log_softmax]
_SOFTMAX = [F.softmax, torch.softmax, torch.Tensor.softmax]
_UNSUPPORTED = {F.layer_norm: "LayerNorm", F.group_norm: "GroupNorm", F.instance_norm: "InstanceNorm",
                F.scaled_dot_product_attention: "attention", F.multi_head_attention_forward: "attention",
                F.normalize: "normalize", F.max_pool1d: "max_pool1d", F.max_pool3d: "max_pool3d",
                F.adaptive_max_pool2d: "adaptive_max_pool2d", F.rms_norm: "RMSNorm"}
_PRODUCTS = {torch.mul, torch.Tensor.mul, torch.Tensor.__mul__, torch.Tensor.__rmul__, torch.div,
             torch.Tensor.div, torch.Tensor.__truediv__, torch.matmul, torch.Tensor.matmul,
             torch.Tensor.__matmul__, torch.bmm, torch.Tensor.bmm, torch.einsum}


class deeplift_rules(TorchFunctionMode):
    """Context manager: nonlinear torch calls on (n + K, ...) paired batches get DeepLIFT-rescale gradients."""

    def __init__(self, n: int, k: int, eps: float = 1e-6):
        super().__init__()
        self.pairing, self.eps = Pairing(n, k), eps

    def _paired(self, t: Any) -> bool:
        return isinstance(t, torch.Tensor) and t.ndim > 0 and t.shape[0] == self.pairing.rows and t.requires_grad

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _PRODUCTS and sum(self._paired(a) for a in args) >= 2:
            raise UnsupportedOpError(f"{getattr(func, '__name__', func)} of two activations has no "
                                     f"DeepLIFT rule; use GradientExplainer or KernelExplainer")
        if not args or not self._paired(args[0]):
            return func(*args, **kwargs)
        x, P = args[0], self.pairing
        if func in _ELEMENTWISE:
            return rescale(functools.partial(_call, func, args[1:], kwargs), x, P, self.eps)
        if func is F.max_pool2d:
            return max_pool2d_rule(x, P, *args[1:], **kwargs)
        if func in _LOG_SOFTMAX:
            return log_softmax_rule(x, _dim_arg(args, kwargs, x.ndim), P, self.eps)
        if func in _SOFTMAX:
            return softmax_rule(x, _dim_arg(args, kwargs, x.ndim), P, self.eps)
        if func in _UNSUPPORTED:
            raise UnsupportedOpError(f"{_UNSUPPORTED[func]} has no DeepLIFT rule here; explain this model "
                                     f"with GradientExplainer, KernelExplainer or integrated_gradients")
        return func(*args, **kwargs)


def _call(func: Callable, rest: tuple, kwargs: dict, t: torch.Tensor) -> torch.Tensor:
    kwargs = {k: v for k, v in kwargs.items() if k != "inplace"}
    return func(t, *rest, **kwargs)
