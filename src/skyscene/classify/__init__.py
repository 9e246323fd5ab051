"""Real/bogus classification of candidate triplets (``skyscene[rb]``: PyTorch, CPU).

- :func:`make_training_set` — simulate → ZOGY → find → cut → label (:class:`TrainingSet`);
- :class:`RealBogusClassifier` — scikit-learn-style estimator around braai's VGG6 or a
  small residual net (:mod:`~skyscene.classify.models`); ``fit`` / ``score`` /
  ``predict_proba``; temperature scaling and a threshold for FNR = 1 % on validation;
- :func:`classification_report` — AUCPR, ROC AUC, FPR at FNR 1 %, ECE, per-kind figures;
- :mod:`skyscene.classify.io` — HDF5 training sets, checkpoints, triplet files;
- the learning loop (``docs/learning.md``): :mod:`~skyscene.classify.registry` (model
  versions in the database), :mod:`~skyscene.classify.active` (labelling priority),
  :func:`~skyscene.classify.finetune.fine_tune`, :mod:`~skyscene.classify.drift`.

``import skyscene.classify`` works without torch; building, training or loading a
model then raises :class:`~skyscene.errors.MissingDependencyError` naming the extra.
See ``docs/classify.md``.
"""

from skyscene.classify.active import (
    ActiveConfig,
    ActiveSelector,
    Selection,
    SpreadScores,
    score_with_spread,
    select_candidates,
)
from skyscene.classify.calibration import fit_temperature
from skyscene.classify.classifier import RealBogusClassifier, ScoreResult, TrainConfig, data_hash
from skyscene.classify.drift import DriftConfig, DriftReport, NightDrift, drift_report
from skyscene.classify.finetune import fine_tune
from skyscene.classify.metrics import ClassificationReport, classification_report
from skyscene.classify.models import ARCHITECTURES, build_model, normalise_triplets
from skyscene.classify.split import GroupSplit, group_split
from skyscene.classify.training_set import (
    REAL_KINDS,
    SimulatedScene,
    TrainingSet,
    TrainingSetConfig,
    ambiguous_rows,
    label_candidates,
    make_training_set,
)

__all__ = [
    "ARCHITECTURES",
    "REAL_KINDS",
    "ActiveConfig",
    "ActiveSelector",
    "ClassificationReport",
    "DriftConfig",
    "DriftReport",
    "GroupSplit",
    "NightDrift",
    "RealBogusClassifier",
    "ScoreResult",
    "Selection",
    "SimulatedScene",
    "SpreadScores",
    "TrainConfig",
    "TrainingSet",
    "TrainingSetConfig",
    "ambiguous_rows",
    "build_model",
    "classification_report",
    "data_hash",
    "drift_report",
    "fine_tune",
    "fit_temperature",
    "group_split",
    "label_candidates",
    "make_training_set",
    "normalise_triplets",
    "score_with_spread",
    "select_candidates",
]
