"""Every benchmark script answers --help without running or touching its committed results, and writes
benchmarks/results only when given --write (otherwise a new dated folder under /tmp)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
SCRIPTS = sorted(p for p in BENCH.glob("*.py") if not p.stem.endswith(("_common", "_worker")))


HELP_RUNNER = r"""
import contextlib, io, json, runpy, sys
from pathlib import Path
report, results = Path(sys.argv[1]), Path(sys.argv[2])
sys.path.insert(0, str(results.parent))                  # the scripts import bench_common from their folder
mtimes = lambda: {str(p): p.stat().st_mtime_ns for p in results.glob("*")}
out = {}
for path in sys.argv[3:]:
    before, stdout, stderr, code = mtimes(), io.StringIO(), io.StringIO(), 0
    sys.argv = [path, "--help"]
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            runpy.run_path(path, run_name="__main__")
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except BaseException as e:
            code = 1
            print(f"{type(e).__name__}: {e}", file=stderr)
    out[path] = {"code": code, "stdout": stdout.getvalue(), "stderr": stderr.getvalue(),
                 "wrote": before != mtimes()}
report.write_text(json.dumps(out))
"""


@pytest.fixture(scope="module")
def helps(tmp_path_factory) -> dict:
    """Every script's ``--help`` in one interpreter (torch imported once: ~15 s instead of ~3 s a script); a
    script that fails there is rerun alone by its test, so one script's imports cannot hide or cause a failure."""
    report = tmp_path_factory.mktemp("bench-help") / "help.json"
    subprocess.run([sys.executable, "-c", HELP_RUNNER, str(report), str(BENCH / "results"), *map(str, SCRIPTS)],
                   capture_output=True, text=True, timeout=600)
    return json.loads(report.read_text()) if report.exists() else {}


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_help_describes_and_writes_nothing(script, helps):
    r = helps.get(str(script))
    if r is None or r["code"] != 0 or "usage:" not in r["stdout"] or r["wrote"]:      # confirm it on its own
        results = BENCH / "results"
        before = {p: p.stat().st_mtime_ns for p in results.glob("*")}
        alone = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120)
        r = {"code": alone.returncode, "stdout": alone.stdout, "stderr": alone.stderr,
             "wrote": {p: p.stat().st_mtime_ns for p in results.glob("*")} != before}
    assert r["code"] == 0 and "usage:" in r["stdout"], r["stderr"][-500:]
    assert not r["wrote"], f"{script.name} --help changed benchmarks/results"
    assert "--write" in r["stdout"], f"{script.name} takes no --write: add bench_common.add_write_arg(parser)"


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
