"""Tools as typed Python functions: the ``@tool`` decorator derives an OpenAI function-calling JSON
schema (OpenAI 2023, "function calling"; the same convention smolagents and Toolformer-style agents use)
from type hints and the docstring, validates arguments against it and turns every failure into a message
the model reads (ReAct, Yao et al. 2023: observations include errors)."""
from __future__ import annotations

import inspect
import json
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Union, get_args, get_origin


class ToolError(Exception):
    """A tool failure the model should read (bad arguments, a refused action); never a crash of the loop."""


_SIMPLE = {int: "integer", float: "number", str: "string", bool: "boolean", type(None): "null"}


def schema_of(annotation: Any) -> dict[str, Any]:
    """The JSON schema of a Python type hint (int, float, str, bool, list[T], dict[str, T], Literal, Optional)."""
    if annotation is inspect.Parameter.empty or annotation is Any:
        return {}
    if annotation in _SIMPLE:
        return {"type": _SIMPLE[annotation]}
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Literal:
        kinds = {_SIMPLE[type(a)] for a in args}
        return {"type": kinds.pop() if len(kinds) == 1 else sorted(kinds), "enum": list(args)}
    if origin in (Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        inner = schema_of(rest[0]) if len(rest) == 1 else {"anyOf": [schema_of(a) for a in rest]}
        return {**inner, "nullable": True} if len(rest) < len(args) else inner
    if origin in (list, tuple, set, frozenset) or annotation in (list, tuple):
        return {"type": "array", **({"items": schema_of(args[0])} if args else {})}
    if origin is dict or annotation is dict:
        return {"type": "object", **({"additionalProperties": schema_of(args[1])} if len(args) == 2 else {})}
    raise TypeError(f"cannot derive a JSON schema from the type hint {annotation!r}")


def parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """(summary, {param: description}) from a Google-style ("Args:") or Sphinx-style (":param x:") docstring."""
    doc = inspect.cleandoc(doc or "")
    params: dict[str, str] = {}
    for m in re.finditer(r":param\s+(\w+):\s*(.+)", doc):
        params[m.group(1)] = m.group(2).strip()
    section = re.search(r"^(?:Args|Arguments|Parameters):\s*\n((?:[ \t]+.+\n?)+)", doc, re.M)
    if section:
        for m in re.finditer(r"^\s+(\w+)(?:\s*\([^)]*\))?:\s*(.+)$", section.group(1), re.M):
            params[m.group(1)] = m.group(2).strip()
    summary = doc.split("\n\n")[0].replace("\n", " ").strip() if doc else ""
    return summary, params


@dataclass
class Tool:
    """A callable tool with its JSON schema ``parameters`` (an object schema)."""
    fn: Callable[..., Any]
    name: str
    description: str
    parameters: dict[str, Any] = field(default_factory=dict)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def spec(self) -> dict[str, Any]:
        """The OpenAI ``tools=[...]`` entry."""
        return {"type": "function", "function": {"name": self.name, "description": self.description,
                                                 "parameters": self.parameters}}

    def invoke(self, arguments: dict[str, Any] | str) -> str:
        """Validate ``arguments`` against the schema, call, and return the observation text (errors included)."""
        try:
            args = json.loads(arguments) if isinstance(arguments, str) else arguments
            if not isinstance(args, dict):
                raise ToolError(f"arguments must be a JSON object, got {type(args).__name__}")
            validate(args, self.parameters, where=self.name)
            out = self.fn(**args)
        except json.JSONDecodeError as e:
            return f"Error: arguments of {self.name} are not valid JSON ({e.msg} at char {e.pos})"
        except ToolError as e:
            return f"Error: {e}"
        except Exception as e:                 # a tool's own bug is still only an observation
            return f"Error: {self.name} raised {type(e).__name__}: {e}"
        return out if isinstance(out, str) else json.dumps(out, default=str)


def tool(fn: Callable[..., Any] | None = None, *, name: str | None = None,
         description: str | None = None) -> Any:
    """Decorator: a function with type hints and a docstring becomes a :class:`Tool` (schema derived)."""
    def wrap(f: Callable[..., Any]) -> Tool:
        summary, docs = parse_docstring(f.__doc__)
        hints = typing.get_type_hints(f)
        props: dict[str, Any] = {}
        required: list[str] = []
        for p in inspect.signature(f).parameters.values():
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                continue
            s = schema_of(hints.get(p.name, inspect.Parameter.empty))
            if p.name in docs:
                s["description"] = docs[p.name]
            if p.default is inspect.Parameter.empty:
                required.append(p.name)
            else:
                s["default"] = p.default
            props[p.name] = s
        params = {"type": "object", "properties": props, "required": required, "additionalProperties": False}
        return Tool(f, name or f.__name__, description or summary, params)
    return wrap(fn) if fn is not None else wrap


_PY_TYPES = {"integer": (int,), "number": (int, float), "string": (str,), "boolean": (bool,),
             "array": (list,), "object": (dict,), "null": (type(None),)}


def _is(value: Any, kind: str) -> bool:
    if kind in ("integer", "number") and isinstance(value, bool):
        return False
    if kind == "integer" and isinstance(value, float) and value.is_integer():
        return True
    return isinstance(value, _PY_TYPES[kind])


def validate(value: Any, schema: dict[str, Any], where: str = "value") -> None:
    """Raise :class:`ToolError` naming the path if ``value`` breaks ``schema`` (a JSON-schema subset:
    type, enum, properties, required, additionalProperties, items, anyOf, nullable, minimum, maximum)."""
    if value is None and schema.get("nullable"):
        return
    if "anyOf" in schema:
        errors = []
        for sub in schema["anyOf"]:
            try:
                return validate(value, sub, where)
            except ToolError as e:
                errors.append(str(e))
        raise ToolError(f"{where}: matches none of the allowed types ({'; '.join(errors)})")
    kind = schema.get("type")
    kinds = [kind] if isinstance(kind, str) else (kind or [])
    if kinds and not any(_is(value, k) for k in kinds):
        raise ToolError(f"{where} must be of type {'/'.join(kinds)}, got {json.dumps(value)}")
    if "enum" in schema and value not in schema["enum"]:
        raise ToolError(f"{where} must be one of {json.dumps(schema['enum'])}, got {json.dumps(value)}")
    if "minimum" in schema and value < schema["minimum"]:
        raise ToolError(f"{where} must be >= {schema['minimum']}, got {value}")
    if "maximum" in schema and value > schema["maximum"]:
        raise ToolError(f"{where} must be <= {schema['maximum']}, got {value}")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        missing = [k for k in schema.get("required", []) if k not in value]
        if missing:
            raise ToolError(f"{where}: missing required argument(s) {', '.join(missing)}")
        for k, v in value.items():
            if k in props:
                validate(v, props[k], f"{where}.{k}")
            elif schema.get("additionalProperties") is False:
                raise ToolError(f"{where}: unexpected argument {k!r} (allowed: {', '.join(props) or 'none'})")
            elif isinstance(schema.get("additionalProperties"), dict):
                validate(v, schema["additionalProperties"], f"{where}.{k}")
    if isinstance(value, list) and "items" in schema:
        for i, v in enumerate(value):
            validate(v, schema["items"], f"{where}[{i}]")


def as_tools(tools: Any) -> dict[str, Tool]:
    """{name: Tool} from a list of Tools or plain functions (plain functions are wrapped by :func:`tool`)."""
    out: dict[str, Tool] = {}
    for t in tools or ():
        t = t if isinstance(t, Tool) else tool(t)
        out[t.name] = t
    return out
