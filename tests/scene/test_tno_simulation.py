"""Specifications of the TNO stamp simulator (skyscene.datasets.tno)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from skyscene.datasets.tno import simulate_tno_stamps
from skyscene.errors import ParameterError
from skyscene.io import read_exposure


def test_seeded_and_des_like():
    a = simulate_tno_stamps(rng=4, n_exposures=5, snr=20.0)
    b = simulate_tno_stamps(rng=4, n_exposures=5, snr=20.0)
    np.testing.assert_array_equal(a.exposures[2].data, b.exposures[2].data)
    for exp, t in zip(a.exposures, a.truth["exposures"], strict=True):
        assert exp.shape == (30, 30)
        assert 29.5 <= t["zeropoint_total"] <= 30.5
        # MAGZERO calibrates PSF-model fluxes: the PSF HDU (41 px) holds 97–100 % of the light.
        assert 0.97 < t["psf_inside"] <= 1.0 + 1e-12
        assert exp.zeropoint == pytest.approx(
            t["zeropoint_total"] + 2.5 * np.log10(t["psf_inside"]), abs=1e-12
        )
        assert 0.8 <= t["fwhm"] <= 1.5
        assert exp.psf.oversampling == 3
    assert a.truth["blend"] in ("isolated", "moderate", "heavy")


def test_write_read_round_trip(tmp_path):
    sim = simulate_tno_stamps(rng=2, n_exposures=5, snr=30.0, binary=(0.8, 0.5), out_dir=tmp_path)
    truth = json.loads((tmp_path / "truth.json").read_text())
    assert truth["binary"]["flux_ratio"] == 0.5 and len(truth["files"]) == 5
    exp = read_exposure(tmp_path / "exp00.fits", require_time=False)
    assert exp.psf is not None and exp.wcs is not None
    np.testing.assert_allclose(exp.psf.image, sim.exposures[0].psf.image, rtol=1e-12)
    # float32 on disk.
    np.testing.assert_allclose(exp.data, sim.exposures[0].data, rtol=1e-6)


def test_bad_arguments():
    with pytest.raises(ParameterError, match="blend must be one of"):
        simulate_tno_stamps(rng=1, blend="terrible")
    with pytest.raises(ParameterError, match="n_detections must be in"):
        simulate_tno_stamps(rng=1, n_exposures=3, n_detections=3)


def test_one_psf_for_galaxies_and_point_sources():
    """A noiseless heavy blend is measured without bias only if the scene is consistent.

    Galaxies are drawn through the full GalSim PSF, point sources through the same PSF
    (``psf_inside`` × the unit-sum PSF HDU); MAGZERO calibrates PSF-model fluxes (as
    DES zeropoints do). With ``psf_flux_zeropoint=False`` (the former simulator: point
    sources at 100 % of the truncated PSF, galaxies at 99.1–99.95 %) the exposures
    disagree on the galaxy by up to 1 %, which biases this target by ~2σ.
    """
    from skyscene.scene import fit_scene

    pulls = {}
    for consistent in (True, False):
        sim = simulate_tno_stamps(
            rng=10022, n_exposures=11, blend="heavy", noise=False, psf_flux_zeropoint=consistent
        )
        r = fit_scene(sim.exposures, sim.target, shot_noise=False)
        pulls[consistent] = (r.flux[0] - sim.truth["flux"]) / r.flux_err[0]
    assert abs(pulls[True]) < 0.2  # the grid models the galaxy to < 0.2σ at S/N 70
    assert abs(pulls[False]) > 1.0


def test_binary_separation_in_fwhm():
    sim = simulate_tno_stamps(
        rng=6, n_exposures=3, snr=30.0, binary=(1.0, 1.0), separation_unit="fwhm", n_stars=0
    )
    fwhm = sim.truth["exposures"][0]["fwhm"]
    assert sim.truth["binary"]["separation"] == pytest.approx(fwhm, rel=1e-12)
    (xi1, eta1), (xi2, eta2) = sim.truth["binary"]["offsets"]
    assert np.hypot(xi1 - xi2, eta1 - eta2) == pytest.approx(fwhm, rel=1e-12)
    with pytest.raises(ParameterError, match="separation_unit must be"):
        simulate_tno_stamps(rng=1, binary=(1.0, 1.0), separation_unit="px")
