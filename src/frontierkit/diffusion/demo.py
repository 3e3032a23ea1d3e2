"""Tour section: digits from the pixel DDPM, shapes generated from held-out captions beside a classifier's
reading of them, ControlNet outlines → images, and sample quality vs steps per scheduler (DDIM, Euler,
DPM-Solver++). Reuses the cached runs and results of benchmarks/diffusion_quality.py (no training here)."""
from __future__ import annotations

import json
import time
from pathlib import Path

from ..report import Section, TourContext

RESULTS = Path(__file__).resolve().parents[3] / "benchmarks" / "results" / "diffusion_quality.json"


def _results() -> dict | None:
    return json.loads(RESULTS.read_text()) if RESULTS.is_file() else None


def _steps_plot(rows: list[dict]):
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(8, 2.8))
    for label, color in (("DDIM", "#4a7ab7"), ("DPM-Solver++(2M)", "#c0504d"), ("Euler", "#6a9a3a")):
        pts = [(r["steps"], r["rmse_to_ref"], r["frechet"]) for r in rows
               if r["sampler"].startswith(label + " ") and "reference" not in r["sampler"]]
        if pts:
            s, e, f = zip(*pts)
            axes[0].plot(s, e, "o-", label=label, color=color)
            axes[1].plot(s, f, "o-", label=label, color=color)
    ref = [r["frechet"] for r in rows if "reference" in r["sampler"]]
    if ref:
        axes[1].axhline(ref[0], color="k", ls="--", lw=0.8, label="DDIM 1000")
    axes[0].set(xscale="log", xlabel="steps", ylabel="RMSE to 1000-step DDIM")
    axes[1].set(xscale="log", xlabel="steps", ylabel="Fréchet distance (CNN features)")
    axes[0].legend(fontsize=7)
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    return fig


def _grid(images, titles=None, cols=8, title=""):
    import matplotlib.pyplot as plt
    n = images.shape[0]
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(1.25 * cols, 1.45 * rows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            img = images[i].permute(1, 2, 0).numpy()
            ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=1)
            if titles:
                ax.set_title(titles[i], fontsize=5)
    if title:
        fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    return fig


def _reading(classifier, images) -> list[str]:
    """What the shapes classifier (shape) and the measurements (colour, position) read in each image."""
    from ..data.shapes import COLORS, POSITIONS, SHAPES
    from .metrics import classify, color_of, position_of
    shapes, colors, pos = classify(classifier, images), color_of(images), position_of(images)
    names = list(COLORS)
    return [f"{names[c] if c >= 0 else '?'} {SHAPES[s]}\n{POSITIONS[p] if p >= 0 else '?'}"
            for s, c, p in zip(shapes.tolist(), colors.tolist(), pos.tolist())]


def tour(ctx: TourContext) -> Section:
    import matplotlib
    matplotlib.use("Agg", force=False)
    import torch
    torch.set_num_threads(1)
    from .experiments import generate, load_classifier, pipeline_for, run_dir

    t0 = time.perf_counter()
    res = _results()
    sec = Section(title="Diffusion: DDPM, latent text-to-image, ControlNet, samplers",
                  summary="Pixel DDPM on 8×8 digits (class-conditional, classifier-free guidance s=3, DPM-Solver++ "
                          "20 steps); a latent text-to-image model on shapes captions (VAE and UNet trained here) "
                          "sampled from held-out captions, read back by a kit CNN; a ControlNet conditioned on "
                          "outlines; sample quality vs steps per scheduler. Quality is measured in the CNN's "
                          "feature space (no Inception weights offline), see benchmarks/diffusion_quality.md. "
                          "The schedulers match diffusers step for step (≤ 1e-6), the pipelines end to end (≤ 1e-4).")
    quick = bool(res and res.get("quick", True))
    digits = run_dir("digits-class", quick)
    if (digits / "model" / "config.json").is_file():
        pipe = pipeline_for(digits, "DPMSolverMultistepScheduler")
        labels = torch.arange(20) % 10
        x = generate(pipe, 20, 20, seed=11, labels=labels, guidance_scale=3.0)
        sec.figures.append(("Class-conditional pixel DDPM on digits: two samples per class 0-9 "
                            "(DPM-Solver++ 20 steps, s = 3), generated now", _grid(x, [str(i) for i in labels.tolist()],
                                                                                    cols=10)))
    samples = run_dir("samples", quick).with_suffix(".pt")
    clf = run_dir("classifier-shapes", quick)
    if samples.is_file():
        s = torch.load(samples)
        titles = [c.replace("a ", "", 1).replace(" at the ", "\n").replace(" in the ", "\n") for c in s["captions"]]
        sec.figures.append(("Held-out captions (titles) → latent text-to-image samples", _grid(s["text"], titles)))
        if (clf / "model" / "config.json").is_file():
            sec.figures.append(("…and what the shapes CNN (shape) and measurements (colour, position) read in them",
                                _grid(s["text"], _reading(load_classifier(clf), s["text"]))))
        sec.figures.append(("ControlNet: held-out outlines (top) → images for the same captions (bottom)",
                            _grid(torch.cat([s["outlines"][:8], s["controlnet"][:8]]), cols=8)))
    if res:
        sec.figures.append(("Samplers vs steps on the digits DDPM: distance to a 1000-step DDIM solution from the "
                            "same x_T, and Fréchet distance", _steps_plot(res["samplers"])))
        sec.tables.append((f"Samplers (benchmarks/diffusion_quality.py{' --quick' if quick else ''}, {res['date']})",
                           [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()}
                            for r in res["samplers"]]))
        sec.tables.append(("Shapes: caption accuracy, mask IoU, Fréchet distance",
                           [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()}
                            for r in res["shapes"]]))
        sec.tables.append(("Digits: Fréchet distance and class agreement",
                           [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()}
                            for r in res["digits"]]))
    else:
        sec.text.append(("No cached results", "run `python benchmarks/diffusion_quality.py --quick` (≈ 20 min on "
                                              "2 shared cores) to train the models this section shows"))
    sec.seconds = time.perf_counter() - t0
    return sec
