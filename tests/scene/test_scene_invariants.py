"""Every scene config, result and configured callable pickles and round-trips unchanged."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from roundtrip_helpers import assert_roundtrips, assert_same, roundtrip
from scene_helpers import DEC0, RA0, noiseless_scene

from skyscene.scene import (
    ExtraFluxes,
    SceneConfig,
    SceneModel,
    Target,
    fit_binary,
    fit_scene,
)
from skyscene.scene.model import LinearSolution

CONFIG = SceneConfig(grid_n=6, grid_spacing=0.6, shot_noise=False)


@pytest.fixture(scope="module")
def scene():
    exposures, _ = noiseless_scene(CONFIG, n_exp=3)
    return exposures, Target(ra=RA0, dec=DEC0, detections=[0])


@pytest.mark.parametrize(
    "config",
    [
        SceneConfig(),
        SceneConfig(grid_n=8, fit_offset=True, offset_mode="per_detection", psf_size=41),
        SceneConfig(sky="subtract", ridge=1e-3, pixel_limit_sigma=None, first_pass_grid_n=4),
    ],
)
def test_configs_round_trip_and_keep_their_hash(config):
    back = roundtrip(config)
    assert back == config and hash(back) == hash(config)
    assert back.to_json() == config.to_json()


def test_targets_round_trip():
    for target in (
        Target(ra=RA0, dec=DEC0, detections=[0]),
        Target(
            ra=(RA0, RA0 + 1e-5),
            dec=(DEC0, DEC0),
            detections=[0, 2],
            ephemeris={1: (RA0 + 2e-4, DEC0)},
            grid_center=(RA0, DEC0 + 1e-5),
        ),
    ):
        assert_roundtrips(target)
        assert roundtrip(target) == target


def test_configured_model_round_trips_and_fits_the_same(scene):
    exposures, target = scene
    model = SceneModel(CONFIG)
    back = roundtrip(model)
    assert back.config == model.config
    np.testing.assert_array_equal(back(exposures, target).flux, model(exposures, target).flux)


def test_results_round_trip(scene):
    exposures, target = scene
    result = fit_scene(exposures, target, config=CONFIG)
    assert_roundtrips(result)
    assert_same(roundtrip(result).to_table().as_array(), result.to_table().as_array())
    assert_roundtrips(ExtraFluxes(names=("secondary_0",), values=np.ones(1), errors=np.ones(1)))
    problem = SceneModel(CONFIG).prepare(exposures, target)
    sol = problem.solve(problem.target_columns([(0, result.target_xy[0])]), covariance=True)
    assert isinstance(sol, LinearSolution)
    assert_roundtrips(sol)
    assert_roundtrips(dataclasses.replace(sol, position_covariance=np.eye(2)))


def test_binary_result_round_trips(scene):
    exposures, target = scene
    binary = fit_binary(
        exposures, target, config=CONFIG, n_angles=2, separations_fwhm=(1.0,), n_polish=1
    )
    assert_roundtrips(binary)
    assert roundtrip(binary).preferred == binary.preferred
