"""Seeded multi-camera observations of a small field, for the reduction pipeline."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from skyscene.errors import ParameterError
from skyscene.io._atomic import atomic_path, atomic_write_text
from skyscene.psf import GaussianPSF, MoffatPSF

__all__ = ["ObservationTruth", "simulate_observations"]

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


def _wcs(center_ra, center_dec, crpix, scale_arcsec, rotation):
    from astropy.wcs import WCS

    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [center_ra, center_dec]
    w.wcs.crpix = [crpix[0] + 1.0, crpix[1] + 1.0]  # FITS is 1-based
    s = scale_arcsec / 3600.0
    c, si = math.cos(rotation), math.sin(rotation)
    w.wcs.cd = [[-s * c, s * si], [s * si, s * c]]
    return w


def _scaled(psf, scale: float):
    """The PSF ``psf`` with all widths multiplied by ``scale``."""
    if scale == 1.0:
        return psf
    if isinstance(psf, GaussianPSF):
        return GaussianPSF(psf.sigma_major * scale, psf.minor * scale, psf.theta)
    return MoffatPSF(psf.alpha_major * scale, psf.beta, psf.alpha_minor * scale, psf.theta)


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
    from astropy import units as u
    from astropy.io import fits
    from astropy.time import Time

    if n_images < 1:
        raise ParameterError(f"n_images must be >= 1, got {n_images}")
    if psf not in ("gaussian", "moffat"):
        raise ParameterError(f"psf must be 'gaussian' or 'moffat', got {psf!r}")
    rng = np.random.default_rng(rng)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ny, nx = shape
    phase_lags = dict(phase_lags or {b: 0.35 * k for k, b in enumerate(bands)})
    ra0, dec0 = field_center

    # Stars on the sky: positions in a reference tangent frame (pixels of pixel_scale).
    ref_wcs = _wcs(ra0, dec0, ((nx - 1) / 2, (ny - 1) / 2), pixel_scale, 0.0)
    margin = 30
    positions: list[np.ndarray] = []
    while len(positions) < n_sources:
        p = rng.uniform([margin, margin], [nx - margin, ny - margin])
        if all(np.hypot(*(p - q)) > 25 for q in positions):
            positions.append(p)
    pos = np.array(positions)
    fluxes = np.sort(np.exp(rng.uniform(*np.log(flux_range), n_sources)))[::-1]
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
        for i in range(n_sources)
    ]

    psfs, psf_truth = {}, {}
    for b in bands:
        if psf == "gaussian":
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
    camera_rotation = {b: rng.uniform(-0.03, 0.03) for b in bands}
    camera_offset = {b: rng.uniform(-8, 8, 2) for b in bands}

    amplitude = math.sqrt(2.0) * variable_rms
    t0 = Time(start, scale="utc")
    files, frames = [], []
    stamp = 41
    half = stamp // 2
    yy, xx = np.mgrid[0:ny, 0:nx]
    for i in range(n_images):
        t_start = t0 + (i * cadence) * u.s
        t_mid = t_start + (0.5 * exptime) * u.s
        seconds = (t_mid - t0).sec
        for b in bands:
            shift = camera_offset[b] + rng.normal(0, dither, 2)
            crpix = ((nx - 1) / 2 + shift[0], (ny - 1) / 2 + shift[1])
            wcs = _wcs(ra0, dec0, crpix, pixel_scale, camera_rotation[b] + rng.normal(0, 1e-3))
            xy = np.array(wcs.world_to_pixel(sky)).T
            level = sky_level + rng.normal(0, sky_scatter)
            psf_scale = float(np.exp(rng.normal(0, seeing_scatter))) if seeing_scatter > 0 else 1.0
            frame_psf = _scaled(psfs[b], psf_scale)
            gx, gy = rng.normal(0, 1, 2)
            norm = math.hypot(gx, gy) or 1.0
            grad = sky_gradient * level / max(nx, ny)
            gxx, gyy = grad * gx / norm, grad * gy / norm
            image = level + gxx * (xx - nx / 2) + gyy * (yy - ny / 2)
            frame_fluxes = []
            for k, src in enumerate(sources):
                f = src["flux"][b]
                if src["variable"]:
                    f *= 1.0 + amplitude * math.sin(
                        2 * math.pi * variable_frequency * seconds - phase_lags[b]
                    )
                frame_fluxes.append(f)
                cx, cy = xy[k]
                ix, iy = round(cx), round(cy)
                y0, x0 = iy - half, ix - half
                sl = (
                    slice(max(y0, 0), min(y0 + stamp, ny)),
                    slice(max(x0, 0), min(x0 + stamp, nx)),
                )
                st = frame_psf.render((stamp, stamp), center=(cx - x0, cy - y0))
                image[sl] += (
                    f * st[sl[0].start - y0 : sl[0].stop - y0, sl[1].start - x0 : sl[1].stop - x0]
                )
            electrons = rng.poisson(np.clip(image, 0, None) * gain)
            data = electrons / gain + rng.normal(0, read_noise, shape)
            header = wcs.to_header()
            header["INSTRUME"] = ("SIMCAM", "simulated camera")
            header["DETECTOR"] = (f"cam-{b}", "camera")
            header["FILTER"] = b
            header["DATE-OBS"] = (t_start.isot, "start of exposure (UTC)")
            header["EXPTIME"] = (exptime, "s")
            header["GAIN"] = (gain, "e-/ADU")
            header["RDNOISE"] = (read_noise, "ADU")
            header["BINNING"] = "1x1"
            header["RA"] = (ra0, "field centre (deg)")
            header["DEC"] = (dec0, "field centre (deg)")
            name = f"{b}_{i:04d}.fits"
            with atomic_path(out_dir / name) as tmp:
                fits.PrimaryHDU(data.astype(np.float32), header=header).writeto(tmp)
            files.append(name)
            positions_b = []
            for k in range(n_sources):
                cx, cy = xy[k]
                positions_b.append([float(cx), float(cy)])
            frames.append(
                {
                    "file": name,
                    "band": b,
                    "mjd_mid_utc": float(t_mid.mjd),
                    "seconds": float(seconds),
                    "sky_level": float(level),
                    "psf_scale": psf_scale,
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
                                max(level + gxx * (p[0] - nx / 2) + gyy * (p[1] - ny / 2), 0) / gain
                                + read_noise**2
                            )
                        )
                        for p in positions_b
                    ],
                }
            )
    truth = ObservationTruth(
        files=files,
        sources=sources,
        frames=frames,
        psf=psf_truth,
        variable={
            "source": variable_index,
            "frequency_hz": variable_frequency,
            "rms": variable_rms,
            "amplitude": amplitude,
            "phase_lags": phase_lags,
            "t0_utc": t0.isot,
            "model": "flux * (1 + amplitude * sin(2 pi f (t - t0) - lag))",
        },
        gain=gain,
        read_noise=read_noise,
        field_center=(ra0, dec0),
        meta={"shape": list(shape), "n_images": n_images, "bands": list(bands), "psf": psf},
    )
    atomic_write_text(out_dir / "truth.json", truth.to_json())
    return truth
