"""`frontier compress quantize|prune|distill`: write a model the registry reloads and a comparison table;
user mistakes are one line."""
from __future__ import annotations

import json
from types import SimpleNamespace

from frontierkit import models
from frontierkit.cli import main


def _cli(capsys, *args):
    """Run ``frontier compress ...`` in-process (imports once); returncode, stdout, stderr."""
    code = main(["compress", *args])
    out = capsys.readouterr()
    return SimpleNamespace(returncode=code, stdout=out.out, stderr=out.err)


def test_compress_commands_write_models_and_tables(digits_cnn, tmp_path, capsys):
    """quantize (dynamic int8), prune (global 30% + fine-tune), prune --structured and distill each write a
    reloadable model and a table against the original (size, latency, accuracy)."""
    src, _ = digits_cnn
    runs = {"q": ["quantize", "--method", "dynamic"],
            "p": ["prune", "--amount", "0.3", "--finetune-steps", "20"],
            "s": ["prune", "--amount", "0.5", "--structured"],
            "d": ["distill", "--width", "8", "--steps", "30"]}
    for name, args in runs.items():
        r = _cli(capsys, *args, "--model", str(src), "--out", str(tmp_path / name))
        assert r.returncode == 0, r.stderr
        rows = json.loads(r.stdout)["rows"]
        assert rows[0]["model"] == "original" and {"MB", "latency_ms", "test_acc"} <= set(rows[1])
        assert models.load(tmp_path / name) is not None
    assert json.loads((tmp_path / "p" / "compress_report.json").read_text())[1]["sparsity"] == 0.3
    s = json.loads((tmp_path / "s" / "compress_report.json").read_text())
    assert s[1]["size_ratio"] < 0.4


def test_compress_user_errors_are_one_line(digits_cnn, tmp_path, capsys):
    src, _ = digits_cnn
    bad = _cli(capsys, "prune", "--amount", "1.5", "--model", str(src), "--out", str(tmp_path / "x"))
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "--amount 1.5 is invalid" in bad.stderr
    missing = _cli(capsys, "quantize", "--model", str(tmp_path / "nope"), "--out", str(tmp_path / "y"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr and "Traceback" not in missing.stderr
