"""Shared fixtures of the compress tests: a trained digits CNN (trained once, cached) and a tiny LLM
folder that `frontier llm` commands accept (random weights, the cached pycorpus tokenizer)."""
from __future__ import annotations

import shutil

import pytest
import torch

from frontierkit import models


@pytest.fixture(scope="session")
def digits_cnn():
    """(model dir, model) of a CNN trained 300 steps on digits (cached under FRONTIERKIT_CACHE)."""
    from frontierkit.data import cache_dir
    from frontierkit.vision.train import run_config_for, train_classifier
    out = cache_dir() / "compress-tests" / "cnn-300"
    if not (out / "model" / "config.json").is_file():
        shutil.rmtree(out, ignore_errors=True)
        train_classifier(run_config_for("cnn", steps=300), out)
    return out / "model", models.load(out / "model")


@pytest.fixture(scope="session")
def digits_data():
    from frontierkit.data.digits import load_digits
    return load_digits("train"), load_digits("test")


@pytest.fixture()
def tiny_llm_dir(tmp_path):
    """A 2-layer LLaMA (vocab 2048) saved with tokenizer.json and a run config, as `frontier llm` expects."""
    from frontierkit.data import pycorpus
    from frontierkit.llm import Transformer, TransformerConfig
    torch.manual_seed(0)
    model = Transformer(TransformerConfig(vocab_size=2048, n_layers=2, n_heads=4, n_kv_heads=2, d_model=64,
                                          d_ff=128, max_seq_len=64)).eval()
    d = models.save(model, tmp_path / "llm", run={"data": {"seq_len": 32, "val_chars": 20_000}})
    pycorpus.train_tokenizer(2048, 1_000_000).save(str(d / "tokenizer.json"))
    return d, model
