"""An output folder owned by one run at a time (shared by every batch pipeline).

A pipeline that writes a folder of results (``reduce``, ``smp-batch``, the transient
search) wraps its work in an :class:`OutputFolder`::

    folder = OutputFolder(out_dir, config=config.to_dict(), overwrite=args.overwrite)
    with folder:                      # lock, checks, RUNNING marker, stale *.tmp removed
        ...                           # the work: atomic writes under out_dir
        folder.complete({"n_ok": 12}) # summary.json written LAST, with "complete": true

What it guarantees:

* **One run at a time.** ``.skyscene.lock`` names the owner's PID and host (created
  atomically). A second run refuses with :class:`FolderInUseError` naming the folder,
  PID and host. A lock left by a dead process on the same host is taken over with a
  logged warning; a lock from another host is never taken over (delete it by hand once
  no run is active there).
* **No mixed configurations.** ``config.json`` records the effective configuration (the
  JSON of ``Config.to_dict()``). A run with another configuration refuses with
  :class:`ConfigMismatchError` (naming the differing keys) unless ``overwrite=True``,
  which first empties the folder (only a folder that skyscene made, marked by
  ``.skyscene.folder``: never a folder of someone else's files). ``ignore`` lists keys
  that do not change results (scheduler, chunk size, version).
* **Unfinished runs are visible.** ``RUNNING`` exists while a run works and after a run
  that was killed; ``summary.json`` is removed when a run starts and written last, with
  ``"complete": true``. :func:`folder_status` reads this state.
* **Checked before work, one line on failure.** The folder is made and probed for
  writability before any work (read-only file system, permissions); an ``OSError``
  (full disk ``[Errno 28]``, ``[Errno 30]``, ...) raised inside ``with folder:`` becomes
  one :class:`OutputFolderError` line naming the file and the folder. Outputs written
  with :func:`skyscene.io.atomic_path` are never half-written.
* **No debris.** Hidden ``*.tmp`` files left by killed runs are removed at the start.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import logging
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from skyscene.errors import SkysceneError

__all__ = [
    "CONFIG_NAME",
    "LOCK_NAME",
    "MARKER_NAME",
    "RUNNING_NAME",
    "SUMMARY_NAME",
    "ConfigMismatchError",
    "FolderInUseError",
    "FolderStatus",
    "LockOwner",
    "OutputFolder",
    "OutputFolderError",
    "check_writable",
    "folder_status",
    "one_line_os_error",
    "remove_stale_tmp",
]

log = logging.getLogger(__name__)

LOCK_NAME = ".skyscene.lock"
RUNNING_NAME = "RUNNING"
CONFIG_NAME = "config.json"
#: written by every run: only a folder that has it (or an older skyscene ``.work/``) is emptied
MARKER_NAME = ".skyscene.folder"
SUMMARY_NAME = "summary.json"

# folders held by OutputFolder objects of this process (a second one must refuse)
_HELD: set[str] = set()


class OutputFolderError(SkysceneError, OSError):
    """The output folder cannot be used or written (the message names it).

    ``errno`` and ``filename`` are those of the ``OSError`` it replaces, if any.
    """

    def __str__(self) -> str:  # OSError would otherwise format errno/filename itself
        return str(self.args[0]) if self.args else ""


class FolderInUseError(OutputFolderError):
    """Another live run owns the output folder (``owner`` is its :class:`LockOwner`)."""

    def __init__(self, message: str, *, owner: LockOwner | None = None):
        super().__init__(message)
        self.owner = owner


class ConfigMismatchError(OutputFolderError):
    """The folder was made with another configuration (``differences``: key -> (old, new))."""

    def __init__(self, message: str, *, differences: Mapping[str, tuple[Any, Any]] | None = None):
        super().__init__(message)
        self.differences = dict(differences or {})


@dataclass(frozen=True, kw_only=True)
class LockOwner:
    """Who holds (or held) a folder: process id, host name and start time (Unix s)."""

    pid: int
    host: str
    started: float

    def alive(self) -> bool | None:
        """True/False for a process of this host; None when the host is another one."""
        if self.host != socket.gethostname():
            return None
        if self.pid == os.getpid():
            return True
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # exists, owned by another user
            return True
        return True

    def describe(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.started))
        return f"PID {self.pid} on host {self.host} (since {when})"


@dataclass(frozen=True, kw_only=True)
class FolderStatus:
    """State of an output folder as :func:`folder_status` reads it."""

    path: Path
    complete: bool
    running: bool
    owner: LockOwner | None
    config: dict[str, Any] | None


def _owner_now() -> LockOwner:
    return LockOwner(pid=os.getpid(), host=socket.gethostname(), started=time.time())


def _read_owner(path: Path) -> LockOwner | None:
    try:
        data = json.loads(path.read_text())
        return LockOwner(
            pid=int(data["pid"]), host=str(data["host"]), started=float(data["started"])
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        # unreadable or half-written: treat as a dead process of this host
        return LockOwner(pid=-1, host=socket.gethostname(), started=0.0)


def one_line_os_error(exc: OSError, folder: str | os.PathLike | None = None) -> OutputFolderError:
    """An :class:`OutputFolderError` whose one-line message names the file, errno and folder."""
    name = exc.filename if exc.filename is not None else (folder or "")
    code = f"[Errno {exc.errno}] " if exc.errno is not None else ""
    text = exc.strerror or str(exc) or type(exc).__name__
    where = f" (output folder {folder})" if folder is not None and str(folder) != str(name) else ""
    err = OutputFolderError(f"{name}: {code}{text}{where}")
    err.errno = exc.errno
    err.filename = exc.filename
    return err


def check_writable(path: str | os.PathLike) -> Path:
    """Make ``path`` (and parents) and probe that a file can be created there; return it.

    Raises
    ------
    OutputFolderError
        One line naming the folder and the reason (read-only file system, permission,
        a file where a folder should be, full disk).
    """
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-probe.", suffix=".tmp", dir=path)
        try:
            os.write(fd, b"x")
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as exc:
        if isinstance(exc, SkysceneError):
            raise
        reason = exc.strerror or str(exc)
        raise OutputFolderError(
            f"{path}: output folder is not writable ([Errno {exc.errno}] {reason})"
        ) from None
    return path


def remove_stale_tmp(path: str | os.PathLike) -> list[Path]:
    """Remove hidden ``.*.tmp`` files (left by killed atomic writes) anywhere under ``path``.

    Uses :func:`skyscene.io.remove_stale_temporaries`; call it only while owning the folder.
    """
    from skyscene.io import remove_stale_temporaries

    removed = remove_stale_temporaries(path, recursive=True)
    if removed:
        log.info("%s: removed %d stale temporary file(s) of an interrupted run", path, len(removed))
    return removed


def _normalised(config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` as it reads back from JSON (tuples become lists, paths strings)."""
    return json.loads(json.dumps(dict(config), default=str, sort_keys=True))


def _differences(
    old: Mapping[str, Any], new: Mapping[str, Any], ignore: Iterable[str]
) -> dict[str, tuple[Any, Any]]:
    skip = set(ignore)
    keys = (set(old) | set(new)) - skip
    missing = object()
    out = {}
    for key in sorted(keys):
        a, b = old.get(key, missing), new.get(key, missing)
        if a != b:
            out[key] = (None if a is missing else a, None if b is missing else b)
    return out


def folder_status(path: str | os.PathLike) -> FolderStatus:
    """Whether the run that wrote ``path`` completed, is running, and its configuration."""
    path = Path(path)
    complete = False
    try:
        complete = bool(json.loads((path / SUMMARY_NAME).read_text()).get("complete"))
    except (OSError, ValueError, AttributeError):
        complete = False
    config = None
    with contextlib.suppress(OSError, ValueError):
        config = json.loads((path / CONFIG_NAME).read_text())
    owner = _read_owner(path / LOCK_NAME)
    return FolderStatus(
        path=path,
        complete=complete,
        running=(path / RUNNING_NAME).exists(),
        owner=owner if owner is not None and owner.alive() is not False else None,
        config=config,
    )


class OutputFolder:
    """An output folder owned by one run at a time (see the module docstring).

    Parameters
    ----------
    path : path
        The folder (created with its parents).
    config : mapping
        Effective configuration of the run (JSON-serialisable, e.g. ``Config.to_dict()``
        plus input paths); recorded as ``config.json`` and compared with the record of
        the run that made the folder.
    overwrite : bool
        With a configuration different from the recorded one: empty the folder and
        start afresh instead of refusing.
    ignore : iterable of str
        Keys of ``config`` that do not change results (never compared).

    Notes
    -----
    ``acquire``/``release`` nest (a pipeline may hold the folder for several steps);
    the checks, the ``RUNNING`` marker and the clean-up happen at the outermost
    ``acquire``. Use as a context manager; inside it, an ``OSError`` that is not a
    :class:`~skyscene.errors.SkysceneError` becomes a one-line
    :class:`OutputFolderError`.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        config: Mapping[str, Any],
        overwrite: bool = False,
        ignore: Iterable[str] = (),
    ):
        self.path = Path(path)
        self.config = _normalised(config)
        self.overwrite = bool(overwrite)
        self.ignore = tuple(ignore)
        self._depth = 0
        self._owner: LockOwner | None = None
        self._began: LockOwner | None = None  # who wrote RUNNING first (this object's run)

    # ------------------------------------------------------------------ public
    @property
    def held(self) -> bool:
        """Whether this object holds the folder now."""
        return self._depth > 0

    def acquire(self) -> OutputFolder:
        """Take the folder: writability, lock, configuration, stale files, ``RUNNING``."""
        if self._depth:
            self._depth += 1
            return self
        check_writable(self.path)
        self._lock()
        try:
            self._check_config()
            self._begin()
        except BaseException:
            self._unlock()
            raise
        self._depth = 1
        return self

    def release(self) -> None:
        """Give the folder back (the ``RUNNING`` marker stays unless :meth:`complete` ran)."""
        if not self._depth:
            return
        self._depth -= 1
        if not self._depth:
            self._unlock()

    def complete(self, summary: Mapping[str, Any] | None = None) -> Path:
        """Write ``summary.json`` (with ``"complete": true``) last and remove ``RUNNING``."""
        from skyscene.io import atomic_write_text

        if not self._depth:
            raise OutputFolderError(f"{self.path}: complete() called without holding the folder")
        body = {**dict(summary or {}), "complete": True}
        with self.os_errors():
            path = atomic_write_text(
                self.path / SUMMARY_NAME, json.dumps(body, indent=1, default=str)
            )
            with contextlib.suppress(FileNotFoundError):
                (self.path / RUNNING_NAME).unlink()
        return path

    @contextlib.contextmanager
    def os_errors(self) -> Iterator[None]:
        """Turn an ``OSError`` (not a :class:`SkysceneError`) into one :class:`OutputFolderError` line."""
        try:
            yield
        except OSError as exc:
            if isinstance(exc, SkysceneError):
                raise
            raise one_line_os_error(exc, self.path) from None

    def __enter__(self) -> OutputFolder:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
        if isinstance(exc, OSError) and not isinstance(exc, SkysceneError):
            raise one_line_os_error(exc, self.path) from None

    def __repr__(self) -> str:
        return f"OutputFolder({str(self.path)!r}, held={self.held})"

    # ------------------------------------------------------------------ internals
    def _key(self) -> str:
        return str(self.path.resolve())

    def _lock(self) -> None:
        lock = self.path / LOCK_NAME
        if self._key() in _HELD:
            holder = _read_owner(lock) or _owner_now()
            raise FolderInUseError(
                f"{self.path}: output folder is in use by another run ({holder.describe()}); "
                "wait for it to finish or choose another folder",
                owner=holder,
            )
        me = _owner_now()
        for _ in range(3):
            if self._create_lock(lock, me):
                self._owner = me
                _HELD.add(self._key())
                return
            owner = _read_owner(lock)
            if owner is None:  # released meanwhile
                continue
            alive = owner.alive()
            if alive is False or (owner.pid == me.pid and owner.host == me.host):
                log.warning(
                    "%s: taking over the lock of a run that no longer exists (%s)",
                    self.path,
                    owner.describe() if owner.pid >= 0 else "unreadable lock file",
                )
                with contextlib.suppress(FileNotFoundError):
                    lock.unlink()
                continue
            hint = (
                ""
                if alive
                else f"; if no run is active on {owner.host}, delete {lock} to free the folder"
            )
            raise FolderInUseError(
                f"{self.path}: output folder is in use by another run ({owner.describe()}){hint}",
                owner=owner,
            )
        raise FolderInUseError(f"{self.path}: could not take the lock {lock}")

    @staticmethod
    def _create_lock(lock: Path, me: LockOwner) -> bool:
        """Create ``lock`` with its content in one step; False if it already exists."""
        text = json.dumps(dataclasses.asdict(me))
        fd, tmp = tempfile.mkstemp(prefix=f".{lock.name}.", suffix=".tmp", dir=lock.parent)
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(text)
            try:
                os.link(tmp, lock)  # atomic, fails if the lock exists
            except FileExistsError:
                return False
            except OSError as exc:  # file systems without hard links
                if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
                    raise
                try:
                    fd2 = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                except FileExistsError:
                    return False
                with os.fdopen(fd2, "w") as fh:
                    fh.write(text)
            return True
        except OSError as exc:
            if isinstance(exc, SkysceneError):
                raise
            raise one_line_os_error(exc, lock.parent) from None
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def _unlock(self) -> None:
        _HELD.discard(self._key())
        lock = self.path / LOCK_NAME
        owner = _read_owner(lock)
        if owner is not None and self._owner is not None and owner == self._owner:
            with contextlib.suppress(FileNotFoundError):
                lock.unlink()
        self._owner = None

    def _check_config(self) -> None:
        record = self.path / CONFIG_NAME
        if not record.exists():
            return
        diff: dict[str, tuple[Any, Any]] = {}
        try:
            old = json.loads(record.read_text())
            if not isinstance(old, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as exc:
            old, reason = None, f"its {CONFIG_NAME} is unreadable ({exc})"
        else:
            diff = _differences(old, self.config, self.ignore)
            if not diff:
                return
            shown = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in list(diff.items())[:6])
            more = f" and {len(diff) - 6} more" if len(diff) > 6 else ""
            reason = f"it was made with another configuration ({shown}{more})"
        if not self.overwrite:
            raise ConfigMismatchError(
                f"{self.path}: {reason}; use --overwrite (overwrite=True) to replace its "
                "contents, or another output folder",
                differences=diff,
            )
        if not (self.path / MARKER_NAME).exists() and not (self.path / ".work").is_dir():
            raise OutputFolderError(
                f"{self.path}: {reason}, and skyscene did not make this folder "
                f"(no {MARKER_NAME}): it will not be emptied; choose another output folder"
            )
        log.warning("%s: %s; overwriting: its previous contents are removed", self.path, reason)
        self._empty()

    def _empty(self) -> None:
        with self.os_errors():
            for entry in self.path.iterdir():
                if entry.name == LOCK_NAME:
                    continue
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()

    def _begin(self) -> None:
        from skyscene.io import atomic_write_text

        running = self.path / RUNNING_NAME
        previous = _read_owner(running) if running.exists() else None
        # an earlier step of this same object began it: not an unfinished run
        if previous is not None and previous != self._began:
            log.warning(
                "%s: the previous run (%s) did not finish; finished parts are reused, "
                "the rest is redone",
                self.path,
                previous.describe() if previous.pid >= 0 else "unknown process",
            )
        with self.os_errors():
            remove_stale_tmp(self.path)
            with contextlib.suppress(FileNotFoundError):
                (self.path / SUMMARY_NAME).unlink()
            if self._began is None:
                self._began = self._owner or _owner_now()
            atomic_write_text(running, json.dumps(dataclasses.asdict(self._began)))
            if not (self.path / MARKER_NAME).exists():
                atomic_write_text(self.path / MARKER_NAME, "skyscene output folder\n")
            atomic_write_text(
                self.path / CONFIG_NAME, json.dumps(self.config, indent=1, sort_keys=True)
            )
