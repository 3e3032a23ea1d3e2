"""Gymnasium plumbing: env creation with clear errors, a minimal synchronous vector env that resets
finished episodes in the same step (keeping the final observation for bootstrapping), reward scaling
by the running std of the discounted return (as in the PPO MuJoCo setup), and episode evaluation."""
from __future__ import annotations

import json
from typing import Any, Callable

import numpy as np
import torch

from ..errors import ConfigError, require_extra


def gym():
    return require_extra("gymnasium", "rl")


def make_env(env_id: str, seed: int | None = None, **kwargs: Any):
    """``gymnasium.make`` with a one-line error naming the id and close matches when it is unknown."""
    g = gym()
    try:
        env = g.make(env_id, **kwargs)
    except g.error.Error as e:
        import difflib
        close = difflib.get_close_matches(env_id, list(g.registry), n=3)
        hint = f"did you mean {', '.join(close)}?" if close else "see gymnasium.registry for ids"
        raise ConfigError(f"env.id={env_id!r} is not a gymnasium environment ({type(e).__name__}); {hint}") from None
    except ImportError as e:
        raise ConfigError(f"env.id={env_id!r} needs an optional package ({e}); "
                          f"run: pip install 'frontierkit[rl]'") from None
    if seed is not None:
        env.reset(seed=seed)
        env.action_space.seed(seed)
    return env


def space_info(env) -> dict[str, Any]:
    """obs_dim, act_dim, discrete, and action bounds of a flat Box/Discrete env."""
    g = gym()
    obs_space, act_space = env.observation_space, env.action_space
    if not isinstance(obs_space, g.spaces.Box) or len(obs_space.shape) != 1:
        raise ConfigError(f"env {env.spec.id if env.spec else env!r} has observation space {obs_space}; "
                          f"frontierkit.rl supports flat Box observations")
    info: dict[str, Any] = {"obs_dim": int(obs_space.shape[0])}
    if isinstance(act_space, g.spaces.Discrete):
        info.update(discrete=True, act_dim=int(act_space.n))
    elif isinstance(act_space, g.spaces.Box) and len(act_space.shape) == 1:
        info.update(discrete=False, act_dim=int(act_space.shape[0]),
                    low=act_space.low.astype(np.float32).tolist(), high=act_space.high.astype(np.float32).tolist())
    else:
        raise ConfigError(f"action space {act_space} is not supported (Discrete or flat Box only)")
    return info


def require_continuous(info: dict[str, Any], env_id: str, algo: str) -> None:
    """SAC/CQL/IQL need a Box action space: fail with the fix (use PPO) on a Discrete one."""
    if info["discrete"]:
        raise ConfigError(f"env.id={env_id!r} has a discrete action space ({info['act_dim']} actions) but "
                          f"{algo.upper()} needs continuous (Box) actions; use `frontier rl train ppo` or a "
                          f"continuous env such as Pendulum-v1")


def _generator_state(rng: np.random.Generator) -> str:
    return json.dumps(rng.bit_generator.state)


def _set_generator_state(rng: np.random.Generator, state: str) -> None:
    rng.bit_generator.state = json.loads(state)


class Recorded:
    """An env that remembers how its episode began (reset seed, or the env RNG state before an unseeded
    reset) and the actions since, so a checkpoint restores it mid-episode by replaying them. Works for
    any env whose dynamics depend only on its RNG and the actions (classic control, MuJoCo)."""

    def __init__(self, env):
        self.env = env
        self.start: dict[str, Any] = {"seed": None, "rng": None}
        self.actions: list[np.ndarray] = []

    def __getattr__(self, name: str):
        return getattr(self.env, name)

    def reset(self, seed: int | None = None):
        rng = None if seed is not None else _generator_state(self.env.unwrapped.np_random)
        self.start, self.actions = {"seed": seed, "rng": rng}, []
        return self.env.reset(seed=seed)

    def step(self, action):
        self.actions.append(np.array(action, copy=True))
        return self.env.step(action)

    def state(self) -> dict[str, Any]:
        """Episode start, actions since (T, ...) in their own dtype, and the action space's RNG."""
        actions = torch.from_numpy(np.stack(self.actions)) if self.actions else torch.zeros(0)
        return {"start": json.dumps(self.start), "actions": actions,
                "action_rng": _generator_state(self.env.action_space.np_random)}

    def restore(self, state: dict[str, Any]) -> np.ndarray:
        """Re-run the episode's reset and actions; returns the current observation."""
        start = json.loads(state["start"])
        if start["seed"] is None:
            _set_generator_state(self.env.unwrapped.np_random, start["rng"])
        obs, _ = self.reset(seed=start["seed"])
        for action in state["actions"].numpy():
            obs, *_ = self.step(action)
        _set_generator_state(self.env.action_space.np_random, state["action_rng"])
        return np.asarray(obs)


class VecEnv:
    """N envs stepped in a Python loop; a finished episode is reset at once (same-step autoreset).

    ``step`` returns (next_obs, reward, terminated, truncated, final_obs, episode_returns) where
    ``final_obs[i]`` is the last observation of an episode that just ended (else ``next_obs[i]``) and
    ``episode_returns`` lists (env index, return, length) of episodes finished in this step.
    """

    def __init__(self, fns: list[Callable[[], Any]], seed: int = 0):
        self.envs = [Recorded(fn()) for fn in fns]
        self.n = len(self.envs)
        self.seed = seed
        self._ret = np.zeros(self.n)
        self._len = np.zeros(self.n, dtype=np.int64)

    def reset(self) -> np.ndarray:
        obs = [env.reset(seed=self.seed + i)[0] for i, env in enumerate(self.envs)]
        for i, env in enumerate(self.envs):
            env.action_space.seed(self.seed + i)
        return np.stack(obs).astype(np.float32)

    def step(self, actions: np.ndarray):
        obs, rews = [], np.zeros(self.n, dtype=np.float32)
        term, trunc = np.zeros(self.n, dtype=bool), np.zeros(self.n, dtype=bool)
        final, finished = [], []
        for i, env in enumerate(self.envs):
            o, r, te, tr, _ = env.step(actions[i])
            rews[i], term[i], trunc[i] = r, te, tr
            self._ret[i] += r
            self._len[i] += 1
            final.append(o)
            if te or tr:
                finished.append((i, float(self._ret[i]), int(self._len[i])))
                self._ret[i], self._len[i] = 0.0, 0
                o, _ = env.reset()
            obs.append(o)
        return (np.stack(obs).astype(np.float32), rews, term, trunc, np.stack(final).astype(np.float32), finished)

    def state(self) -> dict[str, Any]:
        """Each env's :meth:`Recorded.state` and the running episode returns/lengths."""
        return {"envs": [env.state() for env in self.envs], "ret": torch.from_numpy(self._ret.copy()),
                "len": torch.from_numpy(self._len.copy())}

    def restore(self, state: dict[str, Any]) -> np.ndarray:
        """Put every env back mid-episode; returns the current observations (N, S)."""
        obs = [env.restore(s) for env, s in zip(self.envs, state["envs"])]
        self._ret, self._len = state["ret"].numpy().copy(), state["len"].numpy().copy()
        return np.stack(obs).astype(np.float32)

    def close(self) -> None:
        for env in self.envs:
            env.close()


class ReturnScaler:
    """Divide rewards by the running std of the discounted return (gymnasium's NormalizeReward)."""

    def __init__(self, n_envs: int, gamma: float, clip: float = 10.0, eps: float = 1e-8):
        self.gamma, self.clip, self.eps = gamma, clip, eps
        self.ret = np.zeros(n_envs)
        self.mean, self.var, self.count = 0.0, 1.0, 1e-4

    def __call__(self, reward: np.ndarray, done: np.ndarray) -> np.ndarray:
        self.ret = self.ret * self.gamma + reward
        b_mean, b_var, b = self.ret.mean(), self.ret.var(), len(self.ret)
        delta, total = b_mean - self.mean, self.count + b
        self.mean += delta * b / total
        self.var = (self.var * self.count + b_var * b + delta ** 2 * self.count * b / total) / total
        self.count = total
        self.ret[done] = 0.0
        return np.clip(reward / np.sqrt(self.var + self.eps), -self.clip, self.clip).astype(np.float32)

    def state(self) -> dict[str, Any]:
        return {"ret": torch.from_numpy(self.ret.copy()), "stats": torch.tensor([self.mean, self.var, self.count],
                                                                                 dtype=torch.float64)}

    def load_state(self, state: dict[str, Any]) -> None:
        self.ret = state["ret"].numpy().copy()
        self.mean, self.var, self.count = (float(x) for x in state["stats"])


def evaluate(act: Callable[[np.ndarray], np.ndarray], env_id: str, episodes: int = 10, seed: int = 10_000,
             max_steps: int | None = None) -> list[float]:
    """Undiscounted returns of ``episodes`` episodes with ``act`` (obs batch (1, S) -> action batch)."""
    env = make_env(env_id)
    box = isinstance(env.action_space, gym().spaces.Box)
    returns = []
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed + ep)
        done, total, steps = False, 0.0, 0
        while not done:
            action = act(np.asarray(obs, dtype=np.float32)[None])[0]
            if box:  # a Gaussian policy's mean may leave the box
                action = np.clip(action, env.action_space.low, env.action_space.high)
            obs, r, te, tr, _ = env.step(action)
            total += float(r)
            steps += 1
            done = te or tr or (max_steps is not None and steps >= max_steps)
        returns.append(total)
    env.close()
    return returns
