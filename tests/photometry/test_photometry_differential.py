"""Specification of differential light curves (``skyscene.photometry.differential``)."""

from __future__ import annotations

import numpy as np
import pytest

from skyscene.errors import DataError, ParameterError
from skyscene.photometry import differential_photometry, select_comparison_stars

N_FRAMES = 80
FLUXES = np.array([2e4, 5e4, 1e5, 3e4, 8e4, 4e4])


def light_curves(seed=0, fluxes=FLUXES):
    """Constant stars seen through a varying transparency (a common multiplicative trend)."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, N_FRAMES)
    transparency = 1.0 - 0.35 * t + 0.1 * np.sin(12 * t)  # 35 % trend plus clouds
    true = fluxes[:, None] * transparency[None, :]
    err = np.sqrt(true + 200.0**2)  # source Poisson + background noise
    flux = true + rng.normal(0, 1, true.shape) * err
    return flux, err, transparency


def test_removes_common_trend():
    flux, err, _ = light_curves()
    raw_rms = np.std(flux / np.median(flux, axis=1, keepdims=True), axis=1)
    assert np.all(raw_rms > 0.08), "the trend dominates the raw light curves"
    result = differential_photometry(flux, err)
    assert result.rel_flux.shape == flux.shape
    assert np.all(np.isfinite(result.rel_flux))
    for k in range(len(FLUXES)):
        assert k not in result.comparisons[k], "a star is never its own comparison"
        rms = np.std(result.rel_flux[k])
        expected = np.median(result.rel_flux_err[k])
        assert rms < 1.5 * expected, (k, rms, expected)  # trend removed down to the noise
        assert abs(np.median(result.rel_flux[k]) - 1) < 1e-12  # normalised to median 1


def test_error_propagation_matches_ratio_formula():
    flux, err, _ = light_curves(1)
    result = differential_photometry(flux, err, comparisons=[1, 2])
    assert result.comparisons[0] == [1, 2] and result.comparisons[1] == [2]
    ensemble = flux[1] + flux[2]
    ensemble_err = np.hypot(err[1], err[2])
    ratio = flux[0] / ensemble
    median = np.median(ratio)
    expected_err = (
        np.sqrt((err[0] / ensemble) ** 2 + (flux[0] * ensemble_err / ensemble**2) ** 2) / median
    )
    np.testing.assert_allclose(result.rel_flux[0], ratio / median, rtol=1e-12)
    np.testing.assert_allclose(result.rel_flux_err[0], expected_err, rtol=1e-12)


def test_variable_target_keeps_its_signal():
    flux, err, _ = light_curves(2)
    t = np.linspace(0, 1, N_FRAMES)
    signal = 1.0 + 0.05 * np.sin(2 * np.pi * 3 * t)  # a 5 % variable
    flux[0] *= signal
    result = differential_photometry(flux, err, comparisons=[1, 2, 3, 4, 5])
    recovered = result.rel_flux[0] / np.median(result.rel_flux[0])
    # residual from the injected signal at the noise level of star 0 (~1.5 %): RMS < 2 %
    assert np.std(recovered - signal / np.median(signal)) < 0.02


def test_flagged_and_faint_stars_are_not_comparisons():
    flux, err, _ = light_curves(3)
    flags = np.zeros(flux.shape, int)
    flags[2, 10] = 2  # flagged once
    faint = np.vstack([flux, 0.002 * flux[0]])  # S/N ~ 0.2
    faint_err = np.vstack([err, err[0]])
    faint_flags = np.vstack([flags, np.zeros((1, N_FRAMES), int)])
    pool = select_comparison_stars(faint, faint_err, faint_flags, min_snr=20.0)
    assert 2 not in pool and 6 not in pool
    assert set(pool) == {0, 1, 3, 4, 5}


def test_missing_frame_gives_nan_not_zero():
    flux, err, _ = light_curves(4)
    flux[3, 7] = np.nan
    result = differential_photometry(flux, err, comparisons=[1, 2, 3])
    assert np.isnan(result.rel_flux[0, 7]) and np.isnan(result.rel_flux_err[0, 7])
    assert np.isnan(result.rel_flux[3, 7])
    assert np.isfinite(result.rel_flux[0, 6])


def test_no_comparison_raises():
    flux, err, _ = light_curves(5, fluxes=np.array([50.0, 80.0, 60.0]))  # S/N < 1
    with pytest.raises(
        DataError,
        match=r"no comparison star passes the selection \(S/N, flags, RMS\); "
        r"pass comparisons=\[\.\.\.\]",
    ):
        differential_photometry(flux, err)


def test_shape_errors():
    with pytest.raises(
        ParameterError,
        match=r"flux and flux_err must be 2-D of equal shape, got \(3, 4\), \(3, 5\)",
    ):
        differential_photometry(np.ones((3, 4)), np.ones((3, 5)))


def test_strong_variable_is_not_a_comparison():
    # no common trend: the documented rule (RMS within 3x the expected noise) applies directly
    rng = np.random.default_rng(6)
    t = np.linspace(0, 1, N_FRAMES)
    flux = np.tile(FLUXES[:, None], (1, N_FRAMES)).astype(float)
    flux[0] *= 1.0 + 0.4 * np.sin(2 * np.pi * 2 * t)  # 28 % RMS against ~1 % noise
    err = np.sqrt(flux + 200.0**2)
    flux += rng.normal(0, 1, flux.shape) * err
    assert 0 not in select_comparison_stars(flux, err)
