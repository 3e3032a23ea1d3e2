"""Tour section: the OpenAI-compatible server started in-process (uvicorn in a thread) on a small random
LLaMA, once per batching mode (one at a time, static, continuous: Orca, Yu et al. 2022), each hit by
concurrent clients through the official ``openai`` client (part of the serve extra); throughput and
latency per mode are plotted."""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..report import Section, TourContext


def _model_folder(out: Path) -> Path:
    """A random 2-layer LLaMA + a byte-level BPE tokenizer, saved as `frontier llm train` saves them."""
    import torch
    from tokenizers import Tokenizer, decoders, models as tmodels, pre_tokenizers, trainers

    from .. import models
    folder = out / "model"
    if (folder / "tokenizer.json").is_file():
        return folder
    tok = Tokenizer(tmodels.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(["def main():\n    return 0\nprint('hello world')\n" * 50], trainer=trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False))
    torch.manual_seed(0)
    model = models.build("llm", dict(family="llama", vocab_size=tok.get_vocab_size(), n_layers=2, n_heads=4,
                                     n_kv_heads=2, d_model=128, d_ff=352, max_seq_len=256))
    models.save(model, folder)
    tok.save(str(folder / "tokenizer.json"))
    return folder


def _serve_in_thread(state):
    """uvicorn serving ``state``'s app in a daemon thread; returns (server, thread, base url)."""
    import uvicorn

    from .process import free_port
    from .server import create_app
    for _ in range(3):                       # another process may take the free port before uvicorn binds it
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(create_app(state), host="127.0.0.1", port=port, log_level="error"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 60
        while not server.started and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        if server.started:
            return server, thread, f"http://127.0.0.1:{port}/v1"
        server.should_exit = True
        thread.join(timeout=5)
    raise RuntimeError("the demo server did not start on a free local port in 3 tries (60 s each)")


def measure(folder: Path, mode: str, clients: int, requests: int, max_new: int = 48) -> dict:
    """Concurrent openai-client completions against a fresh server in ``mode``: tokens/s, p50/p99 latency."""
    import statistics

    from ..errors import require_extra
    from .server import ServeState
    openai = require_extra("openai", "serve")
    state = ServeState(folder, model_id="tour", mode=mode, max_batch=clients)
    server, thread, url = _serve_in_thread(state)
    client = openai.OpenAI(base_url=url, api_key="unused", max_retries=0, timeout=300)

    def ask(i: int) -> tuple[float, int]:
        t0 = time.perf_counter()
        new = max_new // 3 + (i * 7) % (2 * max_new // 3 + 1)
        r = client.completions.create(model="tour", prompt="def main():" * (1 + i % 4), max_tokens=new, temperature=0)
        return time.perf_counter() - t0, r.usage.completion_tokens
    try:
        ask(0)                                                                 # warm-up
        t0 = time.perf_counter()
        with ThreadPoolExecutor(clients) as ex:
            res = list(ex.map(ask, range(requests)))
        span = time.perf_counter() - t0
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    lat = sorted(r[0] for r in res)
    return {"mode": mode, "clients": clients, "requests": requests, "tokens_per_s": sum(r[1] for r in res) / span,
            "p50_latency_s": statistics.median(lat), "p99_latency_s": lat[min(len(lat) - 1, int(0.99 * len(lat)))],
            "kv_peak_kib": state.engine.pool.peak_bytes / 1024}


def _plot(rows: list[dict]):
    import matplotlib.pyplot as plt
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.2))
    modes = [r["mode"] for r in rows]
    a.bar(modes, [r["tokens_per_s"] for r in rows], color=["#999", "#69c", "#2a7"])
    a.set_ylabel("generated tokens / s")
    a.set_title("throughput")
    x = range(len(rows))
    b.bar([i - 0.2 for i in x], [r["p50_latency_s"] for r in rows], width=0.4, label="p50")
    b.bar([i + 0.2 for i in x], [r["p99_latency_s"] for r in rows], width=0.4, label="p99")
    b.set_xticks(list(x), modes)
    b.set_ylabel("request latency (s)")
    b.set_title("latency")
    b.legend()
    fig.tight_layout()
    return fig


def tour(ctx: TourContext) -> Section:
    import torch
    torch.set_num_threads(1)
    folder = _model_folder(ctx.out)
    clients, requests, max_new = (8, 12, 24) if ctx.quick else (32, 64, 48)
    rows = [measure(folder, mode, clients, requests, max_new) for mode in ("single", "static", "continuous")]
    base = rows[0]["tokens_per_s"]
    for r in rows:
        r["speedup_vs_single"] = r["tokens_per_s"] / base
    return Section(
        title="Serving: OpenAI-compatible server with continuous batching",
        summary=(f"`frontier serve` started in-process on a random 2-layer LLaMA; {requests} greedy completions from "
                 f"{clients} concurrent `openai` clients per batching mode. Continuous batching (admit/retire "
                 f"every decode step over a paged KV cache) gives {rows[2]['speedup_vs_single']:.1f}x the "
                 f"throughput of one request at a time here (static: {rows[1]['speedup_vs_single']:.1f}x). "
                 f"The full benchmark is benchmarks/serve_batching.py."),
        figures=[("throughput and latency per batching mode", _plot(rows))],
        tables=[("concurrent clients per batching mode", rows)])
