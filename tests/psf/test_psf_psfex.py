"""Specification of the PSFEx reader against GalSim's ``des.DES_PSFEx`` on a real DES model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from skyscene.errors import HeaderError, InputFileError
from skyscene.psf import PixelizedPSF, read_psfex

DATA = Path(__file__).parents[2].parent / "shared" / "data"
PSF_FILE = DATA / "des_psf" / "DECam_00154912_12_psfcat.psf"

needs_data = pytest.mark.skipif(
    not PSF_FILE.is_file(), reason=f"shared data not available: {PSF_FILE}"
)

# 0-based positions across the 2048 x 4096 CCD
POSITIONS = [(100.0, 200.0), (1023.0, 2047.0), (1900.0, 3900.0), (1800.0, 150.0)]


@pytest.fixture(scope="module")
def model():
    return read_psfex(PSF_FILE)


@pytest.fixture(scope="module")
def galsim_model():
    import galsim.des

    return galsim.des.DES_PSFEx(str(PSF_FILE))


def galsim_stamp(galsim_model, x, y, center=15):
    import galsim

    psf = galsim_model.getPSF(galsim.PositionD(x + 1.0, y + 1.0))  # GalSim positions are 1-based
    image = psf.drawImage(nx=31, ny=31, scale=1.0, method="no_pixel")  # PSFEx includes the pixel
    return image.array


@needs_data
def test_header_values(model):
    with fits.open(PSF_FILE) as hdul:
        header = hdul["PSF_DATA"].header
        assert model.degree == header["POLDEG1"]
        assert model.sampling == pytest.approx(header["PSF_SAMP"], rel=1e-15)
        assert model.poly_zero == (header["POLZERO1"], header["POLZERO2"])
        assert model.basis.shape == (6, header["PSFAXIS1"], header["PSFAXIS2"])


@needs_data
@pytest.mark.parametrize("position", POSITIONS)
def test_agrees_with_galsim(model, galsim_model, position):
    x, y = position
    local = model.at(x, y)
    assert isinstance(local, PixelizedPSF)
    stamp = local.render((31, 31), center=(15, 15))
    expected = galsim_stamp(galsim_model, x, y)
    # different interpolants (cubic spline vs GalSim's), normalisations: measured 2e-3 of peak
    assert np.abs(stamp - expected).max() < 1e-2 * expected.max()
    # a one-pixel offset would be far outside the tolerance: the comparison is sensitive
    shifted = local.render((31, 31), center=(16, 15))
    assert np.abs(shifted - expected).max() > 0.1 * expected.max()


@needs_data
def test_psf_varies_across_the_ccd(model, galsim_model):
    a = model.at(100.0, 200.0).render((31, 31), center=(15, 15))
    b = model.at(1900.0, 3900.0).render((31, 31), center=(15, 15))
    # the corners differ by ~5 % of the peak; require > 1 %
    assert np.abs(a - b).max() > 1e-2 * a.max()
    # and the variation itself matches GalSim's (to 1e-2 of the peak)
    ga = galsim_stamp(galsim_model, 100.0, 200.0)
    gb = galsim_stamp(galsim_model, 1900.0, 3900.0)
    assert np.abs((a - b) - (ga - gb)).max() < 1e-2 * a.max()


@needs_data
def test_coefficients_at_polynomial_origin(model):
    x0, y0 = model.poly_zero[0] - 1.0, model.poly_zero[1] - 1.0  # 1-based POLZERO
    coeffs = model.coefficients(x0, y0)
    np.testing.assert_allclose(coeffs, np.eye(6)[0], atol=1e-15)  # only the constant term
    np.testing.assert_allclose(
        model.render((25, 25)), model.at(x0, y0).render((25, 25)), rtol=0, atol=1e-15
    )


def test_missing_file(tmp_path):
    with pytest.raises(InputFileError, match=r"absent\.psf: no such file"):
        read_psfex(tmp_path / "absent.psf")


def test_fits_without_psf_data(tmp_path):
    path = tmp_path / "image.fits"
    fits.PrimaryHDU(np.zeros((5, 5))).writeto(path)
    with pytest.raises(
        InputFileError, match=r"image\.fits: no PSF_DATA extension \(not a PSFEx file\)"
    ):
        read_psfex(path)


def test_text_file(tmp_path):
    path = tmp_path / "notes.psf"
    path.write_text("not a FITS file at all\n" * 100)
    with pytest.raises(InputFileError, match=r"notes\.psf: "):
        read_psfex(path)


def _synthetic_psfex(path, *, degree=1, names=("X_IMAGE", "Y_IMAGE"), drop=None):
    n_terms = (degree + 1) * (degree + 2) // 2
    basis = np.zeros((n_terms, 7, 7))
    basis[0, 3, 3] = 1.0
    for k in range(1, n_terms):
        basis[k, 3, 3 + (k % 3) - 1] = 0.1 * k
    col = fits.Column(
        name="PSF_MASK", format=f"{basis.size}E", dim=f"(7, 7, {n_terms})", array=basis[None]
    )
    hdu = fits.BinTableHDU.from_columns([col], name="PSF_DATA")
    header = {
        "POLNAXIS": 2,
        "POLNAME1": names[0],
        "POLNAME2": names[1],
        "POLZERO1": 100.0,
        "POLZERO2": 200.0,
        "POLSCAL1": 50.0,
        "POLSCAL2": 80.0,
        "POLDEG1": degree,
        "PSF_SAMP": 0.5,
    }
    for k, v in header.items():
        if k != drop:
            hdu.header[k] = v
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(path)
    return basis


def test_synthetic_degree_one_model(tmp_path):
    basis = _synthetic_psfex(tmp_path / "lin.psf")
    model = read_psfex(tmp_path / "lin.psf")
    # term order: 1, u, v with u = (x + 1 - POLZERO1) / POLSCAL1, v = (y + 1 - POLZERO2) / POLSCAL2
    x, y = 149.0, 279.0  # u = 1, v = 1
    np.testing.assert_allclose(model.coefficients(x, y), [1.0, 1.0, 1.0], atol=1e-15)
    np.testing.assert_allclose(
        model.image_at(x, y), basis.sum(axis=0), atol=1e-7
    )  # float32 storage
    assert model.at(x, y).oversampling == pytest.approx(2.0, rel=1e-15)  # 1 / PSF_SAMP


def test_missing_keyword(tmp_path):
    _synthetic_psfex(tmp_path / "nodeg.psf", drop="POLDEG1")
    with pytest.raises(HeaderError, match=r"nodeg\.psf: missing PSFEx keyword POLDEG1"):
        read_psfex(tmp_path / "nodeg.psf")


def test_unsupported_context(tmp_path):
    _synthetic_psfex(tmp_path / "mag.psf", names=("X_IMAGE", "MAG_AUTO"))
    with pytest.raises(
        HeaderError, match=r"mag\.psf: only PSFEx models in X_IMAGE, Y_IMAGE are supported"
    ):
        read_psfex(tmp_path / "mag.psf")


def test_inconsistent_degree(tmp_path):
    from skyscene.psf import PSFExModel

    with pytest.raises(HeaderError, match=r"x\.psf: PSF_MASK has 3 components, POLDEG1=2 needs 6"):
        PSFExModel(
            np.ones((3, 5, 5)),
            poly_zero=(0, 0),
            poly_scale=(1, 1),
            degree=2,
            sampling=1.0,
            filename="x.psf",
        )
