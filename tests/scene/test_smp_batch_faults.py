"""One SIGKILL/resume scenario of smp-batch (benchmarks/faults.py runs them all)."""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
from pathlib import Path

import pytest

FAULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "faults.py"


def _faults():
    spec = importlib.util.spec_from_file_location("skyscene_faults", FAULTS)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _prepare(data: Path) -> None:
    from skyscene.datasets.tno import simulate_tno_stamps

    rows = ["id,ra,dec,detection"]
    for i in range(3):
        sim = simulate_tno_stamps(
            rng=200 + i, n_exposures=4, snr=30.0, out_dir=data / "stamps" / f"t{i}"
        )
        rows.append(f"t{i},{sim.truth['ra']},{sim.truth['dec']},exp00.fits")
    bad = data / "stamps" / "t2" / "exp01.fits"  # a failed row must survive the kill too
    bad.write_bytes(bad.read_bytes()[:5000])
    (data / "detections.csv").write_text("\n".join(rows) + "\n")


@pytest.mark.slow
def test_smp_batch_killed_after_one_task_resumes_to_identical_tables(tmp_path):
    faults = _faults()
    smp = next(s for s in faults.scenarios() if s.name == "smp-batch")
    scenario = dataclasses.replace(smp, prepare=_prepare)
    outcome = faults.run_scenario(
        scenario,
        tmp_path,
        scheduler="synchronous",
        kill_points=[faults.KillPoint(after_tasks=1)],
    )
    assert len(outcome) == 1
    label, problems = outcome[0]
    assert "killed at" in label and "1 task(s) on disk" in label, label
    assert problems == [], problems
    # rows before/after: the resumed table has every detection once, the bad one failed
    resumed = faults._normalised(tmp_path / "smp-batch" / "killed0" / "results.csv").decode()
    lines = resumed.strip().splitlines()
    assert len(lines) == 4 and [line.split(",")[0] for line in lines[1:]] == ["t0", "t1", "t2"]
    header = lines[0].split(",")
    status = [line.split(",")[header.index("status")] for line in lines[1:]]
    assert status == ["ok", "ok", "failed"]
    assert "seconds" not in header  # timings are dropped before comparing
    # the comparison can fail: a changed row is reported
    ref = tmp_path / "smp-batch" / "reference" / "results.csv"
    ref.write_text(ref.read_text().replace(",ok,", ",okay,", 1))
    problems = faults.compare(
        scenario, tmp_path / "smp-batch" / "reference", tmp_path / "smp-batch" / "killed0"
    )
    assert problems == ["results.csv differs"]
