"""ZOGY benchmark: null test, injected transients, sub-image mode, timing, peers.

Run: ``python benchmarks/bench_zogy.py [--sizes 2048 4096] [--quick]``. Peers
(properimage, sfft) are used only when importable (install them in a separate venv);
a missing peer is skipped with the reason printed.
"""

from __future__ import annotations

import argparse
import resource
import time
import tracemalloc

import numpy as np

from skyscene.datasets.pairs import simulate_pair
from skyscene.diffim import Zogy, ZogyConfig


def _peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def _null(size: int, seed: int) -> None:
    pair = simulate_pair(shape=(size, size), rng=seed, n_transients=0)
    t0 = time.perf_counter()
    r = Zogy()(pair.science, pair.reference)
    dt = time.perf_counter() - t0
    s = r.score_corr[r.good]
    n5 = int(np.sum(np.abs(s) > 5))
    scale = (2048 * 2048) / (size * size)
    print(
        f"null {size}² seed {seed}: S_corr mean {s.mean():+.4f} std {s.std():.4f}; "
        f"|S_corr|>5 pixels: {n5} ({n5 * scale:.0f} per 2048²); good fraction {r.good.mean():.3f}; "
        f"flux ratio {r.flux_ratio:.4f} (true {pair.flux_ratio}); {dt:.2f} s"
    )


def _transients(size: int, seed: int) -> None:
    pair = simulate_pair(shape=(size, size), rng=seed, n_transients=200, transient_snr=(3.0, 15.0))
    r = Zogy()(pair.science, pair.reference)
    truth = pair.transients
    m = r.measure(truth["x"], truth["y"])
    ok = m["mask"] == 0
    snr = np.asarray(truth["snr"])[ok]
    sc = np.asarray(m["score_corr"])[ok]
    pull = (np.asarray(m["flux"])[ok] - np.asarray(truth["flux_ref"])[ok]) / np.asarray(
        m["flux_err"]
    )[ok]
    near10 = np.abs(snr - 10) < 1.5
    print(
        f"transients {size}² seed {seed}: {ok.sum()} unflagged; S_corr/expected at S/N≈10: "
        f"median {np.median(sc[near10] / snr[near10]):.3f} (n={near10.sum()}); "
        f"flux pull mean {pull.mean():+.3f} std {pull.std():.3f}"
    )
    for lo, hi in ((3, 5), (5, 7), (7, 9), (9, 11), (11, 13), (13, 15)):
        sel = (snr >= lo) & (snr < hi)
        if sel.any():
            print(f"  completeness S/N {lo}-{hi}: {np.mean(sc[sel] >= 5):.2f} (n={sel.sum()})")


def _subimages(size: int, seed: int) -> None:
    pair = simulate_pair(shape=(size, size), rng=seed, n_transients=0, psf_gradient=0.35)
    for label, cfg in (
        ("single PSF", ZogyConfig()),
        ("sub-images 512", ZogyConfig(subimage_size=512, subimage_border=64)),
    ):
        r = Zogy(cfg)(pair.science, pair.reference)
        s = r.score_corr[r.good]
        print(
            f"varying PSF {size}² {label}: S_corr std {s.std():.3f}, |S_corr|>5 pixels {int(np.sum(np.abs(s) > 5))}"
        )


def _timing(size: int, seed: int) -> float:
    pair = simulate_pair(shape=(size, size), rng=seed, n_transients=50, transient_snr=10.0)
    tracemalloc.start()
    t0 = time.perf_counter()
    r = Zogy()(pair.science, pair.reference)
    dt = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    m = r.measure(pair.transients["x"], pair.transients["y"])
    ok = m["mask"] == 0
    print(
        f"skyscene ZOGY {size}²: {dt:.2f} s, peak traced memory {peak / 1e9:.2f} GB "
        f"(process max RSS {_peak_rss_gb():.2f} GB), median recovered S/N of S/N-10 transients "
        f"{np.median(m['score_corr'][ok]):.2f}"
    )
    _peers(pair, size)
    return dt


def _peers(pair, size: int) -> None:
    try:
        import properimage  # noqa: F401
    except ImportError as exc:
        print(f"  properimage: skipped ({exc})")
    else:  # pragma: no cover - needs the peer
        from properimage import operations

        t0 = time.perf_counter()
        _d, _p, _s, s_corr = operations.subtract(
            ref=pair.reference.data,
            new=pair.science.data,
            smooth_psf=False,
            fitted_psf=True,
            iterative=False,
        )
        dt = time.perf_counter() - t0
        sc = np.asarray(s_corr.real if hasattr(s_corr, "real") else s_corr)
        ix = np.round(pair.transients["x"]).astype(int)
        iy = np.round(pair.transients["y"]).astype(int)
        print(
            f"  properimage {size}²: {dt:.2f} s, median S_corr at transients {np.median(sc[iy, ix]):.2f}"
        )
    try:
        import sfft  # noqa: F401
    except ImportError as exc:
        print(f"  sfft: skipped ({exc})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[2048, 4096])
    parser.add_argument("--quick", action="store_true", help="timing only")
    args = parser.parse_args()
    if not args.quick:
        for seed in (1, 2):
            _null(2048, seed)
        _transients(2048, 3)
        _subimages(2048, 4)
    for size in args.sizes:
        _timing(size, 5)


if __name__ == "__main__":
    main()
