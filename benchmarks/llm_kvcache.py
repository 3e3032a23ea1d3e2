"""KV-cache bytes of MHA vs GQA vs MQA at the llama3-8b shape and 8k context (allocated on the meta
device, so no memory is used). Invariant: bytes ratio == n_kv_heads / n_heads exactly.

    python benchmarks/llm_kvcache.py
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from llm_common import write_results  # noqa: E402

from frontierkit.llm import config_from_name  # noqa: E402
from frontierkit.nn import KVCache  # noqa: E402


def cache_bytes(n_kv: int, n_heads: int, head_dim: int, layers: int, ctx: int, window: int | None = None) -> int:
    return layers * KVCache(1, n_kv, head_dim, ctx, window, device="meta").nbytes


def main() -> None:
    cfg = config_from_name("llama3-8b")
    ctx = 8192
    rows = []
    mha = cache_bytes(cfg.n_heads, cfg.n_heads, cfg.head_dim, cfg.n_layers, ctx)
    for name, kv, window in [("MHA", 32, None), ("GQA", 8, None), ("MQA", 1, None),
                             ("GQA + sliding window 4096", 8, 4096)]:
        b = cache_bytes(kv, cfg.n_heads, cfg.head_dim, cfg.n_layers, ctx, window)
        rows.append({"attention": name, "n_kv_heads": kv, "window": window or "-", "bytes": b,
                     "GiB (fp32, batch 1, 8k ctx)": b / 2 ** 30, "ratio vs MHA": b / mha,
                     "expected": (kv / cfg.n_heads) * ((window or ctx) / ctx)})
    exact = all(r["ratio vs MHA"] == r["expected"] for r in rows)
    write_results("llm_kvcache", rows, {"ratios_exact": exact},
                  notes="Shape: llama3-8b (32 layers, 32 query heads, head_dim 128), fp32, batch 1, 8192 positions.")
    assert exact


if __name__ == "__main__":
    import argparse
    from bench_common import add_write_arg
    add_write_arg(argparse.ArgumentParser(description=__doc__.split("\n\n")[0])).parse_args()  # --help never runs
    main()
