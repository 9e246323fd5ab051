"""A Piff PSF model fitted to simulated stars (needs the ``piff`` extra)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from skyscene.errors import ParameterError, require
from skyscene.io._atomic import atomic_path

__all__ = ["simulate_piff_model"]


def simulate_piff_model(
    path: str | Path,
    rng=None,
    *,
    fwhm: float = 1.0,
    fwhm_gradient: float = 0.0,
    beta: float = 3.0,
    shear: tuple[float, float] = (0.03, -0.02),
    pixel_scale: float = 0.263,
    chip_size: int = 2048,
    n_stars: int = 16,
) -> Path:
    """Fit a Piff model (Moffat profile, linear interpolation) to noiseless stars.

    The stars are drawn by GalSim with a Moffat PSF whose FWHM (arcsec) varies linearly
    across the chip, ``fwhm · (1 + fwhm_gradient · (x / chip_size − 0.5))``, on a
    slightly sheared DECam-like WCS; the fitted model is written to ``path`` (a
    ``.piff`` file, atomically) and its path returned. Takes ~1–2 s.
    """
    galsim = require("galsim", "piff")
    piff = require("piff", "piff")
    if not (fwhm > 0 and n_stars >= 4 and chip_size > 50):
        raise ParameterError("simulate_piff_model needs fwhm > 0, n_stars >= 4, chip_size > 50")
    rng = np.random.default_rng(rng)
    wcs = galsim.JacobianWCS(pixel_scale, 0.002, -0.001, pixel_scale * 0.996)
    stars = []
    for _ in range(n_stars):
        x, y = rng.uniform(25, chip_size - 25, 2)
        width = fwhm * (1.0 + fwhm_gradient * (x / chip_size - 0.5))
        profile = galsim.Moffat(beta=beta, fwhm=width).shear(g1=shear[0], g2=shear[1])
        image = galsim.ImageD(25, 25, wcs=wcs)
        image.setCenter(round(x), round(y))
        profile.withFlux(1e5).drawImage(image, center=(x, y))
        weight = galsim.ImageD(image.bounds, init_value=1.0, wcs=wcs)
        target = piff.Star.makeTarget(x=x, y=y, wcs=wcs, stamp_size=25)
        data = piff.StarData(
            image, target.data.image_pos, weight=weight, field_pos=target.data.field_pos
        )
        stars.append(piff.Star(data, None))
    psf = piff.SimplePSF(piff.Moffat(beta=beta), piff.Polynomial(order=1))
    psf.fit(stars, {0: wcs}, pointing=None)
    path = Path(path)
    with atomic_path(path) as tmp:
        psf.write(str(tmp))
    return path
