"""The PSF protocol shared by every PSF model of skyscene.

A PSF model renders the flux fraction that falls in each pixel of a stamp for a
point source of unit total flux at a sub-pixel centre:

``psf.render(shape, center=(x, y))`` -> ``ndarray`` of ``shape``; its sum over the
infinite plane is 1 (a stamp holds slightly less when the wings are cut). Pass an
``(N, 2)`` array of centres to render ``N`` stamps at once, shape ``(N, ny, nx)``.

Pixel convention: 0-based ``(x, y)``, integer values at pixel centres, arrays
indexed ``[y, x]``. Nothing is flipped and there are no half-pixel offsets to add.
"""

from __future__ import annotations

import abc
import functools
from typing import Protocol, runtime_checkable

import numpy as np

from skyscene.errors import ParameterError

__all__ = ["PSFModel", "PSFProtocol", "gauss_legendre_nodes"]


@runtime_checkable
class PSFProtocol(Protocol):
    """What any PSF object passed to skyscene must provide."""

    def render(self, shape: tuple[int, int], center=None) -> np.ndarray: ...


@functools.lru_cache(maxsize=64)
def gauss_legendre_nodes(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of ``n``-point Gauss–Legendre quadrature on ``[-0.5, 0.5]`` (read-only)."""
    x, w = np.polynomial.legendre.leggauss(int(n))
    x, w = 0.5 * x, 0.5 * w
    x.flags.writeable = False
    w.flags.writeable = False
    return x, w


def _centers(center, shape) -> tuple[np.ndarray, bool]:
    if center is None:
        ny, nx = shape
        return np.array([[(nx - 1) / 2.0, (ny - 1) / 2.0]]), True
    arr = np.asarray(center, dtype=float)
    single = arr.ndim == 1
    arr = np.atleast_2d(arr)
    if arr.shape[-1] != 2 or arr.ndim != 2:
        raise ParameterError(
            f"center must be (x, y) or an (N, 2) array, got shape {np.shape(center)}"
        )
    if not np.all(np.isfinite(arr)):
        raise ParameterError("center contains non-finite values")
    return arr, single


class PSFModel(abc.ABC):
    """Base class of skyscene's PSF models.

    Subclasses implement :meth:`pixel_values`, the pixel-integrated PSF at offsets
    ``(dx, dy)`` of pixel centres from the source (arrays that broadcast together).
    Everything else (stamps, many centres, oversampled images) follows from it.
    """

    @abc.abstractmethod
    def pixel_values(self, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:  # pragma: no cover
        """Fraction of the flux falling in the pixel centred at offset ``(dx, dy)``."""

    def render(self, shape: tuple[int, int], center=None) -> np.ndarray:
        """Render the PSF in a stamp of ``shape = (ny, nx)``.

        Parameters
        ----------
        shape : tuple of int
            ``(ny, nx)``.
        center : (x, y) or array of shape (N, 2), optional
            Source position(s) in stamp pixels; default: the stamp centre.

        Returns
        -------
        ndarray
            Shape ``(ny, nx)`` for one centre, ``(N, ny, nx)`` for ``N`` centres.
        """
        ny, nx = (int(shape[0]), int(shape[1]))
        if ny < 1 or nx < 1:
            raise ParameterError(f"shape must be positive, got {shape}")
        centers, single = _centers(center, (ny, nx))
        dx = np.arange(nx)[None, None, :] - centers[:, 0, None, None]
        dy = np.arange(ny)[None, :, None] - centers[:, 1, None, None]
        out = self.pixel_values(dx, dy)
        out = np.broadcast_to(out, (len(centers), ny, nx))
        return np.array(out[0]) if single else np.array(out)

    def at(self, x: float, y: float) -> PSFModel:
        """The PSF at image position ``(x, y)``: ``self`` for a constant PSF."""
        return self

    def to_pixelized(self, size: int = 25, oversampling: int = 4):
        """Sample this PSF as a :class:`~skyscene.psf.PixelizedPSF`.

        The image holds the pixel-convolved PSF at a spacing of ``1 / oversampling``
        pixels (``size`` native pixels across, made odd), normalised to unit sum. The
        samples of a model are not re-validated (:func:`~skyscene.psf.validate_psf_image`
        is for images from files or stars).
        """
        from skyscene.psf.pixelized import PixelizedPSF

        n = int(size * oversampling) | 1
        offsets = (np.arange(n) - (n - 1) / 2) / oversampling
        image = self.pixel_values(offsets[None, :], offsets[:, None])
        image = np.broadcast_to(image, (n, n)).astype(float)
        return PixelizedPSF(image / image.sum(), oversampling=oversampling, validate=False)
