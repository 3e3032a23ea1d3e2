"""Two small models that show the shared loop on embedded data without any area package:
an MLP classifier for digits and the neural probabilistic language model of Bengio et al. 2003
(embeddings of the previous ``context`` tokens -> tanh hidden layer -> next-token logits)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..config import require


@dataclass(frozen=True, kw_only=True)
class MLPConfig:
    in_features: int = 64
    """input features (8x8 digits -> 64)"""
    hidden: int = 128
    """hidden width"""
    n_classes: int = 10
    """output classes"""
    dropout: float = 0.0
    """dropout after the hidden layer"""

    def __post_init__(self) -> None:
        require(self.in_features > 0, "model.in_features", self.in_features, "must be > 0")
        require(self.hidden > 0, "model.hidden", self.hidden, "must be > 0")
        require(self.n_classes > 1, "model.n_classes", self.n_classes, "must be > 1")
        require(0 <= self.dropout < 1, "model.dropout", self.dropout, "must be in [0, 1)")


class MLPClassifier(nn.Module):
    def __init__(self, cfg: MLPConfig):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(cfg.in_features, cfg.hidden), nn.GELU(),
                                 nn.Dropout(cfg.dropout), nn.Linear(cfg.hidden, cfg.n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)                                         # (B, n_classes)


def classification_loss(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]):
    """Cross-entropy and accuracy of a (images, labels) batch."""
    x, y = batch
    logits = model(x)
    return F.cross_entropy(logits, y), {"acc": (logits.argmax(-1) == y).float().mean().item()}


@dataclass(frozen=True, kw_only=True)
class NPLMConfig:
    vocab_size: int = 1024
    """tokenizer vocabulary size"""
    context: int = 8
    """previous tokens seen by the model (n-1 in Bengio et al.)"""
    d_embed: int = 64
    """embedding width (m in the paper)"""
    hidden: int = 256
    """tanh hidden width (h in the paper)"""

    def __post_init__(self) -> None:
        for name in ("vocab_size", "context", "d_embed", "hidden"):
            require(getattr(self, name) > 0, f"model.{name}", getattr(self, name), "must be > 0")


class NPLM(nn.Module):
    """y = b + W x + U tanh(d + H x), x = concat of the context embeddings (Bengio 2003, eq. 1)."""

    def __init__(self, cfg: NPLMConfig):
        super().__init__()
        self.cfg = cfg
        self.C = nn.Embedding(cfg.vocab_size, cfg.d_embed)
        self.H = nn.Linear(cfg.context * cfg.d_embed, cfg.hidden)
        self.U = nn.Linear(cfg.hidden, cfg.vocab_size)
        self.W = nn.Linear(cfg.context * cfg.d_embed, cfg.vocab_size, bias=False)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """Next-token logits at every position with a full context: (B, T) -> (B, T-ctx+1, V)."""
        n = self.cfg.context
        e = self.C(idx)                                            # (B, T, m)
        x = e.unfold(1, n, 1)                                      # (B, T-n+1, m, n)
        x = x.transpose(2, 3).flatten(2)                           # (B, T-n+1, n*m)
        return self.U(torch.tanh(self.H(x))) + self.W(x)           # (B, T-n+1, V)


def lm_loss(model: NPLM, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Mean next-token cross-entropy over positions with a full context."""
    x, y = batch                                                   # (B, T), (B, T)
    logits = model(x)                                              # (B, T-n+1, V)
    target = y[:, model.cfg.context - 1:]                          # (B, T-n+1)
    return F.cross_entropy(logits.flatten(0, 1), target.flatten())
