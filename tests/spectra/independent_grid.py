"""A spectral grid built independently of ``skyscene.datasets.spectra`` (issue 15).

Different physics from the project's toy model: a Planck continuum times absorption
lines whose optical depths peak at line-specific temperatures (Gaussian in Teff), grow
with [Fe/H] and (for some lines) with log g, plus a molecular band system that appears
below 4600 K (saw-tooth band heads with a fine line comb, depth ∝ ((4600 − T)/1000)²).
Spectra are computed exactly at any θ on a fine ln λ grid; the instrument (Gaussian,
resolving power R) is applied here with numpy alone, not with skyscene's broadening.

Grid: 13 Teff (3000–6000 K, 250 K) × 3 log g (4.0, 4.5, 5.0) × 2 [Fe/H] (−0.3, 0.0).
"""

from __future__ import annotations

import numpy as np

C_KMS = 299792.458
TEFF = tuple(3000.0 + 250.0 * k for k in range(13))
LOGG = (4.0, 4.5, 5.0)
FEH = (-0.3, 0.0)
WL_RANGE = (5100.0, 5500.0)
BAND_TEFF = 4600.0


class PlanckBandModel:
    """Exact model flux F(λ; Teff, log g, [Fe/H]) (arbitrary units), seeded line list."""

    def __init__(self, *, n_lines: int = 220, seed: int = 7, wl_range=WL_RANGE):
        rng = np.random.default_rng(seed)
        lo, hi = wl_range
        self.wl_range = (float(lo), float(hi))
        self.line_wl = rng.uniform(lo, hi, n_lines)
        self.line_peak_t = rng.uniform(2500.0, 7500.0, n_lines)  # K, where τ peaks
        self.line_width_t = rng.uniform(700.0, 1800.0, n_lines)  # K
        self.line_tau = 10 ** rng.uniform(-1.3, 0.4, n_lines)
        self.line_logg = rng.choice([0.0, 0.0, 0.25, -0.15], n_lines)  # pressure sensitivity
        self.line_sigma_kms = rng.uniform(2.0, 4.0, n_lines)
        self.band_heads = np.arange(lo + 30.0, hi, 47.0)
        self.band_length = 12.0  # Å: e-folding of a band towards the blue
        self.comb = 0.37  # Å: spacing of the rotational lines

    def flux(self, wl: np.ndarray, teff: float, logg: float, feh: float) -> np.ndarray:
        x = 1.438777e8 / (wl * teff)  # hc/λkT with λ in Å
        planck = 1.0 / (wl**5 * np.expm1(x)) * 1e20
        strength = (
            self.line_tau
            * np.exp(-0.5 * ((teff - self.line_peak_t) / self.line_width_t) ** 2)
            * 10 ** (0.8 * feh)
            * (1.0 + self.line_logg * (logg - 4.5))
        )
        tau = np.zeros_like(wl)
        for lam, s, sig in zip(self.line_wl, strength, self.line_sigma_kms, strict=True):
            width = lam * sig / C_KMS
            near = np.abs(wl - lam) < 8 * width
            tau[near] += s * np.exp(-0.5 * ((wl[near] - lam) / width) ** 2)
        cool = max(0.0, (BAND_TEFF - teff) / 1000.0)
        if cool > 0:
            band = np.zeros_like(wl)
            for head in self.band_heads:
                blue = wl <= head
                band[blue] += np.exp(-(head - wl[blue]) / self.band_length)
            comb = 0.6 + 0.4 * np.cos(2 * np.pi * wl / self.comb) ** 2
            tau += 1.2 * cool**2 * (1.0 + 0.3 * (logg - 4.5)) * band * comb
        return planck * np.exp(-tau)

    def mean_flux(self, wl, teff, logg, feh):
        return float(np.mean(self.flux(wl, teff, logg, feh)))


def fine_wavelength(dv: float = 1.0, wl_range=WL_RANGE) -> np.ndarray:
    lo, hi = wl_range
    n = int(np.log(hi / lo) / np.log1p(dv / C_KMS)) + 1
    return lo * np.exp(np.arange(n) * np.log1p(dv / C_KMS))


def build_grid(model: PlanckBandModel | None = None, *, dv: float = 1.5):
    """The 13 × 3 × 2 grid (raw flux, unbroadened) as a :class:`SpectralGrid`."""
    from skyscene.spectra import SpectralGrid

    model = model or PlanckBandModel()
    wl = fine_wavelength(dv, model.wl_range)
    params, flux = [], []
    for t in TEFF:
        for g in LOGG:
            for z in FEH:
                params.append((t, g, z))
                flux.append(model.flux(wl, t, g, z))
    return SpectralGrid(
        wl, params, np.array(flux), names=("Teff", "logg", "FeH"), meta={"model": "planck-band"}
    )


def gaussian_broaden(wl: np.ndarray, flux: np.ndarray, resolution: float) -> np.ndarray:
    """Convolve a spectrum on a uniform ln λ grid with a Gaussian of FWHM c/R (numpy only)."""
    dv = np.expm1(np.mean(np.diff(np.log(wl)))) * C_KMS
    sigma_pix = C_KMS / resolution / (2 * np.sqrt(2 * np.log(2))) / dv
    half = int(np.ceil(6 * sigma_pix))
    k = np.exp(-0.5 * (np.arange(-half, half + 1) / sigma_pix) ** 2)
    k /= k.sum()
    padded = np.concatenate([np.full(half, flux[0]), flux, np.full(half, flux[-1])])
    return np.convolve(padded, k, mode="valid")


def simulate(
    model: PlanckBandModel,
    theta1,
    theta2,
    c: float,
    *,
    resolution: float = 30000.0,
    data_range=(5160.0, 5440.0),
    pixels: int = 6000,
    snr: float = 100.0,
    rng=None,
):
    """(wavelength, flux, sigma, clean) of (1 − c) F(θ₁) + c F(θ₂), R-broadened, no rotation
    or RV; noise σ = mean flux / ``snr`` (``snr=None``: noise-free, σ as at S/N 100)."""
    wl_fine = fine_wavelength(0.5, model.wl_range)
    raw = (1 - c) * model.flux(wl_fine, *theta1) + c * model.flux(wl_fine, *theta2)
    smooth = gaussian_broaden(wl_fine, raw, resolution)
    wl = np.exp(np.linspace(np.log(data_range[0]), np.log(data_range[1]), pixels))
    clean = np.interp(wl, wl_fine, smooth)
    sigma = np.full(pixels, clean.mean() / (snr or 100.0))
    flux = clean.copy()
    if snr is not None:
        flux = clean + np.random.default_rng(rng).normal(0.0, sigma)
    return wl, flux, sigma, clean
