"""PSF shape from stars: elliptical Gaussian (or Moffat) fits to isolated stars."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares

from skyscene.errors import DataError, ParameterError
from skyscene.psf.analytic import GaussianPSF, MoffatPSF, sigma_to_fwhm

__all__ = ["PSFShape", "combine_shapes", "estimate_psf_shape", "fit_star", "moment_sizes"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class PSFShape:
    """Elliptical Gaussian shape of a PSF measured on stars.

    Attributes
    ----------
    sigma_major, sigma_minor : float
        Standard deviations along the axes, pixels (``sigma_major >= sigma_minor``).
    theta : float
        Orientation of the major axis, **radians** counter-clockwise from +x, in
        ``(-π/2, π/2]``.
    n_stars : int
        Stars that entered the (median) estimate.
    scatter : float
        Robust relative scatter of the per-star geometric-mean sigma.
    """

    sigma_major: float
    sigma_minor: float
    theta: float
    n_stars: int
    scatter: float

    @property
    def fwhm(self) -> float:
        """Geometric-mean FWHM, pixels."""
        return float(sigma_to_fwhm(math.sqrt(self.sigma_major * self.sigma_minor)))

    @property
    def sigma(self) -> float:
        """Geometric-mean sigma, pixels."""
        return math.sqrt(self.sigma_major * self.sigma_minor)

    def to_psf(self) -> GaussianPSF:
        """The elliptical Gaussian PSF of this shape."""
        return GaussianPSF(self.sigma_major, self.sigma_minor, self.theta)


def _stamp(data, variance, x, y, half):
    ix, iy = round(x), round(y)
    ny, nx = data.shape
    if ix - half < 0 or iy - half < 0 or ix + half >= nx or iy + half >= ny:
        return None
    sl = (slice(iy - half, iy + half + 1), slice(ix - half, ix + half + 1))
    return data[sl], (None if variance is None else variance[sl]), ix - half, iy - half


def fit_star(stamp, *, variance=None, model: str = "gaussian", center=None):
    """Fit one star stamp with an elliptical profile plus a constant background.

    Returns ``(psf, flux, x, y, background, success)`` as a dict; positions in stamp pixels.
    """
    ny, nx = stamp.shape
    if center is None:
        center = ((nx - 1) / 2.0, (ny - 1) / 2.0)
    sigma_w = np.ones_like(stamp) if variance is None else np.sqrt(variance)
    good = np.isfinite(stamp) & np.isfinite(sigma_w) & (sigma_w > 0)
    if good.sum() < 10:
        raise DataError("star stamp has fewer than 10 usable pixels")
    bkg0 = float(np.median(np.concatenate([stamp[0], stamp[-1], stamp[:, 0], stamp[:, -1]])))
    flux0 = float(np.sum(stamp[good] - bkg0))
    if not flux0 > 0:
        raise DataError("star stamp has no positive flux above the background")

    def make(p):
        s1, s2, th = math.exp(p[3]), math.exp(p[4]), p[5]
        if model == "gaussian":
            return GaussianPSF(s1, s2, th)
        return MoffatPSF(s1, p[6], s2, th)

    def resid(p):
        psf = make(p)
        img = p[0] * psf.render((ny, nx), center=(p[1], p[2])) + p[-1]
        return ((stamp - img) / np.where(good, sigma_w, np.inf))[good]

    p0 = [flux0, center[0], center[1], math.log(1.5), math.log(1.4), 0.1]
    lo = [0.0, center[0] - 3, center[1] - 3, math.log(0.3), math.log(0.3), -np.inf]
    hi = [np.inf, center[0] + 3, center[1] + 3, math.log(nx), math.log(ny), np.inf]
    if model == "moffat":
        p0 += [3.0]
        lo += [1.2]
        hi += [20.0]
    elif model != "gaussian":
        raise ParameterError(f"model must be 'gaussian' or 'moffat', got {model!r}")
    p0 += [bkg0]
    lo += [-np.inf]
    hi += [np.inf]
    # The Gaussian's Jacobian is analytic (one quadrature of the derivatives instead of
    # seven finite-difference renders); the Moffat's is left to finite differences.
    jac = _gaussian_jacobian(good, sigma_w) if model == "gaussian" else "2-point"
    res = least_squares(resid, p0, jac=jac, bounds=(lo, hi), x_scale="jac")
    psf = make(res.x)
    return {
        "psf": psf,
        "flux": float(res.x[0]),
        "x": float(res.x[1]),
        "y": float(res.x[2]),
        "background": float(res.x[-1]),
        "success": bool(res.success),
    }


def _gaussian_jacobian(good, sigma_w):
    """Jacobian of :func:`fit_star`'s Gaussian residuals in its parameters.

    The model is ``F · Σ_k w_k g(u_k, v_k) + B`` over the same Gauss–Legendre pixel
    nodes as :meth:`GaussianPSF.pixel_values` (its node count, from the smaller sigma),
    with ``g`` the elliptical Gaussian of sigmas ``exp(p[3])`` along ``θ = p[5]`` and
    ``exp(p[4])`` across; the residuals are ``(data − model) / σ``.
    """
    from skyscene.psf.analytic import _n_nodes, gauss_legendre_nodes

    inv_sigma = 1.0 / sigma_w[good]
    gy, gx = np.nonzero(good)
    gx, gy = gx.astype(float)[:, None], gy.astype(float)[:, None]

    def jac(p):
        flux, x0, y0, s1, s2, th = p[0], p[1], p[2], math.exp(p[3]), math.exp(p[4]), p[5]
        nodes, weights = gauss_legendre_nodes(_n_nodes(min(s1, s2)))
        node_y, node_x = np.meshgrid(nodes, nodes, indexing="ij")
        w = np.outer(weights, weights).ravel()
        c, sn = math.cos(th), math.sin(th)
        dx = gx - x0 + node_x.ravel()[None, :]
        dy = gy - y0 + node_y.ravel()[None, :]
        u = dx * c + dy * sn
        v = -dx * sn + dy * c
        ua, vb = u / (s1 * s1), v / (s2 * s2)
        g = (w / (2.0 * math.pi * s1 * s2)) * np.exp(-0.5 * (u * ua + v * vb))
        out = np.empty((gx.shape[0], 7))
        out[:, 0] = g.sum(axis=1)
        out[:, 1] = flux * np.sum(g * (ua * c - vb * sn), axis=1)
        out[:, 2] = flux * np.sum(g * (ua * sn + vb * c), axis=1)
        out[:, 3] = flux * np.sum(g * (u * ua - 1.0), axis=1)
        out[:, 4] = flux * np.sum(g * (v * vb - 1.0), axis=1)
        out[:, 5] = flux * np.sum(g * (u * vb - v * ua), axis=1)
        out[:, 6] = 1.0
        return -out * inv_sigma[:, None]

    return jac


def estimate_psf_shape(
    data,
    positions,
    *,
    variance=None,
    mask=None,
    half_size: int = 7,
    max_stars: int = 20,
) -> PSFShape:
    """Elliptical Gaussian shape of the PSF from stars at ``positions``.

    Parameters
    ----------
    data : ndarray, shape (ny, nx)
    positions : array, shape (N, 2)
        Approximate ``(x, y)`` of isolated, unsaturated stars, brightest first.
    variance, mask : ndarray, optional
        Per-pixel variance; True = bad pixel (stars touching one are skipped).
    half_size : int
        Stamps are ``2 * half_size + 1`` pixels across.
    max_stars : int
        Use at most this many stars.

    Returns
    -------
    PSFShape
        Median of the per-star fits; ``theta`` from the circular mean of ``2θ``.

    Raises
    ------
    DataError
        No star could be fitted.
    """
    positions = np.atleast_2d(np.asarray(positions, dtype=float))
    fits: list = []
    for x, y in positions:
        if len(fits) >= max_stars:
            break
        cut = _stamp(data, variance, x, y, half_size)
        if cut is None:
            continue
        stamp, var, x0, y0 = cut
        if mask is not None and mask[y0 : y0 + stamp.shape[0], x0 : x0 + stamp.shape[1]].any():
            continue
        try:
            fit = fit_star(stamp, variance=var, center=(x - x0, y - y0))
        except DataError:
            continue
        if fit["success"] and fit["psf"].sigma_major < half_size / 1.5:
            fits.append(fit["psf"])
    if not fits:
        raise DataError(
            f"no star could be fitted for the PSF shape (of {len(positions)} candidates)"
        )
    major = np.array([f.sigma_major for f in fits])
    minor = np.array([f.sigma_minor for f in fits])
    theta = np.array([f.theta for f in fits])
    return _median_shape(major, minor, theta, len(fits))


def _median_shape(major, minor, theta, n_stars: int) -> PSFShape:
    major, minor, theta = (np.asarray(v, dtype=float) for v in (major, minor, theta))
    weight = (major - minor) / (major + minor)  # round stars say little about orientation
    angle = 0.5 * math.atan2(np.sum(weight * np.sin(2 * theta)), np.sum(weight * np.cos(2 * theta)))
    geo = np.sqrt(major * minor)
    scatter = float(1.4826 * np.median(np.abs(geo - np.median(geo))) / np.median(geo))
    return PSFShape(
        sigma_major=float(np.median(major)),
        sigma_minor=float(np.median(minor)),
        theta=float(angle),
        n_stars=int(n_stars),
        scatter=scatter,
    )


def combine_shapes(shapes) -> PSFShape:
    """Median shape of several estimates (e.g. from several frames of one camera).

    Orientation is combined as the ellipticity-weighted circular mean of ``2θ``.
    """
    shapes = list(shapes)
    if not shapes:
        raise DataError("no PSF shape to combine")
    return _median_shape(
        [s.sigma_major for s in shapes],
        [s.sigma_minor for s in shapes],
        [s.theta for s in shapes],
        sum(s.n_stars for s in shapes),
    )


def moment_sizes(data, positions, *, mask=None, half_size: int = 10) -> np.ndarray:
    """Adaptive-moment size ``σ = det(M)^(1/4)`` of each star, pixel response removed.

    Uses GalSim's HSM adaptive moments (fast, C++); the pixel's variance of 1/12 px² is
    subtracted from the moment matrix so the result is comparable with the ``sigma`` of
    :class:`PSFShape`. Stars off the image, touching masked pixels or whose moments fail
    get NaN.

    Parameters
    ----------
    data : ndarray, shape (ny, nx)
        Background-subtracted image (a constant background biases the sizes).
    positions : array, shape (N, 2)
    mask : ndarray of bool, optional
    half_size : int
        Stamps of ``2 * half_size + 1`` pixels.
    """
    import galsim

    positions = np.atleast_2d(np.asarray(positions, dtype=float))
    out = np.full(len(positions), np.nan)
    for i, (x, y) in enumerate(positions):
        cut = _stamp(data, None, x, y, half_size)
        if cut is None:
            continue
        stamp, _, x0, y0 = cut
        if mask is not None and mask[y0 : y0 + stamp.shape[0], x0 : x0 + stamp.shape[1]].any():
            continue
        result = galsim.hsm.FindAdaptiveMom(
            galsim.ImageD(np.ascontiguousarray(stamp)), strict=False
        )
        if result.moments_status != 0:
            continue
        e1, e2 = result.observed_shape.e1, result.observed_shape.e2
        e = math.hypot(e1, e2)
        if not e < 1:
            continue
        sigma2 = result.moments_sigma**2 / math.sqrt(1.0 - e * e)
        moments = sigma2 * np.array([[1 + e1, e2], [e2, 1 - e1]]) - np.eye(2) / 12.0
        det = np.linalg.det(moments)
        if det > 0:
            out[i] = det**0.25
    return out
