"""The model registry (``models`` table): register, promote, serve, load back."""

import numpy as np
import pytest
from conftest import untrained_model

from skyscene.classify.io import save_model
from skyscene.classify.registry import (
    get_model,
    list_models,
    load_classifier,
    promote_model,
    register_model,
    served_model,
)
from skyscene.errors import DataError
from skyscene.store import CandidateStore


@pytest.fixture
def two_models(tmp_path):
    paths = []
    for seed in (0, 1):
        path = tmp_path / f"m{seed}.pt"
        save_model(path, untrained_model(63, seed=seed))
        paths.append(path)
    return paths


def test_register_promote_load(tmp_path, two_models):
    store = CandidateStore(f"sqlite:///{tmp_path / 'c.db'}")
    try:
        assert served_model(store) is None
        with pytest.raises(DataError, match="no model is served"):
            load_classifier(store)
        first = register_model(
            store, two_models[0], trained_by="alice", reference_scores=[0.1, 0.9]
        )
        second = register_model(
            store, two_models[1], parent_version=first.version, metrics={"note": "ft"}
        )
        assert first.version != second.version
        assert first.reference_scores == (0.1, 0.9) and first.trained_by == "alice"
        assert second.parent_version == first.version and second.metrics["note"] == "ft"
        assert "validation" in second.metrics  # the checkpoint's own figures kept
        assert [r.version for r in list_models(store)] == [first.version, second.version]
        # re-registering changes nothing but the given fields
        again = register_model(store, two_models[0], trained_by="bob")
        assert again.id == first.id and again.trained_by == "bob"
        assert again.reference_scores == (0.1, 0.9)
        assert len(list_models(store)) == 2

        promote_model(store, first.version)
        assert served_model(store).version == first.version
        promote_model(store, second.version)
        served = [r.version for r in list_models(store) if r.served]
        assert served == [second.version]  # one served per name
        assert get_model(store, second.version).promoted_at is not None

        clf = load_classifier(store)
        assert clf.model_version_ == second.version
        x = np.random.default_rng(2).normal(size=(4, 3, 63, 63)).astype(np.float32)
        direct = untrained_model(63, seed=1).score(x).rb
        np.testing.assert_allclose(clf.score(x).rb, direct, atol=1e-6)
        assert load_classifier(store, first.version).model_version_ == first.version
        d = second.to_dict()
        assert d["n_reference_scores"] == 0 and "reference_scores" not in d
        assert isinstance(d["created_at"], str)
    finally:
        store.close()


def test_unknown_version_and_bad_reference(tmp_path, two_models):
    store = CandidateStore(f"sqlite:///{tmp_path / 'c.db'}")
    try:
        with pytest.raises(DataError, match="unknown model version 'nope'"):
            promote_model(store, "nope")
        with pytest.raises(DataError, match="unknown model version"):
            get_model(store, "nope")
        with pytest.raises(DataError, match="NaN or infinity"):
            register_model(store, two_models[0], reference_scores=[0.1, np.nan])
        assert list_models(store) == []
    finally:
        store.close()
