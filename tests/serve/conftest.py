"""Shared fixtures: a tiny kit LLaMA + byte-level BPE tokenizer saved like `frontier llm train` saves
them, and a real `frontier serve` subprocess on a free localhost port.

The model is random except for 6 reserved residual dimensions that make it answer a tools prompt with
a tool call (like a tool-tuned model would): two chat prompts' last tokens map to added tokens holding
a `<tool_call>...</tool_call>` text, which map to <|endoftext|>. No layer writes those dimensions, so
everywhere else the model is an ordinary random transformer whose attention matters."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model_dir: Path, *extra: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, "-m", "frontierkit.serve", "--model", str(model_dir), "--port", str(port), *extra]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    import httpx
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 240
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"frontier serve exited: {proc.stdout.read()}")
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("frontier serve did not answer /health within 240 s")


@pytest.fixture(scope="session")
def server(serve_model_dir):
    """(base url, model id) of a `frontier serve` subprocess, stopped at the end of the session."""
    proc, url = start_server(serve_model_dir, "--max-batch", "32")
    yield url, serve_model_dir.name
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture
def client(server):
    import openai
    url, _ = server
    return openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=60)
