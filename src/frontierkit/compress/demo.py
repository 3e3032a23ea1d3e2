"""Tour section: the digits CNN (and the tour's tiny LLaMA when the llm section trained one) through each
compression method: one summary table (size, latency, accuracy / perplexity) and accuracy vs sparsity."""
from __future__ import annotations

import copy

from ..report import Section, TourContext


def _cnn(ctx: TourContext):
    """The vision section's CNN when the tour trained it, else a quick one (cached in this section's folder)."""
    from .. import models
    for path in (ctx.out.parent / "vision" / "cnn", ctx.out / "cnn"):
        if (path / "model" / "config.json").is_file():
            return models.open_model(path / "model")
    from ..vision.train import run_config_for, train_classifier
    train_classifier(run_config_for("cnn", steps=250), ctx.out / "cnn")
    return models.open_model(ctx.out / "cnn" / "model")


def _cnn_rows(loaded, quick: bool) -> list[dict]:
    from .evaluate import measure
    from .gptq import quantize_weights
    from .prune import finetune_classifier, make_permanent, prune_global
    from .quantize import quantize_dynamic
    from .structured import prune_channels
    x, y = loaded.dataset("train")
    ft = 40 if quick else 150
    variants = {"fp32": loaded.model, "dynamic INT8": quantize_dynamic(loaded.model),
                "int8 weight-only (GPTQ)": quantize_weights(loaded.model, bits=8, method="gptq", calib=[x[:256]]),
                "pruned 30% (global L1 + fine-tune)": make_permanent(finetune_classifier(
                    prune_global(copy.deepcopy(loaded.model), 0.3), x, y, steps=ft)),
                "50% channels removed (+ fine-tune)": finetune_classifier(prune_channels(loaded.model, 0.5), x, y,
                                                                          steps=ft)}
    return [{**measure(m, loaded, name), "params": sum(p.numel() for p in m.parameters())}
            for name, m in variants.items()]


def _llm_rows(ctx: TourContext) -> list[dict]:
    """The llm section's tiny LLaMA: fp32 vs int8 / int4-GPTQ weight-only perplexity (empty if not trained)."""
    from .. import models
    from .evaluate import measure, pycorpus_ids
    from .gptq import quantize_weights
    path = ctx.out.parent / "llm" / "tiny-llama" / "model"
    if not (path / "config.json").is_file():
        return []
    loaded = models.open_model(path)
    ids = pycorpus_ids(path, "train", 60_000)
    calib = [ids[i * 512:(i + 1) * 512].view(4, 128) for i in range(4)]
    variants = {"tiny LLaMA fp32": loaded.model, "tiny LLaMA int8": quantize_weights(loaded.model, bits=8),
                "tiny LLaMA int4-GPTQ": quantize_weights(loaded.model, bits=4, group_size=32, method="gptq",
                                                         calib=calib)}
    return [measure(m, loaded, name, eval_windows=8) for name, m in variants.items()]


def _sparsity_figure(loaded):
    import matplotlib.pyplot as plt

    from .evaluate import accuracy
    from .prune import prune_global
    x, y = loaded.dataset("test")
    levels = [0.0, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95]
    accs = [100 * accuracy(prune_global(copy.deepcopy(loaded.model), s), x, y) for s in levels]
    fig, ax = plt.subplots(figsize=(5, 2.6))
    ax.plot([100 * s for s in levels], accs, "o-", color="#4a7ab7", label="global L1, no fine-tune")
    ax.set_xlabel("sparsity (% of weights zeroed)")
    ax.set_ylabel("digits test accuracy (%)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def tour(ctx: TourContext) -> Section:
    import matplotlib
    matplotlib.use("Agg", force=False)
    import torch
    torch.set_num_threads(1)
    loaded = _cnn(ctx)
    rows = _cnn_rows(loaded, ctx.quick) + _llm_rows(ctx)
    return Section(
        title="Compress: INT8/INT4 quantization, pruning, distillation",
        summary="The digits CNN through dynamic INT8 (FBGEMM integer GEMMs), weight-only int8 by GPTQ, global "
                "magnitude pruning with fine-tuning through the shared loop, and structured channel pruning (a "
                "physically smaller model); the tour's tiny LLaMA (if the llm section ran) as int8 and int4-GPTQ "
                "weights. Latency: batch 1, process CPU time. Benchmarks: benchmarks/results/compress_*.md.",
        figures=[("accuracy vs sparsity (global L1 magnitude pruning, no fine-tune)", _sparsity_figure(loaded))],
        tables=[("each method against the original", rows)])
