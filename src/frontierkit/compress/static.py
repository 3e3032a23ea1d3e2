"""Static INT8 post-training quantization executed with FBGEMM's int8 kernels.

Jacob et al. (2018, "Quantization and Training of Neural Networks for Efficient Integer-Arithmetic-Only
Inference", eq. 1: r = S (q - Z)) and Krishnamoorthi (2018, "Quantizing deep convolutional networks for
efficient inference: A whitepaper", §3): activations are per-tensor affine uint8 with a scale and zero
point fixed ahead of time by calibration observers (min-max, percentile, or the MSE-optimal clipping
range), weights are per-output-channel symmetric int8, and BatchNorm is folded into the preceding
convolution (whitepaper §3.2) before quantization.

Each Conv2d / Linear becomes a :class:`StaticInt8Conv2d` / :class:`StaticInt8Linear`: the float input is
quantized with the calibrated (S_in, Z_in), ``quantized::conv2d`` / ``quantized::linear`` compute the
int8 x uint8 -> int32 product and requantize to the calibrated (S_out, Z_out), and the result is
dequantized for the next (float) op (ReLU, pooling, residual adds stay float). Activations use 7 bits
([0, 127], ``reduce_range`` as torch.ao on x86: FBGEMM's AVX2 uint8 x int8 pair sums can saturate at 8).
"""
from __future__ import annotations

import copy
import warnings
from typing import Any, Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .quantize import _pack_fbgemm, _repack_after_load, _set_module, named_modules_of, record_transform, symmetric_int8

__all__ = ["Observer", "OBSERVERS", "affine_qparams", "fake_quant_affine", "fold_bn", "fold_batchnorms",
           "StaticInt8Conv2d", "StaticInt8Linear", "calibrate", "quantize_static", "convert_static",
           "apply_static_int8"]

OBSERVERS = ("minmax", "percentile", "mse")
QMIN, QMAX = 0, 127                                   # uint8 activations, reduce_range (7 bits)
MAX_SAMPLES = 1 << 20                                 # values kept per observer for percentile / MSE


# -- observers ----------------------------------------------------------------------------------------
def affine_qparams(lo: float, hi: float, qmin: int = QMIN, qmax: int = QMAX) -> tuple[float, int]:
    """Jacob et al. 2018 eq. 1 parameters for [lo, hi] (widened to hold 0 exactly): S, Z."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    scale = max((hi - lo) / (qmax - qmin), 1e-8)
    zero = int(np.clip(round(qmin - lo / scale), qmin, qmax))
    return scale, zero


def fake_quant_affine(x: torch.Tensor, scale: float, zero: int, qmin: int = QMIN, qmax: int = QMAX) -> torch.Tensor:
    """Quantise-dequantise r -> S (clamp(round(r / S) + Z) - Z) (Jacob et al. 2018 eq. 1), no gradient."""
    return (torch.clamp(torch.round(x / scale) + zero, qmin, qmax) - zero) * scale


def quant_mse(x: torch.Tensor, lo: float, hi: float) -> float:
    """Mean squared quantisation error of ``x`` with the range [lo, hi] (Krishnamoorthi 2018 §3.1)."""
    s, z = affine_qparams(lo, hi)
    return float(((fake_quant_affine(x, s, z) - x) ** 2).mean())


class Observer:
    """Calibration range of a tensor stream: min-max, percentile (of all seen values) or the MSE-optimal
    clip of the min-max range over a grid (Krishnamoorthi 2018 §3.1, "calibration")."""

    def __init__(self, kind: str = "minmax", percentile: float = 99.99, grid: int = 100):
        if kind not in OBSERVERS:
            raise ConfigError(f"observer={kind!r} is unknown; use one of {OBSERVERS}")
        self.kind, self.percentile, self.grid = kind, percentile, grid
        self.lo, self.hi, self.samples = float("inf"), float("-inf"), []

    def update(self, x: torch.Tensor) -> None:
        x = x.detach().float().flatten()                                     # (n,)
        self.lo, self.hi = min(self.lo, float(x.min())), max(self.hi, float(x.max()))
        if self.kind != "minmax":
            if x.numel() > MAX_SAMPLES:                                      # deterministic stride subsample
                x = x[:: -(-x.numel() // MAX_SAMPLES)]
            self.samples.append(x)

    def range(self) -> tuple[float, float]:
        """(lo, hi) by the observer's rule."""
        if self.lo == float("inf"):
            raise ConfigError("observer saw no data: pass at least one calibration batch")
        if self.kind == "minmax":
            return self.lo, self.hi
        x = torch.cat(self.samples)                                          # (n,)
        if self.kind == "percentile":
            lo, hi = np.percentile(x.numpy(), [100 - self.percentile, self.percentile])
            return float(lo), float(hi)
        return self._mse_range(x)

    def _mse_range(self, x: torch.Tensor) -> tuple[float, float]:
        """argmin over alpha in (0, 1] of quant_mse(x, alpha lo, alpha hi) (alpha = 1 is min-max)."""
        alphas = torch.linspace(1.0 / self.grid, 1.0, self.grid).tolist()
        errs = [quant_mse(x, a * self.lo, a * self.hi) for a in alphas]
        a = alphas[int(np.argmin(errs))]
        return a * self.lo, a * self.hi


# -- conv + BN folding --------------------------------------------------------------------------------
@torch.no_grad()
def fold_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """Krishnamoorthi 2018 §3.2 (Jacob et al. 2018 §3.2): w' = w γ/σ, b' = (b − μ) γ/σ + β, σ = √(var + ε)."""
    folded = copy.deepcopy(conv)
    k = bn.weight / torch.sqrt(bn.running_var + bn.eps)                     # (C_out,) γ/σ
    folded.weight.copy_(conv.weight * k[:, None, None, None])                # (C_out, C_in/g, kh, kw)
    b = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    folded.bias = nn.Parameter((b - bn.running_mean) * k + bn.bias)          # (C_out,)
    return folded


def _conv_bn_pairs(model: nn.Module) -> list[tuple[str, str]]:
    """(conv, bn) names of every Conv2d whose only consumer is a BatchNorm2d: from the torch.fx graph, or,
    when the model does not trace, Conv2d then BatchNorm2d inside an nn.Sequential."""
    try:
        graph = torch.fx.symbolic_trace(model).graph
    except Exception:                                   # untraceable forward: fall back to Sequential order
        return _sequential_conv_bn_pairs(model)
    mods = dict(model.named_modules())
    pairs = []
    for node in graph.nodes:
        if node.op == "call_module" and isinstance(mods.get(node.target), nn.Conv2d) and len(node.users) == 1:
            user = next(iter(node.users))
            if user.op == "call_module" and isinstance(mods.get(user.target), nn.BatchNorm2d):
                pairs.append((str(node.target), str(user.target)))
    return pairs


def _sequential_conv_bn_pairs(model: nn.Module) -> list[tuple[str, str]]:
    """(conv, bn) names of every Conv2d directly followed by a BatchNorm2d inside an nn.Sequential."""
    pairs = []
    for name, seq in model.named_modules():
        if isinstance(seq, nn.Sequential):
            kids = list(seq.named_children())
            for (a, m), (b, n) in zip(kids, kids[1:]):
                if isinstance(m, nn.Conv2d) and isinstance(n, nn.BatchNorm2d):
                    pre = f"{name}." if name else ""
                    pairs.append((pre + a, pre + b))
    return pairs


def fold_batchnorms(model: nn.Module, pairs: Iterable[tuple[str, str]] | None = None) -> nn.Module:
    """Fold each (conv, bn) pair in place (bn -> Identity); default pairs: every conv feeding only a BN (fx
    graph; Sequential order when the model does not trace). Pass ``pairs`` to choose them yourself."""
    pairs = [tuple(p) for p in (_conv_bn_pairs(model) if pairs is None else pairs)]
    for c, b in pairs:
        _set_module(model, c, fold_bn(model.get_submodule(c), model.get_submodule(b)))
        _set_module(model, b, nn.Identity())
    setattr(model, "_folded_pairs", [*getattr(model, "_folded_pairs", []), *pairs])
    return model


# -- int8 modules -------------------------------------------------------------------------------------
class _StaticInt8(nn.Module):
    """Shared buffers: int8 weight codes + per-channel scales, bias, input/output (scale, zero point)."""

    def _buffers_for(self, wshape: tuple[int, ...]) -> None:
        self.register_buffer("weight_int8", torch.zeros(wshape, dtype=torch.int8))
        self.register_buffer("weight_scale", torch.ones(wshape[0]))
        self.register_buffer("bias", torch.zeros(wshape[0]))
        self.register_buffer("act_qparams", torch.tensor([1.0, 0.0, 1.0, 0.0]))   # S_in, Z_in, S_out, Z_out
        self._packed = None
        self.register_load_state_dict_post_hook(_repack_after_load)

    def _set(self, w: torch.Tensor, bias: torch.Tensor | None, in_range, out_range) -> "_StaticInt8":
        q, s = symmetric_int8(w.detach().float().flatten(1))                 # (N, K), (N,)
        self.weight_int8, self.weight_scale = q.view(w.shape), s
        if bias is not None:
            self.bias = bias.detach().float().clone()
        self.act_qparams = torch.tensor([*affine_qparams(*in_range), *affine_qparams(*out_range)], dtype=torch.float)
        return self.repack()

    def _qweight(self) -> torch.Tensor:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)    # quantized tensors are deprecated; kernels stay
            zeros = torch.zeros_like(self.weight_scale, dtype=torch.long)
            return torch._make_per_channel_quantized_tensor(self.weight_int8, self.weight_scale.double(), zeros, 0)

    def dequantized_weight(self) -> torch.Tensor:
        return self.weight_int8.float() * self.weight_scale.view(-1, *[1] * (self.weight_int8.dim() - 1))

    def _run(self, x: torch.Tensor, op) -> torch.Tensor:
        s_in, z_in, s_out, z_out = self.act_qparams.tolist()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            qx = torch.quantize_per_tensor(x.float().contiguous(), s_in, int(z_in), torch.quint8)
            return op(qx, self._packed, s_out, int(z_out)).dequantize().to(x.dtype)


class StaticInt8Conv2d(_StaticInt8):
    """quant(x; S_in, Z_in) -> FBGEMM ``quantized::conv2d`` (int8 per-channel weights) -> requant(S_out, Z_out)
    -> dequant (Jacob et al. 2018 §2.2-2.4)."""

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        if conv.padding_mode != "zeros" or isinstance(conv.padding, str):
            raise ConfigError(f"quantize_static: Conv2d padding={conv.padding!r}/{conv.padding_mode} is not "
                              f"supported; use numeric zero padding")
        self.stride, self.padding = list(conv.stride), list(conv.padding)
        self.dilation, self.groups = list(conv.dilation), conv.groups
        self._buffers_for(tuple(conv.weight.shape))

    @classmethod
    def from_float(cls, conv: nn.Conv2d, in_range, out_range) -> "StaticInt8Conv2d":
        return cls(conv)._set(conv.weight, conv.bias, in_range, out_range)

    def repack(self) -> "StaticInt8Conv2d":
        self._packed = torch.ops.quantized.conv2d_prepack(self._qweight(), self.bias, self.stride, self.padding,
                                                          self.dilation, self.groups)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu":                      # FBGEMM is CPU-only: dequantized fallback elsewhere
            return F.conv2d(x, self.dequantized_weight().to(x), self.bias.to(x), self.stride, self.padding,
                            self.dilation, self.groups)
        return self._run(x, torch.ops.quantized.conv2d)                     # (B, C_out, H', W')

    def extra_repr(self) -> str:
        return f"{tuple(self.weight_int8.shape)}, stride={self.stride}, padding={self.padding}, int8 static"


class StaticInt8Linear(_StaticInt8):
    """quant(x) -> FBGEMM ``quantized::linear`` (int8 per-channel weights) -> requant -> dequant."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self._buffers_for((linear.out_features, linear.in_features))

    @classmethod
    def from_float(cls, linear: nn.Linear, in_range, out_range) -> "StaticInt8Linear":
        return cls(linear)._set(linear.weight, linear.bias, in_range, out_range)

    def repack(self) -> "StaticInt8Linear":
        self._packed = _pack_fbgemm(self.weight_int8, self.weight_scale, self.bias)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu":
            return F.linear(x, self.dequantized_weight().to(x), self.bias.to(x))
        shape = x.shape
        y = self._run(x.reshape(-1, self.in_features), torch.ops.quantized.linear)   # (M, N)
        return y.view(*shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8 static"


# -- calibration and conversion -----------------------------------------------------------------------
@torch.no_grad()
def calibrate(model: nn.Module, batches: Iterable[torch.Tensor], names: list[str],
              observer: str = "minmax", **kw: Any) -> dict[str, tuple[Observer, Observer]]:
    """Run ``batches`` through ``model``, observing each named layer's input and output (Jacob et al. 2018 §3)."""
    obs = {n: (Observer(observer, **kw), Observer(observer, **kw)) for n in names}

    def hook(n: str):
        def observe(_m: nn.Module, inputs: tuple, out: torch.Tensor) -> None:
            obs[n][0].update(inputs[0])
            obs[n][1].update(out)
        return observe
    hooks = [model.get_submodule(n).register_forward_hook(hook(n)) for n in names]
    model.eval()
    try:
        for x in batches:
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return obs


def convert_static(model: nn.Module, ranges: dict[str, tuple[tuple[float, float], tuple[float, float]]]) -> nn.Module:
    """Swap each named Conv2d / Linear for its int8 module with the given (input, output) ranges (in place)."""
    with torch.no_grad():
        for n, (rin, rout) in ranges.items():
            m = model.get_submodule(n)
            cls = StaticInt8Conv2d if isinstance(m, nn.Conv2d) else StaticInt8Linear
            _set_module(model, n, cls.from_float(m, rin, rout))
    spec = {"name": "compress.static_int8", "folded": [list(p) for p in getattr(model, "_folded_pairs", [])],
            "layers": sorted(ranges)}
    return record_transform(model, spec)


def quantize_static(model: nn.Module, calib_batches: Iterable[torch.Tensor], observer: str = "minmax",
                    skip: Iterable[str] = (), bn_pairs: Iterable[tuple[str, str]] | None = None,
                    **observer_kw: Any) -> nn.Module:
    """Static INT8 PTQ (Jacob et al. 2018; Krishnamoorthi 2018 §3): a copy of ``model`` with BN folded,
    activations calibrated by ``observer`` (minmax | percentile | mse) and Conv2d / Linear on FBGEMM int8."""
    model = fold_batchnorms(copy.deepcopy(model).eval(), bn_pairs)
    names = named_modules_of(model, (nn.Conv2d, nn.Linear), skip)
    obs = calibrate(model, calib_batches, names, observer, **observer_kw)
    return convert_static(model, {n: (i.range(), o.range()) for n, (i, o) in obs.items()})


def apply_static_int8(model: nn.Module, spec: dict[str, Any]) -> nn.Module:
    """Registry transform ``compress.static_int8``: fold the same BNs, swap in empty int8 modules (then loaded)."""
    fold_batchnorms(model, [tuple(p) for p in spec.get("folded", [])])
    for n in spec["layers"]:
        m = model.get_submodule(n)
        q = StaticInt8Conv2d(m) if isinstance(m, nn.Conv2d) else StaticInt8Linear(m)
        _set_module(model, n, q.repack())
    return record_transform(model, spec)
