"""Differential light curves against an ensemble of comparison stars.

Selection (documented, overridable): a star is a comparison for a target when it is
not the target, is never flagged, has a median S/N of at least ``min_snr`` and the
RMS of its own relative light curve (divided by its median) is within ``max_rms_ratio``
times its expected noise. Pass ``comparisons=[...]`` to choose them yourself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from skyscene.errors import DataError, ParameterError

__all__ = ["DifferentialLightCurves", "differential_photometry", "select_comparison_stars"]


@dataclass(frozen=True, kw_only=True, eq=False)
class DifferentialLightCurves:
    """Relative fluxes ``flux / ensemble`` normalised to median 1.

    Attributes
    ----------
    rel_flux, rel_flux_err : ndarray, shape (n_sources, n_frames)
    comparisons : dict
        Source index → list of comparison indices used for it.
    """

    rel_flux: np.ndarray
    rel_flux_err: np.ndarray
    comparisons: dict


def select_comparison_stars(
    flux, flux_err, flags=None, *, min_snr: float = 20.0, max_rms_ratio: float = 3.0
):
    """Indices of stars fit to serve as comparisons (see module docstring).

    Candidates (never flagged, median S/N >= ``min_snr``) are tested against the
    ensemble of the *other* candidates, which removes common trends such as
    transparency changes: a star whose relative light curve scatters more than
    ``max_rms_ratio`` times its expected noise is dropped (the worst first) and the
    test is repeated until every remaining star passes.

    Parameters
    ----------
    flux, flux_err : ndarray, shape (n_sources, n_frames)
    flags : ndarray of int, optional
    """
    flux = np.asarray(flux, float)
    flux_err = np.asarray(flux_err, float)
    good = np.isfinite(flux) & np.isfinite(flux_err) & (flux_err > 0)
    if flags is not None:
        good &= np.asarray(flags) == 0
    pool = []
    for k in range(flux.shape[0]):
        if not good[k].all():
            continue
        med = np.median(flux[k])
        if med > 0 and np.median(med / flux_err[k]) >= min_snr:
            pool.append(k)
    while len(pool) >= 2:
        excess = []
        for k in pool:
            others = [j for j in pool if j != k]
            ens = flux[others].sum(axis=0)
            ens_err = np.sqrt((flux_err[others] ** 2).sum(axis=0))
            rel = flux[k] / ens
            expected = np.sqrt((flux_err[k] / flux[k]) ** 2 + (ens_err / ens) ** 2)
            excess.append(np.std(rel / np.median(rel)) / np.median(expected))
        worst = int(np.argmax(excess))
        if excess[worst] <= max_rms_ratio:
            break
        pool.pop(worst)
    return pool


def differential_photometry(
    flux, flux_err, flags=None, *, comparisons=None, min_snr: float = 20.0
) -> DifferentialLightCurves:
    """Divide each light curve by the summed flux of its comparison ensemble.

    The ensemble for a source excludes the source itself. Errors combine the source's
    error and the ensemble's (independent noise): ``σ_rel² = (σ_f/E)² + (f σ_E / E²)²``.
    Frames where any ensemble member is not finite are NaN (never silently 0).
    """
    flux = np.asarray(flux, float)
    flux_err = np.asarray(flux_err, float)
    if flux.shape != flux_err.shape or flux.ndim != 2:
        raise ParameterError(
            f"flux and flux_err must be 2-D of equal shape, got {flux.shape}, {flux_err.shape}"
        )
    pool = (
        list(comparisons)
        if comparisons is not None
        else select_comparison_stars(flux, flux_err, flags, min_snr=min_snr)
    )
    if not pool:
        raise DataError(
            "no comparison star passes the selection (S/N, flags, RMS); pass comparisons=[...]"
        )
    rel = np.full_like(flux, np.nan)
    rel_err = np.full_like(flux, np.nan)
    used = {}
    for k in range(flux.shape[0]):
        members = [j for j in pool if j != k]
        if not members:
            continue
        ens = flux[members].sum(axis=0)
        ens_err = np.sqrt((flux_err[members] ** 2).sum(axis=0))
        ok = np.isfinite(ens) & (ens > 0) & np.isfinite(flux[k])
        r = np.full(flux.shape[1], np.nan)
        r[ok] = flux[k, ok] / ens[ok]
        re = np.full(flux.shape[1], np.nan)
        re[ok] = np.sqrt(
            (flux_err[k, ok] / ens[ok]) ** 2 + (flux[k, ok] * ens_err[ok] / ens[ok] ** 2) ** 2
        )
        med = np.nanmedian(r) if ok.any() else np.nan
        if np.isfinite(med) and med != 0:
            rel[k] = r / med
            rel_err[k] = re / abs(med)
        used[k] = members
    return DifferentialLightCurves(rel_flux=rel, rel_flux_err=rel_err, comparisons=used)
