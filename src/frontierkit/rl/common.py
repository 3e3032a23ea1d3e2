"""Pieces every RL algorithm shares: the ``env`` and ``eval`` config sections, the result of a run,
periodic deterministic evaluation, and saving/loading the final policy in the foundation's checkpoint
format (``<out>/model/config.json`` + ``model.safetensors``)."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..config import require, to_dict
from ..errors import CheckpointError


@dataclass(frozen=True, kw_only=True)
class EnvConfig:
    id: str = "CartPole-v1"
    """gymnasium environment id (online algorithms; offline ones read it from the dataset)"""
    seed: int = 0
    """seed of torch, numpy and the environments"""
    threads: int = 1
    """torch CPU threads (small MLPs are fastest single-threaded)"""

    def __post_init__(self):
        require(bool(self.id), "env.id", self.id, "a gymnasium id such as CartPole-v1")
        require(self.threads >= 1, "env.threads", self.threads, "an integer >= 1")


@dataclass(frozen=True, kw_only=True)
class EvalConfig:
    every: int = 10_000
    """evaluate the deterministic policy every this many env (online) or gradient (offline) steps; 0 = only at the end"""
    episodes: int = 10
    """episodes per evaluation"""
    seed: int = 10_000
    """first reset seed of evaluation episodes (seeds seed, seed+1, ...)"""

    def __post_init__(self):
        require(self.every >= 0, "eval.every", self.every, "an integer >= 0")
        require(self.episodes >= 1, "eval.episodes", self.episodes, "an integer >= 1")


@dataclass
class RLResult:
    """What a training run returns: the policy, its checkpoint config, the evaluation curve and throughput."""
    policy: nn.Module
    model_config: dict[str, Any]
    history: list[dict[str, float]] = field(default_factory=list)
    """rows {"step", "eval_return", "eval_std"[, "normalized_score"]}"""
    train_returns: list[tuple[int, float]] = field(default_factory=list)
    """(env step, return) of each finished training episode (online algorithms)"""
    steps_per_second: float = 0.0
    """training steps per wall-clock second (evaluation excluded)"""
    steps_per_cpu_second: float = 0.0
    """training steps per second of this process's CPU time (robust to other jobs sharing the machine)"""
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def final_return(self) -> float:
        return self.history[-1]["eval_return"] if self.history else float("nan")


def seed_everything(env: EnvConfig) -> torch.Generator:
    torch.manual_seed(env.seed)
    np.random.seed(env.seed)
    torch.set_num_threads(env.threads)
    return torch.Generator().manual_seed(env.seed)


def policy_act_fn(policy: nn.Module):
    """numpy obs batch -> numpy action batch with the deterministic policy."""
    def act(obs: np.ndarray) -> np.ndarray:
        return policy.act(torch.as_tensor(obs, dtype=torch.float32), deterministic=True).numpy()
    return act


def evaluate_policy(policy: nn.Module, env_id: str, episodes: int, seed: int = 10_000) -> tuple[float, float]:
    """Mean and std of the deterministic policy's undiscounted return."""
    from .envs import evaluate
    returns = evaluate(policy_act_fn(policy), env_id, episodes, seed)
    return float(np.mean(returns)), float(np.std(returns))


class Progress:
    """tqdm bar over steps (silent when quiet) plus a wall clock."""

    def __init__(self, total: int, desc: str, quiet: bool, initial: int = 0):
        self.t0, self.cpu0 = time.perf_counter(), time.process_time()
        self.excluded, self.cpu_excluded = 0.0, 0.0
        self.initial = initial
        self.bar = None
        if not quiet:
            from tqdm import tqdm
            self.bar = tqdm(total=total, initial=initial, desc=desc, unit="step", dynamic_ncols=True)

    def update(self, n: int, **postfix: float) -> None:
        if self.bar is not None:
            self.bar.update(n)
            if postfix:
                self.bar.set_postfix({k: f"{v:.3g}" for k, v in postfix.items()}, refresh=False)

    def seconds(self) -> float:
        return time.perf_counter() - self.t0

    def exclude(self, fn, *args):
        """Run ``fn(*args)`` (an evaluation) off the clock: its wall and CPU time are not training time."""
        t, c = time.perf_counter(), time.process_time()
        out = fn(*args)
        self.excluded += time.perf_counter() - t
        self.cpu_excluded += time.process_time() - c
        return out

    def rates(self, steps: int) -> tuple[float, float]:
        """(steps per wall second, steps per CPU second) of training so far, evaluations excluded."""
        wall = time.perf_counter() - self.t0 - self.excluded
        cpu = time.process_time() - self.cpu0 - self.cpu_excluded
        steps -= self.initial  # a resumed run counts only the steps it took
        return steps / max(wall, 1e-9), steps / max(cpu, 1e-9)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# ------------------------------------------------------------------ checkpoints

def build_policy(model: dict[str, Any]) -> nn.Module:
    """The policy module a checkpoint's ``model`` config describes (weights not loaded)."""
    from .nets import ActorCritic, GaussianPolicy, TanhGaussianActor
    kind, hidden = model.get("policy"), tuple(model.get("hidden", ()))
    try:
        if kind == "actor_critic":
            return ActorCritic(model["obs_dim"], model["act_dim"], model["discrete"], hidden,
                               norm_obs=model.get("norm_obs", False))
        if kind == "tanh_gaussian":
            return TanhGaussianActor(model["obs_dim"], model["act_dim"], hidden,
                                     torch.tensor(model["low"]), torch.tensor(model["high"]))
        if kind == "gaussian":
            return GaussianPolicy(model["obs_dim"], model["act_dim"], hidden,
                                  torch.tensor(model["low"]), torch.tensor(model["high"]))
    except KeyError as e:
        raise CheckpointError(f"model config lacks {e}; the checkpoint was not written by frontier rl") from None
    raise CheckpointError(f"model.policy={kind!r} is not an RL policy (actor_critic, tanh_gaussian, gaussian); "
                          f"pass a folder written by `frontier rl train`")


def save_policy(out: str | Path, result: RLResult, run_config: Any, step: int) -> Path:
    """Write ``<out>/model`` (config.json {"model", "run", "step"} + model.safetensors)."""
    from ..models import save
    return save(result.policy, Path(out) / "model", kind="rl-policy", config=result.model_config,
                run=to_dict(run_config) if run_config is not None else None, step=step, history=result.history)


def load_policy(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Policy and its config.json from a run folder or its ``model/`` (through the model registry)."""
    from ..models import open_model
    loaded = open_model(path, kind="rl-policy", what="frontier rl")
    return loaded.model, loaded.meta
