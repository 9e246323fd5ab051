"""Specifications of the linear scene fit (skyscene.scene.model)."""

from __future__ import annotations

import numpy as np
import pytest
from scene_helpers import DEC0, RA0, noiseless_scene

from skyscene.errors import DataError, FlaggedDataWarning, ParameterError
from skyscene.psf import GaussianPSF, MoffatPSF
from skyscene.scene import SceneConfig, SceneModel, Target, fit_scene
from skyscene.scene._render import prepare_psf, render_many

EXACT = SceneConfig(grid_n=8, grid_spacing=0.6)


def test_fast_rendering_equals_psf_protocol():
    psf = MoffatPSF.from_fwhm(4.0, beta=2.5, axis_ratio=0.8, theta=0.4).to_pixelized(
        size=25, oversampling=3
    )
    centers = np.random.default_rng(1).uniform(-10, 40, size=(200, 2))
    ref = psf.render((30, 30), centers)
    fast = render_many(
        prepare_psf(psf, pixelize=True, size=25, oversampling=3, rank_tol=1e-12), (30, 30), centers
    )
    # Separable (SVD) cubic-spline evaluation equals map_coordinates to 1e-11 of the peak.
    assert np.max(np.abs(fast - ref)) < 1e-11 * ref.max()
    # The default tolerance (eigenvectors of CᵀC, rank cut at 1e-7): ~1e-7 of the peak.
    default = prepare_psf(psf, pixelize=True, size=25, oversampling=3)
    assert (
        default.rank < prepare_psf(psf, pixelize=True, size=25, oversampling=3, rank_tol=1e-12).rank
    )
    err = np.max(np.abs(render_many(default, (30, 30), centers) - ref))
    assert 1e-12 * ref.max() < err < 1e-6 * ref.max()


def test_fast_rendering_with_a_non_integer_oversampling():
    # PSFEx models are sampled at PSF_SAMP native pixels (e.g. 0.976: oversampling 1.025).
    image = (
        MoffatPSF.from_fwhm(4.0, beta=3.0, axis_ratio=0.9, theta=0.3)
        .render((25, 25), np.array([12.0, 12.0]))
        .reshape(25, 25)
    )
    from skyscene.psf import PixelizedPSF

    psf = PixelizedPSF(image, oversampling=1.025)
    centers = np.random.default_rng(2).uniform(-5, 35, size=(50, 2))
    prepared = prepare_psf(psf, pixelize=True, size=25, oversampling=3, rank_tol=1e-12)
    assert not isinstance(prepared.step, int)
    ref = psf.render((30, 30), centers)
    fast = render_many(prepared, (30, 30), centers)
    assert np.max(np.abs(fast - ref)) < 1e-11 * ref.max()
    few = render_many(prepared, (30, 30), centers[:3])  # the moving-target path
    np.testing.assert_allclose(few, ref[:3], rtol=0, atol=1e-11 * ref.max())


def test_noiseless_scene_is_recovered_exactly():
    exposures, truth = noiseless_scene(EXACT)
    result = fit_scene(exposures, Target(ra=RA0, dec=DEC0, detections=[0]), config=EXACT)
    # All fluxes to 1e-8 relative (target, every grid point, every sky).
    assert abs(result.flux[0] / truth["flux"] - 1) < 1e-8
    np.testing.assert_allclose(result.grid_flux, truth["grid"], rtol=1e-8)
    np.testing.assert_allclose(result.sky, truth["sky"], rtol=1e-8)
    assert result.chi2 < 1e-10
    assert result.flags == ()
    assert result.dof == 6 * 900 - (64 + 6 + 1)


def test_default_grid_is_exact_with_refinement():
    """The default 20 × 20 grid at 0.35″ is finer than the PSF (κ(DᵀWD) ~ 1e7–1e8): the
    refinement step (default) brings every grid flux to 1e-8 and sparse/dense to 1e-10."""
    config = SceneConfig(shot_noise=False)
    exposures, truth = noiseless_scene(config, n_exp=11, seed=2)
    target = Target(ra=RA0, dec=DEC0, detections=[0])
    dense = fit_scene(exposures, target, config=config)
    sparse = fit_scene(exposures, target, config=config, solver="sparse")
    for r in (dense, sparse):
        assert abs(r.flux[0] / truth["flux"] - 1) < 1e-8
        np.testing.assert_allclose(r.grid_flux, truth["grid"], rtol=1e-8)
        np.testing.assert_allclose(r.sky, truth["sky"], rtol=1e-8)
    np.testing.assert_allclose(sparse.flux, dense.flux, rtol=1e-10)
    np.testing.assert_allclose(sparse.grid_flux, dense.grid_flux, rtol=1e-10)
    # Without it the grid fluxes carry the κ ε rounding (the target does not).
    plain = fit_scene(exposures, target, config=config, refine=False)
    assert abs(plain.flux[0] / truth["flux"] - 1) < 1e-10
    worst = np.max(np.abs(plain.grid_flux / truth["grid"] - 1))
    assert worst > 10 * np.max(np.abs(dense.grid_flux / truth["grid"] - 1))


def test_sparse_and_dense_solvers_agree():
    exposures, _ = noiseless_scene(EXACT, seed=5)
    target = Target(ra=RA0, dec=DEC0, detections=[0])
    dense = fit_scene(exposures, target, config=EXACT)
    sparse = fit_scene(exposures, target, config=EXACT, solver="sparse")
    # Same fluxes and covariance to 1e-10 relative.
    np.testing.assert_allclose(sparse.flux, dense.flux, rtol=1e-10)
    np.testing.assert_allclose(sparse.grid_flux, dense.grid_flux, rtol=1e-10)
    np.testing.assert_allclose(
        sparse.covariance, dense.covariance, rtol=1e-8, atol=1e-12 * np.abs(dense.covariance).max()
    )


def test_exact_rendering_path_for_analytic_psf():
    # A Gaussian PSF rendered exactly (no pixelisation): still exact recovery.
    exposures, truth = noiseless_scene(EXACT, n_exp=4, seed=9)
    exposures = [e.replace(psf=GaussianPSF(1.6)) for e in exposures]

    # Re-render the data with the analytic PSF itself.
    from skyscene.scene import tangent_to_sky
    from skyscene.scene.model import _world_to_pixel

    ticks = (np.arange(8) - 3.5) * 0.6
    xi, eta = np.meshgrid(ticks, ticks)
    gra, gdec = tangent_to_sky(RA0, DEC0, xi.ravel(), eta.ravel())
    new = []
    for e, exp in enumerate(exposures):
        s = 10 ** (0.4 * (30 - exp.zeropoint))
        img = np.tensordot(
            truth["grid"], exp.psf.render((30, 30), _world_to_pixel(exp.wcs, gra, gdec)), axes=1
        )
        img = img + truth["sky"][e]
        if e == 0:
            img = img + truth["flux"] * exp.psf.render(
                (30, 30), _world_to_pixel(exp.wcs, RA0, DEC0)[0]
            )
        new.append(exp.replace(data=img / s))
    result = fit_scene(
        new, Target(ra=RA0, dec=DEC0, detections=[0]), config=EXACT, pixelize_psf=False
    )
    assert abs(result.flux[0] / truth["flux"] - 1) < 1e-8


def test_covariance_is_inverse_normal_matrix_and_pulls(tno_small):
    sim = tno_small
    model = SceneModel(grid_n=12)
    problem = model.prepare(sim.exposures, sim.target)
    result = model.fit_problem(problem)
    # flux_err is the sqrt of the covariance diagonal; the covariance is symmetric.
    i = result.param_names.index("target_0")
    assert result.flux_err[0] == pytest.approx(np.sqrt(result.covariance[i, i]), rel=1e-12)
    np.testing.assert_allclose(
        result.covariance, result.covariance.T, atol=1e-12 * np.abs(result.covariance).max()
    )
    table = result.to_table()
    assert table["flux"][0] == result.flux[0]
    assert set(["flux", "flux_err", "mag", "mag_err", "chi2", "dof", "flags"]) <= set(
        table.colnames
    )
    assert result.mag[0] == pytest.approx(30 - 2.5 * np.log10(result.flux[0]), abs=1e-12)


def test_pulls_isolated_are_unit_normal():
    from skyscene.datasets.tno import simulate_tno_stamps

    pulls = []
    snrs = np.exp(np.random.default_rng(0).uniform(np.log(5), np.log(100), 30))
    for seed, snr in enumerate(snrs):
        sim = simulate_tno_stamps(
            rng=100 + seed, n_exposures=5, blend="isolated", n_stars=0, snr=float(snr)
        )
        r = fit_scene(sim.exposures, sim.target, grid_n=16, grid_spacing=0.4, shot_noise=True)
        pulls.append((r.flux[0] - sim.truth["flux"]) / r.flux_err[0])
    pulls = np.array(pulls)
    # 30 realisations: |mean| < 0.55 (≈ 3/√30) and std in [0.75, 1.3] (loose, fast version
    # of the 1000-detection benchmark).
    assert abs(pulls.mean()) < 0.55
    assert 0.75 < pulls.std() < 1.3


def test_shot_noise_pass_is_default_and_adds_all_sources(tno_small):
    """The WGT maps hold sky + read noise only: the second pass adds the shot noise of the
    whole first-pass source model (target, stars and galaxies), once."""
    assert SceneConfig().shot_noise is True
    sim = tno_small
    model = SceneModel(grid_n=12)
    problem = model.prepare(sim.exposures, sim.target)
    first = model.shot_noise_weights(problem)
    # The first pass ran on a coarser grid over the same area: 6 × 6 of the 12 × 12 nodes.
    assert first.grid_flux.shape == (36,)
    nodes = SceneConfig(grid_n=12).first_pass_nodes()
    np.testing.assert_array_equal(nodes, [0, 2, 4, 7, 9, 11])
    sub = problem.subgrid(nodes)
    keep = (nodes[:, None] * 12 + nodes[None, :]).ravel()
    np.testing.assert_array_equal(sub.fixed_design[:36], problem.fixed_design[keep])
    np.testing.assert_array_equal(sub.fixed_design[36:], problem.fixed_design[144:])
    second = model.fit_problem(problem)
    assert second.grid_flux.shape == (144,)
    source = np.clip(first.model - first.sky[:, None, None], 0.0, None)
    gain = np.array([float(e.gain) for e in sim.exposures])[:, None, None]
    expected = problem.base_variance + source * problem.scale[:, None, None] / gain
    good = ~second.mask
    np.testing.assert_allclose(second.variance[good], expected[good], rtol=1e-12)
    # The moderate-blend galaxy is in the added variance, not only the target.
    added = np.where(good, second.variance - np.where(good, problem.base_variance, 0.0), 0.0)[0]
    target_stamp = second.target_model[0]
    assert np.max(np.where(target_stamp < 1e-3 * target_stamp.max(), added, 0.0)) > 0
    # Same result as the functional default.
    default = fit_scene(sim.exposures, sim.target, grid_n=12)
    assert default.flux[0] == pytest.approx(second.flux[0], rel=1e-12)


def test_coarse_first_pass_changes_weights_not_results(tno_small):
    """The first pass only sets weights: with a full-size first pass (the published
    recipe) the flux moves by a small fraction of its error, and the error by < 2 %."""
    sim = tno_small
    coarse = fit_scene(sim.exposures, sim.target, grid_n=12)
    full = fit_scene(sim.exposures, sim.target, grid_n=12, first_pass_grid_n=12)
    assert abs(coarse.flux[0] - full.flux[0]) < 0.1 * full.flux_err[0]
    assert coarse.flux_err[0] == pytest.approx(full.flux_err[0], rel=0.02)
    assert coarse.flux[0] != full.flux[0]  # really another first pass


def test_normal_equations_are_formed_once_after_reweighing(tno_small, monkeypatch):
    model = SceneModel(grid_n=12)
    problem = model.prepare(tno_small.exposures, tno_small.target)
    calls = []
    original = type(problem)._weigh_fixed

    def counting(self):
        calls.append(self.config.grid_n)
        original(self)

    monkeypatch.setattr(type(problem), "_weigh_fixed", counting)
    model.fit_prepared(problem)
    assert calls == [6, 12]  # coarse first pass, then the re-weighed full grid once


def test_first_pass_of_a_shot_noise_fit_has_no_covariance(tno_small):
    model = SceneModel(grid_n=12)
    problem = model.prepare(tno_small.exposures, tno_small.target)
    first = model.fit_problem(problem, covariance=False)
    full = model.fit_problem(problem)
    assert first.flux[0] == pytest.approx(full.flux[0], rel=1e-12)
    np.testing.assert_array_equal(first.model, full.model)
    assert np.isnan(first.flux_err[0])


def test_profile_chi2_equals_full_solve(tno_small):
    problem = SceneModel(grid_n=12).prepare(tno_small.exposures, tno_small.target)
    for off1, off2 in (((0.1, -0.2), (0.5, 0.3)), ((0.0, 0.0), (-0.4, 0.1))):
        sources = [(0, problem.detection_xy(np.array(off1))[0])]
        sources.append((0, problem.detection_xy(np.array(off2))[0]))
        full = problem.solve(problem.target_columns(sources)).chi2
        # The Schur-complement shortcut equals the full solve to rounding (1e-9 relative).
        assert problem.profile_chi2(sources) == pytest.approx(full, rel=1e-9)
        assert problem.profile_chi2(sources[:1]) == pytest.approx(
            problem.solve(problem.target_columns(sources[:1])).chi2, rel=1e-9
        )


def test_linearised_detection_positions_equal_the_wcs(tno_small):
    problem = SceneModel(grid_n=4).prepare(tno_small.exposures, tno_small.target)
    for offset in ((0.0, 0.0), (1.5, -2.0), (-0.3, 0.7)):
        offset = np.array(offset)
        # TAN without distortion: the affine map equals all_world2pix to 1e-6 px over 2″.
        np.testing.assert_allclose(
            problem.detection_xy(offset)[0], problem._exact_xy(0, offset), atol=1e-6
        )


def test_psf_fwhm_estimate(tno_small):
    problem = SceneModel(grid_n=4).prepare(tno_small.exposures, tno_small.target)
    for e, truth in enumerate(tno_small.truth["exposures"]):
        # Effective (pixel-convolved) PSF: 0–10 % broader than the atmospheric FWHM.
        assert 0.98 < problem.fwhm_arcsec(e) / truth["fwhm"] < 1.12


def test_shot_noise_pass_needs_gain(tno_small):
    exposures = [e.replace(gain=None) for e in tno_small.exposures]
    with pytest.warns(FlaggedDataWarning, match="no GAIN"):
        r = fit_scene(exposures, tno_small.target, grid_n=10, shot_noise=True)
    assert "shot_noise_skipped" in r.flags


def test_fit_offset_recovers_a_shifted_position(tno_small):
    sim = tno_small
    from skyscene.scene import tangent_to_sky

    ra, dec = tangent_to_sky(sim.truth["ra"], sim.truth["dec"], 0.15, -0.1)
    target = Target(ra=float(ra), dec=float(dec), detections=[0])
    r = fit_scene(sim.exposures, target, grid_n=12, fit_offset=True)
    # The fitted offset undoes the 0.15″, −0.1″ error to 0.05″ (S/N 40).
    np.testing.assert_allclose(r.offset, [-0.15, 0.1], atol=0.05)
    assert abs(r.flux[0] - sim.truth["flux"]) < 4 * r.flux_err[0]


def test_mover_mask_and_model():
    from skyscene.datasets.tno import simulate_tno_stamps

    sim = simulate_tno_stamps(
        rng=21, n_exposures=7, snr=60.0, blend="isolated", mover=True, n_stars=0
    )
    assert len(sim.target.ephemeris) == 3
    ignore = fit_scene(sim.exposures, sim.target, grid_n=20, mover="ignore")
    mask = fit_scene(sim.exposures, sim.target, grid_n=20, mover="mask")
    modelled = fit_scene(sim.exposures, sim.target, grid_n=20, mover="model")
    # Ignoring the mover leaves its light in the residuals; masking or modelling removes it.
    assert mask.reduced_chi2 < ignore.reduced_chi2
    assert modelled.reduced_chi2 < ignore.reduced_chi2
    assert sum(n.startswith("mover_") for n in modelled.param_names) == 3
    for r in (mask, modelled):
        assert abs(r.flux[0] - sim.truth["flux"]) < 4 * r.flux_err[0]


def test_sky_subtract_and_ridge(tno_small):
    sim = tno_small
    sub = fit_scene(sim.exposures, sim.target, grid_n=12, sky="subtract")
    assert not any(n.startswith("sky_") for n in sub.param_names)
    ridge = fit_scene(sim.exposures, sim.target, grid_n=12, ridge=1e-6)
    plain = fit_scene(sim.exposures, sim.target, grid_n=12)
    # A ridge prior can only shrink the posterior variance.
    assert ridge.flux_err[0] <= plain.flux_err[0] * (1 + 1e-12)


# --- bad input ----------------------------------------------------------------------------


def test_missing_wcs_or_psf_names_the_file(tno_small):
    exps = list(tno_small.exposures)
    with pytest.raises(DataError, match=r"exp02\.fits: exposure has no WCS"):
        fit_scene([*exps[:2], exps[2].replace(wcs=None), *exps[3:]], tno_small.target, grid_n=4)
    with pytest.raises(DataError, match=r"exp01\.fits: exposure has no PSF"):
        fit_scene([exps[0], exps[1].replace(psf=None), *exps[2:]], tno_small.target, grid_n=4)


def test_mismatched_shapes_name_the_file(tno_small):
    exps = list(tno_small.exposures)
    small = exps[3][0:29, 0:30]
    with pytest.raises(DataError, match=r"exp03\.fits: stamp shape \(29, 30\) differs"):
        fit_scene([*exps[:3], small, *exps[4:]], tno_small.target, grid_n=4)


def test_all_zero_weight_detection_and_dropped_background(tno_small):
    exps = list(tno_small.exposures)
    dead = exps[0].replace(mask=np.ones((30, 30), bool))
    with pytest.raises(
        DataError, match=r"exp00\.fits: detection stamp has no pixel with a positive weight"
    ):
        fit_scene([dead, *exps[1:]], tno_small.target, grid_n=4)
    dead_bg = exps[4].replace(mask=np.ones((30, 30), bool))
    with pytest.warns(FlaggedDataWarning, match=r"exp04\.fits: no pixel with a positive weight"):
        r = fit_scene([*exps[:4], dead_bg, *exps[5:]], tno_small.target, grid_n=10)
    assert "dropped:exp04.fits" in r.flags
    assert r.npix_exposure[4] == 0 and np.isfinite(r.flux[0])


def test_target_outside_stamp_names_the_file(tno_small):
    target = Target(ra=tno_small.truth["ra"] + 0.01, dec=tno_small.truth["dec"], detections=[0])
    with pytest.raises(
        DataError, match=r"exp00\.fits: target at RA, Dec = .* falls outside the stamp"
    ):
        fit_scene(tno_small.exposures, target, grid_n=4)


def test_non_finite_pixels_are_masked_without_warnings(tno_small):
    exps = list(tno_small.exposures)
    data = exps[1].data.copy()
    data[3:6, 3:6] = np.nan
    data[10, 10] = np.inf
    r = fit_scene([exps[0], exps[1].replace(data=data), *exps[2:]], tno_small.target, grid_n=10)
    assert r.npix_exposure[1] <= 900 - 10 and np.isfinite(r.flux[0])


def test_bad_parameters():
    with pytest.raises(ParameterError, match="grid_spacing must be positive"):
        SceneConfig(grid_spacing=0.0)
    with pytest.raises(ParameterError, match="sky must be one of"):
        SceneConfig(sky="median")
    with pytest.raises(ParameterError, match="unknown SceneConfig option"):
        SceneModel(grid=3)
    with pytest.raises(ParameterError, match="detections index 7 is out of range"):
        fit_scene(
            noiseless_scene(EXACT, n_exp=2)[0],
            Target(ra=RA0, dec=DEC0, detections=[7]),
            config=EXACT,
        )
    with pytest.raises(ParameterError, match="one value per detection"):
        Target(ra=[1.0, 2.0, 3.0], dec=[1.0, 2.0, 3.0], detections=[0, 1])


def test_per_detection_offsets_undo_different_position_errors():
    from skyscene.datasets.tno import simulate_tno_stamps
    from skyscene.scene import tangent_to_sky

    sim = simulate_tno_stamps(
        rng=21, n_exposures=7, n_detections=3, snr=60.0, blend="isolated", n_stars=0
    )
    errors = np.array([[0.2, -0.1], [-0.15, 0.12], [0.0, 0.18]])  # arcsec, per detection
    ra, dec = tangent_to_sky(sim.truth["ra"], sim.truth["dec"], errors[:, 0], errors[:, 1])
    target = Target(ra=tuple(ra), dec=tuple(dec), detections=(0, 1, 2))
    per = fit_scene(sim.exposures, target, grid_n=12, fit_offset=True, offset_mode="per_detection")
    assert per.detection_offsets.shape == (3, 2)
    # Each detection's offset undoes its own error (S/N 60: ~0.02″ errors).
    np.testing.assert_allclose(per.detection_offsets, -errors, atol=0.06)
    np.testing.assert_allclose(per.offset, per.detection_offsets.mean(axis=0))
    assert "offset_not_converged" not in per.flags
    common = fit_scene(sim.exposures, target, grid_n=12, fit_offset=True)
    np.testing.assert_allclose(common.detection_offsets, np.tile(common.offset, (3, 1)))
    # One shared offset cannot undo three different errors: a worse χ², biased fluxes.
    assert common.chi2 > per.chi2 + 25
    truth = sim.truth["flux"]
    assert np.all(np.abs(per.flux - truth) < 4 * per.flux_err)
    assert per.dof == common.dof - 4  # two position parameters per detection vs two
    table = per.to_table()
    np.testing.assert_allclose(table["offset_xi"], per.detection_offsets[:, 0])


def test_fit_scene_with_a_piff_model_at_each_cutout_origin(tmp_path):
    """Piff through the PSF protocol: each stamp's PSF is the model at its parent pixels."""
    pytest.importorskip("piff")
    from scene_helpers import DEC0, RA0, make_wcs

    from skyscene.datasets import simulate_piff_model
    from skyscene.io import Exposure, read_exposure, write_exposure
    from skyscene.psf import read_psf_model
    from skyscene.scene.model import _world_to_pixel

    path = simulate_piff_model(tmp_path / "chip.piff", rng=4, fwhm_gradient=0.3)
    model = read_psf_model(path)
    config = SceneConfig(grid_n=6, grid_spacing=0.6, shot_noise=False)
    rng = np.random.default_rng(8)
    exposures, origins = [], []
    for e in range(4):
        wcs = make_wcs(rng.uniform(-0.05, 0.05), rng.uniform(-1, 1, 2))
        origin = (int(rng.integers(100, 1900)), int(rng.integers(100, 1900)))
        origins.append(origin)
        xy = _world_to_pixel(wcs, RA0, DEC0)[0]
        local = model.at(xy[0] + origin[0], xy[1] + origin[1])
        img = 20.0 + (800.0 if e == 0 else 0.0) * local.render((30, 30), xy)
        exp = Exposure(
            data=img,
            variance=np.full((30, 30), 1.0),
            wcs=wcs,
            psf=model,
            origin=origin,
            zeropoint=30.0,
            gain=4.0,
            meta={"filename": f"s{e}.fits"},
        )
        exposures.append(
            read_exposure(write_exposure(tmp_path / f"s{e}.fits", exp), require_time=False)
        )
    # The stamps keep their place in the parent image (LTV1/2) through FITS.
    assert [e.origin for e in exposures] == origins
    stamps = [e.replace(psf=model) for e in exposures]
    target = Target(ra=RA0, dec=DEC0, detections=[0])
    r = fit_scene(stamps, target, config=config)
    assert r.flux[0] == pytest.approx(800.0, rel=1e-5)  # float32 pixels in the files
    assert r.chi2 < 1e-3
    # Without the origins (the model evaluated at the stamp's own pixels) the PSF is
    # wrong (the FWHM varies by 30 % across the chip): a much worse fit.
    wrong = fit_scene([e.replace(origin=(0, 0)) for e in stamps], target, config=config)
    assert wrong.chi2 > 100 * max(r.chi2, 1e-3)
    # The same through the files and run_smp (``skyscene smp ... --psf-model chip.piff``).
    from skyscene.errors import ParameterError
    from skyscene.pipelines.smp import run_smp

    files = [tmp_path / f"s{e}.fits" for e in range(4)]
    record = run_smp(files, ra=RA0, dec=DEC0, detection=files[0], config=config, psf_models=[path])
    assert record["flux"][0] == pytest.approx(r.flux[0], rel=1e-12)
    with pytest.raises(ParameterError, match="one PSF model file for all stamps or one per stamp"):
        run_smp(files, ra=RA0, dec=DEC0, detection=files[0], psf_models=[path, path])
