"""The BFCL-style set (>= 100 questions written here) and its AST checker, rule by rule as in BFCL's
``ast_checker.py``: exact name, required params, no unknown params, types (int ok for float, bool never an
int), allowed values (strings normalised), optional params omitted only when "" is allowed, order-free
parallel calls with each ground-truth call used once, equal call counts."""
from __future__ import annotations

import json

import pytest

from frontierkit.agents.backends import PolicyBackend, Reply, ToolCall
from frontierkit.agents.bfcl import check, evaluate, make_questions, oracle_reply, standardize

QS = make_questions()
BY_ID = {q.id: q for q in QS}


def test_question_set_size_and_categories():
    cats = {c: sum(q.category == c for q in QS) for c in ("simple", "multiple", "parallel", "parallel_multiple")}
    assert len(QS) >= 100 and min(cats.values()) >= 10 and len({q.question for q in QS}) == len(QS)
    for q in QS:                                   # every ground-truth call names an offered function
        assert {next(iter(g)) for g in q.ground_truth} <= {f["name"] for f in q.functions}


def c(name, **args):
    return {"name": name, "arguments": args}


Q = BY_ID["simple_0"]      # weather in Paris in fahrenheit: city ["Paris"], unit ["fahrenheit"]
Q2 = BY_ID["simple_1"]     # weather in Paris: unit optional (["", "celsius"])


@pytest.mark.parametrize("calls,needle", [
    ([c("get_weather", city="Paris", unit="fahrenheit")], None),
    ([c("get_weather", city="paris ", unit="Fahrenheit")], None),                  # BFCL string normalisation
    ([c("get_wether", city="Paris", unit="fahrenheit")], "unknown function"),
    ([c("get_weather", unit="fahrenheit")], "missing required parameter 'city'"),
    ([c("get_weather", city="Paris", unit="fahrenheit", days=3)], "unexpected parameter 'days'"),
    ([c("get_weather", city=7, unit="fahrenheit")], "type int is not string"),
    ([c("get_weather", city="Paris", unit="kelvin")], "is not among"),
    ([c("get_weather", city="London", unit="fahrenheit")], "is not among"),
    ([c("get_weather", city="Paris")], "missing parameter 'unit' (no default allowed)"),
    ([c("get_weather", city="Paris", unit="fahrenheit")] * 2, "wrong number of calls"),
])
def test_checker_rules_simple(calls, needle):
    why = check(Q, calls)
    assert (why is None) if needle is None else (needle in why)


def test_optional_parameter_may_be_omitted_or_default():
    assert check(Q2, [c("get_weather", city="Paris")]) is None
    assert check(Q2, [c("get_weather", city="Paris", unit="celsius")]) is None


def test_types_int_for_float_ok_bool_never_number():
    q = next(q for q in QS if q.id.startswith("simple") and "BMI" in q.question)
    (args,) = q.ground_truth[0].values()
    w, h = args["weight_kg"][0], args["height_m"][0]
    assert check(q, [c("calculate_bmi", weight_kg=w, height_m=h)]) is None
    q_int = next(q for q in QS if q.id.startswith("simple") and "seats" in q.question and q.ground_truth[0][
        "book_flight"]["seats"] == [2])
    gt = {k: v[0] for k, v in q_int.ground_truth[0]["book_flight"].items()}
    assert check(q_int, [c("book_flight", **gt)]) is None
    assert "type float is not integer" in check(q_int, [c("book_flight", **{**gt, "seats": 2.0})])
    p = next(q for q in QS if "on shuffle" in q.question)
    assert "type int is not boolean" in check(p, [c("play_music", artist=p.ground_truth[0]["play_music"]["artist"][0],
                                                    shuffle=1)])


def test_parallel_is_order_free_and_one_to_one():
    q = BY_ID["parallel_0"]                       # weather in two cities
    a, b = (g["get_weather"]["city"][0] for g in q.ground_truth)
    assert check(q, [c("get_weather", city=b), c("get_weather", city=a)]) is None
    assert "no call matches" in check(q, [c("get_weather", city=a), c("get_weather", city=a)])
    pm = BY_ID["parallel_multiple_0"]
    calls = [json.loads(x.arguments) for x in oracle_reply(pm).tool_calls]
    names = [x.name for x in oracle_reply(pm).tool_calls]
    assert check(pm, [{"name": n, "arguments": a} for n, a in zip(names, calls)]) is None


def test_oracle_scores_100_and_wrong_policy_0():
    by_text = {q.question: q for q in QS}
    res = evaluate(PolicyBackend(lambda m, t: oracle_reply(by_text[m[-1]["content"]])), QS)
    assert res["n"] == len(QS) and res["accuracy"] == 1.0 and res["parse_rate"] == 1.0
    wrong = evaluate(PolicyBackend(lambda m, t: Reply("", [ToolCall("x", t[0]["function"]["name"], "{}")])), QS)
    assert wrong["accuracy"] == 0.0 and wrong["parse_rate"] == 1.0
    bad = evaluate(PolicyBackend(lambda m, t: Reply("", [ToolCall("x", "get_weather", "{city:")])), QS[:3])
    assert bad["parse_rate"] == 0.0
    text_only = evaluate(PolicyBackend(lambda m, t: Reply("the weather is fine", [])), QS[:3])
    assert text_only["parse_rate"] == 0.0 and text_only["accuracy"] == 0.0


def test_standardize_follows_bfcl():
    assert standardize("New-York, U.S.A.") == "newyorkusa" and standardize("it's") == 'it"s'
