"""Every objective of PPO, SAC, CQL and IQL as a small named function, each tied to its paper's equation.

- PPO: Schulman et al. 2017, "Proximal Policy Optimization Algorithms" (clipped surrogate, eq. 7; value
  and entropy terms, eq. 9).
- SAC: Haarnoja et al. 2018, "Soft Actor-Critic Algorithms and Applications" (soft Q target eq. 3-5,
  policy eq. 7/12, tanh log-prob correction eq. 21 of appendix C, temperature eq. 18).
- CQL: Kumar et al. 2020, "Conservative Q-Learning for Offline RL" (CQL(H), eq. 4; importance-sampled
  log-sum-exp of appendix F; Lagrange version eq. 5 of appendix F).
- IQL: Kostrikov et al. 2021, "Offline RL with Implicit Q-Learning" (expectile value loss eq. 5,
  Q loss eq. 6, advantage-weighted regression eq. 7).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# ---------------------------------------------------------------- PPO


def ppo_clip_loss(log_prob: torch.Tensor, old_log_prob: torch.Tensor, advantages: torch.Tensor,
                  clip_coef: float = 0.2) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """PPO eq. 7: L^CLIP = -E[min(r_t Â_t, clip(r_t, 1-ε, 1+ε) Â_t)], r_t = π(a|s) / π_old(a|s).

    Returns the loss and diagnostics: ``approx_kl`` (the (r-1) - log r estimator, Schulman 2020) and
    ``clipfrac`` (fraction of samples whose ratio left [1-ε, 1+ε]).
    """
    log_ratio = log_prob - old_log_prob  # (B,)
    ratio = log_ratio.exp()  # (B,)
    surrogate = ratio * advantages  # (B,)
    clipped = torch.clamp(ratio, 1.0 - clip_coef, 1.0 + clip_coef) * advantages  # (B,)
    pg_loss = -torch.min(surrogate, clipped).mean()
    with torch.no_grad():
        approx_kl = ((ratio - 1.0) - log_ratio).mean()
        clipfrac = ((ratio - 1.0).abs() > clip_coef).float().mean()
    return pg_loss, {"approx_kl": approx_kl, "clipfrac": clipfrac}


def value_loss(values: torch.Tensor, returns: torch.Tensor, old_values: torch.Tensor | None = None,
               clip: float | None = None) -> torch.Tensor:
    """PPO eq. 9 value term ½ E[(V(s) - R)²]; with ``clip``, the pessimistic max of the unclipped and
    the clipped error, V_clip = V_old + clip(V - V_old, -c, c) (the PPO2 baselines variant)."""
    error = (values - returns).pow(2)  # (B,)
    if clip is None or old_values is None:
        return 0.5 * error.mean()
    v_clipped = old_values + torch.clamp(values - old_values, -clip, clip)  # (B,)
    return 0.5 * torch.max(error, (v_clipped - returns).pow(2)).mean()


def explained_variance(y_pred: torch.Tensor, y_true: torch.Tensor) -> float:
    """1 - Var[y - ŷ] / Var[y]: 1 is a perfect value function, 0 no better than a constant."""
    var_y = y_true.var()
    return float("nan") if var_y == 0 else float(1.0 - (y_true - y_pred).var() / var_y)


# ---------------------------------------------------------------- SAC


def tanh_gaussian_log_prob(mean: torch.Tensor, log_std: torch.Tensor, pre_tanh: torch.Tensor,
                           action_scale: torch.Tensor | float = 1.0) -> torch.Tensor:
    """SAC appendix C eq. 21: log π(a|s) = log μ(u|s) - Σ_i log(1 - tanh²(u_i)) for a = scale·tanh(u).

    ``mean``, ``log_std``, ``pre_tanh``: (B, A). log(1 - tanh²u) = 2(log 2 - u - softplus(-2u)) is the
    numerically stable form. A constant ``action_scale`` subtracts Σ log scale (change of variables).
    """
    z = (pre_tanh - mean) * torch.exp(-log_std)  # (B, A) standardised u
    log_mu = (-0.5 * z.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)  # (B,) Gaussian log-density
    log_det = (2.0 * (math.log(2.0) - pre_tanh - F.softplus(-2.0 * pre_tanh))).sum(-1)  # (B,)
    scale = torch.as_tensor(action_scale, dtype=mean.dtype).expand(mean.shape[-1])  # (A,)
    return log_mu - log_det - scale.log().sum()


def soft_q_target(reward: torch.Tensor, done: torch.Tensor, next_q: torch.Tensor,
                  next_log_prob: torch.Tensor, alpha: torch.Tensor | float, gamma: float) -> torch.Tensor:
    """SAC eq. 3/5: y = r + γ (1 - d) (min_j Q̄_j(s', a') - α log π(a'|s')), a' ~ π(·|s')."""
    return reward + gamma * (1.0 - done) * (next_q - alpha * next_log_prob)  # (B,)


def sac_critic_loss(q_values: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """SAC eq. 5: J_Q = Σ_j ½ E[(Q_j(s,a) - y)²] over the ensemble; ``q_values``: (E, B), ``target``: (B,)."""
    return 0.5 * (q_values - target.detach()).pow(2).mean(dim=1).sum()


def sac_actor_loss(log_prob: torch.Tensor, q_value: torch.Tensor, alpha: torch.Tensor | float) -> torch.Tensor:
    """SAC eq. 7/12: J_π = E[α log π(ã|s) - min_j Q_j(s, ã)], ã reparameterised from π."""
    return (alpha * log_prob - q_value).mean()


def sac_temperature_loss(log_alpha: torch.Tensor, log_prob: torch.Tensor, target_entropy: float) -> torch.Tensor:
    """SAC eq. 18: J(α) = E[-α log π(a|s) - α H̄]; optimised through log α, H̄ = -|A| by default."""
    return -(log_alpha.exp() * (log_prob + target_entropy).detach()).mean()


# ---------------------------------------------------------------- CQL


def cql_penalty(q_data: torch.Tensor, q_random: torch.Tensor, q_policy: torch.Tensor,
                log_prob_policy: torch.Tensor, q_next_policy: torch.Tensor, log_prob_next_policy: torch.Tensor,
                action_dim: int, temperature: float = 1.0) -> torch.Tensor:
    """CQL(H) eq. 4 with the importance-sampled estimator of appendix F:
    E_s[ T·log Σ_a exp(Q(s,a)/T) ] - E_(s,a)~D[Q(s,a)], the log-sum-exp estimated from N uniform actions
    (density 0.5^|A| on [-1,1]^|A|) and N policy actions at s and at s' (density π), each weighted by 1/density.

    ``q_data``: (E, B); ``q_random``, ``q_policy``, ``q_next_policy``: (E, B, N); log-probs: (B, N).
    Returns the penalty per ensemble member, (E,).
    """
    log_uniform_density = action_dim * math.log(0.5)
    cat = torch.cat([q_random - log_uniform_density,
                     q_policy - log_prob_policy.detach(),
                     q_next_policy - log_prob_next_policy.detach()], dim=-1)  # (E, B, 3N)
    logsumexp = temperature * torch.logsumexp(cat / temperature, dim=-1)  # (E, B)
    return (logsumexp - q_data).mean(dim=1)  # (E,)


def cql_lagrange_losses(penalty: torch.Tensor, log_alpha_prime: torch.Tensor, target_gap: float,
                        max_alpha: float = 1e6) -> tuple[torch.Tensor, torch.Tensor]:
    """CQL Lagrange form (appendix F eq. 5): min_Q max_{α'≥0} α'(penalty - τ).

    Returns (critic term α'(penalty - τ) with α' held fixed, α' loss -α'(penalty - τ) with the penalty fixed).
    """
    alpha_prime = log_alpha_prime.exp().clamp(0.0, max_alpha)
    critic_term = (alpha_prime.detach() * (penalty - target_gap)).sum()
    alpha_loss = -(alpha_prime * (penalty.detach() - target_gap)).sum()
    return critic_term, alpha_loss


# ---------------------------------------------------------------- IQL


def expectile_loss(diff: torch.Tensor, expectile: float = 0.7) -> torch.Tensor:
    """IQL eq. 5: L_2^τ(u) = |τ - 1(u < 0)| u², u = Q̂(s,a) - V(s), averaged over the batch."""
    weight = torch.where(diff < 0, 1.0 - expectile, expectile)  # (B,)
    return (weight * diff.pow(2)).mean()


def awr_policy_loss(log_prob: torch.Tensor, advantage: torch.Tensor, beta: float = 3.0,
                    max_weight: float = 100.0) -> torch.Tensor:
    """IQL eq. 7 (advantage-weighted regression): -E[exp(β (Q(s,a) - V(s))) log π(a|s)], weights capped."""
    weight = torch.exp(beta * advantage.detach()).clamp(max=max_weight)  # (B,)
    return -(weight * log_prob).mean()
