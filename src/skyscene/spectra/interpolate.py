"""Multilinear interpolation of spectra (and anything else) on a regular parameter grid.

A spectral grid is *regular* when its nodes are the full Cartesian product of one sorted
set of values per parameter (e.g. Teff × log g × [Fe/H]). Interpolation between nodes is
then multilinear: the 2**d corners of the enclosing cell are combined with the products
of the one-dimensional linear weights. At a node the weights are exactly 0 and 1, so the
node's value is returned to machine precision.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np

from skyscene.errors import ParameterError

__all__ = ["RegularGridInterpolator", "SpectrumInterpolator", "is_temperature_name"]

log = logging.getLogger(__name__)

_TEMPERATURE_NAMES = {"teff", "t_eff", "temperature", "temp"}


def is_temperature_name(name: str) -> bool:
    """Whether a grid parameter name denotes the effective temperature (case-insensitive)."""
    return name.lower() in _TEMPERATURE_NAMES


class RegularGridInterpolator:
    """Multilinear interpolation of values tabulated on a regular (rectilinear) grid.

    Parameters
    ----------
    axes : sequence of 1-D arrays
        Node values of each parameter, strictly increasing. An axis with a single
        node is allowed: the parameter must then equal that value.
    values : ndarray, shape (n_1, ..., n_d, ...)
        Tabulated values; the first ``d`` axes are the parameter axes, the trailing
        axes (e.g. wavelength) are carried along.
    names : sequence of str
        Parameter names, used in error messages.
    transforms : sequence of callable or None, optional
        Per-axis monotonic coordinate transform applied to both the nodes and the
        query before computing the linear weights (e.g. ``lambda t: 1 / t`` to
        interpolate linearly in inverse temperature). ``None`` = identity.

    Notes
    -----
    The evaluation costs one gather of the 2**d corner rows and one dot product, so
    for d = 3 and 16384 trailing values it takes well under a millisecond.
    Queries outside the grid raise :class:`~skyscene.errors.ParameterError` that names
    the parameter, its value and the grid range; they never return NaN.

    Examples
    --------
    >>> import numpy as np
    >>> ip = RegularGridInterpolator([np.array([0.0, 1.0])], np.array([[0.0], [2.0]]), names=["x"])
    >>> float(ip([0.25])[0])
    0.5
    """

    def __init__(
        self,
        axes: Sequence[np.ndarray],
        values: np.ndarray,
        *,
        names: Sequence[str],
        transforms: Sequence[Callable[[np.ndarray], np.ndarray] | None] | None = None,
    ):
        self.axes = tuple(np.asarray(a, dtype=float) for a in axes)
        self.names = tuple(names)
        d = len(self.axes)
        if len(self.names) != d:
            raise ParameterError(f"names: expected {d} parameter names, got {len(self.names)}")
        values = np.asarray(values)
        shape = tuple(len(a) for a in self.axes)
        if values.shape[:d] != shape:
            raise ParameterError(
                f"values: leading shape {values.shape[:d]} does not match the axes {shape}"
            )
        for name, axis in zip(self.names, self.axes, strict=True):
            if axis.ndim != 1 or axis.size == 0 or np.any(np.diff(axis) <= 0):
                raise ParameterError(f"axis {name!r} must be 1-D and strictly increasing")
        self.transforms = tuple(transforms) if transforms is not None else (None,) * d
        nodes, signs = [], []
        for a, t in zip(self.axes, self.transforms, strict=True):
            x = np.asarray(t(a) if t is not None else a, dtype=float)
            sign = -1.0 if x.size > 1 and x[0] > x[-1] else 1.0  # decreasing transform (1/T)
            if x.size > 1 and np.any(np.diff(sign * x) <= 0):
                raise ParameterError("axis transforms must be strictly monotonic on the nodes")
            nodes.append(sign * x)
            signs.append(sign)
        self._nodes = tuple(nodes)
        self._signs = tuple(signs)
        self._trail_shape = values.shape[d:]
        self._flat = np.ascontiguousarray(values.reshape(int(np.prod(shape)), -1))
        self._strides = np.array([int(np.prod(shape[k + 1 :])) for k in range(d)], dtype=np.int64)
        self._shape = shape

    @property
    def bounds(self) -> tuple[tuple[float, float], ...]:
        """(min, max) of each parameter."""
        return tuple((float(a[0]), float(a[-1])) for a in self.axes)

    def check(self, point: Sequence[float]) -> np.ndarray:
        """Return ``point`` as a float array; raise ParameterError if it is off the grid."""
        p = np.asarray(point, dtype=float).reshape(-1)
        if p.size != len(self.axes):
            raise ParameterError(
                f"expected {len(self.axes)} parameters {self.names}, got {p.size}: {list(p)}"
            )
        for name, axis, value in zip(self.names, self.axes, p, strict=True):
            if not np.isfinite(value) or value < axis[0] or value > axis[-1]:
                raise ParameterError(
                    f"parameter {name}={float(value)!r} is outside the grid range "
                    f"[{axis[0]:g}, {axis[-1]:g}]"
                )
        return p

    def corners(self, point: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
        """Flat row indices and weights of the cell corners that enclose ``point``.

        Returns
        -------
        index : ndarray of int, shape (m,)
            Rows of the flattened value table, m ≤ 2**d.
        weight : ndarray of float, shape (m,)
            Multilinear weights; they sum to 1.
        """
        p = self.check(point)
        index = np.zeros(1, dtype=np.int64)
        weight = np.ones(1)
        for k, (nodes, transform) in enumerate(zip(self._nodes, self.transforms, strict=True)):
            n = nodes.size
            if n == 1:
                continue
            x = self._signs[k] * float(transform(p[k]) if transform is not None else p[k])
            i = min(max(int(np.searchsorted(nodes, x, side="right")) - 1, 0), n - 2)
            t = (x - nodes[i]) / (nodes[i + 1] - nodes[i])
            t = min(max(t, 0.0), 1.0)
            stride = self._strides[k]
            index = np.concatenate([index + i * stride, index + (i + 1) * stride])
            weight = np.concatenate([weight * (1.0 - t), weight * t])
        keep = weight != 0.0
        return index[keep], weight[keep]

    def __call__(self, point: Sequence[float]) -> np.ndarray:
        """Interpolated values at ``point`` (shape: the trailing shape of ``values``)."""
        index, weight = self.corners(point)
        if index.size == 1:
            out = self._flat[index[0]].copy()
        else:
            out = weight @ self._flat[index]
        return out.reshape(self._trail_shape)


class SpectrumInterpolator:
    """Raw spectra of a regular :class:`~skyscene.spectra.SpectralGrid` at any parameters.

    Parameters
    ----------
    grid : SpectralGrid
        A regular grid (full Cartesian product of its parameter values).

    Notes
    -----
    Linear interpolation of the raw flux between grid nodes, as in the grid
    interpolator of Starfish (Czekala et al. 2015, §2.3) before its emulator.

    Examples
    --------
    >>> from skyscene.datasets.spectra import simulate_spectral_grid
    >>> grid = simulate_spectral_grid(teff=(4000, 4500), logg=(4.5,), feh=(0.0,), n_wavelength=64)
    >>> flux = SpectrumInterpolator(grid)([4250.0, 4.5, 0.0])
    >>> flux.shape
    (64,)
    """

    def __init__(self, grid):
        self.grid = grid
        self._interp = RegularGridInterpolator(grid.axes, grid.cube(), names=grid.names)

    def __call__(self, params: Sequence[float]) -> np.ndarray:
        """Raw flux at ``params`` (one value per grid parameter), shape (n_wavelength,)."""
        return self._interp(params)
