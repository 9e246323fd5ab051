"""Alert packets: real ZTF packets, exact round trips, plain-fastavro readability, errors."""

from __future__ import annotations

import gzip
import io
import json
import subprocess
import sys
import warnings
from pathlib import Path

import fastavro
import numpy as np
import pytest
from astropy.io import fits
from astropy.table import MaskedColumn, Table

from skyscene.alerts import (
    CANDIDATE_FIELDS,
    AlertConfig,
    alerts_from_table,
    decode_stamp,
    encode_stamp,
    make_alert,
    read_alerts,
    schema_path,
    write_alert_file,
    write_alerts,
)
from skyscene.errors import DataError, InputFileError, ParameterRangeError

ZTF_DIR = Path(__file__).parents[2] / ".." / "shared" / "data" / "ztf_alerts"
ztf_files = sorted(ZTF_DIR.glob("*.avro")) if ZTF_DIR.is_dir() else []
needs_ztf = pytest.mark.skipif(not ztf_files, reason=f"real ZTF packets not found in {ZTF_DIR}")


def _candidate(i: int, rng: np.random.Generator) -> dict:
    return {
        "candid": 2_000_000_000_000_000_000 + i,  # beyond 2**53: must stay exact
        "jd": 2461000.5 + 0.1234567891 * i,
        "fid": 2,
        "ra": 150.0 + rng.normal() * 1e-3,
        "dec": -2.0 + rng.normal() * 1e-3,
        "isdiffpos": "t" if i % 2 else "f",
        "magpsf": float(19 + rng.normal()),
        "sigmapsf": 0.123456789,
        "xpos": 100.25 + i,
        "ypos": 33.1,
        "distnr": np.nan,  # nullable: written as null
        "nbad": np.int64(i % 3),
        "scorr": 7.123456789012345,
        "sharpness": 0.97,
        "dipole": 0.01,
        "flags": 5,
        "pair_id": "night1-ccd3",
    }


@pytest.fixture
def alerts():
    rng = np.random.default_rng(12)
    out = []
    for i in range(4):
        cut = rng.normal(size=(3, 63, 63)).astype(np.float32)
        cut[0, :3, :] = np.nan  # off-image pixels
        out.append(
            make_alert(
                _candidate(i, rng),
                object_id=f"SKY26aaaaaa{'bcde'[i]}",
                science=cut[0],
                reference=cut[1],
                difference=cut[2],
                headers={"science": {"BUNIT": "adu", "CRPIX1": 32.5}},
                variances={"difference": np.full((63, 63), 4.0)},
                prv_candidates=[{"jd": 2460990.5, "fid": 1, "magpsf": 20.3, "candid": 17}],
            )
        )
    return out


@needs_ztf
@pytest.mark.parametrize("path", ztf_files, ids=[p.name for p in ztf_files])
def test_real_ztf_packets_read_as_fastavro_decodes_them(path):
    with open(path, "rb") as fh:
        raw = list(fastavro.reader(fh))
    (alert,) = read_alerts(path)
    assert len(raw) == 1
    assert dict(alert.candidate) == raw[0]["candidate"]  # every field, bit for bit
    assert alert.candid == raw[0]["candid"] and alert.object_id == raw[0]["objectId"]
    assert len(alert.prv_candidates) == len(raw[0]["prv_candidates"] or ())
    for name, key in (
        ("science", "cutoutScience"),
        ("reference", "cutoutTemplate"),
        ("difference", "cutoutDifference"),
    ):
        array = getattr(alert, name)
        assert array.shape == (63, 63) and array.dtype == np.float32
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ZTF's SIMPLE card is non-standard
            expected = fits.getdata(io.BytesIO(gzip.decompress(raw[0][key]["stampData"])))
        np.testing.assert_array_equal(array, expected)  # fast decoder == astropy
        assert alert.stamps[name].file_name == raw[0][key]["fileName"]


@needs_ztf
def test_all_ztf_schema_versions_are_covered():
    versions = {a.schemavsn for a in read_alerts(ZTF_DIR)}
    assert len(read_alerts(ZTF_DIR)) == len(ztf_files) == 6
    assert {"2.0", "3.3"} <= versions  # 1.x packets carry no schemavsn: ""


def test_write_read_round_trip_is_exact(alerts, tmp_path):
    files = write_alerts(alerts, tmp_path)
    assert [p.name for p in files.paths] == [f"{a.candid}.avro" for a in alerts]
    back = read_alerts(tmp_path)
    assert sorted(back, key=lambda a: a.candid) == alerts
    first = next(a for a in back if a.candid == alerts[0].candid)
    assert first.candidate["candid"] == 2_000_000_000_000_000_000
    assert first.candidate["distnr"] is None  # NaN in a nullable field -> null
    assert first.candidate["sigmapsf"] == float(np.float32(0.123456789))  # Avro float
    assert first.candidate["scorr"] == 7.123456789012345  # Avro double
    assert first.features["flags"] == 5 and first.features["pair_id"] == "night1-ccd3"
    assert np.isnan(first.science[:3]).all() and np.isfinite(first.science[3:]).all()
    assert first.prv_candidates[0]["magpsf"] == float(np.float32(20.3))
    assert first.prv_candidates[0]["ra"] is None


def test_stream_file_holds_all_packets(alerts, tmp_path):
    path = write_alert_file(alerts, tmp_path / "night.avro")
    assert read_alerts(path) == alerts


def test_plain_fastavro_reads_with_the_shipped_schema_only(alerts, tmp_path):
    path = write_alerts(alerts[:1], tmp_path).paths[0]
    code = f"""
import json, sys, fastavro, fastavro.schema
schema = fastavro.schema.load_schema({str(schema_path())!r})
with open({str(path)!r}, "rb") as fh:
    records = list(fastavro.reader(fh, reader_schema=schema))
assert all(fastavro.validate(r, schema) for r in records)
assert not [m for m in sys.modules if m.startswith("skyscene")]
r = records[0]
print(json.dumps({{"n": len(records), "candid": r["candid"], "objectId": r["objectId"],
    "magpsf": r["candidate"]["magpsf"], "stamp": len(r["cutoutDifference"]["stampData"]),
    "sharpness": r["skyscene"]["sharpness"]}}))
"""
    done = subprocess.run(
        [sys.executable, "-I", "-c", code], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["n"] == 1 and out["candid"] == alerts[0].candid
    assert out["objectId"] == alerts[0].object_id
    assert out["magpsf"] == alerts[0].candidate["magpsf"]
    assert out["stamp"] == len(alerts[0].stamps["difference"].data)
    assert out["sharpness"] == alerts[0].features["sharpness"]


def test_stamp_is_fits_with_header_and_variance():
    data = np.arange(63 * 63, dtype=float).reshape(63, 63)
    stamp = encode_stamp(
        data, header={"BUNIT": "adu", "CRVAL1": 150.25, "SATURATE": True}, variance=data * 2
    )
    with fits.open(io.BytesIO(gzip.decompress(stamp))) as hdul:
        assert hdul[0].header["BUNIT"] == "adu" and hdul[0].header["CRVAL1"] == 150.25
        assert hdul[0].header["SATURATE"] is True
        np.testing.assert_array_equal(hdul[0].data, data)
        np.testing.assert_array_equal(hdul["VARIANCE"].data, data * 2)
    np.testing.assert_array_equal(decode_stamp(stamp), data)
    assert encode_stamp(data) == encode_stamp(data)  # deterministic bytes (no gzip time stamp)


def test_alerts_from_table_takes_masked_columns_and_cubes(tmp_path):
    rng = np.random.default_rng(3)
    n = 3
    table = Table(
        {
            "candid": np.arange(n, dtype=np.int64) + 100,
            "jd": np.full(n, 2461000.5),
            "fid": np.full(n, 1, dtype=np.int32),
            "ra": [10.0, 10.1, 10.2],
            "dec": [-5.0, -5.0, -5.0],
            "isdiffpos": ["t", "f", "t"],
            "magpsf": [18.0, 19.0, 20.0],
            "sigmapsf": [0.01, 0.02, 0.03],
            "magnr": MaskedColumn([15.0, 0.0, 16.0], mask=[False, True, False]),
        }
    )
    cubes = {k: rng.normal(size=(n, 63, 63)) for k in ("science", "reference", "difference")}
    alerts = alerts_from_table(table, object_ids=["SKY26aaaaaab"] * n, cutouts=cubes)
    assert [a.candidate["magnr"] for a in alerts] == [15.0, None, 16.0]
    assert [a.candidate["isdiffpos"] for a in alerts] == ["t", "f", "t"]
    np.testing.assert_array_equal(alerts[1].difference, cubes["difference"][1].astype(np.float32))
    with pytest.raises(DataError, match=r"cutouts\['science'\] has 2 entries for 3 candidates"):
        alerts_from_table(table, object_ids=["x"] * n, cutouts={"science": cubes["science"][:2]})


def test_rerun_without_overwrite_keeps_files_and_leaves_no_temporaries(alerts, tmp_path):
    write_alerts(alerts, tmp_path)
    again = write_alerts(alerts, tmp_path, config=AlertConfig(overwrite=False))
    assert again.paths == () and len(again.skipped) == len(alerts)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{a.candid}.avro" for a in alerts)


def test_schema_types_follow_ztf_402():
    assert CANDIDATE_FIELDS["candid"] == ("long", False)
    assert CANDIDATE_FIELDS["jd"] == ("double", False)
    assert CANDIDATE_FIELDS["fid"] == ("int", False)
    assert CANDIDATE_FIELDS["isdiffpos"] == ("string", False)
    assert CANDIDATE_FIELDS["magpsf"] == ("float", False)
    assert CANDIDATE_FIELDS["scorr"] == ("double", True)
    assert CANDIDATE_FIELDS["nbad"] == ("int", True)


def test_bad_input_names_field_file_and_value(tmp_path, alerts):
    good = _candidate(0, np.random.default_rng(0))
    with pytest.raises(DataError, match="required field 'ra' is missing"):
        make_alert({k: v for k, v in good.items() if k != "ra"}, object_id="SKY26aaaaaab")
    with pytest.raises(DataError, match="'isdiffpos' must be 't' or 'f', got 'x'"):
        make_alert({**good, "isdiffpos": "x"}, object_id="SKY26aaaaaab")
    with pytest.raises(DataError, match=r"field 'nbad' = 2\.5 is not a valid int"):
        make_alert({**good, "nbad": 2.5}, object_id="SKY26aaaaaab")
    with pytest.raises(DataError, match="not gzip-compressed FITS"):
        make_alert(good, object_id="SKY26aaaaaab", science=b"\x1f\x8bnot really")
    with pytest.raises(
        ParameterRangeError, match=r"AlertConfig.compresslevel must be in \[0, 9\], got 12"
    ):
        AlertConfig(compresslevel=12)
    missing = tmp_path / "nope.avro"
    with pytest.raises(InputFileError, match=f"alert file {missing} does not exist"):
        read_alerts(missing)
    broken = tmp_path / "broken.avro"
    broken.write_bytes(b"Obj\x01garbage")
    with pytest.raises(InputFileError, match=f"alert file {broken}: not a readable Avro file"):
        read_alerts(broken)
