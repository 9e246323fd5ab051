"""Interpolation of spectra (and anything else) on a regular parameter grid.

A spectral grid is *regular* when its nodes are the full Cartesian product of one sorted
set of values per parameter (e.g. Teff × log g × [Fe/H]). Two interpolators share one
interface (``axes``, ``values``, ``names``, per-axis coordinate ``transforms``):

:class:`RegularGridInterpolator`
    Multilinear: the 2**d corners of the enclosing cell are combined with the products
    of the one-dimensional linear weights. Cheap for long trailing axes (whole spectra).
:class:`CubicSplineInterpolator`
    Tensor product of one-dimensional not-a-knot cubic interpolating splines. The
    spline through the node values is linear in them, so along each axis it is a
    weighted sum of all nodes with *cardinal* weights L_j(x) (the spline through the
    unit vector e_j), precomputed as piecewise cubics. Error O(h⁴) instead of O(h²);
    cost ∝ the number of grid nodes × the trailing size, so it is meant for short
    trailing axes (eigenspectrum weights, mean fluxes; see
    :class:`~skyscene.spectra.emulator.SpectralEmulator`).

At a node both return the node's value bitwise (the weights are exactly 0 and 1).
"""

from __future__ import annotations

import bisect
import logging
import math
from collections.abc import Callable, Sequence

import numpy as np

from skyscene.errors import ParameterError

__all__ = [
    "CubicSplineInterpolator",
    "RegularGridInterpolator",
    "SpectrumInterpolator",
    "axis_transforms",
    "is_metallicity_name",
    "is_temperature_name",
]

log = logging.getLogger(__name__)

BOUNDARIES = ("not-a-knot", "natural")
_TEMPERATURE_NAMES = {"teff", "t_eff", "temperature", "temp"}


def is_temperature_name(name: str) -> bool:
    """Whether a grid parameter name denotes the effective temperature (case-insensitive)."""
    return name.lower() in _TEMPERATURE_NAMES


_METALLICITY_NAMES = {"feh", "[fe/h]", "fe_h", "mh", "[m/h]", "m_h", "metallicity"}
FEH_COORDINATES = ("abundance", "dex")


def is_metallicity_name(name: str) -> bool:
    """Whether a grid parameter name denotes a logarithmic metallicity ([Fe/H], [M/H])."""
    return name.lower() in _METALLICITY_NAMES


def check_feh_coordinate(value: str) -> str:
    """``value`` if it is one of :data:`FEH_COORDINATES`, else a :class:`ParameterError`."""
    if value not in FEH_COORDINATES:
        raise ParameterError(f"feh_coordinate={value!r}: choose one of {FEH_COORDINATES}")
    return value


def _abundance(feh):
    return np.power(10.0, feh)


def axis_transforms(
    names: Sequence[str], *, inverse_temperature: bool = True, feh_coordinate: str = "abundance"
) -> list:
    """Per-axis spline coordinates of a stellar grid: 1/Teff for the temperature and,
    with ``feh_coordinate="abundance"``, 10^[Fe/H] for the metallicity (line opacities,
    hence ln F of absorption lines, are linear in the abundance); identity otherwise."""
    check_feh_coordinate(feh_coordinate)
    out = []
    for n in names:
        if inverse_temperature and is_temperature_name(n):
            out.append(np.reciprocal)
        elif feh_coordinate == "abundance" and is_metallicity_name(n):
            out.append(_abundance)
        else:
            out.append(None)
    return out


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


class _CardinalCubic:
    """Cardinal weights L_j(x) of the cubic spline through n nodes on one axis.

    ``boundary``: "not-a-knot" (default) or "natural" (zero second derivative at the
    end nodes; used with n >= 4 nodes, else as "not-a-knot").

    The interpolating spline of node values y is s(x) = Σ_j L_j(x) y_j, where L_j is the
    spline through the unit vector e_j. Each L_j is stored per interval as a cubic in
    (x − midpoint); the weights of a query point are four vector operations. With 2 or
    3 nodes the spline degree drops to 1 or 2; with one node the weight is 1.
    """

    def __init__(self, nodes: np.ndarray, boundary: str = "not-a-knot"):
        from scipy.interpolate import make_interp_spline

        if boundary not in BOUNDARIES:
            raise ParameterError(f"boundary={boundary!r}: choose one of {BOUNDARIES}")
        self.nodes = nodes
        self._node_list = nodes.tolist()
        n = nodes.size
        if n == 1:
            self.coef = None
            return
        if boundary == "natural" and n >= 4:
            spline = make_interp_spline(nodes, np.eye(n), k=3, bc_type="natural")
        else:
            spline = make_interp_spline(nodes, np.eye(n), k=min(3, n - 1))
        mid = 0.5 * (nodes[:-1] + nodes[1:])
        # Taylor coefficients about each interval's midpoint: exact for a cubic piece
        self.mid = mid
        coef = np.stack(
            [
                spline.derivative(p)(mid) / math.factorial(p) if p else spline(mid)
                for p in range(spline.k + 1)
            ]
            + [np.zeros((n - 1, n))] * (3 - spline.k)
        )  # (power, interval, node)
        self.coef = np.ascontiguousarray(coef.transpose(1, 0, 2))  # (interval, power, node)
        self._mid = mid.tolist()

    def __call__(self, x: float) -> np.ndarray:
        nodes = self._node_list
        n = len(nodes)
        if self.coef is None:
            return np.ones(1)
        i = min(max(bisect.bisect_right(nodes, x) - 1, 0), n - 2)
        for j in (i, i + 1):
            if x == nodes[j]:  # a node: exactly one-hot
                w = np.zeros(n)
                w[j] = 1.0
                return w
        dx = x - self._mid[i]
        return np.array([1.0, dx, dx * dx, dx * dx * dx]) @ self.coef[i]


class CubicSplineInterpolator(RegularGridInterpolator):
    """Tensor-product cubic-spline interpolation of values tabulated on a regular grid.

    Same parameters and errors as :class:`RegularGridInterpolator`. Along each axis the
    cubic spline through the nodes (in the transformed coordinate, e.g. 1/Teff) is used,
    with the end conditions of ``boundaries`` (per axis, "not-a-knot" by default, or
    "natural"); axes with 2 or 3 nodes fall back to linear or quadratic splines.

    Notes
    -----
    The spline is linear in the node values, so the result is Σ_nodes w(θ) v_node with
    w the outer product of the per-axis cardinal weights (dense: every node contributes).
    One evaluation costs O(n_grid × trailing size): use it for short trailing axes
    such as eigenspectrum weights or per-order mean fluxes, not for whole spectra.
    The interpolation error is O(h⁴) for smooth functions (de Boor 2001, ch. V),
    against O(h²) for multilinear interpolation.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    >>> ip = CubicSplineInterpolator([x], x**3, names=["x"])
    >>> round(float(ip([2.5])), 12)  # cubics are reproduced exactly
    15.625
    """

    def __init__(self, axes, values, *, names, transforms=None, boundaries=None):
        super().__init__(axes, values, names=names, transforms=transforms)
        boundaries = tuple(boundaries) if boundaries is not None else ("not-a-knot",) * len(names)
        if len(boundaries) != len(self._nodes):
            raise ParameterError(
                f"boundaries: expected {len(self._nodes)} values, got {len(boundaries)}"
            )
        self.boundaries = boundaries
        self._cardinal = tuple(
            _CardinalCubic(nodes, b) for nodes, b in zip(self._nodes, boundaries, strict=True)
        )

    def weights(self, point: Sequence[float]) -> np.ndarray:
        """Weights of all grid nodes (flattened, C order of the axes) at ``point``; sum 1."""
        p = self.check(point)
        w = np.ones(1)
        for k, (card, transform) in enumerate(zip(self._cardinal, self.transforms, strict=True)):
            x = self._signs[k] * float(transform(p[k]) if transform is not None else p[k])
            w = (w[:, None] * card(x)).ravel()
        return w

    def __call__(self, point: Sequence[float]) -> np.ndarray:
        """Interpolated values at ``point`` (shape: the trailing shape of ``values``)."""
        w = self.weights(point)
        hit = np.flatnonzero(w)
        if hit.size == 1:  # a node: its value, bitwise
            out = self._flat[hit[0]].copy()
        else:
            out = w @ self._flat
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
