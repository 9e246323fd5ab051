"""Seeded simulations for tests, demos and benchmarks.

Every simulator takes ``rng`` (a seed or ``numpy.random.Generator``) and returns or
writes its truth next to the data. Submodules are imported on first use, so
``import skyscene.datasets`` stays light.

- :func:`simulate_observations`: multi-camera frames with a variable star (reduction).
- :func:`simulate_calibration_frames`: bias/dark/flat frames of a simulated detector.
- :func:`simulate_tno_stamps`: DES-like stamp sets for scene-modelling photometry.
- :func:`simulate_piff_model`: a Piff PSF model fitted to simulated stars (``piff`` extra).
- :func:`simulate_pair`: science/reference pairs with transients (ZOGY).
- :func:`simulate_search`: many pairs with injections, artefacts and truth (search).
- :func:`simulate_crosscheck_triplets`: labelled real/bogus triplets from an independent
  simulator (kernel-matched differences), the cross-simulator test set of issue 13.
- :func:`simulate_spectral_grid`, :func:`simulate_spectrum`: toy spectral grid and spectra.
"""

from __future__ import annotations

import importlib

__all__ = [
    "CrosscheckConfig",
    "ObservationTruth",
    "simulate_calibration_frames",
    "simulate_crosscheck_triplets",
    "simulate_observations",
    "simulate_pair",
    "simulate_piff_model",
    "simulate_search",
    "simulate_spectral_grid",
    "simulate_spectrum",
    "simulate_tno_stamps",
]

_WHERE = {
    "CrosscheckConfig": "crosscheck",
    "simulate_crosscheck_triplets": "crosscheck",
    "ObservationTruth": "observations",
    "simulate_observations": "observations",
    "simulate_calibration_frames": "calibration",
    "simulate_tno_stamps": "tno",
    "simulate_pair": "pairs",
    "simulate_piff_model": "piff_model",
    "simulate_search": "search",
    "simulate_spectral_grid": "spectra",
    "simulate_spectrum": "spectra",
}


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f"skyscene.datasets.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'skyscene.datasets' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
