"""shapes: a synthetic image dataset generated from a seed — one coloured shape per image at one of
nine positions, with a caption and question/answer pairs (for CLIP, LLaVA and diffusion later).

Format (fixed): ``Shapes.images`` (N, 3, S, S) float32 in [0, 1] on a dark background;
``labels`` dict of int64 tensors (shape, color, size, position); ``captions`` list[str]
("a large red circle at the top left"); ``qa`` list of [(question, answer), ...] per image.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import DataError

SHAPES = ("circle", "square", "triangle", "cross")
COLORS = {"red": (0.9, 0.15, 0.1), "green": (0.15, 0.8, 0.2), "blue": (0.15, 0.3, 0.95),
          "yellow": (0.95, 0.85, 0.1), "magenta": (0.85, 0.2, 0.85), "cyan": (0.1, 0.85, 0.85)}
SIZES = ("small", "large")
ROWS, COLS = ("top", "middle", "bottom"), ("left", "center", "right")
POSITIONS = tuple(f"{r} {c}" if (r, c) != ("middle", "center") else "center" for r in ROWS for c in COLS)


@dataclass
class Shapes:
    images: torch.Tensor                 # (N, 3, S, S)
    labels: dict[str, torch.Tensor]      # shape, color, size, position: (N,) int64
    captions: list[str]
    qa: list[list[tuple[str, str]]]

    def __len__(self) -> int:
        return self.images.shape[0]


def _mask(kind: str, cy: float, cx: float, r: float, size: int) -> torch.Tensor:
    """Boolean (S, S) mask of a shape centred at (cy, cx) with half-extent r (pixels)."""
    ys, xs = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    dy, dx = ys - cy, xs - cx
    if kind == "circle":
        return dy ** 2 + dx ** 2 <= r ** 2
    if kind == "square":
        return (dy.abs() <= r * 0.85) & (dx.abs() <= r * 0.85)
    if kind == "triangle":   # apex up: inside when below the two slanted edges and above the base
        return (dy <= r * 0.8) & (dy >= -r) & (dx.abs() <= (dy + r) * 0.6)
    if kind == "cross":
        w = r * 0.35
        return ((dy.abs() <= w) & (dx.abs() <= r)) | ((dx.abs() <= w) & (dy.abs() <= r))
    raise DataError(f"unknown shape {kind!r}; known: {SHAPES}")


def caption(shape: str, color: str, size: str, position: str) -> str:
    where = "in the center" if position == "center" else f"at the {position}"
    return f"a {size} {color} {shape} {where}"


def questions(shape: str, color: str, size: str, position: str) -> list[tuple[str, str]]:
    return [("what shape is in the image?", shape), ("what color is the shape?", color),
            ("where is the shape?", position), ("is the shape large?", "yes" if size == "large" else "no")]


def make_shapes(n: int, size: int = 32, seed: int = 0, noise: float = 0.03) -> Shapes:
    """``n`` images of ``size``×``size`` pixels, a pure function of ``seed``."""
    if n < 1 or size < 16:
        raise DataError(f"make_shapes needs n >= 1 and size >= 16, got n={n}, size={size}")
    g = torch.Generator().manual_seed(seed)
    pick = lambda k: torch.randint(0, k, (n,), generator=g)  # noqa: E731
    s_i, c_i, z_i, p_i = pick(len(SHAPES)), pick(len(COLORS)), pick(len(SIZES)), pick(len(POSITIONS))
    jitter = (torch.rand(n, 2, generator=g) - 0.5) * (size / 12)
    images = torch.full((n, 3, size, size), 0.08) + noise * torch.randn(n, 3, size, size, generator=g)
    colors = list(COLORS)
    caps, qas = [], []
    cell = size / 3
    for i in range(n):
        shape, color = SHAPES[s_i[i]], colors[c_i[i]]
        sz, pos = SIZES[z_i[i]], POSITIONS[p_i[i]]
        row, col = divmod(int(p_i[i]), 3)
        cy, cx = (row + 0.5) * cell + jitter[i, 0].item(), (col + 0.5) * cell + jitter[i, 1].item()
        r = cell * (0.45 if sz == "large" else 0.28)
        m = _mask(shape, cy, cx, r, size)
        rgb = torch.tensor(COLORS[color])[:, None]
        images[i][:, m] = rgb.expand(3, int(m.sum()))
        caps.append(caption(shape, color, sz, pos))
        qas.append(questions(shape, color, sz, pos))
    labels = {"shape": s_i, "color": c_i, "size": z_i, "position": p_i}
    return Shapes(images=images.clamp(0, 1), labels=labels, captions=caps, qa=qas)
