"""calibrate(): identities, honest variances end to end, masks, errors."""

from __future__ import annotations

import numpy as np
import pytest

from skyscene.calibration import MasterFrame, calibrate
from skyscene.datasets.calibration import raw_science_frame
from skyscene.errors import DataError, ParameterError
from skyscene.io import Exposure


def _master(data, variance, kind, **meta):
    data = np.asarray(data, float)
    return MasterFrame(
        data=data,
        variance=np.broadcast_to(variance, data.shape),
        mask=np.zeros(data.shape, bool),
        n_frames=3,
        kind=kind,
        meta=meta,
    )


def test_formula_identity():
    shape = (3, 4)
    raw = np.full(shape, 5100.0)
    bias = _master(np.full(shape, 100.0), 2.0, "bias")
    dark = _master(np.full(shape, 0.5), 1e-4, "dark")
    flat = _master(np.full(shape, 0.8), 1e-4, "flat")
    out = calibrate(raw, bias=bias, dark=dark, flat=flat, gain=2.0, read_noise=4.0, exptime=100.0)
    expected = (5100.0 - 100.0 - 50.0) / 0.8
    var_raw = (5100.0 - 100.0) / 2.0 + 16.0  # shot noise of all charge above bias
    expected_var = (var_raw + 2.0 + 100.0**2 * 1e-4) / 0.8**2 + expected**2 * 1e-4 / 0.8**2
    np.testing.assert_allclose(out.data, expected, rtol=1e-12)
    np.testing.assert_allclose(out.variance, expected_var, rtol=1e-12)
    assert out.meta["calibration"]["exptime"] == 100.0


def test_calibrated_flat_scene_has_honest_variance(calib_set, calib_dir):
    _, truth = calib_dir
    for seed, band in ((11, "g"), (12, "r")):
        sim = raw_science_frame(truth, rng=seed, band=band, exptime=60.0, sky=1000.0)
        out = calib_set.apply(sim.exposure)
        good = ~out.mask
        pull = (out.data - sim.scene)[good] / np.sqrt(out.variance[good])
        # 16344 pixels: statistical errors 0.008 (mean) and 0.006 (std)
        assert abs(pull.mean()) < 0.05
        assert pull.std() == pytest.approx(1.0, abs=0.05)
        # bad pixels (hot, dead) are masked, nothing else
        np.testing.assert_array_equal(out.mask, truth.bad_pixels)
        assert out.band == band and out.exptime == 60.0
        assert "flat" in out.meta["calibration"]


def test_faint_scene_and_long_exposure_stay_honest(calib_set, calib_dir):
    # read noise and dark current dominate: the calibration noise matters most here
    _, truth = calib_dir
    sim = raw_science_frame(truth, rng=13, band="g", exptime=600.0, sky=30.0)
    out = calib_set.apply(sim.exposure)
    good = ~out.mask
    pull = (out.data - sim.scene)[good] / np.sqrt(out.variance[good])
    assert abs(pull.mean()) < 0.05
    assert pull.std() == pytest.approx(1.0, abs=0.05)


def test_bad_flat_values_are_masked_without_warnings():
    raw = np.full((3, 3), 1000.0)
    flat = np.ones((3, 3))
    flat[0, 0], flat[1, 1], flat[2, 2] = 0.0, -1.0, np.nan
    bad = np.zeros((3, 3), bool)
    bad[0, 2] = True
    out = calibrate(raw, flat=flat, bad_pixels=bad, gain=1.0, read_noise=1.0)
    assert out.mask.sum() == 4 and out.mask[0, 0] and out.mask[1, 1] and out.mask[0, 2]
    assert np.isinf(out.variance[out.mask]).all() and (out.data[out.mask] == 0).all()
    master = MasterFrame(
        data=np.ones((3, 3)),
        variance=np.zeros((3, 3)),
        mask=np.eye(3, dtype=bool),
        n_frames=1,
        kind="dark",
    )
    out = calibrate(Exposure(data=raw, exptime=0.0), dark=master, gain=1.0, read_noise=1.0)
    np.testing.assert_array_equal(out.mask, np.eye(3, dtype=bool))


def test_read_noise_defaults_to_the_bias_measurement():
    bias = _master(np.zeros((2, 2)), 0.0, "bias", read_noise=3.0)
    out = calibrate(np.full((2, 2), 8.0), bias=bias, gain=2.0)
    np.testing.assert_allclose(out.variance, 4.0 + 9.0)


def test_errors_name_frames_shapes_and_files():
    sci = Exposure(
        data=np.ones((4, 4)),
        gain=1.0,
        read_noise=1.0,
        exptime=1.0,
        meta={"filename": "sci.fits", "binning": (1, 1)},
    )
    flat = _master(np.ones((2, 2)), 0.0, "flat", filename="flat_g.fits", band="g")
    with pytest.raises(
        DataError,
        match=r"shape mismatch: master flat 'g' \(flat_g.fits\) has shape \(2, 2\), "
        r"science frame sci.fits has \(4, 4\)",
    ):
        calibrate(sci, flat=flat)
    binned = _master(np.zeros((4, 4)), 0.0, "bias", binning=(2, 2), files=["bias_000.fits"])
    with pytest.raises(
        DataError,
        match=r"binning mismatch: science frame sci.fits is binned 1x1 but master bias "
        r"\(from bias_000.fits\) is 2x2",
    ):
        calibrate(sci, bias=binned)
    with pytest.raises(DataError, match=r"bad-pixel mask has shape \(3, 3\), science frame sci"):
        calibrate(sci, bad_pixels=np.zeros((3, 3), bool))
    with pytest.raises(ParameterError, match=r"the gain .e-/ADU. of science frame is unknown"):
        calibrate(np.ones((2, 2)), read_noise=1.0)
    with pytest.raises(ParameterError, match="gain must be positive, got -1"):
        calibrate(np.ones((2, 2)), gain=-1, read_noise=1.0)
    with pytest.raises(ParameterError, match=r"read noise .ADU. of science frame is unknown"):
        calibrate(np.ones((2, 2)), gain=1.0)
    with pytest.raises(ParameterError, match="exposure time of science frame is unknown"):
        calibrate(np.ones((2, 2)), dark=np.zeros((2, 2)), gain=1.0, read_noise=1.0)
    with pytest.raises(DataError, match=r"calibrate needs a 2-D frame, got shape \(2,\)"):
        calibrate(np.ones(2), gain=1.0, read_noise=1.0)
