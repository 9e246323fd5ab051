"""Atomic writer: permissions follow the umask; stale temporaries are cleaned up."""

from __future__ import annotations

import os
import stat
import time

import pytest

from skyscene.io import atomic_path, atomic_write_text, remove_stale_temporaries


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def umask():
    def set_umask(value):
        previous = os.umask(value)
        restore.append(previous)

    restore: list[int] = []
    yield set_umask
    if restore:
        os.umask(restore[0])


@pytest.mark.parametrize(("mask", "expected"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_new_file_respects_umask(tmp_path, umask, mask, expected):
    umask(mask)
    path = atomic_write_text(tmp_path / "out.json", "{}")
    assert _mode(path) == expected, f"mode {oct(_mode(path))} with umask {oct(mask)}"
    assert path.read_text() == "{}"


def test_replaced_file_keeps_its_mode(tmp_path, umask):
    umask(0o022)
    path = tmp_path / "table.csv"
    path.write_text("old")
    os.chmod(path, 0o640)
    atomic_write_text(path, "new")
    assert _mode(path) == 0o640
    assert path.read_text() == "new"


def test_writer_that_recreates_the_temp_file_gets_the_umask_mode(tmp_path, umask):
    umask(0o022)
    target = tmp_path / "image.fits"
    with atomic_path(target) as tmp:
        tmp.unlink()  # writers like astropy's writeto(overwrite=True) recreate it
        tmp.write_bytes(b"x")
    assert _mode(target) == 0o644


def test_remove_stale_temporaries(tmp_path):
    stale = [tmp_path / ".lc_0001.csv.k2j4h5g6.csv.tmp", tmp_path / ".summary.json.abcdefgh.tmp"]
    for path in stale:
        path.write_bytes(b"")
    keep = [tmp_path / "lc_0001.csv", tmp_path / "notes.tmp", tmp_path / ".hidden"]
    for path in keep:
        path.write_text("keep")
    (tmp_path / ".dir.x.tmp").mkdir()  # a folder with that name is not touched
    sub = tmp_path / "band_g"
    sub.mkdir()
    deep = sub / ".x.fits.12345678.fits.tmp"
    deep.write_bytes(b"")
    removed = remove_stale_temporaries(tmp_path)
    assert removed == sorted(stale)
    assert not any(p.exists() for p in stale)
    assert all(p.read_text() == "keep" for p in keep)
    assert (tmp_path / ".dir.x.tmp").is_dir() and deep.exists()
    assert remove_stale_temporaries(tmp_path, recursive=True) == [deep]
    assert remove_stale_temporaries(tmp_path / "missing") == []


def test_remove_stale_temporaries_spares_recent_files(tmp_path):
    old = tmp_path / ".a.csv.11111111.csv.tmp"
    new = tmp_path / ".b.csv.22222222.csv.tmp"
    old.write_bytes(b"")
    new.write_bytes(b"")
    past = time.time() - 3600
    os.utime(old, (past, past))
    assert remove_stale_temporaries(tmp_path, older_than=600) == [old]
    assert new.exists()


def test_interrupted_write_leaves_no_temporary(tmp_path):
    with pytest.raises(KeyboardInterrupt), atomic_path(tmp_path / "x.csv") as tmp:
        tmp.write_text("half")
        raise KeyboardInterrupt
    assert os.listdir(tmp_path) == []
