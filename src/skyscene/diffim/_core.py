"""ZOGY proper image subtraction on aligned, background-subtracted arrays.

All equation numbers refer to Zackay, Ofek & Gal-Yam (2016, ApJ 830, 27; "ZOGY").
The images are transformed once with real FFTs (``scipy.fft.rfft2``, all cores) on a
zero-padded grid of fast size, in the precision of the inputs (float32 by default in
:class:`~skyscene.diffim.Zogy`, float64 here unless asked); sums over the frequency plane
(F_S, the kernel norms) are accumulated in float64. PSFs enter as small centred stamps of
unit sum and are moved to the origin of the FFT grid.

The compact real-space kernels (k_n, k_r of eqs. 28–29, P_D of eq. 14, the terms of
eq. 13) are computed once on a small grid of a few PSF sizes, which is exact up to their
(negligible) tails beyond it; only their squares enter large FFTs (the source-noise
variance of eqs. 26–27). The background part of the variance of S is F_S itself
(Parseval), so the unit variance of S_corr does not depend on the small grid.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np
import scipy.fft as sfft

from skyscene.errors import ParameterError

__all__ = [
    "Spectra",
    "ZogyProducts",
    "fft_shape",
    "local_convolve",
    "psf_spectrum",
    "stamp_spectrum",
    "zogy_products",
]

log = logging.getLogger(__name__)

_WORKERS = -1


def fft_shape(shape: tuple[int, int], pad: int) -> tuple[int, int]:
    """Fast FFT grid of at least ``shape + pad`` (zero padding stops wrap-around)."""
    ny, nx = shape
    return (sfft.next_fast_len(ny + pad), sfft.next_fast_len(nx + pad, real=True))


def _complex_dtype(dtype) -> np.dtype:
    return np.result_type(dtype, np.complex64)


def stamp_spectrum(
    stamp: np.ndarray, grid: tuple[int, int], *, normalize: bool = True, dtype=np.float64
) -> np.ndarray:
    """``rfft2`` of a centred, odd-sized stamp moved to the origin of ``grid``.

    Separable: the few non-zero rows are transformed along x, then all columns along y
    (about half the cost of a full ``rfft2``). A stamp larger than the grid is cropped
    about its centre. ``normalize`` divides by the stamp sum (PSFs).
    """
    ny, nx = grid
    m_y, m_x = stamp.shape
    cy, cx = (m_y - 1) // 2, (m_x - 1) // 2
    # crop to an odd size that fits the grid
    hy, hx = min(cy, (ny - 1) // 2), min(cx, (nx - 1) // 2)
    stamp = np.asarray(stamp)[cy - hy : cy + hy + 1, cx - hx : cx + hx + 1]
    if normalize:
        stamp = stamp / stamp.sum()
    rows = np.zeros((2 * hy + 1, nx), dtype)
    rows[:, np.arange(-hx, hx + 1) % nx] = stamp
    half = sfft.rfft(rows, axis=1, workers=_WORKERS)
    full = np.zeros((ny, nx // 2 + 1), half.dtype)
    full[np.arange(-hy, hy + 1) % ny] = half
    return sfft.fft(full, axis=0, overwrite_x=True, workers=_WORKERS)


def psf_spectrum(stamp: np.ndarray, grid: tuple[int, int], *, dtype=np.float64) -> np.ndarray:
    """``rfft2`` of a centred, odd-sized PSF stamp (normalised to unit sum) at the origin."""
    return stamp_spectrum(stamp, grid, normalize=True, dtype=dtype)


def _hermitian_weights(grid: tuple[int, int]) -> np.ndarray:
    """Weights that turn a sum over an rfft2 half-plane into the full-plane sum."""
    nx = grid[1]
    w = np.full(nx // 2 + 1, 2.0)
    w[0] = 1.0
    if nx % 2 == 0:
        w[-1] = 1.0
    return w


def _plane_mean(values: np.ndarray, grid: tuple[int, int]) -> float:
    """Mean over the full frequency plane of a Hermitian-symmetric half-plane array (float64)."""
    cols = np.sum(values, axis=0, dtype=np.float64)
    return float(cols @ _hermitian_weights(grid)) / (grid[0] * grid[1])


def _centered_stamp(image: np.ndarray, size: int) -> np.ndarray:
    """Cut a ``size`` x ``size`` stamp centred on pixel [0, 0] of a periodic image."""
    half = size // 2
    iy = np.arange(-half, half + 1) % image.shape[0]
    ix = np.arange(-half, half + 1) % image.shape[1]
    return image[np.ix_(iy, ix)]


def _phase_ramps(grid: tuple[int, int], dx: float, dy: float, dtype) -> tuple:
    """1-D ramps whose outer product moves an image by ``(-dx, -dy)`` (rfft2 layout)."""
    cdtype = _complex_dtype(dtype)
    fy = sfft.fftfreq(grid[0])
    fx = sfft.rfftfreq(grid[1])
    return (
        np.exp(2j * np.pi * fy * dy).astype(cdtype)[:, None],
        np.exp(2j * np.pi * fx * dx).astype(cdtype)[None, :],
    )


@dataclass(eq=False)
class Spectra:
    """FFTs of the two images and their PSFs on a common padded grid.

    ``new_hat`` and ``ref_hat`` are ``rfft2`` of the background-subtracted, mask-filled
    images ``new`` and ``ref`` (kept for the flux-ratio fit, which works on cutouts);
    ``psf_new_hat``/``psf_ref_hat`` of the PSF stamps ``psf_new``/``psf_ref`` centred at
    the origin. ``dtype`` is the real precision of all of them.
    """

    shape: tuple[int, int]
    grid: tuple[int, int]
    new_hat: np.ndarray
    ref_hat: np.ndarray
    psf_new_hat: np.ndarray
    psf_ref_hat: np.ndarray
    new: np.ndarray | None = None
    ref: np.ndarray | None = None
    psf_new: np.ndarray | None = None
    psf_ref: np.ndarray | None = None
    dtype: np.dtype = field(default_factory=lambda: np.dtype(np.float64))

    @classmethod
    def compute(cls, new, ref, psf_new, psf_ref, *, dtype=np.float64) -> Spectra:
        """Transform ``new``, ``ref`` (same shape) and the PSF stamps, in ``dtype``."""
        dtype = np.dtype(dtype)
        new = np.asarray(new, dtype=dtype)
        ref = np.asarray(ref, dtype=dtype)
        psf_new = np.asarray(psf_new, float) / np.sum(psf_new)
        psf_ref = np.asarray(psf_ref, float) / np.sum(psf_ref)
        pad = max(psf_new.shape[0], psf_ref.shape[0]) * 2
        grid = fft_shape(new.shape, pad)
        return cls(
            shape=new.shape,
            grid=grid,
            new_hat=sfft.rfft2(new, s=grid, workers=_WORKERS),
            ref_hat=sfft.rfft2(ref, s=grid, workers=_WORKERS),
            psf_new_hat=psf_spectrum(psf_new, grid, dtype=dtype),
            psf_ref_hat=psf_spectrum(psf_ref, grid, dtype=dtype),
            new=new,
            ref=ref,
            psf_new=psf_new,
            psf_ref=psf_ref,
            dtype=dtype,
        )

    def shift_phase(self, dx: float, dy: float) -> np.ndarray | None:
        """Phase ramp that moves the reference by ``(-dx, -dy)`` pixels (None if zero)."""
        if dx == 0.0 and dy == 0.0:
            return None
        ey, ex = _phase_ramps(self.grid, dx, dy, self.dtype)
        return ey * ex

    def shifted_ref_hat(self, dx: float, dy: float) -> np.ndarray:
        """``ref_hat`` moved by ``(-dx, -dy)`` (a new array; the stored one is unchanged)."""
        if dx == 0.0 and dy == 0.0:
            return self.ref_hat
        ey, ex = _phase_ramps(self.grid, dx, dy, self.dtype)
        out = self.ref_hat * ey
        out *= ex
        return out

    def irfft(self, spectrum: np.ndarray) -> np.ndarray:
        out = sfft.irfft2(spectrum, s=self.grid, workers=_WORKERS, overwrite_x=True)
        return out[: self.shape[0], : self.shape[1]]

    def _psf_stamps(self) -> tuple[np.ndarray, np.ndarray]:
        """``(psf_new, psf_ref)``; raises if these spectra were built without the stamps."""
        if self.psf_new is None or self.psf_ref is None:
            raise ParameterError(
                "Spectra has no PSF stamps (psf_new/psf_ref is None); build it with Spectra.compute"
            )
        return self.psf_new, self.psf_ref

    def _images(self) -> tuple[np.ndarray, np.ndarray]:
        """``(new, ref)``; raises if these spectra were built without the images."""
        if self.new is None or self.ref is None:
            raise ParameterError(
                "Spectra has no images (new/ref is None); build it with Spectra.compute"
            )
        return self.new, self.ref

    def kernel_grid(self) -> tuple[int, int]:
        """Small grid for the compact ZOGY kernels: four PSF sizes (at least 64)."""
        psf_new, psf_ref = self._psf_stamps()
        m = max(psf_new.shape[0], psf_ref.shape[0], psf_new.shape[1])
        n = sfft.next_fast_len(max(4 * m, 64), real=True)
        return (n, n)


def denominator_squared(spectra: Spectra, sigma_new, sigma_ref, flux_ratio, flux_ref=1.0):
    """``σ_n² F_r² |P̂_r|² + σ_r² F_n² |P̂_n|²``, the square of eq. 13's denominator."""
    return _denominator_squared(
        spectra.psf_new_hat, spectra.psf_ref_hat, sigma_new, sigma_ref, flux_ratio, flux_ref
    )


def _denominator_squared(psf_new_hat, psf_ref_hat, sigma_new, sigma_ref, flux_ratio, flux_ref=1.0):
    pn2 = np.abs(psf_new_hat)
    pn2 *= pn2
    pr2 = np.abs(psf_ref_hat)
    pr2 *= pr2
    den2 = pr2 * ((sigma_new * flux_ref) ** 2)
    den2 += pn2 * ((sigma_ref * flux_ratio) ** 2)
    # Frequencies where both PSFs vanish carry no signal; keep them finite.
    np.maximum(den2, np.finfo(den2.dtype).tiny * 1e10, out=den2)
    return den2, pn2, pr2


@dataclass(frozen=True, eq=False)
class ZogyProducts:
    """Output images of :func:`zogy_products` (shape of the input)."""

    difference: np.ndarray
    difference_psf: np.ndarray
    flux_zeropoint: float
    score: np.ndarray
    score_corr: np.ndarray
    flux: np.ndarray
    flux_err: np.ndarray
    flux_normalization: float
    kernel_radius: int
    contamination: np.ndarray | None
    hidden_error: np.ndarray | None = None


def _kernel_radius(kernel: np.ndarray, fraction: float = 0.999) -> int:
    """Radius around the origin holding ``fraction`` of ``sum(kernel**2)``."""
    k2 = kernel**2
    total = k2.sum()
    if not total > 0:
        return 1
    ny, nx = k2.shape
    y = np.minimum(np.arange(ny), ny - np.arange(ny))[:, None]
    x = np.minimum(np.arange(nx), nx - np.arange(nx))[None, :]
    r = np.maximum(x, y)  # square "radius": matches square edge bands
    hist = np.bincount(r.ravel(), weights=k2.ravel())
    cum = np.cumsum(hist) / total
    return int(min(np.searchsorted(cum, fraction) + 1, min(ny, nx) // 2 - 1))


@dataclass(frozen=True, eq=False)
class _SmallKernels:
    """ZOGY kernels on the small grid (periodic, centred at [0, 0]), float64."""

    kn: np.ndarray  # eq. 28
    kr: np.ndarray  # eq. 29
    pd: np.ndarray  # eq. 14


def _small_kernels(spectra: Spectra, sigma_new, sigma_ref, fn, fr, flux_zeropoint):
    grid = spectra.kernel_grid()
    psf_new, psf_ref = spectra._psf_stamps()
    pn_hat = psf_spectrum(psf_new, grid)
    pr_hat = psf_spectrum(psf_ref, grid)
    den2, pn2, pr2 = _denominator_squared(pn_hat, pr_hat, sigma_new, sigma_ref, fn, fr)
    kn = sfft.irfft2(fn * fr**2 * np.conj(pn_hat) * pr2 / den2, s=grid)
    kr = sfft.irfft2(fr * fn**2 * np.conj(pr_hat) * pn2 / den2, s=grid)
    pd = sfft.irfft2(fr * fn * pr_hat * pn_hat / (flux_zeropoint * np.sqrt(den2)), s=grid)
    return _SmallKernels(kn=kn, kr=kr, pd=pd)


def local_convolve(terms, shape: tuple[int, int], *, tile: int = 256, dtype=np.float32):
    """``Σ_j mask_j ⊛ kernel_j`` for sparse maps, by FFT on the tiles near them.

    Parameters
    ----------
    terms : list of (mask, kernel)
        Boolean (or real, mostly zero) maps of ``shape`` and small centred odd kernels
        (scaled as wanted).
    shape : (ny, nx)
    tile : int
        Core size of the tiles; only tiles within a kernel radius of a True pixel are
        computed (a tile's window is its core plus the kernel radius on each side, so
        the cores are exact linear convolutions). Elsewhere the result is 0.

    Returns
    -------
    ndarray of ``dtype``, shape ``shape``
    """
    ny, nx = shape
    out = np.zeros(shape, dtype)
    terms = [(np.asarray(m), np.asarray(k, float)) for m, k in terms if np.any(m)]
    if not terms:
        return out
    h = max(max(k.shape) // 2 for _, k in terms)
    tile = int(min(tile, max(ny, nx)))
    nty, ntx = -(-ny // tile), -(-nx // tile)
    any_bad = np.zeros(shape, bool)
    for m, _ in terms:
        any_bad |= m != 0
    # tiles that hold a True pixel, grown by one tile (h < tile reaches the neighbours)
    rows = np.add.reduceat(any_bad.any(axis=1), np.arange(0, ny, tile)) > 0
    blocks = np.zeros((nty, ntx), bool)
    for ty in np.flatnonzero(rows):
        band = any_bad[ty * tile : (ty + 1) * tile]
        blocks[ty] = np.add.reduceat(band.any(axis=0), np.arange(0, nx, tile)) > 0
    from scipy import ndimage

    if h > 0:
        blocks = ndimage.binary_dilation(blocks, structure=np.ones((3, 3), bool))
    active = np.argwhere(blocks)
    win = sfft.next_fast_len(tile + 2 * h, real=True)
    grid = (win, win)
    kernel_hats = [stamp_spectrum(k, grid, normalize=False) for _, k in terms]
    batch = max(1, int(2**22 // (win * win)))
    for start in range(0, len(active), batch):
        chunk = active[start : start + batch]
        total = None
        for (mask, _), k_hat in zip(terms, kernel_hats, strict=True):
            stack = np.zeros((len(chunk), win, win), dtype)
            for i, (ty, tx) in enumerate(chunk):
                y0, x0 = ty * tile - h, tx * tile - h
                ys, xs = max(y0, 0), max(x0, 0)
                ye, xe = min(y0 + win, ny), min(x0 + win, nx)
                stack[i, ys - y0 : ye - y0, xs - x0 : xe - x0] = mask[ys:ye, xs:xe]
            term = sfft.rfft2(stack, axes=(1, 2), workers=_WORKERS)
            term *= k_hat
            total = term if total is None else total + term
        conv = sfft.irfft2(total, s=grid, axes=(1, 2), workers=_WORKERS)
        for i, (ty, tx) in enumerate(chunk):
            y0, x0 = ty * tile, tx * tile
            ye, xe = min(y0 + tile, ny), min(x0 + tile, nx)
            out[y0:ye, x0:xe] = conv[i, h : h + ye - y0, h : h + xe - x0]
    return out


def zogy_products(
    spectra: Spectra,
    *,
    sigma_new: float,
    sigma_ref: float,
    flux_ratio: float,
    gain_new: float | None,
    gain_ref: float | None,
    shift: tuple[float, float] = (0.0, 0.0),
    astrometric_sigma: tuple[float, float] = (0.0, 0.0),
    variance_new: np.ndarray | None = None,
    variance_ref: np.ndarray | None = None,
    bad_new: np.ndarray | None = None,
    bad_ref: np.ndarray | None = None,
    psf_size: int = 25,
    difference_background=None,
    hidden_new: np.ndarray | None = None,
    hidden_ref: np.ndarray | None = None,
) -> ZogyProducts:
    """ZOGY difference, score, corrected score and PSF photometry (eqs. 13–17, 25–30, 41–43).

    Parameters
    ----------
    spectra : Spectra
        FFTs of the new (science) image N, the reference R and their PSFs.
    sigma_new, sigma_ref : float
        Background noise σ_n, σ_r (counts per pixel).
    flux_ratio : float
        F_n / F_r; the reference defines the flux scale (F_r = 1).
    gain_new, gain_ref : float or None
        Electrons per count for the source noise of eqs. 26–27: the variance of each
        image is ``σ² + image / gain`` (the image itself, sources included). None: no
        source-noise term (unless ``variance_*`` maps are given).
    shift : (dx, dy)
        Sub-pixel translation of the reference applied as a Fourier phase ramp: the
        reference is moved by ``(-dx, -dy)``.
    astrometric_sigma : (σ_x, σ_y)
        Astrometric registration noise for eq. 30, pixels.
    variance_new, variance_ref : ndarray, optional
        Per-pixel variance maps that replace ``σ² + image / gain`` in eqs. 26–27.
    bad_new, bad_ref : ndarray of bool, optional
        Masked (filled) pixels; their weight in the score is returned as
        ``contamination`` (fraction of the score's variance that comes from them).
    psf_size : int
        Size of the returned P_D stamp (odd).
    difference_background : callable, optional
        ``f(D, bad) -> smooth map``: a residual background of the difference image
        (from imperfect image backgrounds), subtracted from D and, times F_D (P_D has unit
        sum), from S. This generalises the constant γ of ZOGY §3.3 to a smooth map.
    hidden_new, hidden_ref : ndarray, optional
        Flux (counts per pixel, ≥ 0) that filled masked pixels may lack: the cores of
        saturated or masked bright sources. Propagated through ``|k_n|`` and ``|k_r|``
        into the largest error it can cause in S, in units of S's noise:
        ``hidden_error``.

    Returns
    -------
    ZogyProducts
        Images in the precision of ``spectra`` (float32 or float64).

    Notes
    -----
    With F_r = 1, F_n = ``flux_ratio`` and ``den = sqrt(σ_n² F_r² |P̂_r|² + σ_r² F_n² |P̂_n|²)``:

    - eq. 13: ``D̂ = (F_r P̂_r N̂ − F_n P̂_n R̂) / den``;
    - eq. 15: ``F_D = F_r F_n / sqrt(σ_n² F_r² + σ_r² F_n²)``;
    - eq. 14: ``P̂_D = F_r F_n P̂_r P̂_n / (F_D den)``;
    - eq. 17: ``Ŝ = F_D D̂ conj(P̂_D) = k̂_n N̂ − k̂_r R̂`` with the kernels of
      eqs. 28–29, ``k̂_n = F_n F_r² conj(P̂_n) |P̂_r|² / den²`` and
      ``k̂_r = F_r F_n² conj(P̂_r) |P̂_n|² / den²``;
    - eqs. 26–27: ``V(S_N) = V(N) ⊗ k_n²``, ``V(S_R) = V(R) ⊗ k_r²``; for the constant
      background part ``σ_n² Σ k_n² + σ_r² Σ k_r² = F_S`` (Parseval);
    - eq. 30: ``V_ast(S_X) = σ_x² (∂S_X/∂x)² + σ_y² (∂S_X/∂y)²`` for X = N, R;
    - eq. 25: ``S_corr = S / sqrt(V(S_N) + V(S_R) + V_ast(S_N) + V_ast(S_R))``;
    - eqs. 41–43: ``F_S = Σ_f F_n² F_r² |P̂_n|² |P̂_r|² / den²`` (mean over the full
      frequency plane), ``flux = S / F_S`` and ``flux_err = sqrt(V(S_N) + V(S_R)) / F_S``.
      ``flux`` is the flux of a point source in reference counts (F_r = 1).
    """
    fr = 1.0
    fn = float(flux_ratio)
    dtype = spectra.dtype
    grid = spectra.grid
    den2, pn2, pr2 = denominator_squared(spectra, sigma_new, sigma_ref, fn, fr)

    # eq. 15, F_S (eq. 42) and the kernel norms Σk_n², Σk_r² (Parseval), in float64
    flux_zeropoint = fr * fn / math.sqrt((sigma_new * fr) ** 2 + (sigma_ref * fn) ** 2)
    ratio = pn2 * pr2
    ratio /= den2  # |P̂_n|² |P̂_r|² / den²
    flux_normalization = (fn * fr) ** 2 * _plane_mean(ratio, grid)
    norm_kn2 = fn**2 * fr**4 * _plane_mean(ratio * (pr2 / den2), grid)
    norm_kr2 = fr**2 * fn**4 * _plane_mean(ratio * (pn2 / den2), grid)
    del ratio

    ref_hat = spectra.shifted_ref_hat(*shift)
    inv_den = np.sqrt(den2)
    np.reciprocal(inv_den, out=inv_den)

    # eq. 13: the proper difference image
    d_hat = spectra.psf_new_hat * ref_hat
    d_hat *= -fn
    d_hat += fr * spectra.psf_ref_hat * spectra.new_hat
    d_hat *= inv_den
    difference = spectra.irfft(d_hat)
    del d_hat, inv_den
    difference_bkg = None
    if difference_background is not None:
        bad = np.zeros(spectra.shape, bool)
        for b in (bad_new, bad_ref):
            if b is not None:
                bad |= b
        difference_bkg = difference_background(difference, bad)
        difference -= difference_bkg.astype(dtype, copy=False)

    # compact kernels on a small grid: P_D (eq. 14), k_n, k_r (eqs. 28-29)
    small = _small_kernels(spectra, sigma_new, sigma_ref, fn, fr, flux_zeropoint)
    difference_psf = _centered_stamp(small.pd, psf_size)
    kernel_radius = max(_kernel_radius(small.kn), _kernel_radius(small.kr))

    # eqs. 28-29: S = k_n * N - k_r * R (eq. 17 in kernel form)
    weight = pr2 / den2
    weight *= fn * fr**2
    s_hat = np.conj(spectra.psf_new_hat)
    s_hat *= weight
    s_hat *= spectra.new_hat
    score_new = spectra.irfft(s_hat)
    np.divide(pn2, den2, out=weight)
    weight *= fr * fn**2
    s_hat = np.conj(spectra.psf_ref_hat)
    s_hat *= weight
    s_hat *= ref_hat
    score_ref = spectra.irfft(s_hat)
    del s_hat, weight, den2, pn2, pr2
    score = score_new - score_ref
    if difference_bkg is not None:
        score -= (flux_zeropoint * difference_bkg).astype(dtype, copy=False)
        del difference_bkg

    # eqs. 26-27: V(S) = σ_n² Σk_n² + σ_r² Σk_r² (= F_S) + source terms V_src ⊗ k²
    size_k = min(small.kn.shape) - 1 - min(small.kn.shape) % 2  # odd, no wrapped duplicates
    kn2 = _centered_stamp(small.kn, size_k) ** 2
    kr2 = _centered_stamp(small.kr, size_k) ** 2
    kn2 *= norm_kn2 / kn2.sum()  # small-grid kernels carry the exact norms
    kr2 *= norm_kr2 / kr2.sum()
    variance_const = sigma_new**2 * norm_kn2 + sigma_ref**2 * norm_kr2
    var_hat = None
    if variance_new is not None or gain_new:
        kn2_hat = stamp_spectrum(kn2, grid, normalize=False, dtype=dtype)
        if variance_new is not None:
            kn2_hat *= sfft.rfft2(np.asarray(variance_new, dtype), s=grid, workers=_WORKERS)
            variance_const -= sigma_new**2 * norm_kn2
        else:
            kn2_hat *= spectra.new_hat
            kn2_hat /= gain_new
        var_hat = kn2_hat
    if variance_ref is not None or gain_ref:
        kr2_hat = stamp_spectrum(kr2, grid, normalize=False, dtype=dtype)
        if variance_ref is not None:
            kr2_hat *= sfft.rfft2(np.asarray(variance_ref, dtype), s=grid, workers=_WORKERS)
            if shift != (0.0, 0.0):
                ey, ex = _phase_ramps(grid, shift[0], shift[1], dtype)
                kr2_hat *= ey
                kr2_hat *= ex
            variance_const -= sigma_ref**2 * norm_kr2
        else:
            kr2_hat *= ref_hat
            kr2_hat /= gain_ref
        var_hat = kr2_hat if var_hat is None else var_hat + kr2_hat
        del kr2_hat
    del ref_hat
    if var_hat is not None:
        variance = spectra.irfft(var_hat)
        del var_hat
        variance += variance_const
        # the noisy image is an unbiased but noisy variance; never below half the sky part
        floor = 0.5 * (sigma_new**2 * norm_kn2 + sigma_ref**2 * norm_kr2)
        np.maximum(variance, floor, out=variance)
    else:
        variance = np.full(spectra.shape, variance_const, dtype)

    contamination = None
    terms = [
        (b, k2 * sig**2, k)
        for b, k2, k, sig in (
            (bad_new, kn2, small.kn, sigma_new),
            (bad_ref, kr2, small.kr, sigma_ref),
        )
        if b is not None and b.any()
    ]
    if terms:
        # kernels cut where they hold all but 1e-4 of their weight (limit: 2e-3)
        radius2 = max(_kernel_radius(k, 0.9999) for _, _, k in terms)
        c, h = size_k // 2, min(radius2, size_k // 2)
        contamination = local_convolve(
            [(b, k2[c - h : c + h + 1, c - h : c + h + 1]) for b, k2, _ in terms],
            spectra.shape,
            dtype=dtype,
        )
        contamination /= sigma_new**2 * norm_kn2 + sigma_ref**2 * norm_kr2

    hidden_error = None
    hidden = [
        (h, np.abs(_centered_stamp(k, size_k)) * np.sqrt(norm / (k**2).sum()))
        for h, k, norm in ((hidden_new, small.kn, norm_kn2), (hidden_ref, small.kr, norm_kr2))
        if h is not None and np.any(h)
    ]
    if hidden:
        # |S error| <= |k| ⊛ hidden flux, per σ of S (a bound for the filled cores)
        hidden_error = local_convolve(hidden, spectra.shape, dtype=dtype)
        hidden_error /= np.sqrt(variance)

    # eq. 30: astrometric noise
    sx, sy = astrometric_sigma
    total = variance
    if sx > 0 or sy > 0:
        total = variance.copy()
        for image in (score_new, score_ref):
            for axis, sig in ((1, sx), (0, sy)):
                if sig > 0:
                    g = np.gradient(image, axis=axis)
                    g *= g
                    g *= sig**2
                    total += g
                    del g
    del score_new, score_ref

    score_corr = np.sqrt(total)  # eq. 25
    np.divide(score, score_corr, out=score_corr)
    del total
    flux = score / flux_normalization  # eq. 41
    flux_err = np.sqrt(variance)  # eq. 43
    flux_err /= flux_normalization
    return ZogyProducts(
        difference=difference,
        difference_psf=difference_psf,
        flux_zeropoint=float(flux_zeropoint),
        score=score,
        score_corr=score_corr,
        flux=flux,
        flux_err=flux_err,
        flux_normalization=float(flux_normalization),
        kernel_radius=int(kernel_radius),
        contamination=contamination,
        hidden_error=hidden_error,
    )
