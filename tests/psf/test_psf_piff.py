"""Piff models through the PSF protocol (skipped without the ``piff`` extra)."""

from __future__ import annotations

import numpy as np
import pytest

from skyscene.errors import InputFileError, ParameterError
from skyscene.psf import PiffPSF, PixelizedPSF, read_psf_model

piff = pytest.importorskip("piff")
galsim = pytest.importorskip("galsim")

JAC = (0.263, 0.002, -0.001, 0.263 * 0.996)  # the WCS of simulate_piff_model


def _true_profile():
    return galsim.Moffat(beta=3.0, fwhm=1.0).shear(g1=0.03, g2=-0.02)


@pytest.fixture(scope="module")
def piff_file(tmp_path_factory):
    """A Piff model (Moffat, linear interpolation) fitted to noiseless stars."""
    from skyscene.datasets import simulate_piff_model

    return simulate_piff_model(tmp_path_factory.mktemp("piff") / "model.piff", rng=1)


def test_piff_psf_equals_piffs_own_drawing(piff_file):
    model = read_psf_model(piff_file)
    assert isinstance(model, PiffPSF) and model.chipnum == 0
    x, y = 1000.3, 800.7  # 0-based skyscene pixels
    local = model.at(x, y)
    assert isinstance(local, PixelizedPSF) and local.oversampling == 3
    stamp = local.render((25, 25), (12.3, 12.7))
    # Piff's drawing at the same place: 1-based, a 25-pixel stamp whose pixel (0, 0)
    # is skyscene's (x - 12.3, y - 12.7) rounded.
    ref = piff.read(str(piff_file)).draw(x + 1.0, y + 1.0, chipnum=0, stamp_size=25)
    x0 = ref.bounds.xmin - 1  # 0-based full-image column of the stamp's first pixel
    y0 = ref.bounds.ymin - 1
    ours = local.render((25, 25), (x - x0, y - y0))
    # Same profile, same centre: equal to ~1e-3 of the peak (GalSim's default FFT
    # accuracy for a pixel-convolved Moffat; measured 3e-4) and to the unit-sum
    # normalisation inside 41 px (0.03 %).
    assert np.max(np.abs(ours - ref.array)) < 1e-3 * ref.array.max()
    yy, xx = np.mgrid[0:25, 0:25]
    for grid in (xx, yy):
        centroid = (ours * grid).sum() / ours.sum()
        assert centroid == pytest.approx((ref.array * grid).sum() / ref.array.sum(), abs=1e-4)
    assert stamp.sum() == pytest.approx(1.0, abs=0.01)


def test_piff_psf_is_the_true_psf(piff_file):
    model = PiffPSF.read(piff_file)
    truth = galsim.ImageD(31, 31, wcs=galsim.JacobianWCS(*JAC))
    _true_profile().drawImage(truth, center=truth.true_center)
    ours = model.at(500.0, 1500.0).render((31, 31), (15.0, 15.0))
    # Normalised inside 41 px (like a PSF HDU): equal to the truth to ~1e-4 of the peak
    # plus the Moffat light outside the image (~0.1 %).
    np.testing.assert_allclose(
        ours, truth.array / truth.array.sum() * ours.sum(), atol=2e-3 * ours.max()
    )


def test_piff_errors(piff_file, tmp_path):
    with pytest.raises(InputFileError, match="no such Piff file"):
        PiffPSF.read(tmp_path / "missing.piff")
    bad = tmp_path / "bad.piff"
    bad.write_text("not fits")
    with pytest.raises(InputFileError, match=r"bad\.piff"):
        PiffPSF.read(bad)
    with pytest.raises(InputFileError, match="unknown PSF model"):
        read_psf_model(tmp_path / "x.yaml")
    with pytest.raises(ParameterError, match="chipnum"):
        PiffPSF.read(piff_file, chipnum=7)
    with pytest.raises(ParameterError, match="varies over the chip"):
        PiffPSF.read(piff_file).render((11, 11))
