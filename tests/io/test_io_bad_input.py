"""Bad input at read time: one-line errors naming the file and key; non-physical pixels masked."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from astropy.io import fits
from astropy.time import Time
from astropy.wcs import WCS

from skyscene.errors import HeaderError, InputFileError
from skyscene.io import Exposure, nonphysical_mask, read_exposure, read_header, write_exposure

SHAPE = (64, 64)


def _wcs():
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [10.0, 20.0]
    wcs.wcs.crpix = [32.5, 32.5]
    wcs.wcs.cdelt = [-7.5e-5, 7.5e-5]
    return wcs


def _star_field(rng, *, peak=3e5, sky=100.0, noise=5.0):
    """Sky plus three bright Gaussian stars (peaks up to ``peak`` = 6e4 noise units)."""
    y, x = np.mgrid[: SHAPE[0], : SHAPE[1]]
    data = rng.normal(sky, noise, SHAPE)
    stars = [((15.2, 20.7), peak), ((40.0, 44.3), peak / 10), ((50.5, 10.1), 2e3)]
    for (cx, cy), amp in stars:
        data += amp * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * 1.5**2))
    return data


@pytest.fixture
def good_file(tmp_path):
    rng = np.random.default_rng(42)
    exp = Exposure(
        data=_star_field(rng),
        variance=np.full(SHAPE, 25.0),
        wcs=_wcs(),
        band="r",
        time=Time(60000.25, format="mjd"),
        exptime=30.0,
    )
    return write_exposure(tmp_path / "frame.fits", exp)


def _replace_card(path, key: str, image: bytes, out):
    raw = path.read_bytes()
    at = raw.find(key.encode().ljust(8) + b"=")
    assert at >= 0, key
    out.write_bytes(raw[:at] + image.ljust(80) + raw[at + 80 :])
    return out


def test_truncated_file_names_file_and_hdu(good_file, tmp_path):
    raw = good_file.read_bytes()
    bad = tmp_path / "trunc.fits"
    bad.write_bytes(raw[: 2 * 2880 + 120])  # primary + SCI header + 30 float32 pixels
    with pytest.raises(InputFileError, match=r"^\S*trunc\.fits: HDU SCI is truncated or corrupt"):
        read_exposure(bad)
    with pytest.raises(InputFileError) as info:
        read_exposure(bad)
    assert "\n" not in str(info.value)


def test_unparsable_card_names_file_and_key(good_file, tmp_path):
    bad = _replace_card(good_file, "CRVAL1", b"CRVAL1  = NaN", tmp_path / "nan.fits")
    with pytest.raises(HeaderError, match=r"nan\.fits: header card CRVAL1 cannot be parsed") as e:
        read_exposure(bad)
    assert e.value.key == "CRVAL1" and e.value.filename == str(bad)
    with pytest.raises(HeaderError, match=r"nan\.fits: header card CRVAL1 cannot be parsed"):
        read_header(bad)


@pytest.mark.parametrize(
    ("key", "image", "shown"),
    [
        ("CRVAL1", b"CRVAL1  = 'NaN'", "'NaN'"),
        ("CRVAL2", b"CRVAL2  = 1.0E999", "inf"),
        ("CRPIX1", b"CRPIX1  = 'nan'", "'nan'"),
        ("CDELT2", b"CDELT2  = 'x'", "'x'"),
    ],
)
def test_non_finite_wcs_keyword_names_key(good_file, tmp_path, key, image, shown):
    bad = _replace_card(good_file, key, image, tmp_path / "wcs.fits")
    with pytest.raises(HeaderError, match=rf"wcs\.fits: WCS keyword {key} = {shown} is not a fin"):
        read_exposure(bad)


def test_singular_wcs_matrix_is_refused(good_file, tmp_path):
    bad = _replace_card(good_file, "CDELT1", b"CDELT1  = 0.0", tmp_path / "sing.fits")
    with pytest.raises(HeaderError, match=r"sing\.fits: .*singular|sing\.fits: invalid WCS"):
        read_exposure(bad)


def test_one_huge_pixel_is_masked_and_counted_bright_stars_are_not(good_file, tmp_path, caplog):
    clean = read_exposure(good_file)
    assert clean.meta["n_nonphysical"] == 0 and clean.meta["n_saturated"] == 0
    assert not clean.mask.any(), "bright stars (peak 6e4 sigma) must not be masked"
    with fits.open(good_file) as hdul:
        hdul["SCI"].data[20, 15] = 1e30  # on the brightest star
        hdul["SCI"].data[5, 60] = -1e30
        hdul.writeto(tmp_path / "hot.fits")
    with caplog.at_level(logging.INFO, logger="skyscene.io.fits"):
        exp = read_exposure(tmp_path / "hot.fits")
    assert exp.meta["n_nonphysical"] == 2
    assert np.argwhere(exp.mask).tolist() == [[5, 60], [20, 15]]
    assert exp.data[20, 15] == 0.0 and np.isinf(exp.variance[20, 15])
    assert np.array_equal(exp.data[~exp.mask], clean.data[~exp.mask])
    assert "2 non-physical pixel(s)" in caplog.text


def test_saturate_keyword_masks_and_counts(tmp_path):
    rng = np.random.default_rng(3)
    data = _star_field(rng, peak=9e4)
    header = fits.Header({"FILTER": "g", "MJD-OBS": 60000.0, "EXPTIME": 10.0, "SATURATE": 5e4})
    fits.PrimaryHDU(data.astype(np.float32), header=header).writeto(tmp_path / "sat.fits")
    exp = read_exposure(tmp_path / "sat.fits")
    expected = data.astype(np.float32) >= 5e4
    assert expected.sum() > 0
    np.testing.assert_array_equal(exp.mask, expected)
    assert exp.meta["n_saturated"] == int(expected.sum()) and exp.meta["n_nonphysical"] == 0


def test_integer_image_at_full_scale_is_saturated(tmp_path):
    rng = np.random.default_rng(4)
    data = np.clip(_star_field(rng, peak=1e5), 0, 65535).astype(np.uint16)
    n_full = int((data == 65535).sum())
    assert n_full > 0
    header = fits.Header({"FILTER": "g", "MJD-OBS": 60000.0, "EXPTIME": 10.0})
    fits.PrimaryHDU(data, header=header).writeto(tmp_path / "adc.fits")  # BZERO 32768
    exp = read_exposure(tmp_path / "adc.fits")
    assert exp.meta["n_saturated"] == n_full
    np.testing.assert_array_equal(exp.mask, data == 65535)


def test_nonphysical_mask_rule():
    rng = np.random.default_rng(9)
    data = rng.normal(0.0, 0.01, (200, 200))  # a coadd in flux units: sky 0 +- 0.01
    data[50, 50] = 1e5  # a very bright star peak: 1e7 sigma
    data[10, 10] = 1e20
    mask, limit = nonphysical_mask(data)
    assert np.argwhere(mask).tolist() == [[10, 10]]
    # S = the 99th percentile of |data - median| (2.58 sigma) here
    assert limit == pytest.approx(1e8 * 2.576 * 0.01, rel=0.05)
    flat = np.zeros((50, 50))
    flat[3, 3] = 1e30
    mask, limit = nonphysical_mask(flat)  # no scale at all: nothing can be judged
    assert not mask.any() and limit == np.inf


def test_read_header_inherits_primary_and_reads_no_pixels(good_file):
    header = read_header(good_file)
    assert header["FILTER"] == "r" and header["EXPTIME"] == 30.0
    with pytest.raises(InputFileError, match=r"frame\.fits: no HDU 'NOPE'"):
        read_header(good_file, hdu="NOPE")
