"""CLIP as a zero-shot image classifier (Radford et al. 2021 §3.1.2): the class weights are the normalised
text embeddings of each class's prompts (averaged over a prompt ensemble, §3.1.4), so images -> logits over
classes with no classifier training. Saved as the ``clip-zeroshot`` kind, tagged "classifier", so every
command that takes a classifier (explain gradcam, robust attacks) takes it."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ..config import from_dict, to_dict
from .clip import CLIP, CLIPConfig


class ZeroShotClassifier(nn.Module):
    """images (N, C, S, S) -> logits (N, K) = exp(t) · normalize(I_e) · W^T, W (K, E) the class text embeddings."""

    num_prefix_tokens = 1
    """the [CLS] token before the patch grid (Grad-CAM reshapes the rest)"""

    def __init__(self, clip: CLIP, class_names: list[str], data: dict[str, Any] | None = None):
        super().__init__()
        self.clip = clip
        self.class_names = list(class_names)
        self.data = dict(data or {})
        self.register_buffer("class_emb", torch.zeros(len(class_names), clip.cfg.embed_dim))
        self.grid_size = clip.cfg.vision.image_size // clip.cfg.vision.patch_size

    @property
    def cam_layer(self) -> nn.Module:
        """The vision tower's last block's first LayerNorm: tokens (B, 1+g*g, W), as for the kit's ViT."""
        return self.clip.visual.blocks[-1].attn_norm

    @torch.no_grad()
    def set_prompts(self, prompts: list[list[str]], tokenizer: Any, length: int) -> "ZeroShotClassifier":
        """W_k = normalize(mean_j normalize(T(prompt_kj))): the prompt-ensembled class embedding (§3.1.4)."""
        rows = []
        for texts in prompts:
            ids, valid = tokenizer.batch(texts, length)
            emb = F.normalize(self.clip.encode_text(ids, valid), dim=-1)      # (J, E)
            rows.append(F.normalize(emb.mean(0), dim=-1))                      # (E,)
        self.class_emb.copy_(torch.stack(rows))                                # (K, E)
        return self

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        img = F.normalize(self.clip.encode_image(images), dim=-1)             # (N, E)
        return self.clip.logit_scale.exp() * img @ self.class_emb.T            # (N, K)

    def config_dict(self) -> dict[str, Any]:
        return {"clip": to_dict(self.clip.cfg), "classes": self.class_names, "data": self.data}


def build_zeroshot(config: dict[str, Any]) -> ZeroShotClassifier:
    """An empty classifier of a saved config (weights and class embeddings come from the checkpoint)."""
    clip = CLIP(from_dict(CLIPConfig, config.get("clip", {}), prefix="model.clip."))
    return ZeroShotClassifier(clip, list(config.get("classes", [])), config.get("data"))


def dataset_of(config: dict[str, Any], split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(images, (color, shape) class ids) of the shapes split the classifier was made for ("test" = held out)."""
    from .data import class_label, split_of
    d = config.get("data") or {}
    s = split_of(split, d.get("n", 6000), d.get("size", 48), d.get("seed", 0), d.get("held_out", 0.2))
    return s.images, class_label(s.labels)
