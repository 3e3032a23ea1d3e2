"""PGD steps per second: frontierkit.robust.pgd vs torchattacks.PGD on the same digits CNN and batch,
L∞, no random start (so both produce the same adversarial examples, checked), one thread, process CPU
time (the machine is shared), median of --repeats alternating runs.

    .venv/bin/python benchmarks/robust_pgd_speed.py [--quick]

Writes benchmarks/results/robust_pgd_speed.json and .md.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import meta, write  # noqa: E402


def cpu_time(fn) -> tuple[float, torch.Tensor]:
    t0 = time.process_time()
    out = fn()
    return time.process_time() - t0, out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer steps and repeats")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--repeats", type=int, default=7)
    from bench_common import add_write_arg
    args = add_write_arg(p).parse_args()
    if args.quick:
        args.steps, args.repeats = 10, 3
    torch.set_num_threads(1)
    import torchattacks

    from frontierkit.robust.attacks import pgd
    from frontierkit.vision import VisionDataConfig, load_data, run_config_for, train_classifier

    x, y = load_data(VisionDataConfig(), "test")
    x, y = x[:args.batch], y[:args.batch]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for arch in ("mlp", "cnn", "resnet"):
            model, _ = train_classifier(run_config_for(arch, steps=100), Path(tmp) / arch)
            model.eval()
            eps, alpha = 0.3, 0.01
            ours = lambda: pgd(model, x, y, eps, alpha, args.steps, random_start=False)  # noqa: E731
            theirs = lambda: torchattacks.PGD(model, eps=eps, alpha=alpha, steps=args.steps,  # noqa: E731
                                              random_start=False)(x, y)
            t_ours, t_theirs = [], []
            for _ in range(args.repeats):
                t, a = cpu_time(ours)
                t_ours.append(t)
                t, b = cpu_time(theirs)
                t_theirs.append(t)
            o, th = statistics.median(t_ours), statistics.median(t_theirs)
            rows.append({"model": arch, "batch": len(x), "steps": args.steps,
                         "ours_steps_per_s": round(args.steps / o, 1),
                         "torchattacks_steps_per_s": round(args.steps / th, 1),
                         "speedup": round(th / o, 3), "max_abs_diff": float((a - b).abs().max())})
            print(rows[-1], file=sys.stderr, flush=True)
    info = {**meta("python benchmarks/robust_pgd_speed.py" + (" --quick" if args.quick else ""),
                   torchattacks=torchattacks.__version__), "rows": rows}
    cols = list(rows[0])
    body = ["PGD L-inf, eps 0.3, alpha 0.01, no random start; median process CPU time of alternating runs; "
            "speedup = torchattacks time / ours (goal >= 1x)\n",
            "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    body += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows]
    write("robust_pgd_speed", info, body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
