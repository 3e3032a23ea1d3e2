"""``frontier science {data,train,eval}``: simulate the PDE / particle data (cached), train an FNO
(Li et al. 2021) on Burgers or Darcy or an EGNN (Satorras et al. 2021) on charged N-body with the
kit's Trainer, and evaluate a saved model from the registry."""
from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction, area: str, text: str) -> None:
    from .. import argtypes as at
    from ..command import add_run_args
    from .train import EGNNRunConfig, FNORunConfig

    p = sub.add_parser(area, help=text, description=text)
    cmds = p.add_subparsers(dest="science_cmd", metavar="CMD")
    d = cmds.add_parser("data", help="simulate and cache a data set; prints its shapes, cache file and statistics")
    d.add_argument("problem", choices=("burgers", "darcy", "nbody"))
    d.add_argument("--n", type=at.integer(1, 1_000_000), default=None,
                   help="samples (default: burgers 1100, darcy 600, nbody 3000)")
    d.set_defaults(func=data_cmd)
    t = cmds.add_parser("train", help="train fno (Burgers/Darcy) or egnn (N-body); weights in <out>/model")
    tk = t.add_subparsers(dest="science_model", metavar="MODEL")
    f = tk.add_parser("fno", help="Fourier neural operator on --data.problem burgers|darcy")
    add_run_args(f, FNORunConfig, "science-fno")
    f.set_defaults(func=train_fno_cmd)
    e = tk.add_parser("egnn", help="E(n)-equivariant GNN on charged 5-body trajectories")
    add_run_args(e, EGNNRunConfig, "science-egnn")
    e.set_defaults(func=train_egnn_cmd)
    ev = cmds.add_parser("eval", help="test error of a saved fno (relative L2, also at finer grids) or egnn (MSE)")
    ev.add_argument("kind", choices=("fno", "egnn"))
    ev.add_argument("--model", required=True, metavar="DIR", type=at.model_folder(kind=("fno", "egnn")),
                    help="run or model folder from `frontier science train`")
    ev.set_defaults(func=eval_cmd)


def data_cmd(args: argparse.Namespace) -> int:
    from . import data
    if args.problem == "burgers":
        d = data.burgers(args.n or 1100)
        stats = {"energy_surviving_to_t1": data.burgers_energy_fraction(d["a"], d["u"]), "nu": 0.01}
    elif args.problem == "darcy":
        d = data.darcy(args.n or 600, 85)
        stats = {"fraction_a_high": float((d["a"] == 12).mean())}
    else:
        d = data.nbody(args.n or 3000, "train")
        stats = {"mse_static": float(((d["loc"] - d["target"]) ** 2).mean())}
    print(json.dumps({"problem": args.problem, "shapes": {k: list(v.shape) for k, v in d.items()},
                      "cache": str(data.cache_dir() / "science"), **stats}))
    return 0


def train_fno_cmd(args: argparse.Namespace) -> int:
    from ..command import build_config, start_run
    from .train import train_fno
    cfg = build_config(args)
    run = start_run(args, cfg)
    try:
        _, metrics = train_fno(cfg, run.out, tracker=run.tracker, quiet=run.quiet)
    finally:
        run.tracker.close()
    print(json.dumps({"problem": cfg.data.problem, **metrics, "model_dir": str(run.out / "model")}))
    return 0


def train_egnn_cmd(args: argparse.Namespace) -> int:
    from ..command import build_config, start_run
    from .egnn import EGNN
    from .train import train_nbody
    cfg = build_config(args)
    run = start_run(args, cfg)
    try:
        _, mse = train_nbody(EGNN(cfg.model), run.out, n_train=cfg.n_train, n_test=cfg.n_test, steps=cfg.steps,
                             batch_size=cfg.batch_size, lr=cfg.lr, seed=cfg.seed, quiet=run.quiet, tracker=run.tracker)
    finally:
        run.tracker.close()
    print(json.dumps({"test_mse": mse, "model_dir": str(run.out / "model")}))
    return 0


def eval_cmd(args: argparse.Namespace) -> int:
    from ..config import from_dict
    from ..errors import CheckpointError
    from ..models import open_model
    loaded = open_model(args.model, kind=args.kind)
    run = loaded.run or {}
    if args.kind == "fno":
        from .train import FNODataConfig, eval_fno
        if "data" not in run:
            raise CheckpointError(f"{args.model} has no run config naming its data; train it with "
                                  f"`frontier science train fno`")
        print(json.dumps(eval_fno(loaded.model, from_dict(FNODataConfig, run["data"], prefix="data."))))
    else:
        from .train import eval_nbody, nbody_tensors
        print(json.dumps({"test_mse": eval_nbody(loaded.model, nbody_tensors(2000, "test"))}))
    return 0
