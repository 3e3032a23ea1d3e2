"""``frontier``: dispatch to each area's subcommands. No logic lives here."""
from __future__ import annotations

import argparse
import os
import sys

from . import __version__
from .areas import manifests, resolve
from .command import discard_empty_runs, print_config, split_overrides
from .errors import USER_ERRORS, PeerLost
from .track import close_open_trackers


class FrontierParser(argparse.ArgumentParser):
    """argparse with one-line errors: ``frontier llm generate: error: argument --max-new-tokens: -3 is
    invalid: an integer in [1, 1000000] (see frontier llm generate --help)``; subparsers inherit it."""

    def _get_values(self, action: argparse.Action, arg_strings: list[str]):  # type: ignore[override]
        if action.nargs is None and arg_strings == ["--"]:    # argparse would turn ``--opt=--`` into []
            allowed = getattr(action.type, "allowed", None) or (
                f"one of {', '.join(map(str, action.choices))}" if action.choices else "a value")
            self.error(f"argument {'/'.join(action.option_strings)}: '--' is invalid: {allowed}")
        return super()._get_values(action, arg_strings)

    epilog_factory = None
    """a function giving the epilog, called when help is printed (the config field tables read the config
    classes' source: ~0.7 s for every subcommand, on every ``frontier`` start, when built eagerly)"""

    def format_help(self) -> str:
        if self.epilog is None and self.epilog_factory is not None:
            self.epilog = self.epilog_factory()
        return super().format_help()

    def error(self, message: str) -> None:  # type: ignore[override]
        message = " ".join(message.split())
        if message.startswith("argument --") and " is invalid: " in message:   # "--n 0 is invalid: ..."
            opt, _, rest = message[len("argument "):].partition(": ")
            message = f"{opt.split('/')[0]} {rest}"
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """One subcommand per area manifest that has commands, then ``tour``."""
    from . import tour

    parser = FrontierParser(prog="frontier", description="frontierkit: frontier AI techniques, "
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
    try:
        args, rest = parser.parse_known_args(argv)
    except SystemExit as e:                      # --help, --version, or a one-line usage error
        return e.code if isinstance(e.code, int) else 2
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
        discard_empty_runs()                     # a refused run leaves no empty run folder behind
        _report_refusal(e)
        return 2
    except KeyboardInterrupt as e:              # Ctrl-C / SIGTERM (training saved a checkpoint: errors.Interrupted)
        close_open_trackers("KILLED")
        print(f"frontier: interrupted{': ' + str(e) if str(e) else ''}", file=sys.stderr)
        return 128 + getattr(e, "signum", 2)
    except OSError as e:                         # disk full, permission denied, a file where a folder goes
        close_open_trackers("FAILED")
        print(f"frontier: error: {_os_error(e)}", file=sys.stderr)
        return 2
    except BaseException:
        close_open_trackers("FAILED")
        raise
    close_open_trackers("FINISHED")
    return int(result or 0)


REFUSAL_GRACE_S = 60.0


def _report_refusal(e: BaseException) -> None:
    """One line per refusal. Under torchrun every rank refuses the same config: rank 0 prints it. The other
    ranks wait before exiting, since a rank that exits non-zero first makes torchrun SIGTERM rank 0 before
    it has printed (seen on a slow CI machine); torchrun ends them once rank 0 exits. A rank still alive
    after the grace refused alone (rank 0 waits in a collective), so it prints its own line. A lost peer
    (:class:`PeerLost`) is each rank's own news, printed by every rank that meets it."""
    if getattr(e, "reported", False):         # errors.PeerLost: its rank printed it the moment it happened
        return
    rank = os.environ.get("RANK", "0")
    if rank != "0" and "TORCHELASTIC_RUN_ID" in os.environ and not isinstance(e, PeerLost):
        import time
        time.sleep(REFUSAL_GRACE_S)
        print(f"frontier: error: (rank {rank}) {e}", file=sys.stderr)
    else:
        print(f"frontier: error: {e}", file=sys.stderr)


def _os_error(e: OSError) -> str:
    """One line for an operating-system error: what failed, on which path, and the usual fix."""
    import errno
    where = f" ({e.filename!r})" if e.filename else ""
    hint = {errno.ENOSPC: "; free disk space (the previous checkpoint is intact) and rerun to resume",
            errno.EACCES: "; check the folder's permissions", errno.EROFS: "; the file system is read-only",
            errno.ENOTDIR: "; a file is in the way of a folder", errno.EEXIST: "; a file is in the way"
            }.get(e.errno or 0, "")
    return f"{e.strerror or e}{where}{hint}"


if __name__ == "__main__":
    sys.exit(main())
