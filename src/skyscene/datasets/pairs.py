"""Seeded reference/science image pairs for difference imaging (ZOGY tests and demos).

:func:`simulate_pair` draws one static scene (stars, Sérsic galaxies) observed twice:
a deep *reference* and a shallower *science* image with a different PSF (Gaussian or
Moffat, optionally varying across the field), depth, flux scale, sky gradient and a
small misalignment, plus transients injected in the science image only, and optionally
artefacts (cosmic rays, saturated stars). The truth table gives each transient's flux
and its theoretical ZOGY S/N.

The scene is built from composable pieces that other simulators reuse: a frozen
:class:`PairConfig`, :func:`pair_psfs`, :func:`draw_offset`, :func:`draw_stars`,
:func:`draw_galaxies`, :func:`render_static`, :func:`sky_map`, :func:`draw_transients`,
:func:`transient_fluxes`, :func:`observe`, :func:`add_saturated_stars`,
:func:`add_cosmic_rays` and :func:`pair_wcs`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from skyscene._validation import (
    check_choice,
    check_finite,
    check_int,
    check_positive,
    check_range,
)
from skyscene.errors import ParameterError
from skyscene.io import Exposure
from skyscene.psf import GaussianPSF, MoffatPSF

__all__ = [
    "PairConfig",
    "SimulatedPair",
    "VaryingMoffatPSF",
    "ZogySNRTerms",
    "add_cosmic_rays",
    "add_saturated_stars",
    "draw_galaxies",
    "draw_offset",
    "draw_stars",
    "draw_transients",
    "observe",
    "pair_psfs",
    "pair_wcs",
    "render_static",
    "simulate_pair",
    "sky_map",
    "theoretical_zogy_snr",
    "transient_fluxes",
]

log = logging.getLogger(__name__)

PIXEL_SCALE = 0.26  # arcsec per pixel (DECam-like)


class VaryingMoffatPSF:
    """Moffat PSF whose FWHM changes linearly across the field.

    ``fwhm(x, y) = fwhm * (1 + gradient * ((x / nx - 0.5) + (y / ny - 0.5)))``: the FWHM
    changes by ``gradient`` (a fraction) from the image centre to a corner, per axis.

    Parameters
    ----------
    fwhm : float
        FWHM at the image centre, pixels.
    beta : float
        Moffat index.
    gradient : float
        Fractional FWHM change from centre to edge along each axis.
    shape : (ny, nx)
        Image shape over which the gradient is defined.
    axis_ratio, theta : float
        Ellipticity (minor/major) and orientation (radians).
    """

    def __init__(self, fwhm, beta, gradient, shape, *, axis_ratio=1.0, theta=0.0):
        self.fwhm = float(fwhm)
        self.beta = float(beta)
        self.gradient = float(gradient)
        self.shape = (int(shape[0]), int(shape[1]))
        self.axis_ratio = float(axis_ratio)
        self.theta = float(theta)

    def __repr__(self) -> str:
        return (
            f"VaryingMoffatPSF(fwhm={self.fwhm:g}, beta={self.beta:g}, gradient={self.gradient:g})"
        )

    def fwhm_at(self, x, y):
        ny, nx = self.shape
        return self.fwhm * (
            1.0 + self.gradient * ((np.asarray(x) / nx - 0.5) + (np.asarray(y) / ny - 0.5))
        )

    def at(self, x: float, y: float) -> MoffatPSF:
        """The (constant) Moffat PSF at image position ``(x, y)``."""
        return MoffatPSF.from_fwhm(
            float(self.fwhm_at(x, y)), self.beta, axis_ratio=self.axis_ratio, theta=self.theta
        )

    def render(self, shape, center=None):
        """Render the PSF of the image centre (use :meth:`at` for a position)."""
        return self.at(self.shape[1] / 2.0, self.shape[0] / 2.0).render(shape, center=center)


@dataclass(frozen=True, kw_only=True, eq=False)
class SimulatedPair:
    """A simulated science/reference pair and its truth.

    Attributes
    ----------
    science, reference : Exposure
        The two images (counts; ``variance`` is the background-only variance, ``gain``
        set, saturated pixels masked, ``meta['saturate']``; ``psf`` the true PSF).
    transients : astropy.table.Table
        One row per transient: ``x``, ``y`` (science pixels), ``x_ref``, ``y_ref``
        (reference pixels), ``flux`` (science counts), ``flux_ref`` (reference counts,
        i.e. ``flux / flux_ratio``: the unit of ZOGY's ``flux`` image), ``on_galaxy``,
        ``snr`` (theoretical ZOGY S/N at the exact position, with the source noise of the
        transient and its host, eqs. 25–27 of Zackay et al. 2016 without astrometric
        noise).
    stars, galaxies : astropy.table.Table
        Static sources in reference pixels and reference counts.
    flux_ratio : float
        Science counts per reference count (F_n / F_r).
    offset : (dx, dy)
        Science pixel = reference pixel + offset.
    params : dict
        The configuration (:meth:`PairConfig.to_dict`).
    artefacts : astropy.table.Table
        One row per artefact: ``kind`` ("cosmic_ray", "saturated_star"), ``x``, ``y``
        (science pixels; cosmic rays in the reference: reference pixels), ``flux``
        (counts of the image), ``image`` ("science", "reference", "both"). Empty by
        default.
    config : PairConfig
        The scene simulated.
    """

    science: Exposure
    reference: Exposure
    transients: Any
    stars: Any
    galaxies: Any
    flux_ratio: float
    offset: tuple[float, float]
    params: dict = field(default_factory=dict)
    artefacts: Any = None
    config: Any = None


def _psf_model(
    kind: str, fwhm: float, *, beta: float, axis_ratio: float, theta: float, gradient: float, shape
):
    if gradient:
        if kind != "moffat":
            raise ParameterError(f"a varying PSF must be 'moffat', got {kind!r}")
        return VaryingMoffatPSF(fwhm, beta, gradient, shape, axis_ratio=axis_ratio, theta=theta)
    if kind == "moffat":
        return MoffatPSF.from_fwhm(fwhm, beta, axis_ratio=axis_ratio, theta=theta)
    if kind == "gaussian":
        sigma = fwhm / 2.3548200450309493
        return GaussianPSF(sigma / math.sqrt(axis_ratio), sigma * math.sqrt(axis_ratio), theta)
    raise ParameterError(f"PSF kind must be 'gaussian' or 'moffat', got {kind!r}")


def _galsim_psf(galsim, psf):
    """GalSim profile (arcsec) of a skyscene Gaussian or Moffat PSF."""
    if isinstance(psf, GaussianPSF):
        prof = galsim.Gaussian(sigma=math.sqrt(psf.sigma_major * psf.sigma_minor) * PIXEL_SCALE)
        q = psf.sigma_minor / psf.sigma_major
    else:
        prof = galsim.Moffat(
            beta=psf.beta, scale_radius=math.sqrt(psf.alpha_major * psf.alpha_minor) * PIXEL_SCALE
        )
        q = psf.alpha_minor / psf.alpha_major
    if q < 1.0:
        prof = prof.shear(q=q, beta=psf.theta * galsim.radians)
    return prof


def _psf_at(psf, x, y):
    at = getattr(psf, "at", None)
    return at(x, y) if (at is not None and isinstance(psf, VaryingMoffatPSF)) else psf


def _add_stamps(image, psf, xy, flux, size: int) -> None:
    """Add point sources of ``flux`` at ``xy`` (image pixels) rendered on ``size`` stamps."""
    if len(xy) == 0:
        return
    ny, nx = image.shape
    half = size // 2
    ix = np.floor(xy[:, 0] + 0.5).astype(int)
    iy = np.floor(xy[:, 1] + 0.5).astype(int)
    centers = np.column_stack([xy[:, 0] - ix + half, xy[:, 1] - iy + half])
    stamps = psf.render((size, size), center=centers)
    stamps /= stamps.sum(axis=(1, 2))[:, None, None]  # unit sum in the stamp, as the PSF model used
    for k in range(len(xy)):
        x0, y0 = ix[k] - half, iy[k] - half
        xa, ya = max(x0, 0), max(y0, 0)
        xb, yb = min(x0 + size, nx), min(y0 + size, ny)
        if xa >= xb or ya >= yb:
            continue
        image[ya:yb, xa:xb] += flux[k] * stamps[k, ya - y0 : yb - y0, xa - x0 : xb - x0]


def _render_points(image, psf, xy, flux) -> None:
    """Point sources with stamp sizes growing with brightness; varying PSFs by zone."""
    if isinstance(psf, VaryingMoffatPSF):
        zones = 8
        ny, nx = image.shape
        zx = np.clip((xy[:, 0] / nx * zones).astype(int), 0, zones - 1)
        zy = np.clip((xy[:, 1] / ny * zones).astype(int), 0, zones - 1)
        for jy in range(zones):
            for jx in range(zones):
                sel = (zx == jx) & (zy == jy)
                if sel.any():
                    local = psf.at((jx + 0.5) * nx / zones, (jy + 0.5) * ny / zones)
                    _render_points(image, local, xy[sel], flux[sel])
        return
    for lo, hi, size in ((0, 2e4, 31), (2e4, 5e5, 63), (5e5, np.inf, 127)):
        sel = (flux >= lo) & (flux < hi)
        _add_stamps(image, psf, xy[sel], flux[sel], size)


def _render_galaxies(image, galsim, psf, table, flux_scale, offset) -> None:
    for row in table:
        x, y = row["x"] + offset[0], row["y"] + offset[1]
        local = _psf_at(psf, x, y)
        gal = galsim.Sersic(
            n=float(row["sersic_n"]), half_light_radius=float(row["hlr"]) * PIXEL_SCALE
        )
        gal = gal.shear(q=float(row["q"]), beta=float(row["theta"]) * galsim.radians)
        gal = gal.withFlux(float(row["flux"]) * flux_scale)
        prof = galsim.Convolve(gal, _galsim_psf(galsim, local))
        size = int(np.clip(12 * row["hlr"] + 40, 48, 160)) | 1
        half = size // 2
        ix, iy = math.floor(x + 0.5), math.floor(y + 0.5)
        stamp = galsim.ImageD(size, size, scale=PIXEL_SCALE)
        prof.drawImage(image=stamp, offset=(x - ix, y - iy), method="auto")
        ny, nx = image.shape
        x0, y0 = ix - half, iy - half
        xa, ya, xb, yb = max(x0, 0), max(y0, 0), min(x0 + size, nx), min(y0 + size, ny)
        if xa < xb and ya < yb:
            image[ya:yb, xa:xb] += stamp.array[ya - y0 : yb - y0, xa - x0 : xb - x0]


@dataclass(frozen=True, kw_only=True)
class ZogySNRTerms:
    """The terms of the theoretical ZOGY S/N of a point source (:func:`theoretical_zogy_snr`).

    Attributes
    ----------
    response : float
        ``S = response * alpha`` for a point source of reference-unit flux ``alpha``
        (``response = F_S``).
    variance : float
        Variance of S without the transient's own noise.
    transient_var : float
        Variance of S per unit ``alpha`` from the transient's own Poisson noise in the
        science image (in counts: divide by the science gain).
    """

    response: float
    variance: float
    transient_var: float

    def snr(self, alpha: float, *, gain: float = 1.0) -> float:
        """S/N of a source of reference-unit flux ``alpha`` (science ``gain`` e-/count)."""
        return alpha * self.response / math.sqrt(self.variance + alpha * self.transient_var / gain)


def theoretical_zogy_snr(
    psf_new: np.ndarray,
    psf_ref: np.ndarray,
    *,
    sigma_new: float,
    sigma_ref: float,
    flux_ratio: float,
    source_var_new: np.ndarray | None = None,
    source_var_ref: np.ndarray | None = None,
) -> ZogySNRTerms:
    """Response and variance of the ZOGY score for a point source at a stamp centre.

    An independent small-stamp implementation of Zackay et al. (2016) eqs. 25–29, 42
    for the truth tables.

    Parameters
    ----------
    psf_new, psf_ref : ndarray, shape (m, m)
        Centred PSF stamps (odd ``m``), normalised here.
    sigma_new, sigma_ref : float
        Background noise per pixel.
    flux_ratio : float
        F_n / F_r.
    source_var_new, source_var_ref : ndarray, shape (m, m), optional
        Extra (source) variance around the position, counts².

    Returns
    -------
    ZogySNRTerms
        ``response`` (F_S), ``variance`` of S without the transient's own noise, and
        ``transient_var``, the variance per unit ``alpha`` added by the transient's own
        Poisson noise in the science image (gain ignored: multiply by 1/gain outside).
        S/N = ``alpha F_S / sqrt(variance + alpha*transient_var)``
        (:meth:`ZogySNRTerms.snr`).
    """
    m = psf_new.shape[0]
    pn = np.fft.fft2(np.fft.ifftshift(psf_new / psf_new.sum()))
    pr = np.fft.fft2(np.fft.ifftshift(psf_ref / psf_ref.sum()))
    fn = flux_ratio
    den2 = sigma_new**2 * np.abs(pr) ** 2 + sigma_ref**2 * fn**2 * np.abs(pn) ** 2
    kn_hat = fn * np.conj(pn) * np.abs(pr) ** 2 / den2
    kr_hat = fn**2 * np.conj(pr) * np.abs(pn) ** 2 / den2
    response = float(np.mean(fn**2 * np.abs(pn) ** 2 * np.abs(pr) ** 2 / den2))
    kn = np.fft.fftshift(np.real(np.fft.ifft2(kn_hat)))
    kr = np.fft.fftshift(np.real(np.fft.ifft2(kr_hat)))
    # V(S_N)(x0) = sum_u k_n(u)^2 V_N(x0 - u): flip the variance stamp
    var_n = (
        np.full((m, m), sigma_new**2) if source_var_new is None else sigma_new**2 + source_var_new
    )
    var_r = (
        np.full((m, m), sigma_ref**2) if source_var_ref is None else sigma_ref**2 + source_var_ref
    )
    variance = float(np.sum(kn**2 * var_n[::-1, ::-1]) + np.sum(kr**2 * var_r[::-1, ::-1]))
    transient_var = float(fn * np.sum(kn**2 * (psf_new / psf_new.sum())[::-1, ::-1]))
    return ZogySNRTerms(response=response, variance=variance, transient_var=transient_var)


# ----------------------------------------------------------------------------- scene pieces


@dataclass(frozen=True, kw_only=True)
class PairConfig:
    """The scene and the two observations of :func:`simulate_pair` (validated, frozen).

    Every field is a keyword argument of :func:`simulate_pair` (see there for meanings);
    the pieces below (:func:`draw_stars`, :func:`draw_galaxies`, :func:`render_static`,
    :func:`draw_transients`, :func:`observe`, :func:`add_saturated_stars`,
    :func:`add_cosmic_rays`) take it so that other simulators (a transient search) can
    compose their own scenes.
    """

    shape: tuple[int, int] = (1024, 1024)
    star_density: float = 4e-4
    galaxy_density: float = 1.5e-4
    n_transients: int = 20
    transient_snr: Any = 10.0
    transient_on_galaxy_fraction: float = 0.3
    science_psf: str = "moffat"
    science_fwhm: float = 4.5
    reference_psf: str = "gaussian"
    reference_fwhm: float = 3.2
    moffat_beta: float = 3.0
    psf_gradient: float = 0.0
    science_sky: float = 800.0
    reference_sky: float = 500.0
    science_gain: float = 1.5
    reference_gain: float = 8.0
    read_noise: float = 4.0
    flux_ratio: float = 0.85
    sky_gradient: float = 0.05
    offset: tuple[float, float] | None = None
    max_offset: float = 3.0
    saturation: float = 60000.0
    brightest_star: float = 1e7
    with_wcs: bool = True
    n_cosmic_rays: int = 0
    n_cosmic_rays_reference: int = 0
    n_saturated_stars: int = 0

    def __post_init__(self) -> None:
        ny, nx = (int(self.shape[0]), int(self.shape[1]))
        if ny < 32 or nx < 32:
            raise ParameterError(
                f"shape must be at least 32 x 32, got {self.shape}", name="shape", value=self.shape
            )
        object.__setattr__(self, "shape", (ny, nx))
        if not (isinstance(self.flux_ratio, int | float | np.floating) and self.flux_ratio > 0):
            raise ParameterError(
                f"flux_ratio must be positive, got {self.flux_ratio!r}",
                name="flux_ratio",
                value=self.flux_ratio,
            )
        for name in ("star_density", "galaxy_density", "sky_gradient", "psf_gradient"):
            check_range(
                f"PairConfig.{name}", getattr(self, name), low=0 if "density" in name else None
            )
        check_range(
            "PairConfig.transient_on_galaxy_fraction",
            self.transient_on_galaxy_fraction,
            low=0,
            high=1,
        )
        for name in (
            "n_transients",
            "n_cosmic_rays",
            "n_cosmic_rays_reference",
            "n_saturated_stars",
        ):
            check_int(f"PairConfig.{name}", getattr(self, name), low=0)
        for name in (
            "science_fwhm",
            "reference_fwhm",
            "moffat_beta",
            "science_gain",
            "reference_gain",
            "saturation",
            "brightest_star",
        ):
            check_positive(f"PairConfig.{name}", getattr(self, name))
        for name in ("science_sky", "reference_sky", "read_noise", "max_offset"):
            check_positive(f"PairConfig.{name}", getattr(self, name), allow_zero=True)
        check_choice("PairConfig.science_psf", self.science_psf, ("moffat", "gaussian"))
        check_choice("PairConfig.reference_psf", self.reference_psf, ("moffat", "gaussian"))
        if self.offset is not None:
            offset = (float(self.offset[0]), float(self.offset[1]))
            for value in offset:
                check_finite("PairConfig.offset", value)
            object.__setattr__(self, "offset", offset)

    @property
    def area(self) -> int:
        """Pixels per image."""
        return self.shape[0] * self.shape[1]

    @property
    def faint_limit(self) -> float:
        """Faintest static source, reference counts (≈ 3σ in a 4-FWHM aperture)."""
        return 3.0 * math.sqrt(self.reference_sky / self.reference_gain) * 4.0 * self.reference_fwhm

    def to_dict(self) -> dict:
        """The configuration as a plain dict (``SimulatedPair.params``)."""
        return dataclasses.asdict(self)


def pair_psfs(config: PairConfig):
    """``(science_psf, reference_psf)``: the true PSF models of the two images."""
    psf_ref = _psf_model(
        config.reference_psf,
        config.reference_fwhm,
        beta=config.moffat_beta,
        axis_ratio=1.0,
        theta=0.0,
        gradient=0.0,
        shape=config.shape,
    )
    psf_new = _psf_model(
        config.science_psf,
        config.science_fwhm,
        beta=config.moffat_beta,
        axis_ratio=0.9,
        theta=0.5,
        gradient=config.psf_gradient,
        shape=config.shape,
    )
    return psf_new, psf_ref


def draw_offset(config: PairConfig, rng: np.random.Generator) -> tuple[float, float]:
    """Science pixel = reference pixel + offset: ``config.offset`` or uniform within
    ``max_offset`` (draws from ``rng`` only then)."""
    offset = config.offset
    if offset is None:
        offset = tuple(rng.uniform(-config.max_offset, config.max_offset, 2))
    return float(offset[0]), float(offset[1])


def draw_stars(config: PairConfig, rng: np.random.Generator):
    """Stars (reference pixels and counts): Poisson number, power law dN/dF ~ F^-1.6
    between :attr:`PairConfig.faint_limit` and ``brightest_star``, uniform positions
    (up to 10 px outside the frame)."""
    from astropy.table import Table

    ny, nx = config.shape
    margin = -10.0  # sources may sit just outside the frame
    n_stars = rng.poisson(config.star_density * config.area)
    f_min = config.faint_limit
    u = rng.uniform(size=n_stars)
    a = -0.6
    star_flux = (f_min**a + u * (config.brightest_star**a - f_min**a)) ** (1.0 / a)
    star_xy = np.column_stack(
        [
            rng.uniform(margin, nx - 1 - margin, n_stars),
            rng.uniform(margin, ny - 1 - margin, n_stars),
        ]
    )
    return Table({"x": star_xy[:, 0], "y": star_xy[:, 1], "flux": star_flux})


def draw_galaxies(config: PairConfig, rng: np.random.Generator):
    """Sérsic galaxies (reference pixels and counts): ``x``, ``y``, ``flux``,
    ``sersic_n``, ``hlr`` (pixels), ``q``, ``theta``."""
    from astropy.table import Table

    ny, nx = config.shape
    n_gal = rng.poisson(config.galaxy_density * config.area)
    return Table(
        {
            "x": rng.uniform(10, nx - 11, n_gal),
            "y": rng.uniform(10, ny - 11, n_gal),
            "flux": (config.faint_limit * 3) * 10 ** rng.uniform(0, 1.7, n_gal),
            "sersic_n": rng.choice([1.0, 1.5, 2.5, 4.0], n_gal),
            "hlr": rng.uniform(1.0, 6.0, n_gal),
            "q": rng.uniform(0.4, 1.0, n_gal),
            "theta": rng.uniform(0, np.pi, n_gal),
        }
    )


def render_static(shape, psf, stars, galaxies, *, flux_scale: float, offset) -> np.ndarray:
    """Noiseless image of the stars and galaxies through ``psf``, shifted by ``offset``
    and scaled by ``flux_scale`` (science counts per reference count)."""
    import galsim

    image = np.zeros(shape)
    xy = np.column_stack([np.asarray(stars["x"]), np.asarray(stars["y"])])
    flux = np.asarray(stars["flux"])
    if offset[0] or offset[1]:
        xy = xy + np.array([offset[0], offset[1]])
    if flux_scale != 1.0:
        flux = flux * flux_scale
    _render_points(image, psf, xy, flux)
    _render_galaxies(image, galsim, psf, galaxies, flux_scale, offset)
    return image


def sky_map(config: PairConfig, level: float, rng: np.random.Generator) -> np.ndarray:
    """Sky of ``level`` counts at the centre with a linear gradient of ``sky_gradient``
    in a random direction."""
    ny, nx = config.shape
    yy, xx = np.mgrid[0:ny, 0:nx]
    direction = rng.uniform(0, 2 * np.pi)
    ramp = np.cos(direction) * (xx / nx - 0.5) + np.sin(direction) * (yy / ny - 0.5)
    return level * (1.0 + config.sky_gradient * ramp)


def draw_transients(config: PairConfig, rng: np.random.Generator, galaxies, offset):
    """Transient positions (science pixels), ``on_galaxy`` flags and target S/N.

    ``transient_on_galaxy_fraction`` of them sit within one half-light radius of a galaxy.

    Returns
    -------
    xy : ndarray (n, 2)
    on_galaxy : ndarray of bool (n,)
    snr_target : ndarray (n,)
    """
    ny, nx = config.shape
    ox, oy = offset
    n_transients = config.n_transients
    n_on = round(config.transient_on_galaxy_fraction * n_transients) if len(galaxies) else 0
    edge = 30
    t_xy = np.column_stack(
        [
            rng.uniform(edge, nx - 1 - edge, n_transients),
            rng.uniform(edge, ny - 1 - edge, n_transients),
        ]
    )
    on_galaxy = np.zeros(n_transients, bool)
    if n_on:
        inside = np.flatnonzero(
            (galaxies["x"] + ox > edge)
            & (galaxies["x"] + ox < nx - 1 - edge)
            & (galaxies["y"] + oy > edge)
            & (galaxies["y"] + oy < ny - 1 - edge)
        )
        if len(inside):
            hosts = rng.choice(inside, size=min(n_on, len(inside)), replace=len(inside) < n_on)
            for k, g in enumerate(hosts):
                r = rng.uniform(0, 1) * galaxies["hlr"][g]
                phi = rng.uniform(0, 2 * np.pi)
                t_xy[k] = (
                    galaxies["x"][g] + ox + r * np.cos(phi),
                    galaxies["y"][g] + oy + r * np.sin(phi),
                )
                on_galaxy[k] = True
    transient_snr = config.transient_snr
    if isinstance(transient_snr, tuple):
        snr_target = rng.uniform(float(transient_snr[0]), float(transient_snr[1]), n_transients)
    else:
        snr_target = np.broadcast_to(np.asarray(transient_snr, float), (n_transients,)).astype(
            float
        )
    if np.any(snr_target <= 0):
        raise ParameterError(
            f"transient_snr must be positive, got {transient_snr!r}",
            name="transient_snr",
            value=transient_snr,
        )
    return t_xy, on_galaxy, snr_target


def transient_fluxes(
    config: PairConfig,
    xy,
    snr_target,
    *,
    psfs,
    sources,
    sigmas,
    offset,
) -> tuple[np.ndarray, np.ndarray]:
    """Reference-unit fluxes that give each transient its theoretical ZOGY S/N.

    Parameters
    ----------
    xy, snr_target : ndarray
        Science positions and target S/N.
    psfs, sources, sigmas : (science, reference) pairs
        True PSFs, noiseless static images (host noise) and background noise maps.
    offset : (dx, dy)

    Returns
    -------
    flux_ref, snr : ndarray
        Fluxes (reference counts) and their exact theoretical S/N (small-stamp ZOGY at
        the true PSFs, with the source noise of the transient and its host).
    """
    psf_new, psf_ref = psfs
    new_sources, ref_sources = sources
    sigma_new, sigma_ref = sigmas
    ox, oy = offset
    m = 63
    h = m // 2
    n = len(xy)
    t_flux_ref = np.zeros(n)
    t_snr = np.zeros(n)
    pad_new = np.pad(new_sources, h)
    pad_ref = np.pad(ref_sources, h + math.ceil(max(abs(ox), abs(oy))) + 1)
    extra = (pad_ref.shape[0] - pad_new.shape[0]) // 2
    for k, (x, y) in enumerate(xy):
        ix, iy = math.floor(x + 0.5), math.floor(y + 0.5)
        local_new = _psf_at(psf_new, x, y)
        stamp_new = local_new.render((m, m))
        stamp_ref = psf_ref.render((m, m))
        host_new = pad_new[iy : iy + m, ix : ix + m] / config.science_gain
        # host noise in the reference: nearest reference pixel is close enough
        jx, jy = math.floor(x - ox + 0.5) + extra, math.floor(y - oy + 0.5) + extra
        host_ref = pad_ref[jy : jy + m, jx : jx + m] / config.reference_gain
        terms = theoretical_zogy_snr(
            stamp_new,
            stamp_ref,
            sigma_new=float(sigma_new[iy, ix]),
            sigma_ref=float(sigma_ref[iy, ix]),
            flux_ratio=config.flux_ratio,
            source_var_new=host_new,
            source_var_ref=host_ref,
        )
        response, variance = terms.response, terms.variance
        tvar = terms.transient_var / config.science_gain
        s = snr_target[k]
        # alpha^2 F_S^2 = s^2 (variance + alpha tvar)
        alpha = (s**2 * tvar + math.sqrt(s**4 * tvar**2 + 4 * response**2 * s**2 * variance)) / (
            2 * response**2
        )
        t_flux_ref[k] = alpha
        t_snr[k] = alpha * response / math.sqrt(variance + alpha * tvar)
    return t_flux_ref, t_snr


def observe(
    sources, sky, *, gain: float, read_noise: float, saturation: float, rng
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Noisy image of ``sources + sky`` (Poisson as Gaussian, read noise), clipped at
    ``saturation``.

    Returns
    -------
    image, variance, saturated
        ``variance`` is the background-only variance ``sky / gain + read_noise**2``;
        ``saturated`` the clipped pixels.
    """
    model = sources + sky
    noise = rng.standard_normal(model.shape)
    noise *= np.sqrt(np.maximum(model, 0.0) / gain + read_noise**2)
    image = model + noise
    saturated = image >= saturation
    image[saturated] = saturation
    sigma = np.sqrt(sky / gain + read_noise**2)
    return image, sigma**2, saturated


def add_saturated_stars(
    config: PairConfig,
    images,
    saturated,
    *,
    psfs,
    offset,
    rng: np.random.Generator,
):
    """Add ``n_saturated_stars`` static stars that saturate the science image.

    Science peaks 2–20 times ``saturation`` (log-uniform), rendered in both images with
    their own Poisson noise, both images clipped at ``saturation`` again (flat tops),
    ``saturated`` masks updated in place.

    Returns
    -------
    astropy.table.Table
        ``kind`` ("saturated_star"), ``x``, ``y`` (science pixels), ``flux`` (science
        counts).
    """
    from astropy.table import Table

    ny, nx = config.shape
    n = config.n_saturated_stars
    ox, oy = offset
    psf_new, _ = psfs
    xy = np.column_stack([rng.uniform(20, nx - 21, n), rng.uniform(20, ny - 21, n)])
    peak_fraction = float(_psf_at(psf_new, nx / 2, ny / 2).render((31, 31)).max())
    flux_new = config.saturation / peak_fraction * 10 ** rng.uniform(np.log10(2), 1.3, n)
    gains = (config.science_gain, config.reference_gain)
    scales = (1.0, 1.0 / config.flux_ratio)
    shifts = (np.zeros(2), -np.array([ox, oy]))
    for image, sat, psf, gain, scale, shift in zip(
        images, saturated, psfs, gains, scales, shifts, strict=True
    ):
        star = np.zeros((ny, nx))
        _render_points(star, psf, xy + shift, flux_new * scale)
        image += star + rng.standard_normal((ny, nx)) * np.sqrt(star / gain)
        clipped = image >= config.saturation
        image[clipped] = config.saturation
        sat |= clipped
    return Table(
        {"kind": np.full(n, "saturated_star"), "x": xy[:, 0], "y": xy[:, 1], "flux": flux_new}
    )


def add_cosmic_rays(
    image, n: int, *, saturation: float, rng: np.random.Generator, image_name: str = "science"
):
    """Add ``n`` cosmic rays: sharp tracks 1–8 px long (random angle, sub-pixel
    sampled), 300–30 000 counts (log-uniform); not masked (nothing told the pipeline);
    clipped at ``saturation``.

    Returns
    -------
    astropy.table.Table
        ``kind`` ("cosmic_ray"), ``x``, ``y`` (track centre), ``flux``, ``image``.
    """
    from astropy.table import Table

    ny, nx = image.shape
    x0 = rng.uniform(5, nx - 6, n)
    y0 = rng.uniform(5, ny - 6, n)
    length = rng.uniform(1.0, 8.0, n)
    angle = rng.uniform(0, np.pi, n)
    flux = 10 ** rng.uniform(2.5, 4.5, n)
    for k in range(n):
        steps = max(int(np.ceil(4 * length[k])), 1)
        t = (np.arange(steps) + 0.5) / steps - 0.5
        px = np.floor(x0[k] + t * length[k] * np.cos(angle[k]) + 0.5).astype(int)
        py = np.floor(y0[k] + t * length[k] * np.sin(angle[k]) + 0.5).astype(int)
        np.add.at(image, (np.clip(py, 0, ny - 1), np.clip(px, 0, nx - 1)), flux[k] / steps)
    np.minimum(image, saturation, out=image)
    return Table(
        {
            "kind": np.full(n, "cosmic_ray"),
            "x": x0,
            "y": y0,
            "flux": flux,
            "image": np.full(n, image_name),
        }
    )


def pair_wcs(config: PairConfig, offset):
    """TAN WCSs ``(science, reference)`` that encode ``offset`` (0.26″/px at RA 150, Dec 2.2)."""
    from astropy.wcs import WCS

    ny, nx = config.shape
    wcs_ref = WCS(naxis=2)
    wcs_ref.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs_ref.wcs.crval = [150.0, 2.2]
    wcs_ref.wcs.crpix = [nx / 2.0 + 0.5, ny / 2.0 + 0.5]
    wcs_ref.wcs.cdelt = [-PIXEL_SCALE / 3600.0, PIXEL_SCALE / 3600.0]
    wcs_ref.pixel_shape = (nx, ny)
    wcs_new = wcs_ref.deepcopy()
    wcs_new.wcs.crpix = wcs_ref.wcs.crpix + np.array([offset[0], offset[1]])
    return wcs_new, wcs_ref


# ----------------------------------------------------------------------------- simulate_pair


def simulate_pair(*, config: PairConfig | None = None, rng=0, **settings) -> SimulatedPair:
    """Simulate a seeded reference/science pair with transients and their truth.

    Parameters
    ----------
    config : PairConfig, optional
        The scene; or give its fields as keyword arguments (not both).
    rng : int or numpy.random.Generator
        Seed or generator; the same seed gives the same pair.
    **settings
        :class:`PairConfig` fields:

        shape : (ny, nx)
            Image shape (both images).
        star_density, galaxy_density : float
            Sources per pixel.
        n_transients : int
            Point sources added to the science image only (0 for a null pair).
        transient_snr : float, (lo, hi) or array
            Theoretical ZOGY S/N of each transient: one value, a uniform range, or one
            value per transient.
        transient_on_galaxy_fraction : float
            Fraction of transients placed on a galaxy (within one half-light radius).
        science_psf, reference_psf : {"moffat", "gaussian"}
            PSF families; ``science_fwhm``/``reference_fwhm`` in pixels.
        moffat_beta : float
            Moffat index.
        psf_gradient : float
            Fractional change of the science FWHM from the centre to each edge (Moffat
            only; 0: constant PSF).
        science_sky, reference_sky : float
            Sky level, counts per pixel, at the image centre.
        science_gain, reference_gain : float
            Electrons per count (sets the Poisson noise).
        read_noise : float
            Read noise, counts.
        flux_ratio : float
            Science counts per reference count of a static source (F_n / F_r).
        sky_gradient : float
            Fractional linear sky change across the field.
        offset : (dx, dy), optional
            Science pixel = reference pixel + offset; default: random within
            ``max_offset``.
        max_offset : float
            Largest random offset per axis, pixels.
        saturation : float
            Saturation level, counts; pixels above are clipped and masked.
        brightest_star : float
            Flux of the brightest star, reference counts (power law down to the faintest).
        with_wcs : bool
            Attach TAN WCSs that encode the offset (otherwise both have ``wcs=None``).
        n_cosmic_rays, n_cosmic_rays_reference : int
            Cosmic rays in the science / reference image (:func:`add_cosmic_rays`; not
            masked). Default 0.
        n_saturated_stars : int
            Extra static stars that saturate the science image
            (:func:`add_saturated_stars`). Default 0.

        Artefacts are drawn from ``rng`` after everything else, so a seeded pair without
        them is the same as before they existed.

    Returns
    -------
    SimulatedPair

    Examples
    --------
    >>> pair = simulate_pair(shape=(128, 128), rng=1, n_transients=2)
    >>> pair.science.shape, len(pair.transients)
    ((128, 128), 2)
    """
    from astropy.table import Table, vstack
    from astropy.time import Time

    if config is None:
        config = PairConfig(**settings)
    elif settings:
        raise ParameterError(
            f"give either config or its fields, not both (got {sorted(settings)})",
            name="settings",
            value=sorted(settings),
        )
    rng = np.random.default_rng(rng)
    ox, oy = draw_offset(config, rng)
    psf_new, psf_ref = pair_psfs(config)
    stars = draw_stars(config, rng)
    galaxies = draw_galaxies(config, rng)
    ref_sources = render_static(
        config.shape, psf_ref, stars, galaxies, flux_scale=1.0, offset=(0.0, 0.0)
    )
    new_sources = render_static(
        config.shape, psf_new, stars, galaxies, flux_scale=config.flux_ratio, offset=(ox, oy)
    )
    t_xy, on_galaxy, snr_target = draw_transients(config, rng, galaxies, (ox, oy))
    sky_new = sky_map(config, config.science_sky, rng)
    sky_ref = sky_map(config, config.reference_sky, rng)
    sigma_new = np.sqrt(sky_new / config.science_gain + config.read_noise**2)
    sigma_ref = np.sqrt(sky_ref / config.reference_gain + config.read_noise**2)
    t_flux_ref, t_snr = transient_fluxes(
        config,
        t_xy,
        snr_target,
        psfs=(psf_new, psf_ref),
        sources=(new_sources, ref_sources),
        sigmas=(sigma_new, sigma_ref),
        offset=(ox, oy),
    )
    _render_points(new_sources, psf_new, t_xy, t_flux_ref * config.flux_ratio)
    noise = {"read_noise": config.read_noise, "saturation": config.saturation, "rng": rng}
    new_img, new_var, new_sat = observe(new_sources, sky_new, gain=config.science_gain, **noise)
    ref_img, ref_var, ref_sat = observe(ref_sources, sky_ref, gain=config.reference_gain, **noise)

    artefacts = [Table({"kind": np.zeros(0, "U14"), "x": [], "y": [], "flux": []})]
    if config.n_saturated_stars:
        artefacts.append(
            add_saturated_stars(
                config,
                (new_img, ref_img),
                (new_sat, ref_sat),
                psfs=(psf_new, psf_ref),
                offset=(ox, oy),
                rng=rng,
            )
        )
    for image, n, name in (
        (new_img, config.n_cosmic_rays, "science"),
        (ref_img, config.n_cosmic_rays_reference, "reference"),
    ):
        if n:
            cosmic = add_cosmic_rays(
                image, n, saturation=config.saturation, rng=rng, image_name=name
            )
            artefacts.append(cosmic)
            if name == "science":
                new_sat |= image >= config.saturation
            else:
                ref_sat |= image >= config.saturation
    artefact_table = vstack(artefacts) if len(artefacts) > 1 else artefacts[0]
    if "image" not in artefact_table.colnames:
        artefact_table["image"] = np.full(len(artefact_table), "both", "U9")
    else:
        artefact_table["image"] = np.where(
            artefact_table["kind"] == "saturated_star", "both", artefact_table["image"]
        )

    wcs_new, wcs_ref = pair_wcs(config, (ox, oy)) if config.with_wcs else (None, None)
    zp_ref = 30.0
    zp_new = zp_ref + 2.5 * math.log10(config.flux_ratio)
    common: dict[str, Any] = {"band": "r", "read_noise": config.read_noise}
    science = Exposure(
        data=new_img,
        variance=new_var,
        mask=new_sat,
        wcs=wcs_new,
        psf=psf_new,
        zeropoint=zp_new,
        gain=config.science_gain,
        time=Time(60200.3, format="mjd", scale="utc"),
        exptime=90.0,
        meta={"saturate": config.saturation, "kind": "science"},
        **common,
    )
    reference = Exposure(
        data=ref_img,
        variance=ref_var,
        mask=ref_sat,
        wcs=wcs_ref,
        psf=psf_ref,
        zeropoint=zp_ref,
        gain=config.reference_gain,
        time=Time(60000.3, format="mjd", scale="utc"),
        exptime=900.0,
        meta={"saturate": config.saturation, "kind": "reference"},
        **common,
    )
    transients = Table(
        {
            "x": t_xy[:, 0],
            "y": t_xy[:, 1],
            "x_ref": t_xy[:, 0] - ox,
            "y_ref": t_xy[:, 1] - oy,
            "flux": t_flux_ref * config.flux_ratio,
            "flux_ref": t_flux_ref,
            "on_galaxy": on_galaxy,
            "snr": t_snr,
        }
    )
    log.debug(
        "simulated pair %s: %d stars, %d galaxies, %d transients, %d artefacts",
        config.shape,
        len(stars),
        len(galaxies),
        config.n_transients,
        len(artefact_table),
    )
    return SimulatedPair(
        science=science,
        reference=reference,
        transients=transients,
        stars=stars,
        galaxies=galaxies,
        flux_ratio=float(config.flux_ratio),
        offset=(ox, oy),
        params=config.to_dict(),
        artefacts=artefact_table,
        config=config,
    )
