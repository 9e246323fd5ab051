"""A set of master frames built from a folder of calibration frames, applied by band."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from skyscene.calibration.combine import CombineConfig
from skyscene.calibration.masters import (
    MasterFrame,
    bad_pixel_mask,
    make_master_bias,
    make_master_dark,
    make_master_flat,
    read_master,
    write_master,
)
from skyscene.calibration.process import calibrate
from skyscene.errors import DataError, HeaderError, InputFileError, ParameterError
from skyscene.io import (
    Exposure,
    InstrumentProfile,
    detect_profile,
    get_profile,
    is_fits,
    read_exposure,
)
from skyscene.io.headers import band_keyword, binning_keyword, float_keyword

__all__ = ["FRAME_TYPE_KEYS", "CalibrationSet", "classify_frame"]

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


def _header_float(header, keys, filename: str, what: str) -> float | None:
    return float_keyword(header, keys, filename, required=False, what=what)


def _header_binning(header, profile: InstrumentProfile, filename: str) -> tuple[int, int] | None:
    return binning_keyword(header, profile, filename, default=None)


def _band(header, profile: InstrumentProfile, filename: str) -> str:
    # flats are grouped by filter: a flat without one cannot be used
    return band_keyword(header, profile, filename, what="flat frame")


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
    prof = detect_profile(header) if profile is None else get_profile(profile)
    name = str(path)
    exptime = exposure.exptime
    if exptime is None:
        exptime = _header_float(header, prof.exptime_keys, name, "exposure time")
    gain = exposure.gain
    if gain is None:
        gain = _header_float(header, prof.gain_keys, name, "gain") or prof.default_gain
    if gain is not None and not gain > 0:
        raise HeaderError(f"{name}: gain must be positive, got {gain}", filename=name, key="GAIN")
    read_noise = exposure.read_noise
    if read_noise is None:
        read_noise = _header_float(header, prof.read_noise_keys, name, "read noise")
        if read_noise is None:
            read_noise = prof.default_read_noise
    meta = dict(exposure.meta)
    meta["frame_type"] = kind
    if meta.get("binning") is None:
        meta["binning"] = _header_binning(header, prof, name)
    band = _band(header, prof, name) if kind == "flat" else exposure.band
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
    """Frame-type keywords of the primary header, completed by the ``SCI`` HDU's."""
    from astropy.io import fits

    try:
        with fits.open(path, memmap=False) as hdul:
            headers = [hdul[0].header] + ([hdul["SCI"].header] if "SCI" in hdul else [])
            out: dict[str, Any] = {}
            for header in headers:
                for key in FRAME_TYPE_KEYS:
                    if key in header and key not in out:
                        out[key] = header[key]
    except OSError as exc:
        raise InputFileError(f"{path}: cannot read FITS header: {exc}") from exc
    return out


def _median_value(frames, attr: str) -> float | None:
    values = sorted({getattr(f, attr) for f in frames if getattr(f, attr) is not None})
    if len(values) > 1:
        log.warning("calibration frames disagree on %s: %s; using the median", attr, values)
    return float(np.median(values)) if values else None


@dataclass(frozen=True, kw_only=True, eq=False)
class CalibrationSet:
    """Master bias, dark and per-band flats, and the bad-pixel masks they imply.

    Parameters
    ----------
    bias, dark : MasterFrame, optional
    flats : dict of str to MasterFrame
        Master flat per band.
    gain : float, optional
        e-/ADU from the calibration headers, used for exposures without ``gain``.
    read_noise : float, optional
        ADU, likewise (default: the master bias's measured read noise).
    flat_limits : (float, float)
        Good flat-response interval for :func:`bad_pixel_mask`.
    hot_sigma : float
        Hot-pixel threshold for :func:`bad_pixel_mask`.
    source : str, optional
        Folder the set was built from.
    skipped : tuple of (str, str)
        Files skipped while reading the folder, with the reason.

    Attributes
    ----------
    bad_pixels : dict of (str or None) to ndarray of bool
        Bad-pixel mask per band (key None: without a flat), computed at construction.

    Examples
    --------
    >>> import numpy as np
    >>> from skyscene.calibration import MasterFrame
    >>> z = np.zeros((8, 8))
    >>> flat = MasterFrame(data=z + 1, variance=z, mask=z > 0, n_frames=1, kind="flat")
    >>> cal = CalibrationSet(flats={"g": flat}, gain=1.0, read_noise=1.0)
    >>> cal.bands
    ('g',)
    """

    bias: MasterFrame | None = None
    dark: MasterFrame | None = None
    flats: dict[str, MasterFrame] = field(default_factory=dict)
    gain: float | None = None
    read_noise: float | None = None
    flat_limits: tuple[float, float] = (0.5, 1.5)
    hot_sigma: float = 5.0
    source: str | None = None
    skipped: tuple[tuple[str, str], ...] = ()
    bad_pixels: dict = field(init=False, repr=False)

    def __post_init__(self) -> None:
        shapes = {}
        for label, master, kind in [("bias", self.bias, "bias"), ("dark", self.dark, "dark")] + [
            (f"flat {b!r}", f, "flat") for b, f in self.flats.items()
        ]:
            if master is None:
                continue
            if not isinstance(master, MasterFrame) or master.kind != kind:
                raise ParameterError(
                    f"CalibrationSet: {label} must be a MasterFrame of kind {kind!r}, got "
                    f"{getattr(master, 'kind', type(master).__name__)!r}"
                )
            shapes[master.label] = master.shape
        if len(set(shapes.values())) > 1:
            raise DataError(f"CalibrationSet: masters have different shapes: {shapes}")
        low, high = self.flat_limits
        if self.gain is not None and not self.gain > 0:
            raise ParameterError(f"CalibrationSet: gain must be positive, got {self.gain!r}")
        bad: dict[str | None, np.ndarray] = {}
        for band, flat in self.flats.items():
            bad[band] = bad_pixel_mask(
                flat, self.dark, low=low, high=high, hot_sigma=self.hot_sigma
            )
        if self.dark is not None:
            bad[None] = bad_pixel_mask(
                np.ones(self.dark.shape), self.dark, low=low, high=high, hot_sigma=self.hot_sigma
            )
        object.__setattr__(self, "bad_pixels", bad)

    @property
    def bands(self) -> tuple[str, ...]:
        """Bands with a master flat, sorted."""
        return tuple(sorted(self.flats))

    # ----------------------------------------------------------------- construction

    @classmethod
    def from_directory(
        cls,
        path: str | Path,
        *,
        profile: str | InstrumentProfile | None = None,
        combine: CombineConfig | None = None,
        flat_limits: tuple[float, float] = (0.5, 1.5),
        hot_sigma: float = 5.0,
    ) -> CalibrationSet:
        """Build the masters from a folder of raw calibration frames.

        Frames are classified by ``IMAGETYP``/``OBSTYPE`` (``bias``/``zero``,
        ``dark``, ``flat``/``dome flat``/``sky flat``), or by the file-name prefix
        (``bias*``, ``zero*``, ``dark*``, ``flat*``) when the header does not say.
        Flats are grouped by filter. Darks are bias-subtracted and scaled to ADU/s.

        Parameters
        ----------
        path : str or Path
            Folder with the calibration FITS files (``.fits``, ``.fit``, ``.fz``,
            ``.gz``: any file that starts with a FITS header).
        profile : str or InstrumentProfile, optional
            Instrument profile for the header keywords (auto-detected from INSTRUME).
        combine : CombineConfig, optional
            Stack combination settings (default: 3-sigma clipped mean).
        flat_limits, hot_sigma
            Bad-pixel thresholds, see :func:`bad_pixel_mask`.

        Returns
        -------
        CalibrationSet

        Raises
        ------
        InputFileError
            The folder does not exist, is empty, or holds no calibration frame.
        HeaderError
            A flat lacks a filter keyword, or a keyword is malformed.
        DataError
            Darks without bias frames; frames of different shapes or binnings.

        Notes
        -----
        Files that are not FITS, and FITS frames that are science frames or cannot
        be classified, are skipped with a logged warning naming the file; they are
        listed in :attr:`skipped`.
        """
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
        all_frames = [f for group in groups.values() for f in group]
        gain = _median_value(all_frames, "gain")
        bias = make_master_bias(groups["bias"], combine=combine) if groups["bias"] else None
        read_noise = _median_value(all_frames, "read_noise")
        if read_noise is None and bias is not None:
            read_noise = bias.meta["read_noise"]
        dark = None
        if groups["dark"]:
            if bias is None:
                raise DataError(
                    f"{folder}: {len(groups['dark'])} dark frame(s) but no bias frame; darks "
                    "are bias-subtracted and scaled by EXPTIME, so bias frames are needed"
                )
            dark = make_master_dark(
                groups["dark"], bias=bias, gain=gain, read_noise=read_noise, combine=combine
            )
        if groups["flat"] and bias is None:
            log.warning(
                "%s: flats without bias frames are used as they are (not bias-subtracted)", folder
            )
        flats: dict[str, MasterFrame] = {}
        by_band: dict[str, list[_CalFrame]] = {}
        for frame in groups["flat"]:
            by_band.setdefault(str(frame.band), []).append(frame)
        for band, frames in sorted(by_band.items()):
            flats[band] = make_master_flat(
                frames,
                bias=bias,
                dark=dark,
                gain=gain,
                read_noise=read_noise,
                band=band,
                combine=combine,
            )
        return cls(
            bias=bias,
            dark=dark,
            flats=flats,
            gain=gain,
            read_noise=read_noise,
            flat_limits=flat_limits,
            hot_sigma=hot_sigma,
            source=str(folder),
            skipped=tuple(skipped),
        )

    # ----------------------------------------------------------------- application

    def apply(self, exposure: Exposure) -> Exposure:
        """Calibrate one raw exposure with the masters of its band.

        Parameters
        ----------
        exposure : Exposure
            Raw frame (ADU), e.g. from :func:`skyscene.io.read_exposure`. Its
            ``band`` chooses the flat; ``exptime`` scales the dark; ``gain`` and
            ``read_noise`` default to the set's when the exposure lacks them.

        Returns
        -------
        Exposure
            See :func:`calibrate`; the bad pixels of the band are masked.

        Raises
        ------
        DataError
            No master flat for the exposure's band (the message names the band and
            the bands available), or shape/binning mismatch.
        """
        name = exposure.filename or "exposure"
        flat = None
        if self.flats:
            if exposure.band is None:
                raise DataError(
                    f"{name}: exposure has no band (FILTER); cannot choose among the master "
                    f"flats for bands {', '.join(self.bands)}"
                )
            flat = self.flats.get(str(exposure.band))
            if flat is None:
                raise DataError(
                    f"{name}: no master flat for band {exposure.band!r}; master flats exist for "
                    f"band(s) {', '.join(self.bands)} (from {self.source or 'memory'})"
                )
        bad = self.bad_pixels.get(str(exposure.band) if flat is not None else None)
        return calibrate(
            exposure,
            bias=self.bias,
            dark=self.dark,
            flat=flat,
            bad_pixels=bad,
            gain=exposure.gain if exposure.gain is not None else self.gain,
            read_noise=exposure.read_noise if exposure.read_noise is not None else self.read_noise,
        )

    # ----------------------------------------------------------------- persistence

    def save(self, directory: str | Path) -> list[Path]:
        """Write the masters as ``bias.fits``, ``dark.fits`` and ``flat_<band>.fits``."""
        directory = Path(directory)
        written = []
        if self.bias is not None:
            written.append(write_master(directory / "bias.fits", self.bias))
        if self.dark is not None:
            written.append(write_master(directory / "dark.fits", self.dark))
        for band, flat in self.flats.items():
            written.append(write_master(directory / f"flat_{band}.fits", flat))
        return written

    @classmethod
    def load(
        cls,
        directory: str | Path,
        *,
        gain: float | None = None,
        flat_limits: tuple[float, float] = (0.5, 1.5),
        hot_sigma: float = 5.0,
    ) -> CalibrationSet:
        """Read masters written by :meth:`save`.

        Raises
        ------
        InputFileError
            The folder holds no master file.
        """
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
        return cls(
            bias=bias,
            dark=dark,
            flats=flats,
            gain=gain,
            read_noise=read_noise,
            flat_limits=flat_limits,
            hot_sigma=hot_sigma,
            source=str(directory),
        )
