"""``frontier rl``: train PPO/SAC/CQL/IQL, evaluate a saved policy, collect offline datasets."""
from __future__ import annotations

import argparse
import json

ALGOS = {"ppo": ("frontierkit.rl.ppo", "PPORunConfig", "online, discrete or continuous actions"),
         "sac": ("frontierkit.rl.sac", "SACRunConfig", "online, continuous actions"),
         "cql": ("frontierkit.rl.cql", "CQLRunConfig", "offline, from a dataset"),
         "iql": ("frontierkit.rl.iql", "IQLRunConfig", "offline, from a dataset")}
OFFLINE = ("cql", "iql")


def _config_cls(algo: str) -> type:
    import importlib
    module, cls, _ = ALGOS[algo]
    return getattr(importlib.import_module(module), cls)


def register(sub: argparse._SubParsersAction, area: str, text: str) -> None:
    from .. import argtypes as at
    from ..command import add_run_args
    p = sub.add_parser(area, help=text, description=text)
    rl = p.add_subparsers(dest="rl_command", metavar="COMMAND")

    train = rl.add_parser("train", help="train an agent: frontier rl train {ppo,sac,cql,iql} --env ID | --dataset FILE")
    algos = train.add_subparsers(dest="algo", metavar="ALGO")
    for algo, (_, _, what) in ALGOS.items():
        a = algos.add_parser(algo, help=f"{algo.upper()} ({what})")
        a.add_argument("--env", metavar="ID", help="gymnasium env id (ppo, sac), e.g. CartPole-v1, Pendulum-v1")
        a.add_argument("--dataset", metavar="FILE", type=at.existing_file((".npz",), "dataset"), help="offline dataset .npz (cql, iql) from `frontier rl collect`")
        add_run_args(a, _config_cls(algo), f"rl-{algo}")
        a.set_defaults(func=cmd_train, algo=algo)

    ev = rl.add_parser("eval", help="evaluate a saved policy deterministically (mean ± std return)")
    ev.add_argument("--model", required=True, metavar="DIR", type=at.model_folder(tags="policy", what="frontier rl eval"), help="run folder or its model/ folder")
    ev.add_argument("--episodes", type=at.integer(1, 1_000_000), default=10, help="episodes (default 10)")
    ev.add_argument("--seed", type=at.seed(), default=10_000, help="first episode seed (default 10000)")
    ev.add_argument("--env", metavar="ID", help="evaluate on another env with the same spaces (default: the training env)")
    ev.add_argument("--json", action="store_true", help="print the result as JSON")
    ev.set_defaults(func=cmd_eval)

    co = rl.add_parser("collect", help="build offline datasets (random, medium, expert, medium-replay) from our SAC agents")
    co.add_argument("--env", required=True, metavar="ID", help="continuous-action gymnasium env, e.g. Pendulum-v1, Hopper-v5")
    co.add_argument("--out", default="data/rl", type=at.out_dir(), metavar="DIR", help="output folder (default data/rl)")
    co.add_argument("--kinds", default="random,medium,expert,medium-replay", help="comma-separated kinds")
    co.add_argument("--train-steps", type=at.integer(1, 100_000_000), default=15_000, help="SAC steps for the expert (default 15000)")
    co.add_argument("--transitions", type=at.integer(1, 100_000_000), default=20_000, help="transitions per rollout dataset (default 20000)")
    co.add_argument("--medium-score", type=at.number(-1e6, 1e6), default=45.0, help="normalised score the medium snapshot aims at")
    co.add_argument("--seed", type=at.seed(), default=0)
    co.add_argument("--quiet", action="store_true", help="no progress bars")
    co.set_defaults(func=cmd_collect)


def cmd_train(args: argparse.Namespace) -> int:
    import importlib

    from ..command import build_config, start_run
    from ..config import ConfigError, to_dict
    algo = args.algo
    overrides = list(getattr(args, "overrides", []) or [])
    if algo in OFFLINE:
        if args.env:
            raise ConfigError(f"--env {args.env!r}: {algo.upper()} is offline and reads its env from the dataset; "
                              f"pass --dataset FILE.npz instead")
        if args.dataset:
            overrides += ["--data.path", args.dataset]
    else:
        if args.dataset:
            raise ConfigError(f"--dataset {args.dataset!r}: {algo.upper()} is online; train it with --env ID, "
                              f"or use cql/iql for datasets")
        if args.env:
            overrides += ["--env.id", args.env]
    args.overrides = overrides
    cfg = build_config(args, _config_cls(algo))
    if algo in OFFLINE and not cfg.data.path:
        raise ConfigError(f"{algo} needs a dataset: pass --dataset FILE.npz (build one with `frontier rl collect`)")
    from pathlib import Path

    from .resume import check_same_run
    check_same_run(Path(args.out or f"runs/{args.run_name}"), algo, cfg)  # before the run folder is touched
    run = start_run(args, cfg)
    try:
        run.tracker.log_params(to_dict(cfg))
        result = importlib.import_module(ALGOS[algo][0]).train(cfg, out=run.out, tracker=run.tracker, quiet=run.quiet)
    finally:
        run.tracker.close()
    last = result.history[-1] if result.history else {}
    score = f", normalised score {last['normalized_score']:.1f}" if "normalized_score" in last else ""
    print(f"{algo}: eval return {last.get('eval_return', float('nan')):.1f} ± {last.get('eval_std', float('nan')):.1f}"
          f"{score} after {last.get('step', 0)} steps "
          f"({f'{result.steps_per_second:.0f} steps/s' if result.steps_per_second > 0 else 'already complete'}); "
          f"model saved to {run.out / 'model'}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    import numpy as np

    from ..config import ConfigError
    from .common import load_policy, policy_act_fn
    from .envs import evaluate, make_env, space_info
    if args.episodes < 1:
        raise ConfigError(f"--episodes {args.episodes} is invalid: pass an integer >= 1")
    policy, cfg = load_policy(args.model)
    model = cfg["model"]
    env_id = args.env or model["env_id"]
    info = space_info(make_env(env_id))
    if (info["obs_dim"], info["act_dim"], info["discrete"]) != (model["obs_dim"], model["act_dim"], model["discrete"]):
        raise ConfigError(f"--env {env_id!r} has obs_dim={info['obs_dim']}, act_dim={info['act_dim']}, "
                          f"discrete={info['discrete']} but the policy was trained on {model['env_id']} "
                          f"(obs_dim={model['obs_dim']}, act_dim={model['act_dim']})")
    returns = evaluate(policy_act_fn(policy), env_id, args.episodes, args.seed)
    out = {"algo": model["algo"], "env_id": env_id, "episodes": args.episodes,
           "mean": float(np.mean(returns)), "std": float(np.std(returns)), "returns": returns}
    if model.get("dataset"):
        from .data import load_dataset
        from ..errors import DataError
        try:
            out["normalized_score"] = load_dataset(model["dataset"]).normalized_score(out["mean"])
        except DataError:
            pass
    if args.json:
        print(json.dumps(out))
    else:
        score = f" (normalised score {out['normalized_score']:.1f})" if "normalized_score" in out else ""
        print(f"{model['algo']} on {env_id}: return {out['mean']:.1f} ± {out['std']:.1f} over "
              f"{args.episodes} deterministic episodes{score}")
    return 0


def cmd_collect(args: argparse.Namespace) -> int:
    from ..config import ConfigError
    from .data import collect, load_dataset
    kinds = tuple(k.strip() for k in args.kinds.split(",") if k.strip())
    for name in ("train_steps", "transitions"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} {getattr(args, name)} is invalid: pass an integer >= 1")
    paths = collect(args.env, args.out, kinds, train_steps=args.train_steps, n_transitions=args.transitions,
                    medium_score=args.medium_score, seed=args.seed, quiet=args.quiet)
    for kind, path in paths.items():
        d = load_dataset(path)
        mean, std = d.metadata["behaviour_return"]
        print(f"{kind:>14}: {path} ({len(d)} transitions, behaviour return {mean:.1f} ± {std:.1f}, "
              f"score {d.normalized_score(mean):.1f})")
    return 0
