"""Distributed training strategies behind one seam of the shared Trainer.

One flag, ``train.strategy`` (``--strategy``), picks how the same model and loss are trained:

- ``single``    one process, the loop's original behaviour;
- ``ddp``       DistributedDataParallel (Li et al. 2020, "PyTorch Distributed"): replicated
                weights, gradients all-reduced (averaged) in buckets during backward;
- ``zero1``     DDP + ``torch.distributed.optim.ZeroRedundancyOptimizer``: optimizer state
                partitioned over ranks (ZeRO stage 1, P_os; Rajbhandari et al. 2020, §5.1);
- ``zero2``     FSDP2 ``fully_shard(reshard_after_forward=False)``: gradients reduce-scattered
                and optimizer state sharded, parameters kept gathered from forward through backward
                (ZeRO stage 2, P_os+g; at rest parameters are also sharded, see docs/distributed.md);
- ``fsdp``      FSDP2 ``fully_shard`` (Zhao et al. 2023, "PyTorch FSDP"): parameters, gradients and
                optimizer state sharded = ZeRO stage 3 (P_os+g+p), optional ``CPUOffloadPolicy``;
- ``deepspeed`` the DeepSpeed engine driven by the user's JSON (any ZeRO stage, offload).

The model never knows it is sharded: a strategy wraps it (DDP, DeepSpeed engine) or shards it in
place (FSDP2), builds the optimizer, runs backward (``no_sync`` between accumulated micro-batches),
clips, steps, saves/loads state with ``torch.distributed.checkpoint`` (or DeepSpeed's own
checkpoints) and reports per-rank memory. Launch with ``torchrun``; no collective is home-made.

A strategy never sees the Trainer: it is handed the config, the model and plain state dicts
(``save_checkpoint(out, step, config, trainer_state)``, ``load_checkpoint(path) -> trainer_state``),
and owns what it built: optimizer, LR scheduler and fp16 loss scaler.
"""
from __future__ import annotations

import contextlib
import functools
import json
import warnings
from pathlib import Path
from typing import Any, Callable

import torch
import torch.distributed as dist
from torch import nn

from ..config import ConfigError, require
from ..errors import CheckpointError, require_extra
from ..hardware import resolve_precision
from . import checkpoint as ckpt
from . import distributed as D
from .config import STRATEGIES, TrainConfig
from .optim import make_optimizer, make_scheduler, param_groups

__all__ = ["STRATEGIES", "Strategy", "DDPStrategy", "Zero1Strategy", "FSDPStrategy", "DeepSpeedStrategy",
           "make_strategy", "deepspeed_config"]
DCP_DIR = "dcp"
DEEPSPEED_DIR = "deepspeed"
DEEPSPEED_TAG = "state"


def make_strategy(cfg: TrainConfig) -> "Strategy":
    """The strategy named by ``cfg.strategy``."""
    classes: dict[str, type[Strategy]] = {"single": Strategy, "ddp": DDPStrategy, "zero1": Zero1Strategy,
                                          "zero2": FSDPStrategy, "fsdp": FSDPStrategy,
                                          "deepspeed": DeepSpeedStrategy}
    assert set(classes) == set(STRATEGIES), "every name of TrainConfig.strategy needs a class"
    return classes[cfg.strategy](cfg)


class Strategy:
    """Single process: plain module, AdamW, ``clip_grad_norm_``, safetensors + trainer.pt checkpoints."""

    name = "single"
    supports_per_sample_grads = True
    """whether p.grad can be written directly (full, unsharded parameters on every rank)"""

    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        if cfg.strategy != self.name and type(self) is Strategy:
            raise ValueError(f"Strategy is the single-process strategy, got {cfg.strategy!r}")
        self.name = cfg.strategy
        self.rank, self.world = 0, 1
        self.device = torch.device("cpu")
        self.module: nn.Module
        self.train_model: nn.Module
        self.optimizer: Any = None
        self.scheduler: Any = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.name != "single"

    # -- setup --------------------------------------------------------------------------------
    def setup(self, model: nn.Module) -> None:
        """Wrap/shard ``model`` and build its optimizer and LR scheduler."""
        self.device = next(model.parameters()).device
        self.module = self.train_model = model
        self.optimizer = make_optimizer(model, self.cfg)
        self.scheduler = make_scheduler(self.optimizer, self.cfg)

    def grad_scaler(self) -> torch.amp.GradScaler | None:
        """Dynamic loss scaler for fp16 (grads are full and identical on every rank here)."""
        return torch.amp.GradScaler(self.device.type) if self.cfg.precision == "fp16" else None

    @functools.cached_property
    def scaler(self) -> torch.amp.GradScaler | None:
        """The fp16 loss scaler this strategy owns (None otherwise); built on first use, after setup."""
        return self.grad_scaler()

    def resolved_precision(self) -> str:
        """``train.precision`` with ``auto`` resolved for this device (bf16 where native, else fp32)."""
        return resolve_precision(self.cfg.precision, self.device)

    def local_optimizers(self) -> list[torch.optim.Optimizer]:
        """The torch optimizers whose ``state`` this rank holds."""
        return [self.optimizer]

    # -- one step -----------------------------------------------------------------------------
    def zero_grad(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)

    def no_sync(self) -> Callable[[], contextlib.AbstractContextManager] | None:
        """Context that skips gradient communication for all but the last accumulated micro-batch."""
        return None

    def backward(self, loss: torch.Tensor) -> None:
        loss.backward()

    def all_reduce_grads(self) -> None:
        """Average ``p.grad`` over ranks for gradients written without a backward (per-example path)."""

    def current_lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def clip_grad_norm(self, max_norm: float) -> float:
        """Global gradient L2 norm before clipping; clips to ``max_norm`` when > 0 (Pascanu et al. 2013)."""
        params = [p for p in self.module.parameters() if p.grad is not None]
        if not params:
            return 0.0
        if max_norm > 0:
            return float(torch.nn.utils.clip_grad_norm_(params, max_norm))
        return float(torch.nn.utils.get_total_norm([p.grad for p in params]))

    def optimizer_step(self, scaler: torch.amp.GradScaler | None,
                       grad_transform: Callable[[nn.Module, int], None] | None, step: int) -> tuple[float, float]:
        """Unscale, transform, clip, step, schedule; returns (grad norm, 1.0 if the step was skipped)."""
        if scaler is not None:
            scaler.unscale_(self.optimizer)
        if grad_transform is not None:
            grad_transform(self.module, step)
        norm = self.clip_grad_norm(self.cfg.grad_clip)
        skipped = 0.0
        if scaler is not None:
            scale = scaler.get_scale()
            scaler.step(self.optimizer)
            scaler.update()
            skipped = float(scaler.get_scale() < scale)
        else:
            self.optimizer.step()
        self.scheduler.step()
        return norm, skipped

    def mean_over_ranks(self, values: list[float]) -> list[float]:
        return list(values)

    def barrier(self) -> None:
        pass  # one process (even inside a launched job: a single-strategy Trainer uses no collectives)

    # -- memory ---------------------------------------------------------------------------------
    def memory_report(self) -> list[dict[str, Any]]:
        """Per-rank bytes of parameters, gradients and optimizer state (every rank, rank order)."""
        row = {"rank": self.rank, "strategy": self.name, "world": self.world,
               "param_bytes": D.tensor_bytes(self.module.parameters()),
               "grad_bytes": D.tensor_bytes(p.grad for p in self.module.parameters() if p.grad is not None),
               "optim_bytes": sum(D.tensor_bytes(D.optimizer_state_tensors(o)) for o in self.local_optimizers())}
        return D.gather_objects(row) if self.distributed else [row]

    # -- checkpoints ------------------------------------------------------------------------------
    def optim_state(self) -> dict[str, Any]:
        """LR scheduler and loss-scaler state for ``trainer.pt`` (plus AdamW's when unsharded: single)."""
        state: dict[str, Any] = {}
        if not self.distributed:
            state["optimizer"] = self.optimizer.state_dict()
        else:  # the per-parameter tensors go to DCP; the groups' hyperparameters (the scheduled lr) go here
            state["param_groups"] = _group_hyperparams(self.optimizer.param_groups)
        if self.scheduler is not None:
            state["scheduler"] = self.scheduler.state_dict()
        if self.scaler is not None:
            state["scaler"] = self.scaler.state_dict()
        return state

    def load_optim_state(self, state: dict[str, Any]) -> None:
        """Restore (and remove from ``state``) what :meth:`optim_state` saved, minus the optimizer's tensors.

        Loading the scheduler's state does not touch ``group["lr"]``: the groups' saved hyperparameters must be
        restored too, or the first step after a resume runs at the scheduler's step-0 (warmup) lr."""
        sched, scaler = state.pop("scheduler", None), state.pop("scaler", None)
        groups = state.pop("param_groups", None)
        if groups is not None:
            _restore_group_hyperparams(self.optimizer.param_groups, groups)
        if sched is not None and self.scheduler is not None:
            self.scheduler.load_state_dict(sched)
        if scaler is not None and self.scaler is not None:
            self.scaler.load_state_dict(scaler)

    def save_checkpoint(self, out: Path, step: int, config: dict[str, Any], trainer_state: dict[str, Any]) -> Path:
        """Single process: ``config.json`` + ``model.safetensors`` + ``trainer.pt`` (the foundation's format)."""
        return ckpt.commit_training_checkpoint(out, step, self.module.state_dict(), config,
                                               {**trainer_state, **self.optim_state()}, keep=self.cfg.keep_ckpts)

    def check_resumable(self, path: Path) -> None:
        """Refuse, before any model is wrapped or sharded, a checkpoint this strategy cannot resume."""
        if (path / DEEPSPEED_DIR).is_dir():
            raise CheckpointError(f"{path} was written by --strategy deepspeed; resume it with "
                                  f"--strategy deepspeed at the same world size, or start a new --out from its "
                                  f"exported model with --init-from {path.parent.parent}")

    def load_checkpoint(self, path: Path) -> dict[str, Any]:
        """Restore model, optimizer, scheduler and scaler from a checkpoint written by any torch strategy
        at any world size; returns the rest of ``trainer.pt`` (the loop's own state)."""
        self.check_resumable(path)
        state = ckpt.load_trainer_state(path)
        optim = state.pop("optimizer", None)
        if (path / DCP_DIR).is_dir():
            self._load_dcp(path / DCP_DIR)
        elif not self.distributed:
            ckpt.load_into(self.module, path)
            if optim is not None:
                self.optimizer.load_state_dict(optim)
        else:
            self._load_full(ckpt.load_model_state(path), optim, path)
            if optim is not None:  # a single-process checkpoint: its groups hold the scheduled lr
                state.setdefault("param_groups", optim["param_groups"])
        self.load_optim_state(state)
        return state

    def sharded_state(self) -> dict[str, Any]:
        """DCP state: ``model`` (FQN -> tensor/DTensor) and ``optim`` (FQN -> {exp_avg, exp_avg_sq, step})."""
        names = {id(p): n for n, p in self.module.named_parameters()}
        optim: dict[str, dict[str, torch.Tensor]] = {}
        for opt in self.local_optimizers():
            for group in opt.param_groups:
                for p in group["params"]:
                    optim[names[id(p)]] = _adam_state(opt, p)
        return {"model": self.module.state_dict(), "optim": optim}

    def _load_dcp(self, folder: Path) -> None:
        import torch.distributed.checkpoint as dcp
        state = self.sharded_state()
        try:
            dcp.load(state, checkpoint_id=str(folder), no_dist=not self.distributed)
        except Exception as e:  # missing keys, shape mismatch, corrupt metadata
            raise CheckpointError(f"cannot load sharded checkpoint {folder} ({type(e).__name__}: "
                                  f"{str(e).splitlines()[0][:300]}); was it saved from a different model?") from None
        self.module.load_state_dict(state["model"])

    def _load_full(self, model_state: dict[str, torch.Tensor], optim_state: dict[str, Any] | None,
                   path: Path) -> None:
        """Load a single-process checkpoint (full tensors) into this rank's shards."""
        target = self.sharded_state()
        own = target["model"]
        if set(own) != set(model_state):
            raise CheckpointError(f"checkpoint {path} does not fit this model: keys differ "
                                  f"({sorted(set(own) ^ set(model_state))[:5]})")
        for k, t in own.items():
            D.copy_full_into(t, model_state[k])
        self.module.load_state_dict(own)
        if optim_state is None:
            return
        full = _optimizer_state_by_name(self.module, self.cfg.weight_decay, optim_state, path)
        for name, st in target["optim"].items():
            for k, t in st.items():
                D.copy_full_into(t, full[name][k])

    def full_model_state(self) -> dict[str, torch.Tensor] | None:
        """Consolidated weights (full tensors on CPU) on rank 0, None elsewhere (collective)."""
        return self.module.state_dict()


def _adam_state(opt: torch.optim.Optimizer, p: torch.Tensor) -> dict[str, torch.Tensor]:
    """AdamW's per-parameter state, created (zeros, step 0) when the optimizer has not stepped yet."""
    st = opt.state[p]
    if not st:
        st["step"] = torch.tensor(0.0, dtype=torch.float32)
        st["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        st["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
    return {k: v for k, v in st.items() if isinstance(v, torch.Tensor)}


def _group_hyperparams(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each param group's hyperparameters (lr, initial_lr, betas, weight_decay, ...) without its parameters."""
    return [{k: v for k, v in g.items() if k != "params"} for g in groups]


def _restore_group_hyperparams(groups: list[dict[str, Any]], saved: list[dict[str, Any]]) -> None:
    """Write saved hyperparameters back into the optimizer's param groups (same group order)."""
    if len(saved) != len(groups):
        raise CheckpointError(f"the checkpoint's optimizer has {len(saved)} parameter groups, this run's "
                              f"{len(groups)}; was it saved from a different model or weight_decay?")
    for group, values in zip(groups, saved):
        group.update({k: v for k, v in values.items() if k != "params"})


def _optimizer_state_by_name(module: nn.Module, weight_decay: float, sd: dict[str, Any],
                             path: Path) -> dict[str, dict[str, torch.Tensor]]:
    """Map a torch optimizer state_dict (integer ids, in ``param_groups`` order) to parameter names."""
    names = {id(p): n for n, p in module.named_parameters()}
    order = [names[id(p)] for g in param_groups(module, weight_decay) for p in g["params"]]
    ids = [i for g in sd["param_groups"] for i in g["params"]]
    if len(ids) != len(order):
        raise CheckpointError(f"optimizer state in {path} has {len(ids)} parameters, the model {len(order)}")
    return {name: sd["state"][i] for name, i in zip(order, ids) if i in sd["state"]}


class _DistributedMixin:
    """Process group, rank-0 checkpoint commit and collective helpers shared by every multi-rank strategy."""

    cfg: TrainConfig
    rank: int
    world: int
    device: torch.device
    is_main: bool

    def _init_group(self) -> None:
        self.rank, self.world, self.device = D.init_process_group()
        require(self.cfg.batch_size % self.world == 0, "train.batch_size", self.cfg.batch_size,
                f"must be divisible by the world size {self.world} (each rank takes batch_size/world rows)")

    def mean_over_ranks(self, values: list[float]) -> list[float]:
        return D.mean_over_ranks(values, self.device)

    def barrier(self) -> None:
        dist.barrier()

    def _begin_checkpoint(self, out: Path, step: int) -> Path:
        """A temp folder beside the final one, created by rank 0 and named to all ranks."""
        return Path(D.broadcast_object(str(ckpt.begin_training_checkpoint(out, step)) if self.is_main else None))

    def _commit_checkpoint(self, out: Path, step: int, tmp: Path, config: dict[str, Any],
                           trainer_state: dict[str, Any]) -> Path:
        """Once every rank has written its shards into ``tmp``, rank 0 commits it (checkpoint.py), with every
        rank's RNG state (ranks' streams may differ: per-rank data, each GPU's own generator)."""
        rng = D.gather_objects(self.rng_state())
        dist.barrier()
        if self.is_main:
            state = {**trainer_state, **self.optim_state(), "strategy": self.name, "world": self.world,
                     "rng_ranks": rng}
            ckpt.commit_training_dir(tmp, out, step, config, state, keep=self.cfg.keep_ckpts)
        dist.barrier()
        return ckpt.step_path(out, step)

    def rng_state(self) -> dict[str, torch.Tensor]:
        """This rank's CPU generator state (+ its own GPU's when on CUDA)."""
        state = {"rng_cpu": torch.get_rng_state()}
        if self.device.type == "cuda":
            state["rng_cuda_device"] = torch.cuda.get_rng_state(self.device)
        return state

    def load_checkpoint(self, path: Path) -> dict[str, Any]:
        """As :meth:`Strategy.load_checkpoint`; ``rng_cpu`` becomes this rank's own saved state when the
        checkpoint was written at this world size (else every rank takes rank 0's, as before)."""
        return self._own_rng(super().load_checkpoint(path))

    def _own_rng(self, state: dict[str, Any]) -> dict[str, Any]:
        """Replace rank 0's RNG state in ``state`` with this rank's (saved as ``rng_ranks``) at the same world size."""
        ranks = state.pop("rng_ranks", None)
        if ranks is not None and len(ranks) == self.world:
            state["rng_cpu"] = ranks[self.rank]["rng_cpu"]
            if "rng_cuda_device" in ranks[self.rank] and self.device.type == "cuda":
                torch.cuda.set_rng_state(ranks[self.rank]["rng_cuda_device"], self.device)
                state.pop("rng_cuda", None)  # rank 0's view of all GPUs would overwrite this rank's generator
        return state

    def all_reduce_grads(self) -> None:
        """Average every ``p.grad`` over ranks in one flat all-reduce, as DDP's backward would."""
        params = [p for p in self.module.parameters() if p.requires_grad]
        if any(p.grad is None for p in params):
            raise RuntimeError("all_reduce_grads needs a gradient on every trainable parameter on every rank")
        flat = torch.cat([p.grad.reshape(-1) for p in params])          # (n_params,)
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat /= self.world
        for p, g in zip(params, flat.split([p.numel() for p in params])):
            p.grad.copy_(g.view_as(p))


class DDPStrategy(_DistributedMixin, Strategy):
    """DistributedDataParallel: replicated weights and AdamW, all-reduced (averaged) gradients."""

    def setup(self, model: nn.Module) -> None:
        from torch.nn.parallel import DistributedDataParallel as DDP
        self._init_group()
        self.module = model.to(self.device)
        ids = [self.device.index] if self.device.type == "cuda" else None
        self.train_model = DDP(self.module, device_ids=ids)
        self.optimizer = self.make_optimizer()
        self.scheduler = make_scheduler(self.optimizer, self.cfg)

    def make_optimizer(self) -> torch.optim.Optimizer:
        return make_optimizer(self.module, self.cfg)

    def no_sync(self) -> Callable[[], contextlib.AbstractContextManager]:
        return self.train_model.no_sync

    def save_checkpoint(self, out: Path, step: int, config: dict[str, Any], trainer_state: dict[str, Any]) -> Path:
        """Sharded save with ``torch.distributed.checkpoint`` (each rank writes what it owns)."""
        import torch.distributed.checkpoint as dcp
        tmp = self._begin_checkpoint(out, step)
        dcp.save(self.sharded_state(), checkpoint_id=str(tmp / DCP_DIR))
        return self._commit_checkpoint(out, step, tmp, config, trainer_state)

    def full_model_state(self) -> dict[str, torch.Tensor] | None:
        state = {k: D.full_tensor(v).detach().cpu() for k, v in self.module.state_dict().items()}
        return state if self.is_main else None


class Zero1Strategy(DDPStrategy):
    """DDP + ZeroRedundancyOptimizer: each rank keeps AdamW state only for its share of the parameters."""

    def make_optimizer(self) -> torch.optim.Optimizer:
        from torch.distributed.optim import ZeroRedundancyOptimizer
        c = self.cfg
        return ZeroRedundancyOptimizer(param_groups(self.module, c.weight_decay), optimizer_class=torch.optim.AdamW,
                                       lr=c.lr, betas=(c.beta1, c.beta2), eps=c.eps)

    def local_optimizers(self) -> list[torch.optim.Optimizer]:
        return [self.optimizer.optim]


class FSDPStrategy(DDPStrategy):
    """FSDP2 ``fully_shard`` on every block of a ModuleList, then the root (ZeRO-3; ZeRO-2 without
    resharding after forward)."""

    supports_per_sample_grads = False  # parameters are DTensor shards

    def setup(self, model: nn.Module) -> None:
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import CPUOffloadPolicy, fully_shard
        self._init_group()
        self.module = self.train_model = model.to(self.device)
        kwargs: dict[str, Any] = {"mesh": init_device_mesh(self.device.type, (self.world,)),
                                  "reshard_after_forward": self.name == "fsdp"}
        if self.cfg.cpu_offload:
            kwargs["offload_policy"] = CPUOffloadPolicy(pin_memory=torch.cuda.is_available())
        for block in _outermost_blocks(model):
            fully_shard(block, **kwargs)
        fully_shard(model, **kwargs)
        self.optimizer = make_optimizer(self.module, self.cfg)
        self.scheduler = make_scheduler(self.optimizer, self.cfg)

    def grad_scaler(self) -> None:
        return None  # fp16 is refused by TrainConfig for sharded gradients

    def no_sync(self) -> Callable[[], contextlib.AbstractContextManager] | None:
        """zero2 accumulates unsharded gradients locally; fsdp (ZeRO-3) reduce-scatters each micro-batch
        so gradients stay sharded."""
        if self.name != "zero2":
            return None

        @contextlib.contextmanager
        def no_sync():
            self.module.set_requires_gradient_sync(False)
            try:
                yield
            finally:
                self.module.set_requires_gradient_sync(True)
        return no_sync

    def clip_grad_norm(self, max_norm: float) -> float:
        """Norm of sharded (DTensor) gradients: local norms reduced across ranks, then clipped."""
        params = [p for p in self.module.parameters() if p.grad is not None]
        if not params:
            return 0.0
        norm = D.full_tensor(torch.nn.utils.get_total_norm([p.grad for p in params]))
        if max_norm > 0:
            torch.nn.utils.clip_grads_with_norm_(params, max_norm, norm)
        return float(norm)


def _outermost_blocks(model: nn.Module) -> list[nn.Module]:
    """Elements of the model's ModuleLists (transformer blocks), minus those nested inside another one."""
    blocks = [b for m in model.modules() if isinstance(m, nn.ModuleList) for b in m]
    nested = {id(x) for b in blocks for x in b.modules() if x is not b}
    return [b for b in blocks if id(b) not in nested]


# ---- DeepSpeed ----------------------------------------------------------------------------------

def deepspeed_config(cfg: TrainConfig, world: int) -> dict[str, Any]:
    """The user's DeepSpeed JSON, completed with batch sizes from TrainConfig and checked against it.

    Filled when absent: ``train_micro_batch_size_per_gpu`` (batch_size / world),
    ``gradient_accumulation_steps`` (grad_accum), ``train_batch_size`` (their product x world), and
    ``gradient_clipping`` = train.grad_clip (DeepSpeed's own default is 1.0). A ``gradient_clipping``
    present in the JSON wins (with a warning when it differs from train.grad_clip).
    """
    path = Path(cfg.deepspeed_config)
    require(path.is_file(), "train.deepspeed_config", cfg.deepspeed_config, "must be an existing DeepSpeed JSON file")
    try:
        conf = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"train.deepspeed_config={cfg.deepspeed_config!r} is invalid: not JSON ({e})") from None
    require(isinstance(conf, dict), "train.deepspeed_config", cfg.deepspeed_config, "must hold a JSON object")
    require(cfg.batch_size % world == 0, "train.batch_size", cfg.batch_size,
            f"must be divisible by the world size {world}")
    want = {"train_micro_batch_size_per_gpu": cfg.batch_size // world,
            "gradient_accumulation_steps": cfg.grad_accum,
            "train_batch_size": cfg.batch_size * cfg.grad_accum}
    for key, value in want.items():
        given = conf.get(key, "auto")
        require(given in ("auto", value), "train.deepspeed_config", f"{path}: {key}={given}",
                f"disagrees with train.batch_size={cfg.batch_size}, train.grad_accum={cfg.grad_accum} "
                f"at world size {world} (expected {value}); remove it from the JSON or set it to \"auto\"")
        conf[key] = value
    if conf.get("gradient_clipping", "auto") == "auto":
        conf["gradient_clipping"] = cfg.grad_clip
    elif float(conf["gradient_clipping"]) != cfg.grad_clip:
        warnings.warn(f"DeepSpeed JSON sets gradient_clipping={conf['gradient_clipping']}, train.grad_clip="
                      f"{cfg.grad_clip}; the JSON's value is used", stacklevel=2)
    low = _json_precision(conf)
    if low:
        require(cfg.precision in ("fp32", "auto"), "train.precision", cfg.precision,
                f"the DeepSpeed JSON already enables {low}; keep train.precision=fp32 (no double mixed precision)")
    return conf


def _json_precision(conf: dict[str, Any]) -> str:
    """``fp16``/``bf16`` when the DeepSpeed JSON enables it, else ``""``."""
    return next((k for k in ("fp16", "bf16") if isinstance(conf.get(k), dict) and conf[k].get("enabled")), "")


def _offloads_optimizer(conf: dict[str, Any]) -> bool:
    off = conf.get("zero_optimization", {}).get("offload_optimizer", {})
    return isinstance(off, dict) and off.get("device", "none") in ("cpu", "nvme")


class DeepSpeedStrategy(_DistributedMixin, Strategy):
    """The DeepSpeed engine (ZeRO stages 0-3, offload) configured by the user's JSON.

    DeepSpeed owns accumulation, clipping and the optimizer step: each micro-batch is
    ``engine.backward(loss / k, scale_wrt_gas=False)`` then ``engine.step()`` (which only updates at
    the accumulation boundary), so the loss is divided by k exactly once and clipped exactly once.
    """

    supports_per_sample_grads = False  # the engine owns gradients (partitioned under ZeRO-2/3)

    def setup(self, model: nn.Module) -> None:
        # DeepSpeed calls torch.distributed's deprecated *_tensor collectives on every step: one FutureWarning
        # per call per rank floods the log with a message about DeepSpeed's internals, not the user's run
        warnings.filterwarnings("ignore", message=r"`torch\.distributed\.\w+` is deprecated", category=FutureWarning)
        ds = require_extra("deepspeed", "deepspeed")
        self._init_group()
        ds.init_distributed(dist_backend=dist.get_backend(), verbose=False)
        self.ds_config = deepspeed_config(self.cfg, self.world)
        self.module = model.to(self.device)
        optimizer = None if "optimizer" in self.ds_config else self._client_optimizer()
        scheduler = None if "scheduler" in self.ds_config else (lambda opt: make_scheduler(opt, self.cfg))
        engine, opt, _, sched = ds.initialize(model=self.module, optimizer=optimizer, lr_scheduler=scheduler,
                                              config=self.ds_config)
        self.engine = self.train_model = engine
        self.optimizer, self.scheduler = opt, sched
        self.stage = int(self.ds_config.get("zero_optimization", {}).get("stage", 0))
        self._skipped = 0

    def _client_optimizer(self) -> torch.optim.Optimizer:
        """AdamW with our parameter groups; DeepSpeedCPUAdam (adamw_mode) when the optimizer is offloaded."""
        c = self.cfg
        groups = param_groups(self.module, c.weight_decay)
        if _offloads_optimizer(self.ds_config):
            from deepspeed.ops.adam import DeepSpeedCPUAdam
            return DeepSpeedCPUAdam(groups, lr=c.lr, betas=(c.beta1, c.beta2), eps=c.eps, adamw_mode=True)
        return torch.optim.AdamW(groups, lr=c.lr, betas=(c.beta1, c.beta2), eps=c.eps)

    def grad_scaler(self) -> None:
        return None  # fp16 loss scaling is DeepSpeed's (its JSON "fp16" section)

    def resolved_precision(self) -> str:
        """``auto`` is fp32 when the JSON already enables fp16/bf16 (no double mixed precision)."""
        return "fp32" if _json_precision(self.ds_config) else super().resolved_precision()

    def optim_state(self) -> dict[str, Any]:
        return {}  # the engine checkpoints its optimizer, LR scheduler and loss scale

    def zero_grad(self) -> None:
        pass  # the engine zeroes gradients after each optimizer step

    def backward(self, loss: torch.Tensor) -> None:
        self.engine.backward(loss, scale_wrt_gas=False)  # the loop already divided by grad_accum
        self.engine.step()

    def current_lr(self) -> float:
        return float(self.engine.get_lr()[0])

    def optimizer_step(self, scaler: Any, grad_transform: Any, step: int) -> tuple[float, float]:
        """Already done by ``engine.step()`` at the accumulation boundary; report its pre-clip norm."""
        norm = self.engine.get_global_grad_norm()
        total = getattr(self.engine, "skipped_steps", 0)  # cumulative overflow skips (DeepSpeed fp16)
        skipped, self._skipped = total - self._skipped, total
        return float(norm) if norm is not None else 0.0, float(skipped > 0)

    def local_optimizers(self) -> list[torch.optim.Optimizer]:
        return [getattr(self.optimizer, "optimizer", self.optimizer)]

    def memory_report(self) -> list[dict[str, Any]]:
        """Parameters: the ZeRO-3 partition (``ds_tensor``) or full weights; optimizer: Adam moments
        over this rank's flat fp32 partition; gradients: this rank's partition by the ZeRO stage rule."""
        params = list(self.module.parameters())
        param_bytes = sum((p.ds_tensor if hasattr(p, "ds_tensor") else p).numel() * p.element_size()
                          for p in params)
        full = sum(p.ds_numel if hasattr(p, "ds_numel") else p.numel() for p in params)
        grad_bytes = (full // self.world if self.stage >= 2 else full) * 4
        row = {"rank": self.rank, "strategy": f"deepspeed (ZeRO-{self.stage})", "world": self.world,
               "param_bytes": param_bytes, "grad_bytes": grad_bytes,
               "optim_bytes": D.tensor_bytes(D.optimizer_state_tensors(self.local_optimizers()[0]))}
        return D.gather_objects(row)

    def save_checkpoint(self, out: Path, step: int, config: dict[str, Any], trainer_state: dict[str, Any]) -> Path:
        """DeepSpeed's own checkpoint (every rank writes its partition) + rank 0's config.json/trainer.pt."""
        tmp = self._begin_checkpoint(out, step)
        self.engine.save_checkpoint(str(tmp / DEEPSPEED_DIR), tag=DEEPSPEED_TAG, save_latest=False)
        return self._commit_checkpoint(out, step, tmp, config, trainer_state)

    def check_resumable(self, path: Path) -> None:
        """DeepSpeed resumes only its own checkpoints: another strategy's folder is refused before
        the engine (ZeRO partitioning, offload, compiled optimizer) is built."""
        if not (path / DEEPSPEED_DIR).is_dir():
            raise CheckpointError(f"{path} was not written by --strategy deepspeed; DeepSpeed resumes only its "
                                  f"own checkpoints: start a new --out from this run's exported model with "
                                  f"--init-from {path.parent.parent}")

    def load_checkpoint(self, path: Path) -> dict[str, Any]:
        self.check_resumable(path)
        state = ckpt.load_trainer_state(path)
        if state.get("world") != self.world:
            raise CheckpointError(f"{path} was saved by {state.get('world')} DeepSpeed ranks, this run has "
                                  f"{self.world}; resume at the same world size (torch strategies reshard)")
        # DeepSpeed's loader unpickles its own files: resume only from checkpoints you wrote.
        self.engine.load_checkpoint(str(path / DEEPSPEED_DIR), tag=DEEPSPEED_TAG,
                                    load_optimizer_states=True, load_lr_scheduler_states=True)
        return self._own_rng(state)

    def full_model_state(self) -> dict[str, torch.Tensor] | None:
        """Gather ZeRO-3 partitions (``GatheredParameters``) and copy the full weights on rank 0."""
        import deepspeed
        params = list(self.module.parameters())
        gather = deepspeed.zero.GatheredParameters(params) if self.stage == 3 else contextlib.nullcontext()
        with gather:
            state = ({k: v.detach().cpu().clone() for k, v in self.module.state_dict().items()}
                     if self.is_main else None)
        return state
