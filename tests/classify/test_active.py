"""Active-learning priority, scores with their flip/rotation spread, selection."""

import numpy as np
import pytest

from skyscene.classify.active import (
    ActiveConfig,
    priority,
    score_with_spread,
    select_candidates,
)
from skyscene.errors import DataError, ParameterError


def test_priority_peaks_at_threshold_and_grows_with_spread():
    rb = np.array([0.2, 0.05, 0.6, 0.999, 0.2])
    spread = np.array([0.0, 0.0, 0.0, 0.0, 0.2])
    p = priority(rb, spread, 0.2)
    assert p[0] == pytest.approx(0.5)  # at the threshold: uncertainty 1, weight 0.5
    assert p[4] == pytest.approx(0.5 + 0.5 * 0.2 / 0.25)
    assert p[0] > p[2] > p[3] and p[0] > p[1]
    assert np.all((p >= 0) & (p <= 1))
    only_u = priority(rb, None, 0.2, config=ActiveConfig(spread_weight=0.0))
    assert only_u[0] == pytest.approx(1.0)
    with pytest.raises(DataError, match="spread values"):
        priority(rb, spread[:2], 0.2)
    with pytest.raises(ParameterError, match="threshold"):
        priority(rb, spread, 1.5)
    with pytest.raises(ParameterError, match="spread_weight"):
        ActiveConfig(spread_weight=2)


def test_selection_priority_random_exclude():
    rng = np.random.default_rng(0)
    rb = rng.uniform(0, 1, 100)
    spread = rng.uniform(0, 0.1, 100)
    p = priority(rb, spread, 0.5)
    sel = select_candidates(rb, spread, 0.5, 10)
    np.testing.assert_array_equal(sel.index, np.argsort(-p, kind="stable")[:10])
    excl = select_candidates(rb, spread, 0.5, 10, exclude=sel.index[:3])
    assert not set(sel.index[:3]) & set(excl.index)
    rand = select_candidates(rb, spread, 0.5, 10, method="random", rng=1)
    assert len(set(rand.index)) == 10
    assert rand.priority.mean() < sel.priority.mean()
    assert len(select_candidates(rb, spread, 0.5, 500).index) == 100
    assert len(sel.to_table()) == 10


def test_score_with_spread_matches_score(fitted, toy):
    x, _, _ = toy
    res = score_with_spread(fitted, x[:20], batch_size=7)
    np.testing.assert_allclose(res.rb, fitted.score(x[:20]).rb, atol=1e-5)
    rb, spread = res
    assert rb is res.rb
    assert spread.shape == (20,) and np.all(spread >= 0)
    np.testing.assert_allclose(res.members.std(0), spread)
    # a triplet symmetric under D4 has no spread
    sym = np.zeros((1, 3, 31, 31), np.float32)
    yy, xx = np.mgrid[:31, :31]
    sym[0] = np.exp(-((xx - 15) ** 2 + (yy - 15) ** 2) / 8.0)
    assert score_with_spread(fitted, sym).spread[0] < 1e-6
    assert len(res.to_table()) == 20


def test_exploration_interleaves_a_stable_random_share():
    rng = np.random.default_rng(2)
    n = 2000
    rb = rng.uniform(0, 1, n)
    spread = rng.uniform(0, 0.1, n)
    keys = rng.permutation(10**6)[:n] + 10**9
    mix = priority(rb, spread, 0.5)
    p = priority(rb, spread, 0.5, keys=keys, config=ActiveConfig(explore=0.25))
    assert np.all((p >= 0) & (p <= 1)) and np.unique(p).size == n  # a strict queue order
    first = np.argsort(-p, kind="stable")[:400]
    by_mix = set(np.argsort(-mix, kind="stable")[:300].tolist())
    # the first 400 of the queue: the 300 best by uncertainty/disagreement, 100 others
    assert by_mix <= set(first.tolist())
    others = np.setdiff1d(first, list(by_mix))
    assert others.size == 100
    # the exploration picks are spread over the whole score range, not near the threshold
    assert np.mean(mix[others]) < np.mean(mix[list(by_mix)]) - 0.2
    # stable: a candidate keeps its random rank whatever the other rows
    half = priority(rb[:1000], spread[:1000], 0.5, keys=keys[:1000], config=ActiveConfig(explore=1))
    full = priority(rb, spread, 0.5, keys=keys, config=ActiveConfig(explore=1))
    np.testing.assert_array_equal(
        np.argsort(-half, kind="stable"), np.argsort(-full[:1000], kind="stable")
    )
    sel = select_candidates(rb, spread, 0.5, 400, keys=keys, config=ActiveConfig(explore=0.25))
    np.testing.assert_array_equal(np.sort(sel.index), np.sort(first))
    with pytest.raises(DataError, match="keys must be"):
        priority(rb, spread, 0.5, keys=keys[:5], config=ActiveConfig(explore=0.5))
    with pytest.raises(ParameterError, match="explore"):
        ActiveConfig(explore=1.5)
    # explore = 0 (the default) is the uncertainty/disagreement mix itself
    np.testing.assert_array_equal(priority(rb, spread, 0.5, keys=keys), mix)
