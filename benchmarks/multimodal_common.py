"""Shared pieces of the multimodal benchmarks: run metadata and the JSON + markdown writer."""
from __future__ import annotations

import datetime
import json
import platform
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def meta(command: str) -> dict:
    from frontierkit.hardware import cpu_capability
    return {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": f"{platform.machine()} ({torch.get_num_threads()} thread), torch {torch.__version__}, "
                       f"python {platform.python_version()}",
            "cpu_capability": cpu_capability(), "command": command}


def table(rows: list[dict]) -> list[str]:
    keys = list(dict.fromkeys(k for r in rows for k in r))
    fmt = lambda v: f"{v:.3f}" if isinstance(v, float) else str(v)  # noqa: E731
    return ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys),
            *("| " + " | ".join(fmt(r.get(k, "")) for k in keys) + " |" for r in rows)]


def write(name: str, info: dict, body: list[str]) -> None:
    """benchmarks/results/<name>.json (``info``) and <name>.md (date, machine, command + ``body``)."""
    from frontierkit.hardware import capability_line
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(info, indent=2))
    md = [f"# {name}\n", f"- date: {info['date']}", f"- machine: {info['machine']}",
          f"- cpu capability: {capability_line(info['cpu_capability'])}", f"- command: `{info['command']}`", "",
          *body]
    (RESULTS / f"{name}.md").write_text("\n".join(md) + "\n")
    print("\n".join(md), file=sys.stderr)
