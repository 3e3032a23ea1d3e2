"""``frontier tour``: run each registered area's short demo and write one self-contained report.html."""
from __future__ import annotations

import argparse
import platform
import time
import traceback
from pathlib import Path

from .areas import resolve, tour_sections
from .config import ConfigError
from .report import Section, TourContext, render_html


def available_sections() -> dict[str, str]:
    """Section name -> "module:function" returning a Section, from every area's manifest."""
    return tour_sections()


def run_section(area: str, target: str, ctx: TourContext) -> Section:
    import torch

    threads = torch.get_num_threads()      # a section may pick its own thread count; restore it after
    t0 = time.perf_counter()
    try:
        section = resolve(target)(ctx)
    except Exception:  # a failing area is shown in the report; the others still run
        section = Section(title=area, error=traceback.format_exc(limit=8))
    finally:
        torch.set_num_threads(threads)
    section.seconds = time.perf_counter() - t0
    return section


def run_tour(out: str | Path, areas: list[str] | None = None, quick: bool = False, quiet: bool = True) -> Path:
    """Run the chosen areas' demos (all when ``areas`` is empty); returns the report path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sections = available_sections()
    chosen = areas or list(sections)
    unknown = [a for a in chosen if a not in sections]
    if unknown:
        raise ConfigError(f"unknown tour area(s) {unknown}; available: {', '.join(sections)}")
    results = []
    t0 = time.perf_counter()
    for area in chosen:
        if not quiet:
            print(f"[tour] {area} ...", flush=True)
        ctx = TourContext(out=out / area, quick=quick, quiet=quiet)
        ctx.out.mkdir(parents=True, exist_ok=True)
        results.append(run_section(area, sections[area], ctx))
        if not quiet:
            s = results[-1]
            print(f"[tour] {area}: {'FAILED' if s.error else 'ok'} in {s.seconds:.1f} s", flush=True)
    meta = (f"{time.strftime('%Y-%m-%d %H:%M')} · {'quick' if quick else 'full'} tour · "
            f"{time.perf_counter() - t0:.0f} s · {platform.machine()} · {platform.python_version()}")
    report = out / "report.html"
    report.write_text(render_html(results, "frontierkit tour", meta))
    failed = [s.title for s in results if s.error]
    if failed:
        raise TourFailed(f"{len(failed)} section(s) failed: {', '.join(failed)}; see {report}")
    return report


class TourFailed(RuntimeError):
    pass


def register(sub: argparse._SubParsersAction, area: str, text: str) -> None:
    p = sub.add_parser(area, help=text, description=text)
    p.add_argument("areas", nargs="*", help=f"areas to run (default: all of {', '.join(available_sections())})")
    p.add_argument("--quick", action="store_true", help="the short tour (within 5 minutes on 2 cores)")
    from .argtypes import out_dir
    p.add_argument("--out", default="runs/tour", metavar="DIR", type=out_dir(), help="report folder (default runs/tour)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=_cmd)


def _cmd(args: argparse.Namespace) -> int:
    try:
        report = run_tour(args.out, args.areas, quick=args.quick, quiet=args.quiet)
    except TourFailed as e:
        print(f"frontier tour: {e}")
        return 1
    print(f"report written to {report}")
    return 0
