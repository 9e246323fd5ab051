"""Specification of :class:`skyscene.io.Exposure`: masks, weights, cutouts and WCS."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.wcs import WCS

from skyscene.errors import DataError, ParameterError
from skyscene.io import Exposure


def make_wcs(shape=(40, 50)):
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [150.0, 2.0]
    wcs.wcs.crpix = [shape[1] / 2 + 0.5, shape[0] / 2 + 0.5]
    scale = 0.27 / 3600.0
    rot = 0.3
    wcs.wcs.cd = scale * np.array([[-np.cos(rot), np.sin(rot)], [np.sin(rot), np.cos(rot)]])
    wcs.pixel_shape = (shape[1], shape[0])
    return wcs


@pytest.fixture
def exposure():
    rng = np.random.default_rng(11)
    shape = (40, 50)
    data = rng.normal(100.0, 5.0, shape)
    variance = rng.uniform(20.0, 30.0, shape)
    mask = np.zeros(shape, bool)
    mask[5, 7] = True
    return Exposure(data=data, variance=variance, mask=mask, wcs=make_wcs(shape))


def test_masked_pixels_have_zero_data_inf_variance_zero_weight():
    shape = (6, 7)
    data = np.arange(42.0).reshape(shape) + 1.0
    variance = np.full(shape, 4.0)
    mask = np.zeros(shape, bool)
    mask[1, 2] = True
    data[3, 4] = np.nan  # non-finite data is masked too
    variance[4, 5] = 0.0  # zero variance is unusable: masked
    variance[0, 0] = np.nan  # NaN variance is masked
    variance[2, 6] = -1.0  # negative variance is masked
    exp = Exposure(data=data, variance=variance, mask=mask)
    expected_bad = np.zeros(shape, bool)
    for y, x in [(1, 2), (3, 4), (4, 5), (0, 0), (2, 6)]:
        expected_bad[y, x] = True
    np.testing.assert_array_equal(exp.mask, expected_bad)
    assert np.all(exp.data[expected_bad] == 0.0), "masked data must be exactly 0"
    assert np.all(np.isinf(exp.variance[expected_bad])), "masked variance must be inf"
    assert np.all(exp.weight[expected_bad] == 0.0), "masked weight must be exactly 0"
    # good pixels untouched (exact)
    np.testing.assert_array_equal(exp.data[~expected_bad], data[~expected_bad])
    np.testing.assert_array_equal(exp.weight[~expected_bad], 0.25)
    assert np.all(np.isinf(exp.sigma[expected_bad]))


def test_weight_never_divides_by_zero():
    shape = (4, 4)
    variance = np.zeros(shape)  # every pixel unusable
    with np.errstate(all="raise"):
        exp = Exposure(data=np.ones(shape), variance=variance)
        weight = exp.weight
    assert np.all(weight == 0.0) and np.all(np.isfinite(weight))


def test_default_variance_is_unit_and_input_is_not_modified():
    data = np.ones((3, 3))
    var = np.full((3, 3), 2.0)
    mask = np.eye(3, dtype=bool)
    exp = Exposure(data=data, variance=var, mask=mask)
    assert np.all(var == 2.0), "caller's variance array must not be modified in place"
    assert np.all(data == 1.0), "caller's data array must not be modified in place"
    assert np.all(Exposure(data=data).variance == 1.0)
    assert exp.shape == (3, 3)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"data": np.zeros(5)}, r"must be 2-D, got shape \(5,\)"),
        (
            {"data": np.zeros((3, 3)), "variance": np.ones((3, 4))},
            r"variance shape \(3, 4\) does not match",
        ),
        (
            {"data": np.zeros((3, 3)), "mask": np.zeros((2, 3), bool)},
            r"mask shape \(2, 3\) does not match",
        ),
    ],
)
def test_shape_errors(kwargs, match):
    with pytest.raises(DataError, match=match):
        Exposure(**kwargs)


def test_error_names_the_file():
    with pytest.raises(DataError, match=r"variance shape .* in frame_007\.fits"):
        Exposure(
            data=np.zeros((3, 3)), variance=np.ones((2, 2)), meta={"filename": "frame_007.fits"}
        )


def test_slice_keeps_pixels_and_accumulates_origin(exposure):
    cut = exposure[10:30, 5:45]
    assert cut.shape == (20, 40)
    assert cut.origin == (5, 10)
    np.testing.assert_array_equal(cut.data, exposure.data[10:30, 5:45])
    np.testing.assert_array_equal(cut.variance, exposure.variance[10:30, 5:45])
    sub = cut[2:6, 3:9]
    assert sub.origin == (8, 12), "origins add up across nested cutouts"
    np.testing.assert_array_equal(sub.data, exposure.data[12:16, 8:14])


def test_slice_shifts_wcs(exposure):
    x0, y0 = 7, 13
    cut = exposure[y0:35, x0:48]
    rng = np.random.default_rng(2)
    x = rng.uniform(x0, 47, 20)
    y = rng.uniform(y0, 34, 20)
    parent = exposure.wcs.pixel_to_world(x, y)
    child = cut.wcs.pixel_to_world(x - x0, y - y0)
    sep = parent.separation(child).to("arcsec").value
    assert np.max(sep) < 1e-6, (
        f"cutout WCS differs from the parent's by {sep.max()} arcsec (tol 1e-6)"
    )
    assert exposure.wcs.wcs.crpix[0] != cut.wcs.wcs.crpix[0], "parent WCS must not be modified"
    assert tuple(cut.wcs.pixel_shape) == (48 - x0, 35 - y0)


def test_slice_with_sip_distortion_shifts_wcs():
    shape = (40, 50)
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN-SIP", "DEC--TAN-SIP"]
    wcs.wcs.crval = [10.0, -30.0]
    wcs.wcs.crpix = [25.5, 20.5]
    wcs.wcs.cd = np.array([[-7.5e-5, 0.0], [0.0, 7.5e-5]])
    from astropy.wcs import Sip

    a = np.zeros((3, 3))
    b = np.zeros((3, 3))
    a[2, 0] = 1e-4
    b[0, 2] = -1e-4
    a[1, 1] = 5e-5
    wcs.sip = Sip(a, b, None, None, wcs.wcs.crpix)
    exp = Exposure(data=np.zeros(shape), wcs=wcs)
    x0, y0 = 4, 9
    cut = exp[y0:40, x0:50]
    x = np.array([4.0, 20.3, 49.0])
    y = np.array([9.0, 31.7, 39.0])
    sep = exp.wcs.pixel_to_world(x, y).separation(cut.wcs.pixel_to_world(x - x0, y - y0))
    assert np.max(sep.to("arcsec").value) < 1e-6, (
        "SIP cutout WCS must match the parent (tol 1e-6 arcsec)"
    )


def test_psf_at_accounts_for_origin():
    calls = []

    class VaryingPSF:
        def at(self, x, y):
            calls.append((x, y))
            return "local"

    exp = Exposure(data=np.zeros((30, 30)), psf=VaryingPSF())
    assert exp[10:20, 4:14].psf_at(1.5, 2.0) == "local"
    assert calls == [(5.5, 12.0)]


def test_psf_at_without_psf_raises():
    with pytest.raises(ParameterError, match=r"exposure has no PSF in a\.fits"):
        Exposure(data=np.zeros((3, 3)), meta={"filename": "a.fits"}).psf_at(1, 1)


def test_cutout_centered(exposure):
    cut = exposure.cutout((20.4, 15.6), 11)
    assert cut.shape == (11, 11)
    # centre pixel (round(20.4), round(15.6)) = (20, 16) sits at index (5, 5)
    assert cut.origin == (15, 11)
    assert cut.data[5, 5] == exposure.data[16, 20]
    rect = exposure.cutout((25, 20), (5, 9))
    assert rect.shape == (5, 9) and rect.origin == (21, 18)


@pytest.mark.parametrize(
    "center", [(2.0, 20.0), (20.0, 2.0), (47.0, 20.0), (20.0, 37.0), (-30.0, -30.0)]
)
def test_cutout_off_image_raises(exposure, center):
    with pytest.raises(
        DataError, match=r"cutout of size \(11, 11\) at .* leaves the image of shape \(40, 50\)"
    ):
        exposure.cutout(center, 11)


@pytest.mark.parametrize(
    "key",
    [np.s_[1:3], np.s_[::2, 0:3], np.s_[3:3, 0:3], np.s_[0:3, 5:2], (1, slice(0, 2))],
)
def test_invalid_slices_raise(exposure, key):
    with pytest.raises(ParameterError, match=r"(needs two slices|invalid cutout slices)"):
        exposure[key]


def test_replace_revalidates():
    exp = Exposure(data=np.ones((3, 3)))
    new = exp.replace(mask=np.eye(3, dtype=bool))
    assert new.data[1, 1] == 0.0 and np.isinf(new.variance[1, 1])
    assert exp.data[1, 1] == 1.0, "replace returns a copy"
