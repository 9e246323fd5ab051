"""``skyscene spectra grid|fit`` and ``skyscene simulate spectra``."""

from __future__ import annotations

import logging
from pathlib import Path

__all__ = ["register"]

log = logging.getLogger(__name__)


def _grid(args) -> int:
    from skyscene.errors import ParameterError
    from skyscene.io.spectral_grid import spectral_grid_from_directory, write_spectral_grid

    wl_range = None
    if (args.wl_min is None) != (args.wl_max is None):
        raise ParameterError("--wl-min and --wl-max must be given together")
    if args.wl_min is not None:
        wl_range = (args.wl_min, args.wl_max)
    grid = spectral_grid_from_directory(
        args.raw_dir,
        reader=args.reader,
        wavelength_range=wl_range,
        resolution=args.resolution,
        dv=args.dv,
        progress=args.progress,
    )
    path = write_spectral_grid(grid, args.grid)
    print(f"wrote {grid!r} to {path}")
    return 0


def _fit(args) -> int:
    from skyscene.pipelines.spectra import fit_spectrum_file
    from skyscene.spectra import SpectralFitConfig

    config = SpectralFitConfig(
        resolution=args.resolution,
        continuum_degree=args.continuum_degree,
        vsini_bounds=(0.0, args.vsini_max),
        rv_bounds=(args.rv_min, args.rv_max),
        interpolation=args.interpolation,
        shared=tuple(s for s in args.shared.split(",") if s),
        flux_ratio=args.flux_ratio,
    )
    out_dir = Path(args.out_dir) if args.out_dir else Path(args.spectrum).parent
    res = fit_spectrum_file(
        args.spectrum,
        args.grid,
        out_dir,
        mixture=args.mixture,
        sample=args.sample,
        n_steps=args.n_steps,
        config=config,
        rng=args.seed,
        progress=args.progress,
        trim=args.trim,
    )
    m = res.model
    if m.trimmed_ is not None and m.trimmed_.n_pixels:
        lo, hi = m.trimmed_.wavelength_range
        print(
            f"trimmed: fitted {lo:.2f}-{hi:.2f} Å, the range the grid supports "
            f"({m.trimmed_.n_pixels} pixels left out)"
        )
    names = m.parameter_names_
    print(
        "theta1: "
        + ", ".join(
            f"{n}={v:.4g}±{e:.2g}" for n, v, e in zip(names, m.theta1_, m.theta1_err_, strict=True)
        )
    )
    if m.theta2_ is not None:
        print(
            "theta2: "
            + ", ".join(
                f"{n}={v:.4g}±{e:.2g}"
                for n, v, e in zip(names, m.theta2_, m.theta2_err_, strict=True)
            )
        )
        print(f"c = {m.c_:.4f} ± {m.c_err_:.4f}")
        cmp = res.comparison
        if cmp is not None:
            print(f"preferred: {cmp.preferred} (ΔBIC single − mixture = {cmp.delta_bic:.1f})")
    print(
        f"vsini = {m.vsini_:.2f} ± {m.vsini_err_:.2f} km/s, RV = {m.rv_:.3f} ± {m.rv_err_:.3f} km/s"
    )
    print(f"results: {res.json_path}\nmodel:   {res.csv_path}\nplot:    {res.plot_path}")
    return 0


def _simulate(args) -> int:
    from skyscene.pipelines.spectra import simulate_spectra_files

    out = simulate_spectra_files(
        args.out_dir,
        teff1=args.teff1,
        teff2=args.teff2,
        c=args.c,
        vsini=args.vsini,
        rv=args.rv,
        snr=args.snr,
        resolution=args.resolution,
        pixels_per_order=args.pixels,
        n_orders=args.orders,
        grid_kwargs={"n_wavelength": args.n_wavelength},
        seed=args.seed,
    )
    for name, path in out.paths.items():
        print(f"{name}: {path}")
    return 0


def register(commands, simulate) -> None:
    """Add ``spectra grid``, ``spectra fit`` and ``simulate spectra``."""
    p = commands.add_parser(
        "spectra",
        help="two-component stellar spectra: build grids, fit spectra",
        description="Spectral grids and one-/two-component (star + spots) spectral fits.",
    )
    sub = p.add_subparsers(dest="spectra_command", metavar="ACTION")
    p.set_defaults(func=lambda args: p.print_help() or 2)

    g = sub.add_parser(
        "grid",
        help="build an HDF5 spectral grid from a folder of raw model spectra",
        description="Read raw model spectra (e.g. PHOENIX-ACES FITS), truncate, broaden to "
        "the instrument's resolution, resample to ln λ and write the HDF5 grid.",
    )
    g.add_argument("raw_dir", help="folder with the raw spectra (searched recursively)")
    g.add_argument("grid", help="output HDF5 grid file")
    g.add_argument("--reader", default="phoenix", help="library reader (default: %(default)s)")
    g.add_argument("--wl-min", type=float, help="first wavelength to keep [Å]")
    g.add_argument("--wl-max", type=float, help="last wavelength to keep [Å]")
    g.add_argument("--resolution", type=float, help="instrumental resolving power R to broaden to")
    g.add_argument("--dv", type=float, help="output ln λ sampling [km/s] (default: R/3 sampling)")
    g.set_defaults(func=_grid)

    f = sub.add_parser(
        "fit",
        help="fit a spectrum CSV with a one- or two-component model",
        description="Fit SPECTRUM.csv (columns wavelength [Å], flux, sigma[, order]) with a "
        "grid; write NAME_fit.json, NAME_model.csv and NAME_fit.png.",
    )
    f.add_argument("spectrum", help="spectrum CSV file")
    f.add_argument("--grid", required=True, help="HDF5 spectral grid")
    f.add_argument("--mixture", action="store_true", help="fit the two-component model too")
    f.add_argument("--sample", action="store_true", help="sample the posterior with emcee")
    f.add_argument("--n-steps", type=int, default=1000, help="emcee steps (default: %(default)s)")
    f.add_argument("--resolution", type=float, help="instrumental resolving power R")
    f.add_argument("--continuum-degree", type=int, default=2, help="Chebyshev degree per order")
    f.add_argument("--vsini-max", type=float, default=100.0, help="upper v sin i bound [km/s]")
    f.add_argument("--rv-min", type=float, default=-200.0, help="lower RV bound [km/s]")
    f.add_argument("--rv-max", type=float, default=200.0, help="upper RV bound [km/s]")
    f.add_argument("--shared", default="logg,FeH", help="parameters shared by both components")
    f.add_argument("--flux-ratio", default="grid", choices=["grid", "pairs"], help="q_m approach")
    f.add_argument(
        "--interpolation",
        default="emulator",
        choices=["emulator", "linear"],
        help="grid spectra between nodes: ln-flux eigenspectra with cubic-spline weights "
        "(default) or multilinear (reference)",
    )
    f.add_argument(
        "--trim",
        action="store_true",
        help="fit only the wavelengths the grid supports for the RV and v sin i bounds "
        "(instead of failing when the grid is too short)",
    )
    f.add_argument("--out-dir", help="output folder (default: the spectrum's folder)")
    f.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    f.set_defaults(func=_fit)

    s = simulate.add_parser(
        "spectra",
        help="toy spectral grid and noisy one-/two-component spectra",
        description="Write grid.h5, spectrum_mixture.csv, spectrum_single.csv and truth.json.",
    )
    s.add_argument("out_dir", help="output folder")
    s.add_argument("--teff1", type=float, default=5400.0, help="hot component Teff [K]")
    s.add_argument("--teff2", type=float, default=3900.0, help="cool component Teff [K]")
    s.add_argument("--c", type=float, default=0.35, help="filling factor of the cool component")
    s.add_argument("--vsini", type=float, default=6.0, help="v sin i [km/s]")
    s.add_argument("--rv", type=float, default=12.0, help="radial velocity [km/s]")
    s.add_argument("--snr", type=float, default=100.0, help="signal-to-noise per pixel")
    s.add_argument("--resolution", type=float, default=30000.0, help="resolving power R")
    s.add_argument("--pixels", type=int, default=4096, help="pixels per order")
    s.add_argument("--orders", type=int, default=1, help="number of orders")
    s.add_argument("--n-wavelength", type=int, default=4096, help="grid wavelengths")
    s.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    s.set_defaults(func=_simulate)
