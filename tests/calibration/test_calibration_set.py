"""CalibrationSet.from_directory / apply / save / load, classification and errors."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from astropy.io import fits

from skyscene.calibration import CalibrationSet, classify_frame
from skyscene.datasets.calibration import raw_science_frame, simulate_calibration_frames
from skyscene.errors import DataError, HeaderError, InputFileError, ParameterError
from skyscene.io import read_exposure


def test_from_directory_builds_all_masters(calib_set, calib_dir):
    folder, truth = calib_dir
    assert calib_set.bias.n_frames == 10 and calib_set.dark.n_frames == 5
    assert calib_set.bands == ("g", "r")
    assert calib_set.gain == truth.gain and calib_set.read_noise == truth.read_noise
    assert calib_set.skipped == ((str(folder / "truth.json"), "not a FITS file"),)
    assert calib_set.source == str(folder)


def test_non_fits_files_are_skipped_with_a_warning(calib_dir, caplog):
    folder, _ = calib_dir
    with caplog.at_level(logging.WARNING, logger="skyscene.calibration"):
        CalibrationSet.from_directory(folder)
    assert f"skipping {folder / 'truth.json'}: not a FITS file" in caplog.text


def test_apply_end_to_end_from_a_fits_file(calib_set, calib_dir, tmp_path):
    _, truth = calib_dir
    sim = raw_science_frame(truth, rng=41, band="r", path=tmp_path / "sci_r.fits")
    raw = read_exposure(sim.path)
    assert raw.meta["binning"] == (1, 1)
    out = calib_set.apply(raw)
    good = ~out.mask
    pull = (out.data - sim.scene)[good] / np.sqrt(out.variance[good])
    assert abs(pull.mean()) < 0.05
    assert pull.std() == pytest.approx(1.0, abs=0.05)
    assert out.filename == str(sim.path) and out.time is not None and out.band == "r"
    assert "flat 'r'" in out.meta["calibration"]["flat"]


def test_save_and_load_give_the_same_calibration(calib_set, calib_dir, tmp_path):
    _, truth = calib_dir
    written = calib_set.save(tmp_path / "masters")
    assert sorted(p.name for p in written) == [
        "bias.fits",
        "dark.fits",
        "flat_g.fits",
        "flat_r.fits",
    ]
    loaded = CalibrationSet.load(tmp_path / "masters")
    assert loaded.bands == ("g", "r") and loaded.gain == calib_set.gain
    sim = raw_science_frame(truth, rng=42, band="g")
    a, b = calib_set.apply(sim.exposure), loaded.apply(sim.exposure)
    np.testing.assert_allclose(a.data, b.data, rtol=1e-12)
    np.testing.assert_allclose(a.variance, b.variance, rtol=1e-12)  # bias-dark link kept
    assert b.meta["calibration"]["bias_dark_correlation"] == pytest.approx(1 / 300)


def test_classification_by_keyword_and_file_name():
    assert classify_frame({"IMAGETYP": "zero"}, "x.fits") == "bias"
    assert classify_frame({"OBSTYPE": "DARK"}, "x.fits") == "dark"
    assert classify_frame({"IMAGETYP": "Sky Flat"}, "x.fits") == "flat"
    assert classify_frame({"IMAGETYP": "dome flat"}, "bias.fits") == "flat"  # header wins
    assert classify_frame({"IMAGETYP": "Light Frame"}, "flat.fits") == "science"
    assert classify_frame({}, "Dark_300s_001.fit") == "dark"
    assert classify_frame({}, "FLAT-g-1.fits") == "flat"
    assert classify_frame({}, "m31.fits") is None


def test_frames_without_imagetyp_are_classified_by_name(tmp_path, caplog):
    truth = simulate_calibration_frames(
        tmp_path,
        rng=5,
        shape=(32, 32),
        n_bias=4,
        n_dark=3,
        n_flat=3,
        hot_pixels=2,
        dead_pixels=2,
        imagetyp={"bias": None, "dark": None, "flat": "Dome Flat"},
    )
    fits.PrimaryHDU(np.zeros((32, 32), np.float32)).writeto(tmp_path / "m31.fits")
    fits.PrimaryHDU(
        np.zeros((32, 32), np.float32), header=fits.Header({"IMAGETYP": "object"})
    ).writeto(tmp_path / "sci.fits")
    with caplog.at_level(logging.WARNING, logger="skyscene.calibration"):
        calset = CalibrationSet.from_directory(tmp_path)
    assert calset.bias.n_frames == 4 and calset.dark.n_frames == 3 and calset.bands == ("g",)
    reasons = dict(calset.skipped)
    assert reasons[str(tmp_path / "m31.fits")] == "frame type unknown"
    assert reasons[str(tmp_path / "sci.fits")] == "science frame"
    assert "skipping " + str(tmp_path / "m31.fits") in caplog.text
    assert truth.shape == (32, 32)


def test_missing_band_names_the_band(calib_set, calib_dir):
    _, truth = calib_dir
    exposure = raw_science_frame(truth, rng=43, band="g").exposure
    with pytest.raises(
        DataError, match=r"no master flat for band 'i'; master flats exist for band\(s\) g, r"
    ):
        calib_set.apply(exposure.replace(band="i"))
    with pytest.raises(DataError, match=r"exposure has no band .FILTER.; cannot choose among"):
        calib_set.apply(exposure.replace(band=None))


def test_binning_mismatch_names_the_file(calib_set, calib_dir):
    _, truth = calib_dir
    exposure = raw_science_frame(truth, rng=44, band="g").exposure
    binned = exposure.replace(meta={"filename": "sci_2x2.fits", "binning": (2, 2)})
    with pytest.raises(
        DataError, match=r"science frame sci_2x2.fits is binned 2x2 but master bias"
    ):
        calib_set.apply(binned)


def test_folder_errors(tmp_path):
    with pytest.raises(InputFileError, match="nothere: calibration folder does not exist"):
        CalibrationSet.from_directory(tmp_path / "nothere")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputFileError, match=f"{empty}: calibration folder is empty"):
        CalibrationSet.from_directory(empty)
    (empty / "readme.txt").write_text("calibration notes")
    with pytest.raises(
        InputFileError, match=r"empty: no calibration frame \(bias, dark or flat\) among 1"
    ):
        CalibrationSet.from_directory(empty)
    with pytest.raises(InputFileError, match="no master file"):
        CalibrationSet.load(empty)


def test_darks_without_bias_and_flats_without_filter(tmp_path):
    rng = np.random.default_rng(7)

    def frame(**keys):
        return fits.PrimaryHDU(
            (100.0 + rng.standard_normal((8, 8))).astype(np.float32), header=fits.Header(keys)
        )

    darks = tmp_path / "darks"
    darks.mkdir()
    for i in range(2):
        frame(IMAGETYP="dark", EXPTIME=10.0).writeto(darks / f"d{i}.fits")
    with pytest.raises(DataError, match=r"darks: 2 dark frame.s. but no bias frame"):
        CalibrationSet.from_directory(darks)
    flats = tmp_path / "flats"
    flats.mkdir()
    frame(IMAGETYP="flat").writeto(flats / "f.fits")
    with pytest.raises(
        HeaderError, match=r"f.fits: flat frame without a filter keyword \(tried FILTER"
    ):
        CalibrationSet.from_directory(flats)
    bad = tmp_path / "bad"
    bad.mkdir()
    frame(IMAGETYP="bias", GAIN="high").writeto(bad / "b.fits")
    with pytest.raises(HeaderError, match=r"b.fits: keyword GAIN='high' is not a number"):
        CalibrationSet.from_directory(bad)


def test_set_validation(calib_set):
    with pytest.raises(
        ParameterError, match="dark must be a MasterFrame of kind 'dark', got 'bias'"
    ):
        CalibrationSet(bias=calib_set.bias, dark=calib_set.bias)
    small = calib_set.bias.__class__(
        data=np.zeros((4, 4)), variance=np.ones((4, 4)), mask=None, n_frames=1, kind="dark"
    )
    with pytest.raises(DataError, match="masters have different shapes"):
        CalibrationSet(bias=calib_set.bias, dark=small)
