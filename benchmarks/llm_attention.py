"""Sliding-window (w=256, blockwise, O(n·w)) vs full causal attention (SDPA is_causal) forward time
at n = 1k..8k, batch 1, 8 heads, head_dim 64, fp32, side by side. Goal: window <= 1/8 of full at
8k and time linear in n (time/n flat).

    python benchmarks/llm_attention.py [--quick]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import torch  # noqa: E402

from llm_common import interleaved_best, write_results  # noqa: E402

from frontierkit.nn import sdpa, sliding_window_attention  # noqa: E402

WINDOW = 256


def measure(lengths: list[int], heads: int = 8, dim: int = 64, repeat: int = 3) -> list[dict]:
    rows = []
    for n in lengths:
        g = torch.Generator().manual_seed(n)
        q, k, v = (torch.randn(1, heads, n, dim, generator=g) for _ in range(3))
        with torch.inference_mode():
            t = interleaved_best({"full": lambda: sdpa(q, k, v, causal=True),
                                  "window": lambda: sliding_window_attention(q, k, v, WINDOW)}, rounds=repeat)
        full, window = t["full"], t["window"]
        rows.append({"n": n, "full_ms": 1e3 * full, "window_ms": 1e3 * window, "window/full": window / full,
                     "window_us_per_token": 1e6 * window / n})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    from bench_common import add_write_arg
    args = add_write_arg(ap).parse_args()
    torch.set_num_threads(1)
    lengths = [1024, 2048, 4096] if args.quick else [1024, 2048, 4096, 8192]
    rows = measure(lengths)
    per_tok = [r["window_us_per_token"] for r in rows]
    summary = {"window/full at max n": rows[-1]["window/full"], "goal": 1 / 8,
               "linearity (max/min us per token)": max(per_tok) / min(per_tok)}
    write_results("llm_attention", rows, summary,
                  notes=f"window {WINDOW}; full = SDPA is_causal (flash kernel skips the upper triangle); "
                        f"window = query blocks of 64 against their {64 + WINDOW - 1} keys. 1 thread; best of 3 interleaved rounds of process CPU time.")


if __name__ == "__main__":
    main()
