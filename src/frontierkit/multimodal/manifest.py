"""The multimodal area's manifest: ``frontier multimodal``, its tour section and the model kinds
``clip`` (our checkpoints and Hugging Face CLIPModel folders), ``clip-text`` (a Hugging Face CLIPTextModel
folder + its tokenizer, e.g. a Stable Diffusion text_encoder/), ``clip-zeroshot`` (CLIP as an image
classifier over class prompts) and ``llava``."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..areas import Manifest, ModelKind

_M = "frontierkit.multimodal"

MANIFEST = Manifest(
    name="multimodal", help="CLIP and LLaVA: contrastive image-text training, zero-shot, retrieval, VQA on shapes",
    commands=f"{_M}.commands:register",
    tour={"multimodal": f"{_M}.demo:tour"},
    kinds=(ModelKind("clip", build=f"{_M}.manifest:build_clip", classes=(f"{_M}.clip:CLIP",),
                     config_of=f"{_M}.manifest:config_of", detect=f"{_M}.manifest:detect_clip",
                     load_foreign=f"{_M}.manifest:load_hf_clip", tags=frozenset({"text-encoder"}),
                     description="CLIP: images + texts -> image-text similarity logits; "
                                 "encode_prompts(list[str]) -> (hidden (B, L, D), pooled (B, P))"),
           ModelKind("clip-text", build=f"{_M}.manifest:build_clip_text", classes=(f"{_M}.clip_text:CLIPTextEncoder",),
                     config_of=f"{_M}.manifest:config_of", detect=f"{_M}.manifest:detect_clip_text",
                     load_foreign=f"{_M}.manifest:load_hf_clip_text", tags=frozenset({"text-encoder"}),
                     assets_of=f"{_M}.manifest:clip_text_assets", attach_assets=f"{_M}.manifest:attach_clip_text",
                     description="CLIP's text tower alone (Hugging Face CLIPTextModel[WithProjection], e.g. a Stable "
                                 "Diffusion text_encoder/ + its tokenizer): encode_prompts(list[str]) -> "
                                 "(hidden (B, L, D), pooled (B, P))"),
           ModelKind("clip-zeroshot", build=f"{_M}.manifest:build_zeroshot",
                     classes=(f"{_M}.zeroshot:ZeroShotClassifier",),
                     tags=frozenset({"classifier"}), config_of=f"{_M}.manifest:config_of_zeroshot",
                     dataset=f"{_M}.manifest:dataset",
                     description="CLIP's zero-shot classifier: images (N, 3, S, S) -> logits over class prompts"),
           ModelKind("llava", build=f"{_M}.manifest:build_llava", classes=(f"{_M}.llava:Llava",),
                     tags=frozenset({"vlm"}), config_of=f"{_M}.manifest:config_of",
                     detect=f"{_M}.manifest:detect_llava", load_foreign=f"{_M}.manifest:load_hf_llava",
                     description="LLaVA: image + prompt tokens -> next-token logits")),
)


def build_clip(config: dict[str, Any]):
    from ..config import from_dict
    from .clip import CLIP, CLIPConfig
    return CLIP(from_dict(CLIPConfig, config, prefix="model."))


def config_of(model) -> dict[str, Any]:
    from ..config import to_dict
    return to_dict(model.cfg)


def detect_clip(meta: dict[str, Any]) -> bool:
    """A Hugging Face CLIPModel folder."""
    return meta.get("model_type") == "clip"


def load_hf_clip(path: Path, meta: dict[str, Any]):
    from .convert import clip_from_hf
    return clip_from_hf(path, meta)


def build_clip_text(config: dict[str, Any]):
    from ..config import from_dict
    from .clip_text import CLIPTextEncoder, CLIPTextEncoderConfig
    return CLIPTextEncoder(from_dict(CLIPTextEncoderConfig, config, prefix="model."))


def detect_clip_text(meta: dict[str, Any]) -> bool:
    """A Hugging Face CLIPTextModel / CLIPTextModelWithProjection folder."""
    from .convert import is_hf_clip_text
    return is_hf_clip_text(meta)


def load_hf_clip_text(path: Path, meta: dict[str, Any]):
    from .convert import clip_text_from_hf
    return clip_text_from_hf(path)


def clip_text_assets(model) -> dict[str, bytes]:
    """Its CLIP BPE tokenizer's files, saved beside the weights (none when it has no tokenizer)."""
    return model.tokenizer.files() if model.tokenizer is not None else {}


def attach_clip_text(model, path: Path) -> None:
    """Read back the tokenizer ``clip_text_assets`` saved in the folder, when there is one."""
    if (Path(path) / "vocab.json").is_file():
        from .bpe import CLIPTokenizer
        model.tokenizer = CLIPTokenizer.from_folder(path)
        model.check_tokenizer(str(path))


def build_zeroshot(config: dict[str, Any]):
    from .zeroshot import build_zeroshot as build
    return build(config)


def config_of_zeroshot(model) -> dict[str, Any]:
    return model.config_dict()


def dataset(meta: dict[str, Any], split: str):
    """(images, class ids) of the held-out or training split of the shapes data the classifier names."""
    from .zeroshot import dataset_of
    return dataset_of(meta.get("model") or {}, split)


def build_llava(config: dict[str, Any]):
    from .llava import build_llava as build
    return build(config)


def detect_llava(meta: dict[str, Any]) -> bool:
    """A Hugging Face LlavaForConditionalGeneration folder."""
    return meta.get("model_type") == "llava"


def load_hf_llava(path: Path, meta: dict[str, Any]):
    from .llava import llava_from_hf
    return llava_from_hf(path)
