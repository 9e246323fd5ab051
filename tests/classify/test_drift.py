"""Drift monitoring: a night whose score distribution shifted is flagged, others not."""

import numpy as np
import pytest
from conftest import toy_triplets

from skyscene.classify.drift import DriftConfig, drift_report, psi
from skyscene.classify.io import save_model
from skyscene.classify.registry import register_model
from skyscene.errors import DataError
from skyscene.store import CandidateStore, PairRecord

JD0 = 2461200.5


def _night(store, k, n, scores, model):
    first = 10_000 * (k + 1)
    candid = np.arange(first, first + n, dtype=np.int64)
    table = {
        "candid": candid,
        "jd": np.full(n, JD0 + k + 0.3),
        "fid": np.full(n, 2, dtype=np.int32),
        "ra": 150.0 + 0.01 * np.arange(n),
        "dec": np.full(n, 2.0 + k),
        "isdiffpos": ["t"] * n,
    }
    pair = PairRecord(
        pair_id=f"p{k}", science=f"/s{k}.fits", reference="/r.fits", jd=JD0 + k, fid=2
    )
    store.ingest_pair(pair, table)
    store.add_scores(
        candid.tolist(),
        scores.tolist(),
        model_name=model.model_name_,
        model_version=model.model_version_,
    )
    return candid


def _wide_seeing(x, y, rng):
    """Reals with a 2.5x wider PSF (other seeing); bogus hot pixels become 3-pixel
    columns (a new artefact kind)."""
    size = x.shape[-1]
    yy, xx = np.mgrid[:size, :size]
    c = size // 2
    out = rng.normal(0.0, 1.0, x.shape).astype(np.float32)
    wide = np.exp(-((xx - c) ** 2 + (yy - c) ** 2) / (2 * 5.0**2)).astype(np.float32)
    out[y == 1, 0] += 3.0 * wide
    out[y == 1, 2] += 3.0 * wide
    out[y == 0, 2, c - 1 : c + 2, c] += 12.0
    return out


def test_psi_properties():
    rng = np.random.default_rng(5)
    ref = rng.beta(0.5, 0.5, 4000)
    assert psi(rng.beta(0.5, 0.5, 4000), ref) < 0.02  # same law: sampling noise only
    assert psi(rng.beta(2, 5, 4000), ref) > 0.5
    with pytest.raises(DataError, match="both sides"):
        psi([], ref)


def test_shifted_night_flagged(tmp_path, fitted):
    x_ref, _, _ = toy_triplets(300, size=31, rng=11)
    reference = fitted.score(x_ref).rb
    path = tmp_path / "m.pt"
    save_model(path, fitted)
    store = CandidateStore(f"sqlite:///{tmp_path / 'd.db'}")
    try:
        register_model(store, path, reference_scores=reference)
        x_same, _, _ = toy_triplets(200, size=31, rng=12)
        same = _night(store, 0, 200, fitted.score(x_same).rb, fitted)
        x_new, y_new, _ = toy_triplets(200, size=31, rng=13)
        x_new = _wide_seeing(x_new, y_new, np.random.default_rng(14))
        _night(store, 1, 200, fitted.score(x_new).rb, fitted)
        _night(store, 2, 5, fitted.score(x_new[:5]).rb, fitted)  # too few to flag
        store.add_user("ann")
        for c in same[:20]:
            store.add_label(int(c), "ann", "real" if c % 2 else "bogus")
        report = drift_report(store)
        rows = {r.night: r for r in report.nights}
        base = int(np.floor(JD0 + 0.3 - 0.5))
        assert sorted(rows) == [base, base + 1, base + 2]
        # unshifted: PSI ~ (bins - 1)(1/n + 1/n_ref) = 0.075 from sampling (measured 0.08);
        # shifted: 3.2 (KS 0.49)
        assert not rows[base].flagged and rows[base].psi < 0.2
        assert rows[base + 1].flagged and rows[base + 1].psi > 0.2
        assert rows[base + 1].ks_statistic > rows[base].ks_statistic
        assert not rows[base + 2].flagged and rows[base + 2].n == 5
        assert rows[base].per_label["real"]["n"] == 10
        assert report.to_dict()["n_flagged"] == 1
        assert len(report.to_table()) == 3
        strict = drift_report(
            store, model_version=fitted.model_version_, config=DriftConfig(psi_limit=1e3)
        )
        assert not strict.flagged
        with pytest.raises(DataError, match="unknown model version 'zzz'"):
            drift_report(store, model_version="zzz")
    finally:
        store.close()
