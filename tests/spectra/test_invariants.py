"""Invariants of the spectra capability (GalSim-style): what crosses a process boundary
pickles and round-trips; the estimators follow scikit-learn's contract; a fit writes
nothing into the grid it is given."""

import copy
import json
import pickle

import numpy as np
import pytest

from skyscene.datasets.spectra import simulate_spectrum
from skyscene.errors import ParameterError, ParameterRangeError
from skyscene.spectra import (
    MixtureModel,
    ModelComparison,
    SingleComponentModel,
    SpectralFit,
    SpectralFitConfig,
    SpectralGrid,
    TrimmedRange,
    clone,
    compare_models,
)

R = 30000.0
BOUNDS = dict(resolution=R, rv_bounds=(-50.0, 50.0), vsini_bounds=(0.0, 30.0))
MIXTURE_PARAMS = [
    "continuum_degree",
    "emulator_tolerance",
    "feh_coordinate",
    "flux_ratio",
    "grid",
    "interpolation",
    "limb_darkening",
    "maxiter",
    "n_starts",
    "resolution",
    "rv_bounds",
    "shared",
    "teff_boundary",
    "vsini_bounds",
]


@pytest.fixture(scope="module")
def fitted(fit_grid, toy_model):
    """A seeded mixture and single fit of one 1024-pixel spectrum (read-only)."""
    s = simulate_spectrum(
        theta1=(5150.0, 4.5, 0.0),
        theta2=(3820.0, 4.5, 0.0),
        c=0.35,
        vsini=7.0,
        rv=12.3,
        resolution=R,
        wavelength_range=(5320.0, 5680.0),
        pixels_per_order=1024,
        model=toy_model,
        snr=100.0,
        rng=5,
    )
    mixture = MixtureModel(fit_grid, **BOUNDS).fit(s.wavelength, s.flux, s.sigma, rng=0)
    single = SingleComponentModel(fit_grid, **BOUNDS).fit(s.wavelength, s.flux, s.sigma, rng=0)
    return s, mixture, single


# ---------------------------------------------------------------- configuration
def test_config_round_trips_through_json_and_pickle():
    cfg = SpectralFitConfig(resolution=30000, shared=["logg"], rv_bounds=[-50, 50], maxiter=80)
    assert cfg.shared == ("logg",) and cfg.rv_bounds == (-50.0, 50.0)  # normalised
    assert cfg.resolution == 30000.0 and isinstance(cfg.resolution, float)
    text = json.dumps(cfg.to_dict())
    assert SpectralFitConfig.from_dict(json.loads(text)) == cfg
    assert pickle.loads(pickle.dumps(cfg)) == cfg
    assert json.loads(text)["maxiter"] == 80 and json.loads(text)["rv_bounds"] == [-50.0, 50.0]
    with pytest.raises(AttributeError):
        cfg.maxiter = 5  # frozen
    single = cfg.single()
    assert (single.n_components, single.shared, single.n_starts) == (1, (), 1)
    assert single.maxiter == 80 and single.rv_bounds == cfg.rv_bounds


@pytest.mark.parametrize(
    "kwargs, error, match, value",
    [
        ({"maxiter": 0}, ParameterRangeError, r"SpectralFitConfig.maxiter must be >= 1, got 0", 0),
        ({"n_starts": 1.5}, ParameterError, r"n_starts must be an integer, got 1.5", 1.5),
        ({"resolution": -1.0}, ParameterRangeError, r"resolution must be > 0, got -1.0", -1.0),
        ({"limb_darkening": 1.2}, ParameterRangeError, r"in \[0.0, 1.0\], got 1.2", 1.2),
        ({"continuum_degree": -1}, ParameterRangeError, r"continuum_degree must be >= 0", -1),
        ({"n_components": 3}, ParameterError, r"n_components must be one of 1, 2, got 3", 3),
        ({"rv_bounds": (-5.0, 4e5)}, ParameterRangeError, r"\|rv\| < c", (-5.0, 4e5)),
        ({"rv_bounds": (1.0,)}, ParameterError, r"rv_bounds=\(1.0,\) must be a pair", (1.0,)),
        ({"shared": "logg"}, ParameterError, r"shared='logg' must be a sequence", "logg"),
        (
            {"n_components": 1, "shared": ("logg",)},
            ParameterError,
            r"a one-component model shares nothing",
            ("logg",),
        ),
    ],
)
def test_config_errors_name_the_value(kwargs, error, match, value):
    with pytest.raises(error, match=match) as info:
        SpectralFitConfig(**kwargs)
    assert info.value.value == value  # the offending value travels with the error
    assert info.value.name.startswith("SpectralFitConfig.")


def test_config_range_errors_carry_their_bounds():
    with pytest.raises(ParameterRangeError) as info:
        SpectralFitConfig(vsini_bounds=(-1.0, 5.0))
    assert info.value.min == 0.0 and info.value.value == (-1.0, 5.0)
    with pytest.raises(ParameterError, match=r"unknown key\(s\) \['max_iter'\]"):
        SpectralFitConfig.from_dict({"max_iter": 3})


# ---------------------------------------------------------------- estimator contract
def test_get_params_are_the_init_arguments_unmodified(fit_grid):
    shared = ["logg"]  # a list: stored as given, normalised only in config_
    m = MixtureModel(fit_grid, shared=shared, maxiter=7, vsini_bounds=[0, 9])
    params = m.get_params()
    assert sorted(params) == MIXTURE_PARAMS  # maxiter included
    assert params["shared"] is shared and params["maxiter"] == 7 and params["grid"] is fit_grid
    assert params["vsini_bounds"] == [0, 9]
    single = SingleComponentModel(fit_grid).get_params()
    assert sorted(single) == sorted(set(MIXTURE_PARAMS) - {"shared", "flux_ratio"})
    assert single["n_starts"] == 1
    # nothing is validated at construction (scikit-learn), everything in fit()
    bad = MixtureModel(fit_grid, maxiter=0)
    assert bad.maxiter == 0 and not hasattr(bad, "config_")


def test_set_params_and_clone_round_trip(fitted, fit_grid):
    _, m, _ = fitted
    other = clone(m, deep_copy=False)
    assert type(other) is MixtureModel and not hasattr(other, "result_")  # unfitted
    assert all(other.get_params()[k] is v for k, v in m.get_params().items())
    assert other.set_params(maxiter=11, n_starts=2) is other
    assert (other.maxiter, other.n_starts) == (11, 2) and m.maxiter == 500
    rebuilt = MixtureModel(**other.get_params())
    assert rebuilt.get_params() == other.get_params()
    with pytest.raises(ParameterError, match=r"'max_iter' is not a parameter of MixtureModel"):
        other.set_params(max_iter=3)
    deep = clone(m)  # deep copies the parameters, as sklearn.base.clone
    assert deep.grid is not m.grid
    np.testing.assert_array_equal(deep.grid.flux, m.grid.flux)
    assert "maxiter=" not in repr(m) and "maxiter=11" in repr(other)


def test_sklearn_clone_accepts_the_estimators(fitted):
    base = pytest.importorskip("sklearn.base")
    _, m, single = fitted
    for model in (m, single):
        copy_ = base.clone(model)  # checks that __init__ stores its arguments unmodified
        assert type(copy_) is type(model) and not hasattr(copy_, "result_")
        assert sorted(copy_.get_params()) == sorted(model.get_params())


def test_config_and_parameters_agree(fitted, fit_grid):
    _, m, single = fitted
    cfg = m.config_
    assert cfg == SpectralFitConfig(n_components=2, **BOUNDS)
    again = MixtureModel.from_config(fit_grid, cfg)
    assert {k: v for k, v in again.get_params().items() if k != "grid"} == {
        k: getattr(cfg, k) for k in MIXTURE_PARAMS if k != "grid"
    }
    assert single.config_ == cfg.single()
    with pytest.raises(ParameterError, match=r"SingleComponentModel has 1 component\(s\)"):
        SingleComponentModel.from_config(fit_grid, cfg)
    # validation happens in fit, with the values carried by the error
    s, _, _ = fitted
    with pytest.raises(ParameterRangeError, match=r"maxiter must be >= 1, got 0") as info:
        MixtureModel(fit_grid, maxiter=0, **BOUNDS).fit(s.wavelength, s.flux, s.sigma)
    assert info.value.value == 0


# ---------------------------------------------------------------- results and pickling
def test_results_round_trip_through_json_and_pickle(fitted):
    s, m, single = fitted
    r = m.result_
    back = SpectralFit.from_dict(json.loads(json.dumps(r.to_dict())))
    assert back.to_dict() == r.to_dict()
    assert back.names == r.names and back.values.dtype == np.float64
    assert pickle.loads(pickle.dumps(r)).to_dict() == r.to_dict()
    cmp = compare_models(single, m)
    assert ModelComparison.from_dict(json.loads(json.dumps(cmp.to_dict()))) == cmp
    assert pickle.loads(pickle.dumps(cmp)) == cmp
    trimmed = TrimmedRange(wavelength_range=(5310.5, 5690.0), n_pixels=12, orders_dropped=(3,))
    assert pickle.loads(pickle.dumps(trimmed)) == trimmed
    assert json.loads(json.dumps(trimmed.to_dict())) == {
        "wavelength_range": [5310.5, 5690.0],
        "n_pixels": 12,
        "orders_dropped": [3],
    }
    assert m.trimmed_ is None and m.fitted_pixels_.all()  # fitted without trim
    pred = m.predict_components(s.wavelength)
    again = pickle.loads(pickle.dumps(pred))
    np.testing.assert_array_equal(again.total, pred.total)
    np.testing.assert_array_equal(again.order, pred.order)


def test_fitted_model_pickles_and_predicts_the_same(fitted):
    s, m, _ = fitted
    back = pickle.loads(pickle.dumps(m))
    np.testing.assert_array_equal(back.predict(s.wavelength), m.predict(s.wavelength))
    assert back.config_ == m.config_ and back.get_params().keys() == m.get_params().keys()
    np.testing.assert_array_equal(back.result_.values, m.result_.values)


def test_grid_pickles_without_its_cache(fit_grid):
    emulator = fit_grid.emulator()
    back = pickle.loads(pickle.dumps(fit_grid))
    np.testing.assert_array_equal(back.flux, fit_grid.flux)
    assert back.names == fit_grid.names and back.meta == fit_grid.meta
    assert not back.flux.flags.writeable  # still immutable
    rebuilt = back.emulator()  # rebuilt on first use, the same
    assert rebuilt is not emulator and rebuilt is back.emulator()
    np.testing.assert_array_equal(rebuilt.eigenspectra_, emulator.eigenspectra_)
    # what is pickled is the data, not the derived objects
    assert len(pickle.dumps(fit_grid)) < 1.2 * fit_grid.flux.nbytes + 1e5


# ---------------------------------------------------------------- no caches in other objects
def test_fit_writes_nothing_into_the_grid(fit_grid, toy_model):
    wl = np.linspace(5300.0, 5700.0, 4096)  # uniform in λ: the fit needs a ln λ resampling
    flux = np.array([toy_model.flux(wl, p) for p in fit_grid.parameters])
    grid = SpectralGrid(wl, fit_grid.parameters, flux, names=fit_grid.names)
    before = {k: v for k, v in vars(grid).items()}
    s = simulate_spectrum(
        theta1=(5080.0, 4.5, 0.0),
        resolution=R,
        wavelength_range=(5320.0, 5680.0),
        pixels_per_order=512,
        model=toy_model,
        rng=1,
    )
    m = SingleComponentModel(grid, **BOUNDS).fit(s.wavelength, s.flux, s.sigma, rng=0)
    assert vars(grid).keys() == before.keys()  # no attribute added to the grid
    assert all(vars(grid)[k] is v for k, v in before.items())
    # the grid's own cached methods give the objects the fit used
    assert m.grid_ is grid.log_uniform(rtol=1e-4) is not grid
    assert m.emulator_ is m.grid_.emulator(tolerance=m.config_.emulator_tolerance)
    assert fit_grid.log_uniform() is fit_grid  # already uniform in ln λ
    assert grid.interpolator() is grid.interpolator()
    grid.clear_cache()
    assert grid.log_uniform(rtol=1e-4) is not m.grid_  # recomputed after clear_cache()


def test_deepcopy_of_a_fitted_model_is_independent(fitted):
    s, m, _ = fitted
    twin = copy.deepcopy(m)
    twin.set_params(maxiter=3)
    assert m.maxiter == 500 and twin.grid is not m.grid
    np.testing.assert_array_equal(twin.predict(s.wavelength), m.predict(s.wavelength))
