"""Active learning, measured: labels chosen by priority vs at random (issue 14.4).

A base model is trained on a *biased* set (one real kind, default ``variable``, left
out). Simulated reviewers answer with the truth for ``--k`` candidates of an unlabelled
pool, chosen by :func:`skyscene.classify.active.select_candidates` (priority) or at
random; each model is fine-tuned (:func:`skyscene.classify.finetune.fine_tune`) on
those labels plus a replay of simulated rows, then judged on a held-out set made with
other seeds and conditions: AUCPR and the recall of the held-out kind at the model's
threshold. Several seeds; load average and CPU time printed.

    nice -n 10 flock /tmp/team/bench.lock .venv/bin/python benchmarks/bench_active.py \
        --train /tmp/rb_work/rb_train.h5 --heldout /tmp/rb_work/rb_heldout.h5
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from skyscene.classify import RealBogusClassifier, classification_report
from skyscene.classify.active import score_with_spread, select_candidates
from skyscene.classify.finetune import fine_tune
from skyscene.classify.io import read_training_set


def figures(clf, x, y, kind, held_kind):
    rb = clf.score(x).rb
    rep = classification_report(rb, y, threshold=clf.threshold_)
    sel = kind == held_kind
    return rep.aucpr, float(np.mean(rb[sel] >= clf.threshold_)), rep.recall


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--train", required=True)
    p.add_argument("--heldout", required=True)
    p.add_argument("--hold-out-kind", default="variable")
    p.add_argument("--n-base", type=int, default=3000)
    p.add_argument("--n-pool", type=int, default=3000)
    p.add_argument("--n-replay", type=int, default=600)
    p.add_argument("--k", type=int, default=200)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--arch", default="compact")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    t0, c0 = time.perf_counter(), time.process_time()
    data = read_training_set(a.train)
    test = read_training_set(a.heldout)
    x_all, x_test = data.triplets, test.triplets
    print(f"load {os.getloadavg()[0]:.2f}; data {len(data)} rows, held-out {len(test)}")
    for seed in a.seeds:
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(data))
        held = data.kind[order] == a.hold_out_kind
        base_rows = order[~held][: a.n_base]
        rest = np.setdiff1d(order, base_rows)
        pool = rng.permutation(rest)[: a.n_pool]
        base = RealBogusClassifier(
            arch=a.arch, epochs=a.epochs, patience=3, seed=seed, n_threads=a.threads
        ).fit(x_all[base_rows], data.label[base_rows], groups=data.group[base_rows])
        line = [f"seed {seed}: pool {pool.size} ({int(np.sum(data.kind[pool] == a.hold_out_kind))} "
                f"{a.hold_out_kind})"]  # fmt: skip
        ap, rk, rc = figures(base, x_test, test.label, test.kind, a.hold_out_kind)
        line.append(f"base AUCPR {ap:.4f} recall({a.hold_out_kind}) {rk:.3f} recall {rc:.3f}")
        scores = score_with_spread(base, x_all[pool])
        replay = rng.choice(base_rows, a.n_replay, replace=False)
        val = np.setdiff1d(base_rows, replay)[:400]
        for method in ("priority", "random"):
            chosen = pool[
                select_candidates(
                    scores.rb, scores.spread, base.threshold_, a.k, method=method, rng=seed
                ).index
            ]
            rows = np.concatenate([chosen, replay])
            clf = fine_tune(
                base,
                x_all[rows],
                data.label[rows],
                validation=(x_all[val], data.label[val]),
                epochs=a.epochs,
                seed=seed,
            )
            ap, rk, rc = figures(clf, x_test, test.label, test.kind, a.hold_out_kind)
            n_k = int(np.sum(data.kind[chosen] == a.hold_out_kind))
            line.append(
                f"{method}: {n_k} {a.hold_out_kind} chosen, AUCPR {ap:.4f} "
                f"recall({a.hold_out_kind}) {rk:.3f} recall {rc:.3f}"
            )
        print("; ".join(line), f"[load {os.getloadavg()[0]:.2f}]", flush=True)
    print(
        f"wall {time.perf_counter() - t0:.0f} s, CPU {time.process_time() - c0:.0f} s, "
        f"load {os.getloadavg()[0]:.2f}"
    )


if __name__ == "__main__":
    main()
