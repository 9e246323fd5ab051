"""The vectorised asterism invariants equal astroalign's, bit for bit (issue 15)."""

import astroalign
import numpy as np
import pytest

from skyscene.align import find_transform_from_positions
from skyscene.align import transform as T


@pytest.mark.parametrize("n", [5, 6, 17, 50])
@pytest.mark.parametrize("rounded", [False, True])
def test_invariants_equal_astroalign(n, rounded):
    rng = np.random.default_rng(n + 100 * rounded)
    points = rng.uniform(0, 512, (n, 2))
    if rounded:  # equal side lengths: ties in the vertex order and duplicate invariants
        points = np.round(points / 8)
    expected_inv, expected_ast = astroalign._generate_invariants(points)
    inv, ast = T._asterism_invariants(points)
    assert np.array_equal(ast, expected_ast)
    assert np.array_equal(inv, expected_inv)


def test_transform_equals_astroalign_and_reference_cache():
    rng = np.random.default_rng(7)
    ref = rng.uniform(0, 512, (50, 2))
    th = 0.02
    m = np.array([[np.cos(th), -np.sin(th), 3.2], [np.sin(th), np.cos(th), -1.7]])
    for _k in range(3):  # the reference's invariants come from the cache after the first
        src = (ref - m[:, 2]) @ np.linalg.inv(m[:, :2]).T + rng.normal(0, 0.05, (50, 2))
        src = src[rng.permutation(50)][:45]
        ours = find_transform_from_positions(src, ref)
        theirs, (s, _) = astroalign.find_transform(src, ref)
        np.testing.assert_allclose(ours.matrix, theirs.params, rtol=0, atol=1e-9)
        assert ours.n_matches == len(s) == 45
