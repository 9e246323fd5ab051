"""Running independent tasks through Dask distributed (DESIGN.md, "Scale").

``scheduler`` is ``"synchronous"`` (in this process, for debugging and tests),
``"processes"`` (default: a ``LocalCluster`` of this machine, one thread per
worker) or ``"tcp://HOST:PORT"`` (an existing cluster). Nothing in skyscene runs
its own pool or queue.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import pickle
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from skyscene.errors import ParameterError

__all__ = ["dask_client", "run_tasks", "task_key"]

log = logging.getLogger(__name__)


@contextlib.contextmanager
def dask_client(scheduler: str = "processes", *, n_workers: int | None = None) -> Iterator[Any]:
    """A ``distributed.Client`` for ``scheduler`` (None for ``"synchronous"``)."""
    if scheduler == "synchronous":
        yield None
        return
    from distributed import Client, LocalCluster

    # distributed configures its own loggers at import; keep them quiet unless -vv
    quiet = logging.getLogger("skyscene").getEffectiveLevel() > logging.DEBUG
    if quiet:
        for name in (
            "distributed",
            "distributed.scheduler",
            "distributed.nanny",
            "distributed.core",
            "distributed.http.proxy",
            "distributed.worker",
        ):
            logging.getLogger(name).setLevel(logging.WARNING)
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
            yield client
        finally:
            client.close()
            cluster.close()
    elif scheduler.startswith("tcp://") or scheduler.startswith("tls://"):
        client = Client(scheduler)
        try:
            yield client
        finally:
            client.close()
    else:
        raise ParameterError(
            f"scheduler must be 'synchronous', 'processes' or 'tcp://HOST:PORT', got {scheduler!r}"
        )


class _CachedTask:
    """Run ``func(item)`` unless ``cache_dir/<key>.pkl`` exists; store the result atomically.

    Picklable, so it runs in Dask workers: a task's result is on disk as soon as the task
    ends, and a rerun after an interruption skips it.
    """

    def __init__(self, func: Callable[..., Any], cache_dir: Path):
        self.func = func
        self.cache_dir = Path(cache_dir)

    def __call__(self, keyed: tuple[str, Any]) -> Any:
        from skyscene.io import atomic_path

        key, item = keyed
        path = self.cache_dir / f"{key}.pkl"
        if path.exists():
            with open(path, "rb") as fh:
                return pickle.load(fh)
        result = self.func(item)
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            pickle.dump(result, fh, protocol=pickle.HIGHEST_PROTOCOL)
        return result


def task_key(*parts: Any) -> str:
    """A stable hexadecimal key of ``parts`` (pickled), for :func:`run_tasks` caches."""
    digest = hashlib.sha1()
    for part in parts:
        try:
            digest.update(pickle.dumps(part, protocol=4))
        except (pickle.PicklingError, AttributeError, TypeError):
            # not picklable (a lambda, say): its repr may change between runs, so such
            # tasks are recomputed rather than wrongly reused
            digest.update(repr(part).encode())
    return digest.hexdigest()


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
) -> list[Any]:
    """Apply ``func`` to every item, in parallel per ``scheduler``; results in input order.

    A task that raises makes ``run_tasks`` raise that exception (tasks that should not
    stop the batch must catch their own errors and return a flagged result).

    With ``cache_dir`` and one ``keys`` entry per item (see :func:`task_key`), each
    result is stored as ``cache_dir/<key>.pkl`` when its task ends and reused on the
    next call: an interrupted batch resumes where it stopped.
    """
    from tqdm.auto import tqdm

    items = list(items)
    if not items:
        return []
    if cache_dir is not None:
        if keys is None or len(keys) != len(items):
            raise ParameterError("run_tasks with cache_dir needs one key per item")
        cache = Path(cache_dir)
        cache.mkdir(parents=True, exist_ok=True)
        done = sum((cache / f"{k}.pkl").exists() for k in keys)
        if done:
            log.info(
                "%s: %d of %d tasks already done, reusing their results", desc, done, len(items)
            )
        func = _CachedTask(func, cache)
        items = list(zip(keys, items, strict=True))
    if scheduler == "synchronous" and client is None:
        return [func(item) for item in tqdm(items, desc=desc, disable=not progress, unit="task")]
    ctx = (
        contextlib.nullcontext(client)
        if client is not None
        else dask_client(scheduler, n_workers=n_workers)
    )
    with ctx as active:
        if active is None:
            return [
                func(item) for item in tqdm(items, desc=desc, disable=not progress, unit="task")
            ]
        from distributed import as_completed

        futures = active.map(func, items, pure=False)
        index = {f.key: i for i, f in enumerate(futures)}
        results: list[Any] = [None] * len(items)
        with tqdm(total=len(items), desc=desc, disable=not progress, unit="task") as bar:
            for future in as_completed(futures):
                results[index[future.key]] = future.result()
                bar.update(1)
        return results
