"""No silent fallback in alignment: the reason is recorded in the result and logged."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from test_align_transform import galaxy_scene

import skyscene.detection
from skyscene.align import find_transform
from skyscene.errors import DataError, ParameterError

SHIFT = (3.3, -1.7)


@pytest.fixture(scope="module")
def few_star_pair():
    return galaxy_scene(SHIFT, 2), galaxy_scene((0.0, 0.0), 1)


def test_too_few_stars_is_recorded_and_logged_at_info(few_star_pair, caplog):
    image, reference = few_star_pair
    with caplog.at_level(logging.INFO, logger="skyscene.align.transform"):
        result = find_transform(image, reference)
    assert result.method == "cross-correlation"
    assert result.fallback is not None
    assert result.fallback.startswith("too few stars to match (")
    assert result.fallback.endswith("need 5)")
    records = [r for r in caplog.records if "aligning by cross-correlation" in r.getMessage()]
    assert [r.levelno for r in records] == [logging.INFO]
    assert result.shift == pytest.approx((-SHIFT[0], -SHIFT[1]), abs=0.05)


def test_a_detection_failure_on_the_data_falls_back_with_a_warning(
    few_star_pair, caplog, monkeypatch
):
    image, reference = few_star_pair

    def failing(*args, **kwargs):
        raise DataError("find_sources: every pixel is masked or non-finite")

    monkeypatch.setattr(skyscene.detection, "find_sources", failing)
    with caplog.at_level(logging.INFO, logger="skyscene.align.transform"):
        result = find_transform(image, reference)
    assert result.fallback == (
        "star detection failed: find_sources: every pixel is masked or non-finite"
    )
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and "star detection failed" in warned[0].getMessage()
    assert result.shift == pytest.approx((-SHIFT[0], -SHIFT[1]), abs=0.05)


def test_a_bug_in_detection_is_not_swallowed(few_star_pair, monkeypatch):
    image, reference = few_star_pair

    def buggy(*args, **kwargs):
        raise KeyError("x")

    monkeypatch.setattr(skyscene.detection, "find_sources", buggy)
    with pytest.raises(KeyError, match="x"):
        find_transform(image, reference)


def test_star_matching_result_has_no_fallback():
    from test_align_transform import render, similarity

    rng = np.random.default_rng(3)
    ref_xy = rng.uniform(20, 236, (25, 2))
    fluxes = np.geomspace(1e5, 5e3, 25)
    inv = np.linalg.inv(similarity(0.0, (2.0, 1.0)))
    result = find_transform(
        render(ref_xy @ inv[:2, :2].T + inv[:2, 2], fluxes, 4), render(ref_xy, fluxes, 5)
    )
    assert result.method == "astroalign" and result.fallback is None


def test_threshold_must_be_positive(few_star_pair):
    image, reference = few_star_pair
    with pytest.raises(ParameterError, match=r"find_transform threshold must be > 0, got 0\.0"):
        find_transform(image, reference, threshold=0.0)
