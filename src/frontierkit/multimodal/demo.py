"""Tour section: CLIP trained on shapes captions — held-out images with CLIP's top-3 labels, a zero-shot and
retrieval table beside the supervised reference line — and LLaVA answering questions about images it never
saw, with the text-only baseline beside it. Reuses the benchmark's committed numbers for the full runs."""
from __future__ import annotations

import json
from pathlib import Path

from ..report import Section, TourContext


def _figure(clip, held, n: int = 8):
    """A grid of held-out images, each titled with CLIP's top-3 zero-shot (colour, shape) labels."""
    import matplotlib.pyplot as plt
    import torch

    from .train import zero_shot_classifier
    zs = zero_shot_classifier(clip)
    with torch.no_grad():
        probs = zs(held.images[:n]).softmax(-1)                              # (n, 24)
    fig, axes = plt.subplots(1, n, figsize=(1.6 * n, 2.4))
    for i, ax in enumerate(axes):
        ax.imshow(held.images[i].permute(1, 2, 0).numpy())
        ax.axis("off")
        top = probs[i].topk(3)
        ax.set_title("\n".join(f"{zs.class_names[j]} {p:.2f}" for p, j in zip(top.values.tolist(),
                                                                             top.indices.tolist())), fontsize=6)
    fig.tight_layout()
    return fig


def tour(ctx: TourContext) -> Section:
    import torch
    torch.set_num_threads(1)

    from .train import quick_clip_config, split, train_clip
    from .vqa import quick_llava_config, train_llava

    steps = 150 if ctx.quick else 500
    cfg = quick_clip_config(steps)
    clip, m = train_clip(cfg, ctx.out / "clip", quiet=ctx.quiet)
    held = split(cfg.data, "held_out")
    rows = [{"model": f"CLIP ({steps} steps)", **{k: round(v, 3) for k, v in m.items() if k != "steps"}}]
    tables = [("CLIP on held-out colour x shape x position combinations", rows)]
    bench = Path(__file__).resolve().parents[3] / "benchmarks" / "results" / "multimodal_clip.json"
    if bench.is_file():
        b = json.loads(bench.read_text())
        tables.append(("benchmark (committed, full run): " + b.get("command", ""), b.get("rows", [])))
    text = []
    if not ctx.quick:
        lcfg = quick_llava_config(data=cfg.data)
        _, res = train_llava(lcfg, ctx.out / "llava", clip=clip, quiet=ctx.quiet)
        tables.append(("LLaVA VQA exact match on held-out images (per question type)",
                       [{"model": k, **{q: round(v, 3) for q, v in r.items()}} for k, r in res.items()]))
    return Section(
        title="Multimodal: CLIP and LLaVA on shapes",
        summary="CLIP (ViT with 16-px patches on 48-px images, i.e. one patch per shapes position cell, + causal "
                "text transformer, symmetric InfoNCE, temperature clamped at 100) trained on the shapes captions with "
                "the shared loop; zero-shot classification by prompt ensembles and "
                "image<->text retrieval on colour x shape x position combinations never seen in training. Parity "
                "with transformers' CLIPModel and LlavaForConditionalGeneration is proven in tests/multimodal.",
        figures=[("held-out images with CLIP's top-3 zero-shot labels", _figure(clip, held))],
        tables=tables, text=text)
