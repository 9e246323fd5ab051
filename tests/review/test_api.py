"""The review API with FastAPI's test client: every endpoint, role and error."""

from __future__ import annotations

import io

import numpy as np
import pytest
from tests.review.conftest import auth, make_client

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def test_healthz_needs_no_token_and_names_the_served_model(read_client, seeded_db):
    r = read_client.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "db": "ok", "model_version": seeded_db[1]["version"]}


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("get", "/api/me"),
        ("get", "/api/candidates"),
        ("get", "/api/candidates/1000"),
        ("get", "/api/candidates/1000/cutouts/science.png"),
        ("post", "/api/candidates/1000/labels"),
        ("delete", "/api/labels/1"),
        ("get", "/api/labels"),
        ("get", "/api/objects/SKY26aaaaaaa"),
        ("post", "/api/score"),
        ("get", "/api/models"),
        ("post", "/api/models/x/promote"),
        ("get", "/api/drift"),
        ("get", "/metrics"),
    ],
)
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": "Bearer token-carol-revoked"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
    ],
    ids=["missing", "wrong", "revoked", "not-bearer"],
)
def test_every_endpoint_but_healthz_needs_a_valid_token(read_client, method, url, headers):
    r = getattr(read_client, method)(url, headers=headers)
    assert r.status_code == 401, r.text
    assert "detail" in r.json()
    assert r.headers["www-authenticate"] == "Bearer"


def test_me(read_client):
    assert read_client.get("/api/me", headers=auth("root")).json() == {
        "name": "root",
        "role": "admin",
    }


def test_candidate_list_filters_sorts_and_paginates(read_client, seeded_db):
    truth = seeded_db[1]
    r = read_client.get("/api/candidates", headers=auth("alice"), params={"limit": 500})
    assert r.status_code == 200
    page = r.json()
    assert page["total"] == len(truth["candids"]) == 32
    assert page["model_version"] == truth["version"]
    priorities = [item["priority"] for item in page["items"]]
    assert priorities == sorted(priorities, reverse=True)
    item = page["items"][0]
    assert set(item) >= {
        "candid",
        "objectId",
        "pair_id",
        "jd",
        "rb",
        "spread",
        "priority",
        "n_labels",
        "consensus",
        "my_label",
        "magpsf",
        "fwhm",
        "elong",
    }
    assert item["rb"] == pytest.approx(truth["scores"][item["candid"]], abs=1e-12)

    r = read_client.get(
        "/api/candidates",
        headers=auth("alice"),
        params={"sort": "rb", "rb_min": 0.2, "rb_max": 0.8, "limit": 500},
    )
    rbs = [i["rb"] for i in r.json()["items"]]
    expected = sorted(s for s in truth["scores"].values() if 0.2 <= s <= 0.8)
    assert rbs == pytest.approx(expected, abs=1e-12)
    assert r.json()["total"] == len(expected)

    r = read_client.get(
        "/api/candidates", headers=auth("alice"), params={"sort": "-time", "limit": 5, "offset": 5}
    )
    body = r.json()
    assert len(body["items"]) == 5 and body["offset"] == 5
    first = read_client.get(
        "/api/candidates", headers=auth("alice"), params={"sort": "-time", "limit": 5}
    ).json()
    by_cursor = read_client.get(
        "/api/candidates",
        headers=auth("alice"),
        params={"sort": "-time", "limit": 5, "after": first["next"]},
    ).json()
    assert [i["candid"] for i in by_cursor["items"]] == [i["candid"] for i in body["items"]]
    jds = [i["jd"] for i in body["items"]]
    assert jds == sorted(jds, reverse=True)

    r = read_client.get(
        "/api/candidates", headers=auth("alice"), params={"jd_min": 2461101.0, "jd_max": 2461101.9}
    )
    assert r.json()["total"] == 12
    oid = truth["objects"][1000]
    r = read_client.get("/api/candidates", headers=auth("alice"), params={"object_id": oid})
    assert {i["candid"] for i in r.json()["items"]} == {1000, 1100}
    r = read_client.get(
        "/api/candidates",
        headers=auth("alice"),
        params={"model_version": "v-old", "sort": "rb", "limit": 500},
    )
    assert sum(i["rb"] is not None for i in r.json()["items"]) == 5


def test_candidate_detail_and_lightcurve(read_client, seeded_db):
    truth = seeded_db[1]
    r = read_client.get("/api/candidates/1000", headers=auth("bob"))
    assert r.status_code == 200
    d = r.json()
    assert d["candid"] == 1000 and d["pair_id"] == "pair0"
    assert {s["model_version"] for s in d["scores"]} == {truth["version"], "v-old"}
    assert d["features"]["diffmaglim"] == 20.5
    assert [o["candid"] for o in d["other_detections"]] == [1100]
    assert d["labels"] == [] and d["consensus"] is None

    oid = truth["objects"][1000]
    curve = read_client.get(f"/api/objects/{oid}", headers=auth("bob")).json()
    assert [x["candid"] for x in curve["detections"]] == [1000, 1100]
    assert curve["detections"][0]["rb"] == pytest.approx(truth["scores"][1000])
    # night 3 covered the position (footprint) without a detection: an upper limit
    assert [(u["pair_id"], u["diffmaglim"]) for u in curve["upper_limits"]] == [("pair2", 20.5)]
    assert read_client.get("/api/objects/SKY99zzzzzzz", headers=auth("bob")).status_code == 404
    assert read_client.get("/api/candidates/999999", headers=auth("bob")).status_code == 404


def test_cutouts_are_png_cached_and_404_when_missing(read_client):
    r = read_client.get(
        "/api/candidates/1000/cutouts/difference.png",
        headers=auth("alice"),
        params={"stretch": "asinh"},
    )
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert r.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert "max-age" in r.headers["cache-control"]
    from PIL import Image

    assert Image.open(io.BytesIO(r.content)).size == (252, 252)
    cache = read_client.app.state.cutout_cache
    hits = cache.hits
    again = read_client.get(
        "/api/candidates/1000/cutouts/difference.png",
        headers=auth("alice"),
        params={"stretch": "asinh"},
    )
    assert again.content == r.content and cache.hits == hits + 1
    etag = r.headers["etag"]
    r304 = read_client.get(
        "/api/candidates/1000/cutouts/difference.png",
        headers={**auth("alice"), "If-None-Match": etag},
        params={"stretch": "asinh"},
    )
    assert r304.status_code == 304
    assert (
        read_client.get("/api/candidates/5/cutouts/science.png", headers=auth("alice")).status_code
        == 404
    )
    assert (
        read_client.get("/api/candidates/1000/cutouts/other.png", headers=auth("alice")).status_code
        == 422
    )
    assert (
        read_client.get(
            "/api/candidates/1000/cutouts/science.png",
            headers=auth("alice"),
            params={"stretch": "log"},
        ).status_code
        == 422
    )


def test_labels_supersede_keep_other_users_undo_and_consensus(client):
    url = "/api/candidates/1001/labels"
    a1 = client.post(url, json={"value": "bogus"}, headers=auth("alice"))
    assert a1.status_code == 201, a1.text
    assert a1.json()["consensus"] == "bogus" and a1.json()["user"] == "alice"
    a2 = client.post(
        url, json={"value": "real", "comment": "a nuclear transient"}, headers=auth("alice")
    )
    assert a2.json()["consensus"] == "real"  # alice's newer label supersedes
    b1 = client.post(url, json={"value": "bogus"}, headers=auth("bob"))
    assert b1.json()["consensus"] is None  # real vs bogus tie, nobody unsure
    r1 = client.post(url, json={"value": "unsure"}, headers=auth("root"))  # admin may label
    assert r1.json()["consensus"] == "unsure"

    d = client.get("/api/candidates/1001", headers=auth("alice")).json()
    assert [(x["user"], x["value"], x["current"]) for x in d["labels"]] == [
        ("alice", "bogus", False),
        ("alice", "real", True),
        ("bob", "bogus", True),
        ("root", "unsure", True),
    ]
    assert d["my_label"] == "real"

    # undo: alice's real goes, her bogus is current again
    u = client.delete(f"/api/labels/{a2.json()['id']}", headers=auth("alice"))
    assert u.status_code == 200
    assert u.json() == {
        "deleted": a2.json()["id"],
        "candid": 1001,
        "consensus": "bogus",
        "my_label": "bogus",
    }
    assert client.delete(f"/api/labels/{b1.json()['id']}", headers=auth("alice")).status_code == 403
    assert client.delete(f"/api/labels/{a2.json()['id']}", headers=auth("alice")).status_code == 404

    hist = client.get("/api/labels", headers=auth("alice")).json()
    assert hist["total"] == 1 and hist["items"][0]["current"] is True
    assert (
        client.get("/api/labels", params={"user": "bob"}, headers=auth("alice")).json()["total"]
        == 1
    )
    assert (
        client.get("/api/labels", params={"user": "nobody"}, headers=auth("alice")).status_code
        == 404
    )

    lst = client.get(
        "/api/candidates", params={"labelled_by": "me", "limit": 500}, headers=auth("bob")
    ).json()
    assert [i["candid"] for i in lst["items"]] == [1001] and lst["items"][0]["n_labels"] == 3
    queue = client.get(
        "/api/candidates", params={"unlabelled_by": "me", "limit": 500}, headers=auth("bob")
    ).json()
    assert queue["total"] == 31
    assert (
        client.get(
            "/api/candidates", params={"labelled": "false", "limit": 500}, headers=auth("bob")
        ).json()["total"]
        == 31
    )
    assert (
        client.get("/api/candidates", params={"labelled_by": "ghost"}, headers=auth("bob")).json()[
            "total"
        ]
        == 0
    )


@pytest.mark.parametrize(
    "body",
    [
        {"value": "maybe"},
        {},
        {"value": "real", "comment": "x" * 2001},
        {"value": "real", "comment": "nul\x00"},
        ["real"],
    ],
)
def test_malformed_labels_are_422_json(client, body):
    r = client.post("/api/candidates/1000/labels", json=body, headers=auth("alice"))
    assert r.status_code == 422 and "detail" in r.json()


def test_label_errors(client):
    r = client.post(
        "/api/candidates/1000/labels",
        content=b"{not json",
        headers={**auth("alice"), "Content-Type": "application/json"},
    )
    assert r.status_code == 422
    r = client.post("/api/candidates/4242/labels", json={"value": "real"}, headers=auth("alice"))
    assert r.status_code == 404
    r = client.post(
        f"/api/candidates/{2**64}/labels", json={"value": "real"}, headers=auth("alice")
    )
    assert r.status_code == 422


def test_bad_query_parameters_are_422(read_client):
    for params in (
        {"limit": 0},
        {"limit": 501},
        {"offset": -1},
        {"sort": "random"},
        {"rb_min": "nan"},
        {"jd_max": "inf"},
        {"labelled": "perhaps"},
        {"object_id": "a\x00b"},
        {"after": "not a cursor"},
        {"after": "eA"},  # base64 of "x": not a cursor
        {"after": "a" * 513},
    ):
        r = read_client.get("/api/candidates", params=params, headers=auth("alice"))
        assert r.status_code == 422, params


def test_score_json_npy_and_npz_agree_with_the_classifier(read_client, shipped):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(4, 3, 63, 63)).astype(np.float32)
    x[:, :, 29:34, 29:34] += 30
    expected = shipped.score(x).rb
    body = {k: x[:, i].tolist() for i, k in enumerate(("science", "reference", "difference"))}
    r = read_client.post("/api/score", json=body, headers=auth("alice"))
    assert r.status_code == 200, r.text
    assert r.json()["model_version"] == shipped.model_version_ and r.json()["n"] == 4
    assert np.allclose(r.json()["rb"], expected, atol=1e-6)
    buffer = io.BytesIO()
    np.save(buffer, x)
    r = read_client.post(
        "/api/score", files={"file": ("t.npy", buffer.getvalue())}, headers=auth("alice")
    )
    assert np.allclose(r.json()["rb"], expected, atol=1e-6)
    buffer = io.BytesIO()
    np.savez(buffer, science=x[:, 0], reference=x[:, 1], difference=x[:, 2])
    r = read_client.post(
        "/api/score", files={"file": ("t.npz", buffer.getvalue())}, headers=auth("alice")
    )
    assert np.allclose(r.json()["rb"], expected, atol=1e-6)
    text = read_client.get("/metrics", headers=auth("alice")).text
    assert "skyscene_scores_served_total" in text


@pytest.mark.parametrize(
    "payload",
    [
        {"json": {"science": [[[1.0]]], "reference": [[[1.0]]]}},
        {"json": {"science": [[["a"]]], "reference": [[[1.0]]], "difference": [[[1.0]]]}},
        {
            "json": {
                "science": [[[1.0, 2.0], [1.0]]],
                "reference": [[[1.0]]],
                "difference": [[[1.0]]],
            }
        },
        {"json": {"science": [[[1.0]]], "reference": [[[1.0]]], "difference": [[[1.0]]]}},
        {"json": {"science": [], "reference": [], "difference": []}},
        {"files": {"file": ("t.npy", b"not numpy")}},
        {"files": {"other": ("t.npy", b"x")}},
        {"content": b"raw", "headers": {"Content-Type": "text/plain"}},
        {
            "content": b'{"science": [[[NaN]]], "reference": [[[1]]], "difference": [[[1]]]}',
            "headers": {"Content-Type": "application/json"},
        },
        {"json": {"science": [[[1e39]]], "reference": [[[1.0]]], "difference": [[[1.0]]]}},
        {"json": {"science": [[[True]]], "reference": [[[1.0]]], "difference": [[[1.0]]]}},
    ],
    ids=[
        "missing",
        "strings",
        "ragged",
        "wrong-size",
        "empty",
        "bad-npy",
        "no-file",
        "text",
        "nan-literal",
        "float32-overflow",
        "booleans",
    ],
)
def test_bad_score_bodies_are_4xx_json(read_client, payload):
    headers = {**auth("alice"), **payload.pop("headers", {})}
    r = read_client.post("/api/score", headers=headers, **payload)
    assert r.status_code in (415, 422), r.text
    assert "detail" in r.json()


def test_score_batch_and_body_limits_are_413(db_copy):
    url, _ = db_copy
    small = make_client(url, max_batch=2, max_body_bytes=200_000)
    x = np.zeros((3, 3, 63, 63), np.float32)
    buffer = io.BytesIO()
    np.save(buffer, x)
    r = small.post(
        "/api/score", files={"file": ("t.npy", buffer.getvalue())}, headers=auth("alice")
    )
    assert r.status_code == 413 and "at most 2" in r.json()["detail"]
    big = np.zeros((5, 3, 63, 63), np.float32)
    buffer = io.BytesIO()
    np.save(buffer, big)
    r = small.post(
        "/api/score", files={"file": ("t.npy", buffer.getvalue())}, headers=auth("alice")
    )
    assert r.status_code == 413
    r = small.post(
        "/api/candidates/1000/labels",
        headers=auth("alice"),
        json={"value": "real", "comment": "x" * 300_000},
    )
    assert r.status_code == 413


def test_models_promote_roles(client, shipped):
    from skyscene.classify.io import default_model_path
    from skyscene.classify.registry import register_model

    store = client.app.state.store
    assert client.get("/api/models", headers=auth("alice")).json() == {"served": None, "models": []}
    register_model(store, default_model_path(), trained_by="test")
    listed = client.get("/api/models", headers=auth("alice")).json()
    assert listed["served"] is None and [m["version"] for m in listed["models"]] == [
        shipped.model_version_
    ]
    v = shipped.model_version_
    assert client.post(f"/api/models/{v}/promote", headers=auth("alice")).status_code == 403
    assert client.post("/api/models/nope/promote", headers=auth("root")).status_code == 404
    r = client.post(f"/api/models/{v}/promote", headers=auth("root"))
    assert r.status_code == 200 and r.json()["served"] is True
    assert client.get("/api/models", headers=auth("bob")).json()["served"] == v
    assert client.get("/healthz").json()["model_version"] == v


def test_drift_is_served_or_503_while_the_module_is_missing(read_client):
    r = read_client.get("/api/drift", headers=auth("alice"))
    try:
        import skyscene.classify.drift  # noqa: F401
    except ImportError:
        assert r.status_code == 503 and "drift" in r.json()["detail"]
    else:
        assert r.status_code in (200, 404, 422), r.text
    assert (
        read_client.get("/api/drift", params={"psi_limit": 0}, headers=auth("alice")).status_code
        == 422
    )


def test_metrics_are_prometheus_text(read_client):
    read_client.get("/api/me", headers=auth("alice"))
    r = read_client.get("/metrics", headers=auth("alice"))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert 'skyscene_requests_total{method="GET",route="/api/me",status="200"}' in text
    assert 'skyscene_request_seconds_bucket{method="GET",route="/api/me",le="+Inf"}' in text
    assert "# TYPE skyscene_request_seconds histogram" in text
    assert "skyscene_queue_length 32" in text


def test_page_and_docs_are_served(read_client):
    r = read_client.get("/")
    assert r.status_code == 200 and "skyscene review" in r.text
    assert read_client.get("/openapi.json").status_code == 200
    assert read_client.get("/docs").status_code == 200
