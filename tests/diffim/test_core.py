"""ZOGY equations on aligned arrays with known PSFs (eqs. 13-17, 25-30, 41-43)."""

import numpy as np
import pytest

from skyscene.diffim import zogy_products
from skyscene.diffim._core import Spectra
from skyscene.psf import GaussianPSF, MoffatPSF


def _stamp(psf, size=31):
    s = psf.render((size, size))
    return s / s.sum()


def test_point_source_flux_and_score_are_exact_without_noise():
    """A noiseless point source of flux 800 (reference units) gives flux 800 at its pixel."""
    beta = 0.7
    pn, pr = _stamp(MoffatPSF.from_fwhm(5.0, 3.0)), _stamp(GaussianPSF(1.3))
    new = np.zeros((128, 128))
    new[64 - 15 : 64 + 16, 50 - 15 : 50 + 16] = beta * 800.0 * pn
    spectra = Spectra.compute(new, np.zeros_like(new), pn, pr)
    out = zogy_products(
        spectra,
        sigma_new=10.0,
        sigma_ref=4.0,
        flux_ratio=beta,
        gain_new=None,
        gain_ref=None,
        psf_size=61,
    )
    assert out.flux[64, 50] == pytest.approx(800.0, rel=1e-10)
    # S/N = alpha sqrt(F_S) (background-only noise, eq. 25 with V = F_S)
    assert out.score_corr[64, 50] == pytest.approx(
        800.0 * np.sqrt(out.flux_normalization), rel=1e-10
    )
    assert np.argmax(out.flux) == 64 * 128 + 50
    assert out.difference_psf.sum() == pytest.approx(1.0, abs=1e-3)  # P_D has unit sum (eq. 14)
    assert out.flux_zeropoint == pytest.approx(
        beta / np.hypot(10.0, 4.0 * beta), rel=1e-12
    )  # eq. 15


def test_static_scene_subtracts_to_zero_and_shift_is_applied():
    """Same scene in both images (PSF-matched, flux-scaled, shifted): D = S = 0 to 1e-9."""
    rng = np.random.default_rng(0)
    pn, pr = _stamp(GaussianPSF(2.0)), _stamp(GaussianPSF(1.2))
    scene = np.zeros((160, 160))
    scene[rng.integers(30, 130, 20), rng.integers(30, 130, 20)] = rng.uniform(1e3, 1e4, 20)
    from scipy.signal import fftconvolve

    new = 0.8 * fftconvolve(scene, pn, mode="same")
    ref = fftconvolve(scene, pr, mode="same")
    spectra = Spectra.compute(new, ref, pn, pr)
    out = zogy_products(
        spectra, sigma_new=5.0, sigma_ref=2.0, flux_ratio=0.8, gain_new=None, gain_ref=None
    )
    assert np.abs(out.score).max() < 1e-9 * np.abs(ref).max()
    # a reference moved by +0.4 px in x is put back by shift=(0.4, 0): ref'(x) = ref(x + 0.4)
    fx = np.fft.fftfreq(160)[None, :]
    moved = np.real(np.fft.ifft2(np.fft.fft2(ref) * np.exp(-2j * np.pi * fx * 0.4)))
    spectra = Spectra.compute(new, moved, pn, pr)
    out = zogy_products(
        spectra,
        sigma_new=5.0,
        sigma_ref=2.0,
        flux_ratio=0.8,
        gain_new=None,
        gain_ref=None,
        shift=(0.4, 0.0),
    )
    inner = (slice(20, 140), slice(20, 140))
    assert np.abs(out.score[inner]).max() < 1e-6 * np.abs(ref).max()


def test_noise_only_score_corr_is_standard_normal():
    """White noise of sigma_n, sigma_r: S_corr ~ N(0, 1) (mean 0 ± 0.03, std 1 ± 0.02)."""
    rng = np.random.default_rng(5)
    pn, pr = _stamp(MoffatPSF.from_fwhm(4.0, 3.0)), _stamp(GaussianPSF(1.5))
    new = rng.normal(0, 10.0, (384, 384))
    ref = rng.normal(0, 3.0, (384, 384))
    spectra = Spectra.compute(new, ref, pn, pr)
    out = zogy_products(
        spectra, sigma_new=10.0, sigma_ref=3.0, flux_ratio=1.2, gain_new=None, gain_ref=None
    )
    r = out.kernel_radius
    s = out.score_corr[r:-r, r:-r]
    assert abs(s.mean()) < 0.03
    assert s.std() == pytest.approx(1.0, abs=0.02)
    d = out.difference[r:-r, r:-r]
    assert d.std() == pytest.approx(1.0, abs=0.02)  # D is white with unit variance (eq. 13)


def test_astrometric_noise_lowers_score_near_bright_sources_only():
    """Eq. 30: V_ast grows with the gradient of S_N, S_R; flat sky is unchanged."""
    pn, pr = _stamp(GaussianPSF(2.0)), _stamp(GaussianPSF(1.5))
    rng = np.random.default_rng(1)
    new = rng.normal(0, 5.0, (128, 128))
    ref = rng.normal(0, 2.0, (128, 128))
    new[50:81, 50:81] += 1e5 * _stamp(GaussianPSF(2.0))  # unmatched bright residual
    spectra = Spectra.compute(new, ref, pn, pr)
    kw = {"sigma_new": 5.0, "sigma_ref": 2.0, "flux_ratio": 1.0, "gain_new": None, "gain_ref": None}
    plain = zogy_products(spectra, **kw)
    ast = zogy_products(spectra, astrometric_sigma=(0.1, 0.1), **kw)
    assert abs(ast.score_corr[63, 65]) < 0.8 * abs(plain.score_corr[63, 65])
    assert ast.score_corr[10, 10] == pytest.approx(plain.score_corr[10, 10], rel=1e-2)


def test_local_convolve_matches_a_full_convolution():
    """Tile-local FFT convolution of sparse masks equals scipy's full one (to 1e-10)."""
    from scipy.signal import fftconvolve

    from skyscene.diffim._core import local_convolve

    rng = np.random.default_rng(3)
    mask = np.zeros((300, 520), bool)
    mask[rng.integers(0, 300, 12), rng.integers(0, 520, 12)] = True
    mask[:4] = True  # an edge band
    kernel = _stamp(GaussianPSF(2.5), 21)
    out = local_convolve([(mask, kernel)], mask.shape, tile=64, dtype=np.float64)
    full = fftconvolve(mask.astype(float), kernel, mode="same")
    assert np.abs(out - full).max() < 1e-10


def test_single_precision_agrees_with_double():
    """float32 products equal float64 ones: S_corr to 2e-3, F_S to 1e-6 (relative)."""
    rng = np.random.default_rng(8)
    pn, pr = _stamp(MoffatPSF.from_fwhm(4.0, 3.0)), _stamp(GaussianPSF(1.5))
    new = rng.normal(0, 10.0, (200, 200))
    new[90:121, 90:121] += 5e4 * pn
    ref = rng.normal(0, 3.0, (200, 200))
    kw = {"sigma_new": 10.0, "sigma_ref": 3.0, "flux_ratio": 0.9, "gain_new": 2.0, "gain_ref": 5.0}
    out = {
        dtype: zogy_products(Spectra.compute(new, ref, pn, pr, dtype=dtype), **kw)
        for dtype in (np.float32, np.float64)
    }
    assert out[np.float32].score_corr.dtype == np.float32
    assert np.abs(out[np.float32].score_corr - out[np.float64].score_corr).max() < 2e-3
    assert out[np.float32].flux_normalization == pytest.approx(
        out[np.float64].flux_normalization, rel=1e-6
    )
