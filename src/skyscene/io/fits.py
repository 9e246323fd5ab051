"""Reading and writing :class:`~skyscene.io.Exposure` FITS files.

Layout (see ``docs/DESIGN.md``): image HDU ``SCI`` (or the primary HDU) with a WCS
header and ``MJD-OBS``, ``EXPTIME``, ``FILTER``, ``MAGZERO``, optional ``GAIN``,
``RDNOISE``, ``SATURATE``; HDU ``WGT`` (inverse variance, 0 = no data); optional
``MSK`` (int, 0 = good); optional ``PSF`` (pixelised, odd size, centred, unit sum,
``PSFSAMP`` = oversampling factor). A cutout records its place in the parent image with
IRAF's ``LTV1``/``LTV2`` (``Exposure.origin = (−LTV1, −LTV2)``), so that a spatially
varying PSF model of the parent (PSFEx, Piff) is evaluated at the right pixels.

Bad input is refused at read time with one line naming the file and the key or HDU
(:class:`~skyscene.errors.InputFileError` for truncated or corrupt data,
:class:`~skyscene.errors.HeaderError` for an unparsable card or a non-finite WCS
keyword); non-physical pixel values are masked and counted (see :func:`read_exposure`).
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from skyscene._stats import clipped_mean_std
from skyscene.errors import DataError, HeaderError, InputFileError
from skyscene.io._atomic import atomic_path
from skyscene.io.exposure import Exposure
from skyscene.io.headers import InstrumentProfile, parse_header

__all__ = [
    "NONPHYSICAL_SCALE",
    "bunit",
    "check_cards",
    "exposure_header",
    "is_fits",
    "nonphysical_mask",
    "open_fits",
    "read_exposure",
    "read_header",
    "write_exposure",
]

log = logging.getLogger(__name__)

_FITS_MAGIC = b"SIMPLE  ="

#: A pixel further than ``NONPHYSICAL_SCALE`` robust scales from the image median is
#: not a measurement (see :func:`nonphysical_mask`).
NONPHYSICAL_SCALE = 1e8

# Numeric WCS keywords: each must be a finite number when present.
_WCS_NUMERIC = re.compile(
    r"^(CRVAL|CRPIX|CDELT|CROTA)[0-9][A-Z]?$|^(CD|PC)[0-9]_[0-9][A-Z]?$"
    r"|^(A|B|AP|BP)_([0-9]_[0-9]|ORDER)$|^PV[0-9]_[0-9]+[A-Z]?$"
)
_STRUCTURAL = ("SIMPLE", "BITPIX", "NAXIS", "EXTEND", "")


def is_fits(path: str | Path) -> bool:
    """True if ``path`` starts with a FITS primary header (gzip-compressed files too)."""
    path = Path(path)
    try:
        if path.suffix == ".gz":
            import gzip

            with gzip.open(path, "rb") as fh:
                return fh.read(9) == _FITS_MAGIC
        with open(path, "rb") as fh:
            return fh.read(9) == _FITS_MAGIC
    except OSError:
        return False


def open_fits(path: str | Path):
    """Open a FITS file (``astropy.io.fits.HDUList``, not memory-mapped) or raise.

    Raises
    ------
    InputFileError
        Missing, not FITS, or unreadable; the message names the file.
    """
    from astropy.io import fits

    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{path}: no such file")
    if not is_fits(path):
        raise InputFileError(f"{path}: not a FITS file")
    try:
        return fits.open(path, memmap=False)
    except OSError as exc:
        raise InputFileError(f"{path}: cannot read FITS file: {exc}") from exc


@contextlib.contextmanager
def _quiet_fits() -> Iterator[None]:
    """Silence astropy's verification and truncation warnings: the errors raised say it."""
    from astropy.io.fits.verify import VerifyWarning
    from astropy.utils.exceptions import AstropyUserWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", VerifyWarning)
        warnings.filterwarnings("ignore", message=".*truncated", category=AstropyUserWarning)
        yield


def _hdu_data(hdu, filename: str, label: str | None = None):
    """``hdu.data``, or InputFileError naming the file and HDU when it is truncated/corrupt."""
    try:
        return hdu.data
    except (ValueError, TypeError, OSError, IndexError) as exc:
        label = label or hdu.name or "PRIMARY"
        raise InputFileError(
            f"{filename}: HDU {label} is truncated or corrupt ({exc})".replace("\n", " ")
        ) from exc


def check_cards(header, filename: str) -> None:
    """Raise HeaderError naming the first card of ``header`` that does not parse."""
    from astropy.io.fits.verify import VerifyError

    for card in header.cards:
        try:
            card.value  # noqa: B018 - parsing is lazy: this is the check
        except (VerifyError, ValueError) as exc:
            image = str(getattr(card, "_image", "") or "").strip()
            raise HeaderError(
                f"{filename}: header card {card.keyword} cannot be parsed ({image!r})",
                filename=filename,
                key=card.keyword,
            ) from exc


def _image_hdu(hdul, filename: str, by_name: dict | None = None):
    by_name = by_name if by_name is not None else {hdu.name: hdu for hdu in hdul}
    if "SCI" in by_name:
        return by_name["SCI"]
    for hdu in hdul:
        if not getattr(hdu, "is_image", False):
            continue
        data = _hdu_data(hdu, filename)
        if data is not None and data.ndim == 2:
            return hdu
    raise InputFileError(f"{filename}: no 2-D image HDU (expected 'SCI' or a primary image)")


def read_header(path: str | Path, *, hdu: int | str | None = None):
    """The checked header of an image: ``SCI`` (or ``hdu``), completed by the primary's.

    Every card is parsed; keywords of the primary header missing from the image HDU
    are inherited (as :func:`read_exposure` does). No pixel is read.

    Raises
    ------
    InputFileError
        Missing, unreadable or non-FITS file, or no such HDU.
    HeaderError
        A card does not parse (``CRVAL1 = NaN``); the message names the file and key.
    """
    path = Path(path)
    name = str(path)
    with _quiet_fits(), open_fits(path) as hdul:
        if hdu is None:
            target = hdul["SCI"] if "SCI" in hdul else hdul[0]
        else:
            try:
                target = hdul[hdu]
            except (KeyError, IndexError):
                raise InputFileError(f"{name}: no HDU {hdu!r}") from None
        return _merged_header(target, hdul, name)


def _merged_header(sci, hdul, name: str):
    check_cards(sci.header, name)
    header = sci.header.copy()
    if sci is not hdul[0]:
        check_cards(hdul[0].header, name)
        for key, value in hdul[0].header.items():  # inherit primary keywords
            if key not in header and key not in _STRUCTURAL:
                header[key] = value
    return header


def _check_wcs_keywords(header, filename: str) -> None:
    for key, value in header.items():
        if not _WCS_NUMERIC.match(key):
            continue
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if not (ok and math.isfinite(value)):
            raise HeaderError(
                f"{filename}: WCS keyword {key} = {value!r} is not a finite number",
                filename=filename,
                key=key,
            )


def _wcs(header, filename: str):
    from astropy.wcs import WCS, FITSFixedWarning

    if "CTYPE1" not in header:
        return None
    _check_wcs_keywords(header, filename)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        try:
            wcs = WCS(header, naxis=2)
        except Exception as exc:  # WCSLIB raises many kinds; all mean "invalid WCS"
            text = str(exc).replace("\n", " ")
            raise HeaderError(
                f"{filename}: invalid WCS header: {text}", filename=filename, key="CTYPE1"
            ) from exc
    if not wcs.has_celestial:
        return None
    matrix = wcs.pixel_scale_matrix
    if not (np.all(np.isfinite(matrix)) and abs(np.linalg.det(matrix)) > 0):
        raise HeaderError(
            f"{filename}: WCS pixel scale matrix (CD/PC/CDELT) is singular or not finite",
            filename=filename,
            key="CD1_1" if "CD1_1" in header else "CDELT1",
        )
    return wcs


def nonphysical_mask(
    data: np.ndarray, good: np.ndarray | None = None, *, scale: float = NONPHYSICAL_SCALE
) -> tuple[np.ndarray, float]:
    """Pixels too far from the image's own level to be measurements.

    Parameters
    ----------
    data : ndarray
        Pixel values (non-finite ones are ignored here: they are masked anyway).
    good : ndarray of bool, optional
        Pixels to take the statistics from (default: all finite pixels).
    scale : float
        How many robust scales from the median a pixel must be to be non-physical.

    Returns
    -------
    mask : ndarray of bool
        True where ``|data - median| > scale * S``.
    limit : float
        ``scale * S`` (``inf`` when the image gives no scale).

    Notes
    -----
    ``S = max(1.4826 MAD, |median|, 99th percentile of |data - median|)`` over the good
    pixels (a regular subsample of large images). With ``scale = 1e8`` a bright star is
    never reached (its peak is at most ~1e5-1e6 noise units above the sky, and the
    sky level and the bright tail enter ``S`` as well), while values such as 1e30 from a
    broken readout, an overflow or a corrupt file are. An image that is more than 99 %
    one value has no scale: nothing is masked.
    """
    data = np.asarray(data, dtype=float)
    finite = np.isfinite(data)
    good = finite if good is None else (np.asarray(good, bool) & finite)
    step = max(1, int(math.sqrt(data.size / 65_536)))  # ~65 000 samples at most
    sample = data[::step, ::step][good[::step, ::step]] if data.ndim == 2 else data[good]
    if sample.size < 25:
        sample = data[good]
    if sample.size == 0:
        return np.zeros(data.shape, bool), math.inf
    median = float(np.median(sample))
    deviation = np.abs(sample - median)
    mad = 1.4826 * float(np.median(deviation))
    tail = float(np.percentile(deviation, 99.0))
    s = max(mad, abs(median), tail)
    if not s > 0:
        return np.zeros(data.shape, bool), math.inf
    limit = scale * s
    with np.errstate(invalid="ignore", over="ignore"):
        mask = finite & (np.abs(data - median) > limit)
    return mask, limit


def read_exposure(
    path: str | Path,
    *,
    profile: str | InstrumentProfile | None = None,
    require_time: bool = True,
    wcs: bool = True,
) -> Exposure:
    """Read one exposure.

    Parameters
    ----------
    path : str or Path
        FITS file in the skyscene layout, or with a bare primary image.
    profile : str or InstrumentProfile, optional
        Instrument profile for the header keywords (auto-detected from INSTRUME).
    require_time : bool
        If False, frames without filter/time keywords are read with ``band`` and
        ``time`` None (for calibration frames and stamps).
    wcs : bool
        If False, the WCS is not parsed (``Exposure.wcs`` is None): for a frame whose
        header was already checked and whose pixels alone are measured (it saves the
        few milliseconds of ``astropy.wcs.WCS``).

    Returns
    -------
    Exposure
        ``variance`` from the noise HDU when present (``WGT``, or any of
        ``IVAR``/``VAR``/``VARIANCE``/``UNCERT``/``ERR`` in the convention its ``UTYPE``
        names, so files written by ``CCDData.write`` are read too); otherwise a constant
        estimate from GAIN, RDNOISE and the sigma-clipped background level (or the
        clipped pixel scatter without GAIN). ``meta`` has ``filename``, ``header`` and
        the counts of pixels masked on read: ``n_nonfinite``, ``n_saturated``,
        ``n_nonphysical``.

    Raises
    ------
    InputFileError
        Missing, unreadable, truncated or non-FITS file (names the file and HDU).
    HeaderError
        Missing, malformed or unparsable keyword, non-finite WCS keyword, singular
        WCS matrix (the message names file and key).
    DataError
        All pixels non-finite, or HDUs of mismatched shapes.

    Notes
    -----
    Pixels masked on read (data 0, variance inf), and counted in ``meta``:

    - non-finite values;
    - saturated: at or above ``SATURATE`` (the profile's saturation keywords), or, for
      an 8/16-bit integer image without it, at the largest value the type holds;
    - non-physical: ``|value - median| > NONPHYSICAL_SCALE * S`` with the image's own
      robust scale ``S`` (see :func:`nonphysical_mask`; ``1e8`` scales: a 1e30 pixel
      is caught, a bright star never).

    Their number is logged at INFO (no warning: a few per frame are normal).
    """

    path = Path(path)
    name = str(path)
    with _quiet_fits(), open_fits(path) as hdul:
        by_name = {hdu.name: hdu for hdu in hdul}  # one pass over the HDUs
        sci = _image_hdu(hdul, name, by_name)
        header = _merged_header(sci, hdul, name)
        raw = _hdu_data(sci, name)
        if raw is None or raw.ndim != 2:
            raise InputFileError(f"{name}: HDU {sci.name or 'PRIMARY'} holds no 2-D image")
        full_scale = _integer_full_scale(raw)
        data = np.asarray(raw, dtype=float)
        if not np.isfinite(data).any():
            raise DataError(f"{name}: image has no finite pixel")
        noise = _noise_hdu(by_name, name)
        weight = None if noise is None else _to_weight(noise[2], noise[1])
        mask = None
        for label in ("MSK", "MASK"):  # MASK: as CCDData writes it
            if label in by_name:
                mask = np.asarray(_hdu_data(by_name[label], name, label)) != 0
                break
        psf = None
        if "PSF" in by_name:
            from skyscene.psf import PixelizedPSF

            psf_hdu = by_name["PSF"]
            psf = PixelizedPSF(
                np.asarray(_hdu_data(psf_hdu, name, "PSF"), dtype=float),
                oversampling=float(psf_hdu.header.get("PSFSAMP", 1.0)),
                label=f"{name}: HDU PSF",
                expected_sum=1.0,
            )
    for label, arr in ((noise[0] if noise else "WGT", weight), ("MSK", mask)):
        if arr is not None and arr.shape != data.shape:
            raise DataError(f"{name}: HDU {label} has shape {arr.shape}, SCI has {data.shape}")
    try:
        info = parse_header(header, filename=name, profile=profile)
    except HeaderError:
        if require_time:
            raise
        info = None
    nonfinite = ~np.isfinite(data)
    bad = nonfinite if mask is None else (mask | nonfinite)
    nonphysical, limit = nonphysical_mask(data, ~bad)
    saturate = info.saturate if info else None
    if saturate is None and full_scale is not None:
        saturate = full_scale  # an integer image at full scale: the ADC was full
    saturated = (
        (data >= saturate) & ~nonfinite if saturate is not None else np.zeros(data.shape, bool)
    )
    bad = bad | nonphysical
    if weight is not None:
        bad = bad | ~(weight > 0) | ~np.isfinite(weight)
        variance = np.full(data.shape, np.inf)
        variance[~bad] = 1.0 / weight[~bad]
    else:
        variance = _variance_from_header(data, bad | saturated, info)
    bad = bad | saturated
    counts = {
        "n_nonfinite": int(nonfinite.sum()),
        "n_saturated": int(saturated.sum()),
        "n_nonphysical": int(nonphysical.sum()),
    }
    if counts["n_saturated"] or counts["n_nonphysical"]:
        log.info(
            "%s: masked %d saturated pixel(s) (>= %s) and %d non-physical pixel(s) "
            "(|value - median| > %.3g)",
            name,
            counts["n_saturated"],
            saturate,
            counts["n_nonphysical"],
            limit,
        )
    meta = {"filename": name, "header": header, **counts}
    if info is not None:
        meta["binning"] = info.binning
        meta["ra"], meta["dec"] = info.ra, info.dec
        meta["instrument"] = info.instrument
    return Exposure(
        data=data,
        variance=variance,
        mask=bad,
        wcs=_wcs(header, name) if wcs else None,
        psf=psf,
        meta=meta,
        unit=bunit(header, name),
        **_header_fields(info, header, name),
    )


def _header_fields(info, header, name: str) -> dict:
    """:class:`Exposure` fields of a parsed header (``info``, None if it did not parse)."""
    return {
        "zeropoint": info.zeropoint if info else header.get("MAGZERO"),
        "band": info.band if info else None,
        "time": info.time_mid if info else None,
        "exptime": info.exptime if info else None,
        "gain": info.gain if info else None,
        "read_noise": info.read_noise if info else None,
        "origin": _origin(header, name),
    }


def _integer_full_scale(raw: np.ndarray) -> float | None:
    """The largest value a 8- or 16-bit integer image can hold (after BZERO), else None."""
    if raw.dtype.kind in "iu" and raw.dtype.itemsize <= 2:
        return float(np.iinfo(raw.dtype).max)
    return None


# Noise conventions of the noise HDU, by astropy's ``UTYPE`` (CCDData) or by EXTNAME.
_NOISE_KINDS = {
    "inversevariance": "ivar",
    "varianceuncertainty": "var",
    "stddevuncertainty": "std",
}
_NOISE_BY_NAME = {"WGT": "ivar", "IVAR": "ivar", "VAR": "var", "VARIANCE": "var", "ERR": "std"}
NOISE_HDUS = ("WGT", "IVAR", "VAR", "VARIANCE", "UNCERT", "ERR")


def _noise_kind(hdu, label: str, name: str) -> str:
    """``"ivar"``, ``"var"`` or ``"std"``: from ``UTYPE``, else from the HDU name."""
    utype = str(hdu.header.get("UTYPE", "")).strip()
    kind = _NOISE_KINDS.get(utype.lower()) if utype else _NOISE_BY_NAME.get(label, "std")
    if kind is None:
        raise HeaderError(
            f"{name}: HDU {label} has UTYPE = {utype!r}; expected InverseVariance, "
            "VarianceUncertainty or StdDevUncertainty",
            filename=name,
            key="UTYPE",
        )
    return kind


def _noise_hdu(by_name: dict, name: str):
    """``(extname, kind, array)`` of the noise HDU, or None.

    The first of :data:`NOISE_HDUS` present; its ``UTYPE`` (astropy's key) says the
    convention, else its name does (``UNCERT`` without ``UTYPE``: a standard deviation,
    as astropy assumes).
    """
    for label in NOISE_HDUS:
        if label not in by_name:
            continue
        hdu = by_name[label]
        kind = _noise_kind(hdu, label, name)
        arr = _hdu_data(hdu, name, label)
        if arr is None:
            raise InputFileError(f"{name}: HDU {label} holds no data")
        return label, kind, np.asarray(arr, dtype=float)
    return None


def _to_weight(arr: np.ndarray, kind: str) -> np.ndarray:
    """Inverse variance from an array of the given convention (0 where unusable)."""
    if kind == "ivar":
        return arr
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        variance = arr if kind == "var" else arr**2
        return np.where(np.isfinite(variance) & (variance > 0), 1.0 / variance, 0.0)


def _origin(header, name: str) -> tuple[int, int]:
    """Position of a cutout's first pixel in its parent image, from IRAF's ``LTV1/2``.

    A cutout starting at (0-based) column ``x0`` of its parent has ``LTV1 = −x0``
    (physical = image − LTV); a spatially varying PSF model of the parent is evaluated
    at ``cutout pixel + origin``.
    """
    out = []
    for key in ("LTV1", "LTV2"):
        value = header.get(key, 0.0)
        try:
            value = float(value)
        except (TypeError, ValueError) as exc:
            raise HeaderError(
                f"{name}: {key} = {value!r} is not a number", filename=name, key=key
            ) from exc
        if not math.isfinite(value) or abs(value - round(value)) > 1e-6:
            raise HeaderError(
                f"{name}: {key} = {value!r} is not a whole number of pixels", filename=name, key=key
            )
        out.append(-round(value))
    return out[0], out[1]


def _variance_from_header(data, bad, info) -> np.ndarray:
    """Constant variance of a bare image: sky/GAIN + RDNOISE², else the clipped pixel scatter.

    The sky level and scatter are sigma-clipped statistics of a regular subsample of
    the good pixels (every third row and column: plenty for a global level).
    """
    sample = data[::3, ::3][~bad[::3, ::3]]
    if sample.size < 100:
        sample = data[~bad]
    level_mean, std = clipped_mean_std(sample, sigma=3.0, maxiters=5)
    if info is not None and info.gain:
        read_noise = info.read_noise or 0.0
        level = max(level_mean, 0.0) / info.gain + read_noise**2
        if level <= 0:
            level = std**2
    else:
        level = std**2
    if not level > 0:
        name = info.filename if info else "image"
        raise DataError(f"{name}: cannot estimate the noise (zero scatter and no GAIN)")
    return np.full(data.shape, level)


_NOT_COPIED = (
    "SIMPLE",
    "BITPIX",
    "NAXIS",
    "NAXIS1",
    "NAXIS2",
    "EXTEND",
    "XTENSION",
    "PCOUNT",
    "GCOUNT",
    "EXTNAME",
    "BZERO",
    "BSCALE",
)


def exposure_header(exposure: Exposure):
    """The FITS header skyscene writes for ``exposure`` (``astropy.io.fits.Header``).

    The cards of ``exposure.meta['header']`` (if any, structural keywords dropped),
    then the WCS, ``BUNIT``, ``LTV1``/``LTV2`` for a cutout, ``MJD-OBS``/``DATE-OBS``
    (start, UTC) with ``TIMESYS = 'UTC'``, ``EXPTIME``, ``FILTER``, ``MAGZERO``,
    ``GAIN``, ``RDNOISE``.

    """
    from astropy import units as u
    from astropy.io import fits

    header = fits.Header()
    old = exposure.meta.get("header")
    if old is not None:
        for card in fits.Header(old).cards:
            if card.keyword not in _NOT_COPIED:
                header.append(card)
    if exposure.wcs is not None:
        header.update(exposure.wcs.to_header(relax=True))
    header["BUNIT"] = (exposure.unit or "1", "unit of the pixel values")
    for key in ("LTV1", "LTV2"):
        header.remove(key, ignore_missing=True, remove_all=True)
    if exposure.origin != (0, 0):
        header["LTV1"] = (-exposure.origin[0], "cutout: parent column = column - LTV1")
        header["LTV2"] = (-exposure.origin[1], "cutout: parent row = row - LTV2")
    if exposure.time is not None:
        start = exposure.time - 0.5 * (exposure.exptime or 0.0) * u.s
        header["MJD-OBS"] = (float(start.utc.mjd), "start of exposure (UTC)")
        header["DATE-OBS"] = (start.utc.isot, "start of exposure (UTC)")
        header["TIMESYS"] = ("UTC", "time scale of MJD-OBS and DATE-OBS")
    for key, value, comment in (
        ("EXPTIME", exposure.exptime, "exposure time (s)"),
        ("FILTER", exposure.band, "filter"),
        ("MAGZERO", exposure.zeropoint, "mag of 1 count"),
        ("GAIN", exposure.gain, "e-/ADU"),
        ("RDNOISE", exposure.read_noise, "read noise (ADU)"),
    ):
        if value is not None:
            header[key] = (value, comment)
    return header


def write_exposure(path: str | Path, exposure: Exposure, *, overwrite: bool = True) -> Path:
    """Write ``exposure`` as SCI/WGT/MSK(/PSF) HDUs, atomically.

    The ``SCI`` header is :func:`exposure_header`. ``WGT`` holds the inverse variance
    (0 = no data) and says so with ``UTYPE = 'InverseVariance'``, the key
    ``astropy.nddata.CCDData`` reads: ``CCDData.read(path, hdu_uncertainty="WGT",
    hdu_mask="MSK")`` gets the data with its unit, uncertainty and mask.
    """
    from astropy.io import fits

    path = Path(path)
    if path.exists() and not overwrite:
        raise InputFileError(f"{path}: exists and overwrite=False")
    header = exposure_header(exposure)
    wgt = fits.ImageHDU(exposure.weight.astype(np.float32), name="WGT")
    wgt.header["UTYPE"] = ("InverseVariance", "WGT = 1/variance, 0 = no data")
    msk = fits.ImageHDU(exposure.mask.astype(np.uint8), name="MSK")
    msk.header["COMMENT"] = "MSK: 0 = good, 1 = bad (masked)"
    hdus = [
        fits.PrimaryHDU(),
        fits.ImageHDU(exposure.data.astype(np.float32), header=header, name="SCI"),
        wgt,
        msk,
    ]
    psf = exposure.psf
    if psf is not None and hasattr(psf, "image") and hasattr(psf, "oversampling"):
        psf_hdu = fits.ImageHDU(np.asarray(psf.image, dtype=np.float64), name="PSF")
        psf_hdu.header["PSFSAMP"] = (float(psf.oversampling), "PSF pixels per image pixel")
        hdus.append(psf_hdu)
    with atomic_path(path) as tmp:
        fits.HDUList(hdus).writeto(tmp, overwrite=True)
    return path


_ADU_ALIASES = ("adu", "dn", "count", "counts")


def bunit(header, filename: str = "<header>") -> str:
    """The unit of ``BUNIT`` as an astropy unit string; ``"adu"`` when absent.

    ``ADU``, ``DN`` and ``counts`` are read as ``adu``. A value astropy does not know
    is kept as it is (skyscene does not compute with the unit) and logged.
    """
    from astropy import units as u

    value = header.get("BUNIT")
    if value is None or str(value).strip() == "":
        return "adu"
    text = str(value).strip()
    if text.lower() in _ADU_ALIASES:
        return "adu"
    try:
        return u.Unit(text).to_string() or "1"
    except ValueError:
        log.info("%s: BUNIT = %r is not an astropy unit; kept as it is", filename, text)
        return text
