"""Shared pieces of ``frontier`` subcommands: run arguments (--config, --out, --tracker, --quiet),
config loading from TOML + dotted overrides, and the run folder/tracker a command writes to."""
from __future__ import annotations

import argparse
import os
import dataclasses
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from .argtypes import existing_file, out_dir
from .config import ConfigError, help_text, load_config, parse_overrides, to_dict
from .track import TRACKERS, MultiTracker, make_tracker

T = TypeVar("T")


def add_run_args(p: argparse.ArgumentParser, config_cls: type | None = None, name: str = "run") -> None:
    """--config/--out/--tracker/--quiet; unknown ``--a.b VALUE`` pairs become config overrides."""
    if config_cls is not None:
        p.add_argument("--config", metavar="TOML", type=existing_file((".toml",), "TOML recipe"), help="recipe file (see configs/); fields below override it")
        if hasattr(p, "epilog_factory"):      # cli.FrontierParser: built when --help is printed
            p.epilog_factory = functools.partial(help_text, config_cls)
        else:
            p.epilog = help_text(config_cls)
        p.formatter_class = argparse.RawDescriptionHelpFormatter
        p.add_argument("--print-config", action="store_true",
                       help="print the resolved config as JSON and exit (validates it)")
        p.set_defaults(config_cls=config_cls, accepts_overrides=True)
        if "train" in {f.name for f in dataclasses.fields(config_cls)}:
            _add_strategy_args(p)
    p.add_argument("--out", metavar="DIR", type=out_dir(), help=f"run folder (default: runs/{name})")
    p.add_argument("--tracker", default="mlflow", choices=TRACKERS,
                   help="where metrics go besides metrics.jsonl, which is always written (default mlflow, "
                        "sqlite at runs/mlflow.db; jsonl or none: nowhere else)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(run_name=name)


def _add_strategy_args(p: argparse.ArgumentParser) -> None:
    """``--strategy X`` / ``--deepspeed-config FILE`` / ``--init-from DIR``: aliases of ``--train.strategy`` /
    ``--train.deepspeed_config`` / ``--train.init_from``."""
    p.add_argument("--strategy", choices=("single", "ddp", "zero1", "zero2", "fsdp", "deepspeed"),
                   help="distributed strategy (alias of --train.strategy; launch multi-rank runs with torchrun)")
    p.add_argument("--init-from", metavar="DIR", help="start from the weights of this saved model (run or model "
                   "folder of the same kind; alias of --train.init_from)")
    p.add_argument("--deepspeed-config", metavar="JSON", type=existing_file((".json",), "DeepSpeed JSON file"), help="DeepSpeed JSON (alias of --train.deepspeed_config)")


def _alias_overrides(args: argparse.Namespace) -> list[str]:
    out = []
    if getattr(args, "strategy", None):
        out += ["--train.strategy", args.strategy]
    if getattr(args, "deepspeed_config", None):
        out += ["--train.deepspeed_config", args.deepspeed_config]
    if getattr(args, "init_from", None):
        out += ["--train.init_from", args.init_from]
    return out


def build_config(args: argparse.Namespace, cls: type[T] | None = None, base: dict | None = None) -> T:
    """The command's config: defaults <- ``base`` <- --config TOML <- --strategy aliases <- dotted overrides."""
    cls = cls or args.config_cls
    overrides = _alias_overrides(args) + list(getattr(args, "overrides", []) or [])
    return load_config(cls, getattr(args, "config", None), overrides, base=base)


@dataclass
class Run:
    out: Path
    tracker: MultiTracker
    quiet: bool
    rank: int = 0
    """torchrun rank: only rank 0 tracks, prints and writes run files"""

    @property
    def is_main(self) -> bool:
        return self.rank == 0


_CREATED: list[Path] = []
"""run folders this process created (a failed command removes them again when they hold no results)"""


def discard_empty_runs() -> None:
    """After a refused/failed command: delete the run folders it created that hold no results (no
    checkpoints, no model, no metrics rows), so a mistake leaves nothing behind."""
    import shutil
    while _CREATED:
        out = _CREATED.pop()
        metrics = out / "metrics.jsonl"
        if (out / "checkpoints").exists() or (out / "model").exists() or \
                (metrics.is_file() and metrics.stat().st_size > 0):
            continue
        shutil.rmtree(out, ignore_errors=True)


def start_run(args: argparse.Namespace, config: Any = None) -> Run:
    """Create the run folder, write config.json, open the tracker."""
    out = Path(args.out or f"runs/{args.run_name}")
    rank = int(os.environ.get("RANK", "0"))       # under torchrun only rank 0 tracks and writes
    _CREATED.clear()                              # only this command's folder (tests call main() repeatedly)
    if not out.exists() and rank == 0:
        _CREATED.append(out)
    out.mkdir(parents=True, exist_ok=True)
    tracker = make_tracker(args.tracker, out) if rank == 0 else MultiTracker([])  # one writer per run
    if config is not None and rank == 0:
        import json
        (out / "run_config.json").write_text(json.dumps(to_dict(config), indent=2, sort_keys=True))
    return Run(out=out, tracker=tracker, quiet=args.quiet or rank != 0, rank=rank)


def print_config(args: argparse.Namespace) -> int:
    """``--print-config``: resolve and validate the config, print it, run nothing."""
    import json
    print(json.dumps(to_dict(build_config(args)), indent=2, sort_keys=True))
    return 0


def split_overrides(args: argparse.Namespace, rest: list[str]) -> None:
    """Attach leftover ``--a.b VALUE`` args as overrides (the CLI refuses them earlier for commands
    that take none)."""
    if rest:
        parse_overrides(rest)  # validate syntax early
    args.overrides = rest
