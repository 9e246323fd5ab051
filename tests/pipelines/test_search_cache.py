"""The reference catalogs of a search are kept in ``parts/catalogs``: computed once per
reference file for every worker and rerun, read back exactly, recomputed when unreadable."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from skyscene.io import read_exposure
from skyscene.pipelines import search
from skyscene.pipelines.diffim import simulate_pair_files
from skyscene.pipelines.search import PairEntry, run_search


def test_catalog_saved_once_and_read_back_exactly(tmp_path, monkeypatch):
    import skyscene.candidates

    f = simulate_pair_files(tmp_path / "p", seed=77, shape=(192, 192), n_transients=3)
    monkeypatch.setattr(search, "_CATALOGS", type(search._CATALOGS)())
    out = tmp_path / "out"
    run_search([PairEntry.of(f.science, f.reference, pair_id="a")], out, scheduler="synchronous")
    folder = out / "parts" / "catalogs"
    files = sorted(folder.glob("ref-*.npz"))
    assert len(files) == 1
    reference = read_exposure(f.reference, require_time=False)
    fresh = skyscene.candidates.reference_catalog(reference, threshold=5.0)
    assert len(fresh) > 0

    calls = []
    original = skyscene.candidates.reference_catalog

    def counting(ref, **kw):
        calls.append(1)
        return original(ref, **kw)

    monkeypatch.setattr(skyscene.candidates, "reference_catalog", counting)
    # another process (an empty in-memory cache) reads the file: no recomputation
    monkeypatch.setattr(search, "_CATALOGS", type(search._CATALOGS)())
    loaded = search._cached_catalog(Path(f.reference), reference, 5.0, folder)
    assert calls == []
    assert loaded.colnames == fresh.colnames and len(loaded) == len(fresh)
    for name in fresh.colnames:
        assert loaded[name].dtype == fresh[name].dtype
        np.testing.assert_array_equal(loaded[name], fresh[name])
    # another threshold is another catalog
    monkeypatch.setattr(search, "_CATALOGS", type(search._CATALOGS)())
    search._cached_catalog(Path(f.reference), reference, 8.0, folder)
    assert len(calls) == 1 and len(list(folder.glob("ref-*.npz"))) == 2
    # an unreadable file is recomputed and replaced
    files[0].write_bytes(b"not a catalog")
    monkeypatch.setattr(search, "_CATALOGS", type(search._CATALOGS)())
    again = search._cached_catalog(Path(f.reference), reference, 5.0, folder)
    assert len(calls) == 2 and len(again) == len(fresh)
    assert search._load_catalog(files[0]) is not None
