"""Frozen, keyword-only dataclass configs <-> TOML, dotted CLI overrides, validation errors.

A config is a ``@dataclass(frozen=True, kw_only=True)`` whose fields carry a docstring on the
line(s) below them (read for ``--help``). Nested configs are dataclass-typed fields. Values
are checked against the annotations (int, float, str, bool, Literal, Optional, tuple, nested
dataclass); ranges and combinations are checked in ``__post_init__`` with :func:`require`.
Every problem raises :class:`ConfigError` with one line naming the field, the value and what
is allowed.
"""
from __future__ import annotations

import ast
import dataclasses
import datetime
import inspect
import json
import sys
import textwrap
import types
import typing
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

T = TypeVar("T")


class ConfigError(ValueError):
    """A config value is wrong; the message names the field, the value and what is allowed."""


def require(ok: bool, field: str, value: Any, allowed: str) -> None:
    """Raise ConfigError unless ``ok``: ``field=value`` is invalid, ``allowed`` says what fits."""
    if not ok:
        raise ConfigError(f"{field}={value!r} is invalid: {allowed}")


@lru_cache(maxsize=None)
def field_docs(cls: type) -> dict[str, str]:
    """Docstrings written under each field of a dataclass (CleanRL's ``Args`` style)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for node, nxt in zip(body, body[1:]):
            if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                    and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)
                    and isinstance(nxt.value.value, str)):
                docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp))
    if origin is tuple:
        return "a list of " + _type_name(get_args(tp)[0])
    if tp is type(None):
        return "none"
    if dataclasses.is_dataclass(tp):
        return f"a table of {tp.__name__} fields"
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, name: str) -> Any:
    """Check ``value`` against annotation ``tp`` (ints widen to floats); return the typed value."""
    origin = get_origin(tp)
    bad = ConfigError(f"{name}={value!r} is invalid: expected {_type_name(tp)}")
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, name)
            except ConfigError:
                pass
        if type(None) in args and isinstance(value, str) and value.lower() in ("none", "null"):
            return None                      # CLI text `none` for an optional field
        raise bad
    if origin is Literal:
        if value in get_args(tp) and type(value) in {type(a) for a in get_args(tp)}:
            return value
        raise bad
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise bad
        args = get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{name}[{i}]") for i, v in enumerate(value))
        if len(args) != len(value):
            raise ConfigError(f"{name}={value!r} is invalid: expected {len(args)} values")
        return tuple(_coerce(v, a, f"{name}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise bad
        return from_dict(tp, value, prefix=name + ".")
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise bad
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise bad
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise bad
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float, datetime.date, datetime.time)) and not isinstance(value, bool):
            return value.isoformat() if hasattr(value, "isoformat") else str(value)  # `--name 2024`
        raise bad
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    raise bad


def from_dict(cls: type[T], data: dict[str, Any], prefix: str = "") -> T:
    """Build config ``cls`` from a nested dict, refusing unknown keys and wrong types."""
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix.rstrip('.') or cls.__name__}={data!r} is invalid: expected a table")
    hints = _hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        if key not in names:
            raise ConfigError(f"{prefix}{key} is not a field of {cls.__name__}; "
                              f"allowed: {', '.join(names)}")
        if dataclasses.is_dataclass(hints[key]) and isinstance(value, dict):
            value = merge(to_dict(_default(fields[key])), value)  # override the section's own defaults
        kwargs[key] = _coerce(value, hints[key], prefix + key)
    missing = [f.name for f in dataclasses.fields(cls) if f.init and f.name not in kwargs
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]  # type: ignore[misc]
    if missing:
        raise ConfigError(f"{prefix}{missing[0]} is required by {cls.__name__} but was not given")
    try:
        return cls(**kwargs)
    except ConfigError as e:
        if prefix and not str(e).startswith(prefix):
            raise ConfigError(prefix + str(e)) from None
        raise


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return {}


def to_dict(cfg: Any) -> dict[str, Any]:
    """Config -> plain nested dict (tuples as lists), ready for JSON or TOML."""
    def conv(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: conv(getattr(v, f.name)) for f in dataclasses.fields(v) if f.init}
        if isinstance(v, tuple):
            return [conv(x) for x in v]
        return v
    return conv(cfg)


def _parse_scalar(text: str) -> Any:
    """CLI text -> TOML scalar (``3e-4`` -> float, ``true`` -> bool, ``[1,2]`` -> list) or str.

    ``none`` stays text: it becomes None only for an optional field (see ``_coerce``), so a
    Literal that allows the string "none" can still be set.
    """
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        pass
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    return text


def parse_overrides(args: list[str]) -> dict[str, Any]:
    """``["--train.lr", "3e-4", "--model.n_layers=4"]`` -> nested dict of overrides."""
    out: dict[str, Any] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--") or len(arg) == 2:
            raise ConfigError(f"unexpected argument {arg!r}: overrides look like --section.field VALUE")
        key = arg[2:]
        if "=" in key:
            key, text = key.split("=", 1)
            i += 1
        else:
            if i + 1 >= len(args) or (args[i + 1].startswith("--") and not _is_number(args[i + 1])):
                raise ConfigError(f"--{key} needs a value (e.g. --{key} 3)")
            text = args[i + 1]
            i += 2
        node = out
        parts = key.replace("-", "_").split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--{key} conflicts with an earlier override of {p}")
        node[parts[-1]] = _parse_scalar(text)
    return out


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Recursive dict merge; ``over`` wins."""
    out = dict(base)
    for k, v in over.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def read_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML recipe with a clear error for a missing or malformed file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist; pass an existing .toml file "
                          f"(recipes live in configs/)")
    try:
        return tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"config file {str(path)!r} is not valid TOML: {e}") from None


def load_config(cls: type[T], path: str | Path | None = None, overrides: list[str] | dict | None = None,
                base: dict[str, Any] | None = None) -> T:
    """Defaults <- ``base`` <- TOML file <- dotted overrides, validated into ``cls``."""
    data = dict(base or {})
    if path is not None:
        data = merge(data, read_toml(path))
    if overrides:
        over = overrides if isinstance(overrides, dict) else parse_overrides(list(overrides))
        data = merge(data, over)
    return from_dict(cls, data)


def save_json(cfg: Any, path: str | Path) -> None:
    Path(path).write_text(json.dumps(to_dict(cfg), indent=2, sort_keys=True))


def describe(cls: type, prefix: str = "", defaults: Any = None) -> list[tuple[str, str, str]]:
    """(dotted name, default, doc) for every field, recursing into nested configs (for --help).

    Nested sections show the defaults of the enclosing recipe (its ``default_factory``), not
    the section class's own defaults.
    """
    rows = []
    docs = field_docs(cls)
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        tp = hints[f.name]
        if defaults is not None:
            default = getattr(defaults, f.name)
        else:
            default = _default(f) if (f.default is not dataclasses.MISSING
                                      or f.default_factory is not dataclasses.MISSING) else "(required)"
        if dataclasses.is_dataclass(tp):
            rows += describe(tp, prefix + f.name + ".", default if dataclasses.is_dataclass(default) else None)
            continue
        rows.append((prefix + f.name, repr(default), docs.get(f.name, "")))
    return rows


def help_text(cls: type) -> str:
    """Field table for ``frontier <area> <cmd> --help``."""
    rows = describe(cls)
    width = max((len(r[0]) for r in rows), default=0) + 2
    lines = [f"config fields ({cls.__name__}); override with --name VALUE:"]
    for name, default, doc in rows:
        lines.append(f"  --{name.ljust(width)}{default}  {doc}".rstrip())
    return "\n".join(lines)
