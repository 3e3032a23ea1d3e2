"""Knowledge distillation (Hinton et al. 2015, "Distilling the Knowledge in a Neural Network"): the
student matches the teacher's temperature-softened distribution, the soft term scaled by T^2 so its
gradients keep their size as T changes (§2), mixed with the hard-label loss. Feature matching as in
FitNets (Romero et al. 2015, hint loss ||u_h - r(v_g)||^2) and token-level forward KL for language
models (KL(p_teacher || p_student) per position, as in DistilBERT / MiniLLM's baseline).

Everything plugs into the shared loop: :class:`Distiller` gives ``Hooks(extra_losses=[...])``; the
student's own forward (inside the task loss) is captured by a forward hook, so it runs once per step.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError

__all__ = ["distill_loss", "soft_loss", "feature_loss", "token_kl", "Distiller", "hard_loss", "distill_classifier"]


def soft_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, T: float) -> torch.Tensor:
    """T^2 KL(softmax(z_t / T) || softmax(z_s / T)), mean over examples (Hinton et al. 2015 §2)."""
    log_q = F.log_softmax(student_logits / T, dim=-1)                    # (B, K)
    log_p = F.log_softmax(teacher_logits.detach() / T, dim=-1)           # (B, K)
    return T * T * F.kl_div(log_q, log_p, log_target=True, reduction="batchmean")


def distill_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor | None,
                 T: float = 2.0, alpha: float = 0.5) -> torch.Tensor:
    """alpha * T^2 KL(p_T^teacher || p_T^student) + (1 - alpha) * CE(student, labels) (Hinton et al. 2015)."""
    if T <= 0 or not 0 <= alpha <= 1:
        raise ConfigError(f"distill_loss: T={T} must be > 0 and alpha={alpha} in [0, 1]")
    if labels is None:
        if alpha != 1:
            raise ConfigError(f"distill_loss: labels=None needs alpha=1 (soft targets only); got alpha={alpha}")
        return soft_loss(student_logits, teacher_logits, T)
    hard = F.cross_entropy(student_logits, labels)
    return alpha * soft_loss(student_logits, teacher_logits, T) + (1 - alpha) * hard


def feature_loss(student_feat: torch.Tensor, teacher_feat: torch.Tensor,
                 regressor: nn.Module | None = None) -> torch.Tensor:
    """FitNets hint loss (Romero et al. 2015 eq. 3): mean ||r(student) - teacher||^2 (r maps widths)."""
    s = regressor(student_feat) if regressor is not None else student_feat
    if s.shape != teacher_feat.shape:
        raise ConfigError(f"feature_loss: student features {tuple(s.shape)} vs teacher {tuple(teacher_feat.shape)}; "
                          f"pass a regressor mapping the student's width to the teacher's")
    return F.mse_loss(s, teacher_feat.detach())


def token_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, T: float = 1.0,
             mask: torch.Tensor | None = None) -> torch.Tensor:
    """Token-level forward KL: mean over positions of T^2 KL(p_teacher(.|x_<t) || p_student(.|x_<t))."""
    log_q = F.log_softmax(student_logits.float() / T, dim=-1)            # (B, L, V)
    log_p = F.log_softmax(teacher_logits.detach().float() / T, dim=-1)   # (B, L, V)
    kl = (log_p.exp() * (log_p - log_q)).sum(-1)                         # (B, L)
    if mask is not None:
        return T * T * (kl * mask).sum() / mask.sum().clamp(min=1)
    return T * T * kl.mean()


def hard_loss(alpha: float, task_loss: Callable[[nn.Module, Any], Any]) -> Callable[[nn.Module, Any], Any]:
    """The task loss scaled by (1 - alpha): the hard half of :func:`distill_loss` for the Trainer."""
    def loss(model: nn.Module, batch: Any):
        out = task_loss(model, batch)
        return ((1 - alpha) * out[0], out[1]) if isinstance(out, tuple) else (1 - alpha) * out
    return loss


class Distiller:
    """The soft terms of distillation as a Trainer extra loss: alpha * (logit KD or token KL) + beta * hints.

    A forward hook on the student stashes its outputs (and hooked features) during the task loss's
    forward; the teacher runs once per batch under no_grad on ``inputs(batch)``."""

    def __init__(self, student: nn.Module, teacher: nn.Module, T: float = 2.0, alpha: float = 0.5,
                 inputs: Callable[[Any], Any] = lambda b: b[0], tokens: bool = False,
                 features: dict[str, str] | None = None, beta: float = 0.0,
                 regressors: dict[str, nn.Module] | None = None):
        self.teacher, self.T, self.alpha, self.beta = teacher.eval(), T, alpha, beta
        self.inputs, self.tokens, self.features = inputs, tokens, features or {}
        self.regressors = regressors or {}
        self.stash: dict[str, torch.Tensor] = {}
        self.teacher_stash: dict[str, torch.Tensor] = {}
        student.register_forward_hook(self._keep("logits", self.stash))
        for s_name, t_name in self.features.items():
            student.get_submodule(s_name).register_forward_hook(self._keep(s_name, self.stash))
            teacher.get_submodule(t_name).register_forward_hook(self._keep(t_name, self.teacher_stash))

    @staticmethod
    def _keep(key: str, store: dict[str, torch.Tensor]):
        def hook(_module, _args, out):
            store[key] = out
        return hook

    def hooks(self):
        from ..train import Hooks
        return Hooks(extra_losses=[self.extra_loss])

    def extra_loss(self, model: nn.Module, batch: Any) -> torch.Tensor:
        """alpha * soft term (+ beta * sum of hint losses), on the student outputs of this batch."""
        with torch.no_grad():
            t_logits = self.teacher(self.inputs(batch))
        s_logits = self.stash["logits"]
        soft = token_kl(s_logits, t_logits, self.T) if self.tokens else soft_loss(s_logits, t_logits, self.T)
        loss = self.alpha * soft
        for s_name, t_name in self.features.items():
            loss = loss + self.beta * feature_loss(self.stash[s_name], self.teacher_stash[t_name],
                                                   self.regressors.get(s_name))
        return loss


def distill_classifier(loaded: Any, width: int, steps: int = 600, T: float = 4.0, alpha: float = 0.9,
                       lr: float = 3e-3, seed: int = 0) -> nn.Module:
    """A classifier of the teacher's architecture at ``width``, trained on the teacher's data with KD."""
    from ..vision.models import build_model
    from ..vision.train import cross_entropy_loss
    from .prune import finetune_classifier
    if loaded.kind.name != "vision":
        raise ConfigError(f"distill_classifier builds a 'vision' student; the teacher is a {loaded.kind.name!r} model")
    torch.manual_seed(seed)
    student = build_model({**loaded.config, "width": width})
    x, y = loaded.dataset("train")
    d = Distiller(student, loaded.model, T=T, alpha=alpha)
    return finetune_classifier(student, x, y, steps=steps, lr=lr, hooks=d.hooks(), seed=seed,
                               loss_fn=hard_loss(alpha, cross_entropy_loss))
