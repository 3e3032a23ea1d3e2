"""``frontier agents {run,eval}`` (alias ``frontier agent``): run one task with tools against an
OpenAI-compatible endpoint (``--base-url URL --model NAME``) or a kit model (``--model DIR``), saving its
trace; score a backend on the shop tasks (pass^k) or the BFCL-style set (AST accuracy)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from .. import argtypes as at

TOOLSETS = ("calculator", "python", "search", "shop")


def register(sub: argparse._SubParsersAction, area: str, text: str) -> None:
    p = sub.add_parser(area, aliases=["agent"], help=text, description=text)
    cmds = p.add_subparsers(dest="agents_cmd", metavar="CMD")
    r = cmds.add_parser("run", help="run one task with tools; prints the answer, saves trace.jsonl/trace.md")
    _backend_args(r)
    r.add_argument("--task", required=True, type=at.text(20_000), help="what the agent should do")
    r.add_argument("--tools", default="calculator,python,search", type=_toolsets(),
                   help=f"comma-separated tool sets among {', '.join(TOOLSETS)} (default calculator,python,search)")
    r.add_argument("--loop", default="function_calling", choices=("function_calling", "react", "plan_execute"))
    r.add_argument("--max-steps", type=at.integer(1, 1000), default=10, help="model turns before the run is stopped")
    r.add_argument("--out", default="runs/agents-run", type=at.out_dir(), help="folder for trace.jsonl and trace.md")
    r.set_defaults(func=run_cmd)
    e = cmds.add_parser("eval", help="score a backend: shop tasks (pass^k) or the BFCL-style set (AST checker)")
    _backend_args(e, policies=True)
    e.add_argument("--suite", choices=("shop", "bfcl"), default="shop")
    e.add_argument("--trials", type=at.integer(1, 64), default=4, help="shop: trials per task (pass^k for k = 1..trials)")
    e.add_argument("--limit", type=at.integer(1, 1_000_000), default=None, help="only the first N tasks/questions")
    e.add_argument("--out", default="runs/agents-eval", type=at.out_dir(), help="folder for results.json")
    e.add_argument("--quiet", action="store_true", help="no progress bar")
    e.set_defaults(func=eval_cmd)


def _backend_args(p: argparse.ArgumentParser, policies: bool = False) -> None:
    extra = " or 'oracle'/'random' (scripted policies)" if policies else ""
    p.add_argument("--model", required=True, metavar="NAME|DIR", type=_model_arg(policies),
                   help=f"endpoint model name (with --base-url), or a kit LM folder{extra}")
    p.add_argument("--base-url", default=None, metavar="URL", type=_url(),
                   help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1 (key: $OPENAI_API_KEY)")
    p.add_argument("--temperature", type=at.number(0, 2), default=0.0, help="sampling temperature (endpoints)")
    p.add_argument("--max-tokens", type=at.integer(1, 1_000_000), default=256,
                   help="endpoints: most tokens the model may write per turn")
    p.add_argument("--timeout", type=at.number(1, 3600), default=120.0,
                   help="endpoints: seconds to wait for one answer")
    p.add_argument("--max-calls", type=at.integer(1, 16), default=4,
                   help="kit models: most tool calls written in one turn under the grammar (parallel calls)")


def _model_arg(policies: bool) -> at.ArgType:
    """An endpoint model name, 'oracle'/'random' (eval), or an existing folder holding a kit LM (checked at parse
    time through the registry); a name that is no folder is taken as an endpoint model (needs --base-url)."""
    names = ("oracle", "random") if policies else ()
    folder = at.model_folder(tags="lm", what="frontier agents --model DIR")
    allowed = "an endpoint model name" + (", 'oracle', 'random'" if policies else "") + " or a kit LM folder"

    def convert(s: str) -> str:
        if s in names:
            return s
        if not s.strip() or len(s) > 4096 or not s.isprintable():
            raise at._bad(s, allowed)
        return folder(s) if at._is("exists", Path(s)) else s
    return at.ArgType("model-or-name", allowed, convert, names=names, model_kind=None, tags="lm")


def _url() -> at.ArgType:
    """An http(s) URL."""
    allowed = "an http:// or https:// URL, e.g. http://127.0.0.1:8000/v1"

    def convert(s: str) -> str:
        rest = s.split("://", 1)[-1]
        if not s.startswith(("http://", "https://")) or not rest or not s.isprintable() or " " in s:
            raise at._bad(s, allowed)
        return s
    return at.ArgType("text", allowed, convert, max_len=4096)


def _toolsets() -> at.ArgType:
    """Comma-separated names among TOOLSETS."""
    allowed = f"comma-separated tool sets among {', '.join(TOOLSETS)}"

    def convert(s: str) -> str:
        names = [n.strip() for n in s.split(",") if n.strip()]
        if not names or any(n not in TOOLSETS for n in names):
            raise at._bad(s, allowed)
        return s
    return at.ArgType("text", allowed, convert, max_len=1000)


def _backend(args: argparse.Namespace):
    from .backends import KitBackend, OpenAIBackend
    from ..errors import ConfigError
    if args.base_url:
        return OpenAIBackend(args.model, base_url=args.base_url, temperature=args.temperature,
                             max_tokens=args.max_tokens, timeout=args.timeout)
    if Path(args.model).is_dir():
        return KitBackend(args.model, max_calls=args.max_calls)
    raise ConfigError(f"--model {args.model!r} is not a folder; give --base-url URL for an endpoint model name, or "
                      f"a kit LM folder (frontier llm train --out DIR)")


def _tools(spec: str) -> tuple[list, object]:
    from ..errors import ConfigError
    from .calculator import calculator
    from .docstore import search_docs
    from .sandbox import python
    names = [s.strip() for s in spec.split(",") if s.strip()]
    bad = [n for n in names if n not in TOOLSETS]
    if bad:
        raise ConfigError(f"--tools {','.join(bad)} unknown: choose among {', '.join(TOOLSETS)}")
    tools, shop = [], None
    for n in names:
        if n == "shop":
            from .shop import Shop
            shop = Shop()
            tools += list(shop.tools.values())
        else:
            tools.append({"calculator": calculator, "python": python, "search": search_docs}[n])
    return tools, shop


def run_cmd(args: argparse.Namespace) -> int:
    from .loops import Agent
    tools, shop = _tools(args.tools)
    agent = Agent(_backend(args), tools, loop=args.loop, max_steps=args.max_steps)
    res = agent.run(args.task, out=args.out)
    out = {"answer": res.answer, "stopped": res.stopped, "steps": res.steps,
           "trace": str(Path(args.out) / "trace.jsonl")}
    if shop is not None:
        out["shop_db"] = shop.digest()
    print(json.dumps(out))
    return 0


def eval_cmd(args: argparse.Namespace) -> int:
    from .backends import PolicyBackend
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.suite == "shop":
        from .shop import evaluate, make_tasks, oracle_policy, random_policy
        tasks = make_tasks()[: args.limit]
        if args.model in ("oracle", "random") and not args.base_url:
            make = ((lambda t, i: PolicyBackend(oracle_policy(t))) if args.model == "oracle"
                    else (lambda t, i: PolicyBackend(random_policy(i * 1000 + tasks.index(t)))))
        else:
            backend = _backend(args)
            make = lambda t, i: backend  # noqa: E731
        rep = evaluate(make, tasks, trials=args.trials, progress=not args.quiet)
        result = {"suite": "shop", "model": args.model, "tasks": len(tasks), "trials": args.trials,
                  "pass_k": rep.pass_k, "successes": rep.successes}
    else:
        from .bfcl import evaluate as bfcl_eval, make_questions, oracle_reply
        qs = make_questions()[: args.limit]
        if args.model == "oracle" and not args.base_url:
            by_text = {q.question: q for q in qs}
            backend = PolicyBackend(lambda m, t: oracle_reply(by_text[m[-1]["content"]]))
        else:
            backend = _backend(args)
        rep = bfcl_eval(backend, qs, progress=not args.quiet)
        result = {"suite": "bfcl", "model": args.model, **rep}
    (out / "results.json").write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k not in ("rows", "successes")}))
    return 0
