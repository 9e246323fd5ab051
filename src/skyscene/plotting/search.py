"""Pictures of transient candidates: science / reference / difference triplets and a static page.

Everything here works in memory (no file I/O): :func:`triplet_image` turns a cutout
triplet into an 8-bit RGB array, :func:`png_bytes` encodes it, :func:`candidate_page`
writes the HTML of a page that shows the triplets beside their key features. The page
uses no network assets (inline CSS, relative image paths), so it opens from a folder
or an archive. :mod:`skyscene.pipelines.search` writes the files.
"""

from __future__ import annotations

import html
import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from skyscene._validation import check_choice, check_int
from skyscene.errors import ParameterError

__all__ = ["PAGE_FEATURES", "STRETCHES", "candidate_page", "png_bytes", "stretch", "triplet_image"]

#: Stretches of :func:`stretch`.
STRETCHES = ("zscale", "asinh")

#: Columns shown beside each triplet: (column, label, format).
PAGE_FEATURES: tuple[tuple[str, str, str], ...] = (
    ("objectId", "objectId", "{}"),
    ("pair_id", "pair", "{}"),
    ("isdiffpos", "isdiffpos", "{}"),
    ("scorr", "S_corr", "{:.1f}"),
    ("magpsf", "magpsf", "{:.2f}"),
    ("sigmapsf", "sigmapsf", "{:.3f}"),
    ("ra", "RA", "{:.6f}"),
    ("dec", "Dec", "{:.6f}"),
    ("xpos", "x", "{:.2f}"),
    ("ypos", "y", "{:.2f}"),
    ("fwhm", "fwhm", "{:.2f}"),
    ("elong", "elong", "{:.2f}"),
    ("sharpness", "sharpness", "{:.2f}"),
    ("dipole", "dipole", "{:.2f}"),
    ("nbad", "nbad", "{}"),
    ("distnr", "distnr", "{:.1f}"),
    ("flags", "flags", "{}"),
)

_NAN_RGB = (40, 60, 110)  # off-image / masked pixels: dark blue, never mistaken for sky


def stretch(data: np.ndarray, kind: str = "zscale") -> np.ndarray:
    """Map a cutout to [0, 1] for display; NaN stays NaN.

    Parameters
    ----------
    data : ndarray (ny, nx)
    kind : {"zscale", "asinh"}
        ``zscale``: IRAF's zscale limits (astropy ``ZScaleInterval``), linear between
        them. ``asinh``: 0.5-99.5 percentile limits with an asinh stretch (a = 0.1), which
        shows bright cores and faint wings at once.

    Returns
    -------
    ndarray of float (ny, nx)
    """
    from astropy.visualization import AsinhStretch, PercentileInterval, ZScaleInterval

    check_choice("stretch", kind, STRETCHES)
    data = np.asarray(data, dtype=float)
    finite = data[np.isfinite(data)]
    if finite.size < 2 or float(finite.max()) == float(finite.min()):
        return np.where(np.isfinite(data), 0.5, np.nan)
    if kind == "zscale":
        low, high = ZScaleInterval().get_limits(finite)
    else:
        low, high = PercentileInterval(99.0).get_limits(finite)
    if not high > low:
        low, high = float(finite.min()), float(finite.max())
    with np.errstate(invalid="ignore"):
        scaled = np.clip((data - low) / (high - low), 0.0, 1.0)
    if kind == "asinh":
        scaled = AsinhStretch(a=0.1)(scaled)
    return scaled


def triplet_image(
    science: np.ndarray,
    reference: np.ndarray,
    difference: np.ndarray,
    *,
    kind: str = "zscale",
    zoom: int = 3,
    gap: int = 4,
) -> np.ndarray:
    """Science, reference and difference side by side as an 8-bit RGB array.

    Each panel is stretched on its own (:func:`stretch`), drawn with row 0 at the bottom
    (as ``imshow(origin="lower")``), magnified ``zoom`` times
    (nearest pixel) and separated by ``gap`` white pixels. NaN (off-image, masked) is
    drawn dark blue.

    Returns
    -------
    ndarray of uint8, shape (zoom * ny, 3 * zoom * nx + 2 * gap, 3)
    """
    check_int("zoom", zoom, low=1, high=16)
    check_int("gap", gap, low=0, high=64)
    panels = []
    for image in (science, reference, difference):
        image = np.asarray(image)
        if image.ndim != 2:
            raise ParameterError(f"a cutout must be 2-D, got shape {image.shape}")
        grey = stretch(image, kind)[::-1]  # row 0 at the bottom
        rgb = np.empty((*grey.shape, 3), np.uint8)
        level = np.nan_to_num(grey, nan=0.0)
        rgb[...] = np.round(level * 255).astype(np.uint8)[..., None]
        rgb[~np.isfinite(grey)] = _NAN_RGB
        panels.append(np.repeat(np.repeat(rgb, zoom, axis=0), zoom, axis=1))
    height = max(p.shape[0] for p in panels)
    spacer = np.full((height, gap, 3), 255, np.uint8)
    row = [panels[0], spacer, panels[1], spacer, panels[2]]
    return np.concatenate(row, axis=1)


def png_bytes(rgb: np.ndarray) -> bytes:
    """PNG encoding of an 8-bit RGB array (Pillow, which matplotlib brings)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), mode="RGB").save(
        buffer, format="PNG", optimize=False
    )
    return buffer.getvalue()


def _cell(value: Any, fmt: str) -> str:
    if value is None:
        return ""
    if isinstance(value, float | np.floating) and not math.isfinite(float(value)):
        return "NaN"
    try:
        return html.escape(fmt.format(value))
    except (ValueError, TypeError):
        return html.escape(str(value))


def candidate_page(
    rows: Sequence[Mapping[str, Any]],
    images: Sequence[str | None],
    *,
    title: str = "skyscene transient candidates",
    summary: Sequence[str] = (),
    flag_names: Mapping[int, str] | None = None,
) -> str:
    """The HTML of a static page: one block per candidate, its triplet and key features.

    Parameters
    ----------
    rows : sequence of mapping
        Candidate rows (ZTF-named columns, ``objectId``), strongest first.
    images : sequence of str or None
        Relative path of each row's triplet PNG (None: no picture).
    title : str
    summary : sequence of str
        Lines shown above the candidates (pairs searched, failures, ...).
    flag_names : mapping of int -> str, optional
        Names of the ``flags`` bits, shown beside the number.

    Returns
    -------
    str
        A complete HTML document without external resources.
    """
    if len(images) != len(rows):
        raise ParameterError(f"{len(images)} images for {len(rows)} rows")
    esc = html.escape
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{esc(title)}</title>",
        "<style>",
        "body{font-family:sans-serif;margin:1.5em;background:#fafafa;color:#222}",
        ".cand{display:flex;gap:1.2em;align-items:flex-start;margin:0 0 1.2em 0;"
        "padding:.6em;background:#fff;border:1px solid #ddd}",
        ".cand img{image-rendering:pixelated;border:1px solid #999}",
        "table.f{border-collapse:collapse;font-size:85%}",
        "table.f td{padding:1px 8px 1px 0}table.f td:first-child{color:#666}",
        ".lab{font-size:80%;color:#666}",
        "</style></head><body>",
        f"<h1>{esc(title)}</h1>",
    ]
    for line in summary:
        out.append(f"<p>{esc(line)}</p>")
    if not rows:
        out.append("<p>No candidates.</p>")
    for rank, (row, image) in enumerate(zip(rows, images, strict=True), start=1):
        out.append(f'<div class="cand" id="c{esc(str(row.get("candid", rank)))}">')
        if image:
            out.append(
                f'<div><img src="{esc(image)}" alt="science, reference, difference of '
                f'candid {esc(str(row.get("candid", "")))}"><div class="lab">'
                "science &nbsp;|&nbsp; reference &nbsp;|&nbsp; difference</div></div>"
            )
        out.append('<table class="f">')
        out.append(f"<tr><td>#</td><td>{rank}</td></tr>")
        out.append(f"<tr><td>candid</td><td>{esc(str(row.get('candid', '')))}</td></tr>")
        for name, label, fmt in PAGE_FEATURES:
            if name not in row:
                continue
            text = _cell(row[name], fmt)
            if name == "flags" and flag_names:
                bits = [n for bit, n in flag_names.items() if int(row[name]) & bit]
                text += f" ({esc(', '.join(bits))})" if bits else ""
            out.append(f"<tr><td>{esc(label)}</td><td>{text}</td></tr>")
        out.append("</table></div>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"
