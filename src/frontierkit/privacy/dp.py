"""DP-SGD (Abadi, Chu, Goodfellow, McMahan, Mironov, Talwar, Zhang 2016, "Deep Learning with
Differential Privacy", Algorithm 1) on the shared training loop's per-example-gradient seam.

Each step: Poisson-sample a lot (every example independently with probability q), compute each
example's gradient (torch.func, ``frontierkit.train.per_sample``; or, for Linear/Conv2d models, only its
norm: ghost.py), clip it to L2 norm C, sum, add
Gaussian noise N(0, σ²C²I) and divide by the *expected* lot size qN (Opacus' normaliser for
variable-size Poisson lots). The privacy cost is tracked by the RDP accountant (accountant.py);
a run never steps past its ε budget. BatchNorm mixes examples, so it has no per-example
gradient: it is refused with the fix (GroupNorm), or swapped for GroupNorm on request.
"""
from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from ..config import require, to_dict
from ..errors import ConfigError, DataError
from ..train import Hooks, TrainConfig, Trainer
from ..train import per_sample as ps
from ..vision import VisionDataConfig, VisionModelConfig
from .accountant import max_steps_within, noise_multiplier_for, rdp_epsilon
from .ghost import ghost_dp_loss, ghost_supported

GROUPNORM_TRANSFORM = "privacy.groupnorm"


# -- per-example gradients, clipping, noise ------------------------------------------------------
def per_sample_grads(model: nn.Module, loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                     inputs: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
    """Name -> (B, *param.shape): ∇_θ loss_fn(model(x_i), y_i) for each example i (Abadi 2016, Alg. 1 line 5)."""
    check_dp_compatible(model)
    return ps.per_sample_grads(model, lambda m, b: loss_fn(m(b[0]), b[1]), (inputs, targets))


def clip_factors(grads: dict[str, torch.Tensor], max_grad_norm: float) -> torch.Tensor:
    """min(1, C / ‖g_i‖₂) per example (Alg. 1 "clip gradient"), (B,)."""
    norms = ps.per_example_norms(grads)                                 # (B,)
    return (max_grad_norm / (norms + 1e-6)).clamp(max=1.0)              # (B,)


def clipped_sum(grads: dict[str, torch.Tensor], max_grad_norm: float) -> dict[str, torch.Tensor]:
    """Σ_i ḡ_i with ḡ_i = g_i · min(1, C/‖g_i‖₂) (Alg. 1 lines 6-7, before the noise)."""
    factor = clip_factors(grads, max_grad_norm)                         # (B,)
    return {n: torch.einsum("b,b...->...", factor.to(g.dtype), g) for n, g in grads.items()}   # (*shape) each


def add_gaussian_noise(model: nn.Module, std: float, generator: torch.Generator) -> None:
    """p.grad += N(0, std²) with std = σC / (qN) (Alg. 1 "add noise", divided by the expected lot size)."""
    for p in ps.trainable_parameters(model).values():
        noise = torch.randn(p.shape, generator=generator, dtype=torch.float32)  # (*shape)
        p.grad = p.grad + (std * noise).to(device=p.grad.device, dtype=p.grad.dtype)


def dp_hooks(noise_multiplier: float, max_grad_norm: float, expected_batch: float, seed: int) -> Hooks:
    """Loop hooks for DP-SGD: clip + sum per lot, rescaled so the loop's 1/B becomes 1/(qN); step-seeded noise."""
    def combine(grads: dict[str, torch.Tensor], step: int) -> dict[str, torch.Tensor]:
        B = next(iter(grads.values())).shape[0]
        return {n: g * (B / expected_batch) for n, g in clipped_sum(grads, max_grad_norm).items()}

    def noise(model: nn.Module, step: int) -> None:
        gen = torch.Generator().manual_seed(seed * 1_000_003 + step)
        add_gaussian_noise(model, noise_multiplier * max_grad_norm / expected_batch, gen)

    return Hooks(per_sample_grads=combine, grad_transform=noise)


# -- BatchNorm: refuse or swap ---------------------------------------------------------------------
def batchnorm_layers(model: nn.Module) -> list[str]:
    return [n for n, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def check_dp_compatible(model: nn.Module) -> None:
    """Refuse BatchNorm: its output mixes the examples of a batch, so no per-example gradient exists."""
    bn = batchnorm_layers(model)
    if bn:
        raise ConfigError(f"the model has BatchNorm layers ({', '.join(bn[:3])}{'...' if len(bn) > 3 else ''}), "
                          f"which mix examples and break per-example privacy; replace them with GroupNorm "
                          f"(--dp.swap_batchnorm true, or frontierkit.privacy.replace_batchnorm(model))")


def _groups(channels: int, groups: int) -> int:
    return math.gcd(channels, groups)


def replace_batchnorm(model: nn.Module, spec: dict[str, Any] | None = None) -> nn.Module:
    """Every BatchNorm → GroupNorm(gcd(C, groups), C) in place (Opacus' fix); recorded as a model transform."""
    groups = int((spec or {}).get("groups", 8))
    for name, m in list(model.named_modules()):
        for child_name, child in list(m.named_children()):
            if isinstance(child, nn.modules.batchnorm._BatchNorm):
                c = child.num_features
                setattr(m, child_name, nn.GroupNorm(_groups(c, groups), c, affine=child.affine))
    done = getattr(model, "frontier_transforms", [])
    if not any(t.get("name") == GROUPNORM_TRANSFORM for t in done):
        model.frontier_transforms = [*done, {"name": GROUPNORM_TRANSFORM, "groups": groups}]
    return model


# -- Poisson sampling --------------------------------------------------------------------------------
class PoissonBatches:
    """Lots drawn by Poisson sampling: each example joins lot i independently with probability q
    (Abadi 2016 Sec. 3.1; the sampling the RDP analysis of the sampled Gaussian mechanism assumes)."""

    units = "samples"

    def __init__(self, *tensors: torch.Tensor, sample_rate: float, seed: int = 0):
        self.tensors, self.sample_rate, self.seed = tensors, sample_rate, seed
        self.n = tensors[0].shape[0]
        if self.expected_batch < 4:
            raise DataError(f"sample_rate={sample_rate} x {self.n} examples gives lots of {self.expected_batch:.1f} "
                            f"on average; raise train.batch_size (the expected lot size)")

    @property
    def expected_batch(self) -> float:
        return self.sample_rate * self.n

    def batch(self, i: int, rank: int = 0, world: int = 1) -> tuple[torch.Tensor, ...]:
        if world != 1:
            raise ConfigError("train.strategy must be single for DP-SGD with Poisson sampling (lots vary in size)")
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + i)
        mask = torch.rand(self.n, generator=gen) < self.sample_rate      # (N,)
        if not mask.any():
            mask[torch.randint(self.n, (1,), generator=gen)] = True       # probability (1-q)^N: negligible
        return tuple(t[mask] for t in self.tensors)

    def count(self, batch: tuple[torch.Tensor, ...]) -> int:
        return batch[0].shape[0]


# -- configuration and the private training run --------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class DPConfig:
    private: bool = True
    """train with DP-SGD (false: the same loop and sampling, no clipping or noise: the ε = ∞ baseline)"""
    epsilon: float = 3.0
    """privacy budget ε; the run never steps past it"""
    delta: float = 1e-5
    """δ of (ε, δ)-DP (keep it below 1/N)"""
    noise_multiplier: float = 0.0
    """σ; 0 calibrates σ so that train.steps spend exactly epsilon (noise_multiplier_for)"""
    max_grad_norm: float = 1.0
    """C: each example's gradient is clipped to this L2 norm"""
    swap_batchnorm: bool = False
    """replace BatchNorm by GroupNorm (otherwise a model with BatchNorm is refused)"""
    ghost: bool = True
    """clip with ghost norms + book-keeping (ghost.py: one backward, no per-example gradients) when every trainable
    layer is Linear/Conv2d; the same clipped gradient as the per-example (torch.func) path, which other models use"""

    def __post_init__(self) -> None:
        require(self.epsilon > 0, "dp.epsilon", self.epsilon, "must be > 0")
        require(0 < self.delta < 1, "dp.delta", self.delta, "must be in (0, 1)")
        require(self.noise_multiplier >= 0, "dp.noise_multiplier", self.noise_multiplier, "must be >= 0")
        require(self.max_grad_norm > 0, "dp.max_grad_norm", self.max_grad_norm, "must be > 0")


def _default_train() -> TrainConfig:
    return TrainConfig(steps=100, batch_size=512, lr=2e-2, warmup_steps=0, weight_decay=0.0, schedule="constant",
                       grad_clip=0.0, log_every=50)


def _default_model() -> VisionModelConfig:
    return VisionModelConfig(name="cnn", width=16)


@dataclass(frozen=True, kw_only=True)
class DPRunConfig:
    model: VisionModelConfig = field(default_factory=_default_model)
    """classifier architecture"""
    data: VisionDataConfig = field(default_factory=VisionDataConfig)
    """dataset"""
    train: TrainConfig = field(default_factory=_default_train)
    """optimizer and loop; train.batch_size is the expected Poisson lot size qN"""
    dp: DPConfig = field(default_factory=DPConfig)
    """privacy: budget, noise, clipping"""

    def __post_init__(self) -> None:
        m, d = self.model, self.data
        require((m.in_channels, m.image_size, m.num_classes) == (d.in_channels, d.image_size, d.num_classes),
                "model.image_size", m.image_size, f"the model must fit data {d.name}: {d.in_channels} channel(s), "
                f"{d.image_size} px, {d.num_classes} classes")
        require(self.train.grad_accum == 1, "train.grad_accum", self.train.grad_accum,
                "must be 1 for DP-SGD (each step is one Poisson lot)")
        require(self.train.strategy == "single", "train.strategy", self.train.strategy,
                "must be single for DP-SGD with Poisson sampling")
        require(self.train.precision != "fp16", "train.precision", self.train.precision, "use fp32 or bf16")


@dataclass
class PrivacyPlan:
    """What the accountant says before training: σ, q, the steps the budget allows."""
    noise_multiplier: float
    sample_rate: float
    steps: int
    requested_steps: int
    epsilon: float

    @property
    def stopped_by_budget(self) -> bool:
        return self.steps < self.requested_steps


def plan_privacy(dp: DPConfig, sample_rate: float, steps: int) -> PrivacyPlan:
    """σ (given, or calibrated to spend ε in ``steps``) and the most steps within ε (Mironov 2017 + MTZ 2019)."""
    if not dp.private:
        return PrivacyPlan(0.0, sample_rate, steps, steps, math.inf)
    sigma = dp.noise_multiplier or noise_multiplier_for(dp.epsilon, dp.delta, sample_rate, steps)
    allowed = max_steps_within(dp.epsilon, sigma, sample_rate, dp.delta, steps)
    if allowed == 0:
        raise ConfigError(f"dp.epsilon={dp.epsilon} is spent by a single step at dp.noise_multiplier={sigma:g} and "
                          f"sample rate {sample_rate:.4g}: raise dp.epsilon or dp.noise_multiplier, or set "
                          f"dp.noise_multiplier 0 to calibrate it")
    return PrivacyPlan(sigma, sample_rate, allowed, steps, rdp_epsilon(sigma, sample_rate, allowed, dp.delta))


def train_dp(cfg: DPRunConfig, out: str | Path, *, init: nn.Module | None = None, tracker: Any = None,
             quiet: bool = True) -> tuple[nn.Module, dict[str, Any]]:
    """DP-SGD on a classifier with the shared Trainer; stops at the ε budget; writes model/ and privacy.json."""
    from .. import models
    from ..vision import accuracy, build_model, load_data
    from ..vision.train import cross_entropy_loss

    out = Path(out)
    torch.manual_seed(cfg.train.seed)
    model = init if init is not None else build_model(cfg.model)
    if cfg.dp.private and cfg.dp.swap_batchnorm and batchnorm_layers(model):
        replace_batchnorm(model)
    if cfg.dp.private:
        check_dp_compatible(model)
    x_tr, y_tr = load_data(cfg.data, "train")
    x_te, y_te = load_data(cfg.data, "test")
    q = cfg.train.batch_size / len(x_tr)
    require(q <= 1, "train.batch_size", cfg.train.batch_size, f"must be <= the {len(x_tr)} training examples")
    data = PoissonBatches(x_tr, y_tr, sample_rate=q, seed=cfg.train.seed)
    plan = plan_privacy(cfg.dp, q, cfg.train.steps)
    if plan.stopped_by_budget and not quiet:
        print(f"[privacy] stopping at step {plan.steps} of {plan.requested_steps}: step {plan.steps + 1} would "
              f"spend more than epsilon={cfg.dp.epsilon} (sigma={plan.noise_multiplier:.4g}, q={q:.4g})",
              file=sys.stderr)
    hooks = dp_hooks(plan.noise_multiplier, cfg.dp.max_grad_norm, data.expected_batch, cfg.train.seed) \
        if cfg.dp.private else None
    loss_fn = cross_entropy_loss
    if hooks is not None and cfg.dp.ghost and ghost_supported(model):   # same clipped sum, one backward
        loss_fn = ghost_dp_loss(cfg.dp.max_grad_norm, data.expected_batch, cross_entropy_loss)
        hooks = Hooks(grad_transform=hooks.grad_transform)
    trainer = Trainer(model, loss_fn, data, replace(cfg.train, steps=plan.steps), out=out,
                      tracker=tracker, hooks=hooks, eval_fn=lambda m: {"test_acc": accuracy(m, x_te, y_te)},
                      run_config=to_dict(cfg), model_config=to_dict(model.config), quiet=quiet,
                      progress_desc="dp-sgd" if cfg.dp.private else "non-private")
    trainer.fit(resume=True)
    spent = rdp_epsilon(plan.noise_multiplier, q, trainer.step, cfg.dp.delta) if cfg.dp.private else math.inf
    model.eval()
    record = {"private": cfg.dp.private, "epsilon": spent, "epsilon_budget": cfg.dp.epsilon, "delta": cfg.dp.delta,
              "noise_multiplier": plan.noise_multiplier, "sample_rate": q, "max_grad_norm": cfg.dp.max_grad_norm,
              "steps": trainer.step, "requested_steps": plan.requested_steps,
              "clipping": ("ghost" if loss_fn is not cross_entropy_loss else "per-example") if cfg.dp.private else "none",
              "stopped_by_budget": plan.stopped_by_budget, "test_acc": accuracy(model, x_te, y_te)}
    (out / "privacy.json").write_text(json.dumps(record, indent=2, default=str))
    return model, record
