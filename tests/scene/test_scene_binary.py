"""Specifications of the binary fit (skyscene.scene.binary)."""

from __future__ import annotations

import numpy as np
import pytest

from skyscene.datasets.tno import simulate_tno_stamps
from skyscene.errors import ParameterError
from skyscene.scene import fit_binary


@pytest.fixture(scope="module")
def binary_sim():
    # S/N 30 per component, separation 1.0″ ≈ 0.8–1.2 FWHM, equal fluxes, isolated.
    return simulate_tno_stamps(
        rng=5, n_exposures=7, snr=30.0, blend="isolated", binary=(1.0, 1.0), n_stars=0
    )


def test_binary_is_detected_and_measured(binary_sim):
    sim = binary_sim
    b = fit_binary(sim.exposures, sim.target, grid_n=16, grid_spacing=0.4)
    assert b.delta_chi2 > 25 and b.preferred
    # Separation within 0.2 px of the truth.
    (p1, p2) = sim.truth["binary"]["pixels"][0]
    true_sep = float(np.hypot(p1[0] - p2[0], p1[1] - p2[1]))
    assert abs(b.separation_pixels - true_sep) < 0.2
    # Its error from the position covariance is honest (within 3σ) and ~0.1–0.3 px here.
    assert 0.03 < b.separation_err_pixels < 0.4
    assert abs(b.separation_pixels - true_sep) < 3 * b.separation_err_pixels
    assert b.separation_arcsec == pytest.approx(true_sep * 0.263, abs=0.06)
    # Fluxes within 3σ (errors marginalised over the fitted positions).
    f1, f2 = sim.truth["flux"]
    assert abs(b.flux1[0] - f1) < 3 * b.flux1_err[0]
    assert abs(b.flux2[0] - f2) < 3 * b.flux2_err[0]
    # The secondary is a named ExtraFluxes (the former {"values", "errors"} keys still work).
    from skyscene.scene import ExtraFluxes

    extra = b.binary.extra_fluxes
    assert isinstance(extra, ExtraFluxes)
    assert extra.names == tuple(f"secondary_{d}" for d in sim.target.detections)
    np.testing.assert_array_equal(extra.values, b.flux2)
    np.testing.assert_array_equal(extra["errors"], b.flux2_err)
    assert len(extra) == len(sim.target.detections)
    table = b.to_table()
    assert {
        "flux1",
        "flux2",
        "mag1",
        "mag2",
        "separation_pix",
        "separation_err_pix",
        "delta_chi2",
        "binary_preferred",
    } <= set(table.colnames)


def test_single_source_does_not_prefer_binary():
    sim = simulate_tno_stamps(rng=8, n_exposures=6, snr=50.0, blend="isolated", n_stars=0)
    b = fit_binary(sim.exposures, sim.target, grid_n=16, grid_spacing=0.4)
    assert not b.preferred
    assert b.delta_chi2 >= -1e-6  # the binary nests the single source


def test_bad_starts(binary_sim):
    with pytest.raises(ParameterError, match="separations_fwhm must be positive"):
        fit_binary(binary_sim.exposures, binary_sim.target, grid_n=6, separations_fwhm=(0.0,))
    with pytest.raises(ParameterError, match="each binary start must be"):
        fit_binary(binary_sim.exposures, binary_sim.target, grid_n=6, starts=[(0.0, 0.0)])
