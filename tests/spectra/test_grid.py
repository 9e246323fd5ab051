"""Specification of skyscene.spectra.SpectralGrid: HDF5 layout, processing, errors."""

import h5py
import numpy as np
import pytest

from skyscene.errors import DataError, InputFileError, ParameterError
from skyscene.spectra import SpectralGrid
from skyscene.spectra.broadening import C_KMS, is_log_uniform


def test_write_read_round_trip_has_documented_layout(small_grid, tmp_path):
    path = small_grid.write(tmp_path / "grid.h5")
    with h5py.File(path, "r") as f:
        assert f["wavelength"].shape == (small_grid.n_wavelength,)
        assert f["parameters"].shape == (small_grid.n_grid, 3)
        assert [
            n.decode() if isinstance(n, bytes) else n for n in f["parameters"].attrs["names"]
        ] == [
            "Teff",
            "logg",
            "FeH",
        ]
        assert f["flux"].shape == (small_grid.n_grid, small_grid.n_wavelength)
    back = SpectralGrid.read(path)
    np.testing.assert_array_equal(back.wavelength, small_grid.wavelength)
    np.testing.assert_array_equal(back.parameters, small_grid.parameters)
    np.testing.assert_array_equal(back.flux, small_grid.flux)
    assert back.names == small_grid.names
    assert back.meta["model_seed"] == 0
    assert not list(tmp_path.glob(".*tmp"))  # atomic write leaves no temporary file


@pytest.mark.parametrize("missing", ["wavelength", "parameters", "flux"])
def test_read_names_a_missing_dataset(small_grid, tmp_path, missing):
    path = small_grid.write(tmp_path / "grid.h5")
    with h5py.File(path, "a") as f:
        del f[missing]
    with pytest.raises(InputFileError, match=rf"grid.h5' is missing the dataset '/{missing}'"):
        SpectralGrid.read(path)


def test_read_errors(tmp_path, small_grid):
    with pytest.raises(InputFileError, match=r"nope.h5' does not exist"):
        SpectralGrid.read(tmp_path / "nope.h5")
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(InputFileError, match=r"text.h5' is not a readable HDF5 file"):
        SpectralGrid.read(tmp_path / "text.h5")
    path = small_grid.write(tmp_path / "grid.h5")
    with h5py.File(path, "a") as f:
        del f["parameters"].attrs["names"]
    with pytest.raises(InputFileError, match=r"'/parameters' lacks the attribute 'names'"):
        SpectralGrid.read(path)


def test_cube_orders_spectra_along_axes(small_grid):
    perm = np.random.default_rng(0).permutation(small_grid.n_grid)
    shuffled = SpectralGrid(
        small_grid.wavelength,
        small_grid.parameters[perm],
        small_grid.flux[perm],
        names=small_grid.names,
    )
    np.testing.assert_array_equal(shuffled.cube(), small_grid.cube())
    i = small_grid.index([4500.0, 5.0, 0.1])
    np.testing.assert_array_equal(small_grid.cube()[2, 1, 2], small_grid.flux[i])


def test_irregular_grid_cannot_be_interpolated(small_grid):
    partial = SpectralGrid(
        small_grid.wavelength,
        small_grid.parameters[:-1],
        small_grid.flux[:-1],
        names=small_grid.names,
    )
    assert not partial.is_regular
    with pytest.raises(ParameterError, match=r"not regular: 29 points .* span 30 = 5 x 2 x 3"):
        partial.spectrum([4000.0, 4.5, 0.0])


def test_spectrum_between_nodes_and_outside(small_grid):
    a = small_grid.flux[small_grid.index([4000.0, 4.5, 0.0])]
    b = small_grid.flux[small_grid.index([4500.0, 4.5, 0.0])]
    np.testing.assert_allclose(small_grid.spectrum([4250.0, 4.5, 0.0]), 0.5 * (a + b), rtol=1e-12)
    with pytest.raises(ParameterError, match=r"logg=5.5 is outside the grid range \[4.5, 5\]"):
        small_grid.spectrum([4250.0, 5.5, 0.0])


def test_constructor_validation():
    wl = np.array([1.0, 2.0, 3.0])
    with pytest.raises(
        DataError, match=r"flux has shape \(1, 2\), expected \(n_grid, n_wl\) = \(1, 3\)"
    ):
        SpectralGrid(wl, [[1.0]], np.ones((1, 2)), names=["x"])
    with pytest.raises(DataError, match=r"non-monotonic"):
        SpectralGrid([1.0, 3.0, 2.0], [[1.0]], np.ones((1, 3)), names=["x"])
    with pytest.raises(
        DataError, match=r"flux of grid point \{'x': 2.0\} has non-finite or non-positive"
    ):
        SpectralGrid(wl, [[1.0], [2.0]], np.array([[1.0, 1, 1], [1, 0, 1]]), names=["x"])
    with pytest.raises(DataError, match=r"parameters has 1 columns but 2 names"):
        SpectralGrid(wl, [[1.0]], np.ones((1, 3)), names=["x", "y"])
    with pytest.raises(DataError, match=r"duplicate grid points"):
        SpectralGrid(wl, [[1.0], [1.0]], np.ones((2, 3)), names=["x"])


def test_truncate_resample_broaden_shift(small_grid):
    cut = small_grid.truncate(5450.0, 5550.0)
    assert cut.wavelength[0] >= 5450.0 and cut.wavelength[-1] <= 5550.0
    assert cut.meta["wavelength_range"] == [5450.0, 5550.0]
    with pytest.raises(ParameterError, match=r"keeps fewer than 2 of the grid wavelengths"):
        small_grid.truncate(7000.0, 8000.0)
    res = cut.resample(dv=5.0)
    assert is_log_uniform(res.wavelength)
    assert res.sampling_kms == pytest.approx(5.0, rel=1e-6)
    with pytest.raises(ParameterError, match=r"give exactly one of wavelength= or dv="):
        cut.resample()
    wide = small_grid.broaden(resolution=10000.0, vsini=20.0)
    assert wide.meta["resolution"] == 10000.0 and wide.meta["vsini_kms"] == 20.0
    assert np.std(wide.flux[0] / wide.flux[0].mean()) < np.std(
        small_grid.flux[0] / small_grid.flux[0].mean()
    )
    moved = small_grid.shift(30.0)
    np.testing.assert_allclose(
        moved.wavelength / small_grid.wavelength, 1 + 30.0 / C_KMS, rtol=1e-6
    )
    np.testing.assert_array_equal(moved.flux, small_grid.flux)


def test_repr(small_grid):
    assert "30 spectra" in repr(small_grid) and "Teff=[3500..5500]x5" in repr(small_grid)


def test_file_io_lives_in_skyscene_io(small_grid, tmp_path):
    from skyscene.io.spectral_grid import read_spectral_grid, write_spectral_grid
    from skyscene.spectra import readers

    path = write_spectral_grid(small_grid, tmp_path / "io.h5")
    back = read_spectral_grid(path)
    np.testing.assert_array_equal(back.flux, small_grid.flux)
    assert back.meta == small_grid.meta and back.names == small_grid.names
    old = SpectralGrid.read(small_grid.write(tmp_path / "old.h5"))  # the old names delegate
    np.testing.assert_array_equal(old.parameters, back.parameters)
    assert readers.PhoenixACESReader.__module__ == "skyscene.io.spectral_grid"
    with h5py.File(path, "a") as f:
        f.attrs["meta"] = "{not json"
    with pytest.raises(InputFileError, match=r"io.h5': attribute 'meta' is not JSON"):
        read_spectral_grid(path)
