"""Benchmark of the reduction: frames/s of a full reduction, and forced aperture photometry
against photutils' ``aperture_photometry`` called per frame on the same positions.

Run: ``.venv/bin/python benchmarks/bench_reduce.py [--n-images 100] [--size 512] [--scheduler processes]
[--baseline DIR]``
Prints its figures and the ratios, all measured in this run. ``--baseline DIR``: a
checkout of an earlier revision (``git worktree add DIR REV``) whose ``src`` reduces the
same simulated frames in a subprocess of this run, before and after ours (wall and CPU
time, the Dask workers' included), so that the speed ratio is measured side by side.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DOC_FRAMES_PER_S = 12.4  # docs/reduce.md, before issue 15


def _cpu() -> float:
    """CPU seconds of this process and of its ended children (the Dask workers)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def reduce_once(raw: Path, out: Path, scheduler: str) -> dict:
    """One full reduction of ``raw`` into ``out``: wall and CPU seconds per step."""
    from skyscene.pipelines.reduce import ReduceConfig, Reducer

    c0, t0 = _cpu(), time.perf_counter()
    reducer = Reducer(raw, out, config=ReduceConfig(scheduler=scheduler), progress=False)
    reducer.create_catalogs()
    t_cat = time.perf_counter() - t0
    t1 = time.perf_counter()
    reducer.photometry("optimal")  # closes the Dask client: the workers have ended
    t_phot = time.perf_counter() - t1
    return {
        "wall": time.perf_counter() - t0,
        "cpu": _cpu() - c0,
        "catalogs": t_cat,
        "photometry": t_phot,
        "reducer": reducer,
    }


def _baseline(base: Path, raw: Path, out: Path, scheduler: str) -> dict:
    env = dict(os.environ, PYTHONPATH=str(base / "src"))
    cmd = [sys.executable, __file__, "--reduce-only", str(raw), str(out), scheduler]
    done = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--reduce-only":  # the baseline's subprocess
        logging.basicConfig(level=logging.WARNING)
        r = reduce_once(Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4])
        import skyscene

        r.pop("reducer")
        print(json.dumps({**r, "source": str(Path(skyscene.__file__).parents[1])}))
        return
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n-images", type=int, default=100)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--scheduler", default="processes")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--baseline",
        type=Path,
        default=None,
        help="checkout of an earlier revision: its reduction runs on the same frames, side by side",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    from astropy.stats import SigmaClip
    from photutils.aperture import (
        ApertureStats,
        EllipticalAnnulus,
        EllipticalAperture,
        aperture_photometry,
    )

    from skyscene.datasets import simulate_observations
    from skyscene.io import read_exposure
    from skyscene.photometry import AperturePhotometer

    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw"
        t0 = time.perf_counter()
        simulate_observations(raw, args.n_images, rng=args.seed, shape=(args.size, args.size))
        t_sim = time.perf_counter() - t0
        n_frames = 3 * args.n_images
        print(
            f"simulated {n_frames} frames of {args.size}x{args.size} in {t_sim:.1f} s (not counted)"
        )

        base_runs = []
        if args.baseline is not None:  # before ours: the load drifts
            base_runs.append(_baseline(args.baseline, raw, Path(tmp) / "base1", args.scheduler))
        load0 = os.getloadavg()[0]
        run = reduce_once(raw, Path(tmp) / "out", args.scheduler)
        reducer, total = run["reducer"], run["wall"]
        print(
            f"full reduction ({args.scheduler}): {total:.1f} s = catalogs+alignment "
            f"{run['catalogs']:.1f} s + photometry+outputs {run['photometry']:.1f} s -> "
            f"{n_frames / total:.1f} frames/s; CPU {run['cpu']:.1f} s (workers included, "
            f"{1e3 * run['cpu'] / n_frames:.0f} ms/frame); load average {load0:.2f} -> "
            f"{os.getloadavg()[0]:.2f}; docs/reduce.md before issue 15: "
            f"{DOC_FRAMES_PER_S} frames/s (3 x 100 frames of 512², processes) -> ratio "
            f"{n_frames / total / DOC_FRAMES_PER_S:.2f} (goal of issue 15: >= 50 frames/s)"
        )
        if args.baseline is not None:  # and after ours
            base_runs.append(_baseline(args.baseline, raw, Path(tmp) / "base2", args.scheduler))
            wall = sum(b["wall"] for b in base_runs) / 2
            cpu = sum(b["cpu"] for b in base_runs) / 2
            walls = ", ".join(f"{b['wall']:.1f}" for b in base_runs)
            print(
                f"baseline {base_runs[0]['source']} on the same frames (mean of a run before "
                f"and one after): {wall:.1f} s wall ({walls}) "
                f"-> {n_frames / wall:.1f} frames/s, CPU {cpu:.1f} s; ratio this/baseline: "
                f"speed {wall / total:.2f} (wall), {cpu / run['cpu']:.2f} (CPU); load average "
                f"now {os.getloadavg()[0]:.2f}"
            )

        # Forced aperture photometry on the same frames and positions, in memory.
        band = reducer.bands[0]
        cat = reducer.catalogs[band]
        shape = reducer.shapes[band]
        ref_xy = np.c_[cat["x"], cat["y"]]
        frames = []
        for rec in reducer._band_frames(band):
            exp = read_exposure(rec.path)
            inv = np.linalg.inv(reducer.transforms[band][rec.path])
            frames.append((exp, ref_xy @ inv[:2, :2].T + inv[:2, 2]))
        photometer = AperturePhotometer(radius=3.0)
        t0 = time.perf_counter()
        ours = [photometer(exp, xy, shape) for exp, xy in frames]
        t_ours = time.perf_counter() - t0

        a, b = 3.0 * shape.sigma_major, 3.0 * shape.sigma_minor
        t0 = time.perf_counter()
        for exp, xy in frames:
            aperture_photometry(
                exp.data,
                EllipticalAperture(xy, a, b, theta=shape.theta),
                error=np.sqrt(exp.variance),
                mask=exp.mask,
                method="exact",
            )
        t_pu = time.perf_counter() - t0
        t0 = time.perf_counter()
        pu_sums = []
        clip = SigmaClip(sigma=3.0, maxiters=5)
        for exp, xy in frames:
            ann = EllipticalAnnulus(
                xy,
                a_in=5 * shape.sigma_major,
                a_out=7.5 * shape.sigma_major,
                b_out=7.5 * shape.sigma_minor,
                b_in=5 * shape.sigma_minor,
                theta=shape.theta,
            )
            stats = ApertureStats(exp.data, ann, mask=exp.mask, sigma_clip=clip)
            ap = EllipticalAperture(xy, a, b, theta=shape.theta)
            phot = aperture_photometry(
                exp.data, ap, error=np.sqrt(exp.variance), mask=exp.mask, method="exact"
            )
            pu_sums.append(np.asarray(phot["aperture_sum"]) - stats.mean * ap.area)
        t_pu_full = time.perf_counter() - t0
        ours_flux = np.array([np.asarray(t["flux"]) for t in ours])
        rel = np.nanmax(np.abs(ours_flux / np.array(pu_sums) - 1))
        n = len(frames)
        print(f"forced aperture photometry, {n} frames x {len(ref_xy)} sources:")
        print(
            f"  skyscene AperturePhotometer (local bkg + sum + errors): {1e3 * t_ours / n:.2f} ms/frame"
        )
        print(
            f"  photutils aperture_photometry per frame (sum only):     {1e3 * t_pu / n:.2f} ms/frame "
            f"-> ratio skyscene/photutils time = {t_ours / t_pu:.2f}"
        )
        print(
            f"  photutils aperture_photometry + ApertureStats annulus:  {1e3 * t_pu_full / n:.2f} ms/frame "
            f"-> ratio skyscene/photutils time = {t_ours / t_pu_full:.2f}"
        )
        print(f"  max relative flux difference skyscene vs photutils (exact overlap): {rel:.2e}")


if __name__ == "__main__":
    main()
