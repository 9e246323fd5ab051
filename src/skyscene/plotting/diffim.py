"""Five-panel picture of a ZOGY subtraction: science, reference, D, S_corr, flux."""

from __future__ import annotations

import numpy as np

__all__ = ["plot_subtraction"]


def _limits(image, good):
    values = image[good] if good is not None and good.any() else image.ravel()
    lo, hi = np.percentile(values, [1.0, 99.5])
    return float(lo), float(hi if hi > lo else lo + 1.0)


def plot_subtraction(science, reference, result, *, transients=None, title: str | None = None):
    """Science, reference (on the science grid), D, S_corr and flux in one figure.

    Parameters
    ----------
    science, reference : ndarray or Exposure
        Images as shown (the reference is shown as given).
    result : skyscene.diffim.ZogyResult
    transients : astropy.table.Table, optional
        Positions (``x``, ``y``) to circle on every panel.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
        Created without pyplot; save with ``fig.savefig(path)``.
    """
    from matplotlib.figure import Figure

    sci = np.asarray(getattr(science, "data", science), float)
    ref = np.asarray(getattr(reference, "data", reference), float)
    good = result.mask == 0
    fig = Figure(figsize=(17, 3.8), layout="constrained")
    axes = fig.subplots(1, 5, sharex=False, sharey=False)
    panels = [
        ("science", sci, "gray", _limits(sci, good)),
        ("reference", ref, "gray", _limits(ref, None)),
        ("difference D (eq. 13)", result.difference, "gray", (-4.0, 4.0)),
        ("S_corr (eq. 25)", result.score_corr, "RdBu_r", (-6.0, 6.0)),
        ("flux (eq. 41), ref. counts", result.flux, "viridis", _limits(result.flux, good)),
    ]
    for ax, (name, image, cmap, (lo, hi)) in zip(axes, panels, strict=True):
        im = ax.imshow(image, origin="lower", cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest")
        ax.set_title(name, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(im, ax=ax, shrink=0.8)
        if transients is not None and len(transients):
            ax.scatter(
                transients["x"],
                transients["y"],
                s=80,
                facecolors="none",
                edgecolors="orange",
                linewidths=0.8,
            )
    if title:
        fig.suptitle(title)
    return fig
