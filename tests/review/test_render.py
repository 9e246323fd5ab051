"""Cutout PNGs of the review page: the directly written palette PNG decodes (Pillow) to
the stretched stamp, row 0 at the bottom, magnified, NaN in the NaN colour."""

from __future__ import annotations

import io

import numpy as np
import pytest

from skyscene.review.render import NAN_RGB, render_png, stretch


@pytest.mark.parametrize("kind", ["zscale", "asinh", "linear"])
@pytest.mark.parametrize("zoom", [1, 4])
def test_png_decodes_to_the_stretched_stamp(kind, zoom):
    from PIL import Image

    rng = np.random.default_rng(3)
    data = rng.normal(size=(21, 17))
    data[2, 5] = np.nan  # near the bottom-left corner of the stamp
    png = render_png(data, kind=kind, zoom=zoom)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    image = Image.open(io.BytesIO(png))
    image.load()  # checks the CRCs and the zlib stream
    assert image.size == (17 * zoom, 21 * zoom)
    rgb = np.asarray(image.convert("RGB"), dtype=int)
    grey = stretch(data, kind)[::-1]  # row 0 at the bottom
    finite = np.isfinite(grey)
    expected = np.round(np.where(finite, grey, 0) * 255)
    big = np.repeat(np.repeat(expected, zoom, 0), zoom, 1)
    mask = np.repeat(np.repeat(finite, zoom, 0), zoom, 1)
    # 255 grey levels in the palette: within one level of the 8-bit value
    assert np.abs(rgb[..., 0][mask] - big[mask]).max() <= 1
    assert (rgb[mask][:, 0] == rgb[mask][:, 2]).all()  # grey where finite
    nan_rows, nan_cols = np.nonzero(~mask)
    assert (rgb[~mask] == NAN_RGB).all()
    # the NaN pixel (row 2 of the data) is drawn 2 rows above the bottom edge
    assert set(nan_rows // zoom) == {21 - 1 - 2} and set(nan_cols // zoom) == {5}


def test_constant_stamp_is_mid_grey():
    from PIL import Image

    rgb = np.asarray(Image.open(io.BytesIO(render_png(np.ones((5, 5))))).convert("RGB"))
    assert (np.abs(rgb.astype(int) - 128) <= 1).all()


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="must be 2-D"):
        render_png(np.ones(5))
    with pytest.raises(ValueError, match="zoom"):
        render_png(np.ones((5, 5)), zoom=0)
    with pytest.raises(ValueError, match="stretch"):
        render_png(np.ones((5, 5)), kind="log")
