"""Specification of skyscene.spectra.interpolate: multilinear regular-grid interpolation."""

import numpy as np
import pytest

from skyscene.errors import ParameterError
from skyscene.spectra.interpolate import (
    CubicSplineInterpolator,
    RegularGridInterpolator,
    SpectrumInterpolator,
)


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


# --------------------------------------------------------------------------- cubic splines
def _cubic_grid():
    axes = [
        np.array([3000.0, 3500.0, 4000.0, 4600.0, 5000.0]),  # uneven spacing
        np.array([4.0, 4.5, 5.0, 5.5]),
        np.array([-0.5, 0.0, 0.5, 1.0, 1.5]),
    ]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)
    return axes, grid


def test_cubic_spline_is_exact_for_tensor_product_cubics():
    axes, grid = _cubic_grid()

    def f(t, g, z):
        u = 1e3 / t  # cubic in the transformed coordinate 1/T
        return u**3 - 2 * u * g**3 + g**2 * z**3 + 0.5 * z + 1

    values = np.stack([f(*p) for p in grid.reshape(-1, 3)]).reshape(grid.shape[:-1])
    ip = CubicSplineInterpolator(
        axes, values, names=["Teff", "logg", "FeH"], transforms=[np.reciprocal, None, None]
    )
    rng = np.random.default_rng(3)
    for _ in range(20):
        p = [rng.uniform(3000, 5000), rng.uniform(4.0, 5.5), rng.uniform(-0.5, 1.5)]
        assert ip(p) == pytest.approx(f(*p), abs=1e-9)  # not-a-knot splines: cubics exact


def test_cubic_spline_reproduces_nodes_bitwise_and_weights_sum_to_one():
    axes, _ = _cubic_grid()
    rng = np.random.default_rng(4)
    values = rng.uniform(1, 2, (5, 4, 5, 3))
    ip = CubicSplineInterpolator(
        axes, values, names=["Teff", "logg", "FeH"], transforms=[np.reciprocal, None, None]
    )
    for i, j, k in [(0, 0, 0), (2, 1, 3), (4, 3, 4), (1, 2, 0)]:
        np.testing.assert_array_equal(ip([axes[0][i], axes[1][j], axes[2][k]]), values[i, j, k])
    w = ip.weights([3210.0, 4.7, 0.2])
    assert w.shape == (100,) and w.sum() == pytest.approx(1.0, abs=1e-12)


def test_cubic_spline_beats_linear_on_a_smooth_function():
    """O(h⁴) against O(h²): exp(−T/1000) on 250 K steps, max error 0.8 % → 1.3e-4 (x60)."""
    axis = np.arange(3000.0, 6001.0, 250.0)
    values = np.exp(-axis / 1000.0)[:, None]
    lin = RegularGridInterpolator([axis], values, names=["Teff"])
    cub = CubicSplineInterpolator([axis], values, names=["Teff"])
    x = np.linspace(3010.0, 5990.0, 200)
    exact = np.exp(-x / 1000.0)
    err_lin = max(abs(lin([t])[0] / e - 1) for t, e in zip(x, exact, strict=True))
    err_cub = max(abs(cub([t])[0] / e - 1) for t, e in zip(x, exact, strict=True))
    assert err_cub < 2e-4 and err_cub < err_lin / 40


@pytest.mark.parametrize(
    "nodes, fn",
    [
        (np.array([0.5]), lambda x: 2.0 + 0 * x),  # one node: constant
        (np.array([0.0, 1.0]), lambda x: 3 * x - 1),  # two nodes: linear
        (np.array([0.0, 1.0, 3.0]), lambda x: x**2 - x),  # three nodes: quadratic
    ],
)
def test_cubic_spline_on_short_axes_degrades_gracefully(nodes, fn):
    ip = CubicSplineInterpolator([nodes], fn(nodes), names=["x"])
    for x in np.linspace(nodes[0], nodes[-1], 7):
        assert ip([x]) == pytest.approx(fn(x), abs=1e-12)


def test_cubic_spline_outside_the_grid_raises():
    ip = CubicSplineInterpolator([np.arange(4.0)], np.ones(4), names=["logg"])
    with pytest.raises(ParameterError, match=r"parameter logg=3.5 is outside the grid range"):
        ip([3.5])
