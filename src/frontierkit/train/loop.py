"""One training loop for every supervised area: AdamW, LR schedules, clipping, accumulation,
mixed precision (bf16 autocast; fp16 with a dynamic loss scaler that skips overflowing steps;
``auto`` = bf16 where the device runs it natively), exact resume, NaN guard, hooks.

Distribution is a seam, not a fork: ``train.strategy`` (single, ddp, zero1, zero2, fsdp, deepspeed)
picks a :class:`frontierkit.train.strategy.Strategy` that wraps or shards the model, builds the
optimizer, runs backward (``no_sync`` while accumulating), clips, steps, checkpoints plain state
and gives each rank its shard of the global micro-batch via ``data.batch(i, rank, world)``.
Launch with torchrun. The strategy never sees the Trainer: configuration (config.py) and the
optimizer factories (optim.py) live in their own modules.

Hooks let other areas plug in without forking the loop (see :class:`Hooks`).
"""
from __future__ import annotations

import contextlib
import errno
import json
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from ..config import to_dict
from ..errors import CheckpointError, ConfigError, FrontierError, Interrupted, PeerLost, TrainingDiverged
from ..hardware import cpu_capability
from ..track import NullTracker, Tracker
from . import checkpoint as ckpt
from .config import Precision, StrategyName, TrainConfig
from .optim import make_optimizer, make_scheduler, param_groups
from .per_sample import add_to_grads, per_sample_grads_and_losses
from .strategy import make_strategy

__all__ = ["Hooks", "LossOut", "Precision", "StrategyName", "TrainConfig", "TrainResult", "Trainer",
           "accumulate_gradients", "accumulate_per_sample_gradients", "autocast", "fit", "grad_norm",
           "make_optimizer", "make_scheduler", "param_groups"]  # config/optim names re-exported for old imports

LossOut = torch.Tensor | tuple[torch.Tensor, dict[str, float]]
PerSampleGrads = Callable[[dict[str, torch.Tensor], int], dict[str, torch.Tensor]]


@dataclass
class Hooks:
    """Where other areas plug into the loop. Hooks get the user's module, never a DDP wrapper or engine,
    except ``extra_losses``, whose terms must flow through the model the loss runs through."""

    batch_transform: Callable[[nn.Module, Any, int], Any] | None = None
    """``(module, batch, step) -> batch`` before each micro-batch's forward (adversarial training)"""
    grad_transform: Callable[[nn.Module, int], None] | None = None
    """``(module, step)`` edits ``p.grad`` once per step: after accumulation, the ranks' averaging and
    unscaling, before clipping (DP-SGD's noise; draw it from a step-seeded generator so ranks agree)"""
    per_sample_grads: PerSampleGrads | None = None
    """``(grads, step) -> combined``: grads are name -> (B, *shape) per-example gradients of one local
    micro-batch; return name -> (*shape), a sum over its examples (DP-SGD: clip each to C, then sum;
    Abadi et al. 2016). The loop divides by B and grad_accum and averages over ranks, as for a mean loss"""
    extra_losses: list[Callable[[nn.Module, Any], torch.Tensor]] = field(default_factory=list)
    """``(model, batch) -> Tensor`` added to the loss (distillation); ``model`` is what the loss runs through"""
    eval_callbacks: list[Callable[[nn.Module, int], dict[str, float]]] = field(default_factory=list)
    """``(module, step) -> metrics`` run at each evaluation"""


@dataclass
class TrainResult:
    step: int
    history: list[dict[str, float]]
    model_dir: Path | None
    resumed_from: int = 0
    precision: str = ""
    """the precision the run used (``auto`` resolved)"""


def autocast(precision: Precision, device: torch.device) -> contextlib.AbstractContextManager:
    """bf16/fp16 autocast on ``device``; a no-op for fp32 (``auto`` must be resolved first)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision not in ("bf16", "fp16"):
        raise ValueError(f"precision {precision!r} must be resolved to fp32/bf16/fp16 first "
                         f"(frontierkit.hardware.resolve_precision)")
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def _split_loss(out: LossOut) -> tuple[torch.Tensor, dict[str, float]]:
    return (out[0], dict(out[1])) if isinstance(out, tuple) else (out, {})


def _check_finite(loss: torch.Tensor, step: int, micro: int) -> None:
    if not torch.isfinite(loss.detach()).all():
        raise TrainingDiverged(
            f"loss became {loss.detach().float().mean().item()} at step {step} (micro-batch {micro}); stopping. "
            f"Lower train.lr, enable train.grad_clip, or use bf16 instead of fp16; "
            f"the last good checkpoint is intact")


def accumulate_gradients(model: nn.Module, loss_fn: Callable[[nn.Module, Any], LossOut],
                         batches: list[Any], *, precision: Precision = "fp32",
                         scaler: torch.amp.GradScaler | None = None, hooks: Hooks | None = None,
                         step: int = 0, no_sync: Callable[[], contextlib.AbstractContextManager] | None = None,
                         backward: Callable[[torch.Tensor], None] | None = None,
                         module: nn.Module | None = None) -> tuple[float, dict[str, float]]:
    """Forward/backward ``len(batches)`` micro-batches; grads = mean over them (loss / k each).

    ``model`` is what the loss runs through (a DDP wrapper or DeepSpeed engine under a strategy);
    ``module`` the user's plain module that ``batch_transform`` sees (default: ``model``).
    ``backward(loss / k)`` defaults to ``.backward()``; strategies pass their own (DeepSpeed's engine).
    """
    hooks = hooks or Hooks()
    module = model if module is None else module
    device = next(module.parameters()).device
    k = len(batches)
    total, extras = 0.0, {}
    for j, batch in enumerate(batches):
        if hooks.batch_transform is not None:
            batch = hooks.batch_transform(module, batch, step)
        sync = contextlib.nullcontext() if (no_sync is None or j == k - 1) else no_sync()
        with sync:
            with autocast(precision, device):
                loss, metrics = _split_loss(loss_fn(model, batch))
                for extra in hooks.extra_losses:
                    loss = loss + extra(model, batch)
            _check_finite(loss, step, j)
            scaled = loss.float() / k
            scaled = scaler.scale(scaled) if scaler is not None else scaled
            scaled.backward() if backward is None else backward(scaled)
        total += loss.item() / k
        for name, v in metrics.items():
            extras[name] = extras.get(name, 0.0) + float(v) / k
    return total, extras


def accumulate_per_sample_gradients(module: nn.Module, loss_fn: Callable[[nn.Module, Any], LossOut],
                                    batches: list[Any], *, hooks: Hooks, precision: Precision = "fp32",
                                    step: int = 0) -> tuple[float, dict[str, float]]:
    """Per-example gradients of each micro-batch (torch.func on the plain module, no DDP), combined by
    ``hooks.per_sample_grads``; ``p.grad += combined / (B_j * k)``: for the identity combination (a plain
    sum) exactly :func:`accumulate_gradients`' mean-loss gradient. Ranks are averaged by the caller."""
    assert hooks.per_sample_grads is not None, "accumulate_per_sample_gradients needs hooks.per_sample_grads"
    device = next(module.parameters()).device
    k = len(batches)

    def loss_with_extras(m: nn.Module, batch: Any) -> LossOut:
        loss, metrics = _split_loss(loss_fn(m, batch))
        for extra in hooks.extra_losses:
            loss = loss + extra(m, batch)
        return loss, metrics

    total, extras = 0.0, {}
    for j, batch in enumerate(batches):
        if hooks.batch_transform is not None:
            batch = hooks.batch_transform(module, batch, step)
        with autocast(precision, device):
            grads, losses, metrics = per_sample_grads_and_losses(module, loss_with_extras, batch)  # (B, *shape), (B,)
        _check_finite(losses, step, j)
        combined = hooks.per_sample_grads(grads, step)                  # name -> (*shape), summed over B
        add_to_grads(module, combined, scale=1.0 / (losses.shape[0] * k))
        total += losses.float().mean().item() / k
        for name, v in metrics.items():
            extras[name] = extras.get(name, 0.0) + v.float().mean().item() / k
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
        self.strategy = make_strategy(cfg)
        self.check_hooks(cfg)
        latest = ckpt.latest_checkpoint(self.out)
        if latest is not None:                      # refuse an unresumable folder before wrapping/sharding
            self.strategy.check_resumable(latest)
        elif cfg.init_from:                         # a checkpoint to resume wins over --init-from
            from .init import init_from
            init_from(model, cfg.init_from)
        self.strategy.setup(model)
        self.model = self.strategy.module           # the user's module (FSDP2 shards it in place)
        self.train_model = self.strategy.train_model  # what the loss sees: DDP wrapper / DeepSpeed engine / model
        if not self.strategy.is_main:
            self.tracker, self.quiet = NullTracker(), True
        self.device = self.strategy.device
        self.optimizer = self.strategy.optimizer
        self.scheduler = self.strategy.scheduler
        self.scaler = self.strategy.scaler
        self.precision = self.strategy.resolved_precision()  # cfg.precision, "auto" resolved (frontierkit.hardware)
        self.hardware = {"precision": self.precision, **cpu_capability()}
        self.step = 0
        self.history: list[dict[str, float]] = []
        self.memory: list[dict[str, Any]] = []

    def check_hooks(self, cfg: TrainConfig) -> None:
        """Refuse hook/strategy combinations that cannot work, naming the field and the fix."""
        if self.hooks.grad_transform is not None and cfg.strategy == "deepspeed":
            raise ConfigError("train.strategy='deepspeed' is invalid with a grad_transform hook (DP-SGD): "
                              "DeepSpeed steps inside its engine; use ddp, zero1, zero2 or fsdp")
        if self.hooks.per_sample_grads is None:
            return
        if not self.strategy.supports_per_sample_grads:
            raise ConfigError(f"train.strategy={cfg.strategy!r} is invalid with a per_sample_grads hook (DP-SGD): "
                              f"per-example gradients need every parameter whole on each rank; use single, "
                              f"ddp or zero1")
        if cfg.precision == "fp16":
            raise ConfigError("train.precision='fp16' is invalid with a per_sample_grads hook (DP-SGD): loss "
                              "scaling would scale each example's gradient before clipping; use bf16 or fp32")

    # -- state ------------------------------------------------------------------------------
    def trainer_state(self) -> dict[str, Any]:
        """What the loop itself resumes: step, RNG, history (the strategy adds optimizer/scheduler/scaler)."""
        state = {"step": self.step, "rng_cpu": torch.get_rng_state(), "history": [dict(h) for h in self.history],
                 "precision": self.precision}
        if torch.cuda.is_available():
            state["rng_cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_trainer_state(self, state: dict[str, Any]) -> None:
        self.step = int(state["step"])
        torch.set_rng_state(state["rng_cpu"])
        if "rng_cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng_cuda"])
        self.history = list(state.get("history", []))

    def checkpoint_config(self) -> dict[str, Any]:
        """config.json of checkpoints and the exported model: the registry's kind (when the model is a
        registered kit model) + model config + run config + step."""
        from ..models import TRANSFORMS_ATTR, kind_of
        kind = kind_of(self.model)
        head = {"kind": kind.name} if kind is not None else {}
        transforms = getattr(self.model, TRANSFORMS_ATTR, None)     # e.g. BatchNorm -> GroupNorm for DP-SGD
        tail = {"transforms": list(transforms)} if transforms else {}
        return {**head, "model": self.model_config, "run": self.run_config, "step": self.step, **tail}

    def save(self) -> Path:
        """A resumable checkpoint (sharded with torch.distributed.checkpoint under multi-rank strategies);
        a failed write (disk full, read-only folder) leaves the previous checkpoint as ``latest``."""
        try:
            return self.strategy.save_checkpoint(self.out, self.step, self.checkpoint_config(), self.trainer_state())
        except OSError as e:
            previous = ckpt.latest_checkpoint(self.out)
            raise CheckpointError(
                f"could not write the checkpoint of step {self.step} under {ckpt.checkpoint_dir(self.out)}: "
                f"{e.strerror or e}; " + (f"the previous checkpoint {previous.name} is intact and a rerun resumes "
                                          f"from it" if previous else "no earlier checkpoint exists")
                + (" (free disk space first)" if e.errno == errno.ENOSPC else "")) from e

    def stop_requested(self, stop: "_StopSignals") -> int:
        """The signal number a stop was requested with (0: none); under several ranks, any rank's request
        stops all of them at the same step (a max all-reduce), so their final checkpoint agrees."""
        if not self.strategy.distributed:
            return stop.signum
        import torch.distributed as dist
        flag = torch.tensor([stop.signum], dtype=torch.int64, device=self.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return int(flag.item())

    def maybe_resume(self) -> int:
        """Resume from ``<out>/checkpoints/latest`` if present; returns the step resumed at."""
        path = ckpt.latest_checkpoint(self.out)
        if path is None:
            return 0
        if (path / ckpt.CONFIG_FILE).is_file():
            self.check_same_run(ckpt.load_config_json(path).get("run"), path)
        self.load_trainer_state(self.strategy.load_checkpoint(path))
        return self.step

    # settings a resumed run may change: length, logging cadence, and how it is parallelised
    RESUMABLE_CHANGES = ("train.steps", "train.log_every", "train.eval_every", "train.ckpt_every",
                         "train.keep_ckpts", "train.strategy", "train.deepspeed_config", "train.cpu_offload",
                         "train.init_from")

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
        if self.hooks.per_sample_grads is not None:  # per-example grads on the plain module, then average ranks
            loss, extras = accumulate_per_sample_gradients(self.model, self.loss_fn, batches, hooks=self.hooks,
                                                           precision=self.precision, step=self.step)
            s.all_reduce_grads()
        else:
            loss, extras = accumulate_gradients(self.train_model, self.loss_fn, batches, precision=self.precision,
                                                scaler=self.scaler, hooks=self.hooks, step=self.step,
                                                no_sync=s.no_sync(), backward=None if not s.distributed else s.backward,
                                                module=self.model)
        ckpt.fault_point(f"mid-step-rank{s.rank}", self.step)
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
        """Train to ``cfg.steps`` holding the run folder's lock (a second process on it is refused);
        SIGINT/SIGTERM stop at the next step boundary with a final checkpoint (:class:`Interrupted`)."""
        lock = ckpt.RunLock(self.out) if self.strategy.is_main else None
        if lock is not None:
            lock.acquire()
            ckpt.remove_stale_temps(self.out)     # temp folders of a writer killed mid-checkpoint
        try:
            with _StopSignals() as stop:
                try:
                    return self._fit(resume, stop)
                except RuntimeError as e:       # torch.distributed.DistBackendError is one
                    if not self.strategy.distributed or isinstance(e, FrontierError):
                        raise
                    raise self._peer_lost(e, stop) from None
        finally:
            if lock is not None:
                lock.release()

    def _peer_lost(self, e: RuntimeError, stop: "_StopSignals") -> PeerLost:
        """A collective failed: say so now, while SIGTERM is still only a request (torchrun SIGTERMs the
        surviving ranks as soon as it sees the dead one; with the default action restored, it could end this
        rank before the CLI printed the line)."""
        latest = ckpt.latest_checkpoint(self.out)
        lost = PeerLost(
            f"rank {self.strategy.rank}/{self.strategy.world}: a collective failed at step {self.step} "
            f"({type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else 'no message'}); another rank "
            f"probably died. Stopping; rerun the same torchrun command to resume from "
            f"{latest.name if latest else 'the start'}")
        stop.quiet = True
        print(f"frontier: error: {lost}", file=sys.stderr, flush=True)
        lost.reported = True
        return lost

    def _fit(self, resume: bool, stop: "_StopSignals") -> TrainResult:
        from tqdm.auto import tqdm

        torch.manual_seed(self.cfg.seed)
        start = self.maybe_resume() if resume else 0
        if start == 0:
            self.tracker.log_params({**self.run_config, "hardware": self.hardware})
        if self.cfg.precision == "auto" and not self.quiet:
            print(f"[precision] auto -> {self.precision} on {self.device.type} "
                  f"(torch kernels {self.hardware['torch_capability']}, native bf16: "
                  f"{self.hardware['native_bf16']})", file=sys.stderr)
        cfg = self.cfg
        bar = tqdm(total=cfg.steps, initial=start, desc=self.desc, disable=self.quiet,
                   dynamic_ncols=True, leave=False)
        window_units, window_t = 0.0, time.perf_counter()
        units = getattr(self.data, "units", "samples")
        while self.step < cfg.steps:
            m = self.train_step()
            ckpt.fault_point("step", self.step)
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
            saved = (cfg.ckpt_every and self.step % cfg.ckpt_every == 0) or last
            if saved:
                self.save()
            signum = self.stop_requested(stop)
            if signum and not last:
                path = self.save() if not saved else ckpt.step_path(self.out, self.step)
                bar.close()
                raise Interrupted(signum, f"{signal.Signals(signum).name} at step {self.step}/{cfg.steps}; "
                                          f"checkpoint saved in {path}; run the same command again to resume")
        bar.close()
        model_dir = self.export()
        return TrainResult(step=self.step, history=self.history, model_dir=model_dir, resumed_from=start,
                           precision=self.precision)

    def log_memory(self) -> None:
        """Per-rank parameter/gradient/optimizer-state bytes after the first step (ZeRO's three terms)."""
        self.memory = self.strategy.memory_report()
        if not self.strategy.is_main:
            return
        (self.out / "memory.json").parent.mkdir(parents=True, exist_ok=True)
        (self.out / "memory.json").write_text(json.dumps(self.memory, indent=2))
        for row in self.memory:
            self.tracker.log_metrics({f"memory/rank{row['rank']}/{k}": float(row[k])
                                      for k in ("param_bytes", "grad_bytes", "optim_bytes")}, self.step)
        if not self.quiet:
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


class _StopSignals:
    """While training, the first SIGINT/SIGTERM only asks the loop to stop after the current step (it saves a
    checkpoint, then raises :class:`Interrupted`); a second SIGINT stops at once. Main thread only."""

    def __init__(self) -> None:
        self.signum = 0
        self.quiet = False                     # the run is already ending with an error: record, say nothing
        self.previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum
        if self.quiet:
            return
        print(f"\n[frontier] {signal.Signals(signum).name}: stopping after this step with a checkpoint "
              f"(Ctrl-C again to stop at once)", file=sys.stderr)

    def __enter__(self) -> "_StopSignals":
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self.previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for s, handler in self.previous.items():
            signal.signal(s, handler)


def fit(model: nn.Module, loss_fn: Callable[[nn.Module, Any], LossOut], data: Any, cfg: TrainConfig,
        **kwargs: Any) -> TrainResult:
    """Convenience: ``Trainer(model, loss_fn, data, cfg, **kwargs).fit()``."""
    resume = kwargs.pop("resume", True)
    return Trainer(model, loss_fn, data, cfg, **kwargs).fit(resume=resume)
