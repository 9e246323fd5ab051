"""Specification of pixelised PSFs (``skyscene.psf.pixelized``)."""

from __future__ import annotations

import math
import pickle

import galsim
import numpy as np
import pytest

from skyscene.errors import ParameterError
from skyscene.psf import GalSimPSF, GaussianPSF, PixelizedPSF, PSFImageWarning

ANALYTIC = GaussianPSF(2.0, 1.4, 0.4)


@pytest.fixture(scope="module")
def pixelized():
    return ANALYTIC.to_pixelized(size=25, oversampling=4)


def centroid(stamp):
    yy, xx = np.indices(stamp.shape)
    return (stamp * xx).sum() / stamp.sum(), (stamp * yy).sum() / stamp.sum()


@pytest.mark.parametrize("center", [(15.0, 15.0), (15.3, 14.6), (14.51, 15.99)])
def test_reproduces_analytic_stamp(pixelized, center):
    expected = ANALYTIC.render((31, 31), center=center)
    stamp = pixelized.render((31, 31), center=center)
    # measured 7e-6 of the peak (cubic spline, 4x oversampling); tolerance 1e-4
    assert np.abs(stamp - expected).max() < 1e-4 * expected.max()
    # a well-sampled effective PSF renders with unit sum (measured 1 - 3e-11); tol 1e-6
    assert abs(stamp.sum() - 1.0) < 1e-6


def test_integer_oversampling_one_is_exact_at_integer_centres():
    psf = ANALYTIC.to_pixelized(size=25, oversampling=1)
    expected = ANALYTIC.render((25, 25), center=(12, 12))
    # at integer offsets the spline interpolates the samples exactly (tol 1e-8 of peak)
    np.testing.assert_allclose(
        psf.render((25, 25), center=(12, 12)), expected, rtol=0, atol=1e-8 * expected.max()
    )


@pytest.mark.parametrize("shift", [(0.25, 0.0), (0.0, -0.4), (0.37, 0.81), (-1.5, 2.25)])
def test_shift_moves_centroid_exactly(pixelized, shift):
    base = centroid(pixelized.render((41, 41), center=(20.0, 20.0)))
    moved = centroid(pixelized.render((41, 41), center=(20.0 + shift[0], 20.0 + shift[1])))
    assert abs(moved[0] - base[0] - shift[0]) < 1e-3, "x centroid follows the shift (tol 1e-3 px)"
    assert abs(moved[1] - base[1] - shift[1]) < 1e-3, "y centroid follows the shift (tol 1e-3 px)"
    assert abs(base[0] - 20.0) < 1e-3 and abs(base[1] - 20.0) < 1e-3


def test_vectorised_render_equals_single_renders(pixelized):
    centers = np.array([[10.2, 9.8], [11.0, 10.0], [9.5, 10.7]])
    many = pixelized.render((21, 21), center=centers)
    for k, c in enumerate(centers):
        np.testing.assert_array_equal(many[k], pixelized.render((21, 21), center=c))


def test_zero_outside_the_image(pixelized):
    assert pixelized.radius == pytest.approx(((25 * 4 | 1) - 1) / 2 / 4, abs=1e-15)
    far = pixelized.render((11, 11), center=(5.0 + pixelized.radius + 8, 5.0))
    assert np.all(far == 0.0)


def test_normalised_to_unit_sum_and_non_integer_oversampling():
    image = np.arange(49.0).reshape(7, 7) + 1
    # a ramp is no PSF: its centroid is ~1 px off the centre (a PSFImageWarning)
    with pytest.warns(PSFImageWarning, match="centroid offset"):
        psf = PixelizedPSF(image * 3.0, oversampling=1.0 / 0.975)
    assert psf.image.sum() == pytest.approx(1.0, abs=1e-15)
    np.testing.assert_allclose(psf.image, image / image.sum(), rtol=1e-15)
    assert psf.oversampling == pytest.approx(1.0 / 0.975, rel=1e-15)
    assert psf.to_pixelized() is psf


def test_pickle_round_trip(pixelized):
    clone = pickle.loads(pickle.dumps(pixelized))
    assert isinstance(clone, PixelizedPSF)
    assert clone.oversampling == pixelized.oversampling and clone.order == pixelized.order
    np.testing.assert_array_equal(clone.image, pixelized.image)
    np.testing.assert_array_equal(
        clone.render((15, 15), center=(7.3, 6.8)), pixelized.render((15, 15), center=(7.3, 6.8))
    )


def test_bilinear_order_is_less_accurate_but_close():
    cubic = ANALYTIC.to_pixelized(size=25, oversampling=4)
    linear = PixelizedPSF(cubic.image, oversampling=4, order=1)
    expected = ANALYTIC.render((31, 31), center=(15.3, 14.6))
    err_cubic = np.abs(cubic.render((31, 31), center=(15.3, 14.6)) - expected).max()
    err_linear = np.abs(linear.render((31, 31), center=(15.3, 14.6)) - expected).max()
    assert err_linear > err_cubic, "bilinear interpolation must be worse than cubic"
    assert err_linear < 2e-2 * expected.max()  # still within 2 % of the peak at 4x oversampling


@pytest.mark.parametrize(
    ("image", "kwargs", "match"),
    [
        (np.ones((6, 6)), {}, r"square with an odd size, got shape \(6, 6\)"),
        (np.ones((5, 7)), {}, r"square with an odd size, got shape \(5, 7\)"),
        (np.ones(5), {}, r"square with an odd size, got shape \(5,\)"),
        (np.where(np.eye(5) > 0, np.nan, 1.0), {}, r"PSF image contains non-finite values"),
        (np.zeros((5, 5)), {}, r"PSF image must have a positive sum, got 0$"),
        (-np.ones((5, 5)), {}, r"PSF image must have a positive sum, got -25$"),
        (np.ones((5, 5)), {"oversampling": 0.0}, r"oversampling must be positive, got 0\.0"),
        (np.ones((5, 5)), {"oversampling": np.inf}, r"oversampling must be positive, got inf"),
        (np.ones((5, 5)), {"order": 2}, r"order must be 1, 3 or 5, got 2"),
    ],
)
def test_bad_images_raise(image, kwargs, match):
    with pytest.raises(ParameterError, match=match):
        PixelizedPSF(image, **kwargs)


def test_galsim_psf_matches_analytic_gaussian():
    scale = 0.25  # arcsec per pixel
    sigma_pix = 1.6
    psf = GalSimPSF(galsim.Gaussian(sigma=sigma_pix * scale, flux=3.0), pixel_scale=scale)
    center = (12.3, 11.8)
    stamp = psf.render((25, 25), center=center)
    expected = GaussianPSF(sigma_pix).render((25, 25), center=center)
    # GalSim k-space accuracy ~1e-6 of the peak; tolerance 1e-5. Flux renormalised to 1.
    assert np.abs(stamp - expected).max() < 1e-5 * expected.max()
    many = psf.render((25, 25), center=np.array([center, (10.0, 13.0)]))
    np.testing.assert_array_equal(many[0], stamp)
    pix = psf.to_pixelized(size=21, oversampling=3)
    # GalSim-drawn effective PSF at 3x oversampling; interpolation error < 1e-3 of the peak
    assert np.abs(pix.render((25, 25), center=center) - expected).max() < 1e-3 * expected.max()
    with pytest.raises(NotImplementedError, match="use render"):
        psf.pixel_values(np.zeros(1), np.zeros(1))
    assert math.isclose(psf.pixel_scale, 0.25)
