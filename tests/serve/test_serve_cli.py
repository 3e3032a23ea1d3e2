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


def test_bare_serve_and_export_subcommand_parse(serve_model_dir, tmp_path):
    from frontierkit import models
    from frontierkit.vision.models import build_model
    models.save(build_model("mlp"), tmp_path / "clf")
    p = build_parser()
    a = p.parse_args(["serve", "--model", str(serve_model_dir), "--port", "9000", "--batching", "static",
                      "--max-body-bytes", "65536"])
    assert a.func is serve_cmd and a.model_dir == str(serve_model_dir) and a.port == 9000
    assert a.batching == "static" and a.max_body_bytes == 65536 and a.max_waiting == 256
    b = p.parse_args(["serve", "export-onnx", "--model", str(tmp_path / "clf"), "--out", str(tmp_path / "m.onnx")])
    assert b.func is export_cmd and b.model_dir == str(tmp_path / "clf") and b.out == str(tmp_path / "m.onnx")


def test_bad_input_is_one_line(tmp_path, capsys):
    """Missing --model, a missing folder, an empty folder, a port out of range, a .txt --out: exit 2, one line
    naming the option (typed arguments, frontierkit.argtypes)."""
    assert main(["serve"]) == 2
    assert main(["serve", "--model", str(tmp_path / "missing")]) == 2
    assert main(["serve", "export-onnx", "--model", str(tmp_path), "--out", str(tmp_path / "x.onnx")]) == 2
    assert main(["serve", "--port", "70000"]) == 2
    assert main(["serve", "export-onnx", "--out", str(tmp_path / "x.txt")]) == 2
    err = [e for e in capsys.readouterr().err.strip().splitlines() if "error:" in e]
    assert len(err) == 5 and "--model is required" in err[0], err
    assert "argument --model: model folder" in err[1] and "does not exist" in err[1]
    assert "--port 70000 is invalid: an integer in [0, 65535]" in err[3]
    assert "--out" in err[4] and ".onnx" in err[4]


def test_serving_a_classifier_is_refused(tmp_path, capsys):
    from frontierkit import models
    from frontierkit.vision.models import build_model
    models.save(build_model("mlp"), tmp_path / "clf")
    assert main(["serve", "--model", str(tmp_path / "clf")]) == 2
    assert "frontier serve needs a model tagged lm" in capsys.readouterr().err


def test_every_numeric_option_of_bare_serve_is_typed_and_refuses_out_of_range(capsys):
    """tests/test_cli_fuzz.py walks leaf parsers only, and `frontier serve` has a subcommand (export-onnx), so its
    own options are checked here: each is an argtypes ArgType; values just outside [lo, hi], NaN and text exit 2
    with one line naming the option and the allowed range."""
    import argparse

    from frontierkit.argtypes import ArgType
    serve = build_parser()._subparsers._group_actions[0].choices["serve"]
    opts = [a for a in serve._actions if a.option_strings and a.nargs != 0 and not a.choices
            and not isinstance(a, argparse._HelpAction)]
    assert opts and all(isinstance(a.type, ArgType) for a in opts), [a.option_strings for a in opts]
    ints = [a for a in opts if a.type.kind == "int"]
    assert {a.option_strings[0] for a in ints} >= {"--port", "--max-batch", "--max-waiting", "--max-body-bytes"}
    for a in ints:
        for bad in (str(a.type.lo - 1), str(a.type.hi + 1), "nan", "1.5", "many"):
            assert main(["serve", f"{a.option_strings[0]}={bad}"]) == 2
            err = capsys.readouterr().err.strip().splitlines()
            assert len(err) == 1 and a.option_strings[0] in err[0] and a.type.allowed in err[0], err
