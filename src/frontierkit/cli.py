"""``frontier``: dispatch to each area's subcommands. No logic lives here."""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from .command import print_config, split_overrides
from .errors import USER_ERRORS
from .track import close_open_trackers

# area -> (module with ``register(subparsers)``, one-line help)
AREAS: dict[str, tuple[str, str]] = {
    "train": ("frontierkit.train.commands", "the shared training loop on embedded data (digits, pycorpus)"),
    "data": ("frontierkit.data.commands", "embedded datasets and the BPE tokenizer"),
    "llm": ("frontierkit.llm.commands", "GPT/LLaMA/Mistral/Qwen2 transformers: train, generate, eval, HF in/out"),
    "vision": ("frontierkit.vision.commands", "small image classifiers (MLP, CNN, ResNet, ViT) on digits/shapes"),
    "explain": ("frontierkit.explain.commands", "Grad-CAM, SHAP, Integrated Gradients"),
    "rl": ("frontierkit.rl.commands", "PPO, SAC, CQL, IQL; offline dataset collection"),
    "tour": ("frontierkit.tour", "run every area's demo and write report.html"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="frontier", description="frontierkit: frontier AI techniques, "
                                     "each implemented once and proven against the reference library.")
    sub = parser.add_subparsers(dest="area", metavar="AREA")
    for area, (module, text) in AREAS.items():
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name and (module == e.name or module.startswith(e.name + ".")):
                continue  # area not built in this install
            raise
        mod.register(sub, area, text)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if not getattr(args, "func", None):
        try:
            parser.parse_args([args.area, "--help"] if args.area else ["--help"])
        except SystemExit:
            pass
        return 2
    try:
        split_overrides(args, rest)
        if getattr(args, "print_config", False):
            return print_config(args)
        result = args.func(args)
    except USER_ERRORS as e:
        close_open_trackers("FAILED")
        print(f"frontier: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        close_open_trackers("KILLED")
        print("frontier: interrupted", file=sys.stderr)
        return 130
    except BaseException:
        close_open_trackers("FAILED")
        raise
    close_open_trackers("FINISHED")
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
