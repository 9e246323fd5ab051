"""Reduction of a folder of FITS frames to calibrated, barycentric light curves.

>>> from skyscene.pipelines.reduce import Reducer          # doctest: +SKIP
>>> reducer = Reducer("raw/", "out/")                       # doctest: +SKIP
>>> reducer.create_catalogs()                               # doctest: +SKIP
>>> reducer.photometry("optimal")                           # doctest: +SKIP

Steps: header checks (instrument profiles) → optional calibration → per filter a
reference frame, its source catalog and PSF shape → alignment of every frame to its
reference (frames that cannot be aligned are logged, summarised and excluded) →
cross-camera source identities → forced photometry at positions following each
frame's transform, with a pluggable local background → light curves in BMJD(TDB)
with differential fluxes → diagnostic plots. Filters and frame chunks run as Dask
tasks (DESIGN.md, "Scale").
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from skyscene.errors import (
    AlignmentError,
    DataError,
    HeaderError,
    InputFileError,
    ParameterError,
    SkysceneError,
)
from skyscene.io import atomic_write_text, is_fits, parse_header, read_exposure, write_table
from skyscene.pipelines._scheduler import run_tasks, task_key

__all__ = ["FrameRecord", "ReduceConfig", "Reducer", "demo_stage"]

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
        if self.psf_mode not in ("camera", "frame"):
            raise ParameterError(f"psf_mode must be 'camera' or 'frame', got {self.psf_mode!r}")
        if self.threshold <= 0:
            raise ParameterError(f"threshold must be positive, got {self.threshold!r}")
        if self.radius <= 0:
            raise ParameterError(f"radius must be positive, got {self.radius!r}")
        if self.chunk_size < 1:
            raise ParameterError(f"chunk_size must be >= 1, got {self.chunk_size!r}")


@dataclass(frozen=True, kw_only=True)
class FrameRecord:
    """One usable frame found in the data folder."""

    path: str
    band: str
    mjd_mid: float
    exptime: float
    binning: tuple[int, int]
    shape: tuple[int, int]


def _read(path: str, profile, calibration, cosmic_rays: bool = False):
    exposure = read_exposure(path, profile=profile)
    if calibration is not None:
        exposure = calibration.apply(exposure)
    if cosmic_rays:
        from skyscene.calibration import mask_cosmic_rays

        exposure = mask_cosmic_rays(exposure)
    return exposure


@dataclass(frozen=True, kw_only=True)
class _FrameJob:
    """What a Dask task needs to read one frame the way the reduction reads it."""

    profile: str | None
    calibration: Any
    cosmic_rays: bool

    def read(self, path: str):
        return _read(path, self.profile, self.calibration, self.cosmic_rays)


def _align_task(args) -> dict[str, Any]:
    """Detect sources on one frame, align it to its reference, measure its PSF size (a Dask task).

    ``args = (job, path, ref_path, ref_xy, psf_xy, threshold)``; ``psf_xy`` are isolated
    stars (reference pixels) whose adaptive-moment sizes give the frame's seeing.
    """
    from skyscene.align import (
        AlignmentResult,
        find_transform_from_positions,
        translation_by_cross_correlation,
    )
    from skyscene.background import estimate_background
    from skyscene.detection import find_sources
    from skyscene.psf import moment_sizes

    job, path, ref_path, ref_xy, psf_xy, threshold = args
    out: dict[str, Any] = {"path": path, "ok": False, "reason": "", "matrix": None}
    try:
        exposure = job.read(path)
        bkg = estimate_background(exposure.data, mask=exposure.mask)
        out["bkg_level"], out["bkg_rms"] = bkg.level, bkg.rms_level
        if path == ref_path:
            result = AlignmentResult.identity()
            method, n_matches = "reference", len(ref_xy)
        else:
            stars = find_sources(
                exposure.data, mask=exposure.mask, threshold=threshold, background=bkg
            )
            try:
                result = find_transform_from_positions(np.c_[stars["x"], stars["y"]], ref_xy)
            except AlignmentError as exc:
                ref = job.read(ref_path)
                if ref.shape != exposure.shape:
                    raise AlignmentError(f"{exc}; and shapes differ from the reference") from exc
                result = translation_by_cross_correlation(
                    exposure.data, ref.data, mask=exposure.mask, reference_mask=ref.mask
                )
            method, n_matches = result.method, result.n_matches
        sizes = moment_sizes(
            exposure.data - bkg.background, result.inverse(psf_xy), mask=exposure.mask
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
        out["reason"] = f"{type(exc).__name__}: {exc}"
    return out


def _photometry_task(args) -> list[dict[str, Any]]:
    """Forced photometry of a chunk of frames (a Dask task).

    ``args = (job, frames, ref_positions, photometer)`` with ``frames`` a list of
    ``(path, matrix, psf_shape)``.
    """
    job, frames, ref_positions, photometer = args
    rows = []
    for path, matrix, shape in frames:
        inv = np.linalg.inv(np.asarray(matrix))
        xy = ref_positions @ inv[:2, :2].T + inv[:2, 2]
        table = photometer(job.read(path), xy, shape)
        rows.append({"path": path, **{c: np.asarray(table[c]) for c in table.colnames}})
    return rows


class Reducer:
    """Reduce a folder of FITS frames (one or several cameras/filters) to light curves.

    Parameters
    ----------
    data_dir : path
        Folder of frames (FITS; other files are skipped with a log line).
    out_dir : path
        Output folder: ``cat/``, ``lcs/``, ``diag/``, ``config.json``, ``summary.json``.
    config : ReduceConfig, optional
    calibration : path or CalibrationSet, optional
        Folder of bias/dark/flat frames (or a prepared set) applied to every frame.
    progress : bool
        Progress bars for the steps a person waits on.

    Raises
    ------
    InputFileError
        ``data_dir`` missing or without any usable FITS frame (the message lists why
        each file was skipped).
    """

    def __init__(
        self,
        data_dir,
        out_dir,
        *,
        config: ReduceConfig | None = None,
        calibration=None,
        progress: bool = True,
    ):
        self.data_dir = Path(data_dir)
        self.out_dir = Path(out_dir)
        self.config = config or ReduceConfig()
        self.progress = progress
        self.skipped: list[tuple[str, str]] = []
        self.calibration = self._load_calibration(calibration)
        self.frames = self._discover()
        self.catalogs: dict[str, Any] = {}
        self.shapes: dict[str, Any] = {}
        self.transforms: dict[str, dict[str, np.ndarray]] = {}
        self.references: dict[str, str] = {}
        self.frame_stats: dict[str, dict[str, float]] = {}
        self.source_ids: dict[str, np.ndarray] = {}
        self.flux_corrections: dict[str, Any] = {}

    # ------------------------------------------------------------------ discovery
    def _load_calibration(self, calibration):
        if calibration is None or not isinstance(calibration, str | Path):
            return calibration
        from skyscene.calibration import CalibrationSet

        return CalibrationSet.from_directory(calibration, profile=self.config.profile)

    def _skip(self, path, reason: str) -> None:
        log.warning("skipping %s: %s", path, reason)
        self.skipped.append((str(path), reason))

    def _discover(self) -> list[FrameRecord]:
        from astropy.io import fits

        if not self.data_dir.is_dir():
            raise InputFileError(f"{self.data_dir}: data folder does not exist")
        files = sorted(
            p for p in self.data_dir.iterdir() if p.is_file() and not p.name.startswith(".")
        )
        if not files:
            raise InputFileError(f"{self.data_dir}: data folder is empty")
        from tqdm.auto import tqdm

        records = []
        for path in tqdm(files, desc="reading headers", unit="file", disable=not self.progress):
            if path.suffix == ".json":
                continue
            if not is_fits(path):
                self._skip(path, "not a FITS file")
                continue
            try:
                with fits.open(path, memmap=False) as hdul:
                    hdu = hdul["SCI"] if "SCI" in hdul else hdul[0]
                    header = hdu.header
                    data = hdu.data
                    if data is None or data.ndim != 2:
                        raise DataError(f"{path}: no 2-D image")
                    if not np.isfinite(data).any():
                        raise DataError(f"{path}: image has no finite pixel (all NaN)")
                    info = parse_header(header, filename=str(path), profile=self.config.profile)
                    shape = data.shape
            except (HeaderError, DataError, OSError) as exc:
                self._skip(path, str(exc))
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
                    self._skip(
                        r.path,
                        f"binning {r.binning[0]}x{r.binning[1]} differs from the {binning[0]}x{binning[1]} of the other '{band}' frames",
                    )
                elif r.shape != shape:
                    self._skip(
                        r.path,
                        f"shape {r.shape} differs from the {shape} of the other '{band}' frames",
                    )
                else:
                    kept.append(r)
        if not kept:
            detail = "; ".join(f"{Path(p).name}: {why}" for p, why in self.skipped[:10])
            raise InputFileError(f"{self.data_dir}: no usable FITS frame ({detail})")
        kept.sort(key=lambda r: (r.band, r.mjd_mid))
        log.info(
            "found %d frames in %d filter(s): %s",
            len(kept),
            len(by_band),
            ", ".join(
                f"{b}: {sum(r.band == b for r in kept)}" for b in sorted({r.band for r in kept})
            ),
        )
        return kept

    @property
    def bands(self) -> list[str]:
        return sorted({r.band for r in self.frames})

    def _band_frames(self, band: str) -> list[FrameRecord]:
        return [r for r in self.frames if r.band == band]

    # ------------------------------------------------------------------ catalogs
    def create_catalogs(self) -> dict[str, Any]:
        """Reference frame, source catalog, PSF shape and frame alignment per filter.

        Writes ``cat/<band>_catalog.csv`` (+ Parquet) and ``cat/<band>_catalog.png``.
        Returns the catalogs (astropy Tables with a global ``id`` column).
        """
        from skyscene.background import estimate_background
        from skyscene.detection import find_sources
        from skyscene.photometry import measure_flux_correction
        from skyscene.psf import combine_shapes, estimate_psf_shape, moment_sizes

        cfg = self.config
        for band in self.bands:
            frames = self._band_frames(band)
            best, shapes, stars = None, [], []
            sizes: list[float] = []
            for rec in frames[: cfg.reference_candidates]:
                try:
                    exp = _read(rec.path, cfg.profile, self.calibration, cfg.cosmic_rays)
                    bkg = estimate_background(exp.data, mask=exp.mask, box_size=cfg.background_box)
                    cat = find_sources(
                        exp.data, mask=exp.mask, threshold=cfg.threshold, background=bkg, edge=10
                    )
                except SkysceneError as exc:
                    log.info("%s: no catalog (%s)", rec.path, exc)
                    continue
                clean = cat[(cat["flag"] == 0)]
                xy = np.c_[clean["x"], clean["y"]]
                isolated = xy[_isolated(xy, 15.0)]
                try:
                    shapes.append(
                        estimate_psf_shape(exp.data, isolated, mask=exp.mask, half_size=8)
                    )
                except DataError as exc:
                    log.info("%s: no PSF shape (%s)", rec.path, exc)
                sizes.extend(moment_sizes(exp.data - bkg.background, isolated, mask=exp.mask))
                stars.append((exp, isolated))
                if best is None or len(cat) > len(best[1]):
                    best = (rec, cat, exp)
            if best is None or not shapes:
                raise DataError(
                    f"filter '{band}': no frame yields a source catalog and a PSF shape"
                )
            rec, cat, exp = best
            # Axis ratio and orientation: median of the star fits over the candidate frames.
            # Size: median adaptive-moment sigma of the same stars, which is unbiased where a
            # few noisy fits are not (optimal photometry's flux scales with the weight width).
            shape = combine_shapes(shapes)
            if np.isfinite(sizes).any():
                scale = float(np.nanmedian(sizes)) / shape.sigma
                shape = dataclasses.replace(
                    shape,
                    sigma_major=shape.sigma_major * scale,
                    sigma_minor=shape.sigma_minor * scale,
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
            self.catalogs[band] = cat
            self.shapes[band] = shape
            if cfg.flux_correction:
                corr = measure_flux_correction([(e, xy, shape) for e, xy in stars])
                self.flux_corrections[band] = corr
                log.info(
                    "filter %s: total/optimal flux of %d star measurements = %.4f ± %.4f (%s)",
                    band,
                    corr.n_stars,
                    corr.measured,
                    corr.error,
                    "applied" if corr.applied else "consistent with 1, not applied",
                )
            self.references[band] = rec.path
        self._assign_ids()
        self._align_frames()
        self._write_catalogs()
        return self.catalogs

    def _assign_ids(self) -> None:
        """Global source ids across cameras: primary camera first, brightest first."""
        from skyscene.align import find_transform_from_positions
        from skyscene.detection import match_catalogs

        bands = sorted(self.bands, key=lambda b: -len(self.catalogs[b]))
        primary = bands[0]
        pcat = self.catalogs[primary]
        pcat["id"] = np.arange(len(pcat))
        next_id = len(pcat)
        pxy = np.c_[pcat["x"], pcat["y"]]
        for band in bands[1:]:
            cat = self.catalogs[band]
            xy = np.c_[cat["x"], cat["y"]]
            if "ra" in cat.colnames and "ra" in pcat.colnames:
                ref = read_exposure(self.references[primary], profile=self.config.profile)
                mapped = np.array(ref.wcs.world_to_pixel_values(cat["ra"], cat["dec"])).T
            else:
                try:
                    mapped = find_transform_from_positions(xy, pxy).apply(xy)
                except AlignmentError as exc:
                    log.warning(
                        "filter %s: cannot match sources to filter %s (%s); new ids",
                        band,
                        primary,
                        exc,
                    )
                    mapped = np.full_like(xy, np.inf)
            match = match_catalogs(mapped, pxy, radius=self.config.match_radius)
            ids = np.where(match >= 0, match, -1)
            for i in np.flatnonzero(ids < 0):
                ids[i] = next_id
                next_id += 1
            cat["id"] = ids
            log.info(
                "filter %s: %d of %d sources matched to filter %s",
                band,
                int((match >= 0).sum()),
                len(cat),
                primary,
            )

    def _job(self) -> _FrameJob:
        cfg = self.config
        return _FrameJob(
            profile=cfg.profile, calibration=self.calibration, cosmic_rays=cfg.cosmic_rays
        )

    def _align_frames(self) -> None:
        cfg = self.config
        job = self._job()
        job_key = task_key(job)
        tasks = []
        for band in self.bands:
            cat = self.catalogs[band]
            ref_xy = np.c_[cat["x"], cat["y"]]
            clean = cat[cat["flag"] == 0]
            psf_xy = np.c_[clean["x"], clean["y"]]
            psf_xy = psf_xy[_isolated(psf_xy, 15.0)][:20]
            for rec in self._band_frames(band):
                tasks.append((job, rec.path, self.references[band], ref_xy, psf_xy, cfg.threshold))
        results = run_tasks(
            _align_task,
            tasks,
            scheduler=cfg.scheduler,
            progress=self.progress,
            desc="aligning frames",
            cache_dir=self.out_dir / ".work" / "align",
            keys=[task_key("align", job_key, _file_id(t[1]), t[2:]) for t in tasks],
        )
        band_of = {r.path: r.band for r in self.frames}
        failed = set()
        for res in results:
            band = band_of[res["path"]]
            if res["ok"]:
                self.transforms.setdefault(band, {})[res["path"]] = np.asarray(res["matrix"])
                self.frame_stats[res["path"]] = {
                    k: res.get(k)
                    for k in ("bkg_level", "bkg_rms", "method", "n_matches", "rms", "psf_size")
                }
            else:
                self._skip(res["path"], f"cannot be aligned: {res['reason']}")
                failed.add(res["path"])
        self.frames = [r for r in self.frames if r.path not in failed]

    def frame_shape(self, band: str, path: str):
        """PSF shape used for ``path``: the camera's, or in ``psf_mode='frame'`` resized to the frame's seeing.

        The frame's size is the median adaptive-moment sigma of isolated stars (pixel
        response removed); the camera's axis ratio and orientation are kept. Frames where
        it cannot be measured keep the camera shape (with a warning).
        """
        from skyscene.psf import PSFShape

        shape = self.shapes[band]
        if self.config.psf_mode == "camera":
            return shape
        size = self.frame_stats.get(path, {}).get("psf_size")
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

    def _write_catalogs(self) -> None:
        from skyscene.plotting.diagnostics import catalog_figure

        cat_dir = self.out_dir / "cat"
        for band, cat in self.catalogs.items():
            out = cat.copy()
            out.meta = {
                "reference": self.references[band],
                "band": band,
                "psf_sigma_major": self.shapes[band].sigma_major,
                "psf_sigma_minor": self.shapes[band].sigma_minor,
                "psf_theta_rad": self.shapes[band].theta,
            }
            write_table(out, cat_dir / f"{band}_catalog.csv")
            exp = read_exposure(self.references[band], profile=self.config.profile)
            _save_figure(
                catalog_figure(exp.data, cat, title=f"{band}: {Path(self.references[band]).name}"),
                cat_dir / f"{band}_catalog",
                pdf=False,
            )

    # ------------------------------------------------------------------ photometry
    def photometry(self, photometer="optimal", *, local_background="default") -> dict[str, Any]:
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
        dict
            ``{"lc_dir": Path, "files": [...], "n_frames": int, "skipped": [...]}``.
        """
        from skyscene.background import load_local_background
        from skyscene.photometry import AperturePhotometer, OptimalPhotometer

        if not self.catalogs:
            self.create_catalogs()
        bkg_name, estimator = load_local_background(local_background)
        if isinstance(photometer, str):
            kinds = {"optimal": OptimalPhotometer, "aperture": AperturePhotometer}
            if photometer not in kinds:
                raise ParameterError(
                    f"photometer must be 'optimal' or 'aperture', got {photometer!r}"
                )
            photometer = kinds[photometer](radius=self.config.radius, local_background=estimator)
        name = getattr(photometer, "name", type(photometer).__name__)
        lc_dir = self.out_dir / "lcs" / f"{name}_{bkg_name}"
        cfg = self.config
        tasks, index = [], []
        job = self._job()
        job_key = task_key(job)
        for band in self.bands:
            cat = self.catalogs[band]
            ref_xy = np.c_[cat["x"], cat["y"]]
            frames = [
                (r.path, self.transforms[band][r.path], self.frame_shape(band, r.path))
                for r in self._band_frames(band)
            ]
            for i in range(0, len(frames), cfg.chunk_size):
                tasks.append(
                    (
                        job,
                        frames[i : i + cfg.chunk_size],
                        ref_xy,
                        self._band_photometer(photometer, band),
                    )
                )
                index.append(band)
        results = run_tasks(
            _photometry_task,
            tasks,
            scheduler=cfg.scheduler,
            progress=self.progress,
            desc=f"photometry ({name})",
            cache_dir=self.out_dir / ".work" / "photometry",
            keys=[
                task_key(
                    "photometry", job_key, [(_file_id(p), m, sh) for p, m, sh in t[1]], t[2], t[3]
                )
                for t in tasks
            ],
        )
        rows_by_band: dict[str, list] = defaultdict(list)
        for band, rows in zip(index, results, strict=True):
            rows_by_band[band].extend(rows)
        written = []
        lcs: dict[str, dict[int, Any]] = {}
        location = self._location()
        for band, rows in rows_by_band.items():
            lcs[band] = self._light_curves(band, rows, location)
            for sid, table in lcs[band].items():
                written += write_table(table, lc_dir / f"{band}_source_{sid}.csv")
        self._write_diagnostics(lcs, name, bkg_name)
        self._write_metadata(photometer, bkg_name, lc_dir)
        log.info("wrote %d light curves to %s", len(written) // 2, lc_dir)
        return {
            "lc_dir": lc_dir,
            "files": written,
            "n_frames": len(self.frames),
            "skipped": list(self.skipped),
            "light_curves": lcs,
        }

    def _band_photometer(self, photometer, band: str):
        """The photometer with the band's optimal-flux correction (OptimalPhotometer only)."""
        from skyscene.photometry import OptimalPhotometer

        corr = self.flux_corrections.get(band)
        if corr is not None and isinstance(photometer, OptimalPhotometer):
            return dataclasses.replace(photometer, flux_correction=corr.value)
        return photometer

    def _location(self):
        from astropy import units as u
        from astropy.coordinates import EarthLocation

        from skyscene.io.times import location_from_header

        if self.config.location is not None:
            lon, lat, h = self.config.location
            return EarthLocation.from_geodetic(lon * u.deg, lat * u.deg, h * u.m)
        ref = read_exposure(next(iter(self.references.values())), profile=self.config.profile)
        return location_from_header(ref.meta.get("header"))

    def field_coordinates(self) -> tuple[float, float]:
        """RA, Dec (deg) of the field: header RA/DEC of a reference frame, else its WCS centre."""
        ref = read_exposure(next(iter(self.references.values())), profile=self.config.profile)
        ra, dec = ref.meta.get("ra"), ref.meta.get("dec")
        if ra is None or dec is None:
            if ref.wcs is None:
                raise HeaderError(
                    f"{ref.filename}: no RA/DEC keywords and no WCS for the barycentric correction",
                    filename=ref.filename,
                    key="RA",
                )
            c = ref.wcs.pixel_to_world((ref.shape[1] - 1) / 2, (ref.shape[0] - 1) / 2)
            ra, dec = float(c.ra.deg), float(c.dec.deg)
        return float(ra), float(dec)

    def _light_curves(self, band, rows, location) -> dict[int, Any]:
        from astropy.table import Table
        from astropy.time import Time

        from skyscene.io.times import bmjd_tdb
        from skyscene.photometry import differential_photometry

        mjd = {r.path: r.mjd_mid for r in self.frames}
        rows = sorted(rows, key=lambda r: mjd[r["path"]])
        ra, dec = self.field_coordinates()
        bmjd = bmjd_tdb(
            Time([mjd[r["path"]] for r in rows], format="mjd", scale="utc"),
            ra,
            dec,
            location=location,
        )
        stack = {
            c: np.array([r[c] for r in rows]).T
            for c in ("flux", "flux_err", "bkg", "bkg_err", "x", "y", "flags")
        }
        ids = np.asarray(self.catalogs[band]["id"])
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
        out = {}
        for k, sid in enumerate(ids):
            t = Table()
            t["BMJD"] = bmjd
            for c in ("flux", "flux_err", "bkg", "bkg_err", "x", "y", "flags"):
                t[c] = stack[c][k]
            t["rel_flux"] = rel[k]
            t["rel_flux_err"] = rel_err[k]
            t["file"] = [Path(r["path"]).name for r in rows]
            t.meta = {
                "band": band,
                "source_id": int(sid),
                "time": "BMJD(TDB) mid-exposure",
                "ra_field": ra,
                "dec_field": dec,
            }
            out[int(sid)] = t
        return out

    def _write_diagnostics(self, lcs, name, bkg_name) -> None:
        from skyscene.plotting import diagnostics as dg

        diag = self.out_dir / "diag"
        times = {b: [r.mjd_mid for r in self._band_frames(b)] for b in self.bands}
        _save_figure(dg.header_times_figure(times), diag / "header_times")
        bkgs = {
            b: [self.frame_stats[r.path]["bkg_level"] for r in self._band_frames(b)]
            for b in self.bands
        }
        _save_figure(dg.backgrounds_figure(times, bkgs), diag / "backgrounds")
        sizes = {
            b: [self.frame_stats[r.path].get("psf_size", np.nan) for r in self._band_frames(b)]
            for b in self.bands
        }
        _save_figure(dg.seeing_figure(times, sizes), diag / "seeing")
        _save_figure(dg.rms_vs_median_figure(lcs), diag / f"rms_vs_median_{name}_{bkg_name}")
        _save_figure(dg.light_curves_figure(lcs), diag / f"light_curves_{name}_{bkg_name}")

    def frames_table(self):
        """One row per used frame: file, band, time, background, alignment and PSF size."""
        from astropy.table import Table

        rows = []
        for r in self.frames:
            st = self.frame_stats.get(r.path, {})
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
                }
            )
        return Table(rows=rows) if rows else Table()

    def _write_metadata(self, photometer, bkg_name, lc_dir) -> None:
        write_table(self.frames_table(), self.out_dir / "frames.csv")
        config = dataclasses.asdict(self.config)
        config.update(
            data_dir=str(self.data_dir),
            photometer=repr(photometer),
            local_background=bkg_name,
            calibration=repr(self.calibration) if self.calibration is not None else None,
            psf_shapes={b: dataclasses.asdict(s) for b, s in self.shapes.items()},
            flux_corrections={b: dataclasses.asdict(c) for b, c in self.flux_corrections.items()},
            references=self.references,
        )
        atomic_write_text(lc_dir / "config.json", json.dumps(config, indent=1, default=str))
        atomic_write_text(self.out_dir / "config.json", json.dumps(config, indent=1, default=str))
        summary = {
            "frames_used": {b: len(self._band_frames(b)) for b in self.bands},
            "skipped": [{"file": f, "reason": r} for f, r in self.skipped],
            "alignment_methods": dict(Counter(s["method"] for s in self.frame_stats.values())),
        }
        atomic_write_text(self.out_dir / "summary.json", json.dumps(summary, indent=1))


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
    )
    reducer.create_catalogs()
    result = reducer.photometry("optimal")
    return (
        f"reduction: {len(reducer.frames)} frames in filters {', '.join(reducer.bands)} -> "
        f"light curves in {result['lc_dir']}\n  plots in {out_dir / 'reduce' / 'out' / 'diag'}"
    )
