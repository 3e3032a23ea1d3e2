"""DP fine-tuning of a language model (Li, Tramèr, Liang, Hashimoto 2022, "Large Language Models Can Be
Strong Differentially Private Learners"; Yu et al. 2022): DP-SGD (Abadi et al. 2016, Alg. 1) on
next-token prediction, with the same per-sample-gradient seam, Poisson lots and RDP accountant as the
classifiers (dp.py). Composition example: any kit LM loaded through the model registry.

The privacy unit is one training window of ``seq_len + 1`` tokens of pycorpus text (record-level DP over
windows, as Li et al. treat one training example): a person whose text spans many windows gets a
weaker guarantee (group privacy), which this example does not claim.
"""
from __future__ import annotations

import json
import math
import shutil
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..config import require, to_dict
from ..errors import CheckpointError, DataError
from ..train import TrainConfig, Trainer
from .accountant import rdp_epsilon
from .dp import DPConfig, PoissonBatches, check_dp_compatible, dp_hooks, plan_privacy


def _default_train() -> TrainConfig:
    return TrainConfig(steps=30, batch_size=64, lr=3e-3, warmup_steps=0, weight_decay=0.0, schedule="constant",
                       grad_clip=0.0, log_every=10, eval_every=0)


def _default_dp() -> DPConfig:
    return DPConfig(epsilon=8.0, max_grad_norm=1.0)


@dataclass(frozen=True, kw_only=True)
class DPLMDataConfig:
    seq_len: int = 32
    """tokens per training window (the privacy unit is one window of seq_len + 1 tokens)"""
    windows: int = 2048
    """training windows N drawn from pycorpus train text (the Poisson rate is train.batch_size / N)"""
    val_windows: int = 64
    """held-out windows for perplexity"""

    def __post_init__(self) -> None:
        require(self.seq_len >= 2, "data.seq_len", self.seq_len, "must be >= 2")
        require(self.windows >= 16, "data.windows", self.windows, "must be >= 16")
        require(self.val_windows >= 1, "data.val_windows", self.val_windows, "must be >= 1")


@dataclass(frozen=True, kw_only=True)
class DPLMRunConfig:
    data: DPLMDataConfig = field(default_factory=DPLMDataConfig)
    """pycorpus windows"""
    train: TrainConfig = field(default_factory=_default_train)
    """optimizer and loop; train.batch_size is the expected Poisson lot size qN"""
    dp: DPConfig = field(default_factory=_default_dp)
    """privacy: budget, noise, clipping (dp.private false: the same run without clipping or noise)"""

    def __post_init__(self) -> None:
        require(self.train.grad_accum == 1, "train.grad_accum", self.train.grad_accum,
                "must be 1 for DP-SGD (each step is one Poisson lot)")
        require(self.train.strategy == "single", "train.strategy", self.train.strategy,
                "must be single for DP-SGD with Poisson sampling")


def token_windows(tokenizer_path: Path, split: str, n: int, seq_len: int) -> torch.Tensor:
    """(n, seq_len + 1) consecutive, non-overlapping windows of pycorpus ``split`` text."""
    from tokenizers import Tokenizer

    from ..data.pycorpus import load_text
    ids = torch.tensor(Tokenizer.from_file(str(tokenizer_path)).encode(
        load_text(split, max_chars=n * (seq_len + 1) * 8)).ids)                     # (L,)
    have = ids.numel() // (seq_len + 1)
    if have < n:
        raise DataError(f"pycorpus {split} text gives {have} windows of {seq_len + 1} tokens, fewer than the {n} "
                        f"asked; lower data.windows / data.val_windows or data.seq_len")
    return ids[: n * (seq_len + 1)].view(n, seq_len + 1)


def next_token_loss(model: nn.Module, batch: tuple[torch.Tensor]) -> torch.Tensor:
    """Mean next-token cross-entropy of windows (B, T+1)."""
    ids = batch[0]
    logits = model(ids[:, :-1])                                                      # (B, T, V)
    return F.cross_entropy(logits.flatten(0, 1), ids[:, 1:].flatten())


@torch.no_grad()
def perplexity(model: nn.Module, windows: torch.Tensor, batch: int = 32) -> float:
    """exp(mean next-token loss) over ``windows`` (N, T+1)."""
    was = model.training
    model.eval()
    losses = [next_token_loss(model, (windows[i:i + batch],)) * len(windows[i:i + batch])
              for i in range(0, len(windows), batch)]
    model.train(was)
    return math.exp(float(sum(losses)) / len(windows))


def dp_finetune_lm(cfg: DPLMRunConfig, model: nn.Module, model_dir: Path, out: str | Path, *,
                   model_config: dict[str, Any], tracker: Any = None, quiet: bool = True) -> dict[str, Any]:
    """DP-SGD fine-tuning of ``model`` (loaded from ``model_dir``, which holds its tokenizer.json) on
    pycorpus windows; writes ``out/model`` (+ tokenizer) and ``privacy.json``; returns the record."""
    out, model_dir = Path(out), Path(model_dir)
    tok = model_dir / "tokenizer.json"
    if not tok.is_file():
        raise CheckpointError(f"{model_dir} has no tokenizer.json: DP fine-tuning reads pycorpus text with the "
                              "model's own tokenizer; copy it next to the weights")
    torch.manual_seed(cfg.train.seed)
    if cfg.dp.private:
        check_dp_compatible(model)
    train = token_windows(tok, "train", cfg.data.windows, cfg.data.seq_len)          # (N, T+1)
    val = token_windows(tok, "val", cfg.data.val_windows, cfg.data.seq_len)          # (M, T+1)
    q = cfg.train.batch_size / len(train)
    require(q <= 1, "train.batch_size", cfg.train.batch_size, f"must be <= data.windows = {len(train)}")
    data = PoissonBatches(train, sample_rate=q, seed=cfg.train.seed)
    plan = plan_privacy(cfg.dp, q, cfg.train.steps)
    if plan.stopped_by_budget and not quiet:
        print(f"[privacy] stopping at step {plan.steps} of {plan.requested_steps}: the epsilon budget "
              f"{cfg.dp.epsilon} is spent", file=sys.stderr)
    ppl_before = perplexity(model, val)
    hooks = dp_hooks(plan.noise_multiplier, cfg.dp.max_grad_norm, data.expected_batch, cfg.train.seed) \
        if cfg.dp.private else None
    model.train()
    trainer = Trainer(model, next_token_loss, data, replace(cfg.train, steps=plan.steps), out=out, tracker=tracker,
                      hooks=hooks, eval_fn=lambda m: {"val_ppl": perplexity(m, val)}, run_config=to_dict(cfg),
                      model_config=model_config, quiet=quiet, progress_desc="dp-sgd lm" if cfg.dp.private else "lm")
    trainer.fit(resume=True)
    model.eval()
    if (out / "model").is_dir():
        shutil.copy(tok, out / "model" / "tokenizer.json")
    spent = rdp_epsilon(plan.noise_multiplier, q, trainer.step, cfg.dp.delta) if cfg.dp.private else math.inf
    record = {"private": cfg.dp.private, "epsilon": spent, "epsilon_budget": cfg.dp.epsilon, "delta": cfg.dp.delta,
              "noise_multiplier": plan.noise_multiplier, "sample_rate": q, "max_grad_norm": cfg.dp.max_grad_norm,
              "steps": trainer.step, "privacy_unit": f"one window of {cfg.data.seq_len + 1} tokens",
              "val_ppl_before": ppl_before, "val_ppl": perplexity(model, val)}
    (out / "privacy.json").write_text(json.dumps(record, indent=2, default=str))
    return record
