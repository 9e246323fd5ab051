"""Specification of frame alignment (``skyscene.align``)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from skyscene.align import (
    AlignmentResult,
    find_transform,
    find_transform_from_positions,
    translation_by_cross_correlation,
    warp,
)
from skyscene.errors import AlignmentError, ParameterError
from skyscene.psf import GaussianPSF

PSF = GaussianPSF(1.8)
SKY, NOISE = 100.0, 5.0


def render(positions, fluxes, seed, shape=(256, 256), half=12):
    rng = np.random.default_rng(seed)
    data = rng.normal(SKY, NOISE, shape)
    ny, nx = shape
    for (x, y), flux in zip(positions, fluxes, strict=True):
        ix, iy = round(x), round(y)
        y0, y1 = max(iy - half, 0), min(iy + half + 1, ny)
        x0, x1 = max(ix - half, 0), min(ix + half + 1, nx)
        if y1 > y0 and x1 > x0:
            data[y0:y1, x0:x1] += flux * PSF.render((y1 - y0, x1 - x0), center=(x - x0, y - y0))
    return data


def similarity(rotation, shift):
    c, s = math.cos(rotation), math.sin(rotation)
    return np.array([[c, -s, shift[0]], [s, c, shift[1]], [0.0, 0.0, 1.0]])


@pytest.fixture(scope="module")
def star_pair():
    """Reference and image of 30 stars; ``truth`` maps image pixels to reference pixels."""
    rng = np.random.default_rng(7)
    ref_positions = rng.uniform(10, 246, (30, 2))
    fluxes = np.geomspace(1e5, 5e3, 30)
    truth = similarity(0.01, (3.4, -2.7))
    inv = np.linalg.inv(truth)
    img_positions = ref_positions @ inv[:2, :2].T + inv[:2, 2]
    return (
        render(ref_positions, fluxes, 1),
        render(img_positions, fluxes, 2),
        truth,
        ref_positions,
        img_positions,
    )


def test_recovers_similarity_transform(star_pair):
    reference, image, _, ref_positions, img_positions = star_pair
    result = find_transform(image, reference)
    assert result.method == "astroalign"
    assert result.n_matches >= 10
    assert abs(result.rotation - 0.01) < 1e-3, result.rotation  # 1e-3 rad
    assert abs(result.scale - 1.0) < 1e-3
    mapped = result.apply(img_positions)
    err = np.hypot(*(mapped - ref_positions).T)
    assert err.max() < 0.05, err.max()  # 0.05 px everywhere on the frame
    assert result.rms < 0.1  # matched-star residuals (centroid noise) below 0.1 px
    np.testing.assert_allclose(
        result.inverse(result.apply(img_positions)), img_positions, atol=1e-9
    )


def test_from_positions_exact_lists():
    rng = np.random.default_rng(3)
    reference = rng.uniform(0, 500, (20, 2))
    truth = similarity(-0.02, (12.5, 7.25))
    inv = np.linalg.inv(truth)
    image = reference @ inv[:2, :2].T + inv[:2, 2]
    result = find_transform_from_positions(image, reference)
    np.testing.assert_allclose(result.matrix, truth, atol=1e-8)  # noiseless lists: exact to 1e-8
    assert result.rms < 1e-8
    assert result.shift == pytest.approx((12.5, 7.25), abs=1e-8)


def test_from_positions_too_few_stars():
    xy = np.random.default_rng(0).uniform(0, 100, (4, 2))
    with pytest.raises(
        AlignmentError, match=r"too few stars to match \(4 in image, 4 in reference; need 5\)"
    ):
        find_transform_from_positions(xy, xy)


def galaxy_scene(shift, seed, shape=(128, 128)):
    """Three stars and an extended elliptical galaxy, the scene moved by ``shift`` px."""
    rng = np.random.default_rng(seed)
    yy, xx = np.indices(shape).astype(float)
    xx -= shift[0]
    yy -= shift[1]
    image = SKY + rng.normal(0, 3.0, shape)
    u = (xx - 60) * math.cos(0.5) + (yy - 70) * math.sin(0.5)
    v = -(xx - 60) * math.sin(0.5) + (yy - 70) * math.cos(0.5)
    image += 800.0 * np.exp(-np.hypot(u / 12, v / 5))
    for x, y, flux in [(30, 30, 5e4), (95, 40, 3e4), (80, 100, 2e4)]:
        image += (
            flux / (2 * math.pi * 1.8**2) * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 1.8**2))
        )
    return image


@pytest.mark.parametrize("shift", [(3.3, -1.7), (-5.6, 2.2), (0.4, 0.25)])
def test_translation_fallback_with_few_stars(shift):
    reference = galaxy_scene((0.0, 0.0), 1)
    image = galaxy_scene(shift, 2)  # a source at p in the scene is at p + shift in the image
    result = find_transform(image, reference)
    assert result.method == "cross-correlation"
    assert result.n_matches == 0 and math.isnan(result.rms)
    # image -> reference is a translation by -shift (upsampling 20: 0.05 px)
    assert result.shift[0] == pytest.approx(-shift[0], abs=0.05)
    assert result.shift[1] == pytest.approx(-shift[1], abs=0.05)
    np.testing.assert_array_equal(result.matrix[:2, :2], np.eye(2))


def test_cross_correlation_on_textured_image():
    rng = np.random.default_rng(11)
    from scipy import ndimage

    texture = ndimage.gaussian_filter(rng.normal(0, 1, (160, 160)), 1.0) * 100 + 1000
    reference = texture[16:144, 16:144] + rng.normal(0, 1, (128, 128))
    image = texture[16 + 4 : 144 + 4, 16 - 7 : 144 - 7] + rng.normal(0, 1, (128, 128))
    # image pixel (x, y) shows texture (x + 9, y + 20) = reference pixel (x - 7, y + 4)
    result = translation_by_cross_correlation(image, reference)
    assert result.shift == pytest.approx((-7.0, 4.0), abs=0.05)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pure_noise_raises(seed):
    rng = np.random.default_rng(seed)
    image, reference = rng.normal(SKY, NOISE, (2, 128, 128))
    with pytest.raises(
        AlignmentError, match=r"cross-correlation peak is not significant \(\d+\.\d sigma < 8\.0\)"
    ):
        find_transform(image, reference)


def test_cross_correlation_errors():
    with pytest.raises(AlignmentError, match=r"needs equal shapes, got \(10, 10\) and \(10, 12\)"):
        translation_by_cross_correlation(np.ones((10, 10)), np.ones((10, 12)))
    with pytest.raises(AlignmentError, match="image is entirely masked or non-finite"):
        translation_by_cross_correlation(
            np.ones((10, 10)), np.ones((10, 10)), mask=np.ones((10, 10), bool)
        )
    with pytest.raises(
        AlignmentError,
        match=r"too few stars to match and shapes differ \(\(64, 64\) vs \(64, 70\)\)",
    ):
        find_transform(
            np.random.default_rng(0).normal(0, 1, (64, 64)),
            np.random.default_rng(1).normal(0, 1, (64, 70)),
        )


def test_warp_brings_image_onto_reference(star_pair):
    reference, image, truth, _, _ = star_pair
    result = AlignmentResult(matrix=truth, method="astroalign", n_matches=30, rms=0.0)
    warped = warp(image, result, reference.shape)
    outside = np.isnan(warped)
    # reference pixels whose pre-image falls outside the image are NaN
    yy, xx = np.indices(reference.shape)
    pre = result.inverse(np.c_[xx.ravel(), yy.ravel()]).reshape(256, 256, 2)
    clearly_out = (
        (pre[..., 0] < -1) | (pre[..., 1] < -1) | (pre[..., 0] > 256) | (pre[..., 1] > 256)
    )
    clearly_in = (pre[..., 0] > 1) & (pre[..., 1] > 1) & (pre[..., 0] < 254) & (pre[..., 1] < 254)
    assert np.all(outside[clearly_out]) and not np.any(outside[clearly_in])
    residual = (warped - reference)[clearly_in]
    # two independent noise fields: RMS sqrt(2) x 5 = 7.1; cubic interpolation smooths a little
    rms = np.sqrt(np.mean((residual - residual.mean()) ** 2))
    assert 0.85 * math.sqrt(2) * NOISE < rms < 1.05 * math.sqrt(2) * NOISE, rms
    assert abs(residual.mean()) < 0.1  # no offset (0.1 counts)
    # stars subtract cleanly: no residual beyond 6 sigma of the difference noise
    assert np.abs(residual).max() < 6 * math.sqrt(2) * NOISE
    # without the warp, the stars would leave large residuals
    assert np.nanmax(np.abs(image - reference)) > 50 * NOISE


def test_warp_identity_and_nan_spread():
    image = np.random.default_rng(0).normal(0, 1, (20, 20))
    same = warp(image, AlignmentResult.identity(), (20, 20))
    np.testing.assert_allclose(same, image, atol=1e-10)  # identity resampling is exact
    image[10, 10] = np.nan
    out = warp(
        image,
        AlignmentResult(matrix=similarity(0.0, (0.5, 0.0)), method="x", n_matches=0, rms=0.0),
        (20, 20),
    )
    assert np.isnan(out[10, 10]) and np.isnan(out[10, 11]), (
        "a NaN pixel spreads to the pixels it touches"
    )
    assert np.isfinite(out[5, 5])
    with pytest.raises(ParameterError, match=r"order must be 0, 1, 3 or 5, got 2"):
        warp(image, AlignmentResult.identity(), (20, 20), order=2)
