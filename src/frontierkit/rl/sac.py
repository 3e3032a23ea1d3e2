"""Soft Actor-Critic (Haarnoja et al. 2018, "Soft Actor-Critic Algorithms and Applications", v2).

Algorithm 1 of the paper: act with the stochastic tanh-Gaussian policy, store transitions in a replay
buffer, and per environment step take a gradient step on (1) the twin soft Q-functions toward the
target y = r + γ(1-d)(min_j Q̄_j(s',a') - α log π(a'|s')) (eq. 3-5; two critics as in TD3, Fujimoto et al.
2018), (2) the policy by the reparameterised J_π = E[α log π(ã|s) - min_j Q_j(s,ã)] (eq. 7/12, the log-prob
with the tanh correction of appendix C), (3) the temperature α toward the target entropy H̄ = -|A|
(eq. 18), then (4) Polyak-average the target critics, Q̄ ← τ Q + (1-τ) Q̄. Terminal transitions stop
the bootstrap; time-limit truncations do not.

:class:`SACLearner` holds the networks and one gradient step; CQL (cql.py) extends its critic loss.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..config import require
from ..track import NullTracker
from .buffers import ReplayBuffer
from .common import EnvConfig, EvalConfig, Progress, RLResult, evaluate_policy, save_policy, seed_everything
from .envs import Recorded, make_env, require_continuous, space_info
from .resume import CkptConfig, RunFolder, due, history_state, learner_state, load_history, load_learner_state, \
    load_rng_state, rng_state
from .losses import sac_actor_loss, sac_critic_loss, sac_temperature_loss, soft_q_target
from .nets import EnsembleQ, TanhGaussianActor


@dataclass(frozen=True, kw_only=True)
class SACConfig:
    total_steps: int = 20_000
    """environment steps"""
    buffer_size: int = 1_000_000
    """replay capacity (capped at total_steps)"""
    learning_starts: int = 100
    """uniform-random steps before the first update"""
    batch_size: int = 256
    """minibatch size"""
    actor_lr: float = 1e-3
    """policy learning rate"""
    critic_lr: float = 1e-3
    """Q learning rate"""
    alpha_lr: float = 1e-3
    """temperature learning rate"""
    gamma: float = 0.99
    """discount γ"""
    tau: float = 0.005
    """Polyak coefficient τ of the target critics"""
    alpha: float = 1.0
    """initial (or, with autotune off, fixed) temperature α"""
    autotune: bool = True
    """learn α toward the target entropy (eq. 18)"""
    target_entropy: float | None = None
    """target entropy H̄ (none = -|A|)"""
    gradient_steps: int = 1
    """gradient steps per environment step"""
    hidden: tuple[int, ...] = (256, 256)
    """hidden widths of actor and critics"""
    n_critics: int = 2
    """size of the critic ensemble (2 = twin Q)"""

    def __post_init__(self):
        require(self.total_steps > 0, "sac.total_steps", self.total_steps, "an integer > 0")
        require(self.batch_size >= 1, "sac.batch_size", self.batch_size, "an integer >= 1")
        require(0 < self.tau <= 1, "sac.tau", self.tau, "a float in (0, 1]")
        require(0 <= self.gamma <= 1, "sac.gamma", self.gamma, "a float in [0, 1]")
        require(self.alpha > 0, "sac.alpha", self.alpha, "a float > 0")
        require(self.n_critics >= 1, "sac.n_critics", self.n_critics, "an integer >= 1")
        require(min(self.actor_lr, self.critic_lr, self.alpha_lr) > 0, "sac.actor_lr", self.actor_lr,
                "positive learning rates")


@dataclass(frozen=True, kw_only=True)
class SACRunConfig:
    env: EnvConfig = field(default_factory=lambda: EnvConfig(id="Pendulum-v1"))
    """environment and seed"""
    sac: SACConfig = field(default_factory=SACConfig)
    """SAC hyper-parameters"""
    eval: EvalConfig = field(default_factory=lambda: EvalConfig(every=5_000))
    """periodic deterministic evaluation"""
    ckpt: CkptConfig = field(default_factory=CkptConfig)
    """resumable checkpoints (replay buffer included)"""


def polyak_update(target: torch.nn.Module, source: torch.nn.Module, tau: float) -> None:
    """θ̄ ← τ θ + (1 - τ) θ̄ (SAC Algorithm 1, last line)."""
    with torch.no_grad():
        t_params, s_params = list(target.parameters()), list(source.parameters())
        torch._foreach_lerp_(t_params, s_params, tau)


class SACLearner:
    """Actor, critic ensemble with targets, temperature, their optimisers, and one SAC gradient step."""

    def __init__(self, obs_dim: int, act_dim: int, low: Any, high: Any, cfg: Any):
        self.cfg = cfg
        self.actor = TanhGaussianActor(obs_dim, act_dim, cfg.hidden, torch.as_tensor(low), torch.as_tensor(high))
        self.critic = EnsembleQ(obs_dim, act_dim, cfg.hidden, cfg.n_critics)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = torch.tensor(float(np.log(cfg.alpha)), requires_grad=True)
        self.target_entropy = -float(act_dim) if cfg.target_entropy is None else cfg.target_entropy
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=cfg.actor_lr, fused=True)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=cfg.critic_lr, fused=True)
        self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=cfg.alpha_lr)

    @property
    def alpha(self) -> torch.Tensor:
        return self.log_alpha.exp().detach()

    def td_target(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Soft TD target (eq. 3/5) with a' ~ π(·|s') and the minimum over target critics."""
        with torch.no_grad():
            next_action, next_log_prob = self.actor.sample(batch["next_observations"])  # (B, A), (B,)
            next_q = self.critic_target(batch["next_observations"], next_action).min(0).values  # (B,)
            alpha = self.alpha if getattr(self.cfg, "backup_entropy", True) else 0.0
            return soft_q_target(batch["rewards"], batch["terminals"], next_q, next_log_prob, alpha, self.cfg.gamma)

    def critic_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        q = self.critic(batch["observations"], batch["actions"])  # (E, B)
        loss = sac_critic_loss(q, self.td_target(batch))
        return loss, {"critic_loss": float(loss.detach()), "q_mean": float(q.detach().mean())}

    def actor_step(self, obs: torch.Tensor) -> dict[str, float]:
        """Policy step (eq. 7/12) then temperature step (eq. 18) on the same sampled actions."""
        action, log_prob = self.actor.sample(obs)  # (B, A), (B,)
        self.critic.requires_grad_(False)  # gradients flow through Q to the action only
        q = self.critic(obs, action).min(0).values  # (B,)
        actor_loss = sac_actor_loss(log_prob, q, self.alpha)
        self.actor_opt.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.actor_opt.step()
        self.critic.requires_grad_(True)
        stats = {"actor_loss": float(actor_loss.detach()), "entropy": float(-log_prob.detach().mean())}
        if self.cfg.autotune:
            alpha_loss = sac_temperature_loss(self.log_alpha, log_prob, self.target_entropy)
            self.alpha_opt.zero_grad(set_to_none=True)
            alpha_loss.backward()
            self.alpha_opt.step()
        stats["alpha"] = float(self.alpha)
        return stats

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """One step of SAC Algorithm 1: critics, actor, temperature, Polyak target."""
        loss, stats = self.critic_loss(batch)
        self.critic_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.critic_opt.step()
        stats.update(self.actor_step(batch["observations"]))
        polyak_update(self.critic_target, self.critic, self.cfg.tau)
        return stats


def model_config(algo: str, env_id: str, info: dict[str, Any], hidden: tuple[int, ...]) -> dict[str, Any]:
    return {"algo": algo, "policy": "tanh_gaussian", "env_id": env_id, "hidden": list(hidden), **info}


def _restore(state: dict[str, Any], learner: Any, buffer: ReplayBuffer, env: Recorded, gen: torch.Generator,
             result: RLResult) -> tuple[np.ndarray, float, int]:
    """Load a checkpoint's state; returns (obs, return of the running episode, env step)."""
    from ..errors import CheckpointError
    load_learner_state(learner, state["learner"])
    buffer.load_state(state["buffer"])
    obs = env.restore(state["env"])
    if not np.array_equal(obs, state["obs"].numpy()):
        raise CheckpointError("replaying the checkpoint's actions did not reproduce its observation: "
                              "the env is not deterministic given its seed, so this run cannot resume exactly")
    load_rng_state(gen, state["rng"])
    result.history, result.train_returns = load_history(state)
    return state["obs"].numpy(), float(state["ep_return"]), int(state["step"])


def train(run: SACRunConfig, out: str | Path | None = None, tracker: Any = None, quiet: bool = True,
          on_eval: Callable[[int, float, SACLearner, ReplayBuffer], None] | None = None) -> RLResult:
    """Train SAC on ``run.env.id``; ``on_eval(step, mean_return, learner, buffer)`` runs after each evaluation."""
    tracker = tracker or NullTracker()
    cfg, gen = run.sac, seed_everything(run.env)
    env = Recorded(make_env(run.env.id, seed=run.env.seed))
    info = space_info(env)
    require_continuous(info, run.env.id, "sac")
    learner = SACLearner(info["obs_dim"], info["act_dim"], info["low"], info["high"], cfg)
    buffer = ReplayBuffer(min(cfg.buffer_size, cfg.total_steps), info["obs_dim"], info["act_dim"])
    result = RLResult(learner.actor, model_config("sac", run.env.id, info, cfg.hidden))
    obs, _ = env.reset(seed=run.env.seed)
    ep_return, stats, start = 0.0, {}, 0
    folder = RunFolder(out, "sac", run, result.model_config)
    state = folder.resume()
    if state is not None:  # continue exactly where the last checkpoint left off
        obs, ep_return, start = _restore(state, learner, buffer, env, gen, result)
    progress = Progress(cfg.total_steps, f"sac {run.env.id}", quiet, initial=start)
    for step in range(start + 1, cfg.total_steps + 1):
        if step <= cfg.learning_starts:
            action = env.action_space.sample()
        else:
            with torch.no_grad():
                action = learner.actor.sample(torch.as_tensor(obs, dtype=torch.float32)[None])[0][0].numpy()
        next_obs, reward, terminated, truncated, _ = env.step(action)
        buffer.add(obs, action, reward, next_obs, terminated, truncated)
        ep_return += float(reward)
        obs = next_obs
        if terminated or truncated:
            result.train_returns.append((step, ep_return))
            tracker.log_metrics({"episodic_return": ep_return}, step)
            obs, ep_return = env.reset()[0], 0.0
        if step > cfg.learning_starts:
            for _ in range(cfg.gradient_steps):
                stats = learner.update(buffer.sample(cfg.batch_size, gen))
            if step % 1000 == 0:
                tracker.log_metrics(stats, step)
        progress.update(1)
        if (run.eval.every and step % run.eval.every == 0) or step == cfg.total_steps:
            mean, std = progress.exclude(evaluate_policy, learner.actor, run.env.id, run.eval.episodes, run.eval.seed)
            result.history.append({"step": step, "eval_return": mean, "eval_std": std})
            tracker.log_metrics({"eval_return": mean, "eval_std": std}, step)
            if on_eval is not None:
                progress.exclude(on_eval, step, mean, learner, buffer)
        if out is not None and due(step, run.ckpt.every, step == cfg.total_steps):
            folder.save(step, learner.actor, {"learner": learner_state(learner), "buffer": buffer.state(),
                                              "rng": rng_state(gen), "env": env.state(), "ep_return": ep_return,
                                              "obs": torch.from_numpy(np.array(obs, copy=True)),
                                              **history_state(result.history, result.train_returns)})
    progress.close()
    env.close()
    result.seconds = progress.seconds()
    result.steps_per_second, result.steps_per_cpu_second = progress.rates(cfg.total_steps)
    result.extra.update(buffer=buffer, learner=learner)
    if out is not None:
        save_policy(out, result, run, cfg.total_steps)
    return result
