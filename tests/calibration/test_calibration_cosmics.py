"""mask_cosmic_rays: injected hits are masked, stars are not."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from scipy.ndimage import binary_dilation, label

from skyscene.calibration import mask_cosmic_rays
from skyscene.datasets.calibration import raw_science_frame
from skyscene.errors import DataError, MissingDependencyError, ParameterError
from skyscene.io import Exposure

pytest.importorskip("astroscrappy")


@pytest.fixture(scope="module")
def hit_frame(calib_set, calib_dir):
    _, truth = calib_dir
    sim = raw_science_frame(truth, rng=31, band="g", n_stars=15, n_cosmic_rays=40)
    calibrated = calib_set.apply(sim.exposure)
    return sim, calibrated, mask_cosmic_rays(calibrated)


def test_injected_hits_are_masked(hit_frame):
    sim, calibrated, cleaned = hit_frame
    new = cleaned.mask & ~calibrated.mask
    assert cleaned.meta["n_cosmic_ray_pixels"] == int(new.sum())
    events, n_events = label(sim.cosmic_rays, structure=np.ones((3, 3)))
    found = [new[events == i].any() for i in range(1, n_events + 1)]
    assert np.mean(found) >= 0.95  # >= 95 % of the hits (events)
    hit_pixels = sim.cosmic_rays & ~calibrated.mask
    assert (new & hit_pixels).sum() >= 0.9 * hit_pixels.sum()  # >= 90 % of their pixels
    # what else is flagged is the halo of a hit, not the sky
    halo = binary_dilation(sim.cosmic_rays, np.ones((3, 3)))
    assert (new & ~halo).sum() == 0
    assert np.isinf(cleaned.variance[new]).all()


def test_stars_are_not_masked(hit_frame):
    sim, calibrated, cleaned = hit_frame
    new = cleaned.mask & ~calibrated.mask
    ny, nx = new.shape
    yy, xx = np.mgrid[0:ny, 0:nx]
    peaks = []
    for x0, y0 in sim.stars:
        core = (xx - x0) ** 2 + (yy - y0) ** 2 < 4.5**2  # 1.5 FWHM
        assert not new[core].any(), f"star at ({x0:.1f}, {y0:.1f}) flagged"
        peaks.append(calibrated.data[core].max())
    assert max(peaks) > 5000  # bright, sharp stars were tested (peak >> noise ~23 ADU)


def test_clean_frame_gets_no_hits(calib_set, calib_dir):
    _, truth = calib_dir
    sim = raw_science_frame(truth, rng=32, band="r", n_stars=10)
    cleaned = mask_cosmic_rays(calib_set.apply(sim.exposure))
    assert cleaned.meta["n_cosmic_ray_pixels"] <= 2


def test_errors():
    exposure = Exposure(data=np.ones((8, 8)))
    with pytest.raises(ParameterError, match="sigclip must be positive, got -1"):
        mask_cosmic_rays(exposure, sigclip=-1)
    with pytest.raises(ParameterError, match="niter must be a positive integer, got 0"):
        mask_cosmic_rays(exposure, niter=0)
    masked = Exposure(data=np.ones((8, 8)), mask=np.ones((8, 8), bool), meta={"filename": "x.fits"})
    with pytest.raises(DataError, match=r"no unmasked pixel in x.fits"):
        mask_cosmic_rays(masked)


def test_missing_astroscrappy_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "astroscrappy", None)  # import now fails
    with pytest.raises(MissingDependencyError, match=r"pip install 'skyscene\[cosmics\]'"):
        mask_cosmic_rays(Exposure(data=np.ones((8, 8))))
