"""Every benchmark script answers --help without running or touching its committed results, and writes
benchmarks/results only when given --write (otherwise a new dated folder under /tmp)."""
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
    assert "--write" in r.stdout, f"{script.name} takes no --write: add bench_common.add_write_arg(parser)"


def test_writer_goes_to_a_dated_tmp_folder_without_write(monkeypatch, tmp_path):
    import argparse
    monkeypatch.syspath_prepend(str(BENCH))
    monkeypatch.delenv("FRONTIERKIT_BENCH_WRITE", raising=False)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", None)
    import bench_common
    monkeypatch.setattr(bench_common, "WRITE", False)
    bench_common.add_write_arg(argparse.ArgumentParser()).parse_args([])
    before = {p: p.stat().st_mtime_ns for p in bench_common.RESULTS.glob("*")}
    info = {**bench_common.meta("python benchmarks/x.py"), "value": 1.0}
    bench_common.write("unit_write_probe", info, ["body"])
    assert {p: p.stat().st_mtime_ns for p in bench_common.RESULTS.glob("*")} == before
    written = list((tmp_path / "frontierkit-bench").glob("*/unit_write_probe.json"))
    assert len(written) == 1
    bench_common.add_write_arg(argparse.ArgumentParser()).parse_args(["--write"])
    assert bench_common.WRITE and bench_common.results_dir() == bench_common.RESULTS
