"""PSF star selection on pairs with artefacts (cosmic rays, saturated stars): issue 12."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import cKDTree

from skyscene.background import estimate_background
from skyscene.datasets.pairs import simulate_pair
from skyscene.diffim import Zogy, ZogyConfig, estimate_psf
from skyscene.errors import DataError

ARTEFACTS = {"n_cosmic_rays": 150, "n_saturated_stars": 4}


def _pair(seed, **extra):
    return simulate_pair(
        shape=(512, 512), rng=seed, n_transients=30, transient_snr=(8.0, 30.0), **extra
    )


@pytest.fixture(scope="module")
def artefact_pairs():
    return [_pair(seed, **ARTEFACTS) for seed in (101, 103)]


def _estimate(exposure, *, mask=True, saturation=True):
    data = exposure.data
    if not mask:  # as read from a file without mask: the clipped cores are flat
        data = np.where(exposure.mask, exposure.meta["saturate"], exposure.data)
    bkg = estimate_background(data, mask=exposure.mask if mask else None)
    return estimate_psf(
        data - bkg.background,
        sigma=bkg.rms_level,
        mask=exposure.mask if mask else None,
        size=41,
        saturation=exposure.meta["saturate"] if saturation else None,
    )


def _true_psf(exposure, size=41):
    stamp = exposure.psf.render((size, size))
    return stamp / stamp.sum()


def test_artefacts_are_drawn_last_and_recorded():
    """Artefacts change only their own pixels: the scene, noise and transients of a
    seeded pair stay what they were without them (seeded default output unchanged)."""
    clean = simulate_pair(shape=(256, 256), rng=5, n_transients=4)
    dirty = simulate_pair(shape=(256, 256), rng=5, n_transients=4, n_cosmic_rays=20)
    assert len(clean.artefacts) == 0
    kinds = list(dirty.artefacts["kind"])
    assert kinds == ["cosmic_ray"] * 20 and set(dirty.artefacts["image"]) == {"science"}
    for name in ("x", "y", "flux_ref", "snr"):
        np.testing.assert_array_equal(clean.transients[name], dirty.transients[name])
    np.testing.assert_array_equal(clean.reference.data, dirty.reference.data)
    changed = clean.science.data != dirty.science.data
    # every changed pixel lies on a cosmic-ray track (<= 4.5 px from its centre)
    cy, cx = np.nonzero(changed)
    dist, _ = cKDTree(np.column_stack([dirty.artefacts["x"], dirty.artefacts["y"]])).query(
        np.column_stack([cx, cy])
    )
    assert changed.sum() > 20 and dist.max() <= 4.5
    # the added charge is the cosmic-ray flux (except where a track is clipped)
    added = (dirty.science.data - clean.science.data).sum()
    assert added == pytest.approx(dirty.artefacts["flux"].sum(), rel=0.02)


def test_saturated_stars_have_flat_masked_tops():
    """The saturated cores are clipped (several pixels each) and masked (an Exposure
    stores masked pixels as 0)."""
    pair = simulate_pair(shape=(256, 256), rng=5, n_transients=0, n_saturated_stars=3)
    sat = pair.artefacts[pair.artefacts["kind"] == "saturated_star"]
    assert len(sat) == 3 and set(sat["image"]) == {"both"}
    for x, y in zip(sat["x"], sat["y"], strict=True):
        ix, iy = round(float(x)), round(float(y))
        core = pair.science.mask[iy - 3 : iy + 4, ix - 3 : ix + 4]
        assert core[3, 3] and core.sum() >= 4
        assert pair.science.data[iy, ix] == 0.0


def test_psf_stars_exclude_cosmic_rays_and_saturated_stars(artefact_pairs):
    """The science PSF is stacked from stars only: no star used within 4 px of a cosmic
    ray or a saturated star, and the PSF matches the true one (peak within 5 %, every
    pixel within 12 % of the peak; measured 2.6 and 3.3 %, 2.9 and 9.8 % from 6 and 5
    stars). Before this fix: 5 'stars', mostly cosmic rays."""
    for pair in artefact_pairs:
        est = _estimate(pair.science)
        art = np.column_stack([pair.artefacts["x"], pair.artefacts["y"]])
        dist, _ = cKDTree(art).query(est.positions)
        assert dist.min() > 4.0
        assert est.rejected["cosmic_ray"] >= 5
        true = _true_psf(pair.science)
        psf = est.psf.render((41, 41))
        assert psf.max() / true.max() == pytest.approx(1.0, abs=0.05)
        assert np.abs(psf - true).max() < 0.12 * true.max()


def test_flat_topped_stars_are_rejected_without_a_saturation_level(artefact_pairs):
    """No mask, no SATURATE: the clipped cores are recognised by their flat tops."""
    pair = artefact_pairs[0]
    est = _estimate(pair.science, mask=False, saturation=False)
    sat = pair.artefacts[pair.artefacts["kind"] == "saturated_star"]
    dist, _ = cKDTree(est.positions).query(np.column_stack([sat["x"], sat["y"]]))
    assert dist.min() > 10.0
    assert est.rejected["saturated"] >= 3  # measured 4 (the fourth is off the usable area)
    true = _true_psf(pair.science)
    assert est.psf.render((41, 41)).max() / true.max() == pytest.approx(1.0, abs=0.05)


def test_reference_psf_is_not_broadened():
    """Issue 12: the reference PSF came out too broad (peak 0.87 of the true one): noisy
    wings clipped at zero added flux. Now within 3 % on two seeds."""
    for seed in (101, 103):
        ref = _pair(seed).reference
        est = _estimate(ref)
        true = _true_psf(ref)
        assert est.psf.render((41, 41)).max() / true.max() == pytest.approx(1.0, abs=0.03)


def test_flux_pulls_with_artefacts_and_estimated_psfs(artefact_pairs):
    """PSF fluxes of the injected transients through estimated PSFs on pairs with cosmic
    rays and saturated stars: pulls (measured - true) / error pooled over two seeds
    (~45 transients away from artefacts and masked regions: standard error of the mean
    ~0.15) have |mean| < 0.6 and std in [0.8, 1.3]. Before this fix: +4.4 (fluxes ~24 %
    high). Measured +0.53 (std 1.14, 45 transients; +0.42 of 53 before the hidden-flux
    flag of saturated cores left out 8 near them): each image's PSF comes from 5-6 stars
    (peak within ~3 %), a flux-scale error shared by all transients of the pair."""
    pulls = []
    for pair in artefact_pairs:
        result = Zogy(ZogyConfig(psf="estimate"))(pair.science, pair.reference)
        truth = pair.transients
        xy = np.column_stack([truth["x"], truth["y"]])
        dist, _ = cKDTree(np.column_stack([pair.artefacts["x"], pair.artefacts["y"]])).query(xy)
        m = result.measure(truth["x"], truth["y"])
        ok = (m["mask"] == 0) & (dist > 8)  # a cosmic ray on a transient is real flux
        pulls.append((m["flux"][ok] - truth["flux_ref"][ok]) / m["flux_err"][ok])
        assert result.flux_ratio == pytest.approx(pair.flux_ratio, rel=0.02)
    pull = np.concatenate(pulls)
    assert len(pull) >= 40
    assert abs(pull.mean()) < 0.6
    assert 0.8 <= pull.std() <= 1.3


def test_too_few_stars_is_a_clear_error_counting_the_rejections():
    pair = simulate_pair(shape=(128, 128), rng=2, n_transients=0, n_cosmic_rays=30)
    with pytest.raises(
        DataError, match=r"science: no usable stars for PSF estimation: .*rejected: .*cosmic_ray"
    ):
        bkg = estimate_background(pair.science.data, mask=pair.science.mask)
        estimate_psf(
            pair.science.data - bkg.background,
            sigma=bkg.rms_level,
            mask=pair.science.mask,
            size=41,
            label="science",
        )


def test_zogy_without_mask_or_saturate_finds_the_clipped_level(artefact_pairs):
    """A pair as read from files without MSK and SATURATE: the clipped stars' flat tops
    give the saturation level, so they are flagged SATURATED and kept out of the
    flux-ratio fit and the PSF stacks (before: flux ratio 6.0, pulls -95)."""
    from dataclasses import replace

    from skyscene.diffim import MaskBits

    pair = artefact_pairs[0]
    level = pair.science.meta["saturate"]

    def unmarked(exposure):
        data = np.where(exposure.mask, level, exposure.data)
        return exposure.replace(data=data, mask=None, meta={})

    bare = replace(pair, science=unmarked(pair.science), reference=unmarked(pair.reference))
    result = Zogy(ZogyConfig(psf="estimate"))(bare.science, bare.reference)
    assert result.flux_ratio == pytest.approx(pair.flux_ratio, rel=0.02)
    sat = pair.artefacts[pair.artefacts["kind"] == "saturated_star"]
    for x, y in zip(sat["x"], sat["y"], strict=True):
        assert result.mask[round(float(y)), round(float(x))] & MaskBits.SATURATED
    truth = pair.transients
    xy = np.column_stack([truth["x"], truth["y"]])
    dist, _ = cKDTree(np.column_stack([pair.artefacts["x"], pair.artefacts["y"]])).query(xy)
    m = result.measure(truth["x"], truth["y"])
    ok = (m["mask"] == 0) & (dist > 8)
    pull = (m["flux"][ok] - truth["flux_ref"][ok]) / m["flux_err"][ok]
    assert ok.sum() >= 20 and abs(pull.mean()) < 0.6 and 0.7 <= pull.std() <= 1.4
