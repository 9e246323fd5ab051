"""Seeded simulations for tests, demos and benchmarks.

Every simulator takes ``rng`` (a seed or ``numpy.random.Generator``) and returns or
writes its truth next to the data.
"""

from skyscene.datasets.observations import ObservationTruth, simulate_observations

__all__ = ["ObservationTruth", "simulate_observations"]
