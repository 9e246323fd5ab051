"""The review queries' footprint test (upper limits of a light curve)."""

from __future__ import annotations

import pytest

from skyscene.review.queries import _inside_footprint


def test_corner_footprints_as_the_search_writes_them():
    # a square of 0.2 deg rotated by 45 deg about (150, 2): corners on the axes
    diamond = [[150.1414, 2.0], [150.0, 2.1414], [149.8586, 2.0], [150.0, 1.8586]]
    assert _inside_footprint(diamond, 150.0, 2.0) is True
    assert _inside_footprint(diamond, 150.12, 2.0) is True  # near the east corner
    # inside the corners' bounding box but outside the rotated square
    assert _inside_footprint(diamond, 150.12, 2.12) is False
    assert _inside_footprint(diamond, 151.0, 2.0) is False
    # across RA = 0 (corners at 359.9 and 0.1 deg)
    wrapped = [[359.9, -0.1], [0.1, -0.1], [0.1, 0.1], [359.9, 0.1]]
    assert _inside_footprint(wrapped, 0.0, 0.0) is True
    assert _inside_footprint(wrapped, 359.95, 0.05) is True
    assert _inside_footprint(wrapped, 180.0, 0.0) is False


def test_box_footprints_and_unusable_ones():
    assert _inside_footprint([149.9, 150.2, 1.9, 2.1], 150.0, 2.0) is True
    assert _inside_footprint([149.9, 150.2, 1.9, 2.1], 150.0, 2.2) is False
    assert _inside_footprint([359.9, 0.1, -0.1, 0.1], 0.05, 0.0) is True  # across RA = 0
    for bad in (None, [], [1, 2, 3], [[1, 2], [3, 4]], [[1, 2], [3, "x"], [5, 6]], "box"):
        assert _inside_footprint(bad, 150.0, 2.0) is None, bad
    assert _inside_footprint([149.9, 150.2, float("nan"), 2.1], 150.0, 2.0) is None


@pytest.mark.parametrize("ra", [149.95, 150.15])
def test_corner_footprint_edges_are_not_boxes(ra):
    # a thin sliver from (149.9, 1.9) to (150.2, 2.1): its bounding box holds both
    # positions, the sliver itself holds neither
    sliver = [[149.9, 1.9], [149.91, 1.9], [150.2, 2.1], [150.19, 2.1]]
    assert _inside_footprint(sliver, ra, 1.9 if ra > 150 else 2.1) is False
