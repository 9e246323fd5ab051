"""The scene fit guards itself: non-physical pixels masked and counted, absurd fits flagged."""

from __future__ import annotations

import numpy as np
import pytest

from skyscene.errors import FlaggedDataWarning, ParameterError
from skyscene.scene import SceneConfig, fit_scene

FAST = SceneConfig()


@pytest.fixture(scope="module")
def detection():
    from skyscene.datasets.tno import simulate_tno_stamps

    return simulate_tno_stamps(rng=11, n_exposures=4, snr=40.0, blend="moderate")


@pytest.fixture(scope="module")
def target_xy(detection):
    """Pixel of the target in its detection exposure."""
    return fit_scene(detection.exposures, detection.target, config=FAST).target_xy[0]


def _pixel(xy) -> tuple[int, int]:
    """``(row, column)`` of the pixel holding ``(x, y)``."""
    return int(np.rint(xy[1])), int(np.rint(xy[0]))


def _with_pixel(exposure, xy, value, **meta):
    data = exposure.data.copy()
    data[*_pixel(xy)] = value
    return exposure.replace(data=data, meta={**exposure.meta, **meta})


def _masked(exposure, xy):
    mask = exposure.mask.copy()
    mask[*_pixel(xy)] = True
    return exposure.replace(mask=mask)


def test_a_1e30_pixel_on_the_target_is_masked_counted_and_the_flux_survives(detection, target_xy):
    exps = list(detection.exposures)
    d = detection.target.detections[0]
    xy = target_xy
    bad = [*exps]
    bad[d] = _with_pixel(exps[d], xy, 1e30)
    with pytest.warns(FlaggedDataWarning, match=r"exp00\.fits: 1 non-physical pixel"):
        r = fit_scene(bad, detection.target, config=FAST)
    assert "nonphysical:exp00.fits:1" in r.flags
    assert "chi2_absurd" not in r.flags
    assert r.mask[d, *_pixel(xy)]
    # Exactly the fit with that pixel masked by the user (same pixels, same weights).
    ref = [*exps]
    ref[d] = _masked(exps[d], xy)
    expected = fit_scene(ref, detection.target, config=FAST)
    np.testing.assert_allclose(r.flux, expected.flux, rtol=1e-12)
    truth = detection.truth["flux"]
    assert abs(r.flux[0] - truth) < 5 * r.flux_err[0]  # 5σ of the truth (was −336001)


def test_without_the_guard_the_absurd_fit_is_flagged(detection, target_xy):
    exps = list(detection.exposures)
    d = detection.target.detections[0]
    bad = [*exps]
    bad[d] = _with_pixel(exps[d], target_xy, 1e30)
    r = fit_scene(bad, detection.target, config=FAST, pixel_limit_sigma=None)
    assert r.reduced_chi2 > FAST.max_reduced_chi2
    assert "chi2_absurd" in r.flags
    assert not any(f.startswith("nonphysical") for f in r.flags)


def test_a_variance_map_10000_times_too_small_flags_the_fit(detection):
    # Without the shot-noise pass, whose source variance would dilute the error.
    good = fit_scene(detection.exposures, detection.target, config=FAST, shot_noise=False)
    assert good.reduced_chi2 < 3 and "chi2_absurd" not in good.flags
    scaled = [e.replace(variance=e.variance * 1e-4) for e in detection.exposures]
    r = fit_scene(scaled, detection.target, config=FAST, shot_noise=False)
    assert r.reduced_chi2 > 1000  # ~1e4 × the honest χ²/dof
    assert "chi2_absurd" in r.flags
    assert "chi2_absurd" in str(r.to_table()["flags"][0])


def test_pixels_above_saturate_are_masked(detection):
    exps = list(detection.exposures)
    e = 1
    xy = (5.0, 7.0)
    level = float(np.max(exps[e].data)) + 1000.0
    bad = [*exps]
    bad[e] = _with_pixel(exps[e], xy, level + 1.0, saturate=level)
    with pytest.warns(FlaggedDataWarning, match=r"exp01\.fits: 1 non-physical"):
        r = fit_scene(bad, detection.target, config=FAST)
    assert "nonphysical:exp01.fits:1" in r.flags
    assert r.mask[e, 7, 5]
    assert r.npix_exposure[e] == np.count_nonzero(~exps[e].mask) - 1
    # At the level (not beyond it) nothing is masked.
    at = [*exps]
    at[e] = _with_pixel(exps[e], xy, level, saturate=level)
    r_at = fit_scene(at, detection.target, config=FAST)
    assert not any(f.startswith("nonphysical") for f in r_at.flags)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("pixel_limit_sigma", 0.0, r"SceneConfig\.pixel_limit_sigma must be > 0, got 0\.0"),
        ("max_reduced_chi2", float("nan"), r"SceneConfig\.max_reduced_chi2 must be finite"),
    ],
)
def test_guard_settings_are_validated(field, value, message):
    with pytest.raises(ParameterError, match=message):
        SceneConfig(**{field: value})


def test_the_shot_noise_first_pass_is_not_judged_by_its_chi2(caplog):
    """The first pass weighs by sky + read noise only: on a bright source its chi2/dof is
    large by construction (seed 10001: 263) and used to be logged as "fit flagged"
    although the final fit is fine. Only the final fit is judged now."""
    import logging

    from skyscene.datasets.tno import simulate_tno_stamps

    sim = simulate_tno_stamps(rng=10001, n_exposures=11)
    with caplog.at_level(logging.WARNING, logger="skyscene"):
        r = fit_scene(sim.exposures, sim.target)
    assert "chi2_absurd" not in r.flags and r.reduced_chi2 < 3
    assert not [m for m in caplog.messages if "max_reduced_chi2" in m]
