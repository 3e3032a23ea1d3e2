"""``frontier train {digits,text}``: the shared loop on embedded data with two small models."""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field

from ..command import add_run_args, build_config, start_run
from ..config import require, to_dict
from .examples import MLPConfig, NPLMConfig
from .config import TrainConfig


@dataclass(frozen=True, kw_only=True)
class DigitsData:
    upscale: int = 1
    """upscale the 8x8 digits by this factor"""

    def __post_init__(self) -> None:
        require(1 <= self.upscale <= 8, "data.upscale", self.upscale, "must be in [1, 8]")


@dataclass(frozen=True, kw_only=True)
class DigitsRun:
    model: MLPConfig = field(default_factory=MLPConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(steps=300, batch_size=64, lr=3e-3,
                                                                   warmup_steps=20, weight_decay=0.01))
    data: DigitsData = field(default_factory=DigitsData)

    def __post_init__(self) -> None:
        side = 8 * self.data.upscale
        require(self.model.in_features == side * side, "model.in_features", self.model.in_features,
                f"must equal (8*data.upscale)^2 = {side * side}")


@dataclass(frozen=True, kw_only=True)
class TextData:
    vocab_size: int = 1024
    """BPE vocabulary size (byte-level BPE trained on pycorpus, cached)"""
    max_chars: int = 2_000_000
    """characters of pycorpus used for tokenizer training and the token stream"""
    seq_len: int = 64
    """tokens per training window"""
    path: str = ""
    """optional text file or folder to train on instead of pycorpus"""

    def __post_init__(self) -> None:
        require(self.vocab_size >= 257, "data.vocab_size", self.vocab_size, "must be >= 257 (bytes + EOS)")
        require(self.max_chars >= 10_000, "data.max_chars", self.max_chars, "must be >= 10000")
        require(self.seq_len >= 2, "data.seq_len", self.seq_len, "must be >= 2")


@dataclass(frozen=True, kw_only=True)
class TextRun:
    model: NPLMConfig = field(default_factory=NPLMConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(steps=300, batch_size=32, lr=3e-3,
                                                                   warmup_steps=20, weight_decay=0.01))
    data: TextData = field(default_factory=TextData)

    def __post_init__(self) -> None:
        require(self.model.vocab_size == self.data.vocab_size, "model.vocab_size", self.model.vocab_size,
                f"must equal data.vocab_size={self.data.vocab_size}")
        require(self.model.context < self.data.seq_len, "model.context", self.model.context,
                f"must be < data.seq_len={self.data.seq_len}")


def run_digits(cfg: DigitsRun, out, tracker=None, quiet: bool = True):
    """Train the MLP on digits; returns (TrainResult, test accuracy)."""
    import torch

    from ..data import TensorBatches
    from ..data.digits import load_digits
    from .examples import MLPClassifier, classification_loss
    from .loop import Trainer

    torch.manual_seed(cfg.train.seed)
    x, y = load_digits("train", upscale=cfg.data.upscale)
    xt, yt = load_digits("test", upscale=cfg.data.upscale)
    model = MLPClassifier(cfg.model)
    evaluate = lambda m: {"acc": (m(xt).argmax(-1) == yt).float().mean().item()}  # noqa: E731
    trainer = Trainer(model, classification_loss, TensorBatches(x, y, batch_size=cfg.train.batch_size,
                                                                 seed=cfg.train.seed),
                      cfg.train, out=out, tracker=tracker, eval_fn=evaluate, run_config=to_dict(cfg),
                      model_config=to_dict(cfg.model), quiet=quiet, progress_desc="digits")
    result = trainer.fit()
    return result, evaluate(model.eval())["acc"]


def text_tokens(cfg: TextData):
    """(tokenizer, train ids, val ids) for pycorpus or a user path."""
    import torch

    from ..data.pycorpus import encode_corpus, load_text_path, train_tokenizer

    tok = train_tokenizer(cfg.vocab_size, cfg.max_chars)
    if cfg.path:
        text = load_text_path(cfg.path, cfg.max_chars)
        ids = torch.tensor(tok.encode(text).ids, dtype=torch.int32)
        cut = int(0.95 * len(ids))
        return tok, ids[:cut], ids[cut:]
    return tok, encode_corpus(tok, "train", cfg.max_chars), encode_corpus(tok, "val", cfg.max_chars // 10)


def run_text(cfg: TextRun, out, tracker=None, quiet: bool = True):
    """Train the NPLM on pycorpus tokens; returns (TrainResult, val loss, tokenizer)."""
    import torch

    from ..data import TokenBatches
    from .examples import NPLM, lm_loss
    from .loop import Trainer

    torch.manual_seed(cfg.train.seed)
    tok, train_ids, val_ids = text_tokens(cfg.data)
    model = NPLM(cfg.model)
    val = TokenBatches(val_ids, batch_size=32, seq_len=cfg.data.seq_len, seed=1234)
    evaluate = lambda m: {"loss": sum(lm_loss(m, val.batch(i)).item() for i in range(4)) / 4}  # noqa: E731
    trainer = Trainer(model, lm_loss, TokenBatches(train_ids, batch_size=cfg.train.batch_size,
                                                   seq_len=cfg.data.seq_len, seed=cfg.train.seed),
                      cfg.train, out=out, tracker=tracker, eval_fn=evaluate, run_config=to_dict(cfg),
                      model_config=to_dict(cfg.model), quiet=quiet, progress_desc="text")
    result = trainer.fit()
    return result, evaluate(model.eval())["loss"], tok


def register(sub: argparse._SubParsersAction, area: str, text: str) -> None:
    p = sub.add_parser(area, help=text, description=text)
    cmds = p.add_subparsers(dest="command", metavar="COMMAND")
    d = cmds.add_parser("digits", help="MLP classifier on sklearn digits")
    add_run_args(d, DigitsRun, "train-digits")
    d.set_defaults(func=_digits)
    t = cmds.add_parser("text", help="Bengio et al. 2003 neural LM on pycorpus BPE tokens")
    add_run_args(t, TextRun, "train-text")
    t.set_defaults(func=_text)


def _digits(args: argparse.Namespace) -> int:
    cfg = build_config(args, DigitsRun)
    run = start_run(args, cfg)
    result, acc = run_digits(cfg, run.out, run.tracker, run.quiet)
    run.tracker.close()
    print(f"digits: {result.step} steps, final loss {result.history[-1]['loss']:.4f}, "
          f"test accuracy {acc:.4f}; model in {result.model_dir}")
    return 0


def _text(args: argparse.Namespace) -> int:
    cfg = build_config(args, TextRun)
    run = start_run(args, cfg)
    result, val_loss, _ = run_text(cfg, run.out, run.tracker, run.quiet)
    run.tracker.close()
    print(f"text: {result.step} steps, final train loss {result.history[-1]['loss']:.4f}, "
          f"val loss {val_loss:.4f}; model in {result.model_dir}")
    return 0
