"""Candidates on S_corr: detection, positions, photometry, features, ids, bad input."""

import pickle
import re
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial import cKDTree

from skyscene.candidates import (
    COLUMNS,
    CandidateConfig,
    CandidateFinder,
    CandidateFlags,
    CandidateTable,
    column_names,
    find_candidates,
)
from skyscene.datasets.pairs import simulate_pair
from skyscene.diffim import Zogy
from skyscene.errors import DataError, ParameterError, ParameterRangeError

DOCS = Path(__file__).resolve().parents[2] / "docs" / "candidates.md"


@pytest.fixture(scope="module")
def found(clean_pair, clean_result):
    return find_candidates(clean_result, clean_pair.science, clean_pair.reference, pair_id="p21")


def _match(table, x, y, radius=1.5):
    """Index of the nearest candidate to each (x, y) and the distance (inf: none)."""
    xy = np.column_stack([table["xpos"], table["ypos"]])
    dist, idx = cKDTree(xy).query(np.column_stack([x, y]), distance_upper_bound=radius)
    return np.where(np.isfinite(dist), idx, -1), dist


def test_injected_transients_are_found_positive_with_subpixel_positions(clean_pair, found):
    """S/N 25: every transient found with isdiffpos 't'; position rms <= 0.3 px (2-D)."""
    truth = clean_pair.transients
    idx, dist = _match(found, truth["x"], truth["y"])
    assert np.all(idx >= 0), f"missed {np.sum(idx < 0)} of {len(truth)}"
    assert set(found["isdiffpos"][idx]) == {"t"}
    rms = np.sqrt(np.mean(dist**2))
    assert rms <= 0.3, rms
    # sub-pixel: better than the 0.41 px rms of the nearest integer pixel
    ipix = np.hypot(truth["x"] - np.round(truth["x"]), truth["y"] - np.round(truth["y"]))
    assert rms < np.sqrt(np.mean(ipix**2))
    # scorr close to the theoretical S/N (median within 15 %)
    assert np.median(found["scorr"][idx] / truth["snr"]) == pytest.approx(1.0, abs=0.15)


def test_faded_source_gives_isdiffpos_f_and_its_magnitude(fading_pair):
    """A source only in the reference: one 'f' candidate there, magpsf of the lost flux
    (science zeropoint) within 3 sigmapsf, and the reference catalog sees it (distnr < 1 px)."""
    science, reference, truth = fading_pair
    result = Zogy()(science, reference)
    table = find_candidates(result, science, reference, pair_id="fade")
    idx, dist = _match(table, [truth["x"]], [truth["y"]])
    assert idx[0] >= 0 and dist[0] < 0.5
    row = table[int(idx[0])]
    assert row["isdiffpos"] == "f"
    assert row["scorr"] < -5
    assert row["psfflux"] < 0
    true_mag = science.zeropoint - 2.5 * np.log10(truth["flux_ref"] * result.flux_ratio)
    assert abs(row["magpsf"] - true_mag) < 3 * row["sigmapsf"]
    assert row["distnr"] < 1.0
    assert row["magnr"] == pytest.approx(
        reference.zeropoint - 2.5 * np.log10(truth["flux_ref"]), abs=0.2
    )
    assert row["flags"] & CandidateFlags.FIT_FAILED == 0


def test_magpsf_pulls_on_many_seeded_injections():
    """~150 isolated transients of S/N 15 on three galaxy-free pairs: magpsf pulls
    |mean| < 0.15, std in [0.85, 1.2] (standard error of the mean ~0.08; measured -0.05, 1.08)."""
    pulls = []
    for seed in (101, 102, 103):
        pair = simulate_pair(
            shape=(512, 512),
            rng=seed,
            n_transients=80,
            transient_snr=15.0,
            galaxy_density=0.0,
            transient_on_galaxy_fraction=0.0,
        )
        result = Zogy()(pair.science, pair.reference)
        table = find_candidates(
            result, pair.science, pair.reference, config=CandidateConfig(cutouts=False)
        )
        truth = pair.transients
        idx, _ = _match(table, truth["x"], truth["y"])
        # isolated: no other transient within 20 px (blends are another problem)
        sep, _ = cKDTree(np.column_stack([truth["x"], truth["y"]])).query(
            np.column_stack([truth["x"], truth["y"]]), k=2
        )
        ok = (idx >= 0) & (sep[:, 1] > 20)
        ok[ok] &= table["flags"][idx[ok]] == 0
        true_mag = pair.science.zeropoint - 2.5 * np.log10(truth["flux"][ok])
        pulls.append((table["magpsf"][idx[ok]] - true_mag) / table["sigmapsf"][idx[ok]])
    pulls = np.concatenate(pulls)
    assert len(pulls) >= 120
    assert abs(pulls.mean()) < 0.15, pulls.mean()
    assert 0.85 <= pulls.std() <= 1.2, pulls.std()


def test_null_pair_gives_few_candidates():
    """No transients (different PSFs, depths, offset): at most 2 candidates at 5 sigma on 384²."""
    pair = simulate_pair(shape=(384, 384), rng=31, n_transients=0)
    result = Zogy()(pair.science, pair.reference)
    table = find_candidates(result, pair.science, pair.reference)
    assert len(table) <= 2
    assert len(table.to_table()) == len(table)


def test_features_of_point_sources_are_sane(clean_pair, found):
    """Transients are point sources: elong >= 1 (< 1.5), fwhm within 10 % of P_D's FWHM,
    sharpness ~1, nneg small, sumrat ~1, dipole small, magdiff ~0, no flags but cutout ones."""
    truth = clean_pair.transients
    idx, _ = _match(found, truth["x"], truth["y"])
    rows = found[idx]
    assert np.all(found["elong"][np.isfinite(found["elong"])] >= 1.0)
    assert np.median(rows["elong"]) < 1.5
    fwhm_d = found.meta["fwhm_difference_psf"]
    assert np.median(rows["fwhm"]) == pytest.approx(fwhm_d, rel=0.10)
    assert np.median(rows["sharpness"]) == pytest.approx(1.0, abs=0.25)
    assert np.median(rows["nneg"]) <= 3
    assert np.median(rows["sumrat"]) > 0.9
    assert np.all(rows["dipole"] < 0.5)
    assert np.median(np.abs(rows["magdiff"])) < 0.1
    assert np.all(rows["aimage"] >= rows["bimage"])
    assert np.allclose(rows["roundness"], 1 - rows["bimage"] / rows["aimage"])
    serious = int(CandidateFlags.FIT_FAILED | CandidateFlags.SHAPE_FAILED | CandidateFlags.DIPOLE)
    assert np.all(rows["flags"] & serious == 0)
    assert np.all(rows["diffmaglim"] > rows["magpsf"])  # S/N 25 > 5
    assert np.all(rows["jd"] == clean_pair.science.time.utc.jd - 45.0 / 86400.0)
    assert set(rows["fid"]) == {2} and set(rows["band"]) == {"r"}


def test_hot_pixel_is_sharper_than_the_psf(clean_pair):
    """A single hot pixel in the science image: found, sharpness > 2, unlike transients."""
    sci = clean_pair.science
    data = sci.data.copy()
    x, y = 100, 300
    data[y, x] += 40 * np.sqrt(sci.variance[y, x])
    science = sci.replace(data=data)
    result = Zogy()(science, clean_pair.reference)
    table = find_candidates(result, science, clean_pair.reference)
    idx, _ = _match(table, [x], [y], radius=2.0)
    assert idx[0] >= 0
    assert table["sharpness"][idx[0]] > 2.0


def test_radec_follow_the_science_wcs(clean_pair, found):
    ra, dec = clean_pair.science.wcs.pixel_to_world_values(found["xpos"], found["ypos"])
    assert np.allclose(found["ra"], ra) and np.allclose(found["dec"], dec)


def test_candid_unique_stable_and_pair_specific(clean_pair, clean_result, found):
    again = find_candidates(clean_result, clean_pair.science, clean_pair.reference, pair_id="p21")
    assert len(np.unique(found["candid"])) == len(found)
    assert np.array_equal(found["candid"], again["candid"])
    assert found["candid"].dtype == np.int64 and np.all(found["candid"] > 0)
    other = find_candidates(clean_result, clean_pair.science, clean_pair.reference, pair_id="q")
    assert not set(other["candid"]) & set(found["candid"])


def test_table_shape_indexing_and_astropy_table(found):
    assert found.names == column_names()
    first = found[0]
    assert isinstance(first, dict) and first["candid"] == found["candid"][0]
    assert [row["candid"] for row in found] == list(found["candid"])
    sub = found[found["scorr"] > 10]
    assert isinstance(sub, CandidateTable) and len(sub) == int(np.sum(found["scorr"] > 10))
    assert len(sub.cutouts) == len(sub)
    assert np.array_equal(sub.cutouts.candid, sub["candid"])
    # sorted strongest first
    assert np.all(np.diff(np.abs(found["scorr"])) <= 0)
    table = found.to_table()
    assert table.colnames == column_names()
    assert str(table["magpsf"].unit) == "mag" and str(table["ra"].unit) == "deg"
    assert str(table["xpos"].unit) == "pix" and str(table["exptime"].unit) == "s"
    assert table.meta["pair_id"] == "p21"
    assert '"threshold": 5.0' in table.meta["config"]
    with pytest.raises(KeyError, match="no candidate column 'nope'"):
        found["nope"]
    with pytest.raises(IndexError, match="out of range"):
        found[len(found)]


def test_config_and_result_pickle_round_trip(found):
    config = CandidateConfig(threshold=6.0, cutout_size=31)
    assert pickle.loads(pickle.dumps(config)) == config
    assert config.to_dict()["cutout_size"] == 31
    back = pickle.loads(pickle.dumps(found))
    assert np.array_equal(back["candid"], found["candid"])
    assert np.array_equal(back.cutouts.science, found.cutouts.science, equal_nan=True)
    finder = pickle.loads(pickle.dumps(CandidateFinder(config)))
    assert finder.config == config


def test_threshold_and_max_candidates_are_honoured(clean_pair, clean_result, found):
    strict = CandidateFinder(CandidateConfig(threshold=20.0, cutouts=False))(
        clean_result, clean_pair.science, clean_pair.reference
    )
    assert np.all(np.abs(strict["scorr"]) >= 20.0)
    assert len(strict) == int(np.sum(np.abs(found["scorr"]) >= 20.0))
    top = find_candidates(
        clean_result,
        clean_pair.science,
        clean_pair.reference,
        config=CandidateConfig(max_candidates=3, cutouts=False),
    )
    assert len(top) == 3 and np.allclose(top["scorr"], found["scorr"][:3])
    assert top.cutouts is None


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"threshold": 0}, r"CandidateConfig.threshold must be > 0, got 0"),
        ({"cutout_size": 62}, r"CandidateConfig.cutout_size must be odd"),
        ({"merge_radius": -1.0}, r"CandidateConfig.merge_radius must be >= 0"),
        ({"fit_size": 4}, r"CandidateConfig.fit_size must be odd"),
        ({"max_candidates": 0}, r"CandidateConfig.max_candidates must be >= 1"),
    ],
)
def test_config_validation(kwargs, match):
    with pytest.raises(ParameterError, match=match):
        CandidateConfig(**kwargs)


def test_range_error_carries_the_value():
    with pytest.raises(ParameterRangeError) as info:
        CandidateConfig(threshold=-2.0)
    assert info.value.value == -2.0 and info.value.name == "CandidateConfig.threshold"


def test_bad_input_raises_clear_errors(clean_pair, clean_result):
    with pytest.raises(ParameterError, match="config must be a CandidateConfig, got dict"):
        CandidateFinder({"threshold": 5})
    small = clean_pair.science[0:100, 0:100]
    with pytest.raises(DataError, match=r"ZOGY result shape \(384, 384\) differs"):
        find_candidates(clean_result, small, clean_pair.reference)
    with pytest.raises(ParameterError, match="science must be an Exposure, got ndarray"):
        find_candidates(clean_result, clean_pair.science.data, clean_pair.reference)


def test_docs_table_lists_every_column_once():
    """docs/candidates.md has one table whose first column is exactly COLUMNS, in order,
    with the same units."""
    text = DOCS.read_text()
    rows = re.findall(r"^\| `([a-z_]+)` \| ([^|]*) \|", text, flags=re.M)
    assert [name for name, _ in rows] == column_names()
    for (name, unit), col in zip(rows, COLUMNS, strict=True):
        assert unit.strip() == (col.unit or "—"), name
