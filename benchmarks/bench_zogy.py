"""ZOGY benchmark: null test, injected transients, sub-image mode, timing against peers.

Run: ``python benchmarks/bench_zogy.py [--sizes 2048 4096] [--quick] [--peer-timeout S]``,
or ``--artefacts SIZE`` for the estimated-PSF test on pairs with cosmic rays and saturated
stars only (seeds 201-203).

Side-by-side speed (issue 15): ``--reference-rev REV`` (default: the commit before the
issue-15 speed work) times ``Zogy()`` of that revision (``git archive REV src`` into a
temporary folder, imported through PYTHONPATH in a subprocess) and of this tree, in
alternation on the same seed-5 pair, and prints wall and CPU time (best of
``--repeats``), the load average, the figure on docs/diffim.md and the ratios.
``--reference-rev none`` skips it.

Peers (properimage, sfft) are used only when importable: install them in a separate
virtual environment (never into the project's), e.g.::

    python3.11 -m venv /work/bench-venv && /work/bench-venv/bin/pip install -e .
    /work/bench-venv/bin/pip install "setuptools<70" wheel
    /work/bench-venv/bin/pip install --no-build-isolation tinynpydb
    /work/bench-venv/bin/pip install properimage sfft

and run this script with that interpreter. A missing or failing peer is skipped with
the reason printed. Every method runs on the same simulated pair, in its own forked
process (so that memory figures do not mix), one at a time. Peers get the reference
already aligned on the science grid (integer + Fourier shift by the true offset: they
have no translation path of their own), skyscene gets the raw exposures (its time
includes the alignment). Recovered S/N: the value at the pixel nearest each S/N-10
transient of properimage's and skyscene's S_corr; for sfft (a difference image without
a score) the PSF-matched filter of its difference over that filter's robust scatter.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import subprocess
import sys
import tempfile
import time
import traceback
import tracemalloc

import numpy as np

from skyscene.datasets.pairs import simulate_pair
from skyscene.diffim import Zogy, ZogyConfig
from skyscene.errors import DataError


def _rss_gb() -> float:
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
        f"flux ratio {r.flux_ratio:.4f} (true {pair.flux_ratio}); {dt:.2f} s",
        flush=True,
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
        f"flux pull mean {pull.mean():+.3f} std {pull.std():.3f}",
        flush=True,
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
            f"varying PSF {size}² {label}: S_corr std {s.std():.3f}, "
            f"|S_corr|>5 pixels {int(np.sum(np.abs(s) > 5))}",
            flush=True,
        )


def _artefacts(size: int, seeds) -> None:
    """Estimated PSFs on pairs with cosmic rays and saturated stars (issue 12): PSF peak
    ratios and flux pulls, with the true PSFs for comparison. Transients within 8 px of
    an artefact (a cosmic ray on a transient is real flux) or 10 px of another transient
    are left out of the pulls."""
    from scipy.spatial import cKDTree

    scale = size * size / 512**2
    for seed in seeds:
        pair = simulate_pair(
            shape=(size, size),
            rng=seed,
            n_transients=int(60 * scale),
            transient_snr=(8.0, 30.0),
            n_cosmic_rays=int(150 * scale),
            n_saturated_stars=int(4 * scale),
        )
        truth = pair.transients
        xy = np.column_stack([truth["x"], truth["y"]])
        art = np.column_stack([pair.artefacts["x"], pair.artefacts["y"]])
        # apart from artefacts (8 px) and from each other (10 px: two on one host)
        far = (cKDTree(art).query(xy)[0] > 8) & (cKDTree(xy).query(xy, k=2)[0][:, 1] > 10)
        for psf in ("exposure", "estimate"):
            t0 = time.perf_counter()
            try:
                r = Zogy(ZogyConfig(psf=psf))(pair.science, pair.reference)
            except DataError as exc:
                print(f"artefacts {size}² seed {seed} psf={psf}: refused: {exc}", flush=True)
                continue
            dt = time.perf_counter() - t0
            m = r.measure(truth["x"], truth["y"])
            ok = (np.asarray(m["mask"]) == 0) & far
            pull = (np.asarray(m["flux"])[ok] - np.asarray(truth["flux_ref"])[ok]) / np.asarray(
                m["flux_err"]
            )[ok]
            print(
                f"artefacts {size}² seed {seed} psf={psf}: {ok.sum()} transients, flux pull "
                f"mean {pull.mean():+.3f} std {pull.std():.3f}; flux ratio {r.flux_ratio:.4f} "
                f"(true {pair.flux_ratio}); {dt:.2f} s",
                flush=True,
            )


# ----------------------------------------------------------------------------- methods


def _aligned_reference(pair) -> tuple[np.ndarray, np.ndarray]:
    """Reference data and saturation mask on the science grid (true offset)."""
    ox, oy = pair.offset
    tx, ty = round(ox), round(oy)
    data = np.roll(pair.reference.data, (ty, tx), axis=(0, 1))
    mask = np.roll(pair.reference.mask, (ty, tx), axis=(0, 1))
    fy = np.fft.fftfreq(data.shape[0])[:, None]
    fx = np.fft.rfftfreq(data.shape[1])[None, :]
    ramp = np.exp(-2j * np.pi * (fx * (ox - tx) + fy * (oy - ty)))
    data = np.fft.irfft2(np.fft.rfft2(data) * ramp, s=data.shape)
    return data, mask


def _nearest(image: np.ndarray, transients) -> np.ndarray:
    ix = np.clip(np.round(np.asarray(transients["x"])).astype(int), 0, image.shape[1] - 1)
    iy = np.clip(np.round(np.asarray(transients["y"])).astype(int), 0, image.shape[0] - 1)
    return image[iy, ix]


def _run_skyscene(pair, _ref, _ref_mask):
    r = Zogy()(pair.science, pair.reference)
    values = _nearest(r.score_corr, pair.transients)
    good = _nearest(r.mask, pair.transients) == 0
    return values[good]


def _run_properimage(pair, ref, ref_mask):
    from properimage import operations

    new = np.ma.masked_array(pair.science.data, mask=pair.science.mask)
    refm = np.ma.masked_array(ref, mask=ref_mask)
    out = operations.subtract(ref=refm, new=new, smooth_psf=False, fitted_psf=True, iterative=False)
    s_corr = np.asarray(np.real(out[2]))
    return _nearest(s_corr, pair.transients)


def _run_sfft(pair, ref, ref_mask):
    from astropy.io import fits
    from scipy.signal import fftconvolve
    from sfft.CustomizedPacket import Customized_Packet

    threads = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory() as tmp:
        paths = {}
        sci = pair.science.data
        bad = ref_mask | pair.science.mask
        for name, data in (
            ("ref", ref),
            ("sci", sci),
            ("mref", np.where(bad, 0.0, ref)),  # sfft fits its kernel on unmasked pixels
            ("msci", np.where(bad, 0.0, sci)),
        ):
            paths[name] = os.path.join(tmp, f"{name}.fits")
            fits.PrimaryHDU(np.asarray(data, np.float64)).writeto(paths[name])
        paths["diff"] = os.path.join(tmp, "diff.fits")
        Customized_Packet.CP(
            FITS_REF=paths["ref"],
            FITS_SCI=paths["sci"],
            FITS_mREF=paths["mref"],
            FITS_mSCI=paths["msci"],
            ForceConv="REF",
            GKerHW=8,
            FITS_DIFF=paths["diff"],
            KerPolyOrder=2,
            BGPolyOrder=2,
            ConstPhotRatio=True,
            BACKEND_4SUBTRACT="Numpy",
            NUM_CPU_THREADS_4SUBTRACT=threads,
            VERBOSE_LEVEL=0,
        )
        diff = fits.getdata(paths["diff"]).astype(float)
    psf = pair.science.psf.render((31, 31))
    score = fftconvolve(np.nan_to_num(diff), psf[::-1, ::-1] / psf.sum(), mode="same")
    bad = pair.science.mask | ref_mask
    noise = 1.4826 * np.median(np.abs(score[~bad] - np.median(score[~bad])))
    return _nearest(score, pair.transients) / noise


METHODS = {
    "skyscene ZOGY": _run_skyscene,
    "properimage": _run_properimage,
    "sfft": _run_sfft,
}


def _child(name, pair, ref, ref_mask, conn) -> None:
    try:
        rss0 = _rss_gb()
        tracemalloc.start()
        t0 = time.perf_counter()
        values = METHODS[name](pair, ref, ref_mask)
        dt = time.perf_counter() - t0
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        conn.send(
            {"time": dt, "peak": peak / 1e9, "rss": _rss_gb() - rss0, "snr": np.asarray(values)}
        )
    except BaseException as exc:  # reported, never hidden: the peer is skipped
        conn.send({"error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()})
    finally:
        conn.close()


def _available(name: str) -> str | None:
    module = {"properimage": "properimage", "sfft": "sfft"}.get(name)
    if module is None:
        return None
    try:
        __import__(module)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def _timing(size: int, seed: int, timeout: float) -> None:
    pair = simulate_pair(shape=(size, size), rng=seed, n_transients=50, transient_snr=10.0)
    ref, ref_mask = _aligned_reference(pair)
    ctx = mp.get_context("fork")
    results = {}
    for name in METHODS:
        missing = _available(name)
        if missing:
            print(f"  {name} {size}²: skipped (not importable: {missing})", flush=True)
            continue
        parent, child = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_child, args=(name, pair, ref, ref_mask, child))
        proc.start()
        child.close()
        if not parent.poll(timeout):
            proc.kill()
            proc.join()
            print(f"  {name} {size}²: skipped (no result within {timeout:.0f} s)", flush=True)
            continue
        out = parent.recv()
        proc.join()
        if "error" in out:
            print(f"  {name} {size}²: skipped (failed: {out['error']})", flush=True)
            print("    " + out["trace"].strip().splitlines()[-3].strip(), flush=True)
            continue
        snr = out["snr"][np.isfinite(out["snr"])]
        results[name] = out
        print(
            f"  {name} {size}²: {out['time']:.2f} s, peak traced memory {out['peak']:.2f} GB "
            f"(RSS growth {out['rss']:.2f} GB), median recovered S/N of {len(snr)} "
            f"S/N-10 transients {np.median(snr):.2f}",
            flush=True,
        )
    ours = results.get("skyscene ZOGY")
    peers = {k: v for k, v in results.items() if k != "skyscene ZOGY"}
    if ours and peers:
        fastest = min(peers, key=lambda k: peers[k]["time"])
        print(
            f"  {size}²: skyscene is {peers[fastest]['time'] / ours['time']:.1f}x faster than the "
            f"fastest peer ({fastest}, {peers[fastest]['time']:.2f} s)",
            flush=True,
        )
    elif ours:
        print(f"  {size}²: no peer ran; no speed ratio", flush=True)


# figures on docs/diffim.md before issue 15 (wall, 2 shared cores)
DOC_FIGURES = {2048: 2.33, 4096: 3.82}
REFERENCE_REV = "7a5fd72"


def _time_only(size: int, repeats: int) -> None:
    """Child of the side-by-side timing: JSON with wall and CPU times of ``Zogy()``."""
    pair = simulate_pair(shape=(size, size), rng=5, n_transients=50, transient_snr=10.0)
    walls, cpus = [], []
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        r = Zogy()(pair.science, pair.reference)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    values = _nearest(r.score_corr, pair.transients)[_nearest(r.mask, pair.transients) == 0]
    print(json.dumps({"wall": walls, "cpu": cpus, "snr": float(np.median(values))}))


def _side_by_side(sizes, rev: str, repeats: int) -> None:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(
            ["git", "-C", root, "archive", rev, "src"], capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        paths = {
            "this tree": os.path.join(root, "src"),
            f"reference {rev}": os.path.join(tmp, "src"),
        }
        for size in sizes:
            out = {}
            for _round in range(2):  # alternate: this, reference, this, reference
                for label, path in paths.items():
                    env = dict(os.environ, PYTHONPATH=path)
                    proc = subprocess.run(
                        [
                            sys.executable,
                            os.path.abspath(__file__),
                            "--time-only",
                            str(size),
                            "--repeats",
                            str(repeats),
                        ],
                        env=env,
                        capture_output=True,
                        text=True,
                        check=True,
                    )
                    res = json.loads(proc.stdout.strip().splitlines()[-1])
                    prev = out.get(label)
                    if prev is None:
                        out[label] = res
                    else:
                        prev["wall"] += res["wall"]
                        prev["cpu"] += res["cpu"]
            load = os.getloadavg()
            ours, ref = out["this tree"], out[f"reference {rev}"]
            w, c = min(ours["wall"]), min(ours["cpu"])
            rw, rc = min(ref["wall"]), min(ref["cpu"])
            print(
                f"side by side {size}² (best of {len(ours['wall'])}, load average "
                f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}): this tree {w:.2f} s wall, "
                f"{c:.2f} s CPU (median S/N {ours['snr']:.2f}); reference {rev} {rw:.2f} s wall, "
                f"{rc:.2f} s CPU (median S/N {ref['snr']:.2f}); ratio reference/this "
                f"{rw / w:.2f} wall, {rc / c:.2f} CPU; docs/diffim.md before: "
                f"{DOC_FIGURES.get(size, float('nan')):.2f} s (ratio "
                f"{DOC_FIGURES.get(size, float('nan')) / w:.2f})",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[2048, 4096])
    parser.add_argument("--quick", action="store_true", help="timing only")
    parser.add_argument(
        "--artefacts",
        type=int,
        default=0,
        metavar="SIZE",
        help="only the artefact-pair test (cosmic rays, saturated stars) at SIZE²",
    )
    parser.add_argument(
        "--peer-timeout", type=float, default=900.0, help="seconds per method and size"
    )
    parser.add_argument("--reference-rev", default=REFERENCE_REV, help="git revision or 'none'")
    parser.add_argument("--repeats", type=int, default=2, help="timings per process")
    parser.add_argument("--time-only", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--side-by-side-only", action="store_true", help="only the ratios")
    args = parser.parse_args()
    if args.time_only:
        _time_only(args.time_only, args.repeats)
        return
    if args.side_by_side_only:
        _side_by_side(args.sizes, args.reference_rev, args.repeats)
        return
    print(f"CPU cores available: {len(os.sched_getaffinity(0))}", flush=True)
    if args.artefacts:
        _artefacts(args.artefacts, (201, 202, 203))
        return
    if not args.quick:
        for seed in (1, 2):
            _null(2048, seed)
        _transients(2048, 3)
        _subimages(2048, 4)
        _artefacts(2048, (201,))
    for size in args.sizes:
        print(f"timing {size}² (seed 5, 50 transients of S/N 10):", flush=True)
        _timing(size, 5, args.peer_timeout)
    if args.reference_rev != "none":
        _side_by_side(args.sizes, args.reference_rev, args.repeats)


if __name__ == "__main__":
    main()
