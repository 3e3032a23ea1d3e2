"""Storage: PPO's on-policy rollout buffer (T steps × N envs) and the replay buffer of SAC, also used
to hold offline datasets for CQL and IQL (Lin 1992 experience replay; D4RL field names)."""
from __future__ import annotations

from typing import Iterator

import numpy as np
import torch


class RolloutBuffer:
    """One PPO rollout: tensors shaped (T, N, ...) filled step by step, then flattened into minibatches."""

    def __init__(self, n_steps: int, n_envs: int, obs_dim: int, act_shape: tuple[int, ...]):
        self.n_steps, self.n_envs = n_steps, n_envs
        self.obs = torch.zeros(n_steps, n_envs, obs_dim)  # (T, N, S)
        self.actions = torch.zeros(n_steps, n_envs, *act_shape)  # (T, N) or (T, N, A)
        self.log_probs = torch.zeros(n_steps, n_envs)  # (T, N)
        self.rewards = torch.zeros(n_steps, n_envs)  # (T, N)
        self.dones = torch.zeros(n_steps, n_envs)  # (T, N)
        self.values = torch.zeros(n_steps, n_envs)  # (T, N)
        self.advantages = torch.zeros(n_steps, n_envs)
        self.returns = torch.zeros(n_steps, n_envs)

    def add(self, t: int, obs: torch.Tensor, action: torch.Tensor, log_prob: torch.Tensor,
            reward: torch.Tensor, done: torch.Tensor, value: torch.Tensor) -> None:
        self.obs[t], self.actions[t], self.log_probs[t] = obs, action, log_prob
        self.rewards[t], self.dones[t], self.values[t] = reward, done, value

    def minibatches(self, batch_size: int, generator: torch.Generator) -> Iterator[dict[str, torch.Tensor]]:
        """Shuffled minibatches over all T·N samples (the last one may be smaller)."""
        total = self.n_steps * self.n_envs
        flat = {"obs": self.obs.reshape(total, -1), "actions": self.actions.reshape(total, *self.actions.shape[2:]),
                "log_probs": self.log_probs.reshape(total), "advantages": self.advantages.reshape(total),
                "returns": self.returns.reshape(total), "values": self.values.reshape(total)}
        perm = torch.randperm(total, generator=generator)
        for start in range(0, total, batch_size):
            idx = perm[start:start + batch_size]
            yield {k: v[idx] for k, v in flat.items()}


class ReplayBuffer:
    """Circular buffer of transitions (s, a, r, s', terminal, timeout); ``sample`` draws uniformly.

    ``terminals`` mark true episode ends (no bootstrap); ``timeouts`` mark time-limit truncations
    (bootstrap through them). Arrays are torch tensors so a sample is a single gather per field.
    """

    FIELDS = ("observations", "actions", "rewards", "next_observations", "terminals", "timeouts")

    def __init__(self, capacity: int, obs_dim: int, act_dim: int):
        self.capacity, self.size, self.pos = capacity, 0, 0
        self.observations = torch.zeros(capacity, obs_dim)
        self.actions = torch.zeros(capacity, act_dim)
        self.rewards = torch.zeros(capacity)
        self.next_observations = torch.zeros(capacity, obs_dim)
        self.terminals = torch.zeros(capacity)
        self.timeouts = torch.zeros(capacity)

    def __len__(self) -> int:
        return self.size

    def add(self, obs: np.ndarray, action: np.ndarray, reward: float, next_obs: np.ndarray,
            terminal: bool, timeout: bool = False) -> None:
        i = self.pos
        self.observations[i] = torch.as_tensor(obs, dtype=torch.float32)
        self.actions[i] = torch.as_tensor(action, dtype=torch.float32)
        self.rewards[i] = float(reward)
        self.next_observations[i] = torch.as_tensor(next_obs, dtype=torch.float32)
        self.terminals[i] = float(terminal)
        self.timeouts[i] = float(timeout)
        self.pos = (self.pos + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Uniform minibatch: dict of (B, ...) tensors keyed by :attr:`FIELDS`."""
        idx = torch.randint(0, self.size, (batch_size,), generator=generator)  # (B,)
        return {f: getattr(self, f)[idx] for f in self.FIELDS}

    def state(self) -> dict[str, torch.Tensor | int]:
        """The filled part of every field plus the write position (for a resumable checkpoint)."""
        return {"size": self.size, "pos": self.pos, **{f: getattr(self, f)[:self.size].clone() for f in self.FIELDS}}

    def load_state(self, state: dict[str, torch.Tensor | int]) -> None:
        self.size, self.pos = int(state["size"]), int(state["pos"])
        for f in self.FIELDS:
            getattr(self, f)[:self.size] = state[f]

    def arrays(self) -> dict[str, np.ndarray]:
        """Stored transitions in insertion order, as numpy arrays (for writing a dataset)."""
        order = np.arange(self.size) if self.size < self.capacity else \
            np.concatenate([np.arange(self.pos, self.capacity), np.arange(self.pos)])
        out = {f: getattr(self, f)[order].numpy() for f in self.FIELDS}
        out["terminals"], out["timeouts"] = out["terminals"] > 0.5, out["timeouts"] > 0.5
        return out

    @classmethod
    def from_arrays(cls, data: dict[str, np.ndarray]) -> "ReplayBuffer":
        """A full buffer holding an offline dataset (fields as in :attr:`FIELDS`)."""
        n, obs_dim = data["observations"].shape
        buf = cls(n, obs_dim, data["actions"].shape[1])
        for f in cls.FIELDS:
            getattr(buf, f).copy_(torch.as_tensor(np.asarray(data[f], dtype=np.float32)).reshape(getattr(buf, f).shape))
        buf.size = n
        return buf
