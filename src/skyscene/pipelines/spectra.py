"""File-level orchestration of two-component spectral fitting.

Spectrum CSV columns: ``wavelength`` (Å), ``flux``, ``sigma`` (1σ, > 0; ``inf`` masks
a pixel) and optionally ``order`` (integer order/chunk label). Outputs of a fit of
``NAME.csv`` (all written atomically):

``NAME_fit.json``   fitted values, uncertainties, χ², BIC, model comparison, configuration
``NAME_model.csv``  wavelength, order, flux, sigma, model, component1, component2, residual
``NAME_fit.png``    data, model, components and residuals
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from skyscene.errors import InputFileError
from skyscene.io._atomic import atomic_path, atomic_write_text

if TYPE_CHECKING:
    from skyscene.spectra import (
        MixtureModel,
        ModelComparison,
        SingleComponentModel,
        SpectralFitConfig,
        SpectralGrid,
    )

__all__ = [
    "SimulatedSpectraFiles",
    "SpectrumFitOutputs",
    "demo_stage",
    "fit_spectrum_file",
    "read_spectrum_csv",
    "simulate_spectra_files",
]

log = logging.getLogger(__name__)

_REQUIRED = ("wavelength", "flux", "sigma")


@dataclass(frozen=True, kw_only=True)
class ObservedSpectrum:
    """A spectrum read from CSV."""

    wavelength: np.ndarray
    flux: np.ndarray
    sigma: np.ndarray
    order: np.ndarray | None


@dataclass(frozen=True, kw_only=True)
class SpectrumFitOutputs:
    """Paths written by :func:`fit_spectrum_file` and the fitted models.

    Attributes
    ----------
    json_path, csv_path, plot_path : Path
        The files written.
    model : MixtureModel or SingleComponentModel
        The final model (the mixture when it was fitted).
    single : SingleComponentModel or None
        The single-component fit made for the comparison (None without ``mixture``).
    comparison : ModelComparison or None
        Single vs mixture (None without ``mixture``).
    config : SpectralFitConfig
        The configuration of the mixture (or single) fit.
    summary : dict
        The JSON record written to ``json_path``.
    """

    json_path: Path
    csv_path: Path
    plot_path: Path
    model: MixtureModel | SingleComponentModel
    single: SingleComponentModel | None
    comparison: ModelComparison | None
    config: SpectralFitConfig
    summary: dict


def read_spectrum_csv(path: str | os.PathLike) -> ObservedSpectrum:
    """Read a spectrum CSV (columns wavelength, flux, sigma[, order]).

    Raises
    ------
    InputFileError
        If the file is missing, unreadable or lacks a required column.
    """
    from astropy.table import Table

    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"spectrum file {str(path)!r} does not exist")
    try:
        table = Table.read(path, format="ascii.csv")
    except Exception as exc:  # astropy raises several types for malformed CSV
        raise InputFileError(f"{str(path)!r} is not a readable CSV table: {exc}") from exc
    missing = [c for c in _REQUIRED if c not in table.colnames]
    if missing:
        raise InputFileError(
            f"spectrum file {str(path)!r} lacks the column(s) {missing}; "
            f"expected wavelength, flux, sigma[, order], found {table.colnames}"
        )
    order = np.asarray(table["order"], dtype=np.int64) if "order" in table.colnames else None
    return ObservedSpectrum(
        wavelength=np.asarray(table["wavelength"], dtype=float),
        flux=np.asarray(table["flux"], dtype=float),
        sigma=np.asarray(table["sigma"], dtype=float),
        order=order,
    )


def _fit_record(model) -> dict:
    out = model.result_.to_dict()
    out["theta1"] = dict(zip(model.parameter_names_, model.theta1_.tolist(), strict=True))
    out["theta1_err"] = dict(zip(model.parameter_names_, model.theta1_err_.tolist(), strict=True))
    if model.theta2_ is not None:
        out["theta2"] = dict(zip(model.parameter_names_, model.theta2_.tolist(), strict=True))
        out["theta2_err"] = dict(
            zip(model.parameter_names_, model.theta2_err_.tolist(), strict=True)
        )
    out["c"] = {"value": float(model.c_), "error": float(model.c_err_)}
    out["trimmed"] = None if model.trimmed_ is None else model.trimmed_.to_dict()
    out["model"] = type(model).__name__
    out["config"] = model.config_.to_dict()
    out["fit_time_s"] = float(getattr(model, "fit_time_", float("nan")))
    return out


def fit_spectrum_file(
    spectrum_path: str | os.PathLike,
    grid,
    out_dir: str | os.PathLike,
    *,
    mixture: bool = True,
    sample: bool = False,
    n_steps: int = 1000,
    config: SpectralFitConfig | None = None,
    rng=None,
    progress: bool = False,
    trim: bool = False,
) -> SpectrumFitOutputs:
    """Fit one spectrum CSV with a grid and write JSON, CSV and PNG results.

    Parameters
    ----------
    spectrum_path : path
        Spectrum CSV (see the module docstring).
    grid : SpectralGrid or path
        The grid, or its HDF5 file.
    out_dir : path
        Output folder; files are named after the spectrum file.
    mixture : bool
        Fit the two-component model (and the single one, for the comparison);
        otherwise only the single-component model.
    sample : bool
        After the MAP, sample the posterior of the final model with emcee
        (``n_steps`` steps).
    config : SpectralFitConfig, optional
        Settings of the mixture fit (default: ``SpectralFitConfig()``); the single fit
        uses ``config.single()``. Recorded in the JSON as ``config.to_dict()``.
    trim : bool
        Fit only the wavelengths the grid supports for the RV and v sin i bounds
        (``MixtureModel.fit(..., trim=True)``) instead of failing; the pixels left out
        have an empty (NaN) model and residual in ``NAME_model.csv``, and the JSON
        records the range (``trimmed``).
    """
    from skyscene.io.spectral_grid import read_spectral_grid
    from skyscene.plotting.spectra import save_spectral_fit_plot
    from skyscene.spectra import (
        MixtureModel,
        SingleComponentModel,
        SpectralFitConfig,
        SpectralGrid,
        compare_models,
    )

    spectrum_path = Path(spectrum_path)
    out_dir = Path(out_dir)
    if not isinstance(grid, SpectralGrid):
        grid = read_spectral_grid(grid)
    spec = read_spectrum_csv(spectrum_path)
    config = SpectralFitConfig() if config is None else config
    rng = np.random.default_rng(rng)
    t0 = time.perf_counter()
    single = SingleComponentModel.from_config(grid, config.single()).fit(
        spec.wavelength, spec.flux, spec.sigma, orders=spec.order, rng=rng, trim=trim
    )
    model: MixtureModel | SingleComponentModel = single
    cmp = None
    summary: dict = {"spectrum": str(spectrum_path), "n_pixels": int(spec.wavelength.size)}
    summary["single"] = _fit_record(single)
    if mixture:
        model = MixtureModel.from_config(grid, config).fit(
            spec.wavelength, spec.flux, spec.sigma, orders=spec.order, rng=rng, trim=trim
        )
        summary["mixture"] = _fit_record(model)
        cmp = compare_models(single, model)
        summary["comparison"] = cmp.to_dict()
    if sample:
        model.sample(n_steps=n_steps, rng=rng, progress=progress)
        summary["mixture" if mixture else "single"] = _fit_record(model)
        summary["acceptance_fraction"] = model.acceptance_fraction_
    summary["total_time_s"] = time.perf_counter() - t0
    stem = spectrum_path.stem
    json_path = atomic_write_text(
        out_dir / f"{stem}_fit.json", json.dumps(summary, indent=2) + "\n"
    )
    fitted = model.fitted_pixels_
    order_in = None if spec.order is None else spec.order[fitted]
    pred = model.predict_components(spec.wavelength[fitted], orders=order_in)
    from astropy.table import Table

    def _full(values):  # model columns on every pixel, NaN where trim left a pixel out
        out = np.full(spec.wavelength.size, np.nan)
        out[fitted] = values
        return out

    good = np.isfinite(spec.sigma) & fitted
    total = _full(pred.total)
    # one implicit order 0 when the file has no order column (as the fit assumes)
    order_col = np.zeros(spec.wavelength.size, np.int64) if spec.order is None else spec.order
    table = Table(
        {
            "wavelength": spec.wavelength,
            "order": order_col,
            "flux": spec.flux,
            "sigma": spec.sigma,
            "model": total,
            "component1": _full(pred.component1),
            "component2": _full(pred.component2),
            "residual": np.where(good, (spec.flux - total) / np.where(good, spec.sigma, 1), np.nan),
        }
    )
    csv_path = out_dir / f"{stem}_model.csv"
    with atomic_path(csv_path) as tmp:
        table.write(tmp, format="ascii.csv", overwrite=True)
    title = _title(model)
    plot_path = save_spectral_fit_plot(
        out_dir / f"{stem}_fit.png",
        spec.wavelength[fitted],
        spec.flux[fitted],
        spec.sigma[fitted],
        pred,
        title=title,
    )
    log.info("fitted %s: %s", spectrum_path.name, title)
    return SpectrumFitOutputs(
        json_path=json_path,
        csv_path=csv_path,
        plot_path=plot_path,
        model=model,
        single=single if mixture else None,
        comparison=cmp,
        config=model.config_,
        summary=summary,
    )


def _title(model) -> str:
    names = model.parameter_names_
    t1 = ", ".join(f"{n}={v:.4g}" for n, v in zip(names, model.theta1_, strict=True))
    text = f"θ1: {t1}"
    if model.theta2_ is not None:
        text += (
            f" | T2={model.theta2_[0]:.0f}±{model.theta2_err_[0]:.0f} K,"
            f" c={model.c_:.3f}±{model.c_err_:.3f}"
        )
    text += f" | vsini={model.vsini_:.1f} km/s, RV={model.rv_:.2f} km/s"
    text += f", χ²={model.chi2_:.0f}/{model.n_data_}"
    return text


@dataclass(frozen=True, kw_only=True)
class SimulatedSpectraFiles:
    """What :func:`simulate_spectra_files` wrote, and the grid and truth it used.

    Attributes
    ----------
    grid_path, mixture_path, single_path, truth_path : Path
        ``grid.h5``, ``spectrum_mixture.csv``, ``spectrum_single.csv``, ``truth.json``.
    truth : dict
        The content of ``truth.json`` (per spectrum: θ₁, θ₂, c, v sin i, RV, q, …; seed).
    grid : SpectralGrid
        The toy grid written to ``grid_path``.
    """

    grid_path: Path
    mixture_path: Path
    single_path: Path
    truth_path: Path
    truth: dict
    grid: SpectralGrid

    @property
    def paths(self) -> dict[str, Path]:
        """The written files by name (grid, spectrum_mixture, spectrum_single, truth)."""
        return {
            "grid": self.grid_path,
            "spectrum_mixture": self.mixture_path,
            "spectrum_single": self.single_path,
            "truth": self.truth_path,
        }


def simulate_spectra_files(
    out_dir: str | os.PathLike,
    *,
    teff1: float = 5400.0,
    teff2: float = 3900.0,
    logg: float = 4.5,
    feh: float = 0.0,
    c: float = 0.35,
    vsini: float = 6.0,
    rv: float = 12.0,
    snr: float = 100.0,
    resolution: float = 30000.0,
    grid_kwargs: dict | None = None,
    pixels_per_order: int = 4096,
    n_orders: int = 1,
    wavelength_range: tuple[float, float] | None = None,
    seed: int = 0,
) -> SimulatedSpectraFiles:
    """Write a toy grid (``grid.h5``), a two- and a one-component spectrum CSV and ``truth.json``.

    Returns the written paths, the truth and the grid (:class:`SimulatedSpectraFiles`).
    """
    from skyscene.datasets.spectra import simulate_spectral_grid, simulate_spectrum
    from skyscene.io.spectral_grid import write_spectral_grid

    out_dir = Path(out_dir)
    rng = np.random.default_rng(seed)
    gk = {
        "logg": (4.5,),
        "feh": (0.0,),
        "wavelength_range": (5300.0, 5700.0),
        "n_wavelength": 4096,
        **(grid_kwargs or {}),
    }
    grid = simulate_spectral_grid(**gk)
    lo, hi = gk["wavelength_range"]
    if wavelength_range is None:
        # leave room for the fit's default RV (±200 km/s) and v sin i (≤ 100 km/s) bounds
        pad = 0.004 * (hi - lo) + (hi * 350.0 / 299792.458)
        wavelength_range = (lo + pad, hi - pad)
    grid_path = write_spectral_grid(grid, out_dir / "grid.h5")
    common: dict[str, Any] = dict(
        vsini=vsini,
        rv=rv,
        snr=snr,
        resolution=resolution,
        wavelength_range=wavelength_range,
        n_orders=n_orders,
        pixels_per_order=pixels_per_order,
    )
    mix = simulate_spectrum(
        theta1=(teff1, logg, feh), theta2=(teff2, logg, feh), c=c, rng=rng, **common
    )
    one = simulate_spectrum(theta1=(teff1, logg, feh), rng=rng, **common)
    paths = {}
    for name, sim in (("spectrum_mixture", mix), ("spectrum_single", one)):
        path = out_dir / f"{name}.csv"
        with atomic_path(path) as tmp:
            sim.to_table().write(tmp, format="ascii.csv", overwrite=True)
        paths[name] = path
    truth = {"spectrum_mixture": mix.truth, "spectrum_single": one.truth, "seed": seed}
    truth_path = atomic_write_text(out_dir / "truth.json", json.dumps(truth, indent=2) + "\n")
    return SimulatedSpectraFiles(
        grid_path=grid_path,
        mixture_path=paths["spectrum_mixture"],
        single_path=paths["spectrum_single"],
        truth_path=truth_path,
        truth=truth,
        grid=grid,
    )


def demo_stage(out_dir, *, progress: bool = True) -> str:
    """``skyscene demo`` stage: simulate a spotted star, fit it, write the plot and results."""
    from skyscene.spectra import SpectralFitConfig

    out_dir = Path(out_dir) / "spectra"
    sim = simulate_spectra_files(out_dir, seed=2024)
    truth = sim.truth["spectrum_mixture"]
    res = fit_spectrum_file(
        sim.mixture_path,
        sim.grid,
        out_dir,
        mixture=True,
        config=SpectralFitConfig(
            resolution=truth["resolution"], rv_bounds=(-100.0, 100.0), vsini_bounds=(0.0, 50.0)
        ),
        rng=0,
        progress=progress,
    )
    m = res.model
    cmp = res.summary["comparison"]
    return (
        "spectra: two-component (star + spots) fit of a simulated spectrum\n"
        f"  fitted  T1={m.theta1_[0]:.0f}±{m.theta1_err_[0]:.0f} K, "
        f"T2={m.theta2_[0]:.0f}±{m.theta2_err_[0]:.0f} K, "
        f"c={m.c_:.3f}±{m.c_err_:.3f}, vsini={m.vsini_:.1f} km/s, RV={m.rv_:.2f} km/s\n"
        f"  truth   T1={truth['theta1'][0]:.0f} K, T2={truth['theta2'][0]:.0f} K, "
        f"c={truth['c']:.3f}, "
        f"vsini={truth['vsini']:.1f} km/s, RV={truth['rv']:.2f} km/s\n"
        f"  preferred model: {cmp['preferred']} (ΔBIC = {cmp['delta_bic']:.1f})\n"
        f"  results: {res.json_path}\n  plot:    {res.plot_path}"
    )
