"""``frontier science {data,train,eval}``: simulate the PDE / particle / molecule data (cached), train an FNO
(Li et al. 2021) on Burgers or Darcy, an EGNN (Satorras et al. 2021) on charged N-body or a SchNet
(Schütt et al. 2017) on MMFF94-labelled conformers with the kit's Trainer, and evaluate a saved model
from the registry."""
from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction, area: str, text: str) -> None:
    from .. import argtypes as at
    from ..command import add_run_args
    from .train import EGNNRunConfig, FNORunConfig, SchNetRunConfig

    p = sub.add_parser(area, help=text, description=text)
    cmds = p.add_subparsers(dest="science_cmd", metavar="CMD")
    d = cmds.add_parser("data", help="simulate and cache a data set; prints its shapes, cache file and statistics")
    d.add_argument("problem", choices=("burgers", "darcy", "nbody", "mmff", "egnn", "schnet"),
                   help="burgers / darcy (fno), nbody (egnn; alias egnn), mmff conformers (schnet; alias schnet)")
    d.add_argument("--n", type=at.integer(1, 100_000), default=None,
                   help="samples (default: burgers 1100, darcy 600, nbody 3000, mmff 800)")
    d.add_argument("--smiles", type=at.text(200), default="CCO", help="mmff: the molecule (default ethanol)")
    d.set_defaults(func=data_cmd)
    t = cmds.add_parser("train", help="train fno (Burgers/Darcy), egnn (N-body) or schnet (MMFF94 conformers); "
                        "weights in <out>/model")
    tk = t.add_subparsers(dest="science_model", metavar="MODEL")
    f = tk.add_parser("fno", help="Fourier neural operator on --data.problem burgers|darcy")
    add_run_args(f, FNORunConfig, "science-fno")
    f.set_defaults(func=train_fno_cmd)
    e = tk.add_parser("egnn", help="E(n)-equivariant GNN on charged 5-body trajectories")
    add_run_args(e, EGNNRunConfig, "science-egnn")
    e.set_defaults(func=train_egnn_cmd)
    s = tk.add_parser("schnet", help="SchNet energy+force fit on MMFF94-labelled conformers (not DFT)")
    add_run_args(s, SchNetRunConfig, "science-schnet")
    s.set_defaults(func=train_schnet_cmd)
    ev = cmds.add_parser("eval", help="test error of a saved fno (relative L2, also at finer grids), egnn (MSE) "
                         "or schnet (energy / force MAE on held-out conformers)")
    ev.add_argument("kind", choices=("fno", "egnn", "schnet"))
    ev.add_argument("--model", required=True, metavar="DIR", type=at.model_folder(kind=("fno", "egnn", "schnet")),
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
    elif args.problem in ("nbody", "egnn"):
        d = data.nbody(args.n or 3000, "train")
        stats = {"mse_static": float(((d["loc"] - d["target"]) ** 2).mean())}
    else:
        from .train import SchNetDataConfig, schnet_data
        d = schnet_data(SchNetDataConfig(smiles=args.smiles, n_train=args.n or 800), "train")
        stats = {"labels": "MMFF94 (not DFT)", "energy_std_kcal_mol": float(d["energy"].std()),
                 "force_std_kcal_mol_A": float(d["forces"].std())}
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


def train_schnet_cmd(args: argparse.Namespace) -> int:
    from ..command import build_config, start_run
    from ..config import to_dict
    from .schnet import SchNet
    from .train import eval_schnet_on, schnet_data, train_schnet
    cfg = build_config(args)
    run = start_run(args, cfg)
    try:
        import torch
        torch.manual_seed(cfg.train.seed)                     # the initial weights
        model = train_schnet(SchNet(cfg.model), schnet_data(cfg.data, "train"), run.out, rho=cfg.rho,
                             train_cfg=cfg.train, run_config=to_dict(cfg), quiet=run.quiet, tracker=run.tracker)
    finally:
        run.tracker.close()
    print(json.dumps({**eval_schnet_on(model, cfg.data), "labels": "MMFF94 (not DFT)",
                      "model_dir": str(run.out / "model")}))
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
    elif args.kind == "schnet":
        from .train import SchNetDataConfig, eval_schnet_on
        data_cfg = from_dict(SchNetDataConfig, run["data"], prefix="data.") if "smiles" in run.get("data", {}) \
            else SchNetDataConfig()
        print(json.dumps({**eval_schnet_on(loaded.model, data_cfg), "smiles": data_cfg.smiles,
                          "n_test": data_cfg.n_test, "labels": "MMFF94 (not DFT)"}))
    else:
        from .train import eval_nbody, nbody_tensors
        print(json.dumps({"test_mse": eval_nbody(loaded.model, nbody_tensors(2000, "test"))}))
    return 0
