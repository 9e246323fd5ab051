"""``skyscene subtract`` (ZOGY difference imaging) and ``skyscene simulate pair``."""

from __future__ import annotations

import logging

__all__ = ["register"]

log = logging.getLogger(__name__)


def _subtract(args) -> int:
    from skyscene.candidates import CandidateConfig, find_candidates
    from skyscene.diffim import ZogyConfig
    from skyscene.pipelines.diffim import subtract_files

    config = ZogyConfig(
        psf=args.psf,
        psf_size=args.psf_size,
        flux_ratio=args.flux_ratio,
        subimage_size=args.subimage_size,
        subimage_border=args.subimage_border,
        background_box=args.background_box,
    )
    outputs = subtract_files(args.science, args.reference, args.out, config=config, plot=args.plot)
    path, result = outputs.path, outputs.result
    n_good = int((result.mask == 0).sum())
    found = find_candidates(
        result,
        outputs.science,
        outputs.reference,
        config=CandidateConfig(threshold=args.threshold, cutouts=False),
    )
    n_pos = int((found["isdiffpos"] == "t").sum())
    print(
        f"{path}: flux ratio {result.flux_ratio:.5f} (converged={result.converged}), "
        f"shift ({result.shift[0]:.3f}, {result.shift[1]:.3f}) px, {n_good} good pixels, "
        f"{len(found)} candidates at |S_corr| >= {args.threshold:g} "
        f"({n_pos} positive, {len(found) - n_pos} negative)"
        + (f"; figure {outputs.plot_path}" if outputs.plot_path else "")
    )
    return 0


def _simulate_pair(args) -> int:
    from skyscene.pipelines.diffim import simulate_pair_files

    out = simulate_pair_files(
        args.out_dir,
        seed=args.seed,
        shape=(args.size, args.size),
        n_transients=args.n_transients,
        transient_snr=args.snr,
        psf_gradient=args.psf_gradient,
        n_cosmic_rays=args.cosmic_rays,
        n_saturated_stars=args.saturated_stars,
    )
    print(f"science {out.science}\nreference {out.reference}\ntruth {out.transients}")
    return 0


def register(commands, simulate) -> None:
    p = commands.add_parser(
        "subtract",
        help="ZOGY difference imaging of a science image against a reference",
        description=(
            "Proper image subtraction (Zackay, Ofek & Gal-Yam 2016). Writes HDUs DIFF, SCORR, "
            "SCORE, PSF (P_D), FLUX, FLUXERR (reference counts), MASK, with FD, FLUXRAT, DX, DY "
            "and the configuration in the primary header."
        ),
    )
    p.add_argument("--science", required=True, help="science (new) exposure FITS")
    p.add_argument("--reference", required=True, help="reference exposure FITS")
    p.add_argument("--out", required=True, help="output FITS (written atomically)")
    p.add_argument(
        "--psf",
        choices=("auto", "exposure", "estimate"),
        default="auto",
        help="PSF source (default %(default)s)",
    )
    p.add_argument(
        "--psf-size", type=int, default=41, help="PSF stamp size, odd (default %(default)s)"
    )
    p.add_argument(
        "--flux-ratio", type=float, default=None, help="fix F_n/F_r instead of fitting it"
    )
    p.add_argument(
        "--subimage-size", type=int, default=None, help="sub-image core size for a varying PSF"
    )
    p.add_argument(
        "--subimage-border", type=int, default=64, help="sub-image overlap (default %(default)s)"
    )
    p.add_argument(
        "--background-box", type=int, default=64, help="background mesh size (default %(default)s)"
    )
    p.add_argument(
        "--threshold",
        type=float,
        default=5.0,
        help="S_corr threshold of the candidate count (default %(default)s)",
    )
    p.add_argument(
        "--plot",
        metavar="PNG",
        default=None,
        help="also write the five-panel figure (science, reference, D, S_corr, flux) as PNG",
    )
    p.set_defaults(func=_subtract)

    s = simulate.add_parser(
        "pair",
        help="a seeded science/reference pair with transients and their truth table",
        description="Write science.fits, reference.fits and transients.csv into OUT_DIR.",
    )
    s.add_argument("out_dir", help="output folder")
    s.add_argument("--seed", type=int, default=0, help="random seed (default %(default)s)")
    s.add_argument(
        "--size", type=int, default=1024, help="image size, pixels (default %(default)s)"
    )
    s.add_argument("--n-transients", type=int, default=20, help="transients (default %(default)s)")
    s.add_argument("--snr", type=float, default=10.0, help="theoretical ZOGY S/N of the transients")
    s.add_argument(
        "--psf-gradient",
        type=float,
        default=0.0,
        help="fractional science FWHM change to the edges",
    )
    s.add_argument(
        "--cosmic-rays",
        type=int,
        default=0,
        help="unmasked cosmic rays in the science image (default %(default)s)",
    )
    s.add_argument(
        "--saturated-stars",
        type=int,
        default=0,
        help="static stars that saturate the science image (default %(default)s)",
    )
    s.set_defaults(func=_simulate_pair)
