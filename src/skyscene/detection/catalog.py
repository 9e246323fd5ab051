"""Source catalogs with sep (SExtractor's algorithms) and catalog cross-matching."""

from __future__ import annotations

import logging

import numpy as np

from skyscene.errors import DataError, ParameterError

__all__ = ["find_sources", "match_catalogs"]

log = logging.getLogger(__name__)


def find_sources(
    data,
    *,
    variance=None,
    mask=None,
    threshold: float = 5.0,
    background=None,
    minarea: int = 5,
    deblend_cont: float = 0.005,
    edge: int = 0,
):
    """Detect sources above ``threshold`` sigma and measure them.

    Parameters
    ----------
    data : ndarray, shape (ny, nx)
        Image (background included unless ``background`` is subtracted already).
    variance : ndarray, optional
        Per-pixel variance; default: the rms map of the background.
    mask : ndarray of bool, optional
        True = bad pixel.
    threshold : float
        Detection threshold in sigma per pixel.
    background : GlobalBackground, ndarray or None
        Background to subtract; estimated with :func:`skyscene.background.estimate_background`
        when None.
    minarea : int
        Minimum connected pixels.
    deblend_cont : float
        sep's deblending contrast.
    edge : int
        Drop sources within ``edge`` pixels of the border.

    Returns
    -------
    astropy.table.Table
        Columns ``x``, ``y`` (windowed centroid, 0-based), ``flux`` (isophotal sum),
        ``peak``, ``a``, ``b`` (pixels), ``theta`` (radians), ``npix``, ``flag`` (sep
        flags), ``snr``; sorted brightest first.
    """
    import sep
    from astropy.table import Table

    from skyscene.background import estimate_background

    data = np.asarray(data, dtype=float)
    bad = ~np.isfinite(data)
    if mask is not None:
        bad = bad | np.asarray(mask, bool)
    if bad.all():
        raise DataError("find_sources: every pixel is masked or non-finite")
    if threshold <= 0:
        raise ParameterError(f"threshold must be positive, got {threshold!r}")
    if background is None:
        background = estimate_background(data, mask=bad)
    back = getattr(background, "background", background)
    sub = np.ascontiguousarray(np.where(bad, 0.0, data - back))
    if variance is None:
        rms = getattr(background, "rms", None)
        if rms is None:
            raise ParameterError("find_sources needs variance or a GlobalBackground with rms")
        err = np.ascontiguousarray(np.asarray(rms, dtype=float))
    else:
        err = np.ascontiguousarray(
            np.sqrt(np.where(bad, np.inf, np.asarray(variance, dtype=float)))
        )
    err = np.where(
        np.isfinite(err) & (err > 0), err, np.nanmax(np.where(np.isfinite(err), err, 0)) or 1.0
    )
    sep.set_extract_pixstack(max(300000, sub.size))
    objects = sep.extract(
        sub, threshold, err=err, mask=bad, minarea=minarea, deblend_cont=deblend_cont
    )
    table = Table()
    if len(objects) == 0:
        for name in ("x", "y", "flux", "peak", "a", "b", "theta", "snr"):
            table[name] = np.zeros(0)
        table["npix"] = np.zeros(0, int)
        table["flag"] = np.zeros(0, int)
        return table
    x, y = objects["x"].astype(float), objects["y"].astype(float)
    # windowed positions are closer to the PSF centroid than isophotal barycentres
    sig = np.clip(
        2.0 / 2.35 * np.sqrt(np.maximum(objects["a"] * objects["b"], 0.25)) * 2.0, 0.5, None
    )
    xw, yw, wflag = sep.winpos(sub, x, y, sig, mask=bad)
    ok = (wflag == 0) & np.isfinite(xw) & np.isfinite(yw) & (np.hypot(xw - x, yw - y) < 2.0)
    x = np.where(ok, xw, x)
    y = np.where(ok, yw, y)
    noise = np.sqrt(np.maximum(objects["npix"], 1)) * np.median(err)
    table["x"] = x
    table["y"] = y
    table["flux"] = objects["flux"].astype(float)
    table["peak"] = objects["peak"].astype(float)
    table["a"] = objects["a"].astype(float)
    table["b"] = objects["b"].astype(float)
    table["theta"] = objects["theta"].astype(float)
    table["npix"] = objects["npix"].astype(int)
    table["flag"] = objects["flag"].astype(int)
    table["snr"] = table["flux"] / noise
    ny, nx = data.shape
    if edge > 0:
        keep = (x >= edge) & (y >= edge) & (x < nx - edge) & (y < ny - edge)
        table = table[keep]
    table.sort("flux", reverse=True)
    return table


def match_catalogs(xy, reference_xy, *, radius: float = 2.0):
    """Nearest-neighbour match of positions within ``radius`` pixels.

    Parameters
    ----------
    xy : array, shape (N, 2)
        Positions already transformed into the reference frame.
    reference_xy : array, shape (M, 2)
    radius : float
        Maximum separation, pixels.

    Returns
    -------
    ndarray of int, shape (N,)
        Index into ``reference_xy`` of each position's match, -1 where none. Each
        reference source is matched at most once (the closest wins).
    """
    from scipy.spatial import cKDTree

    xy = np.atleast_2d(np.asarray(xy, dtype=float))
    reference_xy = np.atleast_2d(np.asarray(reference_xy, dtype=float))
    out = np.full(len(xy), -1, dtype=int)
    if len(xy) == 0 or len(reference_xy) == 0:
        return out
    dist, idx = cKDTree(reference_xy).query(xy, distance_upper_bound=radius)
    order = np.argsort(dist)
    taken = set()
    for i in order:
        if np.isfinite(dist[i]) and idx[i] not in taken:
            out[i] = idx[i]
            taken.add(idx[i])
    return out
