"""Specification of local (annulus) background estimators (``skyscene.background.local``)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from skyscene.background import (
    LOCAL_BACKGROUNDS,
    annulus_pixels,
    load_local_background,
    local_background_mean,
    local_background_median,
)
from skyscene.errors import DataError, ParameterError
from skyscene.psf import GaussianPSF

LEVEL, SIGMA, PSF_SIGMA = 50.0, 4.0, 2.0
CENTER = (50.0, 50.0)


def scene(seed):
    """Noise, a bright star in the middle, a NaN patch and three hot pixels in the annulus."""
    rng = np.random.default_rng(seed)
    data = rng.normal(LEVEL, SIGMA, (101, 101))
    data[30:71, 30:71] += 1e5 * GaussianPSF(PSF_SIGMA).render((41, 41))
    data[50:55, 62:66] = np.nan  # masked patch, 12-16 px from the centre (annulus: 10-15 px)
    data[38, 50] += 1000.0  # hot pixels the clipping must reject
    data[60, 42] += 800.0
    data[45, 62] += 900.0
    return data


@pytest.fixture(scope="module")
def estimates():
    out = {"mean": [], "median": []}
    for seed in range(40):
        data = scene(100 + seed)
        for name, func in (("mean", local_background_mean), ("median", local_background_median)):
            out[name].append(tuple(func(data, CENTER, PSF_SIGMA, PSF_SIGMA, 0.0)))
    return {k: np.array(v) for k, v in out.items()}


def test_annulus_geometry_and_nan_patch():
    data = scene(1)
    values = annulus_pixels(data, CENTER, PSF_SIGMA, PSF_SIGMA, 0.0)
    yy, xx = np.indices(data.shape)
    r = np.hypot(xx - CENTER[0], yy - CENTER[1])
    expected = (r >= 5 * PSF_SIGMA) & (r < 7.5 * PSF_SIGMA) & np.isfinite(data)
    assert values.size == expected.sum()
    np.testing.assert_array_equal(np.sort(values), np.sort(data[expected]))
    assert np.all(np.isfinite(values)), "NaN (masked) pixels are left out"


def test_mean_recovers_level_and_sigma(estimates):
    bkg, err = estimates["mean"].T
    # 40 realisations of ~377 pixels: the mean level is known to 0.03 counts; tolerance 1 % of 50
    assert abs(bkg.mean() / LEVEL - 1) < 0.01
    assert np.abs(bkg / LEVEL - 1).max() < 0.015, "every realisation within 1.5 % (measured 0.9 %)"
    # the clip-corrected scatter is unbiased: tolerance 5 % on the average
    assert abs(err.mean() / SIGMA - 1) < 0.05
    # honest: the scatter of the level between realisations is sigma / sqrt(N) (to 30 %, 40 samples)
    n_pix = annulus_pixels(scene(1), CENTER, PSF_SIGMA, PSF_SIGMA, 0.0).size
    assert 0.7 < bkg.std() / (SIGMA / math.sqrt(n_pix)) < 1.3


def test_median_recovers_level_and_sigma(estimates):
    bkg, err = estimates["median"].T
    assert abs(bkg.mean() / LEVEL - 1) < 0.01  # 1 %
    assert abs(err.mean() / SIGMA - 1) < 0.05  # 1.4826 MAD: 5 %


def test_hot_pixels_would_bias_an_unclipped_mean():
    data = scene(7)
    values = annulus_pixels(data, CENTER, PSF_SIGMA, PSF_SIGMA, 0.0)
    # the test scene really needs clipping: the plain mean is > 10 % high
    assert values.mean() > 1.1 * LEVEL
    assert (
        abs(local_background_mean(data, CENTER, PSF_SIGMA, PSF_SIGMA, 0.0).bkg / LEVEL - 1) < 0.015
    )


def _sector_image():
    """10 where the pixel lies closer to the x axis than to the y axis, 20 otherwise.

    Pixels within 3 px of the centre are masked (NaN), so that the short (minor-axis)
    part of the thin annulus contributes nothing.
    """
    yy, xx = np.indices((61, 61))
    dx, dy = xx - 30.0, yy - 30.0
    image = np.where(np.abs(dx) > np.abs(dy), 10.0, 20.0)
    return np.where(np.hypot(dx, dy) < 3.0, np.nan, image)


def test_orientation_is_in_radians():
    data = _sector_image()
    # annulus 4-8 px along the major axis, 1-2 px along the minor one
    kwargs = {"inner": 1.0, "outer": 2.0}
    along_x = annulus_pixels(data, (30.0, 30.0), 4.0, 1.0, 0.0, **kwargs)
    along_y = annulus_pixels(data, (30.0, 30.0), 4.0, 1.0, math.pi / 2, **kwargs)
    assert along_x.size > 0 and along_x.size == along_y.size  # same shape, turned
    assert np.all(along_x == 10.0), "theta = 0: the annulus lies along x"
    assert np.all(along_y == 20.0), "theta = pi/2 (radians): the annulus lies along y"
    diagonal = annulus_pixels(data, (30.0, 30.0), 4.0, 1.0, math.pi / 4, **kwargs)
    assert 10.0 in diagonal and 20.0 in diagonal, "theta = pi/4: along the diagonal, both sectors"
    # the estimators pass the orientation through
    est_x = local_background_median(data, (30.0, 30.0), 4.0, 1.0, 0.0, **kwargs)
    est_y = local_background_median(data, (30.0, 30.0), 4.0, 1.0, math.pi / 2, **kwargs)
    assert (est_x.bkg, est_y.bkg) == (10.0, 20.0)


def test_specific_pixels_selected_by_orientation():
    data = np.arange(61 * 61, dtype=float).reshape(61, 61)  # every pixel has a unique value
    kwargs = {"inner": 1.0, "outer": 2.0}
    at_0 = set(annulus_pixels(data, (30.0, 30.0), 4.0, 1.0, 0.0, **kwargs))
    at_90 = set(annulus_pixels(data, (30.0, 30.0), 4.0, 1.0, math.pi / 2, **kwargs))
    east, north = data[30, 36], data[36, 30]  # 6 px along +x and along +y
    assert east in at_0 and east not in at_90
    assert north in at_90 and north not in at_0


def test_too_few_pixels_and_bad_arguments():
    data = np.full((40, 40), np.nan)
    data[0, 0] = 1.0
    with pytest.raises(
        DataError,
        match=r"local background at \(20\.00, 20\.00\): "
        r"only 0 usable pixels",
    ):
        local_background_mean(data, (20.0, 20.0), 2.0, 2.0, 0.0)
    with pytest.raises(DataError, match=r"only 0 usable pixels in the annulus"):
        local_background_median(data, (20.0, 20.0), 2.0, 2.0, 0.0)
    with pytest.raises(ParameterError, match=r"PSF sigmas must be positive, got 0\.0, 2\.0"):
        annulus_pixels(data, (20.0, 20.0), 0.0, 2.0, 0.0)
    with pytest.raises(
        ParameterError, match=r"need 0 <= inner < outer, got inner=5\.0, outer=4\.0"
    ):
        annulus_pixels(data, (20.0, 20.0), 2.0, 2.0, 0.0, inner=5.0, outer=4.0)
    with pytest.raises(
        DataError, match=r"position \(500\.0, 20\.0\) is outside the image of shape \(40, 40\)"
    ):
        annulus_pixels(data, (500.0, 20.0), 2.0, 2.0, 0.0)


def my_estimator(data, position, semimajor_sigma, semiminor_sigma, orientation, *, error=None):
    return 1.0, 2.0


@pytest.mark.parametrize(
    ("spec", "name", "func"),
    [
        ("default", "default", local_background_mean),
        ("mean", "mean", local_background_mean),
        ("median", "median", local_background_median),
        (
            "skyscene.background.local:local_background_median",
            "local_background_median",
            local_background_median,
        ),
        (my_estimator, "my_estimator", my_estimator),
    ],
)
def test_load_local_background(spec, name, func):
    assert load_local_background(spec) == (name, func)
    assert LOCAL_BACKGROUNDS["default"] is local_background_mean


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        (
            "mode",
            r"local background 'mode' is not one of \['default', 'mean', 'median'\] "
            r"nor MODULE:FUNCTION",
        ),
        (
            "no_such_module_xyz:f",
            r"local background 'no_such_module_xyz:f': cannot import module 'no_such_module_xyz'",
        ),
        (
            "skyscene.background.local:nothing",
            r"skyscene\.background\.local has no callable 'nothing'",
        ),
        ("skyscene.background.local:LOCAL_BACKGROUNDS", r"has no callable 'LOCAL_BACKGROUNDS'"),
    ],
)
def test_load_local_background_errors(spec, match):
    with pytest.raises(ParameterError, match=match):
        load_local_background(spec)
