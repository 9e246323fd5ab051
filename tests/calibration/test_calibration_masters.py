"""Master bias, dark and flat recover the simulated detector; FITS round trip; bad pixels."""

from __future__ import annotations

import numpy as np
import pytest

from skyscene.calibration import (
    MasterFrame,
    bad_pixel_mask,
    make_master_bias,
    make_master_dark,
    make_master_flat,
    read_master,
    write_master,
)
from skyscene.errors import DataError, HeaderError, InputFileError, ParameterError
from skyscene.io import Exposure


def _pulls(master, truth, good):
    pull = (master.data - truth) / np.sqrt(master.variance)
    return pull[good & ~master.mask]


def test_master_bias_recovers_truth(calib_set, calib_dir):
    _, truth = calib_dir
    bias = calib_set.bias
    assert bias.kind == "bias" and bias.n_frames == 10
    # 10 frames of 5 ADU read noise: error 5/sqrt(10) = 1.58 ADU per pixel
    rms = np.sqrt(np.mean((bias.data - truth.bias) ** 2))
    assert rms == pytest.approx(truth.read_noise / np.sqrt(10), rel=0.05)
    pull = _pulls(bias, truth.bias, np.ones(truth.shape, bool))
    assert abs(pull.mean()) < 0.05  # 16384 pixels: statistical error 0.008
    assert pull.std() == pytest.approx(1.0, abs=0.05)


def test_read_noise_is_measured_when_unknown(calib_set):
    rng = np.random.default_rng(5)
    frames = 700.0 + 4.0 * rng.standard_normal((8, 64, 64))
    frames[2, 10, 10] += 5000.0  # a cosmic ray does not spoil the estimate
    bias = make_master_bias(frames)
    assert bias.meta["read_noise_source"] == "measured"
    assert bias.meta["read_noise"] == pytest.approx(4.0, rel=0.02)  # 32768 values
    assert bias.data[10, 10] == pytest.approx(700.0, abs=6.0)
    assert bias.variance[0, 0] == pytest.approx(bias.meta["read_noise"] ** 2 / 8, rel=1e-12)
    assert calib_set.bias.meta["read_noise_source"] == "header"


def test_master_dark_recovers_dark_current(calib_set, calib_dir):
    _, truth = calib_dir
    dark = calib_set.dark
    assert dark.kind == "dark" and dark.meta["exptime"] == [300.0] * 5
    good = ~truth.hot_pixels
    pull = _pulls(dark, truth.dark_current, good)
    assert abs(pull.mean()) < 0.05
    assert pull.std() == pytest.approx(1.0, abs=0.05)
    # hot pixels (1-10 ADU/s, ~1 % errors): each within 4 sigma of the truth
    hot = truth.hot_pixels
    hot_pull = (dark.data[hot] - truth.dark_current[hot]) / np.sqrt(dark.variance[hot])
    assert np.abs(hot_pull).max() < 4.0


def test_master_flats_recover_truth_per_band(calib_set, calib_dir):
    _, truth = calib_dir
    assert calib_set.bands == ("g", "r")
    for band in ("g", "r"):
        flat = calib_set.flats[band]
        assert flat.meta["band"] == band and flat.n_frames == 7
        assert np.median(flat.data[~flat.mask]) == pytest.approx(1.0, abs=1e-12)
        good = ~truth.dead_pixels
        pull = _pulls(flat, truth.flats[band], good)
        assert abs(pull.mean()) < 0.05
        assert pull.std() == pytest.approx(1.0, abs=0.05)
        # relative error per pixel ~0.2 %: the vignetting (10 %) is well resolved
        assert np.std((flat.data / truth.flats[band])[good]) < 0.004


def test_flats_of_different_levels_and_sample_variance_path():
    rng = np.random.default_rng(6)
    response = 1.0 + 0.05 * rng.standard_normal((32, 32))
    frames = [level * response + rng.normal(0, 1.0, (32, 32)) for level in (1e3, 2e3, 4e3)]
    flat = make_master_flat(frames, bias=None)
    assert flat.meta["levels"] == pytest.approx([1e3, 2e3, 4e3], rel=0.01)
    np.testing.assert_allclose(flat.data, response / np.median(response), atol=0.005)
    assert np.isfinite(flat.variance).all()  # from the stack scatter


def test_bad_pixels_found(calib_set, calib_dir):
    _, truth = calib_dir
    bad = bad_pixel_mask(calib_set.flats["g"], calib_set.dark)
    assert (bad & truth.bad_pixels).sum() == truth.bad_pixels.sum()  # all 40 found
    assert (bad & ~truth.bad_pixels).sum() <= 2  # 5-sigma hot threshold: ~0 false
    np.testing.assert_array_equal(calib_set.bad_pixels["g"], bad)
    assert calib_set.bad_pixels[None].sum() == truth.hot_pixels.sum()
    flat_only = bad_pixel_mask(calib_set.flats["g"].data)
    np.testing.assert_array_equal(flat_only, truth.dead_pixels)


def test_write_read_round_trip(calib_set, tmp_path):
    for master in (calib_set.bias, calib_set.dark, calib_set.flats["r"]):
        path = write_master(tmp_path / f"{master.kind}.fits", master)
        back = read_master(path)
        assert back.kind == master.kind and back.n_frames == master.n_frames
        np.testing.assert_array_equal(back.data, master.data)
        np.testing.assert_array_equal(back.variance, master.variance)
        np.testing.assert_array_equal(back.mask, master.mask)
        assert back.meta["binning"] == (1, 1)
        assert back.meta["filename"] == str(path)
    assert read_master(tmp_path / "flat.fits").meta["band"] == "r"
    assert read_master(tmp_path / "bias.fits").meta["read_noise"] == 5.0
    from astropy.io import fits

    header = fits.getheader(tmp_path / "dark.fits")
    assert header["CALTYPE"] == "dark" and header["NCOMBINE"] == 5
    assert header["BUNIT"] == "adu/s" and header["IMCMB001"] == "dark_000.fits"


def test_master_errors_name_the_problem(tmp_path):
    frames = [np.ones((4, 4))] * 3
    with pytest.raises(ParameterError, match="master bias needs at least one frame"):
        make_master_bias([])
    with pytest.raises(DataError, match="cannot measure the read noise from 1 frame"):
        make_master_bias(frames[:1])
    with pytest.raises(ParameterError, match=r"exposure time of frame #0 is None"):
        make_master_dark(frames, bias=None)
    named = [Exposure(data=np.ones((4, 4)), exptime=-1.0, meta={"filename": "d1.fits"})]
    with pytest.raises(ParameterError, match=r"frame #0 \(d1.fits\) is -1.0; it must be positive"):
        make_master_dark(named, bias=None)
    with pytest.raises(ParameterError, match="got 2 values of exposure time for 3 frames"):
        make_master_dark(frames, bias=None, exptime=[1.0, 2.0])
    with pytest.raises(DataError, match=r"shape mismatch: bias array has shape \(2, 2\)"):
        make_master_dark(frames, bias=np.zeros((2, 2)), exptime=10.0)
    with pytest.raises(DataError, match=r"frame #1 has median level -1 ADU"):
        make_master_flat([np.ones((4, 4)), -np.ones((4, 4))], bias=None)
    with pytest.raises(ParameterError, match="exposure time of frame #0 is None; it is needed"):
        make_master_flat(frames, bias=None, dark=np.zeros((4, 4)))
    binned = [
        Exposure(data=np.ones((4, 4)), meta={"filename": "a.fits", "binning": (1, 1)}),
        Exposure(data=np.ones((4, 4)), meta={"filename": "b.fits", "binning": (2, 2)}),
    ]
    with pytest.raises(DataError, match=r"frame #1 \(b.fits\) has binning 2x2 but .*a.fits.* 1x1"):
        make_master_bias(binned, read_noise=1.0)
    with pytest.raises(DataError, match=r"several bands \['g', 'r'\]"):
        make_master_flat([Exposure(data=np.ones((4, 4)), band=b) for b in ("g", "r")], bias=None)
    with pytest.raises(ParameterError, match="read noise must be positive, got -2"):
        make_master_bias(frames, read_noise=-2)
    with pytest.raises(ParameterError, match="master kind must be one of bias, dark, flat"):
        MasterFrame(
            data=np.ones((2, 2)), variance=np.ones((2, 2)), mask=None, n_frames=1, kind="sky"
        )
    with pytest.raises(ParameterError, match=r"low must be below high, got low=1.5, high=0.5"):
        bad_pixel_mask(np.ones((4, 4)), low=1.5, high=0.5)
    with pytest.raises(ParameterError, match="hot_sigma must be positive, got 0"):
        bad_pixel_mask(np.ones((4, 4)), hot_sigma=0)
    with pytest.raises(
        DataError, match=r"master dark has shape \(2, 2\), master flat has \(4, 4\)"
    ):
        bad_pixel_mask(np.ones((4, 4)), np.zeros((2, 2)))


def test_read_master_errors(tmp_path):
    with pytest.raises(InputFileError, match=r"nothere.fits: no such file"):
        read_master(tmp_path / "nothere.fits")
    text = tmp_path / "notes.fits"
    text.write_text("not a FITS file")
    with pytest.raises(InputFileError, match=r"notes.fits: not a FITS file"):
        read_master(text)
    from astropy.io import fits

    plain = tmp_path / "plain.fits"
    fits.PrimaryHDU(np.zeros((3, 3))).writeto(plain)
    with pytest.raises(HeaderError, match=r"plain.fits: keyword CALTYPE=None is not one of"):
        read_master(plain)
    hdu = fits.PrimaryHDU()
    hdu.header["CALTYPE"] = "bias"
    hdu.writeto(tmp_path / "nohdus.fits")
    with pytest.raises(
        InputFileError, match=r"nohdus.fits: master frame lacks HDU.s. SCI, VAR, MSK"
    ):
        read_master(tmp_path / "nohdus.fits")
    master = MasterFrame(
        data=np.ones((2, 2)),
        variance=np.ones((2, 2)),
        mask=np.zeros((2, 2)),
        n_frames=1,
        kind="bias",
    )
    write_master(tmp_path / "m.fits", master)
    with pytest.raises(InputFileError, match=r"m.fits: exists and overwrite=False"):
        write_master(tmp_path / "m.fits", master, overwrite=False)


def test_masters_live_in_io_and_calibration_does_no_file_io():
    import inspect

    import skyscene.calibration as calibration
    import skyscene.calibration.masters as algorithms
    import skyscene.io as io

    assert calibration.read_master is io.read_master
    assert calibration.write_master is io.write_master
    assert calibration.MasterFrame is io.MasterFrame
    assert io.MasterFrame.__module__ == "skyscene.io.masters"
    source = inspect.getsource(algorithms)
    for needle in ("astropy.io", "open_fits", "atomic_path", ".writeto(", "open("):
        assert needle not in source, f"calibration.masters still does file I/O ({needle})"


def test_master_noise_convention_read_by_ccddata(calib_set, tmp_path):
    from astropy import units as u
    from astropy.io import fits
    from astropy.nddata import CCDData, VarianceUncertainty

    for master, unit, extra in (
        (calib_set.dark, u.adu / u.s, {}),
        (calib_set.flats["g"], u.dimensionless_unscaled, {"unit": ""}),
    ):
        path = write_master(tmp_path / f"{master.kind}.fits", master)
        assert fits.getheader(path, "VAR")["UTYPE"] == "VarianceUncertainty"
        ccd = CCDData.read(path, hdu_uncertainty="VAR", hdu_mask="MSK", **extra)
        assert ccd.unit == unit
        assert isinstance(ccd.uncertainty, VarianceUncertainty)
        good = ~master.mask
        np.testing.assert_array_equal(ccd.uncertainty.array[good], master.variance[good])
        np.testing.assert_array_equal(ccd.mask, master.mask)
        np.testing.assert_array_equal(ccd.data, master.data)


def test_read_master_bad_input_names_file_and_key(calib_set, tmp_path):
    from astropy.io import fits

    path = write_master(tmp_path / "bias.fits", calib_set.bias)
    raw = path.read_bytes()
    (tmp_path / "short.fits").write_bytes(raw[: 2 * 2880 + 800])  # inside the SCI data
    with pytest.raises(InputFileError, match=r"short\.fits: HDU SCI is truncated or corrupt"):
        read_master(tmp_path / "short.fits")
    n_sci = 2 * 2880 + -(-calib_set.bias.data.nbytes // 2880) * 2880
    (tmp_path / "cut.fits").write_bytes(raw[: n_sci + 1000])  # inside the VAR header
    with pytest.raises(
        InputFileError,
        match=r"cut\.fits: master frame lacks HDU\(s\) VAR, MSK \(the file is truncated",
    ):
        read_master(tmp_path / "cut.fits")
    with fits.open(path) as hdul:
        hdul[0].header["CCDSUM"] = "two by two"
        hdul.writeto(tmp_path / "ccdsum.fits")
    with pytest.raises(HeaderError, match=r"ccdsum\.fits: keyword CCDSUM='two by two' is not"):
        read_master(tmp_path / "ccdsum.fits")
    at = raw.find(b"RDNOISE =")
    bad = raw[:at] + b"RDNOISE = NaN".ljust(80) + raw[at + 80 :]
    (tmp_path / "rdnoise.fits").write_bytes(bad)
    with pytest.raises(HeaderError, match=r"rdnoise\.fits: header card RDNOISE cannot be parsed"):
        read_master(tmp_path / "rdnoise.fits")
