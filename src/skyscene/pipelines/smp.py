"""File-level scene-modelling photometry: one detection, batches through Dask, demo.

- :func:`run_smp`: read stamp FITS files, fit (single or binary), write a JSON result
  and optionally a mugshot PNG.
- :func:`run_smp_batch`: a CSV of detections → one task per detection (Dask, see
  :mod:`skyscene.pipelines._scheduler`); each task writes ``<parts>/<id>.json``
  atomically, a rerun skips finished ones, failures are recorded and the batch goes
  on; the collected table is written as Parquet (and CSV).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from skyscene.errors import InputFileError, ParameterError, SkysceneError

__all__ = ["demo_stage", "read_detections", "run_smp", "run_smp_batch", "smp_record"]

log = logging.getLogger(__name__)


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def smp_record(result, *, binary_result=None) -> dict:
    """A JSON-serialisable summary of a :class:`~skyscene.scene.SceneResult` (and binary)."""
    record: dict[str, Any] = {
        "detections": [result.filenames[d] for d in result.detections],
        "flux": result.flux,
        "flux_err": result.flux_err,
        "mag": result.mag,
        "mag_err": result.mag_err,
        "x": result.target_xy[:, 0],
        "y": result.target_xy[:, 1],
        "offset_arcsec": result.offset,
        "detection_offsets_arcsec": result.detection_offsets,
        "chi2": result.chi2,
        "dof": result.dof,
        "chi2_exposure": dict(zip(result.filenames, result.chi2_exposure.tolist(), strict=True)),
        "sky": dict(zip(result.filenames, result.sky.tolist(), strict=True)),
        "flags": list(result.flags),
        "zeropoint": result.config.zeropoint,
        "config": result.config.to_dict(),
    }
    if binary_result is not None:
        b = binary_result
        record["binary"] = {
            "flux1": b.flux1,
            "flux1_err": b.flux1_err,
            "mag1": b.mag1,
            "mag1_err": b.mag1_err,
            "flux2": b.flux2,
            "flux2_err": b.flux2_err,
            "mag2": b.mag2,
            "mag2_err": b.mag2_err,
            "shift1_pixels": b.shift1,
            "shift2_pixels": b.shift2,
            "separation_pixels": b.separation_pixels,
            "separation_arcsec": b.separation_arcsec,
            "separation_err_pixels": b.separation_err_pixels,
            "separation_err_arcsec": b.separation_err_arcsec,
            "delta_chi2": b.delta_chi2,
            "bic_single": b.bic_single,
            "bic_binary": b.bic_binary,
            "binary_preferred": b.preferred,
        }
    return _jsonable(record)


def _read_stamps(paths: Sequence[str | Path]):
    from skyscene.io import read_exposure

    return [read_exposure(p, require_time=False) for p in paths]


def _with_psf_models(exposures, psf_models: Sequence[str | Path]):
    from skyscene.psf import read_psf_model

    models = [Path(p) for p in psf_models]
    if len(models) not in (1, len(exposures)):
        raise ParameterError(
            f"give one PSF model file for all stamps or one per stamp ({len(exposures)}), "
            f"got {len(models)}"
        )
    if len(models) == 1:
        models = models * len(exposures)
    loaded = {path: read_psf_model(path) for path in dict.fromkeys(models)}
    return [exp.replace(psf=loaded[path]) for exp, path in zip(exposures, models, strict=True)]


def _detection_indices(
    paths: Sequence[Path], detection: str | Path | Sequence[str | Path]
) -> list[int]:
    wanted = [detection] if isinstance(detection, str | Path) else list(detection)
    out = []
    for item in wanted:
        w = Path(item)
        hits = [i for i, p in enumerate(paths) if Path(p) == w or Path(p).name == w.name]
        if not hits:
            raise ParameterError(f"detection file {str(w)!r} is not among the stamps given")
        out.append(hits[0])
    return out


def run_smp(
    stamps: Sequence[str | Path],
    *,
    ra: float,
    dec: float,
    detection: str | Path | Sequence[str | Path],
    binary: bool = False,
    config=None,
    out: str | Path | None = None,
    mugshot: str | Path | None = None,
    psf_models: Sequence[str | Path] | None = None,
) -> dict:
    """Fit one detection from stamp files; write the JSON result and a mugshot.

    Parameters
    ----------
    stamps : sequence of path
        Exposure FITS stamps (SCI/WGT/MSK/PSF) of the same sky patch.
    ra, dec : float
        Target position in degrees.
    detection : path or sequence of paths
        The stamp(s) in which the target is measured (matched by path or file name).
    binary : bool
        Also fit a binary and record the comparison.
    config : SceneConfig, optional
    out : path, optional
        JSON result file (written atomically).
    mugshot : path, optional
        PNG of the five-panel mugshot of the (first) detection exposure.
    psf_models : sequence of path, optional
        PSF model files (PSFEx ``.psf``, Piff ``.piff``) of the stamps' parent images,
        one per stamp or one for all; they replace the stamps' ``PSF`` HDUs and are
        evaluated at ``pixel + origin`` (``LTV1/2`` of the stamp).

    Returns
    -------
    dict
        The record written to ``out``.
    """
    from skyscene.scene import SceneModel, Target, fit_binary

    paths = [Path(p) for p in stamps]
    if not paths:
        raise ParameterError("run_smp needs at least one stamp file")
    exposures = _read_stamps(paths)
    if psf_models:
        exposures = _with_psf_models(exposures, psf_models)
    dets = _detection_indices(paths, detection)
    target = Target(ra=ra, dec=dec, detections=tuple(dets))
    model = SceneModel(config)
    binary_result = None
    if binary:
        binary_result = fit_binary(exposures, target, config=model.config)
        result = binary_result.single
    else:
        result = model(exposures, target)
    record = smp_record(result, binary_result=binary_result)
    record["ra"], record["dec"] = float(ra), float(dec)
    if out is not None:
        from skyscene.io import atomic_write_text

        atomic_write_text(out, json.dumps(record, indent=1))
    if mugshot is not None:
        from skyscene.io import atomic_path
        from skyscene.plotting.mugshot import mugshot_figure

        fig = mugshot_figure(binary_result.binary if binary_result is not None else result)
        with atomic_path(mugshot) as tmp:
            fig.savefig(tmp, dpi=110, format="png")
    return record


def read_detections(path: str | Path):
    """Read a detections CSV: columns ``id, ra, dec, detection`` and optional ``stamps``.

    ``detection`` is the detection stamp file name; ``stamps`` a ``;``-separated list of
    stamp files (default: every ``*.fits`` in ``STAMPS_DIR/<id>/``).
    """
    from astropy.table import Table

    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{path}: no such file")
    try:
        table = Table.read(path, format="ascii.csv")
    except Exception as exc:
        raise InputFileError(f"{path}: cannot read the detections CSV: {exc}") from exc
    missing = [c for c in ("id", "ra", "dec", "detection") if c not in table.colnames]
    if missing:
        raise InputFileError(f"{path}: missing column(s) {missing} (need id, ra, dec, detection)")
    return table


def _task(item: dict) -> dict:
    """One batch task: fit, write ``<parts>/<id>.json`` atomically; never raises."""
    import warnings

    from skyscene.io import atomic_write_text
    from skyscene.scene import SceneConfig

    part = Path(item["part"])
    t0 = time.perf_counter()
    c0 = time.process_time()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # recorded as flags in the result instead
            record = run_smp(
                item["stamps"],
                ra=item["ra"],
                dec=item["dec"],
                detection=item["detection"],
                binary=item["binary"],
                config=SceneConfig(**item["config"]),
            )
        record["status"] = "ok"
        record["error"] = ""
    except (SkysceneError, ValueError, OSError) as exc:
        record = {"status": "failed", "error": str(exc)}
    record["id"] = item["id"]
    record["seconds"] = time.perf_counter() - t0
    record["cpu_seconds"] = time.process_time() - c0
    atomic_write_text(part, json.dumps(_jsonable(record)))
    return {"id": item["id"], "status": record["status"], "error": record["error"]}


def _row(record: dict) -> dict:
    first = lambda key: (record.get(key) or [None])[0]  # noqa: E731
    row = {
        "id": str(record["id"]),
        "status": record["status"],
        "error": record.get("error", ""),
        "ra": record.get("ra"),
        "dec": record.get("dec"),
        "detection": first("detections"),
        "flux": first("flux"),
        "flux_err": first("flux_err"),
        "mag": first("mag"),
        "mag_err": first("mag_err"),
        "chi2": record.get("chi2"),
        "dof": record.get("dof"),
        "flags": ";".join(record.get("flags", [])),
        "seconds": record.get("seconds"),
        "cpu_seconds": record.get("cpu_seconds"),
    }
    b = record.get("binary")
    if b is not None:
        row.update(
            flux1=b["flux1"][0],
            flux1_err=b["flux1_err"][0],
            flux2=b["flux2"][0],
            flux2_err=b["flux2_err"][0],
            separation_arcsec=b["separation_arcsec"],
            delta_chi2=b["delta_chi2"],
            binary_preferred=b["binary_preferred"],
        )
    return row


_STRING_COLUMNS = ("id", "status", "error", "detection", "flags")


def _rows_to_table(rows: list[dict]):
    """Typed columns (NaN / "" / False for failed rows) so that Parquet can hold them."""
    from astropy.table import Table

    names: list[str] = []
    for row in rows:
        names += [k for k in row if k not in names]
    columns = {}
    for name in names:
        values = [row.get(name) for row in rows]
        if name in _STRING_COLUMNS:
            columns[name] = np.array(["" if v is None else str(v) for v in values], dtype=str)
        elif name == "binary_preferred":
            columns[name] = np.array([bool(v) for v in values])
        else:
            columns[name] = np.array([np.nan if v is None else float(v) for v in values])
    return Table(columns)


def run_smp_batch(
    detections_csv: str | Path,
    *,
    stamps_dir: str | Path,
    out: str | Path,
    binary: bool = False,
    config=None,
    scheduler: str = "processes",
    n_workers: int | None = None,
    progress: bool = False,
) -> dict:
    """Scene-modelling photometry of many detections, resumable, through Dask.

    Returns a summary dict (``n_total``, ``n_ok``, ``n_failed``, ``n_skipped``,
    ``failures`` (id → message), ``out``, ``seconds``).
    """

    from skyscene.io import write_table
    from skyscene.pipelines._scheduler import run_tasks
    from skyscene.scene import SceneConfig

    t0 = time.perf_counter()
    config = config or SceneConfig()
    stamps_dir = Path(stamps_dir)
    out = Path(out)
    parts = out.parent / f"{out.stem}.parts"
    parts.mkdir(parents=True, exist_ok=True)
    table = read_detections(detections_csv)
    items, skipped = [], 0
    all_parts = []
    for row in table:
        det_id = str(row["id"])
        part = parts / f"{det_id}.json"
        all_parts.append(part)
        if part.exists():
            skipped += 1
            continue
        if "stamps" in table.colnames and str(row["stamps"]).strip() not in ("", "--"):
            stamps = [stamps_dir / s for s in str(row["stamps"]).split(";")]
        else:
            stamps = sorted((stamps_dir / det_id).glob("*.fits"))
        det = str(row["detection"])
        det_path = (
            stamps_dir / det_id / det if (stamps_dir / det_id / det).exists() else stamps_dir / det
        )
        items.append(
            {
                "id": det_id,
                "ra": float(row["ra"]),
                "dec": float(row["dec"]),
                "detection": str(det_path),
                "stamps": [str(s) for s in stamps],
                "binary": binary,
                "config": config.to_dict(),
                "part": str(part),
            }
        )
    log.info(
        "smp-batch: %d detections, %d already done, %d to run", len(table), skipped, len(items)
    )
    run_tasks(_task, items, scheduler=scheduler, progress=progress, desc="smp", n_workers=n_workers)
    rows, failures = [], {}
    for part in all_parts:
        record = json.loads(part.read_text())
        rows.append(_row(record))
        if record["status"] != "ok":
            failures[str(record["id"])] = record.get("error", "")
    for det_id, message in failures.items():
        log.warning("smp-batch: %s failed: %s", det_id, message)
    result = _rows_to_table(rows)
    result.meta["config"] = repr(config.to_dict())
    write_table(result, out.with_suffix(".csv"))
    return {
        "n_total": len(all_parts),
        "n_ok": len(rows) - len(failures),
        "n_failed": len(failures),
        "n_skipped": skipped,
        "failures": failures,
        "out": str(out.with_suffix(".parquet")),
        "seconds": time.perf_counter() - t0,
    }


def demo_stage(out_dir, *, progress: bool = False) -> str:
    """Demo: simulate three detections (isolated, moderate, heavy blend), fit, mugshot."""
    from skyscene.datasets.tno import simulate_tno_stamps
    from skyscene.io import atomic_path

    out_dir = Path(out_dir) / "smp"
    lines = ["Scene-modelling photometry (skyscene.scene):"]
    for seed, blend in ((11, "isolated"), (12, "moderate"), (13, "heavy")):
        sim_dir = out_dir / f"{blend}"
        sim = simulate_tno_stamps(rng=seed, n_exposures=8, snr=40.0, blend=blend, out_dir=sim_dir)
        stamps = [p for p in sim.paths if p.suffix == ".fits"]
        record = run_smp(
            stamps,
            ra=sim.truth["ra"],
            dec=sim.truth["dec"],
            detection=stamps[0],
            out=sim_dir / "result.json",
            mugshot=sim_dir / "mugshot.png",
        )
        true = sim.truth["flux"]
        pull = (record["flux"][0] - true) / record["flux_err"][0]
        lines.append(
            f"  {blend:9s} flux30 {record['flux'][0]:9.1f} ± {record['flux_err'][0]:6.1f} "
            f"(true {true:9.1f}, pull {pull:+.2f})  {sim_dir / 'mugshot.png'}"
        )
        if blend == "heavy":
            from skyscene.plotting.mugshot import mugshot_grid_figure
            from skyscene.scene import SceneModel

            result = SceneModel()(sim.exposures, sim.target)
            with atomic_path(sim_dir / "mugshot_grid.png") as tmp:
                mugshot_grid_figure(result).savefig(tmp, dpi=70, format="png")
            lines.append(f"  all exposures of the heavy blend: {sim_dir / 'mugshot_grid.png'}")
    return "\n".join(lines)
