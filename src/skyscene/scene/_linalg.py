"""Factorisation of the normal matrix: scaled Cholesky, pseudo-inverse fallback."""

from __future__ import annotations

import numpy as np
from scipy import linalg

__all__ = ["NormalFactor"]


class NormalFactor:
    """Solves ``N x = b`` for a symmetric positive semi-definite normal matrix ``N``.

    ``N`` is first scaled to unit diagonal (Jacobi), which removes the spread of column
    norms (sky columns vs PSF columns) from the conditioning, then factorised with
    Cholesky (``scipy.linalg.cho_factor``). If that fails (not positive definite: a
    degenerate grid or an unconstrained parameter), a pseudo-inverse from the
    eigen-decomposition is used with eigenvalues below ``rcond · max`` dropped, and
    ``pseudo_inverse`` is True (the caller flags the result).

    Parameters with a zero diagonal (no data at all) are fixed at zero.
    """

    def __init__(self, normal: np.ndarray, *, rcond: float = 1e-13):
        normal = np.asarray(normal, dtype=float)
        diag = np.diag(normal).copy()
        self.free = diag > 0
        scale = np.zeros_like(diag)
        scale[self.free] = 1.0 / np.sqrt(diag[self.free])
        self.scale = scale
        scaled = normal * scale[:, None] * scale[None, :]
        scaled[~self.free, :] = 0.0
        scaled[:, ~self.free] = 0.0
        scaled[~self.free, ~self.free] = 1.0
        self.pseudo_inverse = False
        self._chol = None
        self._eig = None
        try:
            self._chol = linalg.cho_factor(scaled, lower=False, check_finite=False)
            if not np.all(np.isfinite(self._chol[0])):
                raise linalg.LinAlgError("non-finite Cholesky factor")
        except linalg.LinAlgError:
            self._chol = None
            self.pseudo_inverse = True
            values, vectors = linalg.eigh(scaled, check_finite=False)
            keep = values > rcond * max(values.max(), 0.0)
            inv = np.zeros_like(values)
            inv[keep] = 1.0 / values[keep]
            self._eig = (vectors, inv)

    @property
    def n_dropped(self) -> int:
        """Number of parameters fixed at zero (zero diagonal)."""
        return int((~self.free).sum())

    def _solve_scaled(self, rhs: np.ndarray) -> np.ndarray:
        if self._chol is not None:
            return linalg.cho_solve(self._chol, rhs, check_finite=False)
        vectors, inv = self._eig  # type: ignore[misc]
        return (
            vectors @ (inv[:, None] * (vectors.T @ rhs))
            if rhs.ndim == 2
            else vectors @ (inv * (vectors.T @ rhs))
        )

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        """``N⁻¹ rhs`` for a vector or a matrix of right-hand sides."""
        rhs = np.asarray(rhs, dtype=float)
        s = self.scale if rhs.ndim == 1 else self.scale[:, None]
        out = s * self._solve_scaled(s * rhs)
        return out

    def half_solve(self, rhs: np.ndarray) -> np.ndarray:
        """``H`` with ``HᵀH = rhsᵀ N⁻¹ rhs`` (``rhs`` of shape ``(n, m)``).

        With the Cholesky factor ``Uᵀ U`` of the scaled matrix, ``H = U⁻ᵀ S rhs``; with
        the pseudo-inverse, ``H = Λ^{-1/2} Vᵀ S rhs``. Used to precompute the projection
        of target columns on the fixed parameters once (see ``_Problem.profile_chi2``).
        """
        rhs = self.scale[:, None] * np.asarray(rhs, dtype=float)
        if self._chol is not None:
            return linalg.solve_triangular(
                self._chol[0], rhs, trans="T", lower=False, check_finite=False
            )
        vectors, inv = self._eig  # type: ignore[misc]
        return np.sqrt(inv)[:, None] * (vectors.T @ rhs)

    def inverse(self) -> np.ndarray:
        """``N⁻¹`` (zero rows/columns for fixed parameters)."""
        n = len(self.scale)
        if self._chol is not None:
            upper = self._chol[0]
            inv_scaled, info = linalg.lapack.dpotri(upper, lower=0)
            if info == 0:
                inv_scaled = np.triu(inv_scaled) + np.triu(inv_scaled, 1).T
            else:  # pragma: no cover - dpotri failing after a successful dpotrf
                inv_scaled = self._solve_scaled(np.eye(n))
        else:
            inv_scaled = self._solve_scaled(np.eye(n))
        out = inv_scaled * self.scale[:, None] * self.scale[None, :]
        out[~self.free, :] = 0.0
        out[:, ~self.free] = 0.0
        return out
