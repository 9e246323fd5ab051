"""Diagnostic figures of the reduction (``matplotlib.figure.Figure``, no pyplot state)."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Circle

__all__ = [
    "backgrounds_figure",
    "catalog_figure",
    "header_times_figure",
    "light_curves_figure",
    "rms_vs_median_figure",
    "seeing_figure",
]

_COLORS = {"u": "tab:purple", "g": "tab:green", "r": "tab:red", "i": "tab:brown", "z": "k"}


def _color(band, k):
    return _COLORS.get(band, f"C{k}")


def catalog_figure(image, catalog, *, title: str = "") -> Figure:
    """Reference image (zscale) with the numbered catalog sources."""
    from astropy.visualization import ZScaleInterval

    fig = Figure(figsize=(6, 6))
    ax = fig.add_subplot()
    finite = image[np.isfinite(image)]
    vmin, vmax = ZScaleInterval().get_limits(finite) if finite.size else (0, 1)
    ax.imshow(image, origin="lower", cmap="gray", vmin=vmin, vmax=vmax)
    ids = catalog["id"] if "id" in catalog.colnames else range(len(catalog))
    for sid, x, y in zip(ids, catalog["x"], catalog["y"], strict=True):
        ax.add_patch(Circle((x, y), 8, fill=False, color="tab:orange"))
        ax.annotate(str(sid), (x + 9, y + 9), color="tab:orange", fontsize=8)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("x (pixel)")
    ax.set_ylabel("y (pixel)")
    return fig


def header_times_figure(times: dict) -> Figure:
    """Mid-exposure time of each frame and the interval between frames, per filter."""
    fig = Figure(figsize=(8, 5))
    ax1, ax2 = fig.subplots(2, 1, sharex=True)
    for k, (band, t) in enumerate(sorted(times.items())):
        t = np.sort(np.asarray(t))
        sec = (t - t[0]) * 86400.0
        ax1.plot(np.arange(len(t)), sec, ".", color=_color(band, k), label=band, ms=3)
        if len(t) > 1:
            ax2.plot(np.arange(1, len(t)), np.diff(sec), ".", color=_color(band, k), ms=3)
    ax1.set_ylabel("time since first frame (s)")
    ax2.set_ylabel("interval (s)")
    ax2.set_xlabel("frame index")
    ax1.legend(fontsize=8)
    ax1.set_title("Header times (mid-exposure, UTC)")
    return fig


def _per_frame_figure(times: dict, values: dict, *, ylabel: str, title: str) -> Figure:
    """One value per frame against time since the first frame, one colour per filter."""
    fig = Figure(figsize=(8, 4))
    ax = fig.add_subplot()
    t0 = min(min(t) for t in times.values())
    for k, band in enumerate(sorted(times)):
        sec = (np.asarray(times[band]) - t0) * 86400.0
        ax.plot(
            sec, np.asarray(values[band], dtype=float), ".", color=_color(band, k), label=band, ms=3
        )
    ax.set_xlabel("time (s)")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    ax.set_title(title)
    return fig


def backgrounds_figure(times: dict, levels: dict) -> Figure:
    """Global background level of each frame against time, per filter."""
    return _per_frame_figure(
        times, levels, ylabel="background (counts / pixel)", title="Global backgrounds"
    )


def seeing_figure(times: dict, sizes: dict) -> Figure:
    """PSF size (adaptive-moment sigma of isolated stars) of each frame against time."""
    return _per_frame_figure(
        times, sizes, ylabel="PSF sigma (pixels)", title="Seeing: median star size per frame"
    )


def rms_vs_median_figure(lcs: dict) -> Figure:
    """Fractional RMS of each light curve against its median flux, with the median error."""
    fig = Figure(figsize=(6, 4.5))
    ax = fig.add_subplot()
    for k, (band, sources) in enumerate(sorted(lcs.items())):
        med, rms, err = [], [], []
        for table in sources.values():
            f = np.asarray(table["flux"], float)
            e = np.asarray(table["flux_err"], float)
            ok = np.isfinite(f) & np.isfinite(e)
            if ok.sum() < 3 or not np.median(f[ok]) > 0:
                continue
            m = np.median(f[ok])
            med.append(m)
            rms.append(np.std(f[ok]) / m)
            err.append(np.median(e[ok]) / m)
        if med:
            order = np.argsort(med)
            ax.loglog(
                np.asarray(med)[order],
                np.asarray(rms)[order],
                "o",
                color=_color(band, k),
                label=f"{band} measured",
            )
            ax.loglog(
                np.asarray(med)[order],
                np.asarray(err)[order],
                "--",
                color=_color(band, k),
                label=f"{band} expected",
            )
    ax.set_xlabel("median flux (counts)")
    ax.set_ylabel("fractional RMS")
    ax.legend(fontsize=7)
    ax.set_title("RMS vs median flux")
    return fig


def light_curves_figure(lcs: dict) -> Figure:
    """Relative (differential) light curves of every source, one panel per filter.

    Curves are stacked with offsets of a few times their typical scatter and labelled
    with their source id on the right.
    """
    bands = sorted(lcs)
    fig = Figure(figsize=(9, 3.2 * max(len(bands), 1)), layout="constrained")
    axes: Any = np.atleast_1d(fig.subplots(len(bands), 1, sharex=True)) if bands else []
    for ax, band in zip(axes, bands, strict=False):
        sources = lcs[band]
        curves = []
        for sid, table in sorted(sources.items()):
            t = np.asarray(table["BMJD"], float)
            rel = np.asarray(
                table["rel_flux"] if "rel_flux" in table.colnames else table["flux"], float
            )
            err = np.asarray(
                table["rel_flux_err"] if "rel_flux_err" in table.colnames else table["flux_err"],
                float,
            )
            if not np.isfinite(rel).any():
                med = np.nanmedian(table["flux"])
                rel, err = (
                    np.asarray(table["flux"], float) / med,
                    np.asarray(table["flux_err"], float) / med,
                )
            curves.append((sid, (t - t[0]) * 86400.0, rel, err))
        scatter = [np.nanstd(c[2]) for c in curves if np.isfinite(c[2]).any()]
        step = 5.0 * (np.nanmedian(scatter) if scatter else 0.02)
        for j, (sid, sec, rel, err) in enumerate(curves):
            offset = step * j
            ax.errorbar(
                sec, rel + offset, yerr=err, fmt=".", ms=3, lw=0.5, color=f"C{j % 10}", alpha=0.8
            )
            if len(sec):
                ax.annotate(
                    f"#{sid}",
                    (sec[-1], 1.0 + offset),
                    xytext=(6, 0),
                    textcoords="offset points",
                    va="center",
                    fontsize=8,
                    color=f"C{j % 10}",
                )
        ax.set_ylabel(f"{band}: relative flux + offset")
    if len(axes):
        axes[-1].set_xlabel("BMJD(TDB) − first frame (s)")
        axes[0].set_title("Differential light curves (ensemble of comparison stars)")
    return fig
