"""Figure of a spectral fit: data, model, its two components and the residuals."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from skyscene.io._atomic import atomic_path

__all__ = ["plot_spectral_fit", "save_spectral_fit_plot"]


def plot_spectral_fit(
    wavelength,
    flux,
    sigma,
    prediction,
    *,
    title: str | None = None,
    zoom: tuple[float, float] | None = None,
):
    """Draw data, model, components and normalised residuals.

    Parameters
    ----------
    wavelength, flux, sigma : ndarray (n_pix,)
        The observed spectrum (Å, any flux unit).
    prediction : SpectrumPrediction
        From :meth:`skyscene.spectra.MixtureModel.predict_components` at ``wavelength``.
    title : str, optional
        Figure title (e.g. the fitted values).
    zoom : (float, float), optional
        Wavelength range (Å) of an extra zoomed panel; default: 1 % of the range at its centre.

    Returns
    -------
    matplotlib.figure.Figure
        Not attached to pyplot (no backend is selected at import).
    """
    from matplotlib.figure import Figure

    wl = np.asarray(wavelength, dtype=float)
    flux = np.asarray(flux, dtype=float)
    sigma = np.asarray(sigma, dtype=float)
    good = np.isfinite(sigma)
    resid = np.where(good, (flux - prediction.total) / np.where(good, sigma, 1.0), np.nan)
    if zoom is None:
        mid = 0.5 * (wl.min() + wl.max())
        half = 0.005 * (wl.max() - wl.min()) + 1.0
        zoom = (mid - half, mid + half)
    fig = Figure(figsize=(11, 8), layout="constrained")
    axes = fig.subplots(3, 1, height_ratios=[2, 2, 1])
    show_comp2 = np.any(prediction.component2 != 0)
    for ax, sel in (
        (axes[0], np.ones(wl.size, bool)),
        (axes[1], (wl >= zoom[0]) & (wl <= zoom[1])),
    ):
        for order in np.unique(prediction.order):
            s = sel & (prediction.order == order)
            first = order == prediction.order[0]
            ax.plot(wl[s], flux[s], color="0.3", lw=0.6, label="data" if first else None)
            ax.plot(
                wl[s], prediction.total[s], color="C3", lw=0.8, label="model" if first else None
            )
            if show_comp2:
                ax.plot(
                    wl[s],
                    prediction.component1[s],
                    color="C0",
                    lw=0.6,
                    label="component 1 (hot)" if first else None,
                )
                ax.plot(
                    wl[s],
                    prediction.component2[s],
                    color="C1",
                    lw=0.6,
                    label="component 2 (cool)" if first else None,
                )
        ax.set_ylabel("flux")
    axes[0].legend(loc="lower right", fontsize="small", ncols=4)
    axes[1].set_title(f"zoom {zoom[0]:.1f}-{zoom[1]:.1f} Å", fontsize="small")
    axes[1].set_xlim(*zoom)
    axes[2].plot(wl, resid, color="0.3", lw=0.4)
    axes[2].axhline(0.0, color="C3", lw=0.8)
    axes[2].set_ylabel("(data − model)/σ")
    axes[2].set_xlabel("wavelength [Å]")
    if title:
        fig.suptitle(title, fontsize="medium")
    return fig


def save_spectral_fit_plot(path: str | os.PathLike, *args, dpi: int = 110, **kwargs) -> Path:
    """Draw :func:`plot_spectral_fit` and save it atomically to ``path`` (PNG, PDF, …)."""
    fig = plot_spectral_fit(*args, **kwargs)
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format=path.suffix.lstrip(".") or "png")
    return path
