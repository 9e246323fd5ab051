"""Pixelised PSF from isolated, bright, unsaturated stars (for ZOGY without a PSF model)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from skyscene.errors import DataError, ParameterError

if TYPE_CHECKING:
    from skyscene.psf import PixelizedPSF

__all__ = ["PSFEstimate", "estimate_psf"]

log = logging.getLogger(__name__)

# A source whose peak pixel exceeds its 4 neighbours' mean by more than this fraction of
# the peak is sharper than any PSF with FWHM >= 2 px (a Gaussian of FWHM 2 px centred
# on a pixel has 0.50): a cosmic ray or hot pixel, never a star.
_CR_SHARPNESS = 0.5
# pixels within this relative distance of the peak count as one flat (clipped) top
_FLAT_TOLERANCE = 1e-4


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
    rejected : dict
        Detections rejected per reason: ``"blended"`` (sep flags: merged, deblended,
        truncated), ``"faint"`` (S/N <= 30),
        ``"edge"``, ``"crowded"`` (a neighbour within 0.75 stamp sizes brighter than 2 %
        of the star, or any within 6 px), ``"saturated"``
        (peak at or above half of ``saturation``, a flat top, or a masked pixel in the
        stamp), ``"cosmic_ray"`` (too sharp), ``"elongated"`` (blends, tracks),
        ``"not_stellar"`` (size off the stellar locus: galaxies) and ``"outlier"``
        (stamps unlike the stack).
    """

    psf: PixelizedPSF
    n_stars: int
    positions: np.ndarray
    rejected: dict = field(default_factory=dict)


def _shift_stamp(stamp: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """Move the content of ``stamp`` by ``(dx, dy)`` pixels (Fourier shift, exact for band-limited)."""
    fy = np.fft.fftfreq(stamp.shape[0])[:, None]
    fx = np.fft.fftfreq(stamp.shape[1])[None, :]
    return np.real(np.fft.ifft2(np.fft.fft2(stamp) * np.exp(-2j * np.pi * (fx * dx + fy * dy))))


def _peak_shape(data: np.ndarray, ix: np.ndarray, iy: np.ndarray):
    """Sharpness (1 - mean of the 4 neighbours / peak) and flat-top pixel count at the
    brightest pixel of the 5 x 5 box around each ``(ix, iy)``."""
    ny, nx = data.shape
    sharp = np.zeros(len(ix))
    flat = np.zeros(len(ix), int)
    for k, (cx, cy) in enumerate(zip(ix, iy, strict=True)):
        y0, x0 = max(cy - 2, 1), max(cx - 2, 1)
        box = data[y0 : min(cy + 3, ny - 1), x0 : min(cx + 3, nx - 1)]
        if box.size == 0:
            continue
        j, i = np.unravel_index(np.argmax(box), box.shape)
        py, px = y0 + j, x0 + i
        peak = data[py, px]
        if not peak > 0:
            continue
        around = (data[py - 1, px] + data[py + 1, px] + data[py, px - 1] + data[py, px + 1]) / 4
        sharp[k] = 1.0 - around / peak
        flat[k] = int(np.count_nonzero(np.abs(box - peak) <= _FLAT_TOLERANCE * peak))
    return sharp, flat


def _windowed_size(data, x, y, window: float) -> np.ndarray:
    """``sqrt(T / 2)`` of Gaussian-windowed second moments (window sigma ``window`` px)
    around each ``(x, y)``: unlike isophotal sizes, nearly independent of S/N."""
    ny, nx = data.shape
    h = int(np.ceil(3 * window))
    out = np.full(len(x), np.nan)
    for k, (cx, cy) in enumerate(zip(x, y, strict=True)):
        x0, y0 = int(np.floor(cx + 0.5)), int(np.floor(cy + 0.5))
        ya, yb, xa, xb = max(y0 - h, 0), min(y0 + h + 1, ny), max(x0 - h, 0), min(x0 + h + 1, nx)
        yy, xx = np.mgrid[ya:yb, xa:xb]
        r2 = (xx - cx) ** 2 + (yy - cy) ** 2
        w = np.exp(-0.5 * r2 / window**2) * data[ya:yb, xa:xb]
        total = w.sum()
        if total > 0:
            out[k] = np.sqrt(max(float((w * r2).sum() / total), 0.0) / 2.0)
    return out


def _stellar_locus(width: np.ndarray, weight: np.ndarray) -> float:
    """The stellar size: the weighted density peak (±3 % windows) among the
    candidates less than 30 % larger than the smallest group of similar sizes.

    Stars share one size, the smallest of any resolved source (galaxies are the PSF
    convolved with something), and reach the highest S/N; a plain count would follow
    the galaxies where they outnumber the bright stars. Ties go to the smallest size.
    """
    order = np.argsort(width)
    w, wt = width[order], weight[order]
    # the smallest size shared by three candidates within 5 % (stars agree to ~2 %;
    # a few cosmic-ray tracks that passed the sharpness cut do not), else by two within
    # 10 %, else the smallest
    triple = np.flatnonzero(w[2:] <= 1.05 * w[:-2])
    pair = np.flatnonzero(w[1:] <= 1.1 * w[:-1])
    if len(triple):
        smallest = float(w[triple[0]])
    elif len(pair):
        smallest = float(w[pair[0]])
    else:
        smallest = float(w[0])
    near = w < 1.3 * smallest
    w, wt = w[near], wt[near]
    cum = np.concatenate([[0.0], np.cumsum(wt)])
    lo = np.searchsorted(w, w / 1.03, side="left")
    hi = np.searchsorted(w, w * 1.03, side="right")
    density = cum[hi] - cum[lo]
    return float(w[np.argmax(density)])


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
    label: str = "estimated PSF",
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
    label : str
        Names the image in messages.

    Returns
    -------
    PSFEstimate

    Raises
    ------
    DataError
        Fewer than ``min_stars`` usable stars (the message counts the rejections).

    Notes
    -----
    Candidates are detections with clean sep flags (no blend) and S/N > 30, no other
    detection within 6 px nor one brighter than 2 % of the star within ``0.75 size``
    pixels (fainter ones are clipped pixel by pixel), and no bad pixel in the stamp.
    Rejected:

    - *cosmic rays and hot pixels*: the peak pixel exceeds the mean of its four
      neighbours by more than half the peak (sharper than a PSF of FWHM 2 px can be);
    - *saturated stars*: peak at or above ``saturation / 2``, or a flat top (three or more
      pixels within 1e-4 of the peak in the 5 x 5 box: a clipped core when the saturation
      level is unknown);
    - *galaxies*: Gaussian-windowed size (window 1.5 times the isophotal size of the
      five brightest candidates; nearly independent of S/N, unlike isophotal sizes)
      5 % or more from the stellar locus: the S/N²-weighted density peak among the
      sizes less than 30 % above the smallest group of similar sizes (three within
      5 %; stars are the smallest resolved sources and the brightest; a plain count
      would follow the galaxies where they outnumber the bright stars);
    - *blends and tracks*: elongation ``a / b`` more than 1.3 times the locus median.

    Each stamp has the median of its outer ring subtracted, is recentred on its
    windowed centroid by a Fourier shift, refined by a linearised shift fit against the
    stack, and scaled by its least-squares amplitude against the stack within the core
    (not by its raw sum, whose noise over the whole stamp is large for faint stars). The
    stack is the weighted mean (weights: amplitude² over the background-plus-Poisson
    variance) with per-pixel 5σ outlier rejection; stamps whose residual is more than
    twice the median are dropped. Beyond the radius where the profile falls to 1 % of
    the peak, the wings are replaced by their azimuthal mean (noise averaged over each
    annulus: clipping noisy wings at zero would add spurious flux — 14 % in the
    reference of a 512² test pair — and broaden the normalised PSF), then tapered to
    zero over the outer quarter of the stamp radius.
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
        raise DataError(f"{label}: PSF estimation: every pixel is masked")
    if not (np.isfinite(sigma) and sigma > 0):
        raise ParameterError(f"sigma must be positive, got {sigma!r}")
    sigma = float(sigma)
    variance = np.full(data.shape, sigma**2)
    sources = find_sources(
        data, variance=variance, mask=bad, threshold=threshold, background=0.0, minarea=5
    )
    half = size // 2
    ny, nx = data.shape
    n_found = len(sources)
    if n_found == 0:
        raise DataError(
            f"{label}: no usable stars for PSF estimation: no source detected above "
            f"{threshold} sigma"
        )
    x = np.asarray(sources["x"], float)
    y = np.asarray(sources["y"], float)
    xy = np.column_stack([x, y])
    ix, iy = np.floor(x + 0.5).astype(int), np.floor(y + 0.5).astype(int)
    sharp, flat = _peak_shape(data, np.clip(ix, 0, nx - 1), np.clip(iy, 0, ny - 1))
    cosmic = sharp > _CR_SHARPNESS
    # a neighbour within 0.75 stamp sizes spoils a stamp unless it is faint (< 2 % of the
    # star) or a cosmic ray (its few sharp pixels are clipped from the stack), and not
    # within 6 px (a blend)
    flux = np.asarray(sources["flux"], float)
    tree = cKDTree(xy)
    crowded = np.zeros(n_found, bool)
    for i, near in enumerate(tree.query_ball_point(xy, r=0.75 * size)):
        others = np.array([j for j in near if j != i], int)
        if len(others):
            dist = np.hypot(x[others] - x[i], y[others] - y[i])
            spoils = (flux[others] > 0.02 * flux[i]) & ~cosmic[others]
            crowded[i] = bool(np.any(spoils | (dist < 6.0)))
    inside = (ix - half >= 0) & (iy - half >= 0) & (ix + half < nx) & (iy + half < ny)
    snr = np.asarray(sources["snr"], float)
    a_axis, b_axis = np.asarray(sources["a"], float), np.asarray(sources["b"], float)
    rejected: dict[str, int] = {}

    ok = np.ones(n_found, bool)

    def reject(name: str, where: np.ndarray) -> None:
        rejected[name] = rejected.get(name, 0) + int(np.count_nonzero(ok & where))
        ok[where] = False

    reject("blended", np.asarray(sources["flag"]) != 0)  # sep: merged/deblended, truncated
    reject("faint", ~(snr > 30))
    reject("edge", ~inside)
    reject("crowded", crowded)
    saturated = flat >= 3
    if saturation is not None:
        saturated |= np.asarray(sources["peak"]) >= 0.5 * saturation
    # a masked pixel in the stamp (saturated cores are masked, then filled smoothly)
    if bad.any():
        integral = np.pad(np.cumsum(np.cumsum(bad, axis=0), axis=1), ((1, 0), (1, 0)))
        y0, y1 = np.clip(iy - half, 0, ny), np.clip(iy + half + 1, 0, ny)
        x0, x1 = np.clip(ix - half, 0, nx), np.clip(ix + half + 1, 0, nx)
        n_bad = integral[y1, x1] - integral[y0, x1] - integral[y1, x0] + integral[y0, x0]
        saturated |= n_bad > 0
    reject("saturated", saturated)
    reject("cosmic_ray", cosmic)
    elongation = a_axis / np.maximum(b_axis, 1e-3)
    if ok.sum() >= 3:
        # window: the isophotal size of the brightest candidates (stars), at least 1.5 px
        top = np.flatnonzero(ok)[np.argsort(-snr[ok])[:5]]
        window = max(1.5, 1.5 * float(np.median(np.sqrt(a_axis[top] * b_axis[top]))))
        width = np.full(n_found, np.nan)
        width[ok] = _windowed_size(data, x[ok], y[ok], window)
        reject("not_stellar", ~np.isfinite(width))
        locus = _stellar_locus(width[ok], snr[ok] ** 2)
        reject("not_stellar", ~(np.abs(width / locus - 1.0) < 0.05))
        if ok.any():
            reject("elongated", elongation > 1.3 * float(np.median(elongation[ok])))
    radius = np.hypot(*np.meshgrid(np.arange(size) - half, np.arange(size) - half))
    ring = radius >= half - 2
    raw: list[tuple[np.ndarray, float, float]] = []
    used: list[tuple[float, float]] = []
    n_masked = 0
    for k in np.flatnonzero(ok):
        if len(raw) >= max_stars:
            break
        sl = (slice(iy[k] - half, iy[k] + half + 1), slice(ix[k] - half, ix[k] + half + 1))
        if bad[sl].any() or not data[sl].sum() > 0:
            n_masked += 1
            continue
        stamp = data[sl] - np.median(data[sl][ring])  # local background: outer ring
        raw.append((stamp, ix[k] - x[k], iy[k] - y[k]))
        used.append((x[k], y[k]))
    if n_masked:
        rejected["saturated"] = rejected.get("saturated", 0) + n_masked
    if len(raw) < min_stars:
        reasons = ", ".join(f"{n} {name}" for name, n in rejected.items() if n)
        raise DataError(
            f"{label}: no usable stars for PSF estimation: {len(raw)} isolated, unsaturated, "
            f"point-like stars with S/N > 30 (need min_stars={min_stars}; {n_found} "
            f"detections, rejected: {reasons or 'none'})"
        )
    image, keep, _shifts = _stack(raw, sigma=sigma, radius=radius, half=half)
    n_outliers = int((~keep).sum())
    if n_outliers:
        rejected["outlier"] = n_outliers
    used_arr = np.array([u for u, kk in zip(used, keep, strict=True) if kk])
    if len(used_arr) < min_stars:
        raise DataError(
            f"{label}: no usable stars for PSF estimation: {len(used_arr)} stars left after "
            f"dropping {n_outliers} unlike the stack (need min_stars={min_stars})"
        )
    log.info(
        "PSF estimated from %d stars (%d detections; rejected %s)",
        len(used_arr),
        n_found,
        rejected,
    )
    return PSFEstimate(
        psf=PixelizedPSF(image, oversampling=1.0, label=label),
        n_stars=len(used_arr),
        positions=used_arr,
        rejected=rejected,
    )


def _stack(raw, *, sigma: float, radius: np.ndarray, half: int):
    """Weighted, outlier-clipped stack of recentred stamps; azimuthal wings; taper."""
    shifts = np.array([[dx, dy] for _, dx, dy in raw])
    core = radius <= max(0.5 * half, 3.0)
    amplitude = np.array([st[core].sum() for st, _, _ in raw])
    amplitude = np.where(amplitude > 0, amplitude, np.array([st.sum() for st, _, _ in raw]))
    keep = np.ones(len(raw), bool)
    stack = np.zeros_like(raw[0][0])
    for _ in range(4):
        stamps = np.stack(
            [_shift_stamp(st, dx, dy) for (st, _, _), (dx, dy) in zip(raw, shifts, strict=True)]
        )
        if stack.any():  # least-squares amplitude against the current stack, in the core
            amplitude = np.einsum("kp,p->k", stamps[:, core], stack[core]) / np.sum(
                stack[core] ** 2
            )
        amplitude = np.maximum(amplitude, 1e-12)
        norm = stamps / amplitude[:, None, None]
        # per-pixel noise of each normalised stamp: background plus Poisson (gain 1: an
        # upper bound, which only flattens the weights of the brightest stars)
        model = np.clip(stack if stack.any() else np.median(norm[keep], axis=0), 0.0, None)
        var = (sigma**2 + amplitude[:, None, None] * model) / amplitude[:, None, None] ** 2
        median = np.median(norm[keep], axis=0)
        good = (np.abs(norm - median) <= 5.0 * np.sqrt(var)) & keep[:, None, None]
        weight = good / var
        total = weight.sum(axis=0)
        stack = np.where(
            total > 0, (weight * norm).sum(axis=0) / np.where(total > 0, total, 1), median
        )
        stack /= stack.sum()
        gy, gx = np.gradient(stack)
        a = np.array([[np.sum(gx * gx), np.sum(gx * gy)], [np.sum(gx * gy), np.sum(gy * gy)]])
        resid = norm - stack
        b = np.stack([np.sum(resid * gx, axis=(1, 2)), np.sum(resid * gy, axis=(1, 2))], axis=1)
        # stamp ~ stack - delta . grad(stack): move the content back by delta
        delta = -np.linalg.solve(a, b.T).T
        shifts = shifts - np.clip(delta, -0.5, 0.5)
        chi = np.sqrt(
            np.mean(
                (resid + delta[:, 0, None, None] * gx + delta[:, 1, None, None] * gy) ** 2 / var,
                axis=(1, 2),
            )
        )
        keep = chi < 2.0 * np.median(chi)
    # wings: azimuthal mean beyond the radius where the profile falls to 1 % of the peak
    rbin = np.floor(radius + 0.5).astype(int)
    counts = np.bincount(rbin.ravel())
    profile = np.bincount(rbin.ravel(), stack.ravel()) / np.maximum(counts, 1)
    below = np.flatnonzero(profile < 0.01 * profile[0])
    r0 = float(below[0]) if len(below) else float(half)
    smooth = profile[rbin]
    blend = np.clip((radius - r0) / 2.0, 0.0, 1.0)
    image = (1.0 - blend) * stack + blend * np.clip(smooth, 0.0, None)
    taper = np.clip((half + 0.5 - radius) / (0.25 * half + 0.5), 0.0, 1.0)
    return np.clip(image * taper, 0.0, None), keep, shifts
