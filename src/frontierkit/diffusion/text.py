"""A small text encoder for the shapes captions: a fixed word vocabulary embedded one-hot (no trained
weights), so the UNet's cross-attention (Rombach et al. 2022 sec. 3.3, K/V projections of τ_θ(y)) learns
the whole text pathway. Any kit text encoder with the call ``encoder(prompts) -> (hidden, pooled)`` fits
the pipelines; this one keeps the latent model a single registry kind ("diffusion-unet")."""
from __future__ import annotations

import torch

from ..data.shapes import COLORS, POSITIONS, SHAPES, SIZES
from ..errors import DataError

SPECIALS = ("<pad>", "<bos>")


def shapes_vocabulary() -> tuple[str, ...]:
    """Every word of the shapes captions ("a large red circle at the top left")."""
    words = {"a", "at", "the", "in"} | set(SHAPES) | set(COLORS) | set(SIZES)
    words |= {w for p in POSITIONS for w in p.split()}
    return SPECIALS + tuple(sorted(words))


class CaptionEncoder:
    """Captions -> (hidden (B, L, D), pooled (B, D)): one-hot words plus a one-hot position channel block."""

    def __init__(self, vocab: tuple[str, ...] | None = None, max_len: int = 10, dim: int = 48):
        self.vocab = tuple(vocab or shapes_vocabulary())
        self.index = {w: i for i, w in enumerate(self.vocab)}
        self.max_len, self.dim = max_len, dim
        if len(self.vocab) + max_len > dim:
            raise DataError(f"text encoder dim={dim} is too small for {len(self.vocab)} words + {max_len} positions")

    def tokenize(self, prompts: list[str]) -> torch.Tensor:
        """(B, L) word ids: <bos> then the words, padded; unknown words raise DataError."""
        ids = torch.zeros(len(prompts), self.max_len, dtype=torch.long)
        for b, p in enumerate(prompts):
            words = ["<bos>"] + p.lower().split()
            unknown = [w for w in words if w not in self.index]
            if unknown:
                raise DataError(f"word {unknown[0]!r} is not in the caption vocabulary "
                                f"({', '.join(self.vocab[2:])})")
            for i, w in enumerate(words[:self.max_len]):
                ids[b, i] = self.index[w]
        return ids

    def __call__(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Embeddings: word one-hot in [0, V), position one-hot in [V, V + L), zeros after; pooled = mean."""
        ids = self.tokenize(list(prompts))                                         # (B, L)
        B, L = ids.shape
        h = torch.zeros(B, L, self.dim)
        h.scatter_(2, ids.unsqueeze(-1), 1.0)                                      # word one-hot
        pos = torch.arange(L) + len(self.vocab)
        h[:, torch.arange(L), pos] = 1.0                                           # position one-hot
        h[ids == 0] = 0.0                                                          # padding is silent
        return h, h.sum(1) / (ids != 0).sum(1, keepdim=True).clamp(min=1)          # (B, L, D), (B, D)
