"""``frontier agent run/eval`` (alias of ``frontier agents``): a run against a scripted OpenAI-compatible
endpoint saves its trace; eval scores the shop oracle (pass^k = 1) and BFCL oracle (accuracy 1); bad input is
one line, no traceback."""
from __future__ import annotations

import json

import pytest

from frontierkit.agents.commands import register
from frontierkit.cli import FrontierParser
from frontierkit.errors import USER_ERRORS

from agents_fake_openai import FakeOpenAI, call


def frontier(argv: list[str], capsys) -> tuple[int, str, str]:
    """``frontier`` with the agents area only (other areas' state cannot break this test), main()'s handling."""
    p = FrontierParser(prog="frontier")
    register(p.add_subparsers(dest="area"), "agents", "agents")
    try:
        args = p.parse_args(argv)                       # typed arguments (frontierkit.argtypes) fail here
    except SystemExit as e:
        out = capsys.readouterr()
        return int(e.code), out.err, out.err
    try:
        rc = args.func(args)
    except USER_ERRORS as e:
        print(f"frontier: error: {e}")
        rc = 2
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_agent_run_against_endpoint_saves_trace(tmp_path, capsys):
    script = [{"tool_calls": [call("calculator", '{"expression": "6*7"}')]}, {"content": "42"}]
    with FakeOpenAI(script) as srv:
        rc, out, _ = frontier(["agent", "run", "--base-url", srv.url, "--model", "tiny", "--task", "6 times 7?",
                               "--tools", "calculator", "--out", str(tmp_path)], capsys)
    assert rc == 0
    res = json.loads(out.strip().splitlines()[-1])
    assert res["answer"] == "42" and res["steps"] == 2
    events = [json.loads(x) for x in (tmp_path / "trace.jsonl").read_text().splitlines()]
    assert [e["type"] for e in events] == ["call", "observation", "answer"] and events[1]["text"] == "42"


def test_agent_eval_oracles(tmp_path, capsys):
    rc, out, _ = frontier(["agents", "eval", "--suite", "shop", "--model", "oracle", "--trials", "2", "--limit", "5",
                           "--quiet", "--out", str(tmp_path)], capsys)
    assert rc == 0 and json.loads(out)["pass_k"] == {"1": 1.0, "2": 1.0}
    rc, out, _ = frontier(["agent", "eval", "--suite", "bfcl", "--model", "oracle", "--quiet", "--out",
                           str(tmp_path)], capsys)
    assert rc == 0 and json.loads(out)["accuracy"] == 1.0 and json.loads(out)["n"] >= 100
    assert json.loads((tmp_path / "results.json").read_text())["rows"][0]["correct"] is True


@pytest.mark.parametrize("argv,needle", [
    (["agent", "run", "--model", "not-a-dir", "--task", "x"], "is not a folder"),
    (["agent", "run", "--model", "m", "--base-url", "http://127.0.0.1:9/v1", "--task", "x", "--tools", "calculator"],
     "cannot reach the endpoint"),
    (["agent", "run", "--model", "m", "--base-url", "http://x", "--task", "x", "--tools", "web"], "--tools web is invalid"),
    (["agent", "run", "--model", "m", "--task", "x", "--max-steps", "0"], "--max-steps 0 is invalid: an integer in"),
    (["agent", "run", "--model", "m", "--task", "x", "--base-url", "ftp://h"], "--base-url ftp://h is invalid"),
    (["agent", "eval", "--model", "oracle", "--trials", "0"], "--trials 0 is invalid"),
])
def test_bad_input_is_one_line(argv, needle, capsys, tmp_path):
    rc, out, _ = frontier(argv + ["--out", str(tmp_path)], capsys)
    assert rc == 2 and needle in out and len(out.strip().splitlines()) == 1
