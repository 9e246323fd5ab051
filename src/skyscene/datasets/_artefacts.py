"""Detector and sky artefacts for simulated search images (hot pixels, bad columns,
satellite trails, bleed trails of saturated stars).

Each function adds its artefacts to ``image`` in place, draws from ``rng`` in the
order its docstring gives, and returns the rows of the truth (``dict`` of arrays:
``kind``, ``x``, ``y``, ``flux``, ``length``, ``angle``; image pixels). Cosmic rays and
saturated stars come from :mod:`skyscene.datasets.pairs`. None of them masks anything:
nothing tells the pipeline where they are (saturated pixels are caught by ``SATURATE``).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["add_bad_columns", "add_bleed_trails", "add_hot_pixels", "add_satellite_trails"]


def _rows(kind: str, x, y, flux, length=None, angle=None) -> dict[str, np.ndarray]:
    n = len(x)
    nan = np.full(n, np.nan)
    return {
        "kind": np.full(n, kind, dtype="U14"),
        "x": np.asarray(x, float),
        "y": np.asarray(y, float),
        "flux": np.asarray(flux, float),
        "length": nan if length is None else np.asarray(length, float),
        "angle": nan if angle is None else np.asarray(angle, float),
    }


def add_hot_pixels(
    image: np.ndarray,
    n: int,
    *,
    rng: np.random.Generator,
    level: tuple[float, float] = (300.0, 30000.0),
    saturation: float = np.inf,
) -> dict[str, np.ndarray]:
    """Add ``n`` hot pixels: single pixels ``level`` counts (log-uniform) above the sky.

    Draws ``n`` columns, ``n`` rows, then ``n`` levels. Clipped at ``saturation``.
    ``flux`` is the excess of the pixel.
    """
    ny, nx = image.shape
    ix = rng.integers(2, nx - 2, n)
    iy = rng.integers(2, ny - 2, n)
    excess = np.exp(rng.uniform(math.log(level[0]), math.log(level[1]), n))
    np.add.at(image, (iy, ix), excess)
    np.minimum(image, saturation, out=image)
    return _rows("hot_pixel", ix, iy, excess)


def add_bad_columns(
    image: np.ndarray,
    n: int,
    *,
    rng: np.random.Generator,
    sigma: float,
    level: tuple[float, float] = (3.0, 30.0),
    dead_fraction: float = 0.3,
) -> dict[str, np.ndarray]:
    """Add ``n`` bad column segments: a constant offset of ``level`` background sigmas
    (uniform; negative, a "dead" column, with probability ``dead_fraction``) along 20 to
    100 % of the rows.

    Draws per column: the column, the segment length fraction, its start, the level and
    the sign. ``x``, ``y``: the column and the middle of the segment; ``flux``: the
    offset per pixel (signed); ``length``: rows covered; ``angle``: π/2.
    """
    ny, nx = image.shape
    rows = {k: np.zeros(n) for k in ("x", "y", "flux", "length")}
    for k in range(n):
        column = int(rng.integers(2, nx - 2))
        length = max(int(rng.uniform(0.2, 1.0) * ny), 2)
        start = int(rng.integers(0, ny - length + 1))
        offset = rng.uniform(*level) * sigma * (-1.0 if rng.random() < dead_fraction else 1.0)
        image[start : start + length, column] += offset
        rows["x"][k], rows["y"][k] = column, start + (length - 1) / 2.0
        rows["flux"][k], rows["length"][k] = offset, length
    return _rows(
        "bad_column", rows["x"], rows["y"], rows["flux"], rows["length"], np.full(n, np.pi / 2)
    )


def _line_spans(n_along: int, n_across: int, a0: float, b0: float, num: float, den: float, half):
    """Pixels within ``half`` of the line ``b = b0 + (a - a0) * num / den``, one span per ``a``.

    Returns ``(a, b, counts)``: the pixel coordinates along and across, and the span length
    per ``a`` (``0 .. n_along - 1``).
    """
    along = np.arange(n_along)
    centre = b0 + (along - a0) * num / den
    span = half / abs(den)
    lo = np.clip(np.floor(centre - span), 0, n_across).astype(int)
    hi = np.clip(np.ceil(centre + span) + 1, 0, n_across).astype(int)
    counts = hi - lo
    a = np.repeat(along, counts)
    b = np.concatenate([np.arange(lo_k, hi_k) for lo_k, hi_k in zip(lo, hi, strict=True)])
    return a, b, counts


def add_satellite_trails(
    image: np.ndarray,
    n: int,
    *,
    rng: np.random.Generator,
    width: float,
    sigma: float,
    gain: float,
    level: tuple[float, float] = (3.0, 100.0),
    saturation: float = np.inf,
) -> dict[str, np.ndarray]:
    """Add ``n`` satellite trails: straight lines across the whole image with a Gaussian
    cross-section of ``width`` (sigma, pixels), peak ``level`` background sigmas
    (log-uniform), with their own Poisson noise (``gain``), clipped at ``saturation``.

    Draws per trail: a point on the line (uniform in the image), the angle, the level,
    then the noise of the pixels it touches. ``x``, ``y``: that point; ``flux``: counts
    per pixel of length; ``length``: the length inside the image; ``angle``: radians
    from the x axis.
    """
    ny, nx = image.shape
    out = {k: np.zeros(n) for k in ("x", "y", "flux", "length", "angle")}
    for k in range(n):
        x0, y0 = rng.uniform(0, nx - 1), rng.uniform(0, ny - 1)
        angle = rng.uniform(0, np.pi)
        peak = math.exp(rng.uniform(math.log(level[0]), math.log(level[1]))) * sigma
        c, s = math.cos(angle), math.sin(angle)
        half = 5.0 * width + 1.0
        # the pixels within `half` of the line, row by row (or column by column)
        if abs(s) >= abs(c):  # steep: one span of columns per row
            py, px, counts = _line_spans(ny, nx, y0, x0, c, s, half)
        else:  # shallow: one span of rows per column
            px, py, counts = _line_spans(nx, ny, x0, y0, s, c, half)
        distance = (px - x0) * -s + (py - y0) * c
        signal = peak * np.exp(-0.5 * (distance / width) ** 2)
        signal += rng.standard_normal(signal.shape) * np.sqrt(signal / gain)
        image[py, px] = np.minimum(image[py, px] + signal, saturation)
        out["x"][k], out["y"][k], out["angle"][k] = x0, y0, angle
        out["flux"][k] = peak * width * math.sqrt(2 * math.pi)
        out["length"][k] = float(np.count_nonzero(counts)) / max(abs(s), abs(c))
    return _rows("trail", out["x"], out["y"], out["flux"], out["length"], out["angle"])


def add_bleed_trails(
    image: np.ndarray,
    xy,
    *,
    saturation: float,
    rng: np.random.Generator,
    box: int = 15,
    spill: tuple[float, float] = (0.5, 1.5),
) -> np.ndarray:
    """Add charge-bleed trails to the saturated stars at ``xy`` (image pixels).

    For each star, every column of its ``box``-pixel core that has saturated pixels
    bleeds up and down by ``spill`` (uniform, one draw per star) times its number of
    saturated pixels; the bled pixels are set to ``saturation``. Stars without
    saturated pixels get none.

    Returns
    -------
    ndarray
        Rows of the longest bleed trail of each star (0 where none).
    """
    ny, nx = image.shape
    half = box // 2
    lengths = np.zeros(len(xy))
    for k, (x, y) in enumerate(np.asarray(xy, float).reshape(-1, 2)):
        factor = rng.uniform(*spill)
        ix, iy = math.floor(x + 0.5), math.floor(y + 0.5)
        xa, xb = max(ix - half, 0), min(ix + half + 1, nx)
        ya, yb = max(iy - half, 0), min(iy + half + 1, ny)
        if xa >= xb or ya >= yb:
            continue
        core = image[ya:yb, xa:xb] >= saturation
        for j in np.flatnonzero(core.any(axis=0)):
            rows = np.flatnonzero(core[:, j])
            bleed = math.ceil(factor * len(rows))
            top, bottom = ya + rows[0] - bleed, ya + rows[-1] + bleed + 1
            image[max(top, 0) : min(bottom, ny), xa + j] = saturation
            lengths[k] = max(lengths[k], min(bottom, ny) - max(top, 0))
    return lengths
