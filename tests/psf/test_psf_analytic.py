"""Specification of the analytic PSFs (``skyscene.psf.analytic``).

References: the closed-form erf product for axis-aligned Gaussians, GalSim's
``drawImage(method="auto")`` (pixel-convolved) for rotated ellipses and Moffats,
the analytic enclosed flux of a circular Moffat.
"""

from __future__ import annotations

import math

import galsim
import numpy as np
import pytest
from photutils.aperture import CircularAperture, aperture_photometry
from scipy.special import erf

from skyscene.errors import ParameterError
from skyscene.psf import GaussianPSF, MoffatPSF, PSFProtocol, fwhm_to_sigma, sigma_to_fwhm


def galsim_stamp(profile, shape, center):
    """GalSim's pixel-convolved drawing, placed with skyscene's 0-based pixel centres."""
    ny, nx = shape
    image = galsim.ImageD(nx, ny, scale=1.0)
    offset = (center[0] - (nx - 1) / 2.0, center[1] - (ny - 1) / 2.0)
    profile.drawImage(image=image, offset=offset, method="auto")
    return image.array


def centroid(stamp):
    yy, xx = np.indices(stamp.shape)
    return (stamp * xx).sum() / stamp.sum(), (stamp * yy).sum() / stamp.sum()


def test_axis_aligned_gaussian_is_erf_product():
    sx, sy, cx, cy = 2.3, 1.1, 12.37, 9.81
    stamp = GaussianPSF(sx, sy, 0.0).render((21, 25), center=(cx, cy))
    x = np.arange(25) - cx
    y = np.arange(21) - cy

    def integral(d, s):
        return 0.5 * (erf((d + 0.5) / (s * math.sqrt(2))) - erf((d - 0.5) / (s * math.sqrt(2))))

    expected = integral(y, sy)[:, None] * integral(x, sx)[None, :]
    np.testing.assert_allclose(
        stamp, expected, rtol=0, atol=1e-15
    )  # same closed form: round-off only
    assert stamp.shape == (21, 25)


@pytest.mark.parametrize(
    ("major", "minor", "theta", "center"),
    [(2.5, 1.5, 0.6, (16.3, 15.7)), (0.8, 0.5, -1.0, (16.0, 16.45)), (3.0, 3.0, 0.0, (15.5, 17.2))],
)
def test_gaussian_agrees_with_galsim(major, minor, theta, center):
    psf = GaussianPSF(major, minor, theta)
    stamp = psf.render((33, 33), center=center)
    # GalSim's sigma is the geometric mean; shear(q) keeps the area
    ref = galsim.Gaussian(sigma=math.sqrt(major * minor)).shear(
        q=minor / major, beta=theta * galsim.radians
    )
    expected = galsim_stamp(ref, (33, 33), center)
    # measured ~5e-6 (GalSim's own k-space accuracy); tolerance 1e-5 of the peak
    assert np.abs(stamp - expected).max() < 1e-5 * expected.max()


@pytest.mark.parametrize(
    ("alpha_major", "beta", "alpha_minor", "theta", "center"),
    [
        (3.0, 3.5, 2.0, 0.6, (20.2, 19.6)),
        (2.0, 2.5, 2.0, 0.0, (20.0, 20.5)),
        (2.5, 4.8, 1.2, -0.9, (19.7, 20.3)),
    ],
)
def test_moffat_agrees_with_galsim(alpha_major, beta, alpha_minor, theta, center):
    psf = MoffatPSF(alpha_major, beta, alpha_minor, theta)
    stamp = psf.render((41, 41), center=center)
    ref = galsim.Moffat(beta=beta, scale_radius=math.sqrt(alpha_major * alpha_minor)).shear(
        q=alpha_minor / alpha_major, beta=theta * galsim.radians
    )
    expected = galsim_stamp(ref, (41, 41), center)
    # GalSim's Moffat drawing is approximate (folding/maxk thresholds): 1e-3 of the peak
    assert np.abs(stamp - expected).max() < 1e-3 * expected.max()


def test_gaussian_unit_flux_and_centroid():
    center = (30.27, 29.64)
    stamp = GaussianPSF(2.5, 1.5, 0.6).render((61, 61), center=center)
    # wings beyond 12 sigma are ~e-72: the stamp holds the whole flux
    assert abs(stamp.sum() - 1.0) < 1e-6
    cx, cy = centroid(stamp)
    assert abs(cx - center[0]) < 1e-6 and abs(cy - center[1]) < 1e-6, (cx, cy)


def test_moffat_enclosed_flux_matches_analytic():
    alpha, beta = 2.0, 3.0
    center = (60.3, 59.8)
    stamp = MoffatPSF(alpha, beta).render((121, 121), center=center)

    def enclosed(radius):  # circular Moffat: 1 - (1 + R²/α²)^(1-β)
        return 1.0 - (1.0 + radius**2 / alpha**2) ** (1.0 - beta)

    for radius in (20.0, 40.0):
        flux = aperture_photometry(stamp, CircularAperture(center, r=radius), method="exact")[
            "aperture_sum"
        ][0]
        # exact pixel overlap of pixel-integrated values: error ~ gradient² at the edge, < 2e-6
        assert abs(flux - enclosed(radius)) < 2e-6, (radius, flux, enclosed(radius))
    # the square stamp holds more than the inscribed circle, less than the circumscribed one
    half = 60.0 - 0.3  # nearest edge from the centre
    assert enclosed(half) <= stamp.sum() <= enclosed(half * math.sqrt(2) + 1)


def test_vectorised_render_equals_single_renders():
    rng = np.random.default_rng(4)
    centers = rng.uniform(5, 15, (6, 2))
    for psf in (GaussianPSF(1.8, 1.2, 0.3), GaussianPSF(1.5), MoffatPSF(2.0, 3.0, 1.5, -0.4)):
        many = psf.render((21, 19), center=centers)
        assert many.shape == (6, 21, 19)
        for k, c in enumerate(centers):
            np.testing.assert_array_equal(many[k], psf.render((21, 19), center=c))


def test_default_center_is_stamp_center():
    psf = GaussianPSF(1.5, 1.0, 0.2)
    np.testing.assert_array_equal(psf.render((15, 17)), psf.render((15, 17), center=(8.0, 7.0)))
    assert isinstance(psf, PSFProtocol)


def test_theta_half_pi_swaps_axes():
    center = (12.3, 10.6)
    base = GaussianPSF(2.0, 1.0, 0.0).render((25, 25), center=center)
    turned = GaussianPSF(2.0, 1.0, math.pi / 2).render((25, 25), center=center[::-1])
    np.testing.assert_allclose(turned, base.T, rtol=0, atol=1e-15)
    moffat = MoffatPSF(2.5, 3.0, 1.5, 0.0).render((25, 25), center=center)
    moffat_turned = MoffatPSF(2.5, 3.0, 1.5, math.pi / 2).render((25, 25), center=center[::-1])
    # quadrature nodes are symmetric: transposition holds to round-off (1e-12 of the peak)
    np.testing.assert_allclose(moffat_turned, moffat.T, rtol=0, atol=1e-12 * moffat.max())
    # and the elongation really changed direction
    assert np.abs(turned - base).max() > 0.1 * base.max()


def test_minor_larger_than_major_is_reoriented():
    psf = GaussianPSF(1.0, 2.0, 0.0)
    assert (psf.sigma_major, psf.sigma_minor) == (2.0, 1.0)
    assert abs(abs(psf.theta) - math.pi / 2) < 1e-15
    np.testing.assert_allclose(
        psf.render((15, 15), center=(7.2, 6.9)),
        GaussianPSF(2.0, 1.0, math.pi / 2).render((15, 15), center=(7.2, 6.9)),
        rtol=0,
        atol=1e-15,
    )


def test_theta_is_periodic_in_pi():
    a = GaussianPSF(2.0, 1.2, 0.4).render((21, 21), center=(10.2, 9.9))
    b = GaussianPSF(2.0, 1.2, 0.4 + math.pi).render((21, 21), center=(10.2, 9.9))
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-14)


def test_fwhm_conversions():
    assert sigma_to_fwhm(1.0) == pytest.approx(2.0 * math.sqrt(2.0 * math.log(2.0)), rel=1e-15)
    assert fwhm_to_sigma(sigma_to_fwhm(2.7)) == pytest.approx(2.7, rel=1e-15)
    assert GaussianPSF(2.0, 0.5).fwhm == pytest.approx(float(sigma_to_fwhm(1.0)), rel=1e-15)
    moffat = MoffatPSF.from_fwhm(3.0, 3.5, axis_ratio=0.6, theta=0.2)
    assert moffat.fwhm == pytest.approx(3.0, rel=1e-12)
    assert moffat.alpha_minor / moffat.alpha_major == pytest.approx(0.6, rel=1e-12)
    # a circular Moffat of this FWHM is at half maximum at r = FWHM / 2
    circ = MoffatPSF.from_fwhm(3.0, 3.5)
    assert (1 + (1.5 / circ.alpha_major) ** 2) ** (-3.5) == pytest.approx(0.5, rel=1e-12)


def test_pickle_and_equality():
    import pickle

    psf = MoffatPSF(2.0, 3.0, 1.5, 0.3)
    assert pickle.loads(pickle.dumps(psf)) == psf


@pytest.mark.parametrize(
    ("factory", "match"),
    [
        (lambda: GaussianPSF(0.0), r"sigma_major must be positive and finite, got 0\.0"),
        (lambda: GaussianPSF(-1.0), r"sigma_major must be positive and finite, got -1\.0"),
        (lambda: GaussianPSF(float("nan")), r"sigma_major must be positive and finite, got nan"),
        (lambda: GaussianPSF(float("inf")), r"sigma_major must be positive and finite, got inf"),
        (lambda: GaussianPSF(2.0, 0.0), r"sigma_minor must be positive and finite, got 0\.0"),
        (lambda: MoffatPSF(0.0), r"alpha_major must be positive and finite"),
        (lambda: MoffatPSF(2.0, 2.0, -1.0), r"alpha_minor must be positive and finite, got -1\.0"),
        (lambda: MoffatPSF(2.0, 1.0), r"beta must be > 1 for a finite total flux, got 1\.0"),
        (
            lambda: MoffatPSF(2.0, float("nan")),
            r"beta must be > 1 for a finite total flux, got nan",
        ),
        (lambda: MoffatPSF.from_fwhm(-2.0), r"fwhm must be positive and finite, got -2\.0"),
        (
            lambda: MoffatPSF.from_fwhm(2.0, axis_ratio=1.5),
            r"axis_ratio must be in \(0, 1\], got 1\.5",
        ),
        (
            lambda: MoffatPSF.from_fwhm(2.0, axis_ratio=0.0),
            r"axis_ratio must be in \(0, 1\], got 0\.0",
        ),
    ],
)
def test_invalid_parameters(factory, match):
    with pytest.raises(ParameterError, match=match):
        factory()


@pytest.mark.parametrize(
    ("shape", "center", "match"),
    [
        ((0, 5), None, r"shape must be positive, got \(0, 5\)"),
        (
            (5, 5),
            (1.0, 2.0, 3.0),
            r"center must be \(x, y\) or an \(N, 2\) array, got shape \(3,\)",
        ),
        (
            (5, 5),
            np.zeros((2, 2, 2)),
            r"center must be \(x, y\) or an \(N, 2\) array, got shape \(2, 2, 2\)",
        ),
        ((5, 5), (np.nan, 2.0), r"center contains non-finite values"),
    ],
)
def test_invalid_render_arguments(shape, center, match):
    with pytest.raises(ParameterError, match=match):
        GaussianPSF(1.0).render(shape, center=center)
