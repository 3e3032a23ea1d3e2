"""The BFCL-style set (102 questions written here) scored with the AST checker, side by side: the scripted
oracle (harness check, must be 1.0), a tiny kit LLaMA in-process with grammar-constrained tool calls, the same
model unconstrained (its text after ``<tool_call>`` parsed as JSON), and optionally any OpenAI-compatible
endpoint. The tiny model is untrained (random init, seed 0, pycorpus 2048-token BPE): what it shows is that
constrained calls always parse and validate against the schema (1..4 calls a turn, OpenAI parallel
``tool_calls``, so the parallel categories are scored too); its accuracy is not the point.

    python benchmarks/agents_bfcl.py                                   # all 102 questions
    python benchmarks/agents_bfcl.py --quick                           # every 3rd question (34)
    python benchmarks/agents_bfcl.py --base-url http://127.0.0.1:8000/v1 --model NAME   # + an endpoint
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import bench_common  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="every 3rd question (34, all categories)")
    ap.add_argument("--base-url", default=None, help="also score this OpenAI-compatible endpoint")
    ap.add_argument("--model", default=None, help="the endpoint's model name (with --base-url)")
    ap.add_argument("--out", default=None, help="results folder (default benchmarks/results)")
    bench_common.add_write_arg(ap)
    args = ap.parse_args()

    import torch

    from frontierkit import models
    from frontierkit.agents.backends import KitBackend, OpenAIBackend, PolicyBackend, Reply, ToolCall, render_chat
    from frontierkit.agents.bfcl import FUNCTIONS, evaluate, make_questions, oracle_reply
    from frontierkit.agents.grammar import CALL_SEP, split_calls
    from frontierkit.agents.tools import ToolError, validate
    from frontierkit.data.pycorpus import train_tokenizer

    torch.set_num_threads(1)
    qs = make_questions()[:: 3 if args.quick else 1]
    by_text = {q.question: q for q in qs}
    tok = train_tokenizer(2048, 1_000_000)
    cfg = dict(family="llama", vocab_size=2048, n_layers=4, n_heads=4, d_model=128, max_seq_len=1024)
    tmp = Path(tempfile.mkdtemp(prefix="agents-bfcl-"))
    torch.manual_seed(0)
    models.save(models.build("llm", cfg), tmp, kind="llm", config=cfg)
    tok.save(str(tmp / "tokenizer.json"))
    kit = KitBackend(tmp, max_new_tokens=48, max_calls=4)

    def unconstrained(messages, tools):
        text = kit.generate(render_chat(messages, tools) + CALL_SEP, max_new_tokens=48)
        try:
            calls = split_calls(text)
            return Reply("", [ToolCall(f"c{i}", str(c["name"]), json.dumps(c["arguments"]))
                              for i, c in enumerate(calls)])
        except (ValueError, KeyError, TypeError):
            return Reply("", [ToolCall("c0", "?", text)])

    backends = {"oracle (scripted)": PolicyBackend(lambda m, t: oracle_reply(by_text[m[-1]["content"]])),
                "tiny kit LLaMA, constrained": kit,
                "tiny kit LLaMA, unconstrained": PolicyBackend(unconstrained)}
    if args.base_url:
        backends[f"endpoint {args.model}"] = OpenAIBackend(args.model or "model", base_url=args.base_url)
    rows, full = [], {}
    for name, backend in backends.items():
        seen: list = []

        class Recorder(PolicyBackend):          # keeps the replies to check schema validity
            def chat(self, messages, tools=None, stop=None):
                r = backend.chat(messages, tools, stop)
                seen.append(r)
                return r

        res = evaluate(Recorder(lambda m, t: None), qs, progress=True)
        valid = 0
        for r in seen:
            try:
                for c in r.tool_calls:
                    validate(json.loads(c.arguments), FUNCTIONS[c.name]["parameters"])
                valid += bool(r.tool_calls)
            except (json.JSONDecodeError, KeyError, ToolError):
                pass
        rows.append({"backend": name, "questions": res["n"], "parse rate": res["parse_rate"],
                     "schema-valid rate": valid / len(seen),
                     "calls/turn": sum(len(r.tool_calls) for r in seen) / len(seen),
                     "turns with >= 2 calls": sum(len(r.tool_calls) >= 2 for r in seen) / len(seen),
                     "AST accuracy": res["accuracy"],
                     **{f"acc {k}": v for k, v in res["by_category"].items()}})
        full[name] = res
    cmd = "python benchmarks/agents_bfcl.py" + (" --quick" if args.quick else "")
    info = {**bench_common.meta(cmd), "rows": rows}
    body = ["Tiny kit LLaMA: 4x128, random init (seed 0), pycorpus 2048 BPE; constrained: 1..4 calls a turn "
            "(grammar `tool_calls_tree`), up to max(48, shortest call + 32) new tokens per call; unconstrained: "
            "48 new tokens, parsed as `<tool_call>`-separated calls. Shared 2-core CPU.", "",
            *bench_common.table(rows)]
    bench_common.write("agents_bfcl", info, body, **({"out": Path(args.out)} if args.out else {}))


if __name__ == "__main__":
    main()
