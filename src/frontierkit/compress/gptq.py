"""LLM weight-only quantization: round-to-nearest (RTN) and GPTQ (Frantar et al. 2022, "GPTQ: Accurate
Post-Training Quantization for Generative Pre-trained Transformers").

GPTQ quantizes W (N, K) one input column at a time and spreads each column's error over the columns not
yet quantized, weighted by the inverse Hessian of the layer's squared output error, H = 2 X X^T (X: the
layer's calibration inputs). The paper's three steps: (1) a fixed column order, (2) lazy batch updates
(blocks of B columns, the rest of W updated once per block), (3) the rows of H^-1 taken from its upper
Cholesky factor, with dampening lambda = 1% of mean(diag H) added to H (Alg. 1).

Layers are quantized sequentially: each layer's H is measured on inputs that flow through the already
quantized earlier layers (§4, "we quantize layer by layer ... on the outputs of the quantized layers").
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import torch
from torch import nn

from ..errors import ConfigError
from .quantize import (Int4WeightOnlyLinear, Int8WeightOnlyLinear, _set_module, named_modules_of,
                       record_transform)

__all__ = ["Grid", "rtn", "gptq", "hessian", "quantize_weights", "apply_weight_only"]


@dataclass(frozen=True)
class Grid:
    """A uniform grid: ``bits`` wide, symmetric (codes in [-(2^(b-1)-1), 2^(b-1)-1], zero 0) or asymmetric
    (codes in [0, 2^b - 1] with an integer zero point); one (scale, zero) per row and group of columns."""
    bits: int
    symmetric: bool

    @property
    def qmax(self) -> int:
        return 2 ** (self.bits - 1) - 1 if self.symmetric else 2 ** self.bits - 1

    def fit(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(scale, zero), each (N,), covering the rows of w (N, g) (asymmetric: the range includes 0)."""
        if self.symmetric:
            return w.abs().amax(dim=1).clamp(min=1e-12) / self.qmax, torch.zeros(w.shape[0])
        lo, hi = w.amin(dim=1).clamp(max=0), w.amax(dim=1).clamp(min=0)      # (N,) each
        scale = ((hi - lo) / self.qmax).clamp(min=1e-12)
        return scale, torch.round(-lo / scale)

    def codes(self, w: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor) -> torch.Tensor:
        """q = clamp(round(w / s) + z) with s, z broadcast over w's trailing dims."""
        lo = -self.qmax if self.symmetric else 0
        return (torch.round(w / scale) + zero).clamp(lo, self.qmax)

    def quantize(self, w: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor) -> torch.Tensor:
        """s (q - z): the grid point nearest to w."""
        return scale * (self.codes(w, scale, zero) - zero)


def _group_size(grid_group: int | None, K: int) -> int:
    return K if grid_group is None else grid_group


def rtn(W: torch.Tensor, grid: Grid, group_size: int | None = None):
    """Round-to-nearest: codes (N, K), scale and zero (N, K / group_size)."""
    gs = _group_size(group_size, W.shape[1])
    Wg = W.float().view(W.shape[0], -1, gs)                                   # (N, G, gs)
    fits = [grid.fit(Wg[:, g]) for g in range(Wg.shape[1])]
    scale = torch.stack([f[0] for f in fits], dim=1)                          # (N, G)
    zero = torch.stack([f[1] for f in fits], dim=1)                           # (N, G)
    q = grid.codes(Wg, scale[..., None], zero[..., None]).flatten(1)         # (N, K)
    return q, scale, zero


def gptq(W: torch.Tensor, H: torch.Tensor, grid: Grid, group_size: int | None = None,
         blocksize: int = 128, percdamp: float = 0.01):
    """GPTQ (Frantar et al. 2022, Alg. 1): codes (N, K), scale, zero (N, K / group_size) of W (N, K)
    given H = 2 X X^T (K, K); lazy batch updates over blocks, H^-1 rows from its upper Cholesky factor."""
    W = W.detach().float().clone()                                            # (N, K)
    N, K = W.shape
    gs = _group_size(group_size, K)
    if gs < K:
        blocksize = gs * max(1, blocksize // gs)          # groups never straddle a block
    H = H.detach().double().clone()                                          # (K, K)
    dead = torch.diag(H) == 0                            # inputs never seen: weight irrelevant
    H[dead, dead] = 1
    W[:, dead] = 0
    H += percdamp * torch.diag(H).mean() * torch.eye(K, dtype=H.dtype)      # dampening lambda
    Hinv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(H)), upper=True).float()  # (K, K)

    Q = torch.zeros_like(W)
    scale = torch.zeros(N, K // gs)
    zero = torch.zeros(N, K // gs)
    if gs == K:
        scale[:, 0], zero[:, 0] = grid.fit(W)
    for i1 in range(0, K, blocksize):
        i2 = min(i1 + blocksize, K)
        W1 = W[:, i1:i2].clone()                                              # (N, B)
        Err1 = torch.zeros_like(W1)                                           # (N, B)
        Hinv1 = Hinv[i1:i2, i1:i2]                                            # (B, B)
        for i in range(i2 - i1):
            col = i1 + i
            g = col // gs
            if gs < K and col % gs == 0:
                scale[:, g], zero[:, g] = grid.fit(W1[:, i:i + gs])
            w = W1[:, i]                                                      # (N,)
            q = grid.codes(w, scale[:, g], zero[:, g])                         # (N,)
            Q[:, col] = q
            err = (w - scale[:, g] * (q - zero[:, g])) / Hinv1[i, i]           # (N,)
            W1[:, i:] -= err[:, None] * Hinv1[i, i:][None, :]                  # update the block's rest
            Err1[:, i] = err
        W[:, i2:] -= Err1 @ Hinv[i1:i2, i2:]                                   # lazy batch update
    return Q, scale, zero


def hessian(inputs: Iterable[torch.Tensor]) -> torch.Tensor:
    """H = 2/n sum_i x_i x_i^T over every token's input row (GPTQ §3, the OBQ objective's Hessian)."""
    H, n = None, 0
    for x in inputs:
        x = x.detach().reshape(-1, x.shape[-1]).double()                     # (n_i, K)
        H = (0 if H is None else H) + 2 * x.T @ x                            # (K, K)
        n += x.shape[0]
    return H / n


class _Stop(Exception):
    pass


def _layer_inputs(model: nn.Module, layer: nn.Module, calib: list[Any], forward: Callable) -> list[torch.Tensor]:
    """The inputs ``layer`` sees when ``forward(model, batch)`` runs each calibration batch (stops early)."""
    seen: list[torch.Tensor] = []

    def grab(_m, args):
        seen.append(args[0].detach())
        raise _Stop

    handle = layer.register_forward_pre_hook(grab)
    try:
        with torch.no_grad():
            for batch in calib:
                try:
                    forward(model, batch)
                except _Stop:
                    pass
    finally:
        handle.remove()
    return seen


def _quantized_layer(linear: nn.Linear, q, scale, zero, bits: int, gs: int | None) -> nn.Module:
    if bits == 8:
        return Int8WeightOnlyLinear.from_codes(q, scale, linear.bias)
    return Int4WeightOnlyLinear.from_codes(q, scale, zero, gs, linear.bias)


def _check(model: nn.Module, names: list[str], bits: int, group_size: int | None) -> None:
    if bits not in (4, 8):
        raise ConfigError(f"bits={bits} is invalid: weight-only quantization supports 8 (per channel) or 4 (groups)")
    if bits == 4:
        if group_size not in (32, 64, 128, 256):
            raise ConfigError(f"group_size={group_size} is invalid for int4: use 32, 64, 128 or 256")
        bad = [n for n in names if model.get_submodule(n).in_features % group_size]
        if bad:
            raise ConfigError(f"group_size={group_size} does not divide the input width of {bad[:3]}; "
                              f"use a smaller group_size or skip those layers")


def quantize_weights(model: nn.Module, bits: int = 8, group_size: int | None = None, method: str = "rtn",
                     calib: list[Any] | None = None, forward: Callable | None = None,
                     skip: Iterable[str] = (), blocksize: int = 128, percdamp: float = 0.01) -> nn.Module:
    """A copy of ``model`` with its Linear weights int8 per channel (bits=8) or int4 in groups (bits=4),
    rounded to nearest (``method="rtn"``) or by GPTQ on ``calib`` batches (``forward(model, batch)``)."""
    if method not in ("rtn", "gptq"):
        raise ConfigError(f"method={method!r} is invalid: use 'rtn' or 'gptq'")
    if method == "gptq" and not calib:
        raise ConfigError("method='gptq' needs calibration batches (calib=[...]); none were given")
    model = copy.deepcopy(model)
    names = named_modules_of(model, (nn.Linear,), skip)
    _check(model, names, bits, group_size)
    gs = None if bits == 8 else group_size
    grid = Grid(bits=bits, symmetric=bits == 8)
    forward = forward or (lambda m, b: m(b))
    for name in names:                                      # sequential: later layers see quantized inputs
        lin = model.get_submodule(name)
        if method == "gptq":
            H = hessian(_layer_inputs(model, lin, calib, forward))
            q, s, z = gptq(lin.weight, H, grid, gs, blocksize, percdamp)
        else:
            q, s, z = rtn(lin.weight, grid, gs)
        _set_module(model, name, _quantized_layer(lin, q, s, z, bits, gs))   # (a tied weight stays fp32)
    spec = {"name": "compress.weight_only", "bits": bits, "group_size": gs, "method": method, "linear": names}
    return record_transform(model, spec)


def apply_weight_only(model: nn.Module, spec: dict[str, Any]) -> nn.Module:
    """Registry transform ``compress.weight_only``: empty int8/int4 layers in place of the named Linears."""
    bits, gs = int(spec["bits"]), spec.get("group_size")
    for name in spec["linear"]:
        lin = model.get_submodule(name)
        N, K = lin.weight.shape
        new = (Int8WeightOnlyLinear(K, N, lin.bias is not None) if bits == 8
               else Int4WeightOnlyLinear(K, N, gs, lin.bias is not None))
        _set_module(model, name, new)
    return record_transform(model, spec)
