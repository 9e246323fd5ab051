"""The reducer's shape (issue 11): explicit discovery, named frozen results, frozen task
objects that pickle, configuration recorded as ``to_dict()`` JSON, each frame read once."""

from __future__ import annotations

import dataclasses
import json
import pickle
from collections import Counter

import numpy as np
import pytest

import skyscene.pipelines.reduce as reduce_module
from skyscene.datasets import simulate_observations
from skyscene.errors import ParameterError, ParameterRangeError
from skyscene.pipelines.reduce import (
    Discovery,
    FrameAlignment,
    ReduceConfig,
    Reducer,
    ReductionResult,
    _AlignTask,
    _FrameJob,
    _FramePhotometry,
    _PhotometryTask,
)

SYNC = ReduceConfig(scheduler="synchronous")


@pytest.fixture(scope="module")
def two_bands(tmp_path_factory):
    root = tmp_path_factory.mktemp("shape")
    simulate_observations(root / "raw", 3, rng=17, bands=("g", "r"), shape=(128, 128))
    return root


def test_construction_reads_no_header_and_discovery_is_explicit(two_bands, monkeypatch, tmp_path):
    calls = []
    real = reduce_module.parse_header
    monkeypatch.setattr(
        reduce_module, "parse_header", lambda *a, **k: calls.append(k["filename"]) or real(*a, **k)
    )
    reducer = Reducer(two_bands / "raw", tmp_path / "out", config=SYNC, progress=False)
    assert calls == [], "the constructor reads no header"
    assert not (tmp_path / "out").exists(), "nor does it touch the output folder"
    found = reducer.discover()
    assert isinstance(found, Discovery) and len(found.frames) == 6 and len(calls) == 6
    assert reducer.discover() is found and len(calls) == 6, "headers are read once"
    with pytest.raises(dataclasses.FrozenInstanceError):
        found.frames = ()  # type: ignore[misc]


def test_photometry_returns_a_frozen_named_result_and_reads_each_frame_once(
    two_bands, monkeypatch, tmp_path
):
    reducer = Reducer(two_bands / "raw", tmp_path / "out", config=SYNC, progress=False)
    reducer.create_catalogs()
    reads = Counter()
    real = reduce_module.read_exposure
    monkeypatch.setattr(
        reduce_module,
        "read_exposure",
        lambda path, **k: reads.update([str(path)]) or real(path, **k),
    )
    result = reducer.photometry("optimal", local_background="median")
    # each frame once, for its photometry: the references are not re-read per band
    assert sorted(reads) == sorted(r.path for r in reducer.frames)
    assert set(reads.values()) == {1}
    assert isinstance(result, ReductionResult)
    documented = {"lc_dir", "files", "band_files", "n_frames", "skipped", "light_curves"}
    assert {f.name for f in dataclasses.fields(result)} == documented
    for name in documented:
        assert f"{name} :" in ReductionResult.__doc__, f"{name} documented"
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.n_frames = 0  # type: ignore[misc]
    assert result.lc_dir.name == "optimal_median" and result.n_frames == 6
    assert all(p.exists() for p in result.files + result.band_files)
    table = result.to_table()
    assert table.colnames[:3] == ["band", "source_id", "BMJD"]
    n_rows = sum(len(t) for lcs in result.light_curves.values() for t in lcs.values())
    assert len(table) == n_rows and set(table["band"]) == {"g", "r"}


def test_state_is_frozen_records_not_loose_dicts(two_bands, tmp_path):
    reducer = Reducer(two_bands / "raw", tmp_path / "out", config=SYNC, progress=False)
    reducer.create_catalogs()
    loose = sorted(k for k, v in vars(reducer).items() if isinstance(v, dict))
    assert loose == ["_alignments", "_setups"], loose
    assert all(isinstance(a, FrameAlignment) for a in reducer.alignments.values())
    assert set(reducer.setups) == {"g", "r"}
    # the compatibility views are copies: editing them changes nothing
    reducer.catalogs.clear()
    reducer.frame_stats.clear()
    assert set(reducer.catalogs) == {"g", "r"} and len(reducer.frame_stats) == 6
    path = reducer.frames[0].path
    assert reducer.frame_stats[path]["psf_size"] == reducer.alignments[path].psf_size


def test_config_recorded_as_to_dict_json(two_bands, tmp_path):
    config = ReduceConfig(scheduler="synchronous", comparisons=(0, 1), location=(10, 20, 30))
    reducer = Reducer(two_bands / "raw", tmp_path / "out", config=config, progress=False)
    result = reducer.photometry("optimal")
    recorded = json.loads((tmp_path / "out" / "config.json").read_text())
    expected = json.loads(json.dumps(config.to_dict()))
    assert {k: recorded[k] for k in expected} == expected
    assert recorded["location"] == [10.0, 20.0, 30.0] and recorded["comparisons"] == [0, 1]
    lc_config = json.loads((result.lc_dir / "config.json").read_text())
    photometer = lc_config["photometer"]
    assert photometer["class"] == "OptimalPhotometer" and photometer["radius"] == config.radius
    assert photometer["local_background"].endswith(":local_background_mean")
    assert set(lc_config["psf_shapes"]) == {"g", "r"}


def test_config_validation_names_parameter_and_value():
    with pytest.raises(ParameterRangeError, match=r"ReduceConfig\.threshold must be > 0") as info:
        ReduceConfig(threshold=-1.0)
    assert info.value.value == -1.0 and info.value.name == "ReduceConfig.threshold"
    with pytest.raises(ParameterError, match=r"ReduceConfig\.psf_mode.*'seeing'"):
        ReduceConfig(psf_mode="seeing")
    with pytest.raises(ParameterError, match=r"ReduceConfig\.chunk_size"):
        ReduceConfig(chunk_size=0)


def test_config_and_task_objects_pickle_and_keep_their_keys():
    config = ReduceConfig(threshold=4.0, comparisons=(1, 2))
    assert pickle.loads(pickle.dumps(config)) == config
    job = _FrameJob(profile=None, cosmic_rays=False)
    align = _AlignTask(
        job=job,
        path=__file__,
        reference=__file__,
        reference_xy=np.array([[1.0, 2.0]]),
        psf_xy=np.array([[1.0, 2.0]]),
        threshold=5.0,
    )
    phot = _PhotometryTask(
        job=job,
        band="g",
        frames=(_FramePhotometry(path=__file__, matrix=np.eye(3), shape=None),),
        reference_xy=np.array([[1.0, 2.0]]),
        photometer="optimal",
    )
    for task in (align, phot):
        back = pickle.loads(pickle.dumps(task))
        assert type(back) is type(task) and back.key("k") == task.key("k")
    assert align.key("k") != align.key("other job"), "the job is part of the key"
    shifted = dataclasses.replace(align, threshold=4.0)
    assert shifted.key("k") != align.key("k"), "every setting is part of the key"


def test_calibration_masters_go_to_the_workers_once_not_into_every_task(tmp_path, monkeypatch):
    from skyscene.datasets.calibration import simulate_calibration_frames

    shape = (128, 128)
    simulate_observations(tmp_path / "raw", 4, rng=23, bands=("g",), shape=shape)
    simulate_calibration_frames(
        tmp_path / "cal", rng=24, shape=shape, bands=("g",), hot_pixels=0, dead_pixels=0
    )
    seen = []
    real = reduce_module.run_tasks

    def spy(func, items, **kwargs):
        items = list(items)
        seen.append((func.__name__, items, kwargs.get("shared")))
        return real(func, items, **kwargs)

    monkeypatch.setattr(reduce_module, "run_tasks", spy)
    config = ReduceConfig(scheduler="synchronous", chunk_size=2)
    reducer = Reducer(
        tmp_path / "raw",
        tmp_path / "out",
        config=config,
        calibration=tmp_path / "cal",
        progress=False,
    )
    reducer.photometry("optimal")
    assert [name for name, _, _ in seen] == ["_candidate_task", "_align_task", "_photometry_task"]
    masters = pickle.dumps(reducer.calibration)
    for name, items, shared in seen:
        assert shared is reducer.calibration, f"{name}: masters passed as shared="
        for item in items:
            assert len(pickle.dumps(item)) < len(masters) / 10, (
                f"{name}: a task carries the masters"
            )
