"""Flux ratio F_n/F_r and sub-pixel shift between science and reference (ZOGY §3.3)."""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from skyscene.diffim._core import Spectra, denominator_squared
from skyscene.errors import ConvergenceWarning

__all__ = ["FluxRatioFit", "fit_flux_ratio", "weighted_median"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class FluxRatioFit:
    """Result of :func:`fit_flux_ratio`.

    Attributes
    ----------
    flux_ratio : float
        F_n / F_r (science counts per reference count).
    shift : (dx, dy)
        Sub-pixel translation: the reference pixel ``x + dx`` matches science pixel ``x``.
    astrometric_sigma : (σ_x, σ_y)
        Robust scatter of the per-source shifts, pixels (for eq. 30).
    n_sources : int
        Sources (connected high-S/N regions) in the final fit.
    n_iter : int
        Iterations done.
    converged : bool
        Whether the ratio changed by less than ``tol`` (relative) and the shift by less
        than 1e-3 pixel in the last iteration, with at least ``min_sources`` sources.
    """

    flux_ratio: float
    shift: tuple[float, float]
    astrometric_sigma: tuple[float, float]
    n_sources: int
    n_iter: int
    converged: bool


def weighted_median(values, weights) -> float:
    """Median of ``values`` with non-negative ``weights`` (lower weighted median)."""
    values = np.asarray(values, float)
    weights = np.asarray(weights, float)
    order = np.argsort(values)
    cum = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cum, 0.5 * cum[-1])])


def fit_flux_ratio(
    spectra: Spectra,
    *,
    sigma_new: float,
    sigma_ref: float,
    flux_ratio: float = 1.0,
    shift: tuple[float, float] = (0.0, 0.0),
    bad=None,
    fit_shift: bool = True,
    threshold: float = 10.0,
    min_snr: float = 30.0,
    max_sources: int = 300,
    min_sources: int = 5,
    max_iter: int = 10,
    tol: float = 1e-4,
) -> FluxRatioFit:
    """Fit the flux ratio F_n/F_r and a sub-pixel shift on matched static sources.

    Parameters
    ----------
    spectra : Spectra
        FFTs of the background-subtracted images and PSFs.
    sigma_new, sigma_ref : float
        Background noise of the two images.
    flux_ratio : float
        Starting value (e.g. from the zeropoints).
    shift : (dx, dy)
        Starting shift of the reference (already known sub-pixel part of the alignment).
    bad : ndarray of bool, optional
        Pixels to avoid (masked, saturated, edges); a source touching one is dropped.
    fit_shift : bool
        Fit the shift too (otherwise only the ratio).
    threshold : float
        Detection threshold on the combined image, in its robust sigma.
    min_snr : float
        Minimum S/N of a source in the combined image.
    max_sources : int
        Brightest sources used.
    min_sources : int
        Fewer sources: ``converged=False``.
    max_iter, tol : int, float
        Iteration limit and relative tolerance on the ratio.

    Returns
    -------
    FluxRatioFit

    Warns
    -----
    ConvergenceWarning
        Too few sources or no convergence; the starting values are then kept where no
        fit was possible, and ``converged`` is False.

    Notes
    -----
    Following Zackay et al. (2016, §3.3), the two terms of eq. 13 are formed separately,
    ``D̂_n = P̂_r N̂ / den`` and ``D̂_r = P̂_n R̂ / den`` (``den`` of eq. 13 at the current
    ratio β), so that a static source gives ``D_n(x) = β D_r(x + δ)``. Instead of one
    global least-squares fit, each connected high-S/N region *i* (a star or galaxy) gives
    ``β_i = Σ D_n / Σ D_r`` (a ratio of sums, insensitive to PSF errors and unbiased by
    noise to first order) and ``δ_i`` from the linearised model
    ``D_n − β_i D_r = β_i δ_i · ∇D_r``. The fit is the S/N-weighted median over regions
    (robust to variable stars and transients), iterated because ``den`` depends on β;
    the robust scatter of ``δ_i`` gives σ_x, σ_y of eq. 30.
    """
    beta = float(flux_ratio)
    dx, dy = (float(shift[0]), float(shift[1]))
    ny, nx = spectra.shape
    avoid = (
        np.zeros(spectra.shape, bool)
        if bad is None
        else ndimage.binary_dilation(np.asarray(bad, bool), iterations=3)
    )
    converged = False
    n_used = 0
    sig_ast = (0.0, 0.0)
    it = 0
    for it in range(1, max_iter + 1):
        den2, _, _ = denominator_squared(spectra, sigma_new, sigma_ref, beta)
        den = np.sqrt(den2)
        del den2
        d_new = spectra.irfft(spectra.psf_ref_hat * spectra.new_hat / den)
        ref_hat = spectra.ref_hat
        phase = spectra.shift_phase(dx, dy)
        if phase is not None:
            ref_hat = ref_hat * phase
        d_ref = spectra.irfft(spectra.psf_new_hat * ref_hat / den)
        del den, ref_hat, phase
        combined = d_new / beta + d_ref
        good = ~avoid
        mad = np.median(np.abs(combined[good][:: max(1, good.sum() // 200000)]))
        noise = 1.4826 * mad if mad > 0 else float(np.std(combined[good]))
        labels, n_lab = ndimage.label((combined > threshold * noise) & good)
        if n_lab == 0:
            break
        flat = labels.ravel()
        touching = np.bincount(flat, weights=avoid.ravel().astype(float), minlength=n_lab + 1)
        # regions whose dilated footprint touches a bad pixel are dropped
        border = ndimage.binary_dilation(labels > 0, iterations=2) & avoid
        grown = ndimage.grey_dilation(labels, size=5)
        touching += np.bincount(
            grown.ravel(), weights=border.ravel().astype(float), minlength=n_lab + 1
        )
        npix = np.bincount(flat, minlength=n_lab + 1).astype(float)
        sum_n = np.bincount(flat, weights=d_new.ravel(), minlength=n_lab + 1)
        sum_r = np.bincount(flat, weights=d_ref.ravel(), minlength=n_lab + 1)
        snr = (sum_n / beta + sum_r) / (noise * np.sqrt(np.maximum(npix, 1.0)))
        # edges of the image
        objs = ndimage.find_objects(labels)
        at_edge = np.zeros(n_lab + 1, bool)
        for k, sl in enumerate(objs, start=1):
            if sl is None:
                continue
            at_edge[k] = (
                sl[0].start < 3 or sl[1].start < 3 or sl[0].stop > ny - 3 or sl[1].stop > nx - 3
            )
        keep = (touching == 0) & (npix >= 5) & (snr > min_snr) & (sum_r > 0) & ~at_edge
        keep[0] = False
        idx = np.flatnonzero(keep)
        if len(idx) > max_sources:
            idx = idx[np.argsort(snr[idx])[::-1][:max_sources]]
        n_used = len(idx)
        if n_used < min_sources:
            break
        beta_i = sum_n[idx] / sum_r[idx]
        weights = snr[idx]
        beta_new = weighted_median(beta_i, weights)
        if fit_shift:
            gy, gx = np.gradient(0.5 * (d_new / beta_new + d_ref))
            resid = (d_new - beta_new * d_ref) / beta_new
            sel = np.zeros(n_lab + 1, bool)
            sel[idx] = True
            pix = sel[flat]
            lab = flat[pix]
            gxv, gyv, rv = gx.ravel()[pix], gy.ravel()[pix], resid.ravel()[pix]
            sxx = np.bincount(lab, gxv * gxv, n_lab + 1)[idx]
            syy = np.bincount(lab, gyv * gyv, n_lab + 1)[idx]
            sxy = np.bincount(lab, gxv * gyv, n_lab + 1)[idx]
            bx = np.bincount(lab, gxv * rv, n_lab + 1)[idx]
            by = np.bincount(lab, gyv * rv, n_lab + 1)[idx]
            det = sxx * syy - sxy**2
            okdet = det > 0
            ddx = np.where(okdet, (syy * bx - sxy * by) / np.where(okdet, det, 1.0), 0.0)
            ddy = np.where(okdet, (sxx * by - sxy * bx) / np.where(okdet, det, 1.0), 0.0)
            step_x = weighted_median(ddx[okdet], weights[okdet]) if okdet.any() else 0.0
            step_y = weighted_median(ddy[okdet], weights[okdet]) if okdet.any() else 0.0
            bright = okdet & (weights > np.median(weights))
            if bright.sum() >= 3:
                sig_ast = (
                    float(1.4826 * np.median(np.abs(ddx[bright] - step_x))),
                    float(1.4826 * np.median(np.abs(ddy[bright] - step_y))),
                )
            step_x, step_y = float(np.clip(step_x, -1, 1)), float(np.clip(step_y, -1, 1))
        else:
            step_x = step_y = 0.0
        change = abs(beta_new - beta) / beta
        beta = beta_new
        dx += step_x
        dy += step_y
        log.debug(
            "flux-ratio iteration %d: beta=%.5f shift=(%.4f, %.4f) from %d sources",
            it,
            beta,
            dx,
            dy,
            n_used,
        )
        if change < tol and abs(step_x) < 1e-3 and abs(step_y) < 1e-3:
            converged = True
            break
    if not converged:
        reason = (
            f"only {n_used} usable sources (min_sources={min_sources})"
            if n_used < min_sources
            else f"no convergence in max_iter={max_iter} iterations"
        )
        warnings.warn(
            f"flux-ratio fit did not converge: {reason}; using flux_ratio={beta:.5g}, "
            f"shift=({dx:.3f}, {dy:.3f})",
            ConvergenceWarning,
            stacklevel=2,
        )
    if not math.isfinite(beta) or beta <= 0:
        beta, converged = float(flux_ratio), False
    return FluxRatioFit(
        flux_ratio=float(beta),
        shift=(float(dx), float(dy)),
        astrometric_sigma=sig_ast,
        n_sources=int(n_used),
        n_iter=int(it),
        converged=bool(converged),
    )
