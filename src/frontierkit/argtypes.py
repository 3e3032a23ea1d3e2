"""Typed, range-checked ``argparse`` argument types for every ``frontier`` subcommand.

A bad value on any command line ends in one line naming the option, the value and what is allowed
(``frontier llm generate: error: argument --max-new-tokens: -3 is invalid: an integer in [1, 1000000]``),
never a traceback. Checks that need no model run at parse time: ranges, NaN/inf, empty text, paths
that do not exist, files where folders are needed, and model folders of another kind (read from their
``config.json`` through the registry, without loading weights). Each type records what it accepts
(``kind``, ``lo``, ``hi``) so tests/test_cli_fuzz.py fuzzes every command by introspecting the parser;
a plain ``type=int``/``type=float`` (unbounded) is refused there, so new commands are covered.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any, Callable, Iterable

__all__ = ["ArgType", "integer", "number", "seed", "text", "model_folder", "model_or_name", "existing_file",
           "text_source", "out_dir", "out_file", "SEED_MAX"]

SEED_MAX = 2**32 - 1


def _is(check: str, p: Path) -> bool:
    """``p.is_file()``/``is_dir()``/``exists()`` that answer False for impossible paths (name too long, ...)."""
    try:
        return bool(getattr(p, check)())
    except (OSError, ValueError):
        return False


class ArgType:
    """A callable ``str -> value`` for ``add_argument(type=...)`` that says what it accepts."""

    def __init__(self, kind: str, allowed: str, convert: Callable[[str], Any], **info: Any):
        self.kind, self.allowed, self.convert, self.info = kind, allowed, convert, info
        self.__name__ = kind                       # argparse names the type in some messages

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["info"][name]
        except KeyError:
            raise AttributeError(name) from None

    def __call__(self, value: str) -> Any:
        return self.convert(value)

    def __repr__(self) -> str:
        return f"ArgType({self.kind}: {self.allowed})"


def _bad(value: Any, allowed: str) -> argparse.ArgumentTypeError:
    return argparse.ArgumentTypeError(f"{_show(value)} is invalid: {allowed}")


def _show(value: Any) -> str:
    """The value as typed when it is a plain token, else quoted (empty, spaces, control characters), cut at 60."""
    text = str(value)
    plain = text.isprintable() and text.strip() == text and text != "" and " " not in text
    text = text if plain else repr(text)
    return text if len(text) <= 60 else text[:57] + "..."


def _interval(lo: float, hi: float, lo_open: bool, hi_open: bool) -> str:
    return f"{'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"


def integer(lo: int, hi: int) -> ArgType:
    """An integer in [lo, hi]."""
    allowed = f"an integer in [{lo}, {hi}]"

    def convert(s: str) -> int:
        try:
            v = int(s.strip())
        except (ValueError, AttributeError):
            raise _bad(s, allowed) from None
        if not lo <= v <= hi:
            raise _bad(s, allowed)
        return v
    return ArgType("int", allowed, convert, lo=lo, hi=hi)


def seed() -> ArgType:
    """A random seed in [0, 2^32 - 1]."""
    return integer(0, SEED_MAX)


def number(lo: float, hi: float, *, lo_open: bool = False, hi_open: bool = False) -> ArgType:
    """A finite float in [lo, hi] (``lo_open``/``hi_open`` exclude the ends); NaN and inf are refused."""
    allowed = f"a finite number in {_interval(lo, hi, lo_open, hi_open)}"

    def convert(s: str) -> float:
        try:
            v = float(s.strip())
        except (ValueError, AttributeError):
            raise _bad(s, allowed) from None
        if not math.isfinite(v) or v < lo or v > hi or (lo_open and v == lo) or (hi_open and v == hi):
            raise _bad(s, allowed)
        return v
    return ArgType("float", allowed, convert, lo=lo, hi=hi, lo_open=lo_open, hi_open=hi_open)


def text(max_len: int = 100_000, nonempty: bool = True) -> ArgType:
    """Free text (a prompt, a question): not blank when ``nonempty``, at most ``max_len`` characters."""
    allowed = f"{'non-empty ' if nonempty else ''}text of at most {max_len} characters"

    def convert(s: str) -> str:
        if (nonempty and not s.strip()) or len(s) > max_len:
            raise _bad(s, allowed)
        return s
    return ArgType("text", allowed, convert, max_len=max_len)


def model_folder(kind: str | Iterable[str] | None = None, tags: str | Iterable[str] | None = None,
                 what: str = "this command") -> ArgType:
    """An existing run/model/HF folder whose ``config.json`` names a fitting model kind (weights are not read)."""
    def convert(s: str) -> str:
        from . import models
        from .errors import CheckpointError
        try:
            models.check_folder(s, kind=kind, tags=tags, what=what)
        except CheckpointError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
        except (OSError, ValueError) as e:              # a name too long, a NUL byte...
            raise _bad(s, f"a model folder ({type(e).__name__}: {e.strerror if isinstance(e, OSError) else e})") from None
        return s
    return ArgType("model", "a model folder", convert, model_kind=kind, tags=tags)


def model_or_name(names: Iterable[str], kind: str | Iterable[str] | None = None,
                  tags: str | Iterable[str] | None = None, what: str = "this command") -> ArgType:
    """One of ``names`` (an architecture) or a model folder of a fitting kind."""
    names = tuple(names)
    folder = model_folder(kind, tags, what)

    def convert(s: str) -> str:
        if s in names:
            return s
        if not _is("exists", Path(s)):
            raise _bad(s, f"an architecture ({', '.join(names)}) or an existing model folder")
        return folder(s)
    return ArgType("model-or-name", f"one of {', '.join(names)} or a model folder", convert, names=names,
                   model_kind=kind, tags=tags)


def existing_file(suffixes: Iterable[str] = (), what: str = "file") -> ArgType:
    """An existing file (with one of ``suffixes`` when given)."""
    suffixes = tuple(suffixes)
    allowed = f"an existing {what}" + (f" ({'/'.join(suffixes)})" if suffixes else "")

    def convert(s: str) -> str:
        p = Path(s)
        if not s.strip() or not _is("is_file", p):
            raise _bad(s, allowed + ("; it is a folder" if s.strip() and _is("is_dir", p) else "; it does not exist"))
        if suffixes and p.suffix.lower() not in suffixes:
            raise _bad(s, allowed)
        return s
    return ArgType("file", allowed, convert, suffixes=suffixes)


def text_source() -> ArgType:
    """An existing text file, or a folder of .txt/.py/.md files."""
    allowed = "an existing text file or a folder of .txt/.py/.md files"

    def convert(s: str) -> str:
        if not s.strip() or not _is("exists", Path(s)):
            raise _bad(s, allowed + "; it does not exist")
        return s
    return ArgType("text-source", allowed, convert)


def _file_in_the_way(p: Path) -> Path | None:
    """The first existing non-folder among ``p`` and its parents (it blocks creating ``p`` as a folder)."""
    for q in [p, *p.parents]:
        if _is("exists", q):
            return None if _is("is_dir", q) else q
    return None


def out_dir() -> ArgType:
    """A folder to write to: existing or creatable (no file in the way)."""
    allowed = "a folder path (existing or new; not a file)"

    def convert(s: str) -> str:
        if not s.strip():
            raise _bad(s, allowed)
        blocker = _file_in_the_way(Path(s))
        if blocker is not None:
            raise _bad(s, f"{allowed}; {str(blocker)!r} is a file")
        if any(len(part.encode()) > 255 for part in Path(s).parts):
            raise _bad(s, f"{allowed}; a name in it is longer than 255 bytes")
        return s
    return ArgType("out-dir", allowed, convert)


def out_file(suffixes: Iterable[str]) -> ArgType:
    """A file to write, with one of ``suffixes``; its folder must be creatable."""
    suffixes = tuple(suffixes)
    allowed = f"a file path ending in {'/'.join(suffixes)} (not a folder)"

    def convert(s: str) -> str:
        p = Path(s)
        if (not s.strip() or p.suffix.lower() not in suffixes or _is("is_dir", p)
                or any(len(part.encode()) > 255 for part in p.parts)):
            raise _bad(s, allowed)
        blocker = _file_in_the_way(p.parent)
        if blocker is not None:
            raise _bad(s, f"{allowed}; {str(blocker)!r} is a file")
        return s
    return ArgType("out-file", allowed, convert, suffixes=suffixes)
