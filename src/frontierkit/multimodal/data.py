"""The shapes data for CLIP and LLaVA: a word-level vocabulary covering every caption, question, answer
and prompt the generator can write; a held-out split of colour x shape x position combinations never
seen in training (compositional generalisation); prompt-ensembled class texts for zero-shot (Radford et
al. 2021 §3.1.4)."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch

from ..data.shapes import COLORS, POSITIONS, SHAPES, SIZES, Shapes, caption, make_shapes, questions
from ..errors import DataError

SPECIALS = ("<pad>", "<bos>", "<sep>", "<image>")
"""ids 0-3; the end-of-text token is the last id of the vocabulary (CLIP pools there: first-EOS rule)"""
PAD, BOS, SEP, IMAGE = range(4)
TEMPLATES = ("a photo of a {color} {shape}", "a {color} {shape}")
"""extra caption templates mixed into CLIP training, so OpenAI-style prompts are in-distribution"""


@lru_cache(maxsize=1)
def vocabulary() -> tuple[str, ...]:
    """Every word of every caption / question / answer / template the shapes generator can produce."""
    words: set[str] = set()
    for s in SHAPES:
        for c in COLORS:
            for z in SIZES:
                for p in POSITIONS:
                    words.update(caption(s, c, z, p).split())
                    for q, a in questions(s, c, z, p):
                        words.update(q.split() + a.split())
            for t in TEMPLATES:
                words.update(t.format(color=c, shape=s).split())
    return (*SPECIALS, *sorted(words), "<eos>")


class WordTokenizer:
    """Whitespace words -> ids over :func:`vocabulary`; <eos> is the last id."""

    def __init__(self) -> None:
        self.words = vocabulary()
        self.ids = {w: i for i, w in enumerate(self.words)}
        self.eos = len(self.words) - 1

    @property
    def vocab_size(self) -> int:
        return len(self.words)

    def encode(self, text: str) -> list[int]:
        try:
            return [self.ids[w] for w in text.split()]
        except KeyError as e:
            raise DataError(f"word {e.args[0]!r} is not in the shapes vocabulary ({len(self.words)} words, e.g. "
                            f"{', '.join(self.words[4:10])}); use words from the shapes captions") from None

    def decode(self, ids: list[int]) -> str:
        return " ".join(self.words[i] for i in ids if i not in (PAD, BOS, SEP, IMAGE, self.eos))

    def batch(self, texts: list[str], length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Right-padded (ids (B, length), valid (B, length)): text + <eos>, pad 0."""
        ids = torch.full((len(texts), length), PAD, dtype=torch.long)
        for i, t in enumerate(texts):
            row = self.encode(t)[:length - 1] + [self.eos]
            ids[i, :len(row)] = torch.tensor(row)
        return ids, ids != PAD


def combo(labels: dict[str, torch.Tensor]) -> torch.Tensor:
    """(color, shape, position) -> one combination id (N,)."""
    return (labels["color"] * len(SHAPES) + labels["shape"]) * len(POSITIONS) + labels["position"]


def held_out_combos(fraction: float = 0.2, seed: int = 0) -> torch.Tensor:
    """A fixed random subset of the colour x shape x position combinations, never seen in training."""
    n = len(COLORS) * len(SHAPES) * len(POSITIONS)
    g = torch.Generator().manual_seed(10_000 + seed)
    return torch.randperm(n, generator=g)[:round(fraction * n)]


@dataclass
class Split:
    """Images, their labels, captions and QA pairs of one split."""
    images: torch.Tensor                   # (N, 3, S, S)
    labels: dict[str, torch.Tensor]
    captions: list[str]
    qa: list[list[tuple[str, str]]]

    def __len__(self) -> int:
        return self.images.shape[0]


def _take(s: Shapes, keep: torch.Tensor) -> Split:
    idx = keep.nonzero().flatten().tolist()
    return Split(images=s.images[idx], labels={k: v[idx] for k, v in s.labels.items()},
                 captions=[s.captions[i] for i in idx], qa=[s.qa[i] for i in idx])


@lru_cache(maxsize=4)
def shapes_splits(n: int, size: int = 32, seed: int = 0, held_out: float = 0.2) -> tuple[Split, Split]:
    """(train, held_out): one generated set split by whether its combination is held out."""
    s = make_shapes(n, size=size, seed=seed)
    unseen = torch.isin(combo(s.labels), held_out_combos(held_out, seed))
    return _take(s, ~unseen), _take(s, unseen)


def split_of(name: str, n: int, size: int = 32, seed: int = 0, held_out: float = 0.2) -> Split:
    if name not in ("train", "test", "held_out"):
        raise DataError(f"split {name!r} is unknown; choose train or held_out (test is held_out)")
    train, test = shapes_splits(n, size, seed, held_out)
    return train if name == "train" else test


def class_names() -> list[tuple[str, str]]:
    """The 24 zero-shot classes: (color, shape)."""
    return [(c, s) for c in COLORS for s in SHAPES]


def class_label(labels: dict[str, torch.Tensor]) -> torch.Tensor:
    """(color, shape) class id (N,) in :func:`class_names` order."""
    return labels["color"] * len(SHAPES) + labels["shape"]


def class_prompts(color: str, shape: str, template: str = "ensemble") -> list[str]:
    """Prompts of one class: one template, or the ensemble of every size x position caption (CLIP §3.1.4)."""
    if template != "ensemble":
        return [template.format(color=color, shape=shape)]
    return [caption(shape, color, z, p) for z in SIZES for p in POSITIONS]
