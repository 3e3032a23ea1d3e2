"""The loop shared by offline algorithms (CQL, IQL): sample minibatches from a fixed dataset, take
gradient steps, and evaluate the deterministic policy in the dataset's environment with the
normalised score 100·(R - R_random)/(R_expert - R_random) (Fu et al. 2020, D4RL)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from ..config import require
from ..track import NullTracker
from .common import EnvConfig, EvalConfig, Progress, RLResult, evaluate_policy, save_policy, seed_everything
from .resume import RunFolder, due, history_state, learner_state, load_history, load_learner_state, load_rng_state, \
    rng_state


@dataclass(frozen=True, kw_only=True)
class DataConfig:
    path: str = ""
    """offline dataset file written by `frontier rl collect` (.npz)"""
    seed: int = 0
    """seed of torch and numpy"""
    threads: int = 1
    """torch CPU threads"""

    def __post_init__(self):
        require(self.threads >= 1, "data.threads", self.threads, "an integer >= 1")


def train_offline(algo: str, learner: Any, policy: torch.nn.Module, dataset: Any, data: DataConfig,
                  steps: int, batch_size: int, evalc: EvalConfig, model_config: dict[str, Any],
                  run_config: Any, out: str | Path | None, tracker: Any, quiet: bool) -> RLResult:
    """``steps`` gradient steps of ``learner.update(batch)`` on ``dataset``, with periodic evaluation."""
    tracker = tracker or NullTracker()
    gen = seed_everything(EnvConfig(id=dataset.env_id, seed=data.seed, threads=data.threads))
    buffer = dataset.buffer()
    result = RLResult(policy, model_config)
    folder, start = RunFolder(out, algo, run_config, model_config), 0
    state = folder.resume()
    if state is not None:  # continue exactly where the last checkpoint left off
        load_learner_state(learner, state["learner"])
        load_rng_state(gen, state["rng"])
        result.history, _ = load_history(state)
        start = int(state["step"])
    progress = Progress(steps, f"{algo} {Path(dataset.path).name}", quiet, initial=start)
    stats = {}
    every = getattr(getattr(run_config, "ckpt", None), "every", 0)
    for step in range(start + 1, steps + 1):
        stats = learner.update(buffer.sample(batch_size, gen))
        progress.update(1)
        if step % 1000 == 0:
            tracker.log_metrics(stats, step)
        if (evalc.every and step % evalc.every == 0) or step == steps:
            mean, std = progress.exclude(evaluate_policy, policy, dataset.env_id, evalc.episodes, evalc.seed)
            row = {"step": step, "eval_return": mean, "eval_std": std,
                   "normalized_score": dataset.normalized_score(mean)}
            result.history.append(row)
            tracker.log_metrics({k: v for k, v in row.items() if k != "step"}, step)
        if out is not None and due(step, every, step == steps):
            folder.save(step, policy, {"learner": learner_state(learner), "rng": rng_state(gen),
                                       **history_state(result.history, [])})
    progress.close()
    result.seconds = progress.seconds()
    result.steps_per_second, result.steps_per_cpu_second = progress.rates(steps)
    result.extra.update(learner=learner, last_stats=stats)
    if out is not None:
        save_policy(out, result, run_config, steps)
    return result


def make_model_config(algo: str, policy: str, dataset: Any, hidden: tuple[int, ...]) -> dict[str, Any]:
    return {"algo": algo, "policy": policy, "env_id": dataset.env_id, "hidden": list(hidden),
            "dataset": str(dataset.path), **dataset.space_info()}


LoaderFn = Callable[[str], Any]
