"""Real/bogus stage of ``skyscene demo``: the shipped model scores the demo search's alerts.

File-level orchestration only: :mod:`skyscene.classify.io` reads the alerts and the model,
:mod:`skyscene.classify` scores and reports, :mod:`skyscene.plotting.classify` draws.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

__all__ = ["demo_stage", "label_alerts"]


def label_alerts(candid, candidates, transients: dict, *, radius: float = 1.5) -> np.ndarray:
    """1 where the candidate ``candid`` lies within ``radius`` pixels of an injected
    transient of its pair (``transients[pair_id]``: table with ``x``, ``y``), else 0."""
    rows = {int(c): i for i, c in enumerate(np.asarray(candidates["candid"]))}
    labels = np.zeros(len(candid), np.int64)
    for k, c in enumerate(np.asarray(candid)):
        i = rows.get(int(c))
        if i is None:
            continue
        truth = transients.get(str(candidates["pair_id"][i]))
        if truth is None or len(truth) == 0:
            continue
        d = np.hypot(
            np.asarray(truth["x"]) - candidates["xpos"][i],
            np.asarray(truth["y"]) - candidates["ypos"][i],
        )
        labels[k] = int(d.min() < radius)
    return labels


def demo_stage(out_dir, *, progress: bool = False) -> str:
    """Demo: the shipped model scores the alerts of the search demo (run first if absent)
    and writes the evaluation plots and a report under ``out_dir/rb``."""
    from astropy.table import Table

    from skyscene.classify import classification_report
    from skyscene.classify.io import load_model, read_alert_triplets
    from skyscene.io import atomic_path, atomic_write_text, jsonable_meta
    from skyscene.plotting.classify import (
        plot_pr_curve,
        plot_reliability,
        plot_roc_curve,
        plot_score_histograms,
        plot_worst_triplets,
    )

    out_dir = Path(out_dir)
    search = out_dir / "search"
    if not (search / "out" / "alerts").is_dir():
        from skyscene.pipelines.search import demo_stage as search_stage

        search_stage(out_dir, progress=progress)
    root = out_dir / "rb"
    root.mkdir(parents=True, exist_ok=True)
    clf = load_model()
    alerts = read_alert_triplets(search / "out" / "alerts", size=clf.size)
    candidates = Table.read(search / "out" / "candidates.parquet")
    transients = {
        p.name: Table.read(p / "transients.csv", format="ascii.csv")
        for p in sorted((search / "pairs").iterdir())
        if (p / "transients.csv").is_file()
    }
    labels = label_alerts(alerts.index, candidates, transients)
    scores = clf.score(alerts.triplets, source=str(search / "out" / "alerts"))
    rb, t = scores.rb, clf.threshold_
    table = Table({"candid": alerts.index, "rb": rb, "label": labels, "n_nan": scores.n_nan})
    table["model_version"] = scores.model_version
    with atomic_path(root / "scores.csv") as tmp:
        table.write(tmp, format="ascii.csv", overwrite=True)
    figures = {
        "hist": plot_score_histograms(rb, labels, threshold=t, title="demo search"),
        "worst": plot_worst_triplets(alerts.triplets, rb, labels, title="demo search"),
    }
    both = 0 < labels.sum() < labels.size
    document: dict = {"model": str(clf.source_), "model_version": clf.model_version_}
    if both:
        figures["pr"] = plot_pr_curve(rb, labels, threshold=t, title="demo search")
        figures["roc"] = plot_roc_curve(rb, labels, threshold=t, title="demo search")
        figures["reliability"] = plot_reliability(rb, labels, title="demo search")
        document.update(classification_report(rb, labels, threshold=t).to_dict())
    for name, fig in figures.items():
        with atomic_path(root / f"rb_{name}.png") as tmp:
            fig.savefig(tmp, format="png", dpi=80)
    atomic_write_text(root / "report.json", json.dumps(jsonable_meta(document), indent=2) + "\n")
    n_real = int(labels.sum())
    above = rb >= t
    figures_text = (
        f"AUCPR {document['aucpr']:.3f}, " if both else ""
    ) + f"{int(np.sum(above & (labels == 1)))}/{n_real} injected transients above threshold"
    return (
        f"Real/bogus (skyscene.classify, shipped {clf.model_name_} {clf.model_version_}): "
        f"{len(rb)} demo alerts scored, {int(above.sum())} above threshold {t:.3f}; "
        f"{figures_text}, {int(np.sum(above & (labels == 0)))}/{int(labels.size - n_real)} "
        f"others\n  scores {root / 'scores.csv'}, plots {root}/rb_*.png"
    )
