"""Real/bogus speed: scoring throughput, training time per 1k triplets, peak memory.

    python benchmarks/bench_rb.py [--n 4096] [--threads 2] [--arch compact|vgg6] [--model M.pt] [--repeat 3]

Goal (issue 13): >= 3000 triplets/s on 2 cores for the default model (``compact``).
Prints the load average and the CPU time (per-CPU-second throughput): the machine may be shared.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=4096, help="triplets scored")
    ap.add_argument("--n-train", type=int, default=512, help="triplets trained on (1 epoch)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--arch", default="compact", help="the shipped default is compact")
    ap.add_argument("--model", help="score with this checkpoint instead of a fresh fit")
    ap.add_argument("--batch-size", type=int, default=1024)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    import torch

    from skyscene.classify import RealBogusClassifier
    from skyscene.classify.io import load_model, read_alert_triplets, save_model

    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    n_train = args.n_train
    x = rng.normal(size=(n_train, 3, 63, 63)).astype(np.float32)
    y = (np.arange(n_train) % 2).astype(np.int64)
    x[y == 1, 2, 29:34, 29:34] += 5.0
    groups = np.arange(n_train) // 16
    start = time.perf_counter()
    clf = RealBogusClassifier(arch=args.arch, epochs=1, seed=0, n_threads=args.threads)
    clf.fit(x, y, groups=groups)
    train_s = time.perf_counter() - start
    if args.model:
        clf = load_model(args.model)
    print(f"training: {train_s / n_train * 1000:.1f} s per 1k triplets per epoch "
          f"({args.arch}, {args.threads} threads; incl. validation pass)")  # fmt: skip

    triplets = rng.normal(size=(args.n, 3, 63, 63)).astype(np.float32)
    triplets[::97, 0, :5, :] = np.nan  # some NaN pixels (edges), counted
    clf.score(triplets[:256])  # warm-up
    rates = []
    for _ in range(args.repeat):
        load = os.getloadavg()[0]
        cpu0, start = time.process_time(), time.perf_counter()
        clf.score(triplets, batch_size=args.batch_size)
        s = time.perf_counter() - start
        cpu = time.process_time() - cpu0
        rates.append(args.n / s)
        print(f"scoring from arrays (normalisation included): {args.n / s:.0f} triplets/s "
              f"wall, {args.n / cpu:.0f} per CPU-second ({args.arch}, {args.threads} threads, "
              f"batch {args.batch_size}; load average {load:.2f} before)")  # fmt: skip
    rate = max(rates)
    print(f"best of {args.repeat}: {rate:.0f} triplets/s (goal 3000; ratio {rate / 3000:.2f})")

    with tempfile.TemporaryDirectory() as tmp:
        path = save_model(Path(tmp) / "m.pt", clf)
        clf = load_model(path)
    ztf = Path(__file__).resolve().parents[2] / "shared" / "data" / "ztf_alerts"
    if ztf.is_dir():
        start = time.perf_counter()
        reps = 20
        for _ in range(reps):
            t = read_alert_triplets(ztf)
            clf.score(t.triplets)
        s = time.perf_counter() - start
        print(f"scoring from alert files (read + decode + score): {reps * len(t) / s:.0f} "
              f"alerts/s ({len(t)} ZTF packets x {reps})")  # fmt: skip
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory (RSS): {peak:.0f} MiB")


if __name__ == "__main__":
    main()
