"""Rendering many point sources through the PSF protocol, fast.

The scene model needs, for every exposure, the pixel-integrated PSF of ~400 grid
sources over a whole stamp. :func:`render_many` returns exactly what
``psf.render(shape, centers)`` returns (the PSF protocol of :mod:`skyscene.psf`),
with one optimisation: for a :class:`~skyscene.psf.PixelizedPSF` with an integer
oversampling and cubic-spline interpolation, the spline is evaluated in a separable
form (eigenvectors of ``CᵀC``) instead of one ``map_coordinates`` call per pixel (see
:class:`_CubicPixelized`); the two agree to ``rank_tol`` of the peak (tested).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from skyscene.psf import PixelizedPSF

__all__ = ["prepare_psf", "render_many"]

# Up to this many sources the separable rendering gathers the spline taps directly;
# beyond, one sparse (sources × integer shifts) matrix per axis applied to strided
# blocks of the basis is faster (see ``_CubicPixelized._axis``).
_FEW_SOURCES = 8

# Smallest rank_tol for which the factorisation uses the eigenvectors of CᵀC (its error,
# ~√ε · σ_1 ≈ 1.5e-8 σ_1, is then well below the truncation); below, a full SVD.
_EIGH_MIN_TOL = 1e-7


def _bspline3_weights(t: np.ndarray) -> np.ndarray:
    """Cubic B-spline weights of the taps ``floor(u) - 1 .. floor(u) + 2``; ``t = u - floor(u)``."""
    t = t[:, None]
    one = 1.0 - t
    w0 = one**3 / 6.0
    w1 = (3.0 * t**3 - 6.0 * t**2 + 4.0) / 6.0
    w2 = (-3.0 * t**3 + 3.0 * t**2 + 3.0 * t + 1.0) / 6.0
    w3 = t**3 / 6.0
    return np.concatenate([w0, w1, w2, w3], axis=1)


def _taps(start: np.ndarray, count: int, step: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Spline tap indices ``(N, count, 4)`` (``n`` where outside) and their validity."""
    base = np.floor(start)
    idx = base.astype(np.int64)[:, None, None] - 1 + np.arange(4)[None, None, :]
    idx = idx + (np.arange(count) * step)[None, :, None]
    valid = (idx >= 0) & (idx < n)
    return np.where(valid, idx, n), valid


class _CubicPixelized:
    """A cubic :class:`PixelizedPSF` with integer oversampling, in separable form.

    The spline coefficient image ``C`` (``n × n``) is factorised as ``C ≈ (C V) Vᵀ``
    with ``V`` the eigenvectors of ``CᵀC`` whose eigenvalues exceed ``rank_tol² ·
    λ_max`` (the right singular vectors of ``C`` with ``σ > rank_tol · σ_1``; the
    symmetric eigensolver is ~1.5× cheaper than an SVD and, since ``C V`` is formed
    exactly, loses nothing above ``√ε · σ_1`` ≈ 1.5e-8 · σ_1). A source's stamp is then
    ``Σ_r (A_y C v_r)(A_x v_r)ᵀ`` where ``A_x``/``A_y`` hold the four cubic B-spline
    taps of each pixel: two small gathers and one batched matrix product instead of
    ``16`` interpolation taps per pixel. The stamps equal ``psf.render`` to
    ~``rank_tol`` of the peak (tested); below ``rank_tol = 1e-7`` a full SVD is used
    (agreement ~1e-12 of the peak at ``rank_tol = 1e-12``).
    """

    def __init__(self, psf: PixelizedPSF, *, rank_tol: float = 1e-7):
        from scipy import linalg

        self.psf = psf
        step = float(psf.oversampling)
        # An integer oversampling gets the strided fast path of ``_axis``.
        self.step = round(step) if abs(step - round(step)) < 1e-12 else step
        self.center = (psf.image.shape[0] - 1) / 2.0
        coeffs = getattr(psf, "_coeffs", None)
        if coeffs is None:  # pragma: no cover - older PixelizedPSF
            coeffs = ndimage.spline_filter(psf.image, order=3, mode="grid-constant")
        coeffs = np.asarray(coeffs, dtype=float)
        if rank_tol >= _EIGH_MIN_TOL:
            values, vectors = linalg.eigh(coeffs.T @ coeffs, driver="evd", check_finite=False)
            keep = values > (rank_tol**2) * max(float(values[-1]), 0.0)
            keep[-1] = True
            right = vectors[:, keep][:, ::-1]  # largest first
        else:  # below √ε the Gram matrix cannot resolve the components: a full SVD
            _, sv, vt = np.linalg.svd(coeffs)
            right = vt[: max(1, int(np.count_nonzero(sv > rank_tol * sv[0])))].T
        rank = right.shape[1]
        n = coeffs.shape[0]
        scale = float(psf.oversampling) ** 2
        # Zero row at index n for taps outside the image ("grid-constant" mode).
        self.col_basis = np.zeros((n + 1, rank))
        self.col_basis[:n] = right
        self.row_basis = np.zeros((n + 1, rank))
        self.row_basis[:n] = (coeffs @ right) * scale
        self.n = n
        self.rank = rank

    def _axis(self, basis: np.ndarray, positions: np.ndarray, count: int) -> np.ndarray:
        """``(N, count, rank)``: the basis interpolated at the pixels along one axis.

        With an integer oversampling every pixel of a source has the same spline phase:
        tap ``b`` of pixel ``x`` is basis row ``first + b + step · x`` with weight
        ``w_b`` (the same for all ``x``). So the result is a 4-sparse combination of
        the strided blocks ``V[s] = basis[s + step · (0..count-1)]``: one sparse
        ``(N, n_shifts)`` × dense ``(n_shifts, count · rank)`` product with long rows
        (no per-pixel taps). Taps outside the coefficient image are zero
        ("grid-constant" mode).
        """
        from scipy import sparse

        if not isinstance(self.step, int):
            return self._axis_any_step(basis, positions, count)
        start = self.center - positions * self.step
        base = np.floor(start)
        weights = _bspline3_weights(start - base)  # (N, 4), the same for every pixel
        if len(positions) <= _FEW_SOURCES:  # a moving target: a direct gather is cheaper
            idx, valid = _taps(start, count, self.step, self.n)
            w = weights[:, None, :] * valid  # (N, count, 4)
            return np.einsum("kcb,kcbr->kcr", w, basis[idx], optimize=False)
        first = base.astype(np.int64) - 1
        lo = int(first.min())
        n_shift = int(first.max()) + 3 - lo + 1
        rank = basis.shape[1]
        length = n_shift + self.step * (count - 1)
        padded = np.zeros((length, rank))
        a, b = max(lo, 0), min(lo + length, self.n)
        if b > a:
            padded[a - lo : b - lo] = basis[a:b]
        s0, s1 = padded.strides
        blocks = np.lib.stride_tricks.as_strided(
            padded, (n_shift, count, rank), (s0, self.step * s0, s1), writeable=False
        ).reshape(n_shift, count * rank)  # a copy
        n_src = len(positions)
        cols = (first - lo)[:, None] + np.arange(4)[None, :]
        interp = sparse.csr_matrix(
            (weights.reshape(-1), cols.reshape(-1), np.arange(0, 4 * n_src + 1, 4)),
            shape=(n_src, n_shift),
        )
        return np.asarray(interp @ blocks).reshape(n_src, count, rank)

    def _axis_any_step(self, basis: np.ndarray, positions: np.ndarray, count: int) -> np.ndarray:
        """:meth:`_axis` for a non-integer oversampling (e.g. PSFEx ``PSF_SAMP`` ≠ 1).

        Every pixel has its own spline phase: one sparse ``(N · count, n)`` matrix of the
        four taps per pixel applied to the basis.
        """
        from scipy import sparse

        n_src = len(positions)
        u = self.center + (np.arange(count)[None, :] - positions[:, None]) * self.step
        base = np.floor(u).reshape(-1)
        weights = _bspline3_weights(u.reshape(-1) - base)  # (N · count, 4)
        idx = base.astype(np.int64)[:, None] - 1 + np.arange(4)[None, :]
        valid = (idx >= 0) & (idx < self.n)
        interp = sparse.csr_matrix(
            (
                (weights * valid).reshape(-1),
                np.where(valid, idx, self.n).reshape(-1),
                np.arange(0, 4 * n_src * count + 1, 4),
            ),
            shape=(n_src * count, self.n + 1),
        )
        return np.asarray(interp @ basis).reshape(n_src, count, basis.shape[1])

    def render(self, shape: tuple[int, int], centers: np.ndarray, out=None) -> np.ndarray:
        ny, nx = shape
        along_x = self._axis(self.col_basis, centers[:, 0], nx)
        along_y = self._axis(self.row_basis, centers[:, 1], ny)
        return np.matmul(along_y, along_x.transpose(0, 2, 1), out=out)


def prepare_psf(psf, *, pixelize: bool, size: int, oversampling: int, rank_tol: float = 1e-7):
    """The object :func:`render_many` uses for ``psf``.

    A cubic :class:`PixelizedPSF` (any oversampling, e.g. a PSFEx model at a
    position) gets the separable fast path (fastest for an integer oversampling);
    other PSFs are pixelised with ``psf.to_pixelized(size, oversampling)`` when
    ``pixelize`` is true (fast, and how a PSF from a FITS ``PSF`` HDU is used anyway)
    and otherwise rendered exactly through ``psf.render``. ``rank_tol`` is the relative
    singular-value cut of the separable form (rendering error ~``rank_tol`` × peak).
    """
    if not isinstance(psf, PixelizedPSF) and pixelize and hasattr(psf, "to_pixelized"):
        psf = psf.to_pixelized(size=size, oversampling=oversampling)
    if isinstance(psf, PixelizedPSF) and psf.order == 3:
        return _CubicPixelized(psf, rank_tol=rank_tol)
    return psf


def render_many(prepared, shape: tuple[int, int], centers, *, out=None) -> np.ndarray:
    """Render unit-flux point sources at ``centers`` ``(N, 2)`` into ``(N, ny, nx)`` stamps.

    ``prepared`` comes from :func:`prepare_psf` (or is any PSF-protocol object). ``out``:
    an ``(N, ny, nx)`` array (a view into a design matrix, say) to write into.
    """
    centers = np.atleast_2d(np.asarray(centers, dtype=float))
    shape = (int(shape[0]), int(shape[1]))
    if len(centers) == 0:
        return np.zeros((0, *shape)) if out is None else out
    if isinstance(prepared, _CubicPixelized):
        return prepared.render(shape, centers, out=out)
    stamps = np.asarray(prepared.render(shape, centers), dtype=float).reshape(len(centers), *shape)
    if out is None:
        return stamps
    out[...] = stamps
    return out
