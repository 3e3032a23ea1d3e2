"""Multimodal models: CLIP (Radford et al. 2021) and LLaVA (Liu et al. 2023), built on the kit's encoder
primitives and its decoder Transformer (through the model registry); Hugging Face folders in and out.

    model = frontierkit.multimodal.from_hf("path/to/clip-or-llava")   # CLIPModel / LlavaForConditionalGeneration
    te = frontierkit.multimodal.from_hf("sd/text_encoder")  # CLIPTextModel + ../tokenizer/ -> CLIPTextEncoder
    frontierkit.multimodal.to_hf(model, "out/")    # a transformers CLIPModel / LlavaForConditionalGeneration folder
"""
from __future__ import annotations

import json
from pathlib import Path

from torch import nn

from ..errors import CheckpointError
from .bpe import CLIPTokenizer
from .clip import CLIP, CLIPConfig, CLIPTextConfig, CLIPVisionConfig, clamp_logit_scale, clip_loss
from .clip_text import CLIPTextEncoder, CLIPTextEncoderConfig
from .llava import Llava, LlavaConfig, llava_loss

__all__ = ["CLIP", "CLIPConfig", "CLIPTextConfig", "CLIPTextEncoder", "CLIPTextEncoderConfig", "CLIPTokenizer",
           "CLIPVisionConfig", "Llava", "LlavaConfig", "clamp_logit_scale",
           "clip_loss", "from_hf", "llava_loss", "to_hf"]


def from_hf(path: str | Path) -> nn.Module:
    """A transformers CLIPModel, CLIPTextModel[WithProjection] or LlavaForConditionalGeneration folder -> our CLIP,
    CLIPTextEncoder (with its tokenizer) or Llava (fp32)."""
    p = Path(path)
    if not (p / "config.json").is_file():
        raise CheckpointError(f"{p} has no config.json; pass a Hugging Face CLIP or LLaVA folder")
    meta = json.loads((p / "config.json").read_text())
    model_type = meta.get("model_type")
    from .convert import is_hf_clip_text
    if is_hf_clip_text(meta):
        from .convert import clip_text_from_hf
        return clip_text_from_hf(p)
    if model_type == "clip":
        from .convert import clip_from_hf
        return clip_from_hf(p)
    if model_type == "llava":
        from .llava import llava_from_hf
        return llava_from_hf(p)
    raise CheckpointError(f"{p}/config.json has model_type={model_type!r}; from_hf reads 'clip', 'clip_text_model' "
                          f"and 'llava' folders")


def to_hf(model: nn.Module, path: str | Path) -> Path:
    """Write our CLIP as a transformers CLIPModel folder, our Llava as a LlavaForConditionalGeneration folder."""
    if isinstance(model, CLIP):
        from .convert import clip_to_hf
        return clip_to_hf(model, path)
    if isinstance(model, Llava):
        from .llava import llava_to_hf
        return llava_to_hf(model, path)
    raise CheckpointError(f"to_hf writes CLIP and Llava models; got a {type(model).__name__}")
