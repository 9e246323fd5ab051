"""smp-batch safety: duplicate ids, bad header cards, settings in the cache key, failures
retried, config JSON in the metadata, warnings as flags, exit status 3, CLI -q after the
sub-command, one-line OS errors."""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import pytest

from skyscene.cli import EXIT_FAILURES, main
from skyscene.errors import InputFileError
from skyscene.pipelines import smp as smp_pipeline
from skyscene.pipelines.smp import run_smp_batch
from skyscene.scene import SceneConfig

CFG = SceneConfig(grid_n=10, grid_spacing=0.6)


def _nan_card(src: Path, dst: Path, key: bytes = b"CRVAL1") -> None:
    """Copy ``src`` with the value of header card ``key`` replaced by ``NaN``."""
    raw = bytearray(src.read_bytes())
    i = raw.find(key.ljust(8) + b"= ")
    assert i >= 0
    raw[i : i + 80] = key.ljust(8) + b"= " + b"NaN".rjust(20) + b" " * 50
    dst.write_bytes(bytes(raw))


@pytest.fixture(scope="module")
def stamps(tmp_path_factory):
    from skyscene.datasets.tno import simulate_tno_stamps

    root = tmp_path_factory.mktemp("batch")
    sim = simulate_tno_stamps(rng=3, n_exposures=5, snr=40.0, out_dir=root / "d1")
    (root / "d2").mkdir()
    for p in sorted((root / "d1").glob("*.fits")):
        (root / "d2" / p.name).write_bytes(p.read_bytes())
    # d3: one stamp with an unparsable header card (astropy VerifyError territory)
    (root / "d3").mkdir()
    for p in sorted((root / "d1").glob("*.fits")):
        (root / "d3" / p.name).write_bytes(p.read_bytes())
    _nan_card(root / "d1" / "exp02.fits", root / "d3" / "exp02.fits")
    return root, sim.truth


def _csv(path: Path, truth, ids) -> Path:
    lines = ["id,ra,dec,detection"] + [f"{i},{truth['ra']},{truth['dec']},exp00.fits" for i in ids]
    path.write_text("\n".join(lines) + "\n")
    return path


def _parquet(out: Path) -> dict:
    import pyarrow.parquet as pq

    return pq.read_table(out).to_pydict()


def test_duplicate_ids_are_refused_up_front(stamps, tmp_path):
    root, truth = stamps
    csv = _csv(tmp_path / "det.csv", truth, ["d1", "d2", "d1"])
    out = tmp_path / "res.parquet"
    with pytest.raises(InputFileError, match=r"det\.csv: duplicate id\(s\) 'd1' \(1 in all\)"):
        run_smp_batch(csv, stamps_dir=root, out=out, config=CFG, scheduler="synchronous")
    assert not out.exists() and not (tmp_path / "res.parts").exists()
    # at the CLI: one line, exit 1
    argv = ["smp-batch", str(csv), "--stamps", str(root), "--out", str(out)]
    assert main([*argv, "--scheduler", "synchronous", "-q"]) == 1


def test_bad_header_card_fails_one_row_and_the_batch_goes_on(stamps, tmp_path, caplog):
    root, truth = stamps
    csv = _csv(tmp_path / "det.csv", truth, ["d1", "d3", "d2"])
    out = tmp_path / "res.parquet"
    argv = ["smp-batch", str(csv), "--stamps", str(root), "--out", str(out), "-q"]
    argv += ["--scheduler", "synchronous", "--grid-n", "10", "--grid-spacing", "0.6"]
    with caplog.at_level(logging.INFO, logger="skyscene"):
        assert main(argv) == EXIT_FAILURES == 3
    last = caplog.records[-1].getMessage()
    assert "3 detections: 2 ok, 1 failed" in last and "finished with failures" in last
    table = _parquet(out)
    assert table["id"] == ["d1", "d3", "d2"]
    assert table["status"] == ["ok", "failed", "ok"]
    assert "exp02.fits" in table["error"][1] and "CRVAL1" in table["error"][1]
    assert table["flux"][0] == table["flux"][2]  # identical stamps, identical fits
    assert out.with_suffix(".csv").read_text().count("\n") == 4  # header + 3 rows


def test_other_settings_recompute_everything_and_config_is_json(stamps, tmp_path):
    root, truth = stamps
    csv = _csv(tmp_path / "det.csv", truth, ["d1", "d2"])
    out = tmp_path / "res.parquet"
    first = run_smp_batch(csv, stamps_dir=root, out=out, config=CFG, scheduler="synchronous")
    assert (first["n_ok"], first["n_skipped"]) == (2, 0)
    meta = json.loads(_pq_meta(out)["config"])
    assert meta["grid_n"] == 10
    same = run_smp_batch(csv, stamps_dir=root, out=out, config=CFG, scheduler="synchronous")
    assert same["n_skipped"] == 2
    chi2_10 = _parquet(out)["chi2"]
    cfg8 = SceneConfig(grid_n=8, grid_spacing=0.6)
    other = run_smp_batch(csv, stamps_dir=root, out=out, config=cfg8, scheduler="synchronous")
    assert (other["n_ok"], other["n_skipped"]) == (2, 0)  # nothing reused
    assert json.loads(_pq_meta(out)["config"])["grid_n"] == 8
    table = _parquet(out)
    assert len(table["id"]) == 2 and table["dof"] != [None, None]
    assert table["chi2"] != chi2_10  # the rows are the new fits, not the old ones


def _pq_meta(out: Path) -> dict:
    from astropy.table import Table

    return Table.read(out).meta  # astropy reads skyscene's Parquet natively


def test_failed_rows_are_retried_on_rerun(stamps, tmp_path):
    root, truth = stamps
    work = tmp_path / "stamps"
    (work / "d1").mkdir(parents=True)
    for p in sorted((root / "d3").glob("*.fits")):
        (work / "d1" / p.name).write_bytes(p.read_bytes())
    csv = _csv(tmp_path / "det.csv", truth, ["d1"])
    out = tmp_path / "res.parquet"
    kw = dict(stamps_dir=work, out=out, config=CFG, scheduler="synchronous")
    assert run_smp_batch(csv, **kw)["n_failed"] == 1
    kept = run_smp_batch(csv, retry_failed=False, **kw)
    assert (kept["n_failed"], kept["n_skipped"]) == (1, 1)
    # the file is fixed: the default rerun retries the failure and it succeeds
    (work / "d1" / "exp02.fits").write_bytes((root / "d1" / "exp02.fits").read_bytes())
    fixed = run_smp_batch(csv, **kw)
    assert (fixed["n_ok"], fixed["n_failed"]) == (1, 0)
    assert _parquet(out)["status"] == ["ok"]


def test_warnings_during_the_fit_become_flags(stamps, tmp_path, monkeypatch):
    root, truth = stamps
    real = smp_pipeline.run_smp

    def noisy(*args, **kwargs):
        warnings.warn("overflow in the test", RuntimeWarning, stacklevel=1)
        return real(*args, **kwargs)

    monkeypatch.setattr(smp_pipeline, "run_smp", noisy)
    csv = _csv(tmp_path / "det.csv", truth, ["d1"])
    out = tmp_path / "res.parquet"
    summary = run_smp_batch(csv, stamps_dir=root, out=out, config=CFG, scheduler="synchronous")
    assert summary["n_ok"] == 1  # the warning is recorded, not an error, not ignored
    table = _parquet(out)
    assert "warning:RuntimeWarning" in table["flags"][0].split(";")
    assert table["warnings"] == ["RuntimeWarning: overflow in the test"]


def test_verbosity_after_the_subcommand(stamps, tmp_path):
    root, truth = stamps
    csv = _csv(tmp_path / "det.csv", truth, ["d1", "d1"])
    argv = ["smp-batch", str(csv), "--stamps", str(root), "--out", str(tmp_path / "r.parquet")]
    for flag in ("-q", "-v", "-vv", "--quiet"):
        assert main([*argv, flag]) == 1  # parsed (not argparse's exit 2): duplicate ids


@pytest.mark.parametrize(
    ("errno", "reason"), [(30, "Read-only file system"), (28, "No space left on device")]
)
def test_os_errors_are_one_line_naming_the_path(monkeypatch, caplog, errno, reason):
    from skyscene.cli import smp as cli_smp

    def fails(args):
        raise OSError(errno, reason, "/data/out/res.csv")

    monkeypatch.setattr(cli_smp, "_smp_batch", fails)
    status = main(["smp-batch", "d.csv", "--stamps", "s", "--out", "o.parquet"])
    assert status == 1
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.getMessage() for r in errors] == [f"/data/out/res.csv: [Errno {errno}] {reason}"]
    assert errors[0].exc_info is None  # no traceback


def test_interrupt_exits_130(monkeypatch, caplog):
    from skyscene.cli import smp as cli_smp

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_smp, "_smp_batch", interrupted)
    assert main(["smp-batch", "d.csv", "--stamps", "s", "--out", "o.parquet"]) == 130
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.getMessage() for r in errors] == ["interrupted"] and errors[0].exc_info is None


def test_verbosity_is_parsed_before_or_after_every_subcommand():
    from skyscene.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["reduce", "-q", "data", "out"])
    assert (args.quiet, args.verbose) == (True, 0)
    args = parser.parse_args(["-v", "simulate", "tno", "out"])  # before: kept
    assert (args.quiet, args.verbose) == (False, 1)
    args = parser.parse_args(["simulate", "tno", "out", "-vv"])
    assert args.verbose == 2
    # commands with actions of their own take them after the action too
    args = parser.parse_args(["users", "add", "bob", "--db", "sqlite://", "-q"])
    assert (args.quiet, args.verbose) == (True, 0)
    args = parser.parse_args(["db", "current", "sqlite://", "-v"])
    assert args.verbose == 1
    args = parser.parse_args(["-q", "users", "list", "--db", "sqlite://"])
    assert args.quiet is True


def test_unreachable_scheduler_at_the_cli(stamps, tmp_path, caplog):
    import socket

    root, truth = stamps
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    csv = _csv(tmp_path / "det.csv", truth, ["d1"])
    argv = ["smp-batch", str(csv), "--stamps", str(root), "--out", str(tmp_path / "r.parquet")]
    argv += ["--scheduler", f"tcp://127.0.0.1:{port}", "--connect-timeout", "1"]
    assert main(argv) == 1
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert errors[0].startswith(
        f"cannot reach the Dask scheduler 'tcp://127.0.0.1:{port}' within 1 s"
    )
