"""CLIP: contrastive language-image pre-training (Radford et al. 2021, "Learning Transferable Visual
Models From Natural Language Supervision").

Two towers built from the kit's pre-norm ``EncoderBlock``: a ViT over image patches (§2.4: a [CLS]
token, learned positions, an extra LayerNorm before the transformer and one on the pooled output) and a
causal text transformer pooled at the end-of-text token; linear projections into a joint space; cosine
similarities scaled by a learned temperature (§2.5: ``logit_scale`` initialised at ln(1/0.07), clamped at
ln 100 as open_clip does); the symmetric InfoNCE loss of Figure 3.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

from ..config import require
from ..nn import EncoderBlock, LayerNorm

LOGIT_SCALE_INIT = math.log(1 / 0.07)
"""ln(1/0.07) = 2.6593: CLIP's initial temperature (Radford et al. 2021 §2.5)"""
LOGIT_SCALE_MAX = math.log(100.0)
"""ln 100: the clamp that keeps the temperature from collapsing small-data runs (open_clip)"""
ACTIVATIONS = ("quick_gelu", "gelu")


@dataclass(frozen=True, kw_only=True)
class TowerConfig:
    """What both towers share: a stack of pre-norm encoder blocks."""
    width: int = 64
    """transformer width"""
    n_layers: int = 2
    """encoder blocks"""
    n_heads: int = 4
    """attention heads"""
    mlp_hidden: int = 256
    """MLP hidden width"""
    activation: Literal["quick_gelu", "gelu"] = "quick_gelu"
    """MLP activation: quick_gelu (OpenAI CLIP) or gelu"""
    eps: float = 1e-5
    """LayerNorm epsilon"""

    def __post_init__(self) -> None:
        section = "vision" if isinstance(self, CLIPVisionConfig) else "text"
        require(self.width % self.n_heads == 0, f"{section}.n_heads", self.n_heads,
                f"must divide {section}.width={self.width}")

    def blocks(self, causal: bool) -> nn.ModuleList:
        return nn.ModuleList(EncoderBlock(self.width, self.n_heads, mlp_hidden=self.mlp_hidden,
                                          activation=self.activation, causal=causal, eps=self.eps)
                             for _ in range(self.n_layers))


@dataclass(frozen=True, kw_only=True)
class CLIPVisionConfig(TowerConfig):
    image_size: int = 32
    """input side in pixels"""
    patch_size: int = 8
    """patch side in pixels (image_size must be a multiple)"""
    in_channels: int = 3
    """image channels"""
    pool: Literal["cls", "mean"] = "cls"
    """image feature: the [CLS] token (CLIP) or the mean of the patch tokens"""

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.image_size % self.patch_size == 0, "vision.patch_size", self.patch_size,
                f"must divide vision.image_size={self.image_size}")

    @property
    def n_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2


@dataclass(frozen=True, kw_only=True)
class CLIPTextConfig(TowerConfig):
    vocab_size: int = 64
    """token vocabulary"""
    context_length: int = 16
    """maximum text length (learned positions)"""
    eos_token_id: int = 2
    """end-of-text id; 2 selects transformers' legacy pooling (argmax of the ids), any other id the first EOS"""

    def __post_init__(self) -> None:
        super().__post_init__()
        require(0 <= self.eos_token_id < self.vocab_size, "text.eos_token_id", self.eos_token_id,
                f"must be a token id below text.vocab_size={self.vocab_size}")


@dataclass(frozen=True, kw_only=True)
class CLIPConfig:
    vision: CLIPVisionConfig = field(default_factory=CLIPVisionConfig)
    """image tower"""
    text: CLIPTextConfig = field(default_factory=CLIPTextConfig)
    """text tower"""
    embed_dim: int = 32
    """joint embedding width (both projections)"""
    logit_scale_init: float = LOGIT_SCALE_INIT
    """initial ln(1 / temperature)"""
    init_std: float = 0.02
    """N(0, std) initialisation of linear/embedding weights"""
    tokenizer: Literal["auto", "shapes", "none"] = "auto"
    """the text tokenizer encode_prompts uses: shapes (the WordTokenizer), none (weights only, e.g. a Hugging
    Face folder without one), auto = shapes when text.vocab_size and text.eos_token_id are the shapes vocabulary's"""

    def __post_init__(self) -> None:
        require(self.embed_dim > 0, "model.embed_dim", self.embed_dim, "must be > 0")


class VisionTower(nn.Module):
    """ViT image encoder as CLIP uses it (Radford et al. §2.4; Dosovitskiy et al. 2021 eqs. 1-4)."""

    def __init__(self, cfg: CLIPVisionConfig):
        super().__init__()
        self.cfg = cfg
        self.patch_embed = nn.Conv2d(cfg.in_channels, cfg.width, cfg.patch_size, cfg.patch_size, bias=False)
        self.cls = nn.Parameter(torch.zeros(cfg.width))
        self.pos = nn.Parameter(torch.zeros(cfg.n_patches + 1, cfg.width))
        self.pre_norm = LayerNorm(cfg.width, cfg.eps)
        self.blocks = cfg.blocks(causal=False)
        self.post_norm = LayerNorm(cfg.width, cfg.eps)

    def hidden_states(self, pixels: torch.Tensor) -> list[torch.Tensor]:
        """[pre-LN embeddings, output of block 1, ..., block L], each (B, 1 + P, W) — transformers' tuple."""
        x = self.patch_embed(pixels).flatten(2).transpose(1, 2)                # (B, P, W)
        cls = self.cls.expand(x.shape[0], 1, -1)                               # (B, 1, W)
        x = self.pre_norm(torch.cat([cls, x], 1) + self.pos)                   # (B, 1+P, W)
        out = [x]
        for blk in self.blocks:
            out.append(blk(out[-1]))                                           # (B, 1+P, W)
        return out

    def pool(self, last: torch.Tensor) -> torch.Tensor:
        """The image feature: LN of [CLS] (CLIP) or of the mean patch token."""
        feat = last[:, 0] if self.cfg.pool == "cls" else last[:, 1:].mean(1)   # (B, W)
        return self.post_norm(feat)                                            # (B, W)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """pixels (B, C, S, S) -> pooled features (B, W)."""
        return self.pool(self.hidden_states(pixels)[-1])


def eos_positions(ids: torch.Tensor, eos_token_id: int) -> torch.Tensor:
    """Where the text feature is read (transformers PR #24777): the first EOS, or for the legacy config
    ``eos_token_id == 2`` the highest id in the row (OpenAI's EOT is the last vocabulary entry)."""
    if eos_token_id == 2:
        return ids.to(torch.int).argmax(-1)                                    # (B,)
    return (ids == eos_token_id).to(torch.int).argmax(-1)                      # (B,)


class TextTower(nn.Module):
    """Causal text transformer pooled at the end-of-text token (Radford et al. §2.4)."""

    def __init__(self, cfg: CLIPTextConfig):
        super().__init__()
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.width)
        self.pos = nn.Parameter(torch.zeros(cfg.context_length, cfg.width))
        self.blocks = cfg.blocks(causal=True)
        self.final_norm = LayerNorm(cfg.width, cfg.eps)

    def hidden_states(self, ids: torch.Tensor, valid: torch.Tensor | None = None) -> list[torch.Tensor]:
        """[embeddings, block 1, ..., block L] (B, T, W); ``valid`` (B, T) False on padding."""
        t = ids.shape[1]
        if t > self.cfg.context_length:
            raise ValueError(f"text of {t} tokens exceeds text.context_length={self.cfg.context_length}")
        out = [self.tok_emb(ids) + self.pos[:t]]                               # (B, T, W)
        for blk in self.blocks:
            out.append(blk(out[-1], key_valid=valid))                          # (B, T, W)
        return out

    def final_states(self, ids: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        """ids (B, T) -> the last block's states after the final LayerNorm (B, T, W)."""
        return self.final_norm(self.hidden_states(ids, valid)[-1])             # (B, T, W)

    def pool(self, last: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """(B, T, W) -> the state at each row's end-of-text token (B, W)."""
        return last[torch.arange(ids.shape[0], device=ids.device), eos_positions(ids, self.cfg.eos_token_id)]

    def forward(self, ids: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        """ids (B, T) -> the final-LN state at each row's end-of-text token (B, W)."""
        return self.pool(self.final_states(ids, valid), ids)                   # (B, W)


class CLIP(nn.Module):
    """Images (N, C, S, S) and texts (M, T) -> ``logits_per_image`` (N, M) = exp(t) · cos(I_n, T_m)."""

    def __init__(self, cfg: CLIPConfig):
        super().__init__()
        self.cfg = cfg
        self.visual = VisionTower(cfg.vision)
        self.text = TextTower(cfg.text)
        self.visual_proj = nn.Linear(cfg.vision.width, cfg.embed_dim, bias=False)
        self.text_proj = nn.Linear(cfg.text.width, cfg.embed_dim, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(float(cfg.logit_scale_init)))
        self.apply(self._init_weights)
        for p in (self.visual.cls, self.visual.pos, self.text.pos):
            nn.init.normal_(p, 0.0, cfg.init_std)

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding, nn.Conv2d)):
            nn.init.normal_(module.weight, 0.0, self.cfg.init_std)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)

    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        """I_f W_i of Figure 3: projected image features (N, E), not normalised."""
        return self.visual_proj(self.visual(pixels))                           # (N, E)

    def encode_text(self, ids: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        """T_f W_t of Figure 3: projected text features (M, E), not normalised."""
        return self.text_proj(self.text(ids, valid))                           # (M, E)

    def tokenizer(self):
        """The model's own tokenizer (the shapes WordTokenizer), or a DataError naming why there is none."""
        from ..errors import DataError
        from .data import WordTokenizer
        tok, t = WordTokenizer(), self.cfg.text
        fits = t.vocab_size == tok.vocab_size and t.eos_token_id == tok.eos
        if self.cfg.tokenizer == "none" or (self.cfg.tokenizer == "auto" and not fits):
            raise DataError(f"this CLIP has no tokenizer (text.vocab_size={t.vocab_size}, model.tokenizer="
                            f"{self.cfg.tokenizer!r}: e.g. a Hugging Face folder without one); encode token ids "
                            f"yourself with encode_text(ids, valid), or use a CLIP trained here on shapes")
        if not fits:
            raise DataError(f"model.tokenizer='shapes' but text.vocab_size={t.vocab_size} / eos={t.eos_token_id} "
                            f"differ from the shapes vocabulary's {tok.vocab_size} / {tok.eos}")
        return tok

    def encode_prompts(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Prompts -> (hidden (B, L, D): the text tower's last states after its final LayerNorm, right-padded to
        L = text.context_length; pooled (B, P): the projected text embedding T_f W_t of Figure 3).

        Tokenised with the model's own tokenizer; a word outside its vocabulary is a DataError."""
        from ..errors import DataError
        if isinstance(prompts, str) or not prompts:
            raise DataError(f"encode_prompts takes a non-empty list of strings, got {prompts!r}")
        tok, length = self.tokenizer(), self.cfg.text.context_length
        for p in prompts:
            if len(p.split()) + 1 > length:
                raise DataError(f"prompt {p!r} has {len(p.split())} words; this CLIP reads at most {length - 1} "
                                f"(+ <eos>)")
        ids, valid = tok.batch(list(prompts), length)                          # (B, L)
        device = self.logit_scale.device
        ids, valid = ids.to(device), valid.to(device)
        hidden = self.text.final_states(ids, valid)                            # (B, L, D)
        return hidden, self.text_proj(self.text.pool(hidden, ids))             # (B, L, D), (B, P)

    def similarity(self, image_emb: torch.Tensor, text_emb: torch.Tensor) -> torch.Tensor:
        """exp(t) · I_e T_e^T with L2-normalised embeddings (Figure 3): (N, E), (M, E) -> (N, M)."""
        i, t = F.normalize(image_emb, dim=-1), F.normalize(text_emb, dim=-1)  # (N, E), (M, E)
        return self.logit_scale.exp() * i @ t.T                               # (N, M)

    def forward(self, pixels: torch.Tensor, ids: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        """logits_per_image (N, M); logits_per_text is its transpose."""
        return self.similarity(self.encode_image(pixels), self.encode_text(ids, valid))


def clip_loss(logits_per_image: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE (Radford et al. Figure 3): (CE(rows, diag) + CE(columns, diag)) / 2 over (N, N)."""
    labels = torch.arange(logits_per_image.shape[0], device=logits_per_image.device)  # (N,)
    return (F.cross_entropy(logits_per_image, labels) + F.cross_entropy(logits_per_image.T, labels)) / 2


@torch.no_grad()
def clamp_logit_scale(model: CLIP, max_value: float = LOGIT_SCALE_MAX) -> None:
    """logit_scale <- min(logit_scale, ln 100), as open_clip does after each optimizer step."""
    model.logit_scale.clamp_(max=max_value)
