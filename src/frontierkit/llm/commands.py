"""``frontier llm {train,generate,eval,export}``: train a recipe with the shared loop, sample from a
checkpoint (ours or a local HF directory) with streaming output, held-out perplexity, HF export."""
from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction, area: str, text: str) -> None:
    from .. import argtypes as at
    from ..command import add_run_args
    from .recipe import LLMRunConfig

    p = sub.add_parser(area, help=text, description=text)
    cmds = p.add_subparsers(dest="llm_cmd", metavar="CMD")
    t = cmds.add_parser("train", help="train a recipe (configs/llm/*.toml); final weights in <out>/model")
    t.add_argument("--data", dest="data_path", metavar="PATH", default=None, type=at.text_source(),
                   help="train on this text file or folder instead of pycorpus (shorthand for --data.source)")
    add_run_args(t, LLMRunConfig, "llm")
    t.set_defaults(func=train_cmd)

    g = cmds.add_parser("generate", help="continue a prompt, streaming tokens to stdout")
    g.add_argument("--model", dest="model_dir", required=True, metavar="DIR",
                   type=at.model_folder("llm", what="frontier llm generate"),
                   help="a run folder, its model/ folder, or a local Hugging Face model directory")
    g.add_argument("--prompt", required=True, type=at.text(), help="text to continue")
    g.add_argument("--max-new-tokens", type=at.integer(1, 1_000_000), default=100,
                   help="tokens to add; prompt + new tokens must fit the model's context (model.max_seq_len), "
                        "else the command stops with a clear error before generating")
    g.add_argument("--temperature", type=at.number(0, 100), default=0.8, help="0 = greedy")
    g.add_argument("--top-k", type=at.integer(1, 10_000_000), default=None)
    g.add_argument("--top-p", type=at.number(0, 1, lo_open=True), default=None)
    g.add_argument("--repetition-penalty", type=at.number(0, 100, lo_open=True), default=1.0)
    g.add_argument("--seed", type=at.seed(), default=0)
    g.set_defaults(func=generate_cmd)

    e = cmds.add_parser("eval", help="perplexity on held-out text (pycorpus val by default)")
    e.add_argument("--model", dest="model_dir", required=True, metavar="DIR",
                   type=at.model_folder("llm", what="frontier llm eval"))
    e.add_argument("--data", dest="data_path", metavar="PATH", default=None, type=at.text_source(),
                   help="held-out text file/folder instead of the pycorpus val split")
    e.add_argument("--batches", type=at.integer(1, 100_000), default=16, help="held-out batches of 8 windows")
    e.set_defaults(func=eval_cmd)

    x = cmds.add_parser("export", help="write a trained model as a Hugging Face directory (transformers loads it)")
    x.add_argument("--model", dest="model_dir", required=True, metavar="DIR",
                   type=at.model_folder("llm", what="frontier llm export"))
    x.add_argument("--out", required=True, metavar="DIR", type=at.out_dir())
    x.set_defaults(func=export_cmd)


def train_cmd(args: argparse.Namespace) -> int:
    from ..command import build_config, start_run
    from .recipe import train_llm

    cfg = build_config(args)
    if args.data_path:   # --data wins over the recipe's data.source
        from dataclasses import replace
        cfg = replace(cfg, data=replace(cfg.data, source=args.data_path))
    run = start_run(args, cfg)
    try:
        result = train_llm(cfg, run.out, tracker=run.tracker, quiet=run.quiet)
    finally:
        run.tracker.close()
    if not run.is_main:
        return 0
    last = result.history[-1]
    print(json.dumps({"steps": result.step, "loss": round(last["loss"], 4),
                      "val_loss": round(last.get("eval/val_loss", float("nan")), 4),
                      "model_dir": str(result.model_dir)}))
    return 0


def generate_cmd(args: argparse.Namespace) -> int:
    import sys

    import torch

    from ..errors import DataError
    from .generate import stream
    from .recipe import load_model

    model, tok, _ = load_model(args.model_dir)
    ids = tok.encode(args.prompt).ids
    if not ids:
        raise DataError("--prompt is empty after tokenisation; pass some text")
    context = model.cfg.max_seq_len
    if len(ids) + args.max_new_tokens > context:
        raise DataError(f"--max-new-tokens {args.max_new_tokens} is invalid for this model: the {len(ids)}-token "
                        f"prompt plus the new tokens must fit its {context}-token context (model.max_seq_len); "
                        f"allowed: 1 to {max(context - len(ids), 0)}" + ("" if len(ids) < context else
                                                                          "; shorten --prompt"))
    eos = tok.token_to_id("<|endoftext|>")
    out: list[int] = []
    printed = ""
    sys.stdout.write(args.prompt)
    for t in stream(model, torch.tensor([ids]), args.max_new_tokens, temperature=args.temperature,
                    top_k=args.top_k, top_p=args.top_p, repetition_penalty=args.repetition_penalty,
                    stop_tokens=[eos] if eos is not None else (),
                    generator=torch.Generator().manual_seed(args.seed)):
        out.append(int(t[0]))
        text = tok.decode(out)
        if not text.endswith("\ufffd"):          # wait for complete UTF-8 characters
            sys.stdout.write(text[len(printed):])
            sys.stdout.flush()
            printed = text
    sys.stdout.write("\n")
    return 0


def eval_cmd(args: argparse.Namespace) -> int:
    import math

    from .recipe import DataConfig, encode, held_out_loss, load_model

    model, tok, run = load_model(args.model_dir)
    data = DataConfig(**{k: v for k, v in run.get("data", {}).items() if k in DataConfig.__dataclass_fields__})
    if args.data_path:
        from ..data.pycorpus import load_text_path
        ids = encode(tok, load_text_path(args.data_path))
        source = args.data_path
    else:
        from ..data.pycorpus import load_text
        ids = encode(tok, load_text("val", max_chars=data.val_chars))
        source = "pycorpus val"
    seq = min(data.seq_len, model.cfg.max_seq_len)
    loss = held_out_loss(model, ids, seq, args.batches)
    print(json.dumps({"data": source, "tokens": min(ids.numel(), args.batches * 8 * seq), "loss": round(loss, 4),
                      "perplexity": round(math.exp(loss), 3)}))
    return 0


def export_cmd(args: argparse.Namespace) -> int:
    import shutil
    from pathlib import Path

    from ..models import model_dir
    from .convert import to_hf
    from .recipe import load_model

    model, _, _ = load_model(args.model_dir)
    out = to_hf(model, args.out)
    shutil.copy(model_dir(args.model_dir) / "tokenizer.json", Path(out) / "tokenizer.json")
    print(json.dumps({"hf_dir": str(out), "architecture": model.cfg.family}))
    return 0
