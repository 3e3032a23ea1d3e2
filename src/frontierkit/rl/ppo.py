"""Proximal Policy Optimization (Schulman et al. 2017, "Proximal Policy Optimization Algorithms").

Algorithm 1 of the paper, with the details of the reference implementations (Huang et al. 2022,
"The 37 Implementation Details of PPO"): N vectorised envs collect T steps each; advantages by
GAE(λ) (Schulman et al. 2016); K epochs of minibatch SGD on the clipped surrogate (eq. 7) plus the
value loss (optionally clipped) minus an entropy bonus (eq. 9); advantage normalisation per
minibatch, global gradient-norm clipping, linear LR (and clip-range) annealing, optional early stop
of the epochs when the approximate KL exceeds a target. Discrete actions use a Categorical policy;
continuous ones a Gaussian with a state-independent log-std, optionally with running observation
normalisation and reward scaling by the return's std. Time-limit truncations bootstrap from V(s_final).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import require
from ..track import NullTracker
from .buffers import RolloutBuffer
from .common import EnvConfig, EvalConfig, Progress, RLResult, evaluate_policy, save_policy, seed_everything
from .resume import CkptConfig, RunFolder, history_state, learner_state, load_history, load_learner_state, \
    load_rng_state, rng_state
from .envs import ReturnScaler, VecEnv, make_env, space_info
from .losses import explained_variance, ppo_clip_loss, value_loss
from .nets import ActorCritic
from .returns import gae


@dataclass(frozen=True, kw_only=True)
class PPOConfig:
    total_steps: int = 100_000
    """environment steps over all envs"""
    n_envs: int = 8
    """parallel environments N"""
    n_steps: int = 32
    """steps per env per rollout T (a rollout is N·T samples)"""
    n_epochs: int = 20
    """optimisation epochs K over each rollout"""
    batch_size: int = 256
    """minibatch size"""
    lr: float = 1e-3
    """Adam learning rate"""
    anneal_lr: bool = True
    """decay the learning rate linearly to 0"""
    gamma: float = 0.98
    """discount γ"""
    gae_lambda: float = 0.8
    """GAE λ"""
    clip_coef: float = 0.2
    """clipping ε of the surrogate"""
    anneal_clip: bool = True
    """decay ε linearly to 0 (as SB3 zoo's lin_0.2)"""
    clip_vloss: bool = False
    """clip the value loss around the old values with the same ε"""
    ent_coef: float = 0.0
    """entropy bonus coefficient c2"""
    vf_coef: float = 0.5
    """value loss coefficient c1"""
    max_grad_norm: float = 0.5
    """global gradient-norm clip"""
    norm_adv: bool = True
    """normalise advantages per minibatch"""
    target_kl: float | None = None
    """stop the epochs early when approx_kl exceeds this (none = never)"""
    norm_obs: bool = False
    """running mean/std observation normalisation (continuous control)"""
    norm_reward: bool = False
    """scale rewards by the running std of the discounted return (continuous control)"""
    hidden: tuple[int, ...] = (64, 64)
    """hidden widths of the actor and critic MLPs"""
    init_log_std: float = 0.0
    """initial log-std of the Gaussian policy"""

    def __post_init__(self):
        require(self.total_steps > 0, "ppo.total_steps", self.total_steps, "an integer > 0")
        require(self.n_envs >= 1, "ppo.n_envs", self.n_envs, "an integer >= 1")
        require(self.n_steps >= 1, "ppo.n_steps", self.n_steps, "an integer >= 1")
        require(1 <= self.batch_size <= self.n_envs * self.n_steps, "ppo.batch_size", self.batch_size,
                f"between 1 and n_envs*n_steps = {self.n_envs * self.n_steps}")
        require(self.lr > 0, "ppo.lr", self.lr, "a float > 0")
        require(0 <= self.gamma <= 1, "ppo.gamma", self.gamma, "a float in [0, 1]")
        require(0 <= self.gae_lambda <= 1, "ppo.gae_lambda", self.gae_lambda, "a float in [0, 1]")
        require(self.clip_coef > 0, "ppo.clip_coef", self.clip_coef, "a float > 0")
        require(self.target_kl is None or self.target_kl > 0, "ppo.target_kl", self.target_kl, "a float > 0 or none")
        require(len(self.hidden) >= 1 and min(self.hidden) > 0, "ppo.hidden", self.hidden, "positive widths")


@dataclass(frozen=True, kw_only=True)
class PPORunConfig:
    env: EnvConfig = field(default_factory=EnvConfig)
    """environment and seed"""
    ppo: PPOConfig = field(default_factory=PPOConfig)
    """PPO hyper-parameters"""
    eval: EvalConfig = field(default_factory=EvalConfig)
    """periodic deterministic evaluation"""
    ckpt: CkptConfig = field(default_factory=lambda: CkptConfig(every=10_000))
    """resumable checkpoints (rounded up to whole rollouts)"""


def collect_rollout(agent: ActorCritic, envs: VecEnv, buf: RolloutBuffer, obs: np.ndarray, cfg: PPOConfig,
                    info: dict[str, Any], scaler: ReturnScaler | None, step: int,
                    train_returns: list[tuple[int, float]]) -> tuple[np.ndarray, torch.Tensor]:
    """Fill ``buf`` with T steps of the current policy (Algorithm 1, line 3); returns (obs, V(s_T))."""
    low, high = np.asarray(info.get("low", [-np.inf])), np.asarray(info.get("high", [np.inf]))
    for t in range(buf.n_steps):
        obs_t = torch.from_numpy(obs)  # (N, S)
        if agent.obs_norm is not None:
            agent.obs_norm.update(obs_t)
        obs_n = agent.normalize(obs_t)
        with torch.no_grad():
            dist = agent.dist(obs_n)
            action = dist.sample()  # (N,) or (N, A)
            log_prob = dist.log_prob(action) if agent.discrete else dist.log_prob(action).sum(-1)  # (N,)
            value = agent.value(obs_n)  # (N,)
        env_action = action.numpy() if agent.discrete else np.clip(action.numpy(), low, high)
        obs, reward, term, trunc, final_obs, finished = envs.step(env_action)
        step += envs.n
        train_returns += [(step, ret) for _, ret, _ in finished]
        if scaler is not None:
            reward = scaler(reward, term | trunc)
        reward = torch.from_numpy(reward)  # (N,)
        for i in np.flatnonzero(trunc & ~term):  # time limit: bootstrap r + γ V(s_final)
            with torch.no_grad():
                reward[i] += cfg.gamma * agent.value(agent.normalize(torch.from_numpy(final_obs[i:i + 1])))[0]
        buf.add(t, obs_n, action, log_prob, reward, torch.from_numpy(term | trunc), value)
    with torch.no_grad():
        last_value = agent.value(agent.normalize(torch.from_numpy(obs)))  # (N,)
    return obs, last_value


def update(agent: ActorCritic, opt: torch.optim.Optimizer, buf: RolloutBuffer, cfg: PPOConfig, clip_coef: float,
           gen: torch.Generator) -> dict[str, float]:
    """K epochs of minibatch updates on L = L^CLIP + c1 L^VF - c2 H (eq. 9); returns diagnostics."""
    stats: dict[str, list[float]] = {"pg_loss": [], "value_loss": [], "entropy": [], "approx_kl": [], "clipfrac": []}
    for _epoch in range(cfg.n_epochs):
        for mb in buf.minibatches(cfg.batch_size, gen):
            log_prob, entropy = agent.log_prob_entropy(mb["obs"], mb["actions"])  # (B,), (B,)
            adv = mb["advantages"]  # (B,)
            if cfg.norm_adv and adv.numel() > 1:
                adv = (adv - adv.mean()) / (adv.std() + 1e-8)
            pg_loss, diag = ppo_clip_loss(log_prob, mb["log_probs"], adv, clip_coef)
            v_loss = value_loss(agent.value(mb["obs"]), mb["returns"], mb["values"],
                                clip_coef if cfg.clip_vloss else None)
            entropy_mean = entropy.mean()
            loss = pg_loss + cfg.vf_coef * v_loss - cfg.ent_coef * entropy_mean
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(agent.parameters(), cfg.max_grad_norm, foreach=True)
            opt.step()
            for k, v in (("pg_loss", pg_loss), ("value_loss", v_loss), ("entropy", entropy_mean),
                         ("approx_kl", diag["approx_kl"]), ("clipfrac", diag["clipfrac"])):
                stats[k].append(float(v.detach()))
        if cfg.target_kl is not None and stats["approx_kl"][-1] > cfg.target_kl:
            break
    out = {k: float(np.mean(v)) for k, v in stats.items()}
    out["explained_variance"] = explained_variance(buf.values.flatten(), buf.returns.flatten())
    return out


class _Learner:
    """What a PPO checkpoint restores besides envs and RNGs: the actor-critic (with its observation
    normaliser) and Adam."""

    def __init__(self, agent: ActorCritic, opt: torch.optim.Optimizer):
        self.agent, self.opt = agent, opt


def _next_multiple(step: int, every: int) -> float:
    return (step // every + 1) * every if every else float("inf")


def _restore(state: dict[str, Any], learner: _Learner, envs: VecEnv, scaler: ReturnScaler | None,
             gen: torch.Generator, result: RLResult) -> tuple[np.ndarray, int, int, int | None]:
    """Load a checkpoint's state; returns (obs, first iteration, env step, next eval step)."""
    from ..errors import CheckpointError
    load_learner_state(learner, state["learner"])
    obs = envs.restore(state["envs"])
    if not np.array_equal(obs, state["obs"].numpy()):
        raise CheckpointError("replaying the checkpoint's actions did not reproduce its observations: "
                              "the env is not deterministic given its seed, so this run cannot resume exactly")
    if scaler is not None:
        scaler.load_state(state["scaler"])
    load_rng_state(gen, state["rng"])
    result.history, result.train_returns = load_history(state)
    next_eval = None if state["next_eval"] < 0 else int(state["next_eval"])
    return obs, int(state["it"]) + 1, int(state["step"]), next_eval


def train(run: PPORunConfig, out: str | Path | None = None, tracker: Any = None, quiet: bool = True) -> RLResult:
    """Train PPO on ``run.env.id``; saves ``<out>/model`` when ``out`` is given."""
    tracker = tracker or NullTracker()
    cfg, gen = run.ppo, seed_everything(run.env)
    envs = VecEnv([lambda: make_env(run.env.id) for _ in range(cfg.n_envs)], seed=run.env.seed)
    info = space_info(envs.envs[0])
    agent = ActorCritic(info["obs_dim"], info["act_dim"], info["discrete"], cfg.hidden,
                        norm_obs=cfg.norm_obs and not info["discrete"], init_log_std=cfg.init_log_std)
    opt = torch.optim.Adam(agent.parameters(), lr=cfg.lr, eps=1e-5, fused=True)  # one kernel per step
    act_shape = () if info["discrete"] else (info["act_dim"],)
    buf = RolloutBuffer(cfg.n_steps, cfg.n_envs, info["obs_dim"], act_shape)
    scaler = ReturnScaler(cfg.n_envs, cfg.gamma) if cfg.norm_reward and not info["discrete"] else None
    model_config = {"algo": "ppo", "policy": "actor_critic", "env_id": run.env.id, "hidden": list(cfg.hidden),
                    "norm_obs": agent.obs_norm is not None, **info}
    result = RLResult(agent, model_config)
    n_updates = max(1, cfg.total_steps // (cfg.n_envs * cfg.n_steps))
    obs, step, next_eval = envs.reset(), 0, run.eval.every or None
    learner = _Learner(agent, opt)
    folder, start = RunFolder(out, "ppo", run, model_config), 0
    state = folder.resume()
    if state is not None:  # continue exactly where the last checkpoint left off
        obs, start, step, next_eval = _restore(state, learner, envs, scaler, gen, result)
    next_ckpt = _next_multiple(step, run.ckpt.every)
    progress = Progress(n_updates * cfg.n_envs * cfg.n_steps, f"ppo {run.env.id}", quiet, initial=step)
    for it in range(start, n_updates):
        frac = 1.0 - it / n_updates  # linear annealing
        for group in opt.param_groups:
            group["lr"] = cfg.lr * frac if cfg.anneal_lr else cfg.lr
        obs, last_value = collect_rollout(agent, envs, buf, obs, cfg, info, scaler, step, result.train_returns)
        step += cfg.n_envs * cfg.n_steps
        buf.advantages, buf.returns = gae(buf.rewards, buf.values, buf.dones, last_value, cfg.gamma, cfg.gae_lambda)
        stats = update(agent, opt, buf, cfg, cfg.clip_coef * frac if cfg.anneal_clip else cfg.clip_coef, gen)
        recent = [r for _, r in result.train_returns[-20:]]
        stats.update(lr=opt.param_groups[0]["lr"], sps=progress.rates(step)[0])
        if recent:
            stats["episodic_return"] = float(np.mean(recent))
        tracker.log_metrics(stats, step)
        progress.update(cfg.n_envs * cfg.n_steps, ret=stats.get("episodic_return", float("nan")),
                        kl=stats["approx_kl"])
        if (next_eval is not None and step >= next_eval) or it == n_updates - 1:
            mean, std = progress.exclude(evaluate_policy, agent, run.env.id, run.eval.episodes, run.eval.seed)
            result.history.append({"step": step, "eval_return": mean, "eval_std": std})
            tracker.log_metrics({"eval_return": mean, "eval_std": std}, step)
            while next_eval is not None and next_eval <= step:
                next_eval += run.eval.every
        if step >= next_ckpt or it == n_updates - 1:
            folder.save(step, agent, {"it": it, "next_eval": -1 if next_eval is None else next_eval,
                                      "learner": learner_state(learner), "rng": rng_state(gen),
                                      "envs": envs.state(), "obs": torch.from_numpy(obs.copy()),
                                      "scaler": scaler.state() if scaler is not None else {},
                                      **history_state(result.history, result.train_returns)})
            next_ckpt = _next_multiple(step, run.ckpt.every)
    progress.close()
    envs.close()
    result.seconds = progress.seconds()
    result.steps_per_second, result.steps_per_cpu_second = progress.rates(step)
    if out is not None:
        save_policy(out, result, run, step)
    return result
