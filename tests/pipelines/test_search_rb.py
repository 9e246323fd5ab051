"""``skyscene search --model``: real/bogus scores (ZTF's drb/drbversion) in the tables,
alerts and database as the pairs are searched; resume keys that name the model; the
pairs' upper-limit metadata (footprint, diffmaglim).

Small seeded 256² pairs; the shipped model and a one-epoch model trained here.
"""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table

pytest.importorskip("torch")

from skyscene.cli import main
from skyscene.pipelines._outdir import ConfigMismatchError
from skyscene.pipelines.diffim import simulate_pair_files
from skyscene.pipelines.search import PairEntry, SearchConfig, run_search

SIZE = 256


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    root = tmp_path_factory.mktemp("rb-search")
    files = [
        simulate_pair_files(
            root / f"p{i}",
            seed=410 + i,
            shape=(SIZE, SIZE),
            n_transients=4,
            transient_snr=25.0,
        )
        for i in range(2)
    ]
    return root, [
        PairEntry.of(f.science, f.reference, pair_id=f"p{i}") for i, f in enumerate(files)
    ]


@pytest.fixture(scope="module")
def other_model(tmp_path_factory):
    """A second checkpoint (another model version): one epoch on seeded noise."""
    from skyscene.classify import RealBogusClassifier
    from skyscene.classify.io import save_model

    rng = np.random.default_rng(3)
    x = rng.normal(size=(64, 3, 63, 63)).astype(np.float32)
    y = np.tile([0, 1], 32)
    clf = RealBogusClassifier(arch="vgg6", epochs=1, seed=0, n_threads=1, calibrate=False)
    clf.fit(x, y, groups=np.repeat(np.arange(8), 8))
    return save_model(tmp_path_factory.mktemp("model") / "other.pt", clf), clf.model_version_


@pytest.fixture(scope="module")
def scored_run(pairs, tmp_path_factory):
    out = tmp_path_factory.mktemp("scored") / "out"
    summary = run_search(
        pairs[1], out, config=SearchConfig(model="default"), scheduler="synchronous"
    )
    return out, summary


def _scores(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as con:
        return con.execute(
            "SELECT candid, model_name, model_version, score FROM scores ORDER BY candid"
        ).fetchall()


def test_drb_in_table_alerts_and_scores_table(scored_run):
    """drb equals the classifier's own score of the alert triplets; drbversion, the
    scores table's model name and version are the checkpoint's."""
    from skyscene.alerts import read_alerts
    from skyscene.classify.io import load_model

    out, summary = scored_run
    assert summary.n_ok == 2 and summary.n_candidates > 0
    clf = load_model()
    table = Table.read(out / "candidates.parquet")
    assert set(table["drbversion"]) == {clf.model_version_}
    drb = np.asarray(table["drb"], float)
    assert ((drb >= 0) & (drb <= 1)).all()
    alerts = {a.candid: a for a in read_alerts(out / "alerts")}
    assert set(alerts) == {int(c) for c in table["candid"]}
    triplets = np.stack(
        [
            np.stack([alerts[int(c)].science, alerts[int(c)].reference, alerts[int(c)].difference])
            for c in table["candid"]
        ]
    )
    np.testing.assert_allclose(clf.score(triplets).rb, drb, atol=1e-5)
    for row in table:
        cand = alerts[int(row["candid"])].candidate
        assert cand["drb"] == pytest.approx(row["drb"], abs=1e-6)  # Avro float32
        assert cand["drbversion"] == clf.model_version_
    stored = _scores(out / "skyscene.db")
    assert [r[0] for r in stored] == sorted(int(c) for c in table["candid"])
    assert {(r[1], r[2]) for r in stored} == {(clf.model_name_, clf.model_version_)}
    by_candid = {r[0]: r[3] for r in stored}
    np.testing.assert_allclose([by_candid[int(c)] for c in table["candid"]], drb, rtol=0, atol=0)
    # the review queue's priority, from the score and the model's threshold
    from skyscene.classify.active import priority

    with sqlite3.connect(out / "skyscene.db") as con:
        stored_priority = dict(con.execute("SELECT candid, priority FROM scores").fetchall())
    np.testing.assert_allclose(
        [stored_priority[int(c)] for c in table["candid"]],
        priority(drb, None, clf.threshold_),
        rtol=0,
        atol=1e-12,
    )
    config = json.loads((out / "config.json").read_text())["search"]
    assert config["model_version"] == clf.model_version_ and config["model"] == "default"
    summary_json = json.loads((out / "summary.json").read_text())
    assert summary_json["timings"]["score"] > 0


def test_no_model_no_scores(pairs, tmp_path):
    out = tmp_path / "plain"
    run_search(pairs[1][:1], out, scheduler="synchronous")
    table = Table.read(out / "candidates.parquet")
    assert "drb" not in table.colnames and _scores(out / "skyscene.db") == []
    assert "model" not in json.loads((out / "config.json").read_text())["search"]


def test_another_model_is_never_a_silent_reuse(pairs, scored_run, other_model, tmp_path):
    """The folder refuses another model (and no model); --overwrite searches again with
    the new version: no part reused, its version everywhere; an external database keeps
    both versions' scores."""
    path, version = other_model
    entries = pairs[1]
    out, db = tmp_path / "out", tmp_path / "shared.db"
    url = f"sqlite:///{db}"
    first = run_search(
        entries, out, config=SearchConfig(model="default"), db=url, scheduler="synchronous"
    )
    with pytest.raises(ConfigMismatchError, match="model"):
        run_search(
            entries, out, config=SearchConfig(model=str(path)), db=url, scheduler="synchronous"
        )
    with pytest.raises(ConfigMismatchError, match="model"):
        run_search(entries, out, db=url, scheduler="synchronous")
    again = run_search(
        entries, out, config=SearchConfig(model=str(path)), db=url, scheduler="synchronous",
        overwrite=True,
    )  # fmt: skip
    assert again.n_reused == 0 and again.n_candidates == first.n_candidates
    table = Table.read(out / "candidates.parquet")
    assert set(table["drbversion"]) == {version}
    from skyscene.alerts import read_alerts

    assert {a.candidate["drbversion"] for a in read_alerts(out / "alerts")} == {version}
    stored = _scores(db)
    versions = {r[2] for r in stored}
    assert len(versions) == 2 and version in versions
    assert len(stored) == 2 * first.n_candidates
    # the same model again: everything reused, nothing added
    counts = len(stored)
    third = run_search(
        entries, out, config=SearchConfig(model=str(path)), db=url, scheduler="synchronous"
    )
    assert third.n_reused == 2 and len(_scores(db)) == counts


def test_processes_scheduler_scores_in_the_workers_as_synchronous(pairs, scored_run, tmp_path):
    out = tmp_path / "procs"
    run_search(
        pairs[1], out, config=SearchConfig(model="default"), scheduler="processes", n_workers=2
    )
    ref = scored_run[0]
    for name in ("candidates.csv", "candidates.ecsv"):
        assert (out / name).read_bytes() == (ref / name).read_bytes(), name
    assert _scores(out / "skyscene.db") == _scores(ref / "skyscene.db")


def test_bad_model_file_stops_before_any_pair(pairs, tmp_path, caplog):
    _, entries = pairs
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    f = entries[0]
    out = tmp_path / "bad"
    status = main(
        ["search", "--science", str(f.science), "--reference", str(f.reference), "--out", str(out),
         "--model", str(empty)]
    )  # fmt: skip
    assert status == 1
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and re.search(r"model file .*empty\.pt: empty file", errors[0])
    assert not (out / "candidates.csv").exists()
    from skyscene.candidates import CandidateConfig
    from skyscene.errors import ParameterError

    with pytest.raises(ParameterError, match=r"scores 63x63 triplets, the cutouts are 31x31"):
        run_search(
            entries[:1], tmp_path / "size",
            config=SearchConfig(model="default", candidates=CandidateConfig(cutout_size=31)),
            scheduler="synchronous",
        )  # fmt: skip
    with pytest.raises(ParameterError, match=r"CandidateConfig\.cutouts must be True"):
        SearchConfig(model="default", candidates=CandidateConfig(cutouts=False))


def test_pairs_meta_has_footprint_and_diffmaglim(scored_run):
    """pairs.meta: the science footprint holds every candidate; diffmaglim, jd and fid
    equal the candidates'."""
    out, _ = scored_run
    table = Table.read(out / "candidates.parquet")
    with sqlite3.connect(out / "skyscene.db") as con:
        rows = con.execute("SELECT pair_id, jd, fid, meta FROM pairs").fetchall()
    assert len(rows) == 2
    for pair_id, jd, fid, meta in rows:
        meta = json.loads(meta)
        mine = table[table["pair_id"] == pair_id]
        assert meta["diffmaglim"] == pytest.approx(float(mine["diffmaglim"][0]), rel=1e-12)
        assert meta["jd"] == jd == pytest.approx(float(mine["jd"][0]))
        assert meta["fid"] == fid == int(mine["fid"][0]) and meta["band"]
        corners = np.array(meta["footprint"])
        assert corners.shape == (4, 2)
        # 256 px at the simulated scale: the footprint spans the image, candidates inside
        ra, dec = corners[:, 0], corners[:, 1]
        assert (mine["ra"] > ra.min()).all() and (mine["ra"] < ra.max()).all()
        assert (mine["dec"] > dec.min()).all() and (mine["dec"] < dec.max()).all()
        # corners are the pixel edges: the science WCS of pixel (-0.5, -0.5) etc.
        sci = _science_of(out, pair_id)
        x = np.array([-0.5, SIZE - 0.5, SIZE - 0.5, -0.5])
        y = np.array([-0.5, -0.5, SIZE - 0.5, SIZE - 0.5])
        wra, wdec = sci.wcs.all_pix2world(x, y, 0)
        np.testing.assert_allclose(corners, np.column_stack([wra % 360, wdec]), atol=1e-9)


def _science_of(out: Path, pair_id: str):
    from skyscene.io import read_exposure

    with sqlite3.connect(out / "skyscene.db") as con:
        (path,) = con.execute(
            "SELECT i.path FROM pairs p JOIN images i ON p.science_id = i.id WHERE p.pair_id = ?",
            (pair_id,),
        ).fetchone()
    return read_exposure(path)
