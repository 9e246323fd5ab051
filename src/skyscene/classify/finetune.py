"""Fine-tuning a fitted real/bogus classifier on new labels (the active-learning loop).

:func:`fine_tune` continues training a copy of a fitted
:class:`~skyscene.classify.RealBogusClassifier` (same architecture and settings) on new
triplets, with the loss, augmentation and optimiser of ``fit``, keeps the epoch with
the best validation AUCPR (of the fine-tuned epochs: the
result always differs from the base, a new version), then recalibrates the temperature and the threshold on the
validation rows. The base model is left unchanged. No I/O.
"""

from __future__ import annotations

import copy

import numpy as np

from skyscene._validation import check_int, check_positive
from skyscene.errors import DataError

__all__ = ["fine_tune"]


def fine_tune(
    base,
    X,
    y,
    *,
    validation,
    epochs: int = 5,
    learning_rate: float = 3e-4,
    seed: int = 0,
):
    """A new fitted classifier: ``base`` trained further on ``X``, ``y``.

    Parameters
    ----------
    base : RealBogusClassifier
        Fitted; not modified.
    X : ndarray, (N, 3, size, size)
    y : array of {0, 1}, (N,)
    validation : (X_val, y_val)
        Early stopping, temperature and threshold (both classes needed).
    epochs : int
    learning_rate : float
        AdamW step (smaller than training from scratch).
    seed : int

    Returns
    -------
    RealBogusClassifier
        With ``history_``, ``best_epoch_``, ``temperature_``, ``threshold_``,
        ``validation_report_``, a new ``model_version_`` and ``data_hash_`` of ``X, y``.
    """
    from skyscene.classify._torch import deterministic
    from skyscene.classify.calibration import fit_temperature, sigmoid
    from skyscene.classify.classifier import _augment, data_hash
    from skyscene.classify.metrics import (
        average_precision,
        classification_report,
        threshold_for_fnr,
    )
    from skyscene.classify.models import as_tensor, normalise_triplets

    base._check_fitted()
    check_int("epochs", epochs, low=1)
    check_positive("learning_rate", learning_rate)
    cfg = base.config
    t = deterministic(seed, cfg.n_threads)
    x = normalise_triplets(X, size=cfg.size, source="fine-tuning rows").data
    y = np.asarray(y).astype(np.int64).ravel()
    x_val = normalise_triplets(validation[0], size=cfg.size, source="validation").data
    y_val = np.asarray(validation[1]).astype(np.int64).ravel()
    for name, labels, n in (("fine-tuning", y, x.shape[0]), ("validation", y_val, x_val.shape[0])):
        if labels.size != n:
            raise DataError(f"{n} {name} triplets but {labels.size} labels")
        if labels.sum() == 0 or labels.sum() == labels.size:
            raise DataError(
                f"the {name} rows need both real and bogus examples "
                f"({int(labels.sum())} real of {labels.size})"
            )
    clf = copy.deepcopy(base)
    model = clf.model_
    optimiser = t.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=cfg.weight_decay)
    n_pos = int(y.sum())
    w_class = np.array([y.size / (2 * (y.size - n_pos)), y.size / (2 * n_pos)])
    if cfg.class_weight != "balanced":
        w_class = np.ones(2)
    rng = np.random.default_rng(seed)
    best = (-np.inf, 0)  # the best fine-tuned epoch (never the base weights)
    best_state = copy.deepcopy(model.state_dict())
    history = []
    for epoch in range(1, epochs + 1):
        model.train()
        order = rng.permutation(y.size)
        total = 0.0
        for start in range(0, order.size, cfg.batch_size):
            idx = order[start : start + cfg.batch_size]
            xb = as_tensor(x[idx])
            if cfg.augment:
                xb = _augment(t, xb, rng.integers(0, 8, idx.size))
            yb = t.from_numpy(y[idx].astype(np.float32))
            wb = t.from_numpy(w_class[y[idx]].astype(np.float32))
            optimiser.zero_grad()
            loss = t.nn.functional.binary_cross_entropy_with_logits(model(xb), yb, weight=wb)
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * idx.size
        aucpr = average_precision(clf._logits(model, x_val, cfg.batch_size), y_val)
        history.append({"epoch": epoch, "loss": total / y.size, "val_aucpr": float(aucpr)})
        if aucpr > best[0]:
            best = (aucpr, epoch)
            best_state = copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    model.eval()
    clf.history_ = [*getattr(base, "history_", []), *history]
    clf.best_epoch_ = int(best[1])
    val_logits = clf._logits(model, x_val, cfg.batch_size)
    clf.temperature_ = fit_temperature(val_logits, y_val) if cfg.calibrate else 1.0
    val_prob = sigmoid(val_logits / clf.temperature_)
    clf.threshold_ = threshold_for_fnr(val_prob, y_val, cfg.target_fnr)
    clf.validation_report_ = classification_report(val_prob, y_val, threshold=clf.threshold_)
    clf.data_hash_ = data_hash(np.asarray(X, dtype=np.float32), y)
    clf.validation_scores_ = val_prob
    clf._set_identity()
    return clf
