"""Run folders keep their promises (issue 19, items 2 and 8): ``--init-from DIR`` starts a run from a saved
model of the same kind, refusing another kind or shape in one line; a refused run leaves no empty folder;
saved models follow the user's umask; under torchrun a run prints its summary once and a refusal one line."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from frontierkit.cli import main
from frontierkit.train.distributed import torchrun

ROOT = Path(__file__).resolve().parents[1]
VISION = ["vision", "train", "--config", str(ROOT / "configs/vision/mlp_digits.toml"), "--train.warmup_steps", "0",
          "--tracker", "none", "--quiet"]


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "model" / "model.safetensors"))


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("promises") / "mlp"
    threads = torch.get_num_threads()
    assert main([*VISION, "--train.steps", "20", "--out", str(out)]) == 0
    torch.set_num_threads(threads)
    return out


def test_init_from_starts_from_the_saved_weights(trained, tmp_path):
    """Oracle: the saved model's weights; tolerance 1e-6 (one Adam step at lr 1e-9 moves a weight by ≤ ~1e-9),
    while a run without --init-from starts elsewhere (differences > 1e-2)."""
    assert main([*VISION, "--train.steps", "1", "--train.lr", "1e-9", "--init-from", str(trained),
                 "--out", str(tmp_path / "b")]) == 0
    assert main([*VISION, "--train.steps", "1", "--train.lr", "1e-9", "--out", str(tmp_path / "c")]) == 0
    saved, started, fresh = _weights(trained), _weights(tmp_path / "b"), _weights(tmp_path / "c")
    assert max((saved[k] - started[k]).abs().max().item() for k in saved) < 1e-6
    assert max((saved[k] - fresh[k]).abs().max().item() for k in saved) > 1e-2


def test_init_from_another_kind_or_shape_is_refused_in_one_line_and_leaves_no_folder(trained, tmp_path, capsys):
    out = tmp_path / "llm"
    assert main(["llm", "train", "--config", str(ROOT / "configs/llm/tiny.toml"), "--init-from", str(trained),
                 "--out", str(out), "--tracker", "none", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds a 'vision' model" in err[0] and "--init-from needs llm" in err[0]
    assert not out.exists()  # the refused run left nothing behind
    assert main([*VISION, "--model.name", "cnn", "--init-from", str(trained), "--out", str(tmp_path / "cnn")]) == 2
    err = capsys.readouterr().err
    assert "does not fit this run's model" in err and "features.0.weight" in err
    assert not (tmp_path / "cnn").exists()


def test_refused_rerun_keeps_the_folder_and_names_the_field(trained, capsys):
    before = _weights(trained)
    assert main([*VISION, "--train.steps", "20", "--train.lr", "0.5", "--out", str(trained)]) == 2
    assert "train.lr=0.003, but this run sets train.lr=0.5" in capsys.readouterr().err
    after = _weights(trained)
    assert all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_saved_model_follows_the_umask(tmp_path, umask):
    """The atomic temp folder's 0700 / safetensors' 0600 must not leak into the saved model."""
    from frontierkit.train.checkpoint import save_checkpoint
    old = os.umask(umask)
    try:
        path = save_checkpoint(tmp_path / "model", {"w": torch.zeros(2)}, {"model": {}})
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o777 & ~umask
    for f in path.iterdir():
        assert f.stat().st_mode & 0o777 == 0o666 & ~umask, f.name


@pytest.mark.slow
def test_torchrun_prints_the_summary_once_and_a_refusal_in_one_line(tmp_path):
    """2-rank ddp on CPU (gloo): one JSON summary on stdout; a re-run with another lr: one error line."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}
    cli = ["-m", "frontierkit.cli", *VISION, "--train.steps", "4", "--strategy", "ddp"]
    out = str(tmp_path / "ddp")
    rc, stdout, stderr = torchrun([*cli, "--out", out], nproc=2, timeout=300, env=env)
    assert rc == 0, stderr[-2000:]
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 1 and json.loads(lines[0])["steps"] == 4
    rc, _, stderr = torchrun([*cli, "--train.lr", "0.5", "--out", out], nproc=2, timeout=300, env=env)
    assert rc != 0
    errors = [line for line in stderr.splitlines() if line.startswith("frontier: error:")]
    assert len(errors) == 1 and "train.lr=0.5" in errors[0]


@pytest.mark.slow
def test_torchrun_deepspeed_starts_from_init_from(tmp_path):
    """README's distributed block: DeepSpeed refuses a folder written by another strategy in one line that
    names --init-from, then starts a new --out from that run's model with --init-from (2 ranks, CPU, the
    seed's ZeRO-3 + offload JSON) without flooding the log with FutureWarnings."""
    pytest.importorskip("deepspeed")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src"), "DS_ACCELERATOR": "cpu"}
    llm = ["llm", "train", "--config", str(ROOT / "configs/llm/tiny.toml"), "--train.steps", "2",
           "--train.warmup_steps", "0", "--data.eval_batches", "1", "--tracker", "none", "--quiet"]
    single, ds = str(tmp_path / "llm-single"), str(tmp_path / "llm-deepspeed")
    assert main([*llm, "--out", single]) == 0
    cli = ["-m", "frontierkit.cli", *llm, "--strategy", "deepspeed",
           "--deepspeed-config", str(ROOT / "configs/deepspeed/zero3_offload.json")]
    rc, _, stderr = torchrun([*cli, "--out", single], nproc=2, timeout=400, env=env)
    errors = [line for line in stderr.splitlines() if line.startswith("frontier: error:")]
    assert rc != 0 and len(errors) == 1 and f"--init-from {single}" in errors[0], stderr[-2000:]
    rc, stdout, stderr = torchrun([*cli, "--out", ds, "--init-from", single], nproc=2, timeout=400, env=env)
    assert rc == 0, stderr[-2000:]
    assert len([line for line in stdout.splitlines() if line.startswith("{")]) == 1
    assert "FutureWarning" not in stderr
    assert json.loads((Path(ds) / "model" / "config.json").read_text())["run"]["train"]["init_from"] == single
