"""Quality checks of PSF images (pixelised PSFs built from images, files or stars).

:func:`validate_psf_image` measures what makes a PSF image unusable for photometry and
difference imaging — a strong negative ring or negative total, a centroid far from the
image centre, a sum far from the documented normalisation — and warns
(:class:`PSFImageWarning`) above a *soft* limit or raises
:class:`~skyscene.errors.ParameterRangeError` (carrying ``name``, ``value``, ``min``,
``max``) beyond a *hard* one. :class:`~skyscene.psf.PixelizedPSF` runs it at
construction, so it covers PSF HDUs read by :mod:`skyscene.io`, PSFEx and Piff models
evaluated at a position, and the PSFs that ZOGY estimates from stars.

The default limits (:data:`DEFAULT_PSF_LIMITS`, documented in ``docs/diffim.md``) leave a
margin of ~100x over the worst values of real PSFs (DES PSFEx model of DECam exposure
154912 CCD 12 over the whole chip: negative fraction 1.7e-5, most negative pixel
-1.8e-4 of the peak, centroid 0.23 px from the centre at the chip corners; Piff and
analytic models: no negative pixel, centroid 0).

Examples
--------
>>> import numpy as np
>>> from skyscene.psf import GaussianPSF
>>> image = GaussianPSF(1.5).render((15, 15))
>>> quality = validate_psf_image(image)
>>> round(quality.negative_fraction, 3), round(quality.centroid_offset, 3)
(0.0, 0.0)
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass

import numpy as np

from skyscene._validation import check_positive, check_range
from skyscene.errors import ParameterError, ParameterRangeError, SkysceneWarning

__all__ = [
    "DEFAULT_PSF_LIMITS",
    "PSFImageLimits",
    "PSFImageQuality",
    "PSFImageWarning",
    "validate_psf_image",
]


class PSFImageWarning(SkysceneWarning):
    """A PSF image is beyond a soft quality limit (see :class:`PSFImageLimits`)."""


@dataclass(frozen=True, kw_only=True)
class PSFImageLimits:
    """Soft (warning) and hard (error) limits of :func:`validate_psf_image`.

    Parameters
    ----------
    negative_fraction_soft, negative_fraction_hard : float
        Total of the negative pixels over the total of the positive ones
        (``-Σ min(I, 0) / Σ max(I, 0)``). Defaults 0.01 and 0.10.
    min_to_peak_soft, min_to_peak_hard : float
        Most negative pixel over the peak, as a positive depth (``-min(I) / max(I)``):
        a ring down to −16 % of the peak has depth 0.16. Defaults 0.02 and 0.10.
    centroid_soft, centroid_hard : float
        Distance of the centroid of the positive part from the image centre, native
        pixels. Defaults 0.5 and 2.0.
    sum_tolerance_soft, sum_tolerance_hard : float
        Relative deviation of the sum from the expected normalisation, checked only when
        one is expected (a ``PSF`` HDU is documented to have unit sum). Defaults 0.01
        and 1.0 (a sum outside ``(0, 2]`` times the expected one).
    """

    negative_fraction_soft: float = 0.01
    negative_fraction_hard: float = 0.10
    min_to_peak_soft: float = 0.02
    min_to_peak_hard: float = 0.10
    centroid_soft: float = 0.5
    centroid_hard: float = 2.0
    sum_tolerance_soft: float = 0.01
    sum_tolerance_hard: float = 1.0

    def __post_init__(self) -> None:
        for quantity in ("negative_fraction", "min_to_peak", "centroid", "sum_tolerance"):
            soft = check_positive(
                f"PSFImageLimits.{quantity}_soft", getattr(self, f"{quantity}_soft")
            )
            check_range(
                f"PSFImageLimits.{quantity}_hard", getattr(self, f"{quantity}_hard"), low=soft
            )

    def to_dict(self) -> dict:
        """The limits as a plain dict (for output metadata)."""
        return dataclasses.asdict(self)


DEFAULT_PSF_LIMITS = PSFImageLimits()


@dataclass(frozen=True, kw_only=True)
class PSFImageQuality:
    """What :func:`validate_psf_image` measured.

    Attributes
    ----------
    total : float
        Sum of the image.
    negative_fraction : float
        ``-Σ min(I, 0) / Σ max(I, 0)``.
    min_to_peak : float
        ``-min(I) / max(I)`` (0 when no pixel is negative).
    centroid : (float, float)
        ``(dx, dy)`` of the centroid of the positive part from the image centre, native
        pixels.
    warnings : tuple of str
        The soft limits exceeded (empty for a clean image).
    """

    total: float
    negative_fraction: float
    min_to_peak: float
    centroid: tuple[float, float]
    warnings: tuple[str, ...] = ()

    @property
    def centroid_offset(self) -> float:
        """Distance of the centroid from the centre, native pixels."""
        return float(math.hypot(*self.centroid))

    @property
    def ok(self) -> bool:
        """No soft limit exceeded."""
        return not self.warnings


def validate_psf_image(
    image,
    *,
    oversampling: float = 1.0,
    label: str = "PSF image",
    expected_sum: float | None = None,
    limits: PSFImageLimits = DEFAULT_PSF_LIMITS,
    warn: bool = True,
) -> PSFImageQuality:
    """Check a PSF image against soft and hard quality limits.

    Parameters
    ----------
    image : ndarray, shape (n, m)
        The PSF image (any normalisation, centred).
    oversampling : float
        Image samples per native pixel (centroid offsets are reported in native pixels).
    label : str
        Names the image in messages (``"ref.fits: HDU PSF"``).
    expected_sum : float, optional
        The documented normalisation; checked only when given.
    limits : PSFImageLimits
        Soft and hard limits.
    warn : bool
        Emit a :class:`PSFImageWarning` per soft limit exceeded (otherwise only recorded
        in :attr:`PSFImageQuality.warnings`).

    Returns
    -------
    PSFImageQuality

    Raises
    ------
    ParameterError
        Non-finite values, a non-positive sum or peak.
    ParameterRangeError
        A hard limit exceeded; ``name`` is the quantity, ``value`` its value, ``max``
        the limit.
    """
    image = np.asarray(image, dtype=float)
    if image.ndim != 2 or image.size == 0:
        raise ParameterError(
            f"{label}: a PSF image must be 2-D, got shape {image.shape}", name=label
        )
    if not np.all(np.isfinite(image)):
        raise ParameterError(f"{label}: PSF image contains non-finite values", name=label)
    total = float(image.sum())
    peak = float(image.max())
    if not (total > 0 and peak > 0):
        raise ParameterError(
            f"{label}: PSF image must have a positive sum, got {total:g}", name=label, value=total
        )
    positive = np.clip(image, 0.0, None)
    pos_sum = float(positive.sum())
    negative_fraction = float(pos_sum - total) / pos_sum
    min_to_peak = max(-float(image.min()) / peak, 0.0)
    ny, nx = image.shape
    cy, cx = (ny - 1) / 2.0, (nx - 1) / 2.0
    dx = float(positive.sum(axis=0) @ np.arange(nx)) / pos_sum - cx
    dy = float(positive.sum(axis=1) @ np.arange(ny)) / pos_sum - cy
    centroid = (dx / oversampling, dy / oversampling)
    offset = math.hypot(*centroid)
    checks = [
        ("negative_fraction", negative_fraction, "negative fraction (negative/positive total)"),
        ("min_to_peak", min_to_peak, "negative depth (most negative pixel / peak)"),
        ("centroid", offset, "centroid offset from the centre (native pixels)"),
    ]
    if expected_sum is not None:
        deviation = abs(total / float(expected_sum) - 1.0)
        checks.append(
            ("sum_tolerance", deviation, f"relative deviation of the sum from {expected_sum:g}")
        )
    soft: list[str] = []
    for name, value, what in checks:
        hard_limit = getattr(limits, f"{name}_hard")
        soft_limit = getattr(limits, f"{name}_soft")
        if value > hard_limit:
            raise ParameterRangeError(
                f"{label}: {what} = {value:.3g} is beyond the hard limit {hard_limit:g}; "
                "not a usable PSF",
                name=name,
                value=value,
                min=0.0,
                max=hard_limit,
            )
        if value > soft_limit:
            soft.append(f"{what} = {value:.3g} > {soft_limit:g}")
    if soft and warn:
        warnings.warn(
            f"{label}: {'; '.join(soft)} (soft limits of PSFImageLimits)",
            PSFImageWarning,
            stacklevel=3,
        )
    return PSFImageQuality(
        total=total,
        negative_fraction=negative_fraction,
        min_to_peak=min_to_peak,
        centroid=centroid,
        warnings=tuple(soft),
    )
