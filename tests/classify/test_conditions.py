"""Training-set simulators of ``skyscene rb make-training --conditions``."""

import numpy as np
import pytest

from skyscene.classify import TrainingSetConfig
from skyscene.classify.training_set import (
    RICH_SETTINGS,
    SIMULATORS,
    WIDE_BANDS,
    banded_search_scene,
    rich_search_scene,
    search_scene,
)


def test_simulators_by_name():
    assert SIMULATORS == {
        "search": search_scene,
        "banded": banded_search_scene,
        "rich": rich_search_scene,
    }


@pytest.mark.parametrize("simulator", [banded_search_scene, rich_search_scene])
def test_banded_conditions_stay_out_of_the_held_out_gap(simulator):
    config = TrainingSetConfig(n_pairs=1, size=128)
    rng = np.random.default_rng(3)
    seen = set()
    for index in range(6):
        scene = simulator(config, rng, index)
        assert scene.group == f"pair{index:05d}"
        assert scene.science.shape == scene.reference.shape == (128, 128)
        c = scene.conditions
        seen.update(c["bands"])
        assert set(c["bands"]) <= set(WIDE_BANDS)
        fwhm = c.get("science_fwhm")
        if fwhm is not None:  # never in the held-out gap 6-7.5 px
            assert not 6.0 < fwhm < 7.5
    assert seen  # some pairs drew a wide band
    assert RICH_SETTINGS["n_dipoles"] > 10


def test_cli_conditions_choice(tmp_path):
    from skyscene.cli import main

    out = tmp_path / "t.h5"
    with pytest.raises(SystemExit):
        main(["rb", "make-training", str(out), "--n-pairs", "1", "--conditions", "nope"])


def test_blur_augmentation_deterministic_and_recorded(toy, tmp_path):
    torch = pytest.importorskip("torch")
    from skyscene.classify import RealBogusClassifier, TrainConfig
    from skyscene.classify.classifier import _blur_difference
    from skyscene.classify.io import load_model, save_model
    from skyscene.errors import ParameterError

    with pytest.raises(ParameterError, match="blur"):
        TrainConfig(blur=-1.0)
    xb = torch.randn(16, 3, 31, 31)
    out = _blur_difference(torch, xb, np.random.default_rng(0), 1.5)
    assert torch.equal(out[:, :2], xb[:, :2])  # science, reference untouched
    changed = [not torch.equal(out[i, 2], xb[i, 2]) for i in range(16)]
    assert 0 < sum(changed) < 16
    norms = out[changed, 2].flatten(1).norm(dim=1)
    torch.testing.assert_close(norms, torch.ones_like(norms))
    x, y, groups = toy
    kw = {"size": 31, "epochs": 1, "batch_size": 32, "seed": 5, "n_threads": 1, "blur": 1.0}
    a = RealBogusClassifier(**kw).fit(x[:80], y[:80], groups=groups[:80])
    b = RealBogusClassifier(**kw).fit(x[:80], y[:80], groups=groups[:80])
    assert a.model_version_ == b.model_version_
    plain = RealBogusClassifier(**{**kw, "blur": 0.0}).fit(x[:80], y[:80], groups=groups[:80])
    assert plain.model_version_ != a.model_version_
    save_model(tmp_path / "m.pt", a)
    assert load_model(tmp_path / "m.pt").config.blur == 1.0
