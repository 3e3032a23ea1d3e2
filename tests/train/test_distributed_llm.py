"""``frontier llm train --strategy fsdp`` on 2 gloo ranks (torchrun) against the same command in one process.

Oracle: the single-process ``train_llm`` run of the same recipe (tiny LLaMA, fp32, same global batch).
Tolerance: training and held-out loss within 1e-4 (a 1.3M-parameter model; fp32 reduction order);
optimizer state per rank = 1/2 of the full Adam moments within 5% (FSDP2 = ZeRO-3).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OVERRIDES = ["--train.steps", "2", "--train.log_every", "1", "--train.warmup_steps", "0", "--train.eval_every", "0",
             "--data.max_chars", "200000", "--data.eval_batches", "1"]
ARGS = ["--config", "configs/llm/tiny.toml", *OVERRIDES, "--tracker", "jsonl", "--quiet"]


@pytest.mark.slow
def test_llm_train_fsdp_two_ranks_matches_single_process(tmp_path: Path):
    from frontierkit.config import load_config
    from frontierkit.llm.recipe import LLMRunConfig, train_llm
    import torch
    torch.set_num_threads(1)
    cfg = load_config(LLMRunConfig, ROOT / "configs/llm/tiny.toml", OVERRIDES)
    ref = train_llm(cfg, tmp_path / "single", quiet=True).history   # also warms the tokenizer cache
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    from frontierkit.train.distributed import torchrun
    rc, out, err = torchrun(["-m", "frontierkit.cli", "llm", "train", *ARGS, "--strategy", "fsdp",
                             "--out", str(tmp_path / "fsdp")], nproc=2, timeout=240, env=env, cwd=ROOT)
    assert rc == 0, out[-3000:] + err[-5000:]
    rows = [json.loads(line) for line in (tmp_path / "fsdp" / "metrics.jsonl").read_text().splitlines()]
    got = [r for r in rows if "loss" in r]                     # rank 0 logs; rank 1's tracker is silenced
    assert [r["step"] for r in got] == [h["step"] for h in ref] == [1, 2]
    assert max(abs(g["loss"] - h["loss"]) for g, h in zip(got, ref)) < 1e-4
    assert abs(got[-1]["eval/val_loss"] - ref[-1]["eval/val_loss"]) < 1e-4
    memory = json.loads((tmp_path / "fsdp" / "memory.json").read_text())
    n_params = sum(t.numel() for t in _weights(tmp_path / "fsdp" / "model").values())
    for row in memory:
        assert row["world"] == 2 and abs(row["optim_bytes"] / (2 * 4 * n_params) - 0.5) < 0.05


def _weights(path: Path) -> dict:
    from frontierkit.train.checkpoint import load_model_state
    return load_model_state(path)
