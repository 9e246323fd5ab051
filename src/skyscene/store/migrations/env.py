"""Alembic environment of the skyscene candidate database (run by ``skyscene.store.upgrade``)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from skyscene.store.models import Base

target_metadata = Base.metadata


def _config():
    return context.config


def _configure(**kwargs) -> None:
    context.configure(target_metadata=target_metadata, compare_type=True, **kwargs)


def run_migrations_offline() -> None:
    _configure(url=_config().get_main_option("sqlalchemy.url"), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def _run(connection) -> None:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:  # SQLite's DDL is transactional: a failed migration leaves nothing half done
        connection = connection.execution_options(sqlite_immediate=True)
    _configure(
        connection=connection,
        render_as_batch=sqlite,
        **({"transactional_ddl": True} if sqlite else {}),
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = _config().attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_engine(_config().get_main_option("sqlalchemy.url") or "sqlite://")
    try:
        with engine.connect() as connection:
            _run(connection)
    finally:
        engine.dispose()


if __name__ != "skyscene.store.migrations.env":  # run by Alembic, not imported as a module
    if context.is_offline_mode():
        run_migrations_offline()
    else:
        run_migrations_online()
