"""Toolformer in miniature (Schick et al. 2023): a kit LLaMA trained on synthetic arithmetic word problems
whose answers contain ``[Calculator(a op b)→r]`` calls, against the same model with the calculator off and a
model trained on the same problems without annotations; exact match by operand digit count (1-6).
Goal: with the tool >= 95% at every digit count; the other two fall with the digit count.

    python benchmarks/agents_toolformer.py --write        # 3000 steps per model, 50 problems per digit count
    python benchmarks/agents_toolformer.py --quick        # 600 steps per model, 20 problems per digit count

The copying skill the calls need appears as a sudden loss drop after ~400-600 steps (batch 32, lr 5e-3): the
first attempt (400 steps, batch 16, lr 3e-3) stopped before it and every condition scored ~0.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import bench_common  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="600 steps per model, 20 problems per digit count")
    ap.add_argument("--steps", type=int, default=None, help="training steps per model (default 3000; quick 600)")
    ap.add_argument("--lr", type=float, default=5e-3, help="peak learning rate (warmup 100 steps, cosine to 10%%)")
    ap.add_argument("--batch", type=int, default=32, help="problems per training step")
    ap.add_argument("--n", type=int, default=None, help="problems per digit count (default 50; quick 20)")
    ap.add_argument("--out", default=None, help="results folder (default benchmarks/results)")
    bench_common.add_write_arg(ap)
    args = ap.parse_args()

    import torch

    from frontierkit.agents import toolformer as tf
    from frontierkit.data import cache_dir

    torch.set_num_threads(1)
    steps = args.steps or (600 if args.quick else 3000)
    n = args.n or (20 if args.quick else 50)
    seconds = {}
    trained = {}
    for name, annotated in (("annotated", True), ("plain", False)):
        t0 = time.perf_counter()
        trained[name] = tf.train(annotated, cache_dir() / "agents-toolformer" / f"{name}-{steps}-{args.batch}-{args.lr:g}",
                                 steps=steps, batch_size=args.batch, lr=args.lr, quiet=False)
        seconds[name] = round(time.perf_counter() - t0, 1)
    rows = tf.evaluate_models(trained["annotated"], trained["plain"], n=n)
    cmd = "python benchmarks/agents_toolformer.py" + (" --quick" if args.quick else "") + (
        f" --steps {args.steps}" if args.steps else "") + (f" --lr {args.lr:g}" if args.lr != 5e-3 else "") + (f" --batch {args.batch}" if args.batch != 32 else "") + (f" --n {args.n}" if args.n else "")
    info = {**bench_common.meta(cmd), "rows": rows, "steps": steps, "n_per_digit": n, "train_seconds": seconds,
            "model": tf.model_config(), "batch": args.batch, "lr": args.lr, "goal": "tool >= 0.95 at every digit count"}
    body = [f"Model: kit LLaMA {tf.model_config()}, characters as tokens; {steps} steps per model "
            f"(batch {args.batch}, lr {args.lr:g} warmup 100 + cosine, answer tokens only); training seconds {seconds}; {n} problems per digit count.",
            "The 2-core machine was shared with other jobs: the training seconds are inflated and noisy.", "",
            *bench_common.table(rows)]
    bench_common.write("agents_toolformer", info, body, **({"out": Path(args.out)} if args.out else {}))


if __name__ == "__main__":
    main()
