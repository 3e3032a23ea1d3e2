"""CQL and IQL: frontierkit vs d3rlpy on the same offline datasets (built by `frontier rl collect`),
side by side in one run. d3rlpy pins gymnasium 1.0.0, so it runs from its own venv under .cache/rl
(created by rl_common.ensure_d3rlpy_venv; never installed into .venv).

Matching hyper-parameters: batch 256, γ 0.99, τ 0.005, twin critics, hidden (H, H) MLPs; CQL with a
fixed conservative weight 5, 10 action samples, no entropy in the TD target, actor lr 1e-4, critic lr
3e-4, temperature lr 1e-4; IQL with expectile 0.7, β 3, weight cap 100, lr 3e-4 (no actor cosine
schedule, as d3rlpy's default). Reported: final (not best-of) normalised score over 10 deterministic
episodes, and gradient steps/s (training only).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/rl_offline_d3rlpy.py --data .cache/rl/data \
        [--datasets pendulum-v1-medium pendulum-v1-medium-replay] [--algos cql iql] [--steps 5000] [--seeds 0 1 2]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from rl_common import ROOT, ensure_d3rlpy_venv, mean_std, write_results


def run_ours(path: Path, algo: str, steps: int, seed: int, hidden: int, n_samples: int) -> dict:
    from frontierkit.rl import cql, iql
    from frontierkit.rl.common import EvalConfig
    from frontierkit.rl.offline import DataConfig
    data, ev = DataConfig(path=str(path), seed=seed), EvalConfig(every=0, episodes=10)
    if algo == "cql":
        r = cql.train(cql.CQLRunConfig(data=data, eval=ev, cql=cql.CQLConfig(
            steps=steps, hidden=(hidden, hidden), n_action_samples=n_samples, cql_alpha=5.0, lagrange=False)))
    else:
        r = iql.train(iql.IQLRunConfig(data=data, eval=ev, iql=iql.IQLConfig(
            steps=steps, hidden=(hidden, hidden), cosine_actor_lr=False)))
    h = r.history[-1]
    return {"final_return": h["eval_return"], "final_std": h["eval_std"], "score": h["normalized_score"],
            "steps_per_s": r.steps_per_second, "steps_per_cpu_s": r.steps_per_cpu_second}


def run_d3rlpy(py: Path, path: Path, algo: str, steps: int, seed: int, hidden: int, n_samples: int) -> dict:
    worker = ROOT / "benchmarks" / "rl_d3rlpy_worker.py"
    out = subprocess.run([str(py), str(worker), str(path), algo, str(steps), str(seed), str(hidden), str(n_samples), "10"],
                         capture_output=True, text=True, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    if out.returncode != 0:
        raise RuntimeError(f"d3rlpy worker failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", default=str(ROOT / ".cache" / "rl" / "data"))
    p.add_argument("--datasets", nargs="+", default=["pendulum-v1-medium", "pendulum-v1-medium-replay"])
    p.add_argument("--algos", nargs="+", default=["cql", "iql"])
    p.add_argument("--steps", type=int, default=5000)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--n-action-samples", type=int, default=10)
    from bench_common import add_write_arg
    args = add_write_arg(p).parse_args()
    torch.set_num_threads(1)
    py = ensure_d3rlpy_venv()
    from frontierkit.rl.data import load_dataset
    rows, raw = [], {}
    for name in args.datasets:
        path = Path(args.data) / f"{name}.npz"
        ds = load_dataset(path)
        behaviour = ds.metadata["behaviour_return"][0]
        for algo in args.algos:
            key = f"{name}/{algo}"
            raw[key] = {"ours": [], "d3rlpy": []}
            for seed in args.seeds:
                raw[key]["ours"].append(run_ours(path, algo, args.steps, seed, args.hidden, args.n_action_samples))
                d = run_d3rlpy(py, path, algo, args.steps, seed, args.hidden, args.n_action_samples)
                d["score"] = ds.normalized_score(d["final_return"])
                raw[key]["d3rlpy"].append(d)
                print(key, seed, raw[key]["ours"][-1], d, flush=True)
            o, d = raw[key]["ours"], raw[key]["d3rlpy"]
            rows.append({"dataset": name, "algo": algo.upper(), "behaviour score": round(ds.normalized_score(behaviour), 1),
                         "frontierkit score": mean_std([r["score"] for r in o]),
                         "d3rlpy score": mean_std([r["score"] for r in d]),
                         "score ≥ d3rlpy": bool(np.mean([r["score"] for r in o]) >= np.mean([r["score"] for r in d])),
                         "frontierkit grad steps per CPU-s": float(np.mean([r["steps_per_cpu_s"] for r in o])),
                         "d3rlpy grad steps per CPU-s": float(np.mean([r["steps_per_cpu_s"] for r in d])),
                         "speed ratio": float(np.mean([a["steps_per_cpu_s"] / b["steps_per_cpu_s"] for a, b in zip(o, d)]))})
    notes = [f"{args.steps} gradient steps, seeds {args.seeds}, hidden ({args.hidden}, {args.hidden}), "
             f"CQL action samples {args.n_action_samples}; scores are final (not best-of), 10 deterministic episodes",
             "normalised score = 100·(R - R_random)/(R_expert - R_random) with the references stored in each dataset",
             "goals: score ≥ d3rlpy and gradient steps/s ≥ 1.5× d3rlpy; speed is measured in process CPU time "
             "(time.process_time, both single-threaded) because the shared 2-core machine makes wall-clock rates noisy"]
    write_results("rl_offline_d3rlpy", {"raw": raw}, rows,
                  "OMP_NUM_THREADS=1 .venv/bin/python benchmarks/rl_offline_d3rlpy.py " + " ".join(sys.argv[1:]), notes)


if __name__ == "__main__":
    main()
