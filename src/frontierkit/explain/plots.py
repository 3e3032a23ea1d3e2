"""Figures for explanations: heatmap overlays (Grad-CAM style, Selvaraju et al., 2017, fig. 1), the SHAP
image plot (red = pushes the class up, blue = down; Lundberg & Lee, 2017) and the SHAP summary
(beeswarm) plot. Each returns a matplotlib Figure; ``save_png`` writes it."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch


def _np(t: Any) -> np.ndarray:
    return t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)


def _image(img: Any) -> np.ndarray:
    """(C, H, W) or (H, W) -> (H, W) grey or (H, W, 3) RGB for imshow."""
    a = _np(img)
    if a.ndim == 3:
        a = a[0] if a.shape[0] == 1 else np.transpose(a, (1, 2, 0))
    return a


def _figure(rows: int, cols: int, size: float = 1.6):
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(rows, cols, figsize=(cols * size, rows * size), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    return fig, axes


def overlay_figure(images: Any, maps: Any, titles: Sequence[str] | None = None, *, alpha: float = 0.5,
                   cmap: str = "jet"):
    """Row 1: images; row 2: heatmaps (B, H, W) over them."""
    imgs, maps = _np(images), _np(maps)
    n = len(imgs)
    fig, axes = _figure(2, n)
    for i in range(n):
        im = _image(imgs[i])
        axes[0, i].imshow(im, cmap="gray" if im.ndim == 2 else None)
        axes[1, i].imshow(im, cmap="gray" if im.ndim == 2 else None)
        axes[1, i].imshow(maps[i], cmap=cmap, alpha=alpha, vmin=0, vmax=max(float(maps[i].max()), 1e-12))
        if titles is not None:
            axes[0, i].set_title(titles[i], fontsize=8)
    return fig


def methods_figure(images: Any, maps_by_method: dict[str, Any], titles: Sequence[str] | None = None, *,
                   alpha: float = 0.5):
    """One row per method (first row: the images), heatmaps overlaid; signed maps use |value|."""
    imgs = _np(images)
    n, names = len(imgs), list(maps_by_method)
    fig, axes = _figure(1 + len(names), n)
    for i in range(n):
        im = _image(imgs[i])
        axes[0, i].imshow(im, cmap="gray" if im.ndim == 2 else None)
        if titles is not None:
            axes[0, i].set_title(titles[i], fontsize=8)
        for r, name in enumerate(names, 1):
            m = np.abs(_np(maps_by_method[name])[i])
            m = m.sum(0) if m.ndim == 3 else m
            axes[r, i].imshow(im, cmap="gray" if im.ndim == 2 else None)
            axes[r, i].imshow(m, cmap="jet", alpha=alpha, vmin=0, vmax=max(float(m.max()), 1e-12))
            if i == 0:
                axes[r, i].text(-0.5, 0.5, name, transform=axes[r, i].transAxes, ha="right", va="center",
                                fontsize=8)
    return fig


def shap_image_figure(shap_values: Any, images: Any, class_names: Sequence[str] | None = None):
    """shap.image_plot-style grid: per input, the image then one signed map per class (red +, blue -).

    ``shap_values``: (n, C, H, W, K) for K classes or (n, C, H, W) for one; channels are summed."""
    sv, imgs = _np(shap_values), _np(images)
    if sv.ndim == imgs.ndim:
        sv = sv[..., None]
    maps = sv.sum(1) if sv.ndim == 5 else sv                       # (n, H, W, K)
    n, K = maps.shape[0], maps.shape[-1]
    lim = float(np.abs(maps).max()) or 1.0
    fig, axes = _figure(n, K + 1)
    for i in range(n):
        im = _image(imgs[i])
        axes[i, 0].imshow(im, cmap="gray" if im.ndim == 2 else None)
        for k in range(K):
            grey = im if im.ndim == 2 else im.mean(-1)
            axes[i, k + 1].imshow(grey, cmap="gray", alpha=0.25)
            axes[i, k + 1].imshow(maps[i, ..., k], cmap="bwr", vmin=-lim, vmax=lim, alpha=0.85)
            if i == 0:
                axes[i, k + 1].set_title(class_names[k] if class_names else str(k), fontsize=8)
    return fig


def summary_figure(shap_values: Any, features: Any, feature_names: Sequence[str] | None = None, *,
                   max_display: int = 20, seed: int = 0):
    """Beeswarm summary: features sorted by mean |SHAP|, one dot per sample at its SHAP value,
    coloured by the feature's value (low blue -> high red), jittered vertically."""
    import matplotlib.pyplot as plt
    sv, X = _np(shap_values).reshape(len(shap_values), -1), _np(features).reshape(len(features), -1)
    M = sv.shape[1]
    names = list(feature_names) if feature_names is not None else [f"x{i}" for i in range(M)]
    order = np.argsort(np.abs(sv).mean(0))[::-1][:max_display][::-1]   # most important on top
    rng = np.random.default_rng(seed)
    fig, ax = plt.subplots(figsize=(6, 0.35 * len(order) + 1.2))
    for row, j in enumerate(order):
        v = X[:, j]
        lo, hi = np.nanpercentile(v, 5), np.nanpercentile(v, 95)
        c = np.clip((v - lo) / (hi - lo if hi > lo else 1.0), 0, 1)
        ax.scatter(sv[:, j], row + rng.uniform(-0.3, 0.3, size=len(v)), c=c, cmap="coolwarm", s=10,
                   vmin=0, vmax=1, linewidths=0)
    ax.axvline(0, color="#888", lw=0.8)
    ax.set_yticks(range(len(order)), [names[j] for j in order])
    ax.set_xlabel("SHAP value (impact on model output)")
    sm = plt.cm.ScalarMappable(cmap="coolwarm")
    cb = fig.colorbar(sm, ax=ax, ticks=[0, 1], aspect=40)
    cb.ax.set_yticklabels(["low", "high"])
    cb.set_label("feature value")
    fig.tight_layout()
    return fig


def save_png(fig: Any, path: str | Path, dpi: int = 110) -> Path:
    """Write ``fig`` as a PNG and close it."""
    import matplotlib.pyplot as plt
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return path
