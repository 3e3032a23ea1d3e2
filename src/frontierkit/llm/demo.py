"""Tour section: train a tiny LLaMA on pycorpus, show its loss curve and a sample, compare KV-cache
bytes of MHA / GQA / MQA, and time sliding-window vs full causal attention against sequence length."""
from __future__ import annotations

import time
import torch

from ..report import Section, TourContext


def _run_config(quick: bool):
    from ..train import TrainConfig
    from .model import TransformerConfig
    from .recipe import DataConfig, LLMRunConfig

    model = TransformerConfig(family="llama", vocab_size=2048, n_layers=4 if not quick else 2, n_heads=4,
                              n_kv_heads=2, d_model=128, d_ff=352, max_seq_len=256)
    steps = 100 if quick else 200
    train = TrainConfig(steps=steps, batch_size=8, lr=4e-3 if quick else 3e-3, warmup_steps=10, log_every=5,
                        eval_every=20, seed=0, precision="auto")
    data = DataConfig(seq_len=64 if quick else 128, eval_batches=4 if quick else 8)
    return LLMRunConfig(model=model, train=train, data=data)


def _loss_figure(history: list[dict]):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot([h["step"] for h in history], [h["loss"] for h in history], label="train")
    ev = [h for h in history if "eval/val_loss" in h]
    ax.plot([h["step"] for h in ev], [h["eval/val_loss"] for h in ev], "o-", label="held-out (pycorpus val)")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.legend()
    ax.grid(alpha=0.3)
    return fig


def _kv_rows() -> list[dict]:
    from ..nn import KVCache
    from .model import config_from_name

    cfg = config_from_name("llama3-8b")
    rows, mha = [], None
    for name, kv in [("MHA", 32), ("GQA", 8), ("MQA", 1)]:
        nbytes = cfg.n_layers * KVCache(1, kv, cfg.head_dim, 8192, device="meta").nbytes
        mha = mha or nbytes
        rows.append({"attention": name, "n_kv_heads": kv, "KV cache GiB (llama3-8b, 8k ctx, fp32)": nbytes / 2 ** 30,
                     "ratio vs MHA": nbytes / mha, "n_kv / n_heads": kv / cfg.n_heads})
    return rows


def _attention_timing(lengths: list[int], window: int = 256):
    import matplotlib.pyplot as plt

    from ..nn import sdpa, sliding_window_attention

    def best(fn) -> float:
        fn()
        ts = []
        for _ in range(2):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
        return min(ts)

    rows = []
    for n in lengths:
        q, k, v = (torch.randn(1, 8, n, 64) for _ in range(3))
        with torch.inference_mode():
            full = best(lambda: sdpa(q, k, v, causal=True))
            win = best(lambda: sliding_window_attention(q, k, v, window))
        rows.append({"n": n, "full causal ms": 1e3 * full, f"window {window} ms": 1e3 * win, "ratio": win / full})
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(lengths, [r["full causal ms"] for r in rows], "o-", label="full causal (SDPA)")
    ax.plot(lengths, [r[f"window {window} ms"] for r in rows], "s-", label=f"sliding window w={window} (blockwise)")
    ax.set_xlabel("sequence length n")
    ax.set_ylabel("forward time (ms)")
    ax.legend()
    ax.grid(alpha=0.3)
    return fig, rows


def tour(ctx: TourContext) -> Section:
    from .generate import generate
    from .recipe import train_llm

    cfg = _run_config(ctx.quick)
    t0 = time.perf_counter()
    result = train_llm(cfg, ctx.out / "tiny-llama", quiet=True)
    seconds = time.perf_counter() - t0
    from .recipe import load_model
    model, tok, _ = load_model(result.model_dir)
    prompt = "def __init__(self"
    ids = torch.tensor([tok.encode(prompt).ids])
    out = generate(model, ids, 60 if ctx.quick else 120, temperature=0.8, top_k=40,
                   generator=torch.Generator().manual_seed(0))
    sample = tok.decode(out[0].tolist())
    fig_t, rows_t = _attention_timing([1024, 2048, 4096] if ctx.quick else [1024, 2048, 4096, 8192])
    ev = [h for h in result.history if "eval/val_loss" in h]
    summary = (f"A {model.num_params() / 1e6:.2f}M-parameter LLaMA (RMSNorm, SwiGLU, RoPE, GQA 4/2) trained "
               f"{cfg.train.steps} steps on pycorpus in {seconds:.0f} s: held-out loss "
               f"{ev[0]['eval/val_loss']:.2f} -> {ev[-1]['eval/val_loss']:.2f} nats/token. The same model "
               f"class loads GPT-2/Llama/Mistral/Qwen2 checkpoints with logits within 1e-5 of transformers.")
    return Section(
        title="LLM: GPT / LLaMA / Mistral / Qwen2 in one Transformer",
        summary=summary,
        figures=[("tiny LLaMA loss on pycorpus", _loss_figure(result.history)),
                 ("sliding-window vs full causal attention time", fig_t)],
        tables=[("KV-cache bytes: MHA vs GQA vs MQA (exactly n_kv/n_heads)", _kv_rows()),
                ("attention forward time vs sequence length", rows_t)],
        text=[("sample (temperature 0.8, top-k 40)", sample)])
