"""Experiment tracking: a small ``Tracker`` protocol; jsonl always, MLflow (sqlite) by default, W&B.

MLflow logs to ``sqlite:///<runs>/mlflow.db`` with no server; browse with
``mlflow ui --backend-store-uri sqlite:///runs/mlflow.db``. W&B runs offline unless
``WANDB_MODE`` says otherwise.
"""
from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any, Literal, Protocol

from ..errors import require_extra

TrackerKind = Literal["mlflow", "wandb", "jsonl", "none"]
TRACKERS = ("mlflow", "wandb", "jsonl", "none")


class Tracker(Protocol):
    def log_params(self, params: dict[str, Any]) -> None: ...
    def log_metrics(self, metrics: dict[str, float], step: int) -> None: ...
    def log_artifact(self, path: str | Path) -> None: ...
    def close(self) -> None: ...


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"train": {"lr": 1}} -> {"train.lr": 1}."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


class NullTracker:
    def log_params(self, params: dict[str, Any]) -> None: pass
    def log_metrics(self, metrics: dict[str, float], step: int) -> None: pass
    def log_artifact(self, path: str | Path) -> None: pass
    def close(self) -> None: pass


class JsonlTracker(NullTracker):
    """Appends one JSON object per ``log_metrics`` call to ``<out>/metrics.jsonl``."""

    def __init__(self, out: str | Path):
        self.path = Path(out) / "metrics.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(self.path, "a")

    def log_params(self, params: dict[str, Any]) -> None:
        (self.path.parent / "params.json").write_text(json.dumps(params, indent=2, default=str))

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        row = {"step": step, "time": round(time.time(), 3), **{k: float(v) for k, v in metrics.items()}}
        self._f.write(json.dumps(row) + "\n")
        self._f.flush()

    def close(self) -> None:
        self._f.close()


def _mlflow_name(key: str) -> str:
    """A metric name MLflow accepts (alphanumerics, _ - . space :); e.g. eval/pgd20_acc@0.3 -> eval_pgd20_acc_0.3."""
    import re
    return re.sub(r"[^\w\-. :]", "_", key)


class MlflowTracker(NullTracker):
    """MLflow with a sqlite backend under the runs folder (no server).

    One run folder = one MLflow run: its id is kept in ``<out>/.mlflow-run-id`` and reopened when the
    folder is run again (a resume continues the same run, params included). A re-run that logs nothing
    (refused, or already finished) leaves the run's previous status; a run found still RUNNING by the
    next start was abandoned (its process killed) and is marked KILLED unless the new start resumes it."""

    ID_FILE = ".mlflow-run-id"

    def __init__(self, out: str | Path, run_name: str, experiment: str = "frontierkit"):
        import logging
        for name in ("mlflow", "alembic"):        # no "Creating initial MLflow database tables" chatter
            logging.getLogger(name).setLevel(logging.WARNING)
        mlflow = require_extra("mlflow", "track")
        out = Path(out).resolve()
        db = out.parent / "mlflow.db"
        self.mlflow = mlflow
        mlflow.set_tracking_uri(f"sqlite:///{db}")
        if mlflow.get_experiment_by_name(experiment) is None:
            mlflow.create_experiment(experiment, artifact_location=(out.parent / "mlartifacts").as_uri())
        mlflow.set_experiment(experiment)
        self.id_file = out / self.ID_FILE
        previous = self._stored_run()
        self.previous_status = previous.info.status if previous is not None else None
        self.logged = False
        if previous is not None:
            self.run = mlflow.start_run(run_id=previous.info.run_id)
        else:
            self.run = mlflow.start_run(run_name=run_name)
            out.mkdir(parents=True, exist_ok=True)
            self.id_file.write_text(self.run.info.run_id)

    def _stored_run(self):
        """The run this folder logged to before, if its id is stored and the database still has it."""
        if not self.id_file.is_file():
            return None
        try:
            return self.mlflow.tracking.MlflowClient().get_run(self.id_file.read_text().strip())
        except Exception:                        # deleted database or run: start a new one
            return None

    def log_params(self, params: dict[str, Any]) -> None:
        flat = {k: str(v)[:500] for k, v in flatten(params).items()}
        self.mlflow.log_params(flat)
        self.logged = True

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        clean = {_mlflow_name(k): float(v) for k, v in metrics.items() if math.isfinite(float(v))}
        self.mlflow.log_metrics(clean, step=step)
        self.logged = True

    def log_artifact(self, path: str | Path) -> None:
        self.mlflow.log_artifact(str(path))

    def close(self, status: str = "FINISHED") -> None:
        if self.previous_status is not None and not self.logged:
            status = "KILLED" if self.previous_status == "RUNNING" else self.previous_status
        self.mlflow.end_run(status=status)


class WandbTracker(NullTracker):
    """Weights & Biases; offline mode by default (sync later with ``wandb sync``)."""

    def __init__(self, out: str | Path, run_name: str, project: str = "frontierkit"):
        os.environ.setdefault("WANDB_MODE", "offline")
        os.environ.setdefault("WANDB_SILENT", "true")
        wandb = require_extra("wandb", "track")
        self.wandb = wandb
        self.run = wandb.init(project=project, name=run_name, dir=str(out), reinit=True)

    def log_params(self, params: dict[str, Any]) -> None:
        self.run.config.update(flatten(params), allow_val_change=True)

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        self.run.log(dict(metrics), step=step)

    def log_artifact(self, path: str | Path) -> None:
        self.run.save(str(path), base_path=str(Path(path).parent))

    def close(self, status: str = "FINISHED") -> None:
        self.run.finish(exit_code=0 if status == "FINISHED" else 1)
        self.wandb.teardown()  # finish() returns before W&B's service has written the run log; wait for it


_OPEN: list["MultiTracker"] = []


class MultiTracker(NullTracker):
    def __init__(self, trackers: list[Tracker]):
        self.trackers = trackers
        _OPEN.append(self)

    def log_params(self, params: dict[str, Any]) -> None:
        for t in self.trackers:
            t.log_params(params)

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        for t in self.trackers:
            t.log_metrics(metrics, step)

    def log_artifact(self, path: str | Path) -> None:
        for t in self.trackers:
            t.log_artifact(path)

    def close(self, status: str = "FINISHED") -> None:
        """Close every backend once; ``status="FAILED"`` marks the MLflow/W&B run as failed."""
        if self in _OPEN:
            _OPEN.remove(self)
        for t in self.trackers:
            if isinstance(t, (MlflowTracker, WandbTracker)):
                t.close(status)
            else:
                t.close()
        self.trackers = []


def close_open_trackers(status: str = "FAILED") -> None:
    """Close trackers a failed command left open (called by the CLI on errors)."""
    for tracker in list(_OPEN):
        tracker.close(status)


def make_tracker(kind: str, out: str | Path, run_name: str | None = None) -> MultiTracker:
    """``<out>/metrics.jsonl`` always, plus the chosen backend (``jsonl`` and ``none``: no other)."""
    if kind not in TRACKERS:
        from ..config import ConfigError
        raise ConfigError(f"tracker={kind!r} is invalid: choose one of {', '.join(TRACKERS)}")
    run_name = run_name or Path(out).name
    trackers: list[Tracker] = [JsonlTracker(out)]
    if kind == "mlflow":
        trackers.append(MlflowTracker(out, run_name))
    elif kind == "wandb":
        trackers.append(WandbTracker(out, run_name))
    return MultiTracker(trackers)


def _row_step(line: str) -> float:
    """A metrics row's step; a blank or half-written line (process killed mid-write) counts as after all."""
    try:
        return float(json.loads(line).get("step", 0))
    except (json.JSONDecodeError, AttributeError):
        return math.inf


def truncate_metrics(out: str | Path, step: int) -> None:
    """Drop rows of ``<out>/metrics.jsonl`` logged after ``step`` (by an attempt killed after its last
    checkpoint), in place, so a resumed run appends to one history instead of starting a second."""
    path = Path(out) / "metrics.jsonl"
    if not path.is_file():
        return
    with open(path, "r+") as f:        # rewritten in place: an open append handle keeps appending at the end
        lines = f.read().splitlines()
        keep = [line for line in lines if _row_step(line) <= step]
        if len(keep) == len(lines):
            return
        f.seek(0)
        f.write("".join(line + "\n" for line in keep))
        f.truncate()


def read_metrics(out: str | Path) -> list[dict[str, float]]:
    """Rows of ``<out>/metrics.jsonl``."""
    path = Path(out) / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
