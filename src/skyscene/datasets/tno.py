"""Seeded DES-like stamp sets of a (moving) point source on a complex background.

:func:`simulate_tno_stamps` draws one *detection*: ``n_exposures`` stamps of the same
sky patch (30 × 30 pixels of 0.263″), each with its own PSF (Moffat or Kolmogorov,
FWHM 0.8″–1.5″), WCS (sub-pixel shifts, small rotations and scale changes),
zeropoint (29.5–30.5), sky, inverse-variance map and masked pixels/columns. The
static scene holds background galaxies (exponential and Sérsic n = 2 profiles drawn
by GalSim) and stars; the target (a TNO) is in the detection exposure(s) only, at a
flux set by the requested S/N, optionally as a binary and optionally visible at its
ephemeris positions in other exposures (a mover).

Simulation conventions (read them before interpreting pulls):

- One PSF per exposure for every source. Galaxies are GalSim profiles convolved with
  the atmospheric PSF (untruncated). The ``PSF`` HDU is the pixel-convolved PSF sampled
  on ``psf_size`` pixels and renormalised to unit sum (as PSFEx models are), so it holds
  a fraction ``psf_inside`` (99.1–100 % for 41 px) of the light; point sources (target,
  stars) are drawn as ``psf_inside × flux ×`` that image, which is the true PSF inside
  it. ``MAGZERO`` is the zeropoint of PSF-model fluxes, ``ZP + 2.5 log10(psf_inside)``,
  as survey zeropoints calibrated on PSF photometry of stars are; fluxes are then
  consistent for point sources and galaxies alike (``psf_flux_zeropoint=True``). The
  former convention (point sources at 100 % of the truncated PSF, galaxies at
  ``psf_inside``, ``MAGZERO = ZP``; ``psf_flux_zeropoint=False``) made the exposures
  disagree on a galaxy by up to 1 % relative to the PSF model, which the shared grid
  cannot absorb: heavy-blend pulls widened to σ ≈ 1.2 at high S/N.
- The grid of point sources represents the galaxies only approximately (tested:
  < 0.1σ on noiseless heavy blends).
- The noise is Gaussian with the sky + read-noise variance plus, by default, the source
  shot noise (``source_noise=True``); the ``WGT`` map holds only the sky + read-noise
  variance, as DES weight maps do. The default second pass of the fit (``shot_noise``)
  adds the model's shot noise.
- Galaxies and stars lie within ±3″ of the target (inside the default grid).
- S/N is the ideal PSF-fit S/N of the isolated target on the sky noise of its
  detection exposure: ``snr = f / σ_f`` with ``σ_f⁻² = Σ P² / σ²``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from skyscene._validation import check_choice, check_int, check_optional, check_positive
from skyscene.datasets.scene import (
    add_gaussian_noise,
    draw_bad_pixels,
    draw_galaxy,
    draw_mover_offset,
    draw_offset_outside,
    draw_stars,
    point_source_image,
    render_galaxies,
    tan_wcs,
)
from skyscene.errors import ParameterError, ParameterRangeError

__all__ = [
    "BLEND_CLASSES",
    "ExposureConditions",
    "TNOSceneConfig",
    "TNOSimulation",
    "binary_components",
    "draw_conditions",
    "draw_static_scene",
    "simulate_tno_scene",
    "simulate_tno_stamps",
    "write_tno_stamps",
]

BLEND_CLASSES = ("isolated", "moderate", "heavy")
PIXEL_SCALE = 0.263


@dataclass(frozen=True, kw_only=True, eq=False)
class TNOSimulation:
    """One simulated detection.

    Attributes
    ----------
    exposures : tuple of Exposure
        The stamps (counts), each with WCS, pixelised PSF, zeropoint, gain, time.
    target : skyscene.scene.Target
        What a user would give to the fit (position, detection indices, ephemeris).
    truth : dict
        JSON-serialisable truth: ``flux`` (flux30 of the target, per component for a
        binary), ``snr``, ``blend``, ``binary``, per-exposure PSF FWHM, zeropoints,
        sky levels, galaxies, stars, target pixel positions.
    paths : tuple of Path
        Files written (empty unless ``out_dir`` was given).
    """

    exposures: tuple
    target: Any
    truth: dict
    paths: tuple[Path, ...] = field(default_factory=tuple)


def _rng(rng) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def _jacobian(wcs, galsim):
    """GalSim JacobianWCS (arcsec per pixel, u = −ΔRA cosδ towards West...) of a TAN WCS.

    GalSim's world ``u`` increases to the West... to keep sky handedness simple we use
    ``u = ξ`` (East) and ``v = η`` (North) directly from the CD matrix.
    """
    cd = wcs.wcs.cd * 3600.0
    return galsim.JacobianWCS(cd[0, 0], cd[0, 1], cd[1, 0], cd[1, 1])


def _psf_profile(galsim, rng, fwhm):
    if rng.random() < 0.5:
        beta = float(rng.uniform(2.5, 4.5))
        profile = galsim.Moffat(beta=beta, fwhm=fwhm, trunc=3.0 * fwhm)
        kind = f"moffat(beta={beta:.2f})"
    else:
        profile = galsim.Kolmogorov(fwhm=fwhm)
        kind = "kolmogorov"
    g1, g2 = rng.normal(0.0, 0.03, 2)
    return profile.shear(g1=float(g1), g2=float(g2)), kind


def _effective_psf(galsim, profile, jac, size: int, oversampling: int):
    """Pixel-convolved PSF sampled at 1/oversampling pixel, as a PixelizedPSF.

    Also returns the fraction of the PSF's flux inside the sampled image (its
    "encircled energy"; the PixelizedPSF is renormalised to unit sum).
    """
    from skyscene.psf import PixelizedPSF

    in_pixels = jac.toImage(profile)  # profile in pixel coordinates
    effective = galsim.Convolve(in_pixels, galsim.Pixel(1.0))
    n = (size * oversampling) | 1
    image = effective.drawImage(nx=n, ny=n, scale=1.0 / oversampling, method="no_pixel")
    inside = float(image.array.sum()) / float(profile.flux)
    return PixelizedPSF(image.array, oversampling=oversampling), inside


@dataclass(frozen=True, kw_only=True)
class TNOSceneConfig:
    """The scene of one simulated TNO detection (the settings of :func:`simulate_tno_stamps`).

    ``None`` (``n_exposures``, ``snr``, ``n_stars``) and ``blend="random"`` are drawn
    from the generator by :meth:`resolve`; every other field is fixed. Parameters are
    documented at :func:`simulate_tno_stamps`.

    Examples
    --------
    >>> import numpy as np
    >>> cfg = TNOSceneConfig(n_exposures=None, blend="random").resolve(np.random.default_rng(0))
    >>> cfg.blend in BLEND_CLASSES and cfg.snr is not None
    True
    """

    n_exposures: int | None = 11
    n_detections: int = 1
    snr: float | None = None
    blend: str = "random"
    binary: tuple[float, float] | None = None
    separation_unit: str = "arcsec"
    mover: bool = False
    n_stars: int | None = None
    stamp_size: int = 30
    pixel_scale: float = PIXEL_SCALE
    source_noise: bool = True
    noise: bool = True
    psf_flux_zeropoint: bool = True
    galaxy_accuracy: float = 5e-3
    psf_size: int = 41
    psf_oversampling: int = 3

    def __post_init__(self) -> None:
        if self.n_exposures is not None:
            self._check_counts(self.n_exposures)
        check_choice("blend", self.blend, (*BLEND_CLASSES, "random"))
        if self.snr is not None and not (math.isfinite(self.snr) and self.snr > 0):
            raise ParameterError(
                f"snr must be positive, got {self.snr!r}", name="snr", value=self.snr
            )
        if self.binary is not None:
            sep, ratio = (float(v) for v in self.binary)
            if not (sep > 0 and ratio > 0):
                raise ParameterError(
                    f"binary must be (separation > 0, flux_ratio > 0), got {self.binary!r}",
                    name="binary",
                    value=self.binary,
                )
        check_choice("separation_unit", self.separation_unit, ("arcsec", "fwhm"))
        check_int("stamp_size", self.stamp_size, low=5)
        check_positive("pixel_scale", self.pixel_scale)
        check_positive("galaxy_accuracy", self.galaxy_accuracy)
        check_int("psf_size", self.psf_size, low=3)
        check_int("psf_oversampling", self.psf_oversampling, low=1)
        check_optional(check_int, "n_stars", self.n_stars, low=0)

    def _check_counts(self, n_exposures) -> None:
        if not (isinstance(n_exposures, int | np.integer) and n_exposures >= 2):
            raise ParameterError(
                f"n_exposures must be an int >= 2, got {n_exposures!r}",
                name="n_exposures",
                value=n_exposures,
            )
        if not 1 <= self.n_detections < n_exposures:
            raise ParameterRangeError(
                f"n_detections must be in [1, n_exposures - 1] = [1, {n_exposures - 1}], "
                f"got {self.n_detections!r}",
                name="n_detections",
                value=self.n_detections,
                min=1,
                max=n_exposures - 1,
            )

    def resolve(self, rng: np.random.Generator) -> TNOSceneConfig:
        """The config with its random choices drawn, in this order: ``n_exposures``
        (uniform in 5..20), ``blend`` (uniform among :data:`BLEND_CLASSES`), ``snr``
        (log-uniform in 5–200). ``n_stars=None`` is drawn later, with the scene."""
        n_exposures = self.n_exposures
        if n_exposures is None:
            n_exposures = int(rng.integers(5, 21))
            self._check_counts(n_exposures)
        blend = str(rng.choice(BLEND_CLASSES)) if self.blend == "random" else self.blend
        snr = self.snr
        if snr is None:
            snr = float(np.exp(rng.uniform(math.log(5.0), math.log(200.0))))
        return dataclasses.replace(self, n_exposures=n_exposures, blend=blend, snr=snr)

    @property
    def static_half_width(self) -> float:
        """Half-width (arcsec) of the square holding the static sources.

        They stay inside the default SMP grid footprint (20 × 0.35″: ±3.3″) and away from
        the stamp edge: the grid cannot model light from outside its footprint.
        """
        return min(3.0, 0.5 * (self.stamp_size - 4) * self.pixel_scale)


#: Per blend class: the blend galaxy's distance from the target (arcsec), its flux
#: relative to the target's and its half-light radius (arcsec), each drawn uniformly.
_BLEND_GALAXY = {
    "moderate": ((0.8, 2.0), (0.5, 5.0), (0.3, 1.0)),
    "heavy": ((0.0, 0.8), (1.0, 20.0), (0.3, 1.2)),
}


def draw_static_scene(
    rng: np.random.Generator, config: TNOSceneConfig
) -> tuple[list[dict], list[dict]]:
    """Galaxies and stars around the target (tangent-plane arcsec), drawn in this order.

    Background galaxies (Poisson, mean 1.5; ≥ 2″ from the target), then the blend
    galaxy of ``config.blend`` (moderate: 0.8″–2″ away, 0.5–5× the target flux; heavy:
    within 0.8″, 1–20×), then ``n_stars`` stars (0–2 if None; ≥ 1.5″ away). Fluxes are
    relative to the target's.
    """
    half = config.static_half_width
    galaxies: list[dict] = []
    for _ in range(int(rng.poisson(1.5))):
        xi, eta = draw_offset_outside(rng, half, 2.0)
        galaxies.append(draw_galaxy(rng, xi, eta, rng.uniform(0.3, 5.0), rng.uniform(0.2, 1.0)))
    if config.blend in _BLEND_GALAXY:
        (r_lo, r_hi), flux_range, hlr_range = _BLEND_GALAXY[config.blend]
        r, phi = rng.uniform(r_lo, r_hi), rng.uniform(0, 2 * math.pi)
        xi, eta = r * math.cos(phi), r * math.sin(phi)
        galaxies.append(
            draw_galaxy(rng, xi, eta, rng.uniform(*flux_range), rng.uniform(*hlr_range))
        )
    n_stars = int(rng.integers(0, 3)) if config.n_stars is None else int(config.n_stars)
    return galaxies, draw_stars(rng, n_stars, half)


def binary_components(
    separation: float, position_angle: float, flux_ratio: float
) -> list[tuple[float, float, float]]:
    """Two components ``(ξ, η, flux_rel)`` at ±separation/2 (arcsec) along the angle."""
    dxi = 0.5 * separation * math.cos(position_angle)
    deta = 0.5 * separation * math.sin(position_angle)
    return [(dxi, deta, 1.0), (-dxi, -deta, flux_ratio)]


@dataclass(frozen=True, kw_only=True, eq=False)
class ExposureConditions:
    """The observing conditions of one simulated stamp (see :func:`draw_conditions`)."""

    fwhm: float
    zeropoint: float
    gain: float
    read_noise: float
    sky: float
    target_xy: tuple[float, float]
    wcs: Any
    psf_profile: Any
    psf_kind: str

    @property
    def scale30(self) -> float:
        """Counts → flux30 factor ``10^(0.4 (30 − ZP))``."""
        return 10.0 ** (0.4 * (30.0 - self.zeropoint))

    @property
    def sky_variance(self) -> float:
        """Sky + read-noise variance, counts²."""
        return self.sky / self.gain + self.read_noise**2


def draw_conditions(
    galsim, rng: np.random.Generator, config: TNOSceneConfig, ra0: float, dec0: float
) -> ExposureConditions:
    """Draw one stamp's conditions, in this order: FWHM (0.8″–1.5″), zeropoint
    (29.5–30.5), gain (3.5–4.5), read noise (1.5–2.5), sky (400–3000 counts), the
    target's sub-pixel phase, the WCS scale (±0.2 %) and rotation (0.5° rms), the PSF
    profile (Moffat or Kolmogorov, sheared by 0.03 rms)."""
    ny = nx = int(config.stamp_size)
    fwhm = float(rng.uniform(0.8, 1.5))
    zeropoint = float(rng.uniform(29.5, 30.5))
    gain = float(rng.uniform(3.5, 4.5))
    read_noise = float(rng.uniform(1.5, 2.5))
    sky = float(rng.uniform(400.0, 3000.0))
    # Target near the stamp centre, with a random sub-pixel phase.
    tx = (nx - 1) / 2.0 + float(rng.uniform(-0.5, 0.5))
    ty = (ny - 1) / 2.0 + float(rng.uniform(-0.5, 0.5))
    wcs = tan_wcs(
        ra0,
        dec0,
        (tx, ty),
        config.pixel_scale * (1 + rng.normal(0, 0.002)),
        math.radians(rng.normal(0, 0.5)),
    )
    profile, psf_kind = _psf_profile(galsim, rng, fwhm)
    return ExposureConditions(
        fwhm=fwhm,
        zeropoint=zeropoint,
        gain=gain,
        read_noise=read_noise,
        sky=sky,
        target_xy=(tx, ty),
        wcs=wcs,
        psf_profile=profile,
        psf_kind=psf_kind,
    )


def simulate_tno_stamps(
    rng=None,
    *,
    n_exposures: int | None = 11,
    n_detections: int = 1,
    snr: float | None = None,
    blend: str = "random",
    binary: tuple[float, float] | None = None,
    separation_unit: str = "arcsec",
    mover: bool = False,
    n_stars: int | None = None,
    stamp_size: int = 30,
    pixel_scale: float = PIXEL_SCALE,
    source_noise: bool = True,
    noise: bool = True,
    psf_flux_zeropoint: bool = True,
    galaxy_accuracy: float = 5e-3,
    psf_size: int = 41,
    psf_oversampling: int = 3,
    out_dir: str | Path | None = None,
) -> TNOSimulation:
    """Simulate one DES-like detection of a TNO on a static background.

    A thin wrapper: ``simulate_tno_scene(TNOSceneConfig(...), rng=rng)`` (and
    :func:`write_tno_stamps` with ``out_dir``).

    Parameters
    ----------
    rng : int or numpy.random.Generator
        Seed or generator (everything is drawn from it).
    n_exposures : int or None
        Number of stamps (5–20 typical); None draws it uniformly in 5..20.
    n_detections : int
        Exposures in which the target is measured (the first ones).
    snr : float or None
        S/N of the target (per component for a binary); None draws log-uniform in 5–200.
    blend : {"isolated", "moderate", "heavy", "random"}
        Nearest-galaxy configuration: isolated (galaxies ≥ 2″ away), moderate (a galaxy
        0.8″–2″ away, 0.5–5× the target flux), heavy (a galaxy within 0.8″, 1–20×).
    binary : (separation, flux_ratio) or None
        Add a second component at this separation and flux ratio (secondary/primary);
        the two sit at ±separation/2 from the nominal position, at a random angle.
    separation_unit : {"arcsec", "fwhm"}
        Unit of the binary separation: arcsec, or the (atmospheric) PSF FWHM drawn for
        the first detection exposure (the drawn sequence does not depend on the unit).
    mover : bool
        Also put the target in two or three non-detection exposures at ephemeris
        positions inside the stamp (recorded in ``target.ephemeris``).
    n_stars : int or None
        Stars in the scene (None: 0–2).
    stamp_size : int
        Stamp side in pixels (30).
    pixel_scale : float
        Arcsec per pixel (0.263, DECam).
    source_noise : bool
        Include the shot noise of the sources in the pixel noise (not in ``WGT``).
    noise : bool
        Add pixel noise (False: noiseless stamps; every random draw is still made, so
        the scene is the same as with noise).
    psf_flux_zeropoint : bool
        ``MAGZERO`` calibrates PSF-model fluxes and point sources carry the light the
        truncated PSF image misses (default; see the module notes). False reproduces the
        former, inconsistent convention (for studies of PSF-normalisation errors).
    galaxy_accuracy : float
        GalSim ``folding_threshold`` of the galaxy drawings (``maxk_threshold`` a fifth).
    psf_size, psf_oversampling : int
        Native size and oversampling of the ``PSF`` HDU (41 px: ±5.4″).
    out_dir : str or Path, optional
        If given, write the stamps and ``truth.json`` there (:func:`write_tno_stamps`).

    Returns
    -------
    TNOSimulation

    Examples
    --------
    >>> sim = simulate_tno_stamps(rng=3, n_exposures=5, snr=20.0, blend="heavy")
    >>> len(sim.exposures), sim.truth["blend"], sim.exposures[0].shape
    (5, 'heavy', (30, 30))
    """
    config = TNOSceneConfig(
        n_exposures=n_exposures,
        n_detections=n_detections,
        snr=snr,
        blend=blend,
        binary=binary,
        separation_unit=separation_unit,
        mover=mover,
        n_stars=n_stars,
        stamp_size=stamp_size,
        pixel_scale=pixel_scale,
        source_noise=source_noise,
        noise=noise,
        psf_flux_zeropoint=psf_flux_zeropoint,
        galaxy_accuracy=galaxy_accuracy,
        psf_size=psf_size,
        psf_oversampling=psf_oversampling,
    )
    sim = simulate_tno_scene(config, rng=rng)
    if out_dir is not None:
        paths = write_tno_stamps(sim, out_dir)
        sim = dataclasses.replace(sim, paths=tuple(paths))
    return sim


def simulate_tno_scene(config: TNOSceneConfig, *, rng=None) -> TNOSimulation:
    """Simulate one detection from a :class:`TNOSceneConfig` (no file I/O).

    The draws, in order: :meth:`TNOSceneConfig.resolve`; the field centre; the static
    scene (:func:`draw_static_scene`); the binary's position angle; the mover's
    exposures; the start MJD; then per exposure :func:`draw_conditions`, the mover's
    position (:func:`~skyscene.datasets.scene.draw_mover_offset`), the noise
    (:func:`~skyscene.datasets.scene.add_gaussian_noise`), the artefacts
    (:func:`~skyscene.datasets.scene.draw_bad_pixels`) and the time of a
    non-detection exposure.
    """
    import galsim  # a core dependency
    from astropy.time import Time

    from skyscene.io import Exposure
    from skyscene.scene.config import Target
    from skyscene.scene.model import tangent_to_sky

    rng = _rng(rng)
    config = config.resolve(rng)
    n_exposures = int(config.n_exposures)  # type: ignore[arg-type]
    n_detections = config.n_detections
    snr = float(config.snr)  # type: ignore[arg-type]
    binary = config.binary
    ny = nx = int(config.stamp_size)
    ra0 = float(rng.uniform(0.0, 360.0))
    dec0 = float(rng.uniform(-60.0, 5.0))

    # --- the static scene, in tangent-plane arcsec around the target ------------------
    galaxies, stars = draw_static_scene(rng, config)
    half = config.static_half_width

    # --- the target ------------------------------------------------------------------
    components = [(0.0, 0.0, 1.0)]
    pa = float(rng.uniform(0, math.pi)) if binary is not None else 0.0
    sep, ratio = (float(v) for v in binary) if binary is not None else (0.0, 1.0)
    if binary is not None and config.separation_unit == "arcsec":
        components = binary_components(sep, pa, ratio)
    detections = tuple(range(n_detections))
    mover_exps: list[int] = []
    if config.mover:
        others = np.arange(n_detections, n_exposures)
        mover_exps = sorted(
            int(e) for e in rng.choice(others, size=min(3, len(others)), replace=False)
        )

    mjd0 = 57000.0 + float(rng.uniform(0, 2000))
    exposures = []
    truth_exps = []
    flux_target = None
    target_pix = []
    ephemeris = {}
    for e in range(n_exposures):
        cond = draw_conditions(galsim, rng, config, ra0, dec0)
        if binary is not None and config.separation_unit == "fwhm" and e == 0:
            sep = sep * cond.fwhm  # now in arcsec
            components = binary_components(sep, pa, ratio)
        scale30 = cond.scale30
        tx, ty = cond.target_xy
        wcs = cond.wcs
        jac = _jacobian(wcs, galsim)
        psf, psf_inside = _effective_psf(
            galsim, cond.psf_profile, jac, config.psf_size, config.psf_oversampling
        )
        ee = psf_inside if config.psf_flux_zeropoint else 1.0
        sky_var = cond.sky_variance  # counts²

        # Flux scale of the scene: set from the target S/N in the first detection exposure.
        if flux_target is None:
            p = psf.render((ny, nx), center=(tx, ty))
            sigma_f = 1.0 / math.sqrt(float((p**2).sum()) / (sky_var * (scale30 / ee) ** 2))
            flux_target = snr * sigma_f  # flux30

        def to_pixel(xi, eta, wcs=wcs):
            ra, dec = tangent_to_sky(ra0, dec0, xi, eta)
            x, y = wcs.wcs_world2pix(np.atleast_1d(ra), np.atleast_1d(dec), 0)
            return float(x[0]), float(y[0])

        counts = render_galaxies(
            galsim,
            galaxies,
            [gal["flux_rel"] * flux_target / scale30 for gal in galaxies],
            cond.psf_profile,
            jac,
            (ny, nx),
            to_pixel,
            accuracy=config.galaxy_accuracy,
        )
        points = [(to_pixel(s["xi"], s["eta"]), s["flux_rel"]) for s in stars]
        if e in detections:
            for cxi, ceta, rel in components:
                points.append((to_pixel(cxi, ceta), rel))
            target_pix.append([to_pixel(cxi, ceta) for cxi, ceta, _ in components])
        if e in mover_exps:
            # The mover elsewhere in the stamp (at least 2″ from the detection position).
            mxi, meta_ = draw_mover_offset(rng, 2.0, half)
            ra_m, dec_m = tangent_to_sky(ra0, dec0, mxi, meta_)
            ephemeris[e] = (float(ra_m), float(dec_m))
            for cxi, ceta, rel in components:
                points.append((to_pixel(mxi + cxi, meta_ + ceta), rel))
        if points:
            centers = np.array([xy for xy, _ in points])
            point_fluxes = np.array([rel for _, rel in points]) * flux_target / scale30
            counts += ee * point_source_image(psf, (ny, nx), centers, point_fluxes)

        variance = np.full((ny, nx), sky_var)
        data = add_gaussian_noise(
            rng,
            cond.sky,
            counts,
            variance,
            gain=cond.gain,
            source_noise=config.source_noise,
            scale=float(config.noise),
        )
        mask = draw_bad_pixels(rng, (ny, nx))
        time = Time(
            mjd0 + e * 0.02 + (0 if e < n_detections else rng.uniform(1, 400)),
            format="mjd",
            scale="utc",
        )
        exposures.append(
            Exposure(
                data=data,
                variance=variance,
                mask=mask,
                wcs=wcs,
                psf=psf,
                zeropoint=cond.zeropoint + 2.5 * math.log10(ee),
                band="r",
                time=time,
                exptime=90.0,
                gain=cond.gain,
                read_noise=cond.read_noise,
                meta={"filename": f"exp{e:02d}.fits"},
            )
        )
        truth_exps.append(
            {
                "fwhm": cond.fwhm,
                "psf": cond.psf_kind,
                "zeropoint": cond.zeropoint + 2.5 * math.log10(ee),
                "zeropoint_total": cond.zeropoint,
                "psf_inside": psf_inside,
                "sky": cond.sky,
                "sky30": cond.sky * scale30 / ee,
                "gain": cond.gain,
                "target_pixel": [tx, ty] if e in detections else None,
                "mover_pixel": list(to_pixel(*_eph_offset(ephemeris[e], ra0, dec0)))
                if e in ephemeris
                else None,
            }
        )
    target = Target(ra=ra0, dec=dec0, detections=detections, ephemeris=ephemeris)
    if flux_target is None:  # pragma: no cover - set by the first detection exposure above
        raise ParameterError("no detection exposure was simulated")
    fluxes = [flux_target * rel for _, _, rel in components]
    truth = {
        "ra": ra0,
        "dec": dec0,
        "flux": fluxes[0] if binary is None else fluxes,
        "snr": snr,
        "blend": config.blend,
        "binary": None
        if binary is None
        else {
            "separation": sep,
            "flux_ratio": ratio,
            "offsets": [[c[0], c[1]] for c in components],
            "pixels": target_pix,
        },
        "detections": list(detections),
        "ephemeris": {str(k): list(v) for k, v in ephemeris.items()},
        "galaxies": [{**g, "flux": g["flux_rel"] * flux_target} for g in galaxies],
        "stars": [{**s, "flux": s["flux_rel"] * flux_target} for s in stars],
        "exposures": truth_exps,
        "pixel_scale": config.pixel_scale,
    }
    return TNOSimulation(exposures=tuple(exposures), target=target, truth=truth)


def _eph_offset(radec, ra0, dec0) -> tuple[float, float]:
    """Tangent-plane offsets (arcsec) of ``radec`` around ``(ra0, dec0)``."""
    a, d = math.radians(radec[0]), math.radians(radec[1])
    a0, d0 = math.radians(ra0), math.radians(dec0)
    cos_c = math.sin(d0) * math.sin(d) + math.cos(d0) * math.cos(d) * math.cos(a - a0)
    xi = math.cos(d) * math.sin(a - a0) / cos_c
    eta = (math.cos(d0) * math.sin(d) - math.sin(d0) * math.cos(d) * math.cos(a - a0)) / cos_c
    return math.degrees(xi) * 3600.0, math.degrees(eta) * 3600.0


def write_tno_stamps(sim: TNOSimulation, out_dir: str | Path) -> list[Path]:
    """Write the stamps as Exposure FITS (SCI/WGT/MSK/PSF) and ``truth.json``.

    Returns the stamp paths (``exp00.fits`` …) followed by ``truth.json``.
    """
    from skyscene.io import atomic_write_text, write_exposure

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for exp in sim.exposures:
        path = out_dir / exp.meta["filename"]
        write_exposure(path, exp)
        paths.append(path)
    truth = dict(sim.truth)
    truth["files"] = [p.name for p in paths]
    paths.append(atomic_write_text(out_dir / "truth.json", json.dumps(truth, indent=1)))
    return paths
