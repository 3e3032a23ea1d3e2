"""Evasion attacks on any differentiable classifier ``model(x) -> logits``.

- FGSM: Goodfellow, Shlens & Szegedy 2015, "Explaining and Harnessing Adversarial Examples", eq. 3:
  ``x' = x + ε·sign(∇ₓ L(θ, x, y))``.
- PGD: Madry et al. 2018, "Towards Deep Learning Models Resistant to Adversarial Attacks", eq. 2:
  ``x^{t+1} = Π_{x+S}(x^t + α·sign(∇ₓ L(θ, x^t, y)))`` (L∞; L2 takes the normalised gradient),
  from a uniform random start, with restarts keeping each sample's worst case and optional early stop.
- APGD-CE: Croce & Hein 2020, "Reliable evaluation of adversarial robustness with an ensemble of
  diverse parameter-free attacks", Algorithm 1 (momentum 0.75, step size halved at checkpoints
  w_j when progress stalls, conditions 1 and 2), the first component of AutoAttack.

Conventions shared by every attack:
- inputs stay in ``[clip_min, clip_max]`` (default ``[0, 1]``, the kit's pixel range: digits and
  shapes images are float32 in [0, 1]); ε is measured in those units. A model that normalises
  inside its ``forward`` is attacked unchanged, in pixel space.
- the model is used in whatever mode it is in (evaluate in ``eval()`` mode); only ``x`` gets
  gradients (``torch.autograd.grad``), so parameters' ``.grad`` is never touched.
- ``targeted=True`` reads ``y`` as the target classes and descends their cross-entropy.
- ``eot`` averages the input gradient over that many forward/backward passes (Athalye et al. 2018,
  Expectation over Transformation) for randomised models and purifiers.
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError

Norm = Literal["linf", "l2"]
NORMS = ("linf", "l2")

__all__ = ["NORMS", "Norm", "apgd", "apgd_checkpoints", "fgsm", "input_gradient", "pgd", "project",
           "random_start", "steepest_ascent", "success"]


def _check(eps: float, norm: str, clip_min: float, clip_max: float) -> None:
    if norm not in NORMS:
        raise ConfigError(f"norm={norm!r} is invalid: expected one of {', '.join(NORMS)}")
    if not eps >= 0:
        raise ConfigError(f"eps={eps} is invalid: the perturbation budget must be >= 0")
    if not clip_min < clip_max:
        raise ConfigError(f"clip_min={clip_min}, clip_max={clip_max} is invalid: need clip_min < clip_max")


def _per_sample_norm(v: torch.Tensor) -> torch.Tensor:
    """L2 norm of each sample, shaped to broadcast: (B, *) -> (B, 1, ..., 1)."""
    return v.flatten(1).norm(dim=1).view(-1, *[1] * (v.dim() - 1))


def project(delta: torch.Tensor, eps: float, norm: Norm) -> torch.Tensor:
    """Π onto the ε-ball of ``norm`` around 0 (Madry et al. 2018, eq. 2)."""
    if norm == "linf":
        return delta.clamp(-eps, eps)
    factor = torch.clamp(eps / _per_sample_norm(delta), max=1.0)       # (B, 1, 1, 1); 0/0 never: eps/0 = inf
    return delta * factor


def steepest_ascent(grad: torch.Tensor, norm: Norm) -> torch.Tensor:
    """The unit-norm steepest-ascent direction: sign(g) for L∞, g/‖g‖₂ for L2 (Madry et al. 2018, §2.1).
    The guard 1e-20 only avoids 0/0: a confident sample's gradient can be ~1e-8 and still has a direction."""
    if norm == "linf":
        return grad.sign()
    return grad / (_per_sample_norm(grad) + 1e-20)


def random_start(x: torch.Tensor, eps: float, norm: Norm, generator: torch.Generator | None = None) -> torch.Tensor:
    """A random point of the ε-ball around 0: uniform per pixel (L∞); a Gaussian direction scaled to
    ``U(0, 1)·ε`` (L2), as Madry et al.'s and torchattacks' PGD start."""
    if norm == "linf":
        return torch.empty_like(x).uniform_(-eps, eps, generator=generator)
    delta = torch.empty_like(x).normal_(generator=generator)
    r = torch.zeros(x.shape[0], *[1] * (x.dim() - 1)).uniform_(0, 1, generator=generator)   # (B, 1, 1, 1)
    return delta * r / _per_sample_norm(delta) * eps


def input_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, targeted: bool = False,
                   eot: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(∇ₓ of the summed per-sample objective, logits, per-sample objective) of the cross-entropy to
    ascend (its negative when targeted), averaged over ``eot`` passes (Athalye et al. 2018, EOT)."""
    x = x.detach().requires_grad_(True)
    sign = -1.0 if targeted else 1.0
    grads = []
    for _ in range(eot):
        with torch.enable_grad():                                        # attacks also run under no_grad
            logits = model(x)                                            # (B, K)
            objective = sign * F.cross_entropy(logits, y, reduction="none")   # (B,)
            grads.append(torch.autograd.grad(objective.sum(), x)[0])     # (B, C, H, W)
    grad = grads[0] if eot == 1 else torch.stack(grads).mean(0)
    return grad, logits.detach(), objective.detach()


def success(logits: torch.Tensor, y: torch.Tensor, targeted: bool) -> torch.Tensor:
    """(B,) bool: the attack succeeded (prediction != label, or == target when targeted)."""
    pred = logits.argmax(-1)
    return pred == y if targeted else pred != y


def fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, *, targeted: bool = False,
         clip_min: float = 0.0, clip_max: float = 1.0, eot: int = 1) -> torch.Tensor:
    """Fast Gradient Sign Method: x + ε·sign(∇ₓ L) clipped to the valid range (Goodfellow et al. 2015, eq. 3)."""
    _check(eps, "linf", clip_min, clip_max)
    grad, _, _ = input_gradient(model, x, y, targeted=targeted, eot=eot)
    return (x + eps * grad.sign()).clamp(clip_min, clip_max).detach()     # (B, C, H, W)


def _pgd_run(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, alpha: float, steps: int,
             norm: Norm, start: bool, targeted: bool, early_stop: bool, clip: tuple[float, float],
             generator: torch.Generator | None, eot: int) -> torch.Tensor:
    """One PGD run (Madry et al. 2018, eq. 2); with early stop a sample freezes at its first success."""
    x_adv = x.clone()
    if start:
        x_adv = (x + random_start(x, eps, norm, generator)).clamp(*clip)
    active: torch.Tensor | slice = torch.arange(len(x)) if early_stop else slice(None)   # samples attacked
    for _ in range(steps):
        grad, logits, _ = input_gradient(model, x_adv[active], y[active], targeted=targeted, eot=eot)
        if early_stop:
            keep = ~success(logits, y[active], targeted)
            active, grad = active[keep], grad[keep]
            if len(active) == 0:
                break
        x_step = x_adv[active] + alpha * steepest_ascent(grad, norm)     # (b, C, H, W)
        delta = project(x_step - x[active], eps, norm)
        if early_stop:
            x_adv[active] = (x[active] + delta).clamp(*clip)
        else:
            x_adv = (x + delta).clamp(*clip)
    return x_adv.detach()


@torch.no_grad()
def _objective_and_success(model: nn.Module, x_adv: torch.Tensor, y: torch.Tensor,
                           targeted: bool) -> tuple[torch.Tensor, torch.Tensor]:
    logits = model(x_adv)                                                 # (B, K)
    objective = F.cross_entropy(logits, y, reduction="none") * (-1.0 if targeted else 1.0)
    return objective, success(logits, y, targeted)


def pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, alpha: float | None = None,
        steps: int = 10, norm: Norm = "linf", random_start: bool = True, restarts: int = 1,
        targeted: bool = False, *, early_stop: bool = False, clip_min: float = 0.0, clip_max: float = 1.0,
        generator: torch.Generator | None = None, eot: int = 1) -> torch.Tensor:
    """Projected gradient descent (Madry et al. 2018, eq. 2) in L∞ or L2.

    ``alpha`` defaults to 2.5·ε/steps (Madry et al.'s choice). Restarts after the first run only on the
    samples not yet fooled; each sample keeps its worst case: a successful example if any run found one,
    else the run with the highest loss. ``early_stop`` freezes a sample at its first successful iterate
    (never weaker than the final iterate)."""
    _check(eps, norm, clip_min, clip_max)
    if steps < 1 or restarts < 1:
        raise ConfigError(f"steps={steps}, restarts={restarts} is invalid: both must be >= 1")
    alpha = 2.5 * eps / steps if alpha is None else alpha
    run = dict(eps=eps, alpha=alpha, steps=steps, norm=norm, start=random_start, targeted=targeted,
               early_stop=early_stop, clip=(clip_min, clip_max), generator=generator, eot=eot)
    best = _pgd_run(model, x, y, **run)                                   # (B, C, H, W)
    if restarts == 1:
        return best
    best_obj, fooled = _objective_and_success(model, best, y, targeted)
    for _ in range(restarts - 1):
        todo = (~fooled).nonzero().squeeze(1)
        if len(todo) == 0:
            break
        cand = _pgd_run(model, x[todo], y[todo], **run)
        obj, ok = _objective_and_success(model, cand, y[todo], targeted)
        better = ok | (obj > best_obj[todo])
        best[todo[better]] = cand[better]
        best_obj[todo[better]], fooled[todo[better]] = obj[better], ok[better]
    return best


# --- APGD-CE (Croce & Hein 2020) -------------------------------------------------------------------

def apgd_checkpoints(steps: int) -> tuple[int, int, int]:
    """(first window, minimal window, window decrement) in iterations: p₁ = 0.22, p_{j+1} − p_j shrinks
    by 0.03 down to 0.06 of ``steps`` (Croce & Hein 2020, §3.2)."""
    return max(int(0.22 * steps), 1), max(int(0.06 * steps), 1), max(int(0.03 * steps), 1)


def _l2(v: torch.Tensor) -> torch.Tensor:
    """Per-sample L2 norm summed as the authors' code does: (B, *) -> (B, 1, ..., 1)."""
    return (v ** 2).sum(dim=tuple(range(1, v.dim())), keepdim=True).sqrt()


def _apgd_init(x: torch.Tensor, eps: float, norm: Norm, generator: torch.Generator) -> torch.Tensor:
    """The random start of the authors' code: t/‖t‖∞·ε with t ~ U(−1, 1) (L∞), t/‖t‖₂·ε, t ~ N(0, I) (L2)."""
    if norm == "linf":
        t = 2 * torch.rand(x.shape, generator=generator) - 1               # (B, C, H, W)
        return eps * t / t.flatten(1).abs().max(dim=1)[0].view(-1, *[1] * (x.dim() - 1))
    t = torch.randn(x.shape, generator=generator)
    return eps * t / (_l2(t) + 1e-12)


def _apgd_project(x: torch.Tensor, z: torch.Tensor, eps: float, norm: Norm, clip: tuple[float, float],
                  tiny: float = 0.0) -> torch.Tensor:
    """P_S(z): the ε-ball around x, then the valid range (Croce & Hein 2020, Algorithm 1)."""
    if norm == "linf":
        return torch.min(torch.max(z, x - eps), x + eps).clamp(*clip)
    d = z - x
    n = _l2(d)                                                             # (B, 1, 1, 1)
    return (x + d / (n + 1e-12) * torch.clamp(n + tiny, max=eps)).clamp(*clip)


def _apgd_step(x: torch.Tensor, x_k: torch.Tensor, x_prev: torch.Tensor, grad: torch.Tensor, eta: torch.Tensor,
               a: float, eps: float, norm: Norm, clip: tuple[float, float]) -> torch.Tensor:
    """z = P(x_k + η·step(∇)); x_{k+1} = P(x_k + a·(z − x_k) + (1 − a)·(x_k − x_{k−1}))  (Algorithm 1, l. 8)."""
    if norm == "linf":
        z = _apgd_project(x, x_k + eta * grad.sign(), eps, norm, clip)
    else:
        z = _apgd_project(x, x_k + eta * grad / (_l2(grad) + 1e-12), eps, norm, clip)
    return _apgd_project(x, x_k + (z - x_k) * a + (x_k - x_prev) * (1 - a), eps, norm, clip,
                         tiny=1e-12 if norm == "l2" else 0.0)


def _oscillating(losses: list[torch.Tensor], i: int, k: int, rho: float) -> torch.Tensor:
    """Condition 1: the loss rose in at most ρ·k of the last k steps (the authors' code compares the
    run's first step with a zero-initialised history, so that step always counts as a rise)."""
    rises = torch.zeros_like(losses[i])
    for j in range(i - k + 1, i + 1):
        prev = losses[j - 1] if j > 0 else torch.zeros_like(losses[j])
        rises += (losses[j] > prev).float()
    return rises <= k * rho


def _apgd_run(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int, norm: Norm,
              rho: float, clip: tuple[float, float], generator: torch.Generator,
              eot: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One APGD-CE run (Croce & Hein 2020, Algorithm 1): (fooled (B,), best-loss point, last fooling point)."""
    k, k_min, k_decr = apgd_checkpoints(steps)
    x_adv = (x + _apgd_init(x, eps, norm, generator)).clamp(*clip)
    grad, logits, loss = input_gradient(model, x_adv, y, eot=eot)
    robust = logits.argmax(-1) == y                                       # (B,)
    x_best, x_fooling, grad_best, loss_best = x_adv.clone(), x_adv.clone(), grad.clone(), loss.clone()
    eta = torch.full((len(x), *[1] * (x.dim() - 1)), 2.0 * eps)           # step size η (B, 1, 1, 1)
    x_prev, losses = x_adv.clone(), []
    best_at_check, reduced_at_check, since_check = loss_best.clone(), torch.ones_like(robust), 0
    for i in range(steps):
        x_new = _apgd_step(x, x_adv, x_prev, grad, eta, 0.75 if i > 0 else 1.0, eps, norm, clip)
        x_prev, x_adv = x_adv, x_new
        grad, logits, loss = input_gradient(model, x_adv, y, eot=eot)
        pred_ok = logits.argmax(-1) == y
        robust &= pred_ok
        x_fooling[~pred_ok] = x_adv[~pred_ok]
        losses.append(loss)
        improved = loss > loss_best
        x_best[improved], grad_best[improved], loss_best[improved] = x_adv[improved], grad[improved], loss[improved]
        since_check += 1
        if since_check == k:                                              # checkpoint w_j
            halve = _oscillating(losses, i, k, rho) | (~reduced_at_check & (best_at_check >= loss_best))
            reduced_at_check, best_at_check = halve.clone(), loss_best.clone()
            eta[halve] /= 2.0
            x_adv[halve], grad[halve] = x_best[halve], grad_best[halve]   # restart from the best point
            since_check, k = 0, max(k - k_decr, k_min)
    return ~robust, x_best, x_fooling


def apgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int = 100,
         norm: Norm = "linf", restarts: int = 1, *, rho: float = 0.75, seed: int = 0,
         clip_min: float = 0.0, clip_max: float = 1.0, eot: int = 1) -> torch.Tensor:
    """APGD-CE (Croce & Hein 2020, Algorithm 1), untargeted, as in AutoAttack: only samples the model
    classifies correctly are attacked; each restart attacks those still robust. Returns a fooling point
    where one was found, else the highest-loss point."""
    _check(eps, norm, clip_min, clip_max)
    if steps < 1 or restarts < 1:
        raise ConfigError(f"steps={steps}, restarts={restarts} is invalid: both must be >= 1")
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        robust = model(x).argmax(-1) == y                                 # (B,)
    adv = x.clone()
    for _ in range(restarts):
        todo = robust.nonzero().squeeze(1)
        if len(todo) == 0:
            break
        fooled, x_best, x_fooling = _apgd_run(model, x[todo], y[todo], eps, steps, norm, rho,
                                              (clip_min, clip_max), generator, eot)
        adv[todo] = torch.where(fooled.view(-1, *[1] * (x.dim() - 1)), x_fooling, x_best)
        robust[todo[fooled]] = False
    return adv.detach()
