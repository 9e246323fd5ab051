"""CCDData interoperability: astropy reads skyscene exposures; Exposure <-> CCDData round trips."""

from __future__ import annotations

import numpy as np
import pytest
from astropy import units as u
from astropy.io import fits
from astropy.nddata import CCDData, InverseVariance, StdDevUncertainty, VarianceUncertainty
from astropy.time import Time
from astropy.wcs import WCS

from skyscene.errors import HeaderError
from skyscene.io import Exposure, read_exposure, write_exposure

SHAPE = (24, 30)


def _wcs():
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [150.1, 2.2]
    wcs.wcs.crpix = [15.5, 12.5]
    wcs.wcs.cd = np.array([[-7.5e-5, 1e-6], [1.1e-6, 7.5e-5]])
    return wcs


@pytest.fixture
def exposure():
    rng = np.random.default_rng(17)
    mask = np.zeros(SHAPE, bool)
    mask[2, 3] = mask[10, 20] = True
    header = fits.Header({"OBJECT": "SN 2024abc", "OBSERVER": "skyscene"})
    return Exposure(
        data=rng.normal(500.0, 20.0, SHAPE),
        variance=rng.uniform(300.0, 500.0, SHAPE),
        mask=mask,
        wcs=_wcs(),
        zeropoint=27.5,
        band="r",
        time=Time("2024-05-06T07:08:09", scale="utc"),
        exptime=60.0,
        gain=1.5,
        read_noise=4.0,
        unit="electron",
        meta={"header": header},
    )


def _sky_separation(wcs_a, wcs_b) -> float:
    x, y = np.array([0.0, 14.2, 29.0]), np.array([0.0, 11.7, 23.0])
    sep = wcs_a.pixel_to_world(x, y).separation(wcs_b.pixel_to_world(x, y))
    return float(np.max(sep.to_value(u.arcsec)))


def test_ccddata_reads_skyscene_exposure(tmp_path, exposure):
    path = write_exposure(tmp_path / "exp.fits", exposure)
    header = fits.getheader(path, "SCI")
    assert header["BUNIT"] == "electron" and header["TIMESYS"] == "UTC"
    assert fits.getheader(path, "WGT")["UTYPE"] == "InverseVariance"
    ccd = CCDData.read(path, hdu_uncertainty="WGT", hdu_mask="MSK")
    assert ccd.unit == u.electron
    assert isinstance(ccd.uncertainty, InverseVariance)
    good = ~exposure.mask
    # float32 storage: rtol 1e-6
    np.testing.assert_allclose(ccd.uncertainty.array[good], 1 / exposure.variance[good], rtol=1e-6)
    assert np.all(ccd.uncertainty.array[exposure.mask] == 0)
    np.testing.assert_array_equal(ccd.mask, exposure.mask)
    np.testing.assert_allclose(ccd.data, exposure.data, rtol=1e-6)
    assert _sky_separation(ccd.wcs, exposure.wcs) < 1e-6
    # the standard deviation astropy derives is the exposure's sigma (inf where masked)
    with np.errstate(divide="ignore"):
        std = ccd.uncertainty.represent_as(StdDevUncertainty).array
    assert np.all(np.isinf(std[exposure.mask]))
    np.testing.assert_allclose(std[good], exposure.sigma[good], rtol=1e-6)


@pytest.mark.parametrize("via_file", [False, True])
def test_exposure_ccddata_round_trip(tmp_path, exposure, via_file):
    ccd = exposure.to_ccddata()
    assert ccd.unit == u.electron and isinstance(ccd.uncertainty, InverseVariance)
    if via_file:  # CCDData's own FITS layout (UNCERT, MASK HDUs) read by skyscene
        ccd.write(tmp_path / "ccd.fits")
        assert fits.getheader(tmp_path / "ccd.fits", "UNCERT")["UTYPE"] == "InverseVariance"
        back = read_exposure(tmp_path / "ccd.fits")
    else:
        back = Exposure.from_ccddata(ccd)
    rtol = 1e-12  # float64 both ways
    good = ~exposure.mask
    np.testing.assert_allclose(back.data, exposure.data, rtol=rtol)
    np.testing.assert_allclose(back.variance[good], exposure.variance[good], rtol=rtol)
    np.testing.assert_array_equal(back.mask, exposure.mask)
    assert np.all(np.isinf(back.variance[exposure.mask]))
    assert back.unit == "electron"
    assert _sky_separation(back.wcs, exposure.wcs) < 1e-6
    assert (back.band, back.exptime, back.gain, back.read_noise) == ("r", 60.0, 1.5, 4.0)
    assert back.zeropoint == 27.5
    assert abs((back.time - exposure.time).to_value(u.s)) < 1e-3
    assert back.meta["header"]["OBJECT"] == "SN 2024abc"
    assert back.meta["header"]["OBSERVER"] == "skyscene"


@pytest.mark.parametrize(
    ("uncertainty", "factor"),
    [
        (lambda v: StdDevUncertainty(np.sqrt(v)), 1.0),
        (lambda v: VarianceUncertainty(v), 1.0),
        (lambda v: InverseVariance(1 / v), 1.0),
        (lambda v: StdDevUncertainty(np.sqrt(v) * 1000, unit=u.mJy), 1e6),  # unit converted
    ],
)
def test_from_ccddata_any_uncertainty_type(uncertainty, factor):
    rng = np.random.default_rng(3)
    variance = rng.uniform(1.0, 2.0, (5, 6))
    data = rng.normal(0, 1, (5, 6))
    ccd = CCDData(data, unit=u.Jy, uncertainty=uncertainty(variance))
    exp = Exposure.from_ccddata(ccd)
    np.testing.assert_allclose(exp.variance, variance * factor / 1e6 if factor != 1 else variance)
    assert exp.unit == "Jy" and exp.band is None and exp.time is None


def test_old_file_without_bunit_reads_as_adu(tmp_path, exposure):
    path = write_exposure(tmp_path / "old.fits", exposure)
    with fits.open(path, mode="update") as hdul:  # as written before BUNIT/UTYPE existed
        del hdul["SCI"].header["BUNIT"]
        del hdul["SCI"].header["TIMESYS"]
        del hdul["WGT"].header["UTYPE"]
    back = read_exposure(path)
    assert back.unit == "adu"
    good = ~exposure.mask
    np.testing.assert_allclose(back.variance[good], exposure.variance[good], rtol=1e-6)
    assert abs((back.time - exposure.time).to_value(u.s)) < 1e-3


def test_variance_hdu_and_timesys(tmp_path):
    data = np.full((8, 8), 10.0)
    variance = np.full((8, 8), 4.0)
    header = fits.Header({"FILTER": "g", "MJD-OBS": 60000.0, "EXPTIME": 0.0, "TIMESYS": "TAI"})
    var = fits.ImageHDU(variance, name="VAR")
    var.header["UTYPE"] = "VarianceUncertainty"
    fits.HDUList([fits.PrimaryHDU(data, header=header), var]).writeto(tmp_path / "v.fits")
    exp = read_exposure(tmp_path / "v.fits")
    np.testing.assert_array_equal(exp.variance, 4.0)
    assert exp.time.scale == "tai" and exp.time.mjd == 60000.0
    with fits.open(tmp_path / "v.fits", mode="update") as hdul:
        hdul[0].header["TIMESYS"] = "MARS"
    with pytest.raises(HeaderError, match=r"v\.fits: keyword TIMESYS='MARS' is not a known"):
        read_exposure(tmp_path / "v.fits")


def test_unknown_utype_is_refused(tmp_path):
    wgt = fits.ImageHDU(np.ones((4, 4)), name="WGT")
    wgt.header["UTYPE"] = "Bananas"
    fits.HDUList([fits.PrimaryHDU(np.ones((4, 4))), wgt]).writeto(tmp_path / "u.fits")
    with pytest.raises(HeaderError, match=r"u\.fits: HDU WGT has UTYPE = 'Bananas'"):
        read_exposure(tmp_path / "u.fits", require_time=False)
