"""Active learning, measured: labels chosen by priority vs at random (issue 14.4).

A base model is trained on a *biased* set: one kind of real candidate left out, by
default the transients on bright hosts (kind ``transient`` within ``--distnr-max`` px of
a reference source brighter than ``--magnr-max``), or a whole kind
(``--hold-out kind:variable``). Simulated reviewers answer with the truth for ``--k``
candidates of an unlabelled pool (which holds the left-out kind), chosen by the queue's
priority (:func:`skyscene.classify.active.priority`, the order of the review page) or
at random, in ``--rounds`` rounds of ``k / rounds``: after each round the base model is
fine-tuned (:func:`skyscene.classify.finetune.fine_tune`) on all the labels so far plus
a replay of the base's training rows, and (priority) the pool is rescored by the new
model to choose the next round's candidates, as the review loop does (label, ``rb
retrain``, ``rb rescore``). Each final model is judged on a held-out file made with
other seeds and conditions: AUCPR, and the recall of the left-out kind at the model's
threshold. Several seeds; mean and standard deviation over seeds, the per-seed
differences, load average and CPU time printed. Tune settings on other seeds than the
ones reported.

    nice -n 10 .venv/bin/python benchmarks/bench_active.py \\
        --train rb_train.h5 --heldout rb_heldout.h5 --seeds 10 11 12 13 14
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from skyscene.classify import RealBogusClassifier, classification_report
from skyscene.classify.active import ActiveConfig, priority, score_with_spread
from skyscene.classify.finetune import fine_tune
from skyscene.classify.io import read_training_set


def left_out(data, how: str, magnr_max: float, distnr_max: float) -> np.ndarray:
    """Rows of the left-out kind."""
    if how.startswith("kind:"):
        return np.asarray(data.kind == how[5:])
    if how != "bright_host":
        raise SystemExit(f"--hold-out must be bright_host or kind:NAME, got {how!r}")
    distnr = np.asarray(data.features["distnr"], float)
    magnr = np.asarray(data.features["magnr"], float)
    with np.errstate(invalid="ignore"):
        return np.asarray(data.kind == "transient") & (distnr < distnr_max) & (magnr < magnr_max)


def figures(clf, x, y, held):
    rb = clf.score(x).rb
    rep = classification_report(rb, y, threshold=clf.threshold_)
    return {
        "aucpr": float(rep.aucpr),
        "recall_held": float(np.mean(rb[held] >= clf.threshold_)),
        "recall": float(rep.recall),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--train")
    p.add_argument(
        "--heldout",
        default=None,
        help="held-out file (default: --test-fraction of --train's pairs, kept out of all)",
    )
    p.add_argument("--test-fraction", type=float, default=0.25)
    p.add_argument("--hold-out", default="bright_host", help="bright_host or kind:NAME")
    p.add_argument("--magnr-max", type=float, default=19.0)
    p.add_argument("--distnr-max", type=float, default=1.5)
    p.add_argument("--n-base", type=int, default=3000)
    p.add_argument("--n-pool", type=int, default=3000)
    p.add_argument("--n-replay", type=int, default=1000)
    p.add_argument("--k", type=int, default=200, help="labels in all, per method")
    p.add_argument("--rounds", type=int, default=4, help="label / fine-tune / rescore rounds")
    p.add_argument("--epochs", type=int, default=4, help="base training epochs")
    p.add_argument("--ft-epochs", type=int, default=3)
    p.add_argument("--ft-lr", type=float, default=1e-4)
    p.add_argument(
        "--explore",
        type=float,
        nargs="+",
        default=[0.0],
        help="ActiveConfig.explore of each priority arm (one arm per value)",
    )
    p.add_argument(
        "--centres",
        nargs="+",
        default=["t"],
        help="where the uncertainty peaks, per arm: t (the model's threshold, as the review "
        "queue) or a calibrated probability such as 0.5 (the most uncertain label)",
    )
    p.add_argument("--arch", default="compact")
    p.add_argument("--seeds", type=int, nargs="+", default=[10, 11, 12])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", help="write the per-seed figures here")
    p.add_argument("--combine", nargs="+", help="only summarise --json files of other runs (seeds)")
    a = p.parse_args()
    if a.combine:
        runs = [json.load(open(path)) for path in a.combine]
        merged = {m: [r for run in runs for r in run["results"][m]] for m in runs[0]["results"]}
        summarise(merged, [s for run in runs for s in run["seeds"]], runs[0]["hold_out"])
        return
    # arms: (centre of the uncertainty, exploration share); the centre "t" is the model's
    # threshold (the review queue's), a number is a fixed calibrated probability
    configs = {
        f"priority(c={c},e={e:g})": (c, ActiveConfig(explore=e))
        for c in a.centres
        for e in a.explore
    }

    def centre(name: str, clf) -> float:
        c = configs[name][0]
        return clf.threshold_ if c == "t" else float(c)

    t0, c0 = time.perf_counter(), time.process_time()
    data = read_training_set(a.train)
    if a.heldout is not None:
        test = read_training_set(a.heldout)
    else:  # whole pairs (groups) out, the same for every seed
        groups = np.unique(data.group)
        out = np.random.default_rng(12345).permutation(groups)[
            : round(a.test_fraction * groups.size)
        ]
        in_test = np.isin(data.group, out)
        test, data = data.subset(np.flatnonzero(in_test)), data.subset(np.flatnonzero(~in_test))
    x_all, x_test = data.triplets, test.triplets
    held_all = left_out(data, a.hold_out, a.magnr_max, a.distnr_max)
    held_test = left_out(test, a.hold_out, a.magnr_max, a.distnr_max)
    print(
        f"load {os.getloadavg()[0]:.2f}; data {len(data)} rows ({int(held_all.sum())} "
        f"{a.hold_out}), held-out {len(test)} ({int(held_test.sum())} {a.hold_out}); "
        f"priority {ActiveConfig().to_dict()} with centres {a.centres}, explore {a.explore}; {a.k} labels in {a.rounds} rounds, each a fine-tune "
        f"of the base ({a.ft_epochs} epochs, lr {a.ft_lr}) on the labels so far + "
        f"{a.n_replay} replayed base rows",
        flush=True,
    )
    results: dict[str, list[dict]] = {"base": [], **{m: [] for m in configs}, "random": []}
    for seed in a.seeds:
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(data))
        base_rows = order[~held_all[order]][: a.n_base]
        rest = np.setdiff1d(order, base_rows)
        pool = rng.permutation(rest)[: a.n_pool]
        base = RealBogusClassifier(
            arch=a.arch, epochs=a.epochs, patience=3, seed=seed, n_threads=a.threads
        ).fit(x_all[base_rows], data.label[base_rows], groups=data.group[base_rows])
        results["base"].append(figures(base, x_test, test.label, held_test))
        scores = score_with_spread(base, x_all[pool])
        prio = {
            m: priority(scores.rb, scores.spread, centre(m, base), keys=data.candid[pool], config=c)
            for m, (_, c) in configs.items()
        }
        replay = rng.choice(base_rows, a.n_replay, replace=False)
        val = np.setdiff1d(base_rows, replay)[:400]
        first = next(iter(prio.values()))
        rank = np.argsort(np.argsort(-first)) / first.size  # 0 = first in the queue
        held_pool = held_all[pool]
        line = [
            f"seed {seed}: pool {pool.size} ({int(held_pool.sum())} {a.hold_out}, base queue "
            f"rank median {np.median(rank[held_pool]):.2f}); base " + _fmt(results["base"][-1])
        ]
        per_round = np.diff(np.linspace(0, a.k, a.rounds + 1).round().astype(int))
        random_order = np.random.default_rng(seed).permutation(pool.size)
        for method in [*configs, "random"]:
            labelled = np.zeros(pool.size, bool)
            clf, q = base, prio.get(method)
            # random: the same labels whatever the rounds, so one fine-tune on all of them
            rounds = per_round if method != "random" else np.array([a.k])
            for r, n_round in enumerate(rounds):
                if method != "random":
                    order = np.lexsort((np.arange(q.size), -q))
                    chosen_idx = order[~labelled[order]][:n_round]
                else:
                    chosen_idx = random_order[labelled.sum() : labelled.sum() + n_round]
                labelled[chosen_idx] = True
                rows = np.concatenate([pool[labelled], replay])
                clf = fine_tune(
                    base,
                    x_all[rows],
                    data.label[rows],
                    validation=(x_all[val], data.label[val]),
                    epochs=a.ft_epochs,
                    learning_rate=a.ft_lr,
                    seed=seed,
                )
                if method != "random" and r < rounds.size - 1:
                    sc = score_with_spread(clf, x_all[pool])
                    q = priority(
                        sc.rb,
                        sc.spread,
                        centre(method, clf),
                        keys=data.candid[pool],
                        config=configs[method][1],
                    )
            chosen = pool[labelled]
            res = figures(clf, x_test, test.label, held_test)
            res["n_held"] = int(held_all[chosen].sum())
            res["n_real"] = int(data.label[chosen].sum())
            results[method].append(res)
            line.append(f"{method} ({res['n_held']} left-out, {res['n_real']} real) " + _fmt(res))
        print("; ".join(line), f"[load {os.getloadavg()[0]:.2f}]", flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"seeds": a.seeds, "hold_out": a.hold_out, "results": results}, f)
    summarise(results, a.seeds, a.hold_out)
    print(
        f"wall {time.perf_counter() - t0:.0f} s, CPU {time.process_time() - c0:.0f} s, "
        f"load {os.getloadavg()[0]:.2f}"
    )


def summarise(results: dict, seeds: list, hold_out: str) -> None:
    """Mean ± std over seeds of each arm, and each priority arm minus random."""
    print(f"\nover seeds {seeds} (mean ± std):")
    for method, rows in results.items():
        ap = np.array([r["aucpr"] for r in rows])
        rk = np.array([r["recall_held"] for r in rows])
        print(
            f"  {method:16s} AUCPR {ap.mean():.4f} ± {ap.std(ddof=1) if ap.size > 1 else 0:.4f}"
            f"  recall({hold_out}) {rk.mean():.3f} ± {rk.std(ddof=1) if rk.size > 1 else 0:.3f}"
        )
    for method in [m for m in results if m.startswith("priority")]:
        d_ap = np.array(
            [
                p["aucpr"] - r["aucpr"]
                for p, r in zip(results[method], results["random"], strict=True)
            ]
        )
        d_rk = np.array(
            [
                p["recall_held"] - r["recall_held"]
                for p, r in zip(results[method], results["random"], strict=True)
            ]
        )
        print(
            f"  {method} - random: AUCPR {d_ap.mean():+.4f} ± {_sd(d_ap):.4f} (per seed "
            f"{np.round(d_ap, 4).tolist()}, ahead in {int((d_ap > 0).sum())}/{d_ap.size}); "
            f"recall({hold_out}) {d_rk.mean():+.3f} ± {_sd(d_rk):.3f} (per seed "
            f"{np.round(d_rk, 3).tolist()}, ahead in {int((d_rk > 0).sum())}/{d_rk.size})"
        )


def _sd(x: np.ndarray) -> float:
    return float(x.std(ddof=1)) if x.size > 1 else 0.0


def _fmt(r: dict) -> str:
    return (
        f"AUCPR {r['aucpr']:.4f} recall(left-out) {r['recall_held']:.3f} recall {r['recall']:.3f}"
    )


if __name__ == "__main__":
    main()
