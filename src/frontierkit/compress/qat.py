"""Quantization-aware training (Jacob et al. 2018, "Quantization and Training of Neural Networks for
Efficient Integer-Arithmetic-Only Inference", §3; Krishnamoorthi 2018 whitepaper §3.3) with the
straight-through estimator (Bengio et al. 2013, "Estimating or Propagating Gradients Through Stochastic
Neurons": d round(x)/dx := 1 inside the clamp range, 0 outside).

BatchNorm: folded into the conv with its running statistics *before* QAT (``static.fold_batchnorms``),
i.e. the statistics are frozen from step 0 and the folded weights w γ/σ are what is fine-tuned and
fake-quantized (the whitepaper's "freeze BN statistics" variant, applied from the start). Activation
ranges start from a min-max calibration and follow an exponential moving average of each training
batch's min / max (Jacob et al. 2018 §3.1). :func:`convert_qat` yields the same FBGEMM int8 model as
``quantize_static``.
"""
from __future__ import annotations

import copy
from typing import Any, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from .quantize import _set_module, named_modules_of
from .static import QMAX, QMIN, affine_qparams, calibrate, convert_static, fold_batchnorms

__all__ = ["FakeQuantSTE", "fake_quant", "fake_quant_weight", "QATLayer", "prepare_qat", "convert_qat",
           "quantization_aware_training"]


class FakeQuantSTE(torch.autograd.Function):
    """q(x) = S (clamp(round(x/S) + Z, qmin, qmax) - Z); backward: straight-through inside the range
    (Bengio et al. 2013), zero outside (the clamp's gradient; Jacob et al. 2018 §3)."""

    @staticmethod
    def forward(ctx, x, scale, zero, qmin: int, qmax: int):
        q = torch.round(x / scale) + zero                                    # (...,) codes before clamp
        ctx.save_for_backward((q >= qmin) & (q <= qmax))
        return (torch.clamp(q, qmin, qmax) - zero) * scale

    @staticmethod
    def backward(ctx, grad):
        (inside,) = ctx.saved_tensors
        return grad * inside, None, None, None, None


def fake_quant(x: torch.Tensor, scale, zero, qmin: int = QMIN, qmax: int = QMAX) -> torch.Tensor:
    """Quantise-dequantise with a straight-through gradient (Bengio et al. 2013); scale/zero broadcast."""
    return FakeQuantSTE.apply(x, torch.as_tensor(scale, dtype=x.dtype), torch.as_tensor(zero, dtype=x.dtype),
                              qmin, qmax)


def fake_quant_weight(w: torch.Tensor) -> torch.Tensor:
    """Per-output-channel symmetric int8 fake quant, S_c = max|w_c| / 127 (Krishnamoorthi 2018 §3.3)."""
    scale = w.detach().flatten(1).abs().amax(1).clamp(min=1e-12) / 127      # (C_out,)
    return fake_quant(w, scale.view(-1, *[1] * (w.dim() - 1)), 0.0, -127, 127)   # w.shape


class QATLayer(nn.Module):
    """A Conv2d / Linear with fake-quantized input, weight and output (Jacob et al. 2018 fig. 1.1c)."""

    def __init__(self, layer: nn.Module, in_range: tuple[float, float], out_range: tuple[float, float],
                 momentum: float = 0.1):
        super().__init__()
        self.layer, self.momentum = layer, momentum
        self.register_buffer("in_range", torch.tensor(in_range, dtype=torch.float))    # (2,) lo, hi
        self.register_buffer("out_range", torch.tensor(out_range, dtype=torch.float))  # (2,)

    def _fq(self, x: torch.Tensor, rng: torch.Tensor) -> torch.Tensor:
        """Fake-quantize an activation; in training, first move its range toward this batch's (EMA)."""
        if self.training:
            with torch.no_grad():
                rng.lerp_(torch.stack([x.min(), x.max()]).float(), self.momentum)
        return fake_quant(x, *affine_qparams(*rng.tolist()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._fq(x, self.in_range)                                       # (B, ...)
        w = fake_quant_weight(self.layer.weight)
        if isinstance(self.layer, nn.Conv2d):
            y = self.layer._conv_forward(x, w, self.layer.bias)             # (B, C_out, H', W')
        else:
            y = F.linear(x, w, self.layer.bias)                              # (..., N)
        return self._fq(y, self.out_range)


def prepare_qat(model: nn.Module, calib_batches: Iterable[torch.Tensor], skip: Iterable[str] = (),
                bn_pairs: Iterable[tuple[str, str]] | None = None) -> nn.Module:
    """A copy of ``model`` with BN folded (frozen statistics) and each Conv2d / Linear a :class:`QATLayer`
    whose activation ranges start from min-max calibration (Jacob et al. 2018 §3)."""
    model = fold_batchnorms(copy.deepcopy(model).eval(), bn_pairs)
    names = named_modules_of(model, (nn.Conv2d, nn.Linear), skip)
    obs = calibrate(model, calib_batches, names, "minmax")
    for n, (i, o) in obs.items():
        _set_module(model, n, QATLayer(model.get_submodule(n), i.range(), o.range()))
    return model


def convert_qat(model: nn.Module) -> nn.Module:
    """The trained QAT model as the real FBGEMM int8 model (learned ranges, int8 weights), in place."""
    ranges = {}
    for n in [n for n, m in model.named_modules() if isinstance(m, QATLayer)]:
        q = model.get_submodule(n)
        _set_module(model, n, q.layer)
        ranges[n] = (tuple(q.in_range.tolist()), tuple(q.out_range.tolist()))
    return convert_static(model.eval(), ranges)


def quantization_aware_training(model: nn.Module, x: torch.Tensor, y: torch.Tensor, calib_batches: Iterable,
                                steps: int = 100, lr: float = 5e-4, seed: int = 0, **kw: Any) -> nn.Module:
    """QAT for a classifier: prepare, fine-tune with the shared Trainer (cross-entropy), convert to int8."""
    from .prune import finetune_classifier
    qmodel = prepare_qat(model, calib_batches, **kw)
    finetune_classifier(qmodel, x, y, steps=steps, lr=lr, seed=seed)
    return convert_qat(qmodel)
