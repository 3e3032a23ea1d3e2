"""LLM area: one config-driven Transformer (GPT-2, LLaMA, Mistral, Qwen2), KV-cache generation,
Hugging Face checkpoints in and out."""
from .convert import from_hf, to_hf
from .generate import generate, stream
from .model import PRESETS, Transformer, TransformerConfig, config_from_name

__all__ = ["PRESETS", "Transformer", "TransformerConfig", "config_from_name", "generate", "stream",
           "from_hf", "to_hf"]
