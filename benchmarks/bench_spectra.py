# ruff: noqa: E501  (long report lines of a hand-run benchmark)
"""Benchmark of skyscene.spectra: model speed, q_m accuracy of both approaches, recovery study.

Run by hand (several minutes on one core):

    .venv/bin/python benchmarks/bench_spectra.py [--n-spectra 20] [--n-single 5] [--n-sample 3]

Prints
1. one model evaluation (16384 pixels, one order) and one −ln posterior evaluation, ms;
2. q_m accuracy (max / RMS relative error against the exact toy value) and speed of the
   direct approach (6-D LinearNDInterpolator over all pairs of a 36-node grid) and of the
   default approach (log mean flux on the 3-D grid, 1/Teff), their ratio, and the default
   approach on the full 715-node grid; exactness at grid nodes;
3. MAP fit time and the recovery of c and T2 on seeded two-component spectra at S/N 100
   (success: |Δc| < 0.03 and |ΔT2| < 100 K), with pulls (fit − truth)/σ;
4. single-component spectra fitted with both models: c, and the preferred model (BIC);
5. emcee posterior pulls for a few spectra.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np

from skyscene.datasets.spectra import ToyStellarModel, simulate_spectral_grid, simulate_spectrum
from skyscene.spectra import MixtureModel, SingleComponentModel, compare_models
from skyscene.spectra.fluxratio import MeanFluxRatio, PairwiseFluxRatio, order_mean_flux

R = 30000.0
DATA_RANGE = (5020.0, 5980.0)
ORDERS = [(5000.0, 5250.0), (5250.0, 5500.0), (5500.0, 5750.0), (5750.0, 6000.0)]


def draw_truth(i):
    r = np.random.default_rng(1000 + i)
    t1 = (r.uniform(5000, 5800), r.uniform(4.2, 4.8), r.uniform(-0.3, 0.3))
    t2 = (r.uniform(3600, 4300), t1[1], t1[2])
    return r, t1, t2, r.uniform(0.25, 0.6), r.uniform(2, 20), r.uniform(-50, 50)


def bench_evaluation(grid):
    s = simulate_spectrum(
        theta1=(5400.0, 4.5, 0.0),
        theta2=(3900.0, 4.5, 0.0),
        c=0.3,
        vsini=8.0,
        rv=10.0,
        resolution=R,
        wavelength_range=DATA_RANGE,
        pixels_per_order=16384,
        rng=1,
    )
    model = MixtureModel(grid, resolution=R)
    model._setup(s.wavelength, s.flux, s.sigma, None)
    p = np.array([5400.0, 4.5, 0.0, 3900.0, 0.3, 8.0, 10.0])
    for fn, label in (
        (model.evaluate, "model evaluation"),
        (model._nll, "-ln posterior (with continuum)"),
    ):
        fn(p)
        n = 300
        t0 = time.perf_counter()
        for k in range(n):
            p[0] = 5400.0 + k % 7  # defeat any caching
            fn(p)
        dt = (time.perf_counter() - t0) / n
        print(f"  {label:34s} {1e3 * dt:6.3f} ms  (16384 px, 1 order; requirement <= 2 ms)")


def q_errors(ratio, toy, grid, pairs_of_points):
    masks = [(grid.wavelength >= lo) & (grid.wavelength <= hi) for lo, hi in ORDERS]
    errs, t_eval = [], 0.0
    for t1, t2 in pairs_of_points:
        t0 = time.perf_counter()
        q = ratio(t1, t2)
        t_eval += time.perf_counter() - t0
        exact = np.array(
            [
                toy.mean_flux(grid.wavelength[k], t2) / toy.mean_flux(grid.wavelength[k], t1)
                for k in masks
            ]
        )
        errs.append(q / exact - 1)
    errs = np.array(errs)
    return np.abs(errs).max(), np.sqrt(np.mean(errs**2)), t_eval / len(pairs_of_points)


def node_exactness(ratio, grid, n_pairs, rng):
    s = order_mean_flux(grid, ORDERS)
    worst = 0.0
    for _ in range(n_pairs):
        i, j = rng.integers(grid.n_grid, size=2)
        worst = max(
            worst,
            float(
                np.max(np.abs(ratio(grid.parameters[i], grid.parameters[j]) / (s[j] / s[i]) - 1))
            ),
        )
    return worst


def bench_flux_ratio(toy, grid_full):
    sub = simulate_spectral_grid(
        teff=(4000.0, 4250.0, 4500.0, 4750.0),
        logg=(4.25, 4.5, 4.75),
        feh=(-0.1, 0.0, 0.1),
        model=toy,
    )
    rng = np.random.default_rng(7)
    pts = [
        (
            (rng.uniform(4000, 4750), rng.uniform(4.25, 4.75), rng.uniform(-0.1, 0.1)),
            (rng.uniform(4000, 4750), rng.uniform(4.25, 4.75), rng.uniform(-0.1, 0.1)),
        )
        for _ in range(200)
    ]
    print(
        f"  36-node grid (Teff 4000-4750 K x logg 4.25-4.75 x [Fe/H] -0.1-0.1), 4 orders, {len(pts)} random pairs"
    )
    results = {}
    for name, cls in (
        ("direct: all pairs, 6-D LinearND", PairwiseFluxRatio),
        ("default: ln s_m on 3-D grid", MeanFluxRatio),
    ):
        t0 = time.perf_counter()
        ratio = cls(sub, ORDERS)
        t_build = time.perf_counter() - t0
        mx, rms, t_eval = q_errors(ratio, toy, sub, pts)
        exact_nodes = node_exactness(ratio, sub, 300, rng)
        results[name] = (mx, rms, t_eval)
        print(
            f"  {name:34s} max {100 * mx:6.3f} %  RMS {100 * rms:6.3f} %  build {t_build:7.3f} s  "
            f"eval {1e6 * t_eval:9.1f} µs  node error {exact_nodes:.1e}"
        )
    (d_max, d_rms, d_t), (g_max, g_rms, g_t) = results.values()
    print(
        f"  ratio direct/default: max error x{d_max / g_max:.1f}, RMS x{d_rms / g_rms:.1f}, time x{d_t / g_t:.0f}"
    )
    ratio = MeanFluxRatio(grid_full, ORDERS)
    pts = [
        (
            (rng.uniform(3000, 6000), rng.uniform(4.0, 5.0), rng.uniform(-0.5, 0.5)),
            (rng.uniform(3000, 6000), rng.uniform(4.0, 5.0), rng.uniform(-0.5, 0.5)),
        )
        for _ in range(300)
    ]
    mx, rms, t_eval = q_errors(ratio, toy, grid_full, pts)
    print(
        f"  default on full {grid_full.n_grid}-node grid (3000-6000 K): max {100 * mx:.3f} %  RMS {100 * rms:.3f} %  "
        f"eval {1e6 * t_eval:.1f} µs  node error {node_exactness(ratio, grid_full, 2000, rng):.1e}"
    )
    for kw, label in (
        ({"inverse_temperature": False}, "ln s, linear in Teff"),
        ({"log": False, "inverse_temperature": False}, "s, linear in Teff"),
    ):
        mx, rms, _ = q_errors(MeanFluxRatio(grid_full, ORDERS, **kw), toy, grid_full, pts)
        print(f"    variant {label:22s} max {100 * mx:.3f} %  RMS {100 * rms:.3f} %")


def bench_recovery(grid, n_spectra, n_sample):
    rows, times = [], []
    for i in range(n_spectra):
        r, t1, t2, c, vs, rv = draw_truth(i)
        s = simulate_spectrum(
            theta1=t1,
            theta2=t2,
            c=c,
            vsini=vs,
            rv=rv,
            resolution=R,
            wavelength_range=DATA_RANGE,
            pixels_per_order=16384,
            rng=r,
        )
        t0 = time.process_time()
        m = MixtureModel(grid, resolution=R).fit(s.wavelength, s.flux, s.sigma, rng=i)
        times.append(time.process_time() - t0)
        ok = abs(m.c_ - c) < 0.03 and abs(m.theta2_[0] - t2[0]) < 100
        row = dict(
            c=c,
            c_fit=m.c_,
            c_err=m.c_err_,
            t2=t2[0],
            t2_fit=m.theta2_[0],
            t2_err=m.theta2_err_[0],
            t1=t1[0],
            t1_fit=m.theta1_[0],
            t1_err=m.theta1_err_[0],
            ok=ok,
        )
        if i < n_sample:
            m.sample(n_steps=400, burn=200, rng=i)
            row.update(c_mc=m.c_, c_mc_err=m.c_err_, t2_mc=m.theta2_[0], t2_mc_err=m.theta2_err_[0])
        rows.append(row)
        print(
            f"  #{i:2d} c {row['c_fit']:.3f}±{row['c_err']:.3f} (true {c:.3f})  T2 {row['t2_fit']:5.0f}±{row['t2_err']:3.0f} "
            f"(true {t2[0]:5.0f})  T1 {row['t1_fit']:5.0f}±{row['t1_err']:3.0f} (true {t1[0]:5.0f})  "
            f"CPU {times[-1]:5.1f} s  {'ok' if ok else 'MISS'}",
            flush=True,
        )
    n_ok = sum(r["ok"] for r in rows)
    print(f"  success (|Δc| < 0.03 and |ΔT2| < 100 K): {n_ok}/{n_spectra} (requirement >= 18/20)")
    print(
        f"  MAP fit CPU time: median {np.median(times):.1f} s, max {np.max(times):.1f} s (requirement <= 30 s)"
    )
    for key, label in (("c", "c"), ("t2", "T2"), ("t1", "T1")):
        pull = np.array([(r[key + "_fit"] - r[key]) / r[key + "_err"] for r in rows])
        err = np.array([r[key + "_fit"] - r[key] for r in rows])
        print(
            f"  MAP pulls {label:2s}: mean {pull.mean():+.2f}  std {pull.std():.2f}  median |pull| {np.median(np.abs(pull)):.2f}  "
            f"|error| median {np.median(np.abs(err)):.3g} max {np.max(np.abs(err)):.3g}"
        )
    mc = [r for r in rows if "c_mc" in r]
    if mc:
        pc = [(r["c_mc"] - r["c"]) / r["c_mc_err"] for r in mc]
        pt = [(r["t2_mc"] - r["t2"]) / r["t2_mc_err"] for r in mc]
        print(
            f"  emcee posterior pulls ({len(mc)} spectra): c {np.round(pc, 2).tolist()}  T2 {np.round(pt, 2).tolist()}"
        )


def bench_single(grid, n_single):
    prefer = 0
    for i in range(n_single):
        r = np.random.default_rng(2000 + i)
        t1 = (r.uniform(5000, 5800), r.uniform(4.2, 4.8), r.uniform(-0.3, 0.3))
        s = simulate_spectrum(
            theta1=t1,
            vsini=r.uniform(2, 20),
            rv=r.uniform(-50, 50),
            resolution=R,
            wavelength_range=DATA_RANGE,
            pixels_per_order=16384,
            rng=r,
        )
        one = SingleComponentModel(grid, resolution=R).fit(s.wavelength, s.flux, s.sigma)
        two = MixtureModel(grid, resolution=R).fit(s.wavelength, s.flux, s.sigma, rng=i)
        cmp = compare_models(one, two)
        prefer += cmp.preferred == "single"
        print(
            f"  single #{i}: mixture c = {two.c_:.4f} ± {two.c_err_:.4f}  Δχ² = {cmp.delta_chi2:6.1f}  "
            f"ΔBIC = {cmp.delta_bic:7.1f}  preferred: {cmp.preferred}",
            flush=True,
        )
    print(f"  single-component spectra where the single model is preferred: {prefer}/{n_single}")


def main():
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n-spectra", type=int, default=20)
    ap.add_argument("--n-single", type=int, default=5)
    ap.add_argument("--n-sample", type=int, default=3)
    ap.add_argument("--skip-study", action="store_true")
    ap.add_argument("--skip-qm", action="store_true")
    ap.add_argument(
        "--teff-step", type=float, default=250.0, help="Teff node spacing of the grid [K]"
    )
    args = ap.parse_args()
    toy = ToyStellarModel()
    t0 = time.perf_counter()
    grid = simulate_spectral_grid(
        model=toy, teff=tuple(np.arange(3000.0, 6000.0 + 1, args.teff_step))
    )
    print(f"toy grid: {grid!r} built in {time.perf_counter() - t0:.1f} s")
    print("1. model evaluation")
    bench_evaluation(grid)
    if not args.skip_qm:
        print("2. flux ratio q_m")
        bench_flux_ratio(toy, grid)
    if not args.skip_study:
        print(
            f"3. recovery of {args.n_spectra} two-component spectra (S/N 100, R = {R:.0f}, 16384 px)"
        )
        bench_recovery(grid, args.n_spectra, args.n_sample)
        print(f"4. {args.n_single} single-component spectra")
        bench_single(grid, args.n_single)


if __name__ == "__main__":
    main()
