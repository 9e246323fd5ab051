"""The one gzip-FITS stamp codec: exact round trips, files astropy reads, ZTF's stamps, errors."""

from __future__ import annotations

import gzip
import io
import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.nddata import CCDData
from astropy.wcs import WCS

from skyscene.errors import DataError
from skyscene.io import FitsStamp, decode_fits_stamp, encode_fits_stamp

ZTF_DIR = Path(__file__).parents[2] / ".." / "shared" / "data" / "ztf_alerts"
ztf_files = sorted(ZTF_DIR.glob("*.avro")) if ZTF_DIR.is_dir() else []
needs_ztf = pytest.mark.skipif(not ztf_files, reason=f"real ZTF packets not found in {ZTF_DIR}")


def _planes(seed: int = 4, shape=(63, 63)):
    rng = np.random.default_rng(seed)
    data = rng.normal(100.0, 10.0, shape).astype(np.float32)
    data[:2, :5] = np.nan  # off the image
    variance = rng.uniform(90.0, 110.0, shape).astype(np.float32)
    variance[:2, :5] = np.inf
    mask = np.zeros(shape, np.uint8)
    mask[:2, :5] = 1
    mask[40, 40] = 4
    return data, variance, mask


def _wcs() -> WCS:
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [150.123456789012, -2.3456789]
    wcs.wcs.crpix = [-1200.5, 331.25]
    wcs.wcs.cd = [[-7.3e-5, 1.1e-7], [1.3e-7, 7.3e-5]]
    return wcs


def test_round_trip_is_bit_exact_for_planes_and_cards():
    data, variance, mask = _planes()
    cards = {
        "CANDID": 2_000_000_000_000_000_123,  # beyond 2**53
        "SUMFLT": 0.1 + 0.2,  # needs 17 digits
        "TINY": 1.2345678901234567e-300,
        "OBJECT": "it's a test",
        "SATURATE": True,
        "DONE": False,
        "EXPTIME": (30.0, "seconds"),
    }
    blob = encode_fits_stamp(data, variance=variance, mask=mask, bunit="adu", cards=cards)
    stamp = decode_fits_stamp(blob)
    assert isinstance(stamp, FitsStamp)
    assert stamp.data.dtype == np.float32 and stamp.data.tobytes() == data.tobytes()
    assert stamp.variance.tobytes() == variance.tobytes()
    assert stamp.mask.dtype == np.uint8 and np.array_equal(stamp.mask, mask)
    for key, value in cards.items():
        expected = value[0] if isinstance(value, tuple) else value
        assert stamp.header[key] == expected and type(stamp.header[key]) is type(expected), key
    assert stamp.header["BUNIT"] == "adu"
    assert not stamp.data.flags.writeable and not stamp.variance.flags.writeable
    # deterministic bytes (no gzip time stamp), and the same planes at every level
    assert encode_fits_stamp(data, variance=variance, mask=mask, bunit="adu", cards=cards) == blob
    sizes = {}
    for level in (0, 1, 3, 4, 9):
        again = encode_fits_stamp(data, variance=variance, mask=mask, compresslevel=level)
        sizes[level] = len(again)
        assert decode_fits_stamp(again).data.tobytes() == data.tobytes(), level
    raw_size = len(gzip.decompress(blob))
    assert sizes[0] > raw_size - 1000  # stored: no smaller than the FITS (header aside)
    assert sizes[1] < 0.75 * sizes[0]  # level 1 does compress float noise a little


def test_float64_and_integer_masks_are_written_as_fits_types():
    data = np.linspace(-1, 1, 35).reshape(5, 7)
    mask = np.arange(35, dtype=np.int64).reshape(5, 7) * 1000
    stamp = decode_fits_stamp(encode_fits_stamp(data, mask=mask))
    assert stamp.data.shape == (5, 7) and np.array_equal(stamp.data, data.astype(np.float32))
    assert stamp.mask.dtype == np.int32 and np.array_equal(stamp.mask, mask)
    assert stamp.variance is None
    boolean = decode_fits_stamp(encode_fits_stamp(data, mask=mask > 5000)).mask
    assert boolean.dtype == np.uint8 and np.array_equal(boolean, mask > 5000)


def test_astropy_reads_wcs_bunit_variance_and_mask():
    data, variance, mask = _planes()
    wcs = _wcs()
    blob = encode_fits_stamp(data, variance=variance, mask=mask, wcs=wcs, bunit="electron")
    assert blob[:2] == b"\x1f\x8b"
    with fits.open(io.BytesIO(gzip.decompress(blob))) as hdul:
        hdul.verify("exception")
        assert [h.name for h in hdul] == ["PRIMARY", "UNCERT", "MASK"]
        assert hdul[0].header["BUNIT"] == "electron"
        assert np.array_equal(hdul[0].data, data, equal_nan=True)
        assert hdul["UNCERT"].header["UTYPE"] == "VarianceUncertainty"
        assert hdul["UNCERT"].header["BUNIT"] == "electron2"
        assert np.array_equal(hdul["UNCERT"].data, variance)
        assert np.array_equal(hdul["MASK"].data, mask)
        back = WCS(hdul[0].header)
    pixels = np.array([[0.0, 0.0], [31.0, 31.0], [62.0, 5.5]])
    assert np.allclose(back.all_pix2world(pixels, 0), wcs.all_pix2world(pixels, 0), atol=1e-12)
    # cards made once serve many stamps: the same header as from the WCS object
    cards = [(c.keyword, c.value, c.comment) for c in wcs.to_header(relax=True).cards]
    assert encode_fits_stamp(data, wcs=cards) == encode_fits_stamp(data, wcs=wcs)


def test_ccddata_reads_unit_variance_and_mask(tmp_path):
    data, variance, mask = _planes()
    path = tmp_path / "stamp.fits"
    blob = encode_fits_stamp(data, variance=variance, mask=mask, wcs=_wcs(), bunit="adu")
    path.write_bytes(gzip.decompress(blob))
    ccd = CCDData.read(path, hdu_uncertainty="UNCERT", hdu_mask="MASK")
    assert str(ccd.unit) == "adu"
    assert type(ccd.uncertainty).__name__ == "VarianceUncertainty"
    assert np.array_equal(ccd.uncertainty.array, variance)
    assert np.array_equal(ccd.mask, mask > 0)
    assert ccd.wcs is not None and np.allclose(ccd.wcs.wcs.crval, _wcs().wcs.crval)


@needs_ztf
def test_real_ztf_stamps_decode_to_63x63_as_astropy_reads_them():
    import fastavro

    n = 0
    for path in ztf_files:
        with open(path, "rb") as fh:
            (record,) = list(fastavro.reader(fh))
        for key in ("cutoutScience", "cutoutTemplate", "cutoutDifference"):
            blob = record[key]["stampData"]
            stamp = decode_fits_stamp(blob, name=f"{path.name}: {key}")
            assert stamp.data.shape == (63, 63) and stamp.data.dtype == np.float32
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # ZTF's SIMPLE card is non-standard
                expected = fits.getdata(io.BytesIO(gzip.decompress(blob)))
            np.testing.assert_array_equal(stamp.data, expected)
            assert stamp.header["BUNIT"] == "DN" and stamp.variance is None
            n += 1
    assert n == 3 * len(ztf_files) == 18


def test_layouts_the_fast_path_does_not_know_go_through_astropy():
    rng = np.random.default_rng(9)
    counts = rng.integers(0, 3000, (9, 11)).astype(np.int16)
    # scaled integers in an image extension after an empty primary HDU
    image = fits.ImageHDU(counts, name="SCI")
    image.header["BSCALE"], image.header["BZERO"] = 0.5, 100.0
    sigma = fits.ImageHDU(np.full((9, 11), 3.0, np.float32), name="UNCERT")  # unmarked: std
    weight = fits.ImageHDU(np.full((9, 11), 0.25, np.float32), name="WGT")
    buffer = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), image, sigma, weight]).writeto(buffer)
    stamp = decode_fits_stamp(gzip.compress(buffer.getvalue()))
    assert np.allclose(stamp.data, counts * 0.5 + 100.0)
    assert np.array_equal(stamp.variance, np.full((9, 11), 9.0, np.float32))  # std squared
    # an inverse-variance plane, plain (not gzipped) bytes, through the fast path
    buffer = io.BytesIO()
    weights = np.full((9, 11), 0.25, np.float32)
    weights[0, 0] = 0.0
    hdu = fits.ImageHDU(weights, name="WGT")
    hdu.header["UTYPE"] = "InverseVariance"
    fits.HDUList([fits.PrimaryHDU(counts.astype(np.float32)), hdu]).writeto(buffer)
    stamp = decode_fits_stamp(buffer.getvalue())
    assert stamp.variance[0, 0] == np.inf and np.all(stamp.variance.ravel()[1:] == 4.0)


def test_bad_input_is_one_clear_error():
    data = np.zeros((5, 5), np.float32)
    with pytest.raises(DataError, match="cutout 7: not gzip-compressed FITS"):
        decode_fits_stamp(b"\x1f\x8bnot really", name="cutout 7")
    with pytest.raises(DataError, match="s: not a FITS image"):
        decode_fits_stamp(b"SIMPLE  = T" + b" " * 100, name="s")
    with pytest.raises(DataError, match=r"stamp variance shape \(4, 5\) differs from data shape"):
        encode_fits_stamp(data, variance=np.zeros((4, 5)))
    with pytest.raises(DataError, match="stamp data must be a non-empty 2-D array"):
        encode_fits_stamp(np.zeros(5))
    with pytest.raises(DataError, match="stamp header key 'CRVAL1': value nan is not finite"):
        encode_fits_stamp(data, cards={"CRVAL1": float("nan")})
    with pytest.raises(DataError, match="stamp header key 'NAXIS1' is reserved"):
        encode_fits_stamp(data, cards={"NAXIS1": 3})
    with pytest.raises(DataError, match="stamp header key 'BUNIT' is given twice"):
        encode_fits_stamp(data, bunit="adu", cards={"BUNIT": "adu"})
    with pytest.raises(DataError, match="'TOOLONGKEY' is not a FITS keyword"):
        encode_fits_stamp(data, cards={"TOOLONGKEY": 1})
    with pytest.raises(DataError, match="string value longer than 68 characters"):
        encode_fits_stamp(data, cards={"OBJECT": "x" * 69})
    with pytest.raises(DataError, match="unsupported value type list"):
        encode_fits_stamp(data, cards={"OBJECT": [1]})
    with pytest.raises(DataError, match=r"stamp compresslevel must be in \[0, 9\], got 10"):
        encode_fits_stamp(data, compresslevel=10)
    with pytest.raises(DataError, match="stamp mask must be integer or bool"):
        encode_fits_stamp(data, mask=np.zeros((5, 5)))
