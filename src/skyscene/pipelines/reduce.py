"""Reduction of a folder of FITS frames to calibrated, barycentric light curves.

>>> from skyscene.pipelines.reduce import Reducer          # doctest: +SKIP
>>> reducer = Reducer("raw/", "out/")                       # doctest: +SKIP
>>> reducer.create_catalogs()                               # doctest: +SKIP
>>> result = reducer.photometry("optimal")                  # doctest: +SKIP
>>> result.light_curves["g"][0]["flux"]                     # doctest: +SKIP

Steps: header checks (instrument profiles) → optional calibration → per filter a
reference frame, its source catalog and PSF shape → alignment of every frame to its
reference (frames that cannot be aligned are logged, summarised and excluded) →
cross-camera source identities → forced photometry at positions following each
frame's transform, with a pluggable local background → light curves in BMJD(TDB)
with differential fluxes → diagnostic plots. Filters and frame chunks run as Dask
tasks (DESIGN.md, "Scale").
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import warnings
import weakref
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from skyscene._validation import check_choice, check_int, check_positive
from skyscene.errors import (
    AlignmentError,
    DataError,
    HeaderError,
    InputFileError,
    ParameterError,
    SkysceneError,
)
from skyscene.io import atomic_write_text, is_fits, parse_header, read_exposure, write_table
from skyscene.pipelines._outdir import OutputFolder
from skyscene.pipelines._scheduler import dask_client, run_tasks, task_key

__all__ = [
    "BandSetup",
    "Discovery",
    "FrameAlignment",
    "FrameRecord",
    "ReduceConfig",
    "Reducer",
    "ReductionResult",
    "demo_stage",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class ReduceConfig:
    """Settings of a reduction (recorded in ``config.json`` beside the outputs).

    Parameters
    ----------
    profile : str or None
        Instrument profile name or TOML file (auto-detected from INSTRUME when None).
    threshold : float
        Detection threshold, sigma, for catalogs and alignment.
    reference_candidates : int
        The reference frame of a filter is the frame with the most detections among
        its first ``reference_candidates`` frames.
    radius : float
        Aperture / optimal-extraction radius in PSF sigmas.
    match_radius : float
        Cross-camera matching radius, pixels of the primary camera.
    background_box : int
        Mesh size of the global background used for detection.
    chunk_size : int
        Frames per Dask task.
    scheduler : str
        ``synchronous``, ``processes`` (LocalCluster) or ``tcp://HOST:PORT``.
    location : tuple or None
        Observatory ``(lon_deg, lat_deg, height_m)`` for the barycentric correction;
        None: header ``OBSGEO-*``/``SITELAT`` keywords, else the geocentre.
    comparisons : tuple or None
        Source ids of the comparison ensemble; None: automatic selection.
    cosmic_rays : bool
        Mask cosmic rays on every frame with astroscrappy (extra ``cosmics``).
    psf_mode : {"camera", "frame"}
        ``camera``: one PSF shape per camera (median over its first frames), best when
        the seeing is stable. ``frame``: that shape scaled by each frame's seeing (the
        median adaptive-moment size of isolated stars relative to the reference frame),
        needed when the seeing varies: optimal photometry weights with a wrong width bias
        the flux by about the relative width error.
    flux_correction : bool
        Measure on bright isolated stars the ratio of a large-aperture (6 σ) flux to the
        optimal flux (elliptical-Gaussian weights) and apply it to optimal photometry when
        it differs significantly (> 3σ) from 1: this keeps optimal fluxes *total* for PSFs
        with wings (Moffat, real seeing).
    """

    profile: str | None = None
    threshold: float = 5.0
    reference_candidates: int = 10
    radius: float = 3.0
    match_radius: float = 3.0
    background_box: int = 64
    chunk_size: int = 20
    scheduler: str = "processes"
    location: tuple[float, float, float] | None = None
    comparisons: tuple[int, ...] | None = None
    cosmic_rays: bool = False
    psf_mode: str = "camera"
    flux_correction: bool = True

    def __post_init__(self) -> None:
        check_choice("ReduceConfig.psf_mode", self.psf_mode, ("camera", "frame"))
        check_positive("ReduceConfig.threshold", self.threshold)
        check_positive("ReduceConfig.radius", self.radius)
        check_positive("ReduceConfig.match_radius", self.match_radius)
        check_int("ReduceConfig.reference_candidates", self.reference_candidates, low=1)
        check_int("ReduceConfig.background_box", self.background_box, low=4)
        check_int("ReduceConfig.chunk_size", self.chunk_size, low=1)
        if self.location is not None:
            object.__setattr__(self, "location", tuple(float(v) for v in self.location))
        if self.comparisons is not None:
            object.__setattr__(self, "comparisons", tuple(int(v) for v in self.comparisons))

    def to_dict(self) -> dict[str, Any]:
        """The configuration as a plain JSON-ready dict (``config.json``)."""
        return dataclasses.asdict(self)


#: ReduceConfig keys that do not change results (never compared between runs of a folder)
_RESULT_NEUTRAL = ("scheduler", "chunk_size", "skyscene_version")


@dataclass(frozen=True, kw_only=True)
class FrameRecord:
    """One usable frame found in the data folder."""

    path: str
    band: str
    mjd_mid: float
    exptime: float
    binning: tuple[int, int]
    shape: tuple[int, int]


def _read(path: str, profile, calibration, cosmic_rays: bool = False, *, wcs: bool = True):
    exposure = read_exposure(path, profile=profile, wcs=wcs)
    if calibration is not None:
        exposure = calibration.apply(exposure)
    if cosmic_rays:
        from skyscene.calibration import mask_cosmic_rays

        exposure = mask_cosmic_rays(exposure)
    return exposure


@dataclass(frozen=True, kw_only=True)
class _FrameJob:
    """How the reduction reads a frame (profile, cosmic rays); calibration comes apart.

    The calibration masters are large: :func:`run_tasks` sends them to every worker
    once (``shared=``) and the tasks hand them to :meth:`read`.
    """

    profile: str | None
    cosmic_rays: bool

    def read(self, path: str, calibration=None, *, wcs: bool = True):
        return _read(path, self.profile, calibration, self.cosmic_rays, wcs=wcs)


@dataclass(frozen=True, kw_only=True, eq=False)
class _AlignTask:
    """One frame to align to its filter's reference (a Dask task's input).

    ``psf_xy`` are isolated stars (reference pixels) whose adaptive-moment sizes give
    the frame's seeing.
    """

    job: _FrameJob
    path: str
    reference: str
    reference_xy: np.ndarray
    psf_xy: np.ndarray
    threshold: float

    def key(self, job_key: str) -> str:
        return task_key(
            "align",
            job_key,
            _file_id(self.path),
            self.reference,
            self.reference_xy,
            self.psf_xy,
            self.threshold,
        )


@dataclass(frozen=True, kw_only=True, eq=False)
class _FramePhotometry:
    """One frame of a photometry chunk: its file, transform to the reference, PSF shape."""

    path: str
    matrix: np.ndarray
    shape: Any


@dataclass(frozen=True, kw_only=True, eq=False)
class _PhotometryTask:
    """Forced photometry of a chunk of frames of one filter (a Dask task's input)."""

    job: _FrameJob
    band: str
    frames: tuple[_FramePhotometry, ...]
    reference_xy: np.ndarray
    photometer: Any

    def key(self, job_key: str) -> str:
        return task_key(
            "photometry",
            job_key,
            [(_file_id(f.path), f.matrix, f.shape) for f in self.frames],
            self.reference_xy,
            self.photometer,
        )


@dataclass(frozen=True, kw_only=True, eq=False)
class _CandidateTask:
    """One reference candidate of a filter: catalog, PSF-shape fits, star sizes."""

    job: _FrameJob
    path: str
    threshold: float
    background_box: int


def _candidate_task(task: _CandidateTask, calibration=None) -> dict[str, Any]:
    """Read one reference candidate; its catalog, PSF shape fits and isolated stars' sizes.

    ``catalog`` is None (with ``failure``) when the frame yields no catalog; ``shape`` is
    None (with ``failure``) when no star could be fitted. The exposure comes back for
    the flux correction and, if it is the reference, the catalog figure and the WCS.
    """
    from skyscene.background import estimate_background
    from skyscene.detection import find_sources
    from skyscene.psf import estimate_psf_shape, moment_sizes

    out: dict[str, Any] = {"path": task.path, "catalog": None, "shape": None, "failure": None}
    try:
        exp = task.job.read(task.path, calibration)
        bkg = estimate_background(exp.data, mask=exp.mask, box_size=task.background_box)
        cat = find_sources(
            exp.data, mask=exp.mask, threshold=task.threshold, background=bkg, edge=10
        )
    except SkysceneError as exc:
        log.info("%s: no catalog (%s)", task.path, exc)
        out["failure"] = _one_line(exc, task.path)
        return out
    clean = cat[(cat["flag"] == 0)]
    xy = np.c_[clean["x"], clean["y"]]
    isolated = xy[_isolated(xy, 15.0)]
    try:
        out["shape"] = estimate_psf_shape(exp.data, isolated, mask=exp.mask, half_size=8)
    except DataError as exc:
        log.info("%s: no PSF shape (%s)", task.path, exc)
        out["failure"] = _one_line(exc, task.path)
    out.update(
        catalog=cat,
        exposure=exp,
        isolated=isolated,
        sizes=list(moment_sizes(exp.data - bkg.background, isolated, mask=exp.mask)),
    )
    return out


def _align_task(task: _AlignTask, calibration=None) -> dict[str, Any]:
    """Detect sources on one frame, align it to its reference, measure its PSF size (a Dask task).

    Data faults (unreadable file, bad header, no alignment) are returned as a failed
    result (``status == "failed"``, ``reason``), never raised: the batch goes on and a
    rerun retries them.
    """
    from skyscene.align import (
        AlignmentResult,
        find_transform_from_positions,
        translation_by_cross_correlation,
    )
    from skyscene.background import estimate_background
    from skyscene.detection import find_sources
    from skyscene.psf import moment_sizes

    path, job = task.path, task.job
    out: dict[str, Any] = {"path": path, "ok": False, "reason": "", "matrix": None}
    try:
        exposure = job.read(path, calibration)
        out["n_nonphysical"] = int(exposure.meta.get("n_nonphysical", 0) or 0)
        out["n_saturated"] = int(exposure.meta.get("n_saturated", 0) or 0)
        bkg = estimate_background(exposure.data, mask=exposure.mask)
        out["bkg_level"], out["bkg_rms"] = bkg.level, bkg.rms_level
        if path == task.reference:
            result = AlignmentResult.identity()
            method, n_matches = "reference", len(task.reference_xy)
        else:
            stars = find_sources(
                exposure.data, mask=exposure.mask, threshold=task.threshold, background=bkg
            )
            try:
                result = find_transform_from_positions(
                    np.c_[stars["x"], stars["y"]], task.reference_xy
                )
            except AlignmentError as exc:
                ref = job.read(task.reference, calibration)
                if ref.shape != exposure.shape:
                    raise AlignmentError(f"{exc}; and shapes differ from the reference") from exc
                result = translation_by_cross_correlation(
                    exposure.data, ref.data, mask=exposure.mask, reference_mask=ref.mask
                )
            method, n_matches = result.method, result.n_matches
        sizes = moment_sizes(
            exposure.data - bkg.background, result.inverse(task.psf_xy), mask=exposure.mask
        )
        out.update(
            ok=True,
            matrix=result.matrix.tolist(),
            method=method,
            n_matches=n_matches,
            rms=result.rms,
            psf_size=float(np.nanmedian(sizes)) if np.isfinite(sizes).any() else float("nan"),
        )
    except (SkysceneError, OSError) as exc:
        out["reason"] = f"{type(exc).__name__}: {_one_line(exc, path)}"
        out["status"] = "failed"
    return out


def _photometry_task(task: _PhotometryTask, calibration=None) -> list[dict[str, Any]]:
    """Forced photometry of a chunk of frames (a Dask task): one row dict per frame."""
    rows = []
    for frame in task.frames:
        inv = np.linalg.inv(np.asarray(frame.matrix))
        xy = task.reference_xy @ inv[:2, :2].T + inv[:2, 2]
        # the header (WCS included) was checked when the frame was aligned
        exposure = task.job.read(frame.path, calibration, wcs=False)
        table = task.photometer(exposure, xy, frame.shape)
        rows.append({"path": frame.path, **{c: np.asarray(table[c]) for c in table.colnames}})
    return rows


@dataclass(frozen=True, kw_only=True, eq=False)
class _OutputTask:
    """Files a step writes at its end (a Dask task): tables, or one diagnostic figure.

    ``figure`` names a function of :mod:`skyscene.plotting.diagnostics` called with
    ``args`` and ``kwargs``; the figure goes to ``stem`` (PNG, and PDF with ``pdf``).
    """

    tables: tuple = ()  # (astropy Table, CSV path) pairs
    figure: str | None = None
    args: tuple = ()
    kwargs: dict = dataclasses.field(default_factory=dict)
    stem: Path | None = None
    pdf: bool = True


def _output_task(task: _OutputTask, calibration=None) -> list[list[Path]]:
    """Write one :class:`_OutputTask`: the paths of each table (or of the figure)."""
    if task.figure is not None:
        from skyscene.plotting import diagnostics

        fig = getattr(diagnostics, task.figure)(*task.args, **task.kwargs)
        return [_save_figure(fig, task.stem, pdf=task.pdf)]
    return [write_table(table, path) for table, path in task.tables]


def _one_line(exc: BaseException, path: str | None = None) -> str:
    """The first line of an error's message, with the file named if it is not already."""
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if path is not None and Path(path).name not in text:
        text = f"{Path(path).name}: {text}"
    return text


@dataclass(frozen=True, kw_only=True)
class Discovery:
    """What :meth:`Reducer.discover` found in the data folder.

    Attributes
    ----------
    frames : tuple of FrameRecord
        Usable frames, sorted by band and time.
    skipped : tuple of (str, str)
        Files skipped, with the reason.
    """

    frames: tuple[FrameRecord, ...]
    skipped: tuple[tuple[str, str], ...]


@dataclass(frozen=True, kw_only=True, eq=False)
class _ReferenceInfo:
    """What later steps need of a reference frame, so that it is read only once."""

    path: str
    wcs: Any
    shape: tuple[int, int]
    header: Any
    ra: float | None
    dec: float | None


@dataclass(frozen=True, kw_only=True, eq=False)
class BandSetup:
    """One filter after :meth:`Reducer.create_catalogs`.

    Attributes
    ----------
    band : str
    reference : str
        Path of the reference frame.
    catalog : astropy.table.Table
        Its sources, with the global ``id`` column (and ``ra``, ``dec`` with a WCS).
    shape : PSFShape
        The camera's PSF shape.
    flux_correction : FluxCorrection or None
        Total/optimal flux ratio measured on bright stars (None when disabled).
    """

    band: str
    reference: str
    catalog: Any
    shape: Any
    flux_correction: Any
    reference_info: _ReferenceInfo


@dataclass(frozen=True, kw_only=True)
class FrameAlignment:
    """One aligned frame: its transform to the reference and what was measured on it."""

    path: str
    band: str
    matrix: np.ndarray
    method: str
    n_matches: int
    rms: float
    bkg_level: float
    bkg_rms: float
    psf_size: float
    n_nonphysical: int = 0
    n_saturated: int = 0

    def stats(self) -> dict[str, Any]:
        """The per-frame numbers as a dict (``frames.csv``, :attr:`Reducer.frame_stats`)."""
        return {
            "bkg_level": self.bkg_level,
            "bkg_rms": self.bkg_rms,
            "method": self.method,
            "n_matches": self.n_matches,
            "rms": self.rms,
            "psf_size": self.psf_size,
            "n_nonphysical": self.n_nonphysical,
            "n_saturated": self.n_saturated,
        }


@dataclass(frozen=True, kw_only=True, eq=False)
class ReductionResult:
    """What :meth:`Reducer.photometry` returns.

    Attributes
    ----------
    lc_dir : Path
        ``OUT_DIR/lcs/<photometer>_<background>/``.
    files : tuple of Path
        Per-source light-curve files written (CSV, ECSV and Parquet: ``write_table``).
    band_files : tuple of Path
        One table per band (``<band>_lightcurves.csv``, ``.ecsv``, ``.parquet``).
    n_frames : int
        Frames measured (aligned frames of every band).
    skipped : tuple of (str, str)
        Files skipped, with the reason.
    light_curves : dict of str to dict of int to Table
        Per band, per source id: the light curve.
    """

    lc_dir: Path
    files: tuple[Path, ...]
    band_files: tuple[Path, ...]
    n_frames: int
    skipped: tuple[tuple[str, str], ...]
    light_curves: dict[str, dict[int, Any]]

    def to_table(self):
        """Every light curve of every band in one table (``band``, ``source_id`` first)."""
        from astropy.table import vstack

        tables = []
        for band in sorted(self.light_curves):
            t = _band_table(band, self.light_curves[band])
            t.meta = {}
            t.add_column([band] * len(t), name="band", index=0)
            tables.append(t)
        return vstack(tables, metadata_conflicts="silent")


class Reducer:
    """Reduce a folder of FITS frames (one or several cameras/filters) to light curves.

    Steps, each explicit: :meth:`discover` (headers), :meth:`create_catalogs` (reference,
    catalog, PSF shape and alignment per filter; discovers first if needed) and
    :meth:`photometry` (light curves; makes the catalogs first if needed). Construction
    only checks that the data folder exists and is not empty.

    Parameters
    ----------
    data_dir : path
        Folder of frames (FITS; other files are skipped with a log line).
    out_dir : path
        Output folder (an :class:`~skyscene.pipelines._outdir.OutputFolder`): ``cat/``,
        ``lcs/``, ``diag/``, ``frames.csv``, ``config.json``, ``summary.json``.
    config : ReduceConfig, optional
    calibration : path or CalibrationSet, optional
        Folder of bias/dark/flat frames (or a prepared set) applied to every frame
        (read at the first step that needs it).
    progress : bool
        Progress bars for the steps a person waits on.
    overwrite : bool
        Accept an output folder made with another configuration (its contents are
        removed); otherwise such a folder is refused.

    Raises
    ------
    InputFileError
        ``data_dir`` missing or empty (at construction), or without any usable FITS
        frame (at discovery; the message lists why each file was skipped).

    Notes
    -----
    ``with Reducer(...) as reducer:`` holds the output folder across the steps; without
    it each step takes the folder and gives it back.
    """

    def __init__(
        self,
        data_dir,
        out_dir,
        *,
        config: ReduceConfig | None = None,
        calibration=None,
        progress: bool = True,
        overwrite: bool = False,
    ):
        self.data_dir = Path(data_dir)
        self.out_dir = Path(out_dir)
        self.config = config or ReduceConfig()
        self.progress = progress
        if not self.data_dir.is_dir():
            raise InputFileError(f"{self.data_dir}: data folder does not exist")
        if not any(not p.name.startswith(".") for p in self.data_dir.iterdir()):
            raise InputFileError(f"{self.data_dir}: data folder is empty")
        self._calibration_source = calibration
        self._calibration: Any = None if isinstance(calibration, str | Path) else calibration
        self.folder = OutputFolder(
            self.out_dir, config=self.folder_config(), overwrite=overwrite, ignore=_RESULT_NEUTRAL
        )
        self._discovery: Discovery | None = None
        self._setups: dict[str, BandSetup] = {}
        self._alignments: dict[str, FrameAlignment] = {}
        self._failed: list[tuple[str, str]] = []  # frames that could not be aligned
        self._dask: Any = None  # (ExitStack, client, finalizer) shared by the steps
        self._entered = False

    def folder_config(self) -> dict[str, Any]:
        """What identifies this reduction's results: recorded as ``OUT_DIR/config.json``.

        A later run into the same folder with another value of any key (except the
        scheduler, the chunk size and the skyscene version) refuses unless ``overwrite``.
        """
        from skyscene import __version__

        cal = self._calibration_source
        if cal is None:
            cal_id = None
        elif isinstance(cal, str | Path):
            cal_id = str(Path(cal).resolve())
        else:
            cal_id = getattr(cal, "source", None) or f"CalibrationSet {task_key(cal)}"
        return {
            "pipeline": "reduce",
            "skyscene_version": __version__,
            **self.config.to_dict(),
            "data_dir": str(self.data_dir.resolve()),
            "calibration": cal_id,
        }

    def __enter__(self) -> Reducer:
        """Hold the output folder for several steps (each step takes it otherwise)."""
        self.folder.acquire()
        self._entered = True
        return self

    def __exit__(self, *exc_info) -> None:
        self._entered = False
        try:
            self.close()
        finally:
            self.folder.__exit__(*exc_info)

    # ------------------------------------------------------------------ state, read-only
    @property
    def calibration(self):
        """The calibration set (read from its folder at first use), or None."""
        if self._calibration is None and self._calibration_source is not None:
            from skyscene.calibration import CalibrationSet

            self._calibration = CalibrationSet.from_directory(
                self._calibration_source, profile=self.config.profile
            )
        return self._calibration

    @property
    def frames(self) -> list[FrameRecord]:
        """Usable frames (discovered, minus those that could not be aligned)."""
        failed = {p for p, _ in self._failed}
        return [r for r in self.discover().frames if r.path not in failed]

    @property
    def skipped(self) -> list[tuple[str, str]]:
        """Files skipped so far and why (discovery, then alignment)."""
        found = list(self._discovery.skipped) if self._discovery is not None else []
        return found + self._failed

    @property
    def bands(self) -> list[str]:
        return sorted({r.band for r in self.frames})

    @property
    def setups(self) -> dict[str, BandSetup]:
        """Per band: reference, catalog, PSF shape, flux correction (after the catalogs)."""
        return dict(self._setups)

    @property
    def catalogs(self) -> dict[str, Any]:
        return {b: s.catalog for b, s in self._setups.items()}

    @property
    def shapes(self) -> dict[str, Any]:
        return {b: s.shape for b, s in self._setups.items()}

    @property
    def references(self) -> dict[str, str]:
        return {b: s.reference for b, s in self._setups.items()}

    @property
    def flux_corrections(self) -> dict[str, Any]:
        return {
            b: s.flux_correction for b, s in self._setups.items() if s.flux_correction is not None
        }

    @property
    def alignments(self) -> dict[str, FrameAlignment]:
        """Per frame path: its alignment (after the catalogs)."""
        return dict(self._alignments)

    @property
    def transforms(self) -> dict[str, dict[str, np.ndarray]]:
        out: dict[str, dict[str, np.ndarray]] = defaultdict(dict)
        for a in self._alignments.values():
            out[a.band][a.path] = a.matrix
        return dict(out)

    @property
    def frame_stats(self) -> dict[str, dict[str, Any]]:
        return {p: a.stats() for p, a in self._alignments.items()}

    def _band_frames(self, band: str) -> list[FrameRecord]:
        return [r for r in self.frames if r.band == band]

    # ------------------------------------------------------------------ discovery
    def discover(self) -> Discovery:
        """Read every header of the data folder once; the usable frames and the skipped files.

        Files that are not FITS, are truncated or corrupt, lack the filter or time, are
        all-NaN, or whose binning/shape differs from the other frames of their filter
        are skipped and logged. Later calls return the same result.

        Raises
        ------
        InputFileError
            No usable frame (the message lists why files were skipped).
        """
        if self._discovery is None:
            self._discovery = _discover(self.data_dir, self.config.profile, self.progress)
        return self._discovery

    # ------------------------------------------------------------------ catalogs
    def create_catalogs(self) -> dict[str, Any]:
        """Reference frame, source catalog, PSF shape and frame alignment per filter.

        Writes ``cat/<band>_catalog.csv`` (+ Parquet) and ``cat/<band>_catalog.png``.
        Returns the catalogs (astropy Tables with a global ``id`` column).
        """
        try:
            with self.folder:
                return self._create_catalogs()
        except BaseException:
            if not self._entered:
                self.close()
            raise

    def _create_catalogs(self) -> dict[str, Any]:
        self.discover()
        self._setups, self._alignments, self._failed = {}, {}, []
        candidates = self._reference_candidates()
        found = {band: self._band_reference(band, candidates[band]) for band in self.bands}
        ids = _assign_ids({b: f["catalog"] for b, f in found.items()}, found, self.config)
        for band, f in found.items():
            f["catalog"]["id"] = ids[band]
            self._setups[band] = BandSetup(
                band=band,
                reference=f["reference"],
                catalog=f["catalog"],
                shape=f["shape"],
                flux_correction=f["flux_correction"],
                reference_info=f["info"],
            )
        self._align_frames()
        self._write_catalogs({b: f["exposure"] for b, f in found.items()})
        return self.catalogs

    def _reference_candidates(self) -> dict[str, list[dict[str, Any]]]:
        """Per band, :func:`_candidate_task` of its first ``reference_candidates`` frames."""
        cfg = self.config
        job = self._job()
        tasks, bands = [], []
        for band in self.bands:
            for rec in self._band_frames(band)[: cfg.reference_candidates]:
                tasks.append(
                    _CandidateTask(
                        job=job,
                        path=rec.path,
                        threshold=cfg.threshold,
                        background_box=cfg.background_box,
                    )
                )
                bands.append(band)
        # In parallel on the client the alignment uses next (issue 15: 30 candidates,
        # ~0.1 s each, were read and fitted one after the other in this process).
        results = run_tasks(
            _candidate_task, tasks, desc="reference candidates", **self._run_options()
        )
        out: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for band, res in zip(bands, results, strict=True):
            out[band].append(res)
        return out

    def _band_reference(self, band: str, candidates: list[dict[str, Any]]) -> dict[str, Any]:
        """Reference frame, catalog, PSF shape and flux correction of one filter."""
        from skyscene.photometry import measure_flux_correction
        from skyscene.psf import combine_shapes

        cfg = self.config
        frames = self._band_frames(band)
        best, shapes, stars = None, [], []
        sizes: list[float] = []
        failures: list[str] = []
        for rec, res in zip(frames[: cfg.reference_candidates], candidates, strict=True):
            if res["failure"] is not None:
                failures.append(res["failure"])
            if res["catalog"] is None:
                continue
            cat, exp = res["catalog"], res["exposure"]
            if res["shape"] is not None:
                shapes.append(res["shape"])
            sizes.extend(res["sizes"])
            stars.append((exp, res["isolated"]))
            if best is None or len(cat) > len(best[1]):
                best = (rec, cat, exp)
        if best is None or not shapes:
            tried = min(len(frames), cfg.reference_candidates)
            detail = "; ".join(dict.fromkeys(failures[:3]))
            more = f"; and {len(failures) - 3} more" if len(failures) > 3 else ""
            raise DataError(
                f"filter '{band}': none of its first {tried} frames yields a source catalog "
                f"and a PSF shape ({detail or 'no isolated stars'}{more})"
            )
        rec, cat, exp = best
        # Axis ratio and orientation: median of the star fits over the candidate frames.
        # Size: median adaptive-moment sigma of the same stars, which is unbiased where a
        # few noisy fits are not (optimal photometry's flux scales with the weight width).
        shape = combine_shapes(shapes)
        if np.isfinite(sizes).any():
            scale = float(np.nanmedian(sizes)) / shape.sigma
            shape = dataclasses.replace(
                shape, sigma_major=shape.sigma_major * scale, sigma_minor=shape.sigma_minor * scale
            )
        log.info(
            "filter %s: reference %s, %d sources, PSF σ = %.2f × %.2f px, θ = %.2f rad",
            band,
            Path(rec.path).name,
            len(cat),
            shape.sigma_major,
            shape.sigma_minor,
            shape.theta,
        )
        if exp.wcs is not None:
            sky = exp.wcs.pixel_to_world(cat["x"], cat["y"])
            cat["ra"], cat["dec"] = sky.ra.deg, sky.dec.deg
        corr = None
        if cfg.flux_correction:
            corr = measure_flux_correction([(e, xy, shape) for e, xy in stars])
            log.info(
                "filter %s: total/optimal flux of %d star measurements = %.4f ± %.4f (%s)",
                band,
                corr.n_stars,
                corr.measured,
                corr.error,
                "applied" if corr.applied else "consistent with 1, not applied",
            )
        info = _ReferenceInfo(
            path=rec.path,
            wcs=exp.wcs,
            shape=exp.shape,
            header=exp.meta.get("header"),
            ra=exp.meta.get("ra"),
            dec=exp.meta.get("dec"),
        )
        return {
            "reference": rec.path,
            "catalog": cat,
            "shape": shape,
            "flux_correction": corr,
            "info": info,
            "exposure": exp,
        }

    def _job(self) -> _FrameJob:
        cfg = self.config
        return _FrameJob(profile=cfg.profile, cosmic_rays=cfg.cosmic_rays)

    def _run_options(self) -> dict[str, Any]:
        """Options of every :func:`run_tasks` call: scheduler, masters sent once, paths."""
        options: dict[str, Any] = {
            "scheduler": self.config.scheduler,
            "progress": self.progress,
            "config": {k: v for k, v in self.folder_config().items() if k not in _RESULT_NEUTRAL},
            "require_paths": [str(self.data_dir.resolve()), str(self.out_dir.resolve())],
        }
        if self.calibration is not None:
            options["shared"] = self.calibration
        client = self._client()
        if client is not None:
            options["client"] = client
        return options

    def _client(self):
        """One Dask client for every step of this reducer (None when synchronous).

        Starting a local cluster and importing the reduction in its workers takes
        seconds: the reference candidates, the alignment and the photometry share one
        (closed at the end of :meth:`photometry`, of a ``with`` block, or by :meth:`close`).
        """
        if self.config.scheduler == "synchronous":
            return None
        if self._dask is None:
            stack = contextlib.ExitStack()
            client = stack.enter_context(dask_client(self.config.scheduler))
            self._dask = (stack, client, weakref.finalize(self, stack.close))
        return self._dask[1]

    def close(self) -> None:
        """Close the Dask client of the steps (a later step makes a new one)."""
        if self._dask is not None:
            stack, _, finalizer = self._dask
            self._dask = None
            finalizer.detach()
            stack.close()

    def _align_frames(self) -> None:
        cfg = self.config
        job = self._job()
        job_key = task_key(job)
        tasks = []
        for band in self.bands:
            cat = self._setups[band].catalog
            ref_xy = np.c_[cat["x"], cat["y"]]
            clean = cat[cat["flag"] == 0]
            psf_xy = np.c_[clean["x"], clean["y"]]
            psf_xy = psf_xy[_isolated(psf_xy, 15.0)][:20]
            for rec in self._band_frames(band):
                tasks.append(
                    _AlignTask(
                        job=job,
                        path=rec.path,
                        reference=self._setups[band].reference,
                        reference_xy=ref_xy,
                        psf_xy=psf_xy,
                        threshold=cfg.threshold,
                    )
                )
        results = run_tasks(
            _align_task,
            tasks,
            desc="aligning frames",
            cache_dir=self.out_dir / ".work" / "align",
            keys=[t.key(job_key) for t in tasks],
            **self._run_options(),
        )
        band_of = {r.path: r.band for r in self.frames}
        failed = []
        for res in results:
            path = res["path"]
            if res["ok"]:
                self._alignments[path] = FrameAlignment(
                    path=path,
                    band=band_of[path],
                    matrix=np.asarray(res["matrix"]),
                    method=res["method"],
                    n_matches=int(res["n_matches"]),
                    rms=float(res["rms"]),
                    bkg_level=float(res["bkg_level"]),
                    bkg_rms=float(res["bkg_rms"]),
                    psf_size=float(res["psf_size"]),
                    n_nonphysical=int(res.get("n_nonphysical") or 0),
                    n_saturated=int(res.get("n_saturated") or 0),
                )
            else:
                reason = f"cannot be aligned: {res['reason']}"
                log.warning("skipping %s: %s", path, reason)
                failed.append((str(path), reason))
        self._failed = failed

    def frame_shape(self, band: str, path: str):
        """PSF shape used for ``path``: the camera's, or in ``psf_mode='frame'`` resized to the frame's seeing.

        The frame's size is the median adaptive-moment sigma of isolated stars (pixel
        response removed); the camera's axis ratio and orientation are kept. Frames where
        it cannot be measured keep the camera shape (with a warning).
        """
        from skyscene.psf import PSFShape

        shape = self._setups[band].shape
        if self.config.psf_mode == "camera":
            return shape
        alignment = self._alignments.get(path)
        size = alignment.psf_size if alignment is not None else None
        if not (size and np.isfinite(size)):
            log.warning("%s: no PSF size measured; using the camera's PSF shape", path)
            return shape
        scale = size / shape.sigma
        return PSFShape(
            sigma_major=shape.sigma_major * scale,
            sigma_minor=shape.sigma_minor * scale,
            theta=shape.theta,
            n_stars=shape.n_stars,
            scatter=shape.scatter,
        )

    def _write_outputs(self, tasks: list[_OutputTask]) -> list[list[list[Path]]]:
        """Run :func:`_output_task` on the step's workers (here when synchronous).

        Figures and tables are written in parallel while this process waits (issue 15:
        they were ~10 % of the reduction, on one core).
        """
        client = self._client()
        if client is None:
            return [_output_task(t) for t in tasks]
        options = {k: v for k, v in self._run_options().items() if k not in ("shared", "config")}
        return run_tasks(_output_task, tasks, desc="writing outputs", **options)

    def _write_catalogs(self, exposures: dict[str, Any]) -> None:
        cat_dir = self.out_dir / "cat"
        tasks = []
        for band, setup in self._setups.items():
            out = setup.catalog.copy()
            out.meta = {
                "reference": setup.reference,
                "band": band,
                "psf_sigma_major": setup.shape.sigma_major,
                "psf_sigma_minor": setup.shape.sigma_minor,
                "psf_theta_rad": setup.shape.theta,
            }
            tasks.append(_OutputTask(tables=((out, cat_dir / f"{band}_catalog.csv"),)))
            tasks.append(
                _OutputTask(
                    figure="catalog_figure",
                    args=(exposures[band].data, setup.catalog),
                    kwargs={"title": f"{band}: {Path(setup.reference).name}"},
                    stem=cat_dir / f"{band}_catalog",
                    pdf=False,
                )
            )
        self._write_outputs(tasks)

    # ------------------------------------------------------------------ photometry
    def photometry(self, photometer="optimal", *, local_background="default") -> ReductionResult:
        """Forced photometry of every aligned frame; writes light curves and plots.

        Parameters
        ----------
        photometer : {"optimal", "aperture"} or a photometer object
            A photometer is a callable ``(exposure, positions, shape)`` returning
            columns ``flux, flux_err, bkg, bkg_err, x, y, flags`` by name (a
            :class:`~skyscene.photometry.ForcedPhotometry` or a Table) and has a ``name``.
        local_background : str or callable
            ``default`` (sigma-clipped mean in a 5–7.5 σ annulus), ``median``,
            ``MODULE:FUNCTION`` or a callable (see :mod:`skyscene.background.local`).

        Returns
        -------
        ReductionResult
            ``lc_dir``, ``files``, ``band_files``, ``n_frames``, ``skipped`` and
            ``light_curves`` (per band, per source id, an astropy Table).
        """
        try:
            with self.folder:
                return self._photometry(photometer, local_background)
        finally:
            if not self._entered:
                self.close()  # the last step: its workers are not needed any more

    def _photometry(self, photometer, local_background) -> ReductionResult:
        from skyscene.background import load_local_background
        from skyscene.photometry import AperturePhotometer, OptimalPhotometer

        if not self._setups:
            self._create_catalogs()
        bkg_name, estimator = load_local_background(local_background)
        if isinstance(photometer, str):
            kinds = {"optimal": OptimalPhotometer, "aperture": AperturePhotometer}
            if photometer not in kinds:
                raise ParameterError(
                    f"photometer must be 'optimal' or 'aperture', got {photometer!r}",
                    name="photometer",
                    value=photometer,
                )
            photometer = kinds[photometer](radius=self.config.radius, local_background=estimator)
        name = getattr(photometer, "name", type(photometer).__name__)
        lc_dir = self.out_dir / "lcs" / f"{name}_{bkg_name}"
        cfg = self.config
        tasks = []
        job = self._job()
        job_key = task_key(job)
        for band in self.bands:
            cat = self._setups[band].catalog
            ref_xy = np.c_[cat["x"], cat["y"]]
            frames = [
                _FramePhotometry(
                    path=r.path,
                    matrix=self._alignments[r.path].matrix,
                    shape=self.frame_shape(band, r.path),
                )
                for r in self._band_frames(band)
            ]
            for i in range(0, len(frames), cfg.chunk_size):
                tasks.append(
                    _PhotometryTask(
                        job=job,
                        band=band,
                        frames=tuple(frames[i : i + cfg.chunk_size]),
                        reference_xy=ref_xy,
                        photometer=self._band_photometer(photometer, band),
                    )
                )
        results = run_tasks(
            _photometry_task,
            tasks,
            desc=f"photometry ({name})",
            cache_dir=self.out_dir / ".work" / "photometry",
            keys=[t.key(job_key) for t in tasks],
            **self._run_options(),
        )
        rows_by_band: dict[str, list] = defaultdict(list)
        for task, rows in zip(tasks, results, strict=True):
            rows_by_band[task.band].extend(rows)
        written: list[Path] = []
        band_files: list[Path] = []
        lcs: dict[str, dict[int, Any]] = {}
        bmjd = self._bmjd(self._location())
        tasks = []
        for band, rows in rows_by_band.items():
            lcs[band] = self._light_curves(band, rows, bmjd, photometer=name, background=bkg_name)
            tables = [(t, lc_dir / f"{band}_source_{sid}.csv") for sid, t in lcs[band].items()]
            tables.append((_band_table(band, lcs[band]), lc_dir / f"{band}_lightcurves.csv"))
            tasks.append(_OutputTask(tables=tuple(tables)))
        n_tables = len(tasks)
        tasks += self._diagnostic_tasks(lcs, name, bkg_name)
        done = self._write_outputs(tasks)
        for paths in done[:n_tables]:  # per band: the sources' files, then the band's
            for p in paths[:-1]:
                written += p
            band_files += paths[-1]
        self._write_metadata(photometer, bkg_name, lc_dir)
        self.folder.complete(self.summary(lc_dir=lc_dir))
        log.info("wrote %d light curves to %s", sum(len(v) for v in lcs.values()), lc_dir)
        return ReductionResult(
            lc_dir=lc_dir,
            files=tuple(written),
            band_files=tuple(band_files),
            n_frames=len(self.frames),
            skipped=tuple(self.skipped),
            light_curves=lcs,
        )

    def _band_photometer(self, photometer, band: str):
        """The photometer with the band's optimal-flux correction (OptimalPhotometer only)."""
        from skyscene.photometry import OptimalPhotometer

        corr = self._setups[band].flux_correction
        if corr is not None and isinstance(photometer, OptimalPhotometer):
            return dataclasses.replace(photometer, flux_correction=corr.value)
        return photometer

    def _field_reference(self) -> _ReferenceInfo:
        """The reference frame that gives the field's coordinates and observatory."""
        if not self._setups:
            raise DataError("the catalogs are not made yet (call create_catalogs() first)")
        return self._setups[min(self._setups)].reference_info

    def _location(self):
        from astropy import units as u
        from astropy.coordinates import EarthLocation

        from skyscene.io.times import location_from_header

        if self.config.location is not None:
            lon, lat, h = self.config.location
            return EarthLocation.from_geodetic(lon * u.deg, lat * u.deg, h * u.m)
        return location_from_header(self._field_reference().header)

    def field_coordinates(self) -> tuple[float, float]:
        """RA, Dec (deg) of the field: header RA/DEC of a reference frame, else its WCS centre."""
        ref = self._field_reference()
        ra, dec = ref.ra, ref.dec
        if ra is None or dec is None:
            if ref.wcs is None:
                raise HeaderError(
                    f"{ref.path}: no RA/DEC keywords and no WCS for the barycentric correction",
                    filename=ref.path,
                    key="RA",
                )
            c = ref.wcs.pixel_to_world((ref.shape[1] - 1) / 2, (ref.shape[0] - 1) / 2)
            ra, dec = float(c.ra.deg), float(c.dec.deg)
        return float(ra), float(dec)

    def _bmjd(self, location) -> dict[str, float]:
        """BMJD(TDB) at mid-exposure of every frame, in one call (per frame path)."""
        from astropy.time import Time

        from skyscene.io.times import bmjd_tdb

        frames = self.frames
        ra, dec = self.field_coordinates()
        values = bmjd_tdb(
            Time([r.mjd_mid for r in frames], format="mjd", scale="utc"),
            ra,
            dec,
            location=location,
        )
        return {r.path: float(v) for r, v in zip(frames, values, strict=True)}

    def _light_curves(
        self, band, rows, bmjd_of, *, photometer: str = "", background: str = ""
    ) -> dict[int, Any]:
        from astropy import units as u
        from astropy.table import Table

        from skyscene.photometry import differential_photometry

        mjd = {r.path: r.mjd_mid for r in self.frames}
        rows = sorted(rows, key=lambda r: mjd[r["path"]])
        ra, dec = self.field_coordinates()
        bmjd = np.array([bmjd_of[r["path"]] for r in rows])
        stack = {
            c: np.array([r[c] for r in rows]).T
            for c in ("flux", "flux_err", "bkg", "bkg_err", "x", "y", "flags")
        }
        ids = np.asarray(self._setups[band].catalog["id"])
        comparisons = None
        if self.config.comparisons is not None:
            comparisons = [
                int(np.flatnonzero(ids == c)[0]) for c in self.config.comparisons if c in ids
            ]
        try:
            diff = differential_photometry(
                stack["flux"], stack["flux_err"], stack["flags"], comparisons=comparisons
            )
            rel, rel_err = diff.rel_flux, diff.rel_flux_err
        except DataError as exc:
            log.warning("filter %s: no differential light curves (%s)", band, exc)
            rel = rel_err = np.full_like(stack["flux"], np.nan)
        shape = self._setups[band].shape
        meta = {
            "band": band,
            "time": "BMJD(TDB) mid-exposure",
            "time_scale": "tdb",
            "time_format": "mjd",
            "time_reference_position": "barycentre",
            "ra_field": ra,
            "dec_field": dec,
            "photometer": photometer,
            "local_background": background,
            "psf_mode": self.config.psf_mode,
            "psf_sigma_major": shape.sigma_major,
            "psf_sigma_minor": shape.sigma_minor,
            "psf_theta_rad": shape.theta,
            "flags": _FLAG_DOC,
        }
        corr = self._setups[band].flux_correction
        if corr is not None:
            meta["flux_correction"] = corr.value if corr.applied else 1.0
        units = {
            "BMJD": u.day,
            "flux": u.adu,
            "flux_err": u.adu,
            "bkg": u.adu / u.pix,
            "bkg_err": u.adu / u.pix,
            "x": u.pix,
            "y": u.pix,
        }
        out = {}
        for k, sid in enumerate(ids):
            t = Table()
            t["BMJD"] = bmjd
            for c in ("flux", "flux_err", "bkg", "bkg_err", "x", "y", "flags"):
                t[c] = stack[c][k]
            t["rel_flux"] = rel[k]
            t["rel_flux_err"] = rel_err[k]
            t["file"] = [Path(r["path"]).name for r in rows]
            for c, unit in units.items():
                t[c].unit = unit
            t["BMJD"].description = "barycentric MJD (TDB) at mid-exposure"
            t["rel_flux"].description = "flux relative to the comparison ensemble"
            t.meta = {**meta, "source_id": int(sid)}
            out[int(sid)] = t
        return out

    def _diagnostic_tasks(self, lcs, name, bkg_name) -> list[_OutputTask]:
        diag = self.out_dir / "diag"
        times = {b: [r.mjd_mid for r in self._band_frames(b)] for b in self.bands}
        align = self._alignments
        bkgs = {b: [align[r.path].bkg_level for r in self._band_frames(b)] for b in self.bands}
        sizes = {b: [align[r.path].psf_size for r in self._band_frames(b)] for b in self.bands}
        return [  # the largest first
            _OutputTask(
                figure="light_curves_figure",
                args=(lcs,),
                stem=diag / f"light_curves_{name}_{bkg_name}",
            ),
            _OutputTask(
                figure="rms_vs_median_figure",
                args=(lcs,),
                stem=diag / f"rms_vs_median_{name}_{bkg_name}",
            ),
            _OutputTask(figure="header_times_figure", args=(times,), stem=diag / "header_times"),
            _OutputTask(figure="backgrounds_figure", args=(times, bkgs), stem=diag / "backgrounds"),
            _OutputTask(figure="seeing_figure", args=(times, sizes), stem=diag / "seeing"),
        ]

    def frames_table(self):
        """One row per used frame: file, band, time, background, alignment and PSF size."""
        from astropy.table import Table

        rows = []
        for r in self.frames:
            alignment = self._alignments.get(r.path)
            st = alignment.stats() if alignment is not None else {}
            rows.append(
                {
                    "file": Path(r.path).name,
                    "band": r.band,
                    "mjd_mid_utc": r.mjd_mid,
                    "exptime": r.exptime,
                    "bkg_level": st.get("bkg_level", np.nan),
                    "bkg_rms": st.get("bkg_rms", np.nan),
                    "align_method": st.get("method", ""),
                    "align_n_matches": st.get("n_matches", 0),
                    "align_rms": st.get("rms", np.nan),
                    "psf_size": st.get("psf_size", np.nan),
                    "n_nonphysical": int(st.get("n_nonphysical") or 0),
                    "n_saturated": int(st.get("n_saturated") or 0),
                }
            )
        return Table(rows=rows) if rows else Table()

    def _write_metadata(self, photometer, bkg_name, lc_dir) -> None:
        write_table(self.frames_table(), self.out_dir / "frames.csv")
        config = {
            **self.folder_config(),
            "photometer": _record(photometer),
            "local_background": bkg_name,
            "psf_shapes": {b: dataclasses.asdict(s.shape) for b, s in self._setups.items()},
            "flux_corrections": {
                b: dataclasses.asdict(s.flux_correction)
                for b, s in self._setups.items()
                if s.flux_correction is not None
            },
            "references": self.references,
        }
        atomic_write_text(lc_dir / "config.json", json.dumps(config, indent=1, default=str))

    def summary(self, *, lc_dir: Path | None = None) -> dict[str, Any]:
        """What ``summary.json`` records: frames used, files skipped and why, alignment methods."""
        out: dict[str, Any] = {
            "frames_used": {b: len(self._band_frames(b)) for b in self.bands},
            "skipped": [{"file": f, "reason": r} for f, r in self.skipped],
            "alignment_methods": dict(Counter(a.method for a in self._alignments.values())),
            "nonphysical_pixels": {
                Path(p).name: a.n_nonphysical
                for p, a in self._alignments.items()
                if a.n_nonphysical
            },
        }
        if lc_dir is not None:
            out["light_curves"] = str(lc_dir)
        return out


def _record(obj: Any) -> Any:
    """A JSON-ready record of a configured object (``to_dict()``, dataclass fields, a name)."""
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    if callable(obj) and not dataclasses.is_dataclass(obj):
        return f"{getattr(obj, '__module__', '?')}:{getattr(obj, '__qualname__', repr(obj))}"
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {
            "class": type(obj).__name__,
            **{f.name: _record(getattr(obj, f.name)) for f in dataclasses.fields(obj)},
        }
    if isinstance(obj, str | int | float | bool | type(None)):
        return obj
    if isinstance(obj, list | tuple):
        return [_record(v) for v in obj]
    return repr(obj)


def _discover(data_dir: Path, profile, progress: bool) -> Discovery:
    """Read every header of ``data_dir`` once (see :meth:`Reducer.discover`)."""
    from astropy.io import fits
    from astropy.io.fits.verify import VerifyError
    from astropy.utils.exceptions import AstropyUserWarning
    from tqdm.auto import tqdm

    skipped: list[tuple[str, str]] = []

    def skip(path, reason: str) -> None:
        log.warning("skipping %s: %s", path, reason)
        skipped.append((str(path), reason))

    if not data_dir.is_dir():
        raise InputFileError(f"{data_dir}: data folder does not exist")
    files = sorted(p for p in data_dir.iterdir() if p.is_file() and not p.name.startswith("."))
    if not files:
        raise InputFileError(f"{data_dir}: data folder is empty")
    records = []
    for path in tqdm(files, desc="reading headers", unit="file", disable=not progress):
        if path.suffix == ".json":
            continue
        if not is_fits(path):
            skip(path, "not a FITS file")
            continue
        try:
            with warnings.catch_warnings():
                # astropy warns about truncation before failing; the skip reason says it
                warnings.simplefilter("ignore", AstropyUserWarning)
                with fits.open(path, memmap=False) as hdul:
                    hdu = hdul["SCI"] if "SCI" in hdul else hdul[0]
                    data = hdu.data
                    if data is None or data.ndim != 2:
                        raise DataError(f"{path}: no 2-D image")
                    if not np.isfinite(data).any():
                        raise DataError(f"{path}: image has no finite pixel (all NaN)")
                    info = parse_header(hdu.header, filename=str(path), profile=profile)
                    shape = data.shape
        except (HeaderError, DataError, OSError) as exc:
            skip(path, str(exc))
            continue
        except (ValueError, TypeError, VerifyError) as exc:
            # astropy on a truncated or corrupt file ("cannot reshape array of size 30
            # into shape (64,64)", unparsable cards)
            skip(path, f"unreadable FITS file (truncated or corrupt: {exc})")
            continue
        records.append(
            FrameRecord(
                path=str(path),
                band=info.band,
                mjd_mid=float(info.time_mid.utc.mjd),
                exptime=info.exptime,
                binning=info.binning,
                shape=shape,
            )
        )
    # binning and shape must agree within a filter: keep the majority, skip the rest
    by_band: dict[str, list[FrameRecord]] = defaultdict(list)
    for r in records:
        by_band[r.band].append(r)
    kept = []
    for band, recs in by_band.items():
        (binning, shape), _ = Counter((r.binning, r.shape) for r in recs).most_common(1)[0]
        for r in recs:
            if r.binning != binning:
                skip(
                    r.path,
                    f"binning {r.binning[0]}x{r.binning[1]} differs from the "
                    f"{binning[0]}x{binning[1]} of the other '{band}' frames",
                )
            elif r.shape != shape:
                skip(
                    r.path, f"shape {r.shape} differs from the {shape} of the other '{band}' frames"
                )
            else:
                kept.append(r)
    if not kept:
        detail = "; ".join(f"{Path(p).name}: {why}" for p, why in skipped[:10])
        raise InputFileError(f"{data_dir}: no usable FITS frame ({detail})")
    kept.sort(key=lambda r: (r.band, r.mjd_mid))
    log.info(
        "found %d frames in %d filter(s): %s",
        len(kept),
        len(by_band),
        ", ".join(f"{b}: {sum(r.band == b for r in kept)}" for b in sorted({r.band for r in kept})),
    )
    return Discovery(frames=tuple(kept), skipped=tuple(skipped))


def _assign_ids(catalogs: dict[str, Any], found: dict[str, Any], config: ReduceConfig):
    """Global source ids across cameras: primary camera first, brightest first.

    ``found[band]["info"]`` is the band's :class:`_ReferenceInfo` (its WCS maps the
    other filters' sky positions onto the primary camera). Returns ids per band.
    """
    from skyscene.align import find_transform_from_positions
    from skyscene.detection import match_catalogs

    bands = sorted(catalogs, key=lambda b: -len(catalogs[b]))
    primary = bands[0]
    pcat = catalogs[primary]
    out = {primary: np.arange(len(pcat))}
    next_id = len(pcat)
    pxy = np.c_[pcat["x"], pcat["y"]]
    for band in bands[1:]:
        cat = catalogs[band]
        xy = np.c_[cat["x"], cat["y"]]
        if "ra" in cat.colnames and "ra" in pcat.colnames:
            wcs = found[primary]["info"].wcs
            mapped = np.array(wcs.world_to_pixel_values(cat["ra"], cat["dec"])).T
        else:
            try:
                mapped = find_transform_from_positions(xy, pxy).apply(xy)
            except AlignmentError as exc:
                log.warning(
                    "filter %s: cannot match sources to filter %s (%s); new ids", band, primary, exc
                )
                mapped = np.full_like(xy, np.inf)
        match = match_catalogs(mapped, pxy, radius=config.match_radius)
        ids = np.where(match >= 0, match, -1)
        for i in np.flatnonzero(ids < 0):
            ids[i] = next_id
            next_id += 1
        out[band] = ids
        log.info(
            "filter %s: %d of %d sources matched to filter %s",
            band,
            int((match >= 0).sum()),
            len(cat),
            primary,
        )
    return out


#: ``flags`` bits of light-curve rows (table metadata and docs/reduce.md)
_FLAG_DOC = {
    "1": "edge: the region leaves the image",
    "2": "masked pixels in the region (bad, saturated or non-physical values)",
    "4": "local background failed",
    "8": "nothing measurable (flux NaN)",
}


def _band_table(band: str, light_curves: dict[int, Any]):
    """One table of every light curve of a filter, with a leading ``source_id`` column."""
    from astropy.table import vstack

    tables = []
    for sid, table in sorted(light_curves.items()):
        t = table.copy(copy_data=False)
        t.meta = {}
        t.add_column(np.full(len(t), sid, dtype=np.int64), name="source_id", index=0)
        tables.append(t)
    out = vstack(tables, metadata_conflicts="silent") if tables else None
    if out is None:
        from astropy.table import Table

        return Table()
    first = light_curves[min(light_curves)].meta
    out.meta = {k: v for k, v in first.items() if k != "source_id"}
    out.meta["source_ids"] = sorted(int(s) for s in light_curves)
    return out


def _file_id(path: str) -> tuple[str, int, int]:
    """A file's identity for task caches: path, size and modification time."""
    st = Path(path).stat()
    return (str(path), st.st_size, st.st_mtime_ns)


def _isolated(xy, radius: float) -> np.ndarray:
    from scipy.spatial import cKDTree

    if len(xy) < 2:
        return np.ones(len(xy), bool)
    d, _ = cKDTree(xy).query(xy, k=2)
    return d[:, 1] > radius


def _save_figure(fig, stem: Path, *, pdf: bool = True) -> list[Path]:
    """Save a matplotlib Figure as PNG (and PDF) atomically."""
    from skyscene.io import atomic_path

    paths = []
    for ext in ("png", "pdf") if pdf else ("png",):
        path = Path(f"{stem}.{ext}")
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=ext, dpi=110)
        paths.append(path)
    return paths


def demo_stage(out_dir, *, progress: bool = True) -> str:
    """Demo: simulate 3 cameras × 60 frames and reduce them with optimal photometry."""
    from skyscene.datasets import simulate_observations

    out_dir = Path(out_dir)
    raw = out_dir / "reduce" / "raw"
    simulate_observations(raw, 60, rng=2026)
    reducer = Reducer(
        raw,
        out_dir / "reduce" / "out",
        config=ReduceConfig(scheduler="processes"),
        progress=progress,
        overwrite=True,  # the demo regenerates its data: a folder of an older demo is replaced
    )
    with reducer:
        reducer.create_catalogs()
        result = reducer.photometry("optimal")
    return (
        f"reduction: {len(reducer.frames)} frames in filters {', '.join(reducer.bands)} -> "
        f"light curves in {result.lc_dir}\n  plots in {out_dir / 'reduce' / 'out' / 'diag'}"
    )
