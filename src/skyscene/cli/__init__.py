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

__all__ = ["EXIT_ERROR", "EXIT_FAILURES", "EXIT_INTERRUPTED", "build_parser", "main"]

#: Exit status of a command that stopped on an error (one line on stderr).
EXIT_ERROR = 1
#: Exit status of a batch command that finished but some of its items failed (the
#: failures are listed and counted in the last log line; the results of the others
#: are written).
EXIT_FAILURES = 3
#: Exit status after Ctrl-C.
EXIT_INTERRUPTED = 130

# Modules that add commands; each one owns its commands. Add new capabilities here.
_COMMAND_MODULES = (
    "skyscene.cli.reduce",
    "skyscene.cli.demo",
    "skyscene.cli.smp",
    "skyscene.cli.diffim",
    "skyscene.cli.simulate_search",
    "skyscene.cli.spectra",
    "skyscene.cli.db",
    "skyscene.cli.search",
    "skyscene.cli.rb",
    "skyscene.cli.serve",
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
    _add_verbosity(parser, default_verbose=0, default_quiet=False)
    # -v/-q are accepted after the sub-command too: every sub-parser gets them, with
    # SUPPRESS defaults so that an option given before the sub-command is kept.
    common = argparse.ArgumentParser(add_help=False)
    _add_verbosity(common, default_verbose=argparse.SUPPRESS, default_quiet=argparse.SUPPRESS)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    _give_parents(commands, common)
    sim_parser = commands.add_parser(
        "simulate",
        help="write seeded simulated data sets (for tests, demos, benchmarks)",
        description="Write seeded simulated data sets with their truth tables.",
    )
    simulate = sim_parser.add_subparsers(dest="what", metavar="WHAT")
    _give_parents(simulate, common)

    def _simulate_help(args) -> int:
        sim_parser.print_help()
        return 2

    sim_parser.set_defaults(func=_simulate_help)
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(commands, simulate)
    return parser


def _add_verbosity(parser: argparse.ArgumentParser, *, default_verbose, default_quiet) -> None:
    verbosity = parser.add_mutually_exclusive_group()
    verbosity.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=default_verbose,
        help="more log output (-vv for debug)",
    )
    verbosity.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=default_quiet,
        help="only warnings and errors, no progress bars",
    )


def _give_parents(commands, common: argparse.ArgumentParser) -> None:
    """Make ``commands.add_parser`` add the options of ``common`` to every sub-parser,
    and to the sub-parsers of their own sub-commands (``skyscene users add ... -q``)."""
    add_parser = commands.add_parser

    def add_with_common(name, **kwargs):
        parents = list(kwargs.get("parents", ()))
        if not any(a.dest in ("verbose", "quiet") for p in parents for a in p._actions):
            parents.append(common)
        kwargs["parents"] = parents
        sub = add_parser(name, **kwargs)
        add_subparsers = sub.add_subparsers

        def add_subparsers_with_common(**kw):
            nested = add_subparsers(**kw)
            _give_parents(nested, common)
            return nested

        sub.add_subparsers = add_subparsers_with_common
        return sub

    commands.add_parser = add_with_common


def _os_error_line(exc: OSError) -> str:
    """One line naming the path(s), errno and reason of an OS error."""
    names = [str(n) for n in (exc.filename, exc.filename2) if n is not None]
    code = f"[Errno {exc.errno}] " if exc.errno is not None else ""
    reason = exc.strerror or str(exc) or type(exc).__name__
    return f"{' -> '.join(names) + ': ' if names else ''}{code}{reason}"


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
    log = logging.getLogger("skyscene")
    try:
        status = args.func(args)
    except SkysceneError as exc:
        log.error("%s", exc)
        return EXIT_ERROR
    except OSError as exc:  # read-only or full disk, permissions: one line, the path named
        log.error("%s", _os_error_line(exc))
        return EXIT_ERROR
    except KeyboardInterrupt:
        log.error("interrupted")
        return EXIT_INTERRUPTED
    return int(status or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
