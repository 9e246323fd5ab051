"""Specification of the flux ratio q_m(θ₁, θ₂) = f̄₂/f̄₁ per order (both approaches)."""

import numpy as np
import pytest

from skyscene.datasets.spectra import simulate_spectral_grid
from skyscene.errors import ParameterError
from skyscene.spectra.fluxratio import (
    MeanFluxRatio,
    PairwiseFluxRatio,
    make_flux_ratio,
    order_mean_flux,
)

ORDERS = [(5400.0, 5450.0), (5450.0, 5530.0), (5530.0, 5600.0)]


@pytest.fixture(scope="module")
def tiny_grid(toy_model):
    """3 Teff x 2 logg x 1 [Fe/H]: 36 pairs, triangulated in 4-D in milliseconds."""
    return simulate_spectral_grid(
        teff=(4000.0, 4500.0, 5000.0),
        logg=(4.5, 5.0),
        feh=(0.0,),
        wavelength_range=(5400.0, 5600.0),
        n_wavelength=1024,
        model=toy_model,
    )


@pytest.mark.parametrize("method", ["grid", "pairs"])
def test_grid_nodes_give_the_grid_ratio_to_1e10(tiny_grid, method):
    ratio = make_flux_ratio(tiny_grid, ORDERS, method=method)
    s = order_mean_flux(tiny_grid, ORDERS)
    for i in range(tiny_grid.n_grid):
        for j in range(tiny_grid.n_grid):
            q = ratio(tiny_grid.parameters[i], tiny_grid.parameters[j])
            np.testing.assert_allclose(q, s[j] / s[i], rtol=1e-10)


def test_grid_approach_is_within_one_percent_between_nodes(toy_model):
    """Default node spacing (250 K, 0.25 dex, 0.1 dex): max error < 1 % against the exact toy."""
    grid = simulate_spectral_grid(n_wavelength=2048, model=toy_model)
    orders = [(5000.0, 5500.0), (5500.0, 6000.0)]
    ratio = MeanFluxRatio(grid, orders)
    masks = [(grid.wavelength >= lo) & (grid.wavelength <= hi) for lo, hi in orders]
    rng = np.random.default_rng(5)
    errors = []
    for _ in range(40):
        t1 = (rng.uniform(3000, 6000), rng.uniform(4.0, 5.0), rng.uniform(-0.5, 0.5))
        t2 = (rng.uniform(3000, 6000), rng.uniform(4.0, 5.0), rng.uniform(-0.5, 0.5))
        exact = [
            toy_model.mean_flux(grid.wavelength[k], t2)
            / toy_model.mean_flux(grid.wavelength[k], t1)
            for k in masks
        ]
        errors.append(ratio(t1, t2) / exact - 1)
    assert np.max(np.abs(errors)) < 0.01  # 1 %, the acceptance criterion


def test_log_and_inverse_temperature_beat_plain_linear(toy_model):
    grid = simulate_spectral_grid(
        teff=(3000.0, 3500.0, 4000.0), logg=(4.5,), feh=(0.0,), n_wavelength=512, model=toy_model
    )
    orders = [(5000.0, 6000.0)]
    best = MeanFluxRatio(grid, orders)
    plain = MeanFluxRatio(grid, orders, log=False, inverse_temperature=False)
    t1, t2 = (3750.0, 4.5, 0.0), (3250.0, 4.5, 0.0)
    exact = toy_model.mean_flux(grid.wavelength, t2) / toy_model.mean_flux(grid.wavelength, t1)
    assert abs(best(t1, t2)[0] / exact - 1) < 0.2 * abs(plain(t1, t2)[0] / exact - 1)


def test_default_approach_is_more_accurate_than_pairs(tiny_grid, toy_model):
    """Between nodes the 6-D triangulation of all pairs is far less accurate (benchmark)."""
    grid_ratio = MeanFluxRatio(tiny_grid, ORDERS)
    pairs = PairwiseFluxRatio(tiny_grid, ORDERS)
    masks = [(tiny_grid.wavelength >= lo) & (tiny_grid.wavelength <= hi) for lo, hi in ORDERS]
    rng = np.random.default_rng(3)
    err_grid, err_pairs = [], []
    for _ in range(10):
        t1 = (rng.uniform(4000, 5000), rng.uniform(4.5, 5.0), 0.0)
        t2 = (rng.uniform(4000, 5000), rng.uniform(4.5, 5.0), 0.0)
        exact = np.array(
            [
                toy_model.mean_flux(tiny_grid.wavelength[k], t2)
                / toy_model.mean_flux(tiny_grid.wavelength[k], t1)
                for k in masks
            ]
        )
        err_grid.append(np.abs(grid_ratio(t1, t2) / exact - 1).max())
        err_pairs.append(np.abs(pairs(t1, t2) / exact - 1).max())
    assert max(err_grid) < 0.01  # 1 % even on this coarse (500 K) grid
    assert np.mean(err_grid) < 0.2 * np.mean(err_pairs)


@pytest.mark.parametrize("method", ["grid", "pairs"])
def test_outside_the_grid_raises(tiny_grid, method):
    ratio = make_flux_ratio(tiny_grid, ORDERS, method=method)
    with pytest.raises(
        ParameterError, match=r"Teff=3000.0 is outside the grid range \[4000, 5000\]"
    ):
        ratio((4500.0, 4.5, 0.0), (3000.0, 4.5, 0.0))


def test_unknown_method_and_empty_order(tiny_grid):
    with pytest.raises(
        ParameterError, match=r"flux_ratio='spline' is unknown; choose one of \['grid', 'pairs'\]"
    ):
        make_flux_ratio(tiny_grid, ORDERS, method="spline")
    with pytest.raises(
        ParameterError, match=r"order 0 \[7000, 7100\] Å contains no grid wavelength"
    ):
        order_mean_flux(tiny_grid, [(7000.0, 7100.0)])
