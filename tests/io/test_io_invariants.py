"""Containers that cross process boundaries (Dask tasks) pickle and round-trip."""

from __future__ import annotations

import pickle

import numpy as np
from astropy import units as u
from astropy.time import Time

from skyscene.io import Exposure, MasterFrame


def test_exposure_pickles_with_every_field():
    rng = np.random.default_rng(2)
    mask = np.zeros((6, 7), bool)
    mask[1, 2] = True
    exp = Exposure(
        data=rng.normal(size=(6, 7)),
        variance=np.full((6, 7), 2.0),
        mask=mask,
        band="i",
        time=Time(60001.5, format="mjd"),
        exptime=12.0,
        unit=u.electron / u.s,  # a Unit is stored as its string
        origin=(3, 4),
        meta={"filename": "x.fits", "n_nonphysical": 0},
    )
    assert exp.unit == "electron / s"
    back = pickle.loads(pickle.dumps(exp))
    np.testing.assert_array_equal(back.data, exp.data)
    np.testing.assert_array_equal(back.variance, exp.variance)
    np.testing.assert_array_equal(back.mask, exp.mask)
    assert (back.band, back.exptime, back.unit, back.origin) == ("i", 12.0, "electron / s", (3, 4))
    assert back.time == exp.time and back.meta == exp.meta


def test_master_frame_pickles():
    master = MasterFrame(
        data=np.ones((3, 4)),
        variance=np.full((3, 4), 0.25),
        mask=np.eye(3, 4, dtype=bool),
        n_frames=5,
        kind="flat",
        meta={"band": "r", "binning": (1, 1)},
    )
    fingerprint = master.fingerprint
    back = pickle.loads(pickle.dumps(master))
    np.testing.assert_array_equal(back.data, master.data)
    np.testing.assert_array_equal(back.variance, master.variance)
    np.testing.assert_array_equal(back.mask, master.mask)
    assert back.kind == "flat" and back.n_frames == 5 and back.meta == master.meta
    assert back.fingerprint == fingerprint
    assert not back.data.flags.writeable, "read-only arrays stay read-only"
