"""Grammar-constrained decoding overhead: per generated token, the time to compute the allowed-token mask,
apply it and advance the automaton, against the decode step (one KV-cached forward) of the kit's tiny
LLaMA (4 layers, d_model 128, the pycorpus 2048-token byte-level BPE), while decoding tool calls for the
shop tools. Cold: a fresh grammar (masks computed by a vocabulary-trie walk on first visit of a state);
warm: the same grammar reused (masks cached per automaton state). Goal: overhead <= 10% of the decode step.

    python benchmarks/agents_grammar.py           # 8 tool calls
    python benchmarks/agents_grammar.py --quick   # 3 tool calls
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import bench_common  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="3 tool calls instead of 8")
    ap.add_argument("--out", default=None, help="results folder (default benchmarks/results)")
    bench_common.add_write_arg(ap)
    args = ap.parse_args()

    import torch

    from frontierkit import models
    from frontierkit.agents.backends import render_chat
    from frontierkit.agents.calculator import calculator
    from frontierkit.agents.grammar import Grammar, Matcher, token_strings, tool_call_schema
    from frontierkit.agents.shop import Shop
    from frontierkit.data.pycorpus import train_tokenizer

    torch.set_num_threads(1)
    tok = train_tokenizer(2048, 1_000_000)
    cfg = dict(family="llama", vocab_size=2048, n_layers=4, n_heads=4, d_model=128, max_seq_len=1024)
    tools = [calculator.spec()] + [t.spec() for t in Shop().tools.values()]
    vocab, eos = token_strings(tok, 2048), tok.token_to_id("<|endoftext|>")
    calls = 3 if args.quick else 8
    rows, records = [], {}
    for phase in ("cold", "warm"):
        step_t, mask_t, tokens = [], [], 0
        g = Grammar(tool_call_schema(tools)) if phase == "cold" else g_warm
        for k in range(calls):
            torch.manual_seed(k)
            model = models.build("llm", cfg).eval()
            for p in model.parameters():
                p.data.normal_(0, 0.3)
            ids = tok.encode(render_chat([{"role": "user", "content": f"task {k}"}], tools) + "<tool_call>").ids
            m = Matcher(g, vocab, eos)
            with torch.inference_mode():
                cache = model.new_cache(1, len(ids) + 200)
                logits = model(torch.tensor([ids]), cache=cache)[0, -1]
                for step in range(200):
                    t0 = time.perf_counter()
                    if m.finished():
                        break
                    allowed = m.mask(200 - step)
                    tok_id = int(logits.masked_fill(~allowed, float("-inf")).argmax())
                    m.advance(tok_id)
                    t1 = time.perf_counter()
                    if m.done:
                        break
                    logits = model(torch.tensor([[tok_id]]), cache=cache)[0, -1]
                    t2 = time.perf_counter()
                    mask_t.append(t1 - t0)
                    step_t.append(t2 - t1)
                    tokens += 1
        g_warm = g
        med_step, med_mask = statistics.median(step_t), statistics.median(mask_t)
        mean_step, mean_mask = statistics.fmean(step_t), statistics.fmean(mask_t)
        rows.append({"phase": phase, "tokens": tokens, "decode step ms (median)": 1e3 * med_step,
                     "mask ms (median)": 1e3 * med_mask, "overhead median": med_mask / med_step,
                     "decode step ms (mean)": 1e3 * mean_step, "mask ms (mean)": 1e3 * mean_mask,
                     "overhead mean": mean_mask / mean_step})
        records[phase] = rows[-1]
    info = {**bench_common.meta("python benchmarks/agents_grammar.py" + (" --quick" if args.quick else "")),
            "rows": rows, "vocab": 2048, "dfa_states": len(g.states)}
    body = [f"Tool calls: {calls} (shop + calculator tools, {len(g.states)} automaton states visited); "
            f"tiny LLaMA 4x128, 1 thread.", "", *bench_common.table(rows)]
    bench_common.write("agents_grammar", info, body, **({"out": Path(args.out)} if args.out else {}))


if __name__ == "__main__":
    main()
