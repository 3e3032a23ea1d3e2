"""Configs: TOML + dotted overrides, and one-line errors naming field, value and what is allowed."""
import contextlib
import dataclasses
import io
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from frontierkit.cli import main
from frontierkit.config import ConfigError, from_dict, help_text, load_config, parse_overrides, to_dict
from frontierkit.train import TrainConfig
from frontierkit.train.commands import DigitsRun, TextRun


def test_toml_then_overrides_win(tmp_path):
    f = tmp_path / "r.toml"
    f.write_text('[train]\nlr = 0.01\nsteps = 50\nschedule = "wsd"\n[model]\nhidden = 32\n')
    cfg = load_config(DigitsRun, f, ["--train.lr", "3e-4", "--model.dropout=0.1", "--train.precision", "bf16"])
    assert cfg.train.lr == 3e-4 and cfg.train.steps == 50 and cfg.train.schedule == "wsd"
    assert cfg.model.hidden == 32 and cfg.model.dropout == 0.1 and cfg.train.precision == "bf16"
    assert from_dict(DigitsRun, to_dict(cfg)) == cfg                        # round trip
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.train.lr = 1.0  # type: ignore[misc]


@pytest.mark.parametrize("overrides, message", [
    (["--train.lrr", "1"], "train.lrr is not a field of TrainConfig; allowed: steps"),
    (["--train.steps", "ten"], "train.steps='ten' is invalid: expected int"),
    (["--train.steps", "1.5"], "train.steps=1.5 is invalid: expected int"),
    (["--train.steps", "0"], "train.steps=0 is invalid: must be > 0"),
    (["--train.precision", "fp8"], "train.precision='fp8' is invalid: expected one of 'fp32', 'bf16', 'fp16'"),
    (["--train.warmup_steps", "500", "--train.steps", "100"], "train.warmup_steps=500 is invalid"),
    (["--train.lr", "nan"], "train.lr=nan is invalid: must be a finite number > 0"),
    (["--data.upscale", "2"], "model.in_features=64 is invalid: must equal (8*data.upscale)^2 = 256"),
    (["--train.lr"], "--train.lr needs a value"),
    (["--train", "3"], "train=3 is invalid: expected a table of TrainConfig fields"),
])
def test_bad_configs_name_the_field(overrides, message):
    with pytest.raises(ConfigError) as e:
        load_config(DigitsRun, None, overrides)
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_impossible_combination_across_sections():
    with pytest.raises(ConfigError, match=r"model.vocab_size=1024 is invalid: must equal data.vocab_size=2048"):
        load_config(TextRun, None, ["--data.vocab_size", "2048"])


def test_missing_and_malformed_toml(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(DigitsRun, tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[train\nlr=")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(DigitsRun, bad)


def test_help_lists_fields_with_docstrings():
    text = help_text(DigitsRun)
    assert "--train.grad_accum" in text and "micro-batches accumulated per optimizer step" in text
    assert "--model.hidden" in text and "hidden width" in text


def test_override_values_parse_as_toml_scalars():
    assert parse_overrides(["--a.b", "3", "--a.c", "3e-4", "--d", "true", "--e", "[1, 2]", "--f", "hello"]) == \
        {"a": {"b": 3, "c": 3e-4}, "d": True, "e": [1, 2], "f": "hello"}


junk = st.one_of(st.text(max_size=8), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                 st.booleans(), st.none(), st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))


@settings(max_examples=300, deadline=None)
@given(field=st.sampled_from([f.name for f in dataclasses.fields(TrainConfig)] + ["bogus", ""]), value=junk)
def test_fuzzed_train_configs_fail_only_with_config_error(field, value):
    """Any value in any field either builds a valid config or raises ConfigError naming the field."""
    try:
        cfg = from_dict(TrainConfig, {field: value}, prefix="train.")
    except ConfigError as e:
        assert f"train.{field}" in str(e)
        return
    kept = getattr(cfg, field)
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    assert kept == value or (isinstance(value, int) and kept == float(value)) \
        or (numeric and isinstance(kept, str) and kept == str(value))   # a str field takes `--name 2024` as text
    if isinstance(getattr(cfg, field), float):
        assert not math.isnan(getattr(cfg, field)) or field not in ("lr",)


FIELDS = ["--train.steps", "--train.lr", "--train.precision", "--model.hidden", "--data.upscale", "--train.bogus",
          "--model", "--train.grad_accum", "--train.schedule"]
VALUES = st.one_of(st.text(alphabet="-.=_abcdefgilmnoprstuv0123456789 e[]", max_size=10),
                   st.integers(-5, 10**9).map(str), st.floats().map(str), st.sampled_from(FIELDS))


@settings(max_examples=200, deadline=None)
@given(args=st.lists(st.one_of(st.sampled_from(FIELDS), VALUES), min_size=1, max_size=6))
def test_fuzzed_cli_overrides_never_traceback(args):
    """Random override args through the real CLI (--print-config): exit 0, or 2 with one error line; never a traceback."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(["train", "digits", "--print-config", *args])
        except SystemExit as e:              # argparse's own usage errors
            code = e.code
    err = err.getvalue()
    assert code in (0, 2), err
    assert "Traceback" not in err
    if code == 2:
        assert err.startswith("frontier: error:") or err.startswith("usage:")
        assert err.startswith("usage:") or err.count("\n") == 1


def test_section_override_keeps_the_recipes_own_defaults():
    """--train.steps 60 changes steps only; DigitsRun's lr=3e-3 / warmup 20 stay (not TrainConfig's)."""
    cfg = load_config(DigitsRun, None, ["--train.steps", "60"])
    assert cfg.train == dataclasses.replace(DigitsRun().train, steps=60)


def test_help_shows_the_recipes_section_defaults():
    """--help shows DigitsRun's train.lr default (3e-3), not TrainConfig's own (3e-4)."""
    line = next(line for line in help_text(DigitsRun).splitlines() if "--train.lr " in line)
    assert "0.003" in line and "0.0003" not in line


def test_none_is_text_for_string_literals_and_none_for_optional_fields():
    import typing
    from dataclasses import dataclass

    @dataclass(frozen=True, kw_only=True)
    class C:
        approx: typing.Literal["tanh", "none"] = "tanh"
        top_p: float | None = 0.9
        name: str = "x"

    cfg = load_config(C, None, ["--approx", "none", "--top_p", "none", "--name", "2024"])
    assert cfg.approx == "none" and cfg.top_p is None and cfg.name == "2024"


def test_missing_required_field_is_a_config_error():
    from dataclasses import dataclass

    @dataclass(frozen=True, kw_only=True)
    class R:
        path: str

    with pytest.raises(ConfigError, match="path is required by R"):
        from_dict(R, {})
