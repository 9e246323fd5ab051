"""Alignment results pickle and round-trip unchanged (they travel to and from Dask workers)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parents[1] / "scene"))  # the shared roundtrip helpers
from roundtrip_helpers import assert_roundtrips, roundtrip

from skyscene.align import AlignmentResult


def test_alignment_results_round_trip():
    matrix = np.array([[0.99, -0.01, 3.4], [0.01, 0.99, -2.7], [0.0, 0.0, 1.0]])
    for result in (
        AlignmentResult.identity(),
        AlignmentResult(matrix=matrix, method="astroalign", n_matches=30, rms=0.04),
        AlignmentResult(
            matrix=np.eye(3),
            method="cross-correlation",
            n_matches=0,
            rms=float("nan"),
            fallback="too few stars to match (3 in image, 3 in reference; need 5)",
        ),
    ):
        assert_roundtrips(result)
        back = roundtrip(result)
        np.testing.assert_array_equal(back.apply([[10.0, 20.0]]), result.apply([[10.0, 20.0]]))
        assert back.fallback == result.fallback
