"""Benchmark of scene-modelling photometry (skyscene.scene): accuracy, binary, speed, batch.

Run by hand::

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/bench_smp.py [--n 1000] [--n-binary 100]
        [--n-batch 1000] [--workers 2] [--repeats 20] [--first-seed 10000] [--ideal]
        [--skip speed accuracy binary batch] [--baseline DIR]

``--baseline DIR``: a checkout of an earlier revision (``git worktree add DIR REV``) whose
``src`` times the same default fits in a subprocess before and after ours, so that the
speed ratio is measured side by side in one run.

Timings are printed as CPU time (``time.process_time``) and wall time: on a shared,
loaded machine the wall time is inflated by other processes, the CPU time much less.

Prints
- flux pulls (f − f_true)/σ over ``--n`` seeded detections (S/N 5–200 log-uniform, blend
  classes isolated/moderate/heavy), overall and per class, and the bias in mmag at S/N > 50;
- binary figures (S/N 30 per component, separations 0.6–1.5 FWHM): fraction with Δχ² > 25,
  separation error and pulls, flux pulls; for single sources the fraction where the BIC prefers a binary;
- speed: median time per detection (11 exposures of 30 × 30, 20 × 20 grid, PSF rendering
  included, one core) and the ratio to the ~60 s of the published implementation
  (Bernardinelli et al. 2023); binary position fit time; memory per detection;
- 1000 detections through ``smp-batch`` (FITS in, Parquet out) on ``--workers`` processes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

DOC_MS_PER_DETECTION = 92.8  # docs/smp.md, default fit, before issue 15
REFERENCE_SECONDS = 60.0  # published SMP implementation, 11 exposures, 20 × 20 grid


def _accuracy_task(args) -> dict:
    import warnings

    from skyscene.datasets.tno import simulate_tno_stamps
    from skyscene.scene import fit_scene

    seed, ideal = args
    sim = simulate_tno_stamps(rng=seed, n_exposures=11)  # in memory, S/N and blend drawn
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a RuntimeWarning would fail the detection
        r = fit_scene(sim.exposures, sim.target)  # default: with the shot-noise pass
    out = {
        "seed": seed,
        "snr": sim.truth["snr"],
        "blend": sim.truth["blend"],
        "flux_true": sim.truth["flux"],
        "flux": float(r.flux[0]),
        "flux_err": float(r.flux_err[0]),
        "flags": ";".join(r.flags),
    }
    if ideal:
        out.update(_ideal_fit(seed, sim))
    return out


def _ideal_fit(seed: int, sim) -> dict:
    """The best linear unbiased estimator of the same scene: weights from the *true* pixel
    variance (WGT variance + the noiseless sources' shot noise), one pass. Its pulls are
    N(sys, 1) exactly (Gaussian noise, exact covariance), ``sys`` being the systematic
    error of the same estimator on the noiseless stamps: the yardstick for the default fit.
    """
    from skyscene.datasets.tno import simulate_tno_stamps
    from skyscene.scene import fit_scene

    clean = simulate_tno_stamps(rng=seed, n_exposures=11, noise=False)
    noisy, noiseless = [], []
    for exp, exp0, truth in zip(
        sim.exposures, clean.exposures, sim.truth["exposures"], strict=True
    ):
        source = np.clip(exp0.data - truth["sky"], 0.0, None)  # counts
        var = np.where(np.isfinite(exp.variance), exp.variance + source / exp.gain, np.inf)
        noisy.append(exp.replace(variance=var))
        noiseless.append(exp0.replace(variance=var, mask=exp.mask))
    r = fit_scene(noisy, sim.target, shot_noise=False)
    r0 = fit_scene(noiseless, sim.target, shot_noise=False)
    return {
        "ideal_flux": float(r.flux[0]),
        "ideal_err": float(r.flux_err[0]),
        "ideal_sys_flux": float(r0.flux[0]),
    }


def _binary_task(args) -> dict:
    import warnings

    from skyscene.datasets.tno import simulate_tno_stamps
    from skyscene.scene import fit_binary

    seed, sep_fwhm, snr = args
    binary = None if sep_fwhm is None else (sep_fwhm, 1.0)
    sim = simulate_tno_stamps(
        rng=seed,
        n_exposures=11,
        snr=snr,
        blend="isolated",
        binary=binary,
        separation_unit="fwhm",  # separation in units of the detection exposure's FWHM
    )
    c0, t0 = time.process_time(), time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        b = fit_binary(sim.exposures, sim.target)
    out = {
        "seed": seed,
        "sep_fwhm": sep_fwhm,
        "delta_chi2": b.delta_chi2,
        "preferred": b.preferred,
        "seconds": time.perf_counter() - t0,
        "cpu_seconds": time.process_time() - c0,
    }
    if sep_fwhm is not None:
        p1, p2 = (np.array(p) for p in sim.truth["binary"]["pixels"][0])
        true_sep = float(np.hypot(*(p1 - p2)))
        f1, f2 = sim.truth["flux"]
        nominal = np.array(sim.truth["exposures"][0]["target_pixel"])
        if np.hypot(*(b.shift1[0] - (p2 - nominal))) < np.hypot(*(b.shift1[0] - (p1 - nominal))):
            f1, f2 = f2, f1  # match the components by position
        out.update(
            sep_err=b.separation_pixels - true_sep,
            sep_pull=(b.separation_pixels - true_sep) / b.separation_err_pixels,
            sep_sigma=b.separation_err_pixels,
            pull1=(b.flux1[0] - f1) / b.flux1_err[0],
            pull2=(b.flux2[0] - f2) / b.flux2_err[0],
        )
    return out


def _summary(pulls: np.ndarray) -> str:
    return f"mean {pulls.mean():+.3f}  std {pulls.std(ddof=1):.3f}  (N = {len(pulls)})"


def _pool(func, items, workers: int, desc: str) -> list:
    from skyscene.pipelines._scheduler import run_tasks

    scheduler = "synchronous" if workers <= 1 else "processes"
    return run_tasks(
        func, list(items), scheduler=scheduler, n_workers=workers, progress=True, desc=desc
    )


def accuracy(
    n: int, workers: int, first_seed: int = 10_000, ideal: bool = False, save: str | None = None
) -> None:
    t0 = time.perf_counter()
    seeds = [(s, ideal) for s in range(first_seed, first_seed + n)]
    rows = _pool(_accuracy_task, seeds, workers, "accuracy")
    if save:
        import json

        Path(save).write_text(json.dumps(rows))
    pulls = np.array([(r["flux"] - r["flux_true"]) / r["flux_err"] for r in rows])
    blends = np.array([r["blend"] for r in rows])
    snr = np.array([r["snr"] for r in rows])
    print(
        f"\n== Accuracy: {n} simulated detections (in memory), S/N 5–200 log-uniform, "
        f"11 exposures, default fit (shot-noise pass) ({time.perf_counter() - t0:.0f} s wall)"
    )
    print("  flux pulls (f − f_true)/σ   [acceptance: |mean| < 0.05, std in [0.95, 1.05]]")
    print(f"  all        {_summary(pulls)}")
    for blend in ("isolated", "moderate", "heavy"):
        sel = blends == blend
        if sel.sum() > 1:
            print(f"  {blend:10s} {_summary(pulls[sel])}")
    for lo, hi in ((5, 15), (15, 50), (50, 201)):
        sel = (snr >= lo) & (snr < hi)
        if sel.sum() > 1:
            print(f"  S/N {lo:3d}–{min(hi, 200):3d} {_summary(pulls[sel])}")
    robust = 1.4826 * np.median(np.abs(pulls - np.median(pulls)))
    print(f"  robust std (1.4826 MAD) {robust:.3f}; |pull| > 3: {np.sum(np.abs(pulls) > 3)}")
    dmag = -2.5 * np.log10(np.array([r["flux"] / r["flux_true"] for r in rows])) * 1000
    hi = snr > 50
    for label, sel in (
        ("all", hi),
        *((b, hi & (blends == b)) for b in ("isolated", "moderate", "heavy")),
    ):
        if sel.sum() > 1:
            print(
                f"  bias at S/N > 50 ({label:8s}): {dmag[sel].mean():+.2f} ± "
                f"{dmag[sel].std(ddof=1) / np.sqrt(sel.sum()):.2f} mmag (mean; median "
                f"{np.median(dmag[sel]):+.2f}; N = {sel.sum()})"
            )
    flagged = sum(1 for r in rows if r["flags"])
    print(f"  flagged results: {flagged}")
    if ideal:
        f0 = np.array([r["flux_true"] for r in rows])
        ideal_err = np.array([r["ideal_err"] for r in rows])
        ideal_pulls = (np.array([r["ideal_flux"] for r in rows]) - f0) / ideal_err
        sys_ = (np.array([r["ideal_sys_flux"] for r in rows]) - f0) / ideal_err
        diff = (np.array([r["flux"] for r in rows]) - np.array([r["ideal_flux"] for r in rows])) / (
            np.array([r["flux_err"] for r in rows])
        )
        print(
            "  the ideal estimator on the same detections (true-variance weights, exactly "
            "N(sys, 1)):"
        )
        print(
            f"  all        {_summary(ideal_pulls)}; systematic sys: mean {sys_.mean():+.3f} rms {np.sqrt(np.mean(sys_**2)):.3f}"
        )
        for blend in ("isolated", "moderate", "heavy"):
            sel = blends == blend
            if sel.sum() > 1:
                print(f"  {blend:10s} {_summary(ideal_pulls[sel])}")
        print(
            f"  default − ideal flux, in σ: mean {diff.mean():+.4f}, std {diff.std(ddof=1):.4f}; "
            f"σ default/ideal: mean {np.mean(np.array([r['flux_err'] for r in rows]) / ideal_err):.4f}"
        )


def binary(n: int, workers: int, snr: float = 30.0) -> None:
    seps = np.linspace(0.6, 1.5, n)
    items = [(20_000 + i, float(s), snr) for i, s in enumerate(seps)] + [
        (30_000 + i, None, snr) for i in range(n)
    ]
    rows = _pool(_binary_task, items, workers, "binary")
    bins = [r for r in rows if r["sep_fwhm"] is not None]
    singles = [r for r in rows if r["sep_fwhm"] is None]
    det = np.mean([r["delta_chi2"] > 25 for r in bins])
    sep_err = np.array([r["sep_err"] for r in bins])
    sep_pull = np.array([r["sep_pull"] for r in bins])
    pulls = np.array([r["pull1"] for r in bins] + [r["pull2"] for r in bins])
    print(
        f"\n== Binary: S/N {snr:g} per component, equal fluxes, separations 0.6–1.5 FWHM "
        f"(N = {len(bins)}), 11 exposures"
    )
    print(f"  Δχ² > 25: {100 * det:.1f} %   [acceptance ≥ 95 %]")
    from scipy.special import erf

    sigmas = np.array([r["sep_sigma"] for r in bins])
    # An efficient unbiased estimator (errors = the Cramér–Rao bound, which the quoted
    # σ_sep is: the inverse Fisher matrix) would have |Δsep| < 0.2 px in this fraction.
    efficient = float(np.mean(erf(0.2 / (np.sqrt(2.0) * sigmas))))
    print(
        f"  separation error: bias {sep_err.mean():+.3f} ± {sep_err.std(ddof=1) / np.sqrt(len(sep_err)):.3f} px, "
        f"rms {np.sqrt(np.mean(sep_err**2)):.3f} px, median |Δsep| "
        f"{np.median(np.abs(sep_err)):.3f} px, |Δsep| < 0.2 px in "
        f"{100 * np.mean(np.abs(sep_err) < 0.2):.1f} % (an efficient estimator with these "
        f"σ_sep: {100 * efficient:.1f} %; median σ_sep {np.median(sigmas):.3f} px); "
        f"separation pulls {_summary(sep_pull)}"
    )
    for lo, hi in ((0.6, 0.9), (0.9, 1.2), (1.2, 1.51)):
        sel = np.array([lo <= r["sep_fwhm"] < hi for r in bins])
        if sel.sum() > 1:
            print(
                f"    {lo:.1f}–{min(hi, 1.5):.1f} FWHM: |Δsep| < 0.2 px in "
                f"{100 * np.mean(np.abs(sep_err[sel]) < 0.2):.0f} % (efficient: "
                f"{100 * np.mean(erf(0.2 / (np.sqrt(2.0) * sigmas[sel]))):.0f} %), median σ_sep "
                f"{np.median(sigmas[sel]):.3f} px, bias {sep_err[sel].mean():+.3f} px"
            )
    print(f"  component flux pulls: {_summary(pulls)}")
    print(
        f"  single sources (N = {len(singles)}): binary preferred by BIC in "
        f"{100 * np.mean([r['preferred'] for r in singles]):.1f} %   [acceptance ≤ 5 %]"
    )
    cpu = [r["cpu_seconds"] for r in rows]
    wall = [r["seconds"] for r in rows]
    print(
        f"  fit_binary time (single + binary, shot-noise pass): median CPU {np.median(cpu):.2f} s, "
        f"wall {np.median(wall):.2f} s (max CPU {np.max(cpu):.2f} s)   [acceptance ≤ 2 s]"
    )


def _timed(func, repeats: int) -> tuple[list[float], list[float]]:
    cpu, wall = [], []
    for i in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        func(i)
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - t0)
    return cpu, wall


def _default_fit_times(repeats: int) -> dict:
    """Median CPU and wall ms of the default fit on the speed section's five detections."""
    import warnings

    from skyscene.datasets.tno import simulate_tno_stamps
    from skyscene.scene import fit_scene

    sims = [simulate_tno_stamps(rng=40_000 + i, n_exposures=11, snr=30.0) for i in range(5)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit_scene(sims[0].exposures, sims[0].target)
        cpu, wall = _timed(lambda i: fit_scene(sims[i % 5].exposures, sims[i % 5].target), repeats)
    return {"cpu_ms": 1e3 * statistics.median(cpu), "wall_ms": 1e3 * statistics.median(wall)}


def _baseline_times(base: Path, repeats: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(base / "src"))
    cmd = [sys.executable, __file__, "--default-fit-times", str(repeats)]
    done = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def speed(repeats: int = 20, baseline: Path | None = None) -> None:
    import warnings

    from skyscene.datasets.tno import simulate_tno_stamps
    from skyscene.scene import fit_binary, fit_scene

    base_runs = [_baseline_times(baseline, repeats)] if baseline is not None else []
    warnings.simplefilter("error")
    sims = [simulate_tno_stamps(rng=40_000 + i, n_exposures=11, snr=30.0) for i in range(5)]
    fit_scene(sims[0].exposures, sims[0].target)  # imports, caches

    def one(i, **kw):
        sim = sims[i % len(sims)]
        return fit_scene(sim.exposures, sim.target, **kw)

    single_cpu, single_wall = _timed(lambda i: one(i, shot_noise=False), repeats)
    cpu, wall = _timed(one, repeats)
    tracemalloc.start()
    one(0)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    bcpu, bwall = _timed(lambda i: fit_binary(sims[i].exposures, sims[i].target), 5)
    psfex_line = _real_psfex_speed(sims, repeats)
    med = statistics.median
    print(
        "\n== Speed (one process, OPENBLAS_NUM_THREADS=1): 11 exposures of 30 × 30, "
        f"20 × 20 grid, PSF rendering included; load average {os.getloadavg()[0]:.1f} "
        f"on {os.cpu_count()} cores"
    )
    for label, c, w in (
        ("fit_scene, default (10 × 10 shot-noise first pass + fit)", cpu, wall),
        ("fit_scene, one pass (shot_noise=False)                 ", single_cpu, single_wall),
    ):
        print(
            f"  {label}: median CPU {1000 * med(c):.1f} ms, wall {1000 * med(w):.1f} ms "
            f"(min wall {1000 * min(w):.1f} ms); ratio to the {REFERENCE_SECONDS:.0f} s "
            f"reference: {REFERENCE_SECONDS / med(c):.0f}× (CPU), {REFERENCE_SECONDS / med(w):.0f}× "
            "(wall)   [acceptance ≤ 100 ms, ≥ 600×]"
        )
    print(
        f"  docs/smp.md before issue 15: {DOC_MS_PER_DETECTION} ms CPU per detection -> ratio "
        f"{DOC_MS_PER_DETECTION / (1000 * med(cpu)):.2f} (goal of issue 15: <= 50 ms)"
    )
    print(
        f"  fit_binary (single with offset + binary, 8 starts, 3 polished, shot-noise pass): "
        f"median CPU {med(bcpu):.2f} s, wall {med(bwall):.2f} s   [acceptance ≤ 2 s]"
    )
    if baseline is not None:
        base_runs.append(_baseline_times(baseline, repeats))
        b_cpu = statistics.mean(b["cpu_ms"] for b in base_runs)
        b_wall = statistics.mean(b["wall_ms"] for b in base_runs)
        print(
            f"  baseline {baseline / 'src'}, default fit, same detections (a run before ours and "
            f"one after): median CPU {b_cpu:.1f} ms ("
            + ", ".join(f"{b['cpu_ms']:.1f}" for b in base_runs)
            + f"), wall {b_wall:.1f} ms -> ratio baseline/this: {b_cpu / (1000 * med(cpu)):.2f} "
            f"(CPU), {b_wall / (1000 * med(wall)):.2f} (wall); load average {os.getloadavg()[0]:.1f}"
        )
    print(f"  peak Python memory per detection (tracemalloc, default fit): {peak / 2**20:.1f} MiB")
    print(psfex_line)
    warnings.resetwarnings()


def _real_psfex_speed(sims, repeats: int) -> str:
    """The default fit with the real DES PSFEx model (non-integer PSF_SAMP) as every PSF."""
    from skyscene.psf import read_psfex
    from skyscene.scene import fit_scene

    path = Path(__file__).resolve().parents[2] / "shared/data/des_psf/DECam_00154912_12_psfcat.psf"
    if not path.is_file():
        return f"  real DES PSFEx model: skipped ({path} not found)"
    model = read_psfex(path)
    stamps = [
        [
            e.replace(psf=model, origin=(900 + 37 * k, 1800 - 23 * k))
            for k, e in enumerate(sim.exposures)
        ]
        for sim in sims
    ]
    fit_scene(stamps[0], sims[0].target)
    cpu, wall = _timed(
        lambda i: fit_scene(stamps[i % len(sims)], sims[i % len(sims)].target), repeats
    )
    return (
        f"  fit_scene with the real DES PSFEx model ({path.name}, PSF_SAMP {model.sampling:g}, "
        f"evaluated at each stamp's origin): median CPU {1000 * statistics.median(cpu):.1f} ms, "
        f"wall {1000 * statistics.median(wall):.1f} ms"
    )


def batch(n: int, workers: int) -> None:
    from skyscene.datasets.tno import simulate_tno_stamps
    from skyscene.pipelines.smp import run_smp_batch

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        lines = ["id,ra,dec,detection"]
        truths = []
        for i in range(n):
            dst = root / "stamps" / f"d{i:04d}"
            if i < 50:
                sim = simulate_tno_stamps(rng=50_000 + i, n_exposures=11, out_dir=dst)
                truths.append((sim.truth["ra"], sim.truth["dec"]))
            else:  # reuse the 50 simulated stamp sets (the fit cost is what we time)
                src = root / "stamps" / f"d{i % 50:04d}"
                dst.mkdir(parents=True)
                for f in src.iterdir():
                    (dst / f.name).symlink_to(f)
            ra, dec = truths[i % 50]
            lines.append(f"d{i:04d},{ra},{dec},exp00.fits")
        # Bad input: the batch goes on and lists the failures.
        bad = root / "stamps" / "bad_file"
        bad.mkdir()
        (bad / "exp00.fits").write_text("not a FITS file")
        lines.append(f"bad_file,{truths[0][0]},{truths[0][1]},exp00.fits")
        lines.append(f"bad_outside,{truths[0][0] + 0.01},{truths[0][1]},exp00.fits")
        (root / "stamps" / "bad_outside").symlink_to(root / "stamps" / "d0000")
        csv = root / "det.csv"
        csv.write_text("\n".join(lines) + "\n")
        print(
            f"\n== Batch: {n} detections (+2 bad) through smp-batch (FITS in, Parquet out; "
            f"{workers} worker processes; stamps prepared in {time.perf_counter() - t0:.0f} s)"
        )
        t0 = time.perf_counter()
        summary = run_smp_batch(
            csv,
            stamps_dir=root / "stamps",
            out=root / "res.parquet",
            scheduler="processes",
            n_workers=workers,
            progress=True,
        )
        wall = time.perf_counter() - t0
        import pyarrow.parquet as pq

        table = pq.read_table(root / "res.parquet").to_pydict()
        cpu = np.nansum(np.array(table["cpu_seconds"], dtype=float))
        print(
            f"  {summary['n_ok']} ok, {summary['n_failed']} failed in {wall:.1f} s wall "
            f"({1000 * wall / n:.0f} ms per detection), task CPU {cpu:.0f} s in all "
            f"({1000 * cpu / n:.0f} ms per detection; {cpu / workers:.0f} s per worker)   "
            "[acceptance ≤ 180 s]"
        )
        for det_id, message in summary["failures"].items():
            print(f"  failed {det_id}: {message[:110]}")


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--default-fit-times":  # a baseline's subprocess
        print(json.dumps(_default_fit_times(int(sys.argv[2]))))
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=1000, help="accuracy detections")
    parser.add_argument("--n-binary", type=int, default=100, help="binary and single cases each")
    parser.add_argument("--n-batch", type=int, default=1000, help="batch detections")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=20, help="speed repetitions")
    parser.add_argument(
        "--first-seed", type=int, default=10_000, help="seed of the first accuracy detection"
    )
    parser.add_argument(
        "--ideal",
        action="store_true",
        help="also fit each accuracy detection with the true-variance weights (the ideal "
        "estimator) and on its noiseless stamps (~2× the accuracy time)",
    )
    parser.add_argument(
        "--binary-snr", type=float, default=30.0, help="S/N per binary component (30)"
    )
    parser.add_argument("--save", default=None, help="write the accuracy rows to this JSON file")
    parser.add_argument(
        "--skip", nargs="*", default=(), choices=("accuracy", "binary", "speed", "batch")
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        default=None,
        help="checkout of an earlier revision: its default fits are timed side by side",
    )
    args = parser.parse_args()
    if "speed" not in args.skip:
        speed(args.repeats, args.baseline)
    if "accuracy" not in args.skip:
        accuracy(args.n, args.workers, args.first_seed, args.ideal, args.save)
    if "binary" not in args.skip:
        binary(args.n_binary, args.workers, args.binary_snr)
    if "batch" not in args.skip:
        batch(args.n_batch, args.workers)


if __name__ == "__main__":
    main()
