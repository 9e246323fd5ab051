"""Specification of skyscene.spectra.broadening (units: Å, km/s)."""

import numpy as np
import pytest
from scipy.integrate import quad

from skyscene.errors import DataError, ParameterError
from skyscene.spectra.broadening import (
    C_KMS,
    broaden,
    check_wavelength,
    doppler_factor,
    instrumental_transfer,
    is_log_uniform,
    log_lambda_grid,
    resample,
    rotational_transfer,
)


def gray_profile(x, eps):
    """Gray (2005) eq. 18.14 in x = v / vsini, unit integral."""
    return (2 * (1 - eps) * np.sqrt(1 - x**2) + 0.5 * np.pi * eps * (1 - x**2)) / (
        np.pi * (1 - eps / 3)
    )


@pytest.mark.parametrize("eps", [0.0, 0.6, 1.0])
def test_rotational_transfer_is_the_fourier_transform_of_grays_profile(eps):
    vsini = 20.0
    for s in [0.0, 0.003, 0.01, 0.05, 0.2]:  # cycles per km/s
        numeric, _ = quad(
            lambda x, s=s: gray_profile(x, eps) * np.cos(2 * np.pi * s * vsini * x), -1, 1
        )
        assert rotational_transfer(np.array([s]), vsini, limb_darkening=eps)[0] == pytest.approx(
            numeric, abs=1e-9
        )


def test_rotational_transfer_small_argument_series_is_continuous():
    s = np.array([0.999e-2, 1.001e-2]) / (2 * np.pi)  # u just below / above the switch
    h = rotational_transfer(s, 1.0)
    assert h[0] == pytest.approx(h[1], abs=1e-6)


def test_instrumental_transfer_matches_gaussian_width():
    R = 30000.0
    sigma = C_KMS / R / (2 * np.sqrt(2 * np.log(2)))
    s = np.array([0.0, 1 / (2 * np.pi * sigma)])
    np.testing.assert_allclose(instrumental_transfer(s, R), [1.0, np.exp(-0.5)], rtol=1e-12)
    np.testing.assert_array_equal(instrumental_transfer(s, None), 1.0)


def test_broadening_conserves_equivalent_width_and_widens_line():
    wl = log_lambda_grid(5000.0, 5020.0, dv=0.5)
    x = (np.log(wl) - np.log(5010.0)) * C_KMS
    flux = 1 - 0.8 * np.exp(-0.5 * (x / 3.0) ** 2)
    out = broaden(wl, flux, resolution=20000.0, vsini=15.0)
    assert np.sum(1 - out) == pytest.approx(np.sum(1 - flux), rel=1e-9)  # equivalent width
    assert out.min() > flux.min() + 0.3  # shallower line
    # FWHM of the Gaussian instrument adds in quadrature for a Gaussian line (no rotation)
    g = broaden(wl, flux, resolution=20000.0)
    sigma_inst = C_KMS / 20000.0 / (2 * np.sqrt(2 * np.log(2)))
    depth = 0.8 * 3.0 / np.hypot(3.0, sigma_inst)
    assert 1 - g.min() == pytest.approx(depth, rel=2e-3)


def test_broaden_nonuniform_wavelengths_and_2d_flux():
    wl = np.linspace(5000.0, 5020.0, 3000)  # uniform in λ, not in ln λ
    assert not is_log_uniform(wl)
    flux = np.ones((2, wl.size))
    np.testing.assert_allclose(broaden(wl, flux, resolution=50000.0), 1.0, atol=1e-9)


def test_doppler_factor_is_relativistic():
    assert doppler_factor(0.0) == 1.0
    beta = 100.0 / C_KMS
    assert doppler_factor(100.0) == pytest.approx(np.sqrt((1 + beta) / (1 - beta)), rel=1e-15)
    assert doppler_factor(-100.0) * doppler_factor(100.0) == pytest.approx(1.0, rel=1e-15)
    with pytest.raises(ParameterError, match=r"rv=3e5 km/s|is not a velocity below c"):
        doppler_factor(3.0e5)


def test_log_lambda_grid_step():
    wl = log_lambda_grid(5000.0, 6000.0, dv=2.0)
    assert wl[0] == 5000.0 and wl[-1] >= 6000.0
    np.testing.assert_allclose(np.expm1(np.diff(np.log(wl))) * C_KMS, 2.0, rtol=1e-9)
    with pytest.raises(ParameterError, match=r"dv=-1.0 km/s must be positive"):
        log_lambda_grid(5000.0, 6000.0, dv=-1.0)


def test_resample_linear_and_bounds():
    wl = np.array([1.0, 2.0, 3.0])
    np.testing.assert_allclose(resample(wl, [0.0, 2.0, 4.0], [1.5, 2.5]), [1.0, 3.0])
    with pytest.raises(ParameterError, match=r"new_wavelength range \[0.5, 2\] is outside"):
        resample(wl, [0.0, 2.0, 4.0], [0.5, 2.0])
    with pytest.raises(DataError, match=r"mismatched lengths"):
        resample(wl, [0.0, 2.0], [1.5, 2.5])


def test_check_wavelength_names_the_problem():
    with pytest.raises(
        DataError, match=r"not strictly increasing \(non-monotonic\): wavelength\[1\]=3.0"
    ):
        check_wavelength([1.0, 3.0, 2.0])
    with pytest.raises(DataError, match=r"finite and positive"):
        check_wavelength([1.0, np.nan])
    with pytest.raises(DataError, match=r"expected a 1-D array"):
        check_wavelength([[1.0, 2.0]])


def test_parameter_validation():
    with pytest.raises(ParameterError, match=r"vsini=-1.0 km/s must be finite and >= 0"):
        rotational_transfer(np.zeros(2), -1.0)
    with pytest.raises(ParameterError, match=r"limb_darkening=1.5 must be in \[0, 1\]"):
        rotational_transfer(np.zeros(2), 1.0, limb_darkening=1.5)
    with pytest.raises(ParameterError, match=r"resolution R=0.0 must be positive"):
        instrumental_transfer(np.zeros(2), 0.0)
