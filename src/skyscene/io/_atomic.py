"""Atomic file writing: write to a temporary file in the same folder, then rename.

The temporary file is hidden and named ``.<name>.<random>.<suffix>.tmp`` beside the
target. A process killed while writing can leave one behind; pipelines call
:func:`remove_stale_temporaries` on their output folder when they start.

Outputs get the permissions any other new file gets (``0666`` less the umask, so
``0644`` with the usual umask ``022``), not the ``0600`` of :func:`tempfile.mkstemp`;
a file that is replaced keeps its permission bits.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_path", "atomic_write_text", "remove_stale_temporaries"]

log = logging.getLogger(__name__)


def _umask() -> int:
    """The process umask, read without changing it where the OS allows."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # the portable way: set and restore
    os.umask(mask)
    return mask


def _target_mode(path: Path) -> int:
    """Permission bits for ``path``: those of the file it replaces, else 0666 & ~umask."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return 0o666 & ~_umask()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it onto ``path`` on success.

    If the body raises, the temporary file is removed and ``path`` is untouched,
    so a crash never leaves a half-written output behind. The output has the
    permissions of a newly created file (umask respected) or of the file it replaces.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.",
        suffix=suffix if suffix is not None else path.suffix + ".tmp",
        dir=path.parent,
    )
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, _target_mode(path))  # the writer may have recreated the file
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically; return the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def remove_stale_temporaries(
    folder: str | os.PathLike, *, recursive: bool = False, older_than: float = 0.0
) -> list[Path]:
    """Remove the hidden temporary files (``.<name>.*.tmp``) that killed writers left.

    Parameters
    ----------
    folder : str or Path
        Output folder; a missing folder has nothing to remove.
    recursive : bool
        Also look in sub-folders.
    older_than : float
        Only remove files last modified at least this many seconds ago (give a margin
        when another live process may be writing into the same folder).

    Returns
    -------
    list of Path
        The files removed, sorted.

    Notes
    -----
    Only regular files whose name starts with ``.`` and ends with ``.tmp`` are touched
    (the names :func:`atomic_path` makes); links and folders are left alone. Call it
    once, when a run that owns the folder starts.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    candidates = folder.rglob(".*.tmp") if recursive else folder.glob(".*.tmp")
    now = time.time()
    removed = []
    for path in sorted(candidates):
        try:
            info = path.lstat()
        except OSError:
            continue
        if not stat.S_ISREG(info.st_mode) or now - info.st_mtime < older_than:
            continue
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        removed.append(path)
    if removed:
        log.info("removed %d stale temporary file(s) in %s", len(removed), folder)
    return removed
