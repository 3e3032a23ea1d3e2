"""Tour section for the foundation: the shared loop on digits and pycorpus, LR schedules,
precision/accumulation throughput, a tokenizer sample and the synthetic shapes data."""
from __future__ import annotations

from dataclasses import replace

from ..report import Section, TourContext
from ..track import make_tracker


def _curves(histories: dict[str, list[dict]], key: str, title: str):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    for name, hist in histories.items():
        ax.plot([h["step"] for h in hist], [h[key] for h in hist], label=name)
    ax.set_xlabel("step")
    ax.set_ylabel(key)
    ax.set_title(title)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return fig


def _schedules_figure(steps: int = 200):
    import matplotlib.pyplot as plt

    from .schedules import lr_multiplier

    fig, ax = plt.subplots(figsize=(5, 3.2))
    for name in ("cosine", "wsd", "constant"):
        ax.plot([lr_multiplier(name, s, warmup=20, total=steps, min_ratio=0.1) for s in range(steps)], label=name)
    ax.set_xlabel("step")
    ax.set_ylabel("LR / peak LR")
    ax.set_title("LR schedules (warmup 20)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return fig


def tour(ctx: TourContext) -> Section:
    from ..data.commands import shapes_figure, tokenizer_sample
    from .commands import DigitsRun, TextData, TextRun, run_digits, run_text

    steps = 150 if ctx.quick else 500
    rows, digits_hist, text_hist = [], {}, {}
    variants = [("fp32", {}), ("bf16 autocast", {"precision": "bf16"}),
                ("fp32, grad_accum=4 (batch 16x4)", {"grad_accum": 4, "batch_size": 16})]
    for name, change in variants if not ctx.quick else variants[:2]:
        base = DigitsRun()
        cfg = replace(base, train=replace(base.train, steps=steps, log_every=10, **change))
        out = ctx.out / f"digits-{name.split(',')[0].split()[0]}-{len(digits_hist)}"
        tracker = make_tracker("jsonl", out)
        result, acc = run_digits(cfg, out, tracker, quiet=ctx.quiet)
        tracker.close()
        digits_hist[name] = result.history
        sps = [h["samples_per_s"] for h in result.history[1:]] or [result.history[0]["samples_per_s"]]
        rows.append({"run": f"digits MLP, {name}", "steps": result.step, "final loss": result.history[-1]["loss"],
                     "test acc": acc, "samples/s": sum(sps) / len(sps)})
    base = TextRun()
    tcfg = replace(base, train=replace(base.train, steps=steps, log_every=10, eval_every=50, precision="auto"),
                   data=TextData(max_chars=1_000_000 if ctx.quick else 3_000_000))
    out = ctx.out / "text"
    tracker = make_tracker("jsonl", out)
    result, val_loss, tok = run_text(tcfg, out, tracker, quiet=ctx.quiet)
    tracker.close()
    text_hist["train loss"] = result.history
    evals = [h for h in result.history if "eval/loss" in h]
    tps = [h["tokens_per_s"] for h in result.history[1:]]
    rows.append({"run": f"pycorpus NPLM (Bengio 2003), precision auto -> {result.precision}", "steps": result.step,
                 "final loss": result.history[-1]["loss"], "val loss": val_loss,
                 "tokens/s": sum(tps) / max(1, len(tps))})
    text_fig = _curves(text_hist, "loss", "pycorpus: next-token loss")
    ax = text_fig.axes[0]
    ax.plot([h["step"] for h in evals], [h["eval/loss"] for h in evals], "o-", label="val loss")
    ax.legend(fontsize=7)
    sample = tokenizer_sample(tok, "def forward(self, x):\n    return self.proj(x) + x")
    return Section(
        title="Foundation: one training loop, embedded data",
        summary=("The shared Trainer (AdamW with decay groups, warmup+cosine, clipping, accumulation, "
                 "bf16/fp16, atomic resumable checkpoints) trains an MLP on sklearn digits and a "
                 "Bengio-2003 neural LM on the Python standard library's source (pycorpus) tokenised "
                 "with a byte-level BPE trained here."),
        figures=[("digits: training loss per precision/accumulation", _curves(digits_hist, "loss", "digits: loss")),
                 ("pycorpus: train and validation loss", text_fig),
                 ("learning-rate schedules", _schedules_figure()),
                 ("synthetic shapes with captions (the multimodal data)", shapes_figure(16))],
        tables=[("runs", rows)],
        text=[("BPE tokenizer sample (vocab 1024, trained on pycorpus)", sample)],
    )
