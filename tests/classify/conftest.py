"""Tiny seeded toy sets and models for the classifier tests (seconds, not minutes)."""

import numpy as np
import pytest

pytest.importorskip("torch")


def toy_triplets(n: int, *, size: int = 31, rng=0, separation: float = 6.0):
    """Separable toy: reals have a Gaussian blob in science and difference, bogus a
    single hot pixel in the difference; noise everywhere. Groups of 10 rows."""
    rng = np.random.default_rng(rng)
    y = (np.arange(n) % 2).astype(np.int64)
    x = rng.normal(0.0, 1.0, (n, 3, size, size)).astype(np.float32)
    yy, xx = np.mgrid[:size, :size]
    c = size // 2
    blob = np.exp(-((xx - c) ** 2 + (yy - c) ** 2) / (2 * 2.0**2)).astype(np.float32)
    x[y == 1, 0] += separation * blob
    x[y == 1, 2] += separation * blob
    x[y == 0, 2, c, c] += 5 * separation
    groups = np.array([f"g{i // 10}" for i in range(n)])
    return x, y, groups


@pytest.fixture(scope="session")
def make_toy():
    return toy_triplets


@pytest.fixture(scope="session")
def toy():
    return toy_triplets(160, rng=1)


@pytest.fixture(scope="session")
def fitted(toy):
    from skyscene.classify import RealBogusClassifier

    x, y, groups = toy
    return RealBogusClassifier(
        size=31, epochs=3, batch_size=32, seed=3, n_threads=1, validation_fraction=0.25
    ).fit(x, y, groups=groups)


def untrained_model(size: int = 63, seed: int = 0):
    """A seeded, untrained VGG6 wrapped as a fitted classifier (for scoring tests)."""
    import torch

    from skyscene.classify import RealBogusClassifier, build_model

    torch.manual_seed(seed)
    clf = RealBogusClassifier(size=size)
    clf.model_ = build_model("vgg6", size=size).eval()
    clf.temperature_ = 1.0
    clf.threshold_ = 0.5
    clf.data_hash_ = "0" * 64
    clf.history_ = []
    clf.best_epoch_ = 0
    from skyscene.classify import classification_report

    clf.validation_report_ = classification_report([0.2, 0.8], [0, 1], threshold=0.5)
    clf._set_identity()
    return clf


@pytest.fixture(scope="session")
def model63(tmp_path_factory):
    from skyscene.classify.io import save_model

    path = tmp_path_factory.mktemp("model") / "model.pt"
    save_model(path, untrained_model(63))
    return path
