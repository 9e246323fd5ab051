"""File side of a CalibrationSet (skyscene.io.calset) and the no-file-I/O rule of calibration."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

import skyscene.calibration
from skyscene.calibration import CalibrationSet
from skyscene.errors import HeaderError
from skyscene.io import calibration_set_from_directory, read_calibration_set, write_calibration_set


def _frame(path: Path, rng, **keys) -> None:
    data = (100.0 + rng.standard_normal((8, 8))).astype(np.float32)
    fits.PrimaryHDU(data, header=fits.Header(keys)).writeto(path)


def _write_raw_card(path: Path, key: str, raw_value: str) -> None:
    """Replace the card ``key`` of the primary header by ``KEY     = <raw_value>`` verbatim."""
    blob = bytearray(path.read_bytes())
    for start in range(0, 2880 * 4, 80):
        if blob[start : start + 8].decode().rstrip() == key:
            blob[start : start + 80] = f"{key:<8}= {raw_value:>20}".ljust(80).encode()
            path.write_bytes(bytes(blob))
            return
    raise AssertionError(f"no card {key} in {path}")


def test_unparsable_card_gives_one_line_error_naming_the_file(tmp_path):
    rng = np.random.default_rng(11)
    for i in range(3):
        _frame(tmp_path / f"bias{i}.fits", rng, IMAGETYP="bias")
    bad = tmp_path / "bias1.fits"
    fits.setval(bad, "CRVAL1", value=0.0)
    _write_raw_card(bad, "CRVAL1", "NaN")
    with pytest.raises(HeaderError) as info:
        CalibrationSet.from_directory(tmp_path)
    message = str(info.value)
    assert "\n" not in message
    assert str(bad) in message and "CRVAL1" in message
    with pytest.raises(HeaderError, match=r"bias1\.fits"):
        calibration_set_from_directory(tmp_path)


def test_io_functions_round_trip_and_match_the_methods(calib_set, tmp_path):
    written = write_calibration_set(calib_set, tmp_path / "m")
    assert sorted(p.name for p in written) == sorted(p.name for p in calib_set.save(tmp_path / "n"))
    loaded = read_calibration_set(tmp_path / "m")
    assert loaded.bands == calib_set.bands and loaded.gain == calib_set.gain
    np.testing.assert_array_equal(loaded.bias.data, calib_set.bias.data)
    np.testing.assert_array_equal(loaded.bad_pixels["g"], calib_set.bad_pixels["g"])


_FILE_CALLS = {"open", "fits.open", "io.open", "gzip.open", "h5py.File", "np.load", "np.save"}
_FILE_METHODS = {"open", "read_text", "read_bytes", "write_text", "write_bytes", "writeto"}


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _file_io_in(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        where = f"{path.name}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Import):
            found += [f"{where} import {a.name}" for a in node.names if "astropy.io.fits" in a.name]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            names = {a.name for a in node.names}
            if module.startswith("astropy.io.fits") or (module == "astropy.io" and "fits" in names):
                found.append(f"{where} from {module} import {', '.join(sorted(names))}")
        elif isinstance(node, ast.Call):
            name = _dotted(node.func)
            method = name.rsplit(".", 1)[-1]
            if name in _FILE_CALLS or (
                isinstance(node.func, ast.Attribute) and method in _FILE_METHODS
            ):
                found.append(f"{where} call {name}")
    return found


def test_no_calibration_module_imports_fits_or_opens_files():
    package = Path(skyscene.calibration.__file__).parent
    modules = sorted(package.rglob("*.py"))
    assert len(modules) >= 6  # the scan sees the whole package
    offences = [hit for module in modules for hit in _file_io_in(module)]
    assert offences == []


def test_the_scan_detects_file_io(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from astropy.io import fits\nimport astropy.io.fits\n"
        "def f(p):\n    with open(p) as fh:\n        return fits.open(p), p.read_text()\n"
    )
    assert len(_file_io_in(sample)) == 5
