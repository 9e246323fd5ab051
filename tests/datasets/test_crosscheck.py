"""The independent cross-check simulator of real/bogus triplets (issue 13 acceptance)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from skyscene.datasets import CrosscheckConfig, simulate_crosscheck_triplets
from skyscene.datasets import crosscheck as cc
from skyscene.errors import ParameterError

C = 31  # centre pixel of a 63 x 63 stamp


@pytest.fixture(scope="module")
def triplets():
    return simulate_crosscheck_triplets(320, rng=2026)


def _gaussian(fwhm, y, x, size=63):
    s = fwhm / 2.3548
    yy, xx = np.indices((size, size), dtype=float)
    return np.exp(-0.5 * ((yy - y) ** 2 + (xx - x) ** 2) / s**2)


def test_seeded_determinism():
    a = simulate_crosscheck_triplets(30, rng=7)
    b = simulate_crosscheck_triplets(30, rng=np.random.default_rng(7))
    c = simulate_crosscheck_triplets(30, rng=8)
    for name in ("science", "reference", "difference"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    np.testing.assert_array_equal(a.kind, b.kind)
    assert not np.array_equal(np.nan_to_num(a.difference), np.nan_to_num(c.difference))
    assert a.seed == 7 and b.seed is None


def test_shapes_dtypes_labels(triplets):
    n = len(triplets)
    for name in ("science", "reference", "difference"):
        arr = getattr(triplets, name)
        assert arr.shape == (n, 63, 63) and arr.dtype == np.float32
    assert triplets.label.dtype == np.int8
    real = np.isin(triplets.kind, cc.REAL_KINDS)
    np.testing.assert_array_equal(triplets.label, real.astype(np.int8))
    # roughly balanced by default (real_fraction 0.5): binomial 3-sigma band for n = 320
    assert abs(real.mean() - 0.5) < 3 * math.sqrt(0.25 / n)
    # groups of 50 consecutive triplets
    assert triplets.group[0] == 0 and triplets.group[-1] == (n - 1) // 50
    for value in triplets.conditions.values():
        assert len(value) == n
    table = triplets.to_table()
    assert len(table) == n and {"kind", "label", "group", "seeing_science", "depth"} <= set(
        table.colnames
    )
    assert simulate_crosscheck_triplets(5, rng=1, size=31).science.shape == (5, 31, 31)


def test_every_kind_present_and_nan_only_off_image(triplets):
    kinds = set(triplets.kind.tolist())
    assert kinds == set(cc.REAL_KINDS) | set(cc.BOGUS_KINDS)
    nan_any = np.isnan(triplets.difference).any(axis=(1, 2))
    edge = triplets.kind == "edge"
    assert nan_any[edge].all()  # every edge stamp is partly off the image
    assert not nan_any[~edge & (triplets.label == 0)].any()
    # the candidate pixel itself is on the image
    assert np.isfinite(triplets.difference[:, C, C]).all()
    # NaNs are whole rows or columns (the image border), never isolated pixels
    for d in triplets.difference[edge]:
        mask = np.isnan(d)
        assert mask.all(axis=0).any() or mask.all(axis=1).any()


def test_reals_have_the_stated_snr(triplets):
    """Gaussian matched-filter S/N at the true position agrees with ``snr`` (median ratio
    within 25 %; the Gaussian is not the exact PSF, so it loses a little), sign included."""
    cond = triplets.conditions
    ratios, signs = [], []
    for i in np.flatnonzero(np.isin(triplets.kind, ("transient", "fading", "variable_star"))):
        d = triplets.difference[i]
        if np.isnan(d).any():
            continue
        g = _gaussian(cond["fwhm_science"][i], cond["y"][i], cond["x"][i])
        estimate = np.sum(d * g) / (cond["sigma_difference"][i] * math.sqrt(np.sum(g * g)))
        ratios.append(estimate / cond["snr"][i])
        signs.append(np.sign(estimate) == np.sign(cond["flux"][i]))
    ratios = np.asarray(ratios)
    assert len(ratios) > 40
    assert 0.75 < np.median(ratios) < 1.1
    assert np.mean(signs) > 0.97
    snr = np.abs(cond["snr"][triplets.label == 1])
    assert snr.min() >= 5.0 and snr.max() <= 50.0
    fading = triplets.kind == "fading"
    assert (cond["flux"][fading] < 0).all()


def test_bogus_kinds_differ_measurably(triplets):
    d = triplets.difference
    sigma = triplets.conditions["sigma_difference"]

    def sharpness(i):  # brightest pixel of the central 5x5 over its 3x3 neighbourhood mean
        box = d[i, C - 2 : C + 3, C - 2 : C + 3]
        py, px = np.unravel_index(np.argmax(box), box.shape)
        py, px = py + C - 2, px + C - 2
        block = d[i, py - 1 : py + 2, px - 1 : px + 2]
        return (block.max()) / max((block.sum() - block.max()) / 8, 1e-3 * sigma[i])

    cr = [sharpness(i) for i in np.flatnonzero(triplets.kind == "cosmic_ray")]
    bright = np.flatnonzero((triplets.kind == "transient") & (triplets.conditions["snr"] > 15))
    tr = [sharpness(i) for i in bright]
    assert np.median(cr) > 2 * np.median(tr)  # cosmic rays are sharper than the PSF
    # dipoles have a significant negative lobe next to the positive one
    for i in np.flatnonzero(triplets.kind == "dipole"):
        core = d[i, C - 6 : C + 7, C - 6 : C + 7]
        assert core.max() > 3 * sigma[i] and core.min() < -3 * sigma[i]
    # trails are elongated: the second moments of the excess differ strongly
    elongation = []
    for i in np.flatnonzero(triplets.kind == "trail"):
        w = np.clip(d[i, C - 15 : C + 16, C - 15 : C + 16], 0, None)
        yy, xx = np.indices(w.shape)
        m = [np.sum(w * a * b) / w.sum() for a, b in ((xx, xx), (yy, yy), (xx, yy))]
        mx, my = np.sum(w * xx) / w.sum(), np.sum(w * yy) / w.sum()
        cov = np.array([[m[0] - mx * mx, m[2] - mx * my], [m[2] - mx * my, m[1] - my * my]])
        ev = np.linalg.eigvalsh(cov)
        elongation.append(ev[1] / ev[0])
    assert np.median(elongation) > 3
    # noise peaks are >= 5 sigma matched-filter peaks and nothing else is injected
    peaks = triplets.kind == "noise_peak"
    assert (triplets.conditions["snr"][peaks] >= 5).all()
    for i in np.flatnonzero(peaks):  # matched-filter S/N at the centre (Gaussian filter)
        g = _gaussian(triplets.conditions["fwhm_science"][i], C, C)
        estimate = np.sum(d[i] * g) / (sigma[i] * math.sqrt(np.sum(g * g)))
        assert estimate > 4.0 and estimate < 1.3 * triplets.conditions["snr"][i]


def test_kernel_matched_static_field_residual_is_noise():
    """Null test: the fitted kernel subtracts an independent static star field to the
    noise (pixel rms of D / expected sigma < 1.3 for every group; inner region)."""
    cfg = CrosscheckConfig()
    rng = np.random.default_rng(11)
    for index in range(6):
        group = cc._draw_group(rng, cfg, index, 96)
        science, reference, variance = cc._static_field(rng, group, 2)
        difference = cc._subtract(group, science, reference)
        expected = np.sqrt(variance + group.sigma_d**2 - group.sigma_s**2)
        z = (difference / expected)[:, 12:-12, 12:-12]
        assert z.std() < 1.3, (group.family, z.std())
        assert abs(z.mean()) < 0.1


def test_fit_matching_kernel_recovers_a_known_kernel():
    rng = np.random.default_rng(3)
    reference = rng.standard_normal((2, 64, 64))
    yy, xx = np.indices((15, 15)) - 7
    truth = np.exp(-0.5 * ((xx - 0.3) ** 2 + yy**2) / 1.5**2)
    truth *= 2.5 / truth.sum()
    from scipy import fft

    science = fft.irfft2(
        fft.rfft2(reference) * fft.rfft2(cc._embed(truth[None], (64, 64))[0]), s=(64, 64)
    )
    science += 4.0
    fit = cc.fit_matching_kernel(
        reference, science, half_width=7, sigmas=(1.5, 3.0), degrees=(4, 2)
    )
    assert fit.flux_ratio == pytest.approx(2.5, rel=2e-3)
    assert fit.background == pytest.approx(4.0, abs=1e-3)
    assert np.abs(fit.kernel - truth).max() < 0.03 * truth.max()
    assert fit.to_table()["n_basis"][0] == 15 + 6
    with pytest.raises(ParameterError, match="one shape"):
        cc.fit_matching_kernel(reference, science[0])


def test_hdf5_round_trip(tmp_path):
    h5py = pytest.importorskip("h5py")
    t = simulate_crosscheck_triplets(12, rng=4)
    path = t.write_h5(tmp_path / "cross.h5")
    with h5py.File(path, "r") as f:
        for name in ("science", "reference", "difference"):
            assert f[name].dtype == np.float32 and f[name].shape == (12, 63, 63)
            np.testing.assert_array_equal(f[name][...], getattr(t, name))
        assert f["label"].dtype == np.int8
        np.testing.assert_array_equal(f["label"][...], t.label)
        assert [k.decode() for k in f["kind"][...]] == t.kind.tolist()
        np.testing.assert_array_equal(f["group"][...], t.group)
        names = json.loads(f.attrs["conditions"])
        assert "seeing_science" in names and "psf_family" in names
        np.testing.assert_allclose(f["snr"][...], t.conditions["snr"], equal_nan=True)
        assert f.attrs["format"] == cc.FORMAT
        assert json.loads(f.attrs["config"])["group_size"] == 50
        assert f.attrs["seed"] == 4
    assert not list(tmp_path.glob(".*.tmp"))  # atomic: no temporary left


def test_config_validation():
    with pytest.raises(ParameterError, match=r"real_fraction must be in \[0, 1\], got 1.5"):
        CrosscheckConfig(real_fraction=1.5)
    with pytest.raises(ParameterError, match="unknown kind 'mover'"):
        CrosscheckConfig(bogus_weights={"mover": 1.0})
    with pytest.raises(ParameterError, match="positive total weight"):
        CrosscheckConfig(real_weights={"transient": 0.0})
    with pytest.raises(ParameterError, match="reference_seeing_ratio must be <= 1"):
        CrosscheckConfig(reference_seeing_ratio=(0.5, 1.2))
    with pytest.raises(ParameterError, match="kernel_half_width must be <= render_margin"):
        CrosscheckConfig(kernel_half_width=20)
    with pytest.raises(ParameterError, match="size must be odd"):
        simulate_crosscheck_triplets(3, rng=1, size=62)
    only = CrosscheckConfig(real_fraction=0.0, bogus_weights={"cosmic_ray": 1.0})
    t = simulate_crosscheck_triplets(10, rng=1, config=only)
    assert set(t.kind.tolist()) == {"cosmic_ray"} and not t.label.any()
    assert CrosscheckConfig().to_dict()["kernel_degrees"] == (6, 4, 2)
