"""Alert cutouts (``stampData``): thin wrappers of the one stamp codec, :mod:`skyscene.io.stamps`.

An alert stamp is gzip-compressed FITS with the cutout in the primary HDU and, when
given, its variance in an ``IMAGE`` extension named ``VARIANCE``
(``UTYPE = 'VarianceUncertainty'``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from skyscene.io.stamps import STAMP_COMPRESSLEVEL, decode_fits_stamp, encode_fits_stamp

__all__ = ["decode_stamp", "encode_stamp"]


def encode_stamp(
    data: Any,
    *,
    header: Mapping[str, Any] | None = None,
    variance: Any = None,
    compresslevel: int = STAMP_COMPRESSLEVEL,
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
        gzip level, 0-9 (see :func:`skyscene.io.encode_fits_stamp`); 1, the default, is
        the fastest that compresses.

    Returns
    -------
    bytes
        A gzip stream (deterministic: no time stamp) of a valid FITS file.
    """
    return encode_fits_stamp(
        data,
        variance=variance,
        cards=header,
        variance_extname="VARIANCE",
        compresslevel=compresslevel,
    )


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
    return decode_fits_stamp(stamp, name=name).data
