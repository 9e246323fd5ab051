"""Specification of global (mesh) background maps (``skyscene.background.global_``)."""

from __future__ import annotations

import numpy as np
import pytest

from skyscene.background import estimate_background
from skyscene.errors import DataError, ParameterError
from skyscene.psf import GaussianPSF

SHAPE = (256, 256)


@pytest.fixture(scope="module")
def flat_with_stars():
    rng = np.random.default_rng(1)
    data = rng.normal(100.0, 5.0, SHAPE)
    stamp = GaussianPSF(2.0).render((21, 21))
    for x, y in rng.uniform(20, 236, (15, 2)).astype(int):
        data[y - 10 : y + 11, x - 10 : x + 11] += 5e3 * stamp
    return data


@pytest.mark.parametrize("method", ["sep", "photutils"])
def test_flat_level(flat_with_stars, method):
    bkg = estimate_background(flat_with_stars, method=method)
    assert bkg.method == method and bkg.background.shape == SHAPE and bkg.rms.shape == SHAPE
    # per mesh (64² pixels) the level is known to ~0.1 counts; tolerance 0.5 % of 100
    assert np.abs(bkg.background / 100.0 - 1).max() < 5e-3
    assert abs(bkg.level / 100.0 - 1) < 5e-3
    # scatter: stars and clipping bias it by a few %; tolerance 6 %
    assert abs(bkg.rms_level / 5.0 - 1) < 0.06
    assert np.abs(bkg.rms / 5.0 - 1).max() < 0.1


@pytest.mark.parametrize("method", ["sep", "photutils"])
def test_gentle_gradient(method):
    rng = np.random.default_rng(2)
    yy, xx = np.indices(SHAPE)
    truth = 100.0 + 0.08 * xx - 0.05 * yy  # 100 -> 120 across x, 100 -> 87 across y
    bkg = estimate_background(truth + rng.normal(0, 5.0, SHAPE), method=method, box_size=32)
    residual = bkg.background - truth
    inner = residual[32:-32, 32:-32]
    # away from the border the mesh interpolation follows a plane to ~0.7 counts: tolerance 1 %
    assert np.abs(inner / truth[32:-32, 32:-32]).max() < 0.01
    # the border meshes extrapolate (median filter at the corners): within 5 %
    assert np.abs(residual / truth).max() < 0.05
    # and the map is not flat: it follows the 20-count rise along x to within 2 counts
    rise = bkg.background[128, 224] - bkg.background[128, 32]
    assert abs(rise - 0.08 * 192) < 2.0


def test_masked_pixels_are_ignored():
    rng = np.random.default_rng(3)
    data = rng.normal(100.0, 5.0, SHAPE)
    data[100:140, 100:140] = 1e4  # a saturated blob, masked
    data[10, 10] = np.nan  # non-finite is masked automatically
    mask = np.zeros(SHAPE, bool)
    mask[100:140, 100:140] = True
    for method in ("sep", "photutils"):
        bkg = estimate_background(data, mask=mask, method=method)
        assert np.all(np.isfinite(bkg.background))
        assert np.abs(bkg.background / 100.0 - 1).max() < 5e-3, method  # 0.5 %


def test_box_size_is_clipped_to_image():
    data = np.random.default_rng(4).normal(10.0, 1.0, (40, 30))
    bkg = estimate_background(data, box_size=128)
    assert bkg.box_size == 30
    assert abs(bkg.level - 10.0) < 0.1  # 1 %


@pytest.mark.parametrize("method", ["sep", "photutils"])
def test_all_masked_raises(method):
    data = np.ones((32, 32))
    with pytest.raises(DataError, match="background: every pixel is masked or non-finite"):
        estimate_background(data, mask=np.ones((32, 32), bool), method=method)
    with pytest.raises(DataError, match="background: every pixel is masked or non-finite"):
        estimate_background(np.full((32, 32), np.nan), method=method)


def test_bad_arguments():
    with pytest.raises(
        ParameterError, match=r"background method must be 'sep' or 'photutils', got 'mode'"
    ):
        estimate_background(np.ones((32, 32)), method="mode")
    with pytest.raises(DataError, match=r"background needs a 2-D image, got shape \(32,\)"):
        estimate_background(np.ones(32))
