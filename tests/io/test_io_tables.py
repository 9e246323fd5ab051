"""Tables: CSV, ECSV and Parquet from one Table; units, dtypes and meta survive Table.read."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from astropy import units as u
from astropy.table import Table
from astropy.time import Time

from skyscene.errors import ParameterError
from skyscene.io import jsonable_meta, write_table
from skyscene.scene import SceneConfig


def _light_curve() -> Table:
    rng = np.random.default_rng(8)
    n = 7
    table = Table()
    table["BMJD"] = (60000.0 + np.sort(rng.uniform(0, 30, n))) * u.d
    table["flux"] = rng.normal(5000.0, 50.0, n) * u.adu
    table["flux_err"] = np.full(n, 50.0) * u.adu
    table["x"] = rng.uniform(0, 100, n).astype(np.float32) * u.pix
    table["n_used"] = np.arange(n, dtype=np.int32)
    table["flagged"] = rng.random(n) > 0.5
    table["file"] = [f"frame_{i:03d}.fits" for i in range(n)]
    table["flux"].description = "PSF flux"
    table.meta.update(
        {
            "time_scale": "tdb",
            "source_id": np.int64(3),
            "psf_sigma_major": np.float64(1.75),
            "binning": (2, 2),
            "config": {"aperture": 3.5, "bands": ["g", "r"]},
            "reference": Path("ref/g.fits"),
            "start": Time("2024-01-02T03:04:05", scale="utc"),
            "pixel_scale": 0.27 * u.arcsec,
        }
    )
    return table


EXPECTED_META = {
    "time_scale": "tdb",
    "source_id": 3,
    "psf_sigma_major": 1.75,
    "binning": [2, 2],
    "config": {"aperture": 3.5, "bands": ["g", "r"]},
    "reference": "ref/g.fits",
    "start": {"value": "2024-01-02T03:04:05.000", "scale": "utc", "format": "isot"},
    "pixel_scale": {"value": 0.27, "unit": "arcsec"},
}


def test_write_table_writes_three_formats(tmp_path):
    written = write_table(_light_curve(), tmp_path / "g_source_3.csv")
    assert [p.name for p in written] == ["g_source_3.csv", "g_source_3.ecsv", "g_source_3.parquet"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in written)


@pytest.mark.parametrize("suffix", [".ecsv", ".parquet"])
def test_self_describing_formats_round_trip_units_dtypes_meta(tmp_path, suffix):
    table = _light_curve()
    write_table(table, tmp_path / "lc.csv")
    back = Table.read(tmp_path / f"lc{suffix}")  # format from the suffix, no options
    assert back.colnames == table.colnames
    for name in table.colnames:
        assert back[name].unit == table[name].unit, name
        assert back[name].dtype == table[name].dtype, name
        np.testing.assert_array_equal(np.asarray(back[name]), np.asarray(table[name]))
    assert back["flux"].description == "PSF flux"
    assert dict(back.meta) == EXPECTED_META
    json.dumps(dict(back.meta))  # JSON values only


def test_csv_keeps_values(tmp_path):
    table = _light_curve()
    write_table(table, tmp_path / "lc.csv", parquet=False, ecsv=False)
    back = Table.read(tmp_path / "lc.csv", format="ascii.csv")
    np.testing.assert_allclose(back["flux"], table["flux"].value, rtol=1e-15)
    assert list(back["file"]) == list(table["file"])
    assert not (tmp_path / "lc.parquet").exists() and not (tmp_path / "lc.ecsv").exists()


def test_meta_is_json_and_caller_table_untouched(tmp_path):
    table = _light_curve()
    write_table(table, tmp_path / "lc.csv")
    assert isinstance(table.meta["binning"], tuple), "the caller's meta is not converted"
    assert jsonable_meta(table.meta) == EXPECTED_META


def test_config_objects_are_recorded_by_to_dict(tmp_path):
    config = SceneConfig()
    table = Table({"a": [1, 2]}, meta={"config": config})
    write_table(table, tmp_path / "t.csv")
    assert Table.read(tmp_path / "t.parquet").meta["config"] == jsonable_meta(config.to_dict())


@pytest.mark.parametrize(
    ("meta", "match"),
    [
        ({"model": object()}, r"table meta \['model'\] = object is not a JSON value"),
        ({"cfg": {"deep": [1, {2, 3}]}}, r"\['cfg'\]\['deep'\]\[1\] = set is not a JSON value"),
        ({"cfg": {1: "x"}}, r"table meta \['cfg'\]: key 1 is not a string"),
    ],
)
def test_non_json_meta_is_refused_naming_the_key(tmp_path, meta, match):
    with pytest.raises(ParameterError, match=match):
        write_table(Table({"a": [1]}, meta=meta), tmp_path / "t.csv")
    assert list(tmp_path.iterdir()) == [], "nothing written"
