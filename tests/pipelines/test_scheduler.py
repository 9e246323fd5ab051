"""run_tasks: cache keys (config, version), failures retried, stale temporary files,
shared inputs, scheduler files, unreachable schedulers, worker path checks, Ctrl-C."""

from __future__ import annotations

import json
import operator
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import skyscene
from skyscene.errors import SkysceneError
from skyscene.pipelines._scheduler import (
    SchedulerError,
    TaskFailure,
    is_failure,
    run_tasks,
    task_key,
)

VENV_BIN = Path(sys.executable).parent


class _Counter:
    """A task that counts its calls; fails (TaskFailure) on items in ``fail``."""

    def __init__(self, fail=()):
        self.calls: list = []
        self.fail = set(fail)

    def __call__(self, item):
        self.calls.append(item)
        if item in self.fail:
            return TaskFailure(f"item {item}: bad data", error="ValueError", item=str(item))
        return item * 10


def _run(func, items, cache, **kw):
    return run_tasks(
        func,
        items,
        scheduler="synchronous",
        cache_dir=cache,
        keys=[task_key("t", i) for i in items],
        **kw,
    )


def test_task_key_includes_the_skyscene_version(monkeypatch):
    key = task_key({"grid_n": 20}, "d1")
    assert key == task_key({"grid_n": 20}, "d1")
    assert key != task_key({"grid_n": 8}, "d1")
    monkeypatch.setattr(skyscene, "__version__", "0.0.0+other")
    assert task_key({"grid_n": 20}, "d1") != key


def test_results_of_another_configuration_are_never_reused(tmp_path):
    first = _Counter()
    assert _run(first, [1, 2, 3], tmp_path, config={"grid_n": 20}) == [10, 20, 30]
    again = _Counter()
    res = _run(again, [1, 2, 3], tmp_path, config={"grid_n": 20})
    assert res == [10, 20, 30] and again.calls == [] and res.n_reused == 3
    other = _Counter()
    res = _run(other, [1, 2, 3], tmp_path, config={"grid_n": 8})
    assert other.calls == [1, 2, 3] and res.n_reused == 0


def test_failed_tasks_are_retried_unless_told_otherwise(tmp_path):
    first = _Counter(fail={2})
    res = _run(first, [1, 2, 3], tmp_path)
    assert res.n_failed == 1 and is_failure(res[1]) and res[1].status == "failed"
    assert len(list(tmp_path.glob("*.failed.pkl"))) == 1
    kept = _Counter()
    res = _run(kept, [1, 2, 3], tmp_path, retry_failed=False)
    assert kept.calls == [] and res.n_failed == 1 and res.n_reused == 3
    fixed = _Counter()
    res = _run(fixed, [1, 2, 3], tmp_path)  # default: retry the failure only
    assert fixed.calls == [2] and list(res) == [10, 20, 30] and res.n_failed == 0
    assert list(tmp_path.glob("*.failed.pkl")) == []  # the old failure is gone
    # a mapping with status "failed" is a failure too
    assert is_failure({"status": "failed"}) and not is_failure({"status": "ok"})


def test_stale_tmp_files_of_a_killed_run_are_removed(tmp_path):
    stale = tmp_path / ".abc.pkl.x1y2.pkl.tmp"
    stale.write_bytes(b"")
    other = tmp_path / "keep.txt"
    other.write_text("x")
    _run(_Counter(), [1], tmp_path)
    assert not stale.exists() and other.exists()


def test_shared_input_synchronous(tmp_path):
    res = run_tasks(operator.add, [1, 2, 3], scheduler="synchronous", shared=100)
    assert res == [101, 102, 103]
    # the shared input is part of the cache names
    a = run_tasks(
        operator.add, [1], scheduler="synchronous", shared=1, cache_dir=tmp_path, keys=["k"]
    )
    b = run_tasks(
        operator.add, [1], scheduler="synchronous", shared=2, cache_dir=tmp_path, keys=["k"]
    )
    assert (a[0], b[0], b.n_reused) == (2, 3, 0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_scheduler_is_one_line_within_the_timeout():
    address = f"tcp://127.0.0.1:{_free_port()}"
    t0 = time.perf_counter()
    with pytest.raises(SchedulerError, match=r"cannot reach the Dask scheduler 'tcp://127\.0\.0"):
        run_tasks(operator.neg, [1], scheduler=address, connect_timeout=1.0)
    assert time.perf_counter() - t0 < 8.0
    assert issubclass(SchedulerError, SkysceneError)


def test_missing_or_bad_scheduler_file(tmp_path):
    with pytest.raises(SchedulerError, match=r"scheduler file '.*nope\.json' does not exist"):
        run_tasks(operator.neg, [1], scheduler=str(tmp_path / "nope.json"))
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    with pytest.raises(SchedulerError, match=r"bad\.json: not a Dask scheduler file"):
        run_tasks(operator.neg, [1], scheduler=str(bad))


def test_local_cluster_matches_synchronous_with_shared_and_path_check(tmp_path):
    from distributed import Client, LocalCluster

    items = list(range(6))
    expected = run_tasks(operator.add, items, scheduler="synchronous", shared=7)
    with (
        LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        res = run_tasks(
            operator.add,
            items,
            client=client,
            shared=7,
            cache_dir=tmp_path / "cache",
            keys=[task_key(i) for i in items],
            require_paths=[tmp_path],
        )
        assert list(res) == list(expected)
        assert len(list((tmp_path / "cache").glob("*.pkl"))) == 6
        with pytest.raises(SchedulerError, match=r"Dask worker tcp://.* cannot see '.*gone'"):
            run_tasks(operator.neg, [1], client=client, require_paths=[tmp_path / "gone"])


@pytest.mark.slow
def test_dask_scheduler_and_worker_processes_through_a_scheduler_file(tmp_path):
    """A real ``dask scheduler`` + ``dask worker`` on loopback, given by scheduler file."""
    sched_file = tmp_path / "scheduler.json"
    common = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path)
    sched = subprocess.Popen(
        [
            str(VENV_BIN / "dask"),
            "scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--no-dashboard",
            "--scheduler-file",
            str(sched_file),
        ],
        **common,
    )
    worker = None
    try:
        for _ in range(200):
            if sched_file.exists() and sched_file.stat().st_size:
                break
            time.sleep(0.1)
        worker = subprocess.Popen(
            [
                str(VENV_BIN / "dask"),
                "worker",
                "--scheduler-file",
                str(sched_file),
                "--nthreads",
                "1",
                "--nworkers",
                "1",
                "--no-dashboard",
                "--no-nanny",
            ],
            **common,
        )
        from distributed import Client

        with Client(scheduler_file=str(sched_file), timeout=30) as c:
            c.wait_for_workers(1, timeout=60)
        items = [3, 1, 4, 1, 5]
        expected = run_tasks(operator.mul, items, scheduler="synchronous", shared=3)
        res = run_tasks(
            operator.mul, items, scheduler=str(sched_file), shared=3, require_paths=[tmp_path]
        )
        assert list(res) == list(expected) == [9, 3, 12, 3, 15]
        address = json.loads(sched_file.read_text())["address"]
        assert run_tasks(operator.neg, items, scheduler=address) == [-i for i in items]
    finally:
        for proc in (worker, sched):
            if proc is not None:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:  # a loaded machine: stop it hard
                    proc.kill()
                    proc.wait()


@pytest.mark.slow
def test_ctrl_c_is_quiet(tmp_path):
    """SIGINT to the process group: no Dask tracebacks, KeyboardInterrupt reaches the caller."""
    script = tmp_path / "batch.py"
    script.write_text(
        textwrap.dedent(
            """
            import sys, time
            from skyscene.pipelines._scheduler import run_tasks
            if __name__ == "__main__":
                try:
                    run_tasks(time.sleep, [2.0] * 20, scheduler="processes", n_workers=2,
                              cache_dir=sys.argv[1], keys=[str(i) for i in range(20)])
                except KeyboardInterrupt:
                    print("interrupted", file=sys.stderr)
                    sys.exit(130)
            """
        )
    )
    cache = tmp_path / "cache"
    proc = subprocess.Popen(
        [sys.executable, str(script), str(cache)],
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.time() + 60
    while time.time() < deadline and not list(cache.glob("*.pkl")):
        time.sleep(0.2)  # wait until the cluster runs tasks
    os.killpg(proc.pid, signal.SIGINT)
    err = proc.communicate(timeout=60)[1]
    assert proc.returncode == 130, err
    assert "interrupted" in err
    assert "Traceback" not in err and "CancelledError" not in err, err
