"""Scene-modelling photometry (SMP): joint multi-epoch fits of point sources on a grid.

The static scene is a grid of point sources shared by all exposures; each exposure has
its own PSF, WCS, zeropoint, weights and sky; the target (single or binary) contributes
only to its detection exposure(s). See Bernardinelli et al. (2023) and ``docs/smp.md``.
"""

from skyscene.scene.binary import BinaryResult, fit_binary
from skyscene.scene.config import SceneConfig, Target
from skyscene.scene.model import (
    ExtraFluxes,
    SceneModel,
    SceneResult,
    fit_scene,
    flux_to_mag,
    tangent_to_sky,
)

__all__ = [
    "BinaryResult",
    "ExtraFluxes",
    "SceneConfig",
    "SceneModel",
    "SceneResult",
    "Target",
    "fit_binary",
    "fit_scene",
    "flux_to_mag",
    "tangent_to_sky",
]
