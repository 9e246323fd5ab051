"""Piff PSF models (``pip install skyscene[piff]``) through the PSF protocol.

Piff (Jarvis et al. 2021) models the PSF over a focal plane; a model file (``.piff``)
holds the model, its interpolation and the WCS of every chip. :class:`PiffPSF` evaluates
it at a position as an oversampled effective PSF (:class:`~skyscene.psf.PixelizedPSF`),
so every consumer (scene modelling, photometry) renders it through the same path as a
``PSF`` HDU or a PSFEx model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from skyscene.errors import InputFileError, ParameterError, require
from skyscene.psf.base import PSFModel
from skyscene.psf.pixelized import PixelizedPSF

__all__ = ["PiffPSF"]


class PiffPSF(PSFModel):
    """A Piff PSF, evaluated locally as a pixelised effective PSF.

    Parameters
    ----------
    psf : piff.PSF
        The model (see :meth:`read`).
    chipnum : int, optional
        Chip of a multi-chip model (Piff's ``chipnum``); None for a single-chip model.
    size : int
        Native-pixel size of the local PSF image (odd; default 41).
    oversampling : int
        Samples per native pixel of that image (default 3).
    image_origin : float
        The GalSim image coordinate of the first pixel of the images the model was
        built from: 1 for FITS images (GalSim's and Piff's default), so skyscene's
        0-based pixel ``(x, y)`` is Piff's ``(x + 1, y + 1)``.
    properties : dict, optional
        Extra interpolation properties the model needs (e.g. a colour).
    position : (x, y), optional
        Default 0-based position for :meth:`render` without :meth:`at`.
    filename : str
        For messages.

    Notes
    -----
    :meth:`at` takes Piff's profile at the position (``get_profile``), maps it to
    pixel coordinates with the local Jacobian of the chip's WCS, convolves it with the
    pixel unless the model already includes it (Piff's ``method="no_pixel"``), and samples
    it at ``1 / oversampling`` pixel; the image is normalised to unit sum, like a ``PSF``
    HDU. The profile keeps any centroid offset the model has, as ``piff.PSF.draw`` does.
    """

    def __init__(
        self,
        psf,
        *,
        chipnum: int | None = None,
        size: int = 41,
        oversampling: int = 3,
        image_origin: float = 1.0,
        properties: dict | None = None,
        position: tuple[float, float] | None = None,
        filename: str = "",
    ):
        self._galsim = require("galsim", "piff")
        if not (isinstance(size, int) and size >= 3):
            raise ParameterError(f"PiffPSF size must be an int >= 3, got {size!r}")
        if not (isinstance(oversampling, int) and oversampling >= 1):
            raise ParameterError(
                f"PiffPSF oversampling must be a positive int, got {oversampling!r}"
            )
        chips = list(getattr(psf, "wcs", {}) or {})
        if chipnum is None and len(chips) == 1:
            chipnum = chips[0]
        if chipnum is None or chipnum not in chips:
            raise ParameterError(
                f"{filename or 'Piff model'}: chipnum must be one of {chips}, got {chipnum!r}"
            )
        self.psf = psf
        self.chipnum = chipnum
        self.size = size | 1
        self.oversampling = oversampling
        self.image_origin = float(image_origin)
        self.properties = dict(properties or {})
        self.position = position
        self.filename = filename

    @classmethod
    def read(cls, path: str | Path, **options) -> PiffPSF:
        """Read a ``.piff`` file (``options`` as the constructor's)."""
        piff = require("piff", "piff")
        path = Path(path)
        if not path.is_file():
            raise InputFileError(f"{path}: no such Piff file")
        try:
            psf = piff.read(str(path))
        except Exception as exc:  # fitsio / Piff raise many kinds
            raise InputFileError(f"{path}: not a readable Piff model ({exc})") from exc
        return cls(psf, filename=str(path), **options)

    def __repr__(self) -> str:
        name = self.filename or type(self.psf).__name__
        return f"PiffPSF({name!r}, chipnum={self.chipnum!r})"

    def at(self, x: float, y: float) -> PixelizedPSF:
        """The local effective PSF at 0-based image position ``(x, y)``."""
        galsim = self._galsim
        gx, gy = float(x) + self.image_origin, float(y) + self.image_origin
        profile, method = self.psf.get_profile(gx, gy, chipnum=self.chipnum, **self.properties)
        local = self.psf.wcs[self.chipnum].local(galsim.PositionD(gx, gy))
        in_pixels = local.toImage(profile)
        if method != "no_pixel":
            in_pixels = galsim.Convolve(in_pixels, galsim.Pixel(1.0))
        n = self.size * self.oversampling | 1
        image = in_pixels.drawImage(nx=n, ny=n, scale=1.0 / self.oversampling, method="no_pixel")
        return PixelizedPSF(np.asarray(image.array, dtype=float), oversampling=self.oversampling)

    def pixel_values(self, dx, dy):
        if self.position is None:
            raise ParameterError(
                f"{self!r} varies over the chip: use .at(x, y) (or give position=(x, y))"
            )
        return self.at(*self.position).pixel_values(dx, dy)
