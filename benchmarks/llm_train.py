"""Train-step throughput of our Transformer vs transformers' LlamaForCausalLM at the same ~11M-param
LLaMA config (fp32, CPU, same weights, same loss and AdamW), side by side; achieved FLOP/s as a
percentage of this machine's measured fp32 matmul peak.

FLOPs per token = 6 N + 12 L T d (Kaplan et al. 2020 / PaLM appendix B; N = non-embedding params + head).

    python benchmarks/llm_train.py [--steps 3] [--compile]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import torch  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from llm_common import interleaved_best, write_results  # noqa: E402

from frontierkit.llm import Transformer, TransformerConfig, to_hf  # noqa: E402

CFG = TransformerConfig(family="llama", vocab_size=4096, n_layers=5, n_heads=6, n_kv_heads=2, d_model=384,
                        d_ff=1024, max_seq_len=256)
BATCH, SEQ = 8, 256


def step_fn(model: torch.nn.Module, x: torch.Tensor, hf: bool):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        logits = model(input_ids=x).logits if hf else model(x)                # (B, T, V)
        loss = F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), x[:, 1:].flatten())
        loss.backward()
        opt.step()
    return step


def flops_per_token(cfg: TransformerConfig, model: torch.nn.Module) -> float:
    n = sum(p.numel() for p in model.parameters()) - cfg.vocab_size * cfg.d_model   # minus embedding lookup
    return 6 * n + 12 * cfg.n_layers * SEQ * cfg.d_model


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=5, help="rounds; each times one step of every variant")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile(ours)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: CPU time = work done)")
    from bench_common import add_write_arg
    args = add_write_arg(ap).parse_args()
    torch.set_num_threads(args.threads)
    import transformers as tf

    torch.manual_seed(0)
    ours = Transformer(CFG).train()
    with tempfile.TemporaryDirectory() as d:
        hf = tf.LlamaForCausalLM.from_pretrained(to_hf(ours, d), dtype=torch.float32,
                                                 attn_implementation="sdpa").train()
    x = torch.randint(0, CFG.vocab_size, (BATCH, SEQ), generator=torch.Generator().manual_seed(0))
    tokens = BATCH * SEQ
    fpt = flops_per_token(CFG, ours)
    n = 1024
    a, b = torch.randn(n, n), torch.randn(n, n)
    fns = {"frontierkit Transformer (eager)": step_fn(ours, x, False),
           "transformers LlamaForCausalLM (sdpa)": step_fn(hf, x, True),
           "matmul 1024^3 x 8": lambda: [a @ b for _ in range(8)]}
    if args.compile:
        fns["frontierkit Transformer (torch.compile)"] = step_fn(torch.compile(ours), x, False)
    times = interleaved_best(fns, rounds=args.steps, warmup=2)
    peak = 8 * 2 * n ** 3 / times.pop("matmul 1024^3 x 8")
    hf_time = times["transformers LlamaForCausalLM (sdpa)"]
    rows = []
    for name, t in times.items():
        rows.append({"implementation": name, "step_s": t, "tokens_per_s": tokens / t,
                     "speedup_vs_transformers": hf_time / t, "TFLOP/s": fpt * tokens / t / 1e12,
                     "%_matmul_peak": 100 * fpt * tokens / t / peak})
    ratio = hf_time / times["frontierkit Transformer (eager)"]
    summary = {"params": sum(p.numel() for p in ours.parameters()), "tokens_per_step": tokens,
               "matmul_peak_GFLOP/s": peak / 1e9, "eager_speedup": ratio, "goal": 1.3}
    write_results("llm_train", rows, summary,
                  notes=f"Config: {CFG.n_layers} layers, d_model {CFG.d_model}, {CFG.n_heads} heads / "
                        f"{CFG.n_kv_heads} KV heads, d_ff {CFG.d_ff}, vocab {CFG.vocab_size}; batch {BATCH} x "
                        f"{SEQ} tokens; fp32; one step = forward + cross-entropy + backward + AdamW; best of "
                        f"{args.steps} interleaved rounds. Times are per-process CPU seconds (1 thread), the least-disturbed measure on a machine shared with other jobs.")


if __name__ == "__main__":
    main()
