"""``python -m frontierkit.serve --model DIR ...``: the same as ``frontier serve`` (only this area's parser)."""
from __future__ import annotations

import argparse
import sys

from ..errors import USER_ERRORS
from .commands import register


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m frontierkit.serve")
    register(parser.add_subparsers(dest="area"), "serve", "OpenAI-compatible server, ONNX export")
    args = parser.parse_args(["serve", *(sys.argv[1:] if argv is None else argv)])
    try:
        return int(args.func(args) or 0)
    except USER_ERRORS as e:
        print(f"frontier serve: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
