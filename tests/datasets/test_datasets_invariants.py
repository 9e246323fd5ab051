"""Simulation results pickle and round-trip unchanged (demos and benchmarks ship them to workers)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parents[1] / "scene"))  # the shared roundtrip helpers
from roundtrip_helpers import assert_roundtrips, roundtrip


def test_tno_simulation_round_trips():
    from skyscene.datasets.tno import simulate_tno_stamps

    sim = simulate_tno_stamps(rng=2, n_exposures=3, snr=30.0, blend="isolated", mover=True)
    assert_roundtrips(sim)
    back = roundtrip(sim)
    assert back.target == sim.target
    np.testing.assert_array_equal(back.exposures[1].psf.image, sim.exposures[1].psf.image)


def test_observation_truth_round_trips(tmp_path):
    from skyscene.datasets import simulate_observations

    truth = simulate_observations(tmp_path, 1, rng=3, bands=("r",), shape=(96, 96), n_sources=3)
    assert_roundtrips(truth)
    assert roundtrip(truth).to_json() == truth.to_json()


def test_calibration_results_round_trip(tmp_path):
    from skyscene.datasets.calibration import (
        add_cosmic_rays,
        raw_science_frame,
        simulate_calibration_frames,
    )

    truth = simulate_calibration_frames(
        tmp_path, rng=4, shape=(32, 32), n_bias=1, n_dark=1, n_flat=1
    )
    assert_roundtrips(truth)
    science = raw_science_frame(truth, rng=5, n_stars=2, n_cosmic_rays=2)
    assert_roundtrips(science)
    hits = add_cosmic_rays(np.zeros((20, 20)), rng=6, n_hits=3)
    assert_roundtrips(hits)
    assert roundtrip(hits).n_hits == 3


def test_simulation_configs_and_pieces_round_trip():
    from skyscene.datasets.observations import (
        ObservationConfig,
        draw_frame_conditions,
        observation_frames,
    )
    from skyscene.datasets.tno import TNOSceneConfig

    for config in (
        TNOSceneConfig(),
        TNOSceneConfig(n_exposures=None, binary=(1.0, 0.5), separation_unit="fwhm", mover=True),
        ObservationConfig(),
        ObservationConfig(bands=("r",), phase_lags={"r": 0.5}, seeing_scatter=0.1),
    ):
        assert_roundtrips(config)
        assert roundtrip(config) == config
    cfg = ObservationConfig(shape=(96, 96), n_sources=2, n_images=1, bands=("g",))
    assert_roundtrips(draw_frame_conditions(np.random.default_rng(1), cfg, 0.01, np.zeros(2)))
    frame = next(observation_frames(cfg, rng=2))
    back = roundtrip(frame)  # a FITS Header is compared by its text
    assert back.name == frame.name and back.header.tostring() == frame.header.tostring()
    np.testing.assert_array_equal(back.data, frame.data)
