"""Tour section: train the four digits classifiers with the shared loop and tabulate their accuracy."""
from __future__ import annotations

import time

from ..report import Section, TourContext


def tour(ctx: TourContext) -> Section:
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import torch
    torch.set_num_threads(1)   # tiny models: one thread is as fast; the tour restores the count after

    from .models import count_parameters
    from .train import run_config_for, train_classifier

    steps = {"mlp": 300, "cnn": 400, "resnet": 400, "vit": 300} if ctx.quick else \
        {"mlp": 800, "cnn": 800, "resnet": 800, "vit": 800}
    rows = []
    for name, n in steps.items():
        t0 = time.perf_counter()
        model, m = train_classifier(run_config_for(name, steps=n, precision="auto"), ctx.out / name, quiet=ctx.quiet)
        rows.append({"model": name, "params": count_parameters(model), "steps": n,
                     "train_acc": round(m["train_acc"], 4), "test_acc": round(m["test_acc"], 4),
                     "seconds": round(time.perf_counter() - t0, 1)})
    fig, ax = plt.subplots(figsize=(5, 2.6))
    ax.bar([r["model"] for r in rows], [100 * r["test_acc"] for r in rows], color="#4a7ab7")
    ax.set_ylim(90, 100)
    ax.axhline(97, color="#b33", lw=0.8, ls="--")
    ax.set_ylabel("digits test accuracy (%)")
    for i, r in enumerate(rows):
        ax.text(i, 100 * r["test_acc"] + 0.2, f"{100 * r['test_acc']:.1f}", ha="center", fontsize=8)
    fig.tight_layout()
    return Section(
        title="Vision: small classifiers on digits",
        summary="MLP, CNN, ResNet (BatchNorm, residual adds, max-pool) and a tiny ViT trained on sklearn's "
                "8x8 digits with the shared training loop (AdamW, warmup+cosine). These are the models that "
                "explain, compress, robust and privacy build on. Dashed line: the 97% target for CNN/ResNet.",
        figures=[("digits test accuracy after training", fig)],
        tables=[("accuracy per model (450 held-out test digits)", rows)])
