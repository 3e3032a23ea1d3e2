"""The training loop's configuration: one frozen dataclass, validated field by field.

Its own module so that the loop (loop.py), the optimizer factories (optim.py) and the distributed
strategies (strategy.py) all read it without importing each other.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, get_args

from ..config import require

Precision = Literal["fp32", "bf16", "fp16", "auto"]
StrategyName = Literal["single", "ddp", "zero1", "zero2", "fsdp", "deepspeed"]
STRATEGIES: tuple[str, ...] = get_args(StrategyName)


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    steps: int = 200
    """optimizer steps to run"""
    batch_size: int = 32
    """global micro-batch size (rows per forward pass, summed over data-parallel ranks)"""
    grad_accum: int = 1
    """micro-batches accumulated per optimizer step (effective batch = batch_size * grad_accum)"""
    lr: float = 3e-4
    """peak learning rate"""
    min_lr_ratio: float = 0.1
    """final LR as a fraction of the peak (cosine and wsd)"""
    schedule: Literal["cosine", "constant", "wsd"] = "cosine"
    """LR schedule: warmup+cosine, constant (after warmup) or warmup-stable-decay"""
    warmup_steps: int = 10
    """linear warmup steps"""
    decay_fraction: float = 0.2
    """wsd only: fraction of training spent in the final linear decay"""
    weight_decay: float = 0.1
    """AdamW decoupled weight decay, applied to matrices only (not biases, norms, embeddings' 1-D params)"""
    beta1: float = 0.9
    """AdamW beta1"""
    beta2: float = 0.95
    """AdamW beta2"""
    eps: float = 1e-8
    """AdamW epsilon"""
    grad_clip: float = 1.0
    """clip the global gradient norm to this value; 0 disables clipping"""
    precision: Precision = "fp32"
    """fp32, bf16 (autocast), fp16 (autocast + loss scaling), or auto (bf16 where native, else fp32)"""
    seed: int = 0
    """seed for weights init, data order and dropout"""
    log_every: int = 10
    """log metrics every N steps"""
    eval_every: int = 0
    """evaluate every N steps (0: only at the end)"""
    ckpt_every: int = 0
    """write a resumable checkpoint every N steps (0: only at the end)"""
    keep_ckpts: int = 2
    """how many step checkpoints to keep"""
    strategy: StrategyName = "single"
    """single, ddp, zero1 (sharded optimizer state), zero2 (+ sharded grads), fsdp (ZeRO-3) or deepspeed (torchrun)"""
    deepspeed_config: str = ""
    """strategy=deepspeed: path of the DeepSpeed JSON (e.g. configs/deepspeed/zero3_offload.json)"""
    cpu_offload: bool = False
    """strategy=fsdp: keep sharded parameters, gradients and optimizer state in CPU memory (FSDP2 CPUOffloadPolicy)"""
    init_from: str = ""
    """start from the weights of this saved model (run folder or model/ folder of the same kind and shape)
    instead of a random init; ignored when the run folder already holds a checkpoint to resume"""

    def __post_init__(self) -> None:
        require(self.steps > 0, "train.steps", self.steps, "must be > 0")
        require(self.batch_size > 0, "train.batch_size", self.batch_size, "must be > 0")
        require(self.grad_accum > 0, "train.grad_accum", self.grad_accum, "must be > 0")
        require(self.lr > 0 and math.isfinite(self.lr), "train.lr", self.lr, "must be a finite number > 0")
        require(0 <= self.min_lr_ratio <= 1, "train.min_lr_ratio", self.min_lr_ratio, "must be in [0, 1]")
        require(0 <= self.warmup_steps < self.steps, "train.warmup_steps", self.warmup_steps,
                f"must be in [0, train.steps={self.steps})")
        require(0 <= self.decay_fraction <= 1, "train.decay_fraction", self.decay_fraction, "must be in [0, 1]")
        require(self.weight_decay >= 0, "train.weight_decay", self.weight_decay, "must be >= 0")
        require(0 <= self.beta1 < 1, "train.beta1", self.beta1, "must be in [0, 1)")
        require(0 <= self.beta2 < 1, "train.beta2", self.beta2, "must be in [0, 1)")
        require(self.eps > 0, "train.eps", self.eps, "must be > 0")
        require(self.grad_clip >= 0, "train.grad_clip", self.grad_clip, "must be >= 0 (0 disables)")
        for name in ("log_every", "eval_every", "ckpt_every"):
            require(getattr(self, name) >= 0, f"train.{name}", getattr(self, name), "must be >= 0")
        require(self.log_every > 0, "train.log_every", self.log_every, "must be > 0")
        require(self.keep_ckpts >= 1, "train.keep_ckpts", self.keep_ckpts, "must be >= 1")
        require(self.strategy != "deepspeed" or bool(self.deepspeed_config), "train.deepspeed_config",
                self.deepspeed_config, "strategy=deepspeed needs a DeepSpeed JSON file (--train.deepspeed_config FILE)")
        require(not self.deepspeed_config or self.strategy == "deepspeed", "train.deepspeed_config",
                self.deepspeed_config, f"is only used with strategy=deepspeed (strategy is {self.strategy!r})")
        require(not self.cpu_offload or self.strategy == "fsdp", "train.cpu_offload", self.cpu_offload,
                f"needs strategy=fsdp (strategy is {self.strategy!r}); for deepspeed set "
                f"zero_optimization.offload_optimizer in its JSON")
        require(self.precision != "fp16" or self.strategy in ("single", "ddp", "zero1"), "train.precision",
                self.precision, f"fp16 loss scaling is not supported with strategy={self.strategy!r} (sharded "
                f"gradients); use bf16, or for deepspeed the JSON's fp16 section with train.precision=fp32")
