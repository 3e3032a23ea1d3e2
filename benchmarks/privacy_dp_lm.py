"""DP-SGD on the tiny LLaMA (`frontier privacy dp-lm`): held-out perplexity at ε ∈ {1, 3, 8, ∞} (δ = 1e-5).

    .venv/bin/python benchmarks/privacy_dp_lm.py [--quick] [--out DIR] [--write]

The model is the kit's 2-layer LLaMA of tests/privacy/test_privacy_dp_lm.py (vocab 512 pycorpus BPE, d_model 32),
from the same random initialisation at every ε; each run is `dp_finetune_lm` (what the CLI runs): Poisson lots
over non-overlapping pycorpus windows (the privacy unit is one window), per-example clipping to C = 1, σ
calibrated so the run's steps spend exactly ε (RDP accountant), AdamW. ε = ∞ is the same loop, lots and steps
without clipping or noise. Held-out perplexity on pycorpus val windows.
Full: 20 steps on 2048 windows (lots of 128, q = 1/16; the config of tests/privacy/test_privacy_dp_lm.py).
--quick: 10 steps on 512 windows (lots of 64). Writes <out>/privacy_dp_lm(_quick).json and .md.
"""
from __future__ import annotations

import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from bench_common import RESULTS, meta, table, write
from privacy_common import main


def settings(quick: bool) -> dict:
    return {"steps": 10 if quick else 20, "windows": 512 if quick else 2048, "batch_size": 64 if quick else 128,
            "val_windows": 32 if quick else 64, "seq_len": 32, "lr": 3e-3, "epsilons": [1.0, 3.0, 8.0],
            "delta": 1e-5, "max_grad_norm": 1.0, "vocab": 512,
            "model": {"vocab_size": 512, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2, "d_model": 32, "d_ff": 64,
                      "max_seq_len": 64}}


def run(quick: bool, out: Path = RESULTS) -> dict:
    from frontierkit import models
    from frontierkit.data import pycorpus
    from frontierkit.llm import Transformer, TransformerConfig
    from frontierkit.privacy import DPConfig
    from frontierkit.privacy.dp_lm import DPLMDataConfig, DPLMRunConfig, dp_finetune_lm
    torch.set_num_threads(1)
    s = settings(quick)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        d = models.save(Transformer(TransformerConfig(**s["model"])), Path(tmp) / "lm")
        pycorpus.train_tokenizer(s["vocab"], 1_000_000).save(str(d / "tokenizer.json"))
        for eps in [*s["epsilons"], None]:
            cfg = DPLMRunConfig()
            cfg = replace(cfg, data=DPLMDataConfig(seq_len=s["seq_len"], windows=s["windows"],
                                                   val_windows=s["val_windows"]),
                          train=replace(cfg.train, steps=s["steps"], batch_size=s["batch_size"], lr=s["lr"]),
                          dp=DPConfig(epsilon=eps or 1.0, private=eps is not None, delta=s["delta"],
                                      max_grad_norm=s["max_grad_norm"]))
            loaded = models.open_model(d, tags="lm")
            t = time.perf_counter()
            rec = dp_finetune_lm(cfg, loaded.model, loaded.path, Path(tmp) / f"eps-{eps or 'inf'}",
                                 model_config=loaded.config)
            rows.append({"epsilon": round(rec["epsilon"], 3) if eps else "inf",
                         "sigma": round(rec["noise_multiplier"], 3), "sample_rate": round(rec["sample_rate"], 4),
                         "steps": rec["steps"], "val_ppl_before": round(rec["val_ppl_before"], 1),
                         "val_ppl": round(rec["val_ppl"], 1), "seconds": round(time.perf_counter() - t, 1)})
            print(rows[-1], flush=True)
    name = "privacy_dp_lm_quick" if quick else "privacy_dp_lm"
    info = {**meta(f"python benchmarks/privacy_dp_lm.py{' --quick' if quick else ''}"), "settings": s, "rows": rows}
    m = s["model"]
    body = [f"DP-SGD on a {m['n_layers']}-layer LLaMA (d_model {m['d_model']}, vocab {m['vocab_size']} pycorpus BPE, "
            f"random init), {s['windows']} pycorpus windows of {s['seq_len'] + 1} tokens (the privacy unit), Poisson "
            f"lots of {s['batch_size']} expected, {s['steps']} AdamW steps at lr {s['lr']}, C = {s['max_grad_norm']}, "
            f"δ = {s['delta']}; σ calibrated per ε; perplexity on {s['val_windows']} held-out val windows. "
            f"1 thread; the 2-core machine was shared with other jobs (seconds are noisy).", "", *table(rows)]
    write(name, info, body, out)
    return info


if __name__ == "__main__":
    raise SystemExit(main(run, __doc__.splitlines()[0], "10 steps on 512 windows"))
