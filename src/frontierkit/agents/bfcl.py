"""A Berkeley Function Calling Leaderboard-style set (Patil et al. 2024, BFCL; "Gorilla", Patil et al. 2023)
written here -- simple, multiple (choose among functions), parallel (several calls of one function) and
parallel-multiple -- and an AST checker following BFCL's rules (its ``ast_checker.py``):
the function name must match exactly; every required parameter is present and no unknown one; each value
has the declared type (an int is accepted for a float, strings compared after BFCL's normalisation:
lower case, spaces and ``,./-_*^`` removed); each value is one of the ground truth's allowed values (an
optional parameter may be omitted when "" is allowed); parallel calls match the ground truth in any order
(each ground-truth call used once), and the number of calls must be equal."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

F = dict[str, Any]


def fn(name: str, desc: str, props: dict[str, F], required: list[str]) -> F:
    return {"name": name, "description": desc,
            "parameters": {"type": "object", "properties": props, "required": required}}


S, I, N, B = {"type": "string"}, {"type": "integer"}, {"type": "number"}, {"type": "boolean"}
FUNCTIONS: dict[str, F] = {f["name"]: f for f in [
    fn("get_weather", "Current weather in a city", {"city": S, "unit": {"type": "string", "enum": ["celsius",
                                                                                                 "fahrenheit"]}},
       ["city"]),
    fn("convert_currency", "Convert an amount between currencies",
       {"amount": N, "from_currency": S, "to_currency": S}, ["amount", "from_currency", "to_currency"]),
    fn("calculate_bmi", "Body-mass index from weight and height", {"weight_kg": N, "height_m": N},
       ["weight_kg", "height_m"]),
    fn("book_flight", "Book a flight", {"origin": S, "destination": S, "date": S, "seats": I},
       ["origin", "destination", "date"]),
    fn("set_alarm", "Set an alarm", {"time": S, "label": S}, ["time"]),
    fn("translate", "Translate text", {"text": S, "target_language": S}, ["text", "target_language"]),
    fn("get_stock_price", "Latest stock price", {"symbol": S, "exchange": {"type": "string",
                                                                         "enum": ["NYSE", "NASDAQ", "LSE"]}},
       ["symbol"]),
    fn("compute_area", "Area of a shape", {"shape": {"type": "string", "enum": ["rectangle", "triangle", "circle"]},
                                           "width": N, "height": N}, ["shape", "width"]),
    fn("play_music", "Play songs by an artist", {"artist": S, "shuffle": B}, ["artist"]),
    fn("create_event", "Create a calendar event", {"title": S, "date": S, "duration_minutes": I},
       ["title", "date"]),
    fn("find_restaurants", "Restaurants near a place", {"location": S, "cuisine": S, "max_results": I},
       ["location"]),
    fn("send_email", "Send an email", {"to": S, "subject": S, "body": S}, ["to", "subject"]),
]}


@dataclass
class Question:
    id: str
    category: str
    """simple, multiple, parallel or parallel_multiple"""
    question: str
    functions: list[F]
    ground_truth: list[dict[str, dict[str, list[Any]]]]
    """BFCL's possible answers: [{function: {param: [allowed values; "" = may be omitted]}}]"""

    def tools(self) -> list[F]:
        """The OpenAI ``tools=[...]`` entries."""
        return [{"type": "function", "function": f} for f in self.functions]


CITIES = ["Paris", "Tokyo", "Lima", "Oslo", "Cairo", "Denver", "Hanoi", "Dublin", "Quito", "Perth"]
ARTISTS = ["Nina Simone", "Miles Davis", "Bjork", "Fela Kuti", "Bach"]
LANGS = ["French", "Spanish", "German", "Japanese", "Swahili"]
SYMBOLS = [("AAPL", "NASDAQ"), ("IBM", "NYSE"), ("BP", "LSE"), ("MSFT", "NASDAQ"), ("KO", "NYSE")]


def _simple_items(i: int) -> list[tuple[str, str, dict[str, dict[str, list[Any]]]]]:
    """(phrase, function, ground truth) templates, varied by ``i``."""
    c, c2 = CITIES[i % 10], CITIES[(i + 3) % 10]
    amount = [12.5, 100, 250, 75.25, 1000][i % 5]
    cur = [("USD", "EUR"), ("GBP", "JPY"), ("EUR", "CHF"), ("CAD", "USD"), ("AUD", "NZD")][i % 5]
    w, h = [70, 82.5, 55, 95, 64][i % 5], [1.75, 1.8, 1.62, 1.9, 1.7][i % 5]
    sym, ex = SYMBOLS[i % 5]
    return [
        (f"What's the weather in {c} in fahrenheit?", "get_weather", {"city": [c], "unit": ["fahrenheit"]}),
        (f"How is the weather in {c} right now?", "get_weather", {"city": [c], "unit": ["", "celsius"]}),
        (f"Convert {amount} {cur[0]} to {cur[1]}.", "convert_currency",
         {"amount": [amount], "from_currency": [cur[0]], "to_currency": [cur[1]]}),
        (f"My weight is {w} kg and I am {h} m tall; what's my BMI?", "calculate_bmi",
         {"weight_kg": [w], "height_m": [h]}),
        (f"Book {1 + i % 3} seats on a flight from {c} to {c2} on 2025-0{1 + i % 9}-1{i % 10}.", "book_flight",
         {"origin": [c], "destination": [c2], "date": [f"2025-0{1 + i % 9}-1{i % 10}"], "seats": [1 + i % 3]}
         if i % 3 else {"origin": [c], "destination": [c2], "date": [f"2025-0{1 + i % 9}-1{i % 10}"],
                        "seats": ["", 1]}),
        (f"Wake me at 0{5 + i % 4}:30 with the label '{['gym', 'work', 'flight', 'call mom'][i % 4]}'.", "set_alarm",
         {"time": [f"0{5 + i % 4}:30"], "label": [['gym', 'work', 'flight', 'call mom'][i % 4]]}),
        (f"Translate 'good morning' into {LANGS[i % 5]}.", "translate",
         {"text": ["good morning"], "target_language": [LANGS[i % 5]]}),
        (f"What is {sym} trading at on the {ex}?", "get_stock_price", {"symbol": [sym], "exchange": [ex]}),
        (f"Area of a rectangle {3 + i} wide and {2 + i} high?", "compute_area",
         {"shape": ["rectangle"], "width": [3 + i], "height": [2 + i]}),
        (f"Play {ARTISTS[i % 5]}{' on shuffle' if i % 2 else ''}.", "play_music",
         {"artist": [ARTISTS[i % 5]], "shuffle": [True] if i % 2 else ["", False]}),
    ]


def make_questions() -> list[Question]:
    """The fixed question set: 40 simple, 30 multiple, 20 parallel, 12 parallel-multiple (102)."""
    qs: list[Question] = []
    for i in range(4):
        for j, (text, name, gt) in enumerate(_simple_items(i)):
            qs.append(Question(f"simple_{len(qs)}", "simple", text, [FUNCTIONS[name]], [{name: gt}]))
    names = list(FUNCTIONS)
    for i in range(3):
        for j, (text, name, gt) in enumerate(_simple_items(i + 5)):
            others = [n for n in names if n != name]
            pick = [others[(i * 3 + j + k * 4) % len(others)] for k in range(3)]
            funcs = [FUNCTIONS[n] for n in sorted({*pick, name})]
            qs.append(Question(f"multiple_{i * 10 + j}", "multiple", f"Using the right tool: {text[0].lower()}{text[1:]}",
                               funcs, [{name: gt}]))
    for i in range(20):
        kind = i % 4
        if kind == 0:
            a, b = CITIES[i % 10], CITIES[(i + 4) % 10]
            text, name, gts = f"Weather in {a} and in {b}?", "get_weather", [{"city": [a], "unit": ["", "celsius"]},
                                                                          {"city": [b], "unit": ["", "celsius"]}]
        elif kind == 1:
            l1, l2 = LANGS[i % 5], LANGS[(i + 2) % 5]
            text, name = f"Translate 'thank you' into {l1} and into {l2}.", "translate"
            gts = [{"text": ["thank you"], "target_language": [l]} for l in (l1, l2)]
        elif kind == 2:
            s1, s2, s3 = (SYMBOLS[(i + k) % 5][0] for k in range(3))
            text, name = f"Get the prices of {s1}, {s2} and {s3}.", "get_stock_price"
            gts = [{"symbol": [s], "exchange": ["", "NYSE", "NASDAQ", "LSE"]} for s in (s1, s2, s3)]
        else:
            x, y = 2 + i, 5 + i
            text, name = f"Areas of a circle of width {x} and of a triangle {y} wide and 4 high.", "compute_area"
            gts = [{"shape": ["circle"], "width": [x], "height": [""]},
                   {"shape": ["triangle"], "width": [y], "height": [4]}]
        qs.append(Question(f"parallel_{i}", "parallel", text, [FUNCTIONS[name]], [{name: g} for g in gts]))
    for i in range(12):
        c, a = CITIES[(i // 2 + i) % 10], ARTISTS[i % 5]
        text = f"Tell me the weather in {c} in celsius and play {a}."
        gt = [{"get_weather": {"city": [c], "unit": ["celsius"]}}, {"play_music": {"artist": [a], "shuffle": ["", False]}}]
        if i % 2:
            to = ["ana@example.com", "bo@example.com", "cy@example.com"][i % 3]
            text = f"Email {to} with subject 'hello' and find {['thai', 'sushi', 'tapas'][i % 3]} restaurants in {c}."
            gt = [{"send_email": {"to": [to], "subject": ["hello"], "body": [""]}},
                  {"find_restaurants": {"location": [c], "cuisine": [['thai', 'sushi', 'tapas'][i % 3]],
                                        "max_results": [""]}}]
        funcs = [FUNCTIONS[n] for n in sorted({*(next(iter(g)) for g in gt), names[i % len(names)]})]
        qs.append(Question(f"parallel_multiple_{i}", "parallel_multiple", text, funcs, gt))
    return qs


def standardize(s: str) -> str:
    """BFCL's string normalisation: lower case, drop spaces and ``,./-_*^``, single -> double quotes."""
    return re.sub(r"[ ,./\-_*^]", "", s).lower().replace("'", '"')


_TYPES = {"string": str, "integer": int, "number": (int, float), "boolean": bool, "array": list, "object": dict}


def check_call(call: dict[str, Any], func: F, gt: dict[str, dict[str, list[Any]]]) -> str | None:
    """BFCL's simple-function check of one call ``{"name", "arguments": dict}``; None if valid, else why."""
    (gt_name, allowed), = gt.items()
    if call.get("name") != gt_name:
        return f"wrong function name: {call.get('name')!r} != {gt_name!r}"
    args = call.get("arguments")
    if not isinstance(args, dict):
        return "arguments are not an object"
    props, required = func["parameters"]["properties"], func["parameters"].get("required", [])
    for p in required:
        if p not in args:
            return f"missing required parameter {p!r}"
    for p, v in args.items():
        if p not in props or p not in allowed:
            return f"unexpected parameter {p!r}"
        kind = props[p].get("type")
        ok_type = isinstance(v, _TYPES[kind]) and not (kind in ("integer", "number") and isinstance(v, bool))
        if not ok_type:
            return f"parameter {p!r}: type {type(v).__name__} is not {kind}"
        values = [a for a in allowed[p] if a != ""]
        if kind == "string":
            ok = standardize(v) in {standardize(a) for a in values if isinstance(a, str)}
        elif kind == "number":
            ok = any(float(v) == float(a) for a in values if isinstance(a, (int, float)))
        else:
            ok = v in values
        if not ok:
            return f"parameter {p!r}: value {v!r} is not among {values!r}"
    for p, values in allowed.items():
        if p not in args and "" not in values:
            return f"missing parameter {p!r} (no default allowed)"
    return None


def check(question: Question, calls: list[dict[str, Any]]) -> str | None:
    """BFCL AST check of a model's calls for one question (order-free for parallel); None if correct."""
    funcs = {f["name"]: f for f in question.functions}
    if len(calls) != len(question.ground_truth):
        return f"wrong number of calls: {len(calls)} != {len(question.ground_truth)}"
    if question.category in ("simple", "multiple"):
        call = calls[0]
        if call.get("name") not in funcs:
            return f"unknown function {call.get('name')!r}"
        return check_call(call, funcs[call["name"]], question.ground_truth[0])
    used: set[int] = set()
    for gt in question.ground_truth:                      # BFCL's parallel checker, no order
        name = next(iter(gt))
        match = next((i for i, c in enumerate(calls) if i not in used and c.get("name") in funcs
                      and check_call(c, funcs[c["name"]], gt) is None), None)
        if match is None:
            return f"no call matches the ground truth {json.dumps(gt)[:120]}"
        used.add(match)
    return None


def parse_calls(reply) -> list[dict[str, Any]] | str:
    """A backend Reply's tool calls as [{"name", "arguments": dict}], or why they do not parse (a reply
    with no tool call at all, e.g. plain text from an endpoint, counts as not parsed)."""
    if not reply.tool_calls:
        return "no tool call in the reply"
    out = []
    for c in reply.tool_calls:
        try:
            out.append({"name": c.name, "arguments": json.loads(c.arguments)})
        except json.JSONDecodeError as e:
            return f"arguments of {c.name} are not JSON ({e.msg})"
    return out


def evaluate(backend, questions: list[Question] | None = None, progress: bool = False) -> dict[str, Any]:
    """Ask each question once (tools offered) and AST-check the calls; accuracy overall and per category."""
    questions = questions or make_questions()
    rows = []
    it = questions
    if progress:
        from tqdm import tqdm
        it = tqdm(questions, desc="bfcl")
    for q in it:
        reply = backend.chat([{"role": "system", "content": "Call the functions that answer the request."},
                              {"role": "user", "content": q.question}], q.tools())
        calls = parse_calls(reply)
        parsed = not isinstance(calls, str)
        why = check(q, calls) if parsed else calls
        rows.append({"id": q.id, "category": q.category, "parsed": parsed, "correct": why is None, "why": why})
    cats = sorted({r["category"] for r in rows})
    acc = {c: sum(r["correct"] for r in rows if r["category"] == c) / sum(r["category"] == c for r in rows)
           for c in cats}
    return {"n": len(rows), "accuracy": sum(r["correct"] for r in rows) / len(rows),
            "parse_rate": sum(r["parsed"] for r in rows) / len(rows), "by_category": acc, "rows": rows}


def oracle_reply(question: Question):
    """A reply with the first allowed value of every ground-truth parameter (checks the harness)."""
    from .backends import Reply, ToolCall
    calls = []
    for i, gt in enumerate(question.ground_truth):
        (name, allowed), = gt.items()
        args = {p: vals[0] for p, vals in allowed.items() if vals[0] != ""}
        calls.append(ToolCall(f"call_{i}", name, json.dumps(args)))
    return Reply("", calls[::-1])                       # reversed: parallel checking is order-free
