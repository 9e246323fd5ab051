"""Readers of raw model-spectrum libraries (moved to :mod:`skyscene.io.spectral_grid`).

They open files, so they live in :mod:`skyscene.io`; the names are re-exported here so
that existing imports keep working.
"""

from skyscene.io.spectral_grid import READERS, GridReader, PhoenixACESReader, get_reader

__all__ = ["READERS", "GridReader", "PhoenixACESReader", "get_reader"]
