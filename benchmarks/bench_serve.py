"""Load on the review service: 32 concurrent clients for --duration s each on
GET /api/candidates (by offset, and by keyset cursor: each client follows the pages'
"next"), GET .../cutouts/difference.png and POST /api/score, against
``skyscene serve --workers 2`` (a real subprocess on loopback) with SQLite and PostgreSQL.

Goals (issue 14): 0 errors, p99 < 200 ms for the list and the cutouts, >= 1000
triplets/s through /api/score. Prints requests/s, p50, p99, errors, triplets/s and the
load average / CPU time (the client runs on the same machine).

    flock /tmp/team/bench.lock .venv/bin/python benchmarks/bench_serve.py --duration 30 \
        [--postgres URL] [--batch 256]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import uuid

import numpy as np

TOKEN = "bench-token-reviewer"
_NEXT = re.compile(rb'"next":(null|"([A-Za-z0-9_-]*)")')


def build_db(url: str, *, n_pairs: int = 10, n: int = 100) -> list[int]:
    from skyscene.review.auth import hash_token
    from skyscene.store import CandidateStore, PairRecord

    rng = np.random.default_rng(1)
    y, x = np.mgrid[:63, :63]
    psf = np.exp(-((x - 31) ** 2 + (y - 31) ** 2) / 8.0)
    candids: list[int] = []
    with CandidateStore(url) as store:
        for k in range(n_pairs):
            ids = np.arange(10_000 * (k + 1), 10_000 * (k + 1) + n, dtype=np.int64)
            table = {
                "candid": ids,
                "ra": 150 + rng.uniform(0, 1, n),
                "dec": 2 + rng.uniform(0, 1, n),
                "isdiffpos": ["t"] * n,
                "magpsf": rng.uniform(17, 21, n),
                "sigmapsf": rng.uniform(0.02, 0.2, n),
                "fwhm": rng.uniform(1.5, 3, n),
            }
            stamps = {
                kind: [
                    (f * psf + rng.normal(size=(63, 63))).astype(np.float32)
                    for f in rng.uniform(5, 100, n)
                ]
                for kind in ("science", "reference", "difference")
            }
            pair = PairRecord(
                pair_id=f"b{k}",
                science=f"/b/{k}.fits",
                reference="/b/r.fits",
                jd=2461100.5 + k,
                fid=2,
            )
            store.ingest_pair(pair, table, stamps)
            candids += ids.tolist()
        from skyscene.classify.io import load_model

        version = load_model().model_version_
        scores = rng.uniform(0, 1, len(candids))
        store.add_scores(
            candids,
            scores,
            model_name="skyscene-rb-vgg6",
            model_version=version,
            priorities=1 - 2 * np.abs(scores - 0.5),
        )
        store.add_user("bench", role="reviewer", token_hash=hash_token(TOKEN))
        if store.engine.dialect.name == "postgresql":
            # planner statistics of the fresh tables, as autovacuum gathers them within
            # a minute or so of a bulk load (without them the first minute of the run is
            # planned for empty tables: nested loops over every candidate and a sort)
            with store.engine.begin() as connection:
                connection.exec_driver_sql("ANALYZE")
    return candids


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Connection:
    """One keep-alive HTTP/1.1 connection of the load generator (raw asyncio streams).

    Leaner than an HTTP client library: the generator shares the machine's cores with
    the server, so its own CPU per request matters. Reads ``Content-Length`` and
    ``chunked`` bodies; any protocol surprise raises (and is counted as an error).
    """

    def __init__(self, host: str, port: int, headers: dict[str, str]):
        self.host, self.port = host, port
        self.fixed = "".join(
            f"{k}: {v}\r\n" for k, v in {"Host": f"{host}:{port}", **headers}.items()
        )
        self.reader = self.writer = None

    async def _open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def request(self, method: str, target: str, body: bytes = b"", content_type=None):
        if self.writer is None:
            await self._open()
        head = f"{method} {target} HTTP/1.1\r\n{self.fixed}"
        if body or method == "POST":
            head += f"Content-Length: {len(body)}\r\n"
            if content_type:
                head += f"Content-Type: {content_type}\r\n"
        try:
            self.writer.write(head.encode() + b"\r\n" + body)
            raw = await self.reader.readuntil(b"\r\n\r\n")
            lines = raw.decode("latin-1").split("\r\n")
            status = int(lines[0].split(" ", 2)[1])
            fields = {}
            for line in lines[1:]:
                if line:
                    name, _, value = line.partition(":")
                    fields[name.strip().lower()] = value.strip()
            if "content-length" in fields:
                data = await self.reader.readexactly(int(fields["content-length"]))
            elif fields.get("transfer-encoding", "").lower() == "chunked":
                parts = []
                while True:
                    size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                    parts.append(await self.reader.readexactly(size + 2))
                    if size == 0:
                        break
                data = b"".join(p[:-2] for p in parts)
            elif status in (204, 304):
                data = b""
            else:
                raise ConnectionError(f"status {status} without a body length")
            if fields.get("connection", "").lower() == "close":
                self.close()
            return status, data
        except BaseException:
            self.close()
            raise


async def _phase(host, port, name, make_request, clients: int, duration: float):
    latencies: list[float] = []
    errors = 0
    units = 0
    reasons: dict[str, int] = {}
    stop = time.perf_counter() + duration
    headers = {"Authorization": f"Bearer {TOKEN}"}
    connections = [_Connection(host, port, headers) for _ in range(clients)]

    async def worker(k: int):
        nonlocal errors, units
        i = k
        connection = connections[k]
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            try:
                status, body, n = await asyncio.wait_for(make_request(connection, i), 60)
                ok = status in (200, 201)
                why = f"{status} {body[:120]!r}"
            except Exception as exc:  # timeouts, refused or reset connections: counted, named
                ok, n, why = False, 0, f"{type(exc).__name__}: {exc}"[:160]
            latencies.append(time.perf_counter() - t0)
            if ok:
                units += n
            else:
                errors += 1
                reasons[why] = reasons.get(why, 0) + 1
            i += clients

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(k) for k in range(clients)))
    elapsed = time.perf_counter() - t0
    for connection in connections:
        connection.close()
    lat = np.array(latencies) * 1000
    return {
        "name": name,
        "requests": lat.size,
        "rps": lat.size / elapsed,
        "p50_ms": float(np.percentile(lat, 50)) if lat.size else float("nan"),
        "p99_ms": float(np.percentile(lat, 99)) if lat.size else float("nan"),
        "errors": errors,
        "units_per_s": units / elapsed,
        "error_reasons": reasons,
    }


def run_backend(label: str, url: str, args) -> list[dict]:
    candids = build_db(url)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "skyscene.cli",
            "-q",
            "serve",
            "--db",
            url,
            "--port",
            str(port),
            "--workers",
            str(args.workers),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        import httpx

        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{label}: server did not start")
            time.sleep(0.5)
        rng = np.random.default_rng(2)
        batch = rng.normal(size=(args.batch, 3, 63, 63)).astype(np.float32)
        buffer = io.BytesIO()
        np.save(buffer, batch)
        npy = buffer.getvalue()

        boundary = "skyscenebench" + uuid.uuid4().hex
        multipart = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
                'filename="b.npy"\r\nContent-Type: application/octet-stream\r\n\r\n'
            ).encode()
            + npy
            + f"\r\n--{boundary}--\r\n".encode()
        )
        multipart_type = f"multipart/form-data; boundary={boundary}"

        async def list_page(connection, i):
            status, body = await connection.request(
                "GET", f"/api/candidates?limit=50&offset={(i % 20) * 50}"
            )
            return status, body, 1

        async def list_cursor(connection, i):
            # keyset paging as a client walks the queue: each page after the previous
            # page's "next", from the first page again after the last
            after = getattr(connection, "after", None)
            target = "/api/candidates?limit=50" + (f"&after={after}" if after else "")
            status, body = await connection.request("GET", target)
            found = _NEXT.search(body) if status == 200 else None
            connection.after = found.group(2).decode() if found and found.group(2) else None
            return status, body, 1

        async def cutout(connection, i):
            candid = candids[i % len(candids)]
            stretch = ("zscale", "asinh", "linear")[(i // len(candids)) % 3]
            status, body = await connection.request(
                "GET", f"/api/candidates/{candid}/cutouts/difference.png?stretch={stretch}"
            )
            return status, body, 1

        async def score(connection, i):
            status, body = await connection.request(
                "POST", "/api/score", multipart, content_type=multipart_type
            )
            return status, body, args.batch

        # warm-up: both workers load the model
        async def warm():
            connections = [
                _Connection("127.0.0.1", port, {"Authorization": f"Bearer {TOKEN}"})
                for _ in range(4)
            ]
            await asyncio.gather(*(score(c, 0) for c in connections))
            for c in connections:
                c.close()

        asyncio.run(warm())
        out = []
        for name, func, clients in (
            ("list", list_page, args.clients),
            ("list-cursor", list_cursor, args.clients),
            ("cutouts", cutout, args.clients),
            ("score", score, args.score_clients),
        ):
            cpu0 = os.times()
            res = asyncio.run(_phase("127.0.0.1", port, name, func, clients, args.duration))
            cpu1 = os.times()
            res["client_cpu_s"] = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
            res["load"] = os.getloadavg()
            res["backend"] = label
            out.append(res)
            print(_line(res), flush=True)
        return out
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _line(r: dict) -> str:
    goal = {
        "list": "p99<200ms",
        "list-cursor": "p99<200ms",
        "cutouts": "p99<200ms",
        "score": ">=1000 triplets/s",
    }[r["name"]]
    extra = f" triplets/s {r['units_per_s']:.0f}" if r["name"] == "score" else ""
    return (
        f"{r['backend']:10s} {r['name']:11s} {r['requests']:6d} req {r['rps']:8.1f} req/s "
        f"p50 {r['p50_ms']:7.1f} ms p99 {r['p99_ms']:7.1f} ms errors {r['errors']} {r['error_reasons'] or ''}{extra} "
        f"(goal {goal}, 0 errors) | load {r['load'][0]:.2f} {r['load'][1]:.2f} "
        f"client CPU {r['client_cpu_s']:.1f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per endpoint")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--score-clients", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=256, help="triplets per /api/score")
    parser.add_argument(
        "--postgres",
        default=os.environ.get("SKYSCENE_TEST_POSTGRES_URL"),
        help="a PostgreSQL URL whose user may create databases",
    )
    parser.add_argument("--no-sqlite", action="store_true")
    args = parser.parse_args()
    print(
        f"bench_serve: {args.clients} clients, {args.duration:.0f} s per endpoint, "
        f"--workers {args.workers}, score batch {args.batch}, {os.cpu_count()} CPUs, "
        f"load {os.getloadavg()}"
    )
    if not args.no_sqlite:
        with tempfile.TemporaryDirectory() as folder:
            run_backend("sqlite", f"sqlite:///{folder}/bench.db", args)
    if args.postgres:
        from sqlalchemy import create_engine
        from sqlalchemy.engine import make_url

        admin = create_engine(args.postgres, isolation_level="AUTOCOMMIT")
        name = f"skyscene_bench_{uuid.uuid4().hex[:8]}"
        with admin.connect() as c:
            c.exec_driver_sql(f'CREATE DATABASE "{name}"')
        try:
            url = make_url(args.postgres).set(database=name).render_as_string(hide_password=False)
            run_backend("postgresql", url, args)
        finally:
            with admin.connect() as c:
                c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.dispose()


if __name__ == "__main__":
    main()
