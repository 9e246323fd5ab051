"""Running independent tasks through Dask distributed (DESIGN.md, "Scale").

``scheduler`` is ``"synchronous"`` (in this process, for debugging and tests),
``"processes"`` (default: a ``LocalCluster`` of this machine, one thread per
worker) or ``"tcp://HOST:PORT"`` (an existing cluster). Nothing in skyscene runs
its own pool or queue.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from skyscene.errors import ParameterError

__all__ = ["dask_client", "run_tasks"]

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
        for name in ("distributed", "distributed.scheduler", "distributed.nanny", "distributed.core",
                     "distributed.http.proxy", "distributed.worker"):
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


def run_tasks(
    func: Callable[..., Any],
    items: Iterable[Any],
    *,
    scheduler: str = "processes",
    progress: bool = False,
    desc: str = "tasks",
    n_workers: int | None = None,
    client: Any = None,
) -> list[Any]:
    """Apply ``func`` to every item, in parallel per ``scheduler``; results in input order.

    A task that raises makes ``run_tasks`` raise that exception (tasks that should not
    stop the batch must catch their own errors and return a flagged result).
    """
    from tqdm.auto import tqdm

    items = list(items)
    if not items:
        return []
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
