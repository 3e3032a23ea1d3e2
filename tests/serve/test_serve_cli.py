"""`frontier serve` CLI: a bare `frontier serve --model DIR` serves, `frontier serve export-onnx` exports,
bad input is one line (no traceback)."""
from __future__ import annotations

import pytest

from frontierkit.cli import build_parser, main
from frontierkit.serve.commands import export_cmd, serve_cmd


@pytest.fixture(autouse=True)
def only_core_and_serve(monkeypatch):
    """The `frontier` parser with this area's manifest (other areas' packages may be mid-edit)."""
    from frontierkit.serve.manifest import MANIFEST
    monkeypatch.setattr("frontierkit.cli.manifests", lambda: (MANIFEST,))


def test_bare_serve_and_export_subcommand_parse():
    p = build_parser()
    a = p.parse_args(["serve", "--model", "runs/llm", "--port", "9000", "--batching", "static"])
    assert a.func is serve_cmd and a.model_dir == "runs/llm" and a.port == 9000 and a.batching == "static"
    b = p.parse_args(["serve", "export-onnx", "--model", "runs/vision", "--out", "m.onnx"])
    assert b.func is export_cmd and b.model_dir == "runs/vision" and b.out == "m.onnx"


def test_bad_input_is_one_line(tmp_path, capsys):
    assert main(["serve"]) == 2
    assert main(["serve", "--model", str(tmp_path / "missing")]) == 2
    assert main(["serve", "export-onnx", "--model", str(tmp_path), "--out", str(tmp_path / "x.onnx")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(e.startswith("frontier: error: ") for e in err) and "--model is required" in err[0]


def test_serving_a_classifier_is_refused(tmp_path, capsys):
    from frontierkit import models
    from frontierkit.vision.models import build_model
    models.save(build_model("mlp"), tmp_path / "clf")
    assert main(["serve", "--model", str(tmp_path / "clf")]) == 2
    assert "frontier serve needs a model tagged lm" in capsys.readouterr().err
