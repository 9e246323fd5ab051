"""The columns of a :class:`~skyscene.candidates.CandidateTable`, written once.

Names follow the ZTF alert schema 4.02 ``candidate`` record wherever ZTF has the
quantity; the last block is skyscene's own. ``docs/candidates.md`` documents the same
list (a test keeps the two in step). Each entry: name, numpy dtype, unit (astropy unit
string, "" for dimensionless) and a one-line description.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["COLUMNS", "Column", "column_names"]


class Column(NamedTuple):
    """One column: ``name``, numpy ``dtype``, astropy ``unit`` string, ``description``."""

    name: str
    dtype: str
    unit: str
    description: str


COLUMNS: tuple[Column, ...] = (
    # --- ZTF 4.02 candidate fields
    Column(
        "candid", "int64", "", "candidate id: unique, stable 63-bit hash of pair id, position, sign"
    ),
    Column("jd", "float64", "d", "Julian date (UTC) at the start of the science exposure"),
    Column("fid", "int32", "", "filter id (ZTF: 1=g, 2=r, 3=i; other bands 0 unless configured)"),
    Column("band", "str", "", "filter name of the science exposure"),
    Column("ra", "float64", "deg", "right ascension of the candidate (science WCS)"),
    Column("dec", "float64", "deg", "declination of the candidate (science WCS)"),
    Column("xpos", "float64", "pix", "x position on the science grid, 0-based"),
    Column("ypos", "float64", "pix", "y position on the science grid, 0-based"),
    Column("isdiffpos", "str", "", "'t': brighter in the science image; 'f': fainter (faded)"),
    Column("scorr", "float64", "", "peak-pixel S_corr (ZOGY eq. 25), signed"),
    Column("magpsf", "float64", "mag", "magnitude of |PSF-fit flux| on D (science zeropoint)"),
    Column("sigmapsf", "float64", "mag", "1-sigma error of magpsf (noise model, source noise in)"),
    Column("chipsf", "float64", "", "reduced chi-square of the PSF fit on D"),
    Column("magap", "float64", "mag", "aperture magnitude on D, aperture-corrected with P_D"),
    Column("sigmagap", "float64", "mag", "1-sigma error of magap"),
    Column("magdiff", "float64", "mag", "magap - magpsf"),
    Column("magfromlim", "float64", "mag", "diffmaglim - magap"),
    Column("diffmaglim", "float64", "mag", "5-sigma point-source limit of this subtraction"),
    Column("magzpsci", "float64", "mag", "zeropoint of the science exposure"),
    Column("exptime", "float64", "s", "exposure time of the science exposure"),
    Column("fwhm", "float64", "pix", "FWHM of the candidate on D, Gaussian core: 2.3548 sqrt(a b)"),
    Column("aimage", "float64", "pix", "RMS along the major axis (window-corrected moments on D)"),
    Column("bimage", "float64", "pix", "RMS along the minor axis (window-corrected moments on D)"),
    Column("aimagerat", "float64", "", "aimage / fwhm"),
    Column("bimagerat", "float64", "", "bimage / fwhm"),
    Column("elong", "float64", "", "aimage / bimage (>= 1)"),
    Column("nneg", "int32", "", "pixels of the opposite sign in the 5x5 box of D"),
    Column("nbad", "int32", "", "bad pixels (masked, saturated, off-image) in the 5x5 box"),
    Column(
        "sumrat", "float64", "", "sum / sum|.| of the 3x3-median-filtered 5x5 box of D (signed)"
    ),
    Column("mindtoedge", "float64", "pix", "distance to the nearest edge of the science image"),
    Column("distnr", "float64", "pix", "distance to the nearest reference-catalog source"),
    Column("magnr", "float64", "mag", "magnitude of that source (reference zeropoint)"),
    Column("sigmagnr", "float64", "mag", "1-sigma error of magnr"),
    Column("ranr", "float64", "deg", "right ascension of that source"),
    Column("decnr", "float64", "deg", "declination of that source"),
    # --- skyscene's own
    Column("pair_id", "str", "", "identifier of the science/reference pair"),
    Column("psfflux", "float64", "adu", "PSF-fit flux on D in science counts, signed"),
    Column("psffluxerr", "float64", "adu", "1-sigma error of psfflux"),
    Column(
        "sharpness", "float64", "", "peak pixel of D over the fitted PSF's peak (1: point source)"
    ),
    Column("roundness", "float64", "", "1 - bimage / aimage (0: round)"),
    Column(
        "dipole", "float64", "", "strongest opposite-sign S_corr nearby over |scorr|, in [0, 1]"
    ),
    Column("flags", "int32", "", "CandidateFlags bits (0: clean)"),
)


def column_names() -> list[str]:
    """Names of :data:`COLUMNS`, in order."""
    return [c.name for c in COLUMNS]
