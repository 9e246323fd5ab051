"""Fault injection: kill batch commands with SIGKILL, rerun, compare with an uninterrupted run.

For every scenario (a pipeline run through its CLI on small ``skyscene simulate`` data):

1. an uninterrupted reference run into a fresh folder;
2. for every kill point, a fresh run into another folder that is SIGKILLed (the whole
   process group, Dask workers included) after ``k`` task results are on disk or after
   ``t`` seconds; then the same command again, to completion;
3. the result tables of the resumed run are compared with the reference byte for byte
   (columns that hold wall/CPU timings are removed first: they are measurements, not
   results), and the output folder is checked for left-over ``*.tmp`` files and
   duplicate rows.

It prints one line per run and the tally ``N scenarios, N identical``; the exit status
is 0 when every run is identical and clean, 1 otherwise.

Add a pipeline (the transient search, say) by appending a :class:`Scenario` to
:func:`scenarios`: how to make its input, its command line, how to count finished tasks
and which files are its result tables.

Usage::

    .venv/bin/python benchmarks/faults.py [--only smp-batch] [--scheduler processes]
        [--workdir DIR] [--keep]
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

SKYSCENE = [sys.executable, "-m", "skyscene.cli"]
#: Columns that hold timings of the run that computed a row (not results).
TIMING_COLUMNS = ("seconds", "cpu_seconds")


@dataclass(frozen=True)
class KillPoint:
    """Kill after ``after_tasks`` task results are on disk, or after ``after_seconds``."""

    after_tasks: int | None = None
    after_seconds: float | None = None

    def __str__(self) -> str:
        if self.after_tasks is not None:
            return f"kill after {self.after_tasks} task(s)"
        return f"kill after {self.after_seconds:g} s"


@dataclass(frozen=True)
class Scenario:
    """One pipeline under fault injection.

    Attributes
    ----------
    name : str
    prepare : callable
        ``prepare(data_dir)`` writes the input data (once per scenario).
    command : callable
        ``command(data_dir, out_dir, scheduler)`` → the CLI arguments after ``skyscene``.
    finished_tasks : callable
        ``finished_tasks(out_dir)`` → how many task results are on disk now.
    tables : callable
        ``tables(out_dir)`` → the result tables (paths) to compare.
    key_columns : tuple of str
        Columns that identify a row (duplicate-row check), per table.
    ok_status : tuple of int
        Exit statuses of a completed run (smp-batch exits 3 when rows failed).
    kill_points : sequence of KillPoint
    """

    name: str
    prepare: Callable[[Path], None]
    command: Callable[[Path, Path, str], list[str]]
    finished_tasks: Callable[[Path], int]
    tables: Callable[[Path], list[Path]]
    key_columns: tuple[str, ...] = ()
    ok_status: tuple[int, ...] = (0,)
    kill_points: Sequence[KillPoint] = field(default_factory=tuple)


def _cli(args: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*SKYSCENE, "-q", *args], capture_output=True, text=True, **kw)


def _count(folder: Path, pattern: str) -> int:
    return sum(1 for p in folder.glob(pattern) if not p.name.startswith("."))


# ----------------------------------------------------------------------------- smp-batch
def _smp_prepare(data: Path) -> None:
    import json

    rows = ["id,ra,dec,detection"]
    for i in range(6):
        det = data / "stamps" / f"t{i}"
        r = _cli(
            [
                "simulate",
                "tno",
                str(det),
                "--seed",
                str(100 + i),
                "--n-exposures",
                "5",
                "--snr",
                "30",
            ]
        )
        if r.returncode:
            raise RuntimeError(f"simulate tno failed: {r.stderr.strip()}")
        truth = json.loads((det / "truth.json").read_text())
        rows.append(f"t{i},{truth['ra']},{truth['dec']},exp00.fits")
    # one detection with an unusable stamp: a failure that must survive the kills too
    bad = data / "stamps" / "t5" / "exp03.fits"
    bad.write_bytes(bad.read_bytes()[:5000])
    (data / "detections.csv").write_text("\n".join(rows) + "\n")


def _smp_command(data: Path, out: Path, scheduler: str) -> list[str]:
    return [
        "smp-batch",
        str(data / "detections.csv"),
        "--stamps",
        str(data / "stamps"),
        "--out",
        str(out / "results.parquet"),
        "--grid-n",
        "10",
        "--grid-spacing",
        "0.6",
        "--scheduler",
        scheduler,
        "--workers",
        "2",
    ]


def _smp_finished(out: Path) -> int:
    parts = out / "results.parts"
    return _count(parts, "*.pkl") if parts.is_dir() else 0


def _smp_tables(out: Path) -> list[Path]:
    return [out / "results.csv", out / "results.parquet"]


# ----------------------------------------------------------------------------- reduce
def _reduce_prepare(data: Path) -> None:
    r = _cli(["simulate", "observations", str(data / "frames"), "--n-images", "6", "--size", "128"])
    if r.returncode:
        raise RuntimeError(f"simulate observations failed: {r.stderr.strip()}")


def _reduce_command(data: Path, out: Path, scheduler: str) -> list[str]:
    return ["reduce", str(data / "frames"), str(out / "red"), "--scheduler", scheduler]


def _reduce_finished(out: Path) -> int:
    work = out / "red" / ".work"
    return sum(_count(d, "*.pkl") for d in work.iterdir()) if work.is_dir() else 0


def _reduce_tables(out: Path) -> list[Path]:
    red = out / "red"
    return sorted((red / "lcs").rglob("*.csv")) + sorted((red / "cat").rglob("*.csv"))


# ----------------------------------------------------------------------------- search
def _search_prepare(data: Path) -> None:
    from skyscene.pipelines.diffim import simulate_pair_files

    rows = ["pair_id,science,reference"]
    for i in range(5):
        simulate_pair_files(
            data / f"p{i}", seed=400 + i, shape=(256, 256), n_transients=5, transient_snr=20.0
        )
        rows.append(f"p{i},p{i}/science.fits,p{i}/reference.fits")
    # an entry whose science file does not exist: a failure that must survive the kills
    rows.append("gone,p9/science.fits,p0/reference.fits")
    (data / "pairs.csv").write_text("\n".join(rows) + "\n")


def _search_command(data: Path, out: Path, scheduler: str) -> list[str]:
    return [
        "search",
        str(data / "pairs.csv"),
        "--out",
        str(out / "search"),
        "--scheduler",
        scheduler,
        "--workers",
        "2",
    ]


def _search_finished(out: Path) -> int:
    parts = out / "search" / "parts"
    return _count(parts, "*.pkl") if parts.is_dir() else 0


def _search_tables(out: Path) -> list[Path]:
    folder = out / "search"
    return [folder / "candidates.csv", folder / "candidates.parquet"]


def scenarios() -> list[Scenario]:
    """The pipelines under test; append the transient search here when it exists."""
    return [
        Scenario(
            name="smp-batch",
            prepare=_smp_prepare,
            command=_smp_command,
            finished_tasks=_smp_finished,
            tables=_smp_tables,
            key_columns=("id",),
            ok_status=(0, 3),
            kill_points=(
                KillPoint(after_tasks=1),
                KillPoint(after_tasks=4),
                KillPoint(after_seconds=1.5),
            ),
        ),
        Scenario(
            name="reduce",
            prepare=_reduce_prepare,
            command=_reduce_command,
            finished_tasks=_reduce_finished,
            tables=_reduce_tables,
            key_columns=(),
            kill_points=(
                KillPoint(after_tasks=2),
                KillPoint(after_tasks=10),
                KillPoint(after_seconds=4.0),
            ),
        ),
        Scenario(
            name="search",
            prepare=_search_prepare,
            command=_search_command,
            finished_tasks=_search_finished,
            tables=_search_tables,
            key_columns=("candid",),
            ok_status=(3,),  # one entry names a missing file
            kill_points=(
                KillPoint(after_tasks=1),
                KillPoint(after_tasks=4),
                KillPoint(after_seconds=4.0),
            ),
        ),
    ]


# ----------------------------------------------------------------------------- machinery
def _run_to_end(sc: Scenario, data: Path, out: Path, scheduler: str, timeout: float) -> str:
    """Run to completion; '' or a one-line problem."""
    r = _cli(sc.command(data, out, scheduler), timeout=timeout)
    if r.returncode not in sc.ok_status:
        tail = (r.stderr.strip().splitlines() or ["(no output)"])[-1]
        return f"exit {r.returncode}: {tail}"
    return ""


def _kill_during(
    sc: Scenario, data: Path, out: Path, scheduler: str, point: KillPoint, timeout: float
) -> str:
    """Start the command and SIGKILL its process group at ``point``; describe when."""
    proc = subprocess.Popen(
        [*SKYSCENE, "-q", *sc.command(data, out, scheduler)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    t0 = time.perf_counter()
    try:
        while proc.poll() is None and time.perf_counter() - t0 < timeout:
            if point.after_tasks is not None and sc.finished_tasks(out) >= point.after_tasks:
                break
            if point.after_seconds is not None and time.perf_counter() - t0 >= point.after_seconds:
                break
            time.sleep(0.02)
    finally:
        done = sc.finished_tasks(out)
        killed = proc.poll() is None
        if killed:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    if killed:
        return f"killed at {time.perf_counter() - t0:.1f} s with {done} task(s) on disk"
    return f"finished before the kill ({done} tasks)"


def _normalised(path: Path) -> bytes:
    """The file's bytes; for tables with timing columns, the bytes without them."""
    if path.suffix == ".csv":
        text = path.read_text()
        rows = list(csv.reader(io.StringIO(text)))
        if rows and any(c in rows[0] for c in TIMING_COLUMNS):
            keep = [i for i, c in enumerate(rows[0]) if c not in TIMING_COLUMNS]
            buf = io.StringIO()
            csv.writer(buf, lineterminator="\n").writerows([[r[i] for i in keep] for r in rows])
            return buf.getvalue().encode()
        return text.encode()
    if path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        table = table.drop([c for c in TIMING_COLUMNS if c in table.column_names])
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        return sink.getvalue().to_pybytes()
    return path.read_bytes()


def _duplicates(path: Path, keys: tuple[str, ...]) -> int:
    if not keys or path.suffix != ".csv":
        return 0
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    ids = [tuple(r[k] for k in keys) for r in rows]
    return len(ids) - len(set(ids))


def compare(sc: Scenario, reference: Path, resumed: Path) -> list[str]:
    """Problems of ``resumed`` against ``reference`` (empty: identical and clean)."""
    problems = []
    ref_tables = {p.relative_to(reference): p for p in sc.tables(reference)}
    new_tables = {p.relative_to(resumed): p for p in sc.tables(resumed)}
    if not ref_tables:
        problems.append("the reference run wrote no result table")
    if set(ref_tables) != set(new_tables):
        problems.append(f"different tables: {sorted(map(str, set(ref_tables) ^ set(new_tables)))}")
    for rel in sorted(set(ref_tables) & set(new_tables)):
        if _normalised(ref_tables[rel]) != _normalised(new_tables[rel]):
            problems.append(f"{rel} differs")
        if n := _duplicates(new_tables[rel], sc.key_columns):
            problems.append(f"{rel}: {n} duplicate row(s)")
    if tmp := sorted(p for p in resumed.rglob("*.tmp") if p.name.startswith(".")):
        problems.append(f"{len(tmp)} left-over .tmp file(s), e.g. {tmp[0].relative_to(resumed)}")
    return problems


def run_scenario(
    sc: Scenario,
    root: Path,
    *,
    scheduler: str,
    timeout: float = 300.0,
    kill_points: Sequence[KillPoint] | None = None,
) -> list[tuple[str, list[str]]]:
    """Reference run plus one kill/resume run per kill point: [(label, problems)]."""
    data = root / sc.name / "data"
    data.mkdir(parents=True, exist_ok=True)
    sc.prepare(data)
    reference = root / sc.name / "reference"
    if problem := _run_to_end(sc, data, reference, scheduler, timeout):
        return [("reference run", [problem])]
    outcome = []
    for i, point in enumerate(kill_points if kill_points is not None else sc.kill_points):
        out = root / sc.name / f"killed{i}"
        when = _kill_during(sc, data, out, scheduler, point, timeout)
        problem = _run_to_end(sc, data, out, scheduler, timeout)
        problems = [f"rerun: {problem}"] if problem else compare(sc, reference, out)
        outcome.append((f"{point} ({when})", problems))
    return outcome


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", help="scenario name (repeatable)")
    parser.add_argument(
        "--scheduler", default="synchronous", help="synchronous (default) | processes | tcp://..."
    )
    parser.add_argument("--workdir", default=None, help="folder for the runs (default: temp)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args(argv)
    root = Path(args.workdir or tempfile.mkdtemp(prefix="skyscene-faults-"))
    n = identical = 0
    try:
        for sc in scenarios():
            if args.only and sc.name not in args.only:
                continue
            t0 = time.perf_counter()
            for label, problems in run_scenario(sc, root, scheduler=args.scheduler):
                n += 1
                identical += not problems
                verdict = "identical" if not problems else "DIFFERENT: " + "; ".join(problems)
                print(f"{sc.name:10s} {label}: {verdict}", flush=True)
            print(f"{sc.name:10s} ({time.perf_counter() - t0:.0f} s)", flush=True)
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(root, ignore_errors=True)
    print(f"{n} scenarios, {identical} identical")
    return 0 if n and identical == n else 1


if __name__ == "__main__":
    sys.exit(main())
