"""``skyscene rb retrain | promote | rescore | drift`` on a small labelled database."""

import json

import numpy as np
import pytest
from conftest import toy_triplets

from skyscene.classify.io import save_model
from skyscene.classify.registry import list_models, register_model, served_model
from skyscene.cli import main
from skyscene.store import CandidateStore, PairRecord

JD0 = 2461300.5


@pytest.fixture
def labelled_db(tmp_path, fitted):
    url = f"sqlite:///{tmp_path / 'loop.db'}"
    x, y, _ = toy_triplets(80, size=31, rng=21)
    with CandidateStore(url) as store:
        for k in range(2):
            rows = np.arange(40 * k, 40 * (k + 1))
            n = rows.size
            table = {
                "candid": (5000 + rows).astype(np.int64),
                "jd": np.full(n, JD0 + k + 0.2),
                "fid": np.full(n, 2, dtype=np.int32),
                "ra": 150.0 + 0.01 * rows,
                "dec": np.full(n, 2.0),
                "isdiffpos": ["t"] * n,
            }
            cutouts = {
                kind: [x[i, j] for i in rows]
                for j, kind in enumerate(("science", "reference", "difference"))
            }
            pair = PairRecord(
                pair_id=f"p{k}", science=f"/s{k}.fits", reference="/r.fits", jd=JD0 + k, fid=2
            )
            store.ingest_pair(pair, table, cutouts)
        store.add_user("ann")
        store.add_user("bob")
        for i in range(80):
            truth = "real" if y[i] else "bogus"
            store.add_label(5000 + i, "ann", "bogus" if truth == "real" else "real")
            store.add_label(5000 + i, "ann", truth)  # newer label supersedes
            if i % 3 == 0:
                store.add_label(5000 + i, "bob", truth)
    base = tmp_path / "base.pt"
    save_model(base, fitted)
    return url, base, tmp_path


def test_retrain_promote_rescore_drift(labelled_db, fitted, capsys):
    url, base, tmp = labelled_db
    new = tmp / "new.pt"
    assert main(["rb", "retrain", "--db", url, "--base", str(base), "--out", str(new),
                 "--epochs", "2", "--trained-by", "tester"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "80 human labels" in out and "held-out" in out
    with CandidateStore(url) as store:
        records = {r.version: r for r in list_models(store)}
        assert fitted.model_version_ in records
        child = [r for r in records.values() if r.parent_version == fitted.model_version_]
        assert len(child) == 1
        child = child[0]
        assert child.trained_by == "tester" and child.data_hash
        assert "held_out_old" in child.metrics and "held_out_new" in child.metrics
        assert child.metrics["n_human_labels"] == 80
        assert len(child.reference_scores) > 0
        assert served_model(store) is None
    assert main(["rb", "promote", child.version, "--db", url]) == 0
    assert main(["rb", "rescore", "--db", url]) == 0
    assert main(["rb", "rescore", "--db", url, "--version", fitted.model_version_]) == 0
    with CandidateStore(url) as store:
        assert served_model(store).version == child.version
        from sqlalchemy import text

        with store.engine.connect() as c:
            per_version = dict(
                c.execute(text("SELECT model_version, count(*) FROM scores GROUP BY 1")).all()
            )
            n_prio = c.execute(text("SELECT count(priority) FROM scores")).scalar()
    assert per_version == {child.version: 80, fitted.model_version_: 80}  # old scores kept
    assert n_prio == 160
    report, page = tmp / "drift.json", tmp / "drift.html"
    assert main(["rb", "drift", "--db", url, "--out", str(report), "--html", str(page)]) == 0
    doc = json.loads(report.read_text())
    assert {n["model_version"] for n in doc["nights"]} == set(per_version)
    assert len(doc["nights"]) == 4 and all(n["n"] == 40 for n in doc["nights"])
    assert "data:image/png;base64," in page.read_text()


def test_retrain_without_labels_fails(tmp_path, fitted, caplog):
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    CandidateStore(url).close()
    base = tmp_path / "b.pt"
    save_model(base, fitted)
    args = ["rb", "retrain", "--db", url, "--base", str(base), "--out", str(tmp_path / "n.pt")]
    assert main(args) != 0
    assert "no consensus labels to train on" in caplog.text
    with CandidateStore(url) as store:
        register_model(store, base)
    assert main(["rb", "promote", "nope", "--db", url]) != 0
    assert "unknown model version 'nope'" in caplog.text
    assert not (tmp_path / "n.pt").exists()
