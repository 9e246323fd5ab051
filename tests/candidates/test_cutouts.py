"""Cutout triplets: centring, off-image NaN and flags, reference on the science grid, FITS."""

import gzip
import io

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from skyscene.candidates import (
    CandidateConfig,
    CandidateFlags,
    CutoutBits,
    cutout_fits_bytes,
    find_candidates,
    make_cutouts,
)
from skyscene.errors import DataError, ParameterError


@pytest.fixture(scope="module")
def found(clean_pair, clean_result):
    return find_candidates(clean_result, clean_pair.science, clean_pair.reference, pair_id="c")


def test_cutouts_are_centred_on_the_candidate_pixel(clean_pair, clean_result, found):
    cut = found.cutouts
    assert cut.science.shape == (len(found), 63, 63) and cut.science.dtype == np.float32
    i = 0
    cx, cy = round(found["xpos"][i]), round(found["ypos"][i])
    assert tuple(cut.origin[i]) == (cx - 31, cy - 31)
    assert cut.science[i, 31, 31] == np.float32(clean_pair.science.data[cy, cx])
    scale = clean_result.flux_ratio / clean_result.flux_zeropoint
    assert cut.difference[i, 31, 31] == pytest.approx(
        clean_result.difference[cy, cx] * scale, rel=1e-5
    )
    # the difference is in science counts: an aperture of 3 FWHM holds psfflux (4 sigma)
    r = 3 * found.meta["fwhm_difference_psf"]
    yy, xx = np.mgrid[0:63, 0:63]
    inside = (
        np.hypot(
            xx - (found["xpos"][i] - cut.origin[i][0]), yy - (found["ypos"][i] - cut.origin[i][1])
        )
        <= r
    )
    total = np.nansum(cut.difference[i][inside])
    sigma = np.sqrt(inside.sum() * cut.difference_variance[i, 31, 31])
    assert abs(total - found["psfflux"][i]) < 4 * sigma


def test_reference_is_put_on_the_science_grid(clean_pair, clean_result):
    """Reference cutout at the science position: a bright star in the science cutout sits at the
    same pixel in the reference cutout (sub-pixel offset of the pair resampled)."""
    stars = clean_pair.stars
    inner = (stars["x"] > 60) & (stars["x"] < 320) & (stars["y"] > 60) & (stars["y"] < 320)
    faint_enough = stars["flux"] < 2e5  # not saturated
    bright = stars[np.argmax(np.where(inner & faint_enough, stars["flux"], 0))]
    dx, dy = clean_pair.offset
    xs, ys = bright["x"] + dx, bright["y"] + dy
    cut = make_cutouts(clean_result, clean_pair.science, clean_pair.reference, [xs], [ys], size=21)
    sci = np.nan_to_num(cut.science[0])
    ref = np.nan_to_num(cut.reference[0])
    assert np.unravel_index(np.argmax(ref), ref.shape) in [
        (10, 10),
        (10, 11),
        (11, 10),
        (11, 11),
        (9, 10),
        (10, 9),
        (9, 9),
    ]

    # centroids agree to 0.15 px (the science PSF is wider: compare centroids, not shapes)
    def centroid(img):
        yy, xx = np.mgrid[0:21, 0:21]
        w = np.clip(img - np.median(img), 0, None)
        return (w * xx).sum() / w.sum(), (w * yy).sum() / w.sum()

    assert np.allclose(centroid(sci), centroid(ref), atol=0.15)


def test_off_image_pixels_are_nan_and_flagged(clean_pair, clean_result):
    cut = make_cutouts(
        clean_result, clean_pair.science, clean_pair.reference, [3.2, 200.0], [150.0, 200.0]
    )
    assert list(cut.off_image) == [True, False]
    off = (cut.science_mask[0] & CutoutBits.OFF_IMAGE) > 0
    # x = 3: columns 0..27 of the cutout are at science x = -28..-1
    assert off[:, :28].all() and not off[:, 28:].any()
    for kind in ("science", "reference", "difference"):
        data = getattr(cut, kind)[0]
        var = getattr(cut, f"{kind}_variance")[0]
        mask = getattr(cut, f"{kind}_mask")[0]
        assert np.isnan(data[:, :28]).all(), kind
        assert np.isinf(var[:, :28]).all(), kind
        assert ((mask[:, :28] & CutoutBits.OFF_IMAGE) > 0).all(), kind
    assert np.isfinite(cut.science[1]).all() and not cut.science_mask[1].any()


def test_candidates_with_off_image_cutouts_are_flagged(clean_pair, clean_result):
    """Candidates whose cutout leaves the image carry CUTOUT_OFF_IMAGE, exactly those."""
    table = find_candidates(
        clean_result,
        clean_pair.science,
        clean_pair.reference,
        config=CandidateConfig(threshold=4.0),
    )
    flagged = (table["flags"] & CandidateFlags.CUTOUT_OFF_IMAGE) > 0
    assert np.array_equal(flagged, table.cutouts.off_image)
    assert flagged.any() and not flagged.all()


def test_masked_pixels_are_nan_in_cutouts(clean_pair, clean_result):
    mask = clean_pair.science.mask.copy()
    mask[200:203, 200:203] = True
    science = clean_pair.science.replace(mask=mask)
    cut = make_cutouts(clean_result, science, clean_pair.reference, [201.0], [201.0], size=11)
    assert np.isnan(cut.science[0, 4:7, 4:7]).all()
    assert ((cut.science_mask[0, 4:7, 4:7] & CutoutBits.MASKED) > 0).all()
    assert np.isfinite(cut.science[0, 0]).all()


def test_fits_bytes_decode_with_wcs_units_and_variance(clean_pair, found, tmp_path):
    cut = found.cutouts
    i = 1
    for kind in ("science", "reference", "difference"):
        blob = cutout_fits_bytes(cut, i, kind)
        assert blob[:2] == b"\x1f\x8b"  # gzip
        with fits.open(io.BytesIO(gzip.decompress(blob))) as hdul:
            hdul.verify("exception")
            data = hdul[0].data
            assert data.shape == (63, 63)
            assert np.array_equal(data, getattr(cut, kind)[i], equal_nan=True)
            assert hdul[0].header["BUNIT"] == "adu"
            assert hdul[0].header["CANDID"] == found["candid"][i]
            assert np.array_equal(hdul["UNCERT"].data, getattr(cut, f"{kind}_variance")[i])
            assert hdul["UNCERT"].header["UTYPE"] == "VarianceUncertainty"
            assert np.array_equal(hdul["MASK"].data, getattr(cut, f"{kind}_mask")[i])
            wcs = WCS(hdul[0].header)
        # the cutout centre pixel maps to the science WCS position of that pixel
        x0, y0 = cut.origin[i]
        expected = clean_pair.science.wcs.pixel_to_world_values(x0 + 31, y0 + 31)
        assert np.allclose(wcs.pixel_to_world_values(31, 31), expected, atol=1e-10)
    # astropy's CCDData reads the layout: unit and variance uncertainty
    from astropy.nddata import CCDData

    path = tmp_path / "cut.fits"
    path.write_bytes(gzip.decompress(cutout_fits_bytes(cut, i, "science")))
    ccd = CCDData.read(path, hdu_uncertainty="UNCERT", hdu_mask="MASK")
    assert str(ccd.unit) == "adu"
    assert type(ccd.uncertainty).__name__ == "VarianceUncertainty"
    assert np.allclose(ccd.uncertainty.array, cut.science_variance[i])
    # deterministic bytes (no gzip time stamp)
    assert cutout_fits_bytes(cut, i, "science") == cutout_fits_bytes(cut, i, "science")


def test_cutout_bad_input(clean_pair, clean_result, found):
    with pytest.raises(ParameterError, match="cutout kind must be one of"):
        cutout_fits_bytes(found.cutouts, 0, "template")
    with pytest.raises(ParameterError, match="cutout index 999 out of range"):
        cutout_fits_bytes(found.cutouts, 999, "science")
    with pytest.raises(ParameterError, match="make_cutouts size must be odd"):
        make_cutouts(clean_result, clean_pair.science, clean_pair.reference, [1.0], [1.0], size=10)
    ref = clean_pair.reference[0:300, 0:300].replace(wcs=None)
    with pytest.raises(DataError, match="no WCS to put the reference on the science grid"):
        make_cutouts(clean_result, clean_pair.science, ref, [100.0], [100.0])
