"""ZOGY proper image subtraction on aligned, background-subtracted arrays.

All equation numbers refer to Zackay, Ofek & Gal-Yam (2016, ApJ 830, 27; "ZOGY").
Everything is computed with real FFTs (``scipy.fft.rfft2``) on a zero-padded grid of
fast size, in float64. PSFs enter as small centred stamps of unit sum and are moved to
the origin of the FFT grid.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import scipy.fft as sfft

__all__ = ["Spectra", "ZogyProducts", "fft_shape", "psf_spectrum", "zogy_products"]

log = logging.getLogger(__name__)

_WORKERS = -1


def fft_shape(shape: tuple[int, int], pad: int) -> tuple[int, int]:
    """Fast FFT grid of at least ``shape + pad`` (zero padding stops wrap-around)."""
    ny, nx = shape
    return (sfft.next_fast_len(ny + pad), sfft.next_fast_len(nx + pad, real=True))


def psf_spectrum(stamp: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """``rfft2`` of a centred, odd-sized PSF stamp moved to the origin of ``grid``."""
    m_y, m_x = stamp.shape
    full = np.zeros(grid)
    iy = (np.arange(m_y) - (m_y - 1) // 2) % grid[0]
    ix = (np.arange(m_x) - (m_x - 1) // 2) % grid[1]
    full[np.ix_(iy, ix)] = stamp / stamp.sum()
    return sfft.rfft2(full, workers=_WORKERS)


def _hermitian_weights(grid: tuple[int, int]) -> np.ndarray:
    """Weights that turn a sum over an rfft2 half-plane into the full-plane sum."""
    nx = grid[1]
    w = np.full(nx // 2 + 1, 2.0)
    w[0] = 1.0
    if nx % 2 == 0:
        w[-1] = 1.0
    return w


def _centered_stamp(image: np.ndarray, size: int) -> np.ndarray:
    """Cut a ``size`` x ``size`` stamp centred on pixel [0, 0] of a periodic image."""
    half = size // 2
    iy = np.arange(-half, half + 1) % image.shape[0]
    ix = np.arange(-half, half + 1) % image.shape[1]
    return image[np.ix_(iy, ix)]


@dataclass(eq=False)
class Spectra:
    """FFTs of the two images and their PSFs on a common padded grid.

    ``new_hat`` and ``ref_hat`` are ``rfft2`` of the background-subtracted, mask-filled
    images; ``psf_new_hat``/``psf_ref_hat`` of the PSFs centred at the origin.
    """

    shape: tuple[int, int]
    grid: tuple[int, int]
    new_hat: np.ndarray
    ref_hat: np.ndarray
    psf_new_hat: np.ndarray
    psf_ref_hat: np.ndarray

    @classmethod
    def compute(cls, new, ref, psf_new, psf_ref) -> Spectra:
        pad = max(psf_new.shape[0], psf_ref.shape[0]) * 2
        grid = fft_shape(new.shape, pad)
        return cls(
            shape=new.shape,
            grid=grid,
            new_hat=sfft.rfft2(new, s=grid, workers=_WORKERS),
            ref_hat=sfft.rfft2(ref, s=grid, workers=_WORKERS),
            psf_new_hat=psf_spectrum(psf_new, grid),
            psf_ref_hat=psf_spectrum(psf_ref, grid),
        )

    def shift_phase(self, dx: float, dy: float) -> np.ndarray | None:
        """Phase ramp that moves the reference by ``(-dx, -dy)`` pixels (None if zero)."""
        if dx == 0.0 and dy == 0.0:
            return None
        fy = sfft.fftfreq(self.grid[0])[:, None]
        fx = sfft.rfftfreq(self.grid[1])[None, :]
        # separable: an outer product of two 1-D ramps (no 2-D exp)
        return np.exp(2j * np.pi * fy * dy) * np.exp(2j * np.pi * fx * dx)

    def irfft(self, spectrum: np.ndarray) -> np.ndarray:
        out = sfft.irfft2(spectrum, s=self.grid, workers=_WORKERS)
        return out[: self.shape[0], : self.shape[1]]


def denominator_squared(spectra: Spectra, sigma_new, sigma_ref, flux_ratio, flux_ref=1.0):
    """``σ_n² F_r² |P̂_r|² + σ_r² F_n² |P̂_n|²``, the square of eq. 13's denominator."""
    pn2 = spectra.psf_new_hat.real**2 + spectra.psf_new_hat.imag**2
    pr2 = spectra.psf_ref_hat.real**2 + spectra.psf_ref_hat.imag**2
    den2 = (sigma_new * flux_ref) ** 2 * pr2 + (sigma_ref * flux_ratio) ** 2 * pn2
    # Frequencies where both PSFs vanish carry no signal; keep them finite.
    floor = np.finfo(float).tiny * 1e10
    return np.maximum(den2, floor), pn2, pr2


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
    return int(np.searchsorted(cum, fraction) + 1)


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

    Notes
    -----
    With F_r = 1, F_n = ``flux_ratio`` and ``den = sqrt(σ_n² F_r² |P̂_r|² + σ_r² F_n² |P̂_n|²)``:

    - eq. 13: ``D̂ = (F_r P̂_r N̂ − F_n P̂_n R̂) / den``;
    - eq. 15: ``F_D = F_r F_n / sqrt(σ_n² F_r² + σ_r² F_n²)``;
    - eq. 14: ``P̂_D = F_r F_n P̂_r P̂_n / (F_D den)``;
    - eq. 17: ``Ŝ = F_D D̂ conj(P̂_D) = k̂_n N̂ − k̂_r R̂`` with the kernels of
      eqs. 28–29, ``k̂_n = F_n F_r² conj(P̂_n) |P̂_r|² / den²`` and
      ``k̂_r = F_r F_n² conj(P̂_r) |P̂_n|² / den²``;
    - eqs. 26–27: ``V(S_N) = V(N) ⊗ k_n²``, ``V(S_R) = V(R) ⊗ k_r²``;
    - eq. 30: ``V_ast(S_X) = σ_x² (∂S_X/∂x)² + σ_y² (∂S_X/∂y)²`` for X = N, R;
    - eq. 25: ``S_corr = S / sqrt(V(S_N) + V(S_R) + V_ast(S_N) + V_ast(S_R))``;
    - eqs. 41–43: ``F_S = Σ_f F_n² F_r² |P̂_n|² |P̂_r|² / den²`` (mean over the full
      frequency plane), ``flux = S / F_S`` and ``flux_err = sqrt(V(S_N) + V(S_R)) / F_S``.
      ``flux`` is the flux of a point source in reference counts (F_r = 1).
    """
    fr = 1.0
    fn = float(flux_ratio)
    den2, pn2, pr2 = denominator_squared(spectra, sigma_new, sigma_ref, fn, fr)
    npix = spectra.grid[0] * spectra.grid[1]
    weights = _hermitian_weights(spectra.grid)

    # eq. 15 and F_S (eq. 42)
    flux_zeropoint = fr * fn / math.sqrt((sigma_new * fr) ** 2 + (sigma_ref * fn) ** 2)
    fs_integrand = (fn * fr) ** 2 * pn2 * pr2 / den2
    flux_normalization = float(np.sum(fs_integrand * weights) / npix)
    del fs_integrand

    ref_hat = spectra.ref_hat
    phase = spectra.shift_phase(*shift)
    if phase is not None:
        ref_hat = ref_hat * phase
    den = np.sqrt(den2)

    # eq. 13: the proper difference image
    d_hat = (fr * spectra.psf_ref_hat * spectra.new_hat - fn * spectra.psf_new_hat * ref_hat) / den
    difference = spectra.irfft(d_hat)
    del d_hat
    difference_bkg = None
    if difference_background is not None:
        bad = np.zeros(spectra.shape, bool)
        for b in (bad_new, bad_ref):
            if b is not None:
                bad |= b
        difference_bkg = difference_background(difference, bad)
        difference -= difference_bkg

    # eq. 14: its PSF (centred stamp)
    pd_hat = fr * fn * spectra.psf_ref_hat * spectra.psf_new_hat / (flux_zeropoint * den)
    pd_full = sfft.irfft2(pd_hat, s=spectra.grid, workers=_WORKERS)
    difference_psf = _centered_stamp(pd_full, psf_size)
    del pd_hat, pd_full, den

    # eqs. 28-29: S = k_n * N - k_r * R (eq. 17 in kernel form)
    kn_hat = fn * fr**2 * np.conj(spectra.psf_new_hat) * pr2 / den2
    kr_hat = fr * fn**2 * np.conj(spectra.psf_ref_hat) * pn2 / den2
    del den2, pn2, pr2
    score_new = spectra.irfft(kn_hat * spectra.new_hat)
    score_ref = spectra.irfft(kr_hat * ref_hat)
    score = score_new - score_ref
    if difference_bkg is not None:
        score -= flux_zeropoint * difference_bkg
        del difference_bkg

    kn = sfft.irfft2(kn_hat, s=spectra.grid, workers=_WORKERS)
    kr = sfft.irfft2(kr_hat, s=spectra.grid, workers=_WORKERS)
    del kn_hat, kr_hat
    kernel_radius = max(_kernel_radius(kn), _kernel_radius(kr))
    kn2 = kn * kn
    kr2 = kr * kr
    del kn, kr
    # background part of eqs. 26-27 (constant σ², exact away from the edges)
    variance_const = sigma_new**2 * float(kn2.sum()) + sigma_ref**2 * float(kr2.sum())
    kn2_hat = sfft.rfft2(kn2, workers=_WORKERS)
    kr2_hat = sfft.rfft2(kr2, workers=_WORKERS)
    del kn2, kr2

    # source part of eqs. 26-27: the images themselves as variance
    var_hat = None
    if variance_new is not None:
        var_hat = kn2_hat * sfft.rfft2(variance_new, s=spectra.grid, workers=_WORKERS)
        variance_const -= sigma_new**2 * float(np.real(kn2_hat[0, 0]))
    elif gain_new:
        var_hat = kn2_hat * (spectra.new_hat / gain_new)
    if variance_ref is not None:
        term = kr2_hat * sfft.rfft2(variance_ref, s=spectra.grid, workers=_WORKERS)
        if phase is not None:
            term *= phase
        variance_const -= sigma_ref**2 * float(np.real(kr2_hat[0, 0]))
        var_hat = term if var_hat is None else var_hat + term
    elif gain_ref:
        term = kr2_hat * (ref_hat / gain_ref)
        var_hat = term if var_hat is None else var_hat + term
    if var_hat is not None:
        variance = spectra.irfft(var_hat) + variance_const
        del var_hat
        # the noisy image is an unbiased but noisy variance; never below half the sky part
        floor = 0.5 * (
            sigma_new**2 * float(np.real(kn2_hat[0, 0]))
            + sigma_ref**2 * float(np.real(kr2_hat[0, 0]))
        )
        np.maximum(variance, floor, out=variance)
    else:
        variance = np.full(spectra.shape, variance_const)

    contamination = None
    if (bad_new is not None and bad_new.any()) or (bad_ref is not None and bad_ref.any()):
        c_hat = None
        if bad_new is not None and bad_new.any():
            c_hat = (
                kn2_hat
                * sfft.rfft2(bad_new.astype(float), s=spectra.grid, workers=_WORKERS)
                * sigma_new**2
            )
        if bad_ref is not None and bad_ref.any():
            term = (
                kr2_hat
                * sfft.rfft2(bad_ref.astype(float), s=spectra.grid, workers=_WORKERS)
                * sigma_ref**2
            )
            c_hat = term if c_hat is None else c_hat + term
        contamination = spectra.irfft(c_hat) / variance_const
    del kn2_hat, kr2_hat

    # eq. 30: astrometric noise
    sx, sy = astrometric_sigma
    total = variance
    if sx > 0 or sy > 0:
        gy_n, gx_n = np.gradient(score_new)
        gy_r, gx_r = np.gradient(score_ref)
        total = variance + sx**2 * (gx_n**2 + gx_r**2) + sy**2 * (gy_n**2 + gy_r**2)
        del gy_n, gx_n, gy_r, gx_r
    del score_new, score_ref

    score_corr = score / np.sqrt(total)  # eq. 25
    del total
    flux = score / flux_normalization  # eq. 41
    flux_err = np.sqrt(variance) / flux_normalization  # eq. 43
    return ZogyProducts(
        difference=difference,
        difference_psf=difference_psf,
        flux_zeropoint=float(flux_zeropoint),
        score=score,
        score_corr=score_corr,
        flux=flux,
        flux_err=flux_err,
        flux_normalization=flux_normalization,
        kernel_radius=int(kernel_radius),
        contamination=contamination,
    )
