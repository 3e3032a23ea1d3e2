"""Shared fixtures: a tiny kit LLaMA + byte-level BPE tokenizer saved like `frontier llm train` saves
them, and a real `frontier serve` subprocess on a free localhost port.

The model is random except for 6 reserved residual dimensions that make it answer a tools prompt with
a tool call (like a tool-tuned model would): two chat prompts' last tokens map to added tokens holding
a `<tool_call>...</tool_call>` text, which map to <|endoftext|>. No layer writes those dimensions, so
everywhere else the model is an ordinary random transformer whose attention matters."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from frontierkit.serve.process import start_server, stop_server

from serve_util import craft_tool_calls, make_tokenizer  # noqa: E402


@pytest.fixture(scope="session")
def serve_model_dir(tmp_path_factory) -> Path:
    """A kit LLaMA model folder (config.json + model.safetensors + tokenizer.json)."""
    from frontierkit import models
    from frontierkit.llm.model import Transformer
    out = tmp_path_factory.mktemp("serve-model") / "tiny-llama"
    tok = make_tokenizer()
    torch.manual_seed(0)
    model = Transformer.from_name("tiny-llama", vocab_size=tok.get_vocab_size(), max_seq_len=384,
                                  n_layers=2, d_model=64, d_ff=128).eval()
    craft_tool_calls(model, tok)
    models.save(model, out)
    tok.save(str(out / "tokenizer.json"))
    return out


@pytest.fixture(scope="session")
def server(serve_model_dir):
    """(base url, model id) of a `frontier serve` subprocess, stopped at the end of the session."""
    proc, url = start_server(serve_model_dir, "--max-batch", "32")
    yield url, serve_model_dir.name
    stop_server(proc)


@pytest.fixture
def client(server):
    import openai
    url, _ = server
    return openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=60)
