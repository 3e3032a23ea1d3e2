"""Input purification and how to attack it honestly.

- Feature squeezing: Xu, Evans & Qi 2018, "Feature Squeezing: Detecting Adversarial Examples in Deep
  Neural Networks": bit-depth reduction (§4.1) and median smoothing (§4.2).
- A :class:`Purifier` is any callable ``x -> x`` on images in the valid range that says whether its
  gradient is meaningful (``differentiable``) and whether it is random (``randomized``); a learned
  denoiser (e.g. DiffPure, Nie et al. 2022) plugs in through :func:`as_purifier`.
- :class:`Purified` is the defended classifier ``model(purifier(x))``. Attacking it through the
  purifier's own gradient is not an evaluation: rounding has zero gradient almost everywhere
  (gradient masking). ``bpda=True`` replaces a non-differentiable purifier's backward pass by the
  identity (BPDA, Athalye, Carlini & Wagner 2018, §4.1) while its forward stays exact; randomised
  purifiers are attacked with EOT (ibid. §4.3: average the gradient over draws; the attacks' ``eot``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError

__all__ = ["BitDepth", "Compose", "GaussianNoise", "MedianSmoothing", "Purified", "Purifier", "as_purifier",
           "parse_purifier"]


@runtime_checkable
class Purifier(Protocol):
    """``x (B, C, H, W) -> x (B, C, H, W)`` in the same range; says how it must be attacked."""
    differentiable: bool
    """its autograd gradient is informative (False: attack with BPDA)"""
    randomized: bool
    """two calls on the same input may differ (attack with EOT)"""

    def __call__(self, x: torch.Tensor) -> torch.Tensor: ...


@dataclass(frozen=True)
class BitDepth:
    """Reduce each value to ``bits`` bits: round(x·(2ᵇ−1))/(2ᵇ−1) on [clip_min, clip_max] (Xu et al. 2018, §4.1)."""
    bits: int = 1
    clip_min: float = 0.0
    clip_max: float = 1.0
    differentiable: bool = False
    randomized: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.bits <= 16:
            raise ConfigError(f"bit depth {self.bits} is invalid: choose 1..16 bits")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        levels = 2 ** self.bits - 1
        unit = (x - self.clip_min) / (self.clip_max - self.clip_min)                  # (B, C, H, W) in [0, 1]
        return torch.round(unit * levels) / levels * (self.clip_max - self.clip_min) + self.clip_min


@dataclass(frozen=True)
class MedianSmoothing:
    """Median of each ``kernel``×``kernel`` window per channel (Xu et al. 2018, §4.2); like scipy's
    ``median_filter`` (upper median for even windows, window [i−k//2, i+(k−1)//2], edges repeated —
    scipy's "reflect" for k ≤ 3)."""
    kernel: int = 2
    differentiable: bool = True      # the selected pixel receives the gradient
    randomized: bool = False

    def __post_init__(self) -> None:
        if not 2 <= self.kernel <= 7:
            raise ConfigError(f"median kernel {self.kernel} is invalid: choose 2..7 pixels")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        k, (b, c, h, w) = self.kernel, x.shape
        padded = F.pad(x, (k // 2, (k - 1) // 2, k // 2, (k - 1) // 2), mode="replicate")
        windows = F.unfold(padded.reshape(b * c, 1, *padded.shape[2:]), k)           # (B·C, k², H·W)
        median = windows.sort(dim=1).values[:, (k * k) // 2]                         # (B·C, H·W)
        return median.reshape(b, c, h, w)


@dataclass(frozen=True)
class GaussianNoise:
    """x + σ·N(0, I), clipped to the range: a randomised purifier (attack it with EOT)."""
    sigma: float = 0.1
    clip_min: float = 0.0
    clip_max: float = 1.0
    differentiable: bool = True
    randomized: bool = True

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return (x + self.sigma * torch.randn_like(x)).clamp(self.clip_min, self.clip_max)


class Compose:
    """Purifiers applied in order; differentiable only if all are, randomised if any is."""

    def __init__(self, *purifiers: Purifier):
        self.purifiers = purifiers
        self.differentiable = all(p.differentiable for p in purifiers)
        self.randomized = any(p.randomized for p in purifiers)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        for p in self.purifiers:
            x = p(x)
        return x

    def __repr__(self) -> str:
        return f"Compose{self.purifiers!r}"


@dataclass(frozen=True)
class _Wrapped:
    fn: Callable[[torch.Tensor], torch.Tensor]
    differentiable: bool = True
    randomized: bool = False

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


def as_purifier(fn: Callable[[torch.Tensor], torch.Tensor], *, differentiable: bool = True,
                randomized: bool = False) -> Purifier:
    """Any denoiser ``x -> x`` (an ``nn.Module``, a diffusion purification loop) as a :class:`Purifier`."""
    return _Wrapped(fn, differentiable, randomized)


class _IdentityBackward(torch.autograd.Function):
    """forward: ``purify(x)`` exactly; backward: the identity (BPDA with g(x) ≈ x, Athalye et al. 2018)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, purify: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        return purify(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad, None


class Purified(nn.Module):
    """The defended classifier ``model(purifier(x))``; ``bpda=True`` gives a non-differentiable purifier
    the identity as backward pass (Athalye et al. 2018, BPDA §4.1): forward exact, gradient straight through."""

    def __init__(self, model: nn.Module, purifier: Purifier, bpda: bool = False):
        super().__init__()
        self.model, self.purifier, self.bpda = model, purifier, bpda

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bpda and not self.purifier.differentiable:
            purified = _IdentityBackward.apply(x, self.purifier)        # value g(x), ∂/∂x = I
        else:
            purified = self.purifier(x)
        return self.model(purified)                                     # (B, K)


def parse_purifier(spec: str, clip_min: float = 0.0, clip_max: float = 1.0) -> Purifier | None:
    """``none``, ``bits:B``, ``median:K``, ``noise:SIGMA`` or several joined by ``+`` (e.g. ``bits:3+median:2``)."""
    if spec in ("", "none"):
        return None
    parts = []
    for item in spec.split("+"):
        name, _, arg = item.partition(":")
        try:
            if name == "bits":
                parts.append(BitDepth(int(arg or 1), clip_min, clip_max))
            elif name == "median":
                parts.append(MedianSmoothing(int(arg or 2)))
            elif name == "noise":
                parts.append(GaussianNoise(float(arg or 0.1), clip_min, clip_max))
            else:
                raise ValueError
        except ValueError:
            raise ConfigError(f"--purify {spec!r} is invalid: use none, bits:B, median:K, noise:SIGMA "
                              f"or several joined by '+'") from None
    return parts[0] if len(parts) == 1 else Compose(*parts)
