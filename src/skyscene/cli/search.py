"""``skyscene search``: the transient search over one pair or a CSV of pairs."""

from __future__ import annotations

import argparse
import logging

__all__ = ["register"]

log = logging.getLogger(__name__)


def _config(args):
    from skyscene.alerts import AlertConfig
    from skyscene.candidates import CandidateConfig
    from skyscene.pipelines.search import SearchConfig
    from skyscene.store import StoreConfig

    return SearchConfig(
        candidates=CandidateConfig(
            threshold=args.threshold,
            cutout_size=args.cutout_size,
            max_candidates=args.max_candidates,
        ),
        alerts=AlertConfig(compresslevel=args.compresslevel),
        store=StoreConfig(match_radius_arcsec=args.match_radius),
        write_alerts=args.alerts,
        store_cutouts=args.store_cutouts,
        profile=args.instrument,
        page_candidates=args.page_candidates,
        page_stretch=args.stretch,
        model=args.model,
    )


def _search(args) -> int:
    from skyscene.cli import EXIT_FAILURES
    from skyscene.errors import ParameterError
    from skyscene.pipelines.search import PairEntry, run_search

    single = args.science is not None or args.reference is not None
    if single and args.pairs is not None:
        raise ParameterError("give either PAIRS.csv or --science/--reference, not both")
    if single:
        if args.science is None or args.reference is None:
            raise ParameterError("--science and --reference go together (one pair)")
        pairs = [PairEntry.of(args.science, args.reference, pair_id=args.pair_id)]
    elif args.pairs is None:
        raise ParameterError(
            "give PAIRS.csv (columns science,reference[,pair_id]) or "
            "--science SCI.fits --reference REF.fits"
        )
    else:
        if args.pair_id:
            raise ParameterError("--pair-id is for one pair (--science/--reference)")
        pairs = args.pairs
    scheduler = args.scheduler or ("synchronous" if single else "processes")
    summary = run_search(
        pairs,
        args.out,
        config=_config(args),
        db=args.db,
        scheduler=scheduler,
        n_workers=args.workers,
        progress=args.progress,
        overwrite=args.overwrite,
        retry_failed=args.retry_failed,
        connect_timeout=args.connect_timeout,
    )
    for failure in summary.failures:
        log.warning("failed %s: %s", failure["pair_id"], failure["error"])
    line = (
        f"search: {summary.n_pairs} pair(s): {summary.n_ok} ok, {summary.n_failed} failed, "
        f"{summary.n_reused} reused from an earlier run; {summary.n_candidates} candidates, "
        f"{summary.n_alerts_written} alert(s) written, in {summary.timings.get('wall', 0):.1f} s "
        f"-> {args.out}/index.html"
    )
    if summary.n_failed:
        log.warning("%s (exit status %d: finished with failures)", line, EXIT_FAILURES)
        return EXIT_FAILURES
    log.info("%s", line)
    return 0


def register(commands, simulate) -> None:
    p = commands.add_parser(
        "search",
        help="transient search: pairs -> ZOGY -> candidates, alerts, database, web page",
        description=(
            "Search science/reference pairs for transients: align and subtract (ZOGY), find "
            "candidates on S_corr with ZTF-named features, cut 63x63 triplets, write Avro "
            "alerts and a candidate database.\n\n"
            "One pair: skyscene search --science SCI.fits --reference REF.fits --out DIR\n"
            "Many:     skyscene search PAIRS.csv --out DIR   (columns science,reference"
            "[,pair_id]; relative paths are relative to the CSV)\n\n"
            "Outputs in DIR: candidates.csv|ecsv|parquet, alerts/<candid>.avro, skyscene.db "
            "(or --db URL), index.html + page/*.png, summary.json (written last, "
            '"complete": true), parts/ (one per pair; a rerun skips finished pairs). DIR '
            "belongs to one run at a time; a folder made with other settings or inputs is "
            "refused unless --overwrite.\n"
            "A pair that cannot be searched (missing or unreadable file, images that do not "
            "overlap, no stars) is logged and listed in summary.json; the others go on. "
            "--model MODEL.pt (or 'default', the shipped model) scores the candidates as "
            "they are found (drb, drbversion); without it nothing is scored.\n"
            "Exit status: 0 every pair ok, 3 finished with failures, 1 error, 130 "
            "interrupted. Workers of an existing Dask cluster need the input and output "
            "paths (a shared file system)."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("pairs", nargs="?", default=None, help="pairs CSV (science,reference[,pair_id])")
    p.add_argument("--science", default=None, help="science exposure FITS (one pair)")
    p.add_argument("--reference", default=None, help="reference exposure FITS (one pair)")
    p.add_argument("--pair-id", default=None, help="identifier of the one pair (default: names)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--db", default=None, help="SQLAlchemy database URL (default: sqlite:///OUT/skyscene.db)"
    )
    p.add_argument(
        "--scheduler",
        default=None,
        help="synchronous (default for one pair) | processes (a LocalCluster; default for a "
        "CSV) | tcp://HOST:PORT | a Dask scheduler file (JSON)",
    )
    p.add_argument("--workers", type=int, default=None, help="LocalCluster workers")
    p.add_argument(
        "--connect-timeout",
        type=float,
        default=10.0,
        help="seconds to wait for an existing scheduler (default %(default)s)",
    )
    p.add_argument(
        "--retry-failed",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="search pairs that failed in an earlier run again (default on)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the contents of a folder made with other settings or inputs",
    )
    p.add_argument(
        "--threshold", type=float, default=5.0, help="|S_corr| threshold (default %(default)s)"
    )
    p.add_argument(
        "--cutout-size", type=int, default=63, help="cutout side, odd (default %(default)s)"
    )
    p.add_argument("--max-candidates", type=int, default=None, help="keep the strongest N per pair")
    p.add_argument(
        "--match-radius",
        type=float,
        default=1.5,
        help="association radius of candidates into objects, arcsec (default %(default)s)",
    )
    p.add_argument(
        "--alerts",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="write alerts/<candid>.avro (default on)",
    )
    p.add_argument(
        "--store-cutouts",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="store the cutouts in the database as well (default on)",
    )
    p.add_argument(
        "--compresslevel",
        type=int,
        default=1,
        help="gzip level of the FITS cutouts, 0-9 (default %(default)s)",
    )
    p.add_argument(
        "--model",
        default=None,
        metavar="MODEL.pt|default",
        help="score every candidate with this real/bogus model as the pairs are searched "
        "(drb/drbversion in the tables and alerts, the scores table of the database); "
        "'default': the model shipped with skyscene; needs skyscene[rb]. Default: no "
        "scoring (score later with 'skyscene rb score DB_URL --model ...')",
    )
    p.add_argument("--instrument", default=None, help="instrument profile of the input files")
    p.add_argument(
        "--page-candidates",
        type=int,
        default=24,
        help="candidates shown on index.html (default %(default)s)",
    )
    p.add_argument(
        "--stretch",
        choices=("zscale", "asinh"),
        default="zscale",
        help="display stretch of the page's triplets (default %(default)s)",
    )
    p.set_defaults(func=_search)
