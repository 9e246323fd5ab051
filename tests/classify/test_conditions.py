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
