"""The LLM area's manifest: ``frontier llm``, its tour section and the ``llm`` model kind
(our checkpoints and Hugging Face Llama/Mistral/Qwen2/GPT-2 folders)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..areas import Manifest, ModelKind

MANIFEST = Manifest(
    name="llm", help="GPT/LLaMA/Mistral/Qwen2 transformers: train, generate, eval, HF in/out",
    commands="frontierkit.llm.commands:register",
    tour={"llm": "frontierkit.llm.demo:tour"},
    kinds=(ModelKind("llm", build="frontierkit.llm.manifest:build", classes=("frontierkit.llm.model:Transformer",),
                     tags=frozenset({"lm"}), config_of="frontierkit.llm.manifest:config_of",
                     detect="frontierkit.llm.manifest:detect", load_foreign="frontierkit.llm.manifest:load_hf",
                     description="a decoder-only transformer language model"),),
)


def build(config: dict[str, Any]):
    """An untrained Transformer from its ``TransformerConfig`` dict."""
    from ..config import from_dict
    from .model import Transformer, TransformerConfig
    return Transformer(from_dict(TransformerConfig, config, prefix="model."))


def config_of(model) -> dict[str, Any]:
    from ..config import to_dict
    return to_dict(model.cfg)


def detect(meta: dict[str, Any]) -> bool:
    """A Hugging Face folder of a supported decoder (llama, mistral, qwen2, gpt2), or a kit checkpoint
    written before config.json named its kind."""
    from .convert import SUPPORTED
    model = meta.get("model")
    return meta.get("model_type") in SUPPORTED or (
        isinstance(model, dict) and {"n_layers", "d_model", "vocab_size"} <= set(model))


def load_hf(path: Path, meta: dict[str, Any]):
    """A Hugging Face Llama/Mistral/Qwen2/GPT-2 folder, converted on load."""
    from .convert import from_hf
    return from_hf(path)
