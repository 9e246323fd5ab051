"""Specification of PSF-shape estimation from stars (``skyscene.psf.shape``)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from skyscene.errors import DataError, ParameterError
from skyscene.psf import GaussianPSF, estimate_psf_shape, fit_star

TRUTH = GaussianPSF(2.2, 1.6, 0.7)
SKY, NOISE = 100.0, 5.0


def star_field(truth, *, n_stars=10, seed=3, size=200, flux=2e4):
    rng = np.random.default_rng(seed)
    data = rng.normal(SKY, NOISE, (size, size))
    positions = []
    while len(positions) < n_stars:
        x, y = rng.uniform(20, size - 20, 2)
        if any(math.hypot(x - px, y - py) < 25 for px, py in positions):
            continue  # isolated stars
        positions.append((x, y))
    for x, y in positions:
        ix, iy = int(x), int(y)
        data[iy - 15 : iy + 16, ix - 15 : ix + 16] += flux * truth.render(
            (31, 31), center=(x - ix + 15, y - iy + 15)
        )
    guesses = np.array(positions) + rng.normal(0, 0.3, (n_stars, 2))  # approximate positions
    return data, guesses, np.array(positions)


@pytest.fixture(scope="module")
def field():
    return star_field(TRUTH)


def test_recovers_elliptical_gaussian(field):
    data, guesses, _ = field
    shape = estimate_psf_shape(data, guesses, variance=np.full(data.shape, NOISE**2))
    assert shape.n_stars == 10
    assert abs(shape.sigma_major / TRUTH.sigma_major - 1) < 0.03, shape
    assert abs(shape.sigma_minor / TRUTH.sigma_minor - 1) < 0.03, shape
    assert abs(math.remainder(shape.theta - TRUTH.theta, math.pi)) < 0.05, shape
    assert shape.scatter < 0.03, "identical stars: per-star sigma scatter below 3 %"
    assert shape.sigma == pytest.approx(math.sqrt(shape.sigma_major * shape.sigma_minor), rel=1e-15)
    psf = shape.to_psf()
    assert (psf.sigma_major, psf.sigma_minor) == (shape.sigma_major, shape.sigma_minor)
    assert shape.fwhm == pytest.approx(psf.fwhm, rel=1e-12)


def test_orientation_wraps_past_half_pi():
    truth = GaussianPSF(2.0, 1.3, -1.3)
    data, guesses, _ = star_field(truth, n_stars=5, seed=9, size=150)
    shape = estimate_psf_shape(data, guesses)
    assert -math.pi / 2 < shape.theta <= math.pi / 2
    assert abs(math.remainder(shape.theta - truth.theta, math.pi)) < 0.05, shape
    assert abs(shape.sigma_major / 2.0 - 1) < 0.03 and abs(shape.sigma_minor / 1.3 - 1) < 0.03, (
        shape
    )


def test_masked_and_edge_stars_are_skipped(field):
    data, guesses, _ = field
    mask = np.zeros(data.shape, bool)
    x, y = np.round(guesses[0]).astype(int)
    mask[y, x] = True
    positions = np.vstack([guesses, [[2.0, 2.0]]])  # a stamp off the image edge
    shape = estimate_psf_shape(data, positions, mask=mask)
    assert shape.n_stars == 9, "the masked star and the edge position are not used"
    assert estimate_psf_shape(data, guesses, max_stars=4).n_stars == 4


def test_fit_star_recovers_flux_and_position():
    rng = np.random.default_rng(21)
    truth = (8.4, 7.7)
    stamp = 5e3 * TRUTH.render((17, 17), center=truth) + 50.0 + rng.normal(0, 2.0, (17, 17))
    fit = fit_star(stamp, variance=np.full((17, 17), 4.0))
    assert fit["success"]
    # S/N ~ 400: flux to 1 %, position to 0.02 px, background to 0.5 counts
    assert abs(fit["flux"] / 5e3 - 1) < 0.01
    assert abs(fit["x"] - truth[0]) < 0.02 and abs(fit["y"] - truth[1]) < 0.02
    assert abs(fit["background"] - 50.0) < 0.5


def test_no_star_fitted_raises():
    flat = np.random.default_rng(0).normal(0, 1, (60, 60))
    with pytest.raises(
        DataError, match=r"no star could be fitted for the PSF shape \(of 2 candidates\)"
    ):
        estimate_psf_shape(flat, [(1.0, 1.0), (58.0, 58.0)])  # both stamps leave the image


@pytest.mark.parametrize(
    ("stamp", "kwargs", "error", "match"),
    [
        (
            np.full((9, 9), 3.0),
            {},
            DataError,
            r"star stamp has no positive flux above the background",
        ),
        (np.full((3, 3), 3.0), {}, DataError, r"star stamp has fewer than 10 usable pixels"),
        (
            GaussianPSF(1.5).render((11, 11)),
            {"model": "airy"},
            ParameterError,
            r"model must be 'gaussian' or 'moffat', got 'airy'",
        ),
    ],
)
def test_fit_star_errors(stamp, kwargs, error, match):
    with pytest.raises(error, match=match):
        fit_star(stamp, **kwargs)
