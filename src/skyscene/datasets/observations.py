"""Seeded multi-camera observations of a small field, for the reduction pipeline."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from skyscene.datasets.scene import add_point_sources_in_stamps, ccd_noise, sky_plane, tan_wcs
from skyscene.errors import ParameterError, ParameterRangeError
from skyscene.io._atomic import atomic_path, atomic_write_text
from skyscene.psf import GaussianPSF, MoffatPSF

__all__ = [
    "FrameConditions",
    "ObservationConfig",
    "ObservationTruth",
    "SimulatedFrame",
    "draw_band_psfs",
    "draw_frame_conditions",
    "draw_star_field",
    "frame_header",
    "observation_frames",
    "simulate_observations",
]

_BAND_FLUX_FACTOR = {"g": 0.8, "r": 1.0, "i": 1.15, "z": 1.2, "u": 0.5}


@dataclass(frozen=True, kw_only=True)
class ObservationTruth:
    """What :func:`simulate_observations` put into the frames (also in ``truth.json``)."""

    files: list
    sources: list
    frames: list
    psf: dict
    variable: dict
    gain: float
    read_noise: float
    field_center: tuple
    meta: dict = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(
            {
                "files": self.files,
                "sources": self.sources,
                "frames": self.frames,
                "psf": self.psf,
                "variable": self.variable,
                "gain": self.gain,
                "read_noise": self.read_noise,
                "field_center": list(self.field_center),
                "meta": self.meta,
            },
            indent=1,
        )

    @classmethod
    def from_json(cls, path) -> ObservationTruth:
        raw = json.loads(Path(path).read_text())
        raw["field_center"] = tuple(raw["field_center"])
        return cls(**raw)


def _scaled(psf, scale: float):
    """The PSF ``psf`` with all widths multiplied by ``scale``."""
    if scale == 1.0:
        return psf
    if isinstance(psf, GaussianPSF):
        return GaussianPSF(psf.sigma_major * scale, psf.minor * scale, psf.theta)
    return MoffatPSF(psf.alpha_major * scale, psf.beta, psf.alpha_minor * scale, psf.theta)


@dataclass(frozen=True, kw_only=True)
class ObservationConfig:
    """The field and cameras of :func:`simulate_observations` (its keyword arguments).

    Parameters are documented at :func:`simulate_observations`; ``phase_lags=None``
    means ``0.35 k`` radians for the k-th band.
    """

    n_images: int = 100
    bands: tuple[str, ...] = ("g", "r", "i")
    shape: tuple[int, int] = (256, 256)
    n_sources: int = 6
    flux_range: tuple[float, float] = (1e3, 1e4)
    psf: str = "gaussian"
    sky_level: float = 100.0
    sky_scatter: float = 10.0
    sky_gradient: float = 0.02
    gain: float = 1.5
    read_noise: float = 4.0
    exptime: float = 1.0
    cadence: float = 3.0
    dither: float = 4.0
    variable_rms: float = 0.02
    variable_frequency: float = 1.0 / 15.0
    phase_lags: dict | None = None
    seeing_scatter: float = 0.0
    pixel_scale: float = 0.4
    field_center: tuple[float, float] = (150.0, 20.0)
    start: str = "2026-03-01T03:00:00"

    def __post_init__(self) -> None:
        if self.n_images < 1:
            raise ParameterRangeError(
                f"n_images must be >= 1, got {self.n_images}",
                name="n_images",
                value=self.n_images,
                min=1,
            )
        if self.psf not in ("gaussian", "moffat"):
            raise ParameterError(
                f"psf must be 'gaussian' or 'moffat', got {self.psf!r}",
                name="psf",
                value=self.psf,
            )

    def band_phase_lags(self) -> dict[str, float]:
        """Phase lag (radians) of the variable star in each band."""
        return dict(self.phase_lags or {b: 0.35 * k for k, b in enumerate(self.bands)})


#: Rejected position draws in a row after which :func:`draw_star_field` gives up.
STAR_FIELD_TRIES = 10_000


def draw_star_field(rng: np.random.Generator, config: ObservationConfig):
    """Star positions (pixels of the reference tangent frame) and fluxes, brightest first.

    Positions uniform ≥ 30 px inside the frame, ≥ 25 px apart (rejection sampling,
    at most :data:`STAR_FIELD_TRIES` rejected draws in a row); fluxes log-uniform in
    ``flux_range``.

    Raises
    ------
    ParameterError
        ``n_sources`` stars do not fit in the frame (no new position found in
        :data:`STAR_FIELD_TRIES` draws); the message names ``n_sources`` and the shape.
    """
    ny, nx = config.shape
    margin, spacing = 30, 25
    positions: list[np.ndarray] = []
    placed = np.empty((0, 2))
    failures = 0
    while len(positions) < config.n_sources:
        p = rng.uniform([margin, margin], [nx - margin, ny - margin])
        d = placed - p  # |p - q| is symmetric: same distances as p - q
        if np.all(np.hypot(d[:, 0], d[:, 1]) > spacing):
            positions.append(p)
            placed = np.vstack([placed, p])
            failures = 0
            continue
        failures += 1
        if failures >= STAR_FIELD_TRIES:
            raise ParameterError(
                f"n_sources={config.n_sources} stars do not fit in a {ny}x{nx} frame "
                f"({margin} px from the edges, > {spacing} px apart): only {len(positions)} "
                f"placed after {STAR_FIELD_TRIES} rejected draws; ask for fewer stars or a "
                "larger shape",
                name="n_sources",
                value=config.n_sources,
            )
    log_low, log_high = np.log(config.flux_range)
    fluxes = np.sort(np.exp(rng.uniform(log_low, log_high, config.n_sources)))[::-1]
    return np.array(positions), fluxes


def draw_band_psfs(rng: np.random.Generator, bands, kind: str):
    """One PSF per camera (band): elliptical Gaussian or Moffat; returns (models, truth)."""
    psfs, psf_truth = {}, {}
    for b in bands:
        if kind == "gaussian":
            major = rng.uniform(1.6, 2.2)
            model = GaussianPSF(major, major * rng.uniform(0.75, 0.95), rng.uniform(-1.2, 1.2))
            psf_truth[b] = {
                "model": "gaussian",
                "sigma_major": model.sigma_major,
                "sigma_minor": model.sigma_minor,
                "theta": model.theta,
            }
        else:
            model = MoffatPSF.from_fwhm(
                rng.uniform(3.5, 4.5),
                3.5,
                axis_ratio=rng.uniform(0.8, 0.95),
                theta=rng.uniform(-1.2, 1.2),
            )
            psf_truth[b] = {
                "model": "moffat",
                "alpha_major": model.alpha_major,
                "alpha_minor": model.alpha_minor,
                "beta": model.beta,
                "theta": model.theta,
            }
        psfs[b] = model
    return psfs, psf_truth


@dataclass(frozen=True, kw_only=True, eq=False)
class FrameConditions:
    """One frame's pointing, sky and seeing (:func:`draw_frame_conditions`)."""

    wcs: Any
    sky_level: float
    sky_gradient: tuple[float, float]
    psf_scale: float


def draw_frame_conditions(
    rng: np.random.Generator,
    config: ObservationConfig,
    camera_rotation: float,
    camera_offset: np.ndarray,
) -> FrameConditions:
    """Draw a frame's dither (``dither`` px rms), rotation jitter (1e-3 rad), sky level
    (``sky_level ± sky_scatter``), seeing scale (if ``seeing_scatter`` > 0) and sky
    gradient direction, in that order."""
    ny, nx = config.shape
    ra0, dec0 = config.field_center
    shift = camera_offset + rng.normal(0, config.dither, 2)
    crpix = ((nx - 1) / 2 + shift[0], (ny - 1) / 2 + shift[1])
    wcs = tan_wcs(ra0, dec0, crpix, config.pixel_scale, camera_rotation + rng.normal(0, 1e-3))
    level = config.sky_level + rng.normal(0, config.sky_scatter)
    psf_scale = (
        float(np.exp(rng.normal(0, config.seeing_scatter))) if config.seeing_scatter > 0 else 1.0
    )
    gx, gy = rng.normal(0, 1, 2)
    norm = math.hypot(gx, gy) or 1.0
    grad = config.sky_gradient * level / max(nx, ny)
    return FrameConditions(
        wcs=wcs,
        sky_level=level,
        sky_gradient=(grad * gx / norm, grad * gy / norm),
        psf_scale=psf_scale,
    )


def frame_header(config: ObservationConfig, wcs, band: str, t_start) -> Any:
    """The FITS header of a raw frame: WCS, camera, filter, time, gain, read noise."""
    ra0, dec0 = config.field_center
    header = wcs.to_header()
    header["INSTRUME"] = ("SIMCAM", "simulated camera")
    header["DETECTOR"] = (f"cam-{band}", "camera")
    header["FILTER"] = band
    header["DATE-OBS"] = (t_start.isot, "start of exposure (UTC)")
    header["EXPTIME"] = (config.exptime, "s")
    header["GAIN"] = (config.gain, "e-/ADU")
    header["RDNOISE"] = (config.read_noise, "ADU")
    header["BINNING"] = "1x1"
    header["RA"] = (ra0, "field centre (deg)")
    header["DEC"] = (dec0, "field centre (deg)")
    return header


def simulate_observations(
    out_dir,
    n_images: int = 100,
    *,
    rng=None,
    bands: tuple[str, ...] = ("g", "r", "i"),
    shape: tuple[int, int] = (256, 256),
    n_sources: int = 6,
    flux_range: tuple[float, float] = (1e3, 1e4),
    psf: str = "gaussian",
    sky_level: float = 100.0,
    sky_scatter: float = 10.0,
    sky_gradient: float = 0.02,
    gain: float = 1.5,
    read_noise: float = 4.0,
    exptime: float = 1.0,
    cadence: float = 3.0,
    dither: float = 4.0,
    variable_rms: float = 0.02,
    variable_frequency: float = 1.0 / 15.0,
    phase_lags: dict | None = None,
    seeing_scatter: float = 0.0,
    pixel_scale: float = 0.4,
    field_center: tuple[float, float] = (150.0, 20.0),
    start: str = "2026-03-01T03:00:00",
) -> ObservationTruth:
    """Write seeded frames of a field seen by several cameras at once.

    Each camera (one per band) has its own pixel grid (a small rotation and offset on
    the sky) and its own PSF (elliptical Gaussian or Moffat); every frame is dithered.
    The field holds ``n_sources`` stars of flux ``flux_range`` (counts, scaled by a
    colour per band); the brightest one varies as a sinusoid of ``variable_rms``
    fractional RMS (amplitude ``√2 × rms``) at ``variable_frequency`` (Hz) with a
    phase lag per band (radians). Backgrounds are ``sky_level ± sky_scatter`` per
    frame with a linear gradient of ``sky_gradient`` (fraction across the frame).
    Noise: Poisson in electrons (``gain`` e-/ADU) plus Gaussian read noise (ADU).
    ``seeing_scatter`` > 0 scales each frame's PSF by ``exp(N(0, seeing_scatter))``
    (recorded as ``psf_scale`` per frame).

    Frames are bare primary-HDU FITS files ``{band}_{i:04d}.fits`` with FILTER,
    DATE-OBS (start, UTC), EXPTIME, GAIN, RDNOISE, BINNING, RA, DEC, INSTRUME and a
    TAN WCS; ``truth.json`` records everything.

    A thin wrapper: the settings become an :class:`ObservationConfig`, the frames come
    from :func:`observation_frames` (no I/O) and are written here.

    Parameters
    ----------
    out_dir : path
    n_images : int
        Frames per camera.
    rng : numpy Generator or int
        Seed or generator (required for reproducibility).

    Returns
    -------
    ObservationTruth
    """
    from astropy.io import fits

    config = ObservationConfig(
        n_images=n_images,
        bands=bands,
        shape=shape,
        n_sources=n_sources,
        flux_range=flux_range,
        psf=psf,
        sky_level=sky_level,
        sky_scatter=sky_scatter,
        sky_gradient=sky_gradient,
        gain=gain,
        read_noise=read_noise,
        exptime=exptime,
        cadence=cadence,
        dither=dither,
        variable_rms=variable_rms,
        variable_frequency=variable_frequency,
        phase_lags=phase_lags,
        seeing_scatter=seeing_scatter,
        pixel_scale=pixel_scale,
        field_center=field_center,
        start=start,
    )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    frames = observation_frames(config, rng=rng)
    truth = None
    while True:
        try:
            frame = next(frames)
        except StopIteration as stop:
            truth = stop.value
            break
        with atomic_path(out_dir / frame.name) as tmp:
            fits.PrimaryHDU(frame.data.astype(np.float32), header=frame.header).writeto(tmp)
    atomic_write_text(out_dir / "truth.json", truth.to_json())
    return truth


@dataclass(frozen=True, kw_only=True, eq=False)
class SimulatedFrame:
    """One raw frame of :func:`observation_frames`: file name, ADU pixels, FITS header."""

    name: str
    data: np.ndarray
    header: Any


def observation_frames(config: ObservationConfig, *, rng=None):
    """Generate the frames of :func:`simulate_observations` (no file I/O).

    Yields :class:`SimulatedFrame` objects (image by image, band by band) and returns
    the :class:`ObservationTruth` (``StopIteration.value``). The draws, in order: the
    star field (:func:`draw_star_field`), the cameras' PSFs (:func:`draw_band_psfs`),
    rotations and offsets; then per frame :func:`draw_frame_conditions` and the CCD
    noise (:func:`~skyscene.datasets.scene.ccd_noise`).
    """
    from astropy import units as u
    from astropy.time import Time

    rng = np.random.default_rng(rng)
    bands = config.bands
    ny, nx = config.shape
    phase_lags = config.band_phase_lags()
    ra0, dec0 = config.field_center

    # Stars on the sky: positions in a reference tangent frame (pixels of pixel_scale).
    ref_wcs = tan_wcs(ra0, dec0, ((nx - 1) / 2, (ny - 1) / 2), config.pixel_scale, 0.0)
    pos, fluxes = draw_star_field(rng, config)
    sky = ref_wcs.pixel_to_world(pos[:, 0], pos[:, 1])
    variable_index = 0
    sources: list[dict[str, Any]] = [
        {
            "id": i,
            "ra": float(sky[i].ra.deg),
            "dec": float(sky[i].dec.deg),
            "flux": {b: float(fluxes[i] * _BAND_FLUX_FACTOR.get(b, 1.0)) for b in bands},
            "variable": i == variable_index,
        }
        for i in range(config.n_sources)
    ]
    psfs, psf_truth = draw_band_psfs(rng, bands, config.psf)
    camera_rotation = {b: rng.uniform(-0.03, 0.03) for b in bands}
    camera_offset = {b: rng.uniform(-8, 8, 2) for b in bands}

    amplitude = math.sqrt(2.0) * config.variable_rms
    t0 = Time(config.start, scale="utc")
    files, frames = [], []
    for i in range(config.n_images):
        t_start = t0 + (i * config.cadence) * u.s
        t_mid = t_start + (0.5 * config.exptime) * u.s
        seconds = (t_mid - t0).sec
        for b in bands:
            cond = draw_frame_conditions(rng, config, camera_rotation[b], camera_offset[b])
            wcs = cond.wcs
            xy = np.array(wcs.world_to_pixel(sky)).T
            level = cond.sky_level
            gxx, gyy = cond.sky_gradient
            image = sky_plane((ny, nx), level, gxx, gyy)
            frame_fluxes = []
            for src in sources:
                f = src["flux"][b]
                if src["variable"]:
                    f *= 1.0 + amplitude * math.sin(
                        2 * math.pi * config.variable_frequency * seconds - phase_lags[b]
                    )
                frame_fluxes.append(f)
            add_point_sources_in_stamps(
                image, _scaled(psfs[b], cond.psf_scale), xy, frame_fluxes, stamp=41
            )
            data = ccd_noise(rng, image, config.gain, config.read_noise)
            name = f"{b}_{i:04d}.fits"
            yield SimulatedFrame(name=name, data=data, header=frame_header(config, wcs, b, t_start))
            files.append(name)
            positions_b = [[float(cx), float(cy)] for cx, cy in xy]
            frames.append(
                {
                    "file": name,
                    "band": b,
                    "mjd_mid_utc": float(t_mid.mjd),
                    "seconds": float(seconds),
                    "sky_level": float(level),
                    "psf_scale": cond.psf_scale,
                    "sky_gradient": [float(gxx), float(gyy)],
                    "xy": positions_b,
                    "flux": [float(f) for f in frame_fluxes],
                    "bkg": [
                        float(level + gxx * (p[0] - nx / 2) + gyy * (p[1] - ny / 2))
                        for p in positions_b
                    ],
                    "bkg_err": [
                        float(
                            math.sqrt(
                                max(level + gxx * (p[0] - nx / 2) + gyy * (p[1] - ny / 2), 0)
                                / config.gain
                                + config.read_noise**2
                            )
                        )
                        for p in positions_b
                    ],
                }
            )
    return ObservationTruth(
        files=files,
        sources=sources,
        frames=frames,
        psf=psf_truth,
        variable={
            "source": variable_index,
            "frequency_hz": config.variable_frequency,
            "rms": config.variable_rms,
            "amplitude": amplitude,
            "phase_lags": phase_lags,
            "t0_utc": t0.isot,
            "model": "flux * (1 + amplitude * sin(2 pi f (t - t0) - lag))",
        },
        gain=config.gain,
        read_noise=config.read_noise,
        field_center=(ra0, dec0),
        meta={
            "shape": list(config.shape),
            "n_images": config.n_images,
            "bands": list(bands),
            "psf": config.psf,
        },
    )
