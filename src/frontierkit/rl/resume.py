"""Resumable, protected RL run folders: the RL counterpart of the Trainer's checkpoints.

A checkpoint (``<out>/checkpoints/step-NNNNNNN``, committed atomically by
:mod:`frontierkit.train.checkpoint`) holds everything the next step depends on — policy, critics and
their targets, temperatures, optimizers and schedulers (every module/optimizer/tensor attribute of the
learner), the replay buffer, the env state (how each episode began plus the actions since, replayed on
restore, see :class:`frontierkit.rl.envs.Recorded`), the torch/numpy RNG states, normaliser and
reward-scaler statistics, and the loop counters — so re-running the same command continues
bit-identically. A changed config is refused naming the field, as the Trainer does, and
``metrics.jsonl`` is cut back to the checkpoint's step so it never holds a second history.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..config import require, to_dict
from ..errors import CheckpointError
from ..train import checkpoint as ckpt


@dataclass(frozen=True, kw_only=True)
class CkptConfig:
    every: int = 5_000
    """save a resumable checkpoint every this many env (online) or gradient (offline) steps; 0 = only at the end"""
    keep: int = 2
    """checkpoints kept in <out>/checkpoints"""

    def __post_init__(self):
        require(self.every >= 0, "ckpt.every", self.every, "an integer >= 0")
        require(self.keep >= 1, "ckpt.keep", self.keep, "an integer >= 1")


# settings a resumed run may change: checkpoint and evaluation cadence (never what the policy learns from)
RESUMABLE_CHANGES = ("ckpt.every", "ckpt.keep", "eval.every")


def due(step: int, every: int, last: bool) -> bool:
    return last or bool(every and step % every == 0)


# ------------------------------------------------------------------ state of learners and RNGs

def learner_state(obj: Any) -> dict[str, Any]:
    """State dicts of every module, optimizer and scheduler attribute of ``obj``, and its tensors."""
    out: dict[str, Any] = {}
    for name, v in vars(obj).items():
        if isinstance(v, (nn.Module, torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler)):
            out[name] = v.state_dict()
        elif isinstance(v, torch.Tensor):
            out[name] = v.detach().clone()
    return out


def load_learner_state(obj: Any, state: dict[str, Any]) -> None:
    """Inverse of :func:`learner_state` (tensors copied in place, so optimizers keep their references)."""
    for name, v in state.items():
        target = getattr(obj, name, None)
        if isinstance(target, torch.Tensor):
            with torch.no_grad():
                target.copy_(v)
        elif target is not None:
            target.load_state_dict(v)
        else:
            raise CheckpointError(f"checkpoint holds learner state {name!r} this learner lacks; "
                                  f"it was written by another algorithm or version")


def rng_state(gen: torch.Generator) -> dict[str, Any]:
    """torch (global and the run's generator) and numpy global RNG states."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {"torch": torch.get_rng_state(), "gen": gen.get_state(),
            "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "rest": json.dumps([kind, pos, has_gauss, cached])}}


def load_rng_state(gen: torch.Generator, state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    gen.set_state(state["gen"])
    kind, pos, has_gauss, cached = json.loads(state["numpy"]["rest"])
    np.random.set_state((kind, state["numpy"]["keys"].numpy().astype(np.uint32), pos, has_gauss, cached))


# ------------------------------------------------------------------ the run folder

def _saved_run(out: Path) -> tuple[dict[str, Any] | None, Path | None]:
    """(config.json, path) of the latest checkpoint, else of the exported model, else (None, None)."""
    latest = ckpt.latest_checkpoint(out)
    for path in (latest, out / "model"):
        if path is not None and (path / ckpt.CONFIG_FILE).is_file():
            return ckpt.load_config_json(path), path
    return None, None


def check_same_run(out: str | Path, algo: str, run_config: Any) -> None:
    """Refuse to continue ``out`` under another algorithm or config (it would mix two runs)."""
    from ..track import flatten
    out = Path(out)
    saved, path = _saved_run(out)
    if saved is None:
        return
    old_algo = (saved.get("model") or {}).get("algo")
    if old_algo and old_algo != algo:
        raise CheckpointError(f"{out} already holds a {old_algo} run ({path}); this is {algo}. Use a new --out")
    if not isinstance(saved.get("run"), dict):
        return
    old, new = flatten(saved["run"]), flatten(json.loads(json.dumps(to_dict(run_config), default=str)))
    for key in sorted(set(old) | set(new)):
        if key in RESUMABLE_CHANGES or old.get(key) == new.get(key):
            continue
        raise CheckpointError(
            f"{out} already holds a run with {key}={old.get(key)!r}, but this run sets {key}={new.get(key)!r}; "
            f"resuming would mix two configs. Use a new --out, or delete {out} to start afresh")


class RunFolder:
    """Checkpoints of one RL run under ``out`` (nothing is written when ``out`` is None)."""

    def __init__(self, out: str | Path | None, algo: str, run_config: Any, model_config: dict[str, Any]):
        self.out = Path(out) if out is not None else None
        self.algo, self.run_config, self.model_config = algo, run_config, model_config
        self.ckpt: CkptConfig = getattr(run_config, "ckpt", CkptConfig())

    def resume(self) -> dict[str, Any] | None:
        """The latest checkpoint's state after checking the config; metrics.jsonl cut back to its step."""
        if self.out is None:
            return None
        check_same_run(self.out, self.algo, self.run_config)
        path = ckpt.latest_checkpoint(self.out)
        from ..track import truncate_metrics
        if path is None:
            truncate_metrics(self.out, 0)  # rows of an attempt killed before its first checkpoint
            return None
        state = ckpt.load_trainer_state(path)
        truncate_metrics(self.out, int(state["step"]))
        return state

    def save(self, step: int, policy: nn.Module, state: dict[str, Any]) -> None:
        if self.out is None:
            return
        config = {"kind": "rl-policy", "model": self.model_config, "run": to_dict(self.run_config), "step": step}
        ckpt.commit_training_checkpoint(self.out, step, policy.state_dict(), config, {"step": step, **state},
                                        keep=self.ckpt.keep)


def history_state(history: list[dict[str, float]], train_returns: list[tuple[int, float]]) -> dict[str, Any]:
    return {"history": json.dumps(history), "train_returns": json.dumps(train_returns)}


def load_history(state: dict[str, Any]) -> tuple[list[dict[str, float]], list[tuple[int, float]]]:
    return json.loads(state["history"]), [tuple(r) for r in json.loads(state["train_returns"])]
