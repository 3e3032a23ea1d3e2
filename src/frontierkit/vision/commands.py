"""``frontier vision {train,eval}``: train a digits/shapes classifier with the shared loop; evaluate one."""
from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction, area: str, text: str) -> None:
    from .. import argtypes as at
    from ..command import add_run_args
    from .train import VisionRunConfig

    p = sub.add_parser(area, help=text, description=text)
    cmds = p.add_subparsers(dest="vision_cmd", metavar="CMD")
    t = cmds.add_parser("train", help="train a classifier; final weights in <out>/model")
    t.add_argument("--model", dest="model_name", default=None, choices=("mlp", "cnn", "resnet", "vit"),
                   help="architecture (shorthand for --model.name; input shape follows --data)")
    t.add_argument("--data", dest="data_name", default=None, choices=("digits", "shapes"),
                   help="dataset (shorthand for --data.name)")
    add_run_args(t, VisionRunConfig, "vision")
    t.set_defaults(func=train_cmd)
    e = cmds.add_parser("eval", help="test accuracy of a trained classifier")
    e.add_argument("--model", dest="model_dir", required=True, metavar="DIR", help="run or model folder",
                   type=at.model_folder(tags="classifier", what="frontier vision eval"))
    e.add_argument("--split", default="test", choices=("train", "test"))
    e.set_defaults(func=eval_cmd)


def _base(args: argparse.Namespace) -> dict:
    """Defaults that make the model fit the chosen data (overridable by --config and --model.*)."""
    from ..config import parse_overrides, to_dict
    from .train import VisionDataConfig, default_train

    over = parse_overrides(getattr(args, "overrides", []) or [])
    data = {**over.get("data", {})}
    if args.data_name:
        data["name"] = args.data_name
    d = VisionDataConfig(**{k: v for k, v in data.items() if k in ("name", "upscale", "shapes_size")})
    model = {"in_channels": d.in_channels, "image_size": d.image_size, "num_classes": d.num_classes}
    if args.model_name:
        model["name"] = args.model_name
    return {"model": model, "data": {"name": d.name} if args.data_name else {},
            "train": to_dict(default_train())}


def train_cmd(args: argparse.Namespace) -> int:
    from ..command import build_config, start_run
    from .train import train_classifier

    cfg = build_config(args, base=_base(args))
    run = start_run(args, cfg)
    try:
        _, metrics = train_classifier(cfg, run.out, tracker=run.tracker, quiet=run.quiet, resume=True)
    finally:
        run.tracker.close()
    if run.is_main:  # under torchrun every rank runs this; one summary
        print(json.dumps({"model": cfg.model.name, "data": cfg.data.name, **metrics,
                          "model_dir": str(run.out / "model")}))
    return 0


def eval_cmd(args: argparse.Namespace) -> int:
    from ..models import open_model
    from .train import accuracy

    loaded = open_model(args.model_dir, tags="classifier", what="frontier vision eval")
    x, y = loaded.dataset(args.split)
    model = loaded.model
    print(json.dumps({"split": args.split, "accuracy": accuracy(model, x, y), "n": len(y)}))
    return 0
