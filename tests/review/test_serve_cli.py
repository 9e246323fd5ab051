"""``skyscene users`` and ``skyscene serve`` as a real subprocess on a loopback port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx
import pytest

from skyscene.cli import main

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def test_users_add_prints_a_token_once_and_stores_its_hash(db_copy, capsys):
    from skyscene.review.auth import hash_token
    from skyscene.store import CandidateStore

    url, _ = db_copy
    assert main(["users", "add", "dave", "--role", "admin", "--db", url]) == 0
    token = capsys.readouterr().out.strip()
    assert len(token) == 43
    with CandidateStore(url) as store, store.engine.connect() as c:
        stored = c.exec_driver_sql("SELECT token_hash, role FROM users WHERE name='dave'").one()
    assert stored == (hash_token(token), "admin") and token not in stored[0]
    assert main(["users", "add", "dave", "--db", url]) == 1  # exists
    assert main(["users", "list", "--db", url]) == 0
    listing = capsys.readouterr().out
    assert "dave\tadmin\tactive" in listing and token not in listing
    assert main(["users", "revoke", "dave", "--db", url]) == 0
    assert main(["users", "list", "--db", url]) == 0
    assert "dave\tadmin\trevoked" in capsys.readouterr().out
    assert main(["users", "revoke", "nobody", "--db", url]) == 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_subprocess_answers_healthz_and_an_authenticated_endpoint(db_copy, tmp_path):
    url, truth = db_copy
    port = _free_port()
    log = open(tmp_path / "serve.log", "w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "skyscene.cli",
            "serve",
            "--db",
            url,
            "--port",
            str(port),
            "--workers",
            "2",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                r = httpx.get(f"{base}/healthz", timeout=5)
                if r.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            time.sleep(0.3)
        assert r.json()["model_version"] == truth["version"]
        headers = {"Authorization": "Bearer token-alice-reviewer"}
        r = httpx.get(f"{base}/api/candidates", params={"limit": 3}, headers=headers, timeout=10)
        assert r.status_code == 200 and r.json()["total"] == 32
        assert httpx.get(f"{base}/api/candidates", timeout=10).status_code == 401
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
