"""Specification of forced aperture and optimal photometry (``skyscene.photometry.forced``).

300 seeded realisations of three stars (Gaussian PSF, sky 100 ADU, gain 1.5 e-/ADU,
read noise 4 ADU) with Poisson source and sky noise.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from photutils.aperture import CircularAperture, aperture_photometry

from skyscene.errors import ParameterError
from skyscene.io import Exposure
from skyscene.photometry import FLAGS, AperturePhotometer, OptimalPhotometer
from skyscene.psf import GaussianPSF, PSFShape

SIGMA = 1.5
PSF = GaussianPSF(SIGMA)
SHAPE = PSFShape(sigma_major=SIGMA, sigma_minor=SIGMA, theta=0.0, n_stars=0, scatter=0.0)
POSITIONS = np.array([[16.3, 16.6], [47.8, 15.2], [31.5, 47.9]])
FLUXES = np.array([1e3, 3e3, 1e4])  # faint, middle, bright
SKY, GAIN, READ_NOISE = 100.0, 1.5, 4.0
N_REAL = 300


def model_image(shape=(64, 64)):
    image = np.full(shape, SKY)
    for (x, y), flux in zip(POSITIONS, FLUXES, strict=True):
        image += flux * PSF.render(shape, center=(x, y))
    return image


def realisation(seed, model):
    rng = np.random.default_rng(seed)
    data = rng.poisson(model * GAIN) / GAIN + rng.normal(0.0, READ_NOISE, model.shape)
    return Exposure(
        data=data,
        variance=np.full(model.shape, SKY / GAIN + READ_NOISE**2),
        gain=GAIN,
        read_noise=READ_NOISE,
    )


@pytest.fixture(scope="module")
def measurements():
    model = model_image()
    optimal, aperture = OptimalPhotometer(), AperturePhotometer()
    out = {"optimal": [], "aperture": []}
    for seed in range(N_REAL):
        exposure = realisation(1000 + seed, model)
        for name, photometer in (("optimal", optimal), ("aperture", aperture)):
            table = photometer(exposure, POSITIONS, SHAPE)
            out[name].append(np.array([table["flux"], table["flux_err"], table["flags"]]))
    return {k: np.array(v) for k, v in out.items()}  # (N_REAL, 3 columns, 3 stars)


def test_optimal_flux_is_unbiased_total_flux(measurements):
    flux, _, flags = measurements["optimal"].transpose(1, 0, 2)
    assert np.all(flags == 0) and np.all(np.isfinite(flux))
    ratio = flux.mean(axis=0) / FLUXES
    # bright star: S/N ~ 90, mean of 300 known to 0.07 %; tolerance 1 %
    assert abs(ratio[2] - 1) < 0.01, ratio
    # fainter stars: within 3 standard errors of the mean
    sem = flux.std(axis=0) / math.sqrt(N_REAL)
    assert np.all(np.abs(flux.mean(axis=0) - FLUXES) < 3 * sem), (ratio, sem / FLUXES)


def test_optimal_errors_are_honest(measurements):
    flux, err, _ = measurements["optimal"].transpose(1, 0, 2)
    pulls = (flux - FLUXES) / err
    # std of 300 unit-normal pulls is known to ~4 %: window [0.9, 1.15]
    assert np.all((pulls.std(axis=0) > 0.9) & (pulls.std(axis=0) < 1.15)), pulls.std(axis=0)
    assert np.all(np.abs(pulls.mean(axis=0)) < 0.25), pulls.mean(
        axis=0
    )  # no bias beyond 0.25 sigma


def test_aperture_flux_is_the_enclosed_flux(measurements):
    flux, _, flags = measurements["aperture"].transpose(1, 0, 2)
    assert np.all(flags == 0)
    # expected: photutils' exact circular-aperture sum (r = 3 sigma) of the noiseless stars
    expected = np.array(
        aperture_photometry(
            model_image() - SKY, CircularAperture(POSITIONS, r=3 * SIGMA), method="exact"
        )["aperture_sum"]
    )
    assert np.all(np.abs(expected / FLUXES - (1 - math.exp(-4.5))) < 6e-3), (
        "pixelised ~ continuous 98.9 %"
    )
    assert abs(flux[:, 2].mean() / expected[2] - 1) < 5e-3, (
        "bright star: 0.5 % (mean known to 0.1 %)"
    )
    sem = flux.std(axis=0) / math.sqrt(N_REAL)
    assert np.all(np.abs(flux.mean(axis=0) - expected) < 3 * sem)


def test_aperture_errors_are_honest(measurements):
    flux, err, _ = measurements["aperture"].transpose(1, 0, 2)
    pulls = (flux - flux.mean(axis=0)) / err  # aperture flux is not total flux: compare to its mean
    assert np.all((pulls.std(axis=0) > 0.9) & (pulls.std(axis=0) < 1.15)), pulls.std(axis=0)


def test_optimal_beats_aperture_for_the_faint_star(measurements):
    opt_flux, opt_err, _ = measurements["optimal"].transpose(1, 0, 2)
    ap_flux, ap_err, _ = measurements["aperture"].transpose(1, 0, 2)
    snr_optimal = opt_flux[:, 0].mean() / opt_flux[:, 0].std()
    snr_aperture = ap_flux[:, 0].mean() / ap_flux[:, 0].std()
    # background-limited faint star: PSF weighting gains ~35 % in S/N (measured 16 vs 12)
    assert snr_optimal > 1.15 * snr_aperture, (snr_optimal, snr_aperture)
    assert np.median(opt_flux[:, 0] / opt_err[:, 0]) > np.median(ap_flux[:, 0] / ap_err[:, 0])


def test_no_gain_means_no_source_poisson_term():
    exposure = realisation(5, model_image())
    with_gain = OptimalPhotometer()(exposure, POSITIONS, SHAPE)
    without = OptimalPhotometer()(exposure.replace(gain=None), POSITIONS, SHAPE)
    assert np.all(without["flux_err"] < with_gain["flux_err"]), "source noise adds variance"
    # the bright star is source-noise dominated: error grows by > 20 %
    assert with_gain["flux_err"][2] > 1.2 * without["flux_err"][2]


@pytest.mark.parametrize(
    "photometer", [OptimalPhotometer(), AperturePhotometer()], ids=["optimal", "aperture"]
)
def test_masked_pixels_set_flag_without_nan(photometer):
    model = model_image()
    mask = np.zeros(model.shape, bool)
    x, y = np.round(POSITIONS[2]).astype(int)
    mask[y, x + 1] = True  # one pixel next to the bright star's centre
    exposure = realisation(3, model).replace(mask=mask)
    table = photometer(exposure, POSITIONS, SHAPE)  # RuntimeWarnings are errors in this suite
    assert table["flags"][2] & FLAGS["masked"]
    assert not table["flags"][2] & FLAGS["edge"]
    assert np.all(table["flags"][:2] == 0)
    assert np.all(np.isfinite(table["flux"])) and np.all(np.isfinite(table["flux_err"]))
    if isinstance(photometer, OptimalPhotometer):
        # one missing pixel barely changes an optimal total-flux estimate (S/N ~ 90: 3 %)
        assert abs(table["flux"][2] / FLUXES[2] - 1) < 0.03


@pytest.mark.parametrize(
    "photometer", [OptimalPhotometer(), AperturePhotometer()], ids=["optimal", "aperture"]
)
def test_fully_masked_region_gives_nan_and_flags(photometer):
    model = model_image()
    mask = np.zeros(model.shape, bool)
    x, y = np.round(POSITIONS[1]).astype(int)
    mask[y - 7 : y + 8, x - 7 : x + 8] = True
    table = photometer(realisation(4, model).replace(mask=mask), POSITIONS, SHAPE)
    assert table["flags"][1] & FLAGS["masked"] and table["flags"][1] & FLAGS["no_flux"]
    assert np.isnan(table["flux"][1]) and np.isnan(table["flux_err"][1])
    assert np.all(np.isfinite(table["flux"][[0, 2]]))


@pytest.mark.parametrize(
    "photometer", [OptimalPhotometer(), AperturePhotometer()], ids=["optimal", "aperture"]
)
def test_off_image_positions_flagged_edge(photometer):
    exposure = realisation(6, model_image())
    positions = np.array([[1.0, 30.0], [62.5, 40.0], [-40.0, -40.0], [31.5, 47.9]])
    table = photometer(exposure, positions, SHAPE)
    flags = np.asarray(table["flags"])
    assert np.all(flags[:3] & FLAGS["edge"]), flags
    assert flags[3] == 0
    assert flags[2] & FLAGS["no_flux"] and flags[2] & FLAGS["background"], (
        "nothing measurable off the image"
    )
    assert np.isnan(table["flux"][2])
    assert not np.any(flags[:3] & FLAGS["masked"]), "edge is not reported as masked"


def test_result_table_columns():
    table = AperturePhotometer(radius=2.0)(realisation(7, model_image()), POSITIONS[:1], SHAPE)
    assert table.to_table().colnames == ["x", "y", "flux", "flux_err", "bkg", "bkg_err", "flags"]
    assert table["x"][0] == POSITIONS[0, 0] and table["y"][0] == POSITIONS[0, 1]
    # local background: 100 ADU with per-pixel scatter sqrt(100/1.5 + 16) = 9.1 ADU (3 %, 10 %)
    assert abs(table["bkg"][0] / SKY - 1) < 0.03
    assert abs(table["bkg_err"][0] / math.sqrt(SKY / GAIN + READ_NOISE**2) - 1) < 0.1


def test_aperture_weights_area():
    area = math.pi * (3 * SIGMA) ** 2
    # exact overlap (default): the fractions sum to the ellipse area pi (3 sigma)^2 to 1e-10
    exact = AperturePhotometer(radius=3.0).weights(np.array([[10.3, 10.7]]), SHAPE, 6)
    assert abs(exact.sum() / area - 1) < 1e-10
    assert exact.min() >= 0 and exact.max() <= 1
    # sub-pixel sampling: within 0.5 % of the area and of the exact fractions
    sub = AperturePhotometer(radius=3.0, subpixels=16).weights(np.array([[10.3, 10.7]]), SHAPE, 6)
    assert abs(sub.sum() / area - 1) < 5e-3
    assert np.max(np.abs(sub - exact)) < 0.05


@pytest.mark.parametrize(
    ("factory", "match"),
    [
        (lambda: AperturePhotometer(radius=0.0), r"radius must be positive, got 0\.0"),
        (
            lambda: AperturePhotometer(subpixels=-1),
            r"subpixels must be >= 0 \(0: exact overlap\), got -1",
        ),
        (lambda: OptimalPhotometer(radius=-1.0), r"radius must be positive, got -1\.0"),
    ],
)
def test_invalid_settings(factory, match):
    with pytest.raises(ParameterError, match=match):
        factory()
