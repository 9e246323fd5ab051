"""Specification of PSF-image validation (``skyscene.psf.validate``)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from skyscene.errors import ParameterError, ParameterRangeError
from skyscene.psf import (
    GaussianPSF,
    MoffatPSF,
    PixelizedPSF,
    PSFImageLimits,
    PSFImageWarning,
    read_psfex,
    validate_psf_image,
)

DES = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "des_psf"


def ringed(depth: float, *, width: float = 1.0, size: int = 31) -> np.ndarray:
    """A Gaussian core (sigma 2 px) with a negative ring at r = 7 px whose most
    negative pixel is ``-depth`` times the peak."""
    yy, xx = np.indices((size, size)) - (size - 1) / 2
    r = np.hypot(xx, yy)
    core = np.exp(-0.5 * (r / 2.0) ** 2)
    ring = np.exp(-0.5 * ((r - 7.0) / width) ** 2)
    # choose the ring amplitude so that min(image) / max(image) == -depth
    lo, hi = 0.0, 1.0
    for _ in range(60):
        a = 0.5 * (lo + hi)
        img = core - a * ring
        lo, hi = (a, hi) if -img.min() / img.max() < depth else (lo, a)
    return core - a * ring


def test_clean_analytic_images_pass_without_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for psf in (GaussianPSF(1.5, 1.1, 0.3), MoffatPSF.from_fwhm(4.5, 3.0)):
            q = validate_psf_image(psf.render((41, 41)))
            assert q.ok and q.negative_fraction == 0.0 and q.min_to_peak == 0.0
            assert q.centroid_offset < 1e-10
            assert q.total == pytest.approx(1.0, abs=0.01)


@pytest.mark.skipif(not DES.is_dir(), reason="../shared/data/des_psf not present")
def test_real_des_psfex_passes_everywhere_on_the_chip():
    """The real DECam PSFEx model, over a 7 x 7 grid of the 2048 x 4096 chip: no warning,
    and the measured values sit far below the soft limits (>= 2x margin)."""
    model = read_psfex(DES / "DECam_00154912_12_psfcat.psf")
    limits = PSFImageLimits()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for x in np.linspace(0, 2047, 7):
            for y in np.linspace(0, 4095, 7):
                psf = model.at(x, y)  # PixelizedPSF: validated at construction
                q = validate_psf_image(model.image_at(x, y), oversampling=psf.oversampling)
                assert q.negative_fraction < limits.negative_fraction_soft / 100
                assert q.min_to_peak < limits.min_to_peak_soft / 50
                assert q.centroid_offset < limits.centroid_soft / 2  # measured <= 0.23 px


def test_negative_ring_of_16_percent_is_rejected():
    """Issue 10 finding 7: a ring down to -16 % of the peak is not a usable PSF."""
    image = ringed(0.16)
    assert -image.min() / image.max() == pytest.approx(0.16, abs=1e-6)
    with pytest.raises(ParameterRangeError, match=r"my\.fits: HDU PSF: negative fraction") as info:
        PixelizedPSF(image, label="my.fits: HDU PSF")
    assert info.value.name == "negative_fraction"
    assert info.value.value > info.value.max == 0.10
    # with a looser negative-fraction limit the depth check still rejects it
    loose = PSFImageLimits(negative_fraction_soft=0.5, negative_fraction_hard=10.0)
    with pytest.raises(ParameterRangeError, match=r"negative depth .* = 0\.16 is beyond") as info:
        validate_psf_image(image, limits=loose)
    assert info.value.value == pytest.approx(0.16, abs=1e-6)


def test_shallow_ring_warns_and_is_recorded():
    image = ringed(0.03, width=0.5)
    with pytest.warns(PSFImageWarning, match=r"negative depth .* = 0\.03 > 0\.02"):
        q = validate_psf_image(image, label="stack")
    assert not q.ok and any("negative depth" in w for w in q.warnings)
    quiet = validate_psf_image(image, warn=False)
    assert quiet.warnings == q.warnings


def test_centroid_offset_in_native_pixels():
    # centroid 1 native pixel off: at 4x oversampling that is 4 samples
    psf = GaussianPSF(1.5)
    image = psf.pixel_values(
        (np.arange(101)[None, :] - 50) / 4 - 1.0, (np.arange(101)[:, None] - 50) / 4
    )
    with pytest.warns(PSFImageWarning, match=r"centroid offset .* = 1 > 0\.5"):
        q = validate_psf_image(image, oversampling=4)
    assert q.centroid == pytest.approx((1.0, 0.0), abs=1e-6)
    with pytest.raises(
        ParameterRangeError, match=r"centroid offset .* = 4 is beyond the hard limit 2"
    ):
        validate_psf_image(image, oversampling=1)


def test_normalisation_checked_against_the_documented_sum():
    image = GaussianPSF(1.5).render((31, 31))
    validate_psf_image(image, expected_sum=1.0)  # unit sum: clean
    with pytest.warns(PSFImageWarning, match=r"deviation of the sum from 1 = 0\.05 > 0\.01"):
        validate_psf_image(1.05 * image, expected_sum=1.0)
    with pytest.raises(ParameterRangeError, match=r"sum from 1 = 2\.5 is beyond"):
        validate_psf_image(3.5 * image, expected_sum=1.0)
    with pytest.raises(ParameterError, match=r"positive sum, got -1"):
        validate_psf_image(-image)


def test_limits_are_validated():
    with pytest.raises(ParameterRangeError, match=r"centroid_hard must be >= 1\.0, got 0\.5"):
        PSFImageLimits(centroid_soft=1.0, centroid_hard=0.5)
    with pytest.raises(ParameterError, match=r"min_to_peak_soft must be > 0"):
        PSFImageLimits(min_to_peak_soft=0.0)


def test_psf_hdu_with_a_ring_is_refused_naming_the_file(tmp_path):
    from astropy.io import fits

    from skyscene.io import Exposure, read_exposure, write_exposure

    rng = np.random.default_rng(3)
    psf = GaussianPSF(2.0).to_pixelized(size=15, oversampling=1)
    exposure = Exposure(data=rng.normal(100, 5, (64, 64)), psf=psf)
    path = write_exposure(tmp_path / "ring.fits", exposure)
    assert read_exposure(path, require_time=False).psf.image.shape == psf.image.shape
    with fits.open(path, mode="update") as hdul:
        hdul["PSF"].data = ringed(0.16, size=15) / ringed(0.16, size=15).sum()
    with pytest.raises(ParameterError, match=r"ring\.fits: HDU PSF: negative fraction"):
        read_exposure(path, require_time=False)
