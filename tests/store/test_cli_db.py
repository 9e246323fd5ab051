"""``skyscene db upgrade / current / downgrade``: exit status, output, one-line errors."""

from __future__ import annotations

import sqlite3

from skyscene.cli import main
from skyscene.store import head_revision


def test_db_upgrade_current_downgrade(db_url, capsys):
    head = head_revision()
    assert head == "0002"
    assert main(["db", "current", db_url]) == 1  # empty: needs an upgrade
    assert (
        f"schema revision none (needs 'skyscene db upgrade' to {head})" in capsys.readouterr().out
    )
    assert main(["db", "upgrade", db_url]) == 0
    assert f"at schema revision {head} (newest {head})" in capsys.readouterr().out
    assert main(["db", "current", db_url]) == 0
    out = capsys.readouterr().out
    assert f"schema revision {head} (up to date)" in out and "candidates   0" in out
    assert main(["db", "downgrade", db_url, "0001"]) == 0
    assert "at schema revision 0001" in capsys.readouterr().out
    assert main(["db", "downgrade", db_url, "base"]) == 0
    assert "base (no tables)" in capsys.readouterr().out


def test_db_upgrade_sqlite_file_has_the_tables(tmp_path):
    path = tmp_path / "new.db"
    assert main(["-q", "db", "upgrade", str(path)]) == 0
    names = {r[0] for r in sqlite3.connect(path).execute("SELECT name FROM sqlite_master")}
    assert {
        "candidates",
        "objects",
        "pairs",
        "scores",
        "labels",
        "users",
        "models",
        "alembic_version",
    } <= names


def test_db_errors_are_one_line(tmp_path, capsys, caplog):
    assert main(["db", "upgrade", str(tmp_path / "missing" / "x.db")]) == 1
    assert f"database folder {tmp_path / 'missing'} does not exist" in caplog.text
    caplog.clear()
    assert main(["db", "upgrade", "postgresql+psycopg://nobody:secret@127.0.0.1:1/x"]) == 1
    assert "database postgresql+psycopg://nobody:***@127.0.0.1:1/x:" in caplog.text
    assert "secret" not in caplog.text and "Traceback" not in capsys.readouterr().err
