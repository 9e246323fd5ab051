"""Seeded pairs for the candidate tests (small images: the suite stays fast)."""

import numpy as np
import pytest

from skyscene.datasets.pairs import simulate_pair
from skyscene.diffim import Zogy


@pytest.fixture(scope="session")
def clean_pair():
    """384² pair, Gaussian PSFs, no galaxies, 24 isolated-ish transients of S/N 25."""
    return simulate_pair(
        shape=(384, 384),
        rng=21,
        n_transients=24,
        transient_snr=25.0,
        galaxy_density=0.0,
        transient_on_galaxy_fraction=0.0,
        science_psf="gaussian",
    )


@pytest.fixture(scope="session")
def clean_result(clean_pair):
    return Zogy()(clean_pair.science, clean_pair.reference)


@pytest.fixture(scope="session")
def fading_pair(clean_pair):
    """The clean pair plus a source present in the reference only (it faded away)."""
    ref = clean_pair.reference
    x_ref, y_ref = 200.3, 140.6
    flux_ref = float(np.median(clean_pair.transients["flux_ref"]))
    stamp = ref.psf.render(ref.shape, center=(x_ref, y_ref))
    reference = ref.replace(data=ref.data + flux_ref * stamp / stamp.sum())
    dx, dy = clean_pair.offset
    truth = {"x": x_ref + dx, "y": y_ref + dy, "flux_ref": flux_ref}
    return clean_pair.science, reference, truth
