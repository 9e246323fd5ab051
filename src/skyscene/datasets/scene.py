"""Composable pieces of simulated scenes: WCS, stars, galaxies, movers, artefacts, noise.

The simulators of :mod:`skyscene.datasets` (:func:`~skyscene.datasets.simulate_tno_stamps`,
:func:`~skyscene.datasets.simulate_observations`, and the transient-search simulator to
come) are assembled from these functions. Each takes the random generator explicitly
and draws from it in a documented order, so a simulator built from them is seeded and
reproducible; none does file I/O.

Conventions: pixel positions are 0-based ``(x, y)`` with integer values at pixel centres;
arrays are indexed ``[y, x]``; sky offsets ``(ξ, η)`` are tangent-plane arcsec around a
centre (ξ East, η North).

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(1)
>>> mask = draw_bad_pixels(rng, (20, 30))
>>> mask.shape, mask.dtype
((20, 30), dtype('bool'))
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = [
    "add_gaussian_noise",
    "add_point_sources_in_stamps",
    "ccd_noise",
    "draw_bad_pixels",
    "draw_galaxy",
    "draw_mover_offset",
    "draw_offset_outside",
    "draw_stars",
    "point_source_image",
    "render_galaxies",
    "sky_plane",
    "tan_wcs",
]


def tan_wcs(ra0: float, dec0: float, crpix, scale: float, rotation: float):
    """A TAN WCS centred on ``(ra0, dec0)`` at 0-based pixel ``crpix``.

    ``scale`` in arcsec per pixel; East to the left (RA decreases with x) as on the sky,
    rotated by ``rotation`` radians.
    """
    from astropy.wcs import WCS

    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [ra0, dec0]
    wcs.wcs.crpix = [crpix[0] + 1.0, crpix[1] + 1.0]  # FITS 1-based
    c, s = math.cos(rotation), math.sin(rotation)
    sc = scale / 3600.0
    wcs.wcs.cd = np.array([[-sc * c, sc * s], [sc * s, sc * c]])
    return wcs


def draw_offset_outside(
    rng: np.random.Generator, half: float, min_radius: float, *, tries: int = 50
) -> tuple[float, float]:
    """A uniform offset in ``[−half, half]²`` at least ``min_radius`` from the centre.

    Draws two uniforms per try, up to ``tries`` (the last try is kept if none is far
    enough).
    """
    xi = eta = 0.0
    for _try in range(tries):
        xi, eta = rng.uniform(-half, half, 2)
        if math.hypot(xi, eta) >= min_radius:
            break
    return xi, eta


def draw_galaxy(rng: np.random.Generator, xi, eta, flux_rel, hlr) -> dict[str, Any]:
    """A galaxy at ``(ξ, η)`` arcsec: its profile kind, shear and angle drawn from ``rng``.

    70 % exponential, 30 % Sérsic n = 2; ``|g|`` uniform in [0, 0.4), position angle in
    [0, π). ``flux_rel`` is relative to the scene's flux unit, ``hlr`` in arcsec.
    """
    return {
        "xi": float(xi),
        "eta": float(eta),
        "flux_rel": float(flux_rel),
        "hlr": float(hlr),
        "kind": "exponential" if rng.random() < 0.7 else "sersic2",
        "g": float(rng.uniform(0.0, 0.4)),
        "beta": float(rng.uniform(0.0, math.pi)),
    }


def draw_stars(
    rng: np.random.Generator,
    n: int,
    half: float,
    *,
    min_radius: float = 1.5,
    flux_range: tuple[float, float] = (0.5, 20.0),
) -> list[dict[str, float]]:
    """``n`` stars in ``[−half, half]²`` arcsec, ≥ ``min_radius`` from the centre.

    Fluxes uniform in ``flux_range`` (relative to the scene's flux unit).
    """
    stars = []
    for _ in range(int(n)):
        xi, eta = draw_offset_outside(rng, half, min_radius)
        stars.append(
            {"xi": float(xi), "eta": float(eta), "flux_rel": float(rng.uniform(*flux_range))}
        )
    return stars


def draw_mover_offset(
    rng: np.random.Generator, min_radius: float, max_radius: float
) -> tuple[float, float]:
    """Offset (arcsec) of a moving object: radius uniform in the range, uniform angle."""
    r, phi = rng.uniform(min_radius, max_radius), rng.uniform(0, 2 * math.pi)
    return r * math.cos(phi), r * math.sin(phi)


def _galsim_galaxy(galsim, gal: dict, flux: float):
    if gal["kind"] == "exponential":
        prof = galsim.Exponential(half_light_radius=gal["hlr"], flux=flux)
    else:
        prof = galsim.Sersic(n=2.0, half_light_radius=gal["hlr"], flux=flux)
    return prof.shear(g=gal["g"], beta=gal["beta"] * galsim.radians)


def render_galaxies(
    galsim,
    galaxies: list[dict],
    fluxes,
    psf_profile,
    jacobian,
    shape: tuple[int, int],
    to_pixel,
    *,
    accuracy: float = 5e-3,
) -> np.ndarray:
    """Galaxies (:func:`draw_galaxy`) convolved with the atmospheric PSF, drawn by GalSim.

    ``fluxes``: counts of each galaxy; ``to_pixel(ξ, η) -> (x, y)`` places them;
    ``jacobian`` is the GalSim WCS of the image. ``accuracy`` is GalSim's
    ``folding_threshold`` (``maxk_threshold`` a fifth of it).
    """
    ny, nx = shape
    gsparams = galsim.GSParams(folding_threshold=accuracy, maxk_threshold=accuracy / 5.0)
    image = galsim.ImageD(nx, ny, wcs=jacobian)
    for gal, flux in zip(galaxies, fluxes, strict=True):
        prof = _galsim_galaxy(galsim, gal, flux)
        gx, gy = to_pixel(gal["xi"], gal["eta"])
        galsim.Convolve(prof, psf_profile, gsparams=gsparams).drawImage(
            image=image, offset=(gx - (nx - 1) / 2.0, gy - (ny - 1) / 2.0), add_to_image=True
        )
    return np.zeros((ny, nx)) + image.array


def point_source_image(psf, shape: tuple[int, int], centers, fluxes) -> np.ndarray:
    """``Σ flux_k PSF(x − center_k)`` on the whole image (the PSF protocol's ``render``)."""
    centers = np.asarray(centers, dtype=float)
    return np.tensordot(np.asarray(fluxes, dtype=float), psf.render(shape, centers), axes=1)


def add_point_sources_in_stamps(image: np.ndarray, psf, xy, fluxes, *, stamp: int = 41) -> None:
    """Add point sources to ``image`` in place, each rendered on a ``stamp``-pixel box.

    Cheaper than :func:`point_source_image` on large frames; light beyond the box is
    dropped.
    """
    ny, nx = image.shape
    half = stamp // 2
    for (cx, cy), f in zip(np.asarray(xy, dtype=float), fluxes, strict=True):
        ix, iy = round(cx), round(cy)
        y0, x0 = iy - half, ix - half
        sl = (
            slice(max(y0, 0), min(y0 + stamp, ny)),
            slice(max(x0, 0), min(x0 + stamp, nx)),
        )
        st = psf.render((stamp, stamp), center=(cx - x0, cy - y0))
        image[sl] += f * st[sl[0].start - y0 : sl[0].stop - y0, sl[1].start - x0 : sl[1].stop - x0]


def sky_plane(shape: tuple[int, int], level: float, gradient_x: float, gradient_y: float):
    """``level + gx (x − nx/2) + gy (y − ny/2)``: a sky with a linear gradient."""
    ny, nx = shape
    yy, xx = np.mgrid[0:ny, 0:nx]
    return level + gradient_x * (xx - nx / 2) + gradient_y * (yy - ny / 2)


def draw_bad_pixels(
    rng: np.random.Generator,
    shape: tuple[int, int],
    *,
    fraction: float = 0.003,
    column_probability: float = 0.25,
) -> np.ndarray:
    """Artefact mask: random bad pixels (``fraction``) and, sometimes, one bad column.

    Draws ``ny × nx`` uniforms, one more for the column's presence and, when present,
    its index.
    """
    ny, nx = shape
    mask = rng.random((ny, nx)) < fraction
    if rng.random() < column_probability:
        mask[:, int(rng.integers(0, nx))] = True
    return mask


def add_gaussian_noise(
    rng: np.random.Generator,
    sky: float,
    counts: np.ndarray,
    variance: np.ndarray,
    *,
    gain: float,
    source_noise: bool = True,
    scale: float = 1.0,
) -> np.ndarray:
    """``sky + counts`` plus Gaussian noise of ``variance`` (+ source shot noise).

    With ``source_noise`` the shot noise of the sources (``counts / gain``, counts ≥ 0)
    is added to ``variance``; ``scale`` multiplies the noise (0: noiseless, the normal
    deviates are still drawn so that the rest of a seeded scene does not change).
    """
    noise_var = variance + (np.clip(counts, 0, None) / gain if source_noise else 0.0)
    return sky + counts + rng.normal(size=counts.shape) * np.sqrt(noise_var) * float(scale)


def ccd_noise(
    rng: np.random.Generator, image: np.ndarray, gain: float, read_noise: float
) -> np.ndarray:
    """A CCD read of ``image`` (ADU): Poisson in electrons, then Gaussian read noise (ADU)."""
    electrons = rng.poisson(np.clip(image, 0, None) * gain)
    return electrons / gain + rng.normal(0, read_noise, image.shape)
