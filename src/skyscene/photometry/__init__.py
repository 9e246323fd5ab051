"""Forced aperture and optimal photometry; differential light curves."""

from skyscene.photometry.differential import (
    DifferentialLightCurves,
    differential_photometry,
    select_comparison_stars,
)
from skyscene.photometry.forced import FLAGS, AperturePhotometer, ForcedPhotometry, OptimalPhotometer

__all__ = [
    "FLAGS",
    "AperturePhotometer",
    "DifferentialLightCurves",
    "ForcedPhotometry",
    "OptimalPhotometer",
    "differential_photometry",
    "select_comparison_stars",
]
