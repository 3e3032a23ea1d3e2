"""Figures of the robust area: clean vs adversarial images with predictions; robust accuracy vs ε."""
from __future__ import annotations

from typing import Any

import torch


def examples_figure(x: torch.Tensor, x_adv: torch.Tensor, pred: torch.Tensor, pred_adv: torch.Tensor,
                    y: torch.Tensor | None = None, title: str = "") -> Any:
    """Two rows: clean images with their predictions, adversarial ones with theirs (red when changed)."""
    import matplotlib.pyplot as plt

    n = len(x)
    fig, axes = plt.subplots(2, n, figsize=(1.1 * n, 2.6), squeeze=False)
    for i in range(n):
        for row, (img, p) in enumerate(((x[i], pred[i]), (x_adv[i], pred_adv[i]))):
            ax = axes[row][i]
            img = img.permute(1, 2, 0).squeeze(-1).numpy()                    # (H, W[, C])
            ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1)
            changed = row == 1 and int(p) != int(pred[i])
            label = f"{int(p)}" if y is None or row == 1 else f"{int(p)} (y={int(y[i])})"
            ax.set_title(label, fontsize=7, color="#c00" if changed else "#222")
            ax.axis("off")
    axes[0][0].text(-0.5, 0.5, "clean", transform=axes[0][0].transAxes, ha="right", va="center", fontsize=8)
    axes[1][0].text(-0.5, 0.5, "attacked", transform=axes[1][0].transAxes, ha="right", va="center", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def curves_figure(curves: dict[str, list[dict[str, float]]], column: str = "worst", title: str = "") -> Any:
    """Robust accuracy (``column`` of each table) against ε, one line per model/defence."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    for name, rows in curves.items():
        ax.plot([r["eps"] for r in rows], [100 * r[column] for r in rows], marker="o", label=name)
    ax.set_xlabel("ε (L∞, pixels in [0, 1])")
    ax.set_ylabel(f"robust accuracy (%), {column}")
    ax.set_ylim(-2, 102)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """Rows of numbers as a markdown table (fractions shown as percentages)."""
    cols = list(rows[0])
    fmt = lambda k, v: f"{v:g}" if k == "eps" else f"{100 * v:.1f}" if isinstance(v, float) else str(v)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(k, r[k]) for k in cols) + " |" for r in rows]
    return "\n".join(lines)
