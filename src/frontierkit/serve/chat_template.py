"""Chat templates and tool calls: turn OpenAI chat ``messages`` (+ ``tools``) into the prompt text a
model was trained on, and parse the tool calls a model emits back into OpenAI ``tool_calls``.

A folder whose ``tokenizer_config.json`` carries a Hugging Face ``chat_template`` (Jinja) is rendered
with it (``messages``, ``tools``, ``add_generation_prompt=True``, ``bos_token``, ``eos_token``), as
transformers' ``apply_chat_template`` does. Otherwise the kit's default template (below) is used::

    <|system|>\\n{system text}\\n{tool block, when tools are given}<|end|>\\n
    <|user|>\\n{text}<|end|>\\n
    <|assistant|>\\n{text}{one <tool_call>{...}</tool_call> per call}<|end|>\\n
    <|tool|>\\n{tool result}<|end|>\\n
    ...
    <|assistant|>\\n                    <- the model continues from here; "<|end|>" stops it

Tool call format (both templates; the parser is the server's): the model answers with one or more
``<tool_call>{"name": "...", "arguments": {...}}</tool_call>`` blocks (Hermes/Qwen style). Forced
``tool_choice`` (a named function, or "required") pre-fills the start of the block in the prompt.
"""
from __future__ import annotations

import json
import re
import uuid
from typing import Any

from ..errors import ConfigError, require_extra

END = "<|end|>"
"""the default template's end-of-turn marker (a stop string)"""
TOOL_OPEN, TOOL_CLOSE = "<tool_call>", "</tool_call>"
ROLES = ("system", "user", "assistant", "tool", "developer")


def tool_block(tools: list[dict[str, Any]]) -> str:
    """The default template's description of the tools and of the call format."""
    lines = [json.dumps(t.get("function", t), sort_keys=True) for t in tools]
    return ("You can call these tools. To call one, answer with "
            f'{TOOL_OPEN}{{"name": <tool name>, "arguments": <JSON object>}}{TOOL_CLOSE}\nTools:\n'
            + "\n".join(lines) + "\n")


def _text(content: Any) -> str:
    """OpenAI message content: a string, None, or a list of {"type": "text", "text": ...} parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    raise ConfigError(f"message content must be a string or a list of text parts, got {type(content).__name__}")


def _calls_text(calls: list[dict[str, Any]]) -> str:
    out = []
    for c in calls or []:
        fn = c.get("function", {})
        args = fn.get("arguments", "{}")
        try:
            args = json.loads(args) if isinstance(args, str) else args
        except json.JSONDecodeError:
            pass
        out.append(TOOL_OPEN + json.dumps({"name": fn.get("name"), "arguments": args}) + TOOL_CLOSE)
    return "".join(out)


def render_default(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> str:
    """The kit's default chat template (module docstring), ending with the assistant's open turn."""
    parts = []
    system = "\n".join(_text(m.get("content")) for m in messages if m["role"] in ("system", "developer"))
    if system or tools:
        parts.append(f"<|system|>\n{system}\n{tool_block(tools) if tools else ''}{END}\n")
    for m in messages:
        role = m["role"]
        if role in ("system", "developer"):
            continue
        body = _text(m.get("content")) + (_calls_text(m.get("tool_calls")) if role == "assistant" else "")
        parts.append(f"<|{role}|>\n{body}{END}\n")
    return "".join(parts) + "<|assistant|>\n"


def render_jinja(template: str, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None,
                 special: dict[str, str]) -> str:
    """A Hugging Face ``chat_template`` rendered in a Jinja sandbox (as ``apply_chat_template``)."""
    sandbox = require_extra("jinja2.sandbox", "serve")

    def raise_exception(msg: str) -> None:
        raise ConfigError(f"the model's chat template refused the messages: {msg}")

    env = sandbox.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    env.filters["tojson"] = lambda x, indent=None, **kw: json.dumps(x, indent=indent, ensure_ascii=False)
    return env.from_string(template).render(messages=messages, tools=tools, add_generation_prompt=True,
                                            **special)


def check_messages(messages: Any) -> list[dict[str, Any]]:
    """Validate OpenAI chat messages (a non-empty list of {"role", "content"}); ConfigError otherwise."""
    if not isinstance(messages, list) or not messages:
        raise ConfigError("'messages' must be a non-empty list of {\"role\": ..., \"content\": ...} objects")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            raise ConfigError(f"messages[{i}] needs a 'role' among {', '.join(ROLES)}")
        _text(m.get("content"))
    return messages


def forced_prefix(tool_choice: Any, tools: list[dict[str, Any]] | None) -> str:
    """Text pre-filled after the assistant turn opens: a forced tool call's start (tool_choice names
    a function: up to its arguments; "required": up to the name), else nothing."""
    if not tools or tool_choice in (None, "auto", "none"):
        return ""
    if tool_choice == "required":
        return TOOL_OPEN + '{"name": "'
    if isinstance(tool_choice, dict) and isinstance(tool_choice.get("function"), dict):
        name = tool_choice["function"].get("name")
        names = [t.get("function", {}).get("name") for t in tools]
        if name not in names:
            raise ConfigError(f"tool_choice names function {name!r}, which is not among the tools {names}")
        return TOOL_OPEN + json.dumps({"name": name})[:-1] + ', "arguments": '
    raise ConfigError(f"tool_choice={tool_choice!r} is invalid: use 'none', 'auto', 'required' or "
                      "{\"type\": \"function\", \"function\": {\"name\": ...}}")


_CALL = re.compile(re.escape(TOOL_OPEN) + r"(.*?)" + re.escape(TOOL_CLOSE), re.S)


def parse_tool_calls(text: str) -> tuple[str | None, list[dict[str, Any]]]:
    """Split generated text into (content before the first call or None, OpenAI ``tool_calls``); blocks
    that are not JSON objects with a "name" are left in the content."""
    calls = []
    for m in _CALL.finditer(text):
        try:
            obj = json.loads(m.group(1))
        except json.JSONDecodeError:
            continue
        if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
            continue
        args = obj.get("arguments", obj.get("parameters", {}))
        calls.append({"id": f"call_{uuid.uuid4().hex[:24]}", "type": "function",
                      "function": {"name": obj["name"], "arguments": json.dumps(args)}})
    if not calls:
        return text, []
    content = text[:text.index(TOOL_OPEN)].strip()
    return content or None, calls
