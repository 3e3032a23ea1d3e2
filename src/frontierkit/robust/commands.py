"""``frontier robust {attack,train,eval}``: attack any classifier kind the model registry loads, train
one adversarially (PGD-AT, TRADES) with the shared loop, and evaluate robust accuracy per ε honestly."""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub: argparse._SubParsersAction, area: str, text: str) -> None:
    from .. import argtypes as at
    from ..command import add_run_args
    from .defenses import RobustRunConfig

    p = sub.add_parser(area, help=text, description=text)
    cmds = p.add_subparsers(dest="robust_cmd", metavar="CMD")
    a = cmds.add_parser("attack", help="adversarial examples for rows of the model's data; PNG + .npy + json")
    a.add_argument("--attack", default="pgd", choices=("fgsm", "pgd", "apgd"))
    a.add_argument("--eps", type=at.number(0, 1e6), default=0.1, help="perturbation budget in pixel units")
    a.add_argument("--norm", default="linf", choices=("linf", "l2"), help="threat model (fgsm: linf only)")
    a.add_argument("--steps", type=at.integer(1, 1_000_000), default=20, help="pgd/apgd iterations")
    a.add_argument("--alpha", type=at.number(0, 1e6, lo_open=True), default=None, help="pgd step size (default 2.5*eps/steps)")
    a.add_argument("--restarts", type=at.integer(1, 10_000), default=1, help="pgd/apgd random restarts (worst case kept)")
    a.add_argument("--target", type=at.integer(0, 1_000_000), default=None, help="targeted attack towards this class (fgsm/pgd)")
    a.add_argument("--n", type=at.integer(1, 10_000_000), default=8, help="number of rows attacked")
    a.add_argument("--start", type=at.integer(0, 10_000_000), default=0, help="first row")
    a.add_argument("--out", type=at.out_dir(), default="runs/robust-attack", metavar="DIR", help="output folder")
    a.set_defaults(func=attack_cmd)
    e = cmds.add_parser("eval", help="robust accuracy table: clean / FGSM / PGD-20 / PGD-100 x restarts / APGD per eps")
    e.add_argument("--eps-list", type=at.ArgType("eps-list", "comma-separated numbers >= 0", _eps_list),
                   default="0,0.05,0.1,0.2,0.3", help="comma-separated L-inf budgets")
    e.add_argument("--n", type=at.integer(0, 10_000_000), default=0, help="evaluate the first N rows (0: all)")
    e.add_argument("--restarts", type=at.integer(1, 10_000), default=5, help="restarts of the long PGD")
    e.add_argument("--long-steps", type=at.integer(1, 1_000_000), default=100, help="steps of the long PGD and of APGD")
    e.add_argument("--eot", type=at.integer(0, 100_000), default=0, help="EOT gradient samples (0: 16 for a randomised purifier, else 1)")
    e.add_argument("--out", type=at.out_dir(), default=None, metavar="DIR", help="also write robust_eval.json and .md here")
    e.set_defaults(func=eval_cmd)
    for c in (a, e):
        c.add_argument("--model", required=True, metavar="DIR",
                       type=at.model_folder(tags="classifier", what=c.prog),
                       help="run or model folder of any classifier kind (e.g. from `frontier vision train`)")
        c.add_argument("--split", default="test", choices=("train", "test"))
        c.add_argument("--purify", default="none", metavar="SPEC",
                       help="defend with input purification: none, bits:B, median:K, noise:SIGMA, or a+b; "
                            "attacked adaptively (BPDA through non-differentiable steps, EOT over randomness)")
        c.add_argument("--clip-min", type=at.number(-1e6, 1e6), default=0.0, help="smallest valid input value")
        c.add_argument("--clip-max", type=at.number(-1e6, 1e6), default=1.0, help="largest valid input value")
        c.add_argument("--seed", type=at.seed(), default=0)
    t = cmds.add_parser("train", help="adversarial training (PGD-AT or TRADES) of a classifier; weights in <out>/model")
    t.add_argument("--model", dest="model_name", default=None, metavar="NAME|DIR",
                   type=at.model_or_name(("mlp", "cnn", "resnet", "vit"), kind="vision", what="frontier robust train"),
                   help="architecture (mlp, cnn, resnet, vit) or a vision model folder to fine-tune")
    t.add_argument("--method", default=None, choices=("none", "pgd", "trades"), help="alias of --adv.method")
    add_run_args(t, RobustRunConfig, "robust")
    t.set_defaults(func=train_cmd)


def _eps_list(spec: str) -> str:
    """Parse-time check of --eps-list: comma-separated finite numbers >= 0."""
    import math
    try:
        ok = all(math.isfinite(float(e)) and float(e) >= 0 for e in spec.split(","))
    except ValueError:
        ok = False
    if not ok:
        raise argparse.ArgumentTypeError(f"{spec[:60]!r} is invalid: comma-separated finite numbers >= 0, "
                                         f"e.g. 0,0.1,0.3")
    return spec


def _defended(args: argparse.Namespace, what: str):
    """(loaded, defended model, eot): purification wrapped with BPDA (exact forward, identity backward
    through non-differentiable steps) and EOT gradient samples for randomised ones."""
    import torch

    from ..models import open_model
    from .purify import Purified, parse_purifier

    from ..errors import ConfigError
    if args.clip_min >= args.clip_max:
        raise ConfigError(f"--clip-min {args.clip_min} / --clip-max {args.clip_max} is invalid: clip-min must be "
                          f"below clip-max")
    torch.manual_seed(args.seed)
    loaded = open_model(args.model, tags="classifier", what=what)
    purifier = parse_purifier(args.purify, args.clip_min, args.clip_max)
    if purifier is None:
        return loaded, loaded.model, 1
    eot = getattr(args, "eot", 0) or (16 if purifier.randomized else 1)
    return loaded, Purified(loaded.model, purifier, bpda=True), eot


def _rows(loaded, args: argparse.Namespace, n: int, start: int = 0):
    from ..errors import DataError

    x, y = loaded.dataset(args.split)
    if n < 0 or start < 0 or start >= len(x):
        raise DataError(f"--start {start} / --n {n} is invalid: the {args.split} split has {len(x)} rows")
    x, y = x[start:start + n] if n else x[start:], y[start:start + n] if n else y[start:]
    if x.min() < args.clip_min or x.max() > args.clip_max:
        raise DataError(f"the data lies in [{x.min():.3g}, {x.max():.3g}], outside --clip-min {args.clip_min} "
                        f"--clip-max {args.clip_max}; set them to the model's input range")
    return x, y


def attack_cmd(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from ..errors import ConfigError
    from ..report import png_bytes
    from .attacks import apgd, fgsm, pgd
    from .plots import examples_figure

    if args.attack == "fgsm" and args.norm != "linf":
        raise ConfigError("--norm l2 is invalid with --attack fgsm (an L-inf attack); use --attack pgd")
    if args.target is not None and args.attack == "apgd":
        raise ConfigError("--target is invalid with --attack apgd (APGD-CE is untargeted); use --attack pgd")
    loaded, model, eot = _defended(args, "frontier robust attack")
    x, y = _rows(loaded, args, args.n, args.start)
    clip = dict(clip_min=args.clip_min, clip_max=args.clip_max, eot=eot)
    if args.target is not None:
        classes = model(x[:1]).shape[-1]
        if args.target >= classes:
            raise ConfigError(f"--target {args.target} is invalid: this model has {classes} classes "
                              f"(0 to {classes - 1})")
    goal = y if args.target is None else torch.full_like(y, args.target)
    targeted = args.target is not None
    if args.attack == "fgsm":
        x_adv = fgsm(model, x, goal, args.eps, targeted=targeted, **clip)
    elif args.attack == "pgd":
        x_adv = pgd(model, x, goal, args.eps, args.alpha, args.steps, args.norm, restarts=args.restarts,
                    targeted=targeted, generator=torch.Generator().manual_seed(args.seed), **clip)
    else:
        x_adv = apgd(model, x, y, args.eps, args.steps, args.norm, args.restarts, seed=args.seed, **clip)
    with torch.no_grad():
        pred, pred_adv = model(x).argmax(-1), model(x_adv).argmax(-1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "adv.npy", x_adv.numpy())
    shown = min(len(x), 16)
    (out / "attack.png").write_bytes(png_bytes(examples_figure(
        x[:shown], x_adv[:shown], pred[:shown], pred_adv[:shown], y[:shown], f"{args.attack} eps={args.eps:g}")))
    delta = (x_adv - x).flatten(1)
    info = {"attack": args.attack, "norm": args.norm, "eps": args.eps, "n": len(x), "targeted": targeted,
            "purify": args.purify, "clean_acc": (pred == y).float().mean().item(),
            "adv_acc": (pred_adv == y).float().mean().item(),
            "max_linf": delta.abs().max().item(), "max_l2": delta.norm(dim=1).max().item(),
            "labels": y.tolist(), "predictions": pred.tolist(), "adv_predictions": pred_adv.tolist(),
            "files": ["attack.png", "adv.npy"]}
    (out / "attack.json").write_text(json.dumps(info, indent=2))
    print(json.dumps({k: info[k] for k in ("attack", "eps", "n", "clean_acc", "adv_acc", "max_linf", "files")}))
    return 0


def eval_cmd(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from .evaluate import ladder, large_eps_accuracy, robustness_table, sanity_checks
    from .plots import markdown_table

    try:
        eps_values = [float(e) for e in args.eps_list.split(",")]
    except ValueError:
        raise ConfigError(f"--eps-list {args.eps_list!r} is invalid: comma-separated numbers, e.g. 0,0.1,0.3") from None
    loaded, model, eot = _defended(args, "frontier robust eval")
    x, y = _rows(loaded, args, args.n)
    attacks = ladder(args.restarts, eot=eot, seed=args.seed, clip_min=args.clip_min, clip_max=args.clip_max,
                     long_steps=args.long_steps)
    rows = robustness_table(model, x, y, eps_values, attacks)
    checks = sanity_checks(rows, large_eps_accuracy(model, x, y, attacks["pgd-20"], args.clip_min, args.clip_max))
    text = markdown_table(rows) + "\n\n" + "\n".join(
        f"- [{'ok' if c['passed'] else 'FAILED'}] {c['check']}: {c['detail']}" for c in checks)
    print(f"robust accuracy (%) of {args.model} on {len(x)} {args.split} rows, purify={args.purify}, eot={eot}\n")
    print(text)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "robust_eval.json").write_text(json.dumps({"rows": rows, "checks": checks, "n": len(x),
                                                          "purify": args.purify, "eot": eot}, indent=2))
        (out / "robust_eval.md").write_text(text + "\n")
    return 0


def _base(args: argparse.Namespace) -> tuple[dict, object]:
    """(config defaults fitting the data and model, initial module or None) for --model NAME|DIR."""
    from ..config import parse_overrides, to_dict
    from ..models import open_model
    from ..vision.models import MODEL_NAMES
    from ..vision.train import VisionDataConfig, default_train

    over = parse_overrides(getattr(args, "overrides", []) or [])
    base: dict = {"train": to_dict(default_train()), "adv": {"method": args.method} if args.method else {}}
    if args.model_name and args.model_name not in MODEL_NAMES:
        loaded = open_model(args.model_name, kind="vision", what="frontier robust train")
        return {**base, "model": loaded.config, "data": loaded.run.get("data", {})}, loaded.model.train()
    data = {k: v for k, v in over.get("data", {}).items() if k in ("name", "upscale", "shapes_size")}
    d = VisionDataConfig(**data)
    model = {"in_channels": d.in_channels, "image_size": d.image_size, "num_classes": d.num_classes}
    if args.model_name:
        model["name"] = args.model_name
    return {**base, "model": model}, None


def train_cmd(args: argparse.Namespace) -> int:
    from ..command import build_config, start_run
    from .defenses import train_robust

    base, init = _base(args)
    cfg = build_config(args, base=base)
    run = start_run(args, cfg)
    try:
        _, metrics = train_robust(cfg, run.out, init=init, tracker=run.tracker, quiet=run.quiet)
    finally:
        run.tracker.close()
    print(json.dumps({"method": cfg.adv.method, "eps": cfg.adv.eps, "model": cfg.model.name, **metrics,
                      "model_dir": str(run.out / "model")}))
    return 0
