"""Networks: MLPs, PPO's actor-critic (Categorical or Gaussian with state-independent log-std),
SAC's tanh-squashed Gaussian actor (Haarnoja et al. 2018, appendix C), an ensemble of Q-networks
evaluated in one batched matmul (the twin critics of SAC/CQL/IQL), a state value net and IQL's Gaussian policy.

Action bounds live in buffers (``action_scale``, ``action_bias``) so a checkpoint carries them.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .losses import tanh_gaussian_log_prob

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0


def mlp(in_dim: int, out_dim: int, hidden: tuple[int, ...], activation: type[nn.Module] = nn.ReLU,
        out_gain: float | None = None, orthogonal: bool = False) -> nn.Sequential:
    """in -> hidden... -> out; ``orthogonal`` uses the √2 / ``out_gain`` init of PPO implementations."""
    layers: list[nn.Module] = []
    dims = (in_dim, *hidden)
    for a, b in zip(dims[:-1], dims[1:]):
        layers += [nn.Linear(a, b), activation()]
    layers.append(nn.Linear(dims[-1], out_dim))
    if orthogonal:
        linears = [m for m in layers if isinstance(m, nn.Linear)]
        for i, lin in enumerate(linears):
            gain = (out_gain if out_gain is not None else 1.0) if i == len(linears) - 1 else math.sqrt(2)
            nn.init.orthogonal_(lin.weight, gain)
            nn.init.zeros_(lin.bias)
    return nn.Sequential(*layers)


class RunningNorm(nn.Module):
    """Running mean/variance (Chan et al. parallel update) of observations; state lives in buffers."""

    def __init__(self, dim: int, clip: float = 10.0, eps: float = 1e-8):
        super().__init__()
        self.clip, self.eps = clip, eps
        self.register_buffer("mean", torch.zeros(dim, dtype=torch.float64))
        self.register_buffer("var", torch.ones(dim, dtype=torch.float64))
        self.register_buffer("count", torch.tensor(1e-4, dtype=torch.float64))

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        x = x.double().reshape(-1, self.mean.shape[0])  # (B, D)
        b_mean, b_var, b = x.mean(0), x.var(0, unbiased=False), x.shape[0]
        delta, total = b_mean - self.mean, self.count + b
        self.mean += delta * b / total
        self.var.copy_((self.var * self.count + b_var * b + delta.pow(2) * self.count * b / total) / total)
        self.count.copy_(total)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = (x - self.mean.float()) / torch.sqrt(self.var.float() + self.eps)
        return z.clamp(-self.clip, self.clip)


class ActorCritic(nn.Module):
    """PPO's policy π(a|s) and value V(s) in separate MLPs (tanh, orthogonal init; actor head gain 0.01).

    Discrete actions: Categorical over logits. Continuous: Normal(μ(s), exp(log_std)) with a learned
    state-independent log-std vector, as in the PPO paper's MuJoCo experiments.
    """

    def __init__(self, obs_dim: int, act_dim: int, discrete: bool, hidden: tuple[int, ...] = (64, 64),
                 norm_obs: bool = False, init_log_std: float = 0.0):
        super().__init__()
        self.discrete = discrete
        self.actor = mlp(obs_dim, act_dim, hidden, nn.Tanh, out_gain=0.01, orthogonal=True)
        self.critic = mlp(obs_dim, 1, hidden, nn.Tanh, out_gain=1.0, orthogonal=True)
        self.log_std = None if discrete else nn.Parameter(torch.full((act_dim,), init_log_std))
        self.obs_norm = RunningNorm(obs_dim) if norm_obs else None

    def normalize(self, obs: torch.Tensor) -> torch.Tensor:
        return obs if self.obs_norm is None else self.obs_norm(obs)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.critic(obs).squeeze(-1)  # (B,)

    def dist(self, obs: torch.Tensor) -> torch.distributions.Distribution:
        out = self.actor(obs)  # (B, A)
        if self.discrete:
            return torch.distributions.Categorical(logits=out, validate_args=False)
        return torch.distributions.Normal(out, self.log_std.exp().expand_as(out), validate_args=False)

    def log_prob_entropy(self, obs: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """log π(a|s) and H[π(·|s)], both (B,) (Gaussian terms summed over action dims)."""
        d = self.dist(obs)
        if self.discrete:
            return d.log_prob(action.long()), d.entropy()
        return d.log_prob(action).sum(-1), d.entropy().sum(-1)

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool = True) -> torch.Tensor:
        """Policy action for raw observations (normalised inside): mode when ``deterministic``."""
        obs = self.normalize(obs)
        if deterministic:
            out = self.actor(obs)
            return out.argmax(-1) if self.discrete else out
        return self.dist(obs).sample()


class EnsembleLinear(nn.Module):
    """E independent linear layers applied in one batched matmul: (E, B, in) -> (E, B, out)."""

    def __init__(self, ensemble: int, in_dim: int, out_dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(ensemble, in_dim, out_dim))
        self.bias = nn.Parameter(torch.empty(ensemble, 1, out_dim))
        bound = 1.0 / math.sqrt(in_dim)  # nn.Linear's default uniform init, per member
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight)  # (E, B, out)


class EnsembleQ(nn.Module):
    """E Q-networks Q_j(s, a) (SAC's twin critics, Fujimoto et al. 2018) evaluated together -> (E, B)."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...] = (256, 256), ensemble: int = 2):
        super().__init__()
        self.ensemble = ensemble
        dims = (obs_dim + act_dim, *hidden)
        layers: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:]):
            layers += [EnsembleLinear(ensemble, a, b), nn.ReLU()]
        layers.append(EnsembleLinear(ensemble, dims[-1], 1))
        self.net = nn.Sequential(*layers)

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        x = torch.cat([obs, action], dim=-1)  # (B, S+A) or (E, B, S+A)
        if x.dim() == 2:
            x = x.unsqueeze(0).expand(self.ensemble, -1, -1)  # (E, B, S+A)
        return self.net(x).squeeze(-1)  # (E, B)


class ValueNet(nn.Module):
    """State value V(s) (IQL's expectile value function)."""

    def __init__(self, obs_dim: int, hidden: tuple[int, ...] = (256, 256)):
        super().__init__()
        self.net = mlp(obs_dim, 1, hidden)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs).squeeze(-1)  # (B,)


class BoundedActions(nn.Module):
    """Holds the affine map from [-1, 1]^A to the env's box [low, high] in buffers."""

    def __init__(self, act_dim: int, low: torch.Tensor | None = None, high: torch.Tensor | None = None):
        super().__init__()
        low = torch.full((act_dim,), -1.0) if low is None else torch.as_tensor(low, dtype=torch.float32)
        high = torch.full((act_dim,), 1.0) if high is None else torch.as_tensor(high, dtype=torch.float32)
        self.register_buffer("action_scale", (high - low) / 2.0)
        self.register_buffer("action_bias", (high + low) / 2.0)


class TanhGaussianActor(BoundedActions):
    """SAC's policy: u ~ N(μ(s), σ(s)), a = scale·tanh(u) + bias, log π with the tanh correction (eq. 21)."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...] = (256, 256),
                 low: torch.Tensor | None = None, high: torch.Tensor | None = None):
        super().__init__(act_dim, low, high)
        self.trunk = mlp(obs_dim, 2 * act_dim, hidden)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = self.trunk(obs).chunk(2, dim=-1)  # (B, A) each
        return mean, log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)

    def sample(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterised a = scale·tanh(μ + σ ε) + bias and log π(a|s): ((B, A), (B,))."""
        mean, log_std = self(obs)
        pre_tanh = mean + log_std.exp() * torch.randn_like(mean)  # (B, A)
        log_prob = tanh_gaussian_log_prob(mean, log_std, pre_tanh, self.action_scale)  # (B,)
        return torch.tanh(pre_tanh) * self.action_scale + self.action_bias, log_prob

    def sample_n(self, obs: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """n reparameterised actions per state from one forward pass: ((B, n, A), (B, n))."""
        mean, log_std = self(obs)  # (B, A) each
        mean, log_std = mean.unsqueeze(1).expand(-1, n, -1), log_std.unsqueeze(1).expand(-1, n, -1)  # (B, n, A)
        pre_tanh = mean + log_std.exp() * torch.randn_like(mean)  # (B, n, A)
        log_prob = tanh_gaussian_log_prob(mean, log_std, pre_tanh, self.action_scale)  # (B, n)
        return torch.tanh(pre_tanh) * self.action_scale + self.action_bias, log_prob

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool = True) -> torch.Tensor:
        if deterministic:
            return torch.tanh(self(obs)[0]) * self.action_scale + self.action_bias
        return self.sample(obs)[0]


class GaussianPolicy(BoundedActions):
    """IQL's policy: N(scale·tanh(μ(s)) + bias, exp(log_std)) with state-independent log-std;
    dataset actions are scored directly (no tanh inversion), the mean is the deterministic action."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...] = (256, 256),
                 low: torch.Tensor | None = None, high: torch.Tensor | None = None):
        super().__init__(act_dim, low, high)
        self.trunk = mlp(obs_dim, act_dim, hidden)
        self.log_std = nn.Parameter(torch.zeros(act_dim))

    def dist(self, obs: torch.Tensor) -> torch.distributions.Normal:
        mean = torch.tanh(self.trunk(obs)) * self.action_scale + self.action_bias  # (B, A)
        std = self.log_std.clamp(LOG_STD_MIN, LOG_STD_MAX).exp() * self.action_scale  # (A,)
        return torch.distributions.Normal(mean, std.expand_as(mean), validate_args=False)

    def log_prob(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.dist(obs).log_prob(action).sum(-1)  # (B,)

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool = True) -> torch.Tensor:
        d = self.dist(obs)
        a = d.mean if deterministic else d.sample()
        return torch.max(torch.min(a, self.action_bias + self.action_scale), self.action_bias - self.action_scale)
