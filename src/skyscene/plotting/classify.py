"""Figures of a real/bogus evaluation: PR and ROC curves, score histograms per class,
a reliability diagram and a grid of the worst misclassified triplets."""

from __future__ import annotations

import numpy as np

__all__ = [
    "plot_pr_curve",
    "plot_reliability",
    "plot_roc_curve",
    "plot_score_histograms",
    "plot_worst_triplets",
]


def _figure(size=(5, 4.2)):
    from matplotlib.figure import Figure

    return Figure(figsize=size, layout="constrained")


def plot_pr_curve(rb, labels, *, threshold: float | None = None, title: str = ""):
    """Precision against recall; the stored threshold marked. Returns a Figure."""
    from skyscene.classify.metrics import average_precision, pr_curve

    precision, recall, thresholds = pr_curve(rb, labels)
    fig = _figure()
    ax = fig.subplots()
    ax.step(recall, precision, where="post", color="C0",
            label=f"AUCPR = {average_precision(rb, labels):.4f}")  # fmt: skip
    if threshold is not None:
        k = int(np.argmin(np.abs(thresholds - threshold)))
        ax.plot(recall[k], precision[k], "o", color="C3", label=f"threshold {threshold:.3f}")
    ax.set(xlabel="recall (real kept)", ylabel="precision", title=title or "precision-recall",
           xlim=(0, 1.01), ylim=(0, 1.01))  # fmt: skip
    ax.legend(loc="lower left")
    return fig


def plot_roc_curve(rb, labels, *, threshold: float | None = None, title: str = ""):
    """True-positive against false-positive rate (log x). Returns a Figure."""
    from skyscene.classify.metrics import roc_auc, roc_curve

    fpr, tpr, thresholds = roc_curve(rb, labels)
    fig = _figure()
    ax = fig.subplots()
    floor = 0.5 / max(int(np.sum(np.asarray(labels) == 0)), 1)
    ax.plot(np.maximum(fpr, floor), tpr, color="C0", label=f"ROC AUC = {roc_auc(rb, labels):.4f}")
    if threshold is not None:
        k = int(np.argmin(np.abs(thresholds - threshold)))
        ax.plot(max(fpr[k], floor), tpr[k], "o", color="C3", label=f"threshold {threshold:.3f}")
    ax.axvline(0.01, color="0.6", ls=":", label="FPR 1 %")
    ax.axhline(0.99, color="0.6", ls="--", label="FNR 1 %")
    ax.set(xscale="log", xlabel="false-positive rate", ylabel="true-positive rate",
           title=title or "ROC", ylim=(0, 1.01))  # fmt: skip
    ax.legend(loc="lower right")
    return fig


def plot_score_histograms(rb, labels, *, threshold: float | None = None, title: str = ""):
    """Histograms of ``rb`` for real and bogus candidates (log counts). Returns a Figure."""
    rb = np.asarray(rb, float)
    labels = np.asarray(labels)
    fig = _figure()
    ax = fig.subplots()
    bins = np.linspace(0, 1, 41)
    ax.hist(rb[labels == 0], bins=bins, histtype="step", color="C3", label="bogus")
    ax.hist(rb[labels == 1], bins=bins, histtype="step", color="C0", label="real")
    if threshold is not None:
        ax.axvline(threshold, color="k", ls="--", label=f"threshold {threshold:.3f}")
    ax.set(yscale="log", xlabel="rb", ylabel="candidates", title=title or "scores by class")
    ax.legend()
    return fig


def plot_reliability(rb, labels, *, n_bins: int = 15, title: str = ""):
    """Reliability diagram: fraction real against mean predicted rb per bin, with ECE."""
    from skyscene.classify.metrics import expected_calibration_error, reliability

    r = reliability(rb, labels, n_bins=n_bins)
    used = r["count"] > 0
    fig = _figure()
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], color="0.6", ls=":")
    ax.plot(r["mean_predicted"][used], r["fraction_real"][used], "o-", color="C0",
            label=f"ECE = {expected_calibration_error(rb, labels, n_bins=n_bins):.4f}")  # fmt: skip
    ax.set(xlabel="mean predicted rb", ylabel="fraction real", title=title or "reliability",
           xlim=(0, 1), ylim=(0, 1))  # fmt: skip
    ax.legend(loc="upper left")
    return fig


def plot_worst_triplets(triplets, rb, labels, *, kinds=None, n: int = 8, title: str = ""):
    """The ``n`` most confidently wrong candidates: one row per triplet (science,
    reference, difference; 1–99.5 % stretch per stamp). Returns a Figure."""
    triplets = np.asarray(triplets)
    rb = np.asarray(rb, float)
    labels = np.asarray(labels)
    error = np.abs(rb - labels)
    order = np.argsort(-error, kind="mergesort")[:n]
    order = order[error[order] > 0.5] if (error[order] > 0.5).any() else order[:1]
    fig = _figure(size=(6, 2.0 * max(len(order), 1) + 0.4))
    axes = np.atleast_2d(fig.subplots(max(len(order), 1), 3))
    for row, i in enumerate(order):
        for col, name in enumerate(("science", "reference", "difference")):
            ax = axes[row, col]
            stamp = triplets[i, col]
            good = np.isfinite(stamp)
            lo, hi = np.percentile(stamp[good], [1, 99.5]) if good.any() else (0.0, 1.0)
            ax.imshow(np.where(good, stamp, lo), origin="lower", cmap="gray",
                      vmin=lo, vmax=hi if hi > lo else lo + 1)  # fmt: skip
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(name)
        kind = f" {kinds[i]}" if kinds is not None else ""
        axes[row, 0].set_ylabel(f"#{i}{kind}\nlabel {labels[i]} rb {rb[i]:.3f}", fontsize=8)
    fig.suptitle(title or "worst misclassified")
    return fig
