"""Shared helpers of the llm_* benchmarks: timing, machine description, result files."""
from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch

RESULTS = Path(__file__).parent / "results"


def machine() -> str:
    return (f"{platform.machine()} {platform.processor() or ''} · torch {torch.__version__} · "
            f"{torch.get_num_threads()} threads").strip()


def best_time(fn: Callable[[], Any], repeat: int = 3, warmup: int = 1) -> float:
    """Minimum wall time of ``repeat`` calls after ``warmup`` (the least-disturbed run on a shared machine)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def interleaved_best(fns: dict[str, Callable[[], Any]], rounds: int = 5, warmup: int = 1,
                     clock: Callable[[], float] = time.process_time) -> dict[str, float]:
    """Best time of each function over ``rounds`` rounds that run every function once, alternating,
    so that load from other users of a shared machine hits all of them alike. The default clock is
    this process's CPU time (with 1 thread: the work done, not the wait for a busy core)."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    best = {name: float("inf") for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            t0 = clock()
            fn()
            best[name] = min(best[name], clock() - t0)
    return best


def matmul_peak_flops(n: int = 1024, repeat: int = 5) -> float:
    """Measured fp32 matmul FLOP/s on this machine (n x n @ n x n, best of ``repeat``)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    t = best_time(lambda: a @ b, repeat=repeat, warmup=2)
    return 2 * n ** 3 / t


def write_results(name: str, rows: list[dict[str, Any]], summary: dict[str, Any], notes: str = "") -> None:
    """benchmarks/results/<name>.json and .md with date, machine, CPU capability and command."""
    from frontierkit.hardware import capability_line, cpu_capability

    from bench_common import results_dir
    out = results_dir(RESULTS)              # benchmarks/results only with --write
    out.mkdir(parents=True, exist_ok=True)
    meta = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": machine(),
            "cpu_capability": cpu_capability(),
            "command": "python " + " ".join(["benchmarks/" + Path(sys.argv[0]).name] + sys.argv[1:])}
    (out / f"{name}.json").write_text(json.dumps({**meta, "summary": summary, "rows": rows}, indent=2))
    cols = list(dict.fromkeys(k for r in rows for k in r))
    fmt = lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = [f"# {name}", "", f"- date: {meta['date']}", f"- machine: {meta['machine']}",
             f"- cpu capability: {capability_line(meta['cpu_capability'])}", f"- command: `{meta['command']}`", ""]
    lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in cols) + " |" for r in rows]
    lines += ["", "Summary: " + ", ".join(f"{k} = {fmt(v)}" for k, v in summary.items())]
    if notes:
        lines += ["", notes]
    (out / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
