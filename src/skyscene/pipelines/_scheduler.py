"""Running independent tasks through Dask distributed (DESIGN.md, "Scale").

``scheduler`` is ``"synchronous"`` (in this process, for debugging and tests),
``"processes"`` (default: a ``LocalCluster`` of this machine, one thread per
worker), ``"tcp://HOST:PORT"`` (an existing cluster) or the path of a Dask
scheduler file (the JSON that ``dask scheduler --scheduler-file FILE`` writes).
Nothing in skyscene runs its own pool or queue.

Workers of an existing cluster must see the input and output paths under the same
names (a shared file system): tasks read their inputs and write their results
themselves. ``run_tasks(..., require_paths=[...])`` checks that on every worker
before the first task.

Task cache (``cache_dir`` + ``keys``)
-------------------------------------
Each result is stored as ``cache_dir/<name>.pkl`` when its task ends, ``<name>`` a
hash of the task key, the skyscene version, ``config`` and ``shared``; a rerun reuses
it, so an interrupted batch resumes where it stopped. Callers make the keys with
:func:`task_key`, passing the **effective configuration** and the item, e.g.
``task_key(config.to_dict(), item_id, file_fingerprint)`` (or pass ``config=`` to
:func:`run_tasks`): a result computed with other settings, or by another skyscene
version, is never reused.

A task marks a **failure** by returning a :class:`TaskFailure` or a mapping with
``status == "failed"`` (see :func:`is_failure`). Failures are stored apart
(``<name>.failed.pkl``) and recomputed on the next run unless
``retry_failed=False``. Hidden ``.*.tmp`` files that a killed run left in the cache
folder are removed at the start of the next run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import pickle
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from skyscene.errors import ParameterError, SkysceneError

__all__ = [
    "SchedulerError",
    "TaskFailure",
    "TaskResults",
    "dask_client",
    "is_failure",
    "remove_stale_tmp",
    "run_tasks",
    "task_key",
]

log = logging.getLogger(__name__)

#: Seconds to wait for an existing Dask scheduler before giving up.
DEFAULT_CONNECT_TIMEOUT = 10.0

_DISTRIBUTED_LOGGERS = (
    "distributed",
    "distributed.scheduler",
    "distributed.nanny",
    "distributed.core",
    "distributed.comm",
    "distributed.client",
    "distributed.worker",
    "distributed.http.proxy",
    "distributed.batched",
    "tornado",
    "asyncio",
)


class SchedulerError(SkysceneError, ConnectionError):
    """The Dask scheduler cannot be reached, or its workers cannot see the data."""


@dataclasses.dataclass(frozen=True)
class TaskFailure:
    """What a task returns (instead of raising) when its input cannot be processed.

    Attributes
    ----------
    message : str
        One line naming the file or value at fault.
    error : str
        The exception class name (``"VerifyError"``).
    item : str
        A short description of the item (an id, a file name).
    """

    message: str
    error: str = ""
    item: str = ""

    @property
    def status(self) -> str:
        return "failed"


def is_failure(result: Any) -> bool:
    """Whether a task result marks a failure (:class:`TaskFailure` or ``status == "failed"``)."""
    if isinstance(result, TaskFailure):
        return True
    return isinstance(result, Mapping) and result.get("status") == "failed"


class TaskResults(list):
    """The results of :func:`run_tasks` in input order (a ``list``), with counts.

    Attributes
    ----------
    n_reused : int
        Results taken from the cache (computed by an earlier run).
    n_failed : int
        Results that are failures (:func:`is_failure`).
    """

    n_reused: int = 0
    n_failed: int = 0


def _quiet_distributed(level: int = logging.WARNING) -> None:
    for name in _DISTRIBUTED_LOGGERS:
        logging.getLogger(name).setLevel(level)


def _local_worker_setup() -> None:  # runs in each LocalCluster worker process
    import signal

    # Ctrl-C reaches the whole process group; the client process cancels the tasks
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.getLogger("distributed.worker.state_machine").setLevel(logging.ERROR)


def _is_scheduler_file(scheduler: str) -> bool:
    if "://" in scheduler:
        return False
    return scheduler.endswith(".json") or os.path.sep in scheduler or Path(scheduler).is_file()


def _connect(scheduler: str, connect_timeout: float) -> Any:
    from distributed import Client

    try:
        if _is_scheduler_file(scheduler):
            path = Path(scheduler)
            if not path.is_file():
                raise SchedulerError(f"Dask scheduler file {str(path)!r} does not exist")
            try:
                address = json.loads(path.read_text())["address"]
            except (ValueError, KeyError, TypeError) as exc:
                raise SchedulerError(
                    f"{path}: not a Dask scheduler file (no JSON 'address'): {exc}"
                ) from exc
        else:
            address = scheduler
        return Client(address, timeout=connect_timeout)
    except SchedulerError:
        raise
    except (OSError, TimeoutError) as exc:
        raise SchedulerError(
            f"cannot reach the Dask scheduler {scheduler!r} within {connect_timeout:g} s "
            f"({type(exc).__name__}); is it running? (--scheduler synchronous|processes|"
            "tcp://HOST:PORT|SCHEDULER_FILE.json)"
        ) from None


def _close_quietly(*objs: Any) -> None:
    _quiet_distributed(logging.CRITICAL)
    for obj in objs:
        with contextlib.suppress(Exception):
            obj.close()


@contextlib.contextmanager
def dask_client(
    scheduler: str = "processes",
    *,
    n_workers: int | None = None,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
) -> Iterator[Any]:
    """A ``distributed.Client`` for ``scheduler`` (None for ``"synchronous"``).

    Raises :class:`SchedulerError` (one line) when an existing scheduler
    (``tcp://...`` or a scheduler file) does not answer within ``connect_timeout``
    seconds.
    """
    if scheduler == "synchronous":
        yield None
        return
    if not isinstance(scheduler, str) or not scheduler:
        raise ParameterError(f"scheduler must be a non-empty string, got {scheduler!r}")
    from distributed import Client, LocalCluster

    # distributed configures its own loggers at import; keep them quiet unless -vv
    if logging.getLogger("skyscene").getEffectiveLevel() > logging.DEBUG:
        _quiet_distributed()
    interrupted = False
    if scheduler == "processes":
        workers = n_workers or min(os.cpu_count() or 1, 8)
        cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.WARNING,
        )
        client = Client(cluster)
        try:
            # Ctrl-C goes to the whole process group: the workers must not print
            # their own KeyboardInterrupt tracebacks; this process cancels them.
            with contextlib.suppress(Exception):
                client.run(_local_worker_setup)
            yield client
        except KeyboardInterrupt:
            interrupted = True
            raise
        finally:
            if interrupted:
                _close_quietly(client, cluster)
            else:
                client.close()
                cluster.close()
    elif "://" in scheduler or _is_scheduler_file(scheduler):
        client = _connect(scheduler, connect_timeout)
        try:
            yield client
        except KeyboardInterrupt:
            interrupted = True
            raise
        finally:
            if interrupted:
                _close_quietly(client)
            else:
                client.close()
    else:
        raise ParameterError(
            "scheduler must be 'synchronous', 'processes', 'tcp://HOST:PORT' or a Dask "
            f"scheduler file, got {scheduler!r}"
        )


def _missing_paths(paths: Sequence[str]) -> list[str]:  # runs in each worker
    return [p for p in paths if not os.path.exists(p)]


def check_worker_paths(client: Any, paths: Iterable[str | Path]) -> None:
    """Raise :class:`SchedulerError` naming the path and worker when a worker cannot see it."""
    wanted = [str(Path(p).resolve()) for p in paths]
    if not wanted or client is None:
        return
    missing = client.run(_missing_paths, wanted)
    for worker, gone in sorted(missing.items()):
        if gone:
            raise SchedulerError(
                f"Dask worker {worker} cannot see {gone[0]!r}"
                + (f" (and {len(gone) - 1} more path(s))" if len(gone) > 1 else "")
                + ": workers need the input and output paths under the same names "
                "(a shared file system)"
            )


def remove_stale_tmp(folder: str | Path, *, older_than: float = 0.0) -> int:
    """Remove hidden ``.*.tmp`` files (left by a killed atomic write) in ``folder``.

    Only files older than ``older_than`` seconds are removed. Returns how many
    (:func:`skyscene.io.remove_stale_temporaries`).
    """
    from skyscene.io import remove_stale_temporaries

    removed = remove_stale_temporaries(folder, older_than=older_than)
    if removed:
        log.info("removed %d stale temporary file(s) in %s", len(removed), folder)
    return len(removed)


class _CachedTask:
    """Run ``func(item[, shared])`` unless its result is cached; store it atomically.

    Picklable, so it runs in Dask workers: a task's result is on disk as soon as the task
    ends, and a rerun after an interruption skips it. Failures (:func:`is_failure`) go to
    ``<name>.failed.pkl`` and are reused only when ``retry_failed`` is false.
    """

    def __init__(self, func: Callable[..., Any], cache_dir: Path, *, retry_failed: bool = True):
        self.func = func
        self.cache_dir = Path(cache_dir)
        self.retry_failed = retry_failed

    def __call__(self, keyed: tuple[str, Any], *shared: Any) -> Any:
        from skyscene.io import atomic_path

        name, item = keyed
        ok = self.cache_dir / f"{name}.pkl"
        failed = self.cache_dir / f"{name}.failed.pkl"
        if ok.exists():
            with open(ok, "rb") as fh:
                return pickle.load(fh)
        if failed.exists() and not self.retry_failed:
            with open(failed, "rb") as fh:
                return pickle.load(fh)
        result = self.func(item, *shared)
        path = failed if is_failure(result) else ok
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            pickle.dump(result, fh, protocol=pickle.HIGHEST_PROTOCOL)
        if path is ok:
            failed.unlink(missing_ok=True)
        return result


def task_key(*parts: Any) -> str:
    """A stable hexadecimal key of ``parts`` and the skyscene version, for :func:`run_tasks`.

    Pass the effective configuration first, e.g.
    ``task_key(config.to_dict(), detection_id, file_fingerprint)``: a key never matches
    a result computed with other settings or by another skyscene version.
    """
    from skyscene import __version__

    digest = hashlib.sha1()
    digest.update(f"skyscene {__version__}".encode())
    for part in parts:
        try:
            digest.update(pickle.dumps(part, protocol=4))
        except (pickle.PicklingError, AttributeError, TypeError):
            # not picklable (a lambda, say): its repr may change between runs, so such
            # tasks are recomputed rather than wrongly reused
            digest.update(repr(part).encode())
    return digest.hexdigest()


def _config_part(config: Any) -> Any:
    if config is None:
        return None
    if hasattr(config, "to_dict"):
        config = config.to_dict()
    try:
        return json.dumps(config, sort_keys=True, default=repr)
    except (TypeError, ValueError):
        return repr(config)


def run_tasks(
    func: Callable[..., Any],
    items: Iterable[Any],
    *,
    scheduler: str = "processes",
    progress: bool = False,
    desc: str = "tasks",
    n_workers: int | None = None,
    client: Any = None,
    cache_dir: str | Path | None = None,
    keys: Sequence[str] | None = None,
    config: Any = None,
    retry_failed: bool = True,
    shared: Any = None,
    require_paths: Iterable[str | Path] = (),
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    on_result: Callable[[int, Any], None] | None = None,
) -> TaskResults:
    """Apply ``func`` to every item, in parallel per ``scheduler``; results in input order.

    Parameters
    ----------
    func : callable
        ``func(item)``, or ``func(item, shared)`` when ``shared`` is given. Must be
        importable by the workers (a module-level function of an installed package).
    items : iterable
    scheduler : str
        ``"synchronous"``, ``"processes"``, ``"tcp://HOST:PORT"`` or a scheduler file.
    client : distributed.Client, optional
        Use this client instead of making one.
    cache_dir : path, optional
        With ``keys`` (one per item, see :func:`task_key`): results are stored there as
        each task ends and reused by the next call. Stale ``.*.tmp`` files in it are
        removed first.
    config : dataclass config or mapping, optional
        The effective configuration; mixed into every cache name (in addition to
        whatever the keys hold).
    retry_failed : bool
        Recompute cached failures (default) instead of reusing them.
    shared : object, optional
        A large input common to all tasks (calibration masters): sent to every worker
        once (``client.scatter(shared, broadcast=True)``) instead of with every task;
        it is part of the cache names.
    require_paths : iterable of path
        Paths every worker must see (inputs, output folder); checked on every worker
        before the first task (:class:`SchedulerError` naming path and worker).
    connect_timeout : float
        Seconds to wait for an existing scheduler.
    on_result : callable, optional
        ``on_result(index, result)``, called in this process as each result arrives
        (in completion order, cached results included), e.g. to store results while
        the other tasks run.

    Returns
    -------
    TaskResults
        A list of the results in input order, with ``n_reused`` and ``n_failed``.

    A task that raises makes ``run_tasks`` raise that exception (tasks that should not
    stop the batch catch their own errors and return a :class:`TaskFailure`). On Ctrl-C
    the futures are cancelled and the client closed without Dask's tracebacks; the
    ``KeyboardInterrupt`` propagates to the caller.
    """
    from tqdm.auto import tqdm

    items = list(items)
    out = TaskResults()
    if not items:
        return out
    args: tuple[Any, ...] = () if shared is None else (shared,)
    if cache_dir is not None:
        if keys is None or len(keys) != len(items):
            raise ParameterError("run_tasks with cache_dir needs one key per item")
        cache = Path(cache_dir)
        cache.mkdir(parents=True, exist_ok=True)
        remove_stale_tmp(cache)
        extra = task_key(_config_part(config), None if shared is None else task_key(shared))
        names = [task_key(extra, k) for k in keys]
        done = sum((cache / f"{n}.pkl").exists() for n in names)
        failed = sum(
            (cache / f"{n}.failed.pkl").exists() and not (cache / f"{n}.pkl").exists()
            for n in names
        )
        out.n_reused = done + (0 if retry_failed else failed)
        if done or failed:
            log.info(
                "%s: %d of %d tasks already done, reusing their results%s",
                desc,
                out.n_reused,
                len(items),
                f"; retrying {failed} failed" if failed and retry_failed else "",
            )
        func = _CachedTask(func, cache, retry_failed=retry_failed)
        items = list(zip(names, items, strict=True))
    if scheduler == "synchronous" and client is None:
        out.extend(
            _reported(func(item, *args), i, on_result)
            for i, item in enumerate(tqdm(items, desc=desc, disable=not progress, unit="task"))
        )
    else:
        ctx = (
            contextlib.nullcontext(client)
            if client is not None
            else dask_client(scheduler, n_workers=n_workers, connect_timeout=connect_timeout)
        )
        with ctx as active:
            if active is None:
                out.extend(
                    _reported(func(item, *args), i, on_result)
                    for i, item in enumerate(
                        tqdm(items, desc=desc, disable=not progress, unit="task")
                    )
                )
            else:
                out.extend(
                    _run_distributed(
                        active, func, items, args, progress, desc, require_paths, on_result
                    )
                )
    out.n_failed = sum(is_failure(r) for r in out)
    return out


def _reported(result: Any, index: int, on_result: Callable[[int, Any], None] | None) -> Any:
    if on_result is not None:
        on_result(index, result)
    return result


def _run_distributed(
    active, func, items, args, progress, desc, require_paths, on_result=None
) -> list[Any]:
    from distributed import as_completed
    from tqdm.auto import tqdm

    check_worker_paths(active, require_paths)
    extra = []
    if args:
        scattered = active.scatter(args[0], broadcast=True, hash=False)
        extra = [[scattered] * len(items)]
    futures = active.map(func, items, *extra, pure=False)
    index = {f.key: i for i, f in enumerate(futures)}
    results: list[Any] = [None] * len(items)
    try:
        with tqdm(total=len(items), desc=desc, disable=not progress, unit="task") as bar:
            for future in as_completed(futures):
                i = index[future.key]
                results[i] = _reported(future.result(), i, on_result)
                bar.update(1)
    except KeyboardInterrupt:
        _quiet_distributed(logging.CRITICAL)
        with contextlib.suppress(Exception):
            active.cancel(futures)
        raise
    return results
