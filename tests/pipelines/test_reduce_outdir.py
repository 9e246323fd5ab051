"""The output folder owned by one run at a time (skyscene.pipelines._outdir), generic part."""

from __future__ import annotations

import errno
import json
import logging
import os
import socket
import subprocess
import sys
import tempfile

import pytest

from skyscene.io import atomic_write_text
from skyscene.pipelines._outdir import (
    LOCK_NAME,
    RUNNING_NAME,
    SUMMARY_NAME,
    ConfigMismatchError,
    FolderInUseError,
    OutputFolder,
    OutputFolderError,
    check_writable,
    folder_status,
)

CONFIG = {"threshold": 5.0, "psf_mode": "camera", "scheduler": "synchronous"}


def _write_lock(folder, pid, host):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / LOCK_NAME).write_text(json.dumps({"pid": pid, "host": host, "started": 0.0}))


@pytest.fixture
def live_process():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc.pid
    proc.kill()
    proc.wait()


def test_second_run_refuses_naming_folder_pid_and_host(tmp_path, live_process):
    out = tmp_path / "out"
    _write_lock(out, live_process, socket.gethostname())
    with pytest.raises(
        FolderInUseError,
        match=rf"{out}: output folder is in use.*PID {live_process} on host {socket.gethostname()}",
    ) as info:
        OutputFolder(out, config=CONFIG).acquire()
    assert info.value.owner.pid == live_process
    assert "\n" not in str(info.value)
    assert json.loads((out / LOCK_NAME).read_text())["pid"] == live_process, "lock kept"
    assert not (out / RUNNING_NAME).exists() and not (out / "config.json").exists()


def test_two_folder_objects_of_one_process_exclude_each_other(tmp_path):
    first = OutputFolder(tmp_path / "out", config=CONFIG)
    with first:
        with pytest.raises(FolderInUseError, match=f"PID {os.getpid()}"):
            OutputFolder(tmp_path / "out", config=CONFIG).acquire()
        with first:  # the owner may nest
            assert first.held
        assert first.held
    assert not first.held and not (tmp_path / "out" / LOCK_NAME).exists()
    with OutputFolder(tmp_path / "out", config=CONFIG):  # free again
        pass


def test_stale_lock_of_a_dead_process_is_taken_over_with_a_warning(tmp_path, caplog):
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    out = tmp_path / "out"
    _write_lock(out, proc.pid, socket.gethostname())
    with caplog.at_level(logging.WARNING), OutputFolder(out, config=CONFIG):
        assert json.loads((out / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert f"no longer exists (PID {proc.pid}" in caplog.text


def test_lock_of_another_host_is_never_taken_over(tmp_path):
    out = tmp_path / "out"
    _write_lock(out, 1, "elsewhere.example")
    with pytest.raises(
        FolderInUseError, match=r"host elsewhere\.example.*delete .*\.skyscene\.lock"
    ):
        OutputFolder(out, config=CONFIG).acquire()


def test_other_configuration_refuses_unless_overwrite(tmp_path, caplog):
    out = tmp_path / "out"
    with OutputFolder(out, config=CONFIG) as folder:
        (out / "result.csv").write_text("a\n1\n")
        folder.complete({"n": 1})
    # a key that does not change results is not compared
    with OutputFolder(out, config={**CONFIG, "scheduler": "processes"}, ignore=("scheduler",)):
        pass
    new = {**CONFIG, "threshold": 4.0}  # scheduler 'synchronous' again: ignored as well
    with pytest.raises(
        ConfigMismatchError, match=r"another configuration \(threshold: 5\.0 -> 4\.0\).*--overwrite"
    ) as info:
        OutputFolder(out, config=new, ignore=("scheduler",)).acquire()
    assert info.value.differences == {"threshold": (5.0, 4.0)}
    assert (out / "result.csv").read_text() == "a\n1\n", "nothing touched on refusal"
    assert not (out / LOCK_NAME).exists(), "a refused run leaves no lock"
    with caplog.at_level(logging.WARNING), OutputFolder(out, config=new, overwrite=True):
        assert not (out / "result.csv").exists(), "overwrite empties the folder first"
        assert json.loads((out / "config.json").read_text())["threshold"] == 4.0
    assert "overwriting" in caplog.text


def test_running_marker_and_summary_written_last(tmp_path):
    out = tmp_path / "out"
    with OutputFolder(out, config=CONFIG) as folder:
        assert (out / RUNNING_NAME).exists() and not (out / SUMMARY_NAME).exists()
        status = folder_status(out)
        assert status.running and not status.complete and status.owner.pid == os.getpid()
        folder.complete({"frames": 3})
    assert not (out / RUNNING_NAME).exists()
    assert json.loads((out / SUMMARY_NAME).read_text()) == {"frames": 3, "complete": True}
    status = folder_status(out)
    assert status.complete and not status.running and status.owner is None
    assert status.config == CONFIG


def test_killed_run_stays_marked_incomplete(tmp_path, caplog):
    out = tmp_path / "out"
    with OutputFolder(out, config=CONFIG) as folder:
        folder.complete({})
    with pytest.raises(KeyboardInterrupt), OutputFolder(out, config=CONFIG):
        raise KeyboardInterrupt  # the run stops before complete()
    status = folder_status(out)
    assert status.running and not status.complete, "no summary.json of the earlier run remains"
    with caplog.at_level(logging.WARNING), OutputFolder(out, config=CONFIG):
        pass
    assert "did not finish" in caplog.text


def test_stale_hidden_tmp_files_are_removed_at_start(tmp_path):
    out = tmp_path / "out"
    (out / "lcs").mkdir(parents=True)
    stale = [out / ".a.csv.x1y2.csv.tmp", out / "lcs" / ".b.parquet.z.parquet.tmp"]
    for p in stale:
        p.write_bytes(b"")
    keep = out / "lcs" / "visible.tmp"
    keep.write_text("user file")
    with OutputFolder(out, config=CONFIG):
        assert not any(p.exists() for p in stale)
    assert keep.exists()


def test_unwritable_folder_is_refused_before_any_work(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(
        OutputFolderError,
        match=rf"^{blocker / 'out'}: output folder is not writable \(\[Errno {errno.ENOTDIR}\]",
    ):
        check_writable(blocker / "out")

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(kwargs.get("dir")))

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    with pytest.raises(
        OutputFolderError,
        match=r"out: output folder is not writable \(\[Errno 30\] Read-only file system\)$",
    ):
        OutputFolder(tmp_path / "out", config=CONFIG).acquire()
    assert not (tmp_path / "out" / LOCK_NAME).exists()


def test_full_disk_becomes_one_line_and_nothing_half_written(tmp_path, monkeypatch):
    out = tmp_path / "out"
    folder = OutputFolder(out, config=CONFIG)
    real_write_text = type(out).write_text

    def full_disk(self, text, *args, **kwargs):
        if self.name.startswith(".table.csv."):
            real_write_text(self, text[:5])  # a part reached the disk before it filled up
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return real_write_text(self, text, *args, **kwargs)

    monkeypatch.setattr(type(out), "write_text", full_disk)
    with pytest.raises(
        OutputFolderError, match=r"\[Errno 28\] No space left on device \(output folder .*out\)$"
    ) as info:
        with folder:
            atomic_write_text(out / "table.csv", "a,b\n1,2\n")
    assert info.value.errno == errno.ENOSPC and "\n" not in str(info.value)
    assert not (out / "table.csv").exists() and not list(out.glob(".*.tmp"))
    assert folder_status(out).running and not folder_status(out).complete
    assert not (out / LOCK_NAME).exists()


def test_overwrite_never_empties_a_folder_skyscene_did_not_make(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "config.json").write_text(json.dumps({"my": "settings"}))
    (out / "thesis.tex").write_text("precious")
    with pytest.raises(
        OutputFolderError, match=r"skyscene did not make this folder.*not be emptied"
    ):
        OutputFolder(out, config=CONFIG, overwrite=True).acquire()
    assert (out / "thesis.tex").read_text() == "precious"
    assert json.loads((out / "config.json").read_text()) == {"my": "settings"}
