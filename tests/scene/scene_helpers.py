"""Helpers for the scene-modelling tests: seeded synthetic scenes (a uniquely named module,
so that it is never confused with another folder's ``conftest``)."""

from __future__ import annotations

import math

import numpy as np
from astropy.wcs import WCS

from skyscene.io import Exposure
from skyscene.psf import GaussianPSF
from skyscene.scene import SceneConfig, tangent_to_sky
from skyscene.scene.model import _world_to_pixel

RA0, DEC0 = 30.0, -20.0


def make_wcs(rotation=0.0, shift=(0.0, 0.0), scale=0.263, size=30):
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [RA0, DEC0]
    wcs.wcs.crpix = [(size - 1) / 2 + 1 + shift[0], (size - 1) / 2 + 1 + shift[1]]
    c, s = math.cos(rotation), math.sin(rotation)
    sc = scale / 3600.0
    wcs.wcs.cd = np.array([[-sc * c, sc * s], [sc * s, sc * c]])
    return wcs


def noiseless_scene(config: SceneConfig, *, n_exp=6, seed=3, target_flux=500.0, size=30):
    """Exposures whose pixels are exactly grid + sky + target rendered by their PSFs."""
    rng = np.random.default_rng(seed)
    grid_flux = rng.uniform(10, 100, config.grid_n**2)
    ticks = (np.arange(config.grid_n) - (config.grid_n - 1) / 2) * config.grid_spacing
    xi, eta = np.meshgrid(ticks, ticks)
    gra, gdec = tangent_to_sky(RA0, DEC0, xi.ravel(), eta.ravel())
    sky = 5.0 * (np.arange(n_exp) + 1)
    exposures = []
    for e in range(n_exp):
        wcs = make_wcs(rng.uniform(-0.1, 0.1), rng.uniform(-1, 1, 2), size=size)
        psf = GaussianPSF(rng.uniform(1.2, 2.0)).to_pixelized(size=2 * size + 1, oversampling=3)
        zp = rng.uniform(29.5, 30.5)
        s = 10 ** (0.4 * (30 - zp))
        img = np.tensordot(
            grid_flux, psf.render((size, size), _world_to_pixel(wcs, gra, gdec)), axes=1
        )
        img = img + sky[e]
        if e == 0:
            img = img + target_flux * psf.render((size, size), _world_to_pixel(wcs, RA0, DEC0)[0])
        exposures.append(
            Exposure(
                data=img / s,
                variance=np.full((size, size), 1.0 / s**2),
                wcs=wcs,
                psf=psf,
                zeropoint=zp,
                gain=4.0,
                meta={"filename": f"e{e}.fits"},
            )
        )
    return exposures, {"grid": grid_flux, "sky": sky, "flux": target_flux}
