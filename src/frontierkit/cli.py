"""``frontier``: dispatch to each area's subcommands. No logic lives here."""
from __future__ import annotations

import argparse
import os
import sys

from . import __version__
from .areas import manifests, resolve
from .command import print_config, split_overrides
from .errors import USER_ERRORS
from .track import close_open_trackers


def build_parser() -> argparse.ArgumentParser:
    """One subcommand per area manifest that has commands, then ``tour``."""
    from . import tour

    parser = argparse.ArgumentParser(prog="frontier", description="frontierkit: frontier AI techniques, "
                                     "each implemented once and proven against the reference library.")
    parser.add_argument("--version", action="version", version=f"frontierkit {__version__}")
    sub = parser.add_subparsers(dest="area", metavar="AREA")
    for m in manifests():
        if m.commands:
            resolve(m.commands)(sub, m.name, m.help)
    tour.register(sub, "tour", "run every area's demo and write report.html")
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if rest and not getattr(args, "accepts_overrides", False):
        print(f"frontier: error: unrecognised arguments: {' '.join(rest)} (see frontier "
              f"{args.area + ' ' if args.area else ''}--help)", file=sys.stderr)
        return 2
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
