"""Wavelength sampling, instrumental and rotational broadening, Doppler shifts.

Units: wavelengths in Å (any consistent unit works, the operations are in
ln λ), velocities in km/s. Convolutions are done in velocity space: on a grid uniform
in ln λ a velocity shift ``v`` is a constant shift ``ln(1 + v/c)`` of ln λ, so both
kernels are the same at every wavelength. They are applied in Fourier space with
their analytic transforms, which makes the result a smooth function of ``vsini`` and
``R`` (no kernel discretisation steps), as in Starfish (Czekala et al. 2015, §2.2).
"""

from __future__ import annotations

import logging

import numpy as np
from scipy import fft as sp_fft
from scipy.special import j1

from skyscene.errors import DataError, ParameterError

__all__ = [
    "C_KMS",
    "broaden",
    "check_wavelength",
    "doppler_factor",
    "instrumental_transfer",
    "is_log_uniform",
    "log_lambda_grid",
    "resample",
    "rotational_transfer",
]

log = logging.getLogger(__name__)

C_KMS = 299792.458
"""Speed of light in km/s."""

_FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))


def check_wavelength(wavelength, *, name: str = "wavelength") -> np.ndarray:
    """Return ``wavelength`` as a float array; raise DataError unless finite, > 0, increasing."""
    wl = np.asarray(wavelength, dtype=float)
    if wl.ndim != 1 or wl.size < 2:
        raise DataError(f"{name}: expected a 1-D array of at least 2 values, got shape {wl.shape}")
    if not np.all(np.isfinite(wl)) or np.any(wl <= 0):
        raise DataError(f"{name}: values must be finite and positive")
    bad = np.flatnonzero(np.diff(wl) <= 0)
    if bad.size:
        i = int(bad[0])
        raise DataError(
            f"{name} is not strictly increasing (non-monotonic): "
            f"{name}[{i}]={float(wl[i])!r} >= {name}[{i + 1}]={float(wl[i + 1])!r}"
        )
    return wl


def doppler_factor(rv: float) -> float:
    """Relativistic Doppler factor λ_obs / λ_rest = sqrt((1 + β)/(1 − β)), β = rv / c.

    ``rv`` in km/s, positive for a receding source (redshift).
    """
    beta = float(rv) / C_KMS
    if not abs(beta) < 1:
        raise ParameterError(f"rv={float(rv)!r} km/s is not a velocity below c")
    return float(np.sqrt((1.0 + beta) / (1.0 - beta)))


def log_lambda_grid(wl_min: float, wl_max: float, *, dv: float) -> np.ndarray:
    """Wavelengths from ``wl_min`` to (at least) ``wl_max`` with a constant step ``dv`` km/s.

    Examples
    --------
    >>> wl = log_lambda_grid(5000.0, 5001.0, dv=3.0)
    >>> bool(np.allclose(np.diff(np.log(wl)), np.log1p(3.0 / C_KMS)))
    True
    """
    if not (dv > 0 and np.isfinite(dv)):
        raise ParameterError(f"dv={dv!r} km/s must be positive")
    if not (0 < wl_min < wl_max):
        raise ParameterError(f"wavelength range ({wl_min!r}, {wl_max!r}) must be 0 < min < max")
    step = np.log1p(dv / C_KMS)
    n = int(np.ceil(np.log(wl_max / wl_min) / step)) + 1
    return wl_min * np.exp(step * np.arange(n))


def is_log_uniform(wavelength: np.ndarray, *, rtol: float = 1e-6) -> bool:
    """Whether ``wavelength`` has a constant step in ln λ (to ``rtol`` of the step)."""
    d = np.diff(np.log(np.asarray(wavelength, dtype=float)))
    return bool(d.size > 0 and np.all(np.abs(d - d.mean()) <= rtol * abs(d.mean())))


def resample(wavelength, flux, new_wavelength) -> np.ndarray:
    """Linearly interpolate ``flux`` (…, n_wl) from ``wavelength`` onto ``new_wavelength``.

    The new wavelengths must lie inside the old range (no extrapolation).
    """
    wl = check_wavelength(wavelength)
    new = check_wavelength(new_wavelength, name="new_wavelength")
    flux = np.asarray(flux, dtype=float)
    if flux.shape[-1] != wl.size:
        raise DataError(
            f"flux has {flux.shape[-1]} wavelengths but wavelength has {wl.size} "
            "(mismatched lengths)"
        )
    if new[0] < wl[0] or new[-1] > wl[-1]:
        raise ParameterError(
            f"new_wavelength range [{new[0]:g}, {new[-1]:g}] is outside the input range "
            f"[{wl[0]:g}, {wl[-1]:g}]"
        )
    idx = np.clip(np.searchsorted(wl, new, side="right") - 1, 0, wl.size - 2)
    t = (new - wl[idx]) / (wl[idx + 1] - wl[idx])
    return flux[..., idx] * (1.0 - t) + flux[..., idx + 1] * t


def instrumental_transfer(freq: np.ndarray, resolution: float | None) -> np.ndarray:
    """Fourier transform of a Gaussian line-spread function of resolving power R.

    Parameters
    ----------
    freq : ndarray
        Frequencies in cycles per (km/s), e.g. ``scipy.fft.rfftfreq(n, d=dv)``.
    resolution : float or None
        R = λ/Δλ with Δλ the FWHM; ``None`` means no broadening (transfer 1).
    """
    if resolution is None:
        return np.ones_like(freq, dtype=float)
    if not (resolution > 0 and np.isfinite(resolution)):
        raise ParameterError(f"resolution R={resolution!r} must be positive")
    sigma = C_KMS / resolution * _FWHM_TO_SIGMA
    return np.exp(-2.0 * np.pi**2 * sigma**2 * np.asarray(freq) ** 2)


def rotational_transfer(
    freq: np.ndarray, vsini: float, *, limb_darkening: float = 0.6
) -> np.ndarray:
    """Fourier transform of the rotational broadening profile of Gray (2005), eq. 18.14.

    Parameters
    ----------
    freq : ndarray
        Frequencies in cycles per (km/s).
    vsini : float
        Projected equatorial velocity in km/s (≥ 0; 0 = no broadening).
    limb_darkening : float, optional
        Linear limb-darkening coefficient ε (0 ≤ ε ≤ 1), default 0.6.

    Notes
    -----
    With x = v / v sin i, the profile is
    G(x) = [2(1 − ε)√(1 − x²) + (πε/2)(1 − x²)] / [π(1 − ε/3)]. Its transform at
    u = 2π v sin i · s is
    [2(1 − ε) J₁(u)/u + 2ε (sin u − u cos u)/u³] / (1 − ε/3),
    which reduces to the ε = 0.6 expression of Starfish (Czekala et al. 2015, eq. 6).
    """
    if not (vsini >= 0 and np.isfinite(vsini)):
        raise ParameterError(f"vsini={vsini!r} km/s must be finite and >= 0")
    if not 0 <= limb_darkening <= 1:
        raise ParameterError(f"limb_darkening={limb_darkening!r} must be in [0, 1]")
    freq = np.asarray(freq, dtype=float)
    u = 2.0 * np.pi * vsini * np.abs(freq)
    eps = limb_darkening
    small = u < 1e-2
    big_u = np.where(small, 1.0, u)
    j1_term = np.where(small, 0.5 - u**2 / 16.0, j1(big_u) / big_u)
    sph_term = np.where(
        small,
        1.0 / 3.0 - u**2 / 30.0 + u**4 / 840.0,
        (np.sin(big_u) - big_u * np.cos(big_u)) / big_u**3,
    )
    return (2.0 * (1.0 - eps) * j1_term + 2.0 * eps * sph_term) / (1.0 - eps / 3.0)


def broaden(
    wavelength,
    flux,
    *,
    resolution: float | None = None,
    vsini: float | None = None,
    limb_darkening: float = 0.6,
) -> np.ndarray:
    """Broaden spectra by an instrument of resolving power R and/or by rotation.

    Parameters
    ----------
    wavelength : ndarray, shape (n_wl,)
        Strictly increasing wavelengths (Å). If not uniform in ln λ, the flux is
        resampled to a ln λ grid with the finest input step, broadened, and resampled back.
    flux : ndarray, shape (..., n_wl)
        One or more spectra.
    resolution : float or None
        Resolving power R (Gaussian FWHM = c/R).
    vsini : float or None
        Projected rotation velocity in km/s.
    limb_darkening : float
        Linear limb-darkening coefficient ε of the rotational profile.

    Returns
    -------
    ndarray, shape (..., n_wl)
        Broadened flux; the edges are padded with the edge values before convolving.

    Examples
    --------
    >>> wl = log_lambda_grid(5000.0, 5010.0, dv=1.0)
    >>> f = np.ones(wl.size); f[wl.size // 2] = 0.0
    >>> g = broaden(wl, f, resolution=50000, vsini=10.0)
    >>> bool(abs(g.sum() - f.sum()) < 1e-8)   # equivalent width is conserved
    True
    """
    wl = check_wavelength(wavelength)
    flux = np.asarray(flux, dtype=float)
    if flux.shape[-1] != wl.size:
        raise DataError(
            f"flux has {flux.shape[-1]} wavelengths but wavelength has {wl.size} "
            "(mismatched lengths)"
        )
    if resolution is None and not vsini:
        return flux.copy()
    if not is_log_uniform(wl):
        step = float(np.min(np.diff(np.log(wl))))
        n = int(np.ceil(np.log(wl[-1] / wl[0]) / step)) + 1
        fine = wl[0] * np.exp(np.linspace(0.0, np.log(wl[-1] / wl[0]), n))
        fine[[0, -1]] = wl[[0, -1]]
        out = broaden(
            fine,
            resample(wl, flux, fine),
            resolution=resolution,
            vsini=vsini,
            limb_darkening=limb_darkening,
        )
        return resample(fine, out, wl)
    dv = float(np.expm1(np.mean(np.diff(np.log(wl))))) * C_KMS
    width = (vsini or 0.0) + (5.0 * C_KMS / resolution if resolution else 0.0)
    pad = int(np.ceil(width / dv)) + 2
    padded = np.concatenate(
        [np.repeat(flux[..., :1], pad, axis=-1), flux, np.repeat(flux[..., -1:], pad, axis=-1)],
        axis=-1,
    )
    n = sp_fft.next_fast_len(padded.shape[-1], real=True)
    freq = sp_fft.rfftfreq(n, d=dv)
    transfer = instrumental_transfer(freq, resolution)
    if vsini:
        transfer = transfer * rotational_transfer(freq, vsini, limb_darkening=limb_darkening)
    spec = sp_fft.rfft(padded, n=n, axis=-1) * transfer
    out = sp_fft.irfft(spec, n=n, axis=-1)[..., : padded.shape[-1]]
    return out[..., pad : pad + wl.size]
