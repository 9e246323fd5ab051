"""Specification of source detection and catalog matching (``skyscene.detection``)."""

from __future__ import annotations

import numpy as np
import pytest

from skyscene.background import estimate_background
from skyscene.detection import find_sources, match_catalogs
from skyscene.errors import DataError, ParameterError
from skyscene.psf import GaussianPSF

PSF = GaussianPSF(1.8)
SKY, NOISE = 100.0, 5.0


def add_stars(data, positions, fluxes, psf=PSF, half=12):
    ny, nx = data.shape
    for (x, y), flux in zip(positions, fluxes, strict=True):
        ix, iy = round(x), round(y)
        y0, y1 = max(iy - half, 0), min(iy + half + 1, ny)
        x0, x1 = max(ix - half, 0), min(ix + half + 1, nx)
        data[y0:y1, x0:x1] += flux * psf.render((y1 - y0, x1 - x0), center=(x - x0, y - y0))
    return data


@pytest.fixture(scope="module")
def star_scene():
    rng = np.random.default_rng(0)
    # a jittered 4 x 3 grid: isolated stars, 60 px apart
    gx, gy = np.meshgrid(np.arange(4) * 60.0 + 38, np.arange(3) * 70.0 + 58)
    positions = np.c_[gx.ravel(), gy.ravel()] + rng.uniform(-8, 8, (12, 2))
    fluxes = np.geomspace(2e5, 2e3, 12)
    rng.shuffle(fluxes)
    data = add_stars(rng.normal(SKY, NOISE, (256, 256)), positions, fluxes)
    return data, positions, fluxes


def test_finds_injected_stars(star_scene):
    data, positions, fluxes = star_scene
    cat = find_sources(data)
    assert len(cat) == 12, "every injected star, no spurious detection"
    idx = match_catalogs(np.c_[cat["x"], cat["y"]], positions, radius=1.0)
    assert np.all(idx >= 0) and len(set(idx)) == 12
    offsets = np.hypot(cat["x"] - positions[idx, 0], cat["y"] - positions[idx, 1])
    bright = fluxes[idx] >= 1e4  # S/N > ~100
    assert np.all(offsets[bright] < 0.1), offsets[bright]  # 0.1 px for bright stars
    assert np.all(offsets < 0.5), offsets  # 0.5 px for all (faintest S/N ~ 30)
    # sorted brightest first: detected order follows the injected fluxes
    np.testing.assert_array_equal(np.argsort(-fluxes[idx]), np.arange(12))
    assert np.all(np.diff(cat["flux"]) <= 0)
    for name in ("x", "y", "flux", "peak", "a", "b", "theta", "npix", "flag", "snr"):
        assert name in cat.colnames


def test_no_detections_on_pure_noise():
    for seed in range(3):
        noise = np.random.default_rng(50 + seed).normal(SKY, NOISE, (256, 256))
        cat = find_sources(noise, threshold=5.0)
        # 65536 pixels at 5 sigma: ~0.02 expected false pixels; allow <= 1 source
        assert len(cat) <= 1, seed
    assert set(cat.colnames) >= {"x", "y", "flux", "npix", "flag"}


def test_masked_pixels_are_ignored(star_scene):
    data, positions, fluxes = star_scene
    data = data.copy()
    data[10:20, 200:215] = 5e4  # a bright artefact, masked
    data[240, 5] = np.nan  # non-finite: masked automatically
    mask = np.zeros(data.shape, bool)
    mask[10:20, 200:215] = True
    brightest = positions[np.argmax(fluxes)]
    x, y = np.round(brightest).astype(int)
    mask[y - 12 : y + 13, x - 12 : x + 13] = True  # hide the brightest star
    cat = find_sources(data, mask=mask)
    assert len(cat) == 11
    assert np.min(np.hypot(cat["x"] - brightest[0], cat["y"] - brightest[1])) > 10
    assert not np.any((cat["x"] > 195) & (cat["y"] < 25)), "nothing detected in the masked artefact"


def test_given_variance_and_background(star_scene):
    data, positions, _ = star_scene
    bkg = estimate_background(data)
    cat = find_sources(data, variance=np.full(data.shape, NOISE**2), background=bkg.background)
    assert len(cat) == 12
    cat_edge = find_sources(data, background=bkg, edge=40)
    inside = np.all((positions >= 40) & (positions < 216), axis=1)
    assert len(cat_edge) == inside.sum()


def test_errors():
    with pytest.raises(DataError, match="find_sources: every pixel is masked or non-finite"):
        find_sources(np.full((20, 20), np.nan))
    with pytest.raises(ParameterError, match=r"threshold must be positive, got 0"):
        find_sources(np.ones((20, 20)), threshold=0)
    with pytest.raises(
        ParameterError, match="find_sources needs variance or a GlobalBackground with rms"
    ):
        find_sources(np.ones((20, 20)), background=np.zeros((20, 20)))


def test_match_one_to_one_within_radius():
    reference = np.array([[10.0, 10.0], [50.0, 50.0], [90.0, 20.0]])
    xy = np.array(
        [
            [10.5, 10.0],  # 0.5 px from reference 0
            [10.0, 10.2],  # 0.2 px from reference 0: the closer one wins
            [52.5, 50.0],  # 2.5 px: beyond the radius
            [89.0, 21.0],  # 1.41 px from reference 2
        ]
    )
    np.testing.assert_array_equal(match_catalogs(xy, reference, radius=2.0), [-1, 0, -1, 2])
    np.testing.assert_array_equal(match_catalogs(xy, reference, radius=3.0), [-1, 0, 1, 2])
    np.testing.assert_array_equal(match_catalogs(xy, reference, radius=1.0), [-1, 0, -1, -1])


def test_match_random_catalogs_recovers_permutation():
    rng = np.random.default_rng(5)
    reference = rng.uniform(0, 1000, (200, 2))
    perm = rng.permutation(200)
    xy = reference[perm] + rng.normal(0, 0.1, (200, 2))
    idx = match_catalogs(xy, reference, radius=1.0)
    # 200 points in 1000² px: nearest neighbours are ~35 px apart, so every match is right
    np.testing.assert_array_equal(idx, perm)


def test_match_empty():
    assert match_catalogs(np.zeros((0, 2)), np.ones((3, 2))).shape == (0,)
    np.testing.assert_array_equal(match_catalogs(np.ones((2, 2)), np.zeros((0, 2))), [-1, -1])
