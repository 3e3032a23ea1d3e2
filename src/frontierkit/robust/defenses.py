"""Adversarial training through the shared loop's hooks.

- PGD adversarial training: Madry et al. 2018, eq. 2.1, ``min_θ E[max_{δ∈S} L(θ, x+δ, y)]``: the
  loop's ``batch_transform`` replaces each micro-batch by its PGD examples, the loss stays cross-entropy.
- TRADES: Zhang et al. 2019, "Theoretically Principled Trade-off between Robustness and Accuracy",
  eq. 5: ``CE(f(x), y) + β·KL(f(x) ‖ f(x'))`` with x' maximising the KL in the ε-ball (Algorithm 1:
  start at x + 0.001·N(0, I), signed-gradient steps). ``batch_transform`` adds x' to the batch and the
  loss function reads both.

The attack runs on the plain module in ``eval()`` mode (BatchNorm statistics untouched, as TRADES'
reference code does), then the module's mode is restored for the training forward.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..config import require, to_dict
from ..train import Hooks, Trainer
from ..vision.models import build_model
from ..vision.train import VisionRunConfig, accuracy, cross_entropy_loss, load_data
from .attacks import pgd, project, steepest_ascent

Method = Literal["none", "pgd", "trades"]
Batch = Any


@dataclass(frozen=True, kw_only=True)
class AdversarialConfig:
    method: Method = "pgd"
    """none (standard training), pgd (Madry PGD-AT) or trades (Zhang et al. 2019)"""
    eps: float = 0.3
    """L∞ budget of the training attack, in pixel units of [clip_min, clip_max]"""
    steps: int = 10
    """attack iterations per batch"""
    alpha: float = 0.0
    """attack step size (0: 2.5·eps/steps, Madry et al.'s rule)"""
    beta: float = 6.0
    """trades only: weight of the KL robustness term (1/λ in the paper; 6 on MNIST/CIFAR)"""
    eps_warmup: int = 0
    """optimizer steps over which eps ramps linearly from 0 (0: full eps from the start)"""
    eval_eps: float = 0.0
    """eps of the PGD-20 robust accuracy logged at each evaluation (0: eps)"""
    clip_min: float = 0.0
    """smallest valid pixel value"""
    clip_max: float = 1.0
    """largest valid pixel value"""

    def __post_init__(self) -> None:
        require(self.eps >= 0, "adv.eps", self.eps, "must be >= 0")
        require(self.steps >= 1, "adv.steps", self.steps, "must be >= 1")
        require(self.alpha >= 0, "adv.alpha", self.alpha, "must be >= 0 (0 = 2.5*eps/steps)")
        require(self.beta >= 0, "adv.beta", self.beta, "must be >= 0")
        require(self.eps_warmup >= 0, "adv.eps_warmup", self.eps_warmup, "must be >= 0")
        require(self.clip_min < self.clip_max, "adv.clip_max", self.clip_max, f"must exceed clip_min={self.clip_min}")

    def eps_at(self, step: int) -> float:
        """ε of optimizer step ``step`` under the linear warm-up."""
        return self.eps * min(1.0, (step + 1) / self.eps_warmup) if self.eps_warmup else self.eps

    def alpha_for(self, eps: float) -> float:
        return self.alpha or 2.5 * eps / self.steps


@dataclass(frozen=True, kw_only=True)
class RobustRunConfig(VisionRunConfig):
    adv: AdversarialConfig = field(default_factory=AdversarialConfig)
    """adversarial training"""


def _in_eval_mode(module: nn.Module, fn: Callable[[], torch.Tensor]) -> torch.Tensor:
    was = module.training
    module.eval()
    try:
        return fn()
    finally:
        module.train(was)


def madry_transform(cfg: AdversarialConfig) -> Callable[[nn.Module, Batch, int], Batch]:
    """``batch_transform``: (x, y) -> (PGD(x), y), the inner maximisation of Madry et al. 2018, eq. 2.1."""
    def transform(module: nn.Module, batch: Batch, step: int) -> Batch:
        x, y = batch
        eps = cfg.eps_at(step)
        x_adv = _in_eval_mode(module, lambda: pgd(module, x, y, eps, cfg.alpha_for(eps), cfg.steps,
                                                  clip_min=cfg.clip_min, clip_max=cfg.clip_max))
        return x_adv, y
    return transform


def kl_divergence(logits_clean: torch.Tensor, logits_adv: torch.Tensor) -> torch.Tensor:
    """(B,) KL(f(x) ‖ f(x')) between the softmax outputs (Zhang et al. 2019, eq. 5's boundary term)."""
    log_p, log_q = F.log_softmax(logits_clean, -1), F.log_softmax(logits_adv, -1)   # (B, K)
    return (log_p.exp() * (log_p - log_q)).sum(-1)


def trades_adversary(model: nn.Module, x: torch.Tensor, eps: float, alpha: float, steps: int,
                     clip_min: float = 0.0, clip_max: float = 1.0) -> torch.Tensor:
    """x' = argmax_{‖x'−x‖∞≤ε} KL(f(x) ‖ f(x')) by signed steps from x + 0.001·N(0, I) (Zhang et al. 2019, Alg. 1)."""
    with torch.no_grad():
        logits_clean = model(x)                                          # (B, K)
    x_adv = (x + 0.001 * torch.randn_like(x)).clamp(clip_min, clip_max)
    for _ in range(steps):
        x_adv = x_adv.detach().requires_grad_(True)
        with torch.enable_grad():
            kl = kl_divergence(logits_clean, model(x_adv)).sum()
            grad = torch.autograd.grad(kl, x_adv)[0]                      # (B, C, H, W)
        delta = project(x_adv.detach() + alpha * steepest_ascent(grad, "linf") - x, eps, "linf")
        x_adv = (x + delta).clamp(clip_min, clip_max)
    return x_adv.detach()


def trades_transform(cfg: AdversarialConfig) -> Callable[[nn.Module, Batch, int], Batch]:
    """``batch_transform``: (x, y) -> (x, x', y) with x' from :func:`trades_adversary`."""
    def transform(module: nn.Module, batch: Batch, step: int) -> Batch:
        x, y = batch
        eps = cfg.eps_at(step)
        x_adv = _in_eval_mode(module, lambda: trades_adversary(module, x, eps, cfg.alpha_for(eps), cfg.steps,
                                                               cfg.clip_min, cfg.clip_max))
        return x, x_adv, y
    return transform


def trades_loss(beta: float) -> Callable[[nn.Module, Batch], tuple[torch.Tensor, dict[str, float]]]:
    """``loss_fn(model, (x, x', y))`` = CE(f(x), y) + β·mean KL(f(x) ‖ f(x')) (Zhang et al. 2019, eq. 5)."""
    def loss(model: nn.Module, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        x, x_adv, y = batch
        logits = model(torch.cat([x, x_adv]))                            # (2B, K), one forward
        clean, adv = logits.split(len(x))
        natural = F.cross_entropy(clean, y)
        robust = kl_divergence(clean, adv).mean()
        return natural + beta * robust, {"natural": natural.item(), "kl": robust.item(),
                                         "acc": (clean.argmax(-1) == y).float().mean().item()}
    return loss


def training_setup(cfg: AdversarialConfig) -> tuple[Hooks, Callable[[nn.Module, Batch], Any]]:
    """(hooks, loss_fn) for the loop: none -> plain CE; pgd -> PGD batches + CE; trades -> x' + TRADES loss."""
    if cfg.method == "pgd":
        return Hooks(batch_transform=madry_transform(cfg)), cross_entropy_loss
    if cfg.method == "trades":
        return Hooks(batch_transform=trades_transform(cfg)), trades_loss(cfg.beta)
    return Hooks(), cross_entropy_loss


def robust_eval_fn(cfg: AdversarialConfig, x: torch.Tensor, y: torch.Tensor) -> Callable[[nn.Module], dict[str, float]]:
    """Clean and PGD-20 (ε = eval_eps or eps, no restart) accuracy on (x, y), logged at each evaluation."""
    eps = cfg.eval_eps or cfg.eps

    def evaluate(model: nn.Module) -> dict[str, float]:
        x_adv = pgd(model, x, y, eps, steps=20, clip_min=cfg.clip_min, clip_max=cfg.clip_max,
                    generator=torch.Generator().manual_seed(0))
        return {"test_acc": accuracy(model, x, y), f"pgd20_acc@{eps:g}": accuracy(model, x_adv, y)}
    return evaluate


def train_robust(cfg: RobustRunConfig, out: str | Path, *, init: nn.Module | None = None, tracker: Any = None,
                 quiet: bool = True, resume: bool = False, eval_n: int = 200) -> tuple[nn.Module, dict[str, float]]:
    """Train ``cfg.model`` on ``cfg.data`` (from ``init``'s weights when given) with ``cfg.adv``'s method;
    writes ``<out>/model`` (a ``vision`` model: the registry loads it like any classifier) and eval.json."""
    from ..data import TensorBatches

    torch.manual_seed(cfg.train.seed)
    model = init if init is not None else build_model(cfg.model)
    x_tr, y_tr = load_data(cfg.data, "train")
    x_te, y_te = load_data(cfg.data, "test")
    hooks, loss_fn = training_setup(cfg.adv)
    data = TensorBatches(x_tr, y_tr, batch_size=cfg.train.batch_size, seed=cfg.train.seed)
    evaluate = robust_eval_fn(cfg.adv, x_te[:eval_n], y_te[:eval_n])
    trainer = Trainer(model, loss_fn, data, cfg.train, out=out, tracker=tracker, hooks=hooks, eval_fn=evaluate,
                      run_config=to_dict(cfg), model_config=to_dict(cfg.model), quiet=quiet,
                      progress_desc=f"robust {cfg.adv.method} {cfg.model.name}")
    trainer.fit(resume=resume)
    model.eval()
    metrics = {**evaluate(model), "steps": trainer.step}
    (Path(out) / "eval.json").write_text(json.dumps(metrics, indent=2))
    return model, metrics
