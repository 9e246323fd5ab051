"""Conversion between :class:`~skyscene.io.Exposure` and ``astropy.nddata.CCDData``.

The noise convention of skyscene: in memory a **variance** (``inf`` where masked); on
disk a noise HDU whose ``UTYPE`` (the key ``CCDData`` reads) names the convention, with
``0`` marking pixels without data and the mask HDU as the authority. Exposures store
``WGT`` = inverse variance (``UTYPE = 'InverseVariance'``, the weight map SExtractor,
SWarp and PSFEx read); calibration masters store ``VAR`` = variance
(``UTYPE = 'VarianceUncertainty'``, exact round trip). Readers accept any of the
three astropy conventions (``InverseVariance``, ``VarianceUncertainty``,
``StdDevUncertainty``) under any of the usual HDU names.
"""

from __future__ import annotations

import numpy as np

from skyscene.errors import DataError, ParameterError
from skyscene.io.exposure import Exposure

__all__ = ["exposure_from_ccddata", "exposure_to_ccddata"]

_KINDS = {"ivar": "ivar", "var": "var", "std": "std"}


def exposure_to_ccddata(exposure: Exposure):
    """``astropy.nddata.CCDData`` of ``exposure`` (see :meth:`Exposure.to_ccddata`)."""
    from astropy import units as u
    from astropy.nddata import CCDData, InverseVariance

    from skyscene.io.fits import exposure_header

    unit = u.Unit(exposure.unit, parse_strict="silent")
    header = exposure_header(exposure)
    wcs = exposure.wcs.deepcopy() if exposure.wcs is not None else None
    return CCDData(
        exposure.data.copy(),
        unit=unit,
        uncertainty=InverseVariance(exposure.weight, unit=unit**-2),
        mask=exposure.mask.copy(),
        wcs=wcs,
        meta=header,
    )


def _variance(ccd, where: str) -> np.ndarray | None:
    uncertainty = ccd.uncertainty
    if uncertainty is None:
        return None
    kind = _KINDS.get(getattr(uncertainty, "uncertainty_type", ""))
    if kind is None:
        raise ParameterError(
            f"{where}: uncertainty type {type(uncertainty).__name__} is not a standard "
            "deviation, variance or inverse variance",
            name="ccd.uncertainty",
            value=type(uncertainty).__name__,
        )
    arr = np.asarray(uncertainty.array, dtype=float)
    if arr.shape != ccd.data.shape:
        raise DataError(f"{where}: uncertainty shape {arr.shape} differs from {ccd.data.shape}")
    if uncertainty.unit is not None and ccd.unit is not None:
        power = {"ivar": -2, "var": 2, "std": 1}[kind]
        arr = arr * float(uncertainty.unit.to(ccd.unit**power))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if kind == "ivar":
            return np.where(arr > 0, 1.0 / arr, np.inf)
        return arr if kind == "var" else arr**2


def _as_header(meta):
    """A FITS header of ``meta`` (a Header is copied; entries a card cannot hold are dropped)."""
    from astropy.io import fits

    if isinstance(meta, fits.Header):
        return meta.copy()
    header = fits.Header()
    for key, value in dict(meta or {}).items():
        if isinstance(value, str | int | float | bool | np.integer | np.floating):
            try:
                header[str(key)] = value
            except (ValueError, KeyError):
                continue
    return header


def exposure_from_ccddata(ccd, *, profile=None) -> Exposure:
    """:class:`Exposure` of a ``CCDData`` (see :meth:`Exposure.from_ccddata`)."""
    from skyscene.errors import HeaderError
    from skyscene.io.fits import _header_fields, bunit
    from skyscene.io.headers import parse_header

    header = _as_header(ccd.meta)
    name = str(header.get("FILENAME", "") or "<CCDData>")
    variance = _variance(ccd, name)
    try:
        info = parse_header(header, filename=name, profile=profile)
    except HeaderError:
        info = None
    unit = ccd.unit.to_string() if ccd.unit is not None else bunit(header, name)
    for key in ("BUNIT",):  # the unit lives in Exposure.unit; the header follows it
        header.remove(key, ignore_missing=True)
    return Exposure(
        data=np.asarray(ccd.data, dtype=float),
        variance=variance,  # type: ignore[arg-type]  # None: unit weights
        mask=None if ccd.mask is None else np.asarray(ccd.mask, bool),  # type: ignore[arg-type]
        wcs=ccd.wcs.deepcopy() if ccd.wcs is not None else None,
        meta={"header": header},
        unit=unit or "1",
        **_header_fields(info, header, name),
    )
