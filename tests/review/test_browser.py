"""The review page in a real browser (issue 14 acceptance): Playwright drives Debian's
Chromium against ``skyscene serve`` on a loopback port, with a database the real search
pipeline filled (one simulated field at three epochs) and a user made by
``skyscene users add``. Labels by keyboard, an undo, the database rows, the transition
latency (prefetched candidates) and a screenshot."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
if not os.path.exists(CHROMIUM):
    pytest.skip(f"{CHROMIUM} is absent (Debian's chromium package)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is absent")
pytest.importorskip("fastapi", reason="skyscene[serve] is not installed")
pytest.importorskip("torch", reason="the real/bogus model needs torch")

ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
#: Bound on a prefetched transition (key press to the painted frame), milliseconds.
LATENCY_MS = 100.0
#: The ``skyscene`` command of this interpreter's environment.
SKYSCENE = str(Path(sys.executable).with_name("skyscene"))


def _skyscene(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [SKYSCENE, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        **kw,
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def database(tmp_path_factory) -> Path:
    """One simulated 256² field (5 transients) searched at three epochs with the shipped
    model: 15 scored candidates of 5 objects, each with a 3-point light curve."""
    from astropy import units as u

    from skyscene.io import read_exposure, write_exposure
    from skyscene.pipelines.diffim import simulate_pair_files
    from skyscene.pipelines.search import PairEntry, SearchConfig, run_search

    root = tmp_path_factory.mktemp("review-browser")
    files = simulate_pair_files(
        root / "field", seed=410, shape=(256, 256), n_transients=5, transient_snr=25.0
    )
    science = read_exposure(files.science)
    pairs = [PairEntry.of(files.science, files.reference, pair_id="e0")]
    for k, days in enumerate((4, 9), start=1):
        late = write_exposure(
            root / f"e{k}.fits", science.replace(time=science.time + days * u.day)
        )
        pairs.append(PairEntry.of(late, files.reference, pair_id=f"e{k}"))
    summary = run_search(
        pairs, root / "out", config=SearchConfig(model="default"), scheduler="synchronous"
    )
    assert summary.n_ok == 3 and summary.n_candidates >= 6
    return root / "out" / "skyscene.db"


@pytest.fixture(scope="module")
def server(database):
    """``skyscene serve`` on a free loopback port and a reviewer's token."""
    token = _skyscene("users", "add", "alice", "--role", "reviewer", "--db", str(database))
    token = token.stdout.strip().splitlines()[-1]
    assert len(token) >= 32
    port = _free_port()
    log = open(database.with_name("serve.log"), "w")
    proc = subprocess.Popen(
        [SKYSCENE, "serve", "--db", str(database), "--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            log.close()
            pytest.fail(
                "skyscene serve did not start:\n" + database.with_name("serve.log").read_text()
            )
        time.sleep(0.2)
    yield url, token
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()


def _labels(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as con:
        return con.execute(
            "SELECT l.id, l.candid, u.name, l.value FROM labels l JOIN users u "
            "ON u.id = l.user_id ORDER BY l.id"
        ).fetchall()


def test_label_by_keyboard_undo_rows_latency_and_screenshot(server, database, tmp_path):
    url, token = server
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 960})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            requested: list[str] = []
            page.on("request", lambda request: requested.append(request.url))
            page.goto(url + "/")
            # a wrong token is refused on the login form
            page.fill("#token", "not-a-token")
            page.click("#login-button")
            page.wait_for_function("document.getElementById('login-error').textContent.length > 0")
            assert page.is_visible("#login")
            # the real token: the queue in priority order, the first candidate ready
            page.fill("#token", token)
            page.click("#login-button")
            page.wait_for_selector("#app:not([hidden])")
            page.wait_for_function("document.body.dataset.ready === '1'", timeout=20000)
            queue = page.evaluate("window.skyscene.state.queue.map(c => String(c.candid))")
            assert len(queue) >= 6
            # candids are 64-bit: the page kept them exactly (as strings)
            with sqlite3.connect(database) as con:
                known = {str(r[0]) for r in con.execute("SELECT candid FROM candidates")}
            assert set(queue) <= known
            assert page.evaluate("sessionStorage.getItem('skyscene.token')") == token

            # let the prefetch of the next candidates finish, then label three by keyboard
            shown = []
            for keyname in ("r", "b", "s"):
                page.wait_for_timeout(400)
                shown.append(page.evaluate("document.body.dataset.candid"))
                n_timings = page.evaluate("window.skyscene.timings.length")
                page.keyboard.press(keyname)
                page.wait_for_function(
                    f"window.skyscene.timings.length > {n_timings} && "
                    "document.body.dataset.ready === '1'"
                )
            page.wait_for_function("document.body.dataset.labelsPending === '0'")
            assert shown == queue[:3]
            timings = page.evaluate("window.skyscene.timings.slice(-3).map(t => t.ms)")
            print(f"transitions (key press to painted frame), ms: {timings}")
            assert len(timings) == 3 and max(timings) < LATENCY_MS, timings
            rows = _labels(database)
            assert [(str(c), u, v) for _, c, u, v in rows] == [
                (shown[0], "alice", "real"),
                (shown[1], "alice", "bogus"),
                (shown[2], "alice", "unsure"),
            ]

            # undo: the last label (unsure) is deleted and its candidate shown again
            page.keyboard.press("u")
            page.wait_for_function(f"document.body.dataset.candid === '{shown[2]}'")
            page.wait_for_function("document.body.dataset.labelsPending === '0'")
            after = _labels(database)
            assert [(str(c), u, v) for _, c, u, v in after] == [
                (shown[0], "alice", "real"),
                (shown[1], "alice", "bogus"),
            ]
            assert rows[2][0] not in {r[0] for r in after}
            # arrows move without labelling; the history lists the two labels
            page.keyboard.press("ArrowLeft")
            page.wait_for_function(f"document.body.dataset.candid === '{shown[1]}'")
            page.wait_for_function("document.querySelectorAll('#history li').length === 2")
            assert "2 to go" not in page.text_content("#progress")
            assert "labelled 2" in page.text_content("#progress")
            page.keyboard.press("ArrowRight")
            page.wait_for_function("document.body.dataset.ready === '1'")
            # the light curve shows the object's three epochs
            assert page.get_attribute("#lightcurve", "data-detections") == "3"
            assert _labels(database) == after
            assert not errors, errors
            # nothing but the service itself was asked for (no CDN, no network assets;
            # blob: URLs are the page's own decoded stamps)
            local = (url + "/", "blob:" + url + "/")
            outside = {u for u in requested if not u.startswith(local)}
            assert requested and not outside, outside
            assert any("/cutouts/difference.png?stretch=zscale" in u for u in requested)

            shot = tmp_path / "review_page.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    from PIL import Image

    with Image.open(shot) as image:
        assert image.width >= 1440 and image.height >= 700
        assert len(image.convert("L").getcolors(1 << 16) or ()) > 50  # not a blank page
    if os.environ.get("SKYSCENE_REVIEW_SCREENSHOT"):
        Path(os.environ["SKYSCENE_REVIEW_SCREENSHOT"]).write_bytes(data)
