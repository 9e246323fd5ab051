"""Shared seeded fixtures of the spectra tests: small toy grids (fast to build and fit)."""

import pytest

from skyscene.datasets.spectra import ToyStellarModel, simulate_spectral_grid


@pytest.fixture(scope="session")
def toy_model():
    return ToyStellarModel(seed=0)


@pytest.fixture(scope="session")
def irregular_grid(small_grid):
    """``small_grid`` without its last node: no longer a regular Teff × logg × [Fe/H] grid."""
    from skyscene.spectra import SpectralGrid

    return SpectralGrid(
        small_grid.wavelength,
        small_grid.parameters[:-1],
        small_grid.flux[:-1],
        names=small_grid.names,
    )


@pytest.fixture(scope="session")
def small_grid(toy_model):
    """5 Teff x 2 logg x 3 [Fe/H] = 30 nodes, 2048 wavelengths over 5400-5600 Å."""
    return simulate_spectral_grid(
        teff=(3500.0, 4000.0, 4500.0, 5000.0, 5500.0),
        logg=(4.5, 5.0),
        feh=(-0.1, 0.0, 0.1),
        wavelength_range=(5400.0, 5600.0),
        n_wavelength=2048,
        model=toy_model,
    )


@pytest.fixture(scope="session")
def fit_grid(toy_model):
    """Grid for fitting tests: 11 Teff (3000-5500 K, 250 K) x 1 logg x 1 [Fe/H], 8192 px.

    8192 wavelengths over 5300-5700 Å sample at 2.7 km/s, fine enough for the R = 30000
    line profiles (at 5.3 km/s the sampling alone adds χ² ≈ 25 to a noise-free spectrum).
    """
    return simulate_spectral_grid(
        teff=tuple(float(t) for t in range(3000, 5501, 250)),
        logg=(4.5,),
        feh=(0.0,),
        wavelength_range=(5300.0, 5700.0),
        n_wavelength=8192,
        model=toy_model,
    )
