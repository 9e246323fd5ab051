"""ZOGY proper image subtraction of a science exposure and a reference (Zackay et al. 2016).

:class:`Zogy` is a configured callable: ``Zogy(config)(science, reference)`` aligns the
reference onto the science pixel grid, subtracts mesh backgrounds, measures the noise,
gets or estimates the PSFs, fits the flux ratio and sub-pixel shift, and computes the
products of :func:`skyscene.diffim._core.zogy_products` (eqs. 13–17, 25–30, 41–43),
optionally per overlapping sub-image for a spatially varying PSF.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from skyscene._validation import (
    check_choice,
    check_int,
    check_odd,
    check_optional,
    check_positive,
    check_range,
)
from skyscene.diffim._core import Spectra, zogy_products
from skyscene.diffim.fluxratio import FluxRatioFit, fit_flux_ratio
from skyscene.diffim.partition import partition
from skyscene.errors import (
    AlignmentError,
    DataError,
    FlaggedDataWarning,
    HeaderError,
    ParameterError,
)
from skyscene.io import Exposure

__all__ = ["MaskBits", "Zogy", "ZogyConfig", "ZogyResult", "zogy"]

log = logging.getLogger(__name__)


class MaskBits(enum.IntFlag):
    """Bits of :attr:`ZogyResult.mask` (0 = good pixel).

    ``SCIENCE_MASKED``/``REFERENCE_MASKED``: masked in the input (bad, non-finite, zero
    weight). ``SATURATED``: at or above the saturation level in either image (grown by
    ``saturation_grow`` pixels). ``EDGE``: outside the overlap of the two images or
    within the kernel radius of an image edge. ``NEAR_MASKED``: more than
    ``contamination_limit`` of the score's noise weight comes from masked pixels, or
    within two kernel radii of a masked region that hides bright flux (a filled peak
    above 50 σ, e.g. a saturated core).
    ``NONFINITE``: a product was not finite (never expected).
    """

    SCIENCE_MASKED = 1
    REFERENCE_MASKED = 2
    SATURATED = 4
    EDGE = 8
    NEAR_MASKED = 16
    NONFINITE = 32


@dataclass(frozen=True, kw_only=True)
class ZogyConfig:
    """Settings of :class:`Zogy`.

    Parameters
    ----------
    background_box, background_filter : int
        Mesh size (pixels) and median filter (meshes) of the background maps.
    flux_ratio : float, optional
        Fixed F_n / F_r; default: fitted, starting from the zeropoints (or 1).
    fit_flux_ratio : bool
        Fit F_n / F_r (ignored when ``flux_ratio`` is given).
    fit_shift : bool
        Fit and apply a sub-pixel shift between the images.
    astrometric_sigma : (float, float), optional
        σ_x, σ_y of eq. 30 in pixels; default: measured by the flux-ratio fit.
    psf : {"auto", "exposure", "estimate"}
        PSFs from ``Exposure.psf`` ("exposure"), from stars ("estimate"), or from the
        exposure when it has one and from stars otherwise ("auto").
    psf_size : int
        Size of the PSF stamps (odd), pixels.
    gain_science, gain_reference : float, optional
        Electrons per count for the source noise (default: ``Exposure.gain``).
    source_noise : bool
        Include the source-noise terms of eqs. 26–27.
    saturation_science, saturation_reference : float, optional
        Saturation levels (default: ``meta['saturate']`` or the ``SATURATE`` header key;
        without either, the image maximum when 5 or more unmasked pixels share it
        exactly: the flat tops of clipped stars).
    saturation_grow : int
        Pixels by which saturated regions are grown.
    contamination_limit : float
        Flag ``NEAR_MASKED`` where masked pixels carry more than this fraction of the
        score's noise weight.
    hidden_flux_limit : float
        Flag ``NEAR_MASKED`` where the flux that filled bright holes (saturated or masked
        cores) may lack could change S by more than this many σ: the hole's peak level
        (its brightest border pixel or fill) minus the fill, per hole pixel, through the
        absolute ZOGY kernels (a lower bound of the hidden flux, so a bound of the error
        that is itself low).
    edge_width : int, optional
        Width of the ``EDGE`` band; default: the radius of the ZOGY kernels.
    subimage_size : int, optional
        Core size of sub-images for a spatially varying PSF; None: one PSF for the image.
    subimage_border : int
        Overlap of the sub-images, pixels (must exceed the kernel radius).
    min_sources : int
        Minimum number of sources for the flux-ratio fit.
    max_iter : int
        Iterations of the flux-ratio fit.
    difference_background : bool
        Subtract a mesh background of D (and F_D times it from S): residual background
        differences of the inputs (the mesh backgrounds of the two images are biased
        differently by faint sources and PSF wings: −0.23 in the mean S_corr of the
        simulated null pairs without this step). Estimated on D binned 4 x 4 (D is
        white; the map is smooth), which is also less biased by the residual structure
        near sources than a full-resolution mesh (mean S_corr over five null pairs
        +0.001 instead of −0.011).
    precision : {"single", "double"}
        Floating-point precision of the images, FFTs and products (float32 or float64).
        Single precision halves time and memory; sums over the frequency plane (F_S, the
        kernel norms) are accumulated in double either way.
    """

    background_box: int = 64
    background_filter: int = 3
    flux_ratio: float | None = None
    fit_flux_ratio: bool = True
    fit_shift: bool = True
    astrometric_sigma: tuple[float, float] | None = None
    psf: str = "auto"
    psf_size: int = 41
    gain_science: float | None = None
    gain_reference: float | None = None
    source_noise: bool = True
    saturation_science: float | None = None
    saturation_reference: float | None = None
    saturation_grow: int = 2
    contamination_limit: float = 2e-3
    hidden_flux_limit: float = 1.0
    edge_width: int | None = None
    subimage_size: int | None = None
    subimage_border: int = 64
    min_sources: int = 5
    max_iter: int = 10
    difference_background: bool = True
    precision: str = "single"

    def __post_init__(self) -> None:
        if self.precision not in ("single", "double"):
            raise ParameterError(
                f"ZogyConfig.precision must be 'single' or 'double', got {self.precision!r}",
                name="ZogyConfig.precision",
                value=self.precision,
            )
        check_choice("ZogyConfig.psf", self.psf, ("auto", "exposure", "estimate"))
        check_odd("ZogyConfig.psf_size", self.psf_size, low=5)
        check_int("ZogyConfig.background_box", self.background_box, low=8)
        check_int("ZogyConfig.background_filter", self.background_filter, low=1)
        if self.flux_ratio is not None and not (
            isinstance(self.flux_ratio, int | float | np.floating)
            and math.isfinite(self.flux_ratio)
            and self.flux_ratio > 0
        ):
            raise ParameterError(
                f"ZogyConfig.flux_ratio must be positive, got {self.flux_ratio!r}",
                name="ZogyConfig.flux_ratio",
                value=self.flux_ratio,
            )
        for name in (
            "gain_science",
            "gain_reference",
            "saturation_science",
            "saturation_reference",
        ):
            check_optional(check_positive, f"ZogyConfig.{name}", getattr(self, name))
        if self.astrometric_sigma is not None:
            for value in self.astrometric_sigma:
                check_positive("ZogyConfig.astrometric_sigma", value, allow_zero=True)
        check_optional(check_int, "ZogyConfig.subimage_size", self.subimage_size, low=64)
        check_optional(check_int, "ZogyConfig.edge_width", self.edge_width, low=0)
        check_int("ZogyConfig.subimage_border", self.subimage_border, low=0)
        check_int("ZogyConfig.saturation_grow", self.saturation_grow, low=0)
        check_int("ZogyConfig.min_sources", self.min_sources, low=1)
        check_int("ZogyConfig.max_iter", self.max_iter, low=1)
        check_range(
            "ZogyConfig.hidden_flux_limit",
            self.hidden_flux_limit,
            low=0,
            low_inclusive=False,
        )
        check_range(
            "ZogyConfig.contamination_limit",
            self.contamination_limit,
            low=0,
            high=1,
            low_inclusive=False,
            high_inclusive=False,
        )

    @property
    def dtype(self) -> np.dtype:
        """Real dtype of :attr:`precision`."""
        return np.dtype(np.float32 if self.precision == "single" else np.float64)

    def to_dict(self) -> dict:
        """The configuration as a plain dict (for output metadata)."""
        return dataclasses.asdict(self)


@dataclass(frozen=True, kw_only=True, eq=False)
class ZogyResult:
    """Products of a ZOGY subtraction, on the science pixel grid.

    Attributes
    ----------
    difference : ndarray (ny, nx)
        Proper difference image D (eq. 13), unit-variance white noise.
    difference_psf : ndarray (m, m)
        PSF of D, P_D (eq. 14), centred, unit sum (of the image centre in sub-image mode).
    flux_zeropoint : float
        F_D (eq. 15).
    score : ndarray (ny, nx)
        Matched-filter score S (eq. 17).
    score_corr : ndarray (ny, nx)
        S_corr (eq. 25): S over the square root of the source-noise (eqs. 26–29) and
        astrometric-noise (eq. 30) variances; ~N(0, 1) on static sky. 0 where flagged.
    flux, flux_err : ndarray (ny, nx)
        PSF photometry of a point source at each pixel (eqs. 41–43), in reference counts
        (F_r = 1; multiply by ``flux_ratio`` for science counts). ``flux_err`` is inf where
        flagged.
    mask : ndarray of uint16 (ny, nx)
        :class:`MaskBits`; 0 = good.
    flux_ratio : float
        F_n / F_r used.
    shift : (dx, dy)
        Sub-pixel shift applied to the reference (reference pixel ``x + dx`` ↔ science ``x``),
        alignment plus fit.
    converged : bool
        Flux-ratio/shift fit converged (True when both were fixed by the configuration).
    sigma_science, sigma_reference : float
        Background noise σ_n, σ_r (counts).
    astrometric_sigma : (float, float)
        σ_x, σ_y used in eq. 30.
    flux_normalization : float
        F_S (eq. 42).
    n_sources : int
        Sources in the flux-ratio fit.
    alignment : str
        How the reference was put on the science grid: "identity", "translation",
        "wcs-reproject" or "star-matching".
    subimages : astropy.table.Table or None
        Per-tile values in sub-image mode.
    config : dict
        Effective configuration.
    """

    difference: np.ndarray
    difference_psf: np.ndarray
    flux_zeropoint: float
    score: np.ndarray
    score_corr: np.ndarray
    flux: np.ndarray
    flux_err: np.ndarray
    mask: np.ndarray
    flux_ratio: float
    shift: tuple[float, float]
    converged: bool
    sigma_science: float
    sigma_reference: float
    astrometric_sigma: tuple[float, float]
    flux_normalization: float
    n_sources: int
    alignment: str
    subimages: Any = None
    config: dict = field(default_factory=dict)

    @property
    def good(self) -> np.ndarray:
        """Boolean map of unflagged pixels."""
        return self.mask == 0

    def to_table(self):
        """Scalar results as a one-row astropy Table (per-tile rows in sub-image mode)."""
        from astropy.table import Table

        if self.subimages is not None:
            return self.subimages.copy()
        return Table(
            {
                "flux_ratio": [self.flux_ratio],
                "dx": [self.shift[0]],
                "dy": [self.shift[1]],
                "flux_zeropoint": [self.flux_zeropoint],
                "flux_normalization": [self.flux_normalization],
                "sigma_science": [self.sigma_science],
                "sigma_reference": [self.sigma_reference],
                "sigma_x": [self.astrometric_sigma[0]],
                "sigma_y": [self.astrometric_sigma[1]],
                "n_sources": [self.n_sources],
                "converged": [self.converged],
                "alignment": [self.alignment],
            }
        )

    def measure(self, x, y):
        """Forced photometry at sub-pixel positions (cubic interpolation of the products).

        Parameters
        ----------
        x, y : array_like
            Science-frame pixel positions.

        Returns
        -------
        astropy.table.Table
            ``x``, ``y``, ``flux``, ``flux_err``, ``score_corr``, ``mask`` (OR of the mask
            bits of the 4 nearest pixels).
        """
        from astropy.table import Table

        x = np.atleast_1d(np.asarray(x, float))
        y = np.atleast_1d(np.asarray(y, float))
        coords = [y, x]
        flux = ndimage.map_coordinates(self.flux, coords, order=3, mode="nearest")
        score_corr = ndimage.map_coordinates(self.score_corr, coords, order=3, mode="nearest")
        err = np.where(np.isfinite(self.flux_err), self.flux_err, 0.0)
        flux_err = ndimage.map_coordinates(err, coords, order=1, mode="nearest")
        ny, nx = self.mask.shape
        bits = np.zeros(len(x), np.uint16)
        for ddx in (0, 1):
            for ddy in (0, 1):
                ix = np.clip(np.floor(x).astype(int) + ddx, 0, nx - 1)
                iy = np.clip(np.floor(y).astype(int) + ddy, 0, ny - 1)
                bits |= self.mask[iy, ix]
        flux_err = np.where(bits == 0, flux_err, np.inf)
        return Table(
            {
                "x": x,
                "y": y,
                "flux": flux,
                "flux_err": flux_err,
                "score_corr": score_corr,
                "mask": bits,
            }
        )


# ----------------------------------------------------------------------------- helpers


def _bit(flag: MaskBits) -> np.uint16:
    return np.uint16(int(flag))


def _grow(mask: np.ndarray, radius: int, *, square: bool = False, tile: int = 256) -> np.ndarray:
    """``mask`` dilated by ``radius`` pixels (diamond, or a square with ``square``).

    Works on the tiles that hold a True pixel only (masks are sparse: saturated stars,
    holes, edge bands), so the cost follows the masked area, not the image size.
    """
    out = np.array(mask, dtype=bool, copy=True)
    radius = int(radius)
    if radius <= 0 or not out.any():
        return out
    ny, nx = mask.shape
    tile = max(tile, 4 * radius)
    rows = np.add.reduceat(mask.any(axis=1), np.arange(0, ny, tile)) > 0
    structure = np.ones((3, 3), bool) if square else None
    for ty in np.flatnonzero(rows):
        y0, y1 = int(ty) * tile, min((int(ty) + 1) * tile, ny)
        cols = np.add.reduceat(mask[y0:y1].any(axis=0), np.arange(0, nx, tile)) > 0
        for tx in np.flatnonzero(cols):
            x0, x1 = int(tx) * tile, min((int(tx) + 1) * tile, nx)
            ya, yb = max(y0 - radius, 0), min(y1 + radius, ny)
            xa, xb = max(x0 - radius, 0), min(x1 + radius, nx)
            # only this tile's True pixels, grown into the surrounding window
            seed = np.zeros((yb - ya, xb - xa), bool)
            seed[y0 - ya : y1 - ya, x0 - xa : x1 - xa] = mask[y0:y1, x0:x1]
            out[ya:yb, xa:xb] |= ndimage.binary_dilation(
                seed, structure=structure, iterations=radius
            )
    return out


def _interp_axis(values: np.ndarray, coords: np.ndarray, axis: int) -> np.ndarray:
    """Linear interpolation of ``values`` along ``axis`` at fractional indices (clamped)."""
    n = values.shape[axis]
    c = np.clip(coords, 0, n - 1)
    i0 = np.minimum(np.floor(c).astype(int), n - 2) if n > 1 else np.zeros(len(c), int)
    w = (c - i0)[:, None] if axis == 0 else (c - i0)[None, :]
    out = np.take(values, i0, axis=axis)
    step = np.take(values, np.minimum(i0 + 1, n - 1), axis=axis)
    step -= out
    step *= w
    out += step
    return out


def _as_exposure(image, name: str) -> Exposure:
    if isinstance(image, Exposure):
        return image
    arr = np.asarray(image, dtype=float)
    if arr.ndim != 2:
        raise DataError(f"{name} must be an Exposure or a 2-D array, got shape {arr.shape}")
    return Exposure(data=arr, mask=~np.isfinite(arr))


def _label(exposure: Exposure, name: str) -> str:
    return exposure.filename or name


def _saturation_level(exposure: Exposure, override: float | None) -> float | None:
    if override is not None:
        return float(override)
    meta = exposure.meta if isinstance(exposure.meta, dict) else {}
    if meta.get("saturate") is not None:
        return float(meta["saturate"])
    header = meta.get("header")
    if header is not None and header.get("SATURATE") is not None:
        return float(header["SATURATE"])
    return _clipped_level(exposure)


def _clipped_level(exposure: Exposure, *, min_pixels: int = 5) -> float | None:
    """The level at which an image without SATURATE was clipped: its maximum, when at
    least ``min_pixels`` unmasked pixels share it exactly (flat-topped saturated stars),
    else None. Noise never repeats a maximum that often."""
    good = ~exposure.mask
    if not good.any():
        return None
    top = float(np.max(exposure.data, where=good, initial=-np.inf))
    count = int(np.count_nonzero((exposure.data == top) & good))
    if count >= min_pixels:
        log.info(
            "%s: no SATURATE; %d pixels share the maximum %.6g: taken as the saturation level",
            _label(exposure, "image"),
            count,
            top,
        )
        return top
    return None


def _check_wcs(wcs, label: str) -> None:
    """A :class:`HeaderError` naming the image and the keyword of a non-finite WCS value."""
    core = wcs.wcs
    arrays = [("CRPIX", core.crpix), ("CRVAL", core.crval), ("CDELT", core.cdelt)]
    arrays.append(("CD", core.cd) if core.has_cd() else ("PC", core.pc))
    for key, values in arrays:
        values = np.atleast_1d(np.asarray(values, dtype=float))
        bad = np.argwhere(~np.isfinite(values))
        if len(bad):
            index = bad[0] + 1
            card = f"{key}{index[0]}" if values.ndim == 1 else f"{key}{index[0]}_{index[1]}"
            raise HeaderError(
                f"{label}: WCS keyword {card} is not finite ({float(values[tuple(bad[0])])!r})",
                filename=label,
                key=card,
            )


def _check_not_constant(data: np.ndarray, bad: np.ndarray, label: str) -> None:
    """A :class:`DataError` when every usable pixel holds the same value (no image)."""
    good = ~bad
    low = float(np.min(data, where=good, initial=np.inf))
    high = float(np.max(data, where=good, initial=-np.inf))
    if low == high:
        raise DataError(
            f"{label}: every usable pixel has the same value ({low:g}); "
            "a constant image has no noise, stars or sky to subtract"
        )


@dataclass(eq=False)
class _Aligned:
    ref_data: np.ndarray
    ref_mask: np.ndarray
    ref_saturated: np.ndarray
    edge: np.ndarray
    shift: tuple[float, float]
    method: str


def _integer_shift(arr, tx: int, ty: int, fill):
    """``out[y, x] = arr[y + ty, x + tx]`` with ``fill`` outside."""
    ny, nx = arr.shape
    out = np.full(arr.shape, fill, dtype=arr.dtype)
    ys, yd = (slice(ty, ny), slice(0, ny - ty)) if ty >= 0 else (slice(0, ny + ty), slice(-ty, ny))
    xs, xd = (slice(tx, nx), slice(0, nx - tx)) if tx >= 0 else (slice(0, nx + tx), slice(-tx, nx))
    if ys.stop > ys.start and xs.stop > xs.start:
        out[yd, xd] = arr[ys, xs]
    return out


def _translation(
    offsets: np.ndarray, ref: Exposure, ref_sat: np.ndarray, shape, method
) -> _Aligned:
    d = offsets.mean(axis=0)
    tx, ty = int(np.round(d[0])), int(np.round(d[1]))
    fx, fy = float(d[0] - tx), float(d[1] - ty)
    outside = _integer_shift(np.zeros(ref.shape, bool), tx, ty, True)
    data = _integer_shift(ref.data, tx, ty, 0.0)
    mask = _integer_shift(ref.mask, tx, ty, False)
    sat = _integer_shift(ref_sat, tx, ty, False)
    if ref.shape != tuple(shape):  # different sizes: crop/pad to the science shape
        data, mask, sat, outside = (
            _fit_shape(a, shape, fill)
            for a, fill in ((data, 0.0), (mask, False), (sat, False), (outside, True))
        )
    if fx or fy:  # the Fourier shift moves content by a fraction of a pixel: grow masks by 1
        mask, sat, outside = (_grow(a, 1, square=True) for a in (mask, sat, outside))
    return _Aligned(data, mask, sat, outside, (fx, fy), method)


def _fit_shape(arr, shape, fill):
    out = np.full(shape, fill, dtype=arr.dtype)
    ny, nx = min(shape[0], arr.shape[0]), min(shape[1], arr.shape[1])
    out[:ny, :nx] = arr[:ny, :nx]
    return out


def _align(science: Exposure, reference: Exposure, ref_sat: np.ndarray) -> _Aligned:
    """Put the reference on the science pixel grid (translation by Fourier shift when possible)."""
    shape = science.shape
    if science.wcs is not None and reference.wcs is not None:
        _check_wcs(science.wcs, f"science image {_label(science, 'science')}")
        _check_wcs(reference.wcs, f"reference image {_label(reference, 'reference')}")
        ny, nx = shape
        gx, gy = np.meshgrid(np.linspace(0, nx - 1, 5), np.linspace(0, ny - 1, 5))
        try:
            world = science.wcs.pixel_to_world(gx.ravel(), gy.ravel())
            rx, ry = reference.wcs.world_to_pixel(world)
        except (ValueError, ArithmeticError) as exc:  # astropy's WcsError is a ValueError
            raise AlignmentError(
                f"science ({_label(science, 'science')}) and reference "
                f"({_label(reference, 'reference')}): cannot map pixels through their WCSs: "
                f"{type(exc).__name__}: {' '.join(str(exc).split())}"
            ) from exc
        offsets = np.column_stack([rx - gx.ravel(), ry - gy.ravel()])
        if not np.all(np.isfinite(offsets)):
            raise AlignmentError(
                f"science ({_label(science, 'science')}) and reference ({_label(reference, 'reference')}) "
                "WCSs do not overlap"
            )
        if np.ptp(offsets, axis=0).max() < 0.01:
            if np.allclose(offsets, 0.0, atol=1e-6) and reference.shape == shape:
                return _Aligned(
                    reference.data,
                    reference.mask,
                    ref_sat,
                    np.zeros(shape, bool),
                    (0.0, 0.0),
                    "identity",
                )
            return _translation(offsets, reference, ref_sat, shape, "translation")
        from reproject import reproject_interp

        log.info("reprojecting the reference onto the science grid (not a pure translation)")
        header = science.wcs.to_header()
        data, footprint = reproject_interp(
            (reference.data, reference.wcs), header, shape_out=shape, order="bicubic"
        )
        badf, _ = reproject_interp(
            (reference.mask.astype(float), reference.wcs), header, shape_out=shape, order="bilinear"
        )
        satf, _ = reproject_interp(
            (ref_sat.astype(float), reference.wcs), header, shape_out=shape, order="bilinear"
        )
        return _resampled(data, ~(footprint > 0), badf, satf, "wcs-reproject")
    if reference.shape == shape and (science.wcs is None and reference.wcs is None):
        return _Aligned(
            reference.data, reference.mask, ref_sat, np.zeros(shape, bool), (0.0, 0.0), "identity"
        )
    # no usable WCS pair: star matching
    from skyscene.align import find_transform, warp

    try:
        result = find_transform(
            reference.data, science.data, mask=reference.mask, reference_mask=science.mask
        )
    except AlignmentError as exc:
        raise DataError(
            f"science shape {shape} and reference shape {reference.shape} differ "
            f"(science {_label(science, 'science')}, reference {_label(reference, 'reference')}) "
            f"and there is no WCS pair to align them; star matching failed: {exc}"
        ) from exc
    # result maps reference pixels to science pixels. A transform that moves every
    # science pixel by the same amount, to within its own uncertainty (the rotation and
    # scale of a fit to n stars of residual rms ε move the corners by ~ε sqrt(6/n)), is
    # a translation: applied as a Fourier shift (white noise), its sub-pixel part refined
    # by the flux-ratio fit. Otherwise the reference is resampled.
    ny, nx = shape
    gx, gy = np.meshgrid(np.linspace(0, nx - 1, 5), np.linspace(0, ny - 1, 5))
    sci_xy = np.column_stack([gx.ravel(), gy.ravel()])
    offsets = result.inverse(sci_xy) - sci_xy
    tolerance = 0.1
    if result.n_matches > 0 and math.isfinite(result.rms):
        tolerance = max(tolerance, 3.0 * result.rms * math.sqrt(6.0 / result.n_matches))
    if np.ptp(offsets, axis=0).max() < tolerance:
        return _translation(offsets, reference, ref_sat, shape, "star-matching")
    log.info("star matching: an affine transform (not a translation); resampling the reference")
    data = warp(reference.data, result, shape, order=3)
    badf = warp(reference.mask.astype(float), result, shape, order=1)
    satf = warp(ref_sat.astype(float), result, shape, order=1)
    return _resampled(data, np.zeros(shape, bool), badf, satf, "star-matching")


def _resampled(data, outside, bad_fraction, sat_fraction, method: str) -> _Aligned:
    """A resampled reference: pixels outside it or non-finite are edge (data 0); any
    weight of a masked/saturated input pixel (NaN counts as masked) flags the output."""
    edge = outside | ~np.isfinite(data)
    return _Aligned(
        np.where(edge, 0.0, data),
        np.nan_to_num(bad_fraction, nan=1.0) > 0,
        np.nan_to_num(sat_fraction) > 0,
        edge,
        (0.0, 0.0),
        method,
    )


#: A hole (or the frame border) with a pixel above this many σ hides a bright source.
_BRIGHT_HOLE = 50.0


def _subtract_and_fill(
    data: np.ndarray,
    background: np.ndarray,
    bad: np.ndarray,
    sigma: float,
    *,
    outside: np.ndarray | None = None,
    dtype=np.float32,
    max_hole: int = 4000,
    bright: float = _BRIGHT_HOLE,
) -> tuple[np.ndarray, np.ndarray]:
    """Background-subtracted image with bad pixels filled smoothly for the FFT.

    Holes (connected bad pixels, not ``outside`` the overlap) are filled by normalised
    Gaussian convolution of their surroundings (widths 1.5, 4, 10 pixels), which keeps
    the FFT from ringing; holes larger than ``max_hole`` pixels and the ``outside`` region
    are set to 0, the background. The pixels they influence are flagged by their
    contamination weight.

    Returns
    -------
    filled : ndarray of ``dtype``
    bright_holes : ndarray of bool
        Holes that hide bright flux (saturated cores): the filled peak or an unmasked
        pixel bordering the hole (within 2 pixels) above ``bright`` σ.
    """
    out = np.subtract(data, background, dtype=dtype)
    bright_holes = np.zeros(bad.shape, bool)
    if not bad.any():
        return out, bright_holes
    np.copyto(out, 0, where=bad)
    holes = bad if outside is None else bad & ~outside
    labels, _n = ndimage.label(holes)
    pad = 12
    ny, nx = data.shape
    for k, sl in enumerate(ndimage.find_objects(labels), start=1):
        if sl is None:
            continue
        y0, y1 = max(sl[0].start - pad, 0), min(sl[0].stop + pad, ny)
        x0, x1 = max(sl[1].start - pad, 0), min(sl[1].stop + pad, nx)
        hole = labels[y0:y1, x0:x1] == k
        if hole.sum() > max_hole:
            continue
        region = hole.copy()
        good = ~bad[y0:y1, x0:x1]
        vals = np.where(good, out[y0:y1, x0:x1], 0.0)
        border = ndimage.binary_dilation(region, iterations=2) & good
        edge_peak = float(vals[border].max()) if border.any() else -np.inf
        block = out[y0:y1, x0:x1]
        for width in (1.5, 4.0, 10.0):
            num = ndimage.gaussian_filter(vals, width, mode="constant")
            den = ndimage.gaussian_filter(good.astype(float), width, mode="constant")
            ok = hole & (den > 1e-3)
            block[ok] = num[ok] / den[ok]
            hole &= ~ok
            if not hole.any():
                break
        if max(float(block[region].max()), edge_peak) > bright * sigma:
            bright_holes[y0:y1, x0:x1] |= region
    return out, bright_holes


def _hidden_flux(filled, bad, holes, psf, sigma) -> np.ndarray | None:
    """Flux (counts per pixel, ≥ 0) that the fill of each bright hole may lack.

    Per connected hole: the image PSF is fitted (amplitude, at each hole pixel as the
    centre) to the unmasked ring 1–3 pixels around the hole, and the best fit's model
    minus the filled values is the hidden flux; it is at least the hole's peak level
    (brightest ring pixel) minus the fill (a core is no fainter than its border). None
    when there is no bright hole.
    """
    if not holes.any():
        return None
    hidden = np.zeros(filled.shape, filled.dtype)
    h = psf.shape[0] // 2
    labels, _n = ndimage.label(holes)
    ny, nx = filled.shape
    for k, sl in enumerate(ndimage.find_objects(labels), start=1):
        if sl is None:
            continue
        y0, y1 = max(sl[0].start - 3, 0), min(sl[0].stop + 3, ny)
        x0, x1 = max(sl[1].start - 3, 0), min(sl[1].stop + 3, nx)
        hole = labels[y0:y1, x0:x1] == k
        block = filled[y0:y1, x0:x1]
        ring = ndimage.binary_dilation(hole, iterations=3) & ~bad[y0:y1, x0:x1]
        hy, hx = np.nonzero(hole)
        fill = block[hole].astype(float)
        level = fill.max()
        if ring.any():
            ry, rx = np.nonzero(ring)
            v = block[ring].astype(float)
            level = max(level, float(v.max()))
            dy, dx = ry[None, :] - hy[:, None], rx[None, :] - hx[:, None]
            inside = (np.abs(dy) <= h) & (np.abs(dx) <= h)
            m = np.where(inside, psf[np.clip(dy + h, 0, 2 * h), np.clip(dx + h, 0, 2 * h)], 0.0)
            mm = (m * m).sum(axis=1)
            ok = mm > 0
            if ok.any():
                amp = np.where(ok, (m @ v) / np.where(ok, mm, 1.0), 0.0)
                cost = np.where(ok, ((v[None, :] - amp[:, None] * m) ** 2).sum(axis=1), np.inf)
                best = int(np.argmin(cost))
                if amp[best] > 0:
                    ey, ex = hy - hy[best], hx - hx[best]
                    inside = (np.abs(ey) <= h) & (np.abs(ex) <= h)
                    model = np.where(
                        inside,
                        amp[best] * psf[np.clip(ey + h, 0, 2 * h), np.clip(ex + h, 0, 2 * h)],
                        0.0,
                    )
                    fill_gap = np.maximum(model - fill, level - fill)
                    hidden[y0:y1, x0:x1][hole] = np.maximum(fill_gap, 0.0)
                    continue
        hidden[y0:y1, x0:x1][hole] = np.maximum(level - fill, 0.0)
    return hidden


@dataclass(eq=False)
class _Prepared:
    new: np.ndarray
    ref: np.ndarray
    bits: np.ndarray
    bad_new: np.ndarray
    bad_ref: np.ndarray
    sigma_new: float
    sigma_ref: float
    gain_new: float | None
    gain_ref: float | None
    shift: tuple[float, float]
    alignment: str
    bright_holes: np.ndarray
    holes_new: np.ndarray | None = None
    holes_ref: np.ndarray | None = None


def _background(data, bad, config: ZogyConfig, name: str):
    from skyscene.background import estimate_background

    if bad.all():
        raise DataError(f"{name}: every pixel is masked or non-finite")
    if config.dtype == np.float32 and data.dtype == np.float64:
        # sep works in float32 internally: the same map, with less memory traffic
        data = data.astype(np.float32)
    bkg = estimate_background(
        data,
        mask=bad,
        box_size=config.background_box,
        filter_size=config.background_filter,
        rms_map=False,
    )
    sigma = float(bkg.rms_level)
    if not (math.isfinite(sigma) and sigma > 0):
        raise DataError(f"{name}: cannot measure the background noise (rms={sigma!r})")
    return bkg, sigma


def _gain(exposure: Exposure, override, level: float, sigma: float, config: ZogyConfig, name: str):
    if not config.source_noise:
        return None
    if override is not None:
        return float(override)
    if exposure.gain:
        return float(exposure.gain)
    if level > 3 * sigma:
        gain = level / sigma**2  # Poisson-dominated sky: an upper bound of the source noise
        log.info("%s: no GAIN; effective gain %.3g e-/count from sky level and noise", name, gain)
        return gain
    warnings.warn(
        f"{name}: no GAIN and a sky-subtracted image (level {level:.3g}); the source-noise "
        "terms of S_corr (eqs. 26-27) are left out; set ZogyConfig.gain_*",
        FlaggedDataWarning,
        stacklevel=3,
    )
    return None


def _render_psf(psf, size: int, x: float, y: float, label: str = "PSF") -> np.ndarray:
    from skyscene.psf.validate import validate_psf_image

    at = getattr(psf, "at", None)
    model = at(x, y) if at is not None else psf
    stamp = np.asarray(model.render((size, size)), dtype=float)
    if stamp.shape != (size, size) or not np.all(np.isfinite(stamp)) or not stamp.sum() > 0:
        raise DataError(f"{label}: PSF model {model!r} rendered an unusable stamp")
    # any PSF object (not only PixelizedPSF images) must give a usable stamp
    validate_psf_image(stamp, label=f"{label} at ({x:.0f}, {y:.0f})")
    return stamp / stamp.sum()


# ----------------------------------------------------------------------------- Zogy


class Zogy:
    """ZOGY proper image subtraction (Zackay, Ofek & Gal-Yam 2016, ApJ 830, 27).

    Parameters
    ----------
    config : ZogyConfig, optional
        Settings; default ``ZogyConfig()``.

    Notes
    -----
    ``Zogy(config)(science, reference)`` runs, on the science pixel grid:

    1. alignment of the reference (WCS; a pure translation is applied as an integer
       shift plus a Fourier phase ramp that keeps the noise white; otherwise
       ``reproject``; without WCS, star matching with :mod:`skyscene.align`);
    2. masks: input masks, saturation (grown), non-finite pixels and the no-overlap
       region, filled smoothly for the FFT;
    3. mesh backgrounds subtracted, σ_n and σ_r from their rms;
    4. PSFs from ``Exposure.psf`` or estimated from stars
       (:func:`skyscene.diffim.estimate_psf`);
    5. flux ratio F_n/F_r and sub-pixel shift (:func:`skyscene.diffim.fit_flux_ratio`);
    6. D, P_D, F_D, S, S_corr, flux and flux error (eqs. 13–17, 25–30, 41–43);
    7. in sub-image mode, steps 4–6 per overlapping tile, keeping each tile's core.

    Examples
    --------
    >>> from skyscene.datasets.pairs import simulate_pair
    >>> pair = simulate_pair(shape=(384, 384), rng=3, n_transients=3, transient_snr=20.0)
    >>> result = Zogy()(pair.science, pair.reference)
    >>> result.score_corr.shape, round(result.flux_ratio, 2)
    ((384, 384), 0.85)
    """

    def __init__(self, config: ZogyConfig | None = None):
        if config is not None and not isinstance(config, ZogyConfig):
            raise ParameterError(f"config must be a ZogyConfig, got {type(config).__name__}")
        self.config = config or ZogyConfig()

    def __repr__(self) -> str:
        return f"Zogy({self.config!r})"

    # -- preparation ----------------------------------------------------------------
    def _prepare(self, science: Exposure, reference: Exposure) -> _Prepared:
        cfg = self.config
        sci_name, ref_name = _label(science, "science"), _label(reference, "reference")
        if science.mask.all():
            raise DataError(f"science image {sci_name}: every pixel is masked or non-finite")
        if reference.mask.all():
            raise DataError(f"reference image {ref_name}: every pixel is masked or non-finite")
        _check_not_constant(science.data, science.mask, f"science image {sci_name}")
        _check_not_constant(reference.data, reference.mask, f"reference image {ref_name}")
        sat_n_level = _saturation_level(science, cfg.saturation_science)
        sat_r_level = _saturation_level(reference, cfg.saturation_reference)
        sat_n = (
            (science.data >= sat_n_level)
            if sat_n_level is not None
            else np.zeros(science.shape, bool)
        )
        sat_r = (
            (reference.data >= sat_r_level)
            if sat_r_level is not None
            else np.zeros(reference.shape, bool)
        )
        aligned = _align(science, reference, sat_r)
        shape = science.shape
        sat_n = _grow(sat_n, cfg.saturation_grow)
        sat_r = _grow(aligned.ref_saturated, cfg.saturation_grow)
        bits = np.zeros(shape, np.uint16)
        bits[science.mask] |= _bit(MaskBits.SCIENCE_MASKED)
        bits[aligned.ref_mask] |= _bit(MaskBits.REFERENCE_MASKED)
        bits[sat_n | sat_r] |= _bit(MaskBits.SATURATED)
        bits[aligned.edge] |= _bit(MaskBits.EDGE)
        bad_new = science.mask | sat_n | aligned.edge
        bad_ref = aligned.ref_mask | sat_r | aligned.edge
        if bad_new.all() or bad_ref.all():
            raise DataError(
                f"no pixel of {sci_name} is usable in both images (all masked, saturated or outside the overlap)"
            )
        bkg_n, sigma_n = _background(science.data, bad_new, cfg, f"science image {sci_name}")
        bkg_r, sigma_r = _background(aligned.ref_data, bad_ref, cfg, f"reference image {ref_name}")
        new, holes_n = _subtract_and_fill(
            science.data, bkg_n.background, bad_new, sigma_n, outside=aligned.edge, dtype=cfg.dtype
        )
        level_n = bkg_n.level
        del bkg_n
        ref, holes_r = _subtract_and_fill(
            aligned.ref_data,
            bkg_r.background,
            bad_ref,
            sigma_r,
            outside=aligned.edge,
            dtype=cfg.dtype,
        )
        level_r = bkg_r.level
        del bkg_r
        holes = holes_n | holes_r | sat_n | sat_r
        # the frame's border hides what lies beyond it: a bright source cut by it
        for arr, sigma in ((new, sigma_n), (ref, sigma_r)):
            for side in (np.s_[0, :], np.s_[-1, :], np.s_[:, 0], np.s_[:, -1]):
                holes[side] |= arr[side] > _BRIGHT_HOLE * sigma
        gain_n = _gain(
            science, cfg.gain_science, level_n, sigma_n, cfg, f"science image {sci_name}"
        )
        gain_r = _gain(
            reference, cfg.gain_reference, level_r, sigma_r, cfg, f"reference image {ref_name}"
        )
        log.info(
            "ZOGY inputs: sigma_n=%.4g sigma_r=%.4g alignment=%s shift=(%.3f, %.3f)",
            sigma_n,
            sigma_r,
            aligned.method,
            *aligned.shift,
        )
        return _Prepared(
            new,
            ref,
            bits,
            bad_new,
            bad_ref,
            sigma_n,
            sigma_r,
            gain_n,
            gain_r,
            aligned.shift,
            aligned.method,
            holes,
            holes_n | sat_n,
            holes_r | sat_r,
        )

    def _psfs(self, science, reference, prep: _Prepared, region, center):
        """PSF stamps of the science and reference image for one region."""
        from skyscene.diffim.psf_estimation import estimate_psf

        cfg = self.config
        out = []
        for exposure, data, bad, sigma, name, sat in (
            (science, prep.new, prep.bad_new, prep.sigma_new, "science", cfg.saturation_science),
            (
                reference,
                prep.ref,
                prep.bad_ref,
                prep.sigma_ref,
                "reference",
                cfg.saturation_reference,
            ),
        ):
            use_model = exposure.psf is not None and cfg.psf in ("auto", "exposure")
            if cfg.psf == "exposure" and exposure.psf is None:
                raise ParameterError(
                    f"ZogyConfig.psf='exposure' but the {name} image {_label(exposure, name)} has no PSF"
                )
            if use_model:
                # the reference's own pixel frame: positions differ by the alignment offset only
                out.append(
                    _render_psf(
                        exposure.psf,
                        cfg.psf_size,
                        center[0] + exposure.origin[0],
                        center[1] + exposure.origin[1],
                        f"{name} image {_label(exposure, name)}: PSF",
                    )
                )
            else:
                level = _saturation_level(exposure, sat)
                est = estimate_psf(
                    data[region],
                    sigma=sigma,
                    mask=bad[region],
                    size=cfg.psf_size,
                    saturation=level,
                    label=f"{name} image {_label(exposure, name)}",
                )
                out.append(est.psf.render((cfg.psf_size, cfg.psf_size)))
        return out[0], out[1]

    def _fit(self, spectra, prep: _Prepared, bad, beta0: float) -> FluxRatioFit:
        cfg = self.config
        if cfg.flux_ratio is not None or not cfg.fit_flux_ratio:
            return FluxRatioFit(
                flux_ratio=float(cfg.flux_ratio if cfg.flux_ratio is not None else beta0),
                shift=prep.shift,
                astrometric_sigma=(0.0, 0.0),
                n_sources=0,
                n_iter=0,
                converged=True,
            )
        return fit_flux_ratio(
            spectra,
            sigma_new=prep.sigma_new,
            sigma_ref=prep.sigma_ref,
            flux_ratio=beta0,
            shift=prep.shift,
            bad=bad,
            fit_shift=cfg.fit_shift,
            min_sources=cfg.min_sources,
            max_iter=cfg.max_iter,
        )

    def _run_region(
        self, science, reference, prep, region, center, beta0, *, fixed: FluxRatioFit | None = None
    ):
        """PSFs, flux-ratio fit (unless ``fixed``) and products for one region."""
        cfg = self.config
        psf_new, psf_ref = self._psfs(science, reference, prep, region, center)
        bad_new, bad_ref = prep.bad_new[region], prep.bad_ref[region]
        spectra = Spectra.compute(
            prep.new[region], prep.ref[region], psf_new, psf_ref, dtype=cfg.dtype
        )
        fit = fixed if fixed is not None else self._fit(spectra, prep, bad_new | bad_ref, beta0)
        sig_ast = (
            cfg.astrometric_sigma if cfg.astrometric_sigma is not None else fit.astrometric_sigma
        )
        sig_ast = (float(sig_ast[0]), float(sig_ast[1]))
        products = zogy_products(
            spectra,
            sigma_new=prep.sigma_new,
            sigma_ref=prep.sigma_ref,
            flux_ratio=fit.flux_ratio,
            gain_new=prep.gain_new,
            gain_ref=prep.gain_ref,
            shift=fit.shift,
            astrometric_sigma=sig_ast,
            bad_new=bad_new,
            bad_ref=bad_ref,
            psf_size=cfg.psf_size,
            difference_background=self._difference_background
            if cfg.difference_background
            else None,
            hidden_new=_hidden_flux(
                prep.new[region],
                prep.bad_new[region],
                prep.holes_new[region],
                psf_new,
                prep.sigma_new,
            ),
            hidden_ref=_hidden_flux(
                prep.ref[region],
                prep.bad_ref[region],
                prep.holes_ref[region],
                psf_ref,
                prep.sigma_ref,
            ),
        )
        return products, fit, sig_ast

    def _difference_background(self, difference, bad):
        """Mesh background of D, estimated on D binned 4 x 4 (D is white, the map smooth)."""
        from skyscene.background import estimate_background

        if bad.all():
            return np.zeros_like(difference)
        box = self.config.background_box
        ny, nx = difference.shape
        b = 4 if box % 4 == 0 and min(ny, nx) >= 4 * box else 1
        if b == 1:
            return estimate_background(
                difference,
                mask=bad,
                box_size=box,
                filter_size=self.config.background_filter,
                rms_map=False,
            ).background.astype(difference.dtype, copy=False)
        my, mx = ny // b * b, nx // b * b
        binned = difference[:my, :mx].reshape(my // b, b, mx // b, b).mean(axis=(1, 3))
        bad_b = bad[:my, :mx].reshape(my // b, b, mx // b, b).any(axis=3).any(axis=1)
        if bad_b.all():
            return np.zeros_like(difference)
        coarse = estimate_background(
            binned,
            mask=bad_b,
            box_size=box // b,
            filter_size=self.config.background_filter,
            rms_map=False,
        ).background
        # bilinear back to full resolution (binned pixel centres at (b - 1) / 2 + b i)
        yc = (np.arange(ny) - (b - 1) / 2.0) / b
        xc = (np.arange(nx) - (b - 1) / 2.0) / b
        rows = _interp_axis(coarse.astype(difference.dtype), yc.astype(difference.dtype), axis=0)
        return _interp_axis(rows, xc.astype(difference.dtype), axis=1)

    def __call__(self, science, reference) -> ZogyResult:
        """Subtract ``reference`` from ``science``.

        Parameters
        ----------
        science, reference : Exposure or ndarray
            The new image and the (deeper) reference. Arrays are taken as aligned
            images without PSF (PSFs are then estimated from stars).

        Returns
        -------
        ZogyResult

        Raises
        ------
        DataError
            All-masked input, unusable shapes (different and not alignable), or no
            usable stars for PSF estimation.

        Warns
        -----
        ConvergenceWarning
            The flux-ratio fit did not converge (``converged=False`` in the result).
        """
        cfg = self.config
        science = _as_exposure(science, "science")
        reference = _as_exposure(reference, "reference")
        prep = self._prepare(science, reference)
        beta0 = 1.0
        if science.zeropoint is not None and reference.zeropoint is not None:
            beta0 = 10 ** (0.4 * (float(science.zeropoint) - float(reference.zeropoint)))
        shape = science.shape
        full = (slice(0, shape[0]), slice(0, shape[1]))
        center = ((shape[1] - 1) / 2.0, (shape[0] - 1) / 2.0)
        products, fit, sig_ast = self._run_region(science, reference, prep, full, center, beta0)
        subimages = None
        radius = products.kernel_radius
        if cfg.subimage_size is not None:
            tiles = partition(shape, cfg.subimage_size, cfg.subimage_border)
            if cfg.subimage_border < radius:
                warnings.warn(
                    f"ZogyConfig.subimage_border={cfg.subimage_border} is smaller than the ZOGY "
                    f"kernel radius {radius}; tile cores may show edge effects",
                    FlaggedDataWarning,
                    stacklevel=2,
                )
            if len(tiles) > 1:
                products, subimages = self._run_tiles(
                    science, reference, prep, tiles, fit, products
                )
        edge_width = cfg.edge_width if cfg.edge_width is not None else radius
        return self._finish(prep, products, fit, sig_ast, edge_width, subimages)

    def _run_tiles(self, science, reference, prep, tiles, global_fit, global_products):
        from astropy.table import Table

        from skyscene.errors import ConvergenceWarning

        shape = prep.new.shape
        arrays = {
            name: np.zeros(shape)
            for name in ("difference", "score", "score_corr", "flux", "flux_err")
        }
        contamination = np.zeros(shape)
        hidden_error = None
        rows = []
        for tile in tiles:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                products, fit, sig_ast = self._run_region(
                    science, reference, prep, tile.outer, tile.center, global_fit.flux_ratio
                )
            source = "tile"
            if not fit.converged:
                log.info(
                    "tile %s: flux-ratio fit failed (%d sources); using the global fit",
                    tile.core,
                    fit.n_sources,
                )
                products, fit, sig_ast = self._run_region(
                    science,
                    reference,
                    prep,
                    tile.outer,
                    tile.center,
                    global_fit.flux_ratio,
                    fixed=global_fit,
                )
                source = "global"
            for name, arr in arrays.items():
                arr[tile.core] = getattr(products, name)[tile.inner]
            if products.contamination is not None:
                contamination[tile.core] = products.contamination[tile.inner]
            if products.hidden_error is not None:
                if hidden_error is None:
                    hidden_error = np.zeros(shape)
                hidden_error[tile.core] = products.hidden_error[tile.inner]
            ys, xs = tile.core
            rows.append(
                {
                    "x0": xs.start,
                    "x1": xs.stop,
                    "y0": ys.start,
                    "y1": ys.stop,
                    "flux_ratio": fit.flux_ratio,
                    "dx": fit.shift[0],
                    "dy": fit.shift[1],
                    "sigma_x": sig_ast[0],
                    "sigma_y": sig_ast[1],
                    "n_sources": fit.n_sources,
                    "fit": source,
                    "converged": fit.converged,
                    "flux_zeropoint": products.flux_zeropoint,
                    "flux_normalization": products.flux_normalization,
                }
            )
        merged = dataclasses.replace(
            global_products, contamination=contamination, hidden_error=hidden_error, **arrays
        )
        return merged, Table(rows=rows)

    def _finish(
        self, prep: _Prepared, products, fit: FluxRatioFit, sig_ast, edge_width: int, subimages
    ) -> ZogyResult:
        cfg = self.config
        bits = prep.bits.copy()
        _ny, _nx = bits.shape
        w = int(max(edge_width, 0))
        if w:
            edge = np.zeros(bits.shape, bool)
            edge[:w] = edge[-w:] = True
            edge[:, :w] = edge[:, -w:] = True
            outside = (prep.bits & _bit(MaskBits.EDGE)) > 0
            edge |= _grow(outside, w)
            bits[edge] |= _bit(MaskBits.EDGE)
        near = np.zeros(bits.shape, bool)
        if products.contamination is not None:
            near |= products.contamination > cfg.contamination_limit
        if prep.bright_holes.any():
            # filled saturated/bright cores and bright sources cut by the frame: their
            # wings' PSF errors reach two kernel radii
            near |= _grow(prep.bright_holes, 2 * max(int(edge_width), 1), square=True)
        if products.hidden_error is not None:
            # where the flux missing from filled bright cores could move S by > the limit
            near |= products.hidden_error > cfg.hidden_flux_limit
        bits[near] |= _bit(MaskBits.NEAR_MASKED)
        del near
        nonfinite = ~np.isfinite(products.score_corr)
        for name in ("flux", "difference", "flux_err"):
            nonfinite |= ~np.isfinite(getattr(products, name))
        if nonfinite.any():
            bits[nonfinite] |= _bit(MaskBits.NONFINITE)
            log.warning("%d non-finite product pixels flagged NONFINITE", int(nonfinite.sum()))
        del nonfinite
        flagged = bits != 0
        direct = (
            bits
            & _bit(
                MaskBits.SCIENCE_MASKED
                | MaskBits.REFERENCE_MASKED
                | MaskBits.SATURATED
                | MaskBits.NONFINITE
            )
        ) > 0
        direct |= (prep.bits & _bit(MaskBits.EDGE)) > 0
        # the product arrays are this call's own: flag them in place
        difference = products.difference
        np.copyto(difference, 0, where=direct)
        del direct
        score, score_corr, flux, flux_err = (
            products.score,
            products.score_corr,
            products.flux,
            products.flux_err,
        )
        for arr in (score, score_corr, flux):
            np.copyto(arr, 0, where=flagged)
        np.copyto(flux_err, np.inf, where=flagged)
        n_good = int(flagged.size - np.count_nonzero(flagged))
        if n_good == 0:
            warnings.warn(
                "ZOGY: every output pixel is flagged (see the mask bits)",
                FlaggedDataWarning,
                stacklevel=3,
            )
        return ZogyResult(
            difference=difference,
            difference_psf=products.difference_psf,
            flux_zeropoint=products.flux_zeropoint,
            score=score,
            score_corr=score_corr,
            flux=flux,
            flux_err=flux_err,
            mask=bits,
            flux_ratio=fit.flux_ratio,
            shift=fit.shift,
            converged=fit.converged,
            sigma_science=prep.sigma_new,
            sigma_reference=prep.sigma_ref,
            astrometric_sigma=sig_ast,
            flux_normalization=products.flux_normalization,
            n_sources=fit.n_sources,
            alignment=prep.alignment,
            subimages=subimages,
            config=cfg.to_dict(),
        )


def zogy(science, reference, **config) -> ZogyResult:
    """Function twin of :class:`Zogy`: ``zogy(sci, ref, **settings)``.

    Keyword arguments are :class:`ZogyConfig` fields.
    """
    return Zogy(ZogyConfig(**config))(science, reference)
