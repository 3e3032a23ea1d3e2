"""Shared by the benchmarks: run metadata (date, machine, CPU capability, command) and the JSON +
markdown writer every result file goes through."""
from __future__ import annotations

import datetime
import json
import platform
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


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
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(info, indent=2))
    md = [f"# {name}\n", f"- date: {info['date']}", f"- machine: {info['machine']}",
          f"- cpu capability: {capability_line(info['cpu_capability'])}", f"- command: `{info['command']}`", "",
          *body]
    (out / f"{name}.md").write_text("\n".join(md) + "\n")
    print("\n".join(md), file=sys.stderr)
