"""Decode throughput, batch 1, 128 new greedy tokens after a 32-token prompt: our pre-allocated
KV-cache ``generate`` vs transformers ``generate`` (DynamicCache) on the same ~11M-param LLaMA
weights, side by side (outputs checked identical).

    python benchmarks/llm_decode.py
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import torch  # noqa: E402

from llm_common import best_time, write_results  # noqa: E402
from llm_train import CFG  # noqa: E402

from frontierkit.llm import Transformer, generate, to_hf  # noqa: E402

NEW, PROMPT = 128, 32


def main() -> None:
    import transformers as tf

    torch.manual_seed(0)
    ours = Transformer(CFG).eval()
    with tempfile.TemporaryDirectory() as d:
        hf = tf.LlamaForCausalLM.from_pretrained(to_hf(ours, d), dtype=torch.float32).eval()
    x = torch.randint(0, CFG.vocab_size, (1, PROMPT), generator=torch.Generator().manual_seed(0))
    ref = hf.generate(x, max_new_tokens=NEW, min_new_tokens=NEW, do_sample=False, pad_token_id=0)
    same = torch.equal(generate(ours, x, NEW), ref)
    with torch.inference_mode():
        t_ours = best_time(lambda: generate(ours, x, NEW), repeat=3)
        t_hf = best_time(lambda: hf.generate(x, max_new_tokens=NEW, min_new_tokens=NEW, do_sample=False,
                                             pad_token_id=0), repeat=3)
    rows = [{"implementation": "frontierkit generate (pre-allocated KV cache)", "seconds": t_ours,
             "new_tokens_per_s": NEW / t_ours, "speedup": t_hf / t_ours},
            {"implementation": "transformers generate", "seconds": t_hf, "new_tokens_per_s": NEW / t_hf,
             "speedup": 1.0}]
    write_results("llm_decode", rows, {"speedup": t_hf / t_ours, "goal": 2.0, "greedy_tokens_identical": same},
                  notes=f"Batch 1, prompt {PROMPT}, {NEW} new tokens (greedy, no early stop), fp32, "
                        f"same weights; best of 3.")


if __name__ == "__main__":
    main()
