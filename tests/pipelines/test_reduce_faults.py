"""Reduction under injected faults (issue 10, findings 4, 6, 9, 10, 14): small frames, few of them."""

from __future__ import annotations

import errno
import json
import logging
import re
import subprocess
import sys

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from skyscene.datasets import simulate_observations
from skyscene.pipelines._outdir import (
    LOCK_NAME,
    ConfigMismatchError,
    FolderInUseError,
    OutputFolderError,
    folder_status,
)
from skyscene.pipelines.reduce import ReduceConfig, Reducer

SHAPE = (128, 128)
N_FRAMES = 5
SYNC = ReduceConfig(scheduler="synchronous")


def _simulate(path, rng=5, n=N_FRAMES):
    return simulate_observations(path, n, rng=rng, bands=("g",), shape=SHAPE)


def _reduce(raw, out, config=SYNC, **kwargs):
    reducer = Reducer(raw, out, config=config, progress=False, **kwargs)
    reducer.create_catalogs()
    return reducer, reducer.photometry("optimal")


def _truth_index(table, truth):
    """Truth index of the source a light curve follows (mean distance of positions)."""
    frames = {f["file"]: f for f in truth.frames}
    xy = np.array([frames[n]["xy"] for n in table["file"]])
    d = np.hypot(
        xy[:, :, 0] - np.asarray(table["x"])[:, None], xy[:, :, 1] - np.asarray(table["y"])[:, None]
    )
    return int(np.argmin(d.mean(axis=0)))


def _cli(*args):
    from skyscene.cli import main

    return main(["-q", "reduce", *map(str, args), "--scheduler", "synchronous"])


@pytest.fixture(scope="module")
def hot_pixel(tmp_path_factory):
    """One 1e30 pixel at the centre of source 1 on frame 2; the reduction of that folder."""
    root = tmp_path_factory.mktemp("hot")
    truth = _simulate(root / "raw")
    frame = truth.frames[2]
    x, y = frame["xy"][1]
    with fits.open(root / "raw" / frame["file"], mode="update") as hdul:
        hdul[0].data[round(y), round(x)] = 1e30
    reducer, result = _reduce(root / "raw", root / "out")
    return {"root": root, "truth": truth, "frame": frame, "reducer": reducer, "result": result}


def test_one_extreme_pixel_is_masked_counted_and_flagged(hot_pixel):
    truth, frame = hot_pixel["truth"], hot_pixel["frame"]
    lcs = hot_pixel["result"].light_curves["g"]
    assert len(lcs) == len(truth.sources)
    for table in lcs.values():
        k = _truth_index(table, truth)
        row = list(table["file"]).index(frame["file"])
        ratio = float(table["flux"][row]) / frame["flux"][k]
        if k == 1:
            assert table["flags"][row] & 2, "the masked pixel in the region sets flag 2"
            assert 0.5 < ratio < 1.5, f"flux of the hit source {table['flux'][row]:.4g}"
        else:
            # the frame stays aligned: the other sources of that frame keep their flux
            assert table["flags"][row] == 0 and abs(ratio - 1) < 0.15, f"source {k}: {ratio:.3f}"
        unflagged = np.asarray(table["flags"]) == 0
        assert np.all(np.isfinite(table["rel_flux"][unflagged])), f"source {k}: rel_flux NaN"
    summary = json.loads((hot_pixel["root"] / "out" / "summary.json").read_text())
    assert summary["nonphysical_pixels"] == {frame["file"]: 1}
    frames = Table.read(hot_pixel["root"] / "out" / "frames.csv")
    counts = dict(zip(frames["file"], frames["n_nonphysical"], strict=True))
    assert counts[frame["file"]] == 1 and sum(counts.values()) == 1


def test_light_curves_carry_units_metadata_and_a_table_per_band(hot_pixel):
    lc_dir = hot_pixel["result"].lc_dir
    lcs = hot_pixel["result"].light_curves["g"]
    one = Table.read(lc_dir / "g_source_0.parquet")
    assert str(one["BMJD"].unit) == "d" and str(one["flux"].unit) == "adu"
    assert str(one["x"].unit) == "pix" and str(one["bkg"].unit) == "adu / pix"
    assert one.meta["time_scale"] == "tdb" and one.meta["source_id"] == 0
    shape = hot_pixel["reducer"].shapes["g"]
    assert one.meta["psf_sigma_major"] == pytest.approx(shape.sigma_major, rel=1e-12)
    band = Table.read(lc_dir / "g_lightcurves.parquet")
    assert band.colnames[:2] == ["source_id", "BMJD"]
    assert len(band) == sum(len(t) for t in lcs.values())
    assert sorted(set(band["source_id"])) == sorted(lcs) == band.meta["source_ids"]
    for sid, table in lcs.items():
        rows = band[band["source_id"] == sid]
        np.testing.assert_array_equal(rows["flux"], table["flux"])
        np.testing.assert_array_equal(rows["file"], table["file"])
    csv = Table.read(lc_dir / "g_lightcurves.csv")
    assert len(csv) == len(band)
    ecsv = Table.read(lc_dir / "g_source_0.ecsv")  # the self-describing text twin
    assert str(ecsv["BMJD"].unit) == "d" and str(ecsv["bkg_err"].unit) == "adu / pix"
    assert ecsv.meta["time_scale"] == "tdb" and ecsv.meta["flags"]["2"].startswith("masked")
    np.testing.assert_array_equal(ecsv["flux"], lcs[0]["flux"])


def test_folder_record_and_completion(hot_pixel):
    out = hot_pixel["root"] / "out"
    status = folder_status(out)
    assert status.complete and not status.running and status.owner is None
    assert status.config["threshold"] == SYNC.threshold and status.config["pipeline"] == "reduce"
    assert not (out / LOCK_NAME).exists()


def test_truncated_fits_is_skipped_and_named(tmp_path, caplog, capfd):
    truth = _simulate(tmp_path / "raw")
    victim = tmp_path / "raw" / truth.frames[1]["file"]
    victim.write_bytes(victim.read_bytes()[: 2880 + 120])  # header and 30 pixels survive
    with caplog.at_level(logging.WARNING):
        _reduce(tmp_path / "raw", tmp_path / "out")
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    reasons = {s["file"]: s["reason"] for s in summary["skipped"]}
    assert "truncated or corrupt" in reasons[str(victim)]
    assert f"skipping {victim}: unreadable FITS file" in caplog.text
    assert summary["frames_used"] == {"g": N_FRAMES - 1} and summary["complete"] is True
    assert "may have been truncated" not in capfd.readouterr().err, "no astropy chatter"


def test_nan_wcs_in_every_frame_is_one_line_naming_files_and_key(tmp_path, caplog, capfd):
    truth = _simulate(tmp_path / "raw")
    for name in truth.files:
        path = tmp_path / "raw" / name
        raw = path.read_bytes()
        path.write_bytes(
            re.sub(rb"CRVAL1  = [^/]{20}", b"CRVAL1  = " + b"NaN".rjust(20), raw, count=1)
        )
    with caplog.at_level(logging.ERROR):
        assert _cli(tmp_path / "raw", tmp_path / "out") == 1
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "\n" not in errors[0]
    assert re.search(r"filter 'g': .*g_0000\.fits: .*CRVAL1", errors[0]), errors[0]
    assert "Traceback" not in capfd.readouterr().err
    assert not folder_status(tmp_path / "out").complete


def test_second_run_into_a_busy_folder_refuses(tmp_path, caplog):
    import socket

    _simulate(tmp_path / "raw", n=3)
    out = tmp_path / "out"
    # the same process: a reducer holding the folder excludes a second one
    with Reducer(tmp_path / "raw", out, config=SYNC, progress=False):
        other = Reducer(tmp_path / "raw", out, config=SYNC, progress=False)
        with pytest.raises(
            FolderInUseError, match=r"out: output folder is in use by another run \(PID \d+ on host"
        ):
            other.create_catalogs()
    # another live process: the CLI refuses with one line, exit 1, nothing written
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (out / LOCK_NAME).write_text(
            json.dumps({"pid": proc.pid, "host": socket.gethostname(), "started": 0})
        )
        with caplog.at_level(logging.ERROR):
            assert _cli(tmp_path / "raw", out) == 1
    finally:
        proc.kill()
        proc.wait()
    assert (
        f"output folder is in use by another run (PID {proc.pid} on host {socket.gethostname()}"
        in caplog.text
    )
    assert not (out / "cat").exists() and not (out / "summary.json").exists()


def test_rerun_with_other_options_refuses_and_killed_overwrite_stays_incomplete(
    tmp_path, monkeypatch, caplog
):
    import skyscene.pipelines.reduce as reduce_module

    _simulate(tmp_path / "raw", n=4)
    out = tmp_path / "out"
    assert _cli(tmp_path / "raw", out) == 0
    before = (out / "lcs" / "optimal_default" / "g_source_0.csv").read_bytes()
    with caplog.at_level(logging.ERROR):
        assert _cli(tmp_path / "raw", out, "--threshold", "4") == 1
    assert re.search(
        r"made with another configuration \(threshold: 5\.0 -> 4\.0\).*--overwrite", caplog.text
    )
    assert (out / "lcs" / "optimal_default" / "g_source_0.csv").read_bytes() == before
    assert folder_status(out).complete, "a refused run leaves the folder as it was"

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(reduce_module, "_photometry_task", killed)
    assert _cli(tmp_path / "raw", out, "--threshold", "4", "--overwrite") == 130
    status = folder_status(out)
    assert status.running and not status.complete, "the killed run is marked incomplete"
    assert status.config["threshold"] == 4.0
    assert not (out / "lcs" / "optimal_default" / "g_source_0.csv").exists(), "no stale light curve"
    monkeypatch.undo()
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        assert _cli(tmp_path / "raw", out) == 1, "the original options now refuse too"
    assert "threshold: 4.0 -> 5.0" in caplog.text


def test_unwritable_output_is_refused_before_any_work(tmp_path, monkeypatch, caplog):
    import skyscene.pipelines.reduce as reduce_module

    _simulate(tmp_path / "raw", n=3)
    (tmp_path / "taken").write_text("a file, not a folder")
    calls = []
    monkeypatch.setattr(reduce_module.Reducer, "_create_catalogs", lambda self: calls.append(1))
    with caplog.at_level(logging.ERROR):
        assert _cli(tmp_path / "raw", tmp_path / "taken" / "out") == 1
    assert (
        f"{tmp_path / 'taken' / 'out'}: output folder is not writable ([Errno {errno.ENOTDIR}]"
        in caplog.text
    )
    assert not calls, "no catalog work before the check"


def test_full_disk_is_one_line_and_leaves_the_run_incomplete(tmp_path, monkeypatch, caplog):
    import skyscene.pipelines.reduce as reduce_module

    _simulate(tmp_path / "raw", n=3)
    real = reduce_module.write_table
    count = []

    def filling_up(table, path, **kwargs):
        count.append(path)
        if len(count) == 3:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(table, path, **kwargs)

    monkeypatch.setattr(reduce_module, "write_table", filling_up)
    with caplog.at_level(logging.ERROR):
        assert _cli(tmp_path / "raw", tmp_path / "out") == 1
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "\n" not in errors[0]
    assert (
        f"{count[2]}: [Errno 28] No space left on device (output folder {tmp_path / 'out'})"
        == errors[0]
    )
    status = folder_status(tmp_path / "out")
    assert status.running and not status.complete and status.owner is None
    assert not list((tmp_path / "out").rglob(".*.tmp"))


def test_overwrite_cleans_and_same_options_resume(tmp_path):
    _simulate(tmp_path / "raw", n=3)
    out = tmp_path / "out"
    _reduce(tmp_path / "raw", out)
    (out / "lcs" / "optimal_default" / ".g_source_0.csv.abc.csv.tmp").write_bytes(b"")
    _reduce(tmp_path / "raw", out, config=ReduceConfig(scheduler="synchronous", chunk_size=2))
    assert not list(out.rglob(".*.tmp")), "stale temporaries of a killed run are removed"
    with pytest.raises(ConfigMismatchError, match="psf_mode: 'camera' -> 'frame'"):
        _reduce(
            tmp_path / "raw", out, config=ReduceConfig(scheduler="synchronous", psf_mode="frame")
        )
    _reduce(
        tmp_path / "raw",
        out,
        config=ReduceConfig(scheduler="synchronous", psf_mode="frame"),
        overwrite=True,
    )
    assert folder_status(out).config["psf_mode"] == "frame" and folder_status(out).complete


def test_os_error_during_writing_is_an_output_folder_error(tmp_path, monkeypatch):
    import skyscene.pipelines.reduce as reduce_module

    _simulate(tmp_path / "raw", n=3)

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(args[1]))

    monkeypatch.setattr(reduce_module, "write_table", read_only)
    reducer = Reducer(tmp_path / "raw", tmp_path / "out", config=SYNC, progress=False)
    with pytest.raises(
        OutputFolderError,
        match=r"_catalog\.csv: \[Errno 30\] Read-only file system \(output folder",
    ):
        reducer.create_catalogs()
