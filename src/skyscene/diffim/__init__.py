"""Difference imaging: ZOGY proper image subtraction (Zackay, Ofek & Gal-Yam 2016).

``Zogy(config)(science, reference)`` returns a :class:`ZogyResult` with the proper
difference D, its PSF P_D, flux zeropoint F_D, the scores S and S_corr, PSF-photometry
flux and error images and a bit mask.
"""

from skyscene.diffim._core import ZogyProducts, zogy_products
from skyscene.diffim.fluxratio import FluxRatioFit, fit_flux_ratio
from skyscene.diffim.partition import SubImage, partition
from skyscene.diffim.psf_estimation import PSFEstimate, estimate_psf
from skyscene.diffim.zogy import MaskBits, Zogy, ZogyConfig, ZogyResult, zogy

__all__ = [
    "FluxRatioFit",
    "MaskBits",
    "PSFEstimate",
    "SubImage",
    "Zogy",
    "ZogyConfig",
    "ZogyProducts",
    "ZogyResult",
    "estimate_psf",
    "fit_flux_ratio",
    "partition",
    "zogy",
    "zogy_products",
]
