"""Store fixtures: every store test runs on SQLite and, when a server is given, PostgreSQL.

``SKYSCENE_TEST_POSTGRES_URL`` (set by ``.ci/run``, which starts a real server) is an
SQLAlchemy URL of a database whose user may create databases; each test gets a fresh
database on it, dropped afterwards. Without it the PostgreSQL variants skip.
"""

from __future__ import annotations

import os
import uuid

import pytest

PG_ENV = "SKYSCENE_TEST_POSTGRES_URL"


def _postgres_url():
    url = os.environ.get(PG_ENV)
    if not url:
        pytest.skip(f"no PostgreSQL server: set {PG_ENV} (.ci/run starts one)")
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    name = f"skyscene_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """A URL of an empty database: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'skyscene.db'}"
    else:
        yield from _postgres_url()
