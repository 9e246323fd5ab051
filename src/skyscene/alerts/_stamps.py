"""Gzip-compressed FITS stamps, the cutout format of ZTF alerts, encoded and decoded fast.

A stamp is a FITS file with the cutout in the primary HDU (``BITPIX = -32``) and, when
given, its variance in an ``IMAGE`` extension named ``VARIANCE``, gzip-compressed as a
whole (``stampData`` of ZTF's ``cutout`` record). Encoding writes the FITS cards
directly (no astropy on the hot path); decoding reads the primary HDU with a small
header parser and falls back to :mod:`astropy.io.fits` for anything it does not know
(scaled integers, other BITPIX), so every valid FITS stamp decodes.
"""

from __future__ import annotations

import gzip
import io
import math
import warnings
import zlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from skyscene.errors import DataError

__all__ = ["decode_stamp", "encode_stamp"]

_BLOCK = 2880
_CARD = 80


def _format_value(key: str, value: Any) -> str:
    if isinstance(value, bool | np.bool_):
        text = "T" if value else "F"
    elif isinstance(value, int | np.integer):
        text = str(int(value))
    elif isinstance(value, float | np.floating):
        number = float(value)
        if not math.isfinite(number):
            raise DataError(f"stamp header key {key!r}: value {value!r} is not finite")
        text = repr(number).upper()
        if "E" not in text and "." not in text:
            text += ".0"
    elif isinstance(value, str):
        escaped = value.replace("'", "''")
        if len(escaped) > 68:
            raise DataError(f"stamp header key {key!r}: string value longer than 68 characters")
        text = f"'{escaped:<8}'"
        return f"{key:<8}= {text:<20}"
    else:
        raise DataError(f"stamp header key {key!r}: unsupported value type {type(value).__name__}")
    return f"{key:<8}= {text:>20}"


def _card(key: str, value: Any) -> str:
    key = key.upper()
    if len(key) > 8 or not key.replace("_", "").replace("-", "").isalnum():
        raise DataError(
            f"stamp header key {key!r} is not a FITS keyword (<= 8 letters, digits, _ -)"
        )
    card = _format_value(key, value)
    if len(card) > _CARD:
        raise DataError(f"stamp header key {key!r}: card longer than 80 characters")
    return f"{card:<80}"


def _header(cards: list[str]) -> bytes:
    text = "".join(cards) + f"{'END':<80}"
    pad = -len(text) % _BLOCK
    return (text + " " * pad).encode("ascii")


def _data(array: np.ndarray) -> bytes:
    raw = np.ascontiguousarray(array, dtype=">f4").tobytes()
    return raw + b"\0" * (-len(raw) % _BLOCK)


def _check_plane(name: str, array: Any) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim != 2 or array.size == 0:
        raise DataError(f"stamp {name} must be a non-empty 2-D array, got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.number):
        raise DataError(f"stamp {name} must be numeric, got dtype {array.dtype}")
    return array


def encode_stamp(
    data: Any,
    *,
    header: Mapping[str, Any] | None = None,
    variance: Any = None,
    compresslevel: int = 1,
) -> bytes:
    """Encode a cutout as gzip-compressed FITS bytes (ZTF's ``stampData``).

    Parameters
    ----------
    data : array_like, shape (ny, nx)
        The cutout, written as 32-bit floats (NaN stays NaN: off-image pixels).
    header : mapping, optional
        Extra primary-header cards (``{"BUNIT": "adu", "CRPIX1": 32.0, ...}``): values
        str, int, float (finite) or bool; keys FITS keywords of up to 8 characters.
    variance : array_like, shape (ny, nx), optional
        Written as an ``IMAGE`` extension ``EXTNAME = 'VARIANCE'``.
    compresslevel : int
        gzip level, 0-9; 1 (the default) is the fastest that still compresses.

    Returns
    -------
    bytes
        A gzip stream (deterministic: no time stamp) of a valid FITS file.
    """
    data = _check_plane("data", data)
    cards = [
        _card("SIMPLE", True),
        _card("BITPIX", -32),
        _card("NAXIS", 2),
        _card("NAXIS1", data.shape[1]),
        _card("NAXIS2", data.shape[0]),
    ]
    if variance is not None:
        cards.append(_card("EXTEND", True))
    reserved = {"SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "EXTEND", "END"}
    for key, value in (header or {}).items():
        if key.upper() in reserved:
            raise DataError(f"stamp header key {key!r} is reserved (set from the array)")
        cards.append(_card(key, value))
    parts = [_header(cards), _data(data)]
    if variance is not None:
        variance = _check_plane("variance", variance)
        if variance.shape != data.shape:
            raise DataError(
                f"stamp variance shape {variance.shape} differs from data shape {data.shape}"
            )
        ext = [
            _card("XTENSION", "IMAGE"),
            _card("BITPIX", -32),
            _card("NAXIS", 2),
            _card("NAXIS1", variance.shape[1]),
            _card("NAXIS2", variance.shape[0]),
            _card("PCOUNT", 0),
            _card("GCOUNT", 1),
            _card("EXTNAME", "VARIANCE"),
        ]
        parts += [_header(ext), _data(variance)]
    compressor = zlib.compressobj(compresslevel, zlib.DEFLATED, 31)  # 31: gzip container
    return compressor.compress(b"".join(parts)) + compressor.flush()


def _parse_primary(raw: bytes) -> np.ndarray | None:
    """The primary image of a plain float FITS file, or None when the fast path does not apply."""
    values: dict[str, str] = {}
    offset = 0
    while True:
        if offset + _CARD > len(raw):
            return None
        card = raw[offset : offset + _CARD].decode("ascii", "replace")
        offset += _CARD
        key = card[:8].strip()
        if key == "END":
            break
        if card[8:10] == "= ":
            values[key] = card[10:].split("/")[0].strip()
    start = -(-offset // _BLOCK) * _BLOCK
    try:
        bitpix = int(values["BITPIX"])
        naxis = int(values["NAXIS"])
        if naxis != 2 or bitpix not in (-32, -64) or "BSCALE" in values or "BZERO" in values:
            return None
        nx, ny = int(values["NAXIS1"]), int(values["NAXIS2"])
    except (KeyError, ValueError):
        return None
    dtype = np.dtype(">f4" if bitpix == -32 else ">f8")
    stop = start + nx * ny * dtype.itemsize
    if stop > len(raw):
        return None
    return np.frombuffer(raw, dtype=dtype, count=nx * ny, offset=start).reshape(ny, nx)


def decode_stamp(stamp: bytes, *, name: str = "stamp") -> np.ndarray:
    """Decode gzip-compressed (or plain) FITS bytes into a float32 array of the primary image.

    Parameters
    ----------
    stamp : bytes
        ``stampData`` of an alert cutout.
    name : str
        How to name the stamp in an error (the file and field).

    Returns
    -------
    numpy.ndarray, shape (ny, nx), float32, read-only
    """
    try:
        raw = gzip.decompress(stamp) if stamp[:2] == b"\x1f\x8b" else bytes(stamp)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{name}: not gzip-compressed FITS ({exc})") from None
    image = _parse_primary(raw)
    if image is None:
        from astropy.io import fits

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # ZTF's stamps have a non-standard SIMPLE card
                with fits.open(io.BytesIO(raw)) as hdul:
                    hdu = next((h for h in hdul if h.data is not None and h.data.ndim == 2), None)
                    image = None if hdu is None else np.array(hdu.data)
        except (OSError, ValueError, TypeError) as exc:
            raise DataError(f"{name}: not a FITS image ({exc})") from None
        if image is None:
            raise DataError(f"{name}: FITS stamp holds no 2-D image")
    out = image.astype(np.float32)
    out.flags.writeable = False
    return out
