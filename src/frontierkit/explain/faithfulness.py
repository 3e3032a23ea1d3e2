"""Faithfulness of attribution maps: the deletion and insertion metrics of RISE (Petsiuk, Das & Saenko,
2018, "RISE: Randomized Input Sampling for Explanation of Black-box Models", sec. 4.1).

Deletion removes pixels in order of decreasing attribution (replacing them by a baseline) and tracks
the probability of the explained class; a faithful map makes it fall fast (low AUC). Insertion starts
from the baseline and restores the most important pixels first (high AUC is good).
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

Attributor = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def pixel_order(attributions: torch.Tensor, image_shape: torch.Size) -> torch.Tensor:
    """(B, H*W) pixel indices by decreasing attribution (channels summed; maps resized if needed)."""
    a = attributions.detach()
    if a.ndim == 4:
        a = a.sum(1)                                                 # (B, H, W)
    if a.shape[-2:] != image_shape[-2:]:
        a = nn.functional.interpolate(a[:, None], size=tuple(image_shape[-2:]), mode="bilinear")[:, 0]
    return torch.sort(a.flatten(1), dim=1, descending=True, stable=True).indices


@torch.no_grad()
def deletion_insertion_curves(model: nn.Module, x: torch.Tensor, target: torch.Tensor, attributions: torch.Tensor,
                              *, steps: int | None = None, baseline: float = 0.0
                              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Probability of ``target`` after removing / inserting the top-k pixels, k = 0..P: two (B, steps+1)."""
    B, C, H, W = x.shape
    P = H * W
    steps = steps or P
    order = pixel_order(attributions, x.shape)                       # (B, P)
    ks = torch.linspace(0, P, steps + 1).round().long()              # pixels changed at each step
    rank = torch.empty_like(order).scatter_(1, order, torch.arange(P).expand(B, P))   # rank of each pixel
    top = (rank[:, None, :] < ks[None, :, None]).view(B, steps + 1, 1, H, W)           # (B, S, 1, H, W)
    base = torch.full_like(x, baseline)
    deleted = torch.where(top, base[:, None], x[:, None])            # (B, S, C, H, W)
    inserted = torch.where(top, x[:, None], base[:, None])
    curves = []
    for imgs in (deleted, inserted):
        p = model(imgs.flatten(0, 1)).softmax(-1).view(B, steps + 1, -1)                # (B, S, K)
        curves.append(p.gather(2, target.view(B, 1, 1).expand(B, steps + 1, 1))[..., 0])
    return curves[0], curves[1]


def auc(curve: torch.Tensor) -> torch.Tensor:
    """Trapezoid area under (B, S) curves sampled evenly on [0, 1]: (B,)."""
    s = curve.shape[1] - 1
    return (curve[:, 1:] + curve[:, :-1]).sum(1) / (2 * s)


def faithfulness_table(model: nn.Module, x: torch.Tensor, target: torch.Tensor,
                       methods: dict[str, Attributor], *, steps: int | None = None,
                       baseline: float = 0.0) -> list[dict[str, float | str]]:
    """One row per method: mean deletion AUC (lower is better) and insertion AUC (higher is better)."""
    rows = []
    for name, explain in methods.items():
        a = explain(x, target)
        d, i = deletion_insertion_curves(model, x, target, a, steps=steps, baseline=baseline)
        rows.append({"method": name, "deletion_auc": float(auc(d).mean()), "insertion_auc": float(auc(i).mean()),
                     "n": int(x.shape[0])})
    return rows


def random_attribution(seed: int = 0) -> Attributor:
    """The random baseline: uniform noise maps (seeded)."""
    def explain(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        return torch.rand(x.shape[0], *x.shape[2:], generator=g)
    return explain


def standard_methods(model: nn.Module, background: torch.Tensor, *, seed: int = 0) -> dict[str, Attributor]:
    """Grad-CAM, Grad-CAM++, DeepSHAP, Integrated Gradients and random, as (x, target) -> map."""
    from .gradcam import GradCAM, GradCAMPlusPlus
    from .ig import integrated_gradients
    from .shap import DeepExplainer

    def deep(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return DeepExplainer(model, background).shap_values(x, t)

    return {"grad-cam": lambda x, t: GradCAM(model).generate(x, t),
            "grad-cam++": lambda x, t: GradCAMPlusPlus(model).generate(x, t),
            "deep-shap": deep,
            "integrated-gradients": lambda x, t: integrated_gradients(model, x, t, steps=32).attributions,
            "random": random_attribution(seed)}
