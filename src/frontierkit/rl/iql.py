"""Implicit Q-Learning (Kostrikov et al. 2021, "Offline Reinforcement Learning with Implicit Q-Learning").

Algorithm 1 of the paper: never query the Q-function at actions outside the dataset. Per step
(1) fit V(s) to an upper expectile τ of Q̄(s,a) over dataset actions (eq. 5, expectile loss);
(2) fit each Q_j(s,a) to r + γ(1-d) V(s') (eq. 6); (3) extract the policy by advantage-weighted
regression, maximising E[exp(β(Q̄(s,a) - V(s))) log π(a|s)] (eq. 7) with weights capped at 100;
(4) Polyak-average the target Q̄ = min_j Q̄_j. The policy is a Gaussian with state-independent std;
its learning rate follows a cosine schedule as in the paper's locomotion setup.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..config import require
from .common import EvalConfig, RLResult
from .losses import awr_policy_loss, expectile_loss
from .nets import EnsembleQ, GaussianPolicy, ValueNet
from .offline import DataConfig, make_model_config, train_offline
from .resume import CkptConfig
from .sac import polyak_update


@dataclass(frozen=True, kw_only=True)
class IQLConfig:
    steps: int = 20_000
    """gradient steps"""
    batch_size: int = 256
    """minibatch size"""
    actor_lr: float = 3e-4
    """policy learning rate"""
    critic_lr: float = 3e-4
    """Q learning rate"""
    value_lr: float = 3e-4
    """V learning rate"""
    gamma: float = 0.99
    """discount γ"""
    tau: float = 0.005
    """Polyak coefficient of the target critics"""
    expectile: float = 0.7
    """expectile τ of the value loss (0.5 = mean, → 1 = max)"""
    beta: float = 3.0
    """inverse temperature β of advantage weighting"""
    max_weight: float = 100.0
    """cap of exp(β A)"""
    cosine_actor_lr: bool = True
    """cosine-decay the actor learning rate over ``steps``"""
    hidden: tuple[int, ...] = (256, 256)
    """hidden widths of policy, critics and value"""
    n_critics: int = 2
    """critic ensemble size"""

    def __post_init__(self):
        require(self.steps > 0, "iql.steps", self.steps, "an integer > 0")
        require(self.batch_size >= 1, "iql.batch_size", self.batch_size, "an integer >= 1")
        require(0 < self.expectile < 1, "iql.expectile", self.expectile, "a float in (0, 1)")
        require(self.beta >= 0, "iql.beta", self.beta, "a float >= 0")
        require(0 < self.tau <= 1, "iql.tau", self.tau, "a float in (0, 1]")


@dataclass(frozen=True, kw_only=True)
class IQLRunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    """offline dataset and seed"""
    iql: IQLConfig = field(default_factory=IQLConfig)
    """IQL hyper-parameters"""
    eval: EvalConfig = field(default_factory=lambda: EvalConfig(every=5_000))
    """periodic deterministic evaluation"""
    ckpt: CkptConfig = field(default_factory=CkptConfig)
    """resumable checkpoints"""


class IQLLearner:
    """Q ensemble + target, V, Gaussian policy, their optimisers, and one IQL gradient step."""

    def __init__(self, obs_dim: int, act_dim: int, low: Any, high: Any, cfg: IQLConfig):
        self.cfg = cfg
        self.critic = EnsembleQ(obs_dim, act_dim, cfg.hidden, cfg.n_critics)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.value = ValueNet(obs_dim, cfg.hidden)
        self.actor = GaussianPolicy(obs_dim, act_dim, cfg.hidden, torch.as_tensor(low), torch.as_tensor(high))
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=cfg.critic_lr, fused=True)
        self.value_opt = torch.optim.Adam(self.value.parameters(), lr=cfg.value_lr, fused=True)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=cfg.actor_lr, fused=True)
        self.actor_sched = (torch.optim.lr_scheduler.CosineAnnealingLR(self.actor_opt, cfg.steps)
                            if cfg.cosine_actor_lr else None)

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        obs, action = batch["observations"], batch["actions"]
        with torch.no_grad():
            target_q = self.critic_target(obs, action).min(0).values  # (B,) Q̄(s,a)
        # (1) value: expectile regression of V(s) on Q̄(s,a), eq. 5
        v = self.value(obs)  # (B,)
        value_loss = expectile_loss(target_q - v, self.cfg.expectile)
        self.value_opt.zero_grad(set_to_none=True)
        value_loss.backward()
        self.value_opt.step()
        # (2) Q: regress on r + γ (1 - d) V(s'), eq. 6
        with torch.no_grad():
            y = batch["rewards"] + self.cfg.gamma * (1.0 - batch["terminals"]) * self.value(batch["next_observations"])
        q = self.critic(obs, action)  # (E, B)
        q_loss = 0.5 * (q - y).pow(2).mean(dim=1).sum()
        self.critic_opt.zero_grad(set_to_none=True)
        q_loss.backward()
        self.critic_opt.step()
        # (3) policy: advantage-weighted regression, eq. 7
        advantage = target_q - v.detach()  # (B,)
        actor_loss = awr_policy_loss(self.actor.log_prob(obs, action), advantage, self.cfg.beta, self.cfg.max_weight)
        self.actor_opt.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.actor_opt.step()
        if self.actor_sched is not None:
            self.actor_sched.step()
        # (4) target critics
        polyak_update(self.critic_target, self.critic, self.cfg.tau)
        return {"value_loss": float(value_loss.detach()), "q_loss": float(q_loss.detach()),
                "actor_loss": float(actor_loss.detach()), "adv_mean": float(advantage.mean()),
                "v_mean": float(v.detach().mean())}


def train(run: IQLRunConfig, out: str | Path | None = None, tracker: Any = None, quiet: bool = True) -> RLResult:
    """Train IQL on the dataset ``run.data.path``."""
    from .data import load_dataset
    dataset = load_dataset(run.data.path, algo="iql")
    info = dataset.space_info()
    cfg = run.iql
    learner = IQLLearner(info["obs_dim"], info["act_dim"], info["low"], info["high"], cfg)
    model_config = make_model_config("iql", "gaussian", dataset, cfg.hidden)
    return train_offline("iql", learner, learner.actor, dataset, run.data, cfg.steps, cfg.batch_size, run.eval,
                         model_config, run, out, tracker, quiet)
