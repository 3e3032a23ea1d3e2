"""Faults during training (issue 18): SIGKILL inside a checkpoint write, SIGTERM/Ctrl-C, disk full, two
processes on one run folder, corrupt caches and data. Each resume is compared bit for bit (torch.equal,
tolerance 0) with an uninterrupted run of the same config. The 20-kill stress run is
benchmarks/reliability_kill.py; the torchrun rank-kill test is tests/test_reliability_distributed.py."""
from __future__ import annotations

import errno
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from frontierkit.errors import CheckpointError, DataError
from frontierkit.train import checkpoint as ckpt

STEPS = 40
ENV = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
ENV.pop(ckpt.FAULT_ENV, None)


def train_cmd(out: Path, tracker: str = "none") -> list[str]:
    """A 40-step digits run (MLP, dropout so the RNG state matters), a checkpoint every 10 steps."""
    return [sys.executable, "-m", "frontierkit.cli", "train", "digits", "--out", str(out), "--tracker", tracker,
            "--quiet", "--train.steps", str(STEPS), "--train.ckpt_every", "10", "--train.log_every", "10",
            "--train.warmup_steps", "5", "--model.hidden", "32", "--model.dropout", "0.2"]


def run(out: Path, fault: str | None = None, tracker: str = "none") -> subprocess.CompletedProcess:
    env = dict(ENV, **({ckpt.FAULT_ENV: fault} if fault else {}))
    return subprocess.run(train_cmd(out, tracker), env=env, capture_output=True, text=True, timeout=300)


def weights(out: Path) -> dict[str, torch.Tensor]:
    return load_file(str(out / "model" / ckpt.MODEL_FILE))


def assert_bit_identical(a: Path, b: Path) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ref") / "run"
    r = run(out)
    assert r.returncode == 0, r.stderr[-2000:]
    return out


def test_sigkill_inside_checkpoint_writes_resumes_bit_identically(reference, tmp_path):
    """SIGKILL (FRONTIERKIT_FAULT) after the weights are written, between the step-N rename and the `latest`
    pointer, and before pruning; each rerun resumes from what `latest` names and the final weights equal the
    uninterrupted run's (torch.equal)."""
    out = tmp_path / "run"
    for fault, resumes_at in (("after-weights@10", 0), ("after-rename@20", 10), ("after-pointer@30", 30)):
        r = run(out, fault)
        assert r.returncode == -signal.SIGKILL, (fault, r.stderr[-1000:])
        latest = ckpt.latest_checkpoint(out)
        assert (latest.name if latest else None) == (f"step-{resumes_at:07d}" if resumes_at else None), fault
        assert not (out / "model").exists()
    r = run(out)
    assert r.returncode == 0 and f"{STEPS} steps" in r.stdout, r.stderr[-2000:]
    assert not [p for p in ckpt.checkpoint_dir(out).iterdir() if p.name.startswith((".tmp-", ".old-"))]
    assert_bit_identical(reference, out)


@pytest.mark.slow
def test_sigterm_saves_closes_the_tracker_exits_143_and_resumes(reference, tmp_path):
    """SIGTERM at step 23 (between checkpoints): a checkpoint of step 23, the MLflow run marked KILLED, exit 143;
    the rerun resumes at 23 and ends bit-identical to the uninterrupted run."""
    out = tmp_path / "run"
    r = run(out, "step@23:SIGTERM", tracker="mlflow")
    assert r.returncode == 143, r.stderr[-2000:]
    assert "SIGTERM at step 23/40" in r.stderr and "Traceback" not in r.stderr
    assert ckpt.latest_checkpoint(out).name == "step-0000023"
    with sqlite3.connect(tmp_path / "mlflow.db") as db:
        assert db.execute("select status from runs").fetchall() == [("KILLED",)]
    r = run(out, tracker="mlflow")
    assert r.returncode == 0, r.stderr[-2000:]
    assert_bit_identical(reference, out)
    with sqlite3.connect(tmp_path / "mlflow.db") as db:
        assert db.execute("select status from runs").fetchall() == [("FINISHED",)]


def test_ctrl_c_saves_and_exits_130(tmp_path):
    """SIGINT (Ctrl-C) at step 7: a checkpoint of step 7 and exit 130 with a one-line message."""
    out = tmp_path / "run"
    r = run(out, "step@7:SIGINT")
    assert r.returncode == 130, r.stderr[-2000:]
    assert ckpt.latest_checkpoint(out).name == "step-0000007"
    assert r.stderr.strip().splitlines()[-1].startswith("frontier: interrupted: SIGINT at step 7/40")


# ---- in-process: disk full, the run lock ----------------------------------------------------------------

def tiny_trainer(out: Path, steps: int = 8):
    from frontierkit.data import TensorBatches
    from frontierkit.train import TrainConfig, Trainer
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Dropout(0.2), torch.nn.Linear(8, 2))
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(64, 4, generator=g), torch.randint(0, 2, (64,), generator=g)
    loss = lambda m, b: torch.nn.functional.cross_entropy(m(b[0]), b[1])  # noqa: E731
    cfg = TrainConfig(steps=steps, batch_size=16, warmup_steps=1, ckpt_every=2, log_every=2)
    return Trainer(model, loss, TensorBatches(x, y, batch_size=16), cfg, out=out, quiet=True), model


def test_disk_full_during_a_checkpoint_keeps_the_previous_one(tmp_path, monkeypatch):
    """ENOSPC while writing step 4's weights: CheckpointError naming the disk and step-0000002; no temp folder
    left; step-0000002 is still `latest`, the rerun resumes from it and ends bit-identical (torch.equal)."""
    ref_trainer, ref_model = tiny_trainer(tmp_path / "ref")
    ref_trainer.fit()
    real = ckpt.save_file

    def full_disk(state, path, *a, **k):
        if "step-0000004" in path:
            raise OSError(errno.ENOSPC, "No space left on device", path)
        return real(state, path, *a, **k)
    monkeypatch.setattr(ckpt, "save_file", full_disk)
    trainer, _ = tiny_trainer(tmp_path / "run")
    with pytest.raises(CheckpointError) as e:
        trainer.fit()
    msg = str(e.value)
    assert "step 4" in msg and "No space left on device" in msg and "step-0000002 is intact" in msg
    assert "free disk space" in msg and "\n" not in msg
    assert ckpt.latest_checkpoint(tmp_path / "run").name == "step-0000002"
    assert sorted(p.name for p in ckpt.checkpoint_dir(tmp_path / "run").iterdir()) == ["latest", "step-0000002"]
    monkeypatch.setattr(ckpt, "save_file", real)
    trainer, model = tiny_trainer(tmp_path / "run")
    assert trainer.fit().resumed_from == 2
    for a, b in zip(ref_model.state_dict().values(), model.state_dict().values()):
        assert torch.equal(a, b)


def test_disk_full_through_the_cli_is_one_line(tmp_path, monkeypatch, capsys):
    """The same fault through `frontier train digits`: exit 2 and one line, no traceback."""
    from frontierkit.cli import main
    real = ckpt.save_file
    monkeypatch.setattr(ckpt, "save_file", lambda s, p, *a, **k: (_ for _ in ()).throw(
        OSError(errno.ENOSPC, "No space left on device", p)) if "step-0000004" in p else real(s, p, *a, **k))
    code = main(["train", "digits", "--out", str(tmp_path / "run"), "--tracker", "none", "--quiet",
                 "--train.steps", "6", "--train.ckpt_every", "2", "--train.warmup_steps", "1", "--model.hidden", "8"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "No space left on device" in err and "Traceback" not in err


LOCKER = textwrap.dedent("""
    import fcntl, os, sys, time
    fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    print("locked", flush=True)
    time.sleep(120)
""")


def test_a_second_process_on_the_same_run_is_refused_and_a_crash_frees_the_lock(tmp_path):
    """Another process holds <out>/.lock: fit() refuses naming its pid; once that process is SIGKILLed the lock is
    gone (the OS drops flock locks) and training proceeds."""
    out = tmp_path / "run"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", LOCKER, str(out / ckpt.RunLock.FILE)], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        trainer, _ = tiny_trainer(out, steps=2)
        with pytest.raises(CheckpointError, match=rf"is in use: another frontier process \(pid {holder.pid}\)"):
            trainer.fit()
        assert not ckpt.checkpoint_dir(out).exists()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    trainer, _ = tiny_trainer(out, steps=2)
    assert trainer.fit().step == 2


# ---- corrupt caches and data ----------------------------------------------------------------------------

def test_truncated_tokenizer_cache_is_rebuilt(tmp_path, monkeypatch):
    """A half-written pycorpus BPE cache file is rebuilt, identical to a fresh one (self-heal)."""
    from frontierkit.data import pycorpus
    monkeypatch.setenv("FRONTIERKIT_CACHE", str(tmp_path))
    fresh = pycorpus.train_tokenizer(300, 20_000)
    path = tmp_path / "pycorpus-bpe-300-20000.json"
    path.write_text(path.read_text()[:500])
    assert pycorpus.train_tokenizer(300, 20_000).to_str() == fresh.to_str()
    encoded = pycorpus.encode_corpus(fresh, "val", 20_000)
    cached = next(tmp_path.glob("pycorpus-val-*.pt"))
    cached.write_bytes(cached.read_bytes()[:100])                      # truncated token cache: rebuilt too
    assert torch.equal(pycorpus.encode_corpus(fresh, "val", 20_000), encoded)


def test_truncated_tokenizer_in_a_model_folder_is_a_clear_error(tmp_path, capsys):
    """tokenizer.json of an LLM folder cut in half: `frontier llm generate` exits 2 with one line."""
    from frontierkit import models
    from frontierkit.cli import main
    from frontierkit.data.pycorpus import train_tokenizer
    m = models.build("llm", {"vocab_size": 1024, "n_layers": 1, "n_heads": 2, "d_model": 16, "max_seq_len": 32})
    folder = models.save(m, tmp_path / "llm")
    text = train_tokenizer(1024, 1_000_000).to_str()
    (folder / "tokenizer.json").write_text(text[: len(text) // 2])
    assert main(["llm", "generate", "--model", str(folder), "--prompt", "def"]) == 2
    err = capsys.readouterr().err
    assert "tokenizer.json is not a readable tokenizer" in err and err.count("\n") == 1


def test_truncated_npz_dataset_is_a_clear_error(tmp_path):
    """An offline RL dataset cut short: DataError naming the file, never a numpy/zip traceback."""
    import numpy as np
    from frontierkit.rl.data import load_dataset
    path = tmp_path / "d.npz"
    np.savez(path, observations=np.zeros((50, 3)), actions=np.zeros((50, 1)))
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(DataError, match="d.npz"):
        load_dataset(path)


def test_corpus_with_invalid_utf8_is_refused_naming_the_file(tmp_path):
    """A --data folder holding a latin-1 file: DataError naming the file and the byte, not silent U+FFFD text."""
    from frontierkit.data.pycorpus import load_text_path
    (tmp_path / "good.txt").write_text("x = 1\n" * 300)
    (tmp_path / "bad.txt").write_bytes(b"caf\xe9 " * 300)
    with pytest.raises(DataError, match=r"bad.txt' is not valid UTF-8 \(byte 3"):
        load_text_path(tmp_path)
