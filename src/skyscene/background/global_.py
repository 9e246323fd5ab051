"""Global (mesh) background maps: sep or photutils."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from skyscene.errors import DataError, ParameterError

__all__ = ["GlobalBackground", "estimate_background"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True, eq=False)
class GlobalBackground:
    """A smooth background map and its per-pixel scatter.

    Attributes
    ----------
    background : ndarray, shape (ny, nx)
        Background level, counts per pixel.
    rms : ndarray, shape (ny, nx), or None
        Per-pixel scatter of the background, counts (None when not requested).
    level, rms_level : float
        Global (median) background and scatter.
    method : str
        ``"sep"`` or ``"photutils"``.
    box_size, filter_size : int
        Mesh size and median-filter size, pixels and meshes.
    """

    background: np.ndarray
    rms: np.ndarray | None
    level: float
    rms_level: float
    method: str
    box_size: int
    filter_size: int


def estimate_background(
    data,
    *,
    mask=None,
    box_size: int = 64,
    filter_size: int = 3,
    method: str = "sep",
    rms_map: bool = True,
) -> GlobalBackground:
    """Mesh background of an image with sources masked by sigma clipping.

    Parameters
    ----------
    data : ndarray, shape (ny, nx)
    mask : ndarray of bool, optional
        True = bad pixel; non-finite pixels are masked too.
    box_size : int
        Mesh size in pixels (clipped to the image size).
    filter_size : int
        Median filter over meshes (odd).
    method : {"sep", "photutils"}
        sep (SExtractor algorithm, fast) or ``photutils.background.Background2D``
        (sigma-clipped median, more options).
    rms_map : bool
        Compute the per-pixel rms map (the global ``rms_level`` is always there); skip it
        to save time when only the level map is needed. float32 input stays float32
        with sep.

    Returns
    -------
    GlobalBackground

    Raises
    ------
    DataError
        No usable pixel.
    """
    data = np.asarray(data)
    if data.dtype not in (np.float32, np.float64):
        data = data.astype(float)
    if data.ndim != 2:
        raise DataError(f"background needs a 2-D image, got shape {data.shape}")
    bad = ~np.isfinite(data)
    if mask is not None:
        bad = bad | np.asarray(mask, bool)
    if bad.all():
        raise DataError("background: every pixel is masked or non-finite")
    box = int(max(4, min(box_size, *data.shape)))
    clean = np.where(bad, 0.0, data)
    if method == "sep":
        import sep

        bkg = sep.Background(
            np.ascontiguousarray(clean), mask=bad, bw=box, bh=box, fw=filter_size, fh=filter_size
        )
        background = bkg.back(dtype=data.dtype)
        rms = bkg.rms(dtype=data.dtype) if rms_map else None
        level, rms_level = float(bkg.globalback), float(bkg.globalrms)
    elif method == "photutils":
        from astropy.stats import SigmaClip
        from photutils.background import Background2D, MedianBackground

        bkg2d = Background2D(
            clean,
            box,
            mask=bad,
            filter_size=filter_size,
            sigma_clip=SigmaClip(sigma=3.0),
            bkg_estimator=MedianBackground(),
            exclude_percentile=50.0,
        )
        background = np.asarray(bkg2d.background)
        rms = np.asarray(bkg2d.background_rms) if rms_map else None
        level, rms_level = float(bkg2d.background_median), float(bkg2d.background_rms_median)
    else:
        raise ParameterError(f"background method must be 'sep' or 'photutils', got {method!r}")
    return GlobalBackground(
        background=background,
        rms=rms,
        level=level,
        rms_level=rms_level,
        method=method,
        box_size=box,
        filter_size=filter_size,
    )
