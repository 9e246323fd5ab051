"""Specification of header parsing with instrument profiles (``skyscene.io.headers``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from astropy import units as u
from astropy.io import fits
from astropy.time import Time

from skyscene.errors import HeaderError, ParameterError
from skyscene.io import InstrumentProfile, detect_profile, get_profile, parse_header
from skyscene.io.headers import load_profile

DATA = Path(__file__).parents[2].parent / "shared" / "data"


def header(**keys):
    h = fits.Header()
    for k, v in keys.items():
        h[k.replace("_", "-")] = v
    return h


def seconds(a, b):
    return (a - b).to_value(u.s)


def test_date_obs_plus_time_obs():
    info = parse_header(
        header(FILTER="V", DATE_OBS="2021-07-04", TIME_OBS="22:10:05.25", EXPTIME=120.0)
    )
    start = Time("2021-07-04T22:10:05.25", scale="utc")
    assert abs(seconds(info.time_start, start)) < 1e-6, "start = DATE-OBS + TIME-OBS (tol 1 µs)"
    assert abs(seconds(info.time_mid, start) - 60.0) < 1e-6, "mid = start + EXPTIME/2 (tol 1 µs)"
    assert info.exptime == 120.0 and info.band == "V"


def test_date_obs_with_time_ignores_time_obs():
    info = parse_header(
        header(FILTER="V", DATE_OBS="2021-07-04T01:00:00", TIME_OBS="05:00:00", EXPTIME=0.0)
    )
    assert abs(seconds(info.time_start, Time("2021-07-04T01:00:00", scale="utc"))) < 1e-6


def test_mjd_obs_takes_precedence_over_date_obs():
    info = parse_header(
        header(FILTER="r", MJD_OBS=59000.5, DATE_OBS="2000-01-01T00:00:00", EXPTIME=30.0)
    )
    assert abs(info.time_start.mjd - 59000.5) * 86400 < 1e-6
    assert abs(seconds(info.time_mid, Time(59000.5, format="mjd", scale="utc")) - 15.0) < 1e-6


def test_time_reference_mid_profile():
    prof = InstrumentProfile(name="midcam", time_reference="mid")
    info = parse_header(header(FILTER="r", MJD_OBS=59000.5, EXPTIME=40.0), profile=prof)
    assert abs(info.time_mid.mjd - 59000.5) * 86400 < 1e-6, "a 'mid' header time is the middle"
    assert abs(seconds(info.time_mid, info.time_start) - 20.0) < 1e-6


def test_decam_filter_first_word_and_hourangle_ra():
    h = header(
        INSTRUME="DECam",
        FILTER="r DECam SDSS c0002 6415.0 1480.0",
        MJD_OBS=57000.0,
        EXPTIME=90.0,
        RA="10:30:00.0",
        DEC="-05:15:00",
        GAINA=4.0,
        RDNOISEA=6.0,
    )
    assert detect_profile(h).name == "decam"
    info = parse_header(h)
    assert info.band == "r"
    assert info.ra == pytest.approx(157.5, abs=1e-9), "10h30m = 157.5 deg"
    assert info.dec == pytest.approx(-5.25, abs=1e-9)
    assert info.gain == 4.0 and info.read_noise == 6.0, "DECam amplifier A keywords come first"
    assert info.instrument == "DECam"


def test_real_decam_header():
    path = DATA / "des_psf" / "DECam_00154912_12_header.fits"
    if not path.is_file():
        pytest.skip(f"shared data not available: {path}")
    h = fits.getheader(path)
    info = parse_header(h, filename=str(path))
    assert info.band == "Y"
    assert info.exptime == 50.0
    # MJD-OBS wins; DATE-OBS of the same header agrees with it (tol 1 ms)
    assert abs(seconds(info.time_start, Time(h["DATE-OBS"], scale="utc"))) < 1e-3
    assert abs(seconds(info.time_mid, info.time_start) - 25.0) < 1e-6
    assert info.ra == pytest.approx((6 + 58 / 60 + 38 / 3600) * 15, abs=1e-9)
    assert info.dec == pytest.approx(-(55 + 57 / 60), abs=1e-9)
    assert info.saturate == 57491.0


@pytest.mark.parametrize(
    ("keys", "band"),
    [
        ({"FILTER": "ZTF_r"}, "r"),
        ({"FILTER": "ZTF_g"}, "g"),
        ({"FILTERID": 3}, "i"),
    ],
)
def test_ztf_aliases(keys, band):
    h = header(INSTRUME="ZTF/MOSAIC", OBSMJD=58500.25, MJD_OBS=1.0, EXPTIME=30.0, **keys)
    assert detect_profile(h).name == "ztf", (
        "INSTRUME 'ZTF/MOSAIC' selects the ztf profile by prefix"
    )
    info = parse_header(h)
    assert info.band == band
    assert abs(info.time_start.mjd - 58500.25) * 86400 < 1e-6, "ZTF's OBSMJD wins over MJD-OBS"


def test_auto_detect_case_insensitive_and_fallback():
    assert detect_profile(header(INSTRUME="decam")).name == "decam"
    assert detect_profile(header(INSTRUME="SomethingElse")).name == "generic"
    assert detect_profile(header()).name == "generic"
    # explicit profile overrides detection: generic keeps the whole DECam filter string
    h = header(INSTRUME="DECam", FILTER="g DECam SDSS", MJD_OBS=57000.0, EXPTIME=1.0)
    assert parse_header(h, profile="generic").band == "g DECam SDSS"


def test_toml_profile(tmp_path):
    toml = tmp_path / "mycam.toml"
    toml.write_text(
        'instrume = ["MyCam"]\n'
        'filter_keys = ["FILT"]\n'
        'exptime_keys = ["EXPOSURE"]\n'
        'time_reference = "mid"\n'
        "default_gain = 1.3\n"
        'filter_aliases = { "Rc" = "R" }\n'
    )
    prof = load_profile(toml)
    assert prof.name == "mycam", "name defaults to the file stem"
    assert prof.filter_keys == ("FILT",), "TOML lists become tuples"
    assert get_profile(str(toml)) == prof, "get_profile loads .toml paths"
    info = parse_header(header(FILT="Rc", MJD_OBS=60000.0, EXPOSURE=10.0), profile=str(toml))
    assert info.band == "R"
    assert info.gain == 1.3, "default_gain applies when the header has no gain"
    assert abs(seconds(info.time_mid, Time(60000.0, format="mjd", scale="utc"))) < 1e-6


def test_toml_profile_errors(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('colour = "red"\n')
    with pytest.raises(ParameterError, match=r"bad\.toml: unknown profile fields \['colour'\]"):
        load_profile(bad)
    broken = tmp_path / "broken.toml"
    broken.write_text("this is = = not toml")
    with pytest.raises(ParameterError, match=r"cannot read instrument profile .*broken\.toml"):
        load_profile(broken)
    with pytest.raises(ParameterError, match=r"cannot read instrument profile .*missing\.toml"):
        get_profile(str(tmp_path / "missing.toml"))
    wrong = tmp_path / "wrong.toml"
    wrong.write_text('time_reference = "end"\n')
    with pytest.raises(
        ParameterError, match=r"profile 'wrong': time_reference must be 'start' or 'mid', got 'end'"
    ):
        load_profile(wrong)


def test_unknown_profile():
    with pytest.raises(
        ParameterError, match=r"unknown instrument profile 'hubble'; known: .*decam.*generic.*ztf"
    ):
        get_profile("hubble")
    with pytest.raises(ParameterError, match=r"ra_unit must be 'deg' or 'hourangle', got 'rad'"):
        InstrumentProfile(name="x", ra_unit="rad")


@pytest.mark.parametrize(
    ("keys", "binning"),
    [
        ({"CCDSUM": "2x2"}, (2, 2)),
        ({"CCDSUM": "2 2"}, (2, 2)),
        ({"BINNING": "1X3"}, (1, 3)),
        ({"BINNING": "4"}, (4, 4)),
        ({"XBINNING": 2, "YBINNING": 3}, (2, 3)),
        ({"XBINNING": 2}, (2, 2)),
        ({}, (1, 1)),
    ],
)
def test_binning_formats(keys, binning):
    info = parse_header(header(FILTER="r", MJD_OBS=6e4, EXPTIME=1.0, **keys))
    assert info.binning == binning


@pytest.mark.parametrize(
    ("keys", "match"),
    [
        ({"CCDSUM": "2x2x2"}, r"f\.fits: keyword CCDSUM='2x2x2' is not a valid binning"),
        ({"CCDSUM": "0 1"}, r"f\.fits: keyword CCDSUM='0 1' is not a valid binning"),
        (
            {"DATE_OBS": "yesterday", "MJD_OBS": None},
            r"f\.fits: keyword DATE-OBS='yesterday' is not an ISO date",
        ),
        ({"MJD_OBS": "soon"}, r"f\.fits: keyword MJD-OBS='soon' is not a number"),
        ({"RA": "north"}, r"f\.fits: keyword RA='north' is not an angle"),
    ],
)
def test_malformed_keywords(keys, match):
    base = {"FILTER": "r", "MJD_OBS": 6e4, "EXPTIME": 1.0}
    base.update(keys)
    h = header(**{k: v for k, v in base.items() if v is not None})
    with pytest.raises(HeaderError, match=match) as info:
        parse_header(h, filename="f.fits")
    assert info.value.filename == "f.fits"
    assert info.value.key in str(info.value), "the message names the offending keyword"


@pytest.mark.parametrize(
    ("keys", "key", "match"),
    [
        (
            {"EXPTIME": -5.0},
            "EXPTIME",
            r"f\.fits: exposure time must not be negative \(EXPTIME = -5\.0\)",
        ),
        ({"GAIN": 0.0}, "GAIN", r"f\.fits: gain must be positive \(GAIN = 0\.0\)"),
    ],
)
def test_invalid_values_raise(keys, key, match):
    base = {"FILTER": "r", "MJD_OBS": 6e4, "EXPTIME": 1.0, **keys}
    with pytest.raises(HeaderError, match=match) as info:
        parse_header(header(**base), filename="f.fits")
    assert info.value.key == key and info.value.filename == "f.fits"


@pytest.mark.parametrize("keys", [{"EXPTIME": -5.0}, {"GAIN": 0.0}])
def test_invalid_value_messages_name_the_keyword(keys):
    base = {"FILTER": "r", "MJD_OBS": 6e4, "EXPTIME": 1.0, **keys}
    with pytest.raises(HeaderError) as info:
        parse_header(header(**base), filename="f.fits")
    assert next(iter(keys)) in str(info.value)
