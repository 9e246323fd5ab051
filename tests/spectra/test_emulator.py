"""Specification of skyscene.spectra.emulator.SpectralEmulator: accuracy against the exact
toy spectra between grid nodes, exactness at the nodes, truncation control, errors."""

import numpy as np
import pytest

from skyscene.datasets.spectra import simulate_spectral_grid
from skyscene.errors import ParameterError, SkysceneWarning
from skyscene.spectra import SpectralEmulator


@pytest.fixture(scope="module")
def grid3d(toy_model):
    """11 Teff (3500-6000 K, 250 K) x 5 log g (0.25) x 7 [Fe/H] (0.1 dex), 2048 wavelengths."""
    return simulate_spectral_grid(
        teff=tuple(np.arange(3500.0, 6001.0, 250.0)),
        logg=(4.0, 4.25, 4.5, 4.75, 5.0),
        feh=(-0.3, -0.2, -0.1, 0.0, 0.1, 0.2, 0.3),
        wavelength_range=(5400.0, 5600.0),
        n_wavelength=2048,
        model=toy_model,
    )


def shape_error(flux, exact):
    """Error of the spectrum's shape (each normalised by its mean), as the fit sees it."""
    return flux / flux.mean() - exact / exact.mean()


def test_accuracy_between_nodes_is_far_below_the_noise(grid3d, toy_model):
    """Off-grid parameters against the exact (closed-form) toy spectrum.

    The emulator's error must be negligible at S/N 100 over 16384 pixels, i.e. its RMS
    well below 1e-2 / sqrt(16384) ≈ 8e-5 (measured: RMS 2e-5, max 6e-4 in a few
    saturated line cores near the grid edges); multilinear interpolation of the raw
    flux is ~200 times worse (RMS 4e-3, max 2 %).
    """
    emulator = grid3d.emulator()
    rng = np.random.default_rng(11)
    err_em, err_lin = [], []
    for _ in range(30):
        p = (rng.uniform(3600, 5900), rng.uniform(4.05, 4.95), rng.uniform(-0.25, 0.25))
        exact = toy_model.flux(grid3d.wavelength, p)
        err_em.append(shape_error(emulator(p), exact))
        err_lin.append(shape_error(grid3d.spectrum(p), exact))
    err_em, err_lin = np.array(err_em), np.array(err_lin)
    rms_em = np.sqrt(np.mean(err_em**2))
    rms_lin = np.sqrt(np.mean(err_lin**2))
    assert rms_em < 5e-5  # vs 1e-2 noise per pixel at S/N 100
    assert np.sqrt(np.mean(err_em**2, axis=1)).max() < 1.5e-4  # worst single spectrum
    assert np.abs(err_em).max() < 1.5e-3
    assert rms_lin > 50 * rms_em


def test_nodes_are_reproduced_to_the_truncation_tolerance(grid3d):
    emulator = grid3d.emulator()
    assert emulator.max_residual_ <= emulator.tolerance == 1e-6
    # the bound used to choose the number of eigenspectra: first dropped singular value
    assert emulator.singular_values_[emulator.n_components_] <= 1e-6
    for i in (0, 17, 200, grid3d.n_grid - 1):
        np.testing.assert_allclose(emulator(grid3d.parameters[i]), grid3d.flux[i], rtol=2e-6)
    # at a node the spline weights are the node's own, bitwise
    order = grid3d._cube_order()
    node = int(order[123])
    w_node = (np.log(grid3d.flux[node]) - emulator.mean_) @ emulator.eigenspectra_.T
    np.testing.assert_allclose(emulator.weights(grid3d.parameters[node]), w_node, atol=1e-12)


def test_emulator_is_cached_on_the_grid_and_used_by_spectrum(grid3d):
    assert grid3d.emulator() is grid3d.emulator()
    p = (4321.0, 4.6, 0.05)
    np.testing.assert_array_equal(grid3d.spectrum(p, method="emulator"), grid3d.emulator()(p))
    with pytest.raises(ParameterError, match=r"method='cubic': choose 'linear' or 'emulator'"):
        grid3d.spectrum(p, method="cubic")


def test_max_components_caps_the_basis_and_warns(grid3d):
    with pytest.warns(SkysceneWarning, match=r"2 eigenspectra .* above tolerance=1e-06"):
        small = SpectralEmulator(grid3d, max_components=2)
    assert small.n_components_ == 2 and small.eigenspectra_.shape == (2, grid3d.n_wavelength)
    assert small.max_residual_ > 1e-6
    loose = SpectralEmulator(grid3d, tolerance=1e-2)
    assert loose.n_components_ < grid3d.emulator().n_components_


def test_errors_are_named(grid3d, irregular_grid):
    with pytest.raises(ParameterError, match=r"tolerance=0.0 must be positive"):
        SpectralEmulator(grid3d, tolerance=0.0)
    with pytest.raises(ParameterError, match=r"max_components=0 must be >= 1 or None"):
        SpectralEmulator(grid3d, max_components=0)
    with pytest.raises(
        ParameterError, match=r"Teff=6100.0 is outside the grid range \[3500, 6000\]"
    ):
        grid3d.emulator()((6100.0, 4.5, 0.0))
    with pytest.raises(ParameterError, match=r"the grid is not regular"):
        SpectralEmulator(irregular_grid)


def test_metallicity_axis_is_interpolated_in_the_abundance():
    """ln F linear in 10^[Fe/H] (line opacity ∝ abundance) is reproduced exactly between
    3 [Fe/H] nodes 0.5 dex apart by the default feh_coordinate="abundance" (quadratic
    spline in 10^[Fe/H]); in dex ("dex", the former behaviour) it is not."""
    from skyscene.spectra import SpectralGrid

    wl = np.linspace(5000.0, 5010.0, 64)
    depth = 0.3 * np.exp(-0.5 * ((wl - 5005.0) / 0.5) ** 2)
    feh = (-0.5, 0.0, 0.5)
    params = [(t, 4.5, z) for t in (4000.0, 4500.0) for z in feh]
    flux = np.array([1e3 / t * np.exp(-depth * 10**z) for t, _, z in params])
    grid = SpectralGrid(wl, params, flux, names=("Teff", "logg", "FeH"))
    exact = np.log(1e3 / 4000.0) - depth * 10**-0.27
    abundance = SpectralEmulator(grid).log_flux((4000.0, 4.5, -0.27))
    dex = SpectralEmulator(grid, feh_coordinate="dex").log_flux((4000.0, 4.5, -0.27))
    assert np.abs(abundance - exact).max() < 1e-6
    assert np.abs(dex - exact).max() > 1e-3
    with pytest.raises(ParameterError, match="feh_coordinate"):
        SpectralEmulator(grid, feh_coordinate="log")
