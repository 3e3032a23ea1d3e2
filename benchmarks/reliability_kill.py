"""Crash consistency stress run (issue 18): SIGKILL a real ``frontier train digits`` run at N random moments,
rerun it each time, and check the resumed run's final weights equal the uninterrupted run's bit for bit
(torch.equal, tolerance 0).

Moments are drawn from a seed: about 40 % at named points of a checkpoint write or of the loop, injected with
``FRONTIERKIT_FAULT`` (after the weights are in the temp folder; between the ``step-N`` rename and the
``latest`` pointer; after the pointer, before pruning; right after an optimizer step), the rest at a random
wall-clock time between 30 % and 100 % of the uninterrupted run's duration (anywhere: imports, a step, a
checkpoint write, the final export).

    python benchmarks/reliability_kill.py            # 20 kills
    python benchmarks/reliability_kill.py --quick    # 3 kills (one per checkpoint-write point)
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

STEPS, EVERY = 60, 10
POINTS = ("after-weights", "after-rename", "after-pointer", "step")


def cmd(out: Path) -> list[str]:
    return [sys.executable, "-m", "frontierkit.cli", "train", "digits", "--out", str(out), "--tracker", "none",
            "--quiet", "--train.steps", str(STEPS), "--train.ckpt_every", str(EVERY), "--train.log_every", "10",
            "--train.warmup_steps", "5", "--model.hidden", "32", "--model.dropout", "0.2"]


def env(fault: str | None = None) -> dict[str, str]:
    e = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    e.pop("FRONTIERKIT_FAULT", None)
    return {**e, "FRONTIERKIT_FAULT": fault} if fault else e


def latest(out: Path) -> str:
    p = out / "checkpoints" / "latest"
    return p.read_text().strip() if p.is_file() else "none"


def identical(a: Path, b: Path) -> bool:
    import torch
    from safetensors.torch import load_file
    wa, wb = load_file(str(a / "model" / "model.safetensors")), load_file(str(b / "model" / "model.safetensors"))
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def plan(n: int, seed: int, quick: bool) -> list[tuple[str, str]]:
    """(mode, what) per kill: ("point", "after-rename@30") or ("timed", "0.62") (fraction of the run's duration)."""
    if quick:
        return [("point", "after-weights@10"), ("point", "after-rename@20"), ("point", "after-pointer@30")]
    rng = random.Random(seed)
    out = [("point", f"{p}@{s}") for p, s in (("after-weights", 10), ("after-rename", 30), ("after-pointer", 50),
                                              ("after-rename", STEPS))]
    while len(out) < round(0.4 * n):
        point = rng.choice(POINTS)
        step = rng.randint(1, STEPS) if point == "step" else EVERY * rng.randint(1, STEPS // EVERY)
        out.append(("point", f"{point}@{step}"))
    while len(out) < n:
        out.append(("timed", f"{rng.uniform(0.3, 1.0):.3f}"))
    return out[:n]


def trial(root: Path, i: int, mode: str, what: str, ref: Path, ref_s: float) -> dict:
    out = root / f"trial-{i:02d}"
    t0 = time.perf_counter()
    if mode == "point":
        r = subprocess.run(cmd(out), env=env(what), capture_output=True, text=True, timeout=900)
        killed = r.returncode == -signal.SIGKILL
    else:
        proc = subprocess.Popen(cmd(out), env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            proc.wait(timeout=float(what) * ref_s)
            killed = False                          # finished before the kill moment
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            killed = True
    at = latest(out)
    r = subprocess.run(cmd(out), env=env(), capture_output=True, text=True, timeout=900)
    ok = r.returncode == 0 and identical(ref, out)
    row = {"trial": i, "fault": what if mode == "point" else f"SIGKILL at {float(what):.0%} of the run",
           "killed": killed, "latest at kill": at, "resume exit": r.returncode, "bit-identical": ok,
           "seconds": round(time.perf_counter() - t0, 1)}
    if r.returncode != 0:                          # keep the rerun's last error line for the record
        row["error"] = (r.stderr.strip().splitlines() or [""])[-1][:200]
    print(row, file=sys.stderr, flush=True)
    shutil.rmtree(out, ignore_errors=True)
    return row


def main() -> None:
    from bench_common import add_write_arg, meta, table, write

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kills", type=int, default=20, help="SIGKILL moments (default 20)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the kill moments")
    ap.add_argument("--quick", action="store_true", help="3 kills, one at each checkpoint-write point")
    add_write_arg(ap)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="reliability-kill-"))
    try:
        t0 = time.perf_counter()
        ref = root / "reference"
        subprocess.run(cmd(ref), env=env(), check=True, capture_output=True)
        ref_s = time.perf_counter() - t0
        rows = [trial(root, i, mode, what, ref, ref_s) for i, (mode, what) in
                enumerate(plan(args.kills, args.seed, args.quick), 1)]
    finally:
        shutil.rmtree(root, ignore_errors=True)
    good = sum(r["bit-identical"] for r in rows)
    killed = sum(r["killed"] for r in rows)
    summary = {"kills": len(rows), "killed_mid_run": killed, "bit_identical": good,
               "reference_seconds": round(ref_s, 1)}
    name = "reliability_kill" + ("_quick" if args.quick else "")
    command = "python benchmarks/reliability_kill.py" + (" --quick" if args.quick else f" --kills {args.kills}")
    write(name, {**meta(command), **summary, "rows": rows},
          [f"**{good}/{len(rows)} resumes bit-identical** to the uninterrupted run ({killed} of the {len(rows)} "
           f"processes were killed mid-run; a timed kill that came after the run finished still counts its rerun). "
           f"Run: `frontier train digits`, {STEPS} steps, a checkpoint every {EVERY}, MLP hidden 32 with dropout "
           f"0.2; uninterrupted run {ref_s:.1f} s on this machine (shared, loaded CPU).", "", *table(rows)])
    sys.exit(0 if good == len(rows) else 1)


if __name__ == "__main__":
    main()
