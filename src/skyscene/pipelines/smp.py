"""File-level scene-modelling photometry: one detection, batches through Dask, demo.

- :func:`run_smp`: read stamp FITS files, fit (single or binary), write a JSON result
  and optionally a mugshot PNG.
- :func:`run_smp_batch`: a CSV of detections → one task per detection (Dask, see
  :mod:`skyscene.pipelines._scheduler`); each result is cached in ``<out>.parts/``
  under a key of the detection, its stamp files, the effective configuration and the
  skyscene version, so a rerun with the same settings skips finished detections and a
  rerun with other settings recomputes them; failures from the data are recorded with
  the file named, the batch goes on, and failed detections are retried on the next
  run; the collected table is written as Parquet (and CSV).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from skyscene.errors import InputFileError, ParameterError, SkysceneError
from skyscene.pipelines._records import data_errors
from skyscene.pipelines._records import jsonable as _jsonable

__all__ = ["demo_stage", "read_detections", "run_smp", "run_smp_batch", "smp_record"]

log = logging.getLogger(__name__)


#: The errors a batch task records as a failure of its input (anything else is a bug
#: and stops the batch).
_DATA_ERRORS = data_errors()


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

    exposures = []
    for p in paths:
        try:
            exposures.append(read_exposure(p, require_time=False))
        except SkysceneError:
            raise
        except _DATA_ERRORS as exc:  # astropy's VerifyError, numpy errors...: name the file
            raise InputFileError(f"{p}: {type(exc).__name__}: {exc}") from exc
    return exposures


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


def _names_a_file(message: str, paths: Sequence[str]) -> bool:
    return any(Path(p).name in message for p in paths)


def _warning_flags(caught) -> tuple[list[str], list[str]]:
    """``warning:<Category>`` flags and ``"<Category>: <message>"`` texts, de-duplicated."""
    flags = list(dict.fromkeys(f"warning:{w.category.__name__}" for w in caught))
    texts = list(dict.fromkeys(f"{w.category.__name__}: {w.message}" for w in caught))
    return flags, texts


def _task(item: dict) -> dict:
    """One batch task: fit one detection; never raises for bad data.

    Returns the record (``status`` ``"ok"``, or ``"failed"`` with ``error`` naming the
    file); warnings raised during the fit become ``warning:<Category>`` flags and the
    ``warnings`` texts of the record instead of being ignored.
    """
    import warnings

    from skyscene.scene import SceneConfig

    t0 = time.perf_counter()
    c0 = time.process_time()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
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
        except _DATA_ERRORS as exc:
            message = str(exc) or type(exc).__name__
            if not _names_a_file(message, [item["detection"], *item["stamps"]]):
                message = f"{item['detection']}: {type(exc).__name__}: {message}"
            record = {"status": "failed", "error": message, "flags": []}
    flags, texts = _warning_flags(caught)
    record["flags"] = list(record.get("flags", [])) + [f for f in flags if f not in record["flags"]]
    record["warnings"] = texts
    record["id"] = item["id"]
    record["seconds"] = time.perf_counter() - t0
    record["cpu_seconds"] = time.process_time() - c0
    return _jsonable(record)


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
        "warnings": " | ".join(record.get("warnings", [])),
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


_STRING_COLUMNS = ("id", "status", "error", "detection", "flags", "warnings")


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


def _file_id(path: Path) -> tuple[str, int, int] | tuple[str]:
    """Path, size and modification time: a replaced stamp file makes a new task key."""
    try:
        st = path.stat()
    except OSError:
        return (str(path),)
    return (str(path), st.st_size, st.st_mtime_ns)


def _duplicate_ids(path: str | Path, ids: Sequence[str]) -> None:
    seen: dict[str, int] = {}
    for det_id in ids:
        seen[det_id] = seen.get(det_id, 0) + 1
    dups = [d for d, n in seen.items() if n > 1]
    if dups:
        shown = ", ".join(repr(d) for d in dups[:10]) + (" ..." if len(dups) > 10 else "")
        raise InputFileError(
            f"{path}: duplicate id(s) {shown} ({len(dups)} in all): every detection needs "
            "its own id"
        )


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
    retry_failed: bool = True,
    connect_timeout: float = 10.0,
) -> dict:
    """Scene-modelling photometry of many detections, resumable, through Dask.

    Parameters
    ----------
    detections_csv : path
        ``id, ra, dec, detection[, stamps]`` (:func:`read_detections`); ids must be
        unique.
    stamps_dir : path
        Folder of stamps (default layout ``STAMPS/<id>/*.fits``).
    out : path
        Result Parquet file; a CSV twin is written, and ``<out>.parts/`` caches the
        per-detection results.
    binary : bool
        Also fit a binary.
    config : SceneConfig, optional
    scheduler, n_workers, connect_timeout
        See :func:`skyscene.pipelines._scheduler.run_tasks`.
    progress : bool
    retry_failed : bool
        Recompute detections that failed in an earlier run (default).

    Returns
    -------
    dict
        ``n_total``, ``n_ok``, ``n_failed``, ``n_skipped`` (reused from an earlier run
        with the same settings), ``failures`` (id → message naming the file), ``out``,
        ``seconds``.

    Notes
    -----
    Each result is cached under a key of the detection (id, position, stamp files with
    their size and modification time), ``binary``, the effective configuration and
    the skyscene version: a rerun with other settings recomputes every detection and
    never mixes in old rows. Errors that come from the data (unreadable FITS, bad
    header cards, target outside the stamp, ...) fail only their detection.
    """

    from skyscene.io import write_table
    from skyscene.pipelines._outdir import check_writable
    from skyscene.pipelines._scheduler import run_tasks, task_key
    from skyscene.scene import SceneConfig

    t0 = time.perf_counter()
    config = config or SceneConfig()
    stamps_dir = Path(stamps_dir)
    out = Path(out)
    table = read_detections(detections_csv)
    ids = [str(row["id"]) for row in table]
    _duplicate_ids(detections_csv, ids)
    if not stamps_dir.is_dir():
        raise InputFileError(f"{stamps_dir}: stamps folder does not exist")
    check_writable(out.parent)
    parts = out.parent / f"{out.stem}.parts"
    config_dict = config.to_dict()
    items, keys = [], []
    for det_id, row in zip(ids, table, strict=True):
        if "stamps" in table.colnames and str(row["stamps"]).strip() not in ("", "--"):
            stamps = [stamps_dir / s for s in str(row["stamps"]).split(";")]
        else:
            stamps = sorted((stamps_dir / det_id).glob("*.fits"))
        det = str(row["detection"])
        det_path = (
            stamps_dir / det_id / det if (stamps_dir / det_id / det).exists() else stamps_dir / det
        )
        item = {
            "id": det_id,
            "ra": float(row["ra"]),
            "dec": float(row["dec"]),
            "detection": str(det_path),
            "stamps": [str(s) for s in stamps],
            "binary": bool(binary),
            "config": config_dict,
        }
        items.append(item)
        keys.append(
            task_key(
                config_dict,
                "smp",
                det_id,
                item["ra"],
                item["dec"],
                item["detection"],
                bool(binary),
                [_file_id(Path(p)) for p in stamps],
            )
        )
    records = run_tasks(
        _task,
        items,
        scheduler=scheduler,
        progress=progress,
        desc="smp",
        n_workers=n_workers,
        cache_dir=parts,
        keys=keys,
        config=config_dict,
        retry_failed=retry_failed,
        require_paths=[stamps_dir, out.parent],
        connect_timeout=connect_timeout,
    )
    log.info(
        "smp-batch: %d detections, %d reused from an earlier run, %d computed",
        len(items),
        records.n_reused,
        len(items) - records.n_reused,
    )
    rows, failures = [], {}
    for record in records:
        rows.append(_row(record))
        if record["status"] != "ok":
            failures[str(record["id"])] = record.get("error", "")
    result = _rows_to_table(rows)
    from skyscene import __version__

    result.meta["config"] = json.dumps(config_dict, sort_keys=True)
    result.meta["binary"] = bool(binary)
    result.meta["skyscene_version"] = __version__
    write_table(result, out.with_suffix(".csv"))
    return {
        "n_total": len(records),
        "n_ok": len(rows) - len(failures),
        "n_failed": len(failures),
        "n_skipped": records.n_reused,
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
