"""Optimizer and LR-scheduler factories of the training loop: AdamW (Loshchilov & Hutter 2019) with
decoupled weight decay on matrices only, and the warmup + cosine / constant / WSD schedules."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .config import TrainConfig
from .schedules import lr_multiplier


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: decay for tensors with ndim >= 2 (weights), none for biases and norm gains."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW over :func:`param_groups` with the config's lr, betas and eps."""
    return torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr,
                             betas=(cfg.beta1, cfg.beta2), eps=cfg.eps)


def make_scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig) -> torch.optim.lr_scheduler.LambdaLR:
    """LambdaLR following ``cfg.schedule`` (see schedules.lr_multiplier)."""
    fn = lambda s: lr_multiplier(cfg.schedule, s, warmup=cfg.warmup_steps, total=cfg.steps,  # noqa: E731
                                 min_ratio=cfg.min_lr_ratio, decay_fraction=cfg.decay_fraction)
    return torch.optim.lr_scheduler.LambdaLR(opt, fn)
