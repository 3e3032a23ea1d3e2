"""Integration with the kit's own server: the agent's OpenAI backend (official ``openai`` client) drives a real
``frontier serve`` subprocess on a tiny kit LLaMA whose reserved residual dimensions make it answer a tools
prompt with a ``get_weather`` call (the serve tests' craft). The call reaches our loop, our tool runs, its
result goes back as a ``role: tool`` message the server accepts, until the step budget."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest
import torch

from frontierkit.agents import Agent, tool

FULL_CALL = '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>'
TEXT = ("The quick brown fox jumps over the lazy dog. def main():\n    return 0\n"
        "import json\nprint(json.dumps({'a': 1}))\nWhat is the weather in Paris? It is sunny.\n") * 40
TASK = "What is the weather in Paris?"


@tool
def get_weather(city: str) -> str:
    """current weather of a city

    Args:
        city: the city
    """
    return f"sunny in {city}, 21 C"


def _model_dir(tmp_path):
    from tokenizers import Tokenizer, decoders, models as tmodels, pre_tokenizers, trainers

    from frontierkit import models
    from frontierkit.serve.chat_template import render_default          # the server's own template
    tok = Tokenizer(tmodels.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator([TEXT], trainers.BpeTrainer(vocab_size=320, special_tokens=["<|endoftext|>"],
                            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    tok.add_tokens([FULL_CALL])
    cfg = dict(family="llama", vocab_size=tok.get_vocab_size(), n_layers=2, n_heads=4, n_kv_heads=2, d_model=64,
               d_ff=128, max_seq_len=1024)
    torch.manual_seed(0)
    model = models.build("llm", cfg).eval()
    prompt = render_default([{"role": "user", "content": TASK}], [get_weather.spec()])
    src, full, eos = tok.encode(prompt).ids[-1], tok.token_to_id(FULL_CALL), tok.token_to_id("<|endoftext|>")
    with torch.no_grad():                       # prompt end -> the call token -> <|endoftext|>
        emb, head = model.tok_emb.weight, model.lm_head.weight
        emb[:, 56:60] = 0
        head[:, 56:60] = 0
        for layer in model.layers:
            layer.attn.out.weight[56:60] = 0
            layer.mlp.down.weight[56:60] = 0
        emb[src, 56:58], head[full, 56:58] = 1.0, 50.0
        emb[full, 58:60], head[eos, 58:60] = 1.0, 50.0
    models.save(model, tmp_path, kind="llm", config=cfg)
    tok.save(str(tmp_path / "tokenizer.json"))
    return tmp_path


@pytest.mark.slow
def test_agent_against_real_frontier_serve(tmp_path):
    httpx = pytest.importorskip("httpx")
    d = _model_dir(tmp_path / "model")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.Popen([sys.executable, "-m", "frontierkit.serve", "--model", str(d), "--port", str(port),
                             "--model-id", "tiny"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        deadline = time.time() + 90
        while True:
            assert proc.poll() is None, proc.stdout.read()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.time() < deadline, "frontier serve did not start"
            time.sleep(0.3)
        res = Agent("tiny", [get_weather], base_url=f"http://127.0.0.1:{port}/v1", max_steps=2).run(TASK,
                                                                                                   out=tmp_path)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    calls = [e for e in res.trace if e["type"] == "call"]
    obs = [e for e in res.trace if e["type"] == "observation"]
    assert calls and calls[0]["name"] == "get_weather" and '"Paris"' in calls[0]["arguments"]
    assert obs[0]["text"] == "sunny in Paris, 21 C"
    assert res.messages[2]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert res.messages[3]["role"] == "tool" and len(res.messages) >= 4        # the server accepted the tool turn
    assert (tmp_path / "trace.jsonl").is_file()
