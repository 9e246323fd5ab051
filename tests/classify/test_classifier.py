"""RealBogusClassifier: learning, determinism, calibration, threshold, checkpoints."""

import numpy as np
import pytest

from skyscene.classify import (
    RealBogusClassifier,
    TrainConfig,
    build_model,
    fit_temperature,
    group_split,
    normalise_triplets,
)
from skyscene.classify.calibration import sigmoid
from skyscene.classify.io import load_model, save_model
from skyscene.classify.metrics import (
    average_precision,
    expected_calibration_error,
    fpr_at_fnr,
    roc_auc,
    threshold_for_fnr,
)
from skyscene.errors import DataError, InputFileError, ParameterError


def test_learns_separable_toy(fitted, make_toy):
    x, y, _ = make_toy(80, rng=7)  # fresh rows, other seed
    rb = fitted.score(x).rb
    assert roc_auc(rb, y) > 0.9
    assert average_precision(rb, y) > 0.9
    assert fitted.predict_proba(x).shape == (80, 2)
    np.testing.assert_allclose(fitted.predict_proba(x).sum(axis=1), 1.0, atol=1e-12)


def test_threshold_gives_fnr_at_most_1pct_on_validation(fitted):
    assert fitted.validation_report_.fnr <= 0.01
    assert fitted.validation_report_.threshold == fitted.threshold_


def test_same_seed_same_weights_and_scores(toy):
    x, y, groups = toy
    kwargs = {"size": 31, "epochs": 1, "batch_size": 32, "seed": 5, "n_threads": 1}
    a = RealBogusClassifier(**kwargs).fit(x[:80], y[:80], groups=groups[:80])
    b = RealBogusClassifier(**kwargs).fit(x[:80], y[:80], groups=groups[:80])
    for (ka, va), (kb, vb) in zip(
        a.model_.state_dict().items(), b.model_.state_dict().items(), strict=True
    ):
        assert ka == kb
        assert np.array_equal(va.numpy(), vb.numpy()), ka
    assert a.model_version_ == b.model_version_
    np.testing.assert_array_equal(a.score(x).rb, b.score(x).rb)
    c = RealBogusClassifier(**{**kwargs, "seed": 6}).fit(x[:80], y[:80], groups=groups[:80])
    assert c.model_version_ != a.model_version_


def test_sklearn_contract():
    clf = RealBogusClassifier(arch="resnet", epochs=2)
    params = clf.get_params()
    assert params["arch"] == "resnet" and params["epochs"] == 2
    assert RealBogusClassifier(**params).get_params() == params
    assert clf.set_params(epochs=4) is clf and clf.epochs == 4
    with pytest.raises(ParameterError, match="no parameter 'epoch'"):
        clf.set_params(epoch=3)
    with pytest.raises(ParameterError, match=r"TrainConfig\.arch must be one of"):
        _ = RealBogusClassifier(arch="vgg16").config
    with pytest.raises(ParameterError, match="not fitted yet"):
        clf.score(np.zeros((1, 3, 63, 63)))
    assert not hasattr(clf, "model_")
    assert TrainConfig().to_dict()["arch"] == "vgg6"


def test_resnet_tta_is_flip_invariant():
    import torch

    torch.manual_seed(0)
    model = build_model("resnet", size=31).eval()
    x = torch.randn(4, 3, 31, 31)
    with torch.no_grad():
        a = model(x)
        b = model(torch.flip(torch.rot90(x, 1, dims=(-2, -1)), dims=(-1,)))
    np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5)


def test_vgg6_shape_is_braai():
    model = build_model("vgg6", size=63)
    convs = [m for m in model.features if m.__class__.__name__ == "Conv2d"]
    assert [c.out_channels for c in convs] == [16, 16, 32, 32]
    assert all(c.kernel_size == (3, 3) for c in convs)
    dense = [m for m in model.classifier if m.__class__.__name__ == "Linear"]
    assert [d.out_features for d in dense] == [256, 1]


def test_normalisation_nan_to_zero_and_l2():
    x = np.random.default_rng(0).normal(size=(2, 3, 9, 9))
    x[0, 1, 2:4, 2:4] = np.nan
    out = normalise_triplets(x)
    assert out.n_nan.tolist() == [4, 0]
    assert not np.isnan(out.data).any()
    np.testing.assert_allclose(np.linalg.norm(out.data.reshape(2, 3, -1), axis=2), 1.0, atol=1e-6)
    assert np.all(out.data[0, 1, 2:4, 2:4] == 0)
    x[1] = np.nan
    with pytest.raises(DataError, match=r"NaN in every pixel \(index 1\)"):
        normalise_triplets(x, source="f.npz")
    with pytest.raises(DataError, match=r"f\.npz: triplets have shape"):
        normalise_triplets(np.zeros((2, 2, 9, 9)), source="f.npz")


def test_temperature_scaling_lowers_ece():
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 5000)
    logit = np.where(y == 1, 1.0, -1.0) * 1.5 + rng.normal(0, 1.5, y.size)
    over = 4.0 * logit  # overconfident
    before = expected_calibration_error(sigmoid(over), y)
    t = fit_temperature(over, y)
    after = expected_calibration_error(sigmoid(over / t), y)
    # the Bayes log-odds of this toy are (2 * 1.5 / 1.5**2) * logit = logit * 4/3, so
    # the optimal temperature is 4 / (4/3) = 3
    assert 2.8 < t < 3.2
    assert after < before / 3 and after < 0.03


def test_threshold_for_fnr_counts():
    rng = np.random.default_rng(2)
    s = rng.uniform(size=1000)
    y = (rng.uniform(size=1000) < s).astype(int)
    t = threshold_for_fnr(s, y, 0.01)
    assert np.mean(s[y == 1] < t) <= 0.01
    # one step higher would lose more than 1 %
    higher = np.sort(s[y == 1])[np.searchsorted(np.sort(s[y == 1]), t) + 1]
    assert np.mean(s[y == 1] < higher) > 0.01
    assert 0 < fpr_at_fnr(s, y) < 1


def test_group_split_disjoint():
    groups = np.repeat([f"n{i}" for i in range(12)], np.arange(1, 13))
    split = group_split(groups, validation=0.2, test=0.2, rng=3)
    parts = [set(groups[getattr(split, k)]) for k in ("train", "validation", "test")]
    assert parts[0] & parts[1] == set() and parts[0] & parts[2] == set()
    assert parts[1] & parts[2] == set()
    assert sum(len(getattr(split, k)) for k in ("train", "validation", "test")) == groups.size
    assert all(parts)
    with pytest.raises(DataError, match="at least 3 groups"):
        group_split(["a", "a", "b"], validation=0.3, test=0.3)


def test_fit_validation_rows_are_whole_groups(toy):
    x, y, groups = toy
    split = group_split(groups, validation=0.25, test=0.0, rng=3)
    assert set(groups[split.train]).isdisjoint(groups[split.validation])
    with pytest.raises(DataError, match="3 groups but 160 labels"):
        RealBogusClassifier(size=31, epochs=1).fit(x, y, groups=groups[:3])


def test_checkpoint_round_trip(fitted, toy, tmp_path):
    x, _, _ = toy
    path = save_model(tmp_path / "m.pt", fitted, metrics={"test": {"aucpr": 0.5}})
    loaded = load_model(path)
    assert loaded.model_version_ == fitted.model_version_
    assert loaded.threshold_ == fitted.threshold_ and loaded.temperature_ == fitted.temperature_
    assert loaded.get_params() == fitted.get_params()
    assert loaded.metrics_["test"]["aucpr"] == 0.5
    np.testing.assert_array_equal(loaded.score(x).rb, fitted.score(x).rb)
    assert list(tmp_path.iterdir()) == [path]  # no temporary left


def _rewrite(path, out, **changes):
    import torch

    record = torch.load(path, weights_only=True)
    record.update(changes)
    torch.save(record, out)
    return out


def test_checkpoint_refusals(fitted, tmp_path):
    path = save_model(tmp_path / "m.pt", fitted)
    old = _rewrite(path, tmp_path / "old.pt", format_version=0)
    with pytest.raises(InputFileError, match=r"old\.pt: checkpoint format version 0"):
        load_model(old)
    arch = _rewrite(path, tmp_path / "arch.pt", arch="vgg16")
    with pytest.raises(InputFileError, match=r"arch\.pt: unknown architecture 'vgg16'"):
        load_model(arch)
    altered = _rewrite(path, tmp_path / "alt.pt", model_version="000000000000")
    with pytest.raises(InputFileError, match=r"alt\.pt: weights do not match"):
        load_model(altered)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(InputFileError, match=r"junk\.pt: not a skyscene real/bogus checkpoint"):
        load_model(junk)
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(InputFileError, match=r"empty\.pt: empty file"):
        load_model(tmp_path / "empty.pt")


def test_compact_downsamples_early_and_scores_fast_path_like_numpy():
    import torch

    from skyscene.classify.models import normalise_tensor

    model = build_model("compact", size=63).eval()
    convs = [m for m in model.features if m.__class__.__name__ == "Conv2d"]
    assert [c.stride for c in convs] == [(2, 2), (2, 2), (2, 2), (1, 1)]
    x = np.random.default_rng(3).normal(size=(5, 3, 63, 63)).astype(np.float32) * 50
    x[1, 2, :4] = np.nan
    x[3, 0] = 0.0  # a zero cutout stays zero
    ref = normalise_triplets(x)
    got, n_nan = normalise_tensor(torch.from_numpy(x))
    assert n_nan.tolist() == ref.n_nan.tolist() == [0, 252, 0, 0, 0]
    np.testing.assert_allclose(got.numpy(), ref.data, rtol=0, atol=1e-6)
    with torch.inference_mode():
        assert model(got).shape == (5,)


def test_score_fast_path_errors_and_agrees():
    clf = RealBogusClassifier(arch="compact", epochs=1, seed=0, n_threads=1, calibrate=False)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 3, 63, 63)).astype(np.float32)
    y = (np.arange(64) % 2).astype(np.int64)
    x[y == 1, 2, 29:34, 29:34] += 5
    clf.fit(x, y, groups=np.arange(64) // 4)
    res = clf.score(x, batch_size=10)
    import torch

    with torch.inference_mode():
        ref = clf.model_(torch.from_numpy(normalise_triplets(x).data)).numpy()
    np.testing.assert_allclose(np.log(res.rb / (1 - res.rb)), ref, rtol=0, atol=1e-4)
    np.testing.assert_allclose(clf.decision_function(x), ref, rtol=0, atol=1e-4)
    x[7] = np.nan
    with pytest.raises(
        DataError, match=r"f\.npz: 1 triplet\(s\) are NaN in every pixel \(index 7\)"
    ):
        clf.score(x, source="f.npz")
    with pytest.raises(DataError, match=r"f\.npz: cutouts are 31x31"):
        clf.score(x[:, :, :31, :31], source="f.npz")
