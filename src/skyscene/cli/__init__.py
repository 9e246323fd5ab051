"""The ``skyscene`` command line.

Each capability lives in its own module of this package, which defines
``register(commands, simulate)``: ``commands`` is the top-level argparse
sub-parser collection, ``simulate`` the one of ``skyscene simulate``. Handlers
import their heavy dependencies lazily so that ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from skyscene.errors import SkysceneError

__all__ = ["build_parser", "main"]

# Modules that add commands; each one owns its commands. Add new capabilities here.
_COMMAND_MODULES = (
    "skyscene.cli.reduce",
    "skyscene.cli.demo",
    "skyscene.cli.smp",
    "skyscene.cli.diffim",
    "skyscene.cli.spectra",
)


def build_parser() -> argparse.ArgumentParser:
    """Build the full argument parser (all sub-commands registered)."""
    from skyscene import __version__

    parser = argparse.ArgumentParser(
        prog="skyscene",
        description=(
            "skyscene turns astronomical images into calibrated measurements: "
            "light curves, scene-modelling photometry, difference images and spectra.\n"
            "Run 'skyscene COMMAND --help' for the options of one command."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"skyscene {__version__}")
    verbosity = parser.add_mutually_exclusive_group()
    verbosity.add_argument(
        "-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)"
    )
    verbosity.add_argument(
        "-q", "--quiet", action="store_true", help="only warnings and errors, no progress bars"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    sim_parser = commands.add_parser(
        "simulate",
        help="write seeded simulated data sets (for tests, demos, benchmarks)",
        description="Write seeded simulated data sets with their truth tables.",
    )
    simulate = sim_parser.add_subparsers(dest="what", metavar="WHAT")

    def _simulate_help(args) -> int:
        sim_parser.print_help()
        return 2

    sim_parser.set_defaults(func=_simulate_help)
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(commands, simulate)
    return parser


def _configure_logging(verbose: int, quiet: bool) -> None:
    level = logging.WARNING if quiet else (logging.DEBUG if verbose >= 2 else logging.INFO)
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s", datefmt="%H:%M:%S"
    )
    # Third-party chatter stays at WARNING unless -vv.
    if verbose < 2:
        for noisy in ("distributed", "bokeh", "tornado", "matplotlib", "PIL", "numba", "fsspec"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``skyscene`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    _configure_logging(args.verbose, args.quiet)
    args.progress = not args.quiet
    try:
        status = args.func(args)
    except SkysceneError as exc:
        logging.getLogger("skyscene").error("%s", exc)
        return 1
    except KeyboardInterrupt:  # pragma: no cover - interactive
        logging.getLogger("skyscene").error("interrupted")
        return 130
    return int(status or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
