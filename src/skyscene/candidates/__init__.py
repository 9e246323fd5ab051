"""Transient candidates on a ZOGY subtraction: finding, ZTF-named features, cutouts.

``CandidateFinder(config)(result, science, reference)`` (function twin
:func:`find_candidates`) returns a :class:`CandidateTable` whose columns follow the ZTF
alert schema 4.02 ``candidate`` names (:data:`COLUMNS`, documented in
``docs/candidates.md``) and whose ``cutouts`` hold the science / reference / difference
triplets; :func:`cutout_fits_bytes` gives one cutout as gzip-compressed FITS.
"""

from skyscene.candidates.columns import COLUMNS, Column, column_names
from skyscene.candidates.cutouts import CutoutBits, Cutouts, cutout_fits_bytes, make_cutouts
from skyscene.candidates.finder import (
    ZTF_FID,
    CandidateConfig,
    CandidateFinder,
    CandidateFlags,
    CandidateTable,
    candidate_id,
    find_candidates,
    reference_catalog,
)

__all__ = [
    "COLUMNS",
    "ZTF_FID",
    "CandidateConfig",
    "CandidateFinder",
    "CandidateFlags",
    "CandidateTable",
    "Column",
    "CutoutBits",
    "Cutouts",
    "candidate_id",
    "column_names",
    "cutout_fits_bytes",
    "find_candidates",
    "make_cutouts",
    "reference_catalog",
]
