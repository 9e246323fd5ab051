"""Seeded simulations of CCD calibration frames and raw science frames.

:func:`simulate_calibration_frames` writes bias, dark and flat FITS frames of a
simulated detector (bias pattern, dark current with hot pixels, per-band flat fields
with dead pixels) and returns the truth. :func:`raw_science_frame` makes a raw frame
of a flat sky (optionally with stars and cosmic rays) on the same detector, so that
calibration can be tested end to end. Everything is in ADU; read noise in ADU; gain
in e-/ADU.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from skyscene.errors import ParameterError
from skyscene.io import Exposure, atomic_path, atomic_write_text

__all__ = [
    "CalibrationTruth",
    "CosmicRayInjection",
    "SimulatedScience",
    "add_cosmic_rays",
    "raw_science_frame",
    "simulate_calibration_frames",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True, eq=False)
class CalibrationTruth:
    """What the simulated detector really is.

    Attributes
    ----------
    bias : ndarray, shape (ny, nx)
        Bias level per pixel, ADU.
    dark_current : ndarray, shape (ny, nx)
        ADU per second (hot pixels included).
    flats : dict of str to ndarray
        Relative response per band, normalised to median 1 (dead pixels included).
    hot_pixels, dead_pixels : ndarray of bool
        Where they are.
    gain : float
        e-/ADU.
    read_noise : float
        ADU.
    bias_level, dark_exptime, flat_exptime, flat_level : float
        Simulation settings (ADU, s, s, ADU).
    binning : (int, int)
    files : dict of str to list of str
        Files written per frame type (``bias``, ``dark``, ``flat``).
    """

    bias: np.ndarray
    dark_current: np.ndarray
    flats: dict[str, np.ndarray]
    hot_pixels: np.ndarray
    dead_pixels: np.ndarray
    gain: float
    read_noise: float
    bias_level: float
    dark_exptime: float
    flat_exptime: float
    flat_level: float
    binning: tuple[int, int] = (1, 1)
    files: dict[str, list[str]] = field(default_factory=dict)

    @property
    def bad_pixels(self) -> np.ndarray:
        """Hot or dead pixels."""
        return self.hot_pixels | self.dead_pixels

    @property
    def shape(self) -> tuple[int, int]:
        """``(ny, nx)``."""
        return self.bias.shape  # type: ignore[return-value]

    def to_dict(self) -> dict[str, Any]:
        """Scalars and pixel lists, for the JSON truth file."""
        return {
            "shape": list(self.shape),
            "gain": self.gain,
            "read_noise": self.read_noise,
            "bias_level": self.bias_level,
            "bias_mean": float(self.bias.mean()),
            "dark_current_median": float(np.median(self.dark_current)),
            "dark_exptime": self.dark_exptime,
            "flat_exptime": self.flat_exptime,
            "flat_level": self.flat_level,
            "bands": sorted(self.flats),
            "binning": list(self.binning),
            "hot_pixels": np.argwhere(self.hot_pixels).tolist(),
            "dead_pixels": np.argwhere(self.dead_pixels).tolist(),
            "files": self.files,
        }


def _rng(rng) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def _write_frame(path: Path, data: np.ndarray, header: dict[str, Any]) -> Path:
    from astropy.io import fits

    hdu = fits.PrimaryHDU(data.astype(np.float32))
    for key, value in header.items():
        hdu.header[key] = value
    with atomic_path(path) as tmp:
        hdu.writeto(tmp, overwrite=True)
    return path


def _pick(rng: np.random.Generator, shape, n: int, exclude: np.ndarray | None = None) -> np.ndarray:
    out = np.zeros(shape, bool)
    free = np.flatnonzero(~exclude.ravel()) if exclude is not None else np.arange(out.size)
    if n > free.size:
        raise ParameterError(f"cannot place {n} special pixels in {free.size} free pixels")
    out.ravel()[rng.choice(free, size=n, replace=False)] = True
    return out


def _expose(rng: np.random.Generator, electrons_adu: np.ndarray, gain: float) -> np.ndarray:
    """Shot noise: ADU from expected ADU through Poisson statistics in electrons."""
    return rng.poisson(np.maximum(electrons_adu, 0.0) * gain) / gain


def simulate_calibration_frames(
    out_dir: str | Path,
    *,
    rng,
    shape: tuple[int, int] = (128, 128),
    n_bias: int = 10,
    n_dark: int = 5,
    n_flat: int = 7,
    bands: tuple[str, ...] = ("g",),
    bias_level: float = 1000.0,
    bias_pattern: float = 5.0,
    dark_current: float = 0.02,
    dark_exptime: float = 300.0,
    flat_field: float = 0.1,
    pixel_response: float = 0.01,
    flat_level: float = 20000.0,
    flat_exptime: float = 5.0,
    gain: float = 2.0,
    read_noise: float = 5.0,
    hot_pixels: int = 20,
    dead_pixels: int = 20,
    binning: tuple[int, int] = (1, 1),
    imagetyp: dict[str, str] | None = None,
) -> CalibrationTruth:
    """Write a folder of simulated raw calibration frames and return the truth.

    Parameters
    ----------
    out_dir : str or Path
        Folder for ``bias_NNN.fits``, ``dark_NNN.fits``, ``flat_<band>_NNN.fits`` and
        ``truth.json``.
    rng : numpy.random.Generator or int
        Source of randomness (a seed is accepted).
    shape : (int, int)
        ``(ny, nx)``.
    n_bias, n_dark, n_flat : int
        Number of frames (``n_flat`` per band).
    bands : tuple of str
        Filters with flats.
    bias_level : float
        Mean bias, ADU.
    bias_pattern : float
        Amplitude of a fixed column pattern and gradient on the bias, ADU.
    dark_current : float
        Median dark current, ADU/s (pixel-to-pixel scatter 20 %).
    dark_exptime, flat_exptime : float
        Exposure times of the darks and flats, s.
    flat_field : float
        Depth of the smooth illumination pattern (vignetting) of the flats.
    pixel_response : float
        Pixel-to-pixel relative response scatter.
    flat_level : float
        Median flat level, ADU above bias.
    gain : float
        e-/ADU.
    read_noise : float
        ADU.
    hot_pixels, dead_pixels : int
        Number of hot (1-10 ADU/s) and dead (response 0-0.3) pixels.
    binning : (int, int)
        Written as ``CCDSUM``.
    imagetyp : dict, optional
        ``IMAGETYP`` value per frame type (default ``bias``, ``dark``, ``flat``); map a
        type to ``None`` to omit the keyword (classification by file name).

    Returns
    -------
    CalibrationTruth
    """
    rng = _rng(rng)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    types = {"bias": "bias", "dark": "dark", "flat": "flat"}
    types.update(imagetyp or {})
    ny, nx = shape
    y, x = np.mgrid[0:ny, 0:nx]
    columns = rng.normal(0.0, 1.0, nx)
    bias = bias_level + bias_pattern * (0.5 * columns[None, :] + x / nx - 0.5 * y / ny)
    hot = _pick(rng, shape, hot_pixels)
    dead = _pick(rng, shape, dead_pixels, exclude=hot)
    dark = dark_current * rng.lognormal(0.0, 0.2, shape)
    dark[hot] = rng.uniform(1.0, 10.0, int(hot.sum()))
    r2 = ((x - nx / 2) / nx) ** 2 + ((y - ny / 2) / ny) ** 2
    pixels = 1.0 + pixel_response * rng.standard_normal(shape)
    pixels[dead] = rng.uniform(0.0, 0.3, int(dead.sum()))
    flats = {}
    for i, band in enumerate(bands):
        tilt = 0.02 * (i + 1) * (x / nx - 0.5)
        flat = (1.0 - flat_field * 2.0 * r2 + tilt) * pixels
        flats[band] = flat / np.median(flat)
    ccdsum = f"{binning[0]} {binning[1]}"

    def header(kind: str, exptime: float, band: str | None = None) -> dict[str, Any]:
        h: dict[str, Any] = {
            "EXPTIME": exptime,
            "GAIN": gain,
            "RDNOISE": read_noise,
            "CCDSUM": ccdsum,
            "MJD-OBS": 60000.0,
        }
        if types[kind] is not None:
            h["IMAGETYP"] = types[kind]
        if band is not None:
            h["FILTER"] = band
        return h

    def noise() -> np.ndarray:
        return read_noise * rng.standard_normal(shape)

    files: dict[str, list[str]] = {"bias": [], "dark": [], "flat": []}
    for i in range(n_bias):
        path = _write_frame(out_dir / f"bias_{i:03d}.fits", bias + noise(), header("bias", 0.0))
        files["bias"].append(path.name)
    for i in range(n_dark):
        raw = bias + _expose(rng, dark * dark_exptime, gain) + noise()
        path = _write_frame(out_dir / f"dark_{i:03d}.fits", raw, header("dark", dark_exptime))
        files["dark"].append(path.name)
    for band in bands:
        for i in range(n_flat):
            level = flat_level * rng.uniform(0.8, 1.2)  # lamp/twilight varies
            expected = flats[band] * level + dark * flat_exptime
            raw = bias + _expose(rng, expected, gain) + noise()
            path = _write_frame(
                out_dir / f"flat_{band}_{i:03d}.fits", raw, header("flat", flat_exptime, band)
            )
            files["flat"].append(path.name)
    truth = CalibrationTruth(
        bias=bias,
        dark_current=dark,
        flats=flats,
        hot_pixels=hot,
        dead_pixels=dead,
        gain=float(gain),
        read_noise=float(read_noise),
        bias_level=float(bias_level),
        dark_exptime=float(dark_exptime),
        flat_exptime=float(flat_exptime),
        flat_level=float(flat_level),
        binning=(int(binning[0]), int(binning[1])),
        files=files,
    )
    atomic_write_text(out_dir / "truth.json", json.dumps(truth.to_dict(), indent=1))
    log.info(
        "simulated %s calibration frames in %s", {k: len(v) for k, v in files.items()}, out_dir
    )
    return truth


@dataclass(frozen=True, kw_only=True, eq=False)
class CosmicRayInjection:
    """Result of :func:`add_cosmic_rays`.

    Attributes
    ----------
    image : ndarray
        Input image plus the hits.
    mask : ndarray of bool
        Pixels hit.
    n_hits : int
        Number of cosmic-ray events (a track covers one or more pixels).
    """

    image: np.ndarray
    mask: np.ndarray
    n_hits: int


def add_cosmic_rays(
    image: np.ndarray,
    *,
    rng,
    n_hits: int,
    amplitude: tuple[float, float] = (300.0, 3000.0),
    max_length: int = 4,
    avoid: np.ndarray | None = None,
) -> CosmicRayInjection:
    """Add cosmic-ray hits (single pixels and short tracks) to an image.

    Parameters
    ----------
    image : ndarray, shape (ny, nx)
    rng : numpy.random.Generator or int
    n_hits : int
        Number of events.
    amplitude : (float, float)
        Range of the deposited signal per pixel (log-uniform), image units.
    max_length : int
        Longest track, pixels (each track is a random walk of 1..max_length pixels).
    avoid : ndarray of bool, optional
        Pixels where a hit must not start (e.g. star cores).

    Returns
    -------
    CosmicRayInjection
    """
    rng = _rng(rng)
    out = np.array(image, dtype=float, copy=True)
    ny, nx = out.shape
    mask = np.zeros(out.shape, bool)
    blocked = np.zeros(out.shape, bool) if avoid is None else np.asarray(avoid, bool).copy()
    steps = np.array([[0, 1], [1, 0], [1, 1], [1, -1]])
    placed = 0
    for _ in range(50 * max(n_hits, 1)):
        if placed == n_hits:
            break
        y, x = int(rng.integers(2, ny - 2)), int(rng.integers(2, nx - 2))
        if blocked[y, x] or mask[max(0, y - 3) : y + 4, max(0, x - 3) : x + 4].any():
            continue
        step = steps[rng.integers(len(steps))]
        length = int(rng.integers(1, max_length + 1))
        for k in range(length):
            yy, xx = y + k * step[0], x + k * step[1]
            if 0 <= yy < ny and 0 <= xx < nx:
                out[yy, xx] += np.exp(rng.uniform(*np.log(amplitude)))
                mask[yy, xx] = True
        placed += 1
    if placed < n_hits:
        raise ParameterError(f"could place only {placed} of {n_hits} cosmic-ray hits")
    return CosmicRayInjection(image=out, mask=mask, n_hits=placed)


@dataclass(frozen=True, kw_only=True, eq=False)
class SimulatedScience:
    """Result of :func:`raw_science_frame`.

    Attributes
    ----------
    exposure : Exposure
        The raw frame (ADU) with band, exptime, gain, read noise, time and binning.
    scene : ndarray
        Expected calibrated image (sky + stars, ADU, flat-field 1).
    cosmic_rays : ndarray of bool
        Pixels hit by cosmic rays.
    stars : ndarray, shape (n, 2)
        ``(x, y)`` of the stars.
    path : Path or None
        File written, if any.
    """

    exposure: Exposure
    scene: np.ndarray
    cosmic_rays: np.ndarray
    stars: np.ndarray
    path: Path | None = None


def _gaussian_stars(shape, positions: np.ndarray, fluxes: np.ndarray, fwhm: float) -> np.ndarray:
    from scipy.special import erf

    ny, nx = shape
    sigma = fwhm / (2.0 * np.sqrt(2.0 * np.log(2.0)))
    xe, ye = np.arange(nx + 1) - 0.5, np.arange(ny + 1) - 0.5
    image = np.zeros(shape)
    for (x0, y0), flux in zip(positions, fluxes, strict=True):
        cx = np.diff(0.5 * erf((xe - x0) / (np.sqrt(2) * sigma)))
        cy = np.diff(0.5 * erf((ye - y0) / (np.sqrt(2) * sigma)))
        image += flux * np.outer(cy, cx)
    return image


def raw_science_frame(
    truth: CalibrationTruth,
    *,
    rng,
    band: str = "g",
    exptime: float = 60.0,
    sky: float = 1000.0,
    n_stars: int = 0,
    star_flux: tuple[float, float] = (2e4, 2e5),
    fwhm: float = 3.0,
    n_cosmic_rays: int = 0,
    path: str | Path | None = None,
) -> SimulatedScience:
    """A raw science frame on the simulated detector of ``truth``.

    Parameters
    ----------
    truth : CalibrationTruth
        From :func:`simulate_calibration_frames`.
    rng : numpy.random.Generator or int
    band : str
        Filter (one of ``truth.flats``).
    exptime : float
        Seconds (the dark current accumulates for this long).
    sky : float
        Sky level, ADU per pixel at flat-field 1.
    n_stars : int
        Gaussian stars at random positions (10 px from the edges).
    star_flux : (float, float)
        Range of total star fluxes, ADU (log-uniform).
    fwhm : float
        Star FWHM, pixels.
    n_cosmic_rays : int
        Cosmic-ray events added after the exposure (not flat-fielded), away from stars.
    path : str or Path, optional
        If given, the raw frame is also written there as FITS (``IMAGETYP='object'``).

    Returns
    -------
    SimulatedScience
    """
    from astropy.time import Time

    rng = _rng(rng)
    if band not in truth.flats:
        raise ParameterError(f"no simulated flat for band {band!r}; bands: {sorted(truth.flats)}")
    ny, nx = truth.shape
    positions = np.column_stack(
        [rng.uniform(10, nx - 10, n_stars), rng.uniform(10, ny - 10, n_stars)]
    ).reshape(-1, 2)
    fluxes = np.exp(rng.uniform(*np.log(star_flux), n_stars))
    scene = sky + _gaussian_stars(truth.shape, positions, fluxes, fwhm)
    expected = truth.flats[band] * scene + truth.dark_current * exptime
    raw = (
        truth.bias
        + _expose(rng, expected, truth.gain)
        + truth.read_noise * rng.standard_normal(truth.shape)
    )
    cr_mask = np.zeros(truth.shape, bool)
    if n_cosmic_rays:
        near_star = np.zeros(truth.shape, bool)
        yy, xx = np.mgrid[0:ny, 0:nx]
        for x0, y0 in positions:
            near_star |= (xx - x0) ** 2 + (yy - y0) ** 2 < (2 * fwhm) ** 2
        injection = add_cosmic_rays(raw, rng=rng, n_hits=n_cosmic_rays, avoid=near_star)
        raw, cr_mask = injection.image, injection.mask
    header = {
        "IMAGETYP": "object",
        "FILTER": band,
        "EXPTIME": float(exptime),
        "MJD-OBS": 60000.5,
        "GAIN": truth.gain,
        "RDNOISE": truth.read_noise,
        "CCDSUM": f"{truth.binning[0]} {truth.binning[1]}",
    }
    written = None
    if path is not None:
        written = _write_frame(Path(path), raw, header)
    from astropy import units as u

    exposure = Exposure(
        data=raw,
        variance=np.full(truth.shape, truth.read_noise**2),
        band=band,
        time=Time(60000.5, format="mjd", scale="utc") + 0.5 * exptime * u.s,
        exptime=float(exptime),
        gain=truth.gain,
        read_noise=truth.read_noise,
        meta={"binning": truth.binning, **({"filename": str(written)} if written else {})},
    )
    return SimulatedScience(
        exposure=exposure, scene=scene, cosmic_rays=cr_mask, stars=positions, path=written
    )
