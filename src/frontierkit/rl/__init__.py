"""Reinforcement learning on gymnasium: PPO (Schulman et al. 2017), SAC (Haarnoja et al. 2018),
CQL (Kumar et al. 2020) and IQL (Kostrikov et al. 2021), with offline datasets built from our agents.

Layout: ``nets`` (policies, critics), ``buffers`` (rollout and replay storage), ``returns`` (GAE),
``losses`` (each objective a small named function), ``envs`` (vector envs, normalisation, checks),
one module per algorithm, ``data`` (offline dataset format, collection, normalised score),
``agents`` (checkpoint save/load and evaluation), ``commands`` (the ``frontier rl`` CLI).
Algorithm modules import gymnasium lazily so ``import frontierkit.rl`` stays light.
"""
from .returns import discounted_returns, gae
from .losses import (awr_policy_loss, cql_penalty, expectile_loss, ppo_clip_loss, sac_actor_loss,
                     sac_critic_loss, sac_temperature_loss, tanh_gaussian_log_prob, value_loss)

__all__ = ["gae", "discounted_returns", "ppo_clip_loss", "value_loss", "tanh_gaussian_log_prob",
           "sac_actor_loss", "sac_critic_loss", "sac_temperature_loss", "cql_penalty",
           "expectile_loss", "awr_policy_loss"]
