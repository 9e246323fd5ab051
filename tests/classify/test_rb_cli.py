"""skyscene rb: make-training, train, evaluate, score (npz, h5, avro, database), bad input."""

import json
from pathlib import Path

import numpy as np
import pytest

from skyscene.cli import main

ZTF = Path(__file__).resolve().parents[3] / "shared" / "data" / "ztf_alerts"


@pytest.fixture(scope="module")
def training_file(tmp_path_factory):
    out = tmp_path_factory.mktemp("rb") / "train.h5"
    status = main(["rb", "make-training", str(out), "--n-pairs", "3", "--size", "192",
                   "--seed", "4", "-q"])  # fmt: skip
    assert status == 0
    return out


def test_make_training_writes_labelled_set(training_file):
    from skyscene.classify.io import read_training_set
    from skyscene.classify.training_set import REAL_KINDS

    data = read_training_set(training_file)
    assert len(data) > 10
    assert data.science.shape[1:] == (63, 63) and data.science.dtype == np.float32
    assert set(np.unique(data.group)) <= {"pair00000", "pair00001", "pair00002"}
    np.testing.assert_array_equal(data.label, np.isin(data.kind, REAL_KINDS).astype(int))
    assert "scorr" in data.features and data.features["scorr"].size == len(data)
    assert np.all(np.abs(data.features["scorr"]) >= 5.0)
    assert [p.name for p in training_file.parent.iterdir()] == ["train.h5"]  # atomic


def test_training_set_round_trip(tmp_path):
    from skyscene.classify import TrainingSet
    from skyscene.classify.io import read_training_set, write_training_set

    rng = np.random.default_rng(0)
    cut = rng.normal(size=(4, 63, 63)).astype(np.float32)
    data = TrainingSet(
        science=cut, reference=cut * 2, difference=cut * 3, label=np.array([1, 0, 0, 1]),
        kind=np.array(["transient", "cosmic_ray", "trail", "fading"]),
        group=np.array(["a", "a", "b", "b"]), candid=np.arange(4),
        features={"scorr": np.arange(4.0)}, meta={"seed": 1},
    )  # fmt: skip
    back = read_training_set(write_training_set(tmp_path / "t.h5", data))
    np.testing.assert_array_equal(back.difference, data.difference)
    assert back.kind.tolist() == data.kind.tolist() and back.group.tolist() == ["a", "a", "b", "b"]
    assert back.meta == {"seed": 1} and back.features["scorr"].tolist() == [0, 1, 2, 3]


def test_train_evaluate_score_h5(training_file, tmp_path, capsys):
    model = tmp_path / "m.pt"
    assert main(["rb", "train", str(training_file), "--out", str(model), "--epochs", "1",
                 "--threads", "1", "--test-fraction", "0", "-q"]) == 0  # fmt: skip
    report = tmp_path / "report.json"
    assert main(["rb", "evaluate", str(training_file), "--model", str(model),
                 "--out", str(report), "-q"]) == 0  # fmt: skip
    doc = json.loads(report.read_text())
    for key in ("aucpr", "roc_auc", "precision", "recall", "f1", "fpr_at_fnr_1pct",
                "fnr_at_fpr_1pct", "ece", "confusion", "per_kind"):  # fmt: skip
        assert key in doc
    assert sum(doc["confusion"].values()) == doc["n"]
    for name in doc["figures"].values():
        assert (tmp_path / name).stat().st_size > 1000
    scores = tmp_path / "s.csv"
    assert main(["rb", "score", str(training_file), "--model", str(model),
                 "--out", str(scores), "-q"]) == 0  # fmt: skip
    from astropy.table import Table

    table = Table.read(scores, format="ascii.csv")
    assert table.colnames[:3] == ["candid", "rb", "model_version"]
    assert np.all((table["rb"] >= 0) & (table["rb"] <= 1))
    assert doc["model_version"] == str(table["model_version"][0])


def test_score_npz_counts_nan(model63, tmp_path, capsys):
    rng = np.random.default_rng(1)
    cut = rng.normal(size=(5, 63, 63)).astype(np.float32)
    cut[2, :10, :10] = np.nan
    path = tmp_path / "t.npz"
    np.savez(path, science=cut, reference=cut, difference=cut)
    out = tmp_path / "s.csv"
    assert main(["rb", "score", str(path), "--model", str(model63), "--out", str(out)]) == 0
    from astropy.table import Table

    table = Table.read(out, format="ascii.csv")
    assert table["index"].tolist() == [0, 1, 2, 3, 4]
    assert table["n_nan"].tolist() == [0, 0, 300, 0, 0]
    assert "300 NaN pixels set to 0 in 1 triplets" in capsys.readouterr().out


@pytest.mark.skipif(not ZTF.is_dir(), reason="shared ZTF alerts not present")
def test_real_ztf_alerts_score(model63, tmp_path, capsys):
    out = tmp_path / "ztf.csv"
    assert main(["rb", "score", str(ZTF), "--model", str(model63), "--out", str(out)]) == 0
    from astropy.table import Table

    table = Table.read(out, format="ascii.csv")
    assert len(table) == len(list(ZTF.glob("*.avro")))
    assert np.all(np.isfinite(table["rb"])) and "ztf_rb" in table.colnames


def test_score_database(model63, tmp_path):
    from skyscene.candidates import find_candidates
    from skyscene.datasets.pairs import simulate_pair
    from skyscene.diffim import Zogy
    from skyscene.store import CandidateStore, PairRecord

    pair = simulate_pair(shape=(256, 256), rng=3, n_transients=4, transient_snr=30.0,
                         star_density=1e-3)  # fmt: skip
    table = find_candidates(Zogy()(pair.science, pair.reference), pair.science, pair.reference,
                            pair_id="p1")  # fmt: skip
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    cut = table.cutouts
    with CandidateStore(url) as store:
        store.ingest_pair(
            PairRecord(pair_id="p1", science="s.fits", reference="r.fits", jd=2460000.5),
            table,
            cutouts={k: list(getattr(cut, k)) for k in ("science", "reference", "difference")},
        )
        before = store.counts()["scores"]
    out = tmp_path / "s.csv"
    assert main(["rb", "score", url, "--model", str(model63), "--out", str(out), "-q"]) == 0
    with CandidateStore(url) as store:
        assert store.counts()["scores"] == before + len(table)
    from astropy.table import Table

    assert sorted(Table.read(out, format="ascii.csv")["candid"]) == sorted(table["candid"])


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"science": np.zeros((2, 62, 63))}, "missing array"),
        ({k: np.zeros((2, 62, 63)) for k in ("science", "reference", "difference")},
         "square cutouts"),
        ({k: np.full((2, 63, 63), np.nan) for k in ("science", "reference", "difference")},
         "NaN in every pixel"),
        ({k: np.zeros((2, 31, 31)) for k in ("science", "reference", "difference")},
         "the model takes 63x63"),
    ],
)  # fmt: skip
def test_score_bad_triplet_files(model63, tmp_path, caplog, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    out = tmp_path / "s.csv"
    assert main(["rb", "score", str(path), "--model", str(model63), "--out", str(out)]) == 1
    assert message in caplog.text and "bad.npz" in caplog.text
    assert not out.exists()


def test_score_empty_file_and_foreign_model(model63, tmp_path, caplog):
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    out = tmp_path / "s.csv"
    assert main(["rb", "score", str(empty), "--model", str(model63), "--out", str(out)]) == 1
    assert "empty.npz: empty file" in caplog.text
    import torch

    record = torch.load(model63, weights_only=True)
    record["format_version"] = 99
    other = tmp_path / "other.pt"
    torch.save(record, other)
    np.savez(tmp_path / "ok.npz", **{k: np.zeros((1, 63, 63)) for k in
                                     ("science", "reference", "difference")})  # fmt: skip
    assert main(["rb", "score", str(tmp_path / "ok.npz"), "--model", str(other),
                 "--out", str(out)]) == 1  # fmt: skip
    assert "other.pt: checkpoint format version 99" in caplog.text
    assert not out.exists()
