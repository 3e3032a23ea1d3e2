"""INT8 / INT4 quantization executed with real integer kernels.

- Dynamic INT8 (Jacob et al. 2018, "Quantization and Training of Neural Networks for Efficient
  Integer-Arithmetic-Only Inference"; PyTorch's ``quantize_dynamic``): weights int8, per output channel,
  symmetric (scale = max|w| / 127); activations quantized to uint8 per call from their observed range
  (one scale per call = per token at batch-1 decode) inside FBGEMM's ``quantized::linear_dynamic`` (int8 x
  uint8 -> int32 GEMM, then rescaled). Linear and LSTM.
- Weight-only (LLM decode is weight-bandwidth bound): int8 per-channel symmetric, executed by
  ``aten::_weight_int8pack_mm``, and group-wise asymmetric int4 (round-to-nearest or GPTQ codes),
  executed by ``aten::_weight_int4pack_mm_for_cpu``; activations in bf16 inside those kernels.

Quantized models keep their kind: each transform records itself in ``module.frontier_transforms``, so
``frontierkit.models.save`` / ``load`` round-trip them (int8/uint8 tensors in safetensors).
"""
from __future__ import annotations

import copy
import warnings
from typing import Any, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..models import TRANSFORMS_ATTR

__all__ = ["DynamicInt8Linear", "DynamicInt8LSTM", "Int8WeightOnlyLinear", "Int4WeightOnlyLinear",
           "quantize_dynamic", "symmetric_int8", "weight_bytes", "record_transform", "named_modules_of"]


# -- weight grids -------------------------------------------------------------------------------------
def symmetric_int8(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-output-channel symmetric int8: scale = max|w_i| / 127, q = round(w / scale) in [-127, 127]."""
    scale = w.detach().abs().amax(dim=1).clamp(min=1e-12) / 127            # (N,)
    q = torch.round(w.detach() / scale[:, None]).clamp(-127, 127).to(torch.int8)  # (N, K)
    return q, scale.float()


def _pack_fbgemm(q: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None) -> Any:
    """FBGEMM packed weights from int8 codes + per-channel scales (exact: no re-rounding)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)    # torch deprecates quantized tensors; the kernels stay
        qw = torch._make_per_channel_quantized_tensor(q, scale.double(), torch.zeros_like(scale, dtype=torch.long), 0)
        return torch.ops.quantized.linear_prepack(qw, bias)


def record_transform(model: nn.Module, spec: dict[str, Any]) -> nn.Module:
    """Append ``spec`` to the model's transform list (``models.save`` writes it to config.json)."""
    setattr(model, TRANSFORMS_ATTR, [*getattr(model, TRANSFORMS_ATTR, []), spec])
    return model


def named_modules_of(model: nn.Module, types: tuple[type, ...], skip: Iterable[str] = ()) -> list[str]:
    """Names of the submodules of the given types, minus those under a name in ``skip``."""
    skip = tuple(skip)
    return [n for n, m in model.named_modules() if isinstance(m, types) and n
            and not any(n == s or n.startswith(s + ".") for s in skip)]


def _set_module(model: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, leaf, new)


def weight_bytes(model: nn.Module) -> int:
    """Bytes of the model's parameters and buffers (each shared tensor counted once)."""
    seen, total = set(), 0
    for t in [*model.parameters(), *model.buffers()]:
        if t.data_ptr() not in seen:
            seen.add(t.data_ptr())
            total += t.numel() * t.element_size()
    return total


def _repack_after_load(module: nn.Module, _incompatible_keys: Any) -> None:
    module.repack()                                   # the kernels' packed layout follows the loaded codes


# -- dynamic int8 -------------------------------------------------------------------------------------
class DynamicInt8Linear(nn.Module):
    """y = s_x s_w (q_x q_w^T) + b with int8 q_w per channel and uint8 q_x per call (FBGEMM int8 GEMM).

    ``activation="per_token"`` gives every token (row of x) its own scale: each row is first divided by
    its max |x| (``s_t``), the FBGEMM kernel quantizes the unit-range rows with one shared grid, and the
    int32-accumulated output is multiplied back by ``s_t``: q_x = round(x_t / (s_t Δ)) + z, i.e. a per-token
    scale s_t Δ (LLM.int8() / SmoothQuant's "per-token dynamic" activations, Dettmers et al. 2022 §3,
    Xiao et al. 2023 §2). A token with tiny activations then keeps its precision when another token of
    the batch is large; at batch-1 decode both granularities are the same.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, reduce_range: bool = True,
                 activation: str = "per_tensor"):
        super().__init__()
        if activation not in ("per_tensor", "per_token"):
            raise ConfigError(f"DynamicInt8Linear: activation={activation!r}; use 'per_tensor' or 'per_token'")
        self.in_features, self.out_features, self.reduce_range = in_features, out_features, reduce_range
        self.activation = activation
        self.register_buffer("weight_int8", torch.zeros(out_features, in_features, dtype=torch.int8))
        self.register_buffer("weight_scale", torch.ones(out_features))
        self.register_buffer("bias", torch.zeros(out_features) if bias else None)
        self._packed = None
        self.register_load_state_dict_post_hook(_repack_after_load)

    @classmethod
    def from_float(cls, linear: nn.Linear, activation: str = "per_tensor") -> "DynamicInt8Linear":
        q = cls(linear.in_features, linear.out_features, linear.bias is not None, activation=activation)
        q.weight_int8, q.weight_scale = symmetric_int8(linear.weight.float())
        if linear.bias is not None:
            q.bias = linear.bias.detach().float().clone()
        return q.repack()

    def repack(self) -> "DynamicInt8Linear":
        bias = self.bias if self.activation == "per_tensor" else None   # per-token adds it after rescaling
        self._packed = _pack_fbgemm(self.weight_int8, self.weight_scale, bias)
        return self

    def dequantized_weight(self) -> torch.Tensor:
        return self.weight_int8.float() * self.weight_scale[:, None]         # (N, K)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu":                      # FBGEMM is CPU-only: dequantized fallback elsewhere
            return F.linear(x, self.dequantized_weight().to(x), None if self.bias is None else self.bias.to(x))
        if self.activation == "per_tensor":
            y = torch.ops.quantized.linear_dynamic(x.float(), self._packed, self.reduce_range)  # (..., N)
            return y.to(x.dtype)
        s_t = x.float().abs().amax(-1, keepdim=True).clamp(min=1e-12)          # (..., 1) per-token scale
        y = torch.ops.quantized.linear_dynamic(x.float() / s_t, self._packed, self.reduce_range) * s_t  # (..., N)
        if self.bias is not None:
            y = y + self.bias
        return y.to(x.dtype)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, int8 per-channel, "
                f"dynamic {self.activation.replace('_', '-')} activations")


class DynamicInt8LSTM(nn.Module):
    """LSTM (Hochreiter & Schmidhuber 1997) whose gate projections W_ih x + b_ih and W_hh h + b_hh run as
    :class:`DynamicInt8Linear`; the input projection of all time steps is one GEMM (as torch does on CPU)."""

    def __init__(self, lstm: nn.LSTM):
        super().__init__()
        if lstm.proj_size:
            raise ConfigError("quantize_dynamic: LSTM with proj_size is not supported; quantize it without nn.LSTM")
        self.hidden_size, self.num_layers = lstm.hidden_size, lstm.num_layers
        self.batch_first, self.bidirectional = lstm.batch_first, lstm.bidirectional
        self.cells = nn.ModuleDict()
        for layer in range(lstm.num_layers):
            for sfx in ("", "_reverse")[: 1 + lstm.bidirectional]:
                self.cells[f"l{layer}{sfx}"] = nn.ModuleDict({"ih": self._gate(lstm, "ih", layer, sfx),
                                                              "hh": self._gate(lstm, "hh", layer, sfx)})

    @staticmethod
    def _gate(lstm: nn.LSTM, kind: str, layer: int, sfx: str) -> DynamicInt8Linear:
        w = getattr(lstm, f"weight_{kind}_l{layer}{sfx}")                   # (4H, in)
        b = getattr(lstm, f"bias_{kind}_l{layer}{sfx}", None) if lstm.bias else None
        lin = nn.Linear(w.shape[1], w.shape[0], bias=b is not None)
        lin.weight.data, lin.bias = w.data, (nn.Parameter(b.data) if b is not None else None)
        return DynamicInt8Linear.from_float(lin)

    def _run(self, cell: nn.ModuleDict, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor, reverse: bool):
        """One direction of one layer: gates_t = W_ih x_t + W_hh h_{t-1} (+ biases), LSTM eqs. i, f, g, o."""
        gi = cell["ih"](x)                                                   # (T, B, 4H)
        outs = []
        for t in (range(x.shape[0] - 1, -1, -1) if reverse else range(x.shape[0])):
            i, f, g, o = (gi[t] + cell["hh"](h)).chunk(4, dim=-1)            # (B, H) each
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)     # (B, H)
            h = torch.sigmoid(o) * torch.tanh(c)                             # (B, H)
            outs.append(h)
        out = torch.stack(outs[::-1] if reverse else outs)                   # (T, B, H)
        return out, h, c

    def forward(self, x: torch.Tensor, hx: tuple[torch.Tensor, torch.Tensor] | None = None):
        if self.batch_first:
            x = x.transpose(0, 1)                                            # (T, B, I)
        d = 1 + self.bidirectional
        B = x.shape[1]
        h0, c0 = hx if hx is not None else (x.new_zeros(self.num_layers * d, B, self.hidden_size),) * 2
        hs, cs = [], []
        for layer in range(self.num_layers):
            outs = []
            for k, sfx in enumerate(("", "_reverse")[:d]):
                idx = layer * d + k
                o, h, c = self._run(self.cells[f"l{layer}{sfx}"], x, h0[idx], c0[idx], reverse=bool(k))
                outs.append(o)
                hs.append(h)
                cs.append(c)
            x = torch.cat(outs, dim=-1)                                      # (T, B, d*H)
        out = x.transpose(0, 1) if self.batch_first else x
        return out, (torch.stack(hs), torch.stack(cs))


def quantize_dynamic(model: nn.Module, qconfig_spec: Iterable[type] = (nn.Linear, nn.LSTM),
                     dtype: torch.dtype = torch.qint8, skip: Iterable[str] = (),
                     activation: str = "per_tensor") -> nn.Module:
    """A copy of ``model`` with its Linear (and LSTM) layers as dynamic INT8 (the seed's
    ``quantize_dynamic(model, {nn.Linear, nn.LSTM}, dtype=torch.qint8)``, on today's torch).

    ``activation``: "per_tensor" (torch.ao's scheme, one scale per call) or "per_token" (one per row of
    each Linear's input; LSTM gates keep per-call scales)."""
    if activation not in ("per_tensor", "per_token"):
        raise ConfigError(f"quantize_dynamic: activation={activation!r}; use 'per_tensor' or 'per_token'")
    if dtype != torch.qint8:
        raise ConfigError(f"quantize_dynamic: dtype={dtype} is not supported; use dtype=torch.qint8")
    types = tuple(qconfig_spec)
    unknown = [t for t in types if t not in (nn.Linear, nn.LSTM)]
    if unknown:
        raise ConfigError(f"quantize_dynamic: layer types {[t.__name__ for t in unknown]} are not supported; "
                          f"use {{nn.Linear, nn.LSTM}}")
    model = copy.deepcopy(model)
    spec = {"name": "compress.dynamic_int8", "activation": activation,
            "linear": named_modules_of(model, (nn.Linear,), skip) if nn.Linear in types else [],
            "lstm": named_modules_of(model, (nn.LSTM,), skip) if nn.LSTM in types else []}
    return apply_dynamic_int8(model, spec)


def apply_dynamic_int8(model: nn.Module, spec: dict[str, Any]) -> nn.Module:
    """Registry transform ``compress.dynamic_int8``: swap the named layers for their INT8 versions."""
    with torch.no_grad():
        for name in spec.get("linear", []):
            _set_module(model, name, DynamicInt8Linear.from_float(model.get_submodule(name),
                                                                  spec.get("activation", "per_tensor")))
        for name in spec.get("lstm", []):
            _set_module(model, name, DynamicInt8LSTM(model.get_submodule(name)))
    return record_transform(model, spec)


# -- weight-only int8 / int4 --------------------------------------------------------------------------
class Int8WeightOnlyLinear(nn.Module):
    """y = x (s * q)^T + b with int8 q per output channel; ``aten::_weight_int8pack_mm`` on CPU (bf16 x)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.register_buffer("weight_int8", torch.zeros(out_features, in_features, dtype=torch.int8))
        self.register_buffer("weight_scale", torch.ones(out_features))
        self.register_buffer("bias", torch.zeros(out_features) if bias else None)

    @classmethod
    def from_codes(cls, q: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None) -> "Int8WeightOnlyLinear":
        m = cls(q.shape[1], q.shape[0], bias is not None)
        m.weight_int8, m.weight_scale = q.to(torch.int8), scale.float().flatten()
        if bias is not None:
            m.bias = bias.detach().float().clone()
        return m

    def dequantized_weight(self) -> torch.Tensor:
        return self.weight_int8.float() * self.weight_scale[:, None]         # (N, K)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu":
            return F.linear(x, self.dequantized_weight().to(x), None if self.bias is None else self.bias.to(x))
        x2 = x.reshape(-1, self.in_features).to(torch.bfloat16)             # (M, K)
        y = torch.ops.aten._weight_int8pack_mm(x2, self.weight_int8, self.weight_scale.to(torch.bfloat16))
        y = y.to(x.dtype).view(*x.shape[:-1], self.out_features)           # (..., N)
        return y if self.bias is None else y + self.bias.to(x.dtype)


class Int4WeightOnlyLinear(nn.Module):
    """y = x W^T + b with W[:, g] = s_g (q - z_g), q in [0, 15], one (s, z) per group of ``group_size`` inputs;
    ``aten::_weight_int4pack_mm_for_cpu`` on CPU (bf16 x). Stored as two codes per byte."""

    def __init__(self, in_features: int, out_features: int, group_size: int, bias: bool = True):
        super().__init__()
        self.in_features, self.out_features, self.group_size = in_features, out_features, group_size
        G = in_features // group_size
        self.register_buffer("weight_uint4x2", torch.zeros(out_features, in_features // 2, dtype=torch.uint8))
        self.register_buffer("weight_scale", torch.ones(out_features, G))
        self.register_buffer("weight_zero", torch.zeros(out_features, G))
        self.register_buffer("bias", torch.zeros(out_features) if bias else None)
        self._packed = None
        self.register_load_state_dict_post_hook(_repack_after_load)

    @classmethod
    def from_codes(cls, q: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor, group_size: int,
                   bias: torch.Tensor | None) -> "Int4WeightOnlyLinear":
        """From codes q (N, K) in [0, 15] and per-group scale, zero (N, K / group_size)."""
        m = cls(q.shape[1], q.shape[0], group_size, bias is not None)
        q = q.to(torch.uint8)
        m.weight_uint4x2 = q[:, 0::2] | (q[:, 1::2] << 4)                    # (N, K/2)
        m.weight_scale, m.weight_zero = scale.float().contiguous(), zero.float().contiguous()
        if bias is not None:
            m.bias = bias.detach().float().clone()
        return m.repack()

    def codes(self) -> torch.Tensor:
        lo, hi = self.weight_uint4x2 & 15, self.weight_uint4x2 >> 4          # (N, K/2) each
        return torch.stack([lo, hi], dim=-1).flatten(1)                      # (N, K)

    def dequantized_weight(self) -> torch.Tensor:
        q = self.codes().float().view(self.out_features, -1, self.group_size)       # (N, G, gs)
        w = self.weight_scale[..., None] * (q - self.weight_zero[..., None])        # (N, G, gs)
        return w.flatten(1)                                                          # (N, K)

    def repack(self) -> "Int4WeightOnlyLinear":
        """The kernel's layout: packed codes and (G, N, 2) [scale, offset] with w = (q - 8) scale + offset."""
        self._packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(self.codes().to(torch.int32), 1)
        offset = (8 - self.weight_zero) * self.weight_scale                  # (N, G)
        sz = torch.stack([self.weight_scale, offset], dim=-1).transpose(0, 1)   # (G, N, 2)
        self._scales_zeros = sz.contiguous().to(torch.bfloat16)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu":
            return F.linear(x, self.dequantized_weight().to(x), None if self.bias is None else self.bias.to(x))
        x2 = x.reshape(-1, self.in_features).to(torch.bfloat16)             # (M, K)
        y = torch.ops.aten._weight_int4pack_mm_for_cpu(x2, self._packed, self.group_size, self._scales_zeros)
        y = y.to(x.dtype).view(*x.shape[:-1], self.out_features)           # (..., N)
        return y if self.bias is None else y + self.bias.to(x.dtype)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int4 group={self.group_size}"
