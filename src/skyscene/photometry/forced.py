"""Forced aperture and optimal photometry at known positions.

Both photometers are *configured callables*: settings in ``__init__``, data in
``__call__(exposure, positions, shape)``, returning a :class:`ForcedPhotometry` with
one entry per position: ``x``, ``y``, ``flux``, ``flux_err``, ``bkg``, ``bkg_err``,
``flags`` (``to_table()`` gives an astropy Table).

Error budget (both): background noise (the local ``bkg_err`` per pixel), read noise
(inside ``bkg_err`` as measured, or the variance map), source Poisson noise through
the gain, and the uncertainty of the local background level itself.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from skyscene.background.local import local_background_mean
from skyscene.errors import DataError, ParameterError

__all__ = [
    "FLAGS",
    "AperturePhotometer",
    "FluxCorrection",
    "ForcedPhotometry",
    "OptimalPhotometer",
    "measure_flux_correction",
]

log = logging.getLogger(__name__)

FLAGS = {
    "edge": 1,  # aperture/region leaves the image
    "masked": 2,  # masked pixels inside the aperture/region
    "background": 4,  # local background could not be measured
    "no_flux": 8,  # no usable pixel at all: flux is NaN
}


def _nan_data(exposure) -> np.ndarray:
    """Pixel values with NaN where masked (no copy when nothing is masked)."""
    if not exposure.mask.any():
        return exposure.data
    return np.where(exposure.mask, np.nan, exposure.data)


def _local_backgrounds(estimator, data, positions, shape, error):
    bkg = np.full(len(positions), np.nan)
    bkg_err = np.full(len(positions), np.nan)
    flags = np.zeros(len(positions), dtype=int)
    for i, (x, y) in enumerate(positions):
        try:
            est = estimator(
                data, (x, y), shape.sigma_major, shape.sigma_minor, shape.theta, error=error
            )
            b, be = float(est[0]), float(est[1])
        except DataError as exc:
            log.debug("local background failed at (%.1f, %.1f): %s", x, y, exc)
            flags[i] |= FLAGS["background"]
            continue
        if not (math.isfinite(b) and math.isfinite(be) and be > 0):
            flags[i] |= FLAGS["background"]
            continue
        bkg[i], bkg_err[i] = b, be
    return bkg, bkg_err, flags


def _annulus_count(shape, inner=5.0, outer=7.5) -> float:
    return math.pi * (outer**2 - inner**2) * shape.sigma_major * shape.sigma_minor


def _boxes(positions, half: int, image_shape):
    """Integer box origins and pixel offsets of every position's box."""
    ny, nx = image_shape
    ix = np.round(positions[:, 0]).astype(int)
    iy = np.round(positions[:, 1]).astype(int)
    x0, y0 = ix - half, iy - half
    size = 2 * half + 1
    gx = x0[:, None] + np.arange(size)[None, :]  # (N, size)
    gy = y0[:, None] + np.arange(size)[None, :]
    inside_x = (gx >= 0) & (gx < nx)
    inside_y = (gy >= 0) & (gy < ny)
    return gx, gy, inside_x, inside_y


def _gather(image, gx, gy, inside_x, inside_y, fill=np.nan):
    cx = np.clip(gx, 0, image.shape[1] - 1)
    cy = np.clip(gy, 0, image.shape[0] - 1)
    out = image[cy[:, :, None], cx[:, None, :]]
    ok = inside_y[:, :, None] & inside_x[:, None, :]
    return np.where(ok, out, fill), ok


@dataclass(frozen=True, kw_only=True, eq=False)
class ForcedPhotometry:
    """Forced photometry of one exposure: one entry per position.

    Attributes
    ----------
    x, y : ndarray
        Positions, pixels.
    flux, flux_err : ndarray
        Flux and its 1σ error, counts (NaN with ``FLAGS["no_flux"]`` set when nothing
        could be measured).
    bkg, bkg_err : ndarray
        Local background per pixel and its per-pixel scatter, counts.
    flags : ndarray of int
        Bit flags, see :data:`FLAGS`.

    Columns can also be read by name (``result["flux"]``), as from a table.
    """

    x: np.ndarray
    y: np.ndarray
    flux: np.ndarray
    flux_err: np.ndarray
    bkg: np.ndarray
    bkg_err: np.ndarray
    flags: np.ndarray

    colnames = ("x", "y", "flux", "flux_err", "bkg", "bkg_err", "flags")

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self.colnames:
            raise KeyError(name)
        return getattr(self, name)

    def __len__(self) -> int:
        return len(self.flux)

    def to_table(self):
        """The results as an astropy Table."""
        from astropy.table import Table

        return Table({name: getattr(self, name) for name in self.colnames})


def _result_table(positions, flux, flux_err, bkg, bkg_err, flags) -> ForcedPhotometry:
    return ForcedPhotometry(
        x=positions[:, 0],
        y=positions[:, 1],
        flux=flux,
        flux_err=flux_err,
        bkg=bkg,
        bkg_err=bkg_err,
        flags=flags,
    )


@dataclass(frozen=True, kw_only=True)
class AperturePhotometer:
    """Elliptical aperture photometry with a local background.

    Parameters
    ----------
    radius : float
        Aperture semi-axes in units of the PSF sigmas (``radius × σ_major``,
        ``radius × σ_minor``, oriented as the PSF).
    local_background : callable
        Local background estimator (see :mod:`skyscene.background.local`).
    subpixels : int
        0 (default): exact geometric overlap of each pixel with the ellipse (photutils'
        ``method="exact"``); n > 0: each pixel split into n² sub-pixels.
    name : str
        Label used in output folders.

    Notes
    -----
    ``flux`` is the background-subtracted sum inside the aperture (not corrected to a
    total flux). ``flux_err² = Σ w² (bkg_err² + max(D − B, 0)/gain) + (Σ w)² bkg_err²/n_annulus``.
    """

    radius: float = 3.0
    local_background: Callable = local_background_mean
    subpixels: int = 0
    name: str = "aperture"

    def __post_init__(self) -> None:
        if not self.radius > 0:
            raise ParameterError(f"radius must be positive, got {self.radius!r}")
        if int(self.subpixels) < 0:
            raise ParameterError(
                f"subpixels must be >= 0 (0: exact overlap), got {self.subpixels!r}"
            )

    def weights(self, positions, shape, half: int) -> np.ndarray:
        """Overlap fraction of each box pixel with each ellipse, shape ``(N, 2h+1, 2h+1)``.

        Exact geometric overlap (``subpixels=0``) or sub-pixel sampling, computed by
        ``photutils.geometry.elliptical_overlap_grid``.
        """
        from photutils.geometry import elliptical_overlap_grid

        size = 2 * half + 1
        a = self.radius * shape.sigma_major
        b = self.radius * shape.sigma_minor
        exact = 1 if self.subpixels == 0 else 0
        out = np.empty((len(positions), size, size))
        for k, (x, y) in enumerate(positions):
            x0 = round(x) - half - 0.5 - x
            y0 = round(y) - half - 0.5 - y
            out[k] = elliptical_overlap_grid(
                x0,
                x0 + size,
                y0,
                y0 + size,
                size,
                size,
                a,
                b,
                shape.theta,
                exact,
                max(self.subpixels, 1),
            )
        return out

    def __call__(self, exposure, positions, shape):
        """Measure ``exposure`` at ``positions`` (``(N, 2)``, pixels) with PSF ``shape``."""
        positions = np.atleast_2d(np.asarray(positions, dtype=float))
        data = _nan_data(exposure)
        bkg, bkg_err, flags = _local_backgrounds(
            self.local_background, data, positions, shape, None
        )
        half = math.ceil(self.radius * shape.sigma_major) + 1
        gx, gy, inx, iny = _boxes(positions, half, data.shape)
        cut, inside = _gather(data, gx, gy, inx, iny)
        w = self.weights(positions, shape, half)
        used = w > 0
        off_image = (used & ~inside).any(axis=(1, 2))
        bad = used & ~np.isfinite(cut)
        flags[off_image] |= FLAGS["edge"]
        flags[bad.any(axis=(1, 2)) & ~off_image] |= FLAGS["masked"]
        w_ok = np.where(np.isfinite(cut), w, 0.0)
        diff = np.where(np.isfinite(cut), cut - bkg[:, None, None], 0.0)
        area = w_ok.sum(axis=(1, 2))
        flux = np.sum(w_ok * diff, axis=(1, 2))
        gain = exposure.gain
        source_var = np.sum(w_ok**2 * np.maximum(diff, 0.0), axis=(1, 2)) / gain if gain else 0.0
        pix_var = np.sum(w_ok**2, axis=(1, 2)) * bkg_err**2
        bkg_level_var = area**2 * bkg_err**2 / _annulus_count(shape)
        flux_err = np.sqrt(pix_var + source_var + bkg_level_var)
        nothing = (area == 0) | ~np.isfinite(bkg)
        flags[nothing] |= FLAGS["no_flux"]
        flux = np.where(nothing, np.nan, flux)
        flux_err = np.where(nothing, np.nan, flux_err)
        return _result_table(positions, flux, flux_err, bkg, bkg_err, flags)


@dataclass(frozen=True, kw_only=True)
class OptimalPhotometer:
    """Optimal (PSF-weighted) photometry after Naylor (1998, MNRAS 296, 339).

    Parameters
    ----------
    radius : float
        Extraction region: pixels within ``radius`` PSF sigmas (elliptical).
    local_background : callable
        Local background estimator.
    psf : PSF model or None
        Weighting profile; default the elliptical Gaussian of the measured PSF shape.
    iterations : int
        Variance updates with the current flux (source Poisson term).
    flux_correction : float
        Factor applied to flux and error: the ratio of total to optimal flux measured on
        bright stars when the weighting profile differs from the true PSF (e.g. Gaussian
        weights on a Moffat PSF; see :func:`measure_flux_correction`). 1 for a true PSF.
    name : str
        Label used in output folders.

    Notes
    -----
    With a unit-sum, pixel-integrated PSF ``P`` and per-pixel variance
    ``V_i = bkg_err² + F P_i / gain``, the weights ``W_i = (P_i / V_i) / Σ_j P_j² / V_j``
    (Naylor 1998, eq. 10) satisfy ``Σ W_i P_i = 1`` over the region, so
    ``F = Σ W_i (D_i − B)`` estimates the **total** flux, not a peak amplitude, and its
    variance is ``Σ W_i² V_i`` (eq. 11) plus ``(Σ W_i)² σ_B²`` for the uncertainty
    ``σ_B`` of the local background level. Masked pixels simply drop out of the sums.
    """

    radius: float = 3.0
    local_background: Callable = local_background_mean
    psf: object = None
    iterations: int = 2
    flux_correction: float = 1.0
    name: str = "optimal"

    def __post_init__(self) -> None:
        if not self.radius > 0:
            raise ParameterError(f"radius must be positive, got {self.radius!r}")

    def __call__(self, exposure, positions, shape):
        """Measure ``exposure`` at ``positions`` (``(N, 2)``, pixels) with PSF ``shape``."""
        positions = np.atleast_2d(np.asarray(positions, dtype=float))
        data = _nan_data(exposure)
        bkg, bkg_err, flags = _local_backgrounds(
            self.local_background, data, positions, shape, None
        )
        half = math.ceil(self.radius * shape.sigma_major) + 1
        size = 2 * half + 1
        gx, gy, inx, iny = _boxes(positions, half, data.shape)
        cut, inside = _gather(data, gx, gy, inx, iny)
        psf = self.psf if self.psf is not None else shape.to_psf()
        local = positions - np.c_[gx[:, 0], gy[:, 0]]
        profile = psf.render((size, size), center=local)
        if profile.ndim == 2:
            profile = profile[None]
        # elliptical extraction region
        off_x = np.arange(size)[None, None, :] - local[:, 0, None, None]
        off_y = np.arange(size)[None, :, None] - local[:, 1, None, None]
        c, s = math.cos(shape.theta), math.sin(shape.theta)
        u = (off_x * c + off_y * s) / shape.sigma_major
        v = (-off_x * s + off_y * c) / shape.sigma_minor
        region = (u * u + v * v) <= self.radius**2
        off_image = (region & ~inside).any(axis=(1, 2))
        finite = np.isfinite(cut)
        flags[off_image] |= FLAGS["edge"]
        flags[(region & ~finite).any(axis=(1, 2)) & ~off_image] |= FLAGS["masked"]
        use = region & finite
        diff = np.where(use, cut - bkg[:, None, None], 0.0)
        P = np.where(use, profile, 0.0)
        bvar = (bkg_err**2)[:, None, None]
        gain = exposure.gain
        flux = np.zeros(len(positions))
        flux_err = np.full(len(positions), np.nan)
        good_bkg = np.isfinite(bkg)
        bvar = np.where(good_bkg[:, None, None], bvar, 1.0)
        for it in range(max(1, self.iterations) + 1):
            if it == 0 or not gain:
                V = np.broadcast_to(bvar, P.shape)
            else:
                V = bvar + np.maximum(flux[:, None, None] * P, 0.0) / gain
            pv = P / V
            norm = np.sum(P * pv, axis=(1, 2))
            ok = norm > 0
            W = np.where(ok[:, None, None], pv / np.where(ok, norm, 1.0)[:, None, None], 0.0)
            flux = np.sum(W * diff, axis=(1, 2))
            if not gain:
                break
        var = np.sum(W * W * V, axis=(1, 2)) + np.sum(W, axis=(1, 2)) ** 2 * (
            bkg_err**2
        ) / _annulus_count(shape)
        nothing = ~ok | ~good_bkg
        flags[nothing] |= FLAGS["no_flux"]
        c = self.flux_correction
        flux = np.where(nothing, np.nan, c * flux)
        flux_err = np.where(nothing, np.nan, c * np.sqrt(np.where(nothing, 0.0, var)))
        return _result_table(
            positions, flux, flux_err, np.where(good_bkg, bkg, np.nan), bkg_err, flags
        )


@dataclass(frozen=True, kw_only=True)
class FluxCorrection:
    """Ratio of total (large-aperture) to optimal flux measured on bright stars.

    Attributes
    ----------
    value : float
        The factor to apply (1 when not significant).
    measured, error : float
        Median ratio and its uncertainty (1.2533 × MAD-σ / √n).
    n_stars : int
        Star measurements used.
    applied : bool
        True when ``|measured − 1| > 3 × error``.
    """

    value: float
    measured: float
    error: float
    n_stars: int
    applied: bool


def measure_flux_correction(
    measurements, *, big_radius: float = 6.0, min_snr: float = 20.0, significance: float = 3.0
) -> FluxCorrection:
    """Optimal-photometry flux correction from bright isolated stars.

    Optimal weights from an approximate profile (an elliptical Gaussian for a Moffat
    PSF, say) estimate ``Σ W P_true × F`` instead of ``F``. The ratio of a large
    elliptical aperture (``big_radius`` PSF sigmas, background in an annulus at 8–11 σ)
    to the optimal flux of the same stars measures that factor; it is applied only when
    it differs from 1 by more than ``significance`` times its uncertainty.

    Parameters
    ----------
    measurements : iterable of (exposure, positions, shape)
        Frames with star positions and the PSF shape used for the weights.
    """
    import functools

    big = AperturePhotometer(
        radius=big_radius,
        local_background=functools.partial(local_background_mean, inner=8.0, outer=11.0),
    )
    optimal = OptimalPhotometer()
    ratios = []
    for exposure, positions, shape in measurements:
        if len(positions) == 0:
            continue
        b = big(exposure, positions, shape)
        o = optimal(exposure, positions, shape)
        good = (
            (b.flags == 0)
            & (o.flags == 0)
            & np.isfinite(b.flux)
            & np.isfinite(o.flux)
            & (o.flux > 0)
            & (b.flux > min_snr * b.flux_err)
        )
        ratios.extend(b.flux[good] / o.flux[good])
    ratios_arr = np.asarray(ratios)
    if ratios_arr.size < 3:
        return FluxCorrection(
            value=1.0,
            measured=float("nan"),
            error=float("inf"),
            n_stars=int(ratios_arr.size),
            applied=False,
        )
    med = float(np.median(ratios_arr))
    err = float(1.2533 * 1.4826 * np.median(np.abs(ratios_arr - med)) / np.sqrt(ratios_arr.size))
    applied = abs(med - 1.0) > significance * err
    return FluxCorrection(
        value=med if applied else 1.0,
        measured=med,
        error=err,
        n_stars=int(ratios_arr.size),
        applied=applied,
    )
