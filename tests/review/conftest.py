"""Review service fixtures: a seeded candidate database (three pairs of one field, 12
candidates each, three cutouts per candidate, scores of two model versions), built once
per session by CandidateStore ingestion, copied for each test that writes."""

from __future__ import annotations

import os
import shutil
import uuid

import numpy as np
import pytest

from skyscene.review import ReviewConfig, hash_token
from skyscene.store import CandidateStore, PairRecord

pytest.importorskip("fastapi")

JD0 = 2461100.5
N_PER_PAIR = 12
N_PAIRS = 3
PG_ENV = "SKYSCENE_TEST_POSTGRES_URL"
TOKENS = {"alice": "token-alice-reviewer", "bob": "token-bob-reviewer", "root": "token-root-admin"}
ROLES = {"alice": "reviewer", "bob": "reviewer", "root": "admin"}


def _stamp(rng, flux):
    y, x = np.mgrid[:63, :63]
    star = flux * np.exp(-((x - 31) ** 2 + (y - 31) ** 2) / (2 * 2.0**2))
    return (star + rng.normal(0, 1.0, (63, 63))).astype(np.float32)


def fill_store(url: str, version: str) -> dict:
    """Ingest the seeded pairs into ``url``; return what the tests check against."""
    rng = np.random.default_rng(14)
    candids = []
    with CandidateStore(url) as store:
        for k in range(N_PAIRS):
            n = N_PER_PAIR
            first = 1000 + 100 * k
            table = {
                "candid": np.arange(first, first + n, dtype=np.int64),
                "jd": np.full(n, JD0 + k),
                "fid": np.full(n, 2, dtype=np.int32),
                # the first 8 candidates repeat at the same position every night (objects)
                "ra": 150.0 + 0.001 * np.arange(n) * (1 + 10 * (np.arange(n) >= 8) * k),
                "dec": np.full(n, 2.0),
                "isdiffpos": ["t"] * n,
                "magpsf": rng.uniform(17, 21, n),
                "sigmapsf": rng.uniform(0.02, 0.2, n),
                "diffmaglim": np.full(n, 20.5),
                "scorr": rng.uniform(5, 50, n),
                "fwhm": rng.uniform(1.5, 3.0, n),
                "elong": rng.uniform(1.0, 1.5, n),
            }
            cutouts = {
                kind: [_stamp(rng, f) for f in rng.uniform(5, 100, n)]
                for kind in ("science", "reference", "difference")
            }
            pair = PairRecord(
                pair_id=f"pair{k}",
                science=f"/d/sci{k}.fits",
                reference="/d/ref.fits",
                jd=JD0 + k,
                fid=2,
                band="r",
                # nights 0-1: a box; night 2: four [ra, dec] corners, as the search writes
                meta={
                    "footprint": [149.9, 150.2, 1.9, 2.1]
                    if k < 2
                    else [[149.9, 1.9], [150.2, 1.9], [150.2, 2.1], [149.9, 2.1]],
                    "diffmaglim": 20.5,
                },
            )
            if k == 2:  # the last night: the first 4 "objects" are not detected
                keep = np.arange(n) >= 4
                table = {key: np.asarray(v)[keep] for key, v in table.items()}
                cutouts = {
                    key: [s for s, kp in zip(v, keep, strict=True) if kp]
                    for key, v in cutouts.items()
                }
            store.ingest_pair(pair, table, cutouts)
            candids += [int(c) for c in table["candid"]]
        scores = rng.uniform(0, 1, len(candids))
        priority = 1 - 2 * np.abs(scores - 0.5)
        store.add_scores(
            candids,
            scores,
            model_name="skyscene-rb-vgg6",
            model_version=version,
            spreads=np.full(len(candids), 0.05),
            priorities=priority,
        )
        store.add_scores(
            candids[:5], np.full(5, 0.5), model_name="skyscene-rb-vgg6", model_version="v-old"
        )
        for name, token in TOKENS.items():
            store.add_user(name, role=ROLES[name], token_hash=hash_token(token))
        store.add_user("carol", role="reviewer", token_hash=hash_token("token-carol-revoked"))
        objects = store.object_ids(candids)
    from skyscene.review.queries import ReviewQueries

    with CandidateStore(url) as store:
        ReviewQueries(store.engine).revoke_user("carol")
    return {
        "candids": candids,
        "scores": dict(zip(candids, scores.tolist(), strict=True)),
        "objects": objects,
    }


@pytest.fixture(scope="session")
def shipped():
    """The shipped real/bogus model, loaded once (the apps of the tests share it)."""
    from skyscene.classify.io import load_model

    return load_model()


_SHIPPED = []


@pytest.fixture(scope="session")
def seeded_db(tmp_path_factory, shipped):
    """Path of the session's seeded SQLite database (do not write: copy it)."""
    _SHIPPED.append(shipped)
    path = tmp_path_factory.mktemp("review") / "seed.db"
    truth = fill_store(f"sqlite:///{path}", shipped.model_version_)
    truth["version"] = shipped.model_version_
    return path, truth


@pytest.fixture
def db_copy(seeded_db, tmp_path):
    path, truth = seeded_db
    target = tmp_path / "review.db"
    shutil.copy(path, target)
    return f"sqlite:///{target}", truth


def make_client(url: str, **config):
    from fastapi.testclient import TestClient

    from skyscene.review.app import create_app

    app = create_app(ReviewConfig(db_url=url, **config))
    if _SHIPPED and "model_path" not in config:  # the shipped model, already loaded
        app.state.model._classifier = _SHIPPED[0]
    return TestClient(app, raise_server_exceptions=False)


def auth(name: str) -> dict:
    return {"Authorization": f"Bearer {TOKENS[name]}"}


@pytest.fixture(scope="session")
def read_client(seeded_db):
    """A client on the seeded database for tests that only read."""
    path, _ = seeded_db
    return make_client(f"sqlite:///{path}")


@pytest.fixture
def client(db_copy):
    url, _ = db_copy
    return make_client(url)


@pytest.fixture
def postgres_url():
    url = os.environ.get(PG_ENV)
    if not url:
        pytest.skip(f"no PostgreSQL server: set {PG_ENV} (.ci/run starts one)")
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    name = f"skyscene_review_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()
