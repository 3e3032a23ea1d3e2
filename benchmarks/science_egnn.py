"""EGNN (Satorras et al. 2021) against a plain GNN on the charged N-body task simulated here (5 particles,
Kipf et al.'s simulator in 3-D without a box; (x, v) at frame 30 -> x at frame 40, 1000 steps of dt 1e-3):
test MSE beside the paper's Table 2. Both models: 4 layers, 64 hidden, the same data, loss, optimizer and
steps. Reduced to fit a shared 2-core CPU: see REDUCTIONS.

    python benchmarks/science_egnn.py            # 400 steps per model
    python benchmarks/science_egnn.py --quick    # 50 steps per model
"""
from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

PAPER = {"EGNN": 0.0071, "GNN": 0.0107, "SE(3)-Transformer": 0.0244, "Linear": 0.0819}
"""Satorras et al. 2021, Table 2: N-body test MSE (3,000 training samples)"""
REDUCTIONS = ("paper: 10,000 epochs of batch 100 over 3,000 samples (300,000 steps), lr 5e-4; here: the stated "
              "steps of batch 100 (a few epochs), lr 1e-3 cosine; same 3,000 / 2,000 train / test sizes")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="50 training steps per model")
    ap.add_argument("--steps", type=int, default=0, help="training steps per model (default 400, quick 50)")
    from bench_common import add_write_arg
    add_write_arg(ap)
    args = ap.parse_args()

    import torch
    from bench_common import meta, table, write
    from frontierkit.data import cache_dir
    from frontierkit.science.egnn import EGNN, GNN
    from frontierkit.science.train import nbody_tensors, train_nbody

    steps = args.steps or (50 if args.quick else 400)
    test = nbody_tensors(2000, "test")
    loc, _, _, target = test
    rows = [{"model": "Linear (x at frame 30, no learning)", "params": 0, "steps": 0,
             "test MSE": float((loc - target).pow(2).mean()), "paper MSE": "-"}]
    for name, model in (("EGNN", EGNN()), ("GNN", GNN())):
        torch.manual_seed(0)
        out = cache_dir() / "science" / "runs" / f"{name.lower()}-nbody-{steps}"
        shutil.rmtree(out, ignore_errors=True)
        t = time.perf_counter()
        model, mse = train_nbody(model, out, steps=steps)
        rows.append({"model": name, "params": sum(p.numel() for p in model.parameters()), "steps": steps,
                     "test MSE": mse, "paper MSE": PAPER[name], "train seconds": round(time.perf_counter() - t, 1)})
        print(rows[-1], file=sys.stderr)
    rows[0]["test MSE"] = float(rows[0]["test MSE"])
    cmd = "python benchmarks/science_egnn.py" + (" --quick" if args.quick else "") + \
          (f" --steps {args.steps}" if args.steps else "")
    info = {**meta(cmd), "reductions": REDUCTIONS, "rows": rows, "paper": PAPER}
    body = ["## N-body: test MSE of positions 1000 steps ahead", "", *table(rows), "",
            "Paper (Table 2): " + ", ".join(f"{k} {v}" for k, v in PAPER.items()), "",
            "Reductions: " + REDUCTIONS]
    write("science_egnn", info, body)


if __name__ == "__main__":
    main()
