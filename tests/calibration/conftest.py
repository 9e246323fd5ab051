"""Shared seeded calibration folders for the calibration tests (built once per session)."""

from __future__ import annotations

import pytest

from skyscene.calibration import CalibrationSet
from skyscene.datasets.calibration import simulate_calibration_frames


@pytest.fixture(scope="session")
def calib_dir(tmp_path_factory):
    """A folder of simulated frames (two bands) and the truth of the detector."""
    folder = tmp_path_factory.mktemp("calib")
    truth = simulate_calibration_frames(folder, rng=20240601, bands=("g", "r"))
    return folder, truth


@pytest.fixture(scope="session")
def calib_set(calib_dir):
    """The CalibrationSet built from :func:`calib_dir`."""
    folder, _ = calib_dir
    return CalibrationSet.from_directory(folder)
