"""Mugshots of scene-modelling fits: image, model, target, scene and residual panels."""

from __future__ import annotations

import numpy as np

from skyscene.errors import ParameterError

__all__ = ["PANELS", "mugshot_figure", "mugshot_grid_figure", "panel_images"]

PANELS = ("image", "model", "image − model + target", "image − target", "residual")


def _clipped_sigma(values: np.ndarray) -> tuple[float, float]:
    from astropy.stats import sigma_clipped_stats

    values = values[np.isfinite(values)]
    if values.size == 0:
        return 0.0, 1.0
    _, median, std = sigma_clipped_stats(values, sigma=3.0, maxiters=5)
    return float(median), float(std) if std > 0 else 1.0


def panel_images(result, exposure: int) -> dict[str, np.ndarray]:
    """The five panels of one exposure of a :class:`~skyscene.scene.SceneResult`.

    ``image`` (scaled to zeropoint 30), ``model`` (full model), ``image − model + target``
    (the target alone on the residual), ``image − target`` (the static scene) and
    ``residual``. Masked pixels are NaN.
    """
    n = result.image.shape[0]
    if not 0 <= exposure < n:
        raise ParameterError(f"exposure index {exposure} out of range for {n} exposures")
    mask = result.mask[exposure]
    image = result.image[exposure]
    model = result.model[exposure]
    target = result.target_model[exposure]
    panels = {
        PANELS[0]: image,
        PANELS[1]: model,
        PANELS[2]: image - model + target,
        PANELS[3]: image - target,
        PANELS[4]: image - model,
    }
    return {k: np.where(mask, np.nan, v) for k, v in panels.items()}


def _draw_row(axes, result, exposure: int, *, titles: bool, label: str | None) -> None:
    panels = panel_images(result, exposure)
    # Display range: −3σ..+4σ around the level of each panel, σ from the clipped residual.
    _, sigma = _clipped_sigma(panels[PANELS[4]])
    for ax, (name, values) in zip(axes, panels.items(), strict=True):
        level, _ = _clipped_sigma(values)
        ax.imshow(
            values,
            origin="lower",
            cmap="gray",
            vmin=level - 3 * sigma,
            vmax=level + 4 * sigma,
            interpolation="nearest",
        )
        ax.set_xticks([])
        ax.set_yticks([])
        if titles:
            ax.set_title(name, fontsize=8)
        if exposure in result.detections:
            j = result.detections.index(exposure)
            x, y = result.target_xy[j]
            ax.plot([x], [y], marker="+", color="tab:red", markersize=6, mew=0.8)
    if label:
        axes[0].set_ylabel(label, fontsize=7)


def mugshot_figure(result, exposure: int | None = None):
    """Five-panel mugshot of one exposure (default: the first detection).

    Returns a :class:`matplotlib.figure.Figure` (Agg; save with ``fig.savefig``).
    Display scale: −3σ..+4σ around each panel's clipped background level, σ the
    clipped standard deviation of the residual.
    """
    from matplotlib.figure import Figure

    exposure = result.detections[0] if exposure is None else int(exposure)
    fig = Figure(figsize=(10, 2.4), layout="constrained")
    axes = fig.subplots(1, 5)
    _draw_row(axes, result, exposure, titles=True, label=result.filenames[exposure])
    j = result.detections.index(exposure) if exposure in result.detections else None
    if j is not None:
        fig.suptitle(
            f"flux30 = {result.flux[j]:.1f} ± {result.flux_err[j]:.1f}, "
            f"χ²/dof = {result.reduced_chi2:.3f}",
            fontsize=9,
        )
    return fig


def mugshot_grid_figure(result):
    """Panel grid: one five-panel row per exposure (detections first)."""
    from matplotlib.figure import Figure

    n = result.image.shape[0]
    order = list(result.detections) + [e for e in range(n) if e not in result.detections]
    fig = Figure(figsize=(10, 2.0 * n), layout="constrained")
    axes = np.atleast_2d(fig.subplots(n, 5))
    for row, e in enumerate(order):
        per_pixel = result.chi2_exposure[e] / max(result.npix_exposure[e], 1)
        label = f"{result.filenames[e]}\nχ²/N={per_pixel:.2f}"
        _draw_row(axes[row], result, e, titles=row == 0, label=label)
    return fig
