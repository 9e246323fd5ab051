"""Pixelised PSFs (oversampled effective-PSF images) and GalSim-backed PSFs."""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from skyscene.errors import ParameterError
from skyscene.psf.base import PSFModel
from skyscene.psf.validate import validate_psf_image

__all__ = ["GalSimPSF", "PixelizedPSF"]


class PixelizedPSF(PSFModel):
    """A PSF given as an oversampled image of the pixel-convolved ("effective") PSF.

    Parameters
    ----------
    image : ndarray, shape (n, n)
        Odd-sized, centred image: sample ``[j, i]`` is the effective PSF at offset
        ``((i - c) / oversampling, (j - c) / oversampling)`` native pixels, with
        ``c = (n - 1) / 2``. Normalised here to unit sum.
    oversampling : float
        Image samples per native pixel (``1 / PSF_SAMP`` of PSFEx; may be non-integer).
    order : int
        Spline order of the interpolation (3: cubic; 1: bilinear).
    label : str, optional
        Names the image in validation messages (``"ref.fits: HDU PSF"``).
    expected_sum : float, optional
        The documented normalisation of ``image`` (checked by the validation).
    validate : bool
        Check the image with :func:`~skyscene.psf.validate_psf_image` (negative
        fraction, negative depth, centroid offset, normalisation): a
        :class:`~skyscene.psf.PSFImageWarning` above the soft limits, a
        :class:`~skyscene.errors.ParameterRangeError` beyond the hard ones.

    Notes
    -----
    Rendering interpolates the effective PSF at the offsets of the stamp's pixel
    centres and scales by ``oversampling**2``, so a stamp sums to ~1 for a
    well-sampled image. Outside the image the PSF is zero.
    """

    def __init__(
        self,
        image,
        *,
        oversampling: float = 1.0,
        order: int = 3,
        label: str | None = None,
        expected_sum: float | None = None,
        validate: bool = True,
    ):
        image = np.asarray(image, dtype=float)
        if image.ndim != 2 or image.shape[0] != image.shape[1] or image.shape[0] % 2 == 0:
            raise ParameterError(
                f"PSF image must be square with an odd size, got shape {image.shape}"
            )
        if not np.all(np.isfinite(image)):
            raise ParameterError("PSF image contains non-finite values")
        total = image.sum()
        if not total > 0:
            raise ParameterError(f"PSF image must have a positive sum, got {float(total):g}")
        oversampling = float(oversampling)
        if not (math.isfinite(oversampling) and oversampling > 0):
            raise ParameterError(f"oversampling must be positive, got {oversampling!r}")
        if order not in (1, 3, 5):
            raise ParameterError(f"order must be 1, 3 or 5, got {order!r}")
        if validate:
            validate_psf_image(
                image,
                oversampling=oversampling,
                label=label or "PSF image",
                expected_sum=expected_sum,
            )
        self.image = image / total
        self.oversampling = oversampling
        self.order = order
        self._center = (image.shape[0] - 1) / 2.0
        self._coeffs = (
            ndimage.spline_filter(self.image, order=order, mode="grid-constant")
            if order > 1
            else self.image
        )

    def __repr__(self) -> str:
        return f"PixelizedPSF(shape={self.image.shape}, oversampling={self.oversampling:g})"

    def __reduce__(self):
        return (_rebuild_pixelized, (self.image, self.oversampling, self.order))

    @property
    def radius(self) -> float:
        """Half-width of the image, native pixels."""
        return self._center / self.oversampling

    def pixel_values(self, dx, dy):
        dx = np.asarray(dx, dtype=float)
        dy = np.asarray(dy, dtype=float)
        shape = np.broadcast_shapes(dx.shape, dy.shape)
        u = np.broadcast_to(self._center + dx * self.oversampling, shape).ravel()
        v = np.broadcast_to(self._center + dy * self.oversampling, shape).ravel()
        values = ndimage.map_coordinates(
            self._coeffs, [v, u], order=self.order, mode="grid-constant", cval=0.0, prefilter=False
        )
        return values.reshape(shape) * self.oversampling**2

    def to_pixelized(self, size: int = 25, oversampling: int = 4) -> PixelizedPSF:
        return self


def _rebuild_pixelized(image, oversampling, order):
    # validated when first built: an unpickled copy is not checked (nor warned about) again
    psf = PixelizedPSF(image, oversampling=oversampling, order=order, validate=False)
    # ``image`` is already normalised: dividing it by its sum (1 to rounding) again would
    # change its last bits; keep it exactly, so that a pickle round trip is the identity.
    psf.image = image
    psf._coeffs = (
        ndimage.spline_filter(image, order=order, mode="grid-constant") if order > 1 else image
    )
    return psf


class GalSimPSF(PSFModel):
    """A PSF from any GalSim profile, drawn with GalSim's exact pixel convolution.

    Parameters
    ----------
    profile : galsim.GSObject
        The PSF in arcseconds (e.g. ``galsim.Kolmogorov(fwhm=1.0)``), unit flux.
    pixel_scale : float
        Arcseconds per pixel.

    Notes
    -----
    Each stamp is one ``drawImage`` call (``method="auto"``: convolved with the pixel),
    placed with an offset so that pixel ``(x, y)`` of the stamp has its centre at the
    integer position. For many renders, :meth:`to_pixelized` is much faster.
    """

    def __init__(self, profile, *, pixel_scale: float):
        import galsim  # a core dependency

        self._galsim = galsim
        self.profile = profile.withFlux(1.0)
        self.pixel_scale = float(pixel_scale)

    def __repr__(self) -> str:
        return f"GalSimPSF({self.profile!r}, pixel_scale={self.pixel_scale:g})"

    def render(self, shape, center=None):
        from skyscene.psf.base import _centers

        ny, nx = int(shape[0]), int(shape[1])
        centers, single = _centers(center, (ny, nx))
        out = np.empty((len(centers), ny, nx))
        for i, (cx, cy) in enumerate(centers):
            # GalSim puts the profile at the true centre of the image plus ``offset``;
            # the true centre in 0-based pixels is ((nx-1)/2, (ny-1)/2).
            image = self._galsim.ImageD(nx, ny, scale=self.pixel_scale)
            offset = (cx - (nx - 1) / 2.0, cy - (ny - 1) / 2.0)
            self.profile.drawImage(image=image, offset=offset, method="auto")
            out[i] = image.array
        return out[0] if single else out

    def pixel_values(self, dx, dy):
        raise NotImplementedError("GalSimPSF renders stamps; use render() or to_pixelized()")

    def to_pixelized(self, size: int = 25, oversampling: int = 4) -> PixelizedPSF:
        n = int(size * oversampling) | 1
        pixel = self._galsim.Pixel(self.pixel_scale)
        effective = self._galsim.Convolve(self.profile, pixel)
        image = effective.drawImage(
            nx=n, ny=n, scale=self.pixel_scale / oversampling, method="no_pixel"
        )
        return PixelizedPSF(image.array, oversampling=oversampling)
