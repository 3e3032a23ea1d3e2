"""Tour section for reinforcement learning: PPO solving CartPole (return curve), SAC on Pendulum,
and CQL / IQL trained offline on a Pendulum dataset made by a half-trained SAC agent, compared with
that behaviour policy; a frame strip of one Pendulum episode drawn from its observations."""
from __future__ import annotations

import numpy as np
import torch

from ..report import Section, TourContext


def _curve_figure(title: str, train_returns, history, ylabel: str = "return"):
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5, 3.2))
    if train_returns:
        s, r = zip(*train_returns)
        ax.plot(s, r, ".", alpha=0.35, ms=3, label="training episodes")
    if history:
        ax.errorbar([h["step"] for h in history], [h["eval_return"] for h in history],
                    yerr=[h["eval_std"] for h in history], marker="o", capsize=3, label="deterministic eval")
    ax.set(title=title, xlabel="env steps", ylabel=ylabel)
    ax.legend(fontsize=8)
    return fig


def _pendulum_strip(policy, n_frames: int = 8, every: int = 12):
    """Frames of one Pendulum episode drawn from (cos θ, sin θ) observations (no renderer needed)."""
    import matplotlib.pyplot as plt
    from .envs import make_env
    env = make_env("Pendulum-v1")
    obs, _ = env.reset(seed=10_000)
    frames = []
    for t in range(n_frames * every):
        if t % every == 0:
            frames.append((t, obs.copy()))
        obs, *_ = env.step(policy.act(torch.as_tensor(obs, dtype=torch.float32)[None])[0].numpy())
    fig, axes = plt.subplots(1, n_frames, figsize=(1.3 * n_frames, 1.6))
    for ax, (t, o) in zip(axes, frames):
        cos, sin = float(o[0]), float(o[1])  # θ = 0 is upright; x = sin θ, y = cos θ
        ax.plot([0, sin], [0, cos], lw=4, color="tab:red")
        ax.plot(0, 0, "ko", ms=4)
        ax.set(xlim=(-1.2, 1.2), ylim=(-1.2, 1.2), aspect="equal", xticks=[], yticks=[], title=f"t={t}")
    fig.suptitle("SAC swinging Pendulum-v1 up (drawn from observations)", fontsize=9)
    return fig


def tour(ctx: TourContext) -> Section:
    from . import cql, iql, ppo, sac
    from .common import EnvConfig, EvalConfig
    from .data import collect, load_dataset
    from .offline import DataConfig
    torch.set_num_threads(1)
    q = ctx.quick
    section = Section(title="Reinforcement learning: PPO, SAC, CQL, IQL",
                      summary="PPO (clipped surrogate, GAE) on CartPole-v1; SAC (twin Q, auto temperature) on "
                              "Pendulum-v1; CQL and IQL trained offline on a dataset collected by a half-trained "
                              "SAC agent and compared with that behaviour policy. Step counts and networks (64-64, lr 1e-3 "
                              "offline) are small to fit the tour budget, so the returns shown are what these short "
                              "runs reach, not the benchmark results (benchmarks/results/rl_*.md).")
    rows = []
    # 1. PPO on CartPole
    ppo_steps = 30_000 if q else 60_000
    r = ppo.train(ppo.PPORunConfig(env=EnvConfig(id="CartPole-v1"), ppo=ppo.PPOConfig(total_steps=ppo_steps),
                                   eval=EvalConfig(every=5_000, episodes=5)), out=ctx.out / "ppo")
    section.figures.append((f"PPO CartPole-v1: return vs env steps ({ppo_steps} steps)",
                            _curve_figure("PPO on CartPole-v1", r.train_returns, r.history)))
    rows.append({"run": "PPO CartPole-v1", "steps": ppo_steps, "eval return": r.final_return,
                 "± std": r.history[-1]["eval_std"], "steps/s": r.steps_per_second, "reference": "benchmark goal ≥ 475 at 100k; max 500"})
    # 2. SAC on Pendulum, which also produces the offline datasets (medium = a snapshot half way to expert)
    sac_steps = 4_000 if q else 8_000
    paths = collect("Pendulum-v1", ctx.out / "data", kinds=("medium", "expert"), train_steps=sac_steps,
                    n_transitions=2_000 if q else 5_000, medium_score=50.0, ref_episodes=5, hidden=(64, 64))
    summary = __import__("json").loads((ctx.out / "data" / "pendulum-v1-collect.json").read_text())
    hist = summary["sac_history"]
    section.figures.append((f"SAC Pendulum-v1: deterministic eval return vs env steps ({sac_steps} steps, 64-64 MLPs)",
                            _curve_figure("SAC on Pendulum-v1", [], hist)))
    rows.append({"run": "SAC Pendulum-v1", "steps": sac_steps, "eval return": hist[-1]["eval_return"],
                 "± std": hist[-1]["eval_std"], "steps/s": float("nan"), "reference": "benchmark goal ≥ -200 at 20k; random ≈ -1200"})
    # 3. CQL and IQL on the medium dataset vs its behaviour policy
    medium = load_dataset(paths["medium"])
    off_rows = [{"policy": "behaviour (medium SAC snapshot, sampled)", "return": medium.metadata["behaviour_return"][0],
                 "normalised score": medium.normalized_score(medium.metadata["behaviour_return"][0])}]
    off_steps = 1_000 if q else 3_000
    data, ev = DataConfig(path=str(paths["medium"])), EvalConfig(every=0, episodes=5)
    rc = cql.train(cql.CQLRunConfig(data=data, eval=ev, cql=cql.CQLConfig(
        steps=off_steps, hidden=(64, 64), actor_lr=1e-3, critic_lr=1e-3, n_action_samples=4)), out=ctx.out / "cql")
    ri = iql.train(iql.IQLRunConfig(data=data, eval=ev, iql=iql.IQLConfig(
        steps=off_steps, hidden=(64, 64), actor_lr=1e-3, critic_lr=1e-3, value_lr=1e-3)), out=ctx.out / "iql")
    for name, res in (("CQL", rc), ("IQL", ri)):
        h = res.history[-1]
        off_rows.append({"policy": f"{name} ({off_steps} gradient steps, deterministic)", "return": h["eval_return"],
                         "normalised score": h["normalized_score"]})
    off_rows.append({"policy": "expert reference (final SAC, deterministic)",
                     "return": medium.metadata["ref_expert_return"], "normalised score": 100.0})
    off_rows.append({"policy": "random reference", "return": medium.metadata["ref_random_return"],
                     "normalised score": 0.0})
    section.tables.append(("Online runs (deterministic evaluation, 5 episodes)", rows))
    section.tables.append(("Offline RL on the Pendulum-v1 medium dataset vs its behaviour policy", off_rows))
    from .common import load_policy
    expert, _ = load_policy(ctx.out / "data" / "pendulum-v1-agents" / "expert")
    section.figures.append(("One Pendulum-v1 episode of the SAC policy", _pendulum_strip(expert)))
    section.text.append(("Reproduce", "frontier rl train ppo --env CartPole-v1\n"
                         "frontier rl collect --env Pendulum-v1 --out data/rl\n"
                         "frontier rl train iql --dataset data/rl/pendulum-v1-medium.npz\n"
                         "frontier rl eval --model runs/rl-iql --episodes 10"))
    return section
