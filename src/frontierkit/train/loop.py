"""One training loop for every supervised area: AdamW, LR schedules, clipping, accumulation,
mixed precision (bf16 autocast; fp16 with a dynamic loss scaler that skips overflowing steps),
exact resume, NaN guard, hooks.

Distribution is a seam, not a fork: ``train.strategy`` (single, ddp, zero1, zero2, fsdp, deepspeed)
picks a :class:`frontierkit.train.strategy.Strategy` that wraps or shards the model, builds the
optimizer, runs backward (``no_sync`` while accumulating), clips, steps, checkpoints and gives each
rank its shard of the global micro-batch via ``data.batch(i, rank, world)``. Launch with torchrun.

Hooks let other areas plug in without forking the loop:
- ``batch_transform(model, batch, step) -> batch`` (adversarial training),
- ``grad_transform(model, step)`` edits ``p.grad`` after unscaling, before clipping (DP-SGD),
- ``extra_losses``: ``fn(model, batch) -> Tensor`` added to the loss (distillation),
- ``eval_callbacks``: ``fn(model, step) -> dict`` run at each evaluation.
"""
from __future__ import annotations

import contextlib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

import torch
from torch import nn

from ..config import require, to_dict
from ..errors import CheckpointError, ConfigError, TrainingDiverged
from ..track import NullTracker, Tracker
from . import checkpoint as ckpt
from .schedules import lr_multiplier

Precision = Literal["fp32", "bf16", "fp16"]
StrategyName = Literal["single", "ddp", "zero1", "zero2", "fsdp", "deepspeed"]


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
    """fp32, bf16 (autocast) or fp16 (autocast + dynamic loss scaling)"""
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


LossOut = torch.Tensor | tuple[torch.Tensor, dict[str, float]]


@dataclass
class Hooks:
    batch_transform: Callable[[nn.Module, Any, int], Any] | None = None
    grad_transform: Callable[[nn.Module, int], None] | None = None
    extra_losses: list[Callable[[nn.Module, Any], torch.Tensor]] = field(default_factory=list)
    eval_callbacks: list[Callable[[nn.Module, int], dict[str, float]]] = field(default_factory=list)


@dataclass
class TrainResult:
    step: int
    history: list[dict[str, float]]
    model_dir: Path | None
    resumed_from: int = 0


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: decay for tensors with ndim >= 2 (weights), none for biases and norm gains."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    return torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr,
                             betas=(cfg.beta1, cfg.beta2), eps=cfg.eps)


def make_scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig) -> torch.optim.lr_scheduler.LambdaLR:
    fn = lambda s: lr_multiplier(cfg.schedule, s, warmup=cfg.warmup_steps, total=cfg.steps,  # noqa: E731
                                 min_ratio=cfg.min_lr_ratio, decay_fraction=cfg.decay_fraction)
    return torch.optim.lr_scheduler.LambdaLR(opt, fn)


def autocast(precision: Precision, device: torch.device) -> contextlib.AbstractContextManager:
    """bf16/fp16 autocast on ``device``; a no-op for fp32."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def _split_loss(out: LossOut) -> tuple[torch.Tensor, dict[str, float]]:
    return (out[0], dict(out[1])) if isinstance(out, tuple) else (out, {})


def accumulate_gradients(model: nn.Module, loss_fn: Callable[[nn.Module, Any], LossOut],
                         batches: list[Any], *, precision: Precision = "fp32",
                         scaler: torch.amp.GradScaler | None = None, hooks: Hooks | None = None,
                         step: int = 0, no_sync: Callable[[], contextlib.AbstractContextManager] | None = None,
                         backward: Callable[[torch.Tensor], None] | None = None,
                         ) -> tuple[float, dict[str, float]]:
    """Forward/backward ``len(batches)`` micro-batches; grads = mean over them (loss / k each).

    ``backward(loss / k)`` defaults to ``.backward()``; strategies pass their own (DeepSpeed's engine).
    """
    hooks = hooks or Hooks()
    device = next(model.parameters()).device
    k = len(batches)
    total, extras = 0.0, {}
    for j, batch in enumerate(batches):
        if hooks.batch_transform is not None:
            batch = hooks.batch_transform(model, batch, step)
        sync = contextlib.nullcontext() if (no_sync is None or j == k - 1) else no_sync()
        with sync:
            with autocast(precision, device):
                loss, metrics = _split_loss(loss_fn(model, batch))
                for extra in hooks.extra_losses:
                    loss = loss + extra(model, batch)
            if not torch.isfinite(loss.detach()):
                raise TrainingDiverged(
                    f"loss became {loss.item()} at step {step} (micro-batch {j}); stopping. "
                    f"Lower train.lr, enable train.grad_clip, or use bf16 instead of fp16; "
                    f"the last good checkpoint is intact")
            scaled = loss.float() / k
            scaled = scaler.scale(scaled) if scaler is not None else scaled
            scaled.backward() if backward is None else backward(scaled)
        total += loss.item() / k
        for name, v in metrics.items():
            extras[name] = extras.get(name, 0.0) + float(v) / k
    return total, extras


def grad_norm(model: nn.Module) -> float:
    grads = [p.grad.detach().float().norm() for p in model.parameters() if p.grad is not None]
    return torch.stack(grads).norm().item() if grads else 0.0


class Trainer:
    """Runs ``cfg.steps`` optimizer steps of ``loss_fn`` over ``data``, checkpointing under ``out``."""

    def __init__(self, model: nn.Module, loss_fn: Callable[[nn.Module, Any], LossOut], data: Any,
                 cfg: TrainConfig, *, out: str | Path, tracker: Tracker | None = None,
                 hooks: Hooks | None = None, eval_fn: Callable[[nn.Module], dict[str, float]] | None = None,
                 run_config: dict[str, Any] | None = None, model_config: dict[str, Any] | None = None,
                 quiet: bool = False, progress_desc: str = "train"):
        self.model, self.loss_fn, self.data, self.cfg = model, loss_fn, data, cfg
        self.out = Path(out)
        self.tracker = tracker or NullTracker()
        self.hooks = hooks or Hooks()
        self.eval_fn = eval_fn
        self.run_config = run_config if run_config is not None else {"train": to_dict(cfg)}
        self.model_config = model_config or {}
        self.quiet, self.desc = quiet, progress_desc
        from .strategy import make_strategy
        self.strategy = make_strategy(cfg)
        if self.hooks.grad_transform is not None and cfg.strategy == "deepspeed":
            raise ConfigError("train.strategy='deepspeed' is invalid with a grad_transform hook (DP-SGD): "
                              "DeepSpeed steps inside its engine; use ddp, zero1, zero2 or fsdp")
        self.strategy.setup(model)
        self.model = self.strategy.module           # the user's module (FSDP2 shards it in place)
        self.train_model = self.strategy.train_model  # what the loss sees: DDP wrapper / DeepSpeed engine / model
        if not self.strategy.is_main:
            self.tracker, self.quiet = NullTracker(), True
        self.device = self.strategy.device
        self.optimizer = self.strategy.optimizer
        self.scheduler = self.strategy.scheduler
        self.scaler = self.strategy.grad_scaler()
        self.step = 0
        self.history: list[dict[str, float]] = []
        self.memory: list[dict[str, Any]] = []

    # -- state ------------------------------------------------------------------------------
    def trainer_state(self, include_optimizer: bool = True) -> dict[str, Any]:
        state = {"step": self.step, "rng_cpu": torch.get_rng_state(), "history": [dict(h) for h in self.history]}
        if include_optimizer:
            state["optimizer"] = self.optimizer.state_dict()
        if self.scheduler is not None:
            state["scheduler"] = self.scheduler.state_dict()
        if self.scaler is not None:
            state["scaler"] = self.scaler.state_dict()
        if torch.cuda.is_available():
            state["rng_cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_trainer_state(self, state: dict[str, Any]) -> None:
        self.step = int(state["step"])
        if "optimizer" in state:
            self.optimizer.load_state_dict(state["optimizer"])
        if "scheduler" in state and self.scheduler is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng_cpu"])
        if self.scaler is not None and "scaler" in state:
            self.scaler.load_state_dict(state["scaler"])
        if "rng_cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng_cuda"])
        self.history = list(state.get("history", []))

    def checkpoint_config(self) -> dict[str, Any]:
        return {"model": self.model_config, "run": self.run_config, "step": self.step}

    def save(self) -> Path:
        """A resumable checkpoint (sharded with torch.distributed.checkpoint under multi-rank strategies)."""
        return self.strategy.save_checkpoint(self)

    def maybe_resume(self) -> int:
        """Resume from ``<out>/checkpoints/latest`` if present; returns the step resumed at."""
        path = ckpt.latest_checkpoint(self.out)
        if path is None:
            return 0
        if (path / ckpt.CONFIG_FILE).is_file():
            self.check_same_run(ckpt.load_config_json(path).get("run"), path)
        self.strategy.load_checkpoint(self, path)
        return self.step

    # settings a resumed run may change: length, logging cadence, and how it is parallelised
    RESUMABLE_CHANGES = ("train.steps", "train.log_every", "train.eval_every", "train.ckpt_every",
                         "train.keep_ckpts", "train.strategy", "train.deepspeed_config", "train.cpu_offload")

    def check_same_run(self, saved: Any, path: Path) -> None:
        """Refuse to resume a checkpoint written under a different config (it would silently mix runs)."""
        from ..track import flatten

        if not isinstance(saved, dict):
            return
        old, new = flatten(saved), flatten(json.loads(json.dumps(self.run_config, default=str)))
        for key in sorted(set(old) | set(new)):
            if key in self.RESUMABLE_CHANGES or old.get(key) == new.get(key):
                continue
            raise CheckpointError(
                f"{self.out} already holds a run with {key}={old.get(key)!r}, but this run sets "
                f"{key}={new.get(key)!r}; resuming would mix two configs. Use a new --out, or delete "
                f"{ckpt.checkpoint_dir(self.out)} to start this folder afresh")

    # -- loop -------------------------------------------------------------------------------
    def micro_batches(self, step: int) -> list[Any]:
        """This rank's shard of the ``grad_accum`` global micro-batches of optimizer step ``step``."""
        k, s = self.cfg.grad_accum, self.strategy
        if not s.distributed:
            return [self.data.batch(step * k + j) for j in range(k)]
        return [self.data.batch(step * k + j, rank=s.rank, world=s.world) for j in range(k)]

    def train_step(self) -> dict[str, float]:
        """One optimizer step over ``grad_accum`` micro-batches; returns its metrics."""
        s = self.strategy
        self.train_model.train()
        s.zero_grad()
        batches = self.micro_batches(self.step)
        lr = s.current_lr()
        loss, extras = accumulate_gradients(self.train_model, self.loss_fn, batches, precision=self.cfg.precision,
                                            scaler=self.scaler, hooks=self.hooks, step=self.step,
                                            no_sync=s.no_sync(), backward=None if not s.distributed else s.backward)
        norm, skipped = s.optimizer_step(self.scaler, self.hooks.grad_transform, self.step)
        self.step += 1
        n = sum(self.data.count(b) for b in batches) * s.world
        if s.distributed:  # each rank saw its shard: report the global-batch means
            names = sorted(extras)
            loss, *vals = s.mean_over_ranks([loss, *(extras[k] for k in names)])
            extras = dict(zip(names, vals))
        return {"loss": loss, "lr": lr, "grad_norm": norm, "units": float(n), "skipped": skipped, **extras}

    def evaluate(self) -> dict[str, float]:
        metrics: dict[str, float] = {}
        was_training = self.model.training
        self.model.eval()
        with torch.no_grad():
            if self.eval_fn is not None:
                metrics.update({f"eval/{k}": v for k, v in self.eval_fn(self.model).items()})
        for cb in self.hooks.eval_callbacks:
            metrics.update({f"eval/{k}": v for k, v in cb(self.model, self.step).items()})
        self.model.train(was_training)
        return metrics

    def fit(self, resume: bool = True) -> TrainResult:
        from tqdm.auto import tqdm

        torch.manual_seed(self.cfg.seed)
        start = self.maybe_resume() if resume else 0
        if start == 0:
            self.tracker.log_params(self.run_config)
        cfg = self.cfg
        bar = tqdm(total=cfg.steps, initial=start, desc=self.desc, disable=self.quiet,
                   dynamic_ncols=True, leave=False)
        window_units, window_t = 0.0, time.perf_counter()
        units = getattr(self.data, "units", "samples")
        while self.step < cfg.steps:
            m = self.train_step()
            window_units += m.pop("units")
            if self.step == start + 1:
                self.log_memory()
            last = self.step == cfg.steps
            do_eval = bool(cfg.eval_every and self.step % cfg.eval_every == 0) or last
            if self.step % cfg.log_every == 0 or do_eval:
                dt = max(time.perf_counter() - window_t, 1e-9)
                m[f"{units}_per_s"] = window_units / dt
                window_units, window_t = 0.0, time.perf_counter()
                if do_eval:
                    m.update(self.evaluate())
                self.history.append({"step": self.step, **m})
                self.tracker.log_metrics(m, self.step)
                bar.set_postfix(loss=f"{m['loss']:.4f}", **{f"{units[:3]}/s": f"{m[f'{units}_per_s']:.0f}"})
            bar.update(1)
            if (cfg.ckpt_every and self.step % cfg.ckpt_every == 0) or last:
                self.save()
        bar.close()
        model_dir = self.export()
        return TrainResult(step=self.step, history=self.history, model_dir=model_dir, resumed_from=start)

    def log_memory(self) -> None:
        """Per-rank parameter/gradient/optimizer-state bytes after the first step (ZeRO's three terms)."""
        self.memory = self.strategy.memory_report()
        if not self.strategy.is_main:
            return
        import json
        (self.out / "memory.json").parent.mkdir(parents=True, exist_ok=True)
        (self.out / "memory.json").write_text(json.dumps(self.memory, indent=2))
        for row in self.memory:
            self.tracker.log_metrics({f"memory/rank{row['rank']}/{k}": float(row[k])
                                      for k in ("param_bytes", "grad_bytes", "optim_bytes")}, self.step)
        if not self.quiet:
            import sys
            for row in self.memory:
                print(f"[memory] {row['strategy']} rank {row['rank']}/{row['world']}: params "
                      f"{row['param_bytes'] / 2**20:.2f} MiB, grads {row['grad_bytes'] / 2**20:.2f} MiB, "
                      f"optimizer state {row['optim_bytes'] / 2**20:.2f} MiB", file=sys.stderr)

    def export(self) -> Path:
        """Final weights as ``<out>/model`` (config.json + model.safetensors, no trainer state);
        consolidated from shards on rank 0 under multi-rank strategies."""
        path = self.out / "model"
        state = self.strategy.full_model_state()
        if state is not None:
            path = ckpt.save_checkpoint(path, state, self.checkpoint_config())
            self.tracker.log_artifact(path / ckpt.CONFIG_FILE)
        self.strategy.barrier()
        return path


def fit(model: nn.Module, loss_fn: Callable[[nn.Module, Any], LossOut], data: Any, cfg: TrainConfig,
        **kwargs: Any) -> TrainResult:
    """Convenience: ``Trainer(model, loss_fn, data, cfg, **kwargs).fit()``."""
    resume = kwargs.pop("resume", True)
    return Trainer(model, loss_fn, data, cfg, **kwargs).fit(resume=resume)
