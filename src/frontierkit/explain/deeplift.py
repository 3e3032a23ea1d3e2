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


class _Multiplied(torch.autograd.Function):
    """Forward: return the precomputed ``y``; backward: grad_x = grad_y * m (element-wise)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, y: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(m)
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (m,) = ctx.saved_tensors
        return grad * m, None, None


def with_multiplier(y: torch.Tensor, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Value ``y``, gradient w.r.t. ``x`` = ``m`` (element-wise, same shape as x and y)."""
    return _Multiplied.apply(x, y.detach(), m.detach())


class Pairing:
    """Rows of a (n + K, ...) batch: n = m*K explained rows, row j*K + k paired with reference row k
    of the last K (the layout DeepExplainer builds: each input tiled K times, references once)."""

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

    def grouped(self, x: torch.Tensor) -> torch.Tensor:
        """(n, ...) -> (n/K, K, ...) so that [:, k] lines up with reference k (broadcast r[None])."""
        return x.reshape(self.n // self.k, self.k, *x.shape[1:])

    def expand(self, ref: torch.Tensor) -> torch.Tensor:
        """(K, ...) reference values -> (n, ...) aligned with the input rows (detached copy)."""
        return ref.detach().repeat(self.n // self.k, *([1] * (ref.ndim - 1)))


def slope(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """f'(x) element-wise (f element-wise), by autograd."""
    with torch.enable_grad():
        xg = x.detach().clone().requires_grad_(True)
        return torch.autograd.grad(f(xg + 0).sum(), xg)[0]


def rescale_multiplier(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, y: torch.Tensor,
                       r: torch.Tensor, yr: torch.Tensor, eps: float) -> torch.Tensor:
    """m = (f(x) - f(r)) / (x - r), f'(x) where |x - r| < eps (shapes broadcast: r may be (1, K, ...))."""
    dx = x - r
    small = dx.abs() < eps
    m = (y - yr) / torch.where(small, torch.ones_like(dx), dx)
    if bool(small.any()):                                        # rare: only the tied elements
        xs = x.expand_as(m)[small]
        m = m.masked_scatter(small, slope(f, xs)) if xs.numel() else m
    return m


def rescale_pair(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, r: torch.Tensor,
                 eps: float) -> torch.Tensor:
    """f(x) with gradient m = (f(x) - f(r)) / (x - r); x and r of the same shape."""
    xd = x.detach()
    y, yr = f(xd.clone()), f(r.clone())                          # clones: an in-place f is harmless
    return with_multiplier(y, x, rescale_multiplier(f, xd, y, r, yr, eps))


def rescale(f: Callable[[torch.Tensor], torch.Tensor], t: torch.Tensor, pairing: Pairing,
            eps: float) -> torch.Tensor:
    """Rescale rule for an element-wise f on a paired batch; reference rows carry values only."""
    x, r = pairing.split(t)
    xd, rd = x.detach(), r.detach()
    y, yr = f(xd.clone()), f(rd.clone())                         # (n, ...), (K, ...)
    m = rescale_multiplier(f, pairing.grouped(xd), pairing.grouped(y), rd[None], yr[None], eps)
    return torch.cat([with_multiplier(y, x, m.reshape(y.shape)), yr])


class _FoldedMultiplier(torch.autograd.Function):
    """Max-pool value ``y`` (n, C, Ho, Wo); backward folds grad * M over the window entries."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, y: torch.Tensor, M: torch.Tensor, fold: dict) -> torch.Tensor:
        ctx.save_for_backward(M)
        ctx.fold, ctx.x_shape = fold, x.shape
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (M,) = ctx.saved_tensors
        n, C, H, W = ctx.x_shape
        if ctx.fold is None:                                     # tiling windows: M is (n, C, Ho, kh, Wo, kw)
            Ho, kh, Wo, kw = M.shape[2:]
            gx = (grad[:, :, :, None, :, None] * M).reshape(n, C, Ho * kh, Wo * kw)
            return F.pad(gx, (0, W - Wo * kw, 0, H - Ho * kh)), None, None, None
        g = grad.reshape(n * C, 1, -1) * M                       # (nC, K, L)
        gx = F.fold(g, output_size=(H, W), **ctx.fold)           # overlapping windows are summed
        return gx.view(n, C, H, W), None, None, None


def max_pool2d_rule(t: torch.Tensor, pairing: Pairing, kernel_size: Any, stride: Any = None,
                    padding: Any = 0, dilation: Any = 1, ceil_mode: bool = False,
                    return_indices: bool = False, eps: float = 1e-10) -> torch.Tensor:
    """DeepLIFT max-pool (shap/captum rule) with overlapping windows summed, via unfold/fold."""
    if ceil_mode or return_indices:
        raise UnsupportedOpError("DeepExplainer supports max_pool2d without ceil_mode/return_indices")
    k, d, p = _pair(kernel_size), _pair(dilation), _pair(padding)
    s = _pair(stride if stride not in (None, [], ()) else kernel_size)
    x, r = pairing.split(t)
    xd, rd = x.detach(), r.detach()
    n, C, H, W = xd.shape

    tiling = s == k and not any(p) and d == (1, 1)              # windows tile the image: reshape, no unfold
    Ho, Wo = (H - k[0]) // s[0] + 1, (W - k[1]) // s[1] + 1

    def windows(v: torch.Tensor) -> torch.Tensor:              # (B, C, H, W) -> (B*C, K, L)
        if tiling:
            v = v[:, :, :Ho * k[0], :Wo * k[1]].reshape(v.shape[0], v.shape[1], Ho, k[0], Wo, k[1])
            return v.permute(0, 1, 3, 5, 2, 4).reshape(-1, k[0] * k[1], Ho * Wo)
        if any(p):
            v = F.pad(v, (p[1], p[1], p[0], p[0]), value=float("-inf"))
        return F.unfold(v.reshape(-1, 1, *v.shape[2:]), k, dilation=d, stride=s)

    ci = windows(xd)                                             # (nC, K, L)
    cr = windows(rd)                                             # (KC, K, L) each reference once
    m_, KC = n // pairing.k, cr.shape[0]
    ci4 = ci.view(m_, KC, *ci.shape[1:])                         # (m, KC, K, L)
    yi, a = ci4.max(2, keepdim=True)                             # input's max and argmax
    yr, b = cr.max(1, keepdim=True)                              # reference's max and argmax (KC, 1, L)
    yr, b = yr[None], b[None].expand_as(a)
    cross = torch.maximum(yi, yr)
    t_in, t_ref = cross - yr, yi - cross                         # parts of Delta y: >= 0 and <= 0
    diff = ci4 - cr[None]                                        # (m, KC, K, L) Delta x per window entry
    d_in, d_ref = diff.gather(2, a), diff.gather(2, b)           # Delta x at the two argmaxes
    M = (torch.zeros_like(diff).scatter_add_(2, a, _safe_div(t_in, d_in, eps))
         .scatter_add_(2, b, _safe_div(t_ref, d_ref, eps)))     # multipliers per window entry
    y = F.max_pool2d(xd, k, s, p, d)                             # (n, C, Ho, Wo)
    if tiling:                                                   # (n, C, Ho, kh, Wo, kw) for a broadcast backward
        M, fold = M.view(n, C, k[0], k[1], Ho, Wo).permute(0, 1, 4, 2, 5, 3).contiguous(), None
    else:
        M, fold = M.view(n * C, *M.shape[2:]), {"kernel_size": k, "dilation": d, "padding": p, "stride": s}
    y_x = _FoldedMultiplier.apply(x, y, M, fold)
    return torch.cat([y_x, F.max_pool2d(rd, k, s, p, d)])


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
