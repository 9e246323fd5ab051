"""A second spectral grid built independently of the project (issue 15, acceptance).

Different physics from ``independent_grid.PlanckBandModel`` and coarser node steps:
continuum: Planck × an H⁻-like bound-free slope (λ/5300 Å)^(0.6·(5000 K/Teff));
lines: pseudo-Voigt profiles (Gaussian core, Lorentzian wings, 15 % weight) whose
optical depths follow Boltzmann excitation and a Saha-like ionisation balance,
τ ∝ 10^[Fe/H] · 10^(−5040 χ/Teff) · f_neutral(Teff, log g) for neutral lines and
(1 − f_neutral) for ionised ones; a smooth TiO-like pseudo-continuum depression
below 4200 K (τ ∝ ((4200 − T)/1000 K)^1.5 with a shallow band-head pattern).
Grid: 7 Teff (3000–6000 K, 500 K) × 3 log g (3.5, 4.5, 5.5) × 3 [Fe/H] (−0.5, 0.0, 0.5);
lines σ 3–5 km/s on a 2 km/s ln λ grid (resolved).
"""

from __future__ import annotations

import numpy as np
from independent_grid import C_KMS, fine_wavelength, gaussian_broaden

TEFF = tuple(3000.0 + 500.0 * k for k in range(7))
LOGG = (3.5, 4.5, 5.5)
FEH = (-0.5, 0.0, 0.5)
WL_RANGE = (5100.0, 5500.0)
TIO_TEFF = 4200.0


class SahaVoigtModel:
    """Exact model flux F(λ; Teff, log g, [Fe/H]) (arbitrary units), seeded line list."""

    def __init__(self, *, n_lines: int = 180, seed: int = 11, wl_range=WL_RANGE):
        rng = np.random.default_rng(seed)
        lo, hi = wl_range
        self.wl_range = (float(lo), float(hi))
        self.line_wl = rng.uniform(lo, hi, n_lines)
        self.chi = rng.uniform(1.0, 3.5, n_lines)  # eV, excitation potential
        self.ionised = rng.random(n_lines) < 0.25
        self.gf = 10 ** rng.uniform(-1.5, 0.3, n_lines)
        self.sigma_kms = rng.uniform(3.0, 5.0, n_lines)
        self.heads = np.arange(lo + 25.0, hi, 61.0)

    def neutral_fraction(self, teff, logg):
        # Saha-like: ionisation grows with T, falls with pressure (log g)
        x = 7.9 * 5040.0 / teff - 2.5 * np.log10(teff) + 0.5 * logg - 0.2
        return 1.0 / (1.0 + 10.0 ** (-x + 2.5 * np.log10(5000.0) - 7.9 * 5040.0 / 5000.0 + 0.7))

    def flux(self, wl: np.ndarray, teff: float, logg: float, feh: float) -> np.ndarray:
        x = 1.438777e8 / (wl * teff)
        cont = 1e20 / (wl**5 * np.expm1(x)) * (wl / 5300.0) ** (0.6 * 5000.0 / teff)
        fn = self.neutral_fraction(teff, logg)
        pop = np.where(self.ionised, 1.0 - fn, fn)
        boltzmann = 10 ** (-5040.0 * self.chi * (1.0 / teff - 1.0 / 5000.0))
        strength = 0.3 * self.gf * 10**feh * boltzmann * pop
        tau = np.zeros_like(wl)
        for lam, s, sig in zip(self.line_wl, strength, self.sigma_kms, strict=True):
            width = lam * sig / C_KMS
            near = np.abs(wl - lam) < 30 * width
            d = (wl[near] - lam) / width
            tau[near] += s * (0.85 * np.exp(-0.5 * d * d) + 0.15 / (1.0 + d * d / 2.0))
        cool = max(0.0, (TIO_TEFF - teff) / 1000.0)
        if cool > 0:
            band = np.zeros_like(wl)
            for head in self.heads:
                red = wl >= head
                band[red] += 0.5 * np.exp(-(wl[red] - head) / 20.0)
            tau += 0.8 * cool**1.5 * (1.0 - 0.15 * (logg - 4.5)) * (0.6 + band)
        return cont * np.exp(-tau)


def build_grid(model: SahaVoigtModel | None = None, *, dv: float = 2.0, teff=TEFF):
    """The 7 × 3 × 3 grid (raw flux, unbroadened) as a :class:`SpectralGrid`; ``teff``
    other Teff nodes (the diagnosis of issue 15 refines them to 250 K)."""
    from skyscene.spectra import SpectralGrid

    model = model or SahaVoigtModel()
    wl = fine_wavelength(dv, model.wl_range)
    params, flux = [], []
    for t in teff:
        for g in LOGG:
            for z in FEH:
                params.append((t, g, z))
                flux.append(model.flux(wl, t, g, z))
    return SpectralGrid(
        wl, params, np.array(flux), names=("Teff", "logg", "FeH"), meta={"model": "saha-voigt"}
    )


__all__ = ["FEH", "LOGG", "TEFF", "SahaVoigtModel", "build_grid", "gaussian_broaden"]
