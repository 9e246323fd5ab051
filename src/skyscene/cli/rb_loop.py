"""``skyscene rb retrain | promote | rescore | drift``: the learning loop on a database."""

from __future__ import annotations

import json
import logging
from pathlib import Path

__all__ = ["register_loop"]

log = logging.getLogger(__name__)


def _store(url: str):
    from skyscene.store import CandidateStore

    return CandidateStore(url)


def _labelled(store, size: int):
    """Triplets, labels (1 real / 0 bogus) and candids of candidates whose consensus
    (majority of the users' current labels) is real or bogus."""
    import numpy as np
    from sqlalchemy import select

    from skyscene.classify.drift import _current_majority
    from skyscene.classify.io import read_store_triplets
    from skyscene.store import models as m

    labels = m.Label.__table__
    with store.engine.connect() as connection:
        rows = connection.execute(
            select(labels.c.candid, labels.c.user_id, labels.c.value).order_by(
                labels.c.created_at, labels.c.id
            )
        ).all()
    consensus = _current_majority(rows)
    if not consensus:
        return np.zeros((0, 3, size, size), np.float32), np.zeros(0, np.int64), np.zeros(0, int)
    source = read_store_triplets(store, size=size)
    keep = np.array([int(c) in consensus for c in source.index])
    y = np.array([consensus[int(c)] == "real" for c in source.index[keep]], np.int64)
    return source.triplets[keep], y, source.index[keep]


def _report(clf, x, y) -> dict:
    from skyscene.classify import classification_report

    if y.size == 0 or y.sum() in (0, y.size):
        return {"n": int(y.size), "note": "held-out set needs both classes"}
    rb = clf.score(x).rb
    return classification_report(rb, y, threshold=clf.threshold_).to_dict()


def _retrain(args) -> int:
    import getpass

    import numpy as np

    from skyscene.classify.finetune import fine_tune
    from skyscene.classify.io import load_model, read_training_set, save_model
    from skyscene.classify.registry import register_model
    from skyscene.errors import DataError

    base = load_model(args.base)
    store = _store(args.db)
    try:
        x_lab, y_lab, _candid = _labelled(store, base.size)
        if y_lab.size == 0 and args.simulated is None:
            raise DataError(f"database {store._shown_url()}: no consensus labels to train on")
        rng = np.random.default_rng(args.seed)
        held = rng.uniform(size=y_lab.size) < args.held_out_fraction
        x_ft, y_ft = x_lab[~held], y_lab[~held]
        if args.simulated is not None:
            sim = read_training_set(args.simulated)
            x_ft = np.concatenate([x_ft, sim.triplets]) if y_ft.size else sim.triplets
            y_ft = np.concatenate([y_ft, sim.label]).astype(np.int64)
        val = rng.uniform(size=y_ft.size) < 0.25
        clf = fine_tune(
            base,
            x_ft[~val],
            y_ft[~val],
            validation=(x_ft[val], y_ft[val]),
            epochs=args.epochs,
            learning_rate=args.learning_rate,
            seed=args.seed,
        )
        old = _report(base, x_lab[held], y_lab[held])
        new = _report(clf, x_lab[held], y_lab[held])
        metrics = {
            "held_out_old": old,
            "held_out_new": new,
            "n_human_labels": int(y_lab.size),
            "n_held_out": int(held.sum()),
            "n_fine_tune": int((~val).sum()),
            "simulated": None if args.simulated is None else str(args.simulated),
        }
        save_model(args.out, clf, metrics=metrics)
        register_model(store, args.base)
        record = register_model(
            store,
            args.out,
            parent_version=base.model_version_,
            trained_by=args.trained_by or getpass.getuser(),
            metrics=metrics,
            reference_scores=clf.validation_scores_,
        )
    finally:
        store.close()

    def fig(r):
        return f"AUCPR {r['aucpr']:.4f}, recall {r['recall']:.4f}" if "aucpr" in r else r["note"]

    print(
        f"{args.out}: {record.name} {record.version} (parent {base.model_version_}) from "
        f"{int(y_lab.size)} human labels (+ {args.simulated or 'no simulated set'}); "
        f"held-out {int(held.sum())}: old {fig(old)}; new {fig(new)}; registered, not served "
        f"(skyscene rb promote {record.version} --db URL)"
    )
    return 0


def _promote(args) -> int:
    from skyscene.classify.registry import promote_model

    store = _store(args.db)
    try:
        record = promote_model(store, args.version)
    finally:
        store.close()
    print(f"{record.name} {record.version} is now served")
    return 0


def _rescore(args) -> int:
    from skyscene.classify.active import priority, score_with_spread
    from skyscene.classify.io import read_store_triplets
    from skyscene.classify.registry import load_classifier

    store = _store(args.db)
    try:
        clf = load_classifier(store, args.version)
        source = read_store_triplets(store, size=clf.size)
        scores = score_with_spread(clf, source.triplets, source=store._shown_url())
        prio = priority(scores.rb, scores.spread, clf.threshold_)
        n = store.add_scores(
            source.index.tolist(),
            scores.rb.tolist(),
            model_name=clf.model_name_,
            model_version=clf.model_version_,
            spreads=scores.spread.tolist(),
            priorities=prio.tolist(),
        )
    finally:
        store.close()
    print(
        f"{n} candidates scored by {clf.model_name_} {clf.model_version_} "
        f"(scores of other versions kept)"
    )
    return 0


def _drift(args) -> int:
    from skyscene.classify.drift import DriftConfig, drift_report
    from skyscene.io import atomic_write_text

    store = _store(args.db)
    try:
        report = drift_report(
            store, model_version=args.version, config=DriftConfig(psi_limit=args.psi_limit)
        )
    finally:
        store.close()
    atomic_write_text(args.out, json.dumps(report.to_dict(), indent=2) + "\n")
    if args.html is not None:
        import base64
        import html
        import io

        from skyscene.plotting.drift import plot_drift

        buffer = io.BytesIO()
        plot_drift(report).savefig(buffer, format="png", dpi=90)
        png = base64.b64encode(buffer.getvalue()).decode()
        rows = "".join(
            "<tr>"
            + "".join(f"<td>{html.escape(str(v))}</td>" for v in r.to_dict().values())
            + "</tr>"
            for r in report.nights
        )
        head = "".join(f"<th>{k}</th>" for k in (report.nights[0].to_dict() if rows else {}))
        atomic_write_text(
            args.html,
            "<!doctype html><meta charset=utf-8><title>skyscene drift</title>"
            f"<h1>Real/bogus score drift</h1><p>PSI limit {report.config.psi_limit}; "
            f"{len(report.flagged)} flagged of {len(report.nights)}</p>"
            f'<img alt="drift" src="data:image/png;base64,{png}">'
            f"<table border=1><tr>{head}</tr>{rows}</table>\n",
        )
    print(
        f"{args.out}: {len(report.nights)} nights x versions, {len(report.flagged)} flagged "
        f"(PSI > {report.config.psi_limit})"
    )
    return 0


def register_loop(sub) -> None:
    """Add ``retrain``, ``promote``, ``rescore``, ``drift`` to ``skyscene rb``'s actions."""
    rt = sub.add_parser("retrain", help="fine-tune a model on the database's human labels")
    rt.add_argument("--db", required=True, metavar="URL")
    rt.add_argument("--base", type=Path, required=True, metavar="MODEL.pt")
    rt.add_argument("--out", type=Path, required=True, metavar="NEW.pt")
    rt.add_argument("--simulated", type=Path, default=None, metavar="DATA.h5")
    rt.add_argument("--epochs", type=int, default=5)
    rt.add_argument("--learning-rate", type=float, default=3e-4)
    rt.add_argument("--held-out-fraction", type=float, default=0.3,
                    help="labelled candidates kept out for old/new figures")  # fmt: skip
    rt.add_argument("--trained-by", default=None)
    rt.add_argument("--seed", type=int, default=0)
    rt.set_defaults(func=_retrain)

    pr = sub.add_parser("promote", help="make a registered model version the served one")
    pr.add_argument("version", metavar="VERSION")
    pr.add_argument("--db", required=True, metavar="URL")
    pr.set_defaults(func=_promote)

    rs = sub.add_parser("rescore", help="score the database's candidates with a model version")
    rs.add_argument("--db", required=True, metavar="URL")
    rs.add_argument("--version", default=None, help="default: the served model")
    rs.set_defaults(func=_rescore)

    dr = sub.add_parser("drift", help="score drift per night against the reference scores")
    dr.add_argument("--db", required=True, metavar="URL")
    dr.add_argument("--out", type=Path, required=True, metavar="REPORT.json")
    dr.add_argument("--html", type=Path, default=None, metavar="REPORT.html")
    dr.add_argument("--version", default=None)
    dr.add_argument("--psi-limit", type=float, default=0.2)
    dr.set_defaults(func=_drift)
