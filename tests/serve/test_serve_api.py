"""The OpenAI-compatible server through the official `openai` client against a real `frontier serve`
process (python -m frontierkit.serve) on a free localhost port.

Oracles: the llm area's `generate` on the same folder (greedy tokens, exact; log-probabilities of its
logits, atol 1e-4), OpenAI's wire format as the `openai` client parses it."""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest
import torch

from frontierkit.llm.generate import generate
from frontierkit.llm.recipe import load_model

PROMPTS = ["def main():", "import json\nprint(", "The quick brown", "What is the weather", "x = 1\n"]


@pytest.fixture(scope="module")
def kit(serve_model_dir):
    model, tok, _ = load_model(serve_model_dir)
    return model, tok


def _reference(kit, prompt: str, n: int) -> list[int]:
    """Greedy tokens of `frontier llm generate`'s code path (llm.generate.stream via llm.recipe.load_model)."""
    model, tok = kit
    ids = tok.encode(prompt).ids
    out = generate(model, torch.tensor([ids]), n, stop_tokens=[tok.token_to_id("<|endoftext|>")])[0, len(ids):]
    eos = tok.token_to_id("<|endoftext|>")
    out = out.tolist()
    return out[:out.index(eos)] if eos in out else out


def _tokens(kit, text: str) -> list[int]:
    return kit[1].encode(text).ids


def test_models_and_health(client, server):
    assert [m.id for m in client.models.list().data] == [server[1]]
    h = httpx.get(server[0] + "/health").json()
    assert h["status"] == "ok" and h["kv_blocks_total"] > 0


def test_greedy_completion_equals_llm_generate_tokens(client, server, kit):
    """Oracle: llm generate (exact greedy tokens, via the token logprobs the server reports)."""
    for prompt in PROMPTS[:3]:
        r = client.completions.create(model=server[1], prompt=prompt, max_tokens=12, temperature=0, logprobs=1)
        ref = _reference(kit, prompt, 12)
        assert kit[1].decode(ref) == r.choices[0].text
        assert r.usage.prompt_tokens == len(_tokens(kit, prompt)) and r.usage.completion_tokens == 12
        assert r.choices[0].finish_reason == "length"


def test_logprobs_equal_log_softmax_of_the_model(client, server, kit):
    """Oracle: log_softmax of the kit model's logits at each position (atol 1e-4), top-2 alternatives."""
    model, tok = kit
    r = client.completions.create(model=server[1], prompt=PROMPTS[0], max_tokens=4, temperature=0, logprobs=2)
    ids = _tokens(kit, PROMPTS[0]) + _reference(kit, PROMPTS[0], 4)
    with torch.no_grad():
        logp = model(torch.tensor([ids]))[0].log_softmax(-1)[len(ids) - 5:-1]  # (4, V)
    lp = r.choices[0].logprobs
    torch.testing.assert_close(torch.tensor(lp.token_logprobs), logp.max(-1).values, atol=1e-4, rtol=0)
    assert all(len(t) == 2 for t in lp.top_logprobs)


def test_greedy_identical_alone_and_with_16_requests_in_flight(client, server, kit):
    """Oracle: llm generate (exact). 16 sampled requests of other lengths run while 3 greedy ones do."""
    def greedy(p):
        return client.completions.create(model=server[1], prompt=p, max_tokens=20, temperature=0).choices[0].text

    def noise(i):
        return client.completions.create(model=server[1], prompt=PROMPTS[i % 5] * (1 + i % 3), max_tokens=10 + i,
                                         temperature=1.0, seed=i).choices[0].text

    alone = [greedy(p) for p in PROMPTS[:3]]
    with ThreadPoolExecutor(19) as ex:
        others = [ex.submit(noise, i) for i in range(16)]
        busy = [ex.submit(greedy, p) for p in PROMPTS[:3]]
        busy = [f.result() for f in busy]
        assert all(isinstance(f.result(), str) for f in others)
    assert alone == busy == [kit[1].decode(_reference(kit, p, 20)) for p in PROMPTS[:3]]


@pytest.mark.slow
def test_32_concurrent_clients_are_all_answered(server, kit):
    """32 threads, each with its own openai client: all answered, greedy ones equal to llm generate."""
    def ask(i):
        c = openai.OpenAI(base_url=server[0] + "/v1", api_key="x", max_retries=0, timeout=120)
        return c.completions.create(model=server[1], prompt=PROMPTS[i % 5], max_tokens=8, temperature=0)
    with ThreadPoolExecutor(32) as ex:
        rs = list(ex.map(ask, range(32)))
    assert all(r.choices[0].text == kit[1].decode(_reference(kit, PROMPTS[i % 5], 8)) for i, r in enumerate(rs))


def test_streaming_chunks_done_and_usage(client, server, kit):
    """SSE: deltas concatenate to the non-streamed text; the last event is `data: [DONE]`; include_usage
    sends a final chunk with empty choices and the usage."""
    kw = dict(model=server[1], prompt=PROMPTS[1], max_tokens=10, temperature=0)
    full = client.completions.create(**kw).choices[0].text
    chunks = list(client.completions.create(**kw, stream=True, stream_options={"include_usage": True}))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == full
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 10
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    with httpx.stream("POST", server[0] + "/v1/completions", json={**kw, "stream": True}) as r:
        lines = [x for x in r.iter_lines() if x]
    assert lines[-1] == "data: [DONE]" and all(x.startswith("data: ") for x in lines)


def test_chat_stream_and_nonstream_agree(client, server):
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "def main():"}]
    r = client.chat.completions.create(model=server[1], messages=msgs, max_tokens=6, temperature=0)
    s = list(client.chat.completions.create(model=server[1], messages=msgs, max_tokens=6, temperature=0,
                                            stream=True))
    assert s[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in s) == (r.choices[0].message.content or "")
    assert r.choices[0].finish_reason == s[-1].choices[0].finish_reason


def test_stop_strings_n_and_seed(client, server, kit):
    ref = kit[1].decode(_reference(kit, PROMPTS[0], 12))
    stop = ref[3:5]
    r = client.completions.create(model=server[1], prompt=PROMPTS[0], max_tokens=12, temperature=0, stop=[stop])
    assert r.choices[0].text == ref[:ref.index(stop)] and r.choices[0].finish_reason == "stop"
    kw = dict(model=server[1], prompt=PROMPTS[2], max_tokens=8, temperature=1.0, n=3, seed=11)
    a, b = client.completions.create(**kw), client.completions.create(**kw)
    assert [c.text for c in a.choices] == [c.text for c in b.choices] and len(a.choices) == 3
    assert len({c.text for c in a.choices}) > 1 and 3 <= a.usage.completion_tokens <= 24


@pytest.mark.parametrize("body,status,code", [
    (b"{not json", 400, None),
    (json.dumps({"model": "no-such-model", "prompt": "hi"}).encode(), 404, "model_not_found"),
    (json.dumps({"prompt": "hello " * 600}).encode(), 400, "context_length_exceeded"),
    (json.dumps({"prompt": "hi", "temperature": "hot"}).encode(), 400, None),
    (json.dumps({"prompt": "hi", "max_tokens": 0}).encode(), 400, None),
    (json.dumps(["a list"]).encode(), 400, None),
])
def test_bad_requests_get_openai_error_json_and_server_survives(server, body, status, code):
    r = httpx.post(server[0] + "/v1/completions", content=body, headers={"content-type": "application/json"})
    assert r.status_code == status
    err = r.json()["error"]
    assert err["message"] and err["type"] and err["code"] == code
    assert httpx.get(server[0] + "/health").status_code == 200


def test_openai_client_raises_typed_errors(client, server):
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.BadRequestError, match="context length"):
        client.chat.completions.create(model=server[1], messages=[{"role": "user", "content": "hello " * 600}])
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=server[1], messages=[{"role": "robot", "content": "hi"}])


def test_client_disconnect_cancels_the_sequence(server):
    """Closing a stream mid-way drops the sequence: the engine ends up with nothing running."""
    import time
    with httpx.stream("POST", server[0] + "/v1/completions",
                      json={"prompt": "def", "max_tokens": 300, "temperature": 0, "stream": True}) as r:
        for line in r.iter_lines():
            if line.startswith("data: {"):
                break
    deadline = time.time() + 10
    while time.time() < deadline and httpx.get(server[0] + "/health").json()["running"]:
        time.sleep(0.1)
    assert httpx.get(server[0] + "/health").json()["running"] == 0


def test_full_queue_answers_429(serve_model_dir):
    """Back-pressure: with the waiting queue full, a request gets 429 in OpenAI's error shape."""
    from fastapi.testclient import TestClient

    from frontierkit.serve.scheduler import SamplingParams, Sequence
    from frontierkit.serve.server import ServeState, create_app
    state = ServeState(serve_model_dir, max_batch=1, max_waiting=1)
    state.engine.submit(Sequence([1, 2], SamplingParams()))       # engine not started: it stays queued
    r = TestClient(create_app(state)).post("/v1/completions", json={"prompt": "hi"})
    assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limit_exceeded"


@pytest.mark.slow
def test_hf_folder_served_over_http_matches_transformers_generate(tmp_path):
    """Oracle: transformers `generate` (greedy, exact tokens) on a tiny random LlamaForCausalLM folder saved
    with `save_pretrained` plus a tokenizer.json; the same folder served by a real server process and
    queried through the official openai client returns those tokens' text, alone and with 8 sampled
    requests in flight (the reference stops where the server stops: at <|endoftext|>)."""
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).parents[1] / "llm"))
    from frontierkit.serve.process import start_server
    from hf_util import load_hf, save_hf_model
    from serve_util import make_tokenizer

    tok = make_tokenizer()
    path = save_hf_model("llama", tmp_path / "hf-llama", initializer_range=0.1, vocab_size=tok.get_vocab_size(),
                         max_position_embeddings=384)
    tok.save(str(path / "tokenizer.json"))
    hf = load_hf(path)
    eos = tok.token_to_id("<|endoftext|>")

    def reference(prompt: str) -> str:
        ids = tok.encode(prompt).ids
        with torch.no_grad():
            out = hf.generate(torch.tensor([ids]), max_new_tokens=12, do_sample=False, eos_token_id=None,
                              pad_token_id=0)[0, len(ids):].tolist()
        return tok.decode(out[:out.index(eos)] if eos in out else out)

    proc, url = start_server(path)
    try:
        c = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=120)
        name = c.models.list().data[0].id

        def greedy(p):
            return c.completions.create(model=name, prompt=p, max_tokens=12, temperature=0).choices[0].text

        def noise(i):
            return c.completions.create(model=name, prompt=PROMPTS[i % 5], max_tokens=6 + i, temperature=1.0,
                                        seed=i).choices[0].text

        alone = [greedy(p) for p in PROMPTS[:3]]
        with ThreadPoolExecutor(11) as ex:
            others = [ex.submit(noise, i) for i in range(8)]
            busy = [f.result() for f in [ex.submit(greedy, p) for p in PROMPTS[:3]]]
            assert all(isinstance(f.result(), str) for f in others)
        assert alone == busy == [reference(p) for p in PROMPTS[:3]]
        assert sum(len(t) for t in alone) > 20                     # real continuations, not empty answers
    finally:
        proc.terminate()
        proc.wait(timeout=10)
