"""Named results of the scene fit: LinearSolution, ExtraFluxes, config recorded as JSON."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from scene_helpers import DEC0, RA0, noiseless_scene

from skyscene.scene import ExtraFluxes, SceneConfig, SceneModel, Target
from skyscene.scene.model import LinearSolution

CONFIG = SceneConfig(grid_n=6, grid_spacing=0.6, shot_noise=False)


@pytest.fixture(scope="module")
def fitted():
    exposures, truth = noiseless_scene(CONFIG, n_exp=3)
    target = Target(ra=RA0, dec=DEC0, detections=[0])
    model = SceneModel(CONFIG)
    problem = model.prepare(exposures, target)
    return problem, model.fit_problem(problem), truth


def test_solve_returns_a_frozen_named_solution(fitted):
    problem, result, truth = fitted
    sources = [(0, result.target_xy[0])]
    sol = problem.solve(problem.target_columns(sources), covariance=True)
    assert isinstance(sol, LinearSolution)
    assert sol.target[0] == pytest.approx(truth["flux"], rel=1e-8)
    np.testing.assert_allclose(sol.fixed[: problem.n_grid], truth["grid"], rtol=1e-6)
    assert sol.covariance.shape == (len(problem.fixed_names) + 1,) * 2
    assert sol.position_covariance is None and sol.singular is False
    with pytest.raises(dataclasses.FrozenInstanceError):
        sol.chi2 = 0.0  # type: ignore[misc]
    bare = problem.solve(problem.target_columns(sources))
    assert bare.covariance is None
    with pytest.raises(ValueError, match="solved with covariance=False"):
        bare.full_covariance()


def test_single_source_has_empty_falsy_extra_fluxes(fitted):
    _, result, _ = fitted
    assert isinstance(result.extra_fluxes, ExtraFluxes)
    assert not result.extra_fluxes and len(result.extra_fluxes) == 0
    assert result.extra_fluxes.names == ()
    with pytest.raises(KeyError, match="flux"):
        result.extra_fluxes["flux"]


def test_table_records_the_config_as_json_that_rebuilds_it(fitted, tmp_path):
    _, result, _ = fitted
    table = result.to_table()
    recorded = json.loads(table.meta["config"])
    assert recorded == CONFIG.to_dict()
    assert SceneConfig(**recorded) == CONFIG
    # ... and it survives a self-describing table file.
    from astropy.table import Table

    table.write(tmp_path / "r.ecsv")
    back = Table.read(tmp_path / "r.ecsv")
    assert SceneConfig(**json.loads(back.meta["config"])) == CONFIG


def test_numpy_integers_are_stored_as_ints():
    cfg = SceneConfig(grid_n=np.int64(7), psf_size=np.int32(41))
    assert type(cfg.grid_n) is int and type(cfg.psf_size) is int
    assert json.loads(cfg.to_json())["grid_n"] == 7
