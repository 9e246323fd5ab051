"""Overlapping sub-images for a spatially varying PSF (ZOGY per tile, stitched by cores)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from skyscene.errors import ParameterError

__all__ = ["SubImage", "partition"]


@dataclass(frozen=True, kw_only=True)
class SubImage:
    """One tile: the padded region that is processed and the core that is kept.

    Attributes
    ----------
    outer : (slice, slice)
        ``[y, x]`` slices of the processed region (core plus border, clipped to the image).
    core : (slice, slice)
        ``[y, x]`` slices of the kept region, in image pixels.
    inner : (slice, slice)
        The core in the coordinates of the outer region.
    """

    outer: tuple[slice, slice]
    core: tuple[slice, slice]
    inner: tuple[slice, slice]

    @property
    def center(self) -> tuple[float, float]:
        """``(x, y)`` of the core centre, image pixels."""
        ys, xs = self.core
        return ((xs.start + xs.stop - 1) / 2.0, (ys.start + ys.stop - 1) / 2.0)


def _edges(n: int, size: int) -> list[int]:
    count = max(1, round(n / size))
    return [round(i * n / count) for i in range(count + 1)]


def partition(shape: tuple[int, int], size: int, border: int) -> list[SubImage]:
    """Cut an image into tiles whose cores cover it exactly once.

    Parameters
    ----------
    shape : (ny, nx)
        Image shape.
    size : int
        Approximate core size, pixels (cores are equal to within one pixel).
    border : int
        Overlap added on each side of a core (clipped at the image edges); it must
        exceed the radius of the ZOGY kernels so that cores are free of tile-edge effects.

    Returns
    -------
    list of SubImage
        Row-major; every pixel lies in exactly one core, so stitching has no seams and no
        blending (which would change the noise of S_corr).

    Examples
    --------
    >>> tiles = partition((100, 100), 50, 10)
    >>> len(tiles), tiles[0].outer, tiles[0].core
    (4, (slice(0, 60, None), slice(0, 60, None)), (slice(0, 50, None), slice(0, 50, None)))
    """
    ny, nx = (int(shape[0]), int(shape[1]))
    size, border = int(size), int(border)
    if size < 16:
        raise ParameterError(f"subimage_size must be >= 16 pixels, got {size}")
    if border < 0:
        raise ParameterError(f"subimage_border must be >= 0, got {border}")
    tiles = []
    ye, xe = _edges(ny, size), _edges(nx, size)
    for y0, y1 in itertools.pairwise(ye):
        for x0, x1 in itertools.pairwise(xe):
            oy0, oy1 = max(0, y0 - border), min(ny, y1 + border)
            ox0, ox1 = max(0, x0 - border), min(nx, x1 + border)
            tiles.append(
                SubImage(
                    outer=(slice(oy0, oy1), slice(ox0, ox1)),
                    core=(slice(y0, y1), slice(x0, x1)),
                    inner=(slice(y0 - oy0, y1 - oy0), slice(x0 - ox0, x1 - ox0)),
                )
            )
    return tiles
