"""Embodied control (overview §8.1): SAC on a MuJoCo task, its learning curve to a stated return within
the CPU budget, and the offline datasets (random / medium / expert / medium-replay) built from it.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/rl_mujoco.py [--env HalfCheetah-v5] [--steps 20000] [--transitions 10000]
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from rl_common import CACHE, write_results


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--env", default="HalfCheetah-v5")
    p.add_argument("--steps", type=int, default=20_000)
    p.add_argument("--transitions", type=int, default=10_000)
    p.add_argument("--learning-starts", type=int, default=5_000)
    p.add_argument("--seed", type=int, default=0)
    from bench_common import add_write_arg
    args = add_write_arg(p).parse_args()
    torch.set_num_threads(1)
    from frontierkit.rl.data import collect, load_dataset
    from frontierkit.rl.sac import SACConfig
    sac = SACConfig(total_steps=args.steps, learning_starts=args.learning_starts, actor_lr=3e-4, critic_lr=1e-3,
                    alpha_lr=1e-3)
    t0 = time.perf_counter()
    out = CACHE / "data"
    paths = collect(args.env, out, train_steps=args.steps, n_transitions=args.transitions, seed=args.seed,
                    sac_config=sac, ref_episodes=5)
    wall = time.perf_counter() - t0
    summary = json.loads((out / f"{args.env.lower()}-collect.json").read_text())
    curve = summary["sac_history"]
    table = [{"env steps": h["step"], "eval return": h["eval_return"], "± std": h["eval_std"]} for h in curve]
    datasets = {}
    for kind, path in paths.items():
        d = load_dataset(path)
        datasets[kind] = {"file": path.name, "transitions": len(d), "episodes": d.metadata["n_episodes"],
                          "behaviour_return": d.metadata["behaviour_return"],
                          "score": d.normalized_score(d.metadata["behaviour_return"][0])}
    notes = [f"SAC on {args.env}: 256-256 MLPs, actor lr 3e-4, critic/temperature lr 1e-3, {args.learning_starts} "
             f"random steps, seed {args.seed}; deterministic eval of 5 episodes every {max(args.steps // 20, 1)} steps",
             f"final eval return {curve[-1]['eval_return']:.1f} at {args.steps} env steps; "
             f"random reference {summary['ref_random_return']:.1f}, expert reference (final policy, 5 episodes) "
             f"{summary['ref_expert_return']:.1f}",
             f"wall clock {wall:.0f} s for training + datasets on a shared 2-core CPU",
             "datasets: " + "; ".join(f"{k}: {v['transitions']} transitions, behaviour return "
                                      f"{v['behaviour_return'][0]:.1f}, score {v['score']:.1f}" for k, v in datasets.items())]
    write_results(f"rl_mujoco_{args.env.lower().replace('-', '_')}", {"curve": curve, "datasets": datasets,
                  "summary": summary}, table,
                  "OMP_NUM_THREADS=1 .venv/bin/python benchmarks/rl_mujoco.py " + " ".join(sys.argv[1:]), notes)


if __name__ == "__main__":
    main()
