"""Returns and advantages: generalised advantage estimation, GAE(λ) (Schulman et al. 2016, eq. 11-16)."""
from __future__ import annotations

import torch


def gae(rewards: torch.Tensor, values: torch.Tensor, dones: torch.Tensor, last_value: torch.Tensor,
        gamma: float = 0.99, lam: float = 0.95) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE(λ), eq. 16: Â_t = Σ_l (γλ)^l δ_{t+l}, δ_t = r_t + γ V(s_{t+1}) (1 - d_t) - V(s_t).

    ``rewards``, ``values``, ``dones``: (T, N) with ``dones[t]`` = episode ended after step t;
    ``last_value``: (N,) = V(s_T). Returns (advantages, returns = advantages + values), both (T, N).
    """
    T = rewards.shape[0]
    advantages = torch.zeros_like(rewards)  # (T, N)
    next_adv = torch.zeros_like(last_value)  # (N,)
    next_value = last_value  # (N,)
    for t in reversed(range(T)):
        not_done = 1.0 - dones[t].float()  # (N,)
        delta = rewards[t] + gamma * next_value * not_done - values[t]  # (N,) TD residual δ_t
        next_adv = delta + gamma * lam * not_done * next_adv  # (N,)
        advantages[t] = next_adv
        next_value = values[t]
    return advantages, advantages + values


def discounted_returns(rewards: torch.Tensor, dones: torch.Tensor, gamma: float = 0.99) -> torch.Tensor:
    """Monte-Carlo return G_t = r_t + γ G_{t+1} (1 - d_t), over (T, N) with zero bootstrap."""
    out = torch.zeros_like(rewards)  # (T, N)
    running = torch.zeros_like(rewards[0])  # (N,)
    for t in reversed(range(rewards.shape[0])):
        running = rewards[t] + gamma * running * (1.0 - dones[t].float())
        out[t] = running
    return out
