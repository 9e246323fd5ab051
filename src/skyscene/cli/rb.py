"""``skyscene rb``: real/bogus training sets, training, evaluation and scoring."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

__all__ = ["register"]

log = logging.getLogger(__name__)


def _make_training(args) -> int:
    from skyscene.classify import TrainingSetConfig, make_training_set
    from skyscene.classify.io import write_training_set
    from skyscene.classify.training_set import SIMULATORS

    config = TrainingSetConfig(
        n_pairs=args.n_pairs,
        size=args.size,
        cutout_size=args.cutout_size,
        threshold=args.threshold,
        match_radius=args.match_radius,
    )
    start = time.perf_counter()
    data = make_training_set(
        config, rng=args.seed, simulator=SIMULATORS[args.conditions], progress_bar=args.progress
    )
    if len(data) == 0:
        from skyscene.errors import DataError

        raise DataError(f"{args.out}: no candidates found in {args.n_pairs} pairs; nothing written")
    data.meta["seed"] = args.seed
    data.meta["conditions_mode"] = args.conditions
    write_training_set(args.out, data)
    counts = ", ".join(f"{k} {v}" for k, v in sorted(data.counts().items()))
    print(
        f"{args.out}: {len(data)} triplets ({int(data.label.sum())} real, "
        f"{int(len(data) - data.label.sum())} bogus) from {args.n_pairs} pairs in "
        f"{time.perf_counter() - start:.1f} s; {counts}"
    )
    return 0


def _train(args) -> int:
    import numpy as np

    from skyscene.classify import (
        RealBogusClassifier,
        ambiguous_rows,
        classification_report,
        group_split,
    )
    from skyscene.classify.io import read_training_set, save_model
    from skyscene.errors import DataError

    data = read_training_set(args.data)
    held = np.isin(data.kind, args.hold_out_kind or [])
    if args.hold_out_kind and not held.any():
        raise DataError(f"{args.data}: no rows of kind {', '.join(args.hold_out_kind)}")
    reason = ambiguous_rows(data)
    ambiguous = (reason != "") & ~held if not args.keep_ambiguous else np.zeros(len(data), bool)
    if ambiguous.any():
        kinds, n = np.unique(reason[ambiguous], return_counts=True)
        counts = {str(k): int(v) for k, v in zip(kinds, n, strict=True)}
        log.info("%d ambiguous rows left out of training and test: %s", ambiguous.sum(), counts)
    split = group_split(data.group, validation=0.0, test=args.test_fraction, rng=args.seed)
    left_out = np.flatnonzero(held | ambiguous)
    train_rows = np.setdiff1d(split.train, left_out)
    clf = RealBogusClassifier(
        arch=args.arch,
        inputs=args.inputs,
        size=data.science.shape[-1],
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        patience=args.patience,
        validation_fraction=args.validation_fraction,
        blur=args.augment_blur,
        seed=args.seed,
        n_threads=args.threads,
    )
    start = time.perf_counter()
    triplets = data.triplets
    clf.fit(
        triplets[train_rows],
        data.label[train_rows],
        groups=data.group[train_rows],
        progress_bar=args.progress,
    )
    seconds = time.perf_counter() - start
    metrics: dict = {
        "train_seconds": seconds,
        "n_train_and_validation": int(train_rows.size),
        "split_groups": split.groups,
        "ambiguous_left_out": dict(
            zip(
                *(a.tolist() for a in np.unique(reason[ambiguous], return_counts=True)), strict=True
            )
        ),
    }
    test_rows = np.setdiff1d(split.test, left_out)
    if test_rows.size and 0 < data.label[test_rows].sum() < test_rows.size:
        rb = clf.score(triplets[test_rows]).rb
        metrics["test"] = classification_report(
            rb, data.label[test_rows], threshold=clf.threshold_, kinds=data.kind[test_rows]
        ).to_dict()
    if held.any():
        rb = clf.score(triplets[held]).rb
        metrics["held_out"] = {
            "kinds": list(args.hold_out_kind),
            "n": int(held.sum()),
            "scored_real": int(np.sum(rb >= clf.threshold_)),
            "fraction_scored_real": float(np.mean(rb >= clf.threshold_)),
        }
    save_model(args.out, clf, metrics=metrics)
    val = clf.validation_report_
    line = (
        f"{args.out}: {clf.model_name_} {clf.model_version_}, best epoch {clf.best_epoch_} "
        f"of {len(clf.history_)}, {seconds:.1f} s; validation AUCPR {val.aucpr:.4f}, "
        f"threshold {clf.threshold_:.4f} (FNR {val.fnr:.3%}, FPR {val.fpr:.3%}), "
        f"T = {clf.temperature_:.3f}"
    )
    if "test" in metrics:
        test = metrics["test"]
        line += f"; test AUCPR {test['aucpr']:.4f}, FPR at FNR 1 % {test['fpr_at_fnr_1pct']:.3%}"
    if "held_out" in metrics:
        h = metrics["held_out"]
        line += f"; held-out {'/'.join(h['kinds'])}: {h['scored_real']} of {h['n']} scored real"
    print(line)
    return 0


def _evaluate(args) -> int:
    import numpy as np

    from skyscene.classify import ambiguous_rows, classification_report
    from skyscene.classify.io import load_model, read_training_set
    from skyscene.errors import DataError
    from skyscene.io import atomic_path, atomic_write_text, jsonable_meta
    from skyscene.plotting.classify import (
        plot_pr_curve,
        plot_reliability,
        plot_roc_curve,
        plot_score_histograms,
        plot_worst_triplets,
    )

    clf = load_model(args.model)
    data = read_training_set(args.data)
    triplets = data.triplets
    scores = clf.score(triplets, source=str(args.data))
    reason = ambiguous_rows(data)
    clear = reason == ""
    if not clear.any():
        raise DataError(f"{args.data}: every row is ambiguous (faint, blended, mover)")
    rb, label, kind = scores.rb[clear], data.label[clear], data.kind[clear]
    report = classification_report(rb, label, threshold=clf.threshold_, kinds=kind)
    out = Path(args.out)
    figures = {
        "pr": plot_pr_curve(rb, label, threshold=clf.threshold_),
        "roc": plot_roc_curve(rb, label, threshold=clf.threshold_),
        "hist": plot_score_histograms(rb, label, threshold=clf.threshold_),
        "reliability": plot_reliability(rb, label),
        "worst": plot_worst_triplets(triplets[clear], rb, label, kinds=kind),
    }
    written = {}
    for name, fig in figures.items():
        path = out.with_name(f"{out.stem}_{name}.png")
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=90)
        written[name] = path.name
    ambiguous: dict = {"n": int((~clear).sum())}
    for why in np.unique(reason[~clear]):
        sel = reason == why
        called = int(np.sum(scores.rb[sel] >= clf.threshold_))
        ambiguous[str(why)] = {
            "n": int(sel.sum()),
            "nominal_label": round(float(np.mean(data.label[sel]))),
            "called_real": called,
            "fraction_called_real": called / int(sel.sum()),
        }
    all_rows = None
    if (~clear).any() and 0 < data.label.sum() < len(data):
        all_rows = classification_report(
            scores.rb, data.label, threshold=clf.threshold_, kinds=data.kind
        )
    document = {
        "data": str(args.data),
        "model": str(clf.source_),
        "model_name": clf.model_name_,
        "model_version": clf.model_version_,
        "n_nan_pixels": int(scores.n_nan.sum()),
        **report.to_dict(),
        "ambiguous": ambiguous,
        "all_rows": all_rows.to_dict() if all_rows is not None else None,
        "figures": written,
    }
    atomic_write_text(out, json.dumps(jsonable_meta(document), indent=2) + "\n")
    print(
        f"{out}: {report.n} triplets; AUCPR {report.aucpr:.4f}, ROC AUC {report.roc_auc:.4f}, "
        f"FPR at FNR 1 % {report.fpr_at_fnr_1pct:.3%}, FNR at FPR 1 % "
        f"{report.fnr_at_fpr_1pct:.3%}, ECE {report.ece:.4f}; at threshold "
        f"{report.threshold:.4f}: precision {report.precision:.4f}, recall {report.recall:.4f}"
    )
    for kind, entry in sorted(report.per_kind.items()):
        what = "recall" if entry["label"] == 1 else "rejection"
        print(f"  {kind:16s} n={entry['n']:6d} {what} {entry.get(what, 0.0):.4f}")
    if ambiguous["n"]:
        print(f"  ambiguous rows (not in the figures above): {ambiguous['n']}")
        for why, entry in ambiguous.items():
            if why != "n":
                print(
                    f"    {why:14s} n={entry['n']:6d} nominal label {entry['nominal_label']}, "
                    f"called real {entry['fraction_called_real']:.4f}"
                )
    if all_rows is not None:
        print(
            f"  all {all_rows.n} rows, ambiguous with their nominal labels: AUCPR "
            f"{all_rows.aucpr:.4f}, FPR at FNR 1 % {all_rows.fpr_at_fnr_1pct:.3%}, "
            f"ECE {all_rows.ece:.4f}"
        )
    return 0


def _is_url(text: str) -> bool:
    return "://" in text


def _score(args) -> int:
    import numpy as np
    from astropy.table import Table

    from skyscene.classify.io import (
        load_model,
        read_alert_triplets,
        read_store_triplets,
        read_triplets,
    )
    from skyscene.errors import ParameterError
    from skyscene.io import atomic_path

    clf = load_model(args.model)
    inputs = list(args.input)
    urls = [i for i in inputs if _is_url(i)]
    store = None
    if urls:
        if len(inputs) != 1:
            raise ParameterError("give one database URL, or files, not both", name="INPUT")
        from skyscene.store import CandidateStore

        store = CandidateStore(urls[0])
        source = read_store_triplets(store, size=clf.size)
    elif len(inputs) == 1 and Path(inputs[0]).suffix.lower() in (".npz", ".h5", ".hdf5"):
        source = read_triplets(inputs[0])
    else:
        source = read_alert_triplets(inputs if len(inputs) > 1 else inputs[0], size=clf.size)
    start = time.perf_counter()
    scores = clf.score(source.triplets, batch_size=args.batch_size, source=str(source.path))
    seconds = time.perf_counter() - start
    table = Table(
        {
            source.index_name: source.index,
            "rb": scores.rb,
            "model_version": np.full(len(source), scores.model_version),
            "n_nan": scores.n_nan,
        }
    )
    for key in ("ztf_rb", "ztf_drb", "file"):
        if key in source.extra:
            table[key] = source.extra[key]
    if store is not None:
        try:
            n = store.add_scores(
                source.index.tolist(),
                scores.rb.tolist(),
                model_name=scores.model_name,
                model_version=scores.model_version,
            )
        finally:
            store.close()
        log.info("%d scores written to the scores table (%s)", n, scores.model_version)
    with atomic_path(args.out) as tmp:
        table.write(tmp, format="ascii.csv", overwrite=True)
    n_nan = int(scores.n_nan.sum())
    print(
        f"{args.out}: {len(source)} triplets scored by {scores.model_name} "
        f"{scores.model_version} in {seconds:.2f} s ({len(source) / max(seconds, 1e-9):.0f}/s); "
        f"{int(np.sum(scores.rb >= clf.threshold_))} above threshold {clf.threshold_:.4f}; "
        f"{n_nan} NaN pixels set to 0 in {int(np.sum(scores.n_nan > 0))} triplets"
        + ("; written to the database" if store is not None else "")
    )
    return 0


def register(commands, simulate) -> None:
    from skyscene.classify.models import ARCHITECTURES, INPUTS

    p = commands.add_parser(
        "rb",
        help="real/bogus classifier: make training sets, train, evaluate, score",
        description=(
            "Real/bogus classification of candidate triplets (needs the extra "
            "skyscene[rb], PyTorch CPU). See docs/classify.md."
        ),
    )
    sub = p.add_subparsers(dest="rb_command", metavar="ACTION")
    _give_common(p, sub)

    mk = sub.add_parser(
        "make-training",
        help="simulate pairs, subtract, find candidates and label them (HDF5)",
    )
    mk.add_argument("out", type=Path, metavar="OUT.h5")
    mk.add_argument("--n-pairs", type=int, default=20)
    mk.add_argument("--seed", type=int, default=0)
    mk.add_argument("--size", type=int, default=512, help="image side, pixels (default 512)")
    mk.add_argument("--cutout-size", type=int, default=63)
    mk.add_argument("--threshold", type=float, default=5.0, help="|S_corr| threshold")
    mk.add_argument("--match-radius", type=float, default=3.0, help="pixels")
    mk.add_argument("--conditions", choices=("search", "banded", "rich"), default="search",
                    help="search: the search simulator's own ranges; banded: also a wider "
                    "band per condition beyond them; rich: banded with more residuals of "
                    "bright sources (docs/classify.md)")  # fmt: skip
    mk.set_defaults(func=_make_training)

    tr = sub.add_parser("train", help="train a model on a training set (checkpoint .pt)")
    tr.add_argument("data", type=Path, metavar="DATA.h5")
    tr.add_argument("--out", type=Path, required=True, metavar="MODEL.pt")
    tr.add_argument("--arch", choices=ARCHITECTURES, default="vgg6")
    tr.add_argument("--inputs", choices=tuple(INPUTS), default="braai",
                    help="network input: braai (3 L2-normalised cutouts) or snr (also the "
                    "cutouts in noise units, 6 channels)")  # fmt: skip
    tr.add_argument("--keep-ambiguous", action="store_true",
                    help="train on the ambiguous rows too (faint, blended, mover: "
                    "docs/classify.md)")  # fmt: skip
    tr.add_argument("--augment-blur", type=float, default=0.0, metavar="SIGMA",
                    help="blur the difference cutout of half the training triplets by a "
                    "Gaussian of sigma U(0.3, SIGMA) px (0: off; docs/classify.md)")  # fmt: skip
    tr.add_argument("--epochs", type=int, default=30)
    tr.add_argument("--batch-size", type=int, default=64)
    tr.add_argument("--learning-rate", type=float, default=1e-3)
    tr.add_argument("--patience", type=int, default=5, help="early-stopping patience (epochs)")
    tr.add_argument("--validation-fraction", type=float, default=0.2)
    tr.add_argument("--test-fraction", type=float, default=0.15,
                    help="groups held out for the test figures in the checkpoint")  # fmt: skip
    tr.add_argument("--hold-out-kind", action="append", metavar="KIND",
                    help="retrospective test: train without this kind, report how many of "
                    "it score real (repeatable)")  # fmt: skip
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--threads", type=int, default=None, help="torch threads")
    tr.set_defaults(func=_train)

    ev = sub.add_parser("evaluate", help="figures of merit and plots of a model on a data set")
    ev.add_argument("data", type=Path, metavar="DATA.h5")
    ev.add_argument("--model", type=Path, default=None, metavar="MODEL.pt",
                    help="checkpoint (default: the shipped pretrained model)")  # fmt: skip
    ev.add_argument("--out", type=Path, required=True, metavar="REPORT.json",
                    help="the PNGs are written beside it (REPORT_pr.png, ...)")  # fmt: skip
    ev.set_defaults(func=_evaluate)

    sc = sub.add_parser(
        "score",
        help="score alerts (.avro files/folders), a triplet file (.npz/.h5) or a database",
    )
    sc.add_argument("input", nargs="+", metavar="INPUT",
                    help="database URL, alert .avro files or folders, or one .npz/.h5")  # fmt: skip
    sc.add_argument("--model", type=Path, default=None, metavar="MODEL.pt",
                    help="checkpoint (default: the shipped pretrained model)")  # fmt: skip
    sc.add_argument("--out", type=Path, required=True, metavar="SCORES.csv")
    sc.add_argument("--batch-size", type=int, default=1024)
    sc.set_defaults(func=_score)

    from skyscene.cli.rb_loop import register_loop  # retrain, promote, rescore, drift

    register_loop(sub)

    def _help(args) -> int:
        p.print_help()
        return 2

    p.set_defaults(func=_help)


def _give_common(parent, sub) -> None:
    """Sub-actions get the -v/-q options of their parent's sub-parser collection."""
    common = [a for a in parent._actions if a.dest in ("verbose", "quiet")]
    if not common:
        return
    import argparse

    shared = argparse.ArgumentParser(add_help=False)
    group = shared.add_mutually_exclusive_group()
    group.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS)
    group.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS)
    add_parser = sub.add_parser

    def add_with_common(name, **kwargs):
        kwargs["parents"] = [*kwargs.get("parents", ()), shared]
        return add_parser(name, **kwargs)

    sub.add_parser = add_with_common
