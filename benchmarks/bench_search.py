"""Transient-search benchmark: pairs per minute, per-stage times, alert and database throughput.

Run: ``python benchmarks/bench_search.py [--size 2048] [--n-pairs 8] [--n-transients 200]
[--epochs-per-reference 1] [--model MODEL.pt|default] [--scheduler processes] [--workers 2]
[--workdir DIR]``.

1. **Pipeline.** ``--n-pairs`` seeded pairs of ``--size``² with ``--n-transients``
   transients each (S/N 8-100; the number scales with the area below 2048² unless given)
   are simulated first (not timed; kept in ``--workdir`` when given), then searched with
   :func:`skyscene.pipelines.search.run_search` on ``--scheduler`` with ``--workers``
   workers, into a fresh folder: wall time (cluster start included) → pairs per minute;
   per-pair means of the stages (read,
   align+subtract, reference catalog, find+features, cutouts with their gzip-FITS
   encoding, real/bogus scoring with ``--model``, part file, database, alerts).
   ``--epochs-per-reference K`` searches K science epochs (the same image at K times) per
   reference, as a survey does (one reference per field): the reference catalog is then
   computed once per reference (``parts/catalogs``); the default 1 (every pair its own
   reference) is the worst case.
2. **Alerts.** The first pair's candidates and stamps: ``alerts_from_table`` with the
   ready gzip-FITS stamps (``decode=False``, as the pipeline) + ``write_alerts`` into an
   empty folder → packets/s; and with the stamps decoded into arrays too (``decode=True``).
3. **Database.** Every pair's candidate table ingested into a fresh SQLite file, without
   and with the cutouts → candidates/s.

Goals (issue 12, 2 cores, 2048²): ≥ 20 pairs/min; find + features + cutouts ≤ 0.3 s per
pair for 200 candidates; alert writing ≥ 2000 packets/s; database ingestion ≥ 5000
candidates/s on SQLite. Figures at other sizes are printed beside the same goals for
reference only.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

GOALS = {
    "pairs_per_min": 20.0,
    "find_features_cutouts_s": 0.3,
    "packets_per_s": 2000.0,
    "candidates_per_s": 5000.0,
}


def _simulate(workdir: Path, n_pairs: int, size: int, n_transients: int, epochs: int = 1) -> Path:
    from astropy import units as u

    from skyscene.io import read_exposure, write_exposure
    from skyscene.pipelines.diffim import simulate_pair_files

    data = workdir / f"pairs-{size}-{n_transients}"
    csv = data / (f"pairs-{n_pairs}-e{epochs}.csv")
    if csv.exists():
        return csv
    rows = ["pair_id,science,reference"]
    t0 = time.perf_counter()
    for i in range((n_pairs + epochs - 1) // epochs):
        folder = data / f"p{i}"
        if not (folder / "reference.fits").exists():
            simulate_pair_files(
                folder,
                seed=9000 + i,
                shape=(size, size),
                n_transients=n_transients,
                transient_snr=(8.0, 100.0),
            )
        for k in range(epochs):
            if len(rows) > n_pairs:
                break
            name = "science.fits" if k == 0 else f"science-e{k}.fits"
            if k and not (folder / name).exists():
                science = read_exposure(folder / "science.fits")
                write_exposure(folder / name, science.replace(time=science.time + k * u.day))
            rows.append(f"p{i}e{k},p{i}/{name},p{i}/reference.fits")
    csv.write_text("\n".join(rows) + "\n")
    print(f"simulated {n_pairs} pairs of {size}² in {time.perf_counter() - t0:.1f} s (not timed)")
    return csv


def _loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def _line(label: str, value: float, unit: str, goal: str) -> None:
    print(f"  {label:34s} {value:10.3f} {unit:14s} goal {goal}")


def pipeline(csv: Path, out: Path, *, scheduler: str, workers: int, model: str | None = None):
    from skyscene.pipelines.search import STAGES, SearchConfig, run_search

    if out.exists():
        shutil.rmtree(out)
    config = SearchConfig(model=model)
    t0 = time.perf_counter()
    summary = run_search(csv, out, config=config, scheduler=scheduler, n_workers=workers)
    wall = time.perf_counter() - t0
    ok = [p for p in summary.pairs if p["status"] == "ok"]
    n = max(len(ok), 1)
    print(
        f"\npipeline: {summary.n_ok}/{summary.n_pairs} pairs, {summary.n_candidates} candidates "
        f"({summary.n_candidates / n:.0f} per pair), scheduler {scheduler}, {workers} workers, "
        f"model {model or 'none'}, wall {wall:.1f} s (cluster start included)"
    )
    _line("pairs per minute", 60.0 * summary.n_ok / wall, "pairs/min", "≥ 20 (2 cores, 2048²)")
    print("  per pair, mean seconds by stage:")
    for stage in STAGES:
        mean = float(np.mean([p["timings"].get(stage, 0.0) for p in ok])) if ok else 0.0
        print(f"    {stage:16s} {mean:8.3f} s")
    ffc = [p["timings"]["find+features"] + p["timings"]["cutouts"] for p in ok]
    n_mean = float(np.mean([p["n_candidates"] for p in ok])) if ok else 0.0
    _line(
        "find+features+cutouts per pair",
        float(np.mean(ffc)) if ffc else 0.0,
        "s",
        f"≤ 0.3 s for 200 candidates (here {n_mean:.0f}; cutouts include the gzip-FITS stamps)",
    )
    alerts_s = sum(p["timings"].get("alerts", 0.0) for p in ok)
    if alerts_s > 0:
        _line(
            "alerts in the pipeline",
            summary.n_alerts_written / alerts_s,
            "packets/s",
            "(prv lookups, stamp decoding and writing)",
        )
    db_s = sum(p["timings"].get("database", 0.0) for p in ok)
    if db_s > 0:
        _line(
            "database in the pipeline",
            summary.n_candidates / db_s,
            "candidates/s",
            "(with cutouts, objectId lookup)",
        )
    return summary


def alerts_speed(summary, workdir: Path) -> None:
    from astropy.table import Table

    from skyscene.alerts import alerts_from_table, write_alerts
    from skyscene.pipelines.search import _read_part

    out = Path(summary.out_dir)
    table = Table.read(out / "candidates.parquet")
    records = sorted((out / "parts").glob("*.npz"))
    if not records or not len(table):
        print("alerts: no candidates")
        return
    candid, stamps = _read_part(records[0])
    rows = table[np.isin(table["candid"], candid)]
    order = {int(c): i for i, c in enumerate(candid)}
    idx = [order[int(c)] for c in rows["candid"]]
    cutouts = {k: [stamps[k][i] for i in idx] for k in stamps}
    target = workdir / "alerts-bench"
    print(f"\nalerts: {len(rows)} packets of one pair (63×63 gzip-FITS triplets given as bytes)")
    warm = alerts_from_table(rows[:1], object_ids=list(rows["objectId"][:1]), cutouts=None)
    write_alerts(warm, target / "warm-up")  # schema parsing, imports: once per process
    for decode in (False, True):
        shutil.rmtree(target, ignore_errors=True)
        t0 = time.perf_counter()
        alerts = alerts_from_table(
            rows, object_ids=list(rows["objectId"]), cutouts=cutouts, decode=decode
        )
        t_make = time.perf_counter() - t0
        t0 = time.perf_counter()
        files = write_alerts(alerts, target)
        t_write = time.perf_counter() - t0
        n = len(files.paths)
        label = "make + write, stamps decoded too" if decode else "make + write (as the pipeline)"
        _line(label, n / (t_make + t_write), "packets/s", "≥ 2000" if not decode else "")
        if not decode:
            _line("  write only", n / t_write, "packets/s", "")
    shutil.rmtree(target, ignore_errors=True)


def database_speed(summary, workdir: Path) -> None:
    from astropy.table import Table

    from skyscene.pipelines.search import _read_part
    from skyscene.store import CandidateStore, PairRecord

    out = Path(summary.out_dir)
    table = Table.read(out / "candidates.parquet")
    parts = {p.name.rsplit("-", 1)[0]: p for p in (out / "parts").glob("*.npz")}
    pairs = sorted(set(table["pair_id"]))
    print(f"\ndatabase: {len(table)} candidates of {len(pairs)} pairs into a fresh SQLite file")
    for with_cutouts in (False, True):
        db = workdir / "bench-store.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        store = CandidateStore(f"sqlite:///{db}")
        work = []
        for pair_id in pairs:
            rows = table[table["pair_id"] == pair_id]
            cut = None
            if with_cutouts:
                part = next(p for k, p in parts.items() if k == pair_id)
                candid, stamps = _read_part(part)
                order = {int(c): i for i, c in enumerate(candid)}
                idx = [order[int(c)] for c in rows["candid"]]
                cut = {k: [stamps[k][i] for i in idx] for k in stamps}
            columns = {name: list(rows[name]) for name in rows.colnames if name != "objectId"}
            work.append((pair_id, columns, cut))
        t0 = time.perf_counter()
        n = 0
        for pair_id, columns, cut in work:
            record = PairRecord(pair_id=pair_id, science=f"{pair_id}/s", reference=f"{pair_id}/r")
            n += store.ingest_pair(record, columns, cut).n_candidates
        seconds = time.perf_counter() - t0
        store.close()
        label = "ingestion with cutouts" if with_cutouts else "ingestion"
        _line(label, n / seconds, "candidates/s", "≥ 5000" if not with_cutouts else "")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=2048, help="image side (default 2048)")
    parser.add_argument("--n-pairs", type=int, default=8, help="pairs (default 8)")
    parser.add_argument(
        "--epochs-per-reference",
        type=int,
        default=1,
        help="science epochs per reference (default 1: every pair its own reference)",
    )
    parser.add_argument(
        "--model", default=None, help="score with this real/bogus model (or 'default')"
    )
    parser.add_argument(
        "--n-transients",
        type=int,
        default=None,
        help="transients per pair (default 200 at 2048², scaled with the area)",
    )
    parser.add_argument("--scheduler", default="processes", help="default processes")
    parser.add_argument("--workers", type=int, default=2, help="LocalCluster workers (2)")
    parser.add_argument("--workdir", default=None, help="keep the simulated pairs here")
    args = parser.parse_args(argv)
    n_transients = args.n_transients
    if n_transients is None:
        n_transients = max(10, round(200 * (args.size / 2048) ** 2))
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="bench-search-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"load average at start: {_loadavg()}")
    try:
        csv = _simulate(workdir, args.n_pairs, args.size, n_transients, args.epochs_per_reference)
        summary = pipeline(
            csv, workdir / "out", scheduler=args.scheduler, workers=args.workers, model=args.model
        )
        alerts_speed(summary, workdir)
        database_speed(summary, workdir)
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"\nload average at the end: {_loadavg()}")
    if args.size != 2048:
        print(f"\n(size {args.size}²: the goals are for 2048²; figures for reference only)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
