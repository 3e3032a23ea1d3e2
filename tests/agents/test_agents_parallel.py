"""Parallel tool calls from the in-process kit backend (OpenAI ``tool_calls`` with several entries): the
grammar ``tool_calls_tree`` = ``call (<tool_call> call){0,k-1}``; its token masks equal llguidance's (oracle:
llguidance 1.x, exact set equality, tolerance 0); random tiny kit LLaMAs write 1..k calls that all parse
and validate; the function-calling loop runs every call and feeds back one ``role: tool`` message per id."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from frontierkit.agents.bfcl import FUNCTIONS
from frontierkit.agents.calculator import calculator
from frontierkit.agents.grammar import CALL_SEP, Grammar, Matcher, split_calls, token_strings, tool_calls_tree
from frontierkit.agents.shop import Shop
from frontierkit.agents.tools import validate

SHOP_TOOLS = [calculator.spec()] + [t.spec() for t in Shop().tools.values()]
BFCL_TOOLS = [{"type": "function", "function": FUNCTIONS[n]} for n in ("get_weather", "play_music", "send_email")]
CFG = dict(family="llama", vocab_size=512, n_layers=2, n_heads=4, n_kv_heads=2, d_model=64, d_ff=128,
           max_seq_len=1024)


def _call(name: str, args: dict) -> str:
    return json.dumps({"name": name, "arguments": args}, separators=(",", ":"), ensure_ascii=False)


W = _call("get_weather", {"city": "Oslo", "unit": "celsius"})
P = _call("play_music", {"artist": "Bach <tool_call> x"})          # the separator inside a string argument
MULTI = [(W, True), (W + CALL_SEP + P, True), (W + CALL_SEP + P + CALL_SEP + W, True),
         (CALL_SEP.join([W] * 4), False),                          # more than k = 3 calls
         (W + CALL_SEP, False), (W + "," + W, False), ("", False)]


@pytest.fixture(scope="module")
def tok():
    from frontierkit.data.pycorpus import train_tokenizer
    return train_tokenizer(512, 200_000)


@pytest.fixture()
def backend(tok, tmp_path):
    from frontierkit import models
    from frontierkit.agents.backends import KitBackend
    torch.manual_seed(0)
    models.save(models.build("llm", CFG), tmp_path, kind="llm", config=CFG)
    tok.save(str(tmp_path / "tokenizer.json"))
    return KitBackend(tmp_path, max_new_tokens=48, max_calls=3)


def _reseed(backend, seed: int) -> None:
    torch.manual_seed(seed)
    for p in backend.model.parameters():
        p.data.normal_(0, 0.5)                                      # a different random model each time


def test_language_and_split_of_several_calls():
    g = Grammar(tree=tool_calls_tree(BFCL_TOOLS, 3))
    for text, ok in MULTI:
        assert g.matches(text) == ok, text
        if ok:
            calls = split_calls(text)
            assert CALL_SEP.join(_call(c["name"], c["arguments"]) for c in calls) == text
    assert split_calls(W + CALL_SEP + P)[1]["arguments"]["artist"] == "Bach <tool_call> x"
    with pytest.raises(ValueError):
        split_calls(W + "," + W)
    # k = 1 is exactly the single-call grammar
    single = Grammar(tree=tool_calls_tree(BFCL_TOOLS, 1))
    assert single.matches(W) and not single.matches(W + CALL_SEP + W)


@pytest.mark.parametrize("case", range(len(MULTI)))
def test_several_call_masks_match_llguidance(tok, case):
    llguidance = pytest.importorskip("llguidance")
    text, valid = MULTI[case]
    g = Grammar(tree=tool_calls_tree(BFCL_TOOLS, 3))
    eos = tok.token_to_id("<|endoftext|>")
    lt = llguidance.LLTokenizer(tok.to_str(), eos_token=eos)
    ll = llguidance.LLMatcher(lt, llguidance.LLMatcher.grammar_from_lark(
        '%llguidance {"no_forcing": true}\nstart: /' + g.regex + "/\n"), log_level=0)
    assert not ll.is_error(), ll.get_error()
    ours = Matcher(g, token_strings(tok), eos)
    ids = tok.encode(text).ids + [eos]
    for step, t in enumerate(ids):
        mine = set(torch.nonzero(ours.mask()).flatten().tolist())
        bits = np.unpackbits(np.frombuffer(ll.compute_bitmask(), dtype=np.uint8), bitorder="little")[:lt.vocab_size]
        assert mine == set(np.nonzero(bits)[0].tolist()), f"step {step} of {text!r}"
        ok = ours.advance(t)
        assert ok == ll.consume_token(t)
        if not ok:
            break
    assert valid == (ok and ours.done)


def test_tiny_random_kit_models_write_one_or_several_valid_calls(backend):
    """Over 8 random tiny kit LLaMAs: every reply has 1..3 calls, every call validates against its tool's
    schema, and some reply has >= 2 calls (the grammar lets the model continue after a call)."""
    params = {t["function"]["name"]: t["function"]["parameters"] for t in SHOP_TOOLS}
    counts = []
    for seed in range(8):
        _reseed(backend, seed)
        reply = backend.chat([{"role": "user", "content": f"do task {seed}"}], SHOP_TOOLS)
        assert 1 <= len(reply.tool_calls) <= 3 and not reply.content
        assert [c.id for c in reply.tool_calls] == [f"call_{i}" for i in range(len(reply.tool_calls))]
        for c in reply.tool_calls:
            validate(json.loads(c.arguments), params[c.name], where=c.name)
        counts.append(len(reply.tool_calls))
    assert max(counts) >= 2 and min(counts) == 1, counts


def test_function_calling_loop_feeds_back_one_tool_message_per_call_id(backend):
    from frontierkit.agents.loops import Agent
    shop = Shop()
    for seed in range(8):                                   # the first random model that writes >= 2 calls
        _reseed(backend, seed)
        res = Agent(backend, [calculator, *shop.tools.values()], max_steps=2).run(f"do task {seed}")
        first = res.messages[2]
        if len(first.get("tool_calls") or []) >= 2:
            break
    else:
        pytest.fail("no seed of 8 wrote parallel calls")
    ids = [c["id"] for c in first["tool_calls"]]
    fed = res.messages[3:3 + len(ids)]
    assert [m["role"] for m in fed] == ["tool"] * len(ids)
    assert [m["tool_call_id"] for m in fed] == ids and len(set(ids)) == len(ids)
    assert [m["name"] for m in fed] == [c["function"]["name"] for c in first["tool_calls"]]
    assert res.messages[3 + len(ids)]["role"] == "assistant"    # the next turn sees every result
    calls = [e["id"] for e in res.trace if e["type"] == "call" and e["step"] == 0]
    obs = [e["id"] for e in res.trace if e["type"] == "observation" and e["step"] == 0]
    assert calls == obs == ids
