"""Specification of skyscene.spectra.interpolate: multilinear regular-grid interpolation."""

import numpy as np
import pytest

from skyscene.errors import ParameterError
from skyscene.spectra.interpolate import RegularGridInterpolator, SpectrumInterpolator


def test_exact_for_multilinear_functions():
    axes = [np.array([1.0, 2.0, 4.0]), np.array([0.0, 1.0]), np.array([-1.0, 0.0, 3.0])]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)
    values = 2 * grid[..., 0] - grid[..., 1] + 0.5 * grid[..., 2] + 3
    ip = RegularGridInterpolator(axes, values, names=["a", "b", "c"])
    rng = np.random.default_rng(1)
    for _ in range(20):
        p = [rng.uniform(1, 4), rng.uniform(0, 1), rng.uniform(-1, 3)]
        assert ip(p) == pytest.approx(2 * p[0] - p[1] + 0.5 * p[2] + 3, abs=1e-12)


def test_nodes_are_reproduced_exactly():
    rng = np.random.default_rng(2)
    axes = [np.array([3000.0, 3500.0, 4000.0]), np.array([4.0, 4.5])]
    values = rng.uniform(1, 2, (3, 2, 7))
    ip = RegularGridInterpolator(
        axes, values, names=["Teff", "logg"], transforms=[np.reciprocal, None]
    )
    for i, t in enumerate(axes[0]):
        for j, g in enumerate(axes[1]):
            np.testing.assert_array_equal(ip([t, g]), values[i, j])  # bitwise identical


def test_inverse_temperature_transform_is_linear_in_one_over_t():
    axes = [np.array([3000.0, 6000.0])]
    ip = RegularGridInterpolator(axes, 1.0 / axes[0], names=["Teff"], transforms=[np.reciprocal])
    assert ip([4000.0]) == pytest.approx(1 / 4000.0, rel=1e-12)


def test_single_node_axis_accepts_only_its_value():
    ip = RegularGridInterpolator(
        [np.array([0.0, 1.0]), np.array([0.5])], np.ones((2, 1)), names=["x", "FeH"]
    )
    assert ip([0.3, 0.5]) == pytest.approx(1.0)
    with pytest.raises(ParameterError, match=r"FeH=0.6 is outside the grid range \[0.5, 0.5\]"):
        ip([0.3, 0.6])


@pytest.mark.parametrize("value", [2999.0, 6000.5, np.nan])
def test_outside_the_grid_raises_not_nan(value):
    ip = RegularGridInterpolator([np.array([3000.0, 6000.0])], np.ones(2), names=["Teff"])
    with pytest.raises(ParameterError, match=r"parameter Teff=.* is outside the grid range"):
        ip([value])


def test_wrong_number_of_parameters():
    ip = RegularGridInterpolator([np.array([0.0, 1.0])], np.ones(2), names=["x"])
    with pytest.raises(ParameterError, match=r"expected 1 parameters \('x',\), got 2"):
        ip([0.1, 0.2])


def test_axes_must_increase():
    with pytest.raises(ParameterError, match=r"axis 'x' must be 1-D and strictly increasing"):
        RegularGridInterpolator([np.array([1.0, 0.0])], np.ones(2), names=["x"])


def test_spectrum_interpolator_matches_grid_at_nodes(small_grid):
    interp = SpectrumInterpolator(small_grid)
    i = 7
    np.testing.assert_allclose(interp(small_grid.parameters[i]), small_grid.flux[i], rtol=1e-15)
    with pytest.raises(
        ParameterError, match=r"Teff=6000.0 is outside the grid range \[3500, 5500\]"
    ):
        interp([6000.0, 4.5, 0.0])
