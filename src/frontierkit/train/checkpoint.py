"""Atomic, resumable checkpoints: ``config.json`` + ``model.safetensors`` (+ ``trainer.pt``).

A checkpoint is a directory written under a temporary name, fsynced and renamed into place, so a
crash never leaves half a checkpoint. Training checkpoints live in ``<out>/checkpoints/step-NNNNNNN``
with a ``latest`` pointer file replaced atomically; older ones are pruned after the pointer
moves. Every writer (single process, DCP shards, DeepSpeed) commits through
:func:`commit_training_dir`. Trainer state (optimizer, scheduler, RNG, data position) is loaded with
``torch.load(weights_only=True)``: a file carrying a pickle payload is refused, never executed.

Fault injection (tests and benchmarks/reliability_kill.py): ``FRONTIERKIT_FAULT=POINT@STEP[:SIGNAL]`` makes
the process send itself SIGNAL (default SIGKILL) at a named point of step STEP: ``after-weights`` (the
checkpoint's weights are in its temp folder), ``after-rename`` (``step-N`` is in place but ``latest`` still
names the previous one), ``after-pointer`` (``latest`` moved, old checkpoints not yet pruned), ``step`` (the
loop finished optimizer step STEP) and ``mid-step-rankR`` (rank R ran forward/backward, before the
optimizer step). Unset, it costs one environment lookup.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..errors import CheckpointError

MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
TRAINER_FILE = "trainer.pt"
FAULT_ENV = "FRONTIERKIT_FAULT"
FAULT_POINTS = ("after-weights", "after-rename", "after-pointer", "step")


def fault_point(point: str, step: int) -> None:
    """Signal this process when ``$FRONTIERKIT_FAULT`` is ``point@step[:SIGNAL]`` (fault-injection tests only)."""
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    where, _, name = spec.partition(":")
    if where == f"{point}@{step}":
        import sys
        import time
        print(f"[frontierkit fault] {spec} at {time.time():.3f}", file=sys.stderr, flush=True)
        os.kill(os.getpid(), getattr(signal, name or "SIGKILL"))


def _contiguous_copies(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Detached CPU copies (safetensors refuses tensors that share storage, e.g. tied embeddings)."""
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}


def save_checkpoint(path: str | Path, model_state: dict[str, torch.Tensor], config: dict[str, Any],
                    trainer_state: dict[str, Any] | None = None, files: dict[str, bytes] | None = None) -> Path:
    """Write a checkpoint directory atomically (temp dir in the same folder, then rename); ``files`` are extra
    files (relative names, e.g. a tokenizer's) written inside it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    reserved = {MODEL_FILE, CONFIG_FILE, TRAINER_FILE}
    for name in files or {}:
        if Path(name).is_absolute() or ".." in Path(name).parts or name in reserved:
            raise ValueError(f"checkpoint asset {name!r} must be a relative name inside the folder, not one of "
                             f"{sorted(reserved)}")
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{path.name}-", dir=path.parent))
    try:
        save_file(_contiguous_copies(model_state), str(tmp / MODEL_FILE))
        for name, data in (files or {}).items():
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp / name).write_bytes(data)
        _finish_dir(tmp, path, config, trainer_state)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _finish_dir(tmp: Path, path: Path, config: dict[str, Any], trainer_state: dict[str, Any] | None) -> None:
    """Add config.json (+ trainer.pt) to ``tmp``, fsync everything, rename it to ``path``."""
    (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True, default=str))
    if trainer_state is not None:
        torch.save(trainer_state, tmp / TRAINER_FILE)
    _apply_umask(tmp)
    _fsync_tree(tmp)
    _replace_dir(tmp, path)
    _fsync(path.parent)


def _apply_umask(tmp: Path) -> None:
    """Give the folder and its files the modes the user's umask asks for (mkdtemp makes 0700 folders and
    safetensors 0600 files, which would leak into the saved model)."""
    mask = os.umask(0)
    os.umask(mask)
    for p in [tmp, *tmp.rglob("*")]:
        if not p.is_symlink():
            os.chmod(p, (0o777 if p.is_dir() else 0o666) & ~mask)


def _replace_dir(tmp: Path, path: Path) -> None:
    """Rename ``tmp`` to ``path``; an existing ``path`` is moved aside first and deleted after."""
    if not path.exists():
        os.replace(tmp, path)
        return
    old = path.with_name(f".old-{path.name}-{os.getpid()}")
    os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)


def _fsync(path: Path) -> None:
    """Flush a file, or a directory's entries (POSIX; directories cannot be opened on Windows)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_tree(path: Path) -> None:
    """fsync every file under ``path`` (shard folders included), then the folders themselves."""
    for f in sorted(path.rglob("*")):
        if f.is_file():
            _fsync(f)
    for d in sorted((d for d in path.rglob("*") if d.is_dir()), reverse=True):
        _fsync(d)
    _fsync(path)


def load_config_json(path: str | Path) -> dict[str, Any]:
    """Read ``config.json`` of a checkpoint directory with a clear error when absent or corrupt."""
    path = Path(path)
    f = path / CONFIG_FILE
    if not path.is_dir():
        raise CheckpointError(f"checkpoint {str(path)!r} is not a directory; pass the folder holding "
                              f"{CONFIG_FILE} and {MODEL_FILE}")
    if not f.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} has no {CONFIG_FILE}")
    try:
        data = json.loads(f.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{f} is not valid JSON ({e}); the checkpoint is corrupt") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{f} must hold a JSON object, found {type(data).__name__}")
    return data


def load_model_state(path: str | Path) -> dict[str, torch.Tensor]:
    """Read ``model.safetensors`` (safetensors never executes code)."""
    f = Path(path) / MODEL_FILE
    if not f.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} has no {MODEL_FILE}")
    try:
        return load_file(str(f))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{f} is not a valid safetensors file ({e}); the checkpoint is corrupt") from None


def load_into(model: torch.nn.Module, path: str | Path, strict: bool = True) -> None:
    """Load a checkpoint's weights into ``model``, naming missing/unexpected/mis-shaped tensors."""
    state = load_model_state(path)
    own = model.state_dict()
    wrong = [f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}"
             for k, v in state.items() if k in own and own[k].shape != v.shape]
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if wrong or (strict and (missing or unexpected)):
        parts = []
        if wrong:
            parts.append("shape mismatch " + "; ".join(wrong[:5]))
        if strict and missing:
            parts.append(f"missing {missing[:5]}")
        if strict and unexpected:
            parts.append(f"unexpected {unexpected[:5]}")
        raise CheckpointError(f"checkpoint {str(path)!r} does not fit this model: " + ", ".join(parts)
                              + "; was it saved from a different config?")
    model.load_state_dict(state, strict=strict)


def load_trainer_state(path: str | Path) -> dict[str, Any]:
    """Read ``trainer.pt`` with ``weights_only=True``: pickled code is refused, not run."""
    f = Path(path) / TRAINER_FILE
    if not f.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} has no {TRAINER_FILE}; it cannot resume training")
    try:
        return torch.load(f, map_location="cpu", weights_only=True)
    except Exception as e:  # UnpicklingError, RuntimeError, EOFError, zip errors...
        raise CheckpointError(
            f"refused to load {f}: it is not a plain tensor/state file ({type(e).__name__}: "
            f"{str(e).splitlines()[0][:200]}). frontierkit never unpickles code; the file is corrupt "
            f"or unsafe") from None


# ---- training checkpoint directory: <out>/checkpoints/step-NNNNNNN + latest pointer ----

def checkpoint_dir(out: str | Path) -> Path:
    return Path(out) / "checkpoints"


def step_path(out: str | Path, step: int) -> Path:
    return checkpoint_dir(out) / f"step-{step:07d}"


def latest_checkpoint(out: str | Path) -> Path | None:
    """The checkpoint the ``latest`` pointer names, or None when there is none yet."""
    pointer = checkpoint_dir(out) / "latest"
    if not pointer.is_file():
        return None
    target = checkpoint_dir(out) / pointer.read_text().strip()
    if not target.is_dir():
        raise CheckpointError(f"{pointer} names {target.name}, which does not exist; "
                              f"delete the pointer to start afresh")
    return target


def begin_training_checkpoint(out: str | Path, step: int) -> Path:
    """A fresh temp folder beside ``step-NNNNNNN`` for the checkpoint's weights (or shard files)."""
    final = step_path(out, step)
    final.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=final.parent))


def commit_training_dir(tmp: str | Path, out: str | Path, step: int, config: dict[str, Any],
                        trainer_state: dict[str, Any], keep: int = 2) -> Path:
    """Commit a training checkpoint whose weights are already in ``tmp``: add config.json + trainer.pt,
    fsync, rename to ``step-NNNNNNN``, move ``latest`` to it, prune all but the newest ``keep``."""
    tmp, final = Path(tmp), step_path(out, step)
    fault_point("after-weights", step)
    try:
        _finish_dir(tmp, final, config, trainer_state)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    fault_point("after-rename", step)
    _point_latest(out, final)
    fault_point("after-pointer", step)
    _prune(out, keep, final)
    return final


class RunLock:
    """Exclusive lock on a run folder: ``fcntl.flock`` on ``<out>/.lock`` holding the owner's pid. A second
    process training into the same folder is refused; the OS drops the lock when its holder exits, even by
    SIGKILL, so a crash never leaves it stuck. (No-op where fcntl is missing, i.e. Windows.)"""

    FILE = ".lock"

    def __init__(self, out: str | Path):
        self.path = Path(out) / self.FILE
        self.fd: int | None = None

    def acquire(self) -> "RunLock":
        try:
            import fcntl
        except ImportError:                      # pragma: no cover - Windows
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise CheckpointError(
                f"{self.path.parent} is in use: another frontier process (pid {holder}) is training into it; "
                f"wait for it, stop it, or pass another --out (the lock frees itself when that process exits, "
                f"even if it crashed)") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            import fcntl
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


def remove_stale_temps(out: str | Path) -> None:
    """Delete temp folders a killed writer left in ``<out>/checkpoints`` (call only while holding the run lock)."""
    folder = checkpoint_dir(out)
    if folder.is_dir():
        for p in folder.iterdir():
            if p.name.startswith((".tmp-", ".old-", ".latest-")):
                shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)


def _point_latest(out: str | Path, final: Path) -> None:
    """Atomically replace ``<out>/checkpoints/latest`` with the name of ``final``."""
    pointer = checkpoint_dir(out) / "latest"
    tmp = pointer.with_name(f".latest-{os.getpid()}")
    tmp.write_text(final.name)
    _fsync(tmp)
    os.replace(tmp, pointer)
    _fsync(pointer.parent)


def _prune(out: str | Path, keep: int, final: Path) -> None:
    """Delete all but the newest ``keep`` step folders (never ``final``)."""
    steps = sorted(p for p in checkpoint_dir(out).glob("step-*") if p.is_dir())
    for old in steps[:-keep] if keep > 0 else []:
        if old != final:
            shutil.rmtree(old, ignore_errors=True)


def commit_training_checkpoint(out: str | Path, step: int, model_state: dict[str, torch.Tensor],
                               config: dict[str, Any], trainer_state: dict[str, Any],
                               keep: int = 2) -> Path:
    """Save step ``step`` (config.json + model.safetensors + trainer.pt) and commit it (latest, pruning)."""
    tmp = begin_training_checkpoint(out, step)
    try:
        save_file(_contiguous_copies(model_state), str(tmp / MODEL_FILE))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return commit_training_dir(tmp, out, step, config, trainer_state, keep=keep)
