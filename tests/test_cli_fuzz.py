"""Bad input to every ``frontier`` subcommand (issue 18): hypothesis feeds negative, zero, huge, NaN/inf,
empty, unicode and garbage values, wrong paths, folders of another model kind and files of another format
to each typed argument of every subcommand, found by walking ``build_parser()`` (new commands are
covered automatically). Each bad value must end in exit 2 and one line naming the option and what is
allowed, never a traceback; accepted values must lie in the range the argument declares.

The runtime half loads real (tiny, untrained) models saved through the registry and checks what only a
loaded model can tell: prompt + --max-new-tokens past the context, corrupt weights, a config.json of the
wrong shape, input shapes and class indices the model cannot take."""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from frontierkit import argtypes, cli
from frontierkit.argtypes import ArgType

PENDING_AREAS: set[str] = set()
"""areas being built by other issues at the time of writing: fuzzed like every other, but their plain
``type=int`` arguments are not yet refused by test_every_numeric_and_path_argument_is_typed"""

PATH_DESTS = {"model", "model_dir", "model_name", "out", "data_path", "config", "deepspeed_config", "dataset",
              "input", "image"}


def _leaves(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """(command path, parser) of every subcommand, aliases once: the leaves, and a parser with subcommands
    too when it has options of its own (``frontier serve --port`` runs the server, ``serve export-onnx`` exports)."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    own = [a for a in parser._actions if a.option_strings and a.dest != "help"]
    if not subs or (path and own):
        yield path, parser
    if not subs:
        return
    seen: set[int] = set()
    for name, sp in subs[0].choices.items():
        if id(sp) not in seen:
            seen.add(id(sp))
            yield from _leaves(sp, path + (name,))


PARSER = cli.build_parser()
LEAVES = list(_leaves(PARSER))
ACTIONS = [(path, a) for path, p in LEAVES for a in p._actions
           if a.option_strings and (isinstance(a.type, ArgType) or a.choices) and a.nargs != 0]


@pytest.fixture(autouse=True)
def _one_parser(monkeypatch):
    """main() parses with the parser built once above (building it costs ~0.2 s)."""
    monkeypatch.setattr(cli, "build_parser", lambda: PARSER)


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        code = cli.main(argv)
    return code, out.getvalue(), err.getvalue()


def assert_one_line_error(code: int, err: str, *names: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err
    assert err.count("\n") == 1 and ": error: " in err, err
    assert any(n in err for n in names), (names, err)


@pytest.fixture(scope="module")
def zoo(tmp_path_factory) -> dict[str, Path]:
    """Wrong paths and files of other formats, plus one (fake) folder per registered model kind."""
    from frontierkit import models
    root = tmp_path_factory.mktemp("zoo")
    (root / "text.txt").write_text("not a model\n")
    (root / "data.npz").write_bytes(b"PK\x03\x04 truncated zip")
    (root / "empty").mkdir()
    bad = {"binary-config": b"\xff\xfe\x00garbage", "list-config": b"[]", "kind-not-str": b'{"kind": 5}',
           "unknown-kind": b'{"kind": "no-such-kind", "model": {}}', "no-kind": b'{"model": {"x": 1}}'}
    for name, content in bad.items():
        (root / name).mkdir()
        (root / name / "config.json").write_bytes(content)
    for kind in models.kinds():
        (root / f"kind-{kind}" / "model").mkdir(parents=True)
        (root / f"kind-{kind}" / "model" / "config.json").write_text(json.dumps({"kind": kind, "model": {"x": 1}}))
    return root


def bad_paths(zoo: Path, action: argparse.Action) -> list[str]:
    """Paths no argument of this type accepts (a model folder of a fitting kind is left out)."""
    t = action.type
    common = [str(zoo / "missing"), str(zoo / "ünïcødé-😀" / "x"), "", str(zoo / "text.txt" / "below-a-file")]
    if t.kind in ("model", "model-or-name"):
        fits = {k for k in __import__("frontierkit").models.kinds()
                if _fits(k, t.info.get("model_kind"), t.info.get("tags"))}
        kinds = [str(zoo / f"kind-{k}") for k in __import__("frontierkit").models.kinds() if k not in fits]
        return common + [str(zoo / "text.txt"), str(zoo / "data.npz"), str(zoo / "empty"), *kinds,
                         *(str(zoo / n) for n in ("binary-config", "list-config", "kind-not-str", "unknown-kind"))]
    if t.kind == "file":
        return common + [str(zoo / "empty")] + ([str(zoo / "data.npz")] if ".npz" not in t.suffixes else [])
    if t.kind in ("out-dir", "out-file"):
        return ["", str(zoo / "text.txt" / "below-a-file")] + ([str(zoo / "text.txt")] if t.kind == "out-dir" else
                                                                [str(zoo / "empty"), str(zoo / "x.unknown")])
    if t.kind == "text-source":
        return common
    return common


def _fits(kind: str, want_kind, want_tags) -> bool:
    from frontierkit import models
    k = models.kinds()[kind]
    kinds = {want_kind} if isinstance(want_kind, str) else set(want_kind or ())
    tags = {want_tags} if isinstance(want_tags, str) else set(want_tags or ())
    return (not kinds or kind in kinds) and tags <= k.tags


NUMBER_JUNK = st.one_of(
    st.sampled_from(["nan", "NaN", "inf", "-inf", "1e999", "-1e999", "", " ", "abc", "1,5", "0x10", "½", "一",
                     "−3", "3.5.1", "1e", "--", "None", "[]", "🙂", "9" * 40, "-" + "9" * 40]),
    st.integers(-10**15, 10**15).map(str), st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(max_size=12))
TEXT_JUNK = st.one_of(st.sampled_from(["", " ", "\t\n", "x" * 200_001, "ünïcødé 😀", "\x00", "-1", "nan"]),
                      st.text(max_size=20))


def _value_strategy(action: argparse.Action, zoo: Path):
    t = action.type
    if isinstance(t, ArgType) and t.kind in ("int", "float"):
        outside = [st.integers(-10**18, int(math.floor(t.lo)) - 1).map(str),
                   st.integers(int(math.ceil(t.hi)) + 1, 10**18).map(str)]
        return st.one_of(NUMBER_JUNK, *outside)
    if isinstance(t, ArgType) and t.kind in ("model", "model-or-name", "file", "out-dir", "out-file", "text-source"):
        return st.one_of(st.sampled_from(bad_paths(zoo, action)), st.text(max_size=8).map(lambda s: str(zoo / "no" / s)))
    return TEXT_JUNK


def test_walk_finds_every_area_and_typed_arguments():
    """The walk sees the subcommands of every area and more than 60 typed/choice arguments."""
    areas = {path[0] for path, _ in LEAVES}
    assert {"train", "data", "llm", "vision", "explain", "robust", "compress", "multimodal", "privacy"} <= areas
    assert len(ACTIONS) > 60


def test_every_numeric_and_path_argument_is_typed():
    """No subcommand takes a bare type=int/float (unbounded: -3, NaN, 10^12 reach the code) or an untyped
    model/out/input path: each declares what it allows through frontierkit.argtypes."""
    loose = []
    for path, p in LEAVES:
        if path[0] in PENDING_AREAS:
            continue
        for a in p._actions:
            if not a.option_strings or a.nargs == 0 or a.choices:
                continue
            if a.type in (int, float) or (a.dest in PATH_DESTS and not isinstance(a.type, ArgType)):
                loose.append(f"frontier {' '.join(path)} {a.option_strings[0]}")
    assert not loose, f"untyped arguments: {loose}"


@settings(max_examples=400, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                    HealthCheck.too_slow])
@given(data=st.data())
def test_fuzzed_arguments_fail_with_one_line_naming_the_option(data, zoo):
    """Any value for any typed/choice argument of any subcommand: either the argument's type accepts it and
    it lies in the declared range, or ``frontier ...`` exits 2 with one line naming the option, never a traceback."""
    path, action = data.draw(st.sampled_from(ACTIONS), label="argument")
    value = data.draw(_value_strategy(action, zoo), label="value")
    opt = action.option_strings[0]
    try:
        accepted = action.type(value) if action.type else value
        ok = action.choices is None or accepted in action.choices
    except argparse.ArgumentTypeError:
        ok = False
    if ok:                       # a valid value: check it respects the declared bounds; never run the command
        t = action.type
        if isinstance(t, ArgType) and t.kind in ("int", "float"):
            assert math.isfinite(accepted) and t.lo <= accepted <= t.hi
        return
    code, _, err = run_cli([*path, f"{opt}={value}"])
    assert_one_line_error(code, err, opt)
    if isinstance(action.type, ArgType) and action.type.kind in ("int", "float"):
        assert action.type.allowed in err


@pytest.mark.parametrize("argv, expected", [
    (["llm", "generate", "--max-new-tokens", "-3", "--model", "x", "--prompt", "def"],
     "--max-new-tokens -3 is invalid: an integer in [1, 1000000]"),
    (["llm", "generate", "--temperature", "nan", "--model", "x", "--prompt", "def"],
     "--temperature nan is invalid: a finite number in [0, 100]"),
    (["privacy", "accountant", "--sample-rate", "0", "--steps", "10", "--sigma", "1"],
     "--sample-rate 0 is invalid: a finite number in (0, 1]"),
    (["data", "shapes", "--n", "1000000000"], "--n 1000000000 is invalid: an integer in [1, 1024]"),
    (["robust", "eval", "--eps-list", "0.1,nan", "--model", "x"], "--eps-list '0.1,nan' is invalid"),
    (["explain", "ig", "--input", "test:5-2", "--model", "x"], "--input 'test:5-2' is invalid"),
    (["multimodal", "zero-shot", "--template", "a {colour}", "--model", "x"], "--template 'a {colour}' is invalid"),
    (["llm", "generate"], "the following arguments are required: --model, --prompt"),
    (["vision", "eval", "--model", "/no/such/run"], "argument --model: model folder '/no/such/run' does not exist"),
])
def test_issue_examples_and_space_separated_values(argv, expected):
    """The space-separated spelling a user types (``--max-new-tokens -3``) gives the same one line."""
    code, _, err = run_cli(argv)
    assert_one_line_error(code, err, expected)


# ---- runtime: what only a loaded model can tell ---------------------------------------------------------

@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    """A 64-token-context LLM (with the cached pycorpus BPE) and a digits MLP, untrained, saved via the registry."""
    from frontierkit import models
    from frontierkit.data.pycorpus import train_tokenizer
    root = tmp_path_factory.mktemp("tiny")
    llm = models.build("llm", {"vocab_size": 1024, "n_layers": 1, "n_heads": 2, "d_model": 32, "max_seq_len": 64})
    models.save(llm, root / "llm" / "model")
    train_tokenizer(1024, 1_000_000).save(str(root / "llm" / "model" / "tokenizer.json"))
    models.save(models.build("vision", {"name": "mlp"}), root / "vision" / "model")
    for name, kind in (("llm-corrupt", "llm"), ("vision-corrupt", "vision")):
        src = root / kind / "model"
        dst = root / name / "model"
        dst.mkdir(parents=True)
        for f in src.iterdir():
            dst.joinpath(f.name).write_bytes(f.read_bytes())
        (dst / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}garbage")
    (root / "llm-badcfg" / "model").mkdir(parents=True)
    (root / "llm-badcfg" / "model" / "config.json").write_text(json.dumps({"kind": "llm", "model": {"depth": 3}}))
    (root / "llm-badcfg" / "model" / "model.safetensors").write_bytes(b"")
    return root


def test_generation_past_the_context_stops_with_a_clear_message(tiny):
    """--max-new-tokens 100000 on a 64-token model: refused before generating, naming the context and the
    largest allowed value (documented choice: no silent sliding window)."""
    code, out, err = run_cli(["llm", "generate", "--model", str(tiny / "llm"), "--prompt", "def",
                              "--max-new-tokens", "100000"])
    assert_one_line_error(code, err, "--max-new-tokens 100000 is invalid for this model")
    assert "64-token context" in err and "allowed: 1 to 63" in err and out == ""
    code, out, err = run_cli(["llm", "generate", "--model", str(tiny / "llm"), "--prompt", "def",
                              "--max-new-tokens", "63", "--temperature", "0"])
    assert code == 0 and out.startswith("def"), err


def test_a_folder_of_another_kind_is_named(tiny):
    """llm generate on a vision run: 'holds a 'vision' model', not a TransformerConfig field error."""
    code, _, err = run_cli(["llm", "generate", "--model", str(tiny / "vision"), "--prompt", "def"])
    assert_one_line_error(code, err, "holds a 'vision' model")
    assert "frontier llm generate needs llm" in err


@pytest.mark.parametrize("argv, expected", [
    (["llm", "generate", "--model", "{llm-corrupt}", "--prompt", "x"], "is not a valid safetensors file"),
    (["vision", "eval", "--model", "{vision-corrupt}"], "is not a valid safetensors file"),
    (["llm", "eval", "--model", "{llm-badcfg}"], "does not describe a valid 'llm' model"),
    (["explain", "ig", "--model", "{vision}", "--target", "10", "--input", "test:0-1", "--out", "{out}"],
     "--target 10 is invalid: this model has 10 classes"),
    (["robust", "attack", "--model", "{vision}", "--start", "5000", "--out", "{out}"], "--start 5000 / --n 8 is invalid"),
    (["robust", "attack", "--model", "{vision}", "--clip-min", "1", "--clip-max", "0"], "clip-min must be below"),
    (["explain", "ig", "--model", "{vision}", "--input", "{npy}", "--out", "{out}"], "which this model cannot read"),
    (["explain", "ig", "--model", "{vision}", "--input", "{fake-npy}", "--out", "{out}"], "is not a readable numeric .npy"),
])
def test_runtime_errors_are_one_line(tiny, tmp_path, argv, expected):
    """Corrupt weights, a config.json that does not build, class indices and rows out of range, inputs of the
    wrong shape or format: one line, exit 2."""
    import numpy as np
    np.save(tmp_path / "x.npy", np.zeros((2, 1, 3, 3), dtype=np.float32))
    (tmp_path / "fake.npy").write_text("not numpy")
    subs = {"{out}": str(tmp_path / "out"), "{npy}": str(tmp_path / "x.npy"), "{fake-npy}": str(tmp_path / "fake.npy")}
    argv = [subs.get(a, a.replace("{", str(tiny) + "/").replace("}", "")) if "{" in a else a for a in argv]
    code, _, err = run_cli(argv)
    assert_one_line_error(code, err, expected)


@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(prompt=st.text(max_size=30), n=st.integers(1, 80))
def test_fuzzed_prompts_generate_or_fail_in_one_line(tiny, prompt, n):
    """Any unicode prompt and length on the real 64-token model: the text streams (exit 0) or one line, exit 2."""
    code, out, err = run_cli(["llm", "generate", "--model", str(tiny / "llm"), f"--prompt={prompt}",
                              f"--max-new-tokens={n}", "--temperature", "0"])
    if code == 0:
        assert out.startswith(prompt) and "Traceback" not in err
    else:
        assert_one_line_error(code, err, "--prompt", "--max-new-tokens")
