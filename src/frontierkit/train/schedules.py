"""Learning-rate schedules as multipliers of the peak LR: constant, warmup+cosine, warmup-stable-decay.

Cosine annealing: Loshchilov & Hutter 2017 (SGDR), eq. (5) without restarts, after a linear
warmup (Goyal et al. 2017). Warmup-stable-decay (WSD): Hu et al. 2024 (MiniCPM), linear decay
over the last ``decay_fraction`` of training.
"""
from __future__ import annotations

import math


def warmup_cosine(step: int, *, warmup: int, total: int, min_ratio: float) -> float:
    """Linear warmup to 1, then min_ratio + (1-min_ratio)·½(1+cos(π·progress))  (SGDR eq. 5)."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def warmup_stable_decay(step: int, *, warmup: int, total: int, min_ratio: float,
                        decay_fraction: float) -> float:
    """Linear warmup, flat at 1, then linear decay to min_ratio over the last decay_fraction."""
    if step < warmup:
        return (step + 1) / warmup
    decay_start = total - int(round(decay_fraction * total))
    if step < decay_start:
        return 1.0
    progress = min(1.0, (step - decay_start) / max(1, total - decay_start))
    return 1.0 - (1.0 - min_ratio) * progress


def constant(step: int, *, warmup: int, **_: object) -> float:
    """1 after an optional linear warmup."""
    return (step + 1) / warmup if step < warmup else 1.0


def lr_multiplier(name: str, step: int, *, warmup: int, total: int, min_ratio: float,
                  decay_fraction: float = 0.2) -> float:
    """Dispatch by schedule name ('cosine', 'constant', 'wsd')."""
    if name == "cosine":
        return warmup_cosine(step, warmup=warmup, total=total, min_ratio=min_ratio)
    if name == "wsd":
        return warmup_stable_decay(step, warmup=warmup, total=total, min_ratio=min_ratio,
                                   decay_fraction=decay_fraction)
    if name == "constant":
        return constant(step, warmup=warmup)
    raise ValueError(f"unknown schedule {name!r}; choose cosine, constant or wsd")
