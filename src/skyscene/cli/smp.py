"""``skyscene smp``, ``skyscene smp-batch`` and ``skyscene simulate tno``."""

from __future__ import annotations

import argparse
import json
import logging

__all__ = ["register"]

log = logging.getLogger(__name__)


def _config(args):
    from skyscene.scene import SceneConfig

    return SceneConfig(
        grid_n=args.grid_n,
        grid_spacing=args.grid_spacing,
        sky=args.sky,
        fit_offset=args.fit_offset or args.offset_mode == "per_detection",
        offset_mode=args.offset_mode,
        shot_noise=args.shot_noise,
        ridge=args.ridge,
    )


def _add_fit_options(p) -> None:
    p.add_argument("--binary", action="store_true", help="also fit a binary and compare")
    p.add_argument(
        "--grid-n", type=int, default=20, help="grid size n (n × n; default %(default)s)"
    )
    p.add_argument(
        "--grid-spacing",
        type=float,
        default=0.35,
        help="grid spacing, arcsec (default %(default)s)",
    )
    p.add_argument("--sky", choices=("fit", "subtract", "none"), default="fit", help="sky handling")
    p.add_argument("--fit-offset", action="store_true", help="fit a sub-pixel target offset")
    p.add_argument(
        "--offset-mode",
        choices=("common", "per_detection"),
        default="common",
        help="one fitted offset for all detection exposures, or one each "
        "(per_detection implies --fit-offset)",
    )
    p.add_argument(
        "--shot-noise",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="second pass with the model's source shot noise (needs GAIN; default on)",
    )
    p.add_argument("--ridge", type=float, default=0.0, help="ridge prior precision on grid fluxes")


def _smp(args) -> int:
    from skyscene.pipelines.smp import run_smp

    record = run_smp(
        args.stamps,
        ra=args.ra,
        dec=args.dec,
        detection=args.detection,
        binary=args.binary,
        config=_config(args),
        out=args.out,
        mugshot=args.mugshot,
        psf_models=args.psf_model,
    )
    flux, err = record["flux"][0], record["flux_err"][0]
    log.info(
        "flux30 = %.2f ± %.2f, χ²/dof = %.1f/%d -> %s",
        flux,
        err,
        record["chi2"],
        record["dof"],
        args.out,
    )
    return 0


def _smp_batch(args) -> int:
    from skyscene.cli import EXIT_FAILURES
    from skyscene.pipelines.smp import run_smp_batch

    summary = run_smp_batch(
        args.detections,
        stamps_dir=args.stamps,
        out=args.out,
        binary=args.binary,
        config=_config(args),
        scheduler=args.scheduler,
        n_workers=args.workers,
        progress=args.progress,
        retry_failed=args.retry_failed,
        connect_timeout=args.connect_timeout,
    )
    for det_id, message in summary["failures"].items():
        log.warning("failed %s: %s", det_id, message)
    line = (
        f"smp-batch: {summary['n_total']} detections: {summary['n_ok']} ok, "
        f"{summary['n_failed']} failed, {summary['n_skipped']} reused from an earlier run, "
        f"in {summary['seconds']:.1f} s -> {summary['out']}"
    )
    if summary["n_failed"]:
        log.warning("%s (exit status %d: finished with failures)", line, EXIT_FAILURES)
        return EXIT_FAILURES
    log.info("%s", line)
    return 0


def _simulate_tno(args) -> int:
    from pathlib import Path

    from skyscene.datasets.tno import simulate_tno_stamps

    binary = (args.separation, args.flux_ratio) if args.binary else None
    sim = simulate_tno_stamps(
        rng=args.seed,
        n_exposures=args.n_exposures,
        snr=args.snr,
        blend=args.blend,
        binary=binary,
        mover=args.mover,
        out_dir=Path(args.out_dir),
    )
    truth = sim.truth
    log.info(
        "wrote %d stamps and truth.json to %s (target RA, Dec = %.6f, %.6f; flux30 %s; blend %s)",
        len(sim.paths) - 1,
        args.out_dir,
        truth["ra"],
        truth["dec"],
        json.dumps(truth["flux"]),
        truth["blend"],
    )
    return 0


def register(commands, simulate) -> None:
    p = commands.add_parser(
        "smp",
        help="scene-modelling photometry of one detection",
        description=(
            "Fit a point source (or binary) and a grid of background point sources jointly "
            "to all stamps of a sky patch (Bernardinelli et al. 2023)."
        ),
    )
    p.add_argument("stamps", nargs="+", help="stamp FITS files (SCI/WGT/MSK/PSF HDUs)")
    p.add_argument("--ra", type=float, required=True, help="target RA, degrees")
    p.add_argument("--dec", type=float, required=True, help="target Dec, degrees")
    p.add_argument(
        "--detection", required=True, action="append", help="detection stamp (repeatable)"
    )
    p.add_argument("--out", required=True, help="result JSON file")
    p.add_argument("--mugshot", default=None, help="five-panel mugshot PNG of the detection")
    p.add_argument(
        "--psf-model",
        nargs="+",
        default=None,
        help="PSF model files of the stamps' parent images (PSFEx .psf or Piff .piff): one "
        "for all stamps or one per stamp in order; evaluated at pixel + LTV1/2 origin",
    )
    _add_fit_options(p)
    p.set_defaults(func=_smp)

    b = commands.add_parser(
        "smp-batch",
        help="scene-modelling photometry of many detections (Dask, resumable)",
        description=(
            "Run SMP on every row (id, ra, dec, detection[, stamps]) of a CSV (ids unique). "
            "Results are cached in OUT.parts/ under the detection, its stamp files, the "
            "settings and the skyscene version: a rerun with the same settings skips finished "
            "detections, one with other settings recomputes them. A detection whose data "
            "cannot be used is recorded as failed (status, error columns) and the batch goes "
            "on. Exit status: 0 all ok, 3 finished with failures (counts in the last log "
            "line), 1 error, 130 interrupted. Workers of an existing cluster need the stamps "
            "and output paths (a shared file system)."
        ),
    )
    b.add_argument("detections", help="CSV with columns id, ra, dec, detection[, stamps]")
    b.add_argument(
        "--stamps", required=True, help="folder of stamps (default layout: STAMPS/ID/*.fits)"
    )
    b.add_argument("--out", required=True, help="results Parquet file (a CSV twin is written)")
    b.add_argument(
        "--scheduler",
        default="processes",
        help="synchronous | processes (a LocalCluster, default) | tcp://HOST:PORT | "
        "a Dask scheduler file (JSON)",
    )
    b.add_argument(
        "--connect-timeout",
        type=float,
        default=10.0,
        help="seconds to wait for an existing scheduler (default %(default)s)",
    )
    b.add_argument(
        "--retry-failed",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="recompute detections that failed in an earlier run (default on)",
    )
    b.add_argument(
        "--workers", type=int, default=None, help="LocalCluster workers (default: cores)"
    )
    _add_fit_options(b)
    b.set_defaults(func=_smp_batch)

    s = simulate.add_parser(
        "tno",
        help="DES-like stamps of a TNO on a complex background (+ truth.json)",
        description="Write seeded DES-like SMP stamps (FITS with WCS and PSF HDUs) and truth.json.",
    )
    s.add_argument("out_dir", help="output folder")
    s.add_argument("--seed", type=int, default=0, help="random seed")
    s.add_argument(
        "--n-exposures", type=int, default=11, help="number of stamps (default %(default)s)"
    )
    s.add_argument("--snr", type=float, default=None, help="target S/N (default: random in 5–200)")
    s.add_argument("--blend", default="random", choices=("random", "isolated", "moderate", "heavy"))
    s.add_argument("--binary", action="store_true", help="make the target a binary")
    s.add_argument("--separation", type=float, default=1.0, help="binary separation, arcsec")
    s.add_argument(
        "--flux-ratio", type=float, default=1.0, help="binary flux ratio (secondary/primary)"
    )
    s.add_argument("--mover", action="store_true", help="the target also appears in other stamps")
    s.set_defaults(func=_simulate_tno)
