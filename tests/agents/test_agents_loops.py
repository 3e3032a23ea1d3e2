"""Agent loops against a scripted OpenAI-compatible endpoint (through the official ``openai`` client):
function calling with parallel calls, tool errors fed back, the step budget, ReAct text parsing,
plan-and-execute with re-planning, and saved traces."""
from __future__ import annotations

import json
import threading

import pytest

from frontierkit.agents import Agent, tool
from frontierkit.agents.backends import OpenAIBackend, PolicyBackend, Reply, ToolCall
from frontierkit.agents.calculator import calculator
from frontierkit.agents.loops import parse_plan, parse_react

from agents_fake_openai import FakeOpenAI, call

barrier = threading.Barrier(2, timeout=10)


@tool
def rendezvous(who: str) -> str:
    """Wait until a second call is running at the same time.

    Args:
        who: the caller
    """
    barrier.wait()                    # only returns if two calls run concurrently
    return f"met {who}"


def test_function_calling_parallel_calls_through_openai_client(tmp_path):
    script = [{"tool_calls": [call("rendezvous", '{"who": "a"}', 0), call("rendezvous", '{"who": "b"}', 1)]},
              {"tool_calls": [call("calculator", '{"expression": "6*7"}', 2)]},
              {"content": "The answer is 42."}]
    with FakeOpenAI(script) as srv:
        res = Agent("fake-model", [rendezvous, calculator], base_url=srv.url).run("What is 6*7?", out=tmp_path)
    assert res.answer == "The answer is 42." and res.stopped == "answer" and res.steps == 3
    first, second, third = srv.requests
    assert [t["function"]["name"] for t in first["tools"]] == ["rendezvous", "calculator"]
    assert first["model"] == "fake-model" and first["messages"][-1] == {"role": "user", "content": "What is 6*7?"}
    tool_msgs = [m for m in second["messages"] if m["role"] == "tool"]
    assert [(m["tool_call_id"], m["content"]) for m in tool_msgs] == [("call_rendezvous_0", "met a"),
                                                                       ("call_rendezvous_1", "met b")]
    assert third["messages"][-1] == {"role": "tool", "tool_call_id": "call_calculator_2", "name": "calculator",
                                     "content": "42"}
    kinds = [json.loads(line)["type"] for line in (tmp_path / "trace.jsonl").read_text().splitlines()]
    assert kinds == ["call", "call", "observation", "observation", "call", "observation", "answer"]
    assert "calculator" in (tmp_path / "trace.md").read_text()


def test_tool_errors_fed_back_and_budget():
    script = [{"tool_calls": [call("calculator", '{"expr": "1"}')]},
              {"tool_calls": [call("nosuch", "{}")]},
              {"tool_calls": [call("calculator", '{"expression": "1/0"}')]}]
    with FakeOpenAI(script) as srv:
        res = Agent("m", [calculator], base_url=srv.url, max_steps=3).run("go")
    assert res.answer is None and res.stopped == "budget" and res.trace[-1]["type"] == "budget"
    seen = [m["content"] for r in srv.requests[1:] for m in r["messages"][-1:]]
    assert "missing required argument(s) expression" in seen[0]
    assert "no tool named 'nosuch'" in seen[1]
    obs = [e for e in res.trace if e["type"] == "observation"]
    assert [e["error"] for e in obs] == [True, True, True] and "division by zero" in obs[-1]["text"]


def test_react_loop_through_endpoint():
    script = [{"content": "Thought: I should multiply.\nAction: calculator\nAction Input: {\"expression\": \"12*12\"}"},
              {"content": "I am confused"},
              {"content": "Thought: I know it.\nFinal Answer: 144"}]
    with FakeOpenAI(script) as srv:
        res = Agent("m", [calculator], base_url=srv.url, loop="react").run("12 squared?")
    assert res.answer == "144"
    assert srv.requests[0]["stop"] == ["Observation:"] and "Action Input" in srv.requests[0]["messages"][0]["content"]
    assert srv.requests[1]["messages"][-1] == {"role": "user", "content": "Observation: 144"}
    assert "could not parse" in srv.requests[2]["messages"][-1]["content"]
    assert [e["type"] for e in res.trace] == ["thought", "call", "observation", "thought", "observation", "thought",
                                             "answer"]


def test_parse_react_and_plan():
    assert parse_react("Thought: x\nAction: calc\nAction Input: {\"a\": 1}\nObservation: 5") == (
        "x", "calc", '{"a": 1}', None)
    assert parse_react("Final Answer: 7") == ("", None, None, "7")
    assert parse_plan("Plan:\n1. look up\n2) refund\n- ship") == ["look up", "refund", "ship"]


def test_plan_execute_replans_after_failed_step():
    """The first plan's step 1 hits a tool error; the planner is asked again and the new plan succeeds."""
    log = []

    def policy(messages, tools):
        text = messages[-1]["content"] or ""
        if text.startswith("Make a short plan"):
            return Reply("1. divide 1 by 0\n2. report")
        if "failed" in text and "new numbered plan" in text:
            log.append("replan")
            return Reply("1. compute 2+3")
        if text.startswith("Give the final answer") or "Give the final answer" in text:
            return Reply("5")
        if messages[-1]["role"] == "tool":
            return Reply(f"result {messages[-1]['content']}")
        step = text.split("Now do this step and report its result: ")[-1]
        expr = "1/0" if "divide" in step else "2+3"
        return Reply("", [ToolCall("c1", "calculator", json.dumps({"expression": expr}))])

    res = Agent(PolicyBackend(policy), [calculator], loop="plan_execute").run("compute something")
    assert log == ["replan"] and res.answer == "5"
    kinds = [e["type"] for e in res.trace]
    assert kinds[0] == "plan" and "replan" in kinds and kinds[-1] == "answer"
    replan = next(e for e in res.trace if e["type"] == "replan")
    assert replan["steps"] == ["compute 2+3"] and "division by zero" in replan["reason"]


def test_unreachable_endpoint_is_one_line_error():
    from frontierkit.errors import ConfigError
    with pytest.raises(ConfigError, match="cannot reach the endpoint"):
        OpenAIBackend("m", base_url="http://127.0.0.1:9/v1", timeout=2).chat([{"role": "user", "content": "x"}])
