"""Fixtures for the scene-modelling tests (helpers live in ``scene_helpers``)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def tno_small():
    """A small simulated detection (6 exposures, S/N 40, moderate blend)."""
    from skyscene.datasets.tno import simulate_tno_stamps

    return simulate_tno_stamps(rng=7, n_exposures=6, snr=40.0, blend="moderate")
