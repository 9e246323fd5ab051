"""Specification of skyscene.datasets.spectra: the seeded toy grid and spectra."""

import numpy as np
import pytest

from skyscene.datasets.spectra import (
    ToyStellarModel,
    planck_flux,
    simulate_spectral_grid,
    simulate_spectrum,
)
from skyscene.errors import ParameterError


def test_default_grid_meets_the_size_requirement():
    grid = simulate_spectral_grid(n_wavelength=16384, teff=(4000.0, 4250.0), logg=(4.5,))
    assert grid.n_wavelength == 16384
    full = simulate_spectral_grid(n_wavelength=16)
    assert full.n_grid >= 36 and full.is_regular
    assert full.names == ("Teff", "logg", "FeH")


def test_grid_is_seeded_and_equals_the_exact_model(toy_model):
    a = simulate_spectral_grid(
        teff=(4000.0,), logg=(4.5,), feh=(0.0,), n_wavelength=256, model=toy_model
    )
    b = simulate_spectral_grid(
        teff=(4000.0,), logg=(4.5,), feh=(0.0,), n_wavelength=256, model=toy_model
    )
    np.testing.assert_array_equal(a.flux, b.flux)
    np.testing.assert_allclose(
        a.flux[0], toy_model.flux(a.wavelength, (4000.0, 4.5, 0.0)), rtol=1e-12
    )
    other = simulate_spectral_grid(
        teff=(4000.0,), logg=(4.5,), feh=(0.0,), n_wavelength=256, model=ToyStellarModel(seed=1)
    )
    assert not np.allclose(other.flux, a.flux)


def test_features_depend_on_parameters(toy_model):
    wl = np.linspace(5000.0, 6000.0, 4000)
    cool = toy_model.flux(wl, (3200.0, 4.5, 0.0)) / planck_flux(wl, 3200.0)
    hot = toy_model.flux(wl, (5800.0, 4.5, 0.0)) / planck_flux(wl, 5800.0)
    metal_poor = toy_model.flux(wl, (5800.0, 4.5, -0.5)) / planck_flux(wl, 5800.0)
    assert cool.mean() < hot.mean()  # molecular bands and strong neutral lines
    assert metal_poor.mean() > hot.mean()  # weaker lines
    assert np.all(cool <= 1.0) and np.all(hot <= 1.0)


def test_spectrum_noise_and_truth(toy_model):
    options = dict(
        theta1=(5300.0, 4.5, 0.0),
        theta2=(3900.0, 4.5, 0.0),
        c=0.3,
        snr=50.0,
        n_orders=2,
        pixels_per_order=1024,
        model=toy_model,
        rng=4,
    )
    s = simulate_spectrum(**options)
    assert s.wavelength.size == 2048 and set(s.order.tolist()) == {0, 1}
    assert np.all(np.diff(s.wavelength[s.order == 0]) > 0)
    np.testing.assert_allclose(s.sigma[s.order == 0], s.sigma[0])
    assert s.sigma[0] == pytest.approx(s.flux[s.order == 0].mean() / 50.0, rel=0.02)
    assert len(s.truth["q"]) == 2 and 0 < s.truth["q"][0] < 1
    table = s.to_table()
    assert table.colnames == ["wavelength", "flux", "sigma", "order"]
    again = simulate_spectrum(**options)
    np.testing.assert_array_equal(again.flux, s.flux)


def test_simulate_spectrum_validation():
    with pytest.raises(ParameterError, match=r"c=0.2 needs theta2"):
        simulate_spectrum(theta1=(5000.0, 4.5, 0.0), c=0.2)
    with pytest.raises(ParameterError, match=r"c=1.5 must be in \[0, 1\]"):
        simulate_spectrum(theta1=(5000.0, 4.5, 0.0), theta2=(4000.0, 4.5, 0.0), c=1.5)
    with pytest.raises(ParameterError, match=r"snr=0 must be positive"):
        simulate_spectrum(theta1=(5000.0, 4.5, 0.0), snr=0)
    with pytest.raises(ParameterError, match=r"params must be \(Teff, logg, FeH\)"):
        simulate_spectrum(theta1=(5000.0, 4.5))
