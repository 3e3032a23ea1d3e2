"""LLM compression side by side on one ~11M-param LLaMA trained briefly on pycorpus: decode tokens/s
(batch 1, 32-token prompt, 128 greedy tokens) of fp32 / bf16 / int8 weight-only / int4 weight-only
(RTN, GPTQ) / dynamic INT8 against transformers fp32 ``generate`` on the same weights; held-out
perplexity, greedy-token agreement with fp32, weight bytes.

    python benchmarks/compress_llm.py            # 300 training steps
    python benchmarks/compress_llm.py --quick    # 60 training steps, 2 timing rounds
"""
from __future__ import annotations

import argparse
import math
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import torch  # noqa: E402

from llm_common import interleaved_best, write_results  # noqa: E402

from frontierkit import models  # noqa: E402
from frontierkit.compress import quantize_dynamic, quantize_weights  # noqa: E402
from frontierkit.compress.evaluate import lm_loss  # noqa: E402
from frontierkit.compress.quantize import weight_bytes  # noqa: E402
from frontierkit.data import cache_dir, pycorpus  # noqa: E402
from frontierkit.llm import TransformerConfig, generate, to_hf  # noqa: E402
from frontierkit.llm.recipe import DataConfig, LLMRunConfig, train_llm  # noqa: E402
from frontierkit.train import TrainConfig  # noqa: E402

CFG = TransformerConfig(family="llama", vocab_size=2048, n_layers=5, n_heads=6, n_kv_heads=2, d_model=384,
                        d_ff=1280, max_seq_len=256)
NEW, PROMPT, SEQ = 128, 32, 128


def trained_model(steps: int):
    """The benchmark LLaMA trained ``steps`` steps on pycorpus (cached)."""
    out = cache_dir() / "compress-bench" / f"llm-{steps}"
    if not (out / "model" / "config.json").is_file():
        shutil.rmtree(out, ignore_errors=True)
        cfg = LLMRunConfig(model=CFG, data=DataConfig(seq_len=SEQ, max_chars=2_000_000),
                           train=TrainConfig(steps=steps, batch_size=16, lr=3e-3, warmup_steps=20, log_every=50))
        train_llm(cfg, out, quiet=True)
    return models.load(out / "model").eval()


def variants(model, calib):
    return {"fp32": model, "bf16": _bf16(model),
            "int8 weight-only": quantize_weights(model, bits=8),
            "int4-RTN (g32)": quantize_weights(model, bits=4, group_size=32),
            "int4-GPTQ (g32)": quantize_weights(model, bits=4, group_size=32, method="gptq", calib=calib),
            "dynamic INT8": quantize_dynamic(model)}


def _bf16(model):
    import copy
    return copy.deepcopy(model).to(torch.bfloat16)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    from bench_common import add_write_arg
    args = add_write_arg(ap).parse_args()
    torch.set_num_threads(1)
    import transformers as tf
    model = trained_model(60 if args.quick else 300)
    tok = pycorpus.train_tokenizer(2048, 1_000_000)
    val = pycorpus.encode_corpus(tok, "val", 200_000).long()
    train = pycorpus.encode_corpus(tok, "train", 2_000_000).long()
    calib = [train[i * 8 * SEQ:(i + 1) * 8 * SEQ].view(8, SEQ) for i in range(8)]
    vs = variants(model, calib)
    with tempfile.TemporaryDirectory() as d:
        hf = tf.LlamaForCausalLM.from_pretrained(to_hf(model, d), dtype=torch.float32).eval()
    prompt = val[:PROMPT][None]                                               # (1, 32)
    hf_kw = dict(max_new_tokens=NEW, min_new_tokens=NEW, do_sample=False, pad_token_id=0)
    with torch.inference_mode():
        ref = generate(model, prompt, NEW)[0, PROMPT:]
        fns = {name: (lambda m=m: generate(m, prompt, NEW)) for name, m in vs.items()}
        fns["transformers fp32"] = lambda: hf.generate(prompt, **hf_kw)
        t = interleaved_best(fns, rounds=2 if args.quick else 4)
        rows = []
        fp32_bytes = weight_bytes(model)
        for name, m in vs.items():
            toks = generate(m, prompt, NEW)[0, PROMPT:]
            rows.append({"variant": name, "tokens_per_s": NEW / t[name], "vs_transformers": t["transformers fp32"] / t[name],
                         "vs_fp32": t["fp32"] / t[name], "perplexity": math.exp(lm_loss(m, val, SEQ, 16)),
                         "greedy_same_as_fp32": (toks == ref).float().mean().item(),
                         "weight_bytes_ratio": weight_bytes(m) / fp32_bytes})
        rows.append({"variant": "transformers fp32", "tokens_per_s": NEW / t["transformers fp32"], "vs_transformers": 1.0,
                     "vs_fp32": t["fp32"] / t["transformers fp32"]})
    by = {r["variant"]: r for r in rows}
    ppl = by["fp32"]["perplexity"]
    linear = sum(p.numel() for n, p in model.named_parameters() if n.endswith(".weight") and p.dim() == 2
                 and "emb" not in n)
    summary = {"params_M": sum(p.numel() for p in model.parameters()) / 1e6,
               "int8_wo_vs_transformers": by["int8 weight-only"]["vs_transformers"], "goal_int8_wo": 2.0,
               "int8_wo_greedy_same": by["int8 weight-only"]["greedy_same_as_fp32"], "goal_greedy_same": 0.95,
               "int8_wo_ppl_change": by["int8 weight-only"]["perplexity"] / ppl - 1, "goal_ppl_change": 0.01,
               "dynamic_vs_fp32": by["dynamic INT8"]["vs_fp32"], "goal_dynamic": 1.8,
               "dynamic_ppl_change": by["dynamic INT8"]["perplexity"] / ppl - 1,
               "dynamic_weight_bytes": by["dynamic INT8"]["weight_bytes_ratio"], "goal_dynamic_bytes": 0.3,
               "linear_weight_share": linear / sum(p.numel() for p in model.parameters()),
               "gptq_closer_than_rtn": abs(by["int4-GPTQ (g32)"]["perplexity"] - ppl) <
               abs(by["int4-RTN (g32)"]["perplexity"] - ppl)}
    write_results("compress_llm" + ("_quick" if args.quick else ""), rows, summary,
                  notes=f"Batch 1, prompt {PROMPT} pycorpus tokens, {NEW} greedy tokens, 1 thread, best of interleaved "
                        f"rounds of process CPU time. Perplexity: 16 windows of {SEQ} pycorpus val tokens. GPTQ: 8 "
                        f"calibration batches of 8x{SEQ} train tokens, blocks of 128, 1% dampening. Weight-only "
                        f"kernels: aten _weight_int8pack_mm / _weight_int4pack_mm_for_cpu (bf16 activations); "
                        f"dynamic INT8: FBGEMM quantized::linear_dynamic. Embeddings stay fp32 (the weight-bytes "
                        f"ratio counts them).")


if __name__ == "__main__":
    main()
