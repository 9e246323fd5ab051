"""Seeded transient-search data: many science/reference pairs with injections,
artefacts and a truth table (issue 12, deliverable 6; training sets of issue 13).

:func:`simulate_search` returns the pairs in memory (:class:`SearchSimulation`);
:func:`write_search` streams them to a folder (``<pair_id>/science.fits``,
``<pair_id>/reference.fits``, ``pairs.csv``, ``truth.csv``/``.ecsv``, ``truth.json``).
Each pair draws its observing conditions (:class:`SearchConditions`) from the ranges
of a frozen :class:`SearchSimConfig`, and is assembled from the scene pieces of
:mod:`skyscene.datasets.pairs` (stars, Sérsic galaxies by GalSim, sky, noise,
transient S/N, saturated stars, cosmic rays, WCS) and the artefacts of
:mod:`skyscene.datasets._artefacts`.

Truth vocabulary (``kind``): :data:`KINDS`; the astrophysical ones (:data:`REAL_KINDS`,
``real = True``) are ``transient``, ``variable`` and ``fading``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from skyscene._validation import check_choice, check_int, check_positive, check_range
from skyscene.errors import ParameterError
from skyscene.io import Exposure
from skyscene.psf import GaussianPSF, MoffatPSF

__all__ = [
    "KINDS",
    "MATCH_EXTENT",
    "REAL_KINDS",
    "TRUTH_COLUMNS",
    "SearchConditions",
    "SearchFiles",
    "SearchPair",
    "SearchSimConfig",
    "SearchSimulation",
    "draw_conditions",
    "iter_search_pairs",
    "match_truth",
    "simulate_search",
    "simulate_search_pair",
    "write_search",
]

log = logging.getLogger(__name__)

#: Every ``kind`` of the truth table.
KINDS = (
    "transient",
    "fading",
    "variable",
    "mover",
    "cosmic_ray",
    "hot_pixel",
    "bad_column",
    "trail",
    "saturated_star",
    "dipole",
    "psf_residual",
)
#: The astrophysical changes (``real = True``); the rest are bogus for real/bogus.
REAL_KINDS = ("transient", "variable", "fading")

#: Truth-table columns and their meaning (also in ``truth.json`` and the ECSV files).
TRUTH_COLUMNS = {
    "pair_id": "pair the row belongs to",
    "index": "row number within the pair",
    "kind": "what was injected (KINDS)",
    "real": "astrophysical change: transient, variable or fading",
    "image": "where it is: science, reference or both",
    "x": "science pixel column (0-based; reference-image artefacts mapped to the science)",
    "y": "science pixel row (0-based)",
    "flux": "science counts (fading: reference counts; see docs/search_simulator.md)",
    "flux_ref": "reference counts of the source in the reference image (0: absent)",
    "delta_flux": "science-unit change science - flux_ratio * reference (signed)",
    "snr": "theoretical ZOGY S/N of the change, signed (NaN where not defined)",
    "on_host": "placed on a galaxy (within one half-light radius)",
    "on_core": "placed on the core of a bright galaxy (within 0.5 px)",
    "length": "trail / bleed length, dipole shift, PSF-residual FWHM, pixels (NaN: none)",
    "angle": "direction of that length, radians from the x axis (NaN: none)",
}
_DTYPES: dict[str, Any] = {
    "pair_id": "U32",
    "index": np.int64,
    "kind": "U14",
    "real": bool,
    "image": "U9",
    "on_host": bool,
    "on_core": bool,
}

_REFERENCE_AREA = 2048 * 2048


def _range(name: str, value, *, low=None, high=None, positive=False) -> tuple[float, float]:
    try:
        lo, hi = (float(value[0]), float(value[1]))
        if len(value) != 2:
            raise TypeError
    except (TypeError, ValueError, IndexError):
        raise ParameterError(
            f"{name} must be a (low, high) pair of numbers, got {value!r}", name=name, value=value
        ) from None
    for v in (lo, hi):
        if positive:
            check_positive(name, v)
        check_range(name, v, low=low, high=high)
    if hi < lo:
        raise ParameterError(f"{name} must have low <= high, got {value!r}", name=name, value=value)
    return lo, hi


@dataclass(frozen=True, kw_only=True)
class SearchSimConfig:
    """The ranges and numbers of a simulated transient search (validated, frozen).

    Ranges are ``(low, high)`` pairs drawn once per pair (uniform; ``*_sky``,
    ``flux_ratio`` and the S/N ranges log-uniform); ``low == high`` fixes a value.
    Numbers of injections and artefacts are *per 2048 × 2048 pair*, scaled with the
    image area (rounded, at least 1 when not 0).

    Attributes
    ----------
    shape : (ny, nx)
        Image shape of both images, pixels (at least 64 × 64).
    null : bool
        A null set: the same conditions and static scene (same PSF mismatch, same
        stars and galaxies for the same seed), no injections, no artefacts.
    science_fwhm, reference_fwhm : (float, float)
        Seeing, pixels.
    psf_families : tuple of {"gaussian", "moffat"}
        PSF family of each image, drawn independently.
    moffat_beta : (float, float)
        Moffat index.
    science_axis_ratio, reference_axis_ratio : (float, float)
        PSF minor/major axis ratio (position angle uniform).
    science_sky, reference_sky : (float, float)
        Sky, counts per pixel at the centre (log-uniform).
    science_gain, reference_gain : (float, float)
        Electrons per count (the reference, a deep stack, has a high effective gain).
    read_noise : (float, float)
        Counts.
    flux_ratio : (float, float)
        Science counts per reference count of a static source (transparency and
        exposure; log-uniform).
    sky_gradient : (float, float)
        Fractional linear sky change across the field.
    saturation : (float, float)
        Saturation level, counts (``SATURATE``).
    max_offset : float
        Largest science − reference offset per axis, pixels (encoded in the WCS).
    star_density, galaxy_density : (float, float)
        Static sources per pixel.
    bands : tuple of str
        Filter, drawn per pair.
    pixel_scale : (float, float)
        Arcsec per pixel of both WCSs (seeing, sizes and offsets stay in pixels).
    n_bright_galaxies : int
        Extra bright galaxies (flux 10^2.3–10^3.3 faint limits, Sérsic n 1–4): hosts of
        the core transients and sources of galaxy-core residuals.
    n_transients : int
        Point sources in the science image only.
    transient_snr : (float, float)
        Their theoretical ZOGY S/N (log-uniform).
    host_fraction : float
        Fraction of transients on a galaxy (within one half-light radius).
    core_fraction : float
        Fraction of transients on the core (≤ 0.5 px) of a bright galaxy.
    n_fading, fading_snr : int, (float, float)
        Sources present in the reference, fainter (0–50 % left) or gone in the science.
    n_variables, variable_snr : int, (float, float)
        Stars in both images whose flux changes (brighter or fainter), S/N of the change.
    n_movers, mover_snr, mover_trail : int, (float, float), (float, float)
        Asteroids in the science image only; trail length in pixels (log-uniform;
        shorter than 1.5 px: a point source).
    n_cosmic_rays, n_cosmic_rays_reference : int
        Cosmic rays in the science / reference image.
    n_hot_pixels, n_bad_columns, n_trails : int
        Hot pixels, bad column segments and satellite trails in the science image.
    n_saturated_stars : int
        Static stars that saturate the science image, with bleed trails.
    n_dipoles, dipole_shift : int, (float, float)
        Stars displaced in the science by a small shift (pixels): local misalignments.
    n_psf_residuals, psf_residual_broadening : int, (float, float)
        Bright (unsaturated) stars whose science PSF is broader by this factor than the
        science PSF of the rest of the image.
    """

    shape: tuple[int, int] = (2048, 2048)
    null: bool = False
    science_fwhm: tuple[float, float] = (2.5, 6.0)
    reference_fwhm: tuple[float, float] = (2.0, 4.0)
    psf_families: tuple[str, ...] = ("gaussian", "moffat")
    moffat_beta: tuple[float, float] = (2.5, 5.0)
    science_axis_ratio: tuple[float, float] = (0.75, 1.0)
    reference_axis_ratio: tuple[float, float] = (0.9, 1.0)
    science_sky: tuple[float, float] = (200.0, 3000.0)
    reference_sky: tuple[float, float] = (200.0, 1500.0)
    science_gain: tuple[float, float] = (1.0, 4.0)
    reference_gain: tuple[float, float] = (4.0, 10.0)
    read_noise: tuple[float, float] = (3.0, 8.0)
    flux_ratio: tuple[float, float] = (0.5, 1.5)
    sky_gradient: tuple[float, float] = (0.0, 0.1)
    saturation: tuple[float, float] = (30000.0, 65000.0)
    max_offset: float = 3.0
    star_density: tuple[float, float] = (2e-4, 6e-4)
    galaxy_density: tuple[float, float] = (1e-5, 4e-5)
    bands: tuple[str, ...] = ("g", "r", "i")
    pixel_scale: tuple[float, float] = (0.26, 0.26)
    n_bright_galaxies: int = 20
    n_transients: int = 60
    transient_snr: tuple[float, float] = (3.0, 100.0)
    host_fraction: float = 0.4
    core_fraction: float = 0.1
    n_fading: int = 10
    fading_snr: tuple[float, float] = (5.0, 100.0)
    n_variables: int = 10
    variable_snr: tuple[float, float] = (5.0, 100.0)
    n_movers: int = 6
    mover_snr: tuple[float, float] = (5.0, 100.0)
    mover_trail: tuple[float, float] = (0.3, 30.0)
    n_cosmic_rays: int = 150
    n_cosmic_rays_reference: int = 20
    n_hot_pixels: int = 40
    n_bad_columns: int = 2
    n_trails: int = 1
    n_saturated_stars: int = 8
    n_dipoles: int = 10
    dipole_shift: tuple[float, float] = (0.2, 1.0)
    n_psf_residuals: int = 10
    psf_residual_broadening: tuple[float, float] = (1.08, 1.3)

    def __post_init__(self) -> None:
        try:
            ny, nx = int(self.shape[0]), int(self.shape[1])
        except (TypeError, ValueError, IndexError):
            raise ParameterError(
                f"SearchSimConfig.shape must be (ny, nx), got {self.shape!r}",
                name="SearchSimConfig.shape",
                value=self.shape,
            ) from None
        if ny < 64 or nx < 64:
            raise ParameterError(
                f"SearchSimConfig.shape must be at least 64 x 64, got {self.shape!r}",
                name="SearchSimConfig.shape",
                value=self.shape,
            )
        object.__setattr__(self, "shape", (ny, nx))
        if not isinstance(self.null, bool):
            raise ParameterError(
                f"SearchSimConfig.null must be True or False, got {self.null!r}",
                name="SearchSimConfig.null",
                value=self.null,
            )
        bounded = {
            "science_axis_ratio": (0.1, 1.0),
            "reference_axis_ratio": (0.1, 1.0),
            "sky_gradient": (0.0, 1.0),
            "dipole_shift": (0.0, 5.0),
            "psf_residual_broadening": (1.0, 3.0),
        }
        positive = (
            "science_fwhm",
            "reference_fwhm",
            "moffat_beta",
            "science_sky",
            "reference_sky",
            "science_gain",
            "reference_gain",
            "flux_ratio",
            "saturation",
            "transient_snr",
            "fading_snr",
            "variable_snr",
            "mover_snr",
            "mover_trail",
            "pixel_scale",
        )
        for f in dataclasses.fields(self):
            name, value = f.name, getattr(self, f.name)
            where = f"SearchSimConfig.{name}"
            if name in bounded:
                lo, hi = bounded[name]
                object.__setattr__(self, name, _range(where, value, low=lo, high=hi))
            elif name in positive:
                object.__setattr__(self, name, _range(where, value, positive=True))
            elif name in ("read_noise", "star_density", "galaxy_density"):
                object.__setattr__(self, name, _range(where, value, low=0.0))
            elif name.startswith("n_"):
                check_int(where, value, low=0)
        if self.moffat_beta[0] <= 1.0:
            raise ParameterError(
                f"SearchSimConfig.moffat_beta must be > 1, got {self.moffat_beta!r}",
                name="SearchSimConfig.moffat_beta",
                value=self.moffat_beta,
            )
        check_positive("SearchSimConfig.max_offset", self.max_offset, allow_zero=True)
        for name in ("host_fraction", "core_fraction"):
            check_range(f"SearchSimConfig.{name}", getattr(self, name), low=0.0, high=1.0)
        if self.host_fraction + self.core_fraction > 1.0:
            raise ParameterError(
                "SearchSimConfig.host_fraction + core_fraction must be <= 1, got "
                f"{self.host_fraction} + {self.core_fraction}",
                name="SearchSimConfig.core_fraction",
                value=self.core_fraction,
            )
        families = tuple(self.psf_families)
        if not families:
            raise ParameterError(
                "SearchSimConfig.psf_families must name at least one family",
                name="SearchSimConfig.psf_families",
                value=self.psf_families,
            )
        for family in families:
            check_choice("SearchSimConfig.psf_families", family, ("gaussian", "moffat"))
        object.__setattr__(self, "psf_families", families)
        bands = tuple(self.bands)
        if not bands or not all(isinstance(b, str) and b for b in bands):
            raise ParameterError(
                f"SearchSimConfig.bands must be filter names, got {self.bands!r}",
                name="SearchSimConfig.bands",
                value=self.bands,
            )
        object.__setattr__(self, "bands", bands)

    def count(self, name: str) -> int:
        """The number ``n_<name>`` for this image size (0 for every kind if ``null``)."""
        n = int(getattr(self, f"n_{name}"))
        if n == 0 or self.null:
            return 0
        return max(1, round(n * self.shape[0] * self.shape[1] / _REFERENCE_AREA))

    def to_dict(self) -> dict:
        """The configuration as plain JSON values (``truth.json``)."""
        return {
            k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
        }


@dataclass(frozen=True, kw_only=True)
class SearchConditions:
    """The observing conditions of one pair, drawn by :func:`draw_conditions`.

    FWHMs in pixels, sky in counts per pixel, gains in e-/count, times in MJD (UTC,
    mid-exposure); ``*_theta`` the PSF position angle in radians.
    """

    science_psf: str
    science_fwhm: float
    science_beta: float
    science_axis_ratio: float
    science_theta: float
    reference_psf: str
    reference_fwhm: float
    reference_beta: float
    reference_axis_ratio: float
    reference_theta: float
    science_sky: float
    reference_sky: float
    science_gain: float
    reference_gain: float
    read_noise: float
    flux_ratio: float
    sky_gradient: float
    saturation: float
    star_density: float
    galaxy_density: float
    band: str
    science_mjd: float
    reference_mjd: float
    pixel_scale: float

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _loguniform(rng: np.random.Generator, lo: float, hi: float, size=None):
    return np.exp(rng.uniform(math.log(lo), math.log(hi), size))


def draw_conditions(config: SearchSimConfig, rng: np.random.Generator) -> SearchConditions:
    """Draw one pair's conditions from ``config``'s ranges (a fixed number of draws:
    science PSF family, FWHM, β, axis ratio, angle; the same for the reference; skies,
    gains, read noise, flux ratio, sky gradient, saturation, densities, band, times,
    pixel scale)."""

    def uniform(pair):
        return float(rng.uniform(pair[0], pair[1]))

    def loguniform(pair):
        return float(_loguniform(rng, pair[0], pair[1]))

    values: dict[str, Any] = {}
    for image in ("science", "reference"):
        values[f"{image}_psf"] = str(
            config.psf_families[int(rng.integers(len(config.psf_families)))]
        )
        values[f"{image}_fwhm"] = uniform(getattr(config, f"{image}_fwhm"))
        values[f"{image}_beta"] = uniform(config.moffat_beta)
        values[f"{image}_axis_ratio"] = uniform(getattr(config, f"{image}_axis_ratio"))
        values[f"{image}_theta"] = float(rng.uniform(0.0, math.pi))
    values["science_sky"] = loguniform(config.science_sky)
    values["reference_sky"] = loguniform(config.reference_sky)
    values["science_gain"] = uniform(config.science_gain)
    values["reference_gain"] = uniform(config.reference_gain)
    values["read_noise"] = uniform(config.read_noise)
    values["flux_ratio"] = loguniform(config.flux_ratio)
    values["sky_gradient"] = uniform(config.sky_gradient)
    values["saturation"] = float(round(uniform(config.saturation)))  # exact in float32 files
    values["star_density"] = uniform(config.star_density)
    values["galaxy_density"] = uniform(config.galaxy_density)
    values["band"] = str(config.bands[int(rng.integers(len(config.bands)))])
    values["science_mjd"] = float(rng.uniform(60000.0, 60400.0))
    values["reference_mjd"] = values["science_mjd"] - float(rng.uniform(100.0, 1000.0))
    values["pixel_scale"] = uniform(config.pixel_scale)
    return SearchConditions(**values)


def _psf(family: str, fwhm: float, beta: float, axis_ratio: float, theta: float):
    """A skyscene Gaussian or Moffat PSF of this FWHM (geometric mean of the axes)."""
    if family == "moffat":
        return MoffatPSF.from_fwhm(fwhm, beta, axis_ratio=axis_ratio, theta=theta)
    sigma = fwhm / 2.3548200450309493
    q = math.sqrt(axis_ratio)
    return GaussianPSF(sigma / q, sigma * q, theta)


def _sampled(psf):
    """The PSF sampled 3 times per pixel on 63 pixels (:class:`~skyscene.psf.PixelizedPSF`):
    the true PSF of the point sources (rendering it is ~15 times faster than the
    analytic quadrature), written as the PSF HDU."""
    return psf.to_pixelized(size=63, oversampling=3)


def _pair_config(config: SearchSimConfig, cond: SearchConditions, n_transients: int):
    """The :class:`~skyscene.datasets.pairs.PairConfig` the scene pieces read."""
    from skyscene.datasets.pairs import PairConfig

    return PairConfig(
        shape=config.shape,
        star_density=cond.star_density,
        galaxy_density=cond.galaxy_density,
        n_transients=n_transients,
        transient_snr=1.0,  # drawn here (log-uniform), not by draw_transients
        transient_on_galaxy_fraction=config.host_fraction,
        science_psf=cond.science_psf,
        science_fwhm=cond.science_fwhm,
        reference_psf=cond.reference_psf,
        reference_fwhm=cond.reference_fwhm,
        science_sky=cond.science_sky,
        reference_sky=cond.reference_sky,
        science_gain=cond.science_gain,
        reference_gain=cond.reference_gain,
        read_noise=cond.read_noise,
        flux_ratio=cond.flux_ratio,
        sky_gradient=cond.sky_gradient,
        max_offset=config.max_offset,
        saturation=cond.saturation,
        n_saturated_stars=config.count("saturated_stars"),
    )


@dataclass(frozen=True, kw_only=True, eq=False)
class SearchPair:
    """One simulated search pair.

    Attributes
    ----------
    pair_id : str
    science, reference : Exposure
        Counts; ``variance`` the background-only variance; saturated pixels (at or
        above ``meta['saturate']``, also the ``SATURATE`` card of ``meta['header']``)
        masked; ``psf`` the true PSF of the image (the PSF-residual stars excepted).
    truth : astropy.table.Table
        Every injection and artefact (:data:`TRUTH_COLUMNS`).
    conditions : SearchConditions
    offset : (dx, dy)
        Science pixel = reference pixel + offset (also in the WCSs).
    flux_ratio : float
        Science counts per reference count.
    stars, galaxies : astropy.table.Table
        The static scene in reference pixels and counts (``galaxies['bright']`` marks
        the extra bright ones).
    seed : int
        The seed of this pair: ``simulate_search_pair(config, rng=seed)`` redraws it.
    """

    pair_id: str
    science: Exposure
    reference: Exposure
    truth: Any
    conditions: SearchConditions
    offset: tuple[float, float]
    flux_ratio: float
    stars: Any
    galaxies: Any
    seed: int | None = None


def _truth_table(parts: list[dict], pair_id: str):
    """One table from row blocks (dicts of equal-length arrays; missing columns filled)."""
    from astropy.table import Table

    columns: dict[str, list] = {name: [] for name in TRUTH_COLUMNS}
    defaults = {
        "real": False,
        "image": "science",
        "flux_ref": 0.0,
        "delta_flux": np.nan,
        "snr": np.nan,
        "on_host": False,
        "on_core": False,
        "length": np.nan,
        "angle": np.nan,
    }
    for part in parts:
        n = len(part["kind"])
        if n == 0:
            continue
        for name in TRUTH_COLUMNS:
            if name in ("pair_id", "index"):
                continue
            value = part.get(name, defaults.get(name))
            columns[name].append(np.broadcast_to(np.asarray(value), (n,)))
    total = sum(len(p["kind"]) for p in parts)
    data = {}
    for name in TRUTH_COLUMNS:
        dtype = _DTYPES.get(name, float)
        if name == "pair_id":
            data[name] = np.full(total, pair_id, dtype=dtype)
        elif name == "index":
            data[name] = np.arange(total, dtype=dtype)
        else:
            data[name] = (
                np.concatenate(columns[name]).astype(dtype) if columns[name] else np.zeros(0, dtype)
            )
    data["real"] = np.isin(data["kind"], REAL_KINDS)
    table = Table(data)
    for name, text in TRUTH_COLUMNS.items():
        table[name].description = text
    return table


def _points(xy, flux):
    from astropy.table import Table

    xy = np.asarray(xy, float).reshape(-1, 2)
    return Table({"x": xy[:, 0], "y": xy[:, 1], "flux": np.asarray(flux, float)})


def _render_points(shape, psf, xy, flux) -> np.ndarray:
    """Noiseless point sources through ``psf`` (:func:`~skyscene.datasets.pairs.render_static`)."""
    from astropy.table import Table

    from skyscene.datasets.pairs import render_static

    empty = Table({k: np.zeros(0) for k in ("x", "y", "flux", "sersic_n", "hlr", "q", "theta")})
    return render_static(shape, psf, _points(xy, flux), empty, flux_scale=1.0, offset=(0.0, 0.0))


def _stamp(padded: np.ndarray, pad: int, x: float, y: float, m: int) -> np.ndarray:
    ix, iy = math.floor(x + 0.5), math.floor(y + 0.5)
    h = m // 2
    return padded[iy + pad - h : iy + pad + h + 1, ix + pad - h : ix + pad + h + 1]


def _change_snr(xy, delta_ref, *, psfs, sources, sigmas, gains, flux_ratio, offset):
    """Exact theoretical ZOGY S/N of a change of ``delta_ref`` reference counts at science
    positions ``xy``, with the noise of every source around it (the changed source
    included) in both images (Zackay et al. 2016 eqs. 25–27, small stamps)."""
    from skyscene.datasets.pairs import theoretical_zogy_snr

    m, pad = 63, 40
    ox, oy = offset
    psf_new, psf_ref = psfs
    stamp_new, stamp_ref = psf_new.render((m, m)), psf_ref.render((m, m))
    padded = [np.pad(s, pad) for s in sources]
    out = np.zeros(len(xy))
    for k, (x, y) in enumerate(np.asarray(xy, float).reshape(-1, 2)):
        ix, iy = math.floor(x + 0.5), math.floor(y + 0.5)
        terms = theoretical_zogy_snr(
            stamp_new,
            stamp_ref,
            sigma_new=float(sigmas[0][iy, ix]),
            sigma_ref=float(sigmas[1][iy, ix]),
            flux_ratio=flux_ratio,
            source_var_new=np.maximum(_stamp(padded[0], pad, x, y, m), 0) / gains[0],
            source_var_ref=np.maximum(_stamp(padded[1], pad, x - ox, y - oy, m), 0) / gains[1],
        )
        out[k] = delta_ref[k] * terms.response / math.sqrt(terms.variance)
    return out


def _bright_galaxies(pc, n: int, rng: np.random.Generator, edge: int = 40):
    """``n`` bright Sérsic galaxies (the columns of :func:`draw_galaxies`), reference px."""
    from astropy.table import Table

    ny, nx = pc.shape
    edge = min(edge, min(nx, ny) // 4)
    return Table(
        {
            "x": rng.uniform(edge, nx - 1 - edge, n),
            "y": rng.uniform(edge, ny - 1 - edge, n),
            "flux": pc.faint_limit * 10 ** rng.uniform(2.3, 3.3, n),
            "sersic_n": rng.choice([1.0, 2.0, 3.0, 4.0], n),
            "hlr": rng.uniform(2.0, 8.0, n),
            "q": rng.uniform(0.5, 1.0, n),
            "theta": rng.uniform(0, np.pi, n),
        }
    )


def _uniform_xy(rng: np.random.Generator, n: int, shape, edge: float = 30.0) -> np.ndarray:
    ny, nx = shape
    return np.column_stack(
        [rng.uniform(edge, nx - 1 - edge, n), rng.uniform(edge, ny - 1 - edge, n)]
    )


def _peak_fraction(psf) -> float:
    return float(psf.render((31, 31)).max())


def simulate_search_pair(
    config: SearchSimConfig | None = None, *, rng=0, pair_id: str = "pair0000"
) -> SearchPair:
    """Simulate one search pair (see :func:`simulate_search` for the contents).

    Draw order (from ``rng``): conditions, offset, stars, galaxies, bright galaxies,
    the two sky maps, then the injections (transients, fading, variables, movers,
    dipoles, PSF residuals), the noise of both images, then the artefacts (saturated
    stars and their bleed trails, satellite trails, bad columns, hot pixels, cosmic
    rays). The first six do not depend on ``null``: a null pair of the same seed has
    the same conditions and static scene.
    """
    from astropy.io import fits
    from astropy.table import vstack
    from astropy.time import Time

    from skyscene.datasets import pairs
    from skyscene.datasets._artefacts import (
        add_bad_columns,
        add_bleed_trails,
        add_hot_pixels,
        add_satellite_trails,
    )

    config = SearchSimConfig() if config is None else config
    seed = int(rng) if isinstance(rng, int | np.integer) else None
    rng = np.random.default_rng(rng)
    shape = config.shape
    cond = draw_conditions(config, rng)
    n_transients = config.count("transients")
    pc = _pair_config(config, cond, n_transients)
    offset = pairs.draw_offset(pc, rng)
    ox, oy = offset
    fr = cond.flux_ratio
    psf_new = _psf(
        cond.science_psf,
        cond.science_fwhm,
        cond.science_beta,
        cond.science_axis_ratio,
        cond.science_theta,
    )
    psf_ref = _psf(
        cond.reference_psf,
        cond.reference_fwhm,
        cond.reference_beta,
        cond.reference_axis_ratio,
        cond.reference_theta,
    )
    stars = pairs.draw_stars(pc, rng)
    galaxies = pairs.draw_galaxies(pc, rng)
    bright = _bright_galaxies(
        pc,
        config.n_bright_galaxies
        and max(1, round(config.n_bright_galaxies * pc.area / _REFERENCE_AREA)),
        rng,
    )
    galaxies["bright"] = np.zeros(len(galaxies), bool)
    bright["bright"] = np.ones(len(bright), bool)
    galaxies = vstack([galaxies, bright])
    sky_new = pairs.sky_map(pc, cond.science_sky, rng)
    sky_ref = pairs.sky_map(pc, cond.reference_sky, rng)
    sigma_new = np.sqrt(sky_new / cond.science_gain + cond.read_noise**2)
    sigma_ref = np.sqrt(sky_ref / cond.reference_gain + cond.read_noise**2)
    # galaxies through the analytic PSFs (GalSim), point sources through their samples
    gal_psf_new, gal_psf_ref = psf_new, psf_ref
    psf_new, psf_ref = _sampled(psf_new), _sampled(psf_ref)
    no_stars = stars[:0]
    ref_sources = pairs.render_static(
        shape, psf_ref, stars, galaxies[:0], flux_scale=1.0, offset=(0, 0)
    )
    ref_sources += pairs.render_static(
        shape, gal_psf_ref, no_stars, galaxies, flux_scale=1.0, offset=(0, 0)
    )
    new_sources = pairs.render_static(
        shape, psf_new, stars, galaxies[:0], flux_scale=fr, offset=offset
    )
    new_sources += pairs.render_static(
        shape, gal_psf_new, no_stars, galaxies, flux_scale=fr, offset=offset
    )

    parts: list[dict] = []
    # ---------------------------------------------------------------- injections
    # transients: positions (on hosts by draw_transients), some moved onto bright cores
    t_xy, on_host, _ = pairs.draw_transients(pc, rng, galaxies, offset)
    on_core = np.zeros(n_transients, bool)
    # one core transient per bright galaxy at most
    n_core = min(round(config.core_fraction * n_transients), len(bright))
    free = np.flatnonzero(~on_host)[::-1][:n_core]
    if len(free):
        hosts = rng.choice(len(bright), len(free), replace=False)
        t_xy[free] = np.column_stack(
            [bright["x"][hosts] + ox, bright["y"][hosts] + oy]
        ) + rng.uniform(-0.5, 0.5, (len(free), 2))
        on_host[free] = on_core[free] = True
    t_snr_target = _loguniform(rng, *config.transient_snr, n_transients)
    n_fading, n_var, n_mov = (config.count(k) for k in ("fading", "variables", "movers"))
    f_xy = _uniform_xy(rng, n_fading, shape)
    f_snr_target = _loguniform(rng, *config.fading_snr, n_fading)
    f_left = np.where(rng.random(n_fading) < 0.3, 0.0, rng.uniform(0.0, 0.5, n_fading))
    v_xy = _uniform_xy(rng, n_var, shape)
    v_snr_target = _loguniform(rng, *config.variable_snr, n_var)
    v_sign = np.where(rng.random(n_var) < 0.5, -1.0, 1.0)
    v_base = rng.uniform(1.5, 20.0, n_var)  # star flux in units of the change
    m_xy = _uniform_xy(rng, n_mov, shape)
    m_snr_target = _loguniform(rng, *config.mover_snr, n_mov)
    m_length = _loguniform(rng, *config.mover_trail, n_mov)
    m_angle = rng.uniform(0, np.pi, n_mov)
    # one call for the fluxes (reference counts) of the changes at their target S/N
    all_xy = np.concatenate([t_xy, f_xy, v_xy, m_xy]).reshape(-1, 2)
    all_snr = np.concatenate([t_snr_target, f_snr_target, v_snr_target, m_snr_target])
    alpha, alpha_snr = pairs.transient_fluxes(
        pc,
        all_xy,
        all_snr,
        psfs=(psf_new, psf_ref),
        sources=(new_sources, ref_sources),
        sigmas=(sigma_new, sigma_ref),
        offset=offset,
    )
    cuts = np.cumsum([n_transients, n_fading, n_var])
    t_alpha, f_alpha, v_alpha, m_alpha = np.split(alpha, cuts)
    t_snr, _, _, m_snr = np.split(alpha_snr, cuts)
    f_ref = f_alpha / (1.0 - f_left)
    v_ref = v_alpha * v_base
    v_new = v_ref + v_sign * v_alpha  # reference units, science image
    # movers: points along the trail (a point below 1.5 px), brighter when trailed
    m_flux = m_alpha * fr * np.maximum(1.0, m_length / cond.science_fwhm)
    mover_pts, mover_flux = [], []
    for k in range(n_mov):
        steps = 1 if m_length[k] < 1.5 else math.ceil(2 * m_length[k]) + 1
        t = np.linspace(-0.5, 0.5, steps) if steps > 1 else np.zeros(1)
        d = np.column_stack([np.cos(m_angle[k]), np.sin(m_angle[k])]) * m_length[k]
        mover_pts.append(m_xy[k] + t[:, None] * d)
        mover_flux.append(np.full(steps, m_flux[k] / steps))
    # dipoles: stars displaced in the science; PSF residuals: broader science PSF
    n_dip, n_res = config.count("dipoles"), config.count("psf_residuals")
    peak_new, peak_ref = _peak_fraction(psf_new), _peak_fraction(psf_ref)
    sat = cond.saturation

    def star_flux(n):  # science peaks 5–60 % of saturation, also unsaturated in the reference
        flux = sat / peak_new * rng.uniform(0.05, 0.6, n)
        return np.minimum(flux, 0.6 * sat / peak_ref * fr)

    d_xy = _uniform_xy(rng, n_dip, shape)
    d_flux = star_flux(n_dip)
    d_shift = rng.uniform(*config.dipole_shift, n_dip)
    d_angle = rng.uniform(0, 2 * np.pi, n_dip)
    d_new_xy = d_xy + np.column_stack([np.cos(d_angle), np.sin(d_angle)]) * d_shift[:, None]
    r_xy = _uniform_xy(rng, n_res, shape)
    r_flux = star_flux(n_res)
    r_broad = rng.uniform(*config.psf_residual_broadening)
    psf_broad = _sampled(
        _psf(
            cond.science_psf,
            cond.science_fwhm * r_broad,
            cond.science_beta,
            cond.science_axis_ratio * rng.uniform(0.85, 1.0),
            cond.science_theta,
        )
    )
    shift = np.array([ox, oy])
    ref_xy = np.concatenate([f_xy, v_xy, d_xy, r_xy]).reshape(-1, 2) - shift
    ref_flux = np.concatenate([f_ref, v_ref, d_flux / fr, r_flux / fr])
    if len(ref_xy):
        ref_sources += _render_points(shape, psf_ref, ref_xy, ref_flux)
    new_xy = np.concatenate([t_xy, f_xy, v_xy, d_new_xy, *mover_pts]).reshape(-1, 2)
    new_flux = np.concatenate([t_alpha * fr, f_ref * f_left * fr, v_new * fr, d_flux, *mover_flux])
    if len(new_xy):
        new_sources += _render_points(shape, psf_new, new_xy, new_flux)
    if n_res:
        new_sources += _render_points(shape, psf_broad, r_xy, r_flux)
    change_kw = {
        "psfs": (psf_new, psf_ref),
        "sources": (new_sources, ref_sources),
        "sigmas": (sigma_new, sigma_ref),
        "gains": (cond.science_gain, cond.reference_gain),
        "flux_ratio": fr,
        "offset": offset,
    }
    f_snr = _change_snr(f_xy, f_ref * (f_left - 1.0), **change_kw)
    v_snr = _change_snr(v_xy, v_new - v_ref, **change_kw)
    parts += [
        {
            "kind": np.full(n_transients, "transient"),
            "x": t_xy[:, 0],
            "y": t_xy[:, 1],
            "flux": t_alpha * fr,
            "delta_flux": t_alpha * fr,
            "snr": t_snr,
            "on_host": on_host,
            "on_core": on_core,
        },
        {
            "kind": np.full(n_fading, "fading"),
            "image": "both",
            "x": f_xy[:, 0],
            "y": f_xy[:, 1],
            "flux": f_ref,
            "flux_ref": f_ref,
            "delta_flux": f_ref * (f_left - 1.0) * fr,
            "snr": f_snr,
        },
        {
            "kind": np.full(n_var, "variable"),
            "image": "both",
            "x": v_xy[:, 0],
            "y": v_xy[:, 1],
            "flux": v_new * fr,
            "flux_ref": v_ref,
            "delta_flux": (v_new - v_ref) * fr,
            "snr": v_snr,
        },
        {
            "kind": np.full(n_mov, "mover"),
            "x": m_xy[:, 0],
            "y": m_xy[:, 1],
            "flux": m_flux,
            "delta_flux": m_flux,
            "snr": np.where(m_length < 1.5, m_snr, np.nan),
            "length": m_length,
            "angle": m_angle,
        },
        {
            "kind": np.full(n_dip, "dipole"),
            "image": "both",
            "x": d_xy[:, 0],
            "y": d_xy[:, 1],
            "flux": d_flux,
            "flux_ref": d_flux / fr,
            "delta_flux": 0.0,
            "length": d_shift,
            "angle": d_angle,
        },
        {
            "kind": np.full(n_res, "psf_residual"),
            "image": "both",
            "x": r_xy[:, 0],
            "y": r_xy[:, 1],
            "flux": r_flux,
            "flux_ref": r_flux / fr,
            "delta_flux": 0.0,
            "length": np.full(n_res, cond.science_fwhm * r_broad),  # its FWHM
        },
    ]
    # ---------------------------------------------------------------- noise
    noise = {"read_noise": cond.read_noise, "saturation": sat, "rng": rng}
    new_img, new_var, new_sat = pairs.observe(new_sources, sky_new, gain=cond.science_gain, **noise)
    ref_img, ref_var, ref_sat = pairs.observe(
        ref_sources, sky_ref, gain=cond.reference_gain, **noise
    )
    del new_sources, ref_sources
    # ---------------------------------------------------------------- artefacts
    if pc.n_saturated_stars:
        table = pairs.add_saturated_stars(
            pc,
            (new_img, ref_img),
            (new_sat, ref_sat),
            psfs=(gal_psf_new, gal_psf_ref),  # analytic: its noise needs stars >= 0
            offset=offset,
            rng=rng,
        )
        xy = np.column_stack([np.asarray(table["x"]), np.asarray(table["y"])])
        bleed = add_bleed_trails(new_img, xy, saturation=sat, rng=rng)
        add_bleed_trails(ref_img, xy - shift, saturation=sat, rng=rng)
        parts.append(
            {
                "kind": np.asarray(table["kind"]),
                "image": "both",
                "x": xy[:, 0],
                "y": xy[:, 1],
                "flux": np.asarray(table["flux"]),
                "flux_ref": np.asarray(table["flux"]) / fr,
                "delta_flux": 0.0,
                "length": bleed,
                "angle": np.pi / 2,
            }
        )
    sigma0 = float(np.median(sigma_new))
    parts.append(
        add_satellite_trails(
            new_img,
            config.count("trails"),
            rng=rng,
            width=cond.science_fwhm / 2.3548200450309493,
            sigma=sigma0,
            gain=cond.science_gain,
            saturation=sat,
        )
    )
    parts.append(add_bad_columns(new_img, config.count("bad_columns"), rng=rng, sigma=sigma0))
    parts.append(add_hot_pixels(new_img, config.count("hot_pixels"), rng=rng, saturation=sat))
    for image, n, name in (
        (new_img, config.count("cosmic_rays"), "science"),
        (ref_img, config.count("cosmic_rays_reference"), "reference"),
    ):
        cosmic = pairs.add_cosmic_rays(image, n, saturation=sat, rng=rng, image_name=name)
        x, y = np.asarray(cosmic["x"]), np.asarray(cosmic["y"])
        if name == "reference":
            x, y = x + ox, y + oy
        parts.append(
            {
                "kind": np.asarray(cosmic["kind"]),
                "image": name,
                "x": x,
                "y": y,
                "flux": np.asarray(cosmic["flux"]),
            }
        )
    for part in parts:
        if part.get("image") == "reference":
            part["delta_flux"] = -np.asarray(part["flux"]) * fr
        elif part["kind"].size and part["kind"][0] in ("cosmic_ray", "hot_pixel", "trail"):
            part["delta_flux"] = part["flux"]
    new_sat |= new_img >= sat
    ref_sat |= ref_img >= sat
    truth = _truth_table(parts, pair_id)

    # ---------------------------------------------------------------- exposures
    wcs_new, wcs_ref = pairs.pair_wcs(pc, offset)
    for wcs in (wcs_new, wcs_ref):
        wcs.wcs.cdelt = np.array(wcs.wcs.cdelt) * (cond.pixel_scale / pairs.PIXEL_SCALE)
    zp_ref = 30.0
    exposures = {}
    for name, img, var, mask, psf, wcs, gain, zp, mjd, exptime in (
        (
            "science",
            new_img,
            new_var,
            new_sat,
            psf_new,
            wcs_new,
            cond.science_gain,
            zp_ref + 2.5 * math.log10(fr),
            cond.science_mjd,
            90.0,
        ),
        (
            "reference",
            ref_img,
            ref_var,
            ref_sat,
            psf_ref,
            wcs_ref,
            cond.reference_gain,
            zp_ref,
            cond.reference_mjd,
            900.0,
        ),
    ):
        header = fits.Header()
        header["SATURATE"] = (sat, "saturation level (counts)")
        header["SIMPAIR"] = (pair_id, "skyscene simulate search pair")
        exposures[name] = Exposure(
            data=img,
            variance=var,
            mask=mask,
            wcs=wcs,
            psf=psf,
            zeropoint=zp,
            band=cond.band,
            time=Time(mjd, format="mjd", scale="utc"),
            exptime=exptime,
            gain=gain,
            read_noise=cond.read_noise,
            meta={"saturate": sat, "kind": name, "pair_id": pair_id, "header": header},
        )
    log.debug(
        "simulated search pair %s %s: %d stars, %d galaxies, %d truth rows",
        pair_id,
        shape,
        len(stars),
        len(galaxies),
        len(truth),
    )
    return SearchPair(
        pair_id=pair_id,
        science=exposures["science"],
        reference=exposures["reference"],
        truth=truth,
        conditions=cond,
        offset=(float(ox), float(oy)),
        flux_ratio=float(fr),
        stars=stars,
        galaxies=galaxies,
        seed=seed,
    )


# ----------------------------------------------------------------------------- matching

#: Extra matching tolerance (pixels) of extended kinds, beyond ``radius``: cosmic-ray
#: tracks up to 8 px long (their direction is not in the truth), the flat top of a
#: saturated star, the width of a satellite trail.
MATCH_EXTENT = {
    "cosmic_ray": 4.0,
    "saturated_star": 8.0,
    "trail": 4.0,
    "dipole": 3.0,
    "psf_residual": 3.0,
}
_SEGMENTS = ("mover", "trail", "bad_column", "saturated_star")


def match_truth(truth, x, y, *, radius: float = 2.0):
    """The truth row that explains each detection at science pixels ``(x, y)``.

    Point kinds match within ``radius``; movers, bad columns and saturated stars (with
    their bleed trails) within ``radius`` of their segment (``length`` along
    ``angle``), satellite trails within ``radius`` of their line, with the extra
    :data:`MATCH_EXTENT` of extended kinds (PSF residuals: two FWHMs of their broader
    PSF, the ring the subtraction leaves). Of several rows within reach, a real change
    (:data:`REAL_KINDS`) wins, then the nearest (distance less extent). Use it on one
    pair's truth.

    Returns
    -------
    astropy.table.Table
        One row per detection: ``truth_index`` (row of ``truth``, -1: none), ``kind``
        ("" when nothing matched: a noise peak or a residual of the static scene),
        ``real``, ``distance`` (pixels, to the point or segment; NaN when none).

    Examples
    --------
    >>> sim = simulate_search(1, shape=(128, 128), rng=3)
    >>> truth = sim.pairs[0].truth
    >>> m = match_truth(truth, truth["x"][:2] + 0.5, truth["y"][:2])
    >>> [int(i) for i in m["truth_index"]], list(m["kind"]) == list(truth["kind"][:2])
    ([0, 1], True)
    """
    from astropy.table import Table

    x = np.atleast_1d(np.asarray(x, float))
    y = np.atleast_1d(np.asarray(y, float))
    kinds = np.asarray(truth["kind"]).astype(str)
    tx, ty = np.asarray(truth["x"], float), np.asarray(truth["y"], float)
    length = np.nan_to_num(np.asarray(truth["length"], float))
    angle = np.nan_to_num(np.asarray(truth["angle"], float))
    half = np.where(np.isin(kinds, _SEGMENTS), length / 2.0, 0.0)
    half = np.where(kinds == "trail", np.inf, half)
    extent = np.array([MATCH_EXTENT.get(k, 0.0) for k in kinds])
    # the residual ring of a broader PSF reaches about two of its FWHMs
    extent = np.where(kinds == "psf_residual", np.maximum(extent, 2.0 * length), extent)
    dx = x[:, None] - tx[None, :]
    dy = y[:, None] - ty[None, :]
    c, s = np.cos(angle)[None, :], np.sin(angle)[None, :]
    along = np.clip(dx * c + dy * s, -half[None, :], half[None, :])
    along = np.where(np.isfinite(along), along, dx * c + dy * s)
    distance = np.hypot(dx - along * c, dy - along * s)
    excess = distance - extent[None, :]
    n = len(x)
    index = np.full(n, -1)
    if len(kinds):
        # within reach: real changes first, then the nearest (distance less extent)
        key = np.where(excess <= radius, excess - 1e6 * np.isin(kinds, REAL_KINDS), np.inf)
        best = np.argmin(key, axis=1)
        ok = np.isfinite(key[np.arange(n), best])
        index[ok] = best[ok]
    found = index >= 0
    return Table(
        {
            "truth_index": index,
            "kind": np.where(found, kinds[np.maximum(index, 0)] if len(kinds) else "", ""),
            "real": found & np.isin(kinds[np.maximum(index, 0)] if len(kinds) else "", REAL_KINDS),
            "distance": np.where(
                found, distance[np.arange(n), np.maximum(index, 0)] if len(kinds) else 0, np.nan
            ),
        }
    )


# ----------------------------------------------------------------------------- sets


@dataclass(frozen=True, kw_only=True, eq=False)
class SearchSimulation:
    """Simulated search pairs in memory (:func:`simulate_search`).

    Attributes
    ----------
    pairs : tuple of SearchPair
    config : SearchSimConfig
    seed : int or None
        The seed given (None for a ``Generator``).
    """

    pairs: tuple[SearchPair, ...]
    config: SearchSimConfig
    seed: int | None = None

    @property
    def truth(self):
        """The truth of every pair in one table (:data:`TRUTH_COLUMNS`)."""
        return _stack_truth([p.truth for p in self.pairs])

    def to_table(self):
        """:attr:`truth`."""
        return self.truth

    def metadata(self) -> dict:
        """What ``truth.json`` holds (without the file names)."""
        return _metadata(self.config, self.seed, [_pair_summary(p) for p in self.pairs])


def _stack_truth(tables):
    from astropy.table import vstack

    tables = [t for t in tables if len(t)] or tables[:1]
    if not tables:
        return _truth_table([], "")
    out = vstack(tables) if len(tables) > 1 else tables[0].copy()
    for name, text in TRUTH_COLUMNS.items():
        out[name].description = text
    return out


def _pair_summary(pair: SearchPair) -> dict:
    kinds = np.asarray(pair.truth["kind"])
    return {
        "pair_id": pair.pair_id,
        "seed": pair.seed,
        "shape": list(pair.science.shape),
        "offset": list(pair.offset),
        "flux_ratio": pair.flux_ratio,
        "conditions": pair.conditions.to_dict(),
        "n_stars": len(pair.stars),
        "n_galaxies": len(pair.galaxies),
        "counts": {kind: int(np.sum(kinds == kind)) for kind in KINDS},
    }


def _metadata(config: SearchSimConfig, seed, pairs: list[dict]) -> dict:
    return {
        "generator": "skyscene.datasets.simulate_search",
        "seed": seed,
        "n_pairs": len(pairs),
        "config": config.to_dict(),
        "kinds": list(KINDS),
        "real_kinds": list(REAL_KINDS),
        "columns": dict(TRUTH_COLUMNS),
        "pairs": pairs,
    }


def _settings(config: SearchSimConfig | None, settings: dict) -> SearchSimConfig:
    if config is None:
        return SearchSimConfig(**settings)
    if settings:
        raise ParameterError(
            f"give either config or its fields, not both (got {sorted(settings)})",
            name="settings",
            value=sorted(settings),
        )
    return config


def iter_search_pairs(
    n_pairs: int, *, config: SearchSimConfig, rng=0, start: int = 0
) -> Iterator[SearchPair]:
    """Yield the pairs of :func:`simulate_search` one by one (constant memory).

    Pair ``k`` is ``simulate_search_pair(config, rng=seed_k, pair_id=f"pair{k:04d}")``
    with ``seed_k`` the ``k``-th of ``n_pairs`` integers drawn from ``rng``.
    """
    check_int("n_pairs", n_pairs, low=1)
    seeds = np.random.default_rng(rng).integers(0, 2**63 - 1, n_pairs)
    for k in range(start, n_pairs):
        yield simulate_search_pair(config, rng=int(seeds[k]), pair_id=f"pair{k:04d}")


def simulate_search(
    n_pairs: int = 1, *, config: SearchSimConfig | None = None, rng=0, **settings
) -> SearchSimulation:
    """Simulate a transient search: ``n_pairs`` seeded science/reference pairs and truth.

    Each pair has its own observing conditions (seeing, depth, PSF family and shape,
    sky, gains, saturation, band; :class:`SearchConditions`, drawn from the ranges of
    :class:`SearchSimConfig`), stars and Sérsic galaxies (with a few bright ones),
    and, unless ``null``:

    - injections: point-source transients in the science image (S/N 3–100; on hosts,
      on bright galaxy cores, in the field), fading sources (in the reference, fainter
      or gone in the science: negative in science − reference), variable stars,
      movers (science only, trailed when fast);
    - artefacts: cosmic rays (both images), hot pixels, bad columns, a satellite trail,
      saturated stars with bleed trails (masked at ``SATURATE``), displaced stars
      (dipoles), bright stars with a broader science PSF (PSF-mismatch residuals).

    Parameters
    ----------
    n_pairs : int
    config : SearchSimConfig, optional
        Or its fields as keyword arguments (not both).
    rng : int or numpy.random.Generator
        The same seed gives the same pairs, bit for bit.

    Returns
    -------
    SearchSimulation
        ``pairs`` (science and reference :class:`~skyscene.io.Exposure`, truth) and
        ``truth`` of the whole set.

    Examples
    --------
    >>> sim = simulate_search(1, shape=(128, 128), rng=3)
    >>> sim.pairs[0].science.shape
    (128, 128)
    >>> sorted(map(str, set(sim.truth["kind"])))[:3]
    ['bad_column', 'cosmic_ray', 'dipole']
    """
    config = _settings(config, settings)
    seed = int(rng) if isinstance(rng, int | np.integer) else None
    pairs = tuple(iter_search_pairs(n_pairs, config=config, rng=rng))
    return SearchSimulation(pairs=pairs, config=config, seed=seed)


@dataclass(frozen=True, kw_only=True)
class SearchFiles:
    """What :func:`write_search` wrote (paths)."""

    out_dir: Path
    pairs_csv: Path
    truth_csv: Path
    truth_json: Path
    pairs: tuple[tuple[str, Path, Path], ...]


def _exposure_for_file(exposure: Exposure, *, psf_size: int, psf_oversampling: int) -> Exposure:
    """The exposure as a camera writes it: saturated pixels at ``SATURATE`` (not in MSK;
    masked again on read), the PSF sampled for the PSF HDU."""
    saturated = exposure.mask
    good = exposure.variance[~saturated]
    fill = float(np.median(good)) if good.size else 1.0
    psf = exposure.psf
    if psf is not None and not hasattr(psf, "image"):
        psf = psf.to_pixelized(size=psf_size, oversampling=psf_oversampling)
    return exposure.replace(
        data=np.where(saturated, exposure.meta["saturate"], exposure.data),
        variance=np.where(saturated, fill, exposure.variance),
        mask=np.zeros(exposure.shape, bool),
        psf=psf,
    )


def write_search(
    out_dir,
    n_pairs: int = 1,
    *,
    config: SearchSimConfig | None = None,
    rng=0,
    psf_size: int = 41,
    psf_oversampling: int = 3,
    progress: bool = False,
    **settings,
) -> SearchFiles:
    """Simulate (:func:`simulate_search`, one pair at a time) and write a search data set.

    Writes ``OUT_DIR/<pair_id>/science.fits``, ``reference.fits`` (skyscene exposure
    FITS: SCI with WCS, MAGZERO, EXPTIME, MJD-OBS, FILTER, GAIN, RDNOISE, SATURATE;
    WGT; MSK; PSF, the true PSF sampled ``psf_oversampling`` times on ``psf_size``
    pixels), ``<pair_id>/truth.csv`` (+ ``.ecsv``), and for the set ``pairs.csv``
    (``pair_id,science,reference``, paths relative to ``OUT_DIR``), ``truth.csv``
    (+ ``.ecsv``) and ``truth.json`` (configuration, seeds, conditions, counts per
    kind, column meanings). Every file is written atomically; the set files last.

    Saturated pixels are written at the ``SATURATE`` level and unmasked, as a camera
    writes them: :func:`~skyscene.io.read_exposure` masks them again.
    """
    from astropy.table import Table
    from tqdm.auto import tqdm

    from skyscene.io import atomic_write_text, write_exposure, write_table

    config = _settings(config, settings)
    seed = int(rng) if isinstance(rng, int | np.integer) else None
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows, truths, summaries = [], [], []
    for pair in tqdm(
        iter_search_pairs(n_pairs, config=config, rng=rng),
        total=n_pairs,
        desc="simulate search",
        unit="pair",
        disable=not progress,
    ):
        folder = out_dir / pair.pair_id
        folder.mkdir(exist_ok=True)
        paths = {}
        for name in ("science", "reference"):
            exposure = _exposure_for_file(
                getattr(pair, name), psf_size=psf_size, psf_oversampling=psf_oversampling
            )
            paths[name] = write_exposure(folder / f"{name}.fits", exposure)
        write_table(pair.truth, folder / "truth.csv", parquet=False)
        rows.append((pair.pair_id, paths["science"], paths["reference"]))
        truths.append(pair.truth)
        summary = _pair_summary(pair)
        summary.update(
            science=f"{pair.pair_id}/science.fits",
            reference=f"{pair.pair_id}/reference.fits",
            truth=f"{pair.pair_id}/truth.csv",
        )
        summaries.append(summary)
    truth = _stack_truth(truths)
    truth_csv = out_dir / "truth.csv"
    write_table(truth, truth_csv, parquet=False)
    pairs_csv = out_dir / "pairs.csv"
    listing = Table(
        {
            "pair_id": [r[0] for r in rows],
            "science": [f"{r[0]}/science.fits" for r in rows],
            "reference": [f"{r[0]}/reference.fits" for r in rows],
        }
    )
    write_table(listing, pairs_csv, parquet=False, ecsv=False)
    truth_json = out_dir / "truth.json"
    atomic_write_text(truth_json, json.dumps(_metadata(config, seed, summaries), indent=1) + "\n")
    log.info(
        "wrote %d simulated search pairs (%d truth rows) to %s", len(rows), len(truth), out_dir
    )
    return SearchFiles(
        out_dir=out_dir,
        pairs_csv=pairs_csv,
        truth_csv=truth_csv,
        truth_json=truth_json,
        pairs=tuple(rows),
    )
