"""Conservative Q-Learning (Kumar et al. 2020, "Conservative Q-Learning for Offline Reinforcement Learning").

CQL(H) on top of SAC (section 4, appendix F): the SAC critic loss plus the conservative penalty
α·(E_s[log Σ_a exp Q(s,a)] - E_(s,a)~D[Q(s,a)]) (eq. 4), which pushes Q down on actions the policy
and a uniform proposal would pick and up on the dataset's actions. The log-sum-exp is estimated by
importance sampling from N uniform actions and N policy actions at s and at s'. α is fixed
(``cql.alpha``) or tuned by dual gradient descent so the penalty stays near ``target_action_gap``
(Lagrange version, appendix F eq. 5). As in the reference code the TD target drops the entropy term.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..config import require
from .common import EvalConfig, RLResult
from .losses import cql_lagrange_losses, cql_penalty, sac_critic_loss
from .offline import DataConfig, make_model_config, train_offline
from .resume import CkptConfig
from .sac import SACLearner


@dataclass(frozen=True, kw_only=True)
class CQLConfig:
    steps: int = 20_000
    """gradient steps"""
    batch_size: int = 256
    """minibatch size"""
    actor_lr: float = 1e-4
    """policy learning rate"""
    critic_lr: float = 3e-4
    """Q learning rate"""
    alpha_lr: float = 1e-4
    """SAC temperature learning rate"""
    gamma: float = 0.99
    """discount γ"""
    tau: float = 0.005
    """Polyak coefficient of the target critics"""
    alpha: float = 1.0
    """initial SAC temperature"""
    autotune: bool = True
    """learn the SAC temperature toward -|A|"""
    target_entropy: float | None = None
    """SAC target entropy (none = -|A|)"""
    backup_entropy: bool = False
    """keep -α log π in the TD target (the CQL reference code drops it)"""
    cql_alpha: float = 5.0
    """conservative weight α of eq. 4 (fixed, or the multiplier on the penalty when lagrange is on)"""
    lagrange: bool = False
    """tune a Lagrange multiplier α' so the penalty stays near target_action_gap"""
    target_action_gap: float = 10.0
    """τ of the Lagrange version"""
    cql_alpha_lr: float = 1e-4
    """learning rate of log α'"""
    n_action_samples: int = 10
    """N actions per state (uniform, π(s), π(s')) for the log-sum-exp"""
    temperature: float = 1.0
    """temperature of the log-sum-exp"""
    hidden: tuple[int, ...] = (256, 256)
    """hidden widths of actor and critics"""
    n_critics: int = 2
    """critic ensemble size"""

    def __post_init__(self):
        require(self.steps > 0, "cql.steps", self.steps, "an integer > 0")
        require(self.batch_size >= 1, "cql.batch_size", self.batch_size, "an integer >= 1")
        require(self.cql_alpha >= 0, "cql.cql_alpha", self.cql_alpha, "a float >= 0")
        require(self.n_action_samples >= 1, "cql.n_action_samples", self.n_action_samples, "an integer >= 1")
        require(self.temperature > 0, "cql.temperature", self.temperature, "a float > 0")
        require(0 < self.tau <= 1, "cql.tau", self.tau, "a float in (0, 1]")


@dataclass(frozen=True, kw_only=True)
class CQLRunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    """offline dataset and seed"""
    cql: CQLConfig = field(default_factory=CQLConfig)
    """CQL hyper-parameters"""
    eval: EvalConfig = field(default_factory=lambda: EvalConfig(every=5_000))
    """periodic deterministic evaluation"""
    ckpt: CkptConfig = field(default_factory=CkptConfig)
    """resumable checkpoints"""


class CQLLearner(SACLearner):
    """SAC learner whose critic loss adds the conservative penalty (CQL(H), eq. 4)."""

    def __init__(self, obs_dim: int, act_dim: int, low: Any, high: Any, cfg: CQLConfig):
        super().__init__(obs_dim, act_dim, low, high, cfg)
        self.act_dim = act_dim
        self.log_alpha_prime = torch.zeros((), requires_grad=True)
        self.alpha_prime_opt = torch.optim.Adam([self.log_alpha_prime], lr=cfg.cql_alpha_lr)

    def sampled_actions(self, obs: torch.Tensor, next_obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """N uniform actions, N from π(·|s) and N from π(·|s') per state, with their log densities in the
        unit box [-1, 1]^A (so the uniform and policy densities are comparable, appendix F).

        Returns (actions: (B, 3N, A), log densities: (B, 3N))."""
        B, N, A = obs.shape[0], self.cfg.n_action_samples, self.act_dim
        scale, bias = self.actor.action_scale, self.actor.action_bias
        uniform = (torch.rand(B, N, A) * 2.0 - 1.0) * scale + bias  # (B, N, A)
        log_uniform = torch.full((B, N), A * math.log(0.5))  # (B, N)
        with torch.no_grad():  # one policy forward per state, N samples from its distribution
            policy_actions, log_prob = self.actor.sample_n(torch.cat([obs, next_obs]), N)  # (2B, N, A), (2B, N)
        log_prob = log_prob + scale.log().sum()  # density of tanh(u) in the unit box
        pi_s, pi_next = policy_actions.split(B)  # (B, N, A) each
        logp_s, logp_next = log_prob.split(B)  # (B, N) each
        return (torch.cat([uniform, pi_s, pi_next], dim=1),  # (B, 3N, A)
                torch.cat([log_uniform, logp_s, logp_next], dim=1))  # (B, 3N)

    def critic_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """SAC critic loss + α · CQL(H) penalty summed over the critic ensemble."""
        obs = batch["observations"]
        q_data = self.critic(obs, batch["actions"])  # (E, B)
        td_loss = sac_critic_loss(q_data, self.td_target(batch))
        actions, log_density = self.sampled_actions(obs, batch["next_observations"])  # (B, 3N, A), (B, 3N)
        B, N3 = log_density.shape
        q_sampled = self.critic(obs.repeat_interleave(N3, dim=0), actions.reshape(B * N3, -1)).view(-1, B, N3)
        q_random, q_policy, q_next = q_sampled.chunk(3, dim=-1)  # (E, B, N) each
        _, logp_policy, logp_next = log_density.chunk(3, dim=-1)  # (B, N) each
        penalty = self.cfg.cql_alpha * cql_penalty(q_data, q_random, q_policy, logp_policy, q_next, logp_next,
                                                   self.act_dim, self.cfg.temperature)  # (E,)
        stats = {"td_loss": float(td_loss.detach()), "cql_penalty": float(penalty.detach().mean()),
                 "q_mean": float(q_data.detach().mean())}
        if self.cfg.lagrange:
            conservative, alpha_prime_loss = cql_lagrange_losses(penalty, self.log_alpha_prime,
                                                                 self.cfg.target_action_gap)
            self.alpha_prime_opt.zero_grad(set_to_none=True)
            alpha_prime_loss.backward()
            self.alpha_prime_opt.step()
            stats["alpha_prime"] = float(self.log_alpha_prime.exp().detach())
        else:
            conservative = penalty.sum()
        loss = td_loss + conservative
        stats["critic_loss"] = float(loss.detach())
        return loss, stats


def train(run: CQLRunConfig, out: str | Path | None = None, tracker: Any = None, quiet: bool = True) -> RLResult:
    """Train CQL on the dataset ``run.data.path``."""
    from .data import load_dataset
    dataset = load_dataset(run.data.path, algo="cql")
    info = dataset.space_info()
    cfg = run.cql
    learner = CQLLearner(info["obs_dim"], info["act_dim"], info["low"], info["high"], cfg)
    model_config = make_model_config("cql", "tanh_gaussian", dataset, cfg.hidden)
    return train_offline("cql", learner, learner.actor, dataset, run.data, cfg.steps, cfg.batch_size, run.eval,
                         model_config, run, out, tracker, quiet)


