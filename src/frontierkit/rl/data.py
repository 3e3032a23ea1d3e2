"""Offline RL datasets built from our own agents (the D4RL recipe of Fu et al. 2020, without downloads).

File format (one ``.npz`` file, numpy's zip of arrays, read with ``allow_pickle=False``):

============================  ==========  =====================================================
key                           dtype       shape / meaning
============================  ==========  =====================================================
``observations``              float32     (N, S) state s_t
``actions``                   float32     (N, A) action a_t (env units, inside the action box)
``rewards``                   float32     (N,) reward r_t
``next_observations``         float32     (N, S) s_{t+1} (the final observation at episode ends)
``terminals``                 bool        (N,) the episode ended in a terminal state (no bootstrap)
``timeouts``                  bool        (N,) the episode was cut by a time limit (or the data ends)
``metadata``                  str (0-d)   JSON object, see below
============================  ==========  =====================================================

``metadata`` holds ``format`` ("frontierkit-rl-dataset"), ``version`` (1), ``env_id``, ``kind``
(random / medium / expert / medium-replay), ``obs_dim``, ``act_dim``, ``low``, ``high``,
``n_transitions``, ``n_episodes``, ``ref_random_return`` and ``ref_expert_return`` (mean returns of
the uniform-random policy and of the deterministic expert), ``behaviour_return`` (mean ± std over the
complete episodes in the file), ``source`` (how it was made) and ``seed``. The normalised score of a
return R is 100·(R - ref_random_return)/(ref_expert_return - ref_random_return).
"""
from __future__ import annotations

import copy
import json
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DataError
from .buffers import ReplayBuffer

FORMAT, VERSION = "frontierkit-rl-dataset", 1
ARRAYS = ("observations", "actions", "rewards", "next_observations", "terminals", "timeouts")
KINDS = ("random", "medium", "expert", "medium-replay")
REQUIRED_META = ("env_id", "obs_dim", "act_dim", "low", "high", "ref_random_return", "ref_expert_return")


def normalized_score(ret: float, random_return: float, expert_return: float) -> float:
    """D4RL normalised score 100·(R - R_random)/(R_expert - R_random)."""
    return 100.0 * (ret - random_return) / (expert_return - random_return)


@dataclass
class OfflineDataset:
    path: Path
    arrays: dict[str, np.ndarray]
    metadata: dict[str, Any]

    @property
    def env_id(self) -> str:
        return self.metadata["env_id"]

    def __len__(self) -> int:
        return len(self.arrays["rewards"])

    def normalized_score(self, ret: float) -> float:
        return normalized_score(ret, self.metadata["ref_random_return"], self.metadata["ref_expert_return"])

    def space_info(self) -> dict[str, Any]:
        m = self.metadata
        return {"obs_dim": m["obs_dim"], "act_dim": m["act_dim"], "discrete": False, "low": m["low"], "high": m["high"]}

    def buffer(self) -> ReplayBuffer:
        return ReplayBuffer.from_arrays(self.arrays)

    def episode_returns(self) -> list[float]:
        return episode_returns(self.arrays)


def episode_returns(arrays: dict[str, np.ndarray]) -> list[float]:
    """Returns of the complete episodes (segments ending in a terminal or timeout)."""
    ends = np.flatnonzero(arrays["terminals"] | arrays["timeouts"])
    starts = np.concatenate([[0], ends[:-1] + 1])
    return [float(arrays["rewards"][s:e + 1].sum()) for s, e in zip(starts, ends)]


def save_dataset(path: str | Path, arrays: dict[str, np.ndarray], metadata: dict[str, Any]) -> Path:
    """Write the documented ``.npz`` (arrays cast to their dtypes, metadata as a JSON string)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rets = episode_returns(arrays)
    meta = {"format": FORMAT, "version": VERSION, "n_transitions": int(len(arrays["rewards"])),
            "n_episodes": len(rets), "behaviour_return": [float(np.mean(rets)) if rets else float("nan"),
                                                          float(np.std(rets)) if rets else float("nan")],
            **metadata}
    out = {k: np.asarray(arrays[k], dtype=bool if k in ("terminals", "timeouts") else np.float32) for k in ARRAYS}
    out["metadata"] = np.array(json.dumps(meta, sort_keys=True))
    tmp = path.with_name(f".{path.name}.tmp.npz")
    np.savez_compressed(tmp, **out)
    tmp.replace(path)
    return path


def load_dataset(path: str | Path, algo: str | None = None) -> OfflineDataset:
    """Read and validate a dataset; every defect raises DataError naming the file, the field and the fix."""
    path = Path(path)
    hint = "build one with `frontier rl collect --env Pendulum-v1 --out data/rl`"
    if not str(path) or not path.is_file():
        raise DataError(f"dataset {str(path)!r} does not exist; pass --dataset FILE.npz ({hint})")
    if not zipfile.is_zipfile(path):
        raise DataError(f"dataset {str(path)!r} is not a .npz (zip) file; {hint}")
    try:
        with np.load(path, allow_pickle=False) as z:
            raw = {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
        raise DataError(f"dataset {str(path)!r} is not a readable .npz file ({type(e).__name__}: {e}); {hint}") from None
    missing = [k for k in (*ARRAYS, "metadata") if k not in raw]
    if missing:
        raise DataError(f"dataset {str(path)!r} lacks {missing}; a dataset holds {', '.join(ARRAYS)} and metadata "
                        f"(see docs/rl.md)")
    try:
        meta = json.loads(str(raw["metadata"]))
        assert isinstance(meta, dict)
    except (json.JSONDecodeError, AssertionError):
        raise DataError(f"dataset {str(path)!r}: metadata is not a JSON object") from None
    absent = [k for k in REQUIRED_META if k not in meta]
    if absent:
        raise DataError(f"dataset {str(path)!r}: metadata lacks {absent}")
    arrays = {k: raw[k] for k in ARRAYS}
    n = len(arrays["rewards"]) if arrays["rewards"].ndim == 1 else -1
    shapes = {"observations": (n, meta["obs_dim"]), "next_observations": (n, meta["obs_dim"]),
              "actions": (n, meta["act_dim"]), "rewards": (n,), "terminals": (n,), "timeouts": (n,)}
    for k, shape in shapes.items():
        if arrays[k].shape != shape or n <= 0:
            raise DataError(f"dataset {str(path)!r}: {k} has shape {arrays[k].shape}, expected {shape} "
                            f"(N transitions, obs_dim={meta['obs_dim']}, act_dim={meta['act_dim']} from metadata)")
        if k in ("terminals", "timeouts"):
            if arrays[k].dtype != bool:
                raise DataError(f"dataset {str(path)!r}: {k} must be bool, found {arrays[k].dtype}")
        elif not np.issubdtype(arrays[k].dtype, np.floating) or not np.isfinite(arrays[k]).all():
            raise DataError(f"dataset {str(path)!r}: {k} must be finite floats (found {arrays[k].dtype}"
                            f"{', with NaN/inf' if np.issubdtype(arrays[k].dtype, np.floating) else ''})")
    if meta["ref_expert_return"] == meta["ref_random_return"]:
        raise DataError(f"dataset {str(path)!r}: ref_expert_return equals ref_random_return; the score is undefined")
    if algo is not None and meta.get("discrete", False):
        raise DataError(f"dataset {str(path)!r} has discrete actions but {algo.upper()} needs continuous ones")
    return OfflineDataset(path, arrays, meta)


# ------------------------------------------------------------------ collection

def rollout_arrays(act, env_id: str, n_transitions: int, seed: int) -> dict[str, np.ndarray]:
    """Run ``act`` (obs (1,S) -> action (1,A)) for n transitions; the last one is marked a timeout."""
    from .envs import make_env
    env = make_env(env_id)
    rows: dict[str, list] = {k: [] for k in ARRAYS}
    obs, _ = env.reset(seed=seed)
    env.action_space.seed(seed)
    episode = 0
    for i in range(n_transitions):
        action = np.asarray(act(np.asarray(obs, dtype=np.float32)[None])[0], dtype=np.float32)
        next_obs, reward, term, trunc, _ = env.step(action)
        trunc = trunc or i == n_transitions - 1
        for k, v in zip(ARRAYS, (obs, action, reward, next_obs, term, trunc)):
            rows[k].append(v)
        obs = next_obs
        if term or trunc:
            episode += 1
            obs, _ = env.reset(seed=seed + episode)
    env.close()
    return {k: np.asarray(v) for k, v in rows.items()}


def random_policy(env_id: str, seed: int):
    from .envs import make_env
    space = make_env(env_id).action_space
    space.seed(seed)
    return lambda obs: np.stack([space.sample() for _ in range(len(obs))])


def stochastic_act(policy: torch.nn.Module):
    return lambda obs: policy.act(torch.as_tensor(obs, dtype=torch.float32), deterministic=False).numpy()


def collect(env_id: str, out: str | Path, kinds: tuple[str, ...] = KINDS, train_steps: int = 15_000,
            n_transitions: int = 20_000, medium_score: float = 45.0, ref_episodes: int = 10, seed: int = 0,
            quiet: bool = True, tracker: Any = None, hidden: tuple[int, ...] = (256, 256),
            sac_config: Any = None) -> dict[str, Path]:
    """Train SAC on ``env_id`` and write the requested datasets to ``<out>/<env>-<kind>.npz``.

    expert: the final SAC policy (sampled). medium: the evaluation snapshot whose normalised score is
    closest to ``medium_score``. medium-replay: the SAC replay buffer up to that snapshot. random:
    uniform actions. Reference returns: uniform-random and deterministic-expert means over ``ref_episodes``.
    ``sac_config`` (a SACConfig) replaces the default SAC hyper-parameters (its total_steps wins).
    """
    from .common import evaluate_policy, save_policy
    from .envs import evaluate, make_env, space_info, require_continuous
    from .sac import SACConfig, SACRunConfig, train as train_sac
    from .common import EnvConfig, EvalConfig, RLResult
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        from ..errors import ConfigError
        raise ConfigError(f"kinds={list(kinds)!r} is invalid: choose from {', '.join(KINDS)}")
    out = Path(out)
    info = space_info(make_env(env_id))
    require_continuous(info, env_id, "collect (offline datasets)")
    t0 = time.perf_counter()
    ref_random = float(np.mean(evaluate(random_policy(env_id, seed), env_id, ref_episodes, seed=20_000)))
    snapshots: list[tuple[int, float, dict, int]] = []  # (step, eval return, actor state, buffer size)

    def on_eval(step: int, mean: float, learner: Any, buffer: ReplayBuffer) -> None:
        snapshots.append((step, mean, copy.deepcopy(learner.actor.state_dict()), len(buffer)))

    import dataclasses
    sac_cfg = (dataclasses.replace(sac_config, total_steps=train_steps) if sac_config is not None
               else SACConfig(total_steps=train_steps, hidden=hidden))
    run = SACRunConfig(env=EnvConfig(id=env_id, seed=seed), sac=sac_cfg,
                       eval=EvalConfig(every=max(train_steps // 20, 1), episodes=5))
    result = train_sac(run, quiet=quiet, tracker=tracker, on_eval=on_eval)
    expert = result.policy
    ref_expert, _ = evaluate_policy(expert, env_id, ref_episodes, seed=20_000)
    scores = [normalized_score(m, ref_random, ref_expert) for _, m, _, _ in snapshots]
    pick = int(np.argmin([abs(s - medium_score) for s in scores]))
    m_step, m_return, m_state, m_size = snapshots[pick]
    medium = copy.deepcopy(expert)
    medium.load_state_dict(m_state)
    base = {"env_id": env_id, **{k: info[k] for k in ("obs_dim", "act_dim", "low", "high")},
            "ref_random_return": ref_random, "ref_expert_return": ref_expert, "seed": seed,
            "created": time.strftime("%Y-%m-%d %H:%M:%S")}
    sources = {"random": "uniform random actions",
               "medium": f"SAC snapshot at step {m_step} (eval return {m_return:.1f}, score {scores[pick]:.1f}), sampled",
               "expert": f"SAC after {train_steps} steps (eval return {ref_expert:.1f}), sampled",
               "medium-replay": f"SAC replay buffer of the first {m_size} steps (up to the medium snapshot)"}
    stem = env_id.lower()
    paths: dict[str, Path] = {}
    for i, kind in enumerate(kinds):
        if kind == "medium-replay":
            arrays = result.extra["buffer"].arrays()
            arrays = {k: v[:m_size] for k, v in arrays.items()}
            arrays["timeouts"][-1] = not arrays["terminals"][-1]
        else:
            act = {"random": random_policy(env_id, seed), "medium": stochastic_act(medium),
                   "expert": stochastic_act(expert)}[kind]
            arrays = rollout_arrays(act, env_id, n_transitions, seed=30_000 + 1000 * i)
        paths[kind] = save_dataset(out / f"{stem}-{kind}.npz", arrays, {**base, "kind": kind, "source": sources[kind]})
    for name, pol in (("expert", expert), ("medium", medium)):
        res = RLResult(pol, {"algo": "sac", "policy": "tanh_gaussian", "env_id": env_id,
                             "hidden": list(run.sac.hidden), **info})
        save_policy(out / f"{stem}-agents" / name, res, run, train_steps)
    summary = {"env_id": env_id, "ref_random_return": ref_random, "ref_expert_return": ref_expert,
               "medium_step": m_step, "medium_return": m_return, "sac_history": result.history,
               "seconds": time.perf_counter() - t0, "files": {k: str(v) for k, v in paths.items()}}
    (out / f"{stem}-collect.json").write_text(json.dumps(summary, indent=2))
    return paths
