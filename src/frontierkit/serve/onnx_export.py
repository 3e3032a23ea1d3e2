"""ONNX export (the ONNX IR spec; torch.export-based "dynamo" exporter, Ansel et al. 2024 "PyTorch 2")
of the kit's classifiers and decoder LLMs, checked against onnxruntime.

- Classifiers (``classifier`` tag: MLP/CNN/ResNet/ViT): ``pixel_values`` (B, C, H, W) -> ``logits`` (B, K).
- LLMs (``lm`` tag): ``input_ids``, ``attention_mask``, ``position_ids`` and, per layer i,
  ``past_key_values.{i}.key/value`` (B, Hkv, P, D) -> ``logits`` (B, T, V) and ``present.{i}.key/value``
  (B, Hkv, P+T, D), the names and layout Hugging Face optimum uses, dynamic in batch, sequence and
  past length (P = 0 for the prompt). ``with_cache=False``: ``input_ids`` -> ``logits`` only.

``torch.onnx.export(dynamo=True)`` is tried first; a model it fails on falls back to the TorchScript
exporter (``dynamo=False``) and the report says which path each model took.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError, require_extra
from ..nn import sdpa

OPSET = 18


class ConcatCache:
    """``frontierkit.nn.LayerCache`` for export: attend to [past; new] keys and keep them as ``present``
    (Vaswani et al. eq. 1 with a causal mask offset by the past length and the attention mask)."""

    def __init__(self, past_k: torch.Tensor, past_v: torch.Tensor, mask: torch.Tensor):
        self.past_k, self.past_v, self.mask = past_k, past_v, mask           # (B, Hkv, P, D), (B, 1, T, P+T)
        self.present: tuple[torch.Tensor, torch.Tensor] | None = None

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, valid: torch.Tensor | None,
               window: int | None) -> torch.Tensor:
        k_all = torch.cat([self.past_k, k], dim=2)                             # (B, Hkv, P+T, D)
        v_all = torch.cat([self.past_v, v], dim=2)
        self.present = (k_all, v_all)
        return sdpa(q, k_all, v_all, self.mask)                                # (B, H, T, D)


def decoder_mask(attention_mask: torch.Tensor, t: int, window: int | None) -> torch.Tensor:
    """(B, P+T) 1 on real tokens -> (B, 1, T, P+T) bool: causal over absolute slots, real keys, window;
    the diagonal stays open so a padding query never has an empty row."""
    s = attention_mask.shape[1]
    kpos = torch.arange(s, device=attention_mask.device)                      # (S,)
    qpos = (torch.arange(t, device=attention_mask.device) + (s - t))[:, None]  # (T, 1) slots of the new tokens
    ok = kpos[None, :] <= qpos                                                 # (T, S)
    if window is not None:
        ok = ok & (qpos - kpos[None, :] < window)
    keep = ok[None] & attention_mask.bool()[:, None, :]                       # (B, T, S)
    return (keep | (kpos[None, :] == qpos)[None])[:, None]                     # (B, 1, T, S)


class DecoderWithPast(nn.Module):
    """The kit Transformer with optimum-style past/present key-value tensors as explicit inputs/outputs."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor,
                *past: torch.Tensor) -> tuple[torch.Tensor, ...]:
        mask = decoder_mask(attention_mask, input_ids.shape[1], self.model.cfg.sliding_window)
        caches = [ConcatCache(past[2 * i], past[2 * i + 1], mask) for i in range(len(past) // 2)]
        logits = self.model(input_ids, position_ids, None, caches)             # (B, T, V)
        return (logits, *[t for c in caches for t in c.present])


class DecoderLogits(nn.Module):
    """input_ids (B, T) -> logits (B, T, V), no cache."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids)


def past_names(n_layers: int) -> tuple[list[str], list[str]]:
    """optimum's names: past_key_values.{i}.key/value (inputs), present.{i}.key/value (outputs)."""
    ins = [f"past_key_values.{i}.{kv}" for i in range(n_layers) for kv in ("key", "value")]
    outs = [f"present.{i}.{kv}" for i in range(n_layers) for kv in ("key", "value")]
    return ins, outs


def llm_example(model: nn.Module, batch: int = 2, t: int = 3, past: int = 4) -> dict[str, torch.Tensor]:
    """Example inputs (ORT-style names -> tensors) with ``past`` cached positions of random keys/values."""
    cfg = model.cfg
    g = torch.Generator().manual_seed(0)
    feeds = {"input_ids": torch.randint(0, cfg.vocab_size, (batch, t), generator=g),
             "attention_mask": torch.ones(batch, past + t, dtype=torch.long),
             "position_ids": torch.arange(past, past + t).expand(batch, t).contiguous()}
    ins, _ = past_names(cfg.n_layers)
    for name in ins:
        feeds[name] = torch.randn(batch, cfg.n_kv_heads, past, cfg.head_dim, generator=g)
    return feeds


def _export(module: nn.Module, args: tuple, out: Path, input_names: list[str], output_names: list[str],
            dims: dict[str, dict[int, str]], n_fixed: int | None = None) -> str:
    """Export with the dynamo exporter; on failure fall back to TorchScript. Returns the path taken."""
    require_extra("onnxscript", "serve")
    try:
        torch.onnx.export(module, args, str(out), dynamo=True, input_names=input_names, output_names=output_names,
                          dynamic_shapes=_dynamic_shapes(args, input_names, dims, n_fixed), opset_version=OPSET,
                          optimize=True, verbose=False)
        return "dynamo"
    except Exception as e:          # noqa: BLE001 - any exporter failure falls back; the report says so
        import warnings
        warnings.warn(f"dynamo ONNX export failed ({type(e).__name__}: {str(e)[:200]}); using TorchScript")
        torch.onnx.export(module, args, str(out), dynamo=False, input_names=input_names, output_names=output_names,
                          dynamic_axes={k: v for k, v in dims.items()}, opset_version=OPSET)
        return "torchscript"


def _dynamic_shapes(args: tuple, names: list[str], dims: dict[str, dict[int, str]], n_fixed: int | None) -> tuple:
    """torch.export dynamic shapes, one dict per input; inputs after ``n_fixed`` form the ``*past`` tuple."""
    from torch.export import Dim
    shapes = tuple({ax: Dim.DYNAMIC for ax in dims.get(name, {})} for name in names[:len(args)])
    return shapes if n_fixed is None else (*shapes[:n_fixed], shapes[n_fixed:])


def export_classifier(model: nn.Module, config: dict[str, Any], out: Path) -> dict[str, Any]:
    """pixel_values (B, C, H, W) -> logits (B, K), dynamic batch; parity vs eager on a random batch."""
    x = torch.randn(2, config.get("in_channels", 1), config.get("image_size", 8), config.get("image_size", 8),
                    generator=torch.Generator().manual_seed(0))
    path = _export(model, (x,), out, ["pixel_values"], ["logits"], {"pixel_values": {0: "batch"},
                                                                    "logits": {0: "batch"}})
    xs = torch.randn(5, *x.shape[1:], generator=torch.Generator().manual_seed(1))
    sess = session(out)
    with torch.no_grad():
        ref = model(xs)
    got = torch.from_numpy(sess.run(None, {"pixel_values": xs.numpy()})[0])
    return {"exporter": path, "max_abs_diff": float((got - ref).abs().max()), "inputs": ["pixel_values"],
            "outputs": ["logits"]}


def export_llm(model: nn.Module, out: Path, with_cache: bool = True) -> dict[str, Any]:
    """The decoder with optimum-named past/present KV (or logits only); parity vs eager (past > 0)."""
    cfg = model.cfg
    if not with_cache:
        ids = torch.randint(0, cfg.vocab_size, (2, 5), generator=torch.Generator().manual_seed(0))
        path = _export(DecoderLogits(model), (ids,), out, ["input_ids"], ["logits"],
                       {"input_ids": {0: "batch_size", 1: "sequence_length"},
                        "logits": {0: "batch_size", 1: "sequence_length"}})
        with torch.no_grad():
            ref = model(ids)
        got = torch.from_numpy(session(out).run(None, {"input_ids": ids.numpy()})[0])
        return {"exporter": path, "max_abs_diff": float((got - ref).abs().max()), "inputs": ["input_ids"],
                "outputs": ["logits"]}
    feeds = llm_example(model)
    ins, outs = past_names(cfg.n_layers)
    names = ["input_ids", "attention_mask", "position_ids", *ins]
    dims: dict[str, dict[int, str]] = {"input_ids": {0: "batch_size", 1: "sequence_length"},
                                       "attention_mask": {0: "batch_size", 1: "total_sequence_length"},
                                       "position_ids": {0: "batch_size", 1: "sequence_length"},
                                       "logits": {0: "batch_size", 1: "sequence_length"}}
    dims.update({n: {0: "batch_size", 2: "past_sequence_length"} for n in ins})
    dims.update({n: {0: "batch_size", 2: "total_sequence_length"} for n in outs})
    wrapper = DecoderWithPast(model).eval()
    path = _export(wrapper, tuple(feeds.values()), out, names, ["logits", *outs], dims, n_fixed=3)
    with torch.no_grad():
        ref = wrapper(*feeds.values())
    got = session(out).run(None, {k: v.numpy() for k, v in feeds.items()})
    diff = max(float((torch.from_numpy(g) - r).abs().max()) for g, r in zip(got, ref))
    return {"exporter": path, "max_abs_diff": diff, "inputs": names, "outputs": ["logits", *outs]}


def session(path: str | Path, threads: int | None = None):
    """An onnxruntime CPU session (``threads``: intra-op threads, None: onnxruntime's default)."""
    ort = require_extra("onnxruntime", "serve")
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def ort_greedy(sess, model_cfg: Any, prompt: list[int], max_new_tokens: int) -> list[int]:
    """Greedy decoding through onnxruntime with the exported KV cache: the prompt with past length 0,
    then one token per step feeding ``present.*`` back as ``past_key_values.*``."""
    import numpy as np
    ins, _ = past_names(model_cfg.n_layers)
    past = {n: np.zeros((1, model_cfg.n_kv_heads, 0, model_cfg.head_dim), np.float32) for n in ins}
    ids, out, pos = np.array([prompt], np.int64), [], 0
    for _ in range(max_new_tokens):
        t = ids.shape[1]
        feeds = {"input_ids": ids, "attention_mask": np.ones((1, pos + t), np.int64),
                 "position_ids": np.arange(pos, pos + t, dtype=np.int64)[None], **past}
        logits, *present = sess.run(None, feeds)
        tok = int(logits[0, -1].argmax())
        out.append(tok)
        past = dict(zip(ins, present))
        pos += t
        ids = np.array([[tok]], np.int64)
    return out


def export_model(model_dir: str | Path, out: str | Path, with_cache: bool = True) -> dict[str, Any]:
    """``frontier serve export-onnx``: a classifier or LLM from the registry -> ONNX file + parity report."""
    from .. import models
    loaded = models.open_model(model_dir, what="frontier serve export-onnx")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if "classifier" in loaded.kind.tags:
        report = export_classifier(loaded.model, loaded.config, out)
    elif "lm" in loaded.kind.tags and hasattr(loaded.model, "cfg"):
        report = export_llm(loaded.model, out, with_cache)
    else:
        raise CheckpointError(f"{loaded.path} holds a {loaded.kind.name!r} model; export-onnx takes a classifier "
                              f"(vision run) or an LLM")
    return {"onnx": str(out), "kind": loaded.kind.name, **report, "seconds": round(time.perf_counter() - t0, 2)}
