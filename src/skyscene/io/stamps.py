"""Gzip-compressed FITS stamps (alert cutouts), encoded and decoded fast: one codec.

A *stamp* is a small FITS file, gzip-compressed as a whole: ZTF's ``stampData``, the
cutouts of skyscene's alerts and of its candidate database. Layout written by
:func:`encode_fits_stamp`:

- primary HDU: the image as 32-bit floats (``BITPIX = -32``, NaN kept), its WCS cards,
  ``BUNIT`` and any extra cards;
- optional ``IMAGE`` extension with the variance (``EXTNAME = 'UNCERT'`` by default,
  ``UTYPE = 'VarianceUncertainty'``, ``BUNIT`` the square of the image unit);
- optional ``IMAGE`` extension ``MASK`` (``BITPIX = 8``, 0 = good pixel),

which ``astropy.io.fits`` reads and ``astropy.nddata.CCDData.read(path,
hdu_uncertainty="UNCERT", hdu_mask="MASK")`` understands. The cards are written directly
(no astropy on the hot path) and the gzip stream comes from ISA-L (the ``isal`` package:
the same ratio as zlib's level 1 at about a tenth of the time), without a time stamp, so
equal inputs give equal bytes.

:func:`decode_fits_stamp` reads gzip or plain FITS bytes with a small header parser
(float images, ``IMAGE`` extensions without scaling) and falls back to
:mod:`astropy.io.fits` for anything else (scaled integers, other BITPIX, odd layouts), so
every valid FITS stamp decodes, ZTF's included (whose non-standard ``SIMPLE`` card astropy
warns about).
"""

from __future__ import annotations

import functools
import io
import math
import re
import warnings
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from skyscene.errors import DataError

__all__ = ["STAMP_COMPRESSLEVEL", "FitsStamp", "decode_fits_stamp", "encode_fits_stamp"]

STAMP_COMPRESSLEVEL = 1
"""Default gzip level of :func:`encode_fits_stamp`: ISA-L's fastest (about zlib's level 1
ratio; float noise barely compresses at any level)."""

_BLOCK = 2880
_CARD = 80
_KEYWORD = re.compile(r"[A-Z0-9_-]{1,8}")
_STRUCTURAL = frozenset(
    {"SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "EXTEND", "XTENSION", "PCOUNT", "GCOUNT"}
)
_COMMENTARY = frozenset({"COMMENT", "HISTORY"})
_END = f"{'END':<80}"


# --------------------------------------------------------------------------- encoding


def _format_value(key: str, value: Any) -> str:
    """The value field of a card (FITS fixed format where it fits)."""
    if isinstance(value, bool | np.bool_):
        return f"{'T' if value else 'F':>20}"
    if isinstance(value, int | np.integer):
        return f"{int(value):>20}"
    if isinstance(value, float | np.floating):
        number = float(value)
        if not math.isfinite(number):
            raise DataError(f"stamp header key {key!r}: value {value!r} is not finite")
        text = repr(number).upper()  # shortest text that reads back to the same double
        if "E" not in text and "." not in text:  # pragma: no cover - repr always has one
            text += ".0"
        return f"{text:>20}"
    if isinstance(value, str):
        if not value.isascii() or not value.isprintable():
            raise DataError(f"stamp header key {key!r}: string value {value!r} is not ASCII text")
        escaped = value.replace("'", "''")
        if len(escaped) > 68:
            raise DataError(f"stamp header key {key!r}: string value longer than 68 characters")
        quoted = f"'{escaped:<8}'"
        return f"{quoted:<20}"
    raise DataError(f"stamp header key {key!r}: unsupported value type {type(value).__name__}")


@functools.lru_cache(maxsize=8192)
def _card_cached(key: str, kind: str, value: Any, comment: str) -> str:
    del kind  # part of the cache key only: True and 1 are equal, their cards are not
    key = key.upper()
    if not _KEYWORD.fullmatch(key):
        raise DataError(
            f"stamp header key {key!r} is not a FITS keyword (<= 8 letters, digits, _ -)"
        )
    if key in _COMMENTARY:
        text = str(value if value is not None else comment)
        return f"{key:<8}{text.encode('ascii', 'replace').decode()[:72]:<72}"
    card = f"{key:<8}= {_format_value(key, value)}"
    if len(card) > _CARD:
        raise DataError(f"stamp header key {key!r}: card longer than 80 characters")
    if comment:
        card += f" / {comment.encode('ascii', 'replace').decode()}"
    return f"{card[:_CARD]:<80}"


def _card(key: str, value: Any, comment: str = "") -> str:
    try:
        return _card_cached(key, type(value).__name__, value, comment)
    except TypeError:  # unhashable value: not a FITS value either
        raise DataError(
            f"stamp header key {key!r}: unsupported value type {type(value).__name__}"
        ) from None


def _card_triples(cards: Any, what: str) -> list[tuple[str, Any, str]]:
    """``(key, value, comment)`` of a mapping (``{key: value | (value, comment)}``), an
    astropy Header or WCS, or an iterable of ``(key, value[, comment])``."""
    if cards is None:
        return []
    if hasattr(cards, "to_header"):  # an astropy WCS
        cards = cards.to_header(relax=True)
    if hasattr(cards, "cards"):  # an astropy Header
        return [
            (c.keyword, c.value, c.comment)
            for c in cards.cards
            if c.keyword not in ("", "COMMENT", "HISTORY")
        ]
    out = []
    if isinstance(cards, Mapping):
        for key, value in cards.items():
            comment = ""
            if isinstance(value, tuple):
                if len(value) != 2:
                    raise DataError(f"stamp {what} card {key!r}: expected (value, comment)")
                value, comment = value
            out.append((key, value, comment))
    else:
        for item in cards:
            if type(item) is tuple and len(item) == 3:  # the common case, made once
                out.append(item)
            elif isinstance(item, tuple | list) and len(item) in (2, 3):
                out.append((item[0], item[1], item[2] if len(item) == 3 else ""))
            else:
                raise DataError(
                    f"stamp {what} cards: expected (key, value[, comment]) items, got {item!r}"
                )
    for key, _, comment in out:
        if not isinstance(key, str):
            raise DataError(f"stamp {what} card key {key!r} is not a string")
        if not isinstance(comment, str):
            raise DataError(f"stamp {what} card {key!r}: comment {comment!r} is not a string")
    return out


def _header(cards: list[str]) -> bytes:
    text = "".join(cards) + _END
    return (text + " " * (-len(text) % _BLOCK)).encode("ascii")


def _data(array: np.ndarray, dtype: str) -> bytes:
    raw = np.ascontiguousarray(array, dtype=dtype).tobytes()
    return raw + b"\0" * (-len(raw) % _BLOCK)


@functools.lru_cache(maxsize=256)
def _extension_header(
    ny: int, nx: int, bitpix: int, extname: str, extname_comment: str, extra: tuple
) -> bytes:
    cards = [
        _card("XTENSION", "IMAGE", "image extension"),
        _card("BITPIX", bitpix),
        _card("NAXIS", 2),
        _card("NAXIS1", nx),
        _card("NAXIS2", ny),
        _card("PCOUNT", 0),
        _card("GCOUNT", 1),
        _card("EXTNAME", extname, extname_comment),
        *(_card(*c) for c in extra),
    ]
    return _header(cards)


def _check_plane(name: str, array: Any, shape: tuple[int, ...] | None = None) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim != 2 or array.size == 0:
        raise DataError(f"stamp {name} must be a non-empty 2-D array, got shape {array.shape}")
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        raise DataError(f"stamp {name} must be numeric, got dtype {array.dtype}")
    if shape is not None and array.shape != shape:
        raise DataError(f"stamp {name} shape {array.shape} differs from data shape {shape}")
    return array


def _mask_plane(mask: Any, shape: tuple[int, ...]) -> tuple[np.ndarray, int, str]:
    mask = _check_plane("mask", mask, shape)
    if mask.dtype == np.bool_ or mask.dtype == np.uint8:
        return mask, 8, "u1"
    if not np.issubdtype(mask.dtype, np.integer):
        raise DataError(f"stamp mask must be integer or bool, got dtype {mask.dtype}")
    if mask.size and (int(mask.min()) < -(2**31) or int(mask.max()) >= 2**31):
        raise DataError("stamp mask values do not fit in 32-bit integers")
    return mask, 32, ">i4"


def _compress(raw: bytes, level: int) -> bytes:
    """A gzip stream (no time stamp): stored at 0, ISA-L at 1-3, zlib at 4-9."""
    if 1 <= level <= 3:
        from isal import isal_zlib

        return isal_zlib.compress(raw, level, 31)
    return zlib.compress(raw, level, 31)


def encode_fits_stamp(
    data: Any,
    *,
    variance: Any = None,
    mask: Any = None,
    wcs: Any = None,
    bunit: str | None = None,
    cards: Any = None,
    variance_extname: str = "UNCERT",
    mask_comment: str = "0 = good pixel",
    compresslevel: int = STAMP_COMPRESSLEVEL,
) -> bytes:
    """Encode a cutout (and its variance and mask planes) as gzip-compressed FITS bytes.

    Parameters
    ----------
    data : array_like, shape (ny, nx)
        The image, written as 32-bit floats (NaN stays NaN: off-image pixels). float32
        input reads back bit for bit.
    variance : array_like, shape (ny, nx), optional
        Written as 32-bit floats to an ``IMAGE`` extension ``variance_extname`` with
        ``UTYPE = 'VarianceUncertainty'`` (``inf`` stays ``inf``).
    mask : array_like of bool or int, shape (ny, nx), optional
        Written to an ``IMAGE`` extension ``MASK``: ``BITPIX = 8`` for bool/uint8, 32
        for other integers (0 = good pixel).
    wcs : astropy.wcs.WCS, astropy Header or cards, optional
        The cutout's WCS: a WCS (``to_header(relax=True)``), a Header, or ``(key, value,
        comment)`` cards already made (faster when many cutouts share a WCS).
    bunit : str, optional
        ``BUNIT`` of the image (astropy unit string); the variance gets its square.
    cards : mapping or iterable, optional
        Extra primary cards after the WCS: ``{key: value | (value, comment)}`` or
        ``(key, value[, comment])`` items. Values str (ASCII, <= 68 characters), int,
        float (finite) or bool; keys FITS keywords of up to 8 characters.
    variance_extname : str
        ``EXTNAME`` of the variance HDU (``UNCERT``: astropy's ``CCDData`` default).
    mask_comment : str
        Comment of the mask HDU's ``EXTNAME`` card (what the bits mean).
    compresslevel : int
        gzip level, 0-9: 0 stores, 1-3 are ISA-L's levels (1, the default, is the
        fastest that compresses), 4-9 zlib's.

    Returns
    -------
    bytes
        A gzip stream (deterministic: no time stamp) of a valid FITS file.

    Raises
    ------
    DataError
        A plane of the wrong shape or type, a card that FITS cannot hold (non-finite
        number, long or non-ASCII string, bad keyword), a reserved or repeated keyword.

    Examples
    --------
    >>> import numpy as np
    >>> blob = encode_fits_stamp(np.ones((5, 5), np.float32), variance=np.full((5, 5), 2.0),
    ...                          bunit="adu", cards={"CANDID": 7})
    >>> stamp = decode_fits_stamp(blob)
    >>> stamp.data.shape, float(stamp.variance[0, 0]), stamp.header["BUNIT"]
    ((5, 5), 2.0, 'adu')
    """
    if isinstance(compresslevel, bool) or not isinstance(compresslevel, int | np.integer):
        raise DataError(f"stamp compresslevel must be an integer 0-9, got {compresslevel!r}")
    if not 0 <= int(compresslevel) <= 9:
        raise DataError(f"stamp compresslevel must be in [0, 9], got {compresslevel}")
    data = _check_plane("data", data)
    ny, nx = data.shape
    extensions = []
    if variance is not None:
        variance = _check_plane("variance", variance, data.shape)
        extra: tuple = (("UTYPE", "VarianceUncertainty", "astropy.nddata uncertainty class"),)
        if bunit:
            extra += (("BUNIT", f"{bunit}2", "unit of the variance"),)
        head = _extension_header(ny, nx, -32, variance_extname, "variance of the primary", extra)
        extensions += [head, _data(variance, ">f4")]
    if mask is not None:
        mask, bitpix, dtype = _mask_plane(mask, data.shape)
        extensions += [
            _extension_header(ny, nx, bitpix, "MASK", mask_comment, ()),
            _data(mask, dtype),
        ]
    primary = [
        _card("SIMPLE", True, "conforms to FITS standard"),
        _card("BITPIX", -32, "32-bit float"),
        _card("NAXIS", 2),
        _card("NAXIS1", nx),
        _card("NAXIS2", ny),
    ]
    if extensions:
        primary.append(_card("EXTEND", True))
    seen: set[str] = set()
    triples = _card_triples(wcs, "WCS")
    if bunit is not None:
        triples.append(("BUNIT", bunit, "unit of the data"))
    triples += _card_triples(cards, "header")
    for key, value, comment in triples:
        upper = key.upper()
        if upper in _STRUCTURAL or upper == "END":
            raise DataError(f"stamp header key {key!r} is reserved (set from the array)")
        if upper in seen and upper not in _COMMENTARY:
            raise DataError(f"stamp header key {key!r} is given twice")
        seen.add(upper)
        primary.append(_card(key, value, comment))
    raw = b"".join([_header(primary), _data(data, ">f4"), *extensions])
    return _compress(raw, int(compresslevel))


# --------------------------------------------------------------------------- decoding


@dataclass(frozen=True, eq=False)
class FitsStamp:
    """A decoded stamp: the image and, where the file has them, variance and mask.

    Attributes
    ----------
    data : numpy.ndarray, (ny, nx), float32, read-only
        The primary image (NaN off the image).
    variance : numpy.ndarray or None
        float32 variance (``inf`` where there are no data): from an extension marked
        ``UTYPE = 'VarianceUncertainty'`` (or named ``VARIANCE``/``VAR``), the square of a
        ``StdDevUncertainty`` one (or an unmarked ``UNCERT``, as astropy assumes), the
        inverse of an ``InverseVariance`` one (0 -> ``inf``).
    mask : numpy.ndarray or None
        The ``MASK`` (or ``MSK``) extension as stored (uint8 or int32; 0 = good).
    header : mapping
        Primary header values by keyword (str, int, float or bool; commentary left out).
    """

    data: np.ndarray
    variance: np.ndarray | None = None
    mask: np.ndarray | None = None
    header: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("data", "variance", "mask"):
            array = getattr(self, name)
            if array is not None and array.flags.writeable:
                array.flags.writeable = False
        object.__setattr__(self, "header", MappingProxyType(dict(self.header)))


_STRING = re.compile(r" *'((?:[^']|'')*)'")


def _parse_value(text: str) -> Any:
    """A card's value from its text after ``= `` (comment dropped)."""
    quoted = _STRING.match(text)
    if quoted:
        return quoted.group(1).replace("''", "'").rstrip()
    value = text.split("/", 1)[0].strip()
    if value in ("T", "F"):
        return value == "T"
    try:
        return int(value)
    except ValueError:
        pass
    try:
        return float(value.replace("D", "E"))
    except ValueError:
        return value


def _parse_header(raw: bytes, offset: int) -> tuple[dict[str, Any], int] | None:
    """Values of the header at ``offset`` (first of each keyword) and where its data start
    (None: no END card)."""
    values: dict[str, Any] = {}
    while offset + _BLOCK <= len(raw):
        block = raw[offset : offset + _BLOCK].decode("ascii", "replace")
        offset += _BLOCK
        for i in range(0, _BLOCK, _CARD):
            key = block[i : i + 8].rstrip()
            if key == "END":
                return values, offset
            if block[i + 8 : i + 10] == "= " and key not in values:
                values[key] = _parse_value(block[i + 10 : i + _CARD])
    return None


def _int(values: dict[str, Any], key: str, default: int | None = None) -> int:
    if key not in values and default is not None:
        return default
    value = values[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{key} is not an integer")
    return value


_FLOATS = {-32: ">f4", -64: ">f8"}
_INTS = {8: "u1", 16: ">i2", 32: ">i4", 64: ">i8"}


def _variance_of(array: np.ndarray, utype: str, extname: str) -> np.ndarray | None:
    if utype == "VarianceUncertainty" or (not utype and extname in ("VARIANCE", "VAR")):
        return array.astype(np.float32)
    if utype == "StdDevUncertainty" or (not utype and extname == "UNCERT"):
        return np.square(array, dtype=np.float32)
    if utype == "InverseVariance" or (not utype and extname in ("WGT", "WEIGHT", "IVAR")):
        weight = array.astype(np.float32)
        out = np.full(weight.shape, np.inf, np.float32)
        np.divide(1.0, weight, out=out, where=weight > 0)
        return out
    return None


def _fast(raw: bytes) -> FitsStamp | None:
    """Decode plain float/int image HDUs; None when the layout needs astropy."""
    parsed = _parse_header(raw, 0)
    if parsed is None:
        return None
    values, start = parsed
    data = variance = mask = None
    header: dict[str, Any] = {}
    first = True
    while True:
        try:
            bitpix = _int(values, "BITPIX")
            naxis = _int(values, "NAXIS")
            shape = tuple(_int(values, f"NAXIS{k}") for k in range(naxis, 0, -1))
            pcount = _int(values, "PCOUNT", 0)
            gcount = _int(values, "GCOUNT", 1)
        except (KeyError, ValueError):
            return None
        count = math.prod(shape) if naxis else 0
        size = abs(bitpix) // 8 * gcount * (pcount + count)
        stop = start + size
        if stop > len(raw):
            return None
        kind = "IMAGE" if first else values.get("XTENSION")
        extname = str(values.get("EXTNAME", "")).upper()
        if kind == "IMAGE" and naxis == 2 and count:
            if "BSCALE" in values or "BZERO" in values or "BLANK" in values:
                return None
            dtype = _FLOATS.get(bitpix) if first else (_FLOATS | _INTS).get(bitpix)
            if dtype is None:
                return None
            array = np.frombuffer(raw, dtype=dtype, count=count, offset=start).reshape(shape)
            if first:
                data = array.astype(np.float32)
            elif extname in ("MASK", "MSK") and mask is None:
                mask = array.astype(array.dtype.newbyteorder("="))
            elif variance is None:
                utype = str(values.get("UTYPE", ""))
                variance = _variance_of(array, utype, extname)
        elif first:
            return None  # the image is not in the primary HDU
        if first:
            header = {
                k: v for k, v in values.items() if k not in _STRUCTURAL and k not in _COMMENTARY
            }
            first = False
        start = -(-stop // _BLOCK) * _BLOCK
        if start + _CARD > len(raw) or not raw[start : start + 8].startswith(b"XTENSION"):
            break
        parsed = _parse_header(raw, start)
        if parsed is None:
            return None
        values, start = parsed
    return FitsStamp(data=data, variance=variance, mask=mask, header=header)  # type: ignore[arg-type]


def _with_astropy(raw: bytes, name: str) -> FitsStamp:
    from astropy.io import fits
    from astropy.utils.exceptions import AstropyWarning

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AstropyWarning)  # e.g. ZTF's non-standard SIMPLE
            with fits.open(io.BytesIO(raw)) as hdul:
                images = [h for h in hdul if h.data is not None and getattr(h.data, "ndim", 0) == 2]
                if not images:
                    raise DataError(f"{name}: FITS stamp holds no 2-D image")
                image = images[0]
                data = np.array(image.data, dtype=np.float32)
                variance = mask = None
                for hdu in images[1:]:
                    extname = str(hdu.header.get("EXTNAME", "")).upper()
                    if extname in ("MASK", "MSK") and mask is None:
                        mask = np.array(hdu.data)
                    elif variance is None:
                        utype = str(hdu.header.get("UTYPE", ""))
                        variance = _variance_of(np.asarray(hdu.data), utype, extname)
                header = {
                    c.keyword: c.value
                    for c in image.header.cards
                    if c.keyword not in _STRUCTURAL
                    and c.keyword not in _COMMENTARY
                    and c.keyword
                    and isinstance(c.value, str | int | float | bool)
                }
    except (OSError, ValueError, TypeError, IndexError) as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(f"{name}: not a FITS image ({exc})") from None
    return FitsStamp(data=data, variance=variance, mask=mask, header=header)


def _gunzip(stamp: bytes, name: str) -> bytes:
    if stamp[:2] != b"\x1f\x8b":
        return bytes(stamp)
    from isal import igzip

    try:
        return igzip.decompress(bytes(stamp))
    except (OSError, EOFError, zlib.error, ValueError) as exc:
        raise DataError(f"{name}: not gzip-compressed FITS ({exc})") from None


def decode_fits_stamp(stamp: bytes, *, name: str = "stamp") -> FitsStamp:
    """Decode gzip-compressed (or plain) FITS bytes into a :class:`FitsStamp`.

    Parameters
    ----------
    stamp : bytes
        A stamp (``stampData`` of an alert cutout, a stored cutout).
    name : str
        How to name the stamp in an error (the file and field).

    Returns
    -------
    FitsStamp
        The primary image as float32 (the first 2-D image when the primary HDU has
        none), the variance and mask planes where present, the primary header values.

    Raises
    ------
    DataError
        Not gzip, not FITS, or no 2-D image; the message starts with ``name``.
    """
    raw = _gunzip(stamp, name)
    decoded = _fast(raw)
    return decoded if decoded is not None else _with_astropy(raw, name)
