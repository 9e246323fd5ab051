"""Labelling rules (ambiguous rows) and the noise-unit ``snr`` network inputs."""

import numpy as np
import pytest

from skyscene.classify import RealBogusClassifier, TrainingSet, ambiguous_rows, normalise_triplets
from skyscene.classify.training_set import match_details
from skyscene.errors import DataError, ParameterError


def _set(label, kind, features, meta=None):
    n = len(label)
    cut = np.zeros((n, 31, 31), np.float32)
    return TrainingSet(
        science=cut, reference=cut, difference=cut, label=np.asarray(label),
        kind=np.asarray(kind), group=np.array(["g"] * n), candid=np.arange(n),
        features=features, meta=meta or {},
    )  # fmt: skip


def test_match_details_distance_snr_and_nearby_artefact():
    truth = {
        "kind": ["transient", "cosmic_ray", "bad_column"],
        "x": [10.0, 12.0, 80.0], "y": [10.0, 10.0, 50.0],
        "length": [np.nan, np.nan, 100.0], "angle": [0.0, 0.0, np.pi / 2],
        "snr": [4.2, np.nan, np.nan],
    }  # fmt: skip
    out = match_details([10.0, 81.0, 200.0], [10.0, 90.0, 200.0], truth)
    np.testing.assert_allclose(out["truth_dist"][:2], [0.0, np.hypot(71, 80)])
    np.testing.assert_allclose(out["truth_snr"], [4.2, 4.2, 4.2])
    # the column is a segment: the distance is to its nearest point, not its centre
    np.testing.assert_allclose(out["artefact_dist"][:2], [2.0, 1.0])
    empty = match_details([1.0], [1.0], {"kind": [], "x": [], "y": []})
    assert np.isinf(empty["truth_dist"][0]) and np.isnan(empty["truth_snr"][0])


def test_ambiguous_rows_rules():
    data = _set(
        [1, 1, 1, 0, 0, 1],
        ["transient", "transient", "fading", "mover", "cosmic_ray", "variable"],
        {
            "truth_snr": np.array([4.0, 30.0, 30.0, np.nan, np.nan, np.nan]),
            "artefact_dist": np.array([9.0, 9.0, 1.5, 0.0, 0.0, 2.9]),
        },
        meta={"config": {"threshold": 5.0, "match_radius": 3.0}},
    )
    assert ambiguous_rows(data).tolist() == ["faint", "", "blended", "mover", "", "blended"]
    # the rules follow the set's own threshold and radius, or the ones given
    assert ambiguous_rows(data, threshold=3.0, match_radius=1.0).tolist() == [
        "", "", "", "mover", "", ""
    ]  # fmt: skip
    # sets without the truth features (other simulators) are judged by kind only
    bare = _set([1, 0], ["transient", "mover"], {})
    assert ambiguous_rows(bare).tolist() == ["", "mover"]


def _noise_units_numpy(x):
    """The documented formula, written independently in numpy."""
    grid = x[:, :, ::3, ::3].reshape(x.shape[0], x.shape[1], -1)
    k = (grid.shape[-1] - 1) // 2  # 21x21 = 441 pixels: the median is the 221st value
    med = np.sort(grid, axis=-1)[..., k]
    mad = 1.4826 * np.sort(np.abs(grid - med[..., None]), axis=-1)[..., k]
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (x - med[..., None, None]) / (10.0 * mad[..., None, None])
    z = np.where(mad[..., None, None] > 0, z, 0.0)
    return np.concatenate([x, np.clip(z, -10, 10)], axis=1)


def test_snr_inputs_are_scale_free_noise_units():
    import torch

    from skyscene.classify.models import noise_units

    rng = np.random.default_rng(2)
    x = rng.normal(100.0, 5.0, size=(4, 3, 63, 63)).astype(np.float32)
    x[1, 2, :3] = np.nan
    x[2, 0] = 0.0  # a flat cutout: MAD 0, its noise channel stays zero
    x[3, 2, 31, 31] += 5.0 * 30  # a 30-sigma peak in the difference
    braai = normalise_triplets(x).data
    got = noise_units(torch.from_numpy(braai)).numpy()
    assert got.shape == (4, 6, 63, 63)
    np.testing.assert_array_equal(got[:, :3], braai)
    np.testing.assert_allclose(got, _noise_units_numpy(braai), rtol=0, atol=1e-4)
    # scale-free: the raw cutouts (NaN set to 0) give the same noise channels
    raw = noise_units(torch.from_numpy(np.nan_to_num(x))).numpy()
    np.testing.assert_allclose(raw[:, 3:], got[:, 3:], rtol=0, atol=1e-4)
    assert not got[2, 3].any()
    # in noise units the peak is ~30 sigma / 10; the L2-normalised channel hides it
    assert got[3, 5, 31, 31] == pytest.approx(3.0, abs=0.4)
    assert np.abs(got[:, 3:]).max() <= 10.0


def test_snr_model_trains_scores_and_round_trips(tmp_path):
    from skyscene.classify.io import load_model, save_model

    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 3, 63, 63)).astype(np.float32)
    y = (np.arange(64) % 2).astype(np.int64)
    x[y == 1, 2, 29:34, 29:34] += 5
    clf = RealBogusClassifier(arch="compact", inputs="snr", epochs=1, seed=0, n_threads=1)
    clf.fit(x, y, groups=np.arange(64) // 4)
    assert clf.model_.features[0].in_channels == 6
    res = clf.score(x, batch_size=10)
    back = load_model(save_model(tmp_path / "m.pt", clf))
    assert back.inputs == "snr"
    np.testing.assert_allclose(back.score(x).rb, res.rb, rtol=0, atol=1e-6)
    x[5] = np.nan
    with pytest.raises(DataError, match=r"1 triplet\(s\) are NaN in every pixel \(index 5\)"):
        clf.score(x)
    with pytest.raises(ParameterError, match="inputs"):
        _ = RealBogusClassifier(inputs="raw").config
