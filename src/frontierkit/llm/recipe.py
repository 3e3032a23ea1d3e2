"""LLM training recipe: next-token cross-entropy (Radford et al. 2018, eq. 1) on pycorpus (or any
text) with the byte-level BPE tokenizer, through the shared ``frontierkit.train.Trainer``.
A run config nests ``model`` (TransformerConfig), ``train`` (TrainConfig) and ``data`` sections."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.nn import functional as F

from ..config import from_dict, require, to_dict
from ..errors import CheckpointError
from ..train import TrainConfig, Trainer, TrainResult
from .model import Transformer, TransformerConfig


@dataclass(frozen=True, kw_only=True)
class DataConfig:
    source: str = "pycorpus"
    """'pycorpus' (Python stdlib source) or a path to a text file / folder of .txt/.py/.md files"""
    vocab_size: int = 2048
    """BPE vocabulary (trained on pycorpus, cached)"""
    tokenizer_chars: int = 1_000_000
    """characters of pycorpus used to train the BPE tokenizer"""
    max_chars: int | None = 2_000_000
    """characters of training text to tokenize (None: all)"""
    val_chars: int = 200_000
    """characters of held-out text (pycorpus val split, or the tail of --data text)"""
    seq_len: int = 128
    """tokens per training window"""
    eval_batches: int = 8
    """held-out batches per evaluation"""

    def __post_init__(self) -> None:
        require(self.vocab_size >= 257, "data.vocab_size", self.vocab_size, "must be >= 257 (bytes + EOS)")
        require(self.seq_len > 1, "data.seq_len", self.seq_len, "must be > 1")
        require(self.eval_batches > 0, "data.eval_batches", self.eval_batches, "must be > 0")
        require(self.val_chars >= 1000, "data.val_chars", self.val_chars, "must be >= 1000")


@dataclass(frozen=True, kw_only=True)
class LLMRunConfig:
    model: TransformerConfig = field(default_factory=TransformerConfig)
    """the network"""
    train: TrainConfig = field(default_factory=TrainConfig)
    """optimiser and loop"""
    data: DataConfig = field(default_factory=DataConfig)
    """corpus and tokenizer"""

    def __post_init__(self) -> None:
        require(self.model.vocab_size >= self.data.vocab_size, "model.vocab_size", self.model.vocab_size,
                f"must be >= data.vocab_size={self.data.vocab_size}")
        require(self.data.seq_len <= self.model.max_seq_len, "data.seq_len", self.data.seq_len,
                f"must be <= model.max_seq_len={self.model.max_seq_len}")


def load_tokenizer(data: DataConfig):
    """The pycorpus byte-level BPE tokenizer (HF ``tokenizers``), trained once and cached."""
    from ..data import pycorpus
    return pycorpus.train_tokenizer(data.vocab_size, data.tokenizer_chars)


def token_streams(data: DataConfig, tokenizer) -> tuple[torch.Tensor, torch.Tensor]:
    """(train ids, held-out ids) as 1-D tensors: pycorpus train/val split, or a text path's head/tail."""
    from ..data import pycorpus
    if data.source == "pycorpus":
        return (pycorpus.encode_corpus(tokenizer, "train", data.max_chars).long(),
                pycorpus.encode_corpus(tokenizer, "val", data.val_chars).long())
    text = pycorpus.load_text_path(data.source)
    val_chars = min(data.val_chars, len(text) // 10)
    train_text, val_text = text[:-val_chars], text[-val_chars:]
    if data.max_chars:
        train_text = train_text[:data.max_chars]
    return encode(tokenizer, train_text), encode(tokenizer, val_text)


def encode(tokenizer, text: str, chunk: int = 200_000) -> torch.Tensor:
    ids: list[int] = []
    for enc in tokenizer.encode_batch([text[i:i + chunk] for i in range(0, len(text), chunk)]):
        ids.extend(enc.ids)
    return torch.tensor(ids, dtype=torch.long)


def lm_loss(model: Transformer, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Mean next-token cross-entropy, -1/N sum log p(x_{t+1} | x_<=t) (GPT, Radford et al. 2018 eq. 1)."""
    x, y = batch                                                               # (B, T) each
    logits = model(x)                                                          # (B, T, V)
    return F.cross_entropy(logits.flatten(0, 1).float(), y.flatten())


@torch.no_grad()
def held_out_loss(model: Transformer, ids: torch.Tensor, seq_len: int, batches: int, batch_size: int = 8) -> float:
    """Mean loss over consecutive non-overlapping windows from the start of ``ids`` (deterministic)."""
    was = model.training
    model.eval()
    n = min(batches * batch_size, (ids.numel() - 1) // seq_len)
    if n == 0:
        raise ValueError(f"held-out text has {ids.numel()} tokens, fewer than one window of {seq_len + 1}")
    windows = ids[: n * seq_len + 1]
    x = windows[:-1].view(n, seq_len)
    y = windows[1:].view(n, seq_len)
    total = 0.0
    for i in range(0, n, batch_size):
        total += lm_loss(model, (x[i:i + batch_size], y[i:i + batch_size])).item() * x[i:i + batch_size].shape[0]
    model.train(was)
    return total / n


def make_trainer(cfg: LLMRunConfig, out: str | Path, tracker: Any = None, quiet: bool = True) -> tuple[Trainer, Any]:
    """Model, data and Trainer of a run (seeded); returns (trainer, tokenizer)."""
    from ..data import TokenBatches

    tokenizer = load_tokenizer(cfg.data)
    train_ids, val_ids = token_streams(cfg.data, tokenizer)
    torch.manual_seed(cfg.train.seed)
    model = Transformer(cfg.model)
    data = TokenBatches(train_ids, batch_size=cfg.train.batch_size, seq_len=cfg.data.seq_len, seed=cfg.train.seed)

    def eval_fn(m: Transformer) -> dict[str, float]:
        loss = held_out_loss(m, val_ids, cfg.data.seq_len, cfg.data.eval_batches)
        return {"val_loss": loss, "val_ppl": math.exp(loss)}

    trainer = Trainer(model, lm_loss, data, cfg.train, out=out, tracker=tracker, eval_fn=eval_fn,
                      run_config=to_dict(cfg), model_config=to_dict(cfg.model), quiet=quiet, progress_desc="llm")
    return trainer, tokenizer


def train_llm(cfg: LLMRunConfig, out: str | Path, tracker: Any = None, quiet: bool = True) -> TrainResult:
    """Train, export ``<out>/model`` (config.json + model.safetensors + tokenizer.json)."""
    trainer, tokenizer = make_trainer(cfg, out, tracker, quiet)
    result = trainer.fit()
    if trainer.strategy.is_main:           # under torchrun only rank 0 writes files
        tokenizer.save(str(Path(result.model_dir) / "tokenizer.json"))
    return result


def load_model(path: str | Path) -> tuple[Transformer, Any, dict[str, Any]]:
    """(model, tokenizer, run config dict) of a trained run (``<out>`` or ``<out>/model``) or a HF directory."""
    from tokenizers import Tokenizer

    from .. import models
    loaded = models.open_model(path, kind="llm", what="frontier llm")
    tok_file = loaded.path / "tokenizer.json"
    if not tok_file.is_file():
        raise CheckpointError(f"{loaded.path} has no tokenizer.json; train with `frontier llm train` or copy the "
                              f"tokenizer next to the weights")
    try:
        tok = Tokenizer.from_file(str(tok_file))
    except Exception as e:                     # truncated or hand-edited JSON: tokenizers raises a bare Exception
        raise CheckpointError(f"{tok_file} is not a readable tokenizer ({str(e).splitlines()[0][:120]}); the folder "
                              f"is corrupt: copy tokenizer.json again from the training run") from None
    return loaded.model, tok, loaded.run
