"""PSF models sharing one protocol, PSFEx reading and PSF shapes from stars.

``psf.render(shape, center=(x, y))`` returns the pixel-integrated PSF of unit total
flux centred at the sub-pixel position ``(x, y)``; an ``(N, 2)`` array of centres
gives ``N`` stamps. See :mod:`skyscene.psf.base`.
"""

from skyscene.psf.analytic import GaussianPSF, MoffatPSF, fwhm_to_sigma, sigma_to_fwhm
from skyscene.psf.base import PSFModel, PSFProtocol
from skyscene.psf.piff_psf import PiffPSF
from skyscene.psf.pixelized import GalSimPSF, PixelizedPSF
from skyscene.psf.psfex import PSFExModel, read_psfex
from skyscene.psf.read import read_psf_model
from skyscene.psf.shape import PSFShape, combine_shapes, estimate_psf_shape, fit_star, moment_sizes
from skyscene.psf.validate import (
    PSFImageLimits,
    PSFImageQuality,
    PSFImageWarning,
    validate_psf_image,
)

__all__ = [
    "GalSimPSF",
    "GaussianPSF",
    "MoffatPSF",
    "PSFExModel",
    "PSFImageLimits",
    "PSFImageQuality",
    "PSFImageWarning",
    "PSFModel",
    "PSFProtocol",
    "PSFShape",
    "PiffPSF",
    "PixelizedPSF",
    "combine_shapes",
    "estimate_psf_shape",
    "fit_star",
    "fwhm_to_sigma",
    "moment_sizes",
    "read_psf_model",
    "read_psfex",
    "sigma_to_fwhm",
    "validate_psf_image",
]
