"""The candidate database on SQLite and PostgreSQL: migrations, idempotent ingestion,
association into objects, transactions, concurrency, scores, labels, errors."""

from __future__ import annotations

import re
import threading

import numpy as np
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from skyscene.alerts import decode_stamp, encode_stamp, make_alert
from skyscene.errors import DataError, InputFileError, ParameterError, ParameterRangeError
from skyscene.store import (
    FEATURE_COLUMNS,
    CandidateStore,
    PairRecord,
    StoreConfig,
    current_revision,
    downgrade,
    format_object_id,
    head_revision,
    open_engine,
    upgrade,
)
from skyscene.store.models import Base

JD0 = 2461100.5  # 2026-04-11


def _table(rng, n, *, first_candid, ra, dec, jd):
    """A seeded candidate table with every feature column (ZTF names)."""
    table = {
        "candid": np.arange(first_candid, first_candid + n, dtype=np.int64),
        "jd": np.full(n, jd),
        "fid": np.full(n, 2, dtype=np.int32),
        "ra": np.asarray(ra, dtype=float),
        "dec": np.asarray(dec, dtype=float),
        "isdiffpos": np.where(rng.random(n) < 0.8, "t", "f"),
        "magpsf": rng.uniform(17, 21, n),
        "sigmapsf": rng.uniform(0.01, 0.3, n),
        "nneg": rng.integers(0, 10, n),
        "nbad": rng.integers(0, 3, n),
        "flags": rng.integers(0, 8, n),
    }
    for name in FEATURE_COLUMNS:
        if name not in table:
            table[name] = rng.normal(size=n)
    table["distnr"][0] = np.nan  # no reference source: stored as NULL
    return table


def _pair(name, jd=JD0):
    return PairRecord(
        pair_id=name,
        science=f"/data/{name}_sci.fits",
        reference="/data/ref.fits",
        jd=jd,
        fid=2,
        band="r",
    )


@pytest.fixture
def store(db_url):
    with CandidateStore(db_url) as s:
        yield s


def test_migrations_build_exactly_the_models_and_go_both_ways(db_url):
    engine = open_engine(db_url)
    assert current_revision(engine) is None
    assert upgrade(engine) == head_revision() == "0002"
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == []  # the migrations and the models agree
    assert downgrade(engine, "base") is None
    with engine.connect() as connection:
        assert MigrationContext.configure(connection).get_current_revision() is None
    assert upgrade(engine) == "0002"  # and again: idempotent at head
    assert upgrade(engine) == "0002"
    engine.dispose()


def test_rerun_of_a_pair_adds_no_rows(store):
    rng = np.random.default_rng(1)
    table = _table(
        rng,
        50,
        first_candid=10_000,
        ra=150 + rng.random(50) * 0.1,
        dec=2 + rng.random(50) * 0.1,
        jd=JD0,
    )
    cut = {
        k: [encode_stamp(rng.normal(size=(63, 63))) for _ in range(50)]
        for k in ("science", "difference")
    }
    first = store.ingest_pair(_pair("p1"), table, cut)
    assert first.inserted and first.n_candidates == 50 and first.n_cutouts == 100
    before = store.counts()
    again = store.ingest_pair(_pair("p1"), table, cut)
    assert not again.inserted and again.n_candidates == 0
    assert store.counts() == before
    assert before["candidates"] == 50 and before["pairs"] == 1 and before["cutouts"] == 100
    assert before["images"] == 2 and before["objects"] == 50
    stored = store.candidates(pair_id="p1")
    assert len(stored) == 50 and np.isnan(stored["distnr"][0])
    np.testing.assert_allclose(stored["magpsf"], table["magpsf"], rtol=0, atol=1e-12)
    assert list(stored["isdiffpos"]) == list(table["isdiffpos"])
    stamp = store.cutout(10_003, "difference")
    np.testing.assert_array_equal(decode_stamp(stamp), decode_stamp(cut["difference"][3]))
    assert store.cutout(10_003, "reference") is None


def test_candidates_of_several_epochs_join_objects_by_position(store):
    rng = np.random.default_rng(2)
    ra0, dec0 = np.array([10.0, 10.01, 10.02]), np.array([-30.0, -30.0, -30.0])
    store.ingest_pair(_pair("e1"), _table(rng, 3, first_candid=100, ra=ra0, dec=dec0, jd=JD0))
    # 0.8" and 1.2" away (joins), 2.0" away (new object), at 1.5" radius
    offsets = np.array([0.8, 1.2, 2.0]) / 3600
    ra1 = ra0 + offsets / np.cos(np.radians(dec0))
    result = store.ingest_pair(
        _pair("e2", JD0 + 1), _table(rng, 3, first_candid=200, ra=ra1, dec=dec0, jd=JD0 + 1)
    )
    assert result.n_matched == 2 and result.n_new_objects == 1
    ids = store.object_ids([100, 101, 102, 200, 201, 202])
    assert ids[200] == ids[100] and ids[201] == ids[101]
    assert ids[202] not in {ids[100], ids[101], ids[102]}
    assert len(set(ids.values())) == 4
    assert all(re.fullmatch(r"SKY26[a-z]{7}", oid) for oid in ids.values())
    assert sorted(ids.values())[0] == "SKY26aaaaaaa"
    prv = store.prv_candidates(ids[100], before_jd=JD0 + 1)
    assert [p["candid"] for p in prv] == [100]
    both = store.prv_candidates(ids[100])
    assert [p["candid"] for p in both] == [100, 200] and both[0]["jd"] < both[1]["jd"]
    # the object's position is the mean of its detections (0.4" from the first)
    objects = store.candidates(object_id=ids[100])
    assert len(objects) == 2
    # prv_candidates fill an alert of the second epoch
    row = {
        k: v
        for k, v in zip(
            store.candidates(pair_id="e2").colnames, store.candidates(pair_id="e2")[0], strict=True
        )
    }
    alert = make_alert(
        row, object_id=ids[200], prv_candidates=store.prv_candidates(ids[200], exclude_candid=200)
    )
    assert [p["candid"] for p in alert.prv_candidates] == [100]


def test_a_failed_pair_writes_nothing(store):
    rng = np.random.default_rng(3)
    store.ingest_pair(
        _pair("a"), _table(rng, 5, first_candid=1, ra=np.linspace(1, 2, 5), dec=np.zeros(5), jd=JD0)
    )
    before = store.counts()
    clash = _table(
        rng, 5, first_candid=4, ra=np.linspace(3, 4, 5), dec=np.zeros(5), jd=JD0
    )  # candid 4, 5 taken
    with pytest.raises(
        DataError, match=r"pair 'b': candid already stored for another pair \(\[4, 5\]\)"
    ):
        store.ingest_pair(_pair("b"), clash)
    assert store.counts() == before  # no pair row, no image, no object: one transaction
    assert not store.has_pair("b")


@pytest.mark.parametrize("same_pair", [True, False], ids=["same-pair", "overlapping-pairs"])
def test_concurrent_writers_leave_no_duplicates(db_url, same_pair):
    rng = np.random.default_rng(4)
    grid = np.arange(300)  # 10" apart: 300 distinct objects
    ra, dec = (
        200 + (grid % 20) * 10 / 3600 + rng.normal(0, 0.1 / 3600, 300),
        10 + (grid // 20) * 10 / 3600,
    )
    CandidateStore(db_url).close()  # migrate once before the writers start
    tables = [
        _table(np.random.default_rng(5), 300, first_candid=0, ra=ra, dec=dec, jd=JD0),
        _table(
            np.random.default_rng(5),
            300,
            first_candid=0 if same_pair else 1000,
            ra=ra,
            dec=dec,
            jd=JD0 + 1,
        ),
    ]
    names = ["x", "x"] if same_pair else ["x", "y"]
    barrier = threading.Barrier(2)
    results, errors = [None, None], []

    def work(k):
        try:
            with CandidateStore(db_url) as s:
                barrier.wait()
                results[k] = s.ingest_pair(_pair(names[k], JD0 + k), tables[k])
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    with CandidateStore(db_url) as s:
        counts = s.counts()
    if same_pair:
        assert sorted(r.inserted for r in results) == [False, True]
        assert counts["candidates"] == 300 and counts["pairs"] == 1
    else:
        assert counts["candidates"] == 600 and counts["pairs"] == 2
    assert counts["objects"] == 300  # one object per position, never two


def test_scores_keep_model_versions_and_labels_keep_history(store):
    rng = np.random.default_rng(6)
    store.ingest_pair(
        _pair("s"), _table(rng, 3, first_candid=1, ra=[1.0, 2.0, 3.0], dec=[0.0] * 3, jd=JD0)
    )
    assert store.add_scores([1, 2, 3], [0.1, 0.5, 0.9], model_name="vgg6", model_version="1.0") == 3
    store.add_scores([1], [0.2], model_name="vgg6", model_version="1.0")  # rescore: replaced
    store.add_scores([1], [0.3], model_name="vgg6", model_version="1.1")
    assert store.counts()["scores"] == 4
    with store.engine.connect() as c:
        rows = c.exec_driver_sql(
            "SELECT model_version, score FROM scores WHERE candid = 1 ORDER BY model_version"
        ).all()
    assert [tuple(r) for r in rows] == [("1.0", 0.2), ("1.1", 0.3)]
    store.add_user("ana", role="reviewer", token_hash="sha256:abc")
    store.add_label(1, "ana", "bogus")
    store.add_label(1, "ana", "real", comment="looked again")
    assert store.counts()["labels"] == 2
    with pytest.raises(DataError, match="unknown user 'bob'"):
        store.add_label(1, "bob", "real")
    with pytest.raises(
        ParameterError, match="label value must be one of 'real', 'bogus', 'unsure', got 'maybe'"
    ):
        store.add_label(1, "ana", "maybe")
    with pytest.raises(DataError, match=r"user 'ana' .* already exists"):
        store.add_user("ana")
    with pytest.raises(DataError, match="scores refer to unknown candids"):
        store.add_scores([999], [0.5], model_name="vgg6", model_version="1.0")
    with pytest.raises(DataError, match="score of candid 2 is not finite"):
        store.add_scores([2], [float("nan")], model_name="vgg6", model_version="1.0")
    store.add_scores(
        [2, 3], [0.4, 0.8], model_name="vgg6", model_version="1.0",
        spreads=[0.05, 0.01], priorities=[0.9, 0.2],
    )  # fmt: skip
    with store.engine.connect() as c:
        rows = c.exec_driver_sql(
            "SELECT candid, score, spread, priority FROM scores WHERE model_version = '1.0' "
            "ORDER BY candid"
        ).all()
    assert [tuple(r) for r in rows] == [
        (1, 0.2, None, None),
        (2, 0.4, 0.05, 0.9),
        (3, 0.8, 0.01, 0.2),
    ]
    with pytest.raises(DataError, match="2 scores but 1 priority values"):
        store.add_scores([2, 3], [0.4, 0.8], model_name="m", model_version="1", priorities=[1.0])


def test_bad_input_names_the_pair_column_and_value(store, tmp_path):
    rng = np.random.default_rng(7)
    table = _table(rng, 2, first_candid=1, ra=[1.0, 2.0], dec=[0.0, 0.0], jd=JD0)
    with pytest.raises(DataError, match="pair 'q': candidate table has no 'ra' column"):
        store.ingest_pair(_pair("q"), {k: v for k, v in table.items() if k != "ra"})
    with pytest.raises(
        DataError, match="pair 'q': candid 1: isdiffpos must be 't' or 'f', got 'x'"
    ):
        store.ingest_pair(_pair("q"), {**table, "isdiffpos": ["x", "t"]})
    with pytest.raises(DataError, match=r"pair 'q': row 1: 'dec' is null or not finite"):
        store.ingest_pair(_pair("q"), {**table, "dec": [0.0, np.inf]})
    with pytest.raises(DataError, match="pair 'q': the candidate table repeats a candid"):
        store.ingest_pair(_pair("q"), {**table, "candid": [7, 7]})
    with pytest.raises(DataError, match=r"cutouts\['difference'\] has 1 entries for 2 candidates"):
        store.ingest_pair(_pair("q"), table, {"difference": [b""]})
    assert store.counts()["pairs"] == 0
    with pytest.raises(ParameterError, match=r"PairRecord.pair_id must be a non-empty string"):
        PairRecord(pair_id="", science="a", reference="b")
    with pytest.raises(
        ParameterRangeError, match=r"StoreConfig.match_radius_arcsec must be in \(0, 60\], got 0"
    ):
        StoreConfig(match_radius_arcsec=0)
    with pytest.raises(
        ParameterError, match=r"StoreConfig.object_prefix must be 2-5 capital letters, got 'sky'"
    ):
        StoreConfig(object_prefix="sky")
    with pytest.raises(InputFileError, match=f"database folder {tmp_path / 'nope'} does not exist"):
        CandidateStore(tmp_path / "nope" / "x.db")
    with pytest.raises(ParameterError, match="no database driver for 'notadb'"):
        CandidateStore("notadb://host/x")


def test_a_database_behind_the_code_is_refused_without_auto_upgrade(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    open_engine(url).dispose()
    with pytest.raises(
        DataError,
        match=r"is at schema revision None, this skyscene needs '0002': run 'skyscene db upgrade URL'",
    ):
        CandidateStore(url, config=StoreConfig(auto_upgrade=False))


def test_object_id_format():
    assert format_object_id(1, 2026) == "SKY26aaaaaaa"
    assert format_object_id(26, 2026) == "SKY26aaaaaaz"
    assert format_object_id(27, 2031, "ZTF") == "ZTF31aaaaaba"
    assert format_object_id(26**7, 2026) == "SKY26zzzzzzz"
    with pytest.raises(DataError, match="object number 0 is outside"):
        format_object_id(0, 2026)
