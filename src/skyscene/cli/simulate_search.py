"""``skyscene simulate search``: a seeded transient-search data set with its truth."""

from __future__ import annotations

import logging

__all__ = ["register"]

log = logging.getLogger(__name__)


def _simulate_search(args) -> int:
    from pathlib import Path

    from skyscene.datasets.search import SearchSimConfig, write_search
    from skyscene.errors import ParameterError

    out_dir = Path(args.out_dir)
    if (out_dir / "pairs.csv").exists() and not args.overwrite:
        raise ParameterError(
            f"{out_dir}: holds a simulated search already (pairs.csv); "
            "give --overwrite to replace it",
            name="out_dir",
            value=str(out_dir),
        )
    if out_dir.exists() and not out_dir.is_dir():
        raise ParameterError(f"{out_dir}: exists and is not a folder", name="out_dir")
    if args.n_pairs < 1:
        raise ParameterError(
            f"--n-pairs must be >= 1, got {args.n_pairs}", name="n_pairs", value=args.n_pairs
        )
    config = SearchSimConfig(shape=(args.size, args.size), null=args.null)
    files = write_search(
        out_dir, args.n_pairs, config=config, rng=args.seed, progress=args.progress
    )
    print(f"{len(files.pairs)} pair(s) in {files.out_dir}: {files.pairs_csv}, {files.truth_csv}")
    return 0


def register(commands, simulate) -> None:
    s = simulate.add_parser(
        "search",
        help="seeded science/reference pairs with transients, artefacts and their truth",
        description=(
            "Write OUT_DIR/<pair_id>/science.fits and reference.fits (varied seeing, depth, "
            "PSF and sky; transients, fading and variable sources, movers; cosmic rays, hot "
            "pixels, bad columns, satellite trails, saturated stars, dipoles, PSF residuals), "
            "OUT_DIR/pairs.csv (pair_id,science,reference), truth.csv/.ecsv and truth.json."
        ),
    )
    s.add_argument("out_dir", help="output folder")
    s.add_argument("--n-pairs", type=int, default=1, help="number of pairs (default %(default)s)")
    s.add_argument(
        "--size", type=int, default=2048, help="image size, pixels (default %(default)s)"
    )
    s.add_argument("--seed", type=int, default=0, help="random seed (default %(default)s)")
    s.add_argument(
        "--null",
        action="store_true",
        help="null pairs: same conditions and PSF mismatch, no injections, no artefacts",
    )
    s.add_argument(
        "--overwrite", action="store_true", help="replace a simulated search already in OUT_DIR"
    )
    s.set_defaults(func=_simulate_search)
