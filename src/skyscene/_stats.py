"""Small robust statistics shared by the low layers (imports nothing of skyscene)."""

from __future__ import annotations

import numpy as np

__all__ = ["clipped_mean_std"]


def clipped_mean_std(values, *, sigma: float = 3.0, maxiters: int = 5) -> tuple[float, float]:
    """Mean and standard deviation after iterative clipping at ``sigma`` about the median.

    The same algorithm as ``astropy.stats.sigma_clipped_stats`` (median centre, standard
    deviation scale, both tails) for a 1-D array of finite values, without its overhead
    (it is called once per source and frame).

    Examples
    --------
    >>> clipped_mean_std([1.0, 2.0, 3.0, 2.0, 100.0], sigma=1.5)
    (2.0, 0.7071067811865476)
    """
    v = np.asarray(values, dtype=float).ravel()
    for _ in range(maxiters):
        center = np.median(v)
        scale = v.std()
        keep = np.abs(v - center) <= sigma * scale
        if keep.all():
            break
        v = v[keep]
    return float(v.mean()), float(v.std())
