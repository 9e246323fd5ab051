"""The transient search: science/reference pairs → ZOGY → candidates → cutouts → alerts, database.

``run_search(pairs, out_dir)`` (CLI: ``skyscene search``) searches one pair or a CSV of
pairs and writes, in ``out_dir`` (an :class:`~skyscene.pipelines._outdir.OutputFolder`:
one run at a time, configuration checked, ``summary.json`` last with ``"complete": true``):

- ``candidates.csv`` / ``.ecsv`` / ``.parquet``: one row per candidate, every feature of
  :data:`skyscene.candidates.COLUMNS`, ``pair_id`` and ``objectId``; pairs in input
  order, candidates strongest first;
- ``alerts/<candid>.avro``: one Avro alert per candidate (:mod:`skyscene.alerts`), with
  ``prv_candidates`` from the database;
- the database (default ``sqlite:///OUT/skyscene.db``, :class:`skyscene.store.CandidateStore`);
- ``index.html`` and ``page/<candid>.png``: the strongest candidates' triplets;
- ``summary.json``: pairs done and failed (with the reason, naming the file), candidates
  per pair, per-stage timings, warnings;
- ``parts/``: one part per pair (the candidate columns in the task record, the gzip-FITS
  cutouts in ``<pair>-<key>.npz``), each written atomically when its task ends; a rerun
  reuses the parts made with the same configuration, inputs and skyscene version.

How a batch runs (DESIGN.md, "Scale"): one Dask task per pair through
:func:`~skyscene.pipelines._scheduler.run_tasks` (read, align and subtract, find and
measure, cut, encode the stamps, write the part). The main process takes the results as
they come back and, **in input order**, ingests each pair (one transaction; ingestion is
idempotent), looks up objectIds and earlier detections and writes the pair's alerts:
there is never more than one database writer, and the object numbering, the alerts and
the tables are the same whatever the scheduler, and after a kill and a rerun. The
reference catalog (for ``distnr``/``magnr``) is computed once per reference file in each
worker process.

A pair whose data cannot be used (a missing or unreadable file, an unparsable header,
images that do not overlap, no stars to estimate a PSF from) is logged and listed in
``summary.json`` with the file named; the others go on. An entry of the CSV without a
science or reference file is listed likewise.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import logging
import re
import time
import warnings
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from skyscene._validation import check_choice, check_int
from skyscene.errors import DataError, InputFileError, ParameterError
from skyscene.pipelines._records import data_errors
from skyscene.pipelines._records import jsonable as _jsonable

__all__ = [
    "STAGES",
    "PairEntry",
    "SearchConfig",
    "SearchSummary",
    "demo_stage",
    "read_pairs",
    "run_search",
    "search_exposures",
]

log = logging.getLogger(__name__)

#: Per-stage timings recorded for every pair (seconds), in pipeline order.
STAGES = (
    "read",
    "align+subtract",
    "catalog",
    "find+features",
    "cutouts",
    "score",
    "part",
    "database",
    "alerts",
)

_CUTOUT_KINDS = ("science", "reference", "difference")
_FITS_SUFFIXES = (".fits.gz", ".fits.fz", ".fits", ".fit", ".fts", ".fz")


# --------------------------------------------------------------------------- config


def _sub_config(value: Any, cls: type, name: str) -> Any:
    if isinstance(value, cls):
        return value
    if isinstance(value, Mapping):
        data = dict(value)
        try:
            return cls(**data)
        except TypeError as exc:
            raise ParameterError(
                f"SearchConfig.{name}: {exc}", name=f"SearchConfig.{name}", value=data
            ) from None
    raise ParameterError(
        f"SearchConfig.{name} must be a {cls.__name__} (or a mapping of its fields), "
        f"got {type(value).__name__}",
        name=f"SearchConfig.{name}",
        value=value,
    )


def _zogy_config():
    from skyscene.diffim import ZogyConfig

    return ZogyConfig()


def _candidate_config():
    from skyscene.candidates import CandidateConfig

    return CandidateConfig()


def _alert_config():
    from skyscene.alerts import AlertConfig

    return AlertConfig()


def _store_config():
    from skyscene.store import StoreConfig

    return StoreConfig()


@dataclass(frozen=True, kw_only=True)
class SearchConfig:
    """Settings of the transient search (frozen, validated; recorded as ``to_dict()`` JSON).

    Parameters
    ----------
    zogy : skyscene.diffim.ZogyConfig
        The subtraction.
    candidates : skyscene.candidates.CandidateConfig
        Finding, features and cutouts (``cutout_size``, ``threshold``, ...).
    alerts : skyscene.alerts.AlertConfig
        Publisher, stamp compression, Avro codec.
    store : skyscene.store.StoreConfig
        Association radius and objectId prefix of the database.
    write_alerts : bool
        Write ``alerts/<candid>.avro``.
    store_cutouts : bool
        Store the gzip-FITS cutouts in the database too (the review service reads them
        there).
    profile : str, optional
        Instrument profile of the input files (:func:`skyscene.io.read_exposure`);
        default: detected from the headers.
    page_candidates : int
        Candidates shown on ``index.html`` (the strongest by ``|scorr|``); 0: none.
    page_stretch : {"zscale", "asinh"}
        Display stretch of the page's triplets.
    model : str, optional
        Real/bogus model that scores every candidate as the pairs are searched: a
        checkpoint path (``skyscene rb train``) or ``"default"`` (the model shipped with
        skyscene, :func:`skyscene.classify.io.load_model`). None (default): no scoring,
        ``drb`` stays null. Needs the extra ``skyscene[rb]``.
    model_version : str, optional
        The version the model must have (the checkpoint's ``model_version``). Set by
        :func:`run_search` from the loaded checkpoint, so that the recorded configuration,
        the resume keys and every score name the exact weights.
    """

    zogy: Any = field(default_factory=_zogy_config)
    candidates: Any = field(default_factory=_candidate_config)
    alerts: Any = field(default_factory=_alert_config)
    store: Any = field(default_factory=_store_config)
    write_alerts: bool = True
    store_cutouts: bool = True
    profile: str | None = None
    page_candidates: int = 24
    page_stretch: str = "zscale"
    model: str | None = None
    model_version: str | None = None

    def __post_init__(self) -> None:
        from skyscene.alerts import AlertConfig
        from skyscene.candidates import CandidateConfig
        from skyscene.diffim import ZogyConfig
        from skyscene.store import StoreConfig

        for name, cls in (
            ("zogy", ZogyConfig),
            ("candidates", CandidateConfig),
            ("alerts", AlertConfig),
            ("store", StoreConfig),
        ):
            object.__setattr__(self, name, _sub_config(getattr(self, name), cls, name))
        check_choice("SearchConfig.write_alerts", self.write_alerts, (True, False))
        check_choice("SearchConfig.store_cutouts", self.store_cutouts, (True, False))
        if self.profile is not None and not (isinstance(self.profile, str) and self.profile):
            raise ParameterError(
                f"SearchConfig.profile must be a profile name or None, got {self.profile!r}",
                name="SearchConfig.profile",
                value=self.profile,
            )
        check_int("SearchConfig.page_candidates", self.page_candidates, low=0, high=1000)
        check_choice("SearchConfig.page_stretch", self.page_stretch, ("zscale", "asinh"))
        for name in ("model", "model_version"):
            value = getattr(self, name)
            if isinstance(value, Path):
                value = str(value)
                object.__setattr__(self, name, value)
            if value is not None and not (isinstance(value, str) and value):
                raise ParameterError(
                    f"SearchConfig.{name} must be a non-empty string or None, got {value!r}",
                    name=f"SearchConfig.{name}",
                    value=value,
                )
        if self.model is None and self.model_version is not None:
            raise ParameterError(
                "SearchConfig.model_version is given without a model",
                name="SearchConfig.model_version",
                value=self.model_version,
            )
        if self.model is not None and not self.candidates.cutouts:
            raise ParameterError(
                "SearchConfig.model scores the cutouts: CandidateConfig.cutouts must be True",
                name="SearchConfig.model",
                value=self.model,
            )

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (JSON-serialisable), read back by :meth:`from_dict`.

        ``model`` and ``model_version`` appear only when a model is set (a search without
        scoring records the same configuration as before they existed).
        """
        scoring = (
            {"model": self.model, "model_version": self.model_version}
            if self.model is not None
            else {}
        )
        return {
            "zogy": self.zogy.to_dict(),
            "candidates": self.candidates.to_dict(),
            "alerts": self.alerts.to_dict(),
            "store": self.store.to_dict(),
            "write_alerts": self.write_alerts,
            "store_cutouts": self.store_cutouts,
            "profile": self.profile,
            "page_candidates": self.page_candidates,
            "page_stretch": self.page_stretch,
            **scoring,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SearchConfig:
        """The configuration of :meth:`to_dict` (e.g. read from ``config.json``)."""
        data = dict(data)
        zogy = dict(data.get("zogy") or {})
        if isinstance(zogy.get("astrometric_sigma"), list):
            zogy["astrometric_sigma"] = tuple(zogy["astrometric_sigma"])
        data["zogy"] = zogy
        try:
            return cls(**data)
        except TypeError as exc:
            raise ParameterError(f"SearchConfig: {exc}", name="SearchConfig") from None


# --------------------------------------------------------------------------- pairs


@dataclass(frozen=True, kw_only=True)
class PairEntry:
    """One science/reference pair of a search.

    Attributes
    ----------
    pair_id : str
        Unique identifier (hashed into every ``candid``).
    science, reference : Path or None
        The exposure files (None when the CSV entry lacks one: see ``error``).
    line : int or None
        Line of the pairs CSV (1-based, the header is line 1).
    error : str
        Why the entry cannot be searched ('' when it can).
    """

    pair_id: str
    science: Path | None
    reference: Path | None
    line: int | None = None
    error: str = ""

    @classmethod
    def of(cls, science, reference, *, pair_id: str | None = None) -> PairEntry:
        """An entry for two files; ``pair_id`` defaults to :func:`default_pair_id` (file names)."""
        science, reference = Path(science), Path(reference)
        return cls(
            pair_id=pair_id or default_pair_id(science, reference),
            science=science,
            reference=reference,
        )


def _stem(path: Path) -> str:
    name = path.as_posix()
    for suffix in _FITS_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def default_pair_id(science, reference, *, base=None) -> str:
    """``"<science>:<reference>"`` without FITS suffixes: the paths relative to ``base``
    (a pairs CSV's folder), or the file names when ``base`` is None.

    >>> default_pair_id("night1/sci.fits", "refs/ref.fits", base=".")
    'night1/sci:refs/ref'
    >>> default_pair_id("/data/night1/sci.fits", "/data/refs/ref.fits")
    'sci:ref'
    """
    parts = []
    for path in (Path(science), Path(reference)):
        if base is None:
            path = Path(path.name)
        else:
            with contextlib.suppress(ValueError):
                path = path.relative_to(base)
        parts.append(_stem(path))
    return ":".join(parts)


def read_pairs(path) -> list[PairEntry]:
    """Read a pairs CSV: columns ``science``, ``reference`` and optional ``pair_id``.

    Relative paths are relative to the CSV's folder. An entry without a science or
    reference file, or with too many fields, becomes a :class:`PairEntry` with ``error``
    set (searched as a failure, the batch goes on). Empty lines and lines starting with
    ``#`` are skipped.

    Raises
    ------
    InputFileError
        The file is missing or unreadable, lacks the ``science``/``reference`` columns,
        or repeats a ``pair_id``.
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{path}: no such pairs file")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputFileError(f"{path}: cannot read the pairs CSV ({exc})") from None
    lines = [
        (n, line)
        for n, line in enumerate(text.splitlines(), start=1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not lines:
        raise InputFileError(f"{path}: the pairs CSV is empty (need columns science,reference)")
    header = [h.strip() for h in next(csv.reader([lines[0][1]]))]
    missing = [c for c in ("science", "reference") if c not in header]
    if missing:
        raise InputFileError(
            f"{path}: missing column(s) {', '.join(missing)} (need science, reference[, pair_id]); "
            f"found {', '.join(header) or 'none'}"
        )
    base = path.parent
    entries: list[PairEntry] = []
    for n, line in lines[1:]:
        fields = [f.strip() for f in next(csv.reader([line]))]
        row = dict(zip(header, fields, strict=False))
        given = row.get("pair_id", "")
        problem = ""
        if len(fields) > len(header):
            problem = f"{len(fields)} fields, the header has {len(header)}"
        files: dict[str, Path | None] = {}
        for name in ("science", "reference"):
            value = row.get(name, "")
            files[name] = None if not value else (base / value)
            if not value and not problem:
                problem = f"no {name} file"
        if problem:
            entries.append(
                PairEntry(
                    pair_id=given or f"line{n}",
                    science=files["science"],
                    reference=files["reference"],
                    line=n,
                    error=f"{path} line {n}: {problem}",
                )
            )
            continue
        sci, ref = Path(files["science"] or ""), Path(files["reference"] or "")
        entries.append(
            PairEntry(
                pair_id=given or default_pair_id(sci, ref, base=base),
                science=sci,
                reference=ref,
                line=n,
            )
        )
    seen: dict[str, int] = {}
    for e in entries:
        seen[e.pair_id] = seen.get(e.pair_id, 0) + 1
    dups = [p for p, k in seen.items() if k > 1]
    if dups:
        shown = ", ".join(repr(d) for d in dups[:5]) + (" ..." if len(dups) > 5 else "")
        raise InputFileError(f"{path}: duplicate pair_id(s) {shown}: every pair needs its own id")
    return entries


# --------------------------------------------------------------------------- one pair


@dataclass(frozen=True, kw_only=True, eq=False)
class PairSearch:
    """What :func:`search_exposures` found in one pair.

    Attributes
    ----------
    result : skyscene.diffim.ZogyResult
    candidates : skyscene.candidates.CandidateTable
        With cutouts when ``CandidateConfig.cutouts``.
    stamps : dict of str -> list of bytes
        Gzip-FITS cutouts per kind (science, reference, difference), in row order.
    timings : dict of str -> float
        Seconds per stage (``align+subtract``, ``catalog``, ``find+features``, ``cutouts``).
    """

    result: Any
    candidates: Any
    stamps: dict
    timings: dict


def search_exposures(
    science,
    reference,
    *,
    config: SearchConfig | None = None,
    pair_id: str | None = None,
    reference_catalog=None,
) -> PairSearch:
    """Search one pair in memory (no file I/O): subtract, find, measure, cut, encode stamps.

    Parameters
    ----------
    science, reference : Exposure
    config : SearchConfig, optional
    pair_id : str, optional
        See :class:`~skyscene.candidates.CandidateFinder`.
    reference_catalog : astropy.table.Table, optional
        :func:`skyscene.candidates.reference_catalog` of ``reference`` (computed here when
        not given; pass it when one reference serves many pairs).

    Returns
    -------
    PairSearch
    """
    from skyscene.candidates import CandidateFinder, make_cutouts
    from skyscene.candidates import reference_catalog as make_catalog
    from skyscene.diffim import Zogy

    config = config or SearchConfig()
    timings: dict[str, float] = {}
    t = time.perf_counter()
    result = Zogy(config.zogy)(science, reference)
    timings["align+subtract"] = time.perf_counter() - t
    t = time.perf_counter()
    if reference_catalog is None:
        reference_catalog = make_catalog(reference, threshold=config.candidates.catalog_threshold)
    timings["catalog"] = time.perf_counter() - t
    t = time.perf_counter()
    finder = CandidateFinder(dataclasses.replace(config.candidates, cutouts=False))
    table = finder(result, science, reference, pair_id=pair_id, reference_catalog=reference_catalog)
    timings["find+features"] = time.perf_counter() - t
    t = time.perf_counter()
    stamps: dict[str, list[bytes]] = {kind: [] for kind in _CUTOUT_KINDS}
    if config.candidates.cutouts:
        cut = make_cutouts(
            result,
            science,
            reference,
            table["xpos"],
            table["ypos"],
            size=config.candidates.cutout_size,
            candid=table["candid"],
        )
        table = dataclasses.replace(table, cutouts=cut)
        level = config.alerts.compresslevel
        for kind in _CUTOUT_KINDS:
            stamps[kind] = [cut.fits_bytes(i, kind, compresslevel=level) for i in range(len(cut))]
    timings["cutouts"] = time.perf_counter() - t
    return PairSearch(result=result, candidates=table, stamps=stamps, timings=timings)


# --------------------------------------------------------------------------- batch task

#: Reference catalogs of this process, by (path, size, mtime, threshold): computed once per
#: reference file (it costs ~0.6 s at 2048²), a few kept.
_CATALOGS: OrderedDict[tuple, Any] = OrderedDict()
_CATALOGS_KEPT = 8
#: Sub-folder of ``parts/`` with the reference catalogs shared by every worker and rerun.
_CATALOG_DIR = "catalogs"


def _file_id(path: Path) -> tuple:
    try:
        st = path.stat()
    except OSError:
        return (str(path),)
    return (str(path.resolve()), st.st_size, st.st_mtime_ns)


def _catalog_file(folder: Path, key: tuple) -> Path:
    from skyscene.pipelines._scheduler import task_key

    return folder / f"ref-{task_key('reference-catalog', key)[:20]}.npz"


def _load_catalog(path: Path):
    """A catalog written by :func:`_save_catalog`, or None (missing or unreadable: recompute)."""
    from astropy.table import Table

    try:
        with np.load(path, allow_pickle=False) as npz:
            names = [str(n) for n in npz["__names__"]]
            return Table({name: npz[name] for name in names}, names=names)
    except (OSError, ValueError, KeyError, EOFError):
        return None


def _save_catalog(path: Path, catalog) -> None:
    from skyscene.io import atomic_path

    names = list(catalog.colnames)
    arrays = {name: np.asarray(catalog[name]) for name in names}
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, __names__=np.array(names), **arrays)  # type: ignore[arg-type]


def _cached_catalog(path: Path, reference, threshold: float, folder: Path | None = None):
    """The reference catalog of ``path``: from this process's cache, else from
    ``folder`` (``parts/catalogs``: shared by the workers and by reruns; keyed by the
    file's path, size and modification time, the threshold and the skyscene version),
    else computed (and saved there)."""
    from skyscene.candidates import reference_catalog

    key = (*_file_id(path), float(threshold))
    if key in _CATALOGS:
        _CATALOGS.move_to_end(key)
        return _CATALOGS[key]
    catalog = None
    stored = None if folder is None else _catalog_file(folder, key)
    if stored is not None and stored.is_file():
        catalog = _load_catalog(stored)
    if catalog is None:
        catalog = reference_catalog(reference, threshold=threshold)
        if stored is not None:
            with contextlib.suppress(OSError):
                stored.parent.mkdir(parents=True, exist_ok=True)
                _save_catalog(stored, catalog)
    _CATALOGS[key] = catalog
    while len(_CATALOGS) > _CATALOGS_KEPT:
        _CATALOGS.popitem(last=False)
    return catalog


#: Real/bogus models of this process, by (path, version): loaded once per worker.
_MODELS: dict[tuple[str, str | None], Any] = {}


def _load_model(path: str):
    from skyscene.classify.io import load_model

    return load_model(None if path == "default" else path)


def _cached_model(path: str, version: str | None):
    """The classifier of ``path`` (``"default"``: the shipped one), checked against
    ``version``; loaded once per process."""
    key = (path, version)
    if key not in _MODELS:
        classifier = _load_model(path)
        if version is not None and classifier.model_version_ != version:
            raise InputFileError(
                f"model file {classifier.source_}: model version {classifier.model_version_}, "
                f"the search was started with {version} (the file changed during the run?)"
            )
        _MODELS.clear()  # one model per run; keep no stale weights
        _MODELS[key] = classifier
    return _MODELS[key]


def score_candidates(classifier, cutouts, *, source: str = "input") -> np.ndarray:
    """Real/bogus scores (``drb``, calibrated, 0-1) of the candidates' triplets.

    ``classifier`` is a fitted :class:`skyscene.classify.RealBogusClassifier`,
    ``cutouts`` a :class:`skyscene.candidates.Cutouts` (science, reference, difference).
    Scored on one torch thread (one per Dask worker; the thread count is restored).
    """
    from skyscene.errors import require

    n = 0 if cutouts is None else len(cutouts)
    if n == 0:
        return np.zeros(0)
    triplets = np.stack([cutouts.science, cutouts.reference, cutouts.difference], axis=1)
    torch = require("torch", "rb")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return np.asarray(classifier.score(triplets, batch_size=256, source=source).rb, float)
    finally:
        torch.set_num_threads(threads)


def _footprint(exposure) -> list[list[float]] | None:
    """The image's 4 corners (pixel edges, counter-clockwise from pixel (0, 0)) as
    ``[ra, dec]`` degrees from its WCS; None without a WCS."""
    if exposure.wcs is None:
        return None
    ny, nx = exposure.shape
    x = np.array([-0.5, nx - 0.5, nx - 0.5, -0.5])
    y = np.array([-0.5, -0.5, ny - 0.5, ny - 0.5])
    ra, dec = exposure.wcs.all_pix2world(x, y, 0)
    return [[float(a) % 360.0, float(d)] for a, d in zip(ra, dec, strict=True)]


def _finite_or_none(value) -> float | None:
    value = None if value is None else float(value)
    return value if value is not None and np.isfinite(value) else None


@dataclass(frozen=True)
class _PairTask:
    """One batch task (picklable): a pair, the configuration, where its part goes."""

    pair_id: str
    science: str
    reference: str
    config: dict
    part: str


def _names_a_file(message: str, task: _PairTask) -> bool:
    return any(Path(p).name in message for p in (task.science, task.reference))


def _write_part(path: Path, candid: np.ndarray, stamps: Mapping[str, list[bytes]]) -> None:
    """The pair's stamps as one ``.npz`` (uint8 buffer + offsets per kind), atomically."""
    from skyscene.io import atomic_path

    arrays: dict[str, np.ndarray] = {"candid": np.asarray(candid, np.int64)}
    for kind in _CUTOUT_KINDS:
        blobs = stamps.get(kind) or []
        sizes = np.array([len(b) for b in blobs], np.int64)
        arrays[f"{kind}_offsets"] = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        arrays[f"{kind}_data"] = np.frombuffer(b"".join(blobs), np.uint8)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)  # type: ignore[arg-type]


def _read_part(path: Path) -> tuple[np.ndarray, dict[str, list[bytes]]]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            candid = npz["candid"]
            stamps = {}
            for kind in _CUTOUT_KINDS:
                offsets, data = npz[f"{kind}_offsets"], npz[f"{kind}_data"].tobytes()
                stamps[kind] = [data[offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)]
    except FileNotFoundError:
        raise InputFileError(
            f"part file {path} is missing (deleted after its task ended?): rerun with "
            "--overwrite to search again"
        ) from None
    except (OSError, ValueError, KeyError) as exc:
        raise InputFileError(f"part file {path} is unreadable ({exc})") from None
    return candid, stamps


def _search_task(task: _PairTask) -> dict[str, Any]:
    """Search one pair and write its part; never raises for bad data.

    Returns the pair's record: ``status`` ``"ok"`` (with the candidate ``columns``, the
    ``pair`` fields for the database and the ``part`` path) or ``"failed"`` (``error``
    names the file); ``timings``, ``warnings``.
    """
    from skyscene.io import read_exposure

    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    record: dict[str, Any] = {
        "pair_id": task.pair_id,
        "science": task.science,
        "reference": task.reference,
    }
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            config = SearchConfig.from_dict(task.config)
            t = time.perf_counter()
            science = read_exposure(task.science, profile=config.profile)
            reference = read_exposure(task.reference, profile=config.profile, require_time=False)
            timings["read"] = time.perf_counter() - t
            t = time.perf_counter()
            catalog = _cached_catalog(
                Path(task.reference),
                reference,
                config.candidates.catalog_threshold,
                Path(task.part).parent / _CATALOG_DIR,
            )
            catalog_seconds = time.perf_counter() - t
            found = search_exposures(
                science,
                reference,
                config=config,
                pair_id=task.pair_id,
                reference_catalog=catalog,
            )
            timings.update(found.timings)
            timings["catalog"] = catalog_seconds
            table = found.candidates
            columns = {name: np.asarray(v) for name, v in table.columns.items()}
            if config.model is not None:
                t = time.perf_counter()
                classifier = _cached_model(config.model, config.model_version)
                drb = score_candidates(classifier, table.cutouts, source=f"pair {task.pair_id}")
                columns["drb"] = drb
                columns["drbversion"] = np.full(drb.size, classifier.model_version_)
                # the review queue's order from the score alone (no flip/rotation
                # spread here: that costs 8 network passes; `skyscene rb rescore` adds it)
                from skyscene.classify.active import priority

                record["scores"] = {
                    "model_name": classifier.model_name_,
                    "model_version": classifier.model_version_,
                    "priority": [
                        float(v) for v in priority(drb, None, float(classifier.threshold_))
                    ],
                }
                timings["score"] = time.perf_counter() - t
            t = time.perf_counter()
            _write_part(Path(task.part), table["candid"], found.stamps)
            timings["part"] = time.perf_counter() - t
            band = None if science.band is None else str(science.band)
            fid = config.candidates.fid
            if fid is None:
                from skyscene.candidates import ZTF_FID

                fid = ZTF_FID.get(str(science.band), 0)
            record.update(
                status="ok",
                error="",
                columns=columns,
                meta=_jsonable({k: v for k, v in table.meta.items() if k != "config"}),
                part=task.part,
                pair={
                    "jd": _jsonable(float(table["jd"][0])) if len(table) else _jd_of(science),
                    "fid": int(table["fid"][0]) if len(table) else int(fid),
                    "band": band,
                    "footprint": _footprint(science),
                    "diffmaglim": _finite_or_none(table.meta.get("diffmaglim")),
                    "exptime": None if not science.exptime else float(science.exptime),
                    "magzpsci": None if science.zeropoint is None else float(science.zeropoint),
                    "alignment": found.result.alignment,
                    "flux_ratio": float(found.result.flux_ratio),
                },
                n_candidates=len(table),
            )
        except data_errors(EOFError) as exc:
            message = str(exc) or type(exc).__name__
            if not _names_a_file(message, task):
                message = f"{task.science} - {task.reference}: {type(exc).__name__}: {message}"
            record.update(status="failed", error=message, error_type=type(exc).__name__)
    record["warnings"] = list(dict.fromkeys(f"{w.category.__name__}: {w.message}" for w in caught))
    record["timings"] = timings
    record["seconds"] = time.perf_counter() - t_start
    return record


def _jd_of(science) -> float | None:
    if science.time is None:
        return None
    start = science.time
    if science.exptime:
        from astropy import units as u

        start = start - float(science.exptime) / 2.0 * u.s
    return float(start.utc.jd)


# --------------------------------------------------------------------------- main process


def _slug(text: str, limit: int = 48) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")[:limit] or "pair"


class _Consumer:
    """Takes task records as they arrive; ingests, associates and writes alerts in input order."""

    def __init__(self, *, store, out_dir: Path, config: SearchConfig, run_id: int | None):
        self.store = store
        self.out_dir = out_dir
        self.config = config
        self.run_id = run_id
        self.records: list[dict | None] = []
        self._pending: dict[int, dict] = {}
        self._next = 0
        self.n_alerts_written = 0

    def expect(self, n: int) -> None:
        self.records = [None] * n

    def __call__(self, index: int, record: dict) -> None:
        self._pending[index] = record
        while self._next in self._pending:
            rec = self._pending.pop(self._next)
            self.records[self._next] = self._process(rec)
            self._next += 1

    def _process(self, record: dict) -> dict:
        # the task's record may be the cached object itself: work on a copy
        rec = dict(record)
        rec["timings"] = dict(record.get("timings") or {})
        if rec.get("status") != "ok":
            log.warning("pair %s failed: %s", rec["pair_id"], rec.get("error", ""))
            return rec
        for text in rec.get("warnings") or ():
            log.warning("pair %s: %s", rec["pair_id"], text)
        try:
            self._ingest_and_alert(rec)
        except (DataError, InputFileError) as exc:
            log.warning("pair %s failed: %s", rec["pair_id"], exc)
            rec.update(status="failed", error=str(exc), error_type=type(exc).__name__)
        return rec

    def _ingest_and_alert(self, rec: dict) -> None:
        from skyscene.store import PairRecord

        columns = rec["columns"]
        candid = [int(c) for c in columns["candid"]]
        t = time.perf_counter()
        part_candid, stamps = _read_part(Path(rec["part"]))
        if [int(c) for c in part_candid] != candid:
            raise InputFileError(
                f"part file {rec['part']} does not match its record (other candidates): "
                "rerun with --overwrite"
            )
        pair = rec["pair"]
        record = PairRecord(
            pair_id=rec["pair_id"],
            science=rec["science"],
            reference=rec["reference"],
            jd=pair["jd"],
            fid=pair["fid"],
            band=pair["band"],
            exptime=pair["exptime"],
            magzpsci=pair["magzpsci"],
            meta={
                "alignment": pair["alignment"],
                "flux_ratio": pair["flux_ratio"],
                # for the review service's upper limits (docs/store.md, "pairs.meta")
                "footprint": pair.get("footprint"),
                "diffmaglim": pair.get("diffmaglim"),
                "jd": pair["jd"],
                "fid": pair["fid"],
                "band": pair["band"],
            },
        )
        cutouts = stamps if (self.config.store_cutouts and self.config.candidates.cutouts) else None
        scores = None
        if rec.get("scores"):
            scores = {**rec["scores"], "score": columns["drb"]}
        ingest = self.store.ingest_pair(record, columns, cutouts, run_id=self.run_id, scores=scores)
        object_ids = self.store.object_ids(candid)
        if len(object_ids) != len(candid):
            raise DataError(
                f"pair {rec['pair_id']!r} is already in the database {self.store.url} with other "
                "candidates (made with another configuration?): use another database or "
                "--overwrite with the default one"
            )
        if scores is not None and not ingest.inserted:
            # stored by an earlier run (e.g. without a model, into an external --db):
            # add this version's scores (a rescore of the same version replaces them)
            self.store.add_scores(
                candid,
                [float(v) for v in scores["score"]],
                model_name=scores["model_name"],
                model_version=scores["model_version"],
                priorities=scores.get("priority"),
            )
        rec["objectId"] = [object_ids[c] for c in candid]
        rec["ingested"] = ingest.inserted
        rec["timings"]["database"] = time.perf_counter() - t
        t = time.perf_counter()
        if self.config.write_alerts:
            self._alerts(rec, candid, object_ids, stamps)
        rec["timings"]["alerts"] = time.perf_counter() - t

    def _alerts(self, rec: dict, candid: list[int], object_ids: dict, stamps: dict) -> None:
        from skyscene.alerts import alerts_from_table, write_alerts

        directory = self.out_dir / "alerts"
        todo = [i for i, c in enumerate(candid) if not (directory / f"{c}.avro").exists()]
        if not todo:
            return
        columns = {name: np.asarray(v)[todo] for name, v in rec["columns"].items()}
        prv = _earlier_detections(
            self.store,
            {candid[i]: object_ids[candid[i]] for i in todo},
            {candid[i]: float(rec["columns"]["jd"][i]) for i in todo},
            model_version=self.config.model_version,
        )
        cutouts = None
        if self.config.candidates.cutouts:
            # The worker's gzip-FITS stamps go into the packets as they are (not decoded
            # again: decode=False); the packet bytes are the same either way.
            cutouts = {kind: [stamps[kind][i] for i in todo] for kind in _CUTOUT_KINDS}
        alerts = alerts_from_table(
            columns,
            object_ids=object_ids,
            cutouts=cutouts,
            prv_candidates=prv,
            config=self.config.alerts,
            decode=False,
        )
        files = write_alerts(alerts, directory, config=self.config.alerts)
        self.store.record_alert_files((int(p.stem), p) for p in files.paths)
        self.n_alerts_written += len(files.paths)


def _earlier_detections(
    store, object_ids: Mapping[int, str], jds: Mapping[int, float], *, model_version=None
) -> dict:
    """``{candid: prv_candidates}``: stored detections of the object before the candidate's jd.

    Only objects first seen before the candidate are queried (one query for the lot,
    then one per 500 objects with a history).
    """
    from sqlalchemy import select

    from skyscene.store import models

    wanted = sorted(set(object_ids.values()))
    first: dict[str, float] = {}
    table = models.Object.__table__
    with store.engine.connect() as connection:
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            query = select(table.c.object_id, table.c.first_jd, table.c.n_detections).where(
                table.c.object_id.in_(chunk)
            )
            for oid, first_jd, n in connection.execute(query):
                if first_jd is not None and n and n > 1:
                    first[oid] = float(first_jd)
    with_history = {
        candid: (oid, jds[candid])
        for candid, oid in object_ids.items()
        if oid in first and first[oid] < jds[candid]
    }
    if not with_history:
        return {}
    return store.prv_candidates_many(with_history, model_version=model_version)


# --------------------------------------------------------------------------- summary


@dataclass(frozen=True, kw_only=True)
class SearchSummary:
    """What :func:`run_search` did (also written as ``summary.json``).

    Attributes
    ----------
    out_dir : Path
    n_pairs, n_ok, n_failed, n_reused : int
        Pairs in the input; searched (or reused) and stored; failed; reused from an
        earlier run with the same configuration.
    n_candidates : int
        Rows of ``candidates.csv``.
    n_alerts_written : int
        Alert files written by this run (a rerun writes only the missing ones).
    failures : tuple of dict
        ``pair_id``, ``science``, ``reference``, ``line``, ``error`` (naming the file).
    pairs : tuple of dict
        Per pair: ``pair_id``, ``status``, ``n_candidates``, ``timings``, ``warnings``.
    timings : dict
        Seconds per stage summed over the pairs computed or stored by this run, and
        ``wall`` (the whole run).
    db : str
        The database URL (password hidden).
    """

    out_dir: Path
    n_pairs: int
    n_ok: int
    n_failed: int
    n_reused: int
    n_candidates: int
    n_alerts_written: int
    failures: tuple = ()
    pairs: tuple = ()
    timings: dict = field(default_factory=dict)
    db: str = ""

    @property
    def exit_status(self) -> int:
        """0 when every pair succeeded, else :data:`skyscene.cli.EXIT_FAILURES` (3)."""
        return 0 if self.n_failed == 0 else 3

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(
            {
                "pipeline": "search",
                "out_dir": str(self.out_dir),
                "n_pairs": self.n_pairs,
                "n_ok": self.n_ok,
                "n_failed": self.n_failed,
                "n_reused": self.n_reused,
                "n_candidates": self.n_candidates,
                "n_alerts_written": self.n_alerts_written,
                "candidates_per_pair": {
                    p["pair_id"]: p["n_candidates"] for p in self.pairs if p["status"] == "ok"
                },
                "failures": list(self.failures),
                "timings": self.timings,
                "pairs": list(self.pairs),
                "db": self.db,
            }
        )


def _candidate_table(records: Sequence[dict], config: SearchConfig):
    """All pairs' candidates as one astropy Table (units, descriptions, meta), input order."""
    from skyscene import __version__
    from skyscene.candidates import COLUMNS, CandidateTable

    ok = [r for r in records if r.get("status") == "ok"]
    columns: dict[str, np.ndarray] = {}
    for col in COLUMNS:
        parts = [np.asarray(r["columns"][col.name]) for r in ok]
        empty = np.zeros(0, dtype="<U1" if col.dtype == "str" else col.dtype)
        columns[col.name] = np.concatenate(parts) if parts else empty
    object_ids = [oid for r in ok for oid in r["objectId"]]
    table = CandidateTable(columns=columns, meta={"config": config.to_dict()}).to_table()
    table["objectId"] = np.array(object_ids, dtype=str) if object_ids else np.zeros(0, "<U1")
    table["objectId"].description = "object of the database the candidate belongs to"
    if config.model is not None:  # ZTF's names for the deep real/bogus score
        drb = [np.asarray(r["columns"]["drb"], float) for r in ok]
        version = [np.asarray(r["columns"]["drbversion"], str) for r in ok]
        table["drb"] = np.concatenate(drb) if drb else np.zeros(0)
        table["drb"].description = "real/bogus score of the model drbversion; 0 to 1, 1 = real"
        table["drbversion"] = np.concatenate(version) if version else np.zeros(0, "<U1")
        table["drbversion"].description = "version of the real/bogus model that assigned drb"
    table.meta["pipeline"] = "search"
    table.meta["n_pairs"] = len(ok)
    table.meta["skyscene_version"] = __version__
    return table


def _write_page(out_dir: Path, table, records: Sequence[dict], config: SearchConfig, lines):
    """``index.html`` and ``page/<candid>.png`` of the strongest candidates."""
    from skyscene.alerts import decode_stamp
    from skyscene.candidates import CandidateFlags
    from skyscene.io import atomic_path, atomic_write_text
    from skyscene.plotting.search import candidate_page, png_bytes, triplet_image

    page = out_dir / "page"
    n = min(config.page_candidates, len(table))
    order = np.argsort(-np.abs(np.asarray(table["scorr"], float)), kind="stable")[:n]
    rows = [
        {
            name: table[name][i].item() if hasattr(table[name][i], "item") else table[name][i]
            for name in table.colnames
        }
        for i in order
    ]
    images: list[str | None] = [None] * len(rows)
    if config.candidates.cutouts and rows:
        part_of = {r["pair_id"]: r["part"] for r in records if r.get("status") == "ok"}
        by_pair: dict[str, list[int]] = {}
        for k, row in enumerate(rows):
            by_pair.setdefault(str(row["pair_id"]), []).append(k)
        for pair_id, ks in by_pair.items():
            candid, stamps = _read_part(Path(part_of[pair_id]))
            index = {int(c): i for i, c in enumerate(candid)}
            for k in ks:
                i = index[int(rows[k]["candid"])]
                triplet = [
                    decode_stamp(stamps[kind][i], name=f"candid {rows[k]['candid']}: {kind}")
                    for kind in _CUTOUT_KINDS
                ]
                rgb = triplet_image(*triplet, kind=config.page_stretch)
                name = f"{rows[k]['candid']}.png"
                with atomic_path(page / name) as tmp:
                    tmp.write_bytes(png_bytes(rgb))
                images[k] = f"page/{name}"
    if page.is_dir():  # pictures of candidates no longer on the page
        keep = {Path(i).name for i in images if i}
        for old in page.glob("*.png"):
            if old.name not in keep:
                old.unlink()
    flag_names = {int(f): str(f.name) for f in CandidateFlags}
    html = candidate_page(
        rows,
        images,
        title="skyscene transient search",
        summary=lines,
        flag_names=flag_names,
    )
    return atomic_write_text(out_dir / "index.html", html)


# --------------------------------------------------------------------------- run


def _entries(pairs) -> tuple[list[PairEntry], str | list[str], list[Path]]:
    """Entries, the inputs' record for config.json, folders the workers must see."""
    if isinstance(pairs, str | Path):
        csv_path = Path(pairs)
        entries = read_pairs(csv_path)
        return entries, str(csv_path.resolve()), [csv_path.resolve().parent]
    entries = []
    for item in pairs:
        if isinstance(item, PairEntry):
            entries.append(item)
        else:
            science, reference = item
            entries.append(PairEntry.of(science, reference))
    ids = [e.pair_id for e in entries]
    if len(set(ids)) != len(ids):
        dups = sorted({p for p in ids if ids.count(p) > 1})
        raise ParameterError(f"duplicate pair_id(s) {dups}: every pair needs its own id")
    inputs = [f"{e.pair_id}={e.science}|{e.reference}" for e in entries]
    folders = sorted(
        {p.resolve().parent for e in entries for p in (e.science, e.reference) if p is not None}
    )
    return entries, inputs, [f for f in folders if f.is_dir()]


def _hidden_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    with contextlib.suppress(Exception):
        return make_url(url).render_as_string(hide_password=True)
    return url


def run_search(
    pairs,
    out_dir,
    *,
    config: SearchConfig | None = None,
    db: str | None = None,
    scheduler: str = "processes",
    n_workers: int | None = None,
    progress: bool = False,
    overwrite: bool = False,
    retry_failed: bool = True,
    connect_timeout: float = 10.0,
) -> SearchSummary:
    """Search many science/reference pairs; resumable; see the module docstring.

    Parameters
    ----------
    pairs : path or sequence
        A pairs CSV (:func:`read_pairs`), or :class:`PairEntry` objects or
        ``(science, reference)`` path pairs.
    out_dir : path
        The output folder.
    config : SearchConfig, optional
    db : str, optional
        SQLAlchemy URL of the database; default ``sqlite:///OUT_DIR/skyscene.db``.
    scheduler, n_workers, connect_timeout
        See :func:`skyscene.pipelines._scheduler.run_tasks`.
    progress : bool
        A progress bar over the pairs.
    overwrite : bool
        Replace the folder's contents when it was made with another configuration or
        other inputs (instead of refusing).
    retry_failed : bool
        Search pairs that failed in an earlier run again (default).

    Returns
    -------
    SearchSummary
        ``exit_status`` is 0 only when every pair succeeded.

    Raises
    ------
    InputFileError
        The pairs CSV is missing, unreadable or repeats a ``pair_id``.
    skyscene.pipelines._outdir.OutputFolderError
        The folder is in use by another run, was made with another configuration, or is
        not writable.
    """
    from skyscene import __version__
    from skyscene.io import write_table
    from skyscene.pipelines._outdir import OutputFolder
    from skyscene.pipelines._scheduler import run_tasks, task_key
    from skyscene.store import CandidateStore

    t_run = time.perf_counter()
    config = config or SearchConfig()
    if not isinstance(config, SearchConfig):
        raise ParameterError(
            f"config must be a SearchConfig, got {type(config).__name__}", name="config"
        )
    out_dir = Path(out_dir)
    entries, inputs, folders = _entries(pairs)
    config = _with_model_version(config)
    if config.model not in (None, "default"):
        folders = [*folders, Path(config.model).parent]
    url = db or f"sqlite:///{(out_dir / 'skyscene.db').resolve()}"
    config_dict = config.to_dict()
    folder = OutputFolder(
        out_dir,
        config={
            "pipeline": "search",
            "skyscene_version": __version__,
            "search": config_dict,
            "inputs": inputs,
            "db": _hidden_url(url) if db else "OUT_DIR/skyscene.db",
        },
        overwrite=overwrite,
    )
    with folder:
        parts = out_dir / "parts"
        parts.mkdir(exist_ok=True)
        runnable = [e for e in entries if not e.error]
        tasks, keys = [], []
        for e in runnable:
            sci, ref = Path(e.science or ""), Path(e.reference or "")
            key = task_key(config_dict, "search", e.pair_id, _file_id(sci), _file_id(ref))
            keys.append(key)
            tasks.append(
                _PairTask(
                    pair_id=e.pair_id,
                    science=str(sci),
                    reference=str(ref),
                    config=config_dict,
                    part=str((parts / f"{_slug(e.pair_id)}-{key[:16]}.npz").resolve()),
                )
            )
        store = CandidateStore(url, config=config.store)
        try:
            run_id = store.start_run(command="search", config=config_dict)
            consumer = _Consumer(store=store, out_dir=out_dir, config=config, run_id=run_id)
            consumer.expect(len(tasks))
            results = run_tasks(
                _search_task,
                tasks,
                scheduler=scheduler,
                progress=progress,
                desc="search",
                n_workers=n_workers,
                cache_dir=parts,
                keys=keys,
                config=config_dict,
                retry_failed=retry_failed,
                require_paths=[out_dir.resolve(), *folders],
                connect_timeout=connect_timeout,
                on_result=consumer,
            )
            records = [r for r in consumer.records if r is not None]
            if len(records) != len(tasks):  # pragma: no cover - run_tasks reports every result
                raise RuntimeError("search: some pair results never arrived")
            summary = _summarise(entries, records, results.n_reused, consumer, out_dir, url, t_run)
            table = _candidate_table(records, config)
            with folder.os_errors():
                write_table(table, out_dir / "candidates.csv")
                lines = [
                    f"{summary.n_ok} of {summary.n_pairs} pairs searched, {summary.n_failed} "
                    f"failed; {summary.n_candidates} candidates "
                    f"(threshold {config.candidates.threshold:g} sigma); showing the "
                    f"{min(config.page_candidates, len(table))} strongest.",
                    *(f"failed {f['pair_id']}: {f['error']}" for f in summary.failures),
                ]
                _write_page(out_dir, table, records, config, lines)
            summary = dataclasses.replace(
                summary, timings={**summary.timings, "wall": time.perf_counter() - t_run}
            )
            store.finish_run(
                run_id,
                status="done" if summary.n_failed == 0 else "finished_with_failures",
                summary={k: summary.to_dict()[k] for k in ("n_pairs", "n_ok", "n_failed")},
            )
        finally:
            store.close()
        folder.complete(summary.to_dict())
    log.info(
        "search: %d pairs, %d ok, %d failed, %d reused; %d candidates, %d alerts written -> %s",
        summary.n_pairs,
        summary.n_ok,
        summary.n_failed,
        summary.n_reused,
        summary.n_candidates,
        summary.n_alerts_written,
        out_dir,
    )
    return summary


def _with_model_version(config: SearchConfig) -> SearchConfig:
    """``config`` with the model's absolute path and version (the checkpoint is loaded here
    once: a bad model file stops the run before any pair, naming it)."""
    if config.model is None:
        return config
    path = config.model if config.model == "default" else str(Path(config.model).resolve())
    classifier = _load_model(path)
    if config.model_version is not None and classifier.model_version_ != config.model_version:
        raise InputFileError(
            f"model file {classifier.source_}: model version {classifier.model_version_}, "
            f"expected {config.model_version}"
        )
    size = config.candidates.cutout_size
    if classifier.size != size:
        raise ParameterError(
            f"model file {classifier.source_} scores {classifier.size}x{classifier.size} "
            f"triplets, the cutouts are {size}x{size} (--cutout-size)",
            name="SearchConfig.model",
            value=config.model,
        )
    _MODELS.clear()
    _MODELS[(path, classifier.model_version_)] = classifier  # the synchronous scheduler's
    return dataclasses.replace(config, model=path, model_version=classifier.model_version_)


def _summarise(entries, records, n_reused, consumer, out_dir, url, t_run) -> SearchSummary:
    failures = []
    for e in entries:
        if e.error:
            failures.append(
                {
                    "pair_id": e.pair_id,
                    "science": None if e.science is None else str(e.science),
                    "reference": None if e.reference is None else str(e.reference),
                    "line": e.line,
                    "error": e.error,
                }
            )
            log.warning("pair %s failed: %s", e.pair_id, e.error)
    line_of = {e.pair_id: e.line for e in entries}
    pairs = []
    totals = dict.fromkeys(STAGES, 0.0)
    for r in records:
        for stage, seconds in (r.get("timings") or {}).items():
            totals[stage] = totals.get(stage, 0.0) + float(seconds)
        pairs.append(
            {
                "pair_id": r["pair_id"],
                "status": r["status"],
                "n_candidates": r.get("n_candidates", 0) if r["status"] == "ok" else 0,
                "timings": r.get("timings") or {},
                "warnings": r.get("warnings") or [],
                "error": r.get("error", ""),
            }
        )
        if r["status"] != "ok":
            failures.append(
                {
                    "pair_id": r["pair_id"],
                    "science": r["science"],
                    "reference": r["reference"],
                    "line": line_of.get(r["pair_id"]),
                    "error": r.get("error", ""),
                }
            )
    n_ok = sum(r["status"] == "ok" for r in records)
    failures.sort(key=lambda f: (f["line"] is None, f["line"] or 0))
    return SearchSummary(
        out_dir=out_dir,
        n_pairs=len(entries),
        n_ok=n_ok,
        n_failed=len(entries) - n_ok,
        n_reused=n_reused,
        n_candidates=sum(p["n_candidates"] for p in pairs),
        n_alerts_written=consumer.n_alerts_written,
        failures=tuple(failures),
        pairs=tuple(pairs),
        timings=totals,
        db=_hidden_url(url),
    )


# --------------------------------------------------------------------------- demo


def demo_stage(out_dir, *, progress: bool = False) -> str:
    """Demo: three simulated 384² pairs (two with transients, one null pair), searched."""
    from astropy.table import Table

    from skyscene.pipelines.diffim import simulate_pair_files

    root = Path(out_dir) / "search"
    data = root / "pairs"
    rows = ["pair_id,science,reference"]
    truth = {}
    for name, seed, n in (("pair1", 31, 8), ("pair2", 32, 8), ("null", 33, 0)):
        files = simulate_pair_files(
            data / name, seed=seed, shape=(384, 384), n_transients=n, transient_snr=(8.0, 40.0)
        )
        truth[name] = files.pair.transients
        rows.append(f"{name},{files.science.relative_to(data)},{files.reference.relative_to(data)}")
    (data / "pairs.csv").write_text("\n".join(rows) + "\n")
    out = root / "out"
    summary = run_search(
        data / "pairs.csv", out, scheduler="synchronous", progress=progress, overwrite=True
    )
    table = Table.read(out / "candidates.parquet")
    injected = found = 0
    for name, transients in truth.items():
        mine = table[table["pair_id"] == name]
        for x, y in zip(transients["x"], transients["y"], strict=True):
            injected += 1
            d = np.hypot(np.asarray(mine["xpos"]) - x, np.asarray(mine["ypos"]) - y)
            found += bool(d.size and d.min() < 1.5)
    per_pair = ", ".join(
        f"{p['pair_id']} {p['n_candidates']}" for p in summary.pairs if p["status"] == "ok"
    )
    return (
        f"Transient search (skyscene.pipelines.search): {summary.n_ok}/{summary.n_pairs} pairs, "
        f"{summary.n_candidates} candidates ({per_pair}); {found}/{injected} injected "
        f"transients (S/N 8-40) found; {summary.n_alerts_written} alerts\n"
        f"  page {out / 'index.html'}, table {out / 'candidates.csv'}, alerts {out / 'alerts'}"
    )
