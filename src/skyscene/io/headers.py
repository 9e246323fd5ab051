"""Header parsing with declarative *instrument profiles*.

A profile says which keywords an instrument uses for the filter, times, exposure
time, gain, read noise, binning and pointing. :func:`parse_header` turns a FITS
header into an :class:`ObservationInfo` and raises :class:`~skyscene.errors.HeaderError`
naming the file and the keyword when something is missing or malformed.

Profiles are plain frozen dataclasses; add your own with :func:`register_profile`
(or, at the command line, a TOML file with the same fields).
"""

from __future__ import annotations

import logging
import math
import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from skyscene.errors import HeaderError, ParameterError

__all__ = [
    "PROFILES",
    "InstrumentProfile",
    "ObservationInfo",
    "band_keyword",
    "binning_keyword",
    "detect_profile",
    "first_keyword",
    "float_keyword",
    "get_profile",
    "load_profile",
    "parse_header",
    "register_profile",
    "time_scale",
]

log = logging.getLogger(__name__)

Keys = tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class InstrumentProfile:
    """Where an instrument keeps each piece of observing information.

    Each ``*_keys`` field lists the keywords to try, in order; the first one present wins.

    Parameters
    ----------
    name : str
        Profile name used on the command line.
    instrume : tuple of str
        Values of ``INSTRUME`` (case-insensitive, prefix match) that select this profile.
    time_reference : {"start", "mid"}
        Whether the header time is the start or the middle of the exposure.
    time_scale : str
        Time scale of the header times (``"utc"`` for nearly every instrument); a
        ``TIMESYS`` keyword in the header takes precedence.
    filter_first_word : bool
        Keep only the first word of the filter value (DECam: ``"r DECam SDSS c0002 ..."``).
    filter_aliases : dict
        Map raw filter names to short ones (``{"ZTF_r": "r"}``).
    ra_unit : {"deg", "hourangle"}
        Unit of a sexagesimal or numeric RA value.
    default_gain, default_read_noise : float or None
        Used when the header lacks the keyword (documented instrument values).
    """

    name: str
    instrume: tuple[str, ...] = ()
    filter_keys: Keys = ("FILTER", "FILTER1", "FILTNAME")
    mjd_keys: Keys = ("MJD-OBS",)
    date_keys: Keys = ("DATE-OBS",)
    time_keys: Keys = ("TIME-OBS", "UT", "UTSTART")
    exptime_keys: Keys = ("EXPTIME", "EXPOSURE", "ITIME")
    gain_keys: Keys = ("GAIN", "EGAIN")
    read_noise_keys: Keys = ("RDNOISE", "READNOIS", "RON")
    binning_keys: Keys = ("BINNING", "CCDSUM")
    xbin_keys: Keys = ("XBINNING", "CCDXBIN")
    ybin_keys: Keys = ("YBINNING", "CCDYBIN")
    ra_keys: Keys = ("RA", "OBJCTRA", "CRVAL1")
    dec_keys: Keys = ("DEC", "OBJCTDEC", "CRVAL2")
    saturate_keys: Keys = ("SATURATE", "SATLEVEL")
    zeropoint_keys: Keys = ("MAGZERO", "MAGZP", "MAGZPT")
    time_reference: str = "start"
    time_scale: str = "utc"
    filter_first_word: bool = False
    filter_aliases: dict = field(default_factory=dict)
    ra_unit: str = "deg"
    default_gain: float | None = None
    default_read_noise: float | None = None

    def __post_init__(self) -> None:
        if self.time_reference not in ("start", "mid"):
            raise ParameterError(
                f"profile {self.name!r}: time_reference must be 'start' or 'mid', "
                f"got {self.time_reference!r}"
            )
        if self.ra_unit not in ("deg", "hourangle"):
            raise ParameterError(
                f"profile {self.name!r}: ra_unit must be 'deg' or 'hourangle', got {self.ra_unit!r}"
            )


PROFILES: dict[str, InstrumentProfile] = {}


def register_profile(profile: InstrumentProfile) -> InstrumentProfile:
    """Add ``profile`` to :data:`PROFILES` (replacing one of the same name)."""
    PROFILES[profile.name.lower()] = profile
    return profile


register_profile(InstrumentProfile(name="generic"))
register_profile(
    InstrumentProfile(
        name="decam",
        instrume=("DECam",),
        filter_first_word=True,
        gain_keys=("GAINA", "GAIN"),
        read_noise_keys=("RDNOISEA", "RDNOISE"),
        ra_unit="hourangle",
        ra_keys=("RA", "TELRA"),
        dec_keys=("DEC", "TELDEC"),
    )
)
register_profile(
    InstrumentProfile(
        name="ztf",
        instrume=("ZTF",),
        filter_keys=("FILTER", "FILTERID"),
        mjd_keys=("OBSMJD", "MJD-OBS"),
        read_noise_keys=("READNOI", "RDNOISE"),
        filter_aliases={"ZTF_g": "g", "ZTF_r": "r", "ZTF_i": "i", "1": "g", "2": "r", "3": "i"},
        ra_keys=("RA", "TELRA", "CRVAL1"),
        dec_keys=("DEC", "TELDEC", "CRVAL2"),
    )
)


def get_profile(name: str | InstrumentProfile) -> InstrumentProfile:
    """Look a profile up by name (case-insensitive), or load it from a TOML file path."""
    if isinstance(name, InstrumentProfile):
        return name
    if str(name).endswith(".toml"):
        return load_profile(name)
    try:
        return PROFILES[str(name).lower()]
    except KeyError:
        raise ParameterError(
            f"unknown instrument profile {name!r}; known: {', '.join(sorted(PROFILES))} "
            "(or give a .toml file)"
        ) from None


def load_profile(path: str | Path) -> InstrumentProfile:
    """Read an :class:`InstrumentProfile` from a TOML file with the same field names."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ParameterError(f"cannot read instrument profile {path}: {exc}") from exc
    known = {f.name for f in fields(InstrumentProfile)}
    unknown = set(raw) - known
    if unknown:
        raise ParameterError(f"{path}: unknown profile fields {sorted(unknown)}")
    values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}
    values.setdefault("name", path.stem)
    return InstrumentProfile(**values)


def detect_profile(header, *, default: str = "generic") -> InstrumentProfile:
    """Pick the profile whose ``instrume`` matches the header's ``INSTRUME``."""
    instrument = str(header.get("INSTRUME", "")).strip().lower()
    if instrument:
        for profile in PROFILES.values():
            if any(instrument.startswith(v.lower()) for v in profile.instrume):
                return profile
    return get_profile(default)


@dataclass(frozen=True, kw_only=True)
class ObservationInfo:
    """What the header says about one exposure (times are astropy ``Time``)."""

    filename: str
    instrument: str
    band: str
    time_start: Any
    time_mid: Any
    exptime: float
    gain: float | None
    read_noise: float | None
    binning: tuple[int, int]
    ra: float | None
    dec: float | None
    saturate: float | None
    zeropoint: float | None


def first_keyword(header, keys: Keys) -> tuple[str | None, Any]:
    """The first of ``keys`` present (and not blank) in ``header``: ``(key, value)`` or ``(None, None)``."""
    for key in keys:
        if key in header and header[key] is not None and str(header[key]).strip() != "":
            return key, header[key]
    return None, None


def float_keyword(
    header, keys: Keys, filename: str, *, required: bool = False, what: str = "value"
) -> float | None:
    """The first of ``keys`` as a finite float; None if absent (HeaderError if ``required``)."""
    key, value = first_keyword(header, keys)
    if key is None:
        if required:
            raise HeaderError(
                f"{filename}: missing {what} keyword (tried {', '.join(keys)})",
                filename=filename,
                key=keys[0],
            )
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise HeaderError(
            f"{filename}: keyword {key}={value!r} is not a number ({what})",
            filename=filename,
            key=key,
        ) from None
    if not math.isfinite(out):
        raise HeaderError(
            f"{filename}: keyword {key}={value!r} is not finite", filename=filename, key=key
        )
    return out


def binning_keyword(
    header, profile: InstrumentProfile, filename: str, *, default: tuple[int, int] | None = (1, 1)
) -> tuple[int, int] | None:
    """Binning ``(x, y)`` from ``BINNING``/``CCDSUM`` ('2x2', '2 2') or ``XBINNING``/``YBINNING``.

    Returns ``default`` when no binning keyword is present.
    """
    key, value = first_keyword(header, profile.binning_keys)
    if key is not None:
        parts = re.split(r"[\sxX,]+", str(value).strip())
        try:
            nums = [int(p) for p in parts if p]
        except ValueError:
            raise HeaderError(
                f"{filename}: keyword {key}={value!r} is not a binning like '2x2' or '2 2'",
                filename=filename,
                key=key,
            ) from None
        if len(nums) == 1:
            nums = nums * 2
        if len(nums) != 2 or min(nums) < 1:
            raise HeaderError(
                f"{filename}: keyword {key}={value!r} is not a valid binning",
                filename=filename,
                key=key,
            )
        return nums[0], nums[1]
    xb = float_keyword(header, profile.xbin_keys, filename, required=False, what="x binning")
    yb = float_keyword(header, profile.ybin_keys, filename, required=False, what="y binning")
    if xb is None and yb is None:
        return default
    return int(xb or yb or 1), int(yb or xb or 1)


def _angle(header, keys: Keys, unit: str, filename: str) -> float | None:
    from astropy.coordinates import Angle

    key, value = first_keyword(header, keys)
    if key is None:
        return None
    try:
        if isinstance(value, int | float):  # numeric values are degrees (FITS convention)
            return float(value)
        text = str(value).strip()
        try:
            return float(text)
        except ValueError:
            return float(Angle(text, unit=unit).deg)
    except Exception:
        raise HeaderError(
            f"{filename}: keyword {key}={value!r} is not an angle", filename=filename, key=key
        ) from None


_TIMESYS = {"UTC": "utc", "GMT": "utc", "TAI": "tai", "TT": "tt", "TDT": "tt", "ET": "tt"}
_TIMESYS.update({k: k.lower() for k in ("TDB", "TCB", "TCG", "UT1")})


def time_scale(header, profile: InstrumentProfile, filename: str) -> str:
    """Time scale of the header times: ``TIMESYS`` when present, else the profile's."""
    value = header.get("TIMESYS")
    if value is None or str(value).strip() == "":
        return profile.time_scale
    scale = _TIMESYS.get(str(value).strip().upper())
    if scale is None:
        raise HeaderError(
            f"{filename}: keyword TIMESYS={value!r} is not a known time scale "
            f"({', '.join(sorted(_TIMESYS))})",
            filename=filename,
            key="TIMESYS",
        )
    return scale


def _start_time(header, profile: InstrumentProfile, filename: str):
    from astropy.time import Time

    scale = time_scale(header, profile, filename)
    key, value = first_keyword(header, profile.mjd_keys)
    if key is not None:
        mjd = float_keyword(header, (key,), filename, required=True, what="MJD")
        return Time(mjd, format="mjd", scale=scale), key
    key, value = first_keyword(header, profile.date_keys)
    if key is None:
        raise HeaderError(
            f"{filename}: no observation time (tried {', '.join(profile.mjd_keys + profile.date_keys)})",
            filename=filename,
            key=profile.date_keys[0] if profile.date_keys else "DATE-OBS",
        )
    text = str(value).strip()
    if "T" not in text:
        tkey, tvalue = first_keyword(header, profile.time_keys)
        if tkey is not None:
            text = f"{text}T{str(tvalue).strip()}"
    try:
        return Time(text, format="isot" if "T" in text else "iso", scale=scale), key
    except ValueError:
        raise HeaderError(
            f"{filename}: keyword {key}={value!r} is not an ISO date/time",
            filename=filename,
            key=key,
        ) from None


def band_keyword(header, profile: InstrumentProfile, filename: str, *, what: str = "") -> str:
    """The filter name, normalised by the profile (first word, aliases).

    Raises HeaderError naming the file and the keywords tried; ``what`` names the kind
    of frame in the message (e.g. ``"flat frame"``).
    """
    key, value = first_keyword(header, profile.filter_keys)
    if key is None:
        prefix = f"{what} without a filter keyword" if what else "missing filter keyword"
        raise HeaderError(
            f"{filename}: {prefix} (tried {', '.join(profile.filter_keys)})",
            filename=filename,
            key=profile.filter_keys[0],
        )
    band = str(value).strip()
    if profile.filter_first_word:
        band = band.split()[0]
    return profile.filter_aliases.get(band, band)


def parse_header(
    header, *, filename: str = "<header>", profile: str | InstrumentProfile | None = None
) -> ObservationInfo:
    """Read filter, times, exposure time, gain, read noise, binning and pointing.

    Parameters
    ----------
    header : astropy.io.fits.Header or mapping
    filename : str
        Named in every error message.
    profile : str, InstrumentProfile or None
        Instrument profile; auto-detected from ``INSTRUME`` when None.

    Returns
    -------
    ObservationInfo
        ``time_mid`` is the middle of the exposure (start + EXPTIME/2 unless the
        profile says the header time is already the middle).

    Raises
    ------
    HeaderError
        A required keyword (filter, time, exposure time) is missing or malformed.

    Examples
    --------
    >>> from astropy.io import fits
    >>> h = fits.Header({"FILTER": "r", "MJD-OBS": 60000.0, "EXPTIME": 2.0})
    >>> info = parse_header(h)
    >>> info.band, float(round((info.time_mid.mjd - 60000.0) * 86400, 6))
    ('r', 1.0)
    """
    from astropy import units as u

    prof = detect_profile(header) if profile is None else get_profile(profile)
    band = band_keyword(header, prof, filename)
    exptime = float_keyword(
        header, prof.exptime_keys, filename, required=True, what="exposure time"
    )
    if exptime is None or exptime < 0:
        raise HeaderError(
            f"{filename}: exposure time must not be negative ({prof.exptime_keys[0]} = {exptime})",
            filename=filename,
            key=prof.exptime_keys[0],
        )
    start, _ = _start_time(header, prof, filename)
    mid = start + (0.5 * exptime * u.s if prof.time_reference == "start" else 0 * u.s)
    if prof.time_reference == "mid":
        start = mid - 0.5 * exptime * u.s
    gain = float_keyword(header, prof.gain_keys, filename, required=False, what="gain")
    if gain is None:
        gain = prof.default_gain
    if gain is not None and gain <= 0:
        raise HeaderError(
            f"{filename}: gain must be positive ({prof.gain_keys[0]} = {gain})",
            filename=filename,
            key=prof.gain_keys[0],
        )
    read_noise = float_keyword(
        header, prof.read_noise_keys, filename, required=False, what="read noise"
    )
    if read_noise is None:
        read_noise = prof.default_read_noise
    return ObservationInfo(
        filename=filename,
        instrument=str(header.get("INSTRUME", prof.name)).strip(),
        band=band,
        time_start=start,
        time_mid=mid,
        exptime=float(exptime),
        gain=gain,
        read_noise=read_noise,
        binning=binning_keyword(header, prof, filename) or (1, 1),
        ra=_angle(header, prof.ra_keys, prof.ra_unit, filename),
        dec=_angle(header, prof.dec_keys, "deg", filename),
        saturate=float_keyword(
            header, prof.saturate_keys, filename, required=False, what="saturation"
        ),
        zeropoint=float_keyword(
            header, prof.zeropoint_keys, filename, required=False, what="zeropoint"
        ),
    )
