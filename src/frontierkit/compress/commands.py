"""``frontier compress {quantize,prune,distill}``: compress a saved model (any kind the command fits),
write it through the model registry and print a table against the original (size, latency, accuracy
or perplexity)."""
from __future__ import annotations

import argparse
import json

from .. import argtypes as at

QUANT_METHODS = ("dynamic", "static", "qat", "int8", "int4-rtn", "int4-gptq", "int8-gptq")


def register(sub: argparse._SubParsersAction, area: str, text: str) -> None:
    p = sub.add_parser(area, help=text, description=text)
    cmds = p.add_subparsers(dest="compress_cmd", metavar="CMD")
    q = cmds.add_parser("quantize", help="dynamic / static / QAT INT8, or weight-only int8 / int4 (RTN or GPTQ)")
    _common(q)
    q.add_argument("--method", default="dynamic", choices=QUANT_METHODS,
                   help="dynamic: INT8 weights + activations (Linear/LSTM); static: calibrated INT8 Conv2d/Linear "
                        "(BN folded); qat: quantization-aware fine-tuning then static INT8 (classifiers); "
                        "int8/int4-*: weight-only")
    q.add_argument("--observer", default="minmax", choices=("minmax", "percentile", "mse"),
                   help="static: calibration range of each activation")
    q.add_argument("--activation", default="per-tensor", choices=("per-tensor", "per-token"),
                   help="dynamic: one activation scale per call (torch.ao's) or one per token (row)")
    q.add_argument("--qat-steps", type=at.integer(1, 1_000_000), default=100, help="qat: fine-tuning steps")
    q.add_argument("--group-size", type=at.integer(1, 65_536), default=32, help="int4: input columns per (scale, zero) group")
    q.add_argument("--calib-batches", type=at.integer(1, 100_000), default=8,
                   help="GPTQ / static / qat: calibration batches (8 windows / 64 images)")
    q.add_argument("--skip", nargs="*", default=[], metavar="NAME", help="module names left in full precision")
    q.set_defaults(func=quantize_cmd)

    r = cmds.add_parser("prune", help="unstructured magnitude pruning or structured channel pruning (+ fine-tune)")
    _common(r)
    r.add_argument("--amount", type=at.number(0, 1, hi_open=True), default=0.3, help="fraction of prunable weights (or channels) removed")
    r.add_argument("--scope", default="global", choices=("global", "layer"), help="unstructured: threshold scope")
    r.add_argument("--structured", action="store_true", help="remove whole channels/neurons: a smaller model")
    r.add_argument("--heads", action="store_true",
                   help="remove attention heads (whole GQA groups) by Michel et al. importance on calibration "
                        "text: a smaller LLM (--amount = fraction of K/V groups)")
    r.add_argument("--calib-batches", type=at.integer(1, 100_000), default=8, help="--heads: calibration windows for importance")
    r.add_argument("--finetune-steps", type=at.integer(0, 1_000_000), default=0, help="fine-tune steps after pruning (classifiers)")
    r.set_defaults(func=prune_cmd)

    d = cmds.add_parser("distill", help="train a smaller classifier from a teacher (Hinton et al. 2015)")
    _common(d)
    d.add_argument("--width", type=at.integer(1, 4096), default=16, help="student base width (the teacher's architecture)")
    d.add_argument("--steps", type=at.integer(1, 1_000_000), default=600)
    d.add_argument("--temperature", type=at.number(0, 1000, lo_open=True), default=4.0)
    d.add_argument("--alpha", type=at.number(0, 1), default=0.5, help="weight of the soft (teacher) term")
    d.set_defaults(func=distill_cmd)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", dest="model_dir", required=True, metavar="DIR", help="run or model folder",
                   type=at.model_folder(what=p.prog))
    p.add_argument("--out", required=True, metavar="DIR", type=at.out_dir(), help="where the compressed model is written")


def _finish(args: argparse.Namespace, loaded, compressed, rows_extra: dict | None = None) -> int:
    """Save ``compressed`` (tokenizer copied), print and write the comparison table."""
    import shutil
    from pathlib import Path

    from .. import models
    from .evaluate import measure
    out = models.save(compressed, Path(args.out), kind=loaded.kind.name, run=loaded.run)
    if (loaded.path / "tokenizer.json").is_file():
        shutil.copy(loaded.path / "tokenizer.json", out / "tokenizer.json")
    rows = [measure(loaded.model, loaded, "original"), {**measure(compressed, loaded, args.compress_cmd),
                                                       **(rows_extra or {})}]
    rows[1]["size_ratio"] = round(rows[1]["MB"] / rows[0]["MB"], 3)
    rows[1]["speedup"] = round(rows[0]["latency_ms"] / max(rows[1]["latency_ms"], 1e-9), 3)
    (out / "compress_report.json").write_text(json.dumps(rows, indent=2))
    print(json.dumps({"model_dir": str(out), "rows": rows}))
    return 0


def _calibration(loaded, n: int) -> list:
    """GPTQ calibration batches: pycorpus train windows (lm) or training images (classifier)."""
    if "classifier" in loaded.kind.tags:
        x, _ = loaded.dataset("train")
        return [x[i * 64:(i + 1) * 64] for i in range(n)]
    from .evaluate import pycorpus_ids
    seq = min(128, int(loaded.config.get("max_seq_len", 128)))
    ids = pycorpus_ids(loaded.path, "train", max_chars=n * 8 * seq * 6)
    return [ids[i * 8 * seq:(i + 1) * 8 * seq].view(8, seq) for i in range(n)
            if (i + 1) * 8 * seq <= ids.numel()]


def quantize_cmd(args: argparse.Namespace) -> int:
    from ..models import open_model
    from .gptq import quantize_weights
    from .quantize import quantize_dynamic

    loaded = open_model(args.model_dir, what="frontier compress quantize")
    if args.method == "dynamic":
        q = quantize_dynamic(loaded.model, skip=args.skip, activation=args.activation.replace("-", "_"))
    elif args.method in ("static", "qat"):
        q = _static_or_qat(args, loaded)
    else:
        bits = 4 if args.method.startswith("int4") else 8
        method = "gptq" if args.method.endswith("gptq") else "rtn"
        calib = _calibration(loaded, args.calib_batches) if method == "gptq" else None
        q = quantize_weights(loaded.model, bits=bits, group_size=args.group_size if bits == 4 else None,
                             method=method, calib=calib, skip=args.skip)
    return _finish(args, loaded, q, {"method": args.method} if args.method != "dynamic"
                   else {"method": args.method, "activation": args.activation})


def _static_or_qat(args: argparse.Namespace, loaded):
    """Static INT8 PTQ with ``--observer``, or QAT (classifiers: fine-tuned on their training split)."""
    from ..errors import ConfigError
    from .qat import quantization_aware_training
    from .static import quantize_static
    calib = _calibration(loaded, args.calib_batches)
    if args.method == "static":
        return quantize_static(loaded.model, calib, args.observer, skip=args.skip)
    if "classifier" not in loaded.kind.tags:
        raise ConfigError(f"--method qat needs a classifier model (its dataset); {loaded.kind.name} is not one, "
                          f"use --method static")
    return quantization_aware_training(loaded.model, *loaded.dataset("train"), calib, steps=args.qat_steps,
                                       skip=args.skip)


def prune_cmd(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..models import open_model
    from .prune import finetune_classifier, make_permanent, prune_global, prune_layerwise, sparsity
    from .structured import prune_channels

    if not 0 <= args.amount < 1:
        raise ConfigError(f"--amount {args.amount} is invalid: a fraction in [0, 1)")
    loaded = open_model(args.model_dir, what="frontier compress prune")
    if args.heads:
        return _prune_heads(args, loaded)
    if args.structured:
        model = prune_channels(loaded.model, args.amount)
    else:
        prune = prune_global if args.scope == "global" else prune_layerwise
        model = prune(loaded.model, args.amount)
    if args.finetune_steps:
        if "classifier" not in loaded.kind.tags:
            raise ConfigError("--finetune-steps needs a classifier model (its dataset); pass 0 for other kinds")
        finetune_classifier(model, *loaded.dataset("train"), steps=args.finetune_steps)
    if not args.structured:
        model = make_permanent(model)
    return _finish(args, loaded, model, {"sparsity": round(sparsity(model)["total"], 4)})


def _prune_heads(args: argparse.Namespace, loaded) -> int:
    """Head pruning of an LLM: importance from next-token loss on pycorpus calibration windows."""
    import torch.nn.functional as F

    from ..errors import ConfigError
    from .heads import attention_modules, head_importance, prune_heads
    if "lm" not in loaded.kind.tags:
        raise ConfigError(f"--heads needs a language model; {args.model_dir} holds a {loaded.kind.name} model")
    if args.calib_batches < 1:
        raise ConfigError(f"--calib-batches {args.calib_batches} is invalid: at least 1")
    loss = lambda m, ids: F.cross_entropy(m(ids[:, :-1]).flatten(0, 1), ids[:, 1:].flatten())  # noqa: E731
    calib = _calibration(loaded, args.calib_batches)
    model = prune_heads(loaded.model, args.amount, head_importance(loaded.model, calib, loss))
    return _finish(args, loaded, model, {"heads": sum(m.n_heads for m in attention_modules(model).values())})


def distill_cmd(args: argparse.Namespace) -> int:
    from ..models import open_model
    from .distill import distill_classifier

    loaded = open_model(args.model_dir, tags="classifier", what="frontier compress distill")
    student = distill_classifier(loaded, width=args.width, steps=args.steps, T=args.temperature, alpha=args.alpha)
    return _finish(args, loaded, student, {"params_ratio": round(
        sum(p.numel() for p in student.parameters()) / sum(p.numel() for p in loaded.model.parameters()), 3)})
