"""Reading a PSF model file by its kind: PSFEx (``.psf``) or Piff (``.piff``)."""

from __future__ import annotations

from pathlib import Path

from skyscene.errors import InputFileError

__all__ = ["read_psf_model"]


def read_psf_model(path: str | Path, **options):
    """A spatially varying PSF model from a file, by suffix.

    ``.psf``: PSFEx (:func:`~skyscene.psf.read_psfex`); ``.piff``: Piff
    (:meth:`~skyscene.psf.PiffPSF.read`, ``options`` such as ``chipnum`` go to it).
    The result goes in ``Exposure.psf``; ``Exposure.psf_at`` evaluates it at a cutout's
    pixels (with the cutout's ``origin``).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".psf":
        from skyscene.psf.psfex import read_psfex

        return read_psfex(path)
    if suffix == ".piff":
        from skyscene.psf.piff_psf import PiffPSF

        return PiffPSF.read(path, **options)
    raise InputFileError(
        f"{path}: unknown PSF model file (expected .psf for PSFEx, .piff for Piff)"
    )
