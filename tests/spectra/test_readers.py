"""Specification of the PHOENIX-ACES reader, on files written in that format by the test.

Format (Husser et al. 2013): ``WAVE_PHOENIX-ACES-AGSS-COND-2011.fits`` holds the vacuum
wavelengths (Å, float64) in its primary HDU; each ``lte{Teff:05d}-{logg:.2f}{[Fe/H]:+.1f}
.PHOENIX-ACES-AGSS-COND-2011-HiRes.fits`` (solar written ``-0.0``) holds the flux
(erg/s/cm²/cm, float32) in its primary HDU with PHXTEFF, PHXLOGG, PHXM_H, PHXALPHA.
"""

import numpy as np
import pytest
from astropy.io import fits
from phoenix_files import FEHS, LOGGS, TEFFS, write_phoenix_library
from phoenix_files import phoenix_flux as _flux

from skyscene.errors import HeaderError, InputFileError, ParameterError
from skyscene.spectra import PhoenixACESReader, SpectralGrid, get_reader
from skyscene.spectra.broadening import is_log_uniform


def test_filename_follows_the_library_convention():
    assert (
        PhoenixACESReader.filename(5700, 4.5, 0.0)
        == "lte05700-4.50-0.0.PHOENIX-ACES-AGSS-COND-2011-HiRes.fits"
    )
    assert PhoenixACESReader.filename(3000, 5.0, 0.5).startswith("lte03000-5.00+0.5.")
    reader = PhoenixACESReader()
    assert reader.parse("lte05700-4.50+0.0.PHOENIX-ACES-AGSS-COND-2011-HiRes.fits") == (
        (5700.0, 4.5, 0.0),
        0.0,
    )
    assert reader.parse("lte05700-4.50-1.0.Alpha=-0.20.PHOENIX-ACES-AGSS-COND-2011-HiRes.fits") == (
        (5700.0, 4.5, -1.0),
        -0.2,
    )
    assert reader.parse("something.fits") is None


def test_find_and_read(tmp_path):
    wave = write_phoenix_library(tmp_path)
    reader = PhoenixACESReader()
    found = reader.find(tmp_path)
    assert [p for p, _ in found] == sorted(
        (float(t), float(g), float(z)) for t in TEFFS for g in LOGGS for z in FEHS
    )
    wl, flux = reader.read(found[0][1])
    np.testing.assert_array_equal(wl, wave)
    np.testing.assert_allclose(flux, _flux(wave, 4000, 4.5, -0.5), rtol=1e-7)
    alpha = PhoenixACESReader(alpha=0.2).find(tmp_path)
    assert [p for p, _ in alpha] == [(4000.0, 4.5, 0.0)]


def test_grid_from_phoenix_folder(tmp_path):
    write_phoenix_library(tmp_path)
    grid = SpectralGrid.from_directory(
        tmp_path, reader="phoenix", wavelength_range=(5010.0, 5030.0), resolution=50000.0, dv=2.0
    )
    assert grid.names == ("Teff", "logg", "FeH")
    assert grid.n_grid == 8 and grid.is_regular
    assert grid.wavelength[0] >= 5010.0 and grid.wavelength[-1] <= 5030.0
    assert is_log_uniform(grid.wavelength)
    assert grid.meta["reader"] == "PhoenixACESReader" and grid.meta["resolution"] == 50000.0
    # broadening conserves the continuum level away from the line (5050 Å is outside)
    i = grid.index([4000.0, 4.5, 0.0])
    wave = grid.wavelength
    np.testing.assert_allclose(grid.flux[i], _flux(wave, 4000, 4.5, 0.0), rtol=1e-5)


def test_reader_errors(tmp_path):
    with pytest.raises(InputFileError, match=r"raw spectra folder .*missing' does not exist"):
        PhoenixACESReader().find(tmp_path / "missing")
    with pytest.raises(
        InputFileError, match=r"no spectra matching the PhoenixACESReader file pattern"
    ):
        SpectralGrid.from_directory(tmp_path)
    with pytest.raises(
        ParameterError, match=r"reader='kurucz' is unknown; choose one of \['phoenix'\]"
    ):
        get_reader("kurucz")


def test_missing_wave_file(tmp_path):
    write_phoenix_library(tmp_path)
    (tmp_path / "WAVE_PHOENIX-ACES-AGSS-COND-2011.fits").unlink()
    reader = PhoenixACESReader()
    found = reader.find(tmp_path)
    with pytest.raises(
        InputFileError, match=r"wavelength file 'WAVE_PHOENIX-ACES-AGSS-COND-2011.fits' not found"
    ):
        reader.read(found[0][1])


def test_header_must_agree_with_file_name(tmp_path):
    write_phoenix_library(tmp_path, header_teff_offset=100.0)
    reader = PhoenixACESReader()
    found = reader.find(tmp_path)
    with pytest.raises(
        HeaderError, match=r"header PHXTEFF=4100.0 disagrees with the file name \(4000.0\)"
    ):
        reader.read(found[0][1])


def test_flux_length_must_match_wavelengths(tmp_path):
    write_phoenix_library(tmp_path)
    bad = tmp_path / "Z-0.0" / PhoenixACESReader.filename(4000, 4.5, 0.0)
    fits.PrimaryHDU(np.ones(10, dtype=np.float32)).writeto(bad, overwrite=True)
    reader = PhoenixACESReader()
    reader.find(tmp_path)
    with pytest.raises(
        InputFileError, match=r"flux has shape \(10,\) but the wavelength file has 4000"
    ):
        reader.read(bad)
