"""``subtract`` on bad input (issue 10 findings 8, 9, 15): one clear line, exit 1; --plot."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from astropy.io import fits

from skyscene.datasets.pairs import simulate_pair
from skyscene.diffim import Zogy
from skyscene.errors import DataError, HeaderError


def _cli(argv):
    from skyscene.cli import main

    return main(["-q", *argv])


@pytest.fixture(scope="module")
def pair_files(tmp_path_factory):
    from skyscene.pipelines.diffim import simulate_pair_files

    out = tmp_path_factory.mktemp("pair")
    files = simulate_pair_files(out, seed=5, shape=(192, 192), n_transients=3)
    return {"science": files.science, "reference": files.reference}


def _subtract(science, reference, out, *extra):
    argv = ["subtract", "--science", str(science), "--reference", str(reference)]
    return _cli([*argv, "--out", str(out), *extra])


def _error_lines(caplog):
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def _constant_copy(path, out):
    with fits.open(path) as hdul:
        hdul["SCI"].data[:] = 1000.0
        hdul.writeto(out)
    return out


@pytest.mark.parametrize("which", ["science", "reference"])
def test_constant_image_is_a_clear_error_exit_1(pair_files, tmp_path, caplog, which):
    """Finding 8: a constant image used to exit 0 with 'using flux_ratio=0' and 520 peaks."""
    const = _constant_copy(pair_files[which], tmp_path / f"const_{which}.fits")
    sci = const if which == "science" else pair_files["science"]
    ref = const if which == "reference" else pair_files["reference"]
    out = tmp_path / "diff.fits"
    assert _subtract(sci, ref, out) == 1
    (line,) = _error_lines(caplog)
    assert f"{which} image {const}: every usable pixel has the same value (1000)" in line
    assert "\n" not in line
    assert not out.exists()  # nothing written


def test_constant_array_raises_in_the_api():
    pair = simulate_pair(shape=(96, 96), rng=3, n_transients=0)
    flat = pair.reference.replace(data=np.full(pair.reference.shape, 7.5), mask=None)
    with pytest.raises(DataError, match=r"reference image .*same value \(7\.5\)"):
        Zogy()(pair.science, flat)


def test_differing_shapes_without_wcs_name_both_files(tmp_path, caplog):
    """Finding 9: the message names the science and the reference file."""
    from skyscene.io import Exposure, write_exposure

    rng = np.random.default_rng(0)
    sci = write_exposure(tmp_path / "sci.fits", Exposure(data=rng.normal(100, 3, (64, 80))))
    ref = write_exposure(tmp_path / "ref.fits", Exposure(data=rng.normal(100, 1, (64, 64))))
    assert _subtract(sci, ref, tmp_path / "d.fits") == 1
    (line,) = _error_lines(caplog)
    assert "science shape (64, 80) and reference shape (64, 64) differ" in line
    assert f"science {sci}" in line and f"reference {ref}" in line


def test_nan_wcs_card_in_a_file_is_one_line(pair_files, tmp_path, caplog):
    """Finding 9: CRVAL1 = NaN in the reference used to end in astropy's VerifyError."""
    raw = pair_files["reference"].read_bytes()
    at = raw.find(b"CRVAL1  =")
    bad = tmp_path / "nanwcs.fits"
    bad.write_bytes(raw[:at] + b"CRVAL1  = NaN".ljust(80) + raw[at + 80 :])
    assert _subtract(pair_files["science"], bad, tmp_path / "d.fits") == 1
    (line,) = _error_lines(caplog)
    assert "nanwcs.fits" in line and "CRVAL1" in line and "\n" not in line


@pytest.mark.parametrize(("attr", "key"), [("crval", "CRVAL2"), ("cdelt", "CDELT2")])
def test_nan_wcs_value_in_memory_names_image_and_key(attr, key):
    """ZOGY's own WCS use fails cleanly on a WCS built in memory with a NaN value."""
    pair = simulate_pair(shape=(96, 96), rng=3, n_transients=0)
    wcs = pair.reference.wcs.deepcopy()
    values = np.array(getattr(wcs.wcs, attr), float)
    values[1] = np.nan
    setattr(wcs.wcs, attr, values)
    with pytest.raises(HeaderError, match=rf"reference image .*WCS keyword {key} is not finite"):
        Zogy()(pair.science, pair.reference.replace(wcs=wcs))


def test_plot_writes_the_five_panel_figure(pair_files, tmp_path):
    """Finding 15: --plot PNG writes the figure (1360 x 304 px: five panels at 80 dpi)."""
    from matplotlib.image import imread

    png = tmp_path / "fig" / "sub.png"
    assert (
        _subtract(
            pair_files["science"], pair_files["reference"], tmp_path / "d.fits", "--plot", str(png)
        )
        == 0
    )
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = imread(png)
    assert image.shape[:2] == (304, 1360)
    # five panels: the figure is not blank (many distinct colours)
    assert len(np.unique(image.reshape(-1, image.shape[-1]), axis=0)) > 100
    assert not list(png.parent.glob(".*.tmp"))
