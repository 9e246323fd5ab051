"""Schema migrations (Alembic, shipped in ``skyscene/store/migrations``), run from Python.

``skyscene db upgrade URL`` calls :func:`upgrade`. The migration scripts are versioned
(``migrations/versions/NNNN_*.py``); a new model change gets a new script (see
``docs/store.md``), never an edit of an old one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, inspect

__all__ = ["current_revision", "downgrade", "head_revision", "migrations_path", "upgrade"]

_PG_MIGRATION_LOCK = 0x534B5901  # advisory lock: one migration at a time per database


def migrations_path() -> Path:
    """Folder of the Alembic environment (``env.py``, ``versions/``)."""
    return Path(__file__).parent / "migrations"


def _config(connection: Any = None) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_path()))
    cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    """The newest revision shipped with this version of skyscene."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision a database is at (``None``: not created by skyscene, or empty)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return None
        return MigrationContext.configure(connection).get_current_revision()


def _run(engine: Engine, action: str, revision: str) -> None:
    from alembic import command

    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql(f"SELECT pg_advisory_lock({_PG_MIGRATION_LOCK})")
            connection.commit()
        try:
            getattr(command, action)(_config(connection), revision)
            connection.commit()
        finally:
            if connection.dialect.name == "postgresql":
                connection.exec_driver_sql(f"SELECT pg_advisory_unlock({_PG_MIGRATION_LOCK})")
                connection.commit()


def upgrade(engine: Engine, revision: str = "head") -> str | None:
    """Migrate the database to ``revision`` (default: the newest); return the revision now.

    Safe to call on an up-to-date database (does nothing) and from several processes at
    once (PostgreSQL: an advisory lock; SQLite: the write lock of ``BEGIN IMMEDIATE``).
    """
    if revision == "head" and current_revision(engine) == head_revision():
        return head_revision()
    _run(engine, "upgrade", revision)
    return current_revision(engine)


def downgrade(engine: Engine, revision: str) -> str | None:
    """Migrate the database back to ``revision`` (``"base"``: drop every table)."""
    _run(engine, "downgrade", revision)
    return current_revision(engine)
