"""Active learning, measured: labels chosen by priority vs at random (issue 14.4).

A base model is trained on a *biased* set: one kind of real candidate left out, by
default the transients on bright hosts (kind ``transient`` within ``--distnr-max`` px of
a reference source brighter than ``--magnr-max``), or a whole kind
(``--hold-out kind:variable``). Simulated reviewers answer with the truth for ``--k``
candidates of an unlabelled pool (which holds the left-out kind), chosen by the queue's
priority (:func:`skyscene.classify.active.priority`, the order of the review page) or
at random; each model is fine-tuned (:func:`skyscene.classify.finetune.fine_tune`) on
those labels plus a replay of simulated rows, then judged on a held-out file made with
other seeds and conditions: AUCPR, and the recall of the left-out kind at the model's
threshold. Several seeds; mean and standard deviation over seeds, the per-seed
differences, load average and CPU time printed.

    nice -n 10 .venv/bin/python benchmarks/bench_active.py \\
        --train rb_train.h5 --heldout rb_heldout.h5 --seeds 10 11 12
"""

from __future__ import annotations

import argparse
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
    p.add_argument("--train", required=True)
    p.add_argument("--heldout", required=True)
    p.add_argument("--hold-out", default="bright_host", help="bright_host or kind:NAME")
    p.add_argument("--magnr-max", type=float, default=19.0)
    p.add_argument("--distnr-max", type=float, default=1.5)
    p.add_argument("--n-base", type=int, default=3000)
    p.add_argument("--n-pool", type=int, default=3000)
    p.add_argument("--n-replay", type=int, default=1000)
    p.add_argument("--k", type=int, default=200)
    p.add_argument("--epochs", type=int, default=4, help="base training epochs")
    p.add_argument("--ft-epochs", type=int, default=3)
    p.add_argument("--ft-lr", type=float, default=1e-4)
    p.add_argument("--explore", type=float, default=None, help="ActiveConfig.explore")
    p.add_argument("--arch", default="compact")
    p.add_argument("--seeds", type=int, nargs="+", default=[10, 11, 12])
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    config = ActiveConfig() if a.explore is None else ActiveConfig(explore=a.explore)
    t0, c0 = time.perf_counter(), time.process_time()
    data = read_training_set(a.train)
    test = read_training_set(a.heldout)
    x_all, x_test = data.triplets, test.triplets
    held_all = left_out(data, a.hold_out, a.magnr_max, a.distnr_max)
    held_test = left_out(test, a.hold_out, a.magnr_max, a.distnr_max)
    print(
        f"load {os.getloadavg()[0]:.2f}; data {len(data)} rows ({int(held_all.sum())} "
        f"{a.hold_out}), held-out {len(test)} ({int(held_test.sum())} {a.hold_out}); "
        f"priority {config.to_dict()}; fine-tune {a.ft_epochs} epochs lr {a.ft_lr} "
        f"on {a.k} labels + {a.n_replay} replayed base rows",
        flush=True,
    )
    results: dict[str, list[dict]] = {"base": [], "priority": [], "random": []}
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
        prio = priority(
            scores.rb, scores.spread, base.threshold_, keys=data.candid[pool], config=config
        )
        replay = rng.choice(base_rows, a.n_replay, replace=False)
        val = np.setdiff1d(base_rows, replay)[:400]
        rank = np.argsort(np.argsort(-prio)) / prio.size  # 0 = first in the queue
        held_pool = held_all[pool]
        line = [
            f"seed {seed}: pool {pool.size} ({int(held_pool.sum())} {a.hold_out}, queue rank "
            f"median {np.median(rank[held_pool]):.2f}); base " + _fmt(results["base"][-1])
        ]
        for method in ("priority", "random"):
            if method == "priority":
                chosen_idx = np.lexsort((np.arange(prio.size), -prio))[: a.k]
            else:
                chosen_idx = np.random.default_rng(seed).choice(prio.size, a.k, replace=False)
            chosen = pool[chosen_idx]
            rows = np.concatenate([chosen, replay])
            clf = fine_tune(
                base,
                x_all[rows],
                data.label[rows],
                validation=(x_all[val], data.label[val]),
                epochs=a.ft_epochs,
                learning_rate=a.ft_lr,
                seed=seed,
            )
            res = figures(clf, x_test, test.label, held_test)
            res["n_held"] = int(held_all[chosen].sum())
            res["n_real"] = int(data.label[chosen].sum())
            results[method].append(res)
            line.append(f"{method} ({res['n_held']} left-out, {res['n_real']} real) " + _fmt(res))
        print("; ".join(line), f"[load {os.getloadavg()[0]:.2f}]", flush=True)
    print(f"\nover seeds {a.seeds} (mean ± std):")
    for method, rows in results.items():
        ap = np.array([r["aucpr"] for r in rows])
        rk = np.array([r["recall_held"] for r in rows])
        print(
            f"  {method:8s} AUCPR {ap.mean():.4f} ± {ap.std(ddof=1) if ap.size > 1 else 0:.4f}"
            f"  recall({a.hold_out}) {rk.mean():.3f} ± {rk.std(ddof=1) if rk.size > 1 else 0:.3f}"
        )
    d_ap = np.array(
        [
            p["aucpr"] - r["aucpr"]
            for p, r in zip(results["priority"], results["random"], strict=True)
        ]
    )
    d_rk = np.array(
        [
            p["recall_held"] - r["recall_held"]
            for p, r in zip(results["priority"], results["random"], strict=True)
        ]
    )
    print(
        f"  priority - random: AUCPR {d_ap.mean():+.4f} (per seed {np.round(d_ap, 4).tolist()}, "
        f"priority ahead in {int((d_ap > 0).sum())}/{d_ap.size}); recall({a.hold_out}) "
        f"{d_rk.mean():+.3f} (per seed {np.round(d_rk, 3).tolist()}, ahead in "
        f"{int((d_rk > 0).sum())}/{d_rk.size})"
    )
    print(
        f"wall {time.perf_counter() - t0:.0f} s, CPU {time.process_time() - c0:.0f} s, "
        f"load {os.getloadavg()[0]:.2f}"
    )


def _fmt(r: dict) -> str:
    return (
        f"AUCPR {r['aucpr']:.4f} recall(left-out) {r['recall_held']:.3f} recall {r['recall']:.3f}"
    )


if __name__ == "__main__":
    main()
