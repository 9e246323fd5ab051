"""Spectral emulator: grid spectra at any parameters from eigenspectra with spline weights.

Multilinear interpolation of raw grid spectra between nodes is not accurate enough for
high-S/N fits: line depths and continua are curved functions of (Teff, log g, [Fe/H]),
so linear interpolation leaves errors of ~0.1–1 % between nodes, far above the noise
of an S/N-100 spectrum (1 % per pixel, but ~16 000 pixels), and the fit compensates by
moving along parameter degeneracies. The emulator follows the idea of Starfish
(Czekala et al. 2015, ApJ 812, 128, §2.3; after Habib et al. 2007): decompose the grid
spectra into a mean and a few eigenspectra and interpolate only the eigenspectrum
weights over the parameters — here deterministically, with tensor-product cubic splines
(:class:`~skyscene.spectra.interpolate.CubicSplineInterpolator`) rather than Gaussian
processes:

    ln F(λ; θ) ≈ μ(λ) + Σ_k w_k(θ) ξ_k(λ),

where μ is the mean of ln F over the grid nodes, ξ_k the leading right singular vectors
of the centred matrix of ln F (n_grid × n_wl) and w_k(θ) the node weights interpolated
by cubic splines — in 1/Teff along the temperature axis (where a Planck continuum in
the Wien regime and Boltzmann-like line strengths are smooth), in the parameters
themselves along the other axes.

Why ln F: absorption multiplies the continuum by exp(−τ), with optical depths τ that
scale smoothly with abundance and excitation; in ln F the spectra are (nearly) linear
in these strengths, so few eigenspectra suffice and the weights vary smoothly.

Accuracy: at a node the weights are the node's own, so the node's spectrum is
reproduced up to the truncation of the decomposition, which is bounded: the largest
absolute error of ln F at any node and wavelength is at most the first dropped singular
value (|R_ij| ≤ ‖R‖₂), kept below ``tolerance``. Between nodes the error is that of
cubic-spline interpolation, O(h⁴).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence

import numpy as np

from skyscene.errors import ParameterError, SkysceneWarning
from skyscene.spectra.interpolate import (
    BOUNDARIES,
    CubicSplineInterpolator,
    axis_transforms,
    check_feh_coordinate,
    is_temperature_name,
)

__all__ = ["SpectralEmulator"]

log = logging.getLogger(__name__)


class SpectralEmulator:
    """Raw spectra of a regular grid at any parameters: ln-flux eigenspectra + spline weights.

    Parameters
    ----------
    grid : SpectralGrid
        A regular grid (positive raw flux).
    tolerance : float, optional
        Largest allowed reconstruction error of ln F at the nodes (all wavelengths):
        eigenspectra are kept while the first dropped singular value exceeds it
        (default 1e-6, i.e. 1e-6 relative flux).
    max_components : int or None, optional
        Upper limit on the number of eigenspectra (evaluation cost ∝ this number);
        if it binds, :attr:`max_residual_` exceeds ``tolerance`` and a
        :class:`~skyscene.errors.SkysceneWarning` is issued.
    teff_boundary : {"not-a-knot", "natural"}, optional
        End condition of the weight splines along the temperature axis (in 1/Teff):
        "not-a-knot" (default) or "natural" (zero curvature at the end nodes); mostly the
        end intervals change. On the 500 K second independent grid of issue 15 it leaves
        the fitted c and T₂ as they are (docs/spectra.md).
    feh_coordinate : {"abundance", "dex"}, optional
        Coordinate of the metallicity axis ([Fe/H], [M/H]) for the weight splines:
        "abundance" (default): 10^[Fe/H], in which line opacities, hence ln F of
        absorption lines, are linear; "dex": [Fe/H] itself (the former behaviour).

    Attributes
    ----------
    mean_ : ndarray (n_wl,)
        μ(λ), mean of ln F over the nodes.
    eigenspectra_ : ndarray (``n_components_``, n_wl)
        ξ_k(λ), orthonormal rows.
    singular_values_ : ndarray
        All singular values of the centred ln F matrix (for diagnostics).
    n_components_ : int
        Number of eigenspectra kept.
    max_residual_ : float
        Largest ``|ln F − reconstruction|`` over all nodes and wavelengths (measured).

    Notes
    -----
    Build cost: one SVD of the n_grid × n_wl matrix (≈ 4 s for 715 × 16384 on one core);
    :meth:`SpectralGrid.emulator` caches the emulator on the grid. One evaluation costs
    one cubic-spline weight evaluation (O(n_grid × ``n_components_``)) and one
    ``n_components_`` × n_wl matrix–vector product.

    Examples
    --------
    >>> from skyscene.datasets.spectra import simulate_spectral_grid
    >>> grid = simulate_spectral_grid(teff=(4000, 4250, 4500, 4750), logg=(4.5,), feh=(0.0,),
    ...                               n_wavelength=256)
    >>> emulator = SpectralEmulator(grid)
    >>> flux = emulator([4400.0, 4.5, 0.0])
    >>> flux.shape, bool(emulator.max_residual_ < 1e-6)
    ((256,), True)
    """

    def __init__(
        self,
        grid,
        *,
        tolerance: float = 1e-6,
        max_components: int | None = None,
        teff_boundary: str = "not-a-knot",
        feh_coordinate: str = "abundance",
    ):
        self.feh_coordinate = check_feh_coordinate(feh_coordinate)
        if teff_boundary not in BOUNDARIES:
            raise ParameterError(f"teff_boundary={teff_boundary!r}: choose one of {BOUNDARIES}")
        self.teff_boundary = teff_boundary
        if not tolerance > 0:
            raise ParameterError(f"tolerance={tolerance!r} must be positive")
        if max_components is not None and max_components < 1:
            raise ParameterError(f"max_components={max_components!r} must be >= 1 or None")
        self.tolerance = float(tolerance)
        self.max_components = max_components
        self.names = grid.names
        self.wavelength = grid.wavelength
        order = grid._cube_order()  # raises ParameterError for irregular grids
        log_flux = np.log(np.asarray(grid.flux, dtype=float)[order])
        self.mean_ = log_flux.mean(axis=0)
        centred = log_flux - self.mean_
        _, sv, vt = np.linalg.svd(centred, full_matrices=False)
        n_keep = int(np.count_nonzero(sv > self.tolerance))
        if max_components is not None and n_keep > max_components:
            n_keep = int(max_components)
        n_keep = max(n_keep, 1)
        self.singular_values_ = sv
        self.n_components_ = n_keep
        self.eigenspectra_ = np.ascontiguousarray(vt[:n_keep])
        weights = centred @ self.eigenspectra_.T  # (n_grid, K) in cube order
        self.max_residual_ = float(np.max(np.abs(centred - weights @ self.eigenspectra_)))
        if self.max_residual_ > self.tolerance:
            warnings.warn(
                f"spectral emulator: {n_keep} eigenspectra reproduce the nodes to "
                f"{self.max_residual_:.2g} in ln F, above tolerance={self.tolerance:.2g} "
                f"(max_components={max_components}); see max_residual_",
                SkysceneWarning,
                stacklevel=2,
            )
        shape = tuple(a.size for a in grid.axes)
        transforms = axis_transforms(grid.names, feh_coordinate=feh_coordinate)
        boundaries = [teff_boundary if is_temperature_name(n) else "not-a-knot" for n in grid.names]
        self._weights = CubicSplineInterpolator(
            grid.axes,
            weights.reshape((*shape, n_keep)),
            names=grid.names,
            transforms=transforms,
            boundaries=boundaries,
        )
        log.info(
            "spectral emulator of %s: %d eigenspectra, node residual %.1e in ln F",
            grid,
            n_keep,
            self.max_residual_,
        )

    @property
    def bounds(self) -> tuple[tuple[float, float], ...]:
        """(min, max) of each parameter."""
        return self._weights.bounds

    def weights(self, params: Sequence[float]) -> np.ndarray:
        """Eigenspectrum weights w_k(θ), shape (``n_components_``,); ParameterError off the grid."""
        return self._weights(params)

    def log_flux(self, params: Sequence[float]) -> np.ndarray:
        """ln F at ``params`` on the grid wavelengths, shape (n_wl,)."""
        return self.mean_ + self.weights(params) @ self.eigenspectra_

    def __call__(self, params: Sequence[float]) -> np.ndarray:
        """Raw flux F at ``params`` on the grid wavelengths, shape (n_wl,)."""
        return np.exp(self.log_flux(params))
