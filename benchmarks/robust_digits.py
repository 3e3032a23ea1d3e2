"""Robust accuracy on digits (8x8, pixels in [0, 1]) per L∞ ε: a standard CNN, PGD adversarial training
(Madry et al. 2018) and TRADES (Zhang et al. 2019), each evaluated with the full ladder — FGSM, PGD-20,
PGD-100 with restarts, APGD-CE — plus the per-sample worst case, gradient-masking sanity checks, and
PGD-100 with 50 restarts at ε = 0.3 for the PGD-trained model, beside Madry et al.'s MNIST anchor
(ε = 0.3 PGD-AT: 92.5% under PGD-100, 89.6% with 50 restarts).

    .venv/bin/python benchmarks/robust_digits.py [--quick] [--out DIR]

--quick (used by tests/robust): an MLP, 150 training steps, 3-step training attacks, 150 test digits,
PGD-20 / PGD-50x2 / APGD-50, no 50-restart anchor. Writes <out>/robust_digits(_quick).json and .md
(default out: benchmarks/results).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import RESULTS, meta, write  # noqa: E402

MADRY_MNIST = {"eps": 0.3, "pgd100": 0.925, "pgd100_50_restarts": 0.896}


def settings(quick: bool) -> dict:
    if quick:
        return dict(arch="mlp", steps=150, attack_steps=3, train_eps=0.2, n=150, restarts=2, long_steps=50,
                    eps=[0.0, 0.1, 0.2, 0.3], anchor_restarts=0)
    return dict(arch="mlp", steps=1000, attack_steps=7, train_eps=0.3, n=450, restarts=5, long_steps=100,
                eps=[0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3], anchor_restarts=50)


def train(method: str, s: dict, out: Path):
    from frontierkit.config import from_dict
    from frontierkit.robust.defenses import RobustRunConfig, train_robust
    cfg = from_dict(RobustRunConfig, {
        "model": {"name": s["arch"]},
        "train": {"steps": s["steps"], "batch_size": 64, "lr": 3e-3, "warmup_steps": 20, "log_every": 50,
                  "eval_every": 0},
        "adv": {"method": method, "eps": s["train_eps"], "steps": s["attack_steps"], "eps_warmup": s["steps"] // 3}})
    t0 = time.process_time()
    model, _ = train_robust(cfg, out / method, eval_n=100)
    return model, time.process_time() - t0


def evaluate(model, x, y, s: dict) -> tuple[list[dict], list[dict]]:
    from frontierkit.robust.evaluate import ladder, large_eps_accuracy, robustness_table, sanity_checks
    attacks = ladder(s["restarts"], long_steps=s["long_steps"])
    rows = robustness_table(model, x, y, s["eps"], attacks)
    return rows, sanity_checks(rows, large_eps_accuracy(model, x, y, attacks["pgd-20"]))


def anchor(model, x, y, s: dict) -> float:
    """PGD-100 with ``anchor_restarts`` restarts at ε = 0.3 (Madry et al.'s 50-restart number)."""
    from frontierkit.robust.attacks import pgd
    from frontierkit.robust.evaluate import correct_under
    attack = lambda m, xb, yb, e: pgd(m, xb, yb, e, steps=100, restarts=s["anchor_restarts"], early_stop=True,  # noqa: E731
                                      generator=torch.Generator().manual_seed(0))
    return correct_under(model, x, y, attack, MADRY_MNIST["eps"]).float().mean().item()


def run(quick: bool, out: Path = RESULTS) -> dict:
    from frontierkit.robust.plots import markdown_table
    from frontierkit.vision import VisionDataConfig, load_data

    torch.set_num_threads(1)
    torch.manual_seed(0)
    s = settings(quick)
    x, y = load_data(VisionDataConfig(), "test")
    x, y = x[:s["n"]], y[:s["n"]]
    models, body = {}, []
    with tempfile.TemporaryDirectory() as tmp:
        for method in ("none", "pgd", "trades"):
            model, cpu_s = train(method, s, Path(tmp))
            t0 = time.process_time()
            rows, checks = evaluate(model, x, y, s)
            models[method] = {"train_cpu_s": round(cpu_s, 1), "eval_cpu_s": round(time.process_time() - t0, 1),
                              "rows": rows, "checks": checks}
            if method == "pgd" and s["anchor_restarts"]:
                models[method]["pgd100_x50_at_0.3"] = anchor(model, x, y, s)
            print(method, markdown_table(rows), file=sys.stderr, flush=True)
    table = [{"eps": r["eps"], **{f"{m} {c}": models[m]["rows"][i][c] for m in models for c in ("worst",)}}
             for i, r in enumerate(models["none"]["rows"])]
    name = "robust_digits_quick" if quick else "robust_digits"
    info = {**meta(f"python benchmarks/robust_digits.py{' --quick' if quick else ''}"), "settings": s,
            "madry_mnist": MADRY_MNIST, "models": models, "table": table}
    for method, label in (("none", "standard training"), ("pgd", f"PGD-AT (eps {s['train_eps']})"),
                          ("trades", f"TRADES (eps {s['train_eps']}, beta 6)")):
        m = models[method]
        body += [f"## {label}: {s['arch']}, {s['steps']} steps, {s['attack_steps']}-step training attack "
                 f"({m['train_cpu_s']} CPU-s train, {m['eval_cpu_s']} CPU-s eval)\n",
                 f"robust accuracy (%) on the first {s['n']} test digits; worst = right under every attack\n",
                 markdown_table(m["rows"]), ""]
        body += [f"- [{'ok' if c['passed'] else 'FAILED'}] {c['check']}: {c['detail']}" for c in m["checks"]] + [""]
    if s["anchor_restarts"]:
        r03 = next(r for r in models["pgd"]["rows"] if r["eps"] == 0.3)
        long_pgd = f"pgd-100x{s['restarts']}"
        body += ["## Beside Madry et al. 2018 (MNIST, eps 0.3, PGD-AT)\n",
                 "| | Madry MNIST | ours, digits |", "|---|---|---|",
                 f"| PGD-100 | 92.5 | {100 * r03[long_pgd]:.1f} (with {s['restarts']} restarts) |",
                 f"| PGD-100, 50 restarts | 89.6 | {100 * models['pgd']['pgd100_x50_at_0.3']:.1f} |",
                 f"| worst of the ladder incl. APGD-CE | — | {100 * r03['worst']:.1f} |", ""]
    write(name, info, body, out)
    return info


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="MLP, short training, 150 test digits (tests use this)")
    p.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    from bench_common import add_write_arg
    args = add_write_arg(p).parse_args()
    run(args.quick, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
