"""Trackers: jsonl always, MLflow on sqlite (no server), W&B offline, none."""
import json

import pytest

from frontierkit.config import ConfigError
from frontierkit.track import make_tracker, read_metrics


def _log(tracker):
    tracker.log_params({"train": {"lr": 0.1, "steps": 3}})
    for step in (1, 2, 3):
        tracker.log_metrics({"loss": 1.0 / step, "eval/acc": 0.5 + step / 10}, step)
    tracker.close()


def test_jsonl_rows(tmp_path):
    _log(make_tracker("jsonl", tmp_path / "run"))
    rows = read_metrics(tmp_path / "run")
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert rows[2]["loss"] == pytest.approx(1 / 3)
    assert json.loads((tmp_path / "run" / "params.json").read_text())["train"]["lr"] == 0.1


def test_mlflow_sqlite_records_params_and_metrics(tmp_path):
    _log(make_tracker("mlflow", tmp_path / "runs" / "exp1"))
    import mlflow
    from mlflow.tracking import MlflowClient

    db = tmp_path / "runs" / "mlflow.db"
    assert db.exists() and (tmp_path / "runs" / "exp1" / "metrics.jsonl").exists()
    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    exp = client.get_experiment_by_name("frontierkit")
    (run,) = client.search_runs([exp.experiment_id])
    assert run.info.run_name == "exp1"
    assert run.data.params["train.lr"] == "0.1"
    history = client.get_metric_history(run.info.run_id, "loss")
    assert [m.step for m in history] == [1, 2, 3]
    assert history[-1].value == pytest.approx(1 / 3)
    assert "eval_acc" in run.data.metrics
    mlflow.set_tracking_uri(None)


def test_mlflow_accepts_metric_names_with_characters_it_forbids(tmp_path):
    """`frontier robust train` logs eval/pgd20_acc@0.3; MLflow refuses '@': the name is sanitised, not fatal."""
    from mlflow.tracking import MlflowClient
    tracker = make_tracker("mlflow", tmp_path / "runs" / "r")
    tracker.log_metrics({"eval/pgd20_acc@0.3": 0.25}, 1)
    tracker.close()
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("frontierkit").experiment_id])
    assert run.data.metrics == {"eval_pgd20_acc_0.3": 0.25}
    assert read_metrics(tmp_path / "runs" / "r")[0]["eval/pgd20_acc@0.3"] == 0.25


def _wandb_records(path):
    """The records of a W&B offline transaction log, parsed with wandb's own protobuf schema.

    Framing (wandb's datastore, the LevelDB log format): a 7-byte header (":W&B", magic 0xBEE1, version),
    then 32 KiB blocks of chunks: crc32c (4 bytes), length (2, little-endian), type (1: full, 2: first,
    3: middle, 4: last), payload. wandb 0.31 reads it in its Go core, so the framing is done here."""
    import struct

    from wandb.proto import wandb_internal_pb2
    data = path.read_bytes()
    assert data[:4] == b":W&B" and struct.unpack("<H", data[4:6])[0] == 0xBEE1
    records, pos, pending = [], 7, b""
    while pos + 7 <= len(data):
        left = 32768 - pos % 32768
        if left < 7:                      # block trailer padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if length == 0 and kind == 0:
            pos += left
            continue
        pending += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def test_wandb_offline_run_reads_back_the_logged_values(tmp_path, monkeypatch):
    """Oracle: the offline run's .wandb log read back (wandb's protobuf Record): params and every metric
    value at every step, exactly as logged."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    _log(make_tracker("wandb", tmp_path / "w"))
    runs = list((tmp_path / "w" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    (log,) = runs[0].glob("*.wandb")
    records = _wandb_records(log)
    history = [{item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in r.history.item}
               for r in records if r.WhichOneof("record_type") == "history"]
    assert [(h["_step"], h["loss"], h["eval/acc"]) for h in history] == \
        [(step, 1.0 / step, 0.5 + step / 10) for step in (1, 2, 3)]
    config = {item.key or "/".join(item.nested_key): json.loads(item.value_json)
              for r in records if r.WhichOneof("record_type") == "config" for item in r.config.update}
    assert config["train.lr"] == 0.1 and config["train.steps"] == 3
    assert len(read_metrics(tmp_path / "w")) == 3


def test_none_still_writes_metrics_jsonl_and_bad_kind_errors(tmp_path):
    """`--tracker none` means no backend besides metrics.jsonl, which --help promises is always written."""
    _log(make_tracker("none", tmp_path / "n"))
    assert len(read_metrics(tmp_path / "n")) == 3
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "n" / "wandb").exists()
    with pytest.raises(ConfigError, match="tracker='tensorboard' is invalid"):
        make_tracker("tensorboard", tmp_path)


def test_missing_extra_names_the_pip_command(tmp_path, monkeypatch):
    """Without mlflow installed the error names `pip install 'frontierkit[track]'`."""
    from frontierkit.errors import MissingExtraError

    monkeypatch.setitem(__import__("sys").modules, "mlflow", None)   # makes `import mlflow` fail
    with pytest.raises(MissingExtraError, match=r"pip install 'frontierkit\[track\]'"):
        make_tracker("mlflow", tmp_path / "m")


def test_a_failed_command_marks_its_mlflow_run_failed(tmp_path, capsys):
    """A user error after the run started: one-line error, and the MLflow run is closed as FAILED."""
    from mlflow.tracking import MlflowClient

    from frontierkit.cli import main

    out = tmp_path / "runs" / "bad"
    code = main(["train", "text", "--out", str(out), "--quiet", "--data.path", str(tmp_path / "nothing")])
    assert code == 2 and "does not exist" in capsys.readouterr().err
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("frontierkit").experiment_id])
    assert run.info.status == "FAILED"


def _runs(tmp_path):
    from mlflow.tracking import MlflowClient
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}")
    return client, client.search_runs([client.get_experiment_by_name("frontierkit").experiment_id])


def _killed_start(out):
    """A process that opens the folder's MLflow run, logs a step and dies without closing it."""
    import subprocess
    import sys
    code = ("import os; from frontierkit.track import make_tracker; t = make_tracker('mlflow', %r); "
            "t.log_params({'lr': 0.1}); t.log_metrics({'loss': 1.0}, 1); os._exit(9)") % str(out)
    assert subprocess.run([sys.executable, "-c", code]).returncode == 9


def test_one_run_folder_is_one_mlflow_run_across_kill_and_resume(tmp_path):
    """A killed run is reopened by the next start (same run id, params kept, metrics continue) and ends
    FINISHED; a later re-run that logs nothing (refused / already done) keeps FINISHED, adds no run."""
    out = tmp_path / "runs" / "r"
    _killed_start(out)
    client, (run,) = _runs(tmp_path)
    assert run.info.status == "RUNNING"
    t = make_tracker("mlflow", out)
    t.log_metrics({"loss": 0.5}, 2)
    t.close()
    client, runs = _runs(tmp_path)
    assert [r.info.run_id for r in runs] == [run.info.run_id] and runs[0].info.status == "FINISHED"
    assert runs[0].data.params["lr"] == "0.1"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "loss")] == [1, 2]
    make_tracker("mlflow", out).close("FAILED")          # e.g. a re-run refused for a changed config
    _, runs = _runs(tmp_path)
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"


def test_an_abandoned_run_is_marked_killed_by_the_next_start(tmp_path):
    out = tmp_path / "runs" / "r"
    _killed_start(out)
    make_tracker("mlflow", out).close("FAILED")          # the next start is refused before logging
    _, runs = _runs(tmp_path)
    assert len(runs) == 1 and runs[0].info.status == "KILLED"
