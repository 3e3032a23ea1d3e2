"""Attention-head pruning (Michel et al. 2019) of the compress benchmark LLaMA (~11M params, 6 query heads
over 2 K/V groups per layer, trained briefly on pycorpus): held-out perplexity, weight bytes and forward
latency (batch 1, 128 tokens) of the model with 0 / 20 / 40 / 60% of its K/V groups removed, side by side in
one run. Importance I_h = E|dL/dxi_h| on pycorpus calibration windows.

    python benchmarks/compress_heads.py --write            # the 300-step model
    python benchmarks/compress_heads.py --quick --write    # the 60-step model
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from bench_common import add_write_arg, meta, table, write  # noqa: E402
from llm_common import interleaved_best  # noqa: E402

AMOUNTS = (0.0, 0.2, 0.4, 0.6)


def windows(model_dir: Path, split: str, n: int, seq: int = 128) -> torch.Tensor:
    """(n, seq + 1) pycorpus windows tokenized with the model's tokenizer."""
    from frontierkit.compress.evaluate import pycorpus_ids
    ids = pycorpus_ids(model_dir, split, max_chars=n * (seq + 1) * 8)
    return ids[: n * (seq + 1)].view(n, seq + 1)


def loss(model, ids: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(model(ids[:, :-1]).flatten(0, 1), ids[:, 1:].flatten())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="the 60-step model, 2 timing rounds")
    args = add_write_arg(ap).parse_args()
    torch.set_num_threads(1)
    from compress_llm import trained_model

    from frontierkit.compress.heads import attention_modules, head_importance, prune_heads
    from frontierkit.compress.quantize import weight_bytes
    from frontierkit.data import cache_dir
    steps = 60 if args.quick else 300
    model = trained_model(steps)
    model_dir = cache_dir() / "compress-bench" / f"llm-{steps}" / "model"
    calib = list(windows(model_dir, "train", 32).split(8))                   # 4 batches of (8, 129)
    val = windows(model_dir, "val", 32)
    importance = head_importance(model, calib, loss)
    pruned = {a: prune_heads(model, a, importance) if a else model for a in AMOUNTS}
    x = val[:1, :-1]                                                          # (1, 128)
    with torch.no_grad():
        t = interleaved_best({a: (lambda m=m: m(x)) for a, m in pruned.items()}, rounds=2 if args.quick else 5)
        rows = []
        for a, m in pruned.items():
            ppl = math.exp(float(sum(loss(m, val[i:i + 8]) for i in range(0, len(val), 8)) / (len(val) // 8)))
            rows.append({"groups removed": f"{a:.0%}",
                         "heads": sum(att.n_heads for att in attention_modules(m).values()),
                         "kv_heads": sum(att.n_kv_heads for att in attention_modules(m).values()),
                         "MB": weight_bytes(m) / 2 ** 20, "perplexity": ppl, "latency_ms": t[a] * 1e3})
    base = rows[0]
    for r in rows:
        r["ppl_ratio"], r["speedup"] = r["perplexity"] / base["perplexity"], base["latency_ms"] / r["latency_ms"]
    info = {**meta(" ".join(["python benchmarks/compress_heads.py", *sys.argv[1:]])), "model_steps": steps,
            "rows": rows}
    write("compress_heads" + ("_quick" if args.quick else ""), info,
          [f"Benchmark LLaMA trained {steps} steps; 32 held-out windows of 128 tokens; latency = best process CPU time of "
           f"interleaved rounds, batch 1, 1 thread. Attention is a small share of this model's FLOPs (the MLP "
           f"and the 2048-token head dominate), so removing heads saves little time.", "", *table(rows)])
    print("\n".join(table(rows)))


if __name__ == "__main__":
    main()
