"""Specification of FITS reading and writing of exposures (``skyscene.io.fits``)."""

from __future__ import annotations

import gzip
import os

import numpy as np
import pytest
from astropy import units as u
from astropy.io import fits
from astropy.time import Time
from astropy.wcs import WCS

from skyscene.errors import DataError, HeaderError, InputFileError
from skyscene.io import Exposure, is_fits, read_exposure, write_exposure
from skyscene.psf import GaussianPSF, PixelizedPSF

SHAPE = (32, 40)


def make_wcs():
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [210.5, -12.25]
    wcs.wcs.crpix = [20.5, 16.5]
    wcs.wcs.cd = np.array([[-7.3e-5, 1.0e-6], [1.2e-6, 7.3e-5]])
    return wcs


@pytest.fixture
def exposure():
    rng = np.random.default_rng(5)
    data = rng.normal(200.0, 10.0, SHAPE)
    variance = rng.uniform(80.0, 120.0, SHAPE)
    mask = np.zeros(SHAPE, bool)
    mask[3, 4] = mask[20, 30] = True
    psf = GaussianPSF(1.7).to_pixelized(size=9, oversampling=2)
    return Exposure(
        data=data,
        variance=variance,
        mask=mask,
        wcs=make_wcs(),
        psf=psf,
        zeropoint=28.125,
        band="i",
        time=Time("2024-03-05T06:07:08.5", scale="utc"),
        exptime=90.0,
        gain=1.75,
        read_noise=4.5,
    )


def test_round_trip(tmp_path, exposure):
    path = write_exposure(tmp_path / "out.fits", exposure)
    with fits.open(path) as hdul:
        assert [h.name for h in hdul] == ["PRIMARY", "SCI", "WGT", "MSK", "PSF"]
        # WGT holds inverse variance and 0 where masked
        assert hdul["WGT"].data[3, 4] == 0.0
        np.testing.assert_allclose(hdul["WGT"].data[0, 0], 1.0 / exposure.variance[0, 0], rtol=1e-6)
        # the header time is the start: mid - EXPTIME/2
        start = Time(hdul["SCI"].header["MJD-OBS"], format="mjd", scale="utc")
        assert abs((exposure.time - start).to_value(u.s) - 45.0) < 1e-3, (
            "MJD-OBS = start (tol 1 ms)"
        )
    back = read_exposure(path)
    good = ~exposure.mask
    # float32 storage: relative precision 2**-24 ~ 6e-8
    np.testing.assert_allclose(back.data, exposure.data, rtol=1e-6)
    np.testing.assert_allclose(back.variance[good], exposure.variance[good], rtol=1e-6)
    np.testing.assert_array_equal(back.mask, exposure.mask)
    assert np.all(np.isinf(back.variance[exposure.mask]))
    assert back.band == "i"
    assert back.zeropoint == pytest.approx(28.125, abs=1e-12)
    assert back.exptime == pytest.approx(90.0, abs=1e-12)
    assert back.gain == pytest.approx(1.75, abs=1e-12)
    assert back.read_noise == pytest.approx(4.5, abs=1e-12)
    dt = abs((back.time - exposure.time).to_value(u.s))
    assert dt < 1e-3, f"mid-exposure time differs by {dt} s (tol 1 ms)"
    assert back.filename == str(path)
    # WCS: the same sky positions at random pixels (tol 1e-6 arcsec)
    rng = np.random.default_rng(1)
    x, y = rng.uniform(0, SHAPE[1] - 1, 10), rng.uniform(0, SHAPE[0] - 1, 10)
    sep = exposure.wcs.pixel_to_world(x, y).separation(back.wcs.pixel_to_world(x, y))
    assert np.max(sep.to_value(u.arcsec)) < 1e-6
    # PSF: same oversampled image and sampling (float64 storage: exact to 1e-15)
    assert isinstance(back.psf, PixelizedPSF)
    assert back.psf.oversampling == 2.0
    np.testing.assert_allclose(back.psf.image, exposure.psf.image, rtol=0, atol=1e-15)


def test_round_trip_twice_is_stable(tmp_path, exposure):
    first = read_exposure(write_exposure(tmp_path / "a.fits", exposure))
    second = read_exposure(write_exposure(tmp_path / "b.fits", first))
    np.testing.assert_array_equal(second.data, first.data)  # float32 -> float32: exact
    assert abs((second.time - first.time).to_value(u.s)) < 1e-3  # tol 1 ms
    assert second.band == first.band


def test_cutout_origin_round_trips_as_ltv(tmp_path, exposure):
    cut = exposure[3:9, 2:8]
    assert cut.origin == (2, 3)
    back = read_exposure(write_exposure(tmp_path / "cut.fits", cut))
    assert back.origin == (2, 3)
    assert fits.getheader(tmp_path / "cut.fits", "SCI")["LTV1"] == -2
    # Back at the parent's origin, the keys go away (nothing stale is kept).
    whole = read_exposure(write_exposure(tmp_path / "whole.fits", back.replace(origin=(0, 0))))
    assert whole.origin == (0, 0)
    assert "LTV1" not in fits.getheader(tmp_path / "whole.fits", "SCI")


def test_fractional_ltv_is_refused(tmp_path, exposure):
    path = write_exposure(tmp_path / "c.fits", exposure)
    with fits.open(path, mode="update") as hdul:
        hdul["SCI"].header["LTV2"] = -3.5
    with pytest.raises(HeaderError, match=r"c\.fits: LTV2 = -3\.5 is not a whole number") as info:
        read_exposure(path)
    assert info.value.key == "LTV2"


def test_write_refuses_overwrite(tmp_path, exposure):
    path = tmp_path / "x.fits"
    path.write_bytes(b"keep me")
    with pytest.raises(InputFileError, match=r"x\.fits: exists and overwrite=False"):
        write_exposure(path, exposure, overwrite=False)
    assert path.read_bytes() == b"keep me"


def test_atomic_write_failure_leaves_target_untouched(tmp_path, exposure, monkeypatch):
    path = tmp_path / "target.fits"
    path.write_bytes(b"previous content")

    def failing_writeto(self, name, *args, **kwargs):
        with open(name, "wb") as fh:
            fh.write(b"SIMPLE  = half-written")
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(fits.HDUList, "writeto", failing_writeto)
    with pytest.raises(OSError, match="disk full"):
        write_exposure(path, exposure)
    assert path.read_bytes() == b"previous content", "target must be untouched when writing fails"
    assert sorted(os.listdir(tmp_path)) == ["target.fits"], "no temporary file may be left behind"


def test_successful_write_leaves_no_temp_files(tmp_path, exposure):
    write_exposure(tmp_path / "sub" / "new.fits", exposure)
    assert sorted(os.listdir(tmp_path / "sub")) == ["new.fits"]


def _write_primary(path, data, **keys):
    header = fits.Header()
    for k, v in keys.items():
        header[k.replace("_", "-")] = v
    fits.PrimaryHDU(np.asarray(data, dtype=np.float32), header=header).writeto(path)
    return path


def test_bare_primary_variance_from_gain_and_read_noise(tmp_path):
    # 1000 ADU sky, gain 2 e-/ADU, read noise 5 ADU: Poisson variance 2000 e- = 500 ADU²,
    # plus 25 ADU² of read noise -> 525 ADU².
    rng = np.random.default_rng(7)
    level, gain, read_noise = 1000.0, 2.0, 5.0
    expected = level / gain + read_noise**2
    data = rng.normal(level, np.sqrt(expected), (64, 64))
    path = _write_primary(
        tmp_path / "bare.fits",
        data,
        FILTER="g",
        MJD_OBS=60000.0,
        EXPTIME=30.0,
        GAIN=gain,
        RDNOISE=read_noise,
    )
    exp = read_exposure(path)
    # the median of 4096 pixels is known to ~0.05 %; allow 0.5 %
    np.testing.assert_allclose(exp.variance, expected, rtol=5e-3)
    assert exp.gain == gain and exp.read_noise == read_noise
    assert exp.wcs is None


def test_bare_primary_variance_without_gain_is_pixel_scatter(tmp_path):
    rng = np.random.default_rng(8)
    data = rng.normal(50.0, 7.0, (80, 80))
    data[40, 40] = 1e5  # an outlier the clipping ignores
    path = _write_primary(tmp_path / "nogain.fits", data, FILTER="g", MJD_OBS=60000.0, EXPTIME=30.0)
    exp = read_exposure(path)
    # sample variance of 6400 normal values: relative scatter sqrt(2/6400) ~ 1.8 %; allow 6 %
    np.testing.assert_allclose(exp.variance, 49.0, rtol=0.06)


def test_weight_mask_and_saturation(tmp_path):
    data = np.full((10, 12), 100.0)
    data[2, 3] = 60000.0
    weight = np.full((10, 12), 0.25)
    weight[5, 5] = 0.0
    msk = np.zeros((10, 12), np.int16)
    msk[7, 1] = 4
    header = fits.Header({"FILTER": "r", "MJD-OBS": 60000.0, "EXPTIME": 10.0, "SATURATE": 50000.0})
    path = tmp_path / "mef.fits"
    fits.HDUList(
        [
            fits.PrimaryHDU(header=fits.Header({"INSTRUME": "generic-cam"})),
            fits.ImageHDU(data, header=header, name="SCI"),
            fits.ImageHDU(weight, name="WGT"),
            fits.ImageHDU(msk, name="MSK"),
        ]
    ).writeto(path)
    exp = read_exposure(path)
    expected = np.zeros((10, 12), bool)
    expected[2, 3] = expected[5, 5] = expected[7, 1] = True  # saturated, zero weight, MSK != 0
    np.testing.assert_array_equal(exp.mask, expected)
    np.testing.assert_array_equal(exp.variance[~expected], 4.0)
    assert exp.meta["instrument"] == "generic-cam", "primary keywords are inherited by SCI"


def test_mismatched_weight_shape(tmp_path):
    path = tmp_path / "bad_wgt.fits"
    header = fits.Header({"FILTER": "r", "MJD-OBS": 60000.0, "EXPTIME": 10.0})
    fits.HDUList(
        [
            fits.PrimaryHDU(),
            fits.ImageHDU(np.ones((8, 8)), header=header, name="SCI"),
            fits.ImageHDU(np.ones((4, 8)), name="WGT"),
        ]
    ).writeto(path)
    with pytest.raises(
        DataError, match=r"bad_wgt\.fits: HDU WGT has shape \(4, 8\), SCI has \(8, 8\)"
    ):
        read_exposure(path)


def test_missing_file(tmp_path):
    with pytest.raises(InputFileError, match=r"nothere\.fits: no such file"):
        read_exposure(tmp_path / "nothere.fits")


def test_not_fits(tmp_path):
    path = tmp_path / "notes.fits"
    path.write_text("this is not FITS\n" * 200)
    assert not is_fits(path)
    with pytest.raises(InputFileError, match=r"notes\.fits: not a FITS file"):
        read_exposure(path)


def test_is_fits_gzip(tmp_path):
    path = _write_primary(tmp_path / "a.fits", np.ones((4, 4)))
    gz = tmp_path / "a.fits.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    assert is_fits(path) and is_fits(gz)
    assert not is_fits(tmp_path / "missing.fits")


def test_no_image_hdu(tmp_path):
    path = tmp_path / "empty.fits"
    fits.PrimaryHDU().writeto(path)
    with pytest.raises(InputFileError, match=r"empty\.fits: no 2-D image HDU"):
        read_exposure(path)


def test_all_nan_image(tmp_path):
    path = _write_primary(
        tmp_path / "nan.fits", np.full((5, 5), np.nan), FILTER="r", MJD_OBS=6e4, EXPTIME=1.0
    )
    with pytest.raises(DataError, match=r"nan\.fits: image has no finite pixel"):
        read_exposure(path)


@pytest.mark.parametrize(
    ("keys", "match"),
    [
        ({"MJD_OBS": 6e4, "EXPTIME": 1.0}, r"h\.fits: missing filter keyword \(tried FILTER"),
        (
            {"FILTER": "r", "EXPTIME": 1.0},
            r"h\.fits: no observation time \(tried MJD-OBS, DATE-OBS\)",
        ),
        (
            {"FILTER": "r", "MJD_OBS": 6e4},
            r"h\.fits: missing exposure time keyword \(tried EXPTIME",
        ),
        (
            {"FILTER": "r", "MJD_OBS": 6e4, "EXPTIME": "long"},
            r"h\.fits: keyword EXPTIME='long' is not a number",
        ),
        (
            {"FILTER": "r", "MJD_OBS": 6e4, "EXPTIME": 1.0, "CCDSUM": "2y2"},
            r"h\.fits: keyword CCDSUM='2y2' is not a binning",
        ),
        (
            {"FILTER": "r", "MJD_OBS": 6e4, "EXPTIME": 1.0, "XBINNING": "two"},
            r"h\.fits: keyword XBINNING='two' is not a number",
        ),
    ],
)
def test_header_errors_name_file_and_key(tmp_path, keys, match):
    path = _write_primary(tmp_path / "h.fits", np.ones((6, 6)), **keys)
    with pytest.raises(HeaderError, match=match) as info:
        read_exposure(path)
    assert info.value.filename == str(path)


def test_require_time_false_reads_calibration_frames(tmp_path):
    path = _write_primary(
        tmp_path / "bias.fits", np.random.default_rng(0).normal(0, 3, (20, 20)), MAGZERO=25.0
    )
    exp = read_exposure(path, require_time=False)
    assert exp.band is None and exp.time is None
    assert exp.zeropoint == 25.0
    with pytest.raises(HeaderError, match=r"bias\.fits: missing filter keyword"):
        read_exposure(path)
