"""Tool calls: the chat template renders `tools`, the model answers `<tool_call>{...}</tool_call>`, the
server returns OpenAI `tool_calls` with finish_reason "tool_calls" (the format the agents area reads
through the `openai` client). The fixture model is crafted to emit a call for the tools prompt
(tests/serve/conftest.py). Oracle: the `openai` client's parsed types; json.loads of the arguments."""
from __future__ import annotations

import json

import pytest

from frontierkit.errors import ConfigError
from frontierkit.serve.chat_template import (END, forced_prefix, parse_tool_calls, render_default, render_jinja,
                                             tool_block)

from serve_util import TOOL_MESSAGES, TOOLS


def test_auto_tool_choice_returns_tool_calls(client, server):
    r = client.chat.completions.create(model=server[1], messages=TOOL_MESSAGES, tools=TOOLS, temperature=0)
    c = r.choices[0]
    assert c.finish_reason == "tool_calls" and c.message.content is None
    (call,) = c.message.tool_calls
    assert call.type == "function" and call.function.name == "get_weather" and call.id.startswith("call_")
    assert json.loads(call.function.arguments) == {"city": "Paris"}


def test_forced_tool_choice_prefills_the_call(client, server):
    """tool_choice naming a function pre-fills `<tool_call>{"name": ..., "arguments": ` in the prompt;
    the model writes only the arguments."""
    r = client.chat.completions.create(model=server[1], messages=TOOL_MESSAGES, tools=TOOLS, temperature=0,
                                       tool_choice={"type": "function", "function": {"name": "get_weather"}})
    assert r.choices[0].finish_reason == "tool_calls"
    assert json.loads(r.choices[0].message.tool_calls[0].function.arguments) == {"city": "Paris"}
    assert r.usage.completion_tokens == 2


def test_streamed_tool_calls_and_tool_choice_none(client, server):
    chunks = list(client.chat.completions.create(model=server[1], messages=TOOL_MESSAGES, tools=TOOLS,
                                                 temperature=0, stream=True))
    calls = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert len(calls) == 1 and calls[0].index == 0 and calls[0].function.name == "get_weather"
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    r = client.chat.completions.create(model=server[1], messages=TOOL_MESSAGES, tools=TOOLS, temperature=0,
                                       tool_choice="none")
    assert r.choices[0].message.tool_calls is None and r.choices[0].finish_reason != "tool_calls"


def test_unknown_forced_tool_is_a_400(client, server):
    import openai
    with pytest.raises(openai.BadRequestError, match="not among the tools"):
        client.chat.completions.create(model=server[1], messages=TOOL_MESSAGES, tools=TOOLS,
                                       tool_choice={"type": "function", "function": {"name": "nope"}})


def test_default_template_renders_tools_calls_and_results():
    msgs = [{"role": "system", "content": "S"}, *TOOL_MESSAGES,
            {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function", "function": {
                "name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "sunny"}]
    text = render_default(msgs, TOOLS)
    assert text.startswith("<|system|>\nS\n" + tool_block(TOOLS) + END)
    assert '<|assistant|>\n<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>' in text
    assert text.endswith(f"<|tool|>\nsunny{END}\n<|assistant|>\n")
    assert forced_prefix("required", TOOLS) == '<tool_call>{"name": "'
    with pytest.raises(ConfigError):
        forced_prefix("sometimes", TOOLS)


def test_parser_keeps_content_and_ignores_malformed_calls():
    content, calls = parse_tool_calls('Let me check. <tool_call>{"name": "a", "arguments": {"x": 1}}</tool_call>'
                                      '<tool_call>{"name": "b", "parameters": {}}</tool_call>')
    assert content == "Let me check." and [c["function"]["name"] for c in calls] == ["a", "b"]
    assert json.loads(calls[0]["function"]["arguments"]) == {"x": 1}
    assert parse_tool_calls("<tool_call>{oops</tool_call>") == ("<tool_call>{oops</tool_call>", [])


def test_hf_chat_template_is_rendered_like_transformers(tmp_path):
    """Oracle: transformers `apply_chat_template` on a PreTrainedTokenizerFast with the same Jinja template."""
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast
    template = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
                "{% if tools %}TOOLS {{ tools | tojson }}\n{% endif %}"
                "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    hf = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({"a": 0}, unk_token="a")),
                                 chat_template=template)
    msgs = [{"role": "user", "content": "hi"}]
    for tools in (None, TOOLS):
        ref = hf.apply_chat_template(msgs, tools=tools, tokenize=False, add_generation_prompt=True)
        assert render_jinja(template, msgs, tools, {}) == ref
