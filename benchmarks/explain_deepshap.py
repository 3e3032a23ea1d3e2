"""DeepExplainer (frontierkit) vs shap.DeepExplainer on the same model, background and inputs.

Side by side in one run: wall time (best of --repeats, one thread), the speed ratio, the largest
absolute difference between the two SHAP value arrays (all 10 classes), and each one's additivity
error max |sum(phi) - (f(x) - E f(b))|. Models: a digits MLP and a digits CNN (max-pool, module ReLUs:
cases shap gets right), trained briefly with the shared loop; plus a ResNet (BatchNorm, residual adds,
a ReLU module reused twice), where shap's values do not add up, so only additivity is compared.

    .venv/bin/python benchmarks/explain_deepshap.py [--quick]

Writes benchmarks/results/explain_deepshap.json and .md.
"""
from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def best_time(fn, repeats: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def additivity(model, x, phi, expected) -> float:
    with torch.no_grad():
        out = model(x).numpy()
    phi = np.asarray(phi)
    return float(np.abs(phi.reshape(len(x), -1, phi.shape[-1]).sum(1) - (out - expected)).max())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer inputs and repeats")
    p.add_argument("--inputs", type=int, default=20)
    p.add_argument("--background", type=int, default=100)
    p.add_argument("--repeats", type=int, default=3)
    from bench_common import add_write_arg
    args = add_write_arg(p).parse_args()
    if args.quick:
        args.inputs, args.background, args.repeats = 5, 50, 1
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    import shap

    from frontierkit.explain import DeepExplainer
    from frontierkit.hardware import capability_line, cpu_capability
    from frontierkit.vision import VisionDataConfig, load_data, run_config_for, train_classifier

    (x_tr, _), (x_te, _) = load_data(VisionDataConfig(), "train"), load_data(VisionDataConfig(), "test")
    bg, x = x_tr[: args.background], x_te[: args.inputs]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("mlp", "cnn", "resnet"):
            model, metrics = train_classifier(run_config_for(name, steps=300), Path(tmp) / name)
            model.eval()
            ours_t, ours = best_time(lambda: DeepExplainer(model, bg).shap_values(x), args.repeats)
            shap_t, ref = best_time(lambda: np.asarray(shap.DeepExplainer(model, bg).shap_values(
                x, check_additivity=False)), args.repeats)
            expected = DeepExplainer(model, bg).expected_value.numpy()
            shap_right = name != "resnet"
            rows.append({"model": name, "test_acc": round(metrics["test_acc"], 4), "inputs": len(x),
                         "background": len(bg), "outputs": 10,
                         "ours_s": round(ours_t, 3), "shap_s": round(shap_t, 3),
                         "speedup": round(shap_t / ours_t, 2),
                         "max_abs_diff": float(np.abs(ours.numpy() - ref).max()) if shap_right else None,
                         "ours_additivity_err": additivity(model, x, ours, expected),
                         "shap_additivity_err": additivity(model, x, ref, expected)})
            print(rows[-1], flush=True)
    meta = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": f"{platform.machine()} {platform.processor() or ''} ({torch.get_num_threads()} thread), "
                       f"torch {torch.__version__}, shap {shap.__version__}, python {platform.python_version()}",
            "cpu_capability": cpu_capability(),
            "command": "python benchmarks/explain_deepshap.py" + (" --quick" if args.quick else "")}
    from bench_common import results_dir
    out = results_dir(ROOT / "benchmarks" / "results")  # benchmarks/results only with --write
    out.mkdir(parents=True, exist_ok=True)
    (out / "explain_deepshap.json").write_text(json.dumps({**meta, "rows": rows}, indent=2))
    cols = list(rows[0])
    fmt = lambda v: "n/a (shap wrong)" if v is None else (f"{v:.2e}" if isinstance(v, float) and abs(v) < 1e-2 and v else str(v))  # noqa: E731
    md = [f"# DeepExplainer: frontierkit vs shap.DeepExplainer\n", f"- date: {meta['date']}",
          f"- machine: {meta['machine']}", f"- cpu capability: {capability_line(meta['cpu_capability'])}",
          f"- command: `{meta['command']}`",
          "- time: best of repeats; speedup = shap_s / ours_s; diff over all inputs x pixels x 10 classes\n",
          "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    md += ["| " + " | ".join(fmt(r[c]) for c in cols) + " |" for r in rows]
    (out / "explain_deepshap.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
