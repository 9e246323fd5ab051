"""Reading and writing :class:`~skyscene.io.Exposure` FITS files.

Layout (see ``docs/DESIGN.md``): image HDU ``SCI`` (or the primary HDU) with a WCS
header and ``MJD-OBS``, ``EXPTIME``, ``FILTER``, ``MAGZERO``, optional ``GAIN``,
``RDNOISE``, ``SATURATE``; HDU ``WGT`` (inverse variance, 0 = no data); optional
``MSK`` (int, 0 = good); optional ``PSF`` (pixelised, odd size, centred, unit sum,
``PSFSAMP`` = oversampling factor). A cutout records its place in the parent image with
IRAF's ``LTV1``/``LTV2`` (``Exposure.origin = (−LTV1, −LTV2)``), so that a spatially
varying PSF model of the parent (PSFEx, Piff) is evaluated at the right pixels.
"""

from __future__ import annotations

import logging
import math
import warnings
from pathlib import Path

import numpy as np

from skyscene._stats import clipped_mean_std
from skyscene.errors import DataError, HeaderError, InputFileError
from skyscene.io._atomic import atomic_path
from skyscene.io.exposure import Exposure
from skyscene.io.headers import InstrumentProfile, parse_header

__all__ = ["is_fits", "open_fits", "read_exposure", "write_exposure"]

log = logging.getLogger(__name__)

_FITS_MAGIC = b"SIMPLE  ="


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


def _image_hdu(hdul, filename: str, by_name: dict | None = None):
    by_name = by_name if by_name is not None else {hdu.name: hdu for hdu in hdul}
    if "SCI" in by_name:
        return by_name["SCI"]
    for hdu in hdul:
        if hdu.data is not None and getattr(hdu, "is_image", False) and hdu.data.ndim == 2:
            return hdu
    raise InputFileError(f"{filename}: no 2-D image HDU (expected 'SCI' or a primary image)")


def _wcs(header, filename: str):
    from astropy.wcs import WCS, FITSFixedWarning

    if "CTYPE1" not in header:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        try:
            wcs = WCS(header, naxis=2)
        except Exception as exc:
            raise HeaderError(
                f"{filename}: invalid WCS header: {exc}", filename=filename, key="CTYPE1"
            ) from exc
    return wcs if wcs.has_celestial else None


def read_exposure(
    path: str | Path,
    *,
    profile: str | InstrumentProfile | None = None,
    require_time: bool = True,
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

    Returns
    -------
    Exposure
        ``variance`` from ``WGT`` when present; otherwise a constant estimate from
        GAIN, RDNOISE and the sigma-clipped background level (or the clipped pixel
        scatter without GAIN). ``meta['filename']`` is set.

    Raises
    ------
    InputFileError
        Missing, unreadable or non-FITS file.
    HeaderError
        Missing or malformed keyword (the message names file and key).
    DataError
        All pixels non-finite, or HDUs of mismatched shapes.
    """

    path = Path(path)
    name = str(path)
    with open_fits(path) as hdul:
        by_name = {hdu.name: hdu for hdu in hdul}  # one pass over the HDUs
        sci = _image_hdu(hdul, name, by_name)
        header = sci.header.copy()
        if sci is not hdul[0]:
            for key, value in hdul[0].header.items():  # inherit primary keywords
                if key not in header and key not in ("SIMPLE", "BITPIX", "NAXIS", "EXTEND", ""):
                    header[key] = value
        data = np.asarray(sci.data, dtype=float)
        if not np.isfinite(data).any():
            raise DataError(f"{name}: image has no finite pixel")
        weight = np.asarray(by_name["WGT"].data, dtype=float) if "WGT" in by_name else None
        mask = np.asarray(by_name["MSK"].data) != 0 if "MSK" in by_name else None
        psf = None
        if "PSF" in by_name:
            from skyscene.psf import PixelizedPSF

            psf_hdu = by_name["PSF"]
            psf = PixelizedPSF(
                np.asarray(psf_hdu.data, dtype=float),
                oversampling=float(psf_hdu.header.get("PSFSAMP", 1.0)),
            )
    for label, arr in (("WGT", weight), ("MSK", mask)):
        if arr is not None and arr.shape != data.shape:
            raise DataError(f"{name}: HDU {label} has shape {arr.shape}, SCI has {data.shape}")
    try:
        info = parse_header(header, filename=name, profile=profile)
    except HeaderError:
        if require_time:
            raise
        info = None
    bad = ~np.isfinite(data) if mask is None else (mask | ~np.isfinite(data))
    if weight is not None:
        bad = bad | ~(weight > 0) | ~np.isfinite(weight)
        variance = np.full(data.shape, np.inf)
        variance[~bad] = 1.0 / weight[~bad]
    else:
        variance = _variance_from_header(data, bad, info)
    saturate = info.saturate if info else None
    if saturate is not None:
        bad = bad | (data >= saturate)
    meta = {"filename": name, "header": header}
    if info is not None:
        meta["binning"] = info.binning
        meta["ra"], meta["dec"] = info.ra, info.dec
        meta["instrument"] = info.instrument
    return Exposure(
        data=data,
        variance=variance,
        mask=bad,
        wcs=_wcs(header, name),
        psf=psf,
        zeropoint=info.zeropoint if info else header.get("MAGZERO"),
        band=info.band if info else None,
        time=info.time_mid if info else None,
        exptime=info.exptime if info else None,
        gain=info.gain if info else None,
        read_noise=info.read_noise if info else None,
        origin=_origin(header, name),
        meta=meta,
    )


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


def write_exposure(path: str | Path, exposure: Exposure, *, overwrite: bool = True) -> Path:
    """Write ``exposure`` as SCI/WGT/MSK(/PSF) HDUs, atomically.

    The header keeps ``exposure.meta['header']`` (if any) and gets the WCS,
    ``MJD-OBS`` (start), ``EXPTIME``, ``FILTER``, ``MAGZERO``, ``GAIN``, ``RDNOISE``.
    """
    from astropy.io import fits

    path = Path(path)
    if path.exists() and not overwrite:
        raise InputFileError(f"{path}: exists and overwrite=False")
    header = fits.Header()
    old = exposure.meta.get("header")
    if old is not None:
        for card in old.cards:
            if card.keyword not in (
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
            ):
                header.append(card)
    if exposure.wcs is not None:
        header.update(exposure.wcs.to_header(relax=True))
    for key in ("LTV1", "LTV2"):
        header.remove(key, ignore_missing=True, remove_all=True)
    if exposure.origin != (0, 0):
        header["LTV1"] = (-exposure.origin[0], "cutout: parent column = column - LTV1")
        header["LTV2"] = (-exposure.origin[1], "cutout: parent row = row - LTV2")
    if exposure.time is not None:
        from astropy import units as u

        start = exposure.time - 0.5 * (exposure.exptime or 0.0) * u.s
        header["MJD-OBS"] = (float(start.utc.mjd), "start of exposure (UTC)")
        header["DATE-OBS"] = (start.utc.isot, "start of exposure (UTC)")
    for key, value, comment in (
        ("EXPTIME", exposure.exptime, "exposure time (s)"),
        ("FILTER", exposure.band, "filter"),
        ("MAGZERO", exposure.zeropoint, "mag of 1 count"),
        ("GAIN", exposure.gain, "e-/ADU"),
        ("RDNOISE", exposure.read_noise, "read noise (ADU)"),
    ):
        if value is not None:
            header[key] = (value, comment)
    hdus = [
        fits.PrimaryHDU(),
        fits.ImageHDU(exposure.data.astype(np.float32), header=header, name="SCI"),
        fits.ImageHDU(exposure.weight.astype(np.float32), name="WGT"),
        fits.ImageHDU(exposure.mask.astype(np.uint8), name="MSK"),
    ]
    psf = exposure.psf
    if psf is not None and hasattr(psf, "image") and hasattr(psf, "oversampling"):
        psf_hdu = fits.ImageHDU(np.asarray(psf.image, dtype=np.float64), name="PSF")
        psf_hdu.header["PSFSAMP"] = (float(psf.oversampling), "PSF pixels per image pixel")
        hdus.append(psf_hdu)
    with atomic_path(path) as tmp:
        fits.HDUList(hdus).writeto(tmp, overwrite=True)
    return path
