"""Seeded toy stellar spectra: a spectral grid and noisy one- or two-component spectra.

The toy photosphere is a Planck continuum times absorption,

    F(λ; Teff, log g, [Fe/H]) = π B_λ(Teff) · exp(−τ(λ)),
    τ(λ) = Σ_s A_s(Teff, log g, [Fe/H]) · Φ_s(λ),

with four "species" s whose profiles Φ_s (sums of Gaussian lines or band heads with
a fixed seeded line list) do not depend on the parameters and whose strengths A_s do,
smoothly: neutral-metal lines (stronger when cool), ionised-metal lines (stronger when
hot and at low gravity), broad hydrogen lines (hot) and molecular bands (TiO-like,
only below ~4000 K). All strengths scale with 10^[Fe/H].

Because F is a closed formula, the mean flux of any spectral order — and so the flux
ratio q_m = f̄₂/f̄₁ of the mixture model (Czekala et al. 2015) — is known exactly at any
parameters, not only at the grid nodes: :meth:`ToyStellarModel.mean_flux`.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast

import numpy as np

from skyscene.errors import ParameterError
from skyscene.spectra.broadening import (
    C_KMS,
    broaden,
    doppler_factor,
    log_lambda_grid,
    resample,
)
from skyscene.spectra.grid import SpectralGrid

__all__ = [
    "SimulatedSpectrum",
    "ToyStellarModel",
    "simulate_spectral_grid",
    "simulate_spectrum",
]

log = logging.getLogger(__name__)

_H = 6.62607015e-27  # erg s
_C_CM = 2.99792458e10  # cm/s
_K = 1.380649e-16  # erg/K

DEFAULT_TEFF = tuple(float(t) for t in np.arange(3000.0, 6001.0, 250.0))
DEFAULT_LOGG = (4.0, 4.25, 4.5, 4.75, 5.0)
DEFAULT_FEH = tuple(float(z) + 0.0 for z in np.round(np.arange(-0.5, 0.51, 0.1), 1))


def planck_flux(wavelength: np.ndarray, teff: float) -> np.ndarray:
    """Surface flux π B_λ(T) in erg/s/cm²/cm for wavelengths in Å and T in K."""
    lam = np.asarray(wavelength, dtype=float) * 1e-8
    x = _H * _C_CM / (lam * _K * float(teff))
    return np.pi * 2.0 * _H * _C_CM**2 / lam**5 / np.expm1(x)


@dataclass(frozen=True, kw_only=True)
class ToyStellarModel:
    """Closed-form toy stellar spectra with a seeded line list.

    Parameters
    ----------
    seed : int
        Seed of the line list (positions, strengths, widths).
    line_range : tuple of float
        Wavelength range (Å) in which lines are placed.
    lines_per_1000A : int
        Density of metal lines.

    Examples
    --------
    >>> model = ToyStellarModel(seed=1)
    >>> wl = np.linspace(5000.0, 5010.0, 100)
    >>> f = model.flux(wl, (4500.0, 4.5, 0.0))
    >>> bool(np.all(f > 0) and np.all(f <= planck_flux(wl, 4500.0)))
    True
    """

    seed: int = 0
    line_range: tuple[float, float] = (3500.0, 9000.0)
    lines_per_1000A: int = 1000
    _lines: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        lo, hi = self.line_range
        if not 0 < lo < hi:
            raise ParameterError(f"line_range={self.line_range!r} must be 0 < min < max")
        if self.lines_per_1000A < 1:
            raise ParameterError(f"lines_per_1000A={self.lines_per_1000A!r} must be >= 1")
        rng = np.random.default_rng(self.seed)
        n_metal = int(self.lines_per_1000A * (hi - lo) / 1000.0)
        lines = {}
        for species, frac in (("neutral", 0.7), ("ionised", 0.3)):
            n = max(1, int(frac * n_metal))
            lines[species] = dict(
                centre=np.exp(rng.uniform(np.log(lo), np.log(hi), n)),
                strength=10 ** rng.uniform(-1.5, 0.3, n),
                sigma_kms=rng.uniform(5.0, 9.0, n),
            )
        n_h = max(1, int(4 * (hi - lo) / 5500.0))
        lines["hydrogen"] = dict(
            centre=np.exp(rng.uniform(np.log(lo), np.log(hi), n_h)),
            strength=rng.uniform(0.8, 1.5, n_h),
            sigma_kms=rng.uniform(80.0, 150.0, n_h),
        )
        n_b = max(1, int(6 * (hi - lo) / 1000.0))
        lines["molecular"] = dict(
            centre=np.exp(rng.uniform(np.log(lo), np.log(hi), n_b)),
            strength=rng.uniform(0.2, 0.8, n_b),
            length_kms=rng.uniform(300.0, 1500.0, n_b),
        )
        object.__setattr__(self, "_lines", lines)

    # strengths A_s(θ) -------------------------------------------------------
    @staticmethod
    def strengths(teff: float, logg: float, feh: float) -> dict[str, float]:
        """Strength A_s of each species at (Teff [K], log g, [Fe/H])."""
        metals = 10.0**feh
        return {
            "neutral": metals * (5000.0 / teff) ** 6 * 10 ** (0.1 * (logg - 4.5)),
            "ionised": metals * (teff / 5000.0) ** 6 * 10 ** (-0.3 * (logg - 4.5)),
            "hydrogen": (teff / 6000.0) ** 6,
            "molecular": 2 * metals * np.exp(-(teff - 3000.0) / 500.0) * 10 ** (0.2 * (logg - 4.5)),
        }

    def profiles(self, wavelength: np.ndarray) -> dict[str, np.ndarray]:
        """Φ_s(λ) of each species at the given wavelengths (Å), parameter-independent."""
        return _profiles(self, np.asarray(wavelength, dtype=float).tobytes())

    def optical_depth(self, wavelength, params: Sequence[float], *, profiles=None) -> np.ndarray:
        """τ(λ) at (Teff, log g, [Fe/H])."""
        teff, logg, feh = (float(p) for p in params)
        prof = profiles if profiles is not None else self.profiles(wavelength)
        a = self.strengths(teff, logg, feh)
        return cast(np.ndarray, sum(a[s] * prof[s] for s in prof))

    def flux(self, wavelength, params: Sequence[float], *, profiles=None) -> np.ndarray:
        """Exact toy surface flux (erg/s/cm²/cm) at (Teff [K], log g, [Fe/H])."""
        _check_params(params)
        wl = np.asarray(wavelength, dtype=float)
        return planck_flux(wl, params[0]) * np.exp(
            -self.optical_depth(wl, params, profiles=profiles)
        )

    def mean_flux(self, wavelength, params: Sequence[float]) -> float:
        """Exact mean flux over the given wavelengths: s_m(θ) of one order."""
        return float(np.mean(self.flux(wavelength, params)))


def _check_params(params):
    if len(params) != 3:
        raise ParameterError(f"params must be (Teff, logg, FeH), got {params!r}")
    if not params[0] > 0:
        raise ParameterError(f"Teff={params[0]!r} K must be positive")


@functools.lru_cache(maxsize=8)
def _profiles_cached(model: ToyStellarModel, key: bytes) -> dict[str, np.ndarray]:
    wl = np.frombuffer(key, dtype=float)
    lnwl = np.log(wl)
    out = {}
    for species, lines in model._lines.items():
        prof = np.zeros(wl.size)
        if species == "molecular":
            for centre, strength, length in zip(
                lines["centre"], lines["strength"], lines["length_kms"], strict=True
            ):
                x = (lnwl - np.log(centre)) * C_KMS  # km/s redward of the band head
                lo, hi = np.searchsorted(x, [-30.0, 6 * length])
                seg = x[lo:hi]
                head = 0.5 * (1 + np.tanh(seg / 5.0))  # smooth band head, ~5 km/s
                prof[lo:hi] += strength * head * np.exp(-np.clip(seg, 0, None) / length)
        else:
            for centre, strength, sigma in zip(
                lines["centre"], lines["strength"], lines["sigma_kms"], strict=True
            ):
                x = (lnwl - np.log(centre)) * C_KMS
                lo, hi = np.searchsorted(x, [-7 * sigma, 7 * sigma])
                prof[lo:hi] += strength * np.exp(-0.5 * (x[lo:hi] / sigma) ** 2)
        out[species] = prof
    return out


def _profiles(model, key):
    return _profiles_cached(model, key)


def simulate_spectral_grid(
    *,
    teff: Sequence[float] = DEFAULT_TEFF,
    logg: Sequence[float] = DEFAULT_LOGG,
    feh: Sequence[float] = DEFAULT_FEH,
    wavelength_range: tuple[float, float] = (5000.0, 6000.0),
    n_wavelength: int = 16384,
    model: ToyStellarModel | None = None,
) -> SpectralGrid:
    """A regular toy spectral grid (raw flux, erg/s/cm²/cm) on a ln λ wavelength grid.

    Parameters
    ----------
    teff, logg, feh : sequence of float
        Grid nodes (K, dex, dex). Default 13 × 5 × 11 = 715 points, Teff 3000–6000 K
        in steps of 250 K, log g 4–5 in 0.25, [Fe/H] −0.5–0.5 in 0.1 dex.
    wavelength_range : tuple of float
        First and last wavelength (Å).
    n_wavelength : int
        Number of wavelengths, uniformly spaced in ln λ (default 16384).
    model : ToyStellarModel, optional
        The generating model (its seed fixes the line list); default ``ToyStellarModel()``.

    Returns
    -------
    SpectralGrid
        With ``names = ("Teff", "logg", "FeH")`` and the model seed in ``meta``.

    Examples
    --------
    >>> grid = simulate_spectral_grid(n_wavelength=1024)
    >>> grid.n_grid, grid.n_wavelength, grid.is_regular
    (715, 1024, True)
    """
    model = model or ToyStellarModel()
    lo, hi = wavelength_range
    if not 0 < lo < hi:
        raise ParameterError(f"wavelength_range={wavelength_range!r} must be 0 < min < max")
    if n_wavelength < 2:
        raise ParameterError(f"n_wavelength={n_wavelength!r} must be >= 2")
    wl = lo * np.exp(np.linspace(0.0, np.log(hi / lo), int(n_wavelength)))
    wl[-1] = hi
    prof = model.profiles(wl)
    params, flux = [], []
    for t in teff:
        for g in logg:
            for z in feh:
                params.append((float(t), float(g), float(z)))
                flux.append(model.flux(wl, (t, g, z), profiles=prof))
    meta = {"simulated": "skyscene.datasets.spectra.ToyStellarModel", "model_seed": model.seed}
    return SpectralGrid(wl, params, np.array(flux), names=("Teff", "logg", "FeH"), meta=meta)


@dataclass(frozen=True, kw_only=True)
class SimulatedSpectrum:
    """A simulated observed spectrum and its truth.

    Attributes
    ----------
    wavelength : ndarray (n_pix,)
        Observed wavelengths, Å, increasing within each order.
    flux, sigma : ndarray (n_pix,)
        Flux (arbitrary units, continuum ~ 1) and its 1σ Gaussian noise.
    order : ndarray of int (n_pix,)
        Spectral order (chunk) of each pixel, 0 … n_orders − 1.
    truth : dict
        theta1, theta2 (or None), c, vsini (km/s), rv (km/s), resolution, snr,
        q (f̄₂/f̄₁ per order), continuum (polynomial coefficients per order).
    """

    wavelength: np.ndarray
    flux: np.ndarray
    sigma: np.ndarray
    order: np.ndarray
    truth: dict

    def to_table(self):
        """astropy Table with columns wavelength, flux, sigma, order and the truth in meta."""
        from astropy.table import Table

        return Table(
            {
                "wavelength": self.wavelength,
                "flux": self.flux,
                "sigma": self.sigma,
                "order": self.order,
            },
            meta={"truth": self.truth},
        )


def simulate_spectrum(
    *,
    theta1: Sequence[float],
    theta2: Sequence[float] | None = None,
    c: float = 0.0,
    vsini: float = 5.0,
    rv: float = 0.0,
    snr: float = 100.0,
    resolution: float | None = 30000.0,
    wavelength_range: tuple[float, float] = (5020.0, 5980.0),
    n_orders: int = 1,
    pixels_per_order: int = 16384,
    continuum_scatter: float = 0.05,
    model: ToyStellarModel | None = None,
    oversample: int = 4,
    rng=None,
) -> SimulatedSpectrum:
    """A noisy one- or two-component spectrum drawn from the exact toy model.

    The physical flux is (1 − c)·F(θ₁) + c·F(θ₂) (filling factor c of component 2,
    Czekala et al. 2015, mixture model), computed on a ln λ grid ``oversample`` times
    finer than the pixels, broadened by rotation (``vsini``, km/s, ε = 0.6) and the
    instrument (resolving power ``resolution``), Doppler-shifted by ``rv`` (km/s),
    interpolated to the pixels, multiplied per order by a seeded quadratic
    "instrument response" normalised to mean 1 and given Gaussian noise with
    σ = mean flux of the order / ``snr``.

    Parameters
    ----------
    theta1, theta2 : sequence of 3 float
        (Teff [K], log g, [Fe/H]) of the two components; ``theta2=None`` with ``c=0``
        for a single-component spectrum.
    c : float
        Filling factor of component 2, 0 ≤ c ≤ 1.
    wavelength_range : tuple of float
        Observed range (Å), split into ``n_orders`` orders equal in ln λ, each with
        ``pixels_per_order`` pixels uniform in ln λ.
    rng : numpy.random.Generator or int or None
        Noise and continuum randomness.

    Examples
    --------
    >>> s = simulate_spectrum(theta1=(5500, 4.5, 0.0), theta2=(4000, 4.5, 0.0), c=0.2,
    ...                       pixels_per_order=2048, rng=1)
    >>> s.flux.shape, round(float(s.truth["c"]), 2)
    ((2048,), 0.2)
    """
    model = model or ToyStellarModel()
    rng = np.random.default_rng(rng)
    _check_params(theta1)
    if theta2 is None:
        if c != 0:
            raise ParameterError(f"c={c!r} needs theta2 (the second component)")
    else:
        _check_params(theta2)
    if not 0 <= c <= 1:
        raise ParameterError(f"c={c!r} must be in [0, 1]")
    if not snr > 0:
        raise ParameterError(f"snr={snr!r} must be positive")
    if n_orders < 1 or pixels_per_order < 2:
        raise ParameterError(
            f"n_orders={n_orders!r} and pixels_per_order={pixels_per_order!r} must be >= 1 and >= 2"
        )
    lo, hi = wavelength_range
    if not 0 < lo < hi:
        raise ParameterError(f"wavelength_range={wavelength_range!r} must be 0 < min < max")
    edges = lo * (hi / lo) ** np.linspace(0.0, 1.0, n_orders + 1)
    dv_pix = np.log(hi / lo) / n_orders / (pixels_per_order - 1) * C_KMS
    margin = 1.0 + (abs(rv) + vsini + (10 * C_KMS / resolution if resolution else 0) + 50) / C_KMS
    fine = log_lambda_grid(lo / margin, hi * margin, dv=dv_pix / oversample)
    prof = model.profiles(fine)
    phys = model.flux(fine, theta1, profiles=prof)
    if theta2 is not None:
        phys = (1 - c) * phys + c * model.flux(fine, theta2, profiles=prof)
    obs = broaden(fine, phys, resolution=resolution, vsini=vsini)
    fine_obs = fine * doppler_factor(rv)
    waves, fluxes, sigmas, orders, q, conts = [], [], [], [], [], []
    for m in range(n_orders):
        wl = edges[m] * np.exp(np.linspace(0.0, np.log(edges[m + 1] / edges[m]), pixels_per_order))
        wl[-1] = edges[m + 1]
        f = resample(fine_obs, obs, wl)
        coeffs = np.array([1.0, *rng.normal(0.0, continuum_scatter, 2)])
        x = 2.0 * (wl - wl[0]) / (wl[-1] - wl[0]) - 1.0
        cont = np.polynomial.polynomial.polyval(x, coeffs)
        f = f / f.mean() * cont
        sigma = np.full(wl.size, f.mean() / snr)
        waves.append(wl)
        fluxes.append(f + rng.normal(0.0, sigma))
        sigmas.append(sigma)
        orders.append(np.full(wl.size, m))
        conts.append(coeffs.tolist())
        if theta2 is not None:
            rest = (fine >= edges[m]) & (fine <= edges[m + 1])
            q.append(model.mean_flux(fine[rest], theta2) / model.mean_flux(fine[rest], theta1))
    truth = {
        "theta1": [float(v) for v in theta1],
        "theta2": None if theta2 is None else [float(v) for v in theta2],
        "c": float(c),
        "vsini": float(vsini),
        "rv": float(rv),
        "resolution": resolution,
        "snr": float(snr),
        "q": q,
        "continuum": conts,  # power series in x = 2(λ − λ_first)/(λ_last − λ_first) − 1
        "model_seed": model.seed,
    }
    return SimulatedSpectrum(
        wavelength=np.concatenate(waves),
        flux=np.concatenate(fluxes),
        sigma=np.concatenate(sigmas),
        order=np.concatenate(orders),
        truth=truth,
    )
