"""Shared seeded pairs for the diffim tests (small images: the suite stays fast)."""

import pytest

from skyscene.datasets.pairs import simulate_pair


@pytest.fixture(scope="session")
def null_pair():
    """512² pair without transients: different PSFs (Moffat vs Gaussian), depths, offsets."""
    return simulate_pair(shape=(512, 512), rng=11, n_transients=0)


@pytest.fixture(scope="session")
def transient_pair():
    """512² pair with 40 transients of theoretical S/N 10."""
    return simulate_pair(shape=(512, 512), rng=12, n_transients=40, transient_snr=10.0)
