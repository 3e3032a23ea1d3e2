"""Training data for the diffusion models: digits (pixel DDPM, Ho et al. 2020) and shapes with captions,
foreground masks and outlines (ControlNet's "edges / masks" conditions; the Fill50K task of Zhang et al. 2023 "ControlNet" in miniature: a
shape's outline → the filled, coloured shape the caption describes)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..data.digits import load_digits
from ..data.shapes import make_shapes


def digits_data(split: str, upscale: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """(images (N, 1, 8u, 8u) in [0, 1], labels (N,)) of the kit's digits split."""
    return load_digits(split, upscale=upscale)


def foreground_mask(images: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """(N, S, S) bool: a pixel belongs to the shape when its brightest channel exceeds ``threshold``
    (shapes' background is 0.08 ± noise, every palette colour has a channel ≥ 0.85)."""
    return images.max(dim=1).values > threshold


def outline(mask: torch.Tensor) -> torch.Tensor:
    """(N, S, S) bool one-pixel boundary: mask minus its 3×3 erosion."""
    m = mask.float().unsqueeze(1)                                            # (N, 1, S, S)
    eroded = -F.max_pool2d(-m, 3, stride=1, padding=1)                       # (N, 1, S, S)
    return (m - eroded).squeeze(1) > 0


@dataclass
class ShapesSplit:
    """One split of the shapes data with everything the diffusion models and metrics use."""
    images: torch.Tensor                 # (N, 3, S, S) in [0, 1]
    captions: list[str]
    labels: dict[str, torch.Tensor]      # shape, color, size, position: (N,)
    masks: torch.Tensor                  # (N, S, S) bool foreground
    outlines: torch.Tensor               # (N, 3, S, S) float {0, 1}: the ControlNet "edges" condition

    def __len__(self) -> int:
        return self.images.shape[0]

    def control(self, kind: str) -> torch.Tensor:
        """(N, 3, S, S) float {0, 1} ControlNet condition: the shape's outline (edges, Fill50K) or its filled mask."""
        if kind == "outline":
            return self.outlines
        return self.masks.float().unsqueeze(1).expand(-1, 3, -1, -1).contiguous()


def shapes_data(split: str, n: int = 2000, size: int = 32, seed: int = 0) -> ShapesSplit:
    """Shapes from ``seed``; the first quarter is the held-out split ("test"), the rest "train"."""
    s = make_shapes(n, size=size, seed=seed)
    n_test = n // 4
    sl = slice(0, n_test) if split == "test" else slice(n_test, n)
    images = s.images[sl]
    masks = foreground_mask(images)
    return ShapesSplit(images=images, captions=s.captions[sl], labels={k: v[sl] for k, v in s.labels.items()},
                       masks=masks, outlines=outline(masks).float().unsqueeze(1).expand(-1, 3, -1, -1).contiguous())
