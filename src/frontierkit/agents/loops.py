"""Agent loops over any :class:`~frontierkit.agents.backends.Backend`:
- function calling (OpenAI tools / tool_calls messages; several calls in one turn run in parallel);
- ReAct (Yao et al. 2023, ICLR): interleaved "Thought: / Action: / Action Input: / Observation:" text;
- plan-and-execute (Wang et al. 2023, "Plan-and-Solve"; LangChain's plan-and-execute agent): a plan of
  steps, each executed by a function-calling sub-loop, re-planning when a step fails.
Every loop has a step budget, feeds tool errors back to the model as observations and records a trace
(one dict per event: plan, thought, call, observation, answer, replan, budget) saved as jsonl + markdown."""
from __future__ import annotations

import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .backends import Backend, Reply, make_backend
from .tools import Tool, as_tools

LOOPS = ("function_calling", "react", "plan_execute")
SYSTEM = ("You are a helpful agent. Use the tools when they help; when you know the answer, reply with it "
          "in plain text.")


@dataclass
class Result:
    """The outcome of one run: the final ``answer`` (None if the budget ran out) and the ``trace``."""
    answer: str | None
    trace: list[dict[str, Any]] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    steps: int = 0
    stopped: str = "answer"
    """answer, budget or error"""

    def save(self, out: str | Path) -> Path:
        """``<out>/trace.jsonl`` (one event a line) and ``<out>/trace.md`` (the readable report)."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        with open(out / "trace.jsonl", "w") as f:
            for ev in self.trace:
                f.write(json.dumps(ev, default=str) + "\n")
        (out / "trace.md").write_text(format_trace(self.trace) + f"\n\n**answer**: {self.answer}\n")
        return out / "trace.jsonl"


def format_trace(trace: list[dict[str, Any]]) -> str:
    """One readable line per event (thought, call, observation, ...)."""
    lines = []
    for ev in trace:
        kind = ev["type"]
        if kind == "call":
            body = f"{ev['name']}({ev['arguments']})"
        elif kind == "plan" or kind == "replan":
            body = " | ".join(ev["steps"])
        else:
            body = str(ev.get("text", ""))
        lines.append(f"[{ev['step']}] {kind:<11} {body}")
    return "\n".join(lines)


class Tracer:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.t0 = time.perf_counter()

    def add(self, step: int, kind: str, **data: Any) -> None:
        self.events.append({"step": step, "type": kind, "t": round(time.perf_counter() - self.t0, 4), **data})


def execute_calls(tools: dict[str, Tool], calls: list, tracer: Tracer, step: int,
                  parallel: bool = True) -> list[dict[str, Any]]:
    """Run the turn's tool calls (concurrently when several) -> the ``role: tool`` messages, in call order."""
    def one(c) -> str:
        t = tools.get(c.name)
        if t is None:
            return f"Error: no tool named {c.name!r} (tools: {', '.join(tools)})"
        return t.invoke(c.arguments)

    for c in calls:
        tracer.add(step, "call", id=c.id, name=c.name, arguments=c.arguments)
    if parallel and len(calls) > 1:
        with ThreadPoolExecutor(max_workers=min(8, len(calls))) as pool:
            outs = list(pool.map(one, calls))
    else:
        outs = [one(c) for c in calls]
    msgs = []
    for c, o in zip(calls, outs):
        tracer.add(step, "observation", id=c.id, name=c.name, text=o, error=o.startswith("Error:"))
        msgs.append({"role": "tool", "tool_call_id": c.id, "name": c.name, "content": o})
    return msgs


def function_calling(backend: Backend, tools: dict[str, Tool], task: str, max_steps: int = 10,
                     system: str = SYSTEM, tracer: Tracer | None = None, step0: int = 0) -> Result:
    """OpenAI-style function calling: the model answers or requests tool calls; results come back as
    ``role: tool`` messages until it answers or ``max_steps`` model turns are spent."""
    tracer = tracer or Tracer()
    messages: list[dict[str, Any]] = [{"role": "system", "content": system}, {"role": "user", "content": task}]
    specs = [t.spec() for t in tools.values()] or None
    for step in range(step0, step0 + max_steps):
        reply = backend.chat(messages, specs)
        messages.append(reply.message())
        if reply.content and reply.tool_calls:
            tracer.add(step, "thought", text=reply.content)
        if not reply.tool_calls:
            tracer.add(step, "answer", text=reply.content)
            return Result(reply.content, tracer.events, messages, step - step0 + 1, "answer")
        messages += execute_calls(tools, reply.tool_calls, tracer, step)
    tracer.add(step0 + max_steps, "budget", text=f"stopped after {max_steps} model turns without an answer")
    return Result(None, tracer.events, messages, max_steps, "budget")


REACT_PROMPT = """Answer the question using the tools below. Use this format:
Thought: what to do next
Action: the tool name, one of [{names}]
Action Input: the tool's arguments as a JSON object
Observation: the tool's result (written for you)
... (repeat Thought/Action/Action Input/Observation as needed)
Thought: I know the answer
Final Answer: the answer

Tools:
{tools}"""

_ACTION = re.compile(r"Action:\s*(?P<name>[\w.-]+)\s*\n?\s*Action Input:\s*(?P<args>.*)", re.S)
_FINAL = re.compile(r"Final Answer:\s*(?P<answer>.*)", re.S)
_THOUGHT = re.compile(r"^\s*(?:Thought:)?\s*(?P<thought>.*?)(?=\n?\s*(?:Action:|Final Answer:)|$)", re.S)


def parse_react(text: str) -> tuple[str, str | None, str | None, str | None]:
    """(thought, action, action_input, final_answer) from one ReAct completion."""
    thought = (_THOUGHT.match(text).group("thought") or "").strip()
    act = _ACTION.search(text)
    fin = _FINAL.search(text)
    if act and (not fin or act.start() < fin.start()):
        args = act.group("args").split("\nObservation:")[0].strip()
        return thought, act.group("name"), args, None
    return thought, None, None, fin.group("answer").strip() if fin else None


def react(backend: Backend, tools: dict[str, Tool], task: str, max_steps: int = 10,
          tracer: Tracer | None = None) -> Result:
    """ReAct (Yao et al. 2023): the model writes Thought/Action/Action Input; we append the Observation."""
    tracer = tracer or Tracer()
    system = REACT_PROMPT.format(names=", ".join(tools),
                                 tools="\n".join(f"- {t.name}: {t.description} arguments: "
                                                 f"{json.dumps(t.parameters['properties'])}" for t in tools.values()))
    messages: list[dict[str, Any]] = [{"role": "system", "content": system}, {"role": "user", "content": task}]
    specs = [t.spec() for t in tools.values()] or None
    for step in range(max_steps):
        text = backend.react_step(messages, specs, stop=["Observation:"]).content   # kit: grammar-constrained
        thought, action, args, answer = parse_react(text)
        messages.append({"role": "assistant", "content": text})
        if thought:
            tracer.add(step, "thought", text=thought)
        if action is None:
            if answer is None:
                obs = ("Error: could not parse an Action or a Final Answer; answer with 'Action: <tool>' and "
                       "'Action Input: {...}', or 'Final Answer: ...'")
                tracer.add(step, "observation", text=obs, error=True)
                messages.append({"role": "user", "content": f"Observation: {obs}"})
                continue
            tracer.add(step, "answer", text=answer)
            return Result(answer, tracer.events, messages, step + 1, "answer")
        tracer.add(step, "call", id=f"react_{step}", name=action, arguments=args)
        t = tools.get(action)
        obs = t.invoke(args) if t else f"Error: no tool named {action!r} (tools: {', '.join(tools)})"
        tracer.add(step, "observation", id=f"react_{step}", name=action, text=obs, error=obs.startswith("Error:"))
        messages.append({"role": "user", "content": f"Observation: {obs}"})
    tracer.add(max_steps, "budget", text=f"stopped after {max_steps} steps without a Final Answer")
    return Result(None, tracer.events, messages, max_steps, "budget")


PLAN_PROMPT = ("Make a short plan for the task below: one step per line, numbered '1.', '2.', ... Each step "
               "should be doable with one or two tool calls. Tools: {names}.\nTask: {task}")
REPLAN_PROMPT = ("Task: {task}\nDone so far:\n{done}\nThe step '{step}' failed: {error}\n"
                 "Write a new numbered plan for the remaining work only.")
STEP_PROMPT = "Overall task: {task}\nResults so far:\n{done}\nNow do this step and report its result: {step}"
FINAL_PROMPT = "Task: {task}\nStep results:\n{done}\nGive the final answer to the task, in plain text."


def parse_plan(text: str) -> list[str]:
    """Numbered (or bulleted) lines of a plan -> the step texts."""
    steps = [m.group(1).strip() for m in re.finditer(r"^\s*(?:\d+[.)]|[-*])\s*(.+)$", text, re.M)]
    return steps or [s.strip() for s in text.splitlines() if s.strip()]


def _step_failed(res: Result) -> str | None:
    """Why a step failed (budget out, or its last tool observation an error), else None."""
    if res.stopped != "answer":
        return "the step ran out of its tool-call budget"
    obs = [e for e in res.trace if e["type"] == "observation"]
    last = obs[-1] if obs else None
    return last["text"] if last is not None and last.get("error") else None


def plan_execute(backend: Backend, tools: dict[str, Tool], task: str, max_steps: int = 20,
                 max_replans: int = 2, step_budget: int = 4, tracer: Tracer | None = None) -> Result:
    """Plan-and-execute: plan, run each step with a function-calling sub-loop, re-plan on a failed step,
    then ask for the final answer. ``max_steps`` bounds the model turns of all sub-loops together."""
    tracer = tracer or Tracer()
    names = ", ".join(tools)
    plan = parse_plan(backend.chat([{"role": "user", "content": PLAN_PROMPT.format(names=names, task=task)}]).content)
    tracer.add(0, "plan", steps=list(plan))
    done: list[str] = []
    used, replans = 0, 0
    while plan:
        step_text = plan.pop(0)
        if used >= max_steps:
            tracer.add(used, "budget", text=f"stopped after {max_steps} model turns")
            return Result(None, tracer.events, [], used, "budget")
        summary = "\n".join(done) or "(nothing yet)"
        res = function_calling(backend, tools, STEP_PROMPT.format(task=task, done=summary, step=step_text),
                               max_steps=min(step_budget, max_steps - used), tracer=tracer, step0=used)
        used += res.steps
        error = _step_failed(res)
        if error is None:
            done.append(f"- {step_text}: {res.answer}")
            continue
        if replans >= max_replans:
            tracer.add(used, "budget", text=f"step failed after {max_replans} re-plans: {error}")
            return Result(None, tracer.events, [], used, "error")
        replans += 1
        text = backend.chat([{"role": "user", "content": REPLAN_PROMPT.format(
            task=task, done=summary, step=step_text, error=error)}]).content
        plan = parse_plan(text)
        tracer.add(used, "replan", steps=list(plan), reason=error)
    answer = backend.chat([{"role": "user", "content": FINAL_PROMPT.format(task=task, done="\n".join(done))}]).content
    tracer.add(used, "answer", text=answer)
    return Result(answer, tracer.events, [], used + 1, "answer")


class Agent:
    """``Agent(model, tools).run(task) -> Result``: ``model`` is a Backend, a kit model folder, a policy
    function, or an endpoint model name with ``base_url=``; ``loop`` one of :data:`LOOPS`."""

    def __init__(self, model: Any, tools: Any = (), *, loop: str = "function_calling", max_steps: int = 10,
                 base_url: str | None = None, system: str = SYSTEM, **backend_kw: Any):
        if loop not in LOOPS:
            raise ConfigError(f"loop={loop!r} is unknown: choose one of {', '.join(LOOPS)}")
        self.backend = make_backend(model, base_url=base_url, **backend_kw)
        self.tools = as_tools(tools)
        self.loop, self.max_steps, self.system = loop, max_steps, system

    def run(self, task: str, out: str | Path | None = None) -> Result:
        """Run one task; with ``out`` the trace is saved there (trace.jsonl + trace.md)."""
        if self.loop == "react":
            res = react(self.backend, self.tools, task, self.max_steps)
        elif self.loop == "plan_execute":
            res = plan_execute(self.backend, self.tools, task, self.max_steps)
        else:
            res = function_calling(self.backend, self.tools, task, self.max_steps, self.system)
        if out is not None:
            res.save(out)
        return res
