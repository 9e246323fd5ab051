"""The transient-search simulator: seeded pairs, truth vocabulary, files, CLI, recovery."""

import json

import numpy as np
import pytest
from astropy.table import Table

from skyscene.datasets import simulate_search
from skyscene.datasets.search import (
    KINDS,
    REAL_KINDS,
    TRUTH_COLUMNS,
    SearchSimConfig,
    match_truth,
    simulate_search_pair,
    write_search,
)
from skyscene.errors import ParameterError


@pytest.fixture(scope="module")
def small():
    """One 256² pair with the default numbers (each kind scaled to at least one)."""
    return simulate_search(1, shape=(256, 256), rng=11)


def test_same_seed_same_pairs_other_seed_other_pairs(small):
    again = simulate_search(1, shape=(256, 256), rng=11)
    a, b = small.pairs[0], again.pairs[0]
    assert np.array_equal(a.science.data, b.science.data)
    assert np.array_equal(a.reference.data, b.reference.data)
    assert np.array_equal(a.science.mask, b.science.mask)
    assert a.conditions == b.conditions
    for name in TRUTH_COLUMNS:
        x, y = np.asarray(a.truth[name]), np.asarray(b.truth[name])
        assert np.array_equal(x, y, equal_nan=x.dtype.kind == "f"), name
    other = simulate_search(1, shape=(256, 256), rng=12).pairs[0]
    assert not np.array_equal(a.science.data, other.science.data)
    assert a.conditions != other.conditions
    # a pair is redrawn from its own seed alone
    alone = simulate_search_pair(SearchSimConfig(shape=(256, 256)), rng=a.seed, pair_id=a.pair_id)
    assert np.array_equal(alone.science.data, a.science.data)


def test_every_kind_in_the_truth_within_the_image(small):
    truth = small.truth
    assert truth.colnames == list(TRUTH_COLUMNS)
    assert set(truth["kind"]) == set(KINDS)
    assert np.array_equal(truth["real"], np.isin(truth["kind"], REAL_KINDS))
    assert np.all((truth["x"] >= 0) & (truth["x"] <= 255) & (truth["y"] >= 0) & (truth["y"] <= 255))
    assert np.all(truth["pair_id"] == "pair0000")
    # S/N defined for every real change, signed: fading negative, variables either way
    real = truth[truth["real"]]
    assert np.all(np.isfinite(real["snr"]))
    fading = truth[truth["kind"] == "fading"]
    assert np.all(fading["snr"] < 0) and np.all(fading["delta_flux"] < 0)
    assert np.all(fading["flux"] == fading["flux_ref"])  # fading: reference counts
    transients = truth[truth["kind"] == "transient"]
    assert np.all((transients["snr"] > 2.99) & (transients["snr"] < 100.01))
    assert np.allclose(transients["flux"], transients["delta_flux"])
    assert np.all(transients["image"] == "science")


def test_fading_sources_are_negative_in_science_minus_reference():
    """Aperture sums of science - flux_ratio * reference, less the same for the null pair
    of the same seed (same sky and static scene, so only the injections remain)."""
    settings = {"shape": (256, 256), "n_fading": 480, "fading_snr": (40.0, 60.0)}
    pair = simulate_search(1, rng=5, **settings).pairs[0]
    null = simulate_search(1, rng=5, null=True, **settings).pairs[0]
    ox, oy = pair.offset
    yy, xx = np.mgrid[0:256, 0:256]
    radius = 2.5 * max(pair.conditions.science_fwhm, pair.conditions.reference_fwhm)

    def difference(p, x, y):
        def aperture(image, cx, cy):
            inside = np.hypot(xx - cx, yy - cy) < radius
            return float(np.sum(image.data[inside]))

        return aperture(p.science, x, y) - p.flux_ratio * aperture(p.reference, x - ox, y - oy)

    checked = 0
    for row in pair.truth[pair.truth["kind"] == "fading"]:
        others = pair.truth[pair.truth["index"] != row["index"]]
        if match_truth(others, [row["x"]], [row["y"]], radius=2 * radius)["kind"][0]:
            continue  # another injection or artefact (a trail, a column) in the aperture
        change = difference(pair, row["x"], row["y"]) - difference(null, row["x"], row["y"])
        # negative, and most of the truth's change inside the aperture (|S/N| >= 40)
        assert change < 0
        assert 0.7 < change / row["delta_flux"] < 1.2, (change, row["delta_flux"])
        checked += 1
    assert checked >= 3


def test_null_pairs_keep_the_conditions_and_drop_every_injection(small):
    null = simulate_search(1, shape=(256, 256), rng=11, null=True).pairs[0]
    pair = small.pairs[0]
    assert len(null.truth) == 0 and null.truth.colnames == list(TRUTH_COLUMNS)
    assert null.conditions == pair.conditions  # same PSF mismatch, sky, depth
    assert null.offset == pair.offset
    assert np.array_equal(null.stars["flux"], pair.stars["flux"])
    assert np.array_equal(null.science.psf.image, pair.science.psf.image)


def test_files_pairs_csv_truth_and_saturation_masked_on_read(tmp_path):
    from skyscene.io import read_exposure

    files = write_search(tmp_path, 2, shape=(192, 192), rng=3)
    listing = Table.read(files.pairs_csv, format="ascii.csv")
    assert listing.colnames == ["pair_id", "science", "reference"]
    assert list(listing["pair_id"]) == ["pair0000", "pair0001"]
    assert all(not str(p).startswith("/") for p in listing["science"])
    sim = simulate_search(2, shape=(192, 192), rng=3)  # the same pairs in memory
    for row, pair in zip(listing, sim.pairs, strict=True):
        science = read_exposure(tmp_path / row["science"])
        reference = read_exposure(tmp_path / row["reference"])
        saturate = science.meta["header"]["SATURATE"]
        assert saturate == pytest.approx(pair.conditions.saturation)
        assert science.meta["n_saturated"] > 0  # the saturated star, masked at SATURATE
        assert np.array_equal(science.mask, pair.science.mask)
        assert np.array_equal(reference.mask, pair.reference.mask)
        good = ~science.mask
        assert np.allclose(science.data[good], pair.science.data[good], rtol=1e-6)
        header = science.meta["header"]
        for key in ("MAGZERO", "EXPTIME", "MJD-OBS", "FILTER", "GAIN", "CTYPE1"):
            assert key in header, key
        assert science.psf is not None and science.psf.image.shape == pair.science.psf.image.shape
        assert science.band == pair.conditions.band
    truth = Table.read(files.truth_csv.with_suffix(".ecsv"))
    assert len(truth) == len(sim.truth) and set(truth["pair_id"]) == {"pair0000", "pair0001"}
    assert np.allclose(truth["x"], sim.truth["x"])
    meta = json.loads(files.truth_json.read_text())
    assert meta["n_pairs"] == 2 and meta["real_kinds"] == list(REAL_KINDS)
    for summary in meta["pairs"]:
        mine = truth[truth["pair_id"] == summary["pair_id"]]
        assert summary["counts"]["cosmic_ray"] == int(np.sum(mine["kind"] == "cosmic_ray"))
        assert (tmp_path / summary["truth"]).exists()


def test_cli_writes_the_set_and_refuses_to_overwrite(tmp_path, caplog):
    from skyscene.cli import main

    out = tmp_path / "search"
    argv = ["-q", "simulate", "search", str(out), "--n-pairs", "2", "--size", "128"]
    assert main([*argv, "--seed", "3"]) == 0
    for name in ("pairs.csv", "truth.csv", "truth.ecsv", "truth.json"):
        assert (out / name).exists(), name
    for pair in ("pair0000", "pair0001"):
        assert (out / pair / "science.fits").exists() and (out / pair / "reference.fits").exists()
    before = (out / "truth.csv").read_bytes()
    assert main([*argv, "--seed", "4"]) == 1
    assert "holds a simulated search already (pairs.csv); give --overwrite" in caplog.text
    assert (out / "truth.csv").read_bytes() == before  # nothing lost
    assert main([*argv, "--seed", "4", "--null", "--overwrite"]) == 0
    assert len(Table.read(out / "truth.ecsv")) == 0


def test_pairs_and_configs_pickle_unchanged(small):
    import pickle

    config = SearchSimConfig(shape=(128, 128), pixel_scale=(0.5, 0.5))
    assert pickle.loads(pickle.dumps(config)) == config
    pair = small.pairs[0]
    back = pickle.loads(pickle.dumps(pair))
    assert back.conditions == pair.conditions
    assert np.array_equal(back.science.data, pair.science.data)
    assert np.array_equal(back.truth["x"], pair.truth["x"])
    # the pixel scale goes into the WCSs only
    sim = simulate_search(1, config=config, rng=2).pairs[0]
    scale = sim.science.wcs.proj_plane_pixel_scales()[0].to_value("arcsec")
    assert scale == pytest.approx(0.5) and sim.conditions.pixel_scale == 0.5


def test_cli_bad_values_are_one_line_errors(tmp_path, caplog):
    from skyscene.cli import main

    out = tmp_path / "bad"
    assert main(["-q", "simulate", "search", str(out), "--size", "32"]) == 1
    assert "SearchSimConfig.shape must be at least 64 x 64, got (32, 32)" in caplog.text
    assert main(["-q", "simulate", "search", str(out), "--n-pairs", "0"]) == 1
    assert "--n-pairs must be >= 1, got 0" in caplog.text
    assert not (out / "pairs.csv").exists()


def test_config_is_validated():
    with pytest.raises(ParameterError, match="science_fwhm must have low <= high"):
        SearchSimConfig(science_fwhm=(4.0, 2.0))
    with pytest.raises(ParameterError, match="shape must be at least 64 x 64"):
        SearchSimConfig(shape=(32, 32))
    with pytest.raises(ParameterError, match="n_transients"):
        SearchSimConfig(n_transients=-1)
    with pytest.raises(ParameterError, match="psf_families must be one of"):
        SearchSimConfig(psf_families=("airy",))
    with pytest.raises(ParameterError, match="host_fraction \\+ core_fraction"):
        SearchSimConfig(host_fraction=0.8, core_fraction=0.5)
    with pytest.raises(ParameterError, match="not both"):
        simulate_search(1, config=SearchSimConfig(), shape=(64, 64))
    config = SearchSimConfig(shape=(1024, 1024), n_transients=60)
    assert config.count("transients") == 15 and config.to_dict()["shape"] == [1024, 1024]
    assert SearchSimConfig(null=True).count("transients") == 0


def test_zogy_finds_the_bright_isolated_transients():
    """Injected transients of S/N >= 10 away from other injections are found by the
    real pipeline pieces (ZOGY + find_candidates) at their position, positive; fading
    ones negative."""
    from skyscene.candidates import find_candidates
    from skyscene.diffim import Zogy

    sim = simulate_search(1, shape=(512, 512), rng=21, n_transients=320, n_fading=80)
    pair = sim.pairs[0]
    result = Zogy()(pair.science, pair.reference)
    table = find_candidates(result, pair.science, pair.reference, pair_id=pair.pair_id)
    cx, cy = np.asarray(table["xpos"]), np.asarray(table["ypos"])
    truth = pair.truth
    tx, ty = np.asarray(truth["x"]), np.asarray(truth["y"])
    checked = 0
    for row in truth[np.isin(truth["kind"], ("transient", "fading"))]:
        others = np.hypot(tx - row["x"], ty - row["y"])
        if abs(row["snr"]) < 10 or np.sum(others < 12) > 1:
            continue
        ix, iy = round(row["x"]), round(row["y"])
        if pair.science.mask[iy - 3 : iy + 4, ix - 3 : ix + 4].any():
            continue
        distance = np.hypot(cx - row["x"], cy - row["y"])
        k = int(np.argmin(distance))
        assert distance[k] < 1.5, (row["kind"], row["snr"], distance[k])
        assert table["isdiffpos"][k] == ("t" if row["kind"] == "transient" else "f")
        checked += 1
    assert checked >= 8
    # every candidate is explained by the truth but a few noise peaks / scene residuals
    matched = match_truth(truth, cx, cy)
    assert np.sum(matched["truth_index"] < 0) <= 3, matched[matched["truth_index"] < 0]
    assert {"transient", "fading", "cosmic_ray", "hot_pixel"} <= set(matched["kind"])


def test_match_truth_follows_the_geometry_of_extended_artefacts(small):
    truth = small.pairs[0].truth
    column = truth[truth["kind"] == "bad_column"][0]
    trail = truth[truth["kind"] == "trail"][0]
    transient = truth[truth["kind"] == "transient"][0]
    along = 0.4 * column["length"]  # on the column, far from its middle
    c, s = np.cos(trail["angle"]), np.sin(trail["angle"])
    xs = [column["x"] + 0.5, trail["x"] + 40 * c - 1.0 * s, transient["x"] + 1.5, -50.0]
    ys = [column["y"] + along, trail["y"] + 40 * s + 1.0 * c, transient["y"], -50.0]
    m = match_truth(truth, xs, ys, radius=2.0)
    assert list(m["kind"]) == ["bad_column", "trail", "transient", ""]
    assert list(m["real"]) == [False, False, True, False]
    assert m["distance"][0] == pytest.approx(0.5) and m["distance"][1] == pytest.approx(1.0)
    assert m["truth_index"][3] == -1 and np.isnan(m["distance"][3])
    # beyond the radius of a point source: nothing
    far = match_truth(
        truth[truth["index"] == transient["index"]], [transient["x"] + 3], [transient["y"]]
    )
    assert far["kind"][0] == ""
