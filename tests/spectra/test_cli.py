"""Specification of ``skyscene simulate spectra`` and ``skyscene spectra grid|fit``."""

import argparse
import json

import numpy as np
import pytest
from phoenix_files import write_phoenix_library

from skyscene.cli.spectra import register
from skyscene.errors import InputFileError, ParameterError
from skyscene.pipelines.spectra import read_spectrum_csv
from skyscene.spectra import SpectralGrid

# instrument resolution and parameter bounds shared by the fit commands below
FIT_BOUNDS = ["--resolution", "30000", "--rv-min", "-60", "--rv-max", "60", "--vsini-max", "30"]


def run(argv):
    parser = argparse.ArgumentParser(prog="skyscene")
    commands = parser.add_subparsers(dest="command")
    simulate = commands.add_parser("simulate").add_subparsers(dest="what")
    register(commands, simulate)
    args = parser.parse_args(argv)
    args.progress = False
    return args.func(args)


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim")
    assert (
        run(
            [
                "simulate",
                "spectra",
                str(out),
                "--pixels",
                "2048",
                "--n-wavelength",
                "4096",
                "--seed",
                "3",
            ]
        )
        == 0
    )
    return out


def test_simulate_writes_grid_spectra_and_truth(simulated):
    grid = SpectralGrid.read(simulated / "grid.h5")
    assert grid.n_grid == 13 and grid.n_wavelength == 4096
    spec = read_spectrum_csv(simulated / "spectrum_mixture.csv")
    assert spec.wavelength.size == 2048 and spec.order is not None
    truth = json.loads((simulated / "truth.json").read_text())
    assert truth["spectrum_mixture"]["c"] == 0.35 and truth["spectrum_single"]["theta2"] is None


def test_fit_mixture_writes_json_csv_and_plot(simulated, tmp_path, capsys):
    status = run(
        [
            "spectra",
            "fit",
            str(simulated / "spectrum_mixture.csv"),
            "--grid",
            str(simulated / "grid.h5"),
            "--mixture",
            *FIT_BOUNDS,
            "--out-dir",
            str(tmp_path),
        ]
    )
    assert status == 0
    out = capsys.readouterr().out
    assert "c = " in out and "preferred: mixture" in out
    result = json.loads((tmp_path / "spectrum_mixture_fit.json").read_text())
    assert abs(result["mixture"]["c"]["value"] - 0.35) < 0.05
    assert result["comparison"]["preferred"] == "mixture"
    assert result["mixture"]["config"]["resolution"] == 30000.0
    assert result["mixture"]["config"]["interpolation"] == "emulator"  # the default
    table = np.genfromtxt(tmp_path / "spectrum_mixture_model.csv", delimiter=",", names=True)
    assert set(table.dtype.names) >= {
        "wavelength",
        "flux",
        "model",
        "component1",
        "component2",
        "residual",
    }
    assert np.std(table["residual"]) == pytest.approx(1.0, abs=0.1)
    png = (tmp_path / "spectrum_mixture_fit.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_fit_single_with_sampling(simulated, tmp_path):
    status = run(
        [
            "spectra",
            "fit",
            str(simulated / "spectrum_single.csv"),
            "--grid",
            str(simulated / "grid.h5"),
            "--sample",
            "--n-steps",
            "40",
            *FIT_BOUNDS,
            "--out-dir",
            str(tmp_path),
        ]
    )
    assert status == 0
    result = json.loads((tmp_path / "spectrum_single_fit.json").read_text())
    assert "mixture" not in result and result["single"]["method"] == "emcee"
    assert abs(result["single"]["theta1"]["Teff"] - 5400.0) < 60.0


def test_grid_from_phoenix_files(tmp_path, capsys):
    raw = tmp_path / "raw"
    raw.mkdir()
    write_phoenix_library(raw)
    status = run(
        [
            "spectra",
            "grid",
            str(raw),
            str(tmp_path / "g.h5"),
            "--reader",
            "phoenix",
            "--wl-min",
            "5010",
            "--wl-max",
            "5030",
            "--resolution",
            "50000",
        ]
    )
    assert status == 0
    grid = SpectralGrid.read(tmp_path / "g.h5")
    assert grid.n_grid == 8 and grid.meta["resolution"] == 50000.0
    assert "wrote SpectralGrid(8 spectra" in capsys.readouterr().out


def test_bad_spectrum_files(tmp_path, simulated):
    with pytest.raises(InputFileError, match=r"spectrum file .*nope.csv' does not exist"):
        read_spectrum_csv(tmp_path / "nope.csv")
    (tmp_path / "bad.csv").write_text("wavelength,flux\n5000,1\n5001,1\n")
    with pytest.raises(InputFileError, match=r"lacks the column\(s\) \['sigma'\]"):
        read_spectrum_csv(tmp_path / "bad.csv")
    with pytest.raises(InputFileError, match=r"spectral grid file .*missing.h5' does not exist"):
        run(
            [
                "spectra",
                "fit",
                str(simulated / "spectrum_single.csv"),
                "--grid",
                str(tmp_path / "missing.h5"),
            ]
        )


def test_fit_trim_fits_what_the_grid_supports(simulated, tmp_path, capsys):
    """RV bounds of ±500 km/s need more grid than the simulated spectrum (made for ±200)
    has at its ends: an error naming the option, or with --trim a fit that says so."""
    spectrum = tmp_path / "wide.csv"
    spec = read_spectrum_csv(simulated / "spectrum_single.csv")
    from astropy.table import Table

    Table({"wavelength": spec.wavelength, "flux": spec.flux, "sigma": spec.sigma}).write(
        spectrum, format="ascii.csv"
    )
    argv = ["spectra", "fit", str(spectrum), "--grid", str(simulated / "grid.h5")]
    bounds = ["--resolution", "30000", "--rv-min", "-500", "--rv-max", "500"]
    with pytest.raises(ParameterError, match=r"needs grid wavelengths .* trim=True"):
        run([*argv, *bounds, "--out-dir", str(tmp_path)])
    assert run([*argv, *bounds, "--trim", "--out-dir", str(tmp_path)]) == 0
    assert "trimmed: fitted" in capsys.readouterr().out
    result = json.loads((tmp_path / "wide_fit.json").read_text())
    trimmed = result["single"]["trimmed"]
    lo, hi = trimmed["wavelength_range"]
    inside = (spec.wavelength >= lo) & (spec.wavelength <= hi)
    assert trimmed["n_pixels"] == int(np.count_nonzero(~inside)) > 0
    table = np.genfromtxt(tmp_path / "wide_model.csv", delimiter=",", names=True)
    assert table.size == spec.wavelength.size  # every pixel is written
    assert np.all(np.isnan(table["model"][~inside])) and np.all(np.isfinite(table["model"][inside]))
    assert abs(result["single"]["theta1"]["Teff"] - 5400.0) < 60.0
