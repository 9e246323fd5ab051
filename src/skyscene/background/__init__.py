"""Backgrounds: global mesh maps and pluggable local (annulus) estimators."""

from skyscene.background.global_ import GlobalBackground, estimate_background
from skyscene.background.local import (
    LOCAL_BACKGROUNDS,
    LocalBackgroundEstimate,
    annulus_pixels,
    load_local_background,
    local_background_mean,
    local_background_median,
)

__all__ = [
    "LOCAL_BACKGROUNDS",
    "GlobalBackground",
    "LocalBackgroundEstimate",
    "annulus_pixels",
    "estimate_background",
    "load_local_background",
    "local_background_mean",
    "local_background_median",
]
