"""The composable scene pieces of the simulators (skyscene.datasets.scene, TNOSceneConfig)."""

from __future__ import annotations

import numpy as np
import pytest

from skyscene.datasets.scene import (
    add_gaussian_noise,
    ccd_noise,
    draw_bad_pixels,
    draw_stars,
    sky_plane,
)
from skyscene.datasets.tno import (
    BLEND_CLASSES,
    TNOSceneConfig,
    draw_static_scene,
    simulate_tno_scene,
    simulate_tno_stamps,
)
from skyscene.errors import ParameterError, ParameterRangeError


def test_the_wrapper_is_the_config_plus_the_scene_function():
    kwargs = dict(n_exposures=3, snr=25.0, blend="moderate", n_stars=1)
    a = simulate_tno_stamps(rng=21, **kwargs)
    b = simulate_tno_scene(TNOSceneConfig(**kwargs), rng=21)
    assert a.truth == b.truth
    for ea, eb in zip(a.exposures, b.exposures, strict=True):
        np.testing.assert_array_equal(ea.data, eb.data)
        np.testing.assert_array_equal(ea.mask, eb.mask)


def test_resolve_draws_only_what_is_left_open():
    fixed = TNOSceneConfig(n_exposures=6, snr=10.0, blend="heavy")
    rng = np.random.default_rng(0)
    assert fixed.resolve(rng) == fixed
    assert rng.random() == np.random.default_rng(0).random()  # nothing was drawn
    drawn = TNOSceneConfig(n_exposures=None, snr=None, blend="random").resolve(
        np.random.default_rng(1)
    )
    assert 5 <= drawn.n_exposures <= 20 and drawn.blend in BLEND_CLASSES
    assert 5.0 <= drawn.snr <= 200.0


def test_static_scene_respects_its_geometry():
    cfg = TNOSceneConfig(blend="heavy", n_stars=5)
    galaxies, stars = draw_static_scene(np.random.default_rng(3), cfg)
    assert len(stars) == 5
    half = cfg.static_half_width
    assert all(abs(s["xi"]) <= half and abs(s["eta"]) <= half for s in stars)
    assert all(np.hypot(s["xi"], s["eta"]) >= 1.5 for s in stars)
    blend = galaxies[-1]  # the heavy blend is drawn last, within 0.8″
    assert np.hypot(blend["xi"], blend["eta"]) <= 0.8 and 1.0 <= blend["flux_rel"] <= 20.0


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"blend": "crowded"}, ParameterError, "blend must be one of"),
        (
            {"n_exposures": 3, "n_detections": 3},
            ParameterRangeError,
            r"n_detections must be in \[1, n_exposures - 1\] = \[1, 2\], got 3",
        ),
        ({"n_exposures": 1}, ParameterError, "n_exposures must be an int >= 2, got 1"),
        ({"snr": -1.0}, ParameterError, r"snr must be positive, got -1\.0"),
        (
            {"separation_unit": "px"},
            ParameterError,
            "separation_unit must be one of 'arcsec', 'fwhm'",
        ),
        ({"binary": (0.0, 1.0)}, ParameterError, r"binary must be \(separation > 0"),
        ({"psf_oversampling": 0}, ParameterRangeError, "psf_oversampling must be >= 1, got 0"),
    ],
)
def test_config_errors_name_the_value(kwargs, error, message):
    with pytest.raises(error, match=message):
        TNOSceneConfig(**kwargs)


def test_drawn_n_exposures_is_checked_against_n_detections():
    # n_detections=30 cannot fit the 5..20 exposures drawn.
    cfg = TNOSceneConfig(n_exposures=None, n_detections=30)
    with pytest.raises(ParameterRangeError, match="n_detections must be in") as info:
        cfg.resolve(np.random.default_rng(0))
    assert info.value.value == 30 and info.value.min == 1


def test_noise_pieces():
    rng = np.random.default_rng(5)
    counts = np.full((200, 200), 400.0)
    variance = np.full((200, 200), 25.0)
    quiet = add_gaussian_noise(rng, 100.0, counts, variance, gain=4.0, scale=0.0)
    np.testing.assert_array_equal(quiet, 500.0)  # noiseless: exactly sky + counts
    noisy = add_gaussian_noise(np.random.default_rng(6), 100.0, counts, variance, gain=4.0)
    # variance 25 + 400 / 4 = 125 → σ 11.2 (40 000 pixels: ±0.7 % on σ)
    assert np.std(noisy) == pytest.approx(np.sqrt(125.0), rel=0.03)
    read = ccd_noise(np.random.default_rng(7), np.full((200, 200), 1000.0), 2.0, 4.0)
    # Poisson 2000 e⁻ / gain² + read 16 → variance 516 (±1.5 %)
    assert np.var(read) == pytest.approx(516.0, rel=0.05)
    assert np.mean(read) == pytest.approx(1000.0, abs=0.5)


def test_artefact_and_sky_pieces():
    masks = [draw_bad_pixels(np.random.default_rng(s), (100, 100)) for s in range(40)]
    columns = sum(bool(np.any(m.all(axis=0))) for m in masks)
    assert 3 <= columns <= 20  # a bad column in 25 % of 40 frames (binomial ±2.7σ)
    pixels = np.mean([m[:, ~m.all(axis=0)].mean() for m in masks])
    assert pixels == pytest.approx(0.003, rel=0.2)
    plane = sky_plane((10, 20), 100.0, 0.5, -0.25)
    assert plane[5, 10] == 100.0 and plane[5, 12] - plane[5, 10] == pytest.approx(1.0)
    assert plane[9, 10] - plane[5, 10] == pytest.approx(-1.0)
    stars = draw_stars(np.random.default_rng(8), 4, 2.0, min_radius=1.0, flux_range=(1.0, 2.0))
    assert len(stars) == 4 and all(1.0 <= s["flux_rel"] <= 2.0 for s in stars)


def test_observation_frames_are_what_the_wrapper_writes(tmp_path):
    from astropy.io import fits

    from skyscene.datasets.observations import ObservationConfig, observation_frames

    kwargs = dict(bands=("r", "i"), shape=(96, 96), n_sources=3)
    truth = simulate_observations_wrapper(tmp_path, kwargs)
    frames = observation_frames(ObservationConfig(n_images=2, **kwargs), rng=9)
    written = []
    while True:
        try:
            written.append(next(frames))
        except StopIteration as stop:
            generated_truth = stop.value
            break
    assert (
        [f.name for f in written]
        == truth.files
        == ["r_0000.fits", "i_0000.fits", "r_0001.fits", "i_0001.fits"]
    )
    for frame in written:
        on_disk = fits.getdata(tmp_path / frame.name)
        np.testing.assert_array_equal(on_disk, frame.data.astype(np.float32))
        assert fits.getheader(tmp_path / frame.name)["FILTER"] == frame.header["FILTER"]
    assert generated_truth.to_json() == truth.to_json()


def simulate_observations_wrapper(out, kwargs):
    from skyscene.datasets import simulate_observations

    return simulate_observations(out, 2, rng=9, **kwargs)


def test_observation_config_errors():
    from skyscene.datasets.observations import ObservationConfig

    with pytest.raises(ParameterRangeError, match="n_images must be >= 1, got 0") as info:
        ObservationConfig(n_images=0)
    assert info.value.min == 1
    with pytest.raises(ParameterError, match="psf must be 'gaussian' or 'moffat', got 'airy'"):
        ObservationConfig(psf="airy")
    assert ObservationConfig(bands=("g", "r")).band_phase_lags() == {"g": 0.0, "r": 0.35}
