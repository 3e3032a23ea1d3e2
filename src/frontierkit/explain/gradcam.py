"""Class activation maps from gradients: Grad-CAM (Selvaraju et al., 2017, eq. 1-2), Grad-CAM++
(Chattopadhay et al., 2018, eq. 19 with the exponential-score closed form) and HiResCAM (Draelos &
Carin, 2020, eq. 4).

``GradCAM(model, target_layer).generate(x, target_class)`` works on a batch, on any layer whose
output is a feature map (B, C, h, w) or a token sequence (B, T, D). Tokens are reshaped to a grid:
automatically for models that declare ``grid_size`` and ``num_prefix_tokens`` (our TinyViT), or by
the ``reshape`` callable you pass. The hook on the layer is removed even when the forward pass
raises, and the model's train/eval mode is never changed: call ``model.eval()`` first, as for
any inference.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ConfigError

Reshape = Callable[[torch.Tensor], torch.Tensor]


def class_targets(logits: torch.Tensor, target: int | torch.Tensor | list[int] | None) -> torch.Tensor:
    """(B,) class indices: the argmax when ``target`` is None, a broadcast int, or the given per-row ids."""
    B, K = logits.shape
    if target is None:
        return logits.argmax(-1)
    t = torch.as_tensor(target, dtype=torch.long, device=logits.device)
    t = t.expand(B) if t.ndim == 0 else t
    if t.shape != (B,) or (t < 0).any() or (t >= K).any():
        raise ConfigError(f"target_class={target!r} is invalid: give an int in [0, {K}) or {B} of them")
    return t


def tokens_to_grid(tokens: torch.Tensor, grid_size: int, num_prefix_tokens: int = 1) -> torch.Tensor:
    """(B, prefix + g*g, D) tokens -> (B, D, g, g) feature map, dropping [CLS]-like prefix tokens."""
    B, T, D = tokens.shape
    if T != num_prefix_tokens + grid_size ** 2:
        raise ConfigError(f"layer output has {T} tokens, expected {num_prefix_tokens} + {grid_size}^2; "
                          f"pass reshape= to GradCAM for this layer")
    grid = tokens[:, num_prefix_tokens:]                              # (B, g*g, D)
    return grid.transpose(1, 2).reshape(B, D, grid_size, grid_size)   # (B, D, g, g)


class GradCAM:
    """Grad-CAM: ReLU(sum_k alpha_k A^k) with alpha_k = mean_ij dy^c/dA^k_ij (Selvaraju et al., eq. 1-2)."""

    def __init__(self, model: nn.Module, target_layer: nn.Module | None = None, *,
                 reshape: Reshape | None = None):
        if target_layer is None:
            target_layer = getattr(model, "cam_layer", None)
            if target_layer is None:
                raise ConfigError("GradCAM needs target_layer= (this model has no default cam_layer)")
        self.model, self.target_layer, self.reshape = model, target_layer, reshape

    # -- pieces -------------------------------------------------------------------------------
    def to_grid(self, a: torch.Tensor) -> torch.Tensor:
        """Layer output -> (B, C, h, w): 4-D as is, tokens via ``reshape`` or the model's grid."""
        if self.reshape is not None:
            return self.reshape(a)
        if a.ndim == 4:
            return a
        if a.ndim == 3 and hasattr(self.model, "grid_size"):
            return tokens_to_grid(a, self.model.grid_size, getattr(self.model, "num_prefix_tokens", 0))
        raise ConfigError(f"target layer output has shape {tuple(a.shape)}; pass reshape= mapping it to "
                          f"(B, C, h, w) (e.g. tokens_to_grid for ViT tokens)")

    def activations_and_gradients(self, x: torch.Tensor, target_class=None
                                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(A (B, C, h, w), dy^c/dA (B, C, h, w), logits (B, K)) from one forward and one backward."""
        store: dict[str, torch.Tensor] = {}

        def hook(_module: nn.Module, _inp, out):
            store["a"] = out[0] if isinstance(out, (tuple, list)) else out

        handle = self.target_layer.register_forward_hook(hook)
        try:
            with torch.enable_grad():
                x = x.detach().requires_grad_(True)     # the graph exists even for frozen weights
                logits = self.model(x)                  # (B, K)
                if "a" not in store:
                    raise ConfigError("target_layer was not called in the model's forward pass")
                t = class_targets(logits, target_class)
                score = logits.gather(1, t[:, None]).sum()      # rows are independent: one backward
                grad = torch.autograd.grad(score, store["a"])[0]
        finally:
            handle.remove()
        a = self.to_grid(store["a"].detach())           # (B, C, h, w)
        g = self.to_grid(grad.detach())                 # (B, C, h, w)
        return a, g, logits.detach()

    def combine(self, a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """Grad-CAM eq. 1-2: channel weights = spatially averaged gradients; (B, h, w)."""
        alpha = g.mean(dim=(2, 3), keepdim=True)        # (B, C, 1, 1)
        return F.relu((alpha * a).sum(1))               # (B, h, w)

    # -- public -------------------------------------------------------------------------------
    def generate(self, x: torch.Tensor, target_class: int | torch.Tensor | list[int] | None = None, *,
                 upsample: str | None = "bilinear", normalize: bool = True) -> torch.Tensor:
        """Heatmaps (B, H, W) at input resolution (``upsample=None``: layer resolution), in [0, 1] if ``normalize``."""
        a, g, _ = self.activations_and_gradients(x, target_class)
        cam = self.combine(a, g)[:, None]               # (B, 1, h, w)
        if upsample is not None:
            cam = F.interpolate(cam, size=tuple(x.shape[-2:]), mode=upsample)   # (B, 1, H, W)
        cam = cam[:, 0]
        return normalize_maps(cam) if normalize else cam

    __call__ = generate


class GradCAMPlusPlus(GradCAM):
    """Grad-CAM++ (Chattopadhay et al., 2018, eq. 19): alpha = g^2 / (2 g^2 + sum_ab A_ab g^3), w = sum alpha ReLU(g)."""

    def combine(self, a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        g2, g3 = g ** 2, g ** 3
        denom = 2 * g2 + a.sum(dim=(2, 3), keepdim=True) * g3           # (B, C, h, w)
        alpha = torch.where(g != 0, g2 / torch.where(denom != 0, denom, torch.ones_like(denom)),
                            torch.zeros_like(g))
        w = (alpha * F.relu(g)).sum(dim=(2, 3), keepdim=True)           # (B, C, 1, 1)
        return F.relu((w * a).sum(1))                                   # (B, h, w)


class HiResCAM(GradCAM):
    """HiResCAM (Draelos & Carin, 2020, eq. 4): ReLU(sum_k g^k * A^k), element-wise, no averaging."""

    def combine(self, a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return F.relu((g * a).sum(1))                                   # (B, h, w)


CAMS: dict[str, type[GradCAM]] = {"gradcam": GradCAM, "gradcam++": GradCAMPlusPlus, "hirescam": HiResCAM}


def normalize_maps(maps: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Per-sample min-max scaling of (B, ...) maps to [0, 1] (all-zero maps stay zero)."""
    flat = maps.flatten(1)
    lo, hi = flat.min(1, keepdim=True).values, flat.max(1, keepdim=True).values
    return ((flat - lo) / (hi - lo).clamp_min(eps)).view_as(maps)
