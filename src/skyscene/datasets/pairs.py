"""Seeded reference/science image pairs for difference imaging (ZOGY tests and demos).

:func:`simulate_pair` draws one static scene (stars, Sérsic galaxies) observed twice:
a deep *reference* and a shallower *science* image with a different PSF (Gaussian or
Moffat, optionally varying across the field), depth, flux scale, sky gradient and a
small misalignment, plus transients injected in the science image only. The truth
table gives each transient's flux and its theoretical ZOGY S/N.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from skyscene.errors import ParameterError
from skyscene.io import Exposure
from skyscene.psf import GaussianPSF, MoffatPSF

__all__ = ["SimulatedPair", "VaryingMoffatPSF", "simulate_pair", "theoretical_zogy_snr"]

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
        The arguments of :func:`simulate_pair`.
    """

    science: Exposure
    reference: Exposure
    transients: Any
    stars: Any
    galaxies: Any
    flux_ratio: float
    offset: tuple[float, float]
    params: dict = field(default_factory=dict)


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


def theoretical_zogy_snr(
    psf_new: np.ndarray,
    psf_ref: np.ndarray,
    *,
    sigma_new: float,
    sigma_ref: float,
    flux_ratio: float,
    source_var_new: np.ndarray | None = None,
    source_var_ref: np.ndarray | None = None,
) -> tuple[float, float, float]:
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
    response, variance, transient_var : float
        ``S = response * alpha`` for a point source of reference-unit flux ``alpha``
        (``response = F_S``); ``variance`` of S without the transient's own noise;
        ``transient_var`` the variance per unit ``alpha`` added by the transient's own
        Poisson noise in the science image (science image in electrons/gain ignored:
        multiply by 1/gain outside). S/N = ``alpha F_S / sqrt(variance + alpha*transient_var)``.
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
    return response, variance, transient_var


def simulate_pair(
    *,
    shape: tuple[int, int] = (1024, 1024),
    rng=0,
    star_density: float = 4e-4,
    galaxy_density: float = 1.5e-4,
    n_transients: int = 20,
    transient_snr=10.0,
    transient_on_galaxy_fraction: float = 0.3,
    science_psf: str = "moffat",
    science_fwhm: float = 4.5,
    reference_psf: str = "gaussian",
    reference_fwhm: float = 3.2,
    moffat_beta: float = 3.0,
    psf_gradient: float = 0.0,
    science_sky: float = 800.0,
    reference_sky: float = 500.0,
    science_gain: float = 1.5,
    reference_gain: float = 8.0,
    read_noise: float = 4.0,
    flux_ratio: float = 0.85,
    sky_gradient: float = 0.05,
    offset: tuple[float, float] | None = None,
    max_offset: float = 3.0,
    saturation: float = 60000.0,
    brightest_star: float = 1e7,
    with_wcs: bool = True,
) -> SimulatedPair:
    """Simulate a seeded reference/science pair with transients and their truth.

    Parameters
    ----------
    shape : (ny, nx)
        Image shape (both images).
    rng : int or numpy.random.Generator
        Seed or generator; the same seed gives the same pair.
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
        Fractional change of the science FWHM from the centre to each edge (Moffat only;
        0: constant PSF).
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
        Science pixel = reference pixel + offset; default: random within ``max_offset``.
    max_offset : float
        Largest random offset per axis, pixels.
    saturation : float
        Saturation level, counts; pixels above are clipped and masked.
    brightest_star : float
        Flux of the brightest star, reference counts (power law down to the faintest).
    with_wcs : bool
        Attach TAN WCSs that encode the offset (otherwise both have ``wcs=None``).

    Returns
    -------
    SimulatedPair

    Examples
    --------
    >>> pair = simulate_pair(shape=(128, 128), rng=1, n_transients=2)
    >>> pair.science.shape, len(pair.transients)
    ((128, 128), 2)
    """
    import galsim
    from astropy.table import Table

    params = {k: v for k, v in locals().items() if k not in ("galsim", "Table", "rng")}
    rng = np.random.default_rng(rng)
    ny, nx = (int(shape[0]), int(shape[1]))
    if ny < 32 or nx < 32:
        raise ParameterError(f"shape must be at least 32 x 32, got {shape}")
    if not flux_ratio > 0:
        raise ParameterError(f"flux_ratio must be positive, got {flux_ratio!r}")
    if offset is None:
        offset = tuple(rng.uniform(-max_offset, max_offset, 2))
    ox, oy = float(offset[0]), float(offset[1])

    psf_ref = _psf_model(
        reference_psf,
        reference_fwhm,
        beta=moffat_beta,
        axis_ratio=1.0,
        theta=0.0,
        gradient=0.0,
        shape=shape,
    )
    psf_new = _psf_model(
        science_psf,
        science_fwhm,
        beta=moffat_beta,
        axis_ratio=0.9,
        theta=0.5,
        gradient=psf_gradient,
        shape=shape,
    )
    area = ny * nx
    margin = -10.0  # sources may sit just outside the frame

    # stars: power law dN/dF ~ F^-1.6 between a faint limit and the brightest star
    n_stars = rng.poisson(star_density * area)
    f_min = 3.0 * math.sqrt(reference_sky / reference_gain) * 4.0 * reference_fwhm
    u = rng.uniform(size=n_stars)
    a = -0.6
    star_flux = (f_min**a + u * (brightest_star**a - f_min**a)) ** (1.0 / a)
    star_xy = np.column_stack(
        [
            rng.uniform(margin, nx - 1 - margin, n_stars),
            rng.uniform(margin, ny - 1 - margin, n_stars),
        ]
    )
    stars = Table({"x": star_xy[:, 0], "y": star_xy[:, 1], "flux": star_flux})

    n_gal = rng.poisson(galaxy_density * area)
    galaxies = Table(
        {
            "x": rng.uniform(10, nx - 11, n_gal),
            "y": rng.uniform(10, ny - 11, n_gal),
            "flux": (f_min * 3) * 10 ** rng.uniform(0, 1.7, n_gal),
            "sersic_n": rng.choice([1.0, 1.5, 2.5, 4.0], n_gal),
            "hlr": rng.uniform(1.0, 6.0, n_gal),
            "q": rng.uniform(0.4, 1.0, n_gal),
            "theta": rng.uniform(0, np.pi, n_gal),
        }
    )

    def sky(level):
        yy, xx = np.mgrid[0:ny, 0:nx]
        direction = rng.uniform(0, 2 * np.pi)
        ramp = np.cos(direction) * (xx / nx - 0.5) + np.sin(direction) * (yy / ny - 0.5)
        return level * (1.0 + sky_gradient * ramp)

    ref_sources = np.zeros((ny, nx))
    _render_points(ref_sources, psf_ref, star_xy, star_flux)
    _render_galaxies(ref_sources, galsim, psf_ref, galaxies, 1.0, (0.0, 0.0))
    new_sources = np.zeros((ny, nx))
    _render_points(new_sources, psf_new, star_xy + np.array([ox, oy]), star_flux * flux_ratio)
    _render_galaxies(new_sources, galsim, psf_new, galaxies, flux_ratio, (ox, oy))

    # transients (science pixels), some on galaxies
    n_on = round(transient_on_galaxy_fraction * n_transients) if n_gal else 0
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
    if isinstance(transient_snr, tuple):
        snr_target = rng.uniform(float(transient_snr[0]), float(transient_snr[1]), n_transients)
    else:
        snr_target = np.broadcast_to(np.asarray(transient_snr, float), (n_transients,)).astype(
            float
        )
    if np.any(snr_target <= 0):
        raise ParameterError(f"transient_snr must be positive, got {transient_snr!r}")

    sky_new = sky(science_sky)
    sky_ref = sky(reference_sky)
    sigma_new = np.sqrt(sky_new / science_gain + read_noise**2)
    sigma_ref = np.sqrt(sky_ref / reference_gain + read_noise**2)

    # transient fluxes from the theoretical S/N (small-stamp ZOGY at the true PSFs)
    m = 63
    h = m // 2
    t_flux_ref = np.zeros(n_transients)
    t_snr = np.zeros(n_transients)
    pad_new = np.pad(new_sources, h)
    pad_ref = np.pad(ref_sources, h + math.ceil(max(abs(ox), abs(oy))) + 1)
    extra = (pad_ref.shape[0] - pad_new.shape[0]) // 2
    for k, (x, y) in enumerate(t_xy):
        ix, iy = math.floor(x + 0.5), math.floor(y + 0.5)
        local_new = _psf_at(psf_new, x, y)
        stamp_new = local_new.render((m, m))
        stamp_ref = psf_ref.render((m, m))
        host_new = pad_new[iy : iy + m, ix : ix + m] / science_gain
        # host noise in the reference: nearest reference pixel is close enough
        jx, jy = math.floor(x - ox + 0.5) + extra, math.floor(y - oy + 0.5) + extra
        host_ref = pad_ref[jy : jy + m, jx : jx + m] / reference_gain
        response, variance, tvar = theoretical_zogy_snr(
            stamp_new,
            stamp_ref,
            sigma_new=float(sigma_new[iy, ix]),
            sigma_ref=float(sigma_ref[iy, ix]),
            flux_ratio=flux_ratio,
            source_var_new=host_new,
            source_var_ref=host_ref,
        )
        tvar /= science_gain
        s = snr_target[k]
        # alpha^2 F_S^2 = s^2 (variance + alpha tvar)
        alpha = (s**2 * tvar + math.sqrt(s**4 * tvar**2 + 4 * response**2 * s**2 * variance)) / (
            2 * response**2
        )
        t_flux_ref[k] = alpha
        t_snr[k] = alpha * response / math.sqrt(variance + alpha * tvar)
    _render_points(new_sources, psf_new, t_xy, t_flux_ref * flux_ratio)

    def observe(sources, sky_map, gain, sigma):
        model = sources + sky_map
        noise = rng.standard_normal((ny, nx))
        noise *= np.sqrt(np.maximum(model, 0.0) / gain + read_noise**2)
        image = model + noise
        saturated = image >= saturation
        image[saturated] = saturation
        return image, sigma**2, saturated

    new_img, new_var, new_sat = observe(new_sources, sky_new, science_gain, sigma_new)
    ref_img, ref_var, ref_sat = observe(ref_sources, sky_ref, reference_gain, sigma_ref)

    wcs_ref = wcs_new = None
    if with_wcs:
        from astropy.wcs import WCS

        wcs_ref = WCS(naxis=2)
        wcs_ref.wcs.ctype = ["RA---TAN", "DEC--TAN"]
        wcs_ref.wcs.crval = [150.0, 2.2]
        wcs_ref.wcs.crpix = [nx / 2.0 + 0.5, ny / 2.0 + 0.5]
        wcs_ref.wcs.cdelt = [-PIXEL_SCALE / 3600.0, PIXEL_SCALE / 3600.0]
        wcs_ref.pixel_shape = (nx, ny)
        wcs_new = wcs_ref.deepcopy()
        wcs_new.wcs.crpix = wcs_ref.wcs.crpix + np.array([ox, oy])

    from astropy.time import Time

    zp_ref = 30.0
    zp_new = zp_ref + 2.5 * math.log10(flux_ratio)
    common: dict[str, Any] = {"band": "r", "read_noise": read_noise}
    science = Exposure(
        data=new_img,
        variance=new_var,
        mask=new_sat,
        wcs=wcs_new,
        psf=psf_new,
        zeropoint=zp_new,
        gain=science_gain,
        time=Time(60200.3, format="mjd", scale="utc"),
        exptime=90.0,
        meta={"saturate": saturation, "kind": "science"},
        **common,
    )
    reference = Exposure(
        data=ref_img,
        variance=ref_var,
        mask=ref_sat,
        wcs=wcs_ref,
        psf=psf_ref,
        zeropoint=zp_ref,
        gain=reference_gain,
        time=Time(60000.3, format="mjd", scale="utc"),
        exptime=900.0,
        meta={"saturate": saturation, "kind": "reference"},
        **common,
    )
    transients = Table(
        {
            "x": t_xy[:, 0],
            "y": t_xy[:, 1],
            "x_ref": t_xy[:, 0] - ox,
            "y_ref": t_xy[:, 1] - oy,
            "flux": t_flux_ref * flux_ratio,
            "flux_ref": t_flux_ref,
            "on_galaxy": on_galaxy,
            "snr": t_snr,
        }
    )
    log.debug(
        "simulated pair %s: %d stars, %d galaxies, %d transients",
        shape,
        n_stars,
        n_gal,
        n_transients,
    )
    return SimulatedPair(
        science=science,
        reference=reference,
        transients=transients,
        stars=stars,
        galaxies=galaxies,
        flux_ratio=float(flux_ratio),
        offset=(ox, oy),
        params=params,
    )
