"""``skyscene db``: create and migrate the candidate database, show its state."""

from __future__ import annotations

import logging

__all__ = ["register"]

log = logging.getLogger(__name__)


def _engine(url: str):
    from skyscene.store import open_engine

    return open_engine(url)


def _wrap(action):
    """Database errors become one line naming the URL (exit 1), not a traceback."""

    def run(args) -> int:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import SQLAlchemyError

        from skyscene.errors import InputFileError

        if getattr(args, "verbose", 0) < 2:  # Alembic logs every plugin at INFO
            logging.getLogger("alembic").setLevel(logging.WARNING)
        try:
            return action(args)
        except SQLAlchemyError as exc:
            shown = args.url
            try:
                shown = make_url(args.url).render_as_string(hide_password=True)
            except Exception:
                pass
            reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
            raise InputFileError(f"database {shown}: {reason}") from None

    return run


def _upgrade(args) -> int:
    from skyscene.store import head_revision, upgrade

    engine = _engine(args.url)
    try:
        revision = upgrade(engine, args.revision)
    finally:
        engine.dispose()
    print(f"{args.url}: at schema revision {revision} (newest {head_revision()})")
    return 0


def _downgrade(args) -> int:
    from skyscene.store import downgrade

    engine = _engine(args.url)
    try:
        revision = downgrade(engine, args.revision)
    finally:
        engine.dispose()
    print(f"{args.url}: at schema revision {revision or 'base (no tables)'}")
    return 0


def _current(args) -> int:
    from skyscene.store import CandidateStore, StoreConfig, current_revision, head_revision

    engine = _engine(args.url)
    try:
        revision = current_revision(engine)
    finally:
        engine.dispose()
    head = head_revision()
    state = "up to date" if revision == head else f"needs 'skyscene db upgrade' to {head}"
    print(f"{args.url}: schema revision {revision or 'none'} ({state})")
    if revision == head:
        with CandidateStore(args.url, config=StoreConfig(auto_upgrade=False)) as store:
            for table, count in store.counts().items():
                print(f"  {table:12s} {count}")
    return 0 if revision == head else 1


def register(commands, simulate) -> None:
    p = commands.add_parser(
        "db",
        help="create, migrate and inspect the candidate database",
        description=(
            "The candidate database (skyscene.store): any SQLAlchemy URL, e.g. "
            "sqlite:///run/skyscene.db or postgresql+psycopg://user@host/db; a plain path "
            "is a SQLite file. Migrations are Alembic scripts shipped with skyscene."
        ),
    )
    sub = p.add_subparsers(dest="db_command", metavar="ACTION")
    up = sub.add_parser("upgrade", help="migrate the schema to the newest (or a given) revision")
    up.add_argument("url", help="database URL or SQLite file path")
    up.add_argument("--revision", default="head", help="target revision (default: head)")
    up.set_defaults(func=_wrap(_upgrade))
    down = sub.add_parser("downgrade", help="migrate the schema back to a revision")
    down.add_argument("url", help="database URL or SQLite file path")
    down.add_argument("revision", help="target revision ('base' drops every table)")
    down.set_defaults(func=_wrap(_downgrade))
    cur = sub.add_parser("current", help="show the schema revision and the rows per table")
    cur.add_argument("url", help="database URL or SQLite file path")
    cur.set_defaults(func=_wrap(_current))

    def _help(args) -> int:
        p.print_help()
        return 2

    p.set_defaults(func=_help)
