"""Forced aperture and optimal photometry; differential light curves."""

from skyscene.photometry.differential import (
    DifferentialLightCurves,
    differential_photometry,
    select_comparison_stars,
)
from skyscene.photometry.forced import (
    FLAGS,
    AperturePhotometer,
    FluxCorrection,
    ForcedPhotometry,
    OptimalPhotometer,
    measure_flux_correction,
)

__all__ = [
    "FLAGS",
    "AperturePhotometer",
    "DifferentialLightCurves",
    "FluxCorrection",
    "ForcedPhotometry",
    "OptimalPhotometer",
    "differential_photometry",
    "measure_flux_correction",
    "select_comparison_stars",
]
