"""Pixelised PSF from isolated, bright, unsaturated stars (for ZOGY without a PSF model)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from skyscene.errors import DataError, ParameterError

if TYPE_CHECKING:
    from skyscene.psf import PixelizedPSF

__all__ = ["PSFEstimate", "estimate_psf"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True, eq=False)
class PSFEstimate:
    """A PSF measured on stars.

    Attributes
    ----------
    psf : skyscene.psf.PixelizedPSF
        Native sampling (``oversampling=1``), odd size, unit sum.
    n_stars : int
        Stars in the stack.
    positions : ndarray, shape (n_stars, 2)
        ``(x, y)`` of the stars used.
    """

    psf: PixelizedPSF
    n_stars: int
    positions: np.ndarray


def _shift_stamp(stamp: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """Move the content of ``stamp`` by ``(dx, dy)`` pixels (Fourier shift, exact for band-limited)."""
    fy = np.fft.fftfreq(stamp.shape[0])[:, None]
    fx = np.fft.fftfreq(stamp.shape[1])[None, :]
    return np.real(np.fft.ifft2(np.fft.fft2(stamp) * np.exp(-2j * np.pi * (fx * dx + fy * dy))))


def estimate_psf(
    data,
    *,
    sigma: float,
    mask=None,
    size: int = 31,
    saturation: float | None = None,
    max_stars: int = 60,
    min_stars: int = 5,
    threshold: float = 5.0,
) -> PSFEstimate:
    """Stack isolated, bright, unsaturated point sources into a pixelised PSF.

    Parameters
    ----------
    data : ndarray, shape (ny, nx)
        Background-subtracted image, counts.
    sigma : float
        Background noise per pixel.
    mask : ndarray of bool, optional
        True = bad pixel; stars whose stamp touches one are skipped.
    size : int
        Stamp size (odd), pixels.
    saturation : float, optional
        Saturation level of the background-subtracted image; stars peaking above half
        of it are skipped (non-linearity).
    max_stars : int
        Brightest usable stars stacked.
    min_stars : int
        Fewer usable stars raise :class:`~skyscene.errors.DataError`.
    threshold : float
        Detection threshold (sigma per pixel).

    Returns
    -------
    PSFEstimate

    Raises
    ------
    DataError
        Fewer than ``min_stars`` usable stars.

    Notes
    -----
    Candidates are detections with clean sep flags and S/N > 30, no other detection
    within ``size`` pixels, no bad pixel in the stamp, and a size (``sqrt(a b)``) within
    15 % of the stellar locus (the densest ±10 % window of sizes), which rejects
    galaxies. Each stamp is recentred on its windowed centroid by a Fourier shift,
    after subtracting the median of its outer ring, normalised to unit sum, refined
    by a linearised shift fit against the stack (outliers dropped); the stack is the
    per-pixel median; the wings are tapered
    to zero over the outer quarter of the stamp radius.
    """
    from scipy.spatial import cKDTree

    from skyscene.detection import find_sources
    from skyscene.psf import PixelizedPSF

    size = int(size)
    if size < 5 or size % 2 == 0:
        raise ParameterError(f"PSF size must be odd and >= 5, got {size!r}")
    data = np.asarray(data, dtype=float)
    bad = np.zeros(data.shape, bool) if mask is None else np.asarray(mask, bool)
    if bad.all():
        raise DataError("PSF estimation: every pixel is masked")
    if not (np.isfinite(sigma) and sigma > 0):
        raise ParameterError(f"sigma must be positive, got {sigma!r}")
    variance = np.full(data.shape, float(sigma) ** 2)
    sources = find_sources(
        data, variance=variance, mask=bad, threshold=threshold, background=0.0, minarea=5
    )
    half = size // 2
    ny, nx = data.shape
    n_found = len(sources)
    if n_found == 0:
        raise DataError(
            f"no usable stars for PSF estimation: no source detected above {threshold} sigma"
        )
    x = np.asarray(sources["x"], float)
    y = np.asarray(sources["y"], float)
    xy = np.column_stack([x, y])
    neighbours = cKDTree(xy).query_ball_point(xy, r=0.75 * size, return_length=True)
    ix, iy = np.floor(x + 0.5).astype(int), np.floor(y + 0.5).astype(int)
    inside = (ix - half >= 0) & (iy - half >= 0) & (ix + half < nx) & (iy + half < ny)
    ok = (
        (np.asarray(sources["flag"]) == 0)
        & (np.asarray(sources["snr"]) > 30)
        & inside
        & (neighbours == 1)
    )
    if saturation is not None:
        ok &= np.asarray(sources["peak"]) < 0.5 * saturation
    width = np.sqrt(np.asarray(sources["a"]) * np.asarray(sources["b"]))
    if ok.sum() >= 3:
        # stellar locus: the densest ±10 % window of sizes (stars share one size,
        # galaxies spread above it); ties go to the smallest size
        w = np.sort(width[ok])
        counts = np.searchsorted(w, w * 1.1, side="right") - np.searchsorted(
            w, w / 1.1, side="left"
        )
        locus = float(w[np.argmax(counts)])
        ok &= np.abs(width / locus - 1.0) < 0.15
    radius = np.hypot(*np.meshgrid(np.arange(size) - half, np.arange(size) - half))
    ring = radius >= half - 2
    raw: list[tuple[np.ndarray, float, float]] = []
    used: list[tuple[float, float]] = []
    for k in np.flatnonzero(ok):
        if len(raw) >= max_stars:
            break
        sl = (slice(iy[k] - half, iy[k] + half + 1), slice(ix[k] - half, ix[k] + half + 1))
        if bad[sl].any() or not data[sl].sum() > 0:
            continue
        stamp = data[sl] - np.median(data[sl][ring])  # local background: outer ring
        raw.append((stamp, ix[k] - x[k], iy[k] - y[k]))
        used.append((x[k], y[k]))
    if len(raw) < min_stars:
        raise DataError(
            f"no usable stars for PSF estimation: {len(raw)} isolated, unsaturated, "
            f"point-like stars with S/N > 30 (need min_stars={min_stars}; {n_found} detections)"
        )
    # recentre on the windowed centroids, stack, then refine each star's shift against
    # the stack (linearised fit) and drop stamps that do not look like the stack
    shifts = np.array([[dx, dy] for _, dx, dy in raw])
    keep = np.ones(len(raw), bool)
    for _ in range(3):
        stamps = np.stack(
            [_shift_stamp(st, dx, dy) for (st, _, _), (dx, dy) in zip(raw, shifts, strict=True)]
        )
        stamps /= stamps.sum(axis=(1, 2))[:, None, None]
        stack = np.median(stamps[keep], axis=0)
        gy, gx = np.gradient(stack)
        a = np.array([[np.sum(gx * gx), np.sum(gx * gy)], [np.sum(gx * gy), np.sum(gy * gy)]])
        resid = stamps - stack
        b = np.stack([np.sum(resid * gx, axis=(1, 2)), np.sum(resid * gy, axis=(1, 2))], axis=1)
        # stamp ~ stack - delta . grad(stack): move the content back by delta
        delta = -np.linalg.solve(a, b.T).T
        shifts = shifts - np.clip(delta, -0.5, 0.5)
        rms = np.sqrt(
            np.mean(
                (resid + delta[:, 0, None, None] * gx + delta[:, 1, None, None] * gy) ** 2,
                axis=(1, 2),
            )
        )
        keep = rms < 2.0 * np.median(rms)
    stamps = np.stack(
        [_shift_stamp(st, dx, dy) for (st, _, _), (dx, dy) in zip(raw, shifts, strict=True)]
    )
    stamps /= stamps.sum(axis=(1, 2))[:, None, None]
    stamps = stamps[keep]
    used = [u for u, k in zip(used, keep, strict=True) if k]
    image = np.median(np.stack(list(stamps)), axis=0)
    taper = np.clip((half + 0.5 - radius) / (0.25 * half + 0.5), 0.0, 1.0)
    image = np.clip(image * taper, 0.0, None)
    log.info("PSF estimated from %d stars (%d detections)", len(stamps), n_found)
    return PSFEstimate(
        psf=PixelizedPSF(image, oversampling=1.0), n_stars=len(stamps), positions=np.array(used)
    )
