"""Serving throughput and latency under Poisson arrivals (mixed prompt and output lengths), side by side:
one request at a time, static batching (a new batch only when the previous one is done), continuous
batching (Orca, Yu et al. 2022: admit/retire every decode step, paged KV cache of Kwon et al. 2023), and
transformers ``generate`` called per request, on the benchmark LLaMA of benchmarks/llm_decode.py
(~11M parameters; a 2-layer one under --quick). Up to 32 sequences decode together. Also: peak KV bytes
of the paged pool (blocks allocated on demand) vs a contiguous max-length cache for 32 sequences.

    python benchmarks/serve_batching.py            # 64 requests
    python benchmarks/serve_batching.py --quick    # 24 requests, small model
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import torch  # noqa: E402

from llm_common import write_results  # noqa: E402

from frontierkit.llm import Transformer, TransformerConfig, to_hf  # noqa: E402
from frontierkit.serve.scheduler import Engine, SamplingParams, Sequence  # noqa: E402

CLIENTS = 32
SMALL = TransformerConfig(family="llama", vocab_size=2048, n_layers=2, n_heads=4, n_kv_heads=2, d_model=128,
                          d_ff=352, max_seq_len=256)


def workload(n: int, rate: float, vocab: int, seed: int = 0) -> list[tuple[float, list[int], int]]:
    """(arrival s, prompt ids, new tokens): Poisson arrivals at ``rate``/s, prompts 8-96, outputs 16-128."""
    g = torch.Generator().manual_seed(seed)
    gaps = torch.distributions.Exponential(rate).sample((n,))
    arrivals = gaps.cumsum(0).tolist()
    plen = torch.randint(8, 97, (n,), generator=g).tolist()
    olen = torch.randint(16, 129, (n,), generator=g).tolist()
    return [(a, torch.randint(1, vocab, (p,), generator=g).tolist(), o) for a, p, o in zip(arrivals, plen, olen)]


def run_engine(model, reqs, mode: str) -> tuple[list[float], float, list[list[int]], Engine]:
    """Requests submitted at their arrival times to a running engine; (latencies, makespan, tokens, engine)."""
    engine = Engine(model, max_batch=CLIENTS, max_waiting=len(reqs), block_size=16, mode=mode).start()
    done = threading.Semaphore(0)
    seqs: list[Sequence] = []
    t0 = time.perf_counter()
    for arrival, prompt, new in reqs:
        time.sleep(max(0.0, t0 + arrival - time.perf_counter()))
        seqs.append(engine.submit(Sequence(prompt, SamplingParams(max_tokens=new, temperature=0),
                                           on_finish=lambda s: done.release())))
    for _ in reqs:
        done.acquire()
    engine.close()
    end = max(s.finish_time for s in seqs)
    return [s.finish_time - s.arrival for s in seqs], end - t0, [s.out for s in seqs], engine


def run_hf(hf, reqs) -> tuple[list[float], float, list[list[int]]]:
    """transformers ``generate`` per request, FIFO, each starting when it has arrived and the previous ended."""
    lat, outs = [], []
    t0 = time.perf_counter()
    for arrival, prompt, new in reqs:
        time.sleep(max(0.0, t0 + arrival - time.perf_counter()))
        x = torch.tensor([prompt])
        with torch.inference_mode():
            y = hf.generate(x, max_new_tokens=new, min_new_tokens=new, do_sample=False, pad_token_id=0)
        lat.append(time.perf_counter() - t0 - arrival)
        outs.append(y[0, len(prompt):].tolist())
    return lat, time.perf_counter() - t0, outs


def pct(xs: list[float], q: float) -> float:
    return float(torch.tensor(xs).quantile(q))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="24 requests on a 2-layer LLaMA")
    ap.add_argument("--requests", type=int, default=None)
    ap.add_argument("--rate", type=float, default=None, help="Poisson arrival rate, requests/s")
    from bench_common import add_write_arg
    args = add_write_arg(ap).parse_args()
    import transformers as tf

    from llm_train import CFG
    torch.set_num_threads(1)
    cfg = SMALL if args.quick else CFG
    n = args.requests or (24 if args.quick else 64)
    rate = args.rate or (40.0 if args.quick else 20.0)
    torch.manual_seed(0)
    model = Transformer(cfg).eval()
    with tempfile.TemporaryDirectory() as d:
        hf = tf.LlamaForCausalLM.from_pretrained(to_hf(model, d), dtype=torch.float32).eval()
    reqs = workload(n, rate, cfg.vocab_size)
    run_engine(model, reqs[:4], "continuous")                                  # warm-up
    rows, outs, peak = [], {}, {}
    for label, mode in [("one request at a time", "single"), ("static batching (32)", "static"),
                        ("continuous batching (32, paged KV)", "continuous"),
                        ("transformers generate per request", None)]:
        if mode is None:
            lat, span, out = run_hf(hf, reqs)
        else:
            lat, span, out, engine = run_engine(model, reqs, mode)
            peak[mode] = (engine.pool.peak_bytes, engine.kv_bytes_contiguous)
        outs[label] = out
        tokens = sum(r[2] for r in reqs)
        rows.append({"mode": label, "tokens_per_s": tokens / span, "p50_latency_s": pct(lat, 0.5),
                     "p99_latency_s": pct(lat, 0.99), "makespan_s": span})
        print(rows[-1], file=sys.stderr)
    base = rows[0]["tokens_per_s"]
    for r in rows:
        r["throughput_vs_one_at_a_time"] = r["tokens_per_s"] / base
    ref = outs["one request at a time"]
    same = all(o == ref for o in outs.values())
    paged, contiguous = peak["continuous"]
    params = sum(p.numel() for p in model.parameters())
    summary = {"continuous_vs_one_at_a_time": rows[2]["throughput_vs_one_at_a_time"], "goal": 5.0,
               "continuous_vs_static": rows[2]["tokens_per_s"] / rows[1]["tokens_per_s"],
               "continuous_vs_transformers_generate": rows[2]["tokens_per_s"] / rows[3]["tokens_per_s"],
               "peak_kv_bytes_paged": paged, "kv_bytes_contiguous_max_length": contiguous,
               "paged_kv_fraction": paged / contiguous, "greedy_tokens_identical_across_modes": same}
    write_results("serve_batching", rows, summary,
                  notes=f"LLaMA {params / 1e6:.1f}M params (n_layers={cfg.n_layers}, d_model={cfg.d_model}), fp32, "
                        f"1 thread, {n} requests with Poisson arrivals at {rate}/s, prompts 8-96 tokens, 16-128 "
                        f"greedy new tokens each (no early stop), at most {CLIENTS} sequences per batch, KV blocks "
                        f"of 16 tokens. Wall-clock on a shared 2-core machine (other jobs running): ratios are "
                        f"indicative. Latency = finish - arrival.")


if __name__ == "__main__":
    main()
