"""Cosmic-ray masking with L.A.Cosmic (astroscrappy, optional extra ``cosmics``)."""

from __future__ import annotations

import logging
import math

import numpy as np

from skyscene.errors import DataError, ParameterError, require
from skyscene.io import Exposure

__all__ = ["mask_cosmic_rays"]

log = logging.getLogger(__name__)


def _fill_masked(data: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Replace masked pixels by a local (5x5) median so they do not look like edges."""
    from scipy.ndimage import median_filter

    if not mask.any():
        return data
    filled = np.where(mask, float(np.median(data[~mask])), data)
    local = median_filter(filled, size=5, mode="nearest")
    return np.where(mask, local, data)


def mask_cosmic_rays(
    exposure: Exposure,
    *,
    sigclip: float = 4.5,
    sigfrac: float = 0.3,
    objlim: float = 5.0,
    niter: int = 4,
    psffwhm: float | None = None,
    satlevel: float | None = None,
    sepmed: bool = False,
) -> Exposure:
    """Add cosmic-ray hits to the mask of an exposure (L.A.Cosmic).

    Parameters
    ----------
    exposure : Exposure
        A calibrated (bias/dark/flat-corrected) frame that still contains the sky
        background, with an honest ``variance`` (as :func:`calibrate` gives).
    sigclip : float
        Laplacian-to-noise detection threshold.
    sigfrac : float
        Threshold for neighbouring pixels, as a fraction of ``sigclip``.
    objlim : float
        Minimum contrast between the Laplacian and the fine-structure image; raise it
        if cores of sharp stars get flagged.
    niter : int
        Number of L.A.Cosmic iterations.
    psffwhm : float, optional
        Unused by the default median fine-structure mode; kept for the ``convolve``
        mode of astroscrappy (FWHM in pixels).
    satlevel : float, optional
        Saturation level in the data units (pixels above are protected and left for
        the saturation mask). Default: no saturation.
    sepmed : bool
        Use astroscrappy's fast separable 7-pixel median instead of the full 5x5
        median. Faster, but straight tracks of 4 or more pixels along a row or column
        survive the separable median and are partly missed, hence off by default.

    Returns
    -------
    Exposure
        A copy whose mask also flags the cosmic-ray pixels (variance ``inf`` there);
        ``meta['n_cosmic_ray_pixels']`` is the number of newly flagged pixels.

    Raises
    ------
    MissingDependencyError
        astroscrappy is not installed (``pip install 'skyscene[cosmics]'``).
    ParameterError
        Non-positive thresholds.
    DataError
        No unmasked pixel.

    Notes
    -----
    van Dokkum 2001, PASP 113, 1420 (L.A.Cosmic), as implemented by astroscrappy
    (McCully et al. 2018). The noise model is the exposure's own variance (passed to
    astroscrappy as ``invar`` with unit gain), so the calibration noise and the
    flat field are accounted for. Masked pixels are filled with a local median
    before detection so that their edges are not taken for hits.
    """
    astroscrappy = require("astroscrappy", "cosmics")
    for name, value in (("sigclip", sigclip), ("sigfrac", sigfrac), ("objlim", objlim)):
        if not (math.isfinite(value) and value > 0):
            raise ParameterError(f"mask_cosmic_rays: {name} must be positive, got {value!r}")
    if not (isinstance(niter, int) and niter >= 1):
        raise ParameterError(f"mask_cosmic_rays: niter must be a positive integer, got {niter!r}")
    mask = np.asarray(exposure.mask, bool)
    data_in = np.asarray(exposure.data, float)
    var_in = np.asarray(exposure.variance, float)
    if mask.all():
        raise DataError(f"mask_cosmic_rays: no unmasked pixel in {exposure.filename or 'exposure'}")
    data = _fill_masked(data_in, mask)
    variance = np.where(mask, np.median(var_in[~mask]), var_in)
    kwargs: dict[str, float] = {}
    if psffwhm is not None:
        kwargs["psffwhm"] = float(psffwhm)
    crmask, _ = astroscrappy.detect_cosmics(
        data.astype(np.float32),
        inmask=mask,
        invar=variance.astype(np.float32),
        sigclip=float(sigclip),
        sigfrac=float(sigfrac),
        objlim=float(objlim),
        gain=1.0,
        readnoise=0.0,
        satlevel=float(satlevel) if satlevel is not None else float(np.finfo(np.float32).max),
        niter=int(niter),
        sepmed=bool(sepmed),
        **kwargs,
    )
    crmask = np.asarray(crmask, bool) & ~mask
    n_new = int(crmask.sum())
    log.info("cosmic rays: %d pixels flagged in %s", n_new, exposure.filename or "exposure")
    meta = dict(exposure.meta)
    meta["n_cosmic_ray_pixels"] = n_new
    return exposure.replace(mask=mask | crmask, variance=var_in, meta=meta)
