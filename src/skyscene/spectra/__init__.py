"""Two-component stellar spectra: spectral grids, interpolation and mixture-model fitting.

A :class:`SpectralGrid` holds raw model spectra on a grid of stellar parameters (built
from a library such as PHOENIX-ACES through a pluggable reader, or simulated by
:func:`skyscene.datasets.spectra.simulate_spectral_grid`). A :class:`MixtureModel` fits
an observed spectrum with two temperature components (star + spots or an unresolved
binary; Czekala et al. 2015), a :class:`SingleComponentModel` with one, so that the two
can be compared (:func:`compare_models`).
"""

from skyscene._estimator import clone
from skyscene.spectra.broadening import broaden, doppler_factor, log_lambda_grid, resample
from skyscene.spectra.emulator import SpectralEmulator
from skyscene.spectra.fluxratio import MeanFluxRatio, PairwiseFluxRatio, make_flux_ratio
from skyscene.spectra.grid import SpectralGrid
from skyscene.spectra.interpolate import (
    CubicSplineInterpolator,
    RegularGridInterpolator,
    SpectrumInterpolator,
)
from skyscene.spectra.mixture import (
    MixtureModel,
    ModelComparison,
    SingleComponentModel,
    SpectralFit,
    SpectralFitConfig,
    SpectrumPrediction,
    TrimmedRange,
    compare_models,
)
from skyscene.spectra.readers import READERS, GridReader, PhoenixACESReader, get_reader

__all__ = [
    "READERS",
    "CubicSplineInterpolator",
    "GridReader",
    "MeanFluxRatio",
    "MixtureModel",
    "ModelComparison",
    "PairwiseFluxRatio",
    "PhoenixACESReader",
    "RegularGridInterpolator",
    "SingleComponentModel",
    "SpectralEmulator",
    "SpectralFit",
    "SpectralFitConfig",
    "SpectralGrid",
    "SpectrumInterpolator",
    "SpectrumPrediction",
    "TrimmedRange",
    "broaden",
    "clone",
    "compare_models",
    "doppler_factor",
    "get_reader",
    "log_lambda_grid",
    "make_flux_ratio",
    "resample",
]
