"""The agents tour section: a traced agent run (thought, call, observation) on a shop task, the shop
harness check (oracle pass^k = 1, random ~ 0), the BFCL-style checker on its oracle, sandbox escapes
contained, and the Toolformer-in-miniature table/plot read from the committed benchmark results."""
from __future__ import annotations

import json
import time
from pathlib import Path

from ..report import Section, TourContext

RESULTS = Path(__file__).resolve().parents[3] / "benchmarks" / "results"


def _thinking_oracle(task):
    """The shop oracle, narrating a thought before each call (so the trace shows thought/call/observation)."""
    from .backends import Reply
    from .shop import oracle_policy
    inner = oracle_policy(task)

    def policy(messages, tools):
        reply = inner(messages, tools)
        if reply.tool_calls:
            c = reply.tool_calls[0]
            reply.content = f"I need {c.name} next to make progress."
        return reply
    return policy


def toolformer_figure(rows: list[dict]):
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5, 3))
    for key, style in (("tool", "o-"), ("no_tool", "s--"), ("plain", "^:")):
        ax.plot([r["digits"] for r in rows], [r[key] for r in rows], style, label=key)
    ax.set_xlabel("operand digits")
    ax.set_ylabel("exact match")
    ax.set_ylim(-0.02, 1.02)
    ax.legend()
    ax.set_title("Toolformer in miniature")
    fig.tight_layout()
    return fig


def tour(ctx: TourContext) -> Section:
    from .backends import PolicyBackend
    from .bfcl import evaluate as bfcl_eval, make_questions, oracle_reply
    from .loops import Agent, format_trace
    from .sandbox import Limits, run_python
    from .shop import Shop, evaluate, make_tasks, oracle_policy, random_policy

    t0 = time.perf_counter()
    sec = Section(title="Agents: tool use and planning",
                  summary="Tools with derived JSON schemas, function-calling / ReAct / plan-and-execute loops, an "
                          "OS-process sandbox, the shop environment scored with tau-bench's pass^k, a BFCL-style AST "
                          "checker, and Toolformer in miniature.")
    tasks = make_tasks()
    task = next(t for t in tasks if t.id.startswith("refund"))
    env = Shop()
    res = Agent(PolicyBackend(_thinking_oracle(task)), list(env.tools.values())).run(
        task.instruction, out=ctx.out / "agent-run")
    sec.text.append((f"traced run (scripted oracle policy) of: {task.instruction}",
                     format_trace(res.trace) + f"\nfinal DB == expected: {env.digest() == task.expected}"))
    trials = 2 if ctx.quick else 4
    shop_rows = []
    for name, make in (("oracle", lambda t, i: PolicyBackend(oracle_policy(t))),
                       ("random", lambda t, i: PolicyBackend(random_policy(i * 1000 + tasks.index(t))))):
        rep = evaluate(make, tasks, trials=trials)
        shop_rows.append({"policy": name, "tasks": len(tasks), **{f"pass^{k}": v for k, v in rep.pass_k.items()}})
    sec.tables.append(("shop tasks: pass^k (tau-bench), success = final DB equals the expected one", shop_rows))
    qs = make_questions()
    by_text = {q.question: q for q in qs}
    b = bfcl_eval(PolicyBackend(lambda m, t: oracle_reply(by_text[m[-1]["content"]])), qs)
    sec.tables.append(("BFCL-style set, AST checker on its oracle (harness check)",
                       [{"questions": b["n"], "accuracy": b["accuracy"], **b["by_category"]}]))
    lim = Limits(cpu_seconds=1, wall_seconds=3)
    escapes = {"class-hierarchy walk to os.system":
               "[c for c in ().__class__.__base__.__subclasses__() if c.__name__=='_wrap_close'][0]"
               ".__init__.__globals__['system']('id')",
               "read /etc/passwd": "open('/etc/passwd').read()", "socket": "import socket",
               "fork bomb": "import os\nwhile True: os.fork()", "infinite loop": "while True: pass"}
    sec.tables.append(("sandbox: known escapes, each contained", [
        {"attempt": k, "result": (r := run_python(code, lim)).error, "message to the model": r.observation()[:110]}
        for k, code in escapes.items()]))
    tf = RESULTS / "agents_toolformer.json"
    if tf.is_file():
        info = json.loads(tf.read_text())
        sec.tables.append((f"Toolformer in miniature: exact match by operand digits ({info['date'][:10]}, "
                           f"{info['command']})", info["rows"]))
        sec.figures.append(("exact match vs operand digits: with the calculator, tools off, trained without "
                            "annotations", toolformer_figure(info["rows"])))
    else:
        sec.text.append(("Toolformer", "no results yet: run python benchmarks/agents_toolformer.py"))
    sec.seconds = time.perf_counter() - t0
    return sec
