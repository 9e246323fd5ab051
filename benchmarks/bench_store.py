"""Candidate-database ingestion and alert-writing speed (issue 12 goals: >= 5000 candidates/s
into SQLite, >= 2000 alert packets/s).

    python benchmarks/bench_store.py [--pairs 6] [--per-pair 1000] [--url URL] [--alerts 1000]

Each pair is one transaction (association included); the second epoch's pairs re-observe
the first epoch's positions, so half the candidates join existing objects. Prints
candidates/s with and without cutouts, the rerun (idempotent, nothing added) time, and
alert packets/s written to <candid>.avro files: from 63x63 cutout triplets (stamps
encoded as the search pipeline does, ``Cutouts.fits_bytes``: image, variance and mask
planes with WCS), from data-only stamps (ZTF's layout) and from ready stamps. Every rate
is given per second of wall time and per CPU-second of this process (the machine is
shared: the load average is printed), after a warm-up that pays the one-off imports.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from skyscene.alerts import (
    AlertConfig,
    alerts_from_table,
    encode_stamp,
    make_alert,
    write_alerts,
)
from skyscene.candidates import Cutouts
from skyscene.store import FEATURE_COLUMNS, CandidateStore, PairRecord

KINDS = ("science", "reference", "difference")


class _Clock:
    """Wall and CPU time of a block."""

    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu

    def rate(self, n: int) -> str:
        return f"{n / self.wall:8.0f}/s ({n / self.cpu:.0f} per CPU-s)"


def _load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def _warm_up(rng) -> None:
    """Pay the one-off imports and schema parsing (SciPy's KD-tree, Alembic, fastavro)."""
    with CandidateStore("sqlite://") as store:
        store.ingest_pair(
            PairRecord(pair_id="warm", science="s.fits", reference="r.fits"),
            _table(rng, 3, 0, np.zeros(3), np.arange(3.0), 2461100.5),
        )
    with tempfile.TemporaryDirectory() as tmp:
        write_alerts(_alerts_of(_cutouts(rng, 2), fits=True), tmp)


def _bare_files(folder: Path, n: int, size: int) -> None:
    """Create, write and rename ``n`` files, as ``write_alerts`` does, without any Avro."""
    folder.mkdir()
    data = b"x" * size
    for i in range(n):
        tmp = folder / f".{i}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        os.write(fd, data)
        os.close(fd)
        os.replace(tmp, folder / f"{i}.avro")


def _cutouts(rng, n: int) -> Cutouts:
    """``n`` triplets of 63x63 cutouts as :func:`skyscene.candidates.make_cutouts` gives."""
    shape = (n, 63, 63)
    planes = {}
    for kind in KINDS:
        planes[kind] = rng.normal(100.0, 10.0, shape).astype(np.float32)
        planes[f"{kind}_variance"] = rng.uniform(90.0, 110.0, shape).astype(np.float32)
        planes[f"{kind}_mask"] = np.zeros(shape, np.uint8)
    planes["difference_variance"][:] = 4.0  # D's variance is one number
    wcs = (
        ("WCSAXES", 2, "Number of coordinate axes"),
        ("CRPIX1", 1024.5, "Pixel coordinate of reference point"),
        ("CRPIX2", 1024.5, "Pixel coordinate of reference point"),
        ("CD1_1", -7.3e-05, "Coordinate transformation matrix element"),
        ("CD1_2", 1.1e-07, "Coordinate transformation matrix element"),
        ("CD2_1", 1.3e-07, "Coordinate transformation matrix element"),
        ("CD2_2", 7.3e-05, "Coordinate transformation matrix element"),
        ("CUNIT1", "deg", "Units of coordinate increment and value"),
        ("CUNIT2", "deg", "Units of coordinate increment and value"),
        ("CTYPE1", "RA---TAN", "Right ascension, gnomonic projection"),
        ("CTYPE2", "DEC--TAN", "Declination, gnomonic projection"),
        ("CRVAL1", 30.0, "[deg] Coordinate value at reference point"),
        ("CRVAL2", -10.0, "[deg] Coordinate value at reference point"),
        ("RADESYS", "ICRS", "Equatorial coordinate system"),
    )
    return Cutouts(
        **planes,
        origin=rng.integers(0, 2000, (n, 2)),
        candid=np.arange(n, dtype=np.int64) + 10**15,
        wcs_cards=wcs,
        meta={"size": 63, "flux_ratio": 1.0, "flux_zeropoint": 1.0, "bunit": "adu"},
    )


def _alerts_of(cut: Cutouts, *, fits: bool, level: int = 1) -> list:
    """Alerts of the cutouts: stamps as the search pipeline encodes them (``fits``: image,
    variance, mask and WCS) or data-only (ZTF's layout, through ``make_alert``)."""
    n = len(cut)
    table = {
        "candid": cut.candid,
        "jd": np.full(n, 2461100.5),
        "fid": np.full(n, 2),
        "ra": np.full(n, 30.0),
        "dec": np.full(n, -10.0),
        "isdiffpos": np.full(n, "t"),
        "magpsf": np.full(n, 19.0),
        "sigmapsf": np.full(n, 0.1),
    }
    ids = ["SKY26aaaaaab"] * n
    if not fits:
        return alerts_from_table(
            table,
            object_ids=ids,
            cutouts={k: getattr(cut, k) for k in KINDS},
            config=AlertConfig(compresslevel=level),
        )
    stamps = {k: [cut.fits_bytes(i, k, compresslevel=level) for i in range(n)] for k in KINDS}
    # as the pipeline: the encoded stamps go into the packets without being decoded again
    return alerts_from_table(table, object_ids=ids, cutouts=stamps, decode=False)


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
    parser.add_argument("--compresslevel", type=int, default=1, help="gzip level of the stamps")
    parser.add_argument(
        "--dir", help="folder for the alert files (default: a temporary one; try /dev/shm)"
    )
    args = parser.parse_args()
    rng = np.random.default_rng(2026)
    n = args.per_pair
    _warm_up(rng)
    print(_load())
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
                with _Clock() as clock:
                    for p, table in enumerate(tables):
                        store.ingest_pair(
                            PairRecord(
                                pair_id=f"pair{p}", science=f"s{p}.fits", reference="r.fits"
                            ),
                            table,
                            cutouts if with_cutouts else None,
                        )
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
                f"ingest ({label}): {clock.rate(args.pairs * n)} candidates "
                f"({args.pairs} pairs x {n}, {counts['objects']} objects; goal >= 5000); "
                f"rerun {rerun * 1e3:.0f} ms, rows unchanged"
            )
        out = Path(tempfile.mkdtemp(dir=args.dir or tmp))
        with _Clock() as floor:
            _bare_files(out / "bare", args.alerts, 90_000)
        print(
            f"file system floor: {floor.rate(args.alerts)} bare 90 kB files created "
            f"atomically in {out} (what one file per packet can reach here)"
        )
        cut = _cutouts(rng, args.alerts)
        for fits, label in ((True, "image+variance+mask+WCS"), (False, "data only, ZTF layout")):
            with _Clock() as clock:
                write_alerts(
                    _alerts_of(cut, fits=fits, level=args.compresslevel),
                    out / f"alerts{int(fits)}",
                )
            print(
                f"alerts from 63x63 triplets, stamps encoded ({label}, level "
                f"{args.compresslevel}): "
                f"{clock.rate(args.alerts)} packets (goal >= 2000/s)"
            )
        science, reference, difference = (encode_stamp(c) for c in cut.triplet(0))
        for decode in (False, True):
            with _Clock() as build:
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
                        decode=decode,
                    )
                    for i in range(args.alerts)
                ]
            folder = out / f"alerts-ready{int(decode)}"
            with _Clock() as write:
                write_alerts(alerts, folder)
            print(
                f"alerts from ready stamps ({'decoded too' if decode else 'not decoded, as the pipeline'}): "
                f"build {build.rate(args.alerts)} packets, write {write.rate(args.alerts)} packets"
            )
        print(_load())
        shutil.rmtree(out)


if __name__ == "__main__":
    main()
