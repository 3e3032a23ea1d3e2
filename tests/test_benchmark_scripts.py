"""Every benchmark script answers --help without running or touching its committed results."""
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
SCRIPTS = sorted(p for p in BENCH.glob("*.py") if not p.stem.endswith(("_common", "_worker")))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_help_describes_and_writes_nothing(script):
    results = BENCH / "results"
    before = {p: p.stat().st_mtime_ns for p in results.glob("*")}
    r = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "usage:" in r.stdout, r.stderr[-500:]
    assert {p: p.stat().st_mtime_ns for p in results.glob("*")} == before
