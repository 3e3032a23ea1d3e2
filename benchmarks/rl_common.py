"""Helpers shared by the RL benchmarks (benchmarks/rl_*.py): results files, machine info, and the
separate virtual environment for d3rlpy (it pins gymnasium 1.0.0, so it never goes into .venv)."""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
CACHE = ROOT / ".cache" / "rl"
D3RLPY_VENV = CACHE / "d3rlpy-venv"
D3RLPY_PINS = ["d3rlpy==2.8.1", "gymnasium==1.0.0"]


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores (shared), torch threads 1, Python {platform.python_version()}"


def write_results(name: str, data: dict, table: list[dict], command: str, notes: list[str]) -> None:
    """benchmarks/results/<name>.json and .md: date, machine, CPU capability, command, table, notes."""
    from frontierkit.hardware import capability_line, cpu_capability

    from bench_common import results_dir
    out = results_dir(RESULTS)              # benchmarks/results only with --write
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    cap = cpu_capability()
    payload = {"date": stamp, "machine": machine(), "cpu_capability": cap, "command": command, "notes": notes,
               "table": table, **data}
    (out / f"{name}.json").write_text(json.dumps(payload, indent=2, default=float))
    cols = list(dict.fromkeys(k for r in table for k in r))
    lines = [f"# {name}", "", f"- date: {stamp}", f"- machine: {machine()}",
             f"- cpu capability: {capability_line(cap)}", f"- command: `{command}`", ""]
    lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in table:
        lines.append("| " + " | ".join(_fmt(r.get(c, "")) for c in cols) + " |")
    lines += [""] + [f"- {n}" for n in notes]
    (out / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _fmt(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def mean_std(xs) -> str:
    import numpy as np
    return f"{np.mean(xs):.1f} ± {np.std(xs):.1f}"


def ensure_d3rlpy_venv() -> Path:
    """Create .cache/rl/d3rlpy-venv with d3rlpy + gymnasium 1.0.0; returns its python.

    To avoid downloading a second (CUDA) torch, the venv sees only this project's CPU torch through a
    .pth file pointing at a folder of symlinks to the torch packages; everything else is its own.
    """
    py = D3RLPY_VENV / "bin" / "python"
    probe = "import d3rlpy, gymnasium, torch; assert gymnasium.__version__ == '1.0.0'"
    if py.exists() and subprocess.run([str(py), "-c", probe], capture_output=True).returncode == 0:
        return py
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(D3RLPY_VENV)], check=True)
    import torch
    site_src = Path(torch.__file__).resolve().parents[1]
    link_dir = D3RLPY_VENV / "shared-torch"
    link_dir.mkdir(exist_ok=True)
    for entry in site_src.iterdir():
        if entry.name in ("torch", "torchgen", "functorch") or (entry.name.startswith("torch-") and entry.name.endswith(".dist-info")):
            target = link_dir / entry.name
            if not target.exists():
                target.symlink_to(entry)
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    Path(site, "shared_torch.pth").write_text(str(link_dir) + "\n")
    deps = ["sympy", "networkx", "jinja2", "fsspec", "filelock", "typing_extensions", "numpy", "setuptools"]
    subprocess.run([str(py), "-m", "pip", "install", "-q", *deps, *D3RLPY_PINS], check=True)
    subprocess.run([str(py), "-c", probe], check=True)
    return py


if __name__ == "__main__":
    print(ensure_d3rlpy_venv())
