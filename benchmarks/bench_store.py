"""Candidate-database ingestion and alert-writing speed (issue 12 goals: >= 5000 candidates/s
into SQLite, >= 2000 alert packets/s).

    python benchmarks/bench_store.py [--pairs 5] [--per-pair 1000] [--url URL]

Each pair is one transaction (association included); the second epoch's pairs re-observe
the first epoch's positions, so half the candidates join existing objects. Prints
candidates/s with and without cutouts, the rerun (idempotent, nothing added) time, and
alert packets/s written to <candid>.avro files from ready stamps.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from skyscene.alerts import encode_stamp, make_alert, write_alerts
from skyscene.store import FEATURE_COLUMNS, CandidateStore, PairRecord


def _table(rng, n, first, ra, dec, jd):
    t = {name: rng.normal(size=n) for name in FEATURE_COLUMNS}
    t.update(
        candid=np.arange(first, first + n, dtype=np.int64),
        jd=np.full(n, jd),
        fid=np.full(n, 2),
        ra=ra,
        dec=dec,
        isdiffpos=np.where(rng.random(n) < 0.8, "t", "f"),
        nneg=rng.integers(0, 9, n),
        nbad=rng.integers(0, 3, n),
        flags=rng.integers(0, 8, n),
    )
    return t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=6, help="pairs per run (two epochs)")
    parser.add_argument("--per-pair", type=int, default=1000, help="candidates per pair")
    parser.add_argument("--url", help="database URL (default: a SQLite file in a temp dir)")
    parser.add_argument("--alerts", type=int, default=1000, help="alert packets to write")
    args = parser.parse_args()
    rng = np.random.default_rng(2026)
    n = args.per_pair
    with tempfile.TemporaryDirectory() as tmp:
        for with_cutouts in (False, True):
            url = args.url or f"sqlite:///{Path(tmp) / f'bench{int(with_cutouts)}.db'}"
            stamps = [encode_stamp(rng.normal(size=(63, 63))) for _ in range(n)]
            cutouts = {k: stamps for k in ("science", "reference", "difference")}
            with CandidateStore(url) as store:
                positions = [
                    (30 + k * 0.5 + rng.random(n) * 0.2, -10 + rng.random(n) * 0.2)
                    for k in range(args.pairs // 2 or 1)
                ]
                tables = []
                for p in range(args.pairs):
                    ra, dec = positions[p % len(positions)]
                    jitter = rng.normal(0, 0.2 / 3600, n)
                    tables.append(
                        _table(rng, n, p * n, ra + jitter, dec, 2461100.5 + p // len(positions))
                    )
                t0 = time.perf_counter()
                for p, table in enumerate(tables):
                    store.ingest_pair(
                        PairRecord(pair_id=f"pair{p}", science=f"s{p}.fits", reference="r.fits"),
                        table,
                        cutouts if with_cutouts else None,
                    )
                dt = time.perf_counter() - t0
                t1 = time.perf_counter()
                for p, table in enumerate(tables):
                    store.ingest_pair(
                        PairRecord(pair_id=f"pair{p}", science=f"s{p}.fits", reference="r.fits"),
                        table,
                    )
                rerun = time.perf_counter() - t1
                counts = store.counts()
            label = "with 3 cutouts each" if with_cutouts else "features only"
            print(
                f"ingest ({label}): {args.pairs * n / dt:8.0f} candidates/s "
                f"({args.pairs} pairs x {n}, {counts['objects']} objects; goal >= 5000); "
                f"rerun {rerun * 1e3:.0f} ms, rows unchanged"
            )
        cut = rng.normal(size=(3, 63, 63)).astype(np.float32)
        science, reference, difference = (encode_stamp(c) for c in cut)
        t0 = time.perf_counter()
        alerts = [
            make_alert(
                {
                    "candid": i,
                    "jd": 2461100.5,
                    "fid": 2,
                    "ra": 30.0,
                    "dec": -10.0,
                    "isdiffpos": "t",
                    "magpsf": 19.0,
                    "sigmapsf": 0.1,
                },
                object_id="SKY26aaaaaab",
                science=science,
                reference=reference,
                difference=difference,
            )
            for i in range(args.alerts)
        ]
        t1 = time.perf_counter()
        write_alerts(alerts, Path(tmp) / "alerts")
        t2 = time.perf_counter()
        print(
            f"alerts: build {args.alerts / (t1 - t0):8.0f} packets/s (ready stamps), "
            f"write {args.alerts / (t2 - t1):8.0f} packets/s (goal >= 2000)"
        )


if __name__ == "__main__":
    main()
