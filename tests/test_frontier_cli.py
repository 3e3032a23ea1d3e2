"""The `frontier` CLI: help, area dispatch, runs with tracking, one-line errors."""
import json
import subprocess
import sys

from frontierkit.cli import main
from frontierkit.track import read_metrics


def run(*args):
    return subprocess.run([sys.executable, "-m", "frontierkit.cli", *args], capture_output=True, text=True)


def test_help_lists_areas_and_fields():
    top = run("--help")
    assert top.returncode == 0
    for area in ("train", "data", "tour"):
        assert area in top.stdout
    sub = run("train", "digits", "--help")
    assert "--train.warmup_steps" in sub.stdout and "linear warmup steps" in sub.stdout
    assert "--out DIR" in sub.stdout and "--tracker" in sub.stdout


def test_train_digits_run_tracks_to_jsonl_and_mlflow(tmp_path, capsys):
    out = tmp_path / "runs" / "d"
    code = main(["train", "digits", "--out", str(out), "--quiet", "--train.steps", "60",
                 "--train.log_every", "20"])
    assert code == 0
    assert "test accuracy" in capsys.readouterr().out
    rows = [r for r in read_metrics(out) if "loss" in r]     # (the first row is the memory report)
    assert [r["step"] for r in rows] == [20, 40, 60]
    assert rows[-1]["loss"] < rows[0]["loss"] and rows[-1]["eval/acc"] > 0.8
    assert (tmp_path / "runs" / "mlflow.db").exists()
    cfg = json.loads((out / "model" / "config.json").read_text())
    assert cfg["model"]["hidden"] == 128 and cfg["run"]["train"]["steps"] == 60


def test_user_errors_are_one_line_without_traceback(tmp_path):
    bad = run("train", "digits", "--train.schedule", "linear", "--out", str(tmp_path))
    assert bad.returncode == 2
    assert bad.stderr.strip() == ("frontier: error: train.schedule='linear' is invalid: expected one of "
                                  "'cosine', 'constant', 'wsd'")
    missing = run("train", "text", "--config", str(tmp_path / "missing.toml"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr and "Traceback" not in missing.stderr


def test_unsafe_checkpoint_in_run_folder_is_refused(tmp_path):
    """Resuming from a run folder whose trainer.pt carries a pickle payload fails cleanly."""
    out = tmp_path / "r"
    assert main(["train", "digits", "--out", str(out), "--quiet", "--tracker", "none",
                 "--train.steps", "20", "--train.warmup_steps", "2", "--train.ckpt_every", "10"]) == 0
    latest = out / "checkpoints" / (out / "checkpoints" / "latest").read_text()
    import pickle
    (latest / "trainer.pt").write_bytes(pickle.dumps({"x": print}))
    (out / "checkpoints" / "step-0000010").exists()
    r = run("train", "digits", "--out", str(out), "--quiet", "--tracker", "none", "--train.steps", "30", "--train.warmup_steps", "2")
    assert r.returncode == 2 and "refused to load" in r.stderr and "Traceback" not in r.stderr


def test_data_size_mistakes_are_one_line_errors(tmp_path):
    r = run("train", "digits", "--train.batch_size", "5000", "--out", str(tmp_path), "--tracker", "none")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "train.batch_size=5000 exceeds the 1347 samples" in r.stderr


def test_version_and_unknown_top_level_flags():
    """`frontier --version` prints the version (exit 0); an unknown flag is named, not swallowed."""
    from frontierkit import __version__
    v = run("--version")
    assert v.returncode == 0 and v.stdout.strip() == f"frontierkit {__version__}"
    bad = run("--frobnicate")
    assert bad.returncode == 2 and "unrecognised arguments: --frobnicate" in bad.stderr
    sub = run("data", "info", "--bogus", "1")
    assert sub.returncode == 2 and "unrecognised arguments: --bogus 1" in sub.stderr and "Traceback" not in sub.stderr
