"""The review queries' footprint test (upper limits of a light curve)."""

from __future__ import annotations

import pytest

from skyscene.review.queries import _inside_footprint


def test_corner_footprints_as_the_search_writes_them():
    # a square of 0.2 deg rotated by 45 deg about (150, 2): corners on the axes
    diamond = [[150.1414, 2.0], [150.0, 2.1414], [149.8586, 2.0], [150.0, 1.8586]]
    assert _inside_footprint(diamond, 150.0, 2.0) is True
    assert _inside_footprint(diamond, 150.12, 2.0) is True  # near the east corner
    # inside the corners' bounding box but outside the rotated square
    assert _inside_footprint(diamond, 150.12, 2.12) is False
    assert _inside_footprint(diamond, 151.0, 2.0) is False
    # across RA = 0 (corners at 359.9 and 0.1 deg)
    wrapped = [[359.9, -0.1], [0.1, -0.1], [0.1, 0.1], [359.9, 0.1]]
    assert _inside_footprint(wrapped, 0.0, 0.0) is True
    assert _inside_footprint(wrapped, 359.95, 0.05) is True
    assert _inside_footprint(wrapped, 180.0, 0.0) is False


def test_box_footprints_and_unusable_ones():
    assert _inside_footprint([149.9, 150.2, 1.9, 2.1], 150.0, 2.0) is True
    assert _inside_footprint([149.9, 150.2, 1.9, 2.1], 150.0, 2.2) is False
    assert _inside_footprint([359.9, 0.1, -0.1, 0.1], 0.05, 0.0) is True  # across RA = 0
    for bad in (None, [], [1, 2, 3], [[1, 2], [3, 4]], [[1, 2], [3, "x"], [5, 6]], "box"):
        assert _inside_footprint(bad, 150.0, 2.0) is None, bad
    assert _inside_footprint([149.9, 150.2, float("nan"), 2.1], 150.0, 2.0) is None


@pytest.mark.parametrize("ra", [149.95, 150.15])
def test_corner_footprint_edges_are_not_boxes(ra):
    # a thin sliver from (149.9, 1.9) to (150.2, 2.1): its bounding box holds both
    # positions, the sliver itself holds neither
    sliver = [[149.9, 1.9], [149.91, 1.9], [150.2, 2.1], [150.19, 2.1]]
    assert _inside_footprint(sliver, ra, 1.9 if ra > 150 else 2.1) is False


# ---------------------------------------------------------------------- list order
def _list_store(url):
    """40 candidates over two nights: 24 scored by v1 with priorities (ties of
    priority and of score included), 8 scored without a priority, 8 unscored."""
    import numpy as np

    from skyscene.store import CandidateStore, PairRecord

    rng = np.random.default_rng(5)
    store = CandidateStore(url)
    for k in range(2):
        ids = np.arange(100 + 20 * k, 120 + 20 * k, dtype=np.int64)[::-1].copy()
        table = {
            "candid": ids,
            "ra": 150 + rng.uniform(0, 0.1, 20),
            "dec": 2 + rng.uniform(0, 0.1, 20),
            "isdiffpos": ["t"] * 20,
            "magpsf": rng.uniform(17, 21, 20),
        }
        pair = PairRecord(
            pair_id=f"p{k}", science=f"/s{k}", reference="/r", jd=2461100.5 + k, fid=2
        )
        store.ingest_pair(pair, table)
    ids = np.arange(100, 140)
    order = rng.permutation(ids)
    with_p, without_p = order[:24], order[24:32]
    score = np.round(rng.uniform(0, 1, 24), 1)  # ties of score
    prio = np.round(rng.uniform(0, 1, 24), 1)  # ties of priority
    store.add_scores(with_p, score, model_name="m", model_version="v1", priorities=prio)
    store.add_scores(
        without_p, np.round(rng.uniform(0, 1, 8), 1), model_name="m", model_version="v1"
    )
    return store


def _expected(store, sort):
    from sqlalchemy import select

    from skyscene.store import models as m

    with store.engine.connect() as c:
        scores = {
            r.candid: (r.score, r.priority)
            for r in c.execute(select(m.Score.candid, m.Score.score, m.Score.priority))
        }
        jd = dict(c.execute(select(m.Candidate.candid, m.Candidate.jd)).all())
    big = float("inf")

    def key(candid):
        s, p = scores.get(candid, (None, None))
        if sort == "priority":
            return (p is None, -(p or 0), s is None, -(s or 0), candid)
        if sort in ("rb", "-rb"):
            sign = 1 if sort == "rb" else -1
            return (s is None, sign * s if s is not None else big, candid)
        return ((jd[candid] if sort == "time" else -jd[candid]), candid)

    return sorted(jd, key=key)


@pytest.mark.parametrize("sort", ["priority", "rb", "-rb", "time", "-time"])
def test_list_order_by_offset_and_by_cursor(tmp_path, sort):
    from skyscene.review.queries import CandidateFilter, ReviewQueries

    store = _list_store(f"sqlite:///{tmp_path}/l.db")
    q = ReviewQueries(store.engine)
    expected = _expected(store, sort)
    flt = CandidateFilter()
    by_offset = []
    for offset in range(0, 45, 7):
        page = q.list_candidates(flt, version="v1", user_id=None, sort=sort, limit=7, offset=offset)
        assert page["total"] == 40
        by_offset += [i["candid"] for i in page["items"]]
    assert by_offset == expected
    by_cursor, after = [], None
    while True:
        page = q.list_candidates(flt, version="v1", user_id=None, sort=sort, limit=7, after=after)
        by_cursor += [i["candid"] for i in page["items"]]
        after = page["next"]
        if after is None:
            break
    assert by_cursor == expected
    # a cursor and an offset: rows skipped from the cursor on
    first = q.list_candidates(flt, version="v1", user_id=None, sort=sort, limit=5)
    page = q.list_candidates(
        flt, version="v1", user_id=None, sort=sort, limit=5, after=first["next"], offset=20
    )
    assert [i["candid"] for i in page["items"]] == expected[25:30]
    # with a filter: the scored candidates in [0.2, 0.6] only
    page = q.list_candidates(
        CandidateFilter(rb_min=0.2, rb_max=0.6), version="v1", user_id=None, sort=sort, limit=100
    )
    assert all(0.2 <= i["rb"] <= 0.6 for i in page["items"])
    assert [i["candid"] for i in page["items"]] == [
        c for c in expected if c in {i["candid"] for i in page["items"]}
    ]
    assert len(page["items"]) == page["total"]
    store.close()


def test_list_cursor_errors(tmp_path):
    from skyscene.errors import DataError
    from skyscene.review.queries import CandidateFilter, ReviewQueries, _encode_cursor

    store = _list_store(f"sqlite:///{tmp_path}/l.db")
    q = ReviewQueries(store.engine)
    flt = CandidateFilter()
    cursor = q.list_candidates(flt, version="v1", user_id=None, sort="rb", limit=3)["next"]
    assert cursor
    for bad in (
        "x",  # not base64 JSON
        _encode_cursor("priority", 0, [0.5, 0.5, 101]),  # another sort
        _encode_cursor("rb", 7, [0.5, 101]),  # no such segment
        _encode_cursor("rb", 0, [0.5]),  # too few values
        _encode_cursor("rb", 0, ["a", 101]),
        _encode_cursor("rb", 0, [0.5, -1]),
        cursor[:-2],
    ):
        with pytest.raises(DataError, match="after"):
            q.list_candidates(flt, version="v1", user_id=None, sort="rb", limit=3, after=bad)
    # no version: one segment of unscored candidates by candid
    page = q.list_candidates(flt, version=None, user_id=None, sort="priority", limit=50)
    assert [i["candid"] for i in page["items"]] == list(range(100, 140))
    assert page["next"] is None
    store.close()
