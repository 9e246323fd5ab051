"""Two reviewers labelling the same candidates at the same time (threads on one app, one
database): every POST leaves exactly one row, nothing lost, each user's newest label is
the last they sent; on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import text
from tests.review.conftest import auth, fill_store, make_client

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _label_concurrently(url, candids, shipped):
    client = make_client(url)
    client.app.state.model._classifier = shipped
    plan = {"alice": ["bogus", "real"], "bob": ["real", "unsure"]}
    errors: list = []
    barrier = threading.Barrier(len(plan))

    def work(name):
        barrier.wait()
        for value in plan[name]:
            for candid in candids:
                r = client.post(
                    f"/api/candidates/{candid}/labels", json={"value": value}, headers=auth(name)
                )
                if r.status_code != 201:
                    errors.append((name, candid, r.status_code, r.text))

    threads = [threading.Thread(target=work, args=(name,)) for name in plan]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with client.app.state.store.engine.connect() as c:
        rows = c.execute(
            text(
                "SELECT l.candid, u.name, l.value, l.id FROM labels l JOIN users u "
                "ON u.id = l.user_id ORDER BY l.id"
            )
        ).all()
    assert len(rows) == 2 * 2 * len(candids)  # no lost label, no duplicate
    assert len({r.id for r in rows}) == len(rows)
    for name, values in plan.items():
        mine = [r for r in rows if r.name == name]
        for candid in candids:
            assert [r.value for r in mine if r.candid == candid] == values
    for candid in candids[:3]:
        d = client.get(f"/api/candidates/{candid}", headers=auth("alice")).json()
        current = {(x["user"], x["value"]) for x in d["labels"] if x["current"]}
        assert current == {("alice", "real"), ("bob", "unsure")}
        assert d["consensus"] == "real"


def test_two_reviewers_at_once_sqlite(db_copy, shipped):
    url, truth = db_copy
    _label_concurrently(url, truth["candids"][:20], shipped)


def test_two_reviewers_at_once_postgresql(postgres_url, shipped):
    truth = fill_store(postgres_url, shipped.model_version_)
    _label_concurrently(postgres_url, truth["candids"][:20], shipped)
