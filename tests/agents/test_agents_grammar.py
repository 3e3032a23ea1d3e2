"""Grammar-constrained tool calls. Parity (oracle: llguidance 1.x, exact set equality, tolerance 0): along
valid and invalid strings, the allowed-token set at every step over the kit's byte-level BPE vocabulary equals
llguidance's for the same regex (``no_forcing``: the model chooses the tokenization, as ours does); and a
random tiny kit LLaMA's tool calls always parse and validate."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from frontierkit.agents.bfcl import make_questions
from frontierkit.agents.calculator import calculator
from frontierkit.agents.grammar import Grammar, Matcher, token_strings, tool_call_schema
from frontierkit.agents.shop import Shop
from frontierkit.agents.tools import validate

RICH = {"type": "object", "properties": {
    "city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
    "days": {"type": "integer"}, "temp": {"type": "number"}, "tags": {"type": "array", "items": {"type": "string"}},
    "flag": {"type": "boolean"}, "note": {"type": "string", "nullable": True}}, "required": ["city"]}
SHOP_TOOLS = [calculator.spec()] + [t.spec() for t in Shop().tools.values()]
BFCL_TOOLS = make_questions()[-1].tools()

CASES = [
    (RICH, '{"city":"Oslo","unit":"celsius","days":3,"temp":-1.5e3,"tags":["a","b\\"c"],"flag":true,"note":null}'),
    (RICH, '{"city":"Zürich 😀 \\n","temp":0.25}'),
    (RICH, '{"city":"x","days":1.5}'),                                     # invalid: float for integer
    (RICH, '{"unit":"celsius","city":"x"}'),                                 # invalid: order / missing city
    (RICH, '{"city":"a\x01"}'),                                              # invalid: control character
    ({"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "boolean"}}}, '{"b":false}'),
    ({"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "boolean"}}}, '{}'),
    (tool_call_schema(SHOP_TOOLS), '{"name":"refund_item","arguments":{"order_id":105,"sku":"KB-01","qty":1,'
                                   '"reason":"damagé"}}'),
    (tool_call_schema(SHOP_TOOLS), '{"name":"calculator","arguments":{"expression":"(1+2)*3"}}'),
    (tool_call_schema(SHOP_TOOLS), '{"name":"calculator","arguments":{"expr":"1"}}'),                # invalid
    (tool_call_schema(BFCL_TOOLS), json.dumps({"name": "send_email", "arguments": {"to": "a@b.c", "subject": "hi"}},
                                              separators=(",", ":"))),
]


@pytest.fixture(scope="module")
def tok():
    from frontierkit.data.pycorpus import train_tokenizer
    return train_tokenizer(512, 200_000)


def _ll_allowed(matcher, n: int) -> set[int]:
    bits = np.unpackbits(np.frombuffer(matcher.compute_bitmask(), dtype=np.uint8), bitorder="little")[:n]
    return set(np.nonzero(bits)[0].tolist())


@pytest.mark.parametrize("case", range(len(CASES)))
def test_masks_match_llguidance(tok, case):
    llguidance = pytest.importorskip("llguidance")
    schema, text = CASES[case]
    g = Grammar(schema)
    eos = tok.token_to_id("<|endoftext|>")
    vocab = token_strings(tok)
    lt = llguidance.LLTokenizer(tok.to_str(), eos_token=eos)
    ll = llguidance.LLMatcher(lt, llguidance.LLMatcher.grammar_from_lark(
        '%llguidance {"no_forcing": true}\nstart: /' + g.regex + "/\n"), log_level=0)
    assert not ll.is_error(), ll.get_error()
    ours = Matcher(g, vocab, eos)
    steps = 0
    for t in tok.encode(text).ids + [eos]:
        mine = set(torch.nonzero(ours.mask()).flatten().tolist())
        assert mine == _ll_allowed(ll, lt.vocab_size), f"step {steps} of {text!r}"
        ok_ours, ok_ll = ours.advance(t), ll.consume_token(t)
        assert ok_ours == ok_ll
        steps += 1
        if not ok_ours:
            break
    valid = g.matches(text)
    assert valid == (steps == len(tok.encode(text).ids) + 1 and ours.done)
    assert valid == (case not in (2, 3, 4, 9))


def test_grammar_language_equals_schema_validation():
    g = Grammar(RICH)
    for text, ok in [('{"city":"a"}', True), ('{"city":"a","flag":false}', True), ('{"city":1}', False),
                     ('{"city":"a","unit":"kelvin"}', False), ('{"city":"a",}', False), ('{"city":"a"} ', False),
                     ('{"city":"a","tags":[]}', True), ('{"city":"a","days":-0}', True), ('{"city":"a","days":01}', False)]:
        assert g.matches(text) == ok, text
        if ok:
            validate(json.loads(text), RICH)


def test_tiny_random_kit_model_tool_calls_always_parse_and_validate(tok, tmp_path):
    from frontierkit import models
    from frontierkit.agents.backends import KitBackend
    cfg = dict(family="llama", vocab_size=512, n_layers=2, n_heads=4, n_kv_heads=2, d_model=64, d_ff=128,
               max_seq_len=1024)
    torch.manual_seed(0)
    models.save(models.build("llm", cfg), tmp_path, kind="llm", config=cfg)
    tok.save(str(tmp_path / "tokenizer.json"))
    backend = KitBackend(tmp_path, max_new_tokens=48, max_calls=1)          # the single-call path
    names = set()
    for seed in range(4):
        torch.manual_seed(seed)
        for p in backend.model.parameters():
            p.data.normal_(0, 0.5)                          # a different random model each time
        reply = backend.chat([{"role": "user", "content": f"do task {seed}"}], SHOP_TOOLS)
        (call,) = reply.tool_calls
        spec = next(t["function"] for t in SHOP_TOOLS if t["function"]["name"] == call.name)
        validate(json.loads(call.arguments), spec["parameters"])
        names.add(call.name)
    assert len(names) >= 2                                   # not one forced output


def test_tiny_random_kit_model_react_actions_always_parse_and_validate(tok, tmp_path):
    """ReAct under the grammar (``react_tree``): over 6 random tiny kit LLaMAs, every completion parses as
    Thought + Action/Action Input or Final Answer, and every Action Input validates against its tool's schema."""
    from frontierkit import models
    from frontierkit.agents.backends import KitBackend
    from frontierkit.agents.loops import Agent, parse_react
    shop = Shop()
    tools = [calculator, *shop.tools.values()]
    params = {t.name: t.parameters for t in tools}
    cfg = dict(family="llama", vocab_size=512, n_layers=2, n_heads=4, n_kv_heads=2, d_model=64, d_ff=128,
               max_seq_len=2048)
    torch.manual_seed(0)
    models.save(models.build("llm", cfg), tmp_path, kind="llm", config=cfg)
    tok.save(str(tmp_path / "tokenizer.json"))
    backend = KitBackend(tmp_path, max_new_tokens=40, max_thought=12)
    names, finals = set(), 0
    for seed in range(6):
        torch.manual_seed(seed)
        for p in backend.model.parameters():
            p.data.normal_(0, 0.5)
        res = Agent(backend, tools, loop="react", max_steps=2).run(f"task {seed}: refund order 105")
        for m in res.messages:
            if m["role"] != "assistant":
                continue
            thought, action, args, answer = parse_react(m["content"])
            assert m["content"].startswith("Thought: ") and (action is None) != (answer is None), m["content"]
            if action is not None:
                validate(json.loads(args), params[action], where=action)
                names.add(action)
            finals += answer is not None
        assert not any("could not parse" in e.get("text", "") for e in res.trace)
    assert len(names) >= 2                                   # several tools chosen: not one forced output
