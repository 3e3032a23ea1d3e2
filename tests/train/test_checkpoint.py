"""Checkpoints: atomic writes, exact resume after SIGKILL, refusal of pickle payloads and corrupt files."""
import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from frontierkit.errors import CheckpointError
from frontierkit.train import checkpoint as ckpt


def small():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))


def test_save_is_atomic_when_the_write_fails(tmp_path, monkeypatch):
    """A crash while writing leaves the previous checkpoint untouched and no temp folder behind."""
    m = small()
    path = ckpt.save_checkpoint(tmp_path / "c", m.state_dict(), {"v": 1})
    import frontierkit.train.checkpoint as mod

    def boom(*a, **k):
        raise OSError("disk full")
    monkeypatch.setattr(mod, "save_file", boom)
    with pytest.raises(OSError):
        ckpt.save_checkpoint(tmp_path / "c", {k: v * 0 for k, v in m.state_dict().items()}, {"v": 2})
    assert json.loads((path / "config.json").read_text()) == {"v": 1}
    state = load_file(str(path / "model.safetensors"))
    assert torch.equal(state["0.weight"], m.state_dict()["0.weight"])
    assert [p.name for p in tmp_path.iterdir()] == ["c"]


def test_extra_files_are_written_inside_the_atomic_folder_and_names_are_checked(tmp_path):
    """``files`` (e.g. a tokenizer) land in the checkpoint folder itself; a name escaping it or shadowing the
    weights/config is a ValueError before anything is written, leaving the previous checkpoint as it was."""
    m = small()
    path = ckpt.save_checkpoint(tmp_path / "c", m.state_dict(), {"v": 1}, files={"tok/vocab.json": b"{}"})
    assert (path / "tok" / "vocab.json").read_bytes() == b"{}"
    for bad in ("../escape.txt", "/abs.txt", "model.safetensors", "config.json"):
        with pytest.raises(ValueError, match="relative name inside the folder"):
            ckpt.save_checkpoint(tmp_path / "c", m.state_dict(), {"v": 2}, files={bad: b"x"})
    assert json.loads((path / "config.json").read_text()) == {"v": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]


def test_tied_weights_are_saved(tmp_path):
    emb = nn.Embedding(5, 3)
    head = nn.Linear(3, 5, bias=False)
    head.weight = emb.weight
    model = nn.ModuleDict({"emb": emb, "head": head})
    ckpt.save_checkpoint(tmp_path / "t", model.state_dict(), {})
    fresh = nn.ModuleDict({"emb": nn.Embedding(5, 3), "head": nn.Linear(3, 5, bias=False)})
    ckpt.load_into(fresh, tmp_path / "t")
    assert torch.equal(fresh["emb"].weight, emb.weight)


class Payload:
    def __reduce__(self):
        return (os.system, (f"touch {MARKER}",))


MARKER = Path("/tmp/frontierkit-pickle-executed")


def test_pickle_payload_is_refused_without_executing(tmp_path):
    MARKER.unlink(missing_ok=True)
    path = ckpt.save_checkpoint(tmp_path / "c", small().state_dict(), {}, {"step": 1})
    with open(path / "trainer.pt", "wb") as f:
        pickle.dump({"step": Payload()}, f)
    torch.save({"evil": Payload()}, tmp_path / "zip.pt")          # the zip format too
    with pytest.raises(CheckpointError, match="never unpickles"):
        ckpt.load_trainer_state(path)
    os.replace(tmp_path / "zip.pt", path / "trainer.pt")
    with pytest.raises(CheckpointError, match="refused"):
        ckpt.load_trainer_state(path)
    assert not MARKER.exists()


def test_corrupt_and_mismatched_checkpoints_get_clear_errors(tmp_path):
    path = ckpt.save_checkpoint(tmp_path / "c", small().state_dict(), {})
    (path / "model.safetensors").write_bytes(b"\x00" * 100)
    with pytest.raises(CheckpointError, match="not a valid safetensors"):
        ckpt.load_model_state(path)
    (path / "config.json").write_text("{nope")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        ckpt.load_config_json(path)
    with pytest.raises(CheckpointError, match="not a directory"):
        ckpt.load_config_json(tmp_path / "missing")
    ckpt.save_checkpoint(tmp_path / "d", small().state_dict(), {})
    with pytest.raises(CheckpointError, match=r"shape mismatch .*0.weight: checkpoint \(4, 4\) vs model \(8, 4\)"):
        ckpt.load_into(nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 2)), tmp_path / "d")
    with pytest.raises(CheckpointError, match="missing"):
        ckpt.load_into(nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2), nn.Linear(2, 2)), tmp_path / "d")


def test_training_checkpoints_rotate_and_point_to_latest(tmp_path):
    m = small()
    for step in (10, 20, 30):
        ckpt.commit_training_checkpoint(tmp_path, step, m.state_dict(), {}, {"step": step}, keep=2)
    assert ckpt.latest_checkpoint(tmp_path).name == "step-0000030"
    assert sorted(p.name for p in ckpt.checkpoint_dir(tmp_path).glob("step-*")) == ["step-0000020", "step-0000030"]


def test_sharded_writers_commit_through_the_same_function(tmp_path):
    """A shard folder written into the temp dir (as DCP/DeepSpeed do) is committed by commit_training_dir:
    config.json + trainer.pt added, renamed to step-N, latest moved, older steps pruned, no temp left."""
    for step in (1, 2, 3):
        tmp = ckpt.begin_training_checkpoint(tmp_path, step)
        (tmp / "dcp").mkdir()
        (tmp / "dcp" / "__0_0.distcp").write_bytes(b"shard")
        path = ckpt.commit_training_dir(tmp, tmp_path, step, {"step": step}, {"step": step}, keep=2)
    assert path == ckpt.latest_checkpoint(tmp_path) == ckpt.step_path(tmp_path, 3)
    assert (path / "dcp" / "__0_0.distcp").read_bytes() == b"shard"
    assert json.loads((path / ckpt.CONFIG_FILE).read_text()) == {"step": 3}
    assert ckpt.load_trainer_state(path) == {"step": 3}
    assert sorted(p.name for p in ckpt.checkpoint_dir(tmp_path).iterdir()) == ["latest", "step-0000002",
                                                                              "step-0000003"]


def test_strategy_checkpoints_plain_state_without_the_trainer(tmp_path):
    """Strategy.save_checkpoint(out, step, config, trainer_state) / load_checkpoint(path) -> trainer_state:
    weights, AdamW and scheduler state round-trip; the loop's own keys come back untouched."""
    from frontierkit.train import TrainConfig
    from frontierkit.train.strategy import make_strategy
    cfg = TrainConfig(steps=5, warmup_steps=2)
    a = make_strategy(cfg)
    a.setup(small())
    a.module(torch.randn(3, 4)).sum().backward()
    a.optimizer.step()
    a.scheduler.step()
    a.save_checkpoint(tmp_path, 1, {"run": {}}, {"step": 1, "history": [{"loss": 1.0}]})
    b = make_strategy(cfg)
    b.setup(nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2)))
    state = b.load_checkpoint(ckpt.latest_checkpoint(tmp_path))
    assert state == {"step": 1, "history": [{"loss": 1.0}]}
    for pa, pb in zip(a.module.parameters(), b.module.parameters()):
        assert torch.equal(pa, pb)
        assert torch.equal(a.optimizer.state[pa]["exp_avg"], b.optimizer.state[pb]["exp_avg"])
    assert b.scheduler.state_dict() == a.scheduler.state_dict()


def test_strategy_module_does_not_import_the_loop():
    """The loop <-> strategy import circle stays broken: strategy.py imports config/optim, never loop."""
    import ast
    import frontierkit.train.strategy as strategy
    tree = ast.parse(Path(strategy.__file__).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert "loop" not in imported and not any(m and m.endswith(".loop") for m in imported)


def _train_cmd(out):
    return [sys.executable, "-m", "frontierkit.cli", "train", "digits", "--out", str(out), "--tracker", "none",
            "--quiet", "--train.steps", "1500", "--train.ckpt_every", "25", "--train.log_every", "25",
            "--model.hidden", "512", "--model.dropout", "0.2"]


@pytest.mark.slow
def test_resume_after_sigkill_is_bit_identical(tmp_path):
    """Kill a real training process mid-run (SIGKILL), resume it: final weights equal an uninterrupted run's bit for bit."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    ref = tmp_path / "ref"
    subprocess.run(_train_cmd(ref), check=True, env=env, capture_output=True)
    run = tmp_path / "killed"
    proc = subprocess.Popen(_train_cmd(run), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pointer = run / "checkpoints" / "latest"
    deadline = time.time() + 120
    while time.time() < deadline:
        if pointer.exists() and int(pointer.read_text().split("-")[1]) >= 100:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = int(pointer.read_text().split("-")[1])
    assert proc.returncode == -signal.SIGKILL and killed_at < 1500, "the run must be killed mid-training"
    assert not (run / "model").exists()
    resumed = subprocess.run(_train_cmd(run), check=True, env=env, capture_output=True, text=True)
    assert "1500 steps" in resumed.stdout
    a = load_file(str(ref / "model" / "model.safetensors"))
    b = load_file(str(run / "model" / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
