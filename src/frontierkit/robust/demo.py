"""Tour section: adversarial examples beside clean ones, and robust accuracy vs ε for a standard model,
PGD-AT, TRADES and bit-depth squeezing (attacked adaptively with BPDA) on digits."""
from __future__ import annotations

import json
import time
from pathlib import Path

from ..report import Section, TourContext

BENCH = Path(__file__).resolve().parents[3] / "benchmarks" / "results" / "robust_digits.json"


def _models(ctx: TourContext):
    """(name -> trained model) for standard, PGD-AT and TRADES training (MLP under --quick, else CNN)."""
    from ..config import from_dict
    from .defenses import RobustRunConfig, train_robust

    arch, steps, attack_steps = ("mlp", 150, 3) if ctx.quick else ("cnn", 500, 7)
    models = {}
    for method in ("none", "pgd", "trades"):
        cfg = from_dict(RobustRunConfig, {
            "model": {"name": arch}, "train": {"steps": steps, "batch_size": 64, "lr": 3e-3, "warmup_steps": 20,
                                               "log_every": 50, "eval_every": 0},
            "adv": {"method": method, "eps": 0.2, "steps": attack_steps, "eps_warmup": steps // 3}})
        models[method] = train_robust(cfg, ctx.out / method, quiet=ctx.quiet, eval_n=100)[0]
    return models


def tour(ctx: TourContext) -> Section:
    import torch
    torch.set_num_threads(1)

    from ..vision.train import VisionDataConfig, load_data
    from .attacks import pgd
    from .evaluate import ladder, robustness_table
    from .plots import curves_figure, examples_figure
    from .purify import BitDepth, Purified

    t0 = time.perf_counter()
    torch.manual_seed(0)
    models = _models(ctx)
    x, y = load_data(VisionDataConfig(), "test")
    x, y = (x[:100], y[:100]) if ctx.quick else (x[:300], y[:300])
    attacks = {"pgd-10": lambda m, xb, yb, e: pgd(m, xb, yb, e, steps=10, early_stop=True,
                                                 generator=torch.Generator().manual_seed(0))} if ctx.quick \
        else {k: v for k, v in ladder(restarts=2, long_steps=50).items() if k != "fgsm"}
    eps = [0.0, 0.05, 0.1, 0.2, 0.3]
    defended = {"standard": models["none"], "PGD-AT (eps 0.2)": models["pgd"], "TRADES (eps 0.2)": models["trades"],
                "standard + 1-bit squeezing (BPDA)": Purified(models["none"], BitDepth(1), bpda=True)}
    curves = {name: robustness_table(m, x, y, eps, attacks) for name, m in defended.items()}
    masked = robustness_table(Purified(models["none"], BitDepth(1)), x, y, eps, attacks)
    curves["squeezing, naive gradients (masked!)"] = masked
    std = models["none"]
    x8, y8 = x[:8], y[:8]
    x_adv = pgd(std, x8, y8, 0.15, steps=20, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        pred, pred_adv = std(x8).argmax(-1), std(x_adv).argmax(-1)
    rows = [{"defence": name, **{f"eps {r['eps']:g}": round(100 * r["worst"], 1) for r in table}}
            for name, table in curves.items()]
    section = Section(
        title="Robust: adversarial attacks, adversarial training, purification",
        summary="PGD (Madry et al. 2018) finds imperceptible-budget perturbations that flip a standard digits "
                "classifier. PGD adversarial training and TRADES (through the shared loop's batch_transform hook) "
                "keep accuracy under attack; 1-bit squeezing looks robust only when attacked through its zero "
                "gradient — BPDA (Athalye et al. 2018) breaks it. Robust accuracy = right under every attack of the "
                f"ladder ({', '.join(attacks)}) on {len(x)} test digits; eps in [0, 1] pixel units.",
        figures=[("standard model: clean (top) vs PGD eps=0.15 (bottom), predictions above each image",
                  examples_figure(x8, x_adv, pred, pred_adv, y8)),
                 ("robust accuracy vs eps", curves_figure(curves))],
        tables=[("robust accuracy (%) per eps", rows)])
    if BENCH.is_file():
        bench = json.loads(BENCH.read_text())
        section.tables.append((f"benchmark (benchmarks/results/robust_digits.json, {bench.get('date', '')})",
                               bench.get("table", [])))
    section.text.append(("timing", f"{time.perf_counter() - t0:.1f} s"))
    return section
