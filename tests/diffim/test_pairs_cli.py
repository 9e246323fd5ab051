"""Simulator, partition, PSF estimation, sub-image mode, pipeline and CLI."""

import numpy as np
import pytest

from skyscene.datasets.pairs import simulate_pair
from skyscene.diffim import Zogy, ZogyConfig, estimate_psf, partition
from skyscene.errors import ParameterError


def test_simulate_pair_is_seeded_and_has_truth():
    a = simulate_pair(shape=(128, 128), rng=7, n_transients=3, transient_snr=(8.0, 12.0))
    b = simulate_pair(shape=(128, 128), rng=7, n_transients=3, transient_snr=(8.0, 12.0))
    assert np.array_equal(a.science.data, b.science.data)
    assert set(a.transients.colnames) >= {"x", "y", "flux", "flux_ref", "snr", "on_galaxy"}
    assert np.all((a.transients["snr"] > 7.99) & (a.transients["snr"] < 12.01))
    assert np.allclose(a.transients["flux"], a.flux_ratio * a.transients["flux_ref"])
    with pytest.raises(ParameterError, match="shape must be at least 32"):
        simulate_pair(shape=(16, 16))


def test_partition_cores_cover_the_image_once():
    tiles = partition((300, 257), 100, 40)
    cover = np.zeros((300, 257), int)
    for t in tiles:
        cover[t.core] += 1
        assert t.outer[0].start <= t.core[0].start and t.outer[1].stop >= t.core[1].stop
    assert np.all(cover == 1)
    with pytest.raises(ParameterError, match="subimage_size must be >= 16"):
        partition((100, 100), 8, 4)


def test_estimated_psf_matches_the_true_psf(null_pair):
    """Stacked stars reproduce the true reference PSF to 5 % of its peak."""
    from skyscene.background import estimate_background

    ref = null_pair.reference
    bkg = estimate_background(ref.data, mask=ref.mask)
    est = estimate_psf(ref.data - bkg.background, sigma=bkg.rms_level, mask=ref.mask, size=21)
    true = ref.psf.render((21, 21))
    true /= true.sum()
    assert est.n_stars >= 5
    assert np.abs(est.psf.render((21, 21)) - true).max() < 0.05 * true.max()


def test_subimage_mode_runs_and_records_tiles():
    pair = simulate_pair(shape=(512, 512), rng=31, n_transients=0, psf_gradient=0.3)
    r = Zogy(ZogyConfig(subimage_size=256, subimage_border=64))(pair.science, pair.reference)
    assert len(r.subimages) == 4 and set(r.subimages["fit"]) <= {"tile", "global"}
    s = r.score_corr[r.good]
    assert s.std() == pytest.approx(1.0, abs=0.08)


def _cli(argv):
    """The real console entry point (``skyscene -q ...``), all commands registered."""
    from skyscene.cli import main

    return main(["-q", *argv])


def test_cli_simulate_and_subtract(tmp_path):
    from astropy.io import fits

    assert _cli(["simulate", "pair", str(tmp_path / "pair"), "--seed", "5", "--size", "256"]) == 0
    out = tmp_path / "diff.fits"
    status = _cli(
        [
            "subtract",
            "--science",
            str(tmp_path / "pair" / "science.fits"),
            "--reference",
            str(tmp_path / "pair" / "reference.fits"),
            "--out",
            str(out),
        ]
    )
    assert status == 0
    with fits.open(out) as hdul:
        names = [h.name for h in hdul]
        assert names[1:] == ["DIFF", "SCORR", "SCORE", "PSF", "FLUX", "FLUXERR", "MASK"]
        for key in ("FD", "FLUXRAT", "DX", "DY", "ZOGYCFG"):
            assert key in hdul[0].header
        assert np.isfinite(hdul["SCORR"].data).all()


def test_demo_stage_writes_product_and_picture(tmp_path):
    import re

    from astropy.io import fits
    from matplotlib.image import imread

    from skyscene.pipelines.diffim import demo_stage

    text = demo_stage(tmp_path, progress=False)
    assert (tmp_path / "diffim" / "difference.fits").exists()
    assert (tmp_path / "diffim" / "subtraction.png").exists()
    assert "median S_corr / expected" in text
    # the reported figures: S/N recovered within 10 %, most transients found, F_n/F_r
    ratio = float(re.search(r"median S_corr / expected = ([0-9.]+)", text).group(1))
    found, good = map(int, re.search(r"(\d+)/(\d+) unflagged above 5 sigma", text).groups())
    flux_ratio = float(re.search(r"flux ratio ([0-9.]+) \(true 0.85\)", text).group(1))
    assert 0.9 <= ratio <= 1.1 and good >= 15 and found >= 0.8 * good
    assert flux_ratio == pytest.approx(0.85, rel=0.01)
    # the product: 1024² HDUs, S_corr ~ N(0, 1) on unflagged pixels, the header's FLUXRAT
    with fits.open(tmp_path / "diffim" / "difference.fits") as hdul:
        assert hdul["SCORR"].data.shape == (1024, 1024)
        assert hdul[0].header["FLUXRAT"] == pytest.approx(flux_ratio, abs=1e-4)
        good_pixels = hdul["MASK"].data == 0
        s = hdul["SCORR"].data[good_pixels]
        assert good_pixels.mean() > 0.8 and s.std() == pytest.approx(1.0, abs=0.1)
        assert np.isinf(hdul["FLUXERR"].data[~good_pixels]).all()
    # the picture: five panels at 80 dpi (17 x 3.8 in), not blank
    image = imread(tmp_path / "diffim" / "subtraction.png")
    assert image.shape[:2] == (304, 1360)
    assert image[..., :3].std() > 0.05


def test_configs_and_results_pickle_and_record_as_json(tmp_path):
    """Invariants for what crosses process boundaries: configs and results pickle and
    round-trip; configs record as JSON (to_dict), never repr()."""
    import json
    import pickle

    from skyscene.datasets.pairs import PairConfig
    from skyscene.psf import PSFImageLimits

    for config in (
        ZogyConfig(psf="estimate", subimage_size=128),
        PairConfig(shape=(64, 64), n_cosmic_rays=3),
        PSFImageLimits(centroid_soft=0.3),
    ):
        clone = pickle.loads(pickle.dumps(config))
        assert clone == config
        assert json.loads(json.dumps(config.to_dict())) == json.loads(json.dumps(clone.to_dict()))
        assert type(config)(**config.to_dict()) == config
    pair = simulate_pair(shape=(96, 96), rng=1, n_transients=1, n_cosmic_rays=2)
    again = pickle.loads(pickle.dumps(pair))
    np.testing.assert_array_equal(again.science.data, pair.science.data)
    assert again.config == pair.config and len(again.artefacts) == 2
