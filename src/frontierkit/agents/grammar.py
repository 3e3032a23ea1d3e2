"""Grammar-constrained decoding of tool calls: JSON schema -> a regular grammar (a small regex tree) -> a
byte-level automaton -> per-step allowed-token masks over the model's BPE vocabulary, so a tool call from
even a tiny model always parses and validates (the approach of Willard & Louf 2023, "Efficient Guided
Generation", outlines; and of llguidance: a token is allowed iff its bytes extend the text to a prefix of
some string of the language; EOS iff the text is already in the language).

The JSON produced is compact (no whitespace) with properties in schema order; an optional property may be
left out. Strings are JSON strings without ``\\u`` escapes; non-ASCII characters are matched as well-formed
UTF-8 byte sequences (Unicode Table 3-7), so byte-level BPE tokens that split a character are handled."""
from __future__ import annotations

import json
from typing import Any, Sequence

import torch

Node = tuple
"""("lit", str) | ("cls", negated, ((lo, hi), ...)) | ("seq", [Node]) | ("alt", [Node]) | ("star", Node)
| ("opt", Node)"""

STRING_CHAR: Node = ("alt", [("cls", True, ((0x00, 0x1F), (0x22, 0x22), (0x5C, 0x5C))),
                             ("seq", [("lit", "\\"), ("cls", False, tuple((ord(c), ord(c)) for c in '"\\/bfnrt'))])])
DIGIT: Node = ("cls", False, ((0x30, 0x39),))
INTEGER: Node = ("seq", [("opt", ("lit", "-")), ("alt", [("lit", "0"), ("seq", [("cls", False, ((0x31, 0x39),)),
                                                                                ("star", DIGIT)])])])
NUMBER: Node = ("seq", [INTEGER, ("opt", ("seq", [("lit", "."), DIGIT, ("star", DIGIT)])),
                        ("opt", ("seq", [("cls", False, ((0x45, 0x45), (0x65, 0x65))),
                                         ("opt", ("cls", False, ((0x2B, 0x2B), (0x2D, 0x2D)))), DIGIT,
                                         ("star", DIGIT)]))])
STRING: Node = ("seq", [("lit", '"'), ("star", STRING_CHAR), ("lit", '"')])
SCALARS = {"string": STRING, "integer": INTEGER, "number": NUMBER, "boolean": ("alt", [("lit", "true"),
                                                                                     ("lit", "false")]),
           "null": ("lit", "null")}


def lit(value: Any) -> Node:
    return ("lit", json.dumps(value, separators=(",", ":"), ensure_ascii=False))


def schema_to_tree(schema: dict[str, Any]) -> Node:
    """A JSON schema (type, enum, const, properties/required, items, anyOf, nullable) as a regex tree."""
    if "const" in schema:
        return lit(schema["const"])
    if "enum" in schema:
        return ("alt", [lit(v) for v in schema["enum"]])
    if "anyOf" in schema or "oneOf" in schema:
        node = ("alt", [schema_to_tree(s) for s in schema.get("anyOf", schema.get("oneOf"))])
    else:
        kind = schema.get("type", ["string", "number", "boolean", "null"])
        if isinstance(kind, list):
            node = ("alt", [schema_to_tree({**schema, "type": k}) for k in kind])
        elif kind in SCALARS:
            node = SCALARS[kind]
        elif kind == "array":
            item = schema_to_tree(schema.get("items", {}))
            node = ("seq", [("lit", "["), ("opt", ("seq", [item, ("star", ("seq", [("lit", ","), item]))])),
                            ("lit", "]")])
        elif kind == "object":
            node = object_tree(schema)
        else:
            raise ValueError(f"JSON schema type {kind!r} is not supported by the grammar")
    return ("alt", [node, ("lit", "null")]) if schema.get("nullable") else node


def object_tree(schema: dict[str, Any]) -> Node:
    """``{"a":A,"b":B}`` in property order; optional properties may be absent (commas placed correctly)."""
    props = schema.get("properties", {})
    required = set(schema.get("required", []))
    items = [(("seq", [lit(k), ("lit", ":"), schema_to_tree(s)]), k in required) for k, s in props.items()]
    firsts = []
    for i, (node, req) in enumerate(items):          # the first property present is items[i]
        rest = [("seq", [("lit", ","), n]) if r else ("opt", ("seq", [("lit", ","), n])) for n, r in items[i + 1:]]
        firsts.append(("seq", [node, *rest]))
        if req:
            break
    else:
        firsts.append(("lit", ""))                     # every property optional: {} allowed
    return ("seq", [("lit", "{"), ("alt", firsts), ("lit", "}")])


def tool_call_schema(tools: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """``{"name": <tool>, "arguments": <its parameters>}`` for any of the OpenAI ``tools`` entries."""
    return {"anyOf": [{"type": "object", "properties": {"name": {"const": t["function"]["name"]},
                                                        "arguments": t["function"].get("parameters", {})},
                       "required": ["name", "arguments"]} for t in tools]}


CALL_SEP = "<tool_call>"
"""What opens every tool call in the kit's chat template (``render_chat``); also between parallel calls."""


def tool_calls_tree(tools: Sequence[dict[str, Any]], max_calls: int = 1) -> Node:
    """1..max_calls tool calls in one turn (OpenAI parallel ``tool_calls``) as repeated call blocks:
    ``call (<tool_call> call){0,max_calls-1}``, each call ``{"name": <tool>, "arguments": <its schema>}``,
    written exactly as ``render_chat`` renders an assistant turn with several calls."""
    if max_calls < 1:
        raise ValueError(f"max_calls must be >= 1, got {max_calls}")
    call = schema_to_tree(tool_call_schema(tools))
    if max_calls == 1:
        return call
    return ("seq", [call, at_most(("seq", [("lit", CALL_SEP), call]), max_calls - 1)])


def split_calls(text: str) -> list[dict[str, Any]]:
    """The calls of a :func:`tool_calls_tree` completion: JSON objects separated by ``<tool_call>`` (decoded
    one by one, so a ``<tool_call>`` inside a string argument does not split a call). Raises ValueError when
    the text is not of that form."""
    dec, calls, i = json.JSONDecoder(), [], 0
    while True:
        obj, i = dec.raw_decode(text, i)
        calls.append(obj)
        if i == len(text):
            return calls
        if not text.startswith(CALL_SEP, i):
            raise ValueError(f"expected {CALL_SEP!r} at offset {i} of {text[:80]!r}")
        i += len(CALL_SEP)


THOUGHT_CHAR: Node = ("cls", True, ((0x00, 0x1F), (0x3A, 0x3A)))
"""Any character on one line except ':' (so a thought can never spell a field such as 'Final Answer:')."""
LINE_CHAR: Node = ("cls", True, ((0x00, 0x1F),))
"""Any character on one line."""


def at_most(node: Node, n: int) -> Node:
    """``node{0,n}`` as nested optionals (linear in n: ``(a(a(a)?)?)?``)."""
    out: Node = ("opt", node)
    for _ in range(n - 1):
        out = ("opt", ("seq", [node, out]))
    return out


def react_tree(tools: Sequence[dict[str, Any]], max_thought: int = 200) -> Node:
    """One ReAct step (Yao et al. 2023, "ReAct", Fig. 1 format) as a regular grammar:
    ``Thought: <line of at most max_thought chars>\n`` then ``Action: <tool>\nAction Input: <JSON of that
    tool's parameters>`` or ``Final Answer: <line>``; the Action Input is the tool's schema grammar, so every
    action parses and validates."""
    actions = [("seq", [("lit", f"{t['function']['name']}\nAction Input: "),
                        schema_to_tree(t["function"].get("parameters", {"type": "object"}))]) for t in tools]
    final = ("seq", [("lit", "Final Answer: "), LINE_CHAR, ("star", LINE_CHAR)])
    body = ("alt", [("seq", [("lit", "Action: "), ("alt", actions)]), final]) if actions else final
    return ("seq", [("lit", "Thought: "), at_most(THOUGHT_CHAR, max_thought), ("lit", "\n"), body])


_META = set("\\.^$|?*+()[]{}/")


def _esc_cls(c: int) -> str:
    ch = chr(c)
    return f"\\x{c:02X}" if c < 0x20 or c == 0x7F else ("\\" + ch if ch in "\\]^-[/" else ch)


def to_regex(node: Node) -> str:
    """The regex text of a tree (the syntax llguidance and outlines-core read)."""
    kind = node[0]
    if kind == "lit":
        return "".join("\\" + c if c in _META else c for c in node[1])
    if kind == "cls":
        body = "".join(_esc_cls(lo) if lo == hi else f"{_esc_cls(lo)}-{_esc_cls(hi)}" for lo, hi in node[2])
        return f"[{'^' if node[1] else ''}{body}]"
    if kind == "seq":
        return "".join(to_regex(n) if n[0] != "alt" else f"({to_regex(n)})" for n in node[1])
    if kind == "alt":
        return "|".join(to_regex(n) for n in node[1])
    inner = to_regex(node[1])
    inner = inner if node[1][0] in ("cls",) or (node[1][0] == "lit" and len(node[1][1]) == 1) else f"({inner})"
    return inner + {"star": "*", "opt": "?"}[kind]


# UTF-8 well-formed multi-byte sequences (Unicode Standard, Table 3-7), as byte ranges per position
UTF8_MULTI = [[(0xC2, 0xDF), (0x80, 0xBF)], [(0xE0, 0xE0), (0xA0, 0xBF), (0x80, 0xBF)],
              [(0xE1, 0xEC), (0x80, 0xBF), (0x80, 0xBF)], [(0xED, 0xED), (0x80, 0x9F), (0x80, 0xBF)],
              [(0xEE, 0xEF), (0x80, 0xBF), (0x80, 0xBF)], [(0xF0, 0xF0), (0x90, 0xBF), (0x80, 0xBF), (0x80, 0xBF)],
              [(0xF1, 0xF3), (0x80, 0xBF), (0x80, 0xBF), (0x80, 0xBF)],
              [(0xF4, 0xF4), (0x80, 0x8F), (0x80, 0xBF), (0x80, 0xBF)]]


class NFA:
    """Thompson construction over bytes: ``eps[s]`` epsilon edges, ``edges[s]`` [(lo, hi, target)]."""

    def __init__(self, node: Node):
        self.eps: list[list[int]] = []
        self.edges: list[list[tuple[int, int, int]]] = []
        self.start, self.final = self.build(node)

    def new(self) -> int:
        self.eps.append([])
        self.edges.append([])
        return len(self.eps) - 1

    def build(self, node: Node) -> tuple[int, int]:
        kind = node[0]
        s = self.new()
        if kind == "lit":
            cur = s
            for b in node[1].encode():
                nxt = self.new()
                self.edges[cur].append((b, b, nxt))
                cur = nxt
            return s, cur
        if kind == "cls":
            f = self.new()
            ranges = node[2]
            if not node[1]:
                for lo, hi in ranges:
                    self.edges[s].append((lo, hi, f))
                return s, f
            allowed = [b for b in range(0x80) if not any(lo <= b <= hi for lo, hi in ranges)]
            for b in allowed:
                self.edges[s].append((b, b, f))
            for seq in UTF8_MULTI:
                cur = s
                for k, (lo, hi) in enumerate(seq):
                    nxt = f if k == len(seq) - 1 else self.new()
                    self.edges[cur].append((lo, hi, nxt))
                    cur = nxt
            return s, f
        if kind == "seq":
            cur = s
            for n in node[1]:
                a, b = self.build(n)
                self.eps[cur].append(a)
                cur = b
            return s, cur
        if kind == "alt":
            f = self.new()
            for n in node[1]:
                a, b = self.build(n)
                self.eps[s].append(a)
                self.eps[b].append(f)
            return s, f
        a, b = self.build(node[1])
        f = self.new()
        self.eps[s] += [a, f]
        self.eps[b].append(f)
        if kind == "star":
            self.eps[b].append(a)
        return s, f


class Grammar:
    """A JSON schema's language as a lazily determinised byte automaton, with per-state token masks."""

    def __init__(self, schema: dict[str, Any] | None = None, *, tree: Node | None = None):
        self.tree = tree if tree is not None else schema_to_tree(schema)
        self.nfa = NFA(self.tree)
        self.states: list[frozenset[int]] = []
        self.ids: dict[frozenset[int], int] = {}
        self.trans: dict[tuple[int, int], int] = {}
        self.start = self._id(self._closure({self.nfa.start}))
        self._masks: dict[int, torch.Tensor] = {}
        self._trie: dict | None = None
        self._nfa_dist = self._distances()

    def _distances(self) -> list[float]:
        """Fewest bytes from each NFA state to the final state (0-1 BFS on reversed edges)."""
        from collections import deque
        n = len(self.nfa.eps)
        rev: list[list[tuple[int, int]]] = [[] for _ in range(n)]
        for s in range(n):
            for t in self.nfa.eps[s]:
                rev[t].append((s, 0))
            for _, _, t in self.nfa.edges[s]:
                rev[t].append((s, 1))
        dist = [float("inf")] * n
        dist[self.nfa.final] = 0
        q = deque([self.nfa.final])
        while q:
            u = q.popleft()
            for v, w in rev[u]:
                if dist[u] + w < dist[v]:
                    dist[v] = dist[u] + w
                    q.appendleft(v) if w == 0 else q.append(v)
        return dist

    def distance(self, state: int) -> float:
        """Fewest bytes that complete a string of the language from DFA ``state`` (inf when dead)."""
        return min((self._nfa_dist[s] for s in self.states[state]), default=float("inf")) if state >= 0 else \
            float("inf")

    @property
    def regex(self) -> str:
        return to_regex(self.tree)

    def _closure(self, states: set[int]) -> frozenset[int]:
        stack, seen = list(states), set(states)
        while stack:
            for t in self.nfa.eps[stack.pop()]:
                if t not in seen:
                    seen.add(t)
                    stack.append(t)
        return frozenset(seen)

    def _id(self, states: frozenset[int]) -> int:
        if states not in self.ids:
            self.ids[states] = len(self.states)
            self.states.append(states)
        return self.ids[states]

    def step(self, state: int, byte: int) -> int:
        """The DFA transition (-1: dead)."""
        key = (state, byte)
        if key not in self.trans:
            nxt = {t for s in self.states[state] for lo, hi, t in self.nfa.edges[s] if lo <= byte <= hi}
            self.trans[key] = self._id(self._closure(nxt)) if nxt else -1
        return self.trans[key]

    def walk(self, state: int, data: bytes) -> int:
        for b in data:
            state = self.step(state, b)
            if state < 0:
                return -1
        return state

    def accepting(self, state: int) -> bool:
        return state >= 0 and self.nfa.final in self.states[state]

    def matches(self, text: str) -> bool:
        return self.accepting(self.walk(self.start, text.encode()))

    def next_distances(self, state: int, vocab: Sequence[bytes | None], eos_id: int | None) -> torch.Tensor:
        """(V,) float: for each token, the fewest bytes still needed after it (inf: the token is not allowed;
        EOS: 0 iff ``state`` accepts). Computed once per state by a vocabulary-trie walk, then cached."""
        if state not in self._masks:
            if self._trie is None:
                self._trie = build_trie(vocab)
            dist = torch.full((len(vocab),), float("inf"))
            stack = [(self._trie, state)]
            while stack:
                node, s = stack.pop()
                for b, child in node.items():
                    if b == -1:
                        continue
                    t = self.step(s, b)
                    if t < 0:
                        continue
                    ids = child.get(-1)
                    if ids:
                        dist[ids] = self.distance(t)
                    stack.append((child, t))
            if eos_id is not None and self.accepting(state):
                dist[eos_id] = 0.0
            self._masks[state] = dist
        return self._masks[state]

    def mask(self, state: int, vocab: Sequence[bytes | None], eos_id: int | None) -> torch.Tensor:
        """(V,) bool: tokens whose bytes keep the text a prefix of the language; EOS iff accepting (cached)."""
        return torch.isfinite(self.next_distances(state, vocab, eos_id))


def build_trie(vocab: Sequence[bytes | None]) -> dict:
    """Byte trie of the vocabulary: nested dicts, key -1 holds the token ids ending there."""
    root: dict = {}
    for i, tok in enumerate(vocab):
        if not tok:
            continue
        node = root
        for b in tok:
            node = node.setdefault(b, {})
        node.setdefault(-1, []).append(i)
    return root


def _byte_decoder() -> dict[str, int]:
    """GPT-2's byte <-> printable-unicode table (byte-level BPE), inverted."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


def token_strings(tokenizer, vocab_size: int | None = None) -> list[bytes | None]:
    """The bytes of every token id of a byte-level BPE ``tokenizers.Tokenizer`` (None: special/unused ids)."""
    dec = _byte_decoder()
    special = {t.content for t in tokenizer.get_added_tokens_decoder().values()} \
        if hasattr(tokenizer, "get_added_tokens_decoder") else set()
    n = vocab_size or tokenizer.get_vocab_size()
    out: list[bytes | None] = []
    for i in range(n):
        tok = tokenizer.id_to_token(i)
        if tok is None or tok in special or any(c not in dec for c in tok):
            out.append(None)
        else:
            out.append(bytes(dec[c] for c in tok))
    return out


class Matcher:
    """One constrained generation: the current DFA state, its mask and token-by-token advance."""

    def __init__(self, grammar: Grammar, vocab: Sequence[bytes | None], eos_id: int | None):
        self.g, self.vocab, self.eos_id, self.state = grammar, vocab, eos_id, grammar.start
        self.done = False

    def mask(self, remaining: int | None = None) -> torch.Tensor:
        """Allowed tokens now; with ``remaining`` tokens of budget left, only tokens after which the string
        can still be completed in time (single-byte tokens bound the tokens needed by the bytes needed)."""
        d = self.g.next_distances(self.state, self.vocab, self.eos_id)               # (V,)
        return torch.isfinite(d) if remaining is None else d <= remaining - 1

    def advance(self, token: int) -> bool:
        """Consume a token; False if the grammar forbids it."""
        if token == self.eos_id:
            self.done = self.g.accepting(self.state)
            return self.done
        tok = self.vocab[token] if token < len(self.vocab) else None
        nxt = self.g.walk(self.state, tok) if tok else -1
        if nxt < 0:
            return False
        self.state = nxt
        return True

    def finished(self) -> bool:
        """EOS chosen, or accepting with nothing but EOS allowed."""
        if self.done:
            return True
        m = self.mask()
        return self.g.accepting(self.state) and int(m.sum()) == (1 if self.eos_id is not None else 0)


@torch.inference_mode()
def greedy_decode(model, ids: list[int], vocab: Sequence[bytes | None], max_new_tokens: int,
                  matcher: Matcher | None = None, stop: Sequence[str] = (), eos_id: int | None = None) -> str:
    """Greedy decoding with a KV cache; under ``matcher`` each step's logits outside the mask are -inf."""
    cache = model.new_cache(1, len(ids) + max_new_tokens)
    logits = model(torch.tensor([ids]), cache=cache)[0, -1]                     # (V,)
    out = bytearray()
    for step in range(max_new_tokens):
        if matcher is not None:
            if matcher.finished():
                break
            allowed = matcher.mask(max_new_tokens - step)[: logits.shape[-1]]            # (V,)
            logits = logits.masked_fill(~allowed, float("-inf"))
        tok = int(logits.argmax())
        if tok == eos_id and matcher is None:
            break
        if matcher is not None:
            matcher.advance(tok)
            if matcher.done:
                break
        out += vocab[tok] or b""
        text = out.decode(errors="ignore")
        if any(s in text for s in stop):
            return text[: min(text.index(s) for s in stop if s in text)]
        logits = model(torch.tensor([[tok]]), cache=cache)[0, -1]               # (V,)
    return out.decode(errors="replace")
