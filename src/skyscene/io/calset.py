"""Folders of calibration frames and of master frames (the file side of a ``CalibrationSet``).

:func:`calibration_set_from_directory` reads a folder of raw bias, dark and flat frames
and hands them to :meth:`skyscene.calibration.CalibrationSet.from_frames`, which builds
the masters (no file I/O there); :func:`write_calibration_set` and
:func:`read_calibration_set` write and read the masters (``bias.fits``, ``dark.fits``,
``flat_<band>.fits``, see :mod:`skyscene.io.masters`). Like :mod:`skyscene.io.spectral_grid`,
this module lazily imports the container it returns.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from skyscene.errors import HeaderError, InputFileError
from skyscene.io.fits import is_fits, read_exposure, read_header
from skyscene.io.headers import (
    InstrumentProfile,
    band_keyword,
    binning_keyword,
    detect_profile,
    float_keyword,
    get_profile,
)
from skyscene.io.masters import read_master, write_master

if TYPE_CHECKING:  # pragma: no cover
    from skyscene.calibration import CalibrationSet, CombineConfig

__all__ = [
    "FRAME_TYPE_KEYS",
    "calibration_set_from_directory",
    "classify_frame",
    "read_calibration_set",
    "write_calibration_set",
]

log = logging.getLogger(__name__)

#: Header keywords that say what a frame is, tried in order.
FRAME_TYPE_KEYS = ("IMAGETYP", "OBSTYPE", "IMGTYPE", "FRAMETYP")

_SCIENCE_WORDS = ("object", "light", "science", "target", "standard", "focus")


def _type_from_text(text: str) -> str | None:
    text = text.strip().lower()
    if "bias" in text or "zero" in text:
        return "bias"
    if "dark" in text:
        return "dark"
    if "flat" in text:
        return "flat"
    if any(word in text for word in _SCIENCE_WORDS):
        return "science"
    return None


def classify_frame(header, filename: str | Path) -> str | None:
    """Frame type from the header (``IMAGETYP``/``OBSTYPE``/...) or the file name.

    Parameters
    ----------
    header : astropy.io.fits.Header or mapping
    filename : str or Path
        Used as a fallback: names starting with ``bias``/``zero``, ``dark`` or ``flat``
        (case-insensitive).

    Returns
    -------
    {"bias", "dark", "flat", "science"} or None
        None when neither the header nor the name tell.

    Examples
    --------
    >>> classify_frame({"IMAGETYP": "Dome Flat"}, "a.fits")
    'flat'
    >>> classify_frame({}, "Zero_003.fits")
    'bias'
    """
    for key in FRAME_TYPE_KEYS:
        if key in header and str(header[key]).strip():
            kind = _type_from_text(str(header[key]))
            if kind is not None:
                return kind
    name = Path(filename).name.lower()
    for prefix, kind in (("bias", "bias"), ("zero", "bias"), ("dark", "dark"), ("flat", "flat")):
        if name.startswith(prefix):
            return kind
    return None


@dataclass(frozen=True, kw_only=True, eq=False)
class _CalFrame:
    """A raw calibration frame held compactly (float32 pixels, no variance)."""

    data: np.ndarray
    mask: np.ndarray
    exptime: float | None
    gain: float | None
    read_noise: float | None
    band: str | None
    meta: dict


def _read_frame(path: Path, kind: str, profile) -> _CalFrame:
    """Read one calibration frame; fill exptime/gain/read noise/binning/band from its header."""
    exposure = read_exposure(path, profile=profile, require_time=False)
    header = exposure.meta.get("header", {})
    prof: InstrumentProfile = detect_profile(header) if profile is None else get_profile(profile)
    name = str(path)
    exptime = exposure.exptime
    if exptime is None:
        exptime = float_keyword(
            header, prof.exptime_keys, name, required=False, what="exposure time"
        )
    gain = exposure.gain
    if gain is None:
        gain = (
            float_keyword(header, prof.gain_keys, name, required=False, what="gain")
            or prof.default_gain
        )
    if gain is not None and not gain > 0:
        raise HeaderError(f"{name}: gain must be positive, got {gain}", filename=name, key="GAIN")
    read_noise = exposure.read_noise
    if read_noise is None:
        read_noise = float_keyword(
            header, prof.read_noise_keys, name, required=False, what="read noise"
        )
        if read_noise is None:
            read_noise = prof.default_read_noise
    meta = dict(exposure.meta)
    meta["frame_type"] = kind
    if meta.get("binning") is None:
        meta["binning"] = binning_keyword(header, prof, name, default=None)
    # flats are grouped by filter: a flat without one cannot be used
    band = band_keyword(header, prof, name, what="flat frame") if kind == "flat" else exposure.band
    meta.pop("header", None)  # keep memory low: a folder may hold many frames
    return _CalFrame(
        data=exposure.data.astype(np.float32),
        mask=np.asarray(exposure.mask, bool),
        exptime=exptime,
        gain=gain,
        read_noise=read_noise,
        band=band,
        meta=meta,
    )


def _type_header(path: Path) -> dict[str, Any]:
    """Frame-type keywords of the primary header, completed by the ``SCI`` HDU's.

    Every card is checked (:func:`~skyscene.io.read_header`): a card that does not
    parse raises a one-line :class:`~skyscene.errors.HeaderError` naming the file and key.
    """
    primary = read_header(path, hdu=0)
    merged = read_header(path)  # SCI (if any) completed by the primary
    return {
        key: primary[key] if key in primary else merged[key]
        for key in FRAME_TYPE_KEYS
        if key in primary or key in merged
    }


def calibration_set_from_directory(
    path: str | Path,
    *,
    profile: str | InstrumentProfile | None = None,
    combine: CombineConfig | None = None,
    flat_limits: tuple[float, float] = (0.5, 1.5),
    hot_sigma: float = 5.0,
) -> CalibrationSet:
    """Read a folder of raw calibration frames and build the masters.

    Called by :meth:`skyscene.calibration.CalibrationSet.from_directory` (same
    parameters, returns and errors: see there). Reads and classifies the files here,
    then combines them with :meth:`~skyscene.calibration.CalibrationSet.from_frames`.

    Raises
    ------
    InputFileError
        The folder does not exist, is empty, or holds no calibration frame.
    HeaderError
        A card does not parse, a flat lacks a filter keyword, or a keyword is
        malformed (the message names the file and key).
    """
    from skyscene.calibration.calset import CalibrationSet

    folder = Path(path)
    if not folder.is_dir():
        raise InputFileError(f"{folder}: calibration folder does not exist or is not a folder")
    files = sorted(p for p in folder.iterdir() if p.is_file())
    if not files:
        raise InputFileError(f"{folder}: calibration folder is empty")
    groups: dict[str, list[_CalFrame]] = {"bias": [], "dark": [], "flat": []}
    skipped: list[tuple[str, str]] = []
    for file in files:
        if not is_fits(file):
            log.warning("skipping %s: not a FITS file", file)
            skipped.append((str(file), "not a FITS file"))
            continue
        kind = classify_frame(_type_header(file), file)
        if kind not in groups:
            reason = "science frame" if kind == "science" else "frame type unknown"
            log.warning(
                "skipping %s: %s (no IMAGETYP/OBSTYPE of bias, dark or flat, and no "
                "bias*/dark*/flat* file name)",
                file,
                reason,
            )
            skipped.append((str(file), reason))
            continue
        groups[kind].append(_read_frame(file, kind, profile))
    if not any(groups.values()):
        raise InputFileError(
            f"{folder}: no calibration frame (bias, dark or flat) among {len(files)} file(s)"
        )
    log.info(
        "calibration folder %s: %d bias, %d dark, %d flat frames",
        folder,
        *(len(groups[k]) for k in ("bias", "dark", "flat")),
    )
    return CalibrationSet.from_frames(
        groups,
        combine=combine,
        flat_limits=flat_limits,
        hot_sigma=hot_sigma,
        source=str(folder),
        skipped=tuple(skipped),
    )


def write_calibration_set(calset: CalibrationSet, directory: str | Path) -> list[Path]:
    """Write the masters as ``bias.fits``, ``dark.fits`` and ``flat_<band>.fits``.

    Each file is written atomically by :func:`~skyscene.io.write_master`.

    Returns
    -------
    list of Path
        The files written.
    """
    directory = Path(directory)
    written = []
    if calset.bias is not None:
        written.append(write_master(directory / "bias.fits", calset.bias))
    if calset.dark is not None:
        written.append(write_master(directory / "dark.fits", calset.dark))
    for band, flat in calset.flats.items():
        written.append(write_master(directory / f"flat_{band}.fits", flat))
    return written


def read_calibration_set(
    directory: str | Path,
    *,
    gain: float | None = None,
    flat_limits: tuple[float, float] = (0.5, 1.5),
    hot_sigma: float = 5.0,
) -> CalibrationSet:
    """Read masters written by :func:`write_calibration_set`.

    Parameters
    ----------
    directory : str or Path
    gain : float, optional
        e-/ADU (default: the median of the masters' ``GAIN``).
    flat_limits, hot_sigma
        Bad-pixel thresholds, see :func:`skyscene.calibration.bad_pixel_mask`.

    Raises
    ------
    InputFileError
        The folder holds no master file.
    """
    from skyscene.calibration.calset import CalibrationSet

    directory = Path(directory)
    bias_path, dark_path = directory / "bias.fits", directory / "dark.fits"
    bias = read_master(bias_path) if bias_path.is_file() else None
    dark = read_master(dark_path) if dark_path.is_file() else None
    flats = {}
    for path in sorted(directory.glob("flat_*.fits")):
        flat = read_master(path)
        flats[str(flat.meta.get("band", path.stem[5:]))] = flat
    if bias is None and dark is None and not flats:
        raise InputFileError(f"{directory}: no master file (bias.fits, dark.fits, flat_*.fits)")
    masters = [m for m in (bias, dark, *flats.values()) if m is not None]
    if gain is None:
        gains = [m.meta["gain"] for m in masters if m.meta.get("gain") is not None]
        gain = float(np.median(gains)) if gains else None
    read_noise = bias.meta.get("read_noise") if bias is not None else None
    return CalibrationSet(
        bias=bias,
        dark=dark,
        flats=flats,
        gain=gain,
        read_noise=read_noise,
        flat_limits=flat_limits,
        hot_sigma=hot_sigma,
        source=str(directory),
    )
