"""Model backends an agent talks to, all behind one ``chat(messages, tools) -> Reply`` call:
- :class:`OpenAIBackend`: any OpenAI-compatible endpoint (the kit's ``frontier serve``, vLLM, llama.cpp,
  Ollama, OpenAI) through the official ``openai`` client, with ``tools`` / ``tool_calls`` (OpenAI function
  calling, 2023);
- :class:`KitBackend`: a kit language model in-process (any folder the registry opens with tag "lm" and a
  ``tokenizer.json``), whose tool calls are decoded under a JSON-schema grammar (see ``grammar.py``) so
  they always parse and validate;
- :class:`PolicyBackend`: a Python function as the model (scripted oracle / random policies, tests).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..errors import CheckpointError, ConfigError


@dataclass
class ToolCall:
    """One requested call: OpenAI's ``{"id", "type": "function", "function": {"name", "arguments"}}``."""
    id: str
    name: str
    arguments: str
    """JSON text, exactly as the model wrote it (may be invalid: the loop reports that to the model)"""

    def message(self) -> dict[str, Any]:
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments}}


@dataclass
class Reply:
    """An assistant turn: text and/or tool calls."""
    content: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)

    def message(self) -> dict[str, Any]:
        msg: dict[str, Any] = {"role": "assistant", "content": self.content or None}
        if self.tool_calls:
            msg["tool_calls"] = [c.message() for c in self.tool_calls]
        return msg


class Backend:
    """What the loops need from a model."""
    name = "backend"

    def chat(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None,
             stop: list[str] | None = None) -> Reply:
        raise NotImplementedError

    def react_step(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None,
                   stop: list[str] | None = None) -> Reply:
        """One ReAct completion (Thought / Action / Action Input, or Final Answer) as free text; the tools are
        described in the prompt, so only a backend that constrains its decoding looks at ``tools``."""
        return self.chat(messages, None, stop=stop)


class OpenAIBackend(Backend):
    """An OpenAI-compatible ``/v1/chat/completions`` endpoint through the official client.

    The key comes from ``api_key`` or the environment (``OPENAI_API_KEY``; local servers accept any)."""

    def __init__(self, model: str, base_url: str | None = None, api_key: str | None = None,
                 temperature: float = 0.0, timeout: float = 60.0, max_tokens: int | None = None):
        from ..errors import require_extra
        openai = require_extra("openai", "agents")
        self.model, self.temperature, self.max_tokens = model, temperature, max_tokens
        self.name = f"openai:{model}"
        key = api_key or os.environ.get("OPENAI_API_KEY") or "not-needed"
        self.client = openai.OpenAI(base_url=base_url, api_key=key, timeout=timeout, max_retries=0)

    def chat(self, messages, tools=None, stop=None) -> Reply:
        import openai
        kw: dict[str, Any] = {"model": self.model, "messages": messages, "temperature": self.temperature}
        if tools:
            kw["tools"] = tools
        if stop:
            kw["stop"] = stop
        if self.max_tokens:
            kw["max_tokens"] = self.max_tokens
        try:
            resp = self.client.chat.completions.create(**kw)
        except openai.APITimeoutError:
            raise ConfigError(f"the endpoint {self.client.base_url} did not answer within {self.client.timeout} s; "
                              f"raise --timeout, or lower --max-tokens") from None
        except openai.APIConnectionError as e:
            raise ConfigError(f"cannot reach the endpoint {self.client.base_url} ({e}); check --base-url") from None
        except openai.APIStatusError as e:
            raise ConfigError(f"the endpoint {self.client.base_url} answered {e.status_code}: "
                              f"{str(e.message)[:200]}") from None
        msg = resp.choices[0].message
        calls = [ToolCall(c.id, c.function.name, c.function.arguments or "{}") for c in (msg.tool_calls or [])]
        return Reply(msg.content or "", calls)


class PolicyBackend(Backend):
    """A Python function ``policy(messages, tools) -> Reply`` standing in for a model."""

    def __init__(self, policy: Callable[[list[dict[str, Any]], list[dict[str, Any]] | None], Reply],
                 name: str = "policy"):
        self.policy, self.name = policy, name

    def chat(self, messages, tools=None, stop=None) -> Reply:
        return self.policy(messages, tools)


class ScriptedBackend(PolicyBackend):
    """Replies from a list, in order (tests)."""

    def __init__(self, replies: list[Reply]):
        it = iter(replies)
        super().__init__(lambda m, t: next(it, Reply("(script exhausted)")), "scripted")


def render_chat(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> str:
    """A plain-text chat template for kit models: ``<|role|>`` headers, tool calls as ``<tool_call>{json}``."""
    parts = []
    if tools:
        parts.append("<|tools|>\n" + "\n".join(json.dumps(t["function"], separators=(",", ":")) for t in tools))
    for m in messages:
        text = m.get("content") or ""
        for c in m.get("tool_calls") or []:
            f = c["function"]
            text += f'<tool_call>{{"name":{json.dumps(f["name"])},"arguments":{f["arguments"]}}}'
        parts.append(f"<|{m['role']}|>\n{text}")
    return "\n".join(parts) + "\n<|assistant|>\n"


class KitBackend(Backend):
    """A kit LM in-process: greedy decoding with a KV cache; when tools are offered and no tool result is
    in the conversation yet, the reply is 1..``max_calls`` tool calls (OpenAI parallel ``tool_calls``)
    decoded under the tools' JSON-schema grammar (``grammar.tool_calls_tree``)."""

    def __init__(self, path: str | Path, max_new_tokens: int = 96, constrained: bool = True, max_thought: int = 200,
                 max_calls: int = 4):
        if not (isinstance(max_calls, int) and max_calls >= 1):
            raise ConfigError(f"max_calls must be an integer >= 1, got {max_calls!r}")
        from .. import models
        loaded = models.open_model(path, tags={"lm"}, what="frontier agent --model DIR")
        tok_file = loaded.path / "tokenizer.json"
        if not tok_file.is_file():
            raise CheckpointError(f"{loaded.path} has no tokenizer.json; an agent needs the model's tokenizer "
                                  f"next to its weights")
        from tokenizers import Tokenizer
        self.model, self.tokenizer = loaded.model.eval(), Tokenizer.from_file(str(tok_file))
        self.name = f"kit:{loaded.path}"
        self.max_new_tokens, self.constrained, self.max_thought = max_new_tokens, constrained, max_thought
        self.max_calls = max_calls
        self._vocab = None
        self._grammars: dict[str, Any] = {}

    def vocab(self):
        """The decoded byte string of every token id (cached), for grammar masks."""
        if self._vocab is None:
            from .grammar import token_strings
            self._vocab = token_strings(self.tokenizer, self.model.cfg.vocab_size)
        return self._vocab

    def generate(self, prompt: str, matcher: Any = None, stop: list[str] | None = None,
                 max_new_tokens: int | None = None) -> str:
        """Greedy continuation of ``prompt`` (under a grammar ``matcher`` when given)."""
        from .grammar import greedy_decode
        new = max_new_tokens or self.max_new_tokens
        ids = self.tokenizer.encode(prompt).ids
        room = self.model.cfg.max_seq_len - new
        if room < 8:
            raise ConfigError(f"the model's context ({self.model.cfg.max_seq_len} tokens) is too short for "
                              f"{new} new tokens")
        ids = ids[-room:]                                  # keep the most recent context
        return greedy_decode(self.model, ids, self.vocab(), new, matcher=matcher, stop=stop or [],
                             eos_id=self.eos_id)

    @property
    def eos_id(self) -> int | None:
        return self.tokenizer.token_to_id("<|endoftext|>")

    def tool_call(self, prompt: str, tools: list[dict[str, Any]]) -> Reply:
        """1..max_calls tool calls decoded under the tools' grammar (``<tool_call>`` between calls, as
        ``render_chat`` writes them): every call always parses and validates; ids ``call_0``, ``call_1``, ..."""
        from .grammar import CALL_SEP, Grammar, Matcher, split_calls, tool_calls_tree
        key = f"calls{self.max_calls}:" + json.dumps(tools, sort_keys=True)
        if key not in self._grammars:
            self._grammars[key] = Grammar(tree=tool_calls_tree(tools, self.max_calls))
        g = self._grammars[key]
        # max_new_tokens (at least the shortest call + 32) per call: room for a further call after each one;
        # the extra calls' room is capped at half the model's context (one call's room is never cut)
        per_call = int(max(self.max_new_tokens, g.distance(g.start) + 32))
        budget = min(per_call * self.max_calls, max(per_call, self.model.cfg.max_seq_len // 2))
        text = self.generate(prompt + CALL_SEP, matcher=Matcher(g, self.vocab(), self.eos_id),
                             max_new_tokens=budget)
        calls = split_calls(text)
        return Reply("", [ToolCall(f"call_{i}", c["name"], json.dumps(c["arguments"])) for i, c in enumerate(calls)])

    def react_step(self, messages, tools=None, stop=None) -> Reply:
        """A ReAct step decoded under :func:`~.grammar.react_tree`: the Action is one of ``tools`` and its
        Action Input follows that tool's JSON schema, so every action a kit model writes parses and validates."""
        if not (tools and self.constrained):
            return super().react_step(messages, tools, stop)
        from .grammar import Grammar, Matcher, react_tree, tool_call_schema
        key = f"react{self.max_thought}:" + json.dumps(tools, sort_keys=True)
        if key not in self._grammars:
            longest_action = max(Grammar(tool_call_schema([t])).distance(0) for t in tools)   # shortest call of each
            self._grammars[key] = (Grammar(tree=react_tree(tools, self.max_thought)), longest_action)
        g, need = self._grammars[key]
        budget = int(max(self.max_new_tokens, self.max_thought + need + 32))   # room for any thought and call
        text = self.generate(render_chat(messages), matcher=Matcher(g, self.vocab(), self.eos_id),
                             max_new_tokens=budget)
        return Reply(text)

    def chat(self, messages, tools=None, stop=None) -> Reply:
        prompt = render_chat(messages, tools)
        called = any(m["role"] == "tool" for m in messages)
        if tools and self.constrained and not called:
            return self.tool_call(prompt, tools)
        return Reply(self.generate(prompt, stop=(stop or []) + ["<|"]).strip())


def make_backend(model: Any, base_url: str | None = None, **kw: Any) -> Backend:
    """A Backend from what the user gave: a Backend, a kit model folder, or an endpoint model name."""
    if isinstance(model, Backend):
        return model
    if callable(model):
        return PolicyBackend(model)
    if base_url:
        return OpenAIBackend(str(model), base_url=base_url, **kw)
    if Path(str(model)).is_dir():
        return KitBackend(model, **kw)
    raise ConfigError(f"--model {model!r} is neither a kit model folder nor usable without --base-url; give a "
                      f"folder (frontier llm train --out DIR) or --base-url URL for an OpenAI-compatible endpoint")
