"""The privacy benchmarks' ``[--quick] [--out DIR]`` entry point (metadata, tables and the JSON + markdown
writer come from bench_common)."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable

from bench_common import RESULTS


def main(run: Callable[[bool, Path], dict], description: str, quick_help: str) -> int:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help=quick_help)
    p.add_argument("--out", type=Path, default=RESULTS)
    from bench_common import add_write_arg
    args = add_write_arg(p).parse_args()
    run(args.quick, args.out)
    return 0
