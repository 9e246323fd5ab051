"""combine_frames: clipping, estimators, variance propagation, chunking, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from skyscene.calibration import CombineConfig, combine_frames
from skyscene.errors import DataError, ParameterError
from skyscene.io import Exposure


@pytest.mark.parametrize("variances", [None, [1.0] * 7])
def test_single_outlier_in_a_small_stack_is_clipped(variances):
    # with a plain-std scale a lone outlier among 7 frames is at most sqrt(6) sigma:
    # the robust scale (no variances) and the known noise (variances) both clip it
    rng = np.random.default_rng(0)
    stack = 100.0 + rng.standard_normal((7, 5, 6))
    stack[3, 2, 4] = 1e4
    out = combine_frames(stack, variances=variances)
    assert out.n_used[2, 4] == 6
    assert out.data[2, 4] == pytest.approx(np.delete(stack[:, 2, 4], 3).mean(), abs=1e-9)
    assert out.n_frames == 7


def test_mean_with_input_variances_gives_honest_pulls():
    rng = np.random.default_rng(1)
    sigma = rng.uniform(1.0, 3.0, (10, 1, 1))  # each frame its own noise level
    stack = 50.0 + sigma * rng.standard_normal((10, 100, 100))
    out = combine_frames(stack, variances=list(sigma[:, 0, 0] ** 2))
    pull = (out.data - 50.0) / np.sqrt(out.variance)
    # 10^4 pixels: statistical error on the std ~0.007; clipping lowers it <3 %
    assert abs(pull.mean()) < 0.03
    assert pull.std() == pytest.approx(1.0, abs=0.04)


def test_mean_without_variances_uses_the_sample_variance():
    rng = np.random.default_rng(2)
    stack = 3.0 * rng.standard_normal((8, 100, 100))
    # std-scaled clipping at 10 sigma never clips 8 values: exact ddof=1 estimate
    out = combine_frames(stack, config=CombineConfig(sigma=10.0, stdfunc="std"))
    expected = np.var(stack, axis=0, ddof=1) / 8
    np.testing.assert_allclose(out.variance, expected, rtol=1e-10)
    # unbiased on average: mean of s^2/n = 9/8 within 2 %
    assert out.variance.mean() == pytest.approx(9.0 / 8, rel=0.02)


def test_median_variance_is_pi_over_two_times_the_mean_variance():
    rng = np.random.default_rng(3)
    stack = rng.standard_normal((9, 20, 20))
    mean = combine_frames(stack, method="mean", variances=[1.0] * 9, sigma=10.0)
    median = combine_frames(stack, method="median", variances=[1.0] * 9, sigma=10.0)
    np.testing.assert_allclose(median.variance, mean.variance * math.pi / 2, rtol=1e-12)
    np.testing.assert_allclose(median.data, np.median(stack, axis=0), atol=1e-12)


def test_scale_and_masks():
    stack = [np.full((4, 4), 2.0), np.full((4, 4), 4.0)]
    out = combine_frames(stack, scale=[0.5, 0.25], variances=[4.0, 16.0])
    np.testing.assert_allclose(out.data, 1.0, atol=1e-12)
    np.testing.assert_allclose(out.variance, (1.0 + 1.0) / 4, rtol=1e-12)
    masks = [np.zeros((4, 4), bool), np.zeros((4, 4), bool)]
    masks[0][0, 0] = masks[1][0, 0] = True
    out = combine_frames(stack, masks=masks, scale=lambda a: 1.0 / a.mean())
    assert out.mask[0, 0] and out.n_used[0, 0] == 0 and np.isinf(out.variance[0, 0])
    assert not out.mask[1, 1]


def test_exposure_masks_are_honoured():
    a = Exposure(data=np.full((3, 3), 1.0), mask=np.eye(3, dtype=bool))
    b = Exposure(data=np.full((3, 3), 3.0))
    out = combine_frames([a, b], variances=[1.0, 1.0])
    assert out.data[0, 0] == 3.0 and out.n_used[0, 0] == 1
    assert out.data[0, 1] == 2.0 and out.variance[0, 1] == 0.5


def test_single_good_value_without_variance_is_masked():
    out = combine_frames([np.ones((2, 2)), np.array([[np.nan, 1.0], [1.0, 1.0]])])
    assert out.mask[0, 0] and not out.mask[0, 1]


def test_chunked_combination_equals_one_pass():
    rng = np.random.default_rng(4)
    stack = rng.standard_normal((5, 37, 23))
    stack[2, 10, 10] = 50.0
    whole = combine_frames(stack)
    chunked = combine_frames(stack, config=CombineConfig(max_chunk_bytes=5 * 23 * 8 * 6 * 4))
    np.testing.assert_array_equal(whole.data, chunked.data)
    np.testing.assert_array_equal(whole.variance, chunked.variance)
    np.testing.assert_array_equal(whole.n_used, chunked.n_used)


def test_errors_name_the_problem():
    with pytest.raises(ParameterError, match="at least one frame"):
        combine_frames([])
    with pytest.raises(DataError, match=r"frame #1 has \(3, 4\)"):
        combine_frames([np.zeros((3, 3)), np.zeros((3, 4))])
    named = Exposure(data=np.zeros((3, 4)), meta={"filename": "b.fits"})
    with pytest.raises(DataError, match=r"frame #1 \(b.fits\) has \(3, 4\)"):
        combine_frames([np.zeros((3, 3)), named])
    with pytest.raises(
        ParameterError, match="combine method must be one of mean, median, got 'mode'"
    ):
        combine_frames([np.zeros((3, 3))], method="mode")
    with pytest.raises(ParameterError, match="sigma must be a positive number, got -1"):
        combine_frames([np.zeros((3, 3))], sigma=-1)
    with pytest.raises(ParameterError, match="maxiters must be a non-negative integer"):
        CombineConfig(maxiters=-2)
    with pytest.raises(ParameterError, match="stdfunc must be 'mad_std' or 'std', got 'iqr'"):
        CombineConfig(stdfunc="iqr")
    with pytest.raises(ParameterError, match="max_chunk_bytes must be a positive integer"):
        CombineConfig(max_chunk_bytes=0)
    with pytest.raises(ParameterError, match="scale has 3 factors for 2 frames"):
        combine_frames([np.zeros((3, 3))] * 2, scale=[1.0, 2.0, 3.0])
    with pytest.raises(ParameterError, match="scale factors must be finite and non-zero"):
        combine_frames([np.zeros((3, 3))] * 2, scale=[1.0, 0.0])
    with pytest.raises(ParameterError, match="got 1 variances for 2 frames"):
        combine_frames([np.zeros((3, 3))] * 2, variances=[1.0])
    with pytest.raises(ParameterError, match="got 3 masks for 2 frames"):
        combine_frames([np.zeros((3, 3))] * 2, masks=[np.zeros((3, 3), bool)] * 3)
    with pytest.raises(
        DataError, match=r"variance of frame #0 has shape \(2, 2\), frames have \(3, 3\)"
    ):
        combine_frames([np.zeros((3, 3))] * 2, variances=[np.ones((2, 2)), 1.0])
    with pytest.raises(DataError, match="must be 3-D"):
        combine_frames(np.zeros((2, 2, 2, 2)))
    with pytest.raises(DataError, match=r"frame #0 must be 2-D, got shape \(3,\)"):
        combine_frames([np.zeros(3)])
