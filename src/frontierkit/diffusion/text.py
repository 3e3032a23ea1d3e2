"""Text encoders τ_θ(y) of the latent text-to-image models (Rombach et al. 2022 sec. 3.3: the UNet's
cross-attention reads K/V projections of τ_θ(y)). The pipelines call ``encoder(prompts) -> (hidden (B, L, D),
pooled (B, P))``; two encoders fit:

- any kit model the registry tags "text-encoder" (the multimodal area's CLIP text tower, Radford et al. 2021),
  opened by folder with ``load_text_encoder(dir)`` and called through its ``encode_prompts`` — no import of
  another area;
- the fallback ``CaptionEncoder``: the shapes captions' fixed word vocabulary embedded one-hot (no trained
  weights), so the UNet's cross-attention learns the whole text pathway."""
from __future__ import annotations

import inspect

import torch

from ..data.shapes import COLORS, POSITIONS, SHAPES, SIZES
from ..errors import ConfigError, DataError

TEXT_ENCODER_TAG = "text-encoder"
"""the registry tag of a kit text encoder (a model with ``encode_prompts(list[str]) -> (hidden, pooled)``)"""

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


class RegistryTextEncoder:
    """A kit model tagged "text-encoder" (e.g. CLIP's text tower), frozen: prompts -> its ``encode_prompts``."""

    def __init__(self, path: str, hidden_layer: int | None = None):
        from ..models import open_model
        self.path, self.hidden_layer = str(path), hidden_layer
        """``hidden_layer``: None for the encoder's own output, else the hidden state SDXL reads (-2)"""
        self.model = open_model(path, tags=TEXT_ENCODER_TAG, what="the diffusion text encoder").model.eval()
        self.model.requires_grad_(False)
        if hidden_layer is not None and "hidden_layer" not in inspect.signature(self.model.encode_prompts).parameters:
            raise ConfigError(f"the text encoder {path} ({type(self.model).__name__}) gives only its last hidden "
                              f"states; hidden_layer={hidden_layer} needs a CLIP text encoder (kind clip-text)")

    @torch.no_grad()
    def __call__(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(hidden (B, L, D), pooled (B, P)) in float32."""
        kw = {} if self.hidden_layer is None else {"hidden_layer": self.hidden_layer}
        hidden, pooled = self.model.encode_prompts(list(prompts), **kw)
        return hidden.float(), pooled.float()


def load_text_encoder(path: str = ""):
    """The registry text encoder saved under ``path``, or the shapes ``CaptionEncoder`` when ``path`` is empty."""
    return RegistryTextEncoder(path) if path else CaptionEncoder()


def encode_all(encoder, prompts: list[str], batch_size: int = 256) -> torch.Tensor:
    """(N, L, D) hidden states of many prompts, in batches."""
    return torch.cat([encoder(prompts[i:i + batch_size])[0] for i in range(0, len(prompts), batch_size)])
