"""What a compression costs and buys, measured the same way for every kit model: bytes, latency,
classifier accuracy (on the data the model names) or language-model perplexity (on pycorpus held-out
text with the tokenizer saved beside the model)."""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CheckpointError
from .quantize import weight_bytes

__all__ = ["latency_ms", "accuracy", "lm_loss", "pycorpus_ids", "example_input", "measure"]


def latency_ms(fn, repeat: int = 5, warmup: int = 1) -> float:
    """Best process-CPU milliseconds of ``fn()`` over ``repeat`` calls (robust on a shared machine)."""
    with torch.inference_mode():
        for _ in range(warmup):
            fn()
        best = float("inf")
        for _ in range(repeat):
            t0 = time.process_time()
            fn()
            best = min(best, time.process_time() - t0)
    return 1e3 * best


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 512) -> float:
    """Top-1 accuracy of ``model`` on (x, y)."""
    correct = sum((model(x[i:i + batch_size]).argmax(-1) == y[i:i + batch_size]).sum().item()
                  for i in range(0, len(x), batch_size))
    return correct / len(x)


@torch.no_grad()
def lm_loss(model: nn.Module, ids: torch.Tensor, seq_len: int, windows: int) -> float:
    """Mean next-token cross-entropy over the first ``windows`` non-overlapping windows of ``ids``."""
    n = min(windows, (ids.numel() - 1) // seq_len)
    x = ids[: n * seq_len].view(n, seq_len)                                  # (n, T)
    y = ids[1: n * seq_len + 1].view(n, seq_len)                             # (n, T)
    total = 0.0
    for i in range(0, n, 8):
        logits = model(x[i:i + 8]).float()                                   # (b, T, V)
        total += F.cross_entropy(logits.flatten(0, 1), y[i:i + 8].flatten(), reduction="sum").item()
    return total / (n * seq_len)


def pycorpus_ids(model_path: Path, split: str = "val", max_chars: int = 200_000) -> torch.Tensor:
    """Token ids of pycorpus text (``split``) with the tokenizer saved beside the model."""
    from tokenizers import Tokenizer

    from ..data.pycorpus import load_text
    tok = Path(model_path) / "tokenizer.json"
    if not tok.is_file():
        raise CheckpointError(f"{model_path} has no tokenizer.json, needed to measure perplexity; copy the "
                              f"tokenizer next to the weights")
    return torch.tensor(Tokenizer.from_file(str(tok)).encode(load_text(split, max_chars=max_chars)).ids)


def example_input(loaded: Any, batch: int = 1, seq_len: int = 64) -> torch.Tensor:
    """A batch the model accepts: test images (classifier) or token ids (lm)."""
    if "classifier" in loaded.kind.tags:
        return loaded.dataset("test")[0][:batch]
    vocab = int(loaded.config.get("vocab_size", 256))
    return torch.randint(0, vocab, (batch, seq_len), generator=torch.Generator().manual_seed(0))


def measure(model: nn.Module, loaded: Any, name: str, eval_windows: int = 16) -> dict[str, Any]:
    """One table row: weight MB, latency (batch 1), and accuracy (classifier) or perplexity (lm)."""
    x = example_input(loaded)
    row: dict[str, Any] = {"model": name, "MB": round(weight_bytes(model) / 2 ** 20, 3),
                           "latency_ms": round(latency_ms(lambda: model(x)), 3)}
    model.eval()
    if "classifier" in loaded.kind.tags:
        row["test_acc"] = round(accuracy(model, *loaded.dataset("test")), 4)
    elif "lm" in loaded.kind.tags:
        seq = int((loaded.run.get("data") or {}).get("seq_len", 128))
        seq = min(seq, int(loaded.config.get("max_seq_len", seq)))
        row["perplexity"] = round(math.exp(lm_loss(model, pycorpus_ids(loaded.path), seq, eval_windows)), 3)
    return row
