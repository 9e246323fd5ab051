"""Specification of MixtureModel / SingleComponentModel (reduced, fast version of the
benchmark's 20-spectra study: a 11-node grid and 4096-pixel spectra at S/N 100)."""

import copy

import numpy as np
import pytest

from skyscene.datasets.spectra import simulate_spectrum
from skyscene.errors import DataError, ParameterError
from skyscene.spectra import (
    MixtureModel,
    SingleComponentModel,
    SpectralGrid,
    clone,
    compare_models,
)

R = 30000.0
BOUNDS = dict(resolution=R, rv_bounds=(-50.0, 50.0), vsini_bounds=(0.0, 30.0))
RANGE = (5320.0, 5680.0)


def spectrum(toy_model, *, t1=5150.0, t2=None, c=0.0, rng=0, n_orders=1, pixels=4096, snr=100.0):
    return simulate_spectrum(
        theta1=(t1, 4.5, 0.0),
        theta2=None if t2 is None else (t2, 4.5, 0.0),
        c=c,
        vsini=7.0,
        rv=12.3,
        resolution=R,
        wavelength_range=RANGE,
        n_orders=n_orders,
        pixels_per_order=pixels // n_orders,
        model=toy_model,
        snr=snr,
        rng=rng,
    )


@pytest.fixture(scope="module")
def mixture_fits(fit_grid, toy_model):
    """Two seeded mixture fits, shared read-only by the tests of this module.

    A test that refits or samples works on its own copy (``clone`` or ``copy.deepcopy``),
    so the order of the tests does not matter.
    """
    fits = []
    for seed, (t1, t2, c) in enumerate([(5150.0, 3820.0, 0.35), (4940.0, 4110.0, 0.45)]):
        s = spectrum(toy_model, t1=t1, t2=t2, c=c, rng=10 + seed)
        fits.append(
            (s, MixtureModel(fit_grid, **BOUNDS).fit(s.wavelength, s.flux, s.sigma, rng=seed))
        )
    return fits


def test_two_component_spectra_are_recovered(mixture_fits):
    for seed, (s, fitted) in enumerate(mixture_fits):
        m = clone(fitted, deep_copy=False)  # unfitted, same parameters, same grid
        assert m.fit(s.wavelength, s.flux, s.sigma, rng=seed) is m  # fit returns self
        # the same data, parameters and seed give the same fit, bitwise
        np.testing.assert_array_equal(m.result_.values, fitted.result_.values)
        truth = s.truth
        assert abs(m.c_ - truth["c"]) < 0.03  # acceptance tolerance
        assert abs(m.theta2_[0] - truth["theta2"][0]) < 100.0  # K
        assert abs(m.theta1_[0] - truth["theta1"][0]) < 60.0  # K
        assert abs(m.rv_ - 12.3) < 0.2 and abs(m.vsini_ - 7.0) < 1.0  # km/s
        assert m.theta2_[0] < m.theta1_[0]  # no label switching
        # uncertainties are finite and the fit is statistically acceptable
        assert 0 < m.c_err_ < 0.05 and 0 < m.theta2_err_[0] < 200
        assert m.chi2_ / m.n_data_ == pytest.approx(1.0, abs=0.1)
        assert m.q_[0] == pytest.approx(truth["q"][0], rel=0.2)  # q at the fitted T2


@pytest.mark.parametrize("t1, t2, c", [(5150.0, 3820.0, 0.35), (4940.0, 4110.0, 0.45)])
def test_emulator_makes_the_truth_as_good_as_the_best_fit(fit_grid, toy_model, t1, t2, c):
    """Noise-free spectrum, weights of S/N 100, all parameters between grid nodes.

    χ² at the true parameters measures the model error: with the emulator it is well
    below 1 (measured 0.3–0.4) and the fit lands on the truth; multilinear interpolation
    adds χ² ≈ 25 and biases the fit (measured: T₂ 70 K and c 0.016 too low, ≈ 2–3σ).
    """
    s = spectrum(toy_model, t1=t1, t2=t2, c=c, rng=10, snr=1e9)
    sigma = np.full(s.flux.size, s.flux.mean() / 100.0)
    truth = np.array([t1, 4.5, 0.0, t2, c, 7.0, 12.3])
    chi2_truth = {}
    for interpolation in ("emulator", "linear"):
        model = MixtureModel(fit_grid, interpolation=interpolation, **BOUNDS)
        model._setup(s.wavelength, s.flux, sigma, None)
        chi2_truth[interpolation] = model._objective(truth)[1]
    assert chi2_truth["emulator"] < 1.0
    assert chi2_truth["linear"] > 20 * chi2_truth["emulator"]
    m = MixtureModel(fit_grid, **BOUNDS).fit(s.wavelength, s.flux, sigma, rng=0)
    assert m.chi2_ <= chi2_truth["emulator"] + 1e-6  # the optimiser reaches the minimum
    assert abs(m.c_ - c) < 0.1 * m.c_err_  # bias ≪ σ
    assert abs(m.theta2_[0] - t2) < 0.1 * m.theta2_err_[0]
    assert abs(m.theta1_[0] - t1) < 0.1 * m.theta1_err_[0]
    assert abs(m.vsini_ - 7.0) < 0.5 * m.vsini_err_


def test_predict_reproduces_the_data(mixture_fits):
    s, m = mixture_fits[0]
    pred = m.predict_components(s.wavelength)
    np.testing.assert_allclose(pred.total, pred.component1 + pred.component2, rtol=1e-12)
    np.testing.assert_allclose(m.predict(s.wavelength), pred.total)
    chi2 = np.sum(((s.flux - pred.total) / s.sigma) ** 2)
    assert chi2 == pytest.approx(m.chi2_, rel=1e-6)
    assert np.all(pred.component2 < pred.component1)  # the spot is the fainter component


def test_result_object_and_table(mixture_fits):
    _, m = mixture_fits[0]
    r = m.result_
    assert r.names == ("Teff1", "logg", "FeH", "Teff2", "c", "vsini", "rv")
    assert r.to_table()["name"].tolist() == list(r.names)
    d = r.to_dict()
    assert d["parameters"]["c"]["value"] == pytest.approx(m.c_)
    assert r.bic == pytest.approx(r.chi2 + r.n_params * np.log(r.n_data))
    assert m.config_.to_dict()["shared"] == ["logg", "FeH"]


def test_single_component_spectrum_prefers_the_single_model(fit_grid, toy_model):
    s = spectrum(toy_model, t1=5080.0, rng=21)
    one = SingleComponentModel(fit_grid, **BOUNDS).fit(s.wavelength, s.flux, s.sigma)
    two = MixtureModel(fit_grid, **BOUNDS).fit(s.wavelength, s.flux, s.sigma, rng=0)
    assert one.c_ == 0.0 and one.theta2_ is None
    assert abs(one.theta1_[0] - 5080.0) < 30.0
    assert two.c_ < 2 * two.c_err_  # consistent with 0 (ties between optima go to c = 0)
    cmp = compare_models(one, two)
    assert cmp.preferred == "single" and cmp.delta_bic < 0
    assert cmp.delta_chi2 < 3 * 3  # the extra parameters buy at most a few units of χ²


def test_multi_order_fit_has_one_ratio_and_continuum_per_order(fit_grid, toy_model):
    s = spectrum(toy_model, t1=5250.0, t2=3750.0, c=0.4, rng=3, n_orders=2)
    m = MixtureModel(fit_grid, **BOUNDS).fit(s.wavelength, s.flux, s.sigma, orders=s.order, rng=0)
    assert len(m.continuum_) == 2 and m.q_.shape == (2,)
    np.testing.assert_allclose(m.q_, s.truth["q"], rtol=0.05)
    assert abs(m.c_ - 0.4) < 0.03
    pred = m.predict(s.wavelength, orders=s.order)
    assert np.sum(((s.flux - pred) / s.sigma) ** 2) / s.flux.size == pytest.approx(1.0, abs=0.1)


def test_pairs_flux_ratio_gives_the_same_fit(fit_grid, toy_model, mixture_fits):
    s, m_grid = mixture_fits[0]
    m_pairs = MixtureModel(fit_grid, flux_ratio="pairs", **BOUNDS).fit(
        s.wavelength, s.flux, s.sigma, rng=0
    )
    assert m_pairs.c_ == pytest.approx(m_grid.c_, abs=0.01)
    assert m_pairs.theta2_[0] == pytest.approx(m_grid.theta2_[0], abs=30.0)


def test_emcee_sampling(mixture_fits):
    fitted = mixture_fits[1][1]
    m = copy.deepcopy(fitted)  # sample() replaces the fitted attributes: keep the fixture's
    c_map = m.c_
    m.sample(n_walkers=16, n_steps=60, burn=30, rng=1)
    assert m.result_.method == "emcee"
    assert m.samples_.shape == (16 * 30, 7)
    assert np.all(m.samples_[:, 3] < m.samples_[:, 0])  # T2 < T1 in every sample
    assert abs(m.c_ - c_map) < 3 * m.c_err_ + 0.01
    assert 0 < m.acceptance_fraction_ < 1
    with pytest.raises(ParameterError, match=r"burn=60 must be in \[0, n_steps=60\)"):
        m.sample(n_steps=60, burn=60)
    assert fitted.result_.method == "map" and fitted.c_ == c_map  # the fixture is unchanged


def test_masked_pixels_are_ignored(fit_grid, toy_model):
    s = spectrum(toy_model, t1=5080.0, rng=22)
    flux, sigma = s.flux.copy(), s.sigma.copy()
    flux[100:200] = np.nan
    sigma[100:200] = np.inf
    m = SingleComponentModel(fit_grid, **BOUNDS).fit(s.wavelength, flux, sigma)
    assert m.n_data_ == s.flux.size - 100
    assert abs(m.theta1_[0] - 5080.0) < 30.0


def test_bad_input_is_named(fit_grid, toy_model):
    s = spectrum(toy_model, t1=5080.0, rng=23, pixels=512)
    wl, f, e = s.wavelength, s.flux, s.sigma
    model = SingleComponentModel(fit_grid, **BOUNDS)
    bad_wl = wl.copy()
    bad_wl[[10, 11]] = bad_wl[[11, 10]]
    with pytest.raises(
        DataError,
        match=r"wavelength of order 0 is not strictly increasing \(non-monotonic\): .*\[10\]",
    ):
        model.fit(bad_wl, f, e)
    with pytest.raises(
        DataError, match=r"mismatched lengths: wavelength has 512, flux 511, sigma 512"
    ):
        model.fit(wl, f[:-1], e)
    zero = e.copy()
    zero[5] = 0.0
    with pytest.raises(DataError, match=r"sigma must be positive .*sigma\[5\]=0.0"):
        model.fit(wl, f, zero)
    with pytest.raises(DataError, match=r"sigma must be positive .*sigma\[0\]=-1.0"):
        model.fit(wl, f, np.full(e.size, -1.0))
    nan = f.copy()
    nan[7] = np.nan
    with pytest.raises(
        DataError, match=r"flux\[7\]=nan is not finite \(give it sigma=inf to mask it\)"
    ):
        model.fit(wl, nan, e)
    with pytest.raises(DataError, match=r"mismatched lengths: orders has 3 values, wavelength 512"):
        model.fit(wl, f, e, orders=[0, 1, 2])
    with pytest.raises(
        ParameterError,
        match=r"order 0 \(5100-5200 Å\) needs grid wavelengths .* but the grid covers 5300-5700 Å",
    ):
        model.fit(np.linspace(5100.0, 5200.0, 512), f, e)
    with pytest.raises(
        ParameterError, match=r"SingleComponentModel is not fitted; call fit\(\) first"
    ):
        SingleComponentModel(fit_grid).predict(wl)


def test_bad_configuration_is_named(fit_grid, irregular_grid, toy_model):
    s = spectrum(toy_model, t1=5080.0, rng=24, pixels=512)
    args = (s.wavelength, s.flux, s.sigma)
    with pytest.raises(ParameterError, match=r"shared='vmicro' is not a grid parameter"):
        MixtureModel(fit_grid, shared=("vmicro",), **BOUNDS).fit(*args)
    with pytest.raises(ParameterError, match=r"flux_ratio='spline': choose 'grid' or 'pairs'"):
        MixtureModel(fit_grid, flux_ratio="spline", **BOUNDS).fit(*args)
    with pytest.raises(
        ParameterError, match=r"interpolation='cubic': choose 'emulator' or 'linear'"
    ):
        MixtureModel(fit_grid, interpolation="cubic", **BOUNDS).fit(*args)
    with pytest.raises(ParameterError, match=r"emulator_tolerance=-1.0 must be a positive number"):
        SingleComponentModel(fit_grid, emulator_tolerance=-1.0, **BOUNDS).fit(*args)
    with pytest.raises(
        ParameterError, match=r"vsini_bounds=\(5.0, 1.0\) must satisfy 0 <= min < max"
    ):
        MixtureModel(fit_grid, resolution=R, vsini_bounds=(5.0, 1.0)).fit(*args)
    with pytest.raises(ParameterError, match=r"the grid is not regular"):
        MixtureModel(irregular_grid).fit(*args)


def test_prediction_outside_fitted_orders(mixture_fits):
    _, m = mixture_fits[0]
    with pytest.raises(
        ParameterError, match=r"wavelength\[0\]=5000.0 Å is outside the fitted orders"
    ):
        m.predict(np.array([5000.0, 5400.0]))
    with pytest.raises(ParameterError, match=r"orders \[3\] were not fitted"):
        m.predict(np.array([5400.0]), orders=[3])


def test_grid_not_uniform_in_log_wavelength_is_resampled_once(fit_grid, toy_model):
    wl = np.linspace(5300.0, 5700.0, 8192)  # uniform in λ, not in ln λ
    flux = np.array([toy_model.flux(wl, p) for p in fit_grid.parameters])
    grid = SpectralGrid(wl, fit_grid.parameters, flux, names=fit_grid.names)
    s = spectrum(toy_model, t1=5080.0, rng=25, pixels=2048)
    first = SingleComponentModel(grid, **BOUNDS).fit(s.wavelength, s.flux, s.sigma)
    second = MixtureModel(grid, **BOUNDS).fit(s.wavelength, s.flux, s.sigma, rng=0)
    assert abs(first.theta1_[0] - 5080.0) < 3 * first.theta1_err_[0]
    assert second.emulator_ is first.emulator_  # resampled and emulated once per grid


def test_pulls_over_seeded_realisations(fit_grid, toy_model):
    """Six seeded noise realisations (S/N 100) of one off-node spotted star: the MAP
    errors describe the scatter, pulls ~ N(0, 1) (measured: means 0.1–0.4, std 0.8–1.1;
    for six draws |mean| < 1 and 0.4 < std < 1.8)."""
    clean = spectrum(toy_model, t1=5130.0, t2=3870.0, c=0.3, rng=100, snr=1e9)
    sigma = np.full(clean.flux.size, clean.flux.mean() / 100.0)
    pulls = []
    for seed in range(6):
        flux = clean.flux + np.random.default_rng(seed).normal(0.0, sigma)
        m = MixtureModel(fit_grid, **BOUNDS).fit(clean.wavelength, flux, sigma, rng=0)
        pulls.append(
            [
                (m.c_ - 0.3) / m.c_err_,
                (m.theta2_[0] - 3870.0) / m.theta2_err_[0],
                (m.theta1_[0] - 5130.0) / m.theta1_err_[0],
            ]
        )
    pulls = np.array(pulls)
    assert np.all(np.abs(pulls.mean(axis=0)) < 1.0)
    assert np.all((pulls.std(axis=0) > 0.4) & (pulls.std(axis=0) < 1.8))


def test_trim_fits_the_range_the_grid_supports(fit_grid, toy_model):
    """A spectrum reaching beyond what the grid supports for the RV and v sin i bounds:
    an error naming the supported range by default; with trim=True the fit of that range."""
    s = spectrum(toy_model, t1=5080.0, rng=26, pixels=1024)
    wl = np.concatenate([np.linspace(5290.0, 5319.0, 64), s.wavelength])  # grid starts 5300
    flux = np.concatenate([np.full(64, s.flux[0]), s.flux])
    sigma = np.concatenate([np.full(64, s.sigma[0]), s.sigma])
    with pytest.raises(ParameterError, match=r"fit\(\.\.\., trim=True\) fits 53\d\d\.\d\d-"):
        SingleComponentModel(fit_grid, **BOUNDS).fit(wl, flux, sigma)
    m = SingleComponentModel(fit_grid, **BOUNDS).fit(wl, flux, sigma, trim=True)
    lo, hi = m.trimmed_.wavelength_range
    assert 5300.0 < lo < 5320.0 and hi > s.wavelength[-1]  # only the blue end is cut
    left_out = int(np.count_nonzero(wl < lo))
    assert m.trimmed_.n_pixels == left_out > 0 and m.trimmed_.orders_dropped == ()
    assert m.n_data_ == wl.size - left_out and m.fitted_pixels_.sum() == m.n_data_
    assert abs(m.theta1_[0] - 5080.0) < 30.0
    full = SingleComponentModel(fit_grid, **BOUNDS).fit(s.wavelength, s.flux, s.sigma, trim=True)
    assert full.trimmed_.n_pixels == 0 and full.fitted_pixels_.all()  # nothing to trim
    with pytest.raises(ParameterError, match=r"trim=True: no pixel of 5100-5200 Å lies in"):
        SingleComponentModel(fit_grid, **BOUNDS).fit(
            np.linspace(5100.0, 5200.0, 64), flux[:64], sigma[:64], trim=True
        )
