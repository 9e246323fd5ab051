"""Cutout stamps as PNG images for the review page, with an LRU cache of rendered stamps."""

from __future__ import annotations

import hashlib
import struct
import threading
import zlib
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from skyscene._validation import check_choice, check_int

__all__ = ["NAN_RGB", "STRETCHES", "PngCache", "RenderedStamp", "render_png", "stretch"]

#: Stretches offered for cutouts.
STRETCHES = ("zscale", "asinh", "linear")

#: Colour of NaN (off-image or masked) pixels: dark blue, never mistaken for sky.
NAN_RGB = (40, 60, 110)

_ASINH_A = 0.1


def stretch(data: np.ndarray, kind: str = "zscale") -> np.ndarray:
    """Map a cutout to [0, 1] for display; NaN stays NaN.

    Parameters
    ----------
    data : ndarray (ny, nx)
    kind : {"zscale", "asinh", "linear"}
        ``zscale``: IRAF's zscale limits (astropy ``ZScaleInterval``), linear between
        them; ``asinh``: 0.5-99.5 percentile limits, then ``asinh(x/a)/asinh(1/a)`` with
        a = 0.1 (bright cores and faint wings at once); ``linear``: minimum to maximum.
        A constant (or all-NaN) cutout maps to 0.5.

    Returns
    -------
    ndarray of float64 (ny, nx)
    """
    check_choice("stretch", kind, STRETCHES)
    data = np.asarray(data, dtype=float)
    good = np.isfinite(data)
    finite = data[good]
    if finite.size < 2 or float(finite.max()) == float(finite.min()):
        return np.where(good, 0.5, np.nan)
    if kind == "zscale":
        from astropy.visualization import ZScaleInterval

        low, high = ZScaleInterval().get_limits(finite)
    elif kind == "asinh":
        low, high = np.percentile(finite, [0.5, 99.5])
    else:
        low, high = float(finite.min()), float(finite.max())
    if not high > low:
        low, high = float(finite.min()), float(finite.max())
    scaled = np.full(data.shape, np.nan)
    scaled[good] = np.clip((finite - low) / (high - low), 0.0, 1.0)
    if kind == "asinh":
        scaled[good] = np.arcsinh(scaled[good] / _ASINH_A) / np.arcsinh(1.0 / _ASINH_A)
    return scaled


def _grey_palette() -> bytes:
    """PLTE of the stamps: 255 grey levels (index i: round(255 i / 254)), then NaN."""
    levels = np.round(np.arange(255) * 255 / 254).astype(np.uint8)
    rgb = np.empty((256, 3), np.uint8)
    rgb[:255] = levels[:, None]
    rgb[255] = NAN_RGB
    return rgb.tobytes()


_PALETTE = _grey_palette()
_NAN_INDEX = 255


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return (
        struct.pack(">I", len(payload))
        + kind
        + payload
        + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)
    )


def render_png(data: np.ndarray, *, kind: str = "zscale", zoom: int = 4) -> bytes:
    """A cutout as an 8-bit palette PNG: stretched, row 0 at the bottom
    (``origin="lower"``), magnified ``zoom`` times (nearest pixel), NaN drawn in
    :data:`NAN_RGB`.

    The palette holds 255 grey levels (0 to 255 in steps of 255/254) and the NaN colour;
    the PNG is written directly (zlib): each magnified row is the stretched row with
    every pixel repeated ``zoom`` times, followed by ``zoom - 1`` rows of PNG filter
    type 2 ("Up", all zero bytes), which compress to almost nothing. About 0.1 ms for
    a 63 x 63 stamp, against ~1 ms through Pillow at the same size.

    Returns
    -------
    bytes
        PNG of ``zoom * ny`` by ``zoom * nx`` pixels (colour type 3, palette).
    """
    check_int("zoom", zoom, low=1, high=16)
    data = np.asarray(data)
    if data.ndim != 2:
        raise ValueError(f"a cutout must be 2-D, got shape {data.shape}")
    grey = stretch(data, kind)[::-1]
    finite = np.isfinite(grey)
    index = np.round(np.where(finite, grey, 0.0) * 254).astype(np.uint8)
    index[~finite] = _NAN_INDEX
    ny, nx = index.shape
    width = nx * zoom
    scanlines = np.zeros((ny, zoom, 1 + width), np.uint8)
    scanlines[:, 0, 0] = 0  # filter "None" on the first copy of each row
    scanlines[:, 0, 1:] = np.repeat(index, zoom, axis=1)
    scanlines[:, 1:, 0] = 2  # filter "Up" (difference to the row above: zero)
    header = struct.pack(">IIBBBBB", width, ny * zoom, 8, 3, 0, 0, 0)
    return b"".join(
        (
            b"\x89PNG\r\n\x1a\n",
            _chunk(b"IHDR", header),
            _chunk(b"PLTE", _PALETTE),
            _chunk(b"IDAT", zlib.compress(scanlines.tobytes(), 1)),
            _chunk(b"IEND", b""),
        )
    )


@dataclass(frozen=True)
class RenderedStamp:
    """A rendered PNG and its entity tag (quoted SHA-1 of the bytes)."""

    png: bytes
    etag: str

    @classmethod
    def of(cls, png: bytes) -> RenderedStamp:
        return cls(png, '"' + hashlib.sha1(png, usedforsecurity=False).hexdigest() + '"')


class PngCache:
    """Thread-safe least-recently-used cache of :class:`RenderedStamp` by key.

    ``size`` 0 keeps nothing. ``hits`` and ``misses`` count lookups.
    """

    def __init__(self, size: int):
        self.size = check_int("cutout_cache_size", size, low=0)
        self._items: OrderedDict[tuple, RenderedStamp] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple) -> RenderedStamp | None:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return item

    def put(self, key: tuple, item: RenderedStamp) -> None:
        if self.size == 0:
            return
        with self._lock:
            self._items[key] = item
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)
