"""Classification metrics of real/bogus scores, in numpy (no scikit-learn dependency).

Conventions: label 1 = real (positive), 0 = bogus; a candidate is called real when its
score is ``>= threshold``. ``aucpr`` is the average precision (the step-wise area under
the precision-recall curve, as scikit-learn's ``average_precision_score``); ``roc_auc``
the Mann-Whitney statistic with ties counted one half.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from skyscene.errors import DataError

__all__ = [
    "ClassificationReport",
    "average_precision",
    "classification_report",
    "confusion_at",
    "expected_calibration_error",
    "fnr_at_fpr",
    "fpr_at_fnr",
    "pr_curve",
    "reliability",
    "roc_auc",
    "roc_curve",
    "threshold_for_fnr",
]


def _check(scores, labels) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel().astype(np.int64)
    if s.shape != y.shape:
        raise DataError(f"{s.size} scores but {y.size} labels")
    if not np.isfinite(s).all():
        raise DataError(f"{int((~np.isfinite(s)).sum())} scores are not finite")
    if not np.isin(y, (0, 1)).all():
        raise DataError("labels must be 0 (bogus) or 1 (real)")
    return s, y


def _need_both(y: np.ndarray, what: str) -> None:
    if y.sum() == 0 or y.sum() == y.size:
        raise DataError(
            f"{what} needs both real and bogus examples (got {int(y.sum())} real of {y.size})"
        )


def roc_curve(scores, labels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(fpr, tpr, thresholds)`` at every distinct score, thresholds decreasing;
    starts at (0, 0) with threshold +inf."""
    s, y = _check(scores, labels)
    _need_both(y, "roc_curve")
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s)), y.size - 1]
    tp = np.cumsum(y)[last]
    fp = (last + 1) - tp
    tpr = np.r_[0.0, tp / y.sum()]
    fpr = np.r_[0.0, fp / (y.size - y.sum())]
    return fpr, tpr, np.r_[np.inf, s[last]]


def roc_auc(scores, labels) -> float:
    """Area under the ROC curve (ties count one half)."""
    fpr, tpr, _ = roc_curve(scores, labels)
    return float(np.trapezoid(tpr, fpr))


def pr_curve(scores, labels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(precision, recall, thresholds)`` at every distinct score, recall increasing."""
    s, y = _check(scores, labels)
    _need_both(y, "pr_curve")
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s)), y.size - 1]
    tp = np.cumsum(y)[last]
    precision = tp / (last + 1)
    recall = tp / y.sum()
    return precision, recall, s[last]


def average_precision(scores, labels) -> float:
    """AUCPR as average precision: ``Σ (R_n − R_{n−1}) P_n``."""
    precision, recall, _ = pr_curve(scores, labels)
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def threshold_for_fnr(scores, labels, fnr: float = 0.01) -> float:
    """The highest threshold whose false-negative rate (reals below it) is ``<= fnr``.

    With ``n`` reals it lets ``floor(fnr n)`` of them fall below: the score of the
    ``floor(fnr n) + 1``-th lowest real.
    """
    s, y = _check(scores, labels)
    real = np.sort(s[y == 1])
    if real.size == 0:
        raise DataError("threshold_for_fnr needs real examples")
    k = int(np.floor(fnr * real.size + 1e-9))
    return float(real[min(k, real.size - 1)])


def fpr_at_fnr(scores, labels, fnr: float = 0.01) -> float:
    """False-positive rate at :func:`threshold_for_fnr`."""
    s, y = _check(scores, labels)
    _need_both(y, "fpr_at_fnr")
    t = threshold_for_fnr(s, y, fnr)
    return float(np.mean(s[y == 0] >= t))


def fnr_at_fpr(scores, labels, fpr: float = 0.01) -> float:
    """False-negative rate at the lowest threshold whose FPR is ``<= fpr``."""
    s, y = _check(scores, labels)
    _need_both(y, "fnr_at_fpr")
    bogus = np.sort(s[y == 0])[::-1]
    k = int(np.floor(fpr * bogus.size + 1e-9))
    # threshold just above the (k+1)-th highest bogus: at most k bogus at or above it
    t = np.nextafter(bogus[k], np.inf) if k < bogus.size else -np.inf
    return float(np.mean(s[y == 1] < t))


def confusion_at(scores, labels, threshold: float) -> dict[str, int]:
    """``tp``, ``fp``, ``tn``, ``fn`` with real = ``score >= threshold``."""
    s, y = _check(scores, labels)
    called = s >= threshold
    return {
        "tp": int(np.sum(called & (y == 1))),
        "fp": int(np.sum(called & (y == 0))),
        "tn": int(np.sum(~called & (y == 0))),
        "fn": int(np.sum(~called & (y == 1))),
    }


def reliability(probabilities, labels, *, n_bins: int = 15) -> dict[str, np.ndarray]:
    """Equal-width bins of predicted probability: ``count``, ``mean_predicted``,
    ``fraction_real`` (NaN in empty bins), ``edges``."""
    p, y = _check(probabilities, labels)
    if p.min() < 0 or p.max() > 1:
        raise DataError("probabilities must lie in [0, 1]")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    index = np.clip(np.digitize(p, edges[1:-1]), 0, n_bins - 1)
    count = np.bincount(index, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p = np.bincount(index, weights=p, minlength=n_bins) / count
        frac = np.bincount(index, weights=y, minlength=n_bins) / count
    return {"count": count, "mean_predicted": mean_p, "fraction_real": frac, "edges": edges}


def expected_calibration_error(probabilities, labels, *, n_bins: int = 15) -> float:
    """ECE: ``Σ_b (n_b / N) |fraction real_b − mean predicted_b|`` over equal-width bins
    (Guo et al. 2017, eq. 3)."""
    r = reliability(probabilities, labels, n_bins=n_bins)
    used = r["count"] > 0
    gap = np.abs(r["fraction_real"][used] - r["mean_predicted"][used])
    return float(np.sum(r["count"][used] * gap) / r["count"].sum())


@dataclass(frozen=True, kw_only=True)
class ClassificationReport:
    """Figures of merit of calibrated real/bogus probabilities against labels.

    Attributes
    ----------
    n, n_real, n_bogus : int
    threshold : float
        Where a candidate is called real (``rb >= threshold``).
    aucpr, roc_auc, precision, recall, f1 : float
        Threshold-free areas; precision/recall/F1 at ``threshold``.
    fpr_at_fnr_1pct, fnr_at_fpr_1pct : float
        The operating points of braai/ATLAS (each from its own threshold).
    fnr, fpr : float
        At ``threshold``.
    ece : float
        Expected calibration error (15 bins).
    confusion : dict
        ``tp``, ``fp``, ``tn``, ``fn`` at ``threshold``.
    per_kind : dict
        ``kind -> {"n", "label", "called_real", "recall" | "rejection"}``: for real
        kinds the fraction scored real, for bogus kinds the fraction rejected.
    """

    n: int
    n_real: int
    n_bogus: int
    threshold: float
    aucpr: float
    roc_auc: float
    precision: float
    recall: float
    f1: float
    fnr: float
    fpr: float
    fpr_at_fnr_1pct: float
    fnr_at_fpr_1pct: float
    ece: float
    confusion: dict = field(default_factory=dict)
    per_kind: dict = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (the ``REPORT.json`` of ``skyscene rb evaluate``)."""
        import dataclasses

        return dataclasses.asdict(self)

    def to_table(self):
        """Per-kind figures as an astropy Table (``kind``, ``label``, ``n``,
        ``called_real``, ``fraction_correct``)."""
        from astropy.table import Table

        rows = [
            (k, v["label"], v["n"], v["called_real"], v.get("recall", v.get("rejection")))
            for k, v in sorted(self.per_kind.items())
        ]
        names = ("kind", "label", "n", "called_real", "fraction_correct")
        return Table(rows=rows, names=names) if rows else Table(names=names)


def classification_report(
    probabilities, labels, *, threshold: float, kinds=None
) -> ClassificationReport:
    """All figures of :class:`ClassificationReport` for calibrated probabilities."""
    p, y = _check(probabilities, labels)
    _need_both(y, "classification_report")
    c = confusion_at(p, y, threshold)
    precision = c["tp"] / max(c["tp"] + c["fp"], 1)
    recall = c["tp"] / max(c["tp"] + c["fn"], 1)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    per_kind: dict[str, dict] = {}
    if kinds is not None:
        kinds = np.asarray(kinds).astype(str)
        if kinds.shape != y.shape:
            raise DataError(f"{kinds.size} kinds but {y.size} labels")
        for kind in np.unique(kinds):
            sel = kinds == kind
            called = int(np.sum(p[sel] >= threshold))
            label = round(float(np.mean(y[sel])))
            entry: dict[str, Any] = {"n": int(sel.sum()), "label": label, "called_real": called}
            if label == 1:
                entry["recall"] = called / int(sel.sum())
            else:
                entry["rejection"] = 1.0 - called / int(sel.sum())
            per_kind[str(kind)] = entry
    return ClassificationReport(
        n=int(y.size),
        n_real=int(y.sum()),
        n_bogus=int(y.size - y.sum()),
        threshold=float(threshold),
        aucpr=average_precision(p, y),
        roc_auc=roc_auc(p, y),
        precision=float(precision),
        recall=float(recall),
        f1=float(f1),
        fnr=c["fn"] / max(c["tp"] + c["fn"], 1),
        fpr=c["fp"] / max(c["fp"] + c["tn"], 1),
        fpr_at_fnr_1pct=fpr_at_fnr(p, y, 0.01),
        fnr_at_fpr_1pct=fnr_at_fpr(p, y, 0.01),
        ece=expected_calibration_error(p, y),
        confusion=c,
        per_kind=per_kind,
    )
