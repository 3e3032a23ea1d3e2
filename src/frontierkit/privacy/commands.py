"""``frontier privacy {accountant,dp-train,federated,he-demo}``: the RDP accountant both ways, DP-SGD on any
classifier, FedAvg/FedProx with plain, masked or CKKS-encrypted aggregation, and a CKKS inference round trip."""
from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction, area: str, text: str) -> None:
    from .. import argtypes as at
    from ..command import add_run_args
    from .dp import DPRunConfig
    from .dp_lm import DPLMRunConfig
    from .federated import FLRunConfig

    p = sub.add_parser(area, help=text, description=text)
    cmds = p.add_subparsers(dest="privacy_cmd", metavar="CMD")
    a = cmds.add_parser("accountant", help="epsilon of (sigma, q, steps, delta), or the sigma for a target epsilon")
    a.add_argument("--sigma", type=at.number(0, 1e6, lo_open=True), default=None, help="noise multiplier (gives epsilon)")
    a.add_argument("--epsilon", type=at.number(0, 1e6, lo_open=True), default=None, help="target epsilon (gives the noise multiplier)")
    a.add_argument("--sample-rate", type=at.number(0, 1, lo_open=True), required=True, help="Poisson sampling rate q = lot size / N")
    a.add_argument("--steps", type=at.integer(1, 100_000_000), required=True, help="number of DP-SGD steps")
    a.add_argument("--delta", type=at.number(0, 1, lo_open=True, hi_open=True), default=1e-5)
    a.set_defaults(func=accountant_cmd)
    t = cmds.add_parser("dp-train",
                        help="DP-SGD (clip, noise, Poisson lots) on a classifier; stops at the epsilon budget")
    t.add_argument("--model", dest="model_name", default=None, metavar="NAME|DIR",
                   type=at.model_or_name(("mlp", "cnn", "resnet", "vit"), kind="vision", what="frontier privacy dp-train"),
                   help="architecture (mlp, cnn, resnet, vit) or a classifier folder to fine-tune privately")
    add_run_args(t, DPRunConfig, "privacy-dp")
    t.set_defaults(func=dp_train_cmd)
    lm = cmds.add_parser("dp-lm", help="DP-SGD fine-tuning of a kit language model on pycorpus windows")
    lm.add_argument("--model", dest="lm_dir", required=True, metavar="DIR",
                    help="a saved LM (run or model folder with its tokenizer.json)")
    add_run_args(lm, DPLMRunConfig, "privacy-dp-lm")
    lm.set_defaults(func=dp_lm_cmd)
    f = cmds.add_parser("federated", aliases=["fl"], help="FedAvg / FedProx over non-IID digits clients")
    add_run_args(f, FLRunConfig, "privacy-fl")
    f.set_defaults(func=federated_cmd)
    h = cmds.add_parser("he-demo", aliases=["he-infer"], help="CKKS encrypted inference of a digits classifier")
    h.add_argument("--hidden", type=at.integer(0, 1024), default=16, help="hidden width of the x^2 MLP (0: logistic regression)")
    h.add_argument("--preset", default=None, choices=("depth1", "depth2", "depth3"),
                   help="CKKS preset: depth1, depth2, depth3 (default: the shallowest that fits)")
    h.add_argument("--rows", type=at.integer(1, 10_000), default=5, help="test rows encrypted and classified")
    h.set_defaults(func=he_cmd)


def accountant_cmd(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from .accountant import noise_multiplier_for, rdp_epsilon

    if (args.sigma is None) == (args.epsilon is None):
        raise ConfigError("give exactly one of --sigma (to get epsilon) or --epsilon (to get the noise multiplier)")
    if args.sigma is not None:
        eps = rdp_epsilon(args.sigma, args.sample_rate, args.steps, args.delta)
        print(json.dumps({"epsilon": eps, "noise_multiplier": args.sigma, "sample_rate": args.sample_rate,
                          "steps": args.steps, "delta": args.delta}))
    else:
        sigma = noise_multiplier_for(args.epsilon, args.delta, args.sample_rate, args.steps)
        print(json.dumps({"noise_multiplier": sigma, "epsilon": args.epsilon, "sample_rate": args.sample_rate,
                          "steps": args.steps, "delta": args.delta}))
    return 0


def dp_train_cmd(args: argparse.Namespace) -> int:
    from ..command import build_config, start_run
    from ..models import open_model
    from ..vision.models import MODEL_NAMES
    from .dp import train_dp

    base: dict = {}
    init = None
    if args.model_name and args.model_name not in MODEL_NAMES:
        loaded = open_model(args.model_name, kind="vision", what="frontier privacy dp-train")
        base, init = {"model": loaded.config, "data": loaded.run.get("data", {})}, loaded.model.train()
    elif args.model_name:
        base = {"model": {"name": args.model_name}}
    cfg = build_config(args, base=base)
    run = start_run(args, cfg)
    try:
        _, record = train_dp(cfg, run.out, init=init, tracker=run.tracker, quiet=run.quiet)
    finally:
        run.tracker.close()
    print(json.dumps({**record, "model": cfg.model.name, "model_dir": str(run.out / "model")}))
    return 0


def dp_lm_cmd(args: argparse.Namespace) -> int:
    from ..command import build_config, start_run
    from ..models import open_model
    from .dp_lm import dp_finetune_lm

    loaded = open_model(args.lm_dir, tags="lm", what="frontier privacy dp-lm")
    cfg = build_config(args)
    run = start_run(args, cfg)
    try:
        record = dp_finetune_lm(cfg, loaded.model, loaded.path, run.out, model_config=loaded.config,
                                tracker=run.tracker, quiet=run.quiet)
    finally:
        run.tracker.close()
    print(json.dumps({**record, "model_dir": str(run.out / "model")}))
    return 0


def federated_cmd(args: argparse.Namespace) -> int:
    import torch

    from ..command import build_config, start_run
    from ..vision import VisionDataConfig, accuracy, build_model, load_data
    from .federated import federated_train
    from .secagg import secure_weighted_average

    cfg = build_config(args)
    run = start_run(args, cfg)
    (x, y), (xt, yt) = load_data(VisionDataConfig(), "train"), load_data(VisionDataConfig(), "test")
    aggregate = None
    if cfg.aggregation == "masked":
        aggregate = secure_weighted_average
    elif cfg.aggregation == "ckks":
        from .he import encrypted_weighted_average
        aggregate = encrypted_weighted_average
    torch.manual_seed(cfg.fl.seed)
    model = build_model(cfg.model, width=cfg.width)
    try:
        if cfg.transport == "flower":
            from .flower import federated_over_flower
            history = federated_over_flower(cfg, model, run.out / "flower-logs", evaluate=lambda m: accuracy(m, xt, yt))
        else:
            model, history = federated_train(model, x, y, cfg.fl, aggregate=aggregate,
                                             evaluate=lambda m: accuracy(m, xt, yt))
        for h in history:
            run.tracker.log_metrics({"test_acc": h["test_acc"]}, h["round"])
    finally:
        run.tracker.close()
    (run.out / "federated.json").write_text(json.dumps(history, indent=2))
    from ..models import save
    save(model, run.out / "model", run={"fl": cfg.fl.__dict__, "transport": cfg.transport})
    if not run.quiet:
        print("round  test_acc\n" + "\n".join(f"{h['round']:5d}  {h['test_acc']:.3f}" for h in history))
    print(json.dumps({"algorithm": cfg.fl.algorithm, "partition": cfg.fl.partition, "aggregation": cfg.aggregation,
                      "transport": cfg.transport, "rounds": cfg.fl.rounds, "test_acc": history[-1]["test_acc"],
                      "model_dir": str(run.out / "model")}))
    return 0


def he_cmd(args: argparse.Namespace) -> int:
    from ..vision import VisionDataConfig, load_data
    from .he import PRESETS, PolyMLP, encrypted_inference, fit_plaintext, preset_depth

    model = PolyMLP(hidden=args.hidden)
    preset = args.preset or next(p for p in PRESETS if preset_depth(p) >= model.depth)
    (x, y), (xt, yt) = load_data(VisionDataConfig(), "train"), load_data(VisionDataConfig(), "test")
    fit_plaintext(model, x.flatten(1), y)
    res = encrypted_inference(model, xt[:args.rows], preset)
    import torch
    with torch.no_grad():
        plain_acc = (model(xt.flatten(1)).argmax(-1) == yt).float().mean().item()
    print(json.dumps({"model": "logreg" if not args.hidden else f"x^2-mlp({args.hidden})", "preset": preset,
                      "plaintext_test_acc": plain_acc, "rows": args.rows,
                      "same_predictions": res.same_predictions, "max_abs_logit_error": res.max_abs_error,
                      "ms_per_inference": round(res.ms_per_inference, 1), "ciphertext_bytes": res.ciphertext_bytes}))
    return 0
