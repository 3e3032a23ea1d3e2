"""CLIP's text tower on its own (Radford et al. 2021 §2.4), as transformers' ``CLIPTextModel`` /
``CLIPTextModelWithProjection`` ship it, e.g. in a Stable Diffusion pipeline's ``text_encoder/`` (Rombach et al.
2022 use its last hidden states as τ_θ(y), the cross-attention context).

``encode_prompts(prompts) -> (hidden (B, L, D), pooled (B, P))`` is diffusers' StableDiffusionPipeline.encode_prompt:
ids padded to the tokenizer's model_max_length (bpe.py), no attention mask, ``hidden`` = the last block's states
after the final LayerNorm (transformers' last_hidden_state); ``pooled`` = the state at the end-of-text token
(pooler_output, the config's eos_token_id rule) or, with a projection, its projection (text_embeds).
The Hugging Face key mapping is convert.py's (``clip_text_from_hf``)."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from ..config import require
from ..errors import CheckpointError, DataError
from .clip import CLIPTextConfig, TextTower


@dataclass(frozen=True, kw_only=True)
class CLIPTextEncoderConfig:
    text: CLIPTextConfig = field(default_factory=CLIPTextConfig)
    """the text tower"""
    projection_dim: int = 0
    """0: CLIPTextModel (pooled = the end-of-text state); > 0: CLIPTextModelWithProjection (pooled = text_embeds)"""

    def __post_init__(self) -> None:
        require(self.projection_dim >= 0, "model.projection_dim", self.projection_dim, "must be >= 0")


class CLIPTextEncoder(nn.Module):
    """ids (B, T) -> (last_hidden_state (B, T, D), pooled (B, P)); prompts through its CLIP BPE tokenizer."""

    def __init__(self, cfg: CLIPTextEncoderConfig):
        super().__init__()
        self.cfg = cfg
        self.text = TextTower(cfg.text)
        self.text_proj = nn.Linear(cfg.text.width, cfg.projection_dim, bias=False) if cfg.projection_dim else None
        self.tokenizer = None
        """a bpe.CLIPTokenizer (attached when read from a Hugging Face folder with its tokenizer files)"""
        self.no_tokenizer = ("this CLIP text encoder has no tokenizer (it was read or saved without one); put "
                             "vocab.json + merges.txt in its folder, or call it on token ids")
        """why ``tokenizer`` is None: the DataError encode_prompts raises"""

    def forward(self, ids: torch.Tensor, hidden_layer: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """ids (B, T) -> (final-LN states (B, T, D), EOS state (B, D) or its projection (B, P)); ``hidden_layer``
        k returns transformers' ``hidden_states[k]`` (no final LayerNorm) as the first output instead."""
        states = self.text.hidden_states(ids)                                  # blocks + 1 × (B, T, D)
        if hidden_layer is not None and not -len(states) <= hidden_layer < len(states):
            raise DataError(f"hidden_layer={hidden_layer}: this text encoder has {len(states)} hidden states "
                            f"(embeddings + {len(states) - 1} blocks)")
        last = self.text.final_norm(states[-1])                                # (B, T, D)
        pooled = self.text.pool(last, ids)                                     # (B, D)
        hidden = last if hidden_layer is None else states[hidden_layer]
        return hidden, pooled if self.text_proj is None else self.text_proj(pooled)  # (B, T, D), (B, P)

    def check_tokenizer(self, where: str) -> None:
        """The tokenizer's length must fit the learned positions and its ids the vocabulary."""
        tok, t = self.tokenizer, self.cfg.text
        if tok.cfg.model_max_length > t.context_length:
            raise CheckpointError(f"{where}: tokenizer model_max_length={tok.cfg.model_max_length} exceeds the text "
                                  f"encoder's max_position_embeddings={t.context_length}")
        if tok.vocab_size > t.vocab_size:
            raise CheckpointError(f"{where}: the tokenizer has {tok.vocab_size} tokens, the text encoder's "
                                  f"vocab_size is {t.vocab_size}; the folders do not belong together")

    def encode_prompts(self, prompts: list[str], hidden_layer: int | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        """Prompts -> (hidden (B, L, D), pooled (B, P)) with L = the tokenizer's model_max_length.

        ``hidden_layer`` None: the final-LN last states (Stable Diffusion); an index k: transformers'
        ``hidden_states[k]`` as it is, no final LayerNorm (SDXL reads k = -2, the penultimate block; Podell et
        al. 2023 sec. 2.1). ``pooled`` is always the final-LN end-of-text state (or its projection)."""
        if isinstance(prompts, str) or not prompts:
            raise DataError(f"encode_prompts takes a non-empty list of strings, got {prompts!r:.80}")
        if self.tokenizer is None:
            raise DataError(self.no_tokenizer)
        ids = self.tokenizer(list(prompts)).to(self.text.pos.device)          # (B, L)
        return self(ids, hidden_layer)
