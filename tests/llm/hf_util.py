"""Tiny random transformers models (the oracle) saved with save_pretrained, for parity tests."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

VOCAB = 128


def hf_config(family: str, **kw: Any):
    """A tiny transformers config of ``family`` (fp32, no dropout)."""
    import transformers as tf

    if family == "gpt2":
        base = dict(vocab_size=VOCAB, n_embd=64, n_layer=2, n_head=4, n_positions=96, resid_pdrop=0.0,
                    embd_pdrop=0.0, attn_pdrop=0.0)
        return tf.GPT2Config(**{**base, **kw})
    base = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2, max_position_embeddings=64, rms_norm_eps=1e-6, tie_word_embeddings=False)
    cls = {"llama": tf.LlamaConfig, "mistral": tf.MistralConfig, "qwen2": tf.Qwen2Config}[family]
    return cls(**{**base, **kw})


def save_hf_model(family: str, path: Path, seed: int = 0, **kw: Any) -> Path:
    """Random-init a tiny HF causal LM (biases randomised too) and save_pretrained it to ``path``."""
    import transformers as tf

    torch.manual_seed(seed)
    model = tf.AutoModelForCausalLM.from_config(hf_config(family, **kw))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or "norm" in name or "ln_" in name:
                p.add_(0.1 * torch.randn_like(p))                # non-trivial biases and norm gains
    model.save_pretrained(path)
    return path


def load_hf(path: Path):
    import transformers as tf

    return tf.AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
