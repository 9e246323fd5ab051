"""The smp / smp-batch / simulate tno commands, the pipeline and the mugshot."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from skyscene.cli import smp as cli_smp


def _parser():
    parser = argparse.ArgumentParser(prog="skyscene")
    commands = parser.add_subparsers(dest="command")
    sim_parser = commands.add_parser("simulate")
    simulate = sim_parser.add_subparsers(dest="what")
    cli_smp.register(commands, simulate)
    return parser


def _run(argv):
    args = _parser().parse_args(argv)
    args.progress = False
    return args.func(args)


@pytest.fixture(scope="module")
def stamp_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("smp")
    assert (
        _run(
            [
                "simulate",
                "tno",
                str(root / "d1"),
                "--seed",
                "3",
                "--n-exposures",
                "5",
                "--snr",
                "40",
            ]
        )
        == 0
    )
    return root


def test_smp_command_writes_json_and_mugshot(stamp_dir):
    truth = json.loads((stamp_dir / "d1" / "truth.json").read_text())
    stamps = sorted(str(p) for p in (stamp_dir / "d1").glob("*.fits"))
    out = stamp_dir / "r.json"
    png = stamp_dir / "m.png"
    argv = [
        "smp",
        *stamps,
        "--ra",
        str(truth["ra"]),
        "--dec",
        str(truth["dec"]),
        "--detection",
        stamps[0],
        "--grid-n",
        "12",
        "--grid-spacing",
        "0.5",
        "--out",
        str(out),
        "--mugshot",
        str(png),
    ]
    assert _run(argv) == 0
    record = json.loads(out.read_text())
    assert abs(record["flux"][0] - truth["flux"]) < 5 * record["flux_err"][0]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert record["detection_offsets_arcsec"] == [[0.0, 0.0]]
    # Per-detection offsets (implies --fit-offset): recorded per detection exposure.
    argv = [a for a in argv if a not in ("--mugshot", str(png))]
    assert _run([*argv, "--offset-mode", "per_detection"]) == 0
    record = json.loads(out.read_text())
    assert record["config"]["fit_offset"] is True
    assert record["config"]["offset_mode"] == "per_detection"
    assert np.max(np.abs(record["detection_offsets_arcsec"])) < 0.1  # the truth is at (0, 0)


def test_smp_batch_resumes_and_lists_failures(stamp_dir, tmp_path):
    truth = json.loads((stamp_dir / "d1" / "truth.json").read_text())
    csv = tmp_path / "det.csv"
    csv.write_text(
        "id,ra,dec,detection\n"
        f"d1,{truth['ra']},{truth['dec']},exp00.fits\n"
        f"bad,{truth['ra']},{truth['dec']},exp00.fits\n"
    )
    (stamp_dir / "bad").mkdir(exist_ok=True)
    (stamp_dir / "bad" / "exp00.fits").write_text("not a fits file")
    out = tmp_path / "res.parquet"
    from skyscene.pipelines.smp import run_smp_batch
    from skyscene.scene import SceneConfig

    cfg = SceneConfig(grid_n=10, grid_spacing=0.6)
    summary = run_smp_batch(csv, stamps_dir=stamp_dir, out=out, config=cfg, scheduler="synchronous")
    assert summary["n_ok"] == 1 and summary["n_failed"] == 1
    assert "not a FITS file" in summary["failures"]["bad"]
    import pyarrow.parquet as pq

    table = pq.read_table(out).to_pydict()
    assert table["status"] == ["ok", "failed"]
    assert out.with_suffix(".csv").exists()
    again = run_smp_batch(
        csv, stamps_dir=stamp_dir, out=out, config=cfg, scheduler="synchronous", retry_failed=False
    )
    assert again["n_skipped"] == 2
    # by default the failed detection is retried (and fails again): one reused
    retried = run_smp_batch(csv, stamps_dir=stamp_dir, out=out, config=cfg, scheduler="synchronous")
    assert (retried["n_skipped"], retried["n_failed"]) == (1, 1)


def test_mugshot_panels(stamp_dir):
    from skyscene.datasets.tno import simulate_tno_stamps
    from skyscene.plotting.mugshot import PANELS, mugshot_grid_figure, panel_images
    from skyscene.scene import fit_scene

    sim = simulate_tno_stamps(rng=1, n_exposures=5, snr=30.0)
    r = fit_scene(sim.exposures, sim.target, grid_n=10, grid_spacing=0.6)
    panels = panel_images(r, 0)
    assert tuple(panels) == PANELS
    # image − model + target − residual is the target model (where unmasked).
    good = ~r.mask[0]
    np.testing.assert_allclose(
        (panels[PANELS[2]] - panels[PANELS[4]])[good], r.target_model[0][good], atol=1e-9
    )
    fig = mugshot_grid_figure(r)
    assert len(fig.axes) == 25


def test_shot_noise_pass_is_on_unless_disabled():
    base = ["smp", "a.fits", "--ra", "1", "--dec", "2", "--detection", "a.fits", "--out", "r.json"]
    assert cli_smp._config(_parser().parse_args(base)).shot_noise is True
    assert cli_smp._config(_parser().parse_args([*base, "--no-shot-noise"])).shot_noise is False
