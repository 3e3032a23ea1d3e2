"""Shared by the benchmarks: run metadata (date, machine, CPU capability, command), the JSON + markdown
writer every result file goes through, and where results go: the committed ``benchmarks/results`` only
with an explicit ``--write`` (or ``FRONTIERKIT_BENCH_WRITE=1``), otherwise a new dated folder under /tmp,
so running a benchmark (or asking for its ``--help``) never overwrites committed numbers."""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


WRITE = False
"""set by ``--write``: results go to the committed benchmarks/results"""
_GATED = False
"""the script took ``--write`` (scripts not yet converted keep writing benchmarks/results; the test of
benchmark scripts fails for them)"""


class _Write(argparse.Action):
    def __call__(self, parser, namespace, values, option_string=None):
        global WRITE
        WRITE = True
        setattr(namespace, self.dest, True)


def add_write_arg(ap: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """``--write``: update benchmarks/results (the committed numbers); without it a dated /tmp folder."""
    global _GATED
    _GATED = True
    ap.add_argument("--write", nargs=0, action=_Write, default=False,
                    help="write benchmarks/results/<name>.json/.md (the committed numbers); without it the "
                         "results go to a new dated folder under /tmp/frontierkit-bench")
    return ap


def results_dir(out: Path = RESULTS) -> Path:
    """``out`` when it is not the committed folder; benchmarks/results with --write; else a new dated /tmp folder."""
    if Path(out) != RESULTS or WRITE or not _GATED or os.environ.get("FRONTIERKIT_BENCH_WRITE") == "1":
        return Path(out)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
    base = Path(tempfile.gettempdir()) / "frontierkit-bench"
    base.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f"{stamp}-", dir=base))
    print(f"[bench] results go to {folder} (pass --write to update benchmarks/results)", file=sys.stderr)
    return folder


def meta(command: str, **versions: str) -> dict:
    """Date (UTC), machine, library versions, the CPU capability record and the exact command."""
    from frontierkit.hardware import cpu_capability
    libs = ", ".join(f"{k} {v}" for k, v in versions.items())
    return {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": f"{platform.machine()} {platform.processor() or ''} ({torch.get_num_threads()} thread), "
                       f"torch {torch.__version__}{', ' + libs if libs else ''}, python {platform.python_version()}",
            "cpu_capability": cpu_capability(), "command": command}


def table(rows: list[dict]) -> list[str]:
    """Markdown table lines of ``rows`` (columns in first-seen order, floats to 3 decimals)."""
    keys = list(dict.fromkeys(k for r in rows for k in r))
    fmt = lambda v: f"{v:.3f}" if isinstance(v, float) else str(v)  # noqa: E731
    return ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys),
            *("| " + " | ".join(fmt(r.get(k, "")) for k in keys) + " |" for r in rows)]


def write(name: str, info: dict, body: list[str], out: Path = RESULTS) -> None:
    """``<out>/<name>.json`` (``info``) and ``<name>.md`` (a header with date, machine, command + ``body``)."""
    from frontierkit.hardware import capability_line
    out = results_dir(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(info, indent=2))
    md = [f"# {name}\n", f"- date: {info['date']}", f"- machine: {info['machine']}",
          f"- cpu capability: {capability_line(info['cpu_capability'])}", f"- command: `{info['command']}`", "",
          *body]
    (out / f"{name}.md").write_text("\n".join(md) + "\n")
    print("\n".join(md), file=sys.stderr)
