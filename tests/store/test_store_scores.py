"""Scores written with a pair (one transaction), and drb of earlier detections (SQLite and
PostgreSQL)."""

from __future__ import annotations

import numpy as np
import pytest

from skyscene.errors import DataError, ParameterError
from skyscene.store import CandidateStore, PairRecord

JD0 = 2461100.5


def _table(n, *, first, jd, ra0=10.0):
    return {
        "candid": np.arange(first, first + n, dtype=np.int64),
        "jd": np.full(n, jd),
        "fid": np.full(n, 2, dtype=np.int32),
        "ra": ra0 + 0.01 * np.arange(n),
        "dec": np.full(n, 5.0),
        "isdiffpos": ["t"] * n,
        "magpsf": np.full(n, 19.0),
        "sigmapsf": np.full(n, 0.1),
    }


def _pair(name, jd=JD0, **meta):
    return PairRecord(
        pair_id=name, science=f"/d/{name}.fits", reference="/d/ref.fits", jd=jd, fid=2, meta=meta
    )


@pytest.fixture
def store(db_url):
    with CandidateStore(db_url) as s:
        yield s


def _scores(store):
    with store.engine.connect() as c:
        return [
            tuple(r)
            for r in c.exec_driver_sql(
                "SELECT candid, model_name, model_version, score, spread FROM scores "
                "ORDER BY candid, model_version"
            )
        ]


def test_scores_go_in_with_the_pair_and_only_with_it(store):
    scores = {"model_name": "skyscene-rb-vgg6", "model_version": "abc", "score": [0.25, 0.75]}
    first = store.ingest_pair(_pair("a"), _table(2, first=1, jd=JD0), scores=scores)
    assert first.inserted
    assert _scores(store) == [
        (1, "skyscene-rb-vgg6", "abc", 0.25, None),
        (2, "skyscene-rb-vgg6", "abc", 0.75, None),
    ]
    # a rerun adds nothing, scores included
    again = store.ingest_pair(_pair("a"), _table(2, first=1, jd=JD0), scores=scores)
    assert not again.inserted and store.counts()["scores"] == 2
    # a bad score refuses the whole pair: no pair, candidate or score row
    before = store.counts()
    bad = {**scores, "score": [0.5, float("nan")]}
    with pytest.raises(DataError, match="score of candid 12 is not finite"):
        store.ingest_pair(_pair("b"), _table(2, first=11, jd=JD0), scores=bad)
    with pytest.raises(DataError, match=r"scores\['score'\] has 1 entries for 2 candidates"):
        store.ingest_pair(_pair("b"), _table(2, first=11, jd=JD0), scores={**scores, "score": [1]})
    with pytest.raises(ParameterError, match="model_name and model_version"):
        store.ingest_pair(
            _pair("b"), _table(2, first=11, jd=JD0), scores={"model_name": "m", "score": [1, 2]}
        )
    assert store.counts() == before


def test_pair_meta_round_trips_as_json(store):
    footprint = [[10.0, 4.9], [10.1, 4.9], [10.1, 5.1], [10.0, 5.1]]
    store.ingest_pair(_pair("m", footprint=footprint, diffmaglim=21.5), _table(1, first=5, jd=JD0))
    with store.engine.connect() as c:
        from sqlalchemy import select

        from skyscene.store import models

        meta = c.scalar(select(models.Pair.__table__.c.meta))
    assert meta == {"footprint": footprint, "diffmaglim": 21.5}


def test_prv_candidates_carry_drb_of_the_asked_version(store):
    v1 = {"model_name": "m", "model_version": "v1", "score": [0.9]}
    store.ingest_pair(_pair("e1", JD0), _table(1, first=1, jd=JD0), scores=v1)
    store.ingest_pair(_pair("e2", JD0 + 1), _table(1, first=2, jd=JD0 + 1))  # not scored
    store.ingest_pair(_pair("e3", JD0 + 2), _table(1, first=3, jd=JD0 + 2))
    oid = store.object_ids([3])[3]
    prv = store.prv_candidates(oid, before_jd=JD0 + 2, model_version="v1")
    assert [(p["candid"], p["drb"], p["drbversion"]) for p in prv] == [
        (1, 0.9, "v1"),
        (2, None, None),
    ]
    assert store.prv_candidates(oid, before_jd=JD0 + 2, model_version="v2")[0]["drb"] is None
    assert "drb" not in store.prv_candidates(oid, before_jd=JD0 + 2)[0]


def test_prv_candidates_many_equals_one_by_one(store):
    """Three epochs of 4 objects (one candidate of them scored): the batched lookup gives
    exactly the per-candidate queries, with and without a model version."""
    for k in range(3):
        scores = {"model_name": "m", "model_version": "v1", "score": [0.1 * (k + 1)] * 4}
        store.ingest_pair(
            _pair(f"e{k}", JD0 + k),
            _table(4, first=10 * k + 1, jd=JD0 + k),
            scores=scores if k != 1 else None,
        )
    candids = [21, 22, 23, 24, 11, 1]
    ids = store.object_ids(candids)
    jds = {c: JD0 + (c // 10) for c in candids}
    wanted = {c: (ids[c], jds[c]) for c in candids}
    for version in (None, "v1"):
        many = store.prv_candidates_many(wanted, model_version=version)
        one = {
            c: store.prv_candidates(
                ids[c], before_jd=jds[c], exclude_candid=c, model_version=version
            )
            for c in candids
        }
        assert many == one
    assert [p["candid"] for p in many[21]] == [1, 11]
    assert [p["drb"] for p in many[21]] == [pytest.approx(0.1), None]
    assert many[1] == [] and store.prv_candidates_many({}) == {}
