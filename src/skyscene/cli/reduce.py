"""``skyscene reduce`` and ``skyscene simulate observations``."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

__all__ = ["register"]

log = logging.getLogger(__name__)


def _reduce(args) -> int:
    from skyscene.pipelines.reduce import ReduceConfig, Reducer

    config = ReduceConfig(
        profile=args.instrument,
        threshold=args.threshold,
        radius=args.radius,
        scheduler=args.scheduler,
        comparisons=tuple(args.comparisons) if args.comparisons else None,
        cosmic_rays=args.cosmic_rays,
        psf_mode=args.psf_mode,
    )
    reducer = Reducer(
        args.data_dir,
        args.out_dir,
        config=config,
        calibration=args.calibration,
        progress=args.progress,
        overwrite=args.overwrite,
    )
    with reducer:  # the output folder stays ours from the catalogs to the light curves
        reducer.create_catalogs()
        result = reducer.photometry(args.photometer, local_background=args.local_background)
    print(f"light curves: {result.lc_dir}")
    print(f"catalogs:     {Path(args.out_dir) / 'cat'}")
    print(f"plots:        {Path(args.out_dir) / 'diag'}")
    if reducer.skipped:
        print(
            f"skipped {len(reducer.skipped)} file(s) (see {Path(args.out_dir) / 'summary.json'}):"
        )
        for path, reason in reducer.skipped:
            print(f"  {path}: {reason}")
    return 0


def _simulate(args) -> int:
    from skyscene.datasets import simulate_observations

    truth = simulate_observations(
        args.out_dir, args.n_images, rng=args.seed, shape=(args.size, args.size), psf=args.psf
    )
    print(f"wrote {len(truth.files)} frames and truth.json to {args.out_dir}")
    return 0


def register(commands, simulate) -> None:
    p = commands.add_parser(
        "reduce",
        help="FITS frames -> catalogs, aligned forced photometry, BMJD light curves, plots",
        description=(
            "Reduce a folder of FITS frames (one or several cameras/filters) to light curves.\n\n"
            "Outputs in OUT_DIR: cat/<band>_catalog.csv|png, "
            "lcs/<photometer>_<background>/<band>_source_<n>.csv|ecsv|parquet (BMJD TDB, flux, flux_err, "
            "bkg, bkg_err, x, y, flags, rel_flux; units and metadata in ECSV/Parquet) and "
            "<band>_lightcurves.* (all sources, source_id column), diag/*.png|pdf, frames.csv, "
            "config.json, summary.json.\n"
            "Frames that cannot be read, parsed or aligned are skipped, logged and listed in summary.json.\n"
            "OUT_DIR belongs to one run at a time (lock file .skyscene.lock naming PID and host); a "
            "folder made with other settings is refused unless --overwrite; RUNNING marks a run that "
            'has not finished, summary.json (written last) has "complete": true.'
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("data_dir", help="folder of FITS frames")
    p.add_argument("out_dir", help="output folder (created)")
    p.add_argument(
        "--photometer",
        choices=("optimal", "aperture"),
        default="optimal",
        help="optimal (Naylor 1998, total flux) or elliptical aperture (default: %(default)s)",
    )
    p.add_argument(
        "--local-background",
        default="default",
        metavar="NAME|MODULE:FUNCTION",
        help="local background estimator: default (clipped mean in 5-7.5 sigma annulus), "
        "median, or MODULE:FUNCTION of your own (default: %(default)s)",
    )
    p.add_argument("--calibration", metavar="DIR", help="folder of bias/dark/flat frames to apply")
    p.add_argument(
        "--psf-mode",
        choices=("camera", "frame"),
        default="camera",
        help="one PSF shape per camera, or scaled per frame by the measured seeing "
        "(use 'frame' when the seeing varies) (default: %(default)s)",
    )
    p.add_argument(
        "--cosmic-rays",
        action="store_true",
        help="mask cosmic rays on every frame (astroscrappy; pip install 'skyscene[cosmics]')",
    )
    p.add_argument(
        "--instrument",
        metavar="NAME|FILE.toml",
        help="instrument profile for header keywords (default: from INSTRUME)",
    )
    p.add_argument(
        "--threshold",
        type=float,
        default=5.0,
        help="detection threshold, sigma (default: %(default)s)",
    )
    p.add_argument(
        "--radius",
        type=float,
        default=3.0,
        help="aperture/extraction radius in PSF sigmas (default: %(default)s)",
    )
    p.add_argument(
        "--comparisons",
        type=int,
        nargs="+",
        metavar="ID",
        help="source ids of the comparison ensemble",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="reuse OUT_DIR even if it was made with other settings (its contents are removed); "
        "without it such a folder is refused",
    )
    p.add_argument(
        "--scheduler",
        default="processes",
        help="synchronous | processes (local Dask cluster) | tcp://HOST:PORT (default: %(default)s)",
    )
    p.set_defaults(func=_reduce)

    s = simulate.add_parser(
        "observations",
        help="multi-camera (g, r, i) frames with a variable star, and truth.json",
        description="Write seeded frames of a field seen by three cameras, with a sinusoidal variable.",
    )
    s.add_argument("out_dir")
    s.add_argument(
        "--n-images", type=int, default=100, help="frames per camera (default: %(default)s)"
    )
    s.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    s.add_argument(
        "--size", type=int, default=256, help="frame size, pixels (default: %(default)s)"
    )
    s.add_argument("--psf", choices=("gaussian", "moffat"), default="gaussian")
    s.set_defaults(func=_simulate)
