"""Reader for PSFEx ``.psf`` files (spatially varying pixelised PSF models)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from skyscene.errors import HeaderError, InputFileError
from skyscene.psf.base import PSFModel
from skyscene.psf.pixelized import PixelizedPSF

__all__ = ["PSFExModel", "read_psfex"]


class PSFExModel(PSFModel):
    """A PSFEx model: polynomial in image position of pixelised basis images.

    Parameters
    ----------
    basis : ndarray, shape (n_terms, n, n)
        The ``PSF_MASK`` components.
    poly_zero, poly_scale : tuple of float
        ``POLZERO1/2`` and ``POLSCAL1/2`` (in PSFEx's 1-based pixel coordinates).
    degree : int
        ``POLDEG1``.
    sampling : float
        ``PSF_SAMP``: native pixels per PSF-image sample.
    filename : str, optional
        For messages.

    Notes
    -----
    The local PSF at 0-based ``(x, y)`` is ``Σ_k c_k(x, y) basis_k`` with terms
    ordered ``x^i y^j`` for ``j = 0..d``, ``i = 0..d-j`` in the scaled coordinates
    ``((x + 1 - POLZERO1) / POLSCAL1, (y + 1 - POLZERO2) / POLSCAL2)``. PSFEx models
    already include the pixel response, so each local PSF is an effective PSF
    (:class:`PixelizedPSF` with ``oversampling = 1 / PSF_SAMP``).
    """

    def __init__(
        self, basis, *, poly_zero, poly_scale, degree: int, sampling: float, filename: str = ""
    ):
        self.basis = np.asarray(basis, dtype=float)
        self.poly_zero = tuple(float(v) for v in poly_zero)
        self.poly_scale = tuple(float(v) for v in poly_scale)
        self.degree = int(degree)
        self.sampling = float(sampling)
        self.filename = filename
        n_terms = (self.degree + 1) * (self.degree + 2) // 2
        if self.basis.shape[0] != n_terms:
            raise HeaderError(
                f"{filename}: PSF_MASK has {self.basis.shape[0]} components, "
                f"POLDEG1={self.degree} needs {n_terms}",
                filename=filename,
                key="POLDEG1",
            )

    def __repr__(self) -> str:
        return f"PSFExModel({self.filename!r}, degree={self.degree}, sampling={self.sampling:g})"

    def coefficients(self, x: float, y: float) -> np.ndarray:
        """Polynomial weights of the basis images at 0-based image position ``(x, y)``."""
        u = (x + 1.0 - self.poly_zero[0]) / self.poly_scale[0]
        v = (y + 1.0 - self.poly_zero[1]) / self.poly_scale[1]
        terms = [u**i * v**j for j in range(self.degree + 1) for i in range(self.degree + 1 - j)]
        return np.asarray(terms)

    def image_at(self, x: float, y: float) -> np.ndarray:
        """The PSFEx image (not normalised) at 0-based image position ``(x, y)``."""
        return np.tensordot(self.coefficients(x, y), self.basis, axes=1)

    def at(self, x: float, y: float) -> PixelizedPSF:
        """The local effective PSF at 0-based image position ``(x, y)``."""
        return PixelizedPSF(self.image_at(x, y), oversampling=1.0 / self.sampling)

    def pixel_values(self, dx, dy):
        # Without a position, use the model at its polynomial origin.
        x0, y0 = self.poly_zero[0] - 1.0, self.poly_zero[1] - 1.0
        return self.at(x0, y0).pixel_values(dx, dy)


def read_psfex(path: str | Path) -> PSFExModel:
    """Read a PSFEx ``.psf`` file.

    Raises
    ------
    InputFileError
        The file is missing or has no ``PSF_DATA`` table.
    HeaderError
        A required keyword (``POLDEG1``, ``PSF_SAMP``, ...) is missing, or the file
        uses context parameters other than ``X_IMAGE``/``Y_IMAGE``.
    """
    from astropy.io import fits

    path = Path(path)
    name = str(path)
    if not path.is_file():
        raise InputFileError(f"{name}: no such file")
    try:
        with fits.open(path, memmap=False) as hdul:
            if "PSF_DATA" not in hdul:
                raise InputFileError(f"{name}: no PSF_DATA extension (not a PSFEx file)")
            hdu = hdul["PSF_DATA"]
            header = hdu.header.copy()
            basis = np.asarray(hdu.data["PSF_MASK"][0], dtype=float)
    except OSError as exc:
        raise InputFileError(f"{name}: cannot read: {exc}") from exc

    def key(k):
        if k not in header:
            raise HeaderError(f"{name}: missing PSFEx keyword {k}", filename=name, key=k)
        return header[k]

    naxis = int(key("POLNAXIS"))
    if naxis == 0:
        return PSFExModel(
            basis[:1],
            poly_zero=(0, 0),
            poly_scale=(1, 1),
            degree=0,
            sampling=float(key("PSF_SAMP")),
            filename=name,
        )
    names = [str(key(f"POLNAME{i}")).strip() for i in (1, 2)]
    if naxis != 2 or names != ["X_IMAGE", "Y_IMAGE"]:
        raise HeaderError(
            f"{name}: only PSFEx models in X_IMAGE, Y_IMAGE are supported, got {names}",
            filename=name,
            key="POLNAME1",
        )
    return PSFExModel(
        basis,
        poly_zero=(key("POLZERO1"), key("POLZERO2")),
        poly_scale=(key("POLSCAL1"), key("POLSCAL2")),
        degree=int(key("POLDEG1")),
        sampling=float(key("PSF_SAMP")),
        filename=name,
    )
