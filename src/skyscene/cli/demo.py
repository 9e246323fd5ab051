"""``skyscene demo``: the main job of the README's quick start.

Each capability contributes one *stage*: a function ``stage(out_dir, *, progress)``
that simulates its data under ``out_dir``, runs the capability and returns a
short text saying where the results and pictures are. Stages run in order.
"""

from __future__ import annotations

import importlib
import logging
import time
from pathlib import Path

__all__ = ["register", "run_demo"]

log = logging.getLogger(__name__)

# "module:function" of each capability's demo stage, in the order they run.
_DEMO_STAGES = (
    "skyscene.pipelines.reduce:demo_stage",
    "skyscene.pipelines.smp:demo_stage",
    "skyscene.pipelines.diffim:demo_stage",
    "skyscene.pipelines.search:demo_stage",
    "skyscene.pipelines.rb:demo_stage",
    "skyscene.pipelines.spectra:demo_stage",
)


def run_demo(
    out_dir: Path, *, stages: tuple[str, ...] | None = None, progress: bool = True
) -> list[str]:
    """Run the demo stages into ``out_dir``; return one summary text per stage."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summaries = []
    for spec in stages or _DEMO_STAGES:
        module, func = spec.split(":")
        t0 = time.perf_counter()
        summary = getattr(importlib.import_module(module), func)(out_dir, progress=progress)
        summaries.append(f"{summary}\n  ({time.perf_counter() - t0:.1f} s)")
    return summaries


def _run(args) -> int:
    summaries = run_demo(Path(args.out_dir), progress=args.progress)
    print("\n".join(["", "skyscene demo finished.", *summaries]))
    return 0


def register(commands, simulate) -> None:
    p = commands.add_parser(
        "demo",
        help="simulate data sets and run every capability on them (make demo)",
        description=(
            "Simulate seeded data sets and run each capability of skyscene on them, "
            "printing where the results and diagnostic plots are."
        ),
    )
    p.add_argument(
        "out_dir", nargs="?", default="demo_output", help="output folder (default: %(default)s)"
    )
    p.set_defaults(func=_run)
