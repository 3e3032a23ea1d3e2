"""digits: sklearn's 1,797 handwritten 8x8 digits (shipped with scikit-learn, no download),
as float images in [0, 1] with a fixed stratified train/test split and optional upscaling."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import DataError


def load_digits(split: str = "train", upscale: int = 1, test_fraction: float = 0.25,
                seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(images (N, 1, 8·upscale, 8·upscale) float32 in [0,1], labels (N,) int64)."""
    if split not in ("train", "test", "all"):
        raise DataError(f"split={split!r} is invalid: choose train, test or all")
    if upscale < 1:
        raise DataError(f"upscale={upscale} is invalid: must be >= 1")
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    x = torch.tensor(d.images / 16.0, dtype=torch.float32)[:, None]   # (N, 1, 8, 8)
    y = torch.tensor(d.target, dtype=torch.int64)
    if upscale > 1:
        x = F.interpolate(x, scale_factor=upscale, mode="bilinear", align_corners=False).clamp(0, 1)
    if split == "all":
        return x, y
    rng = np.random.default_rng(seed)
    test = np.zeros(len(y), dtype=bool)
    for c in range(10):                       # stratified: the same fraction of every class
        idx = np.flatnonzero(d.target == c)
        test[rng.choice(idx, size=int(round(test_fraction * len(idx))), replace=False)] = True
    mask = torch.from_numpy(test if split == "test" else ~test)
    return x[mask], y[mask]
