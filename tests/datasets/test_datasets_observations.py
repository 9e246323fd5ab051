"""The simulated observations are seeded, self-consistent and readable by skyscene.io."""

from __future__ import annotations

import json

import numpy as np
import pytest
from astropy.io import fits

from skyscene.datasets import simulate_observations
from skyscene.errors import ParameterError
from skyscene.io import read_exposure


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    out = tmp_path_factory.mktemp("obs")
    truth = simulate_observations(out, 12, rng=5, shape=(128, 128), n_sources=4)
    return out, truth


def test_seeded_and_reproducible(sim, tmp_path):
    out, truth = sim
    again = simulate_observations(tmp_path, 12, rng=5, shape=(128, 128), n_sources=4)
    assert again.files == truth.files
    a = fits.getdata(out / truth.files[3])
    b = fits.getdata(tmp_path / again.files[3])
    np.testing.assert_array_equal(a, b)
    other = simulate_observations(tmp_path / "other", 2, rng=6, shape=(128, 128), n_sources=4)
    assert not np.array_equal(fits.getdata(tmp_path / "other" / other.files[0]), a)


def test_headers_give_the_truth_times_and_bands(sim):
    out, truth = sim
    for frame in truth.frames[:6]:
        exposure = read_exposure(out / frame["file"])
        assert exposure.band == frame["band"]
        # mid-exposure time from DATE-OBS + EXPTIME/2 equals the truth to 1 ms
        assert abs(exposure.time.utc.mjd - frame["mjd_mid_utc"]) * 86400 < 1e-3
        assert exposure.gain == truth.gain and exposure.read_noise == truth.read_noise


def test_variable_follows_its_sinusoid_with_two_percent_rms(sim):
    _, truth = sim
    var = truth.variable
    k = var["source"]
    assert var["amplitude"] == pytest.approx(np.sqrt(2) * 0.02, rel=1e-12)
    for frame in truth.frames:
        base = truth.sources[k]["flux"][frame["band"]]
        phase = (
            2 * np.pi * var["frequency_hz"] * frame["seconds"] - var["phase_lags"][frame["band"]]
        )
        assert frame["flux"][k] == pytest.approx(
            base * (1 + var["amplitude"] * np.sin(phase)), rel=1e-12
        )


def test_pixels_hold_the_injected_flux(sim):
    """Sum of (data - sky model) in a big box around a star equals its flux within noise."""
    out, truth = sim
    frame = truth.frames[0]
    data = fits.getdata(out / frame["file"]).astype(float)
    ny, nx = data.shape
    yy, xx = np.mgrid[0:ny, 0:nx]
    gxx, gyy = frame["sky_gradient"]
    sky = frame["sky_level"] + gxx * (xx - nx / 2) + gyy * (yy - ny / 2)
    for k, (x, y) in enumerate(frame["xy"]):
        box = (np.abs(xx - x) <= 10) & (np.abs(yy - y) <= 10)
        measured = np.sum((data - sky)[box])
        noise = np.sqrt(
            np.sum(sky[box] / truth.gain + truth.read_noise**2) + frame["flux"][k] / truth.gain
        )
        assert abs(measured - frame["flux"][k]) < 5 * noise, (
            f"source {k}: {measured:.0f} vs {frame['flux'][k]:.0f}"
        )


def test_truth_json_round_trip(sim):
    out, truth = sim
    raw = json.loads((out / "truth.json").read_text())
    assert raw["files"] == truth.files and len(raw["frames"]) == 3 * 12


def test_bad_parameters():
    with pytest.raises(ParameterError, match="n_images must be >= 1"):
        simulate_observations("unused", 0, rng=1)
    with pytest.raises(ParameterError, match="psf must be 'gaussian' or 'moffat'"):
        simulate_observations("unused", 1, rng=1, psf="airy")


def test_stars_that_cannot_fit_raise_fast_naming_count_and_frame(tmp_path):
    import time

    from skyscene.datasets.observations import ObservationConfig, draw_star_field

    start = time.perf_counter()
    with pytest.raises(
        ParameterError, match=r"n_sources=50 stars do not fit in a 96x96 frame"
    ) as info:
        simulate_observations(tmp_path / "full", 2, rng=3, shape=(96, 96), n_sources=50)
    assert time.perf_counter() - start < 5.0
    assert info.value.name == "n_sources" and info.value.value == 50
    assert not list((tmp_path / "full").glob("*.fits"))  # nothing half-written
    # a feasible request just below the limit still works, and stays 25 px apart
    positions, fluxes = draw_star_field(
        np.random.default_rng(3), ObservationConfig(shape=(96, 96), n_sources=2)
    )
    gaps = np.hypot(*(positions[0] - positions[1]))
    assert gaps > 25 and len(fluxes) == 2
    assert np.all((positions >= 30) & (positions <= 66))
