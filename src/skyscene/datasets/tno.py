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

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from skyscene.errors import ParameterError, require

__all__ = ["BLEND_CLASSES", "TNOSimulation", "simulate_tno_stamps", "write_tno_stamps"]

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


def _tan_wcs(ra0, dec0, crpix, scale, rotation):
    from astropy.wcs import WCS

    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [ra0, dec0]
    wcs.wcs.crpix = [crpix[0] + 1.0, crpix[1] + 1.0]  # FITS 1-based
    c, s = math.cos(rotation), math.sin(rotation)
    sc = scale / 3600.0
    # East to the left (RA decreases with x) as on the sky; rotated by ``rotation``.
    wcs.wcs.cd = np.array([[-sc * c, sc * s], [sc * s, sc * c]])
    return wcs


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


def _galaxy(galsim, gal: dict, flux: float):
    if gal["kind"] == "exponential":
        prof = galsim.Exponential(half_light_radius=gal["hlr"], flux=flux)
    else:
        prof = galsim.Sersic(n=2.0, half_light_radius=gal["hlr"], flux=flux)
    return prof.shear(g=gal["g"], beta=gal["beta"] * galsim.radians)


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
    galsim = require("galsim", "sim")
    from astropy.time import Time

    from skyscene.io import Exposure
    from skyscene.scene.config import Target
    from skyscene.scene.model import tangent_to_sky

    rng = _rng(rng)
    if n_exposures is None:
        n_exposures = int(rng.integers(5, 21))
    if not (isinstance(n_exposures, int | np.integer) and n_exposures >= 2):
        raise ParameterError(f"n_exposures must be an int >= 2, got {n_exposures!r}")
    if not 1 <= n_detections < n_exposures:
        raise ParameterError(
            f"n_detections must be in [1, n_exposures - 1] = [1, {n_exposures - 1}], "
            f"got {n_detections!r}"
        )
    if blend == "random":
        blend = str(rng.choice(BLEND_CLASSES))
    if blend not in BLEND_CLASSES:
        raise ParameterError(f"blend must be one of {BLEND_CLASSES} or 'random', got {blend!r}")
    if snr is None:
        snr = float(np.exp(rng.uniform(math.log(5.0), math.log(200.0))))
    if not (math.isfinite(snr) and snr > 0):
        raise ParameterError(f"snr must be positive, got {snr!r}")
    if binary is not None:
        sep, ratio = (float(v) for v in binary)
        if not (sep > 0 and ratio > 0):
            raise ParameterError(f"binary must be (separation > 0, flux_ratio > 0), got {binary!r}")
    if separation_unit not in ("arcsec", "fwhm"):
        raise ParameterError(f"separation_unit must be 'arcsec' or 'fwhm', got {separation_unit!r}")
    ny = nx = int(stamp_size)
    ra0 = float(rng.uniform(0.0, 360.0))
    dec0 = float(rng.uniform(-60.0, 5.0))

    # --- the static scene, in tangent-plane arcsec around the target ------------------
    # Static sources stay inside the default SMP grid footprint (20 × 0.35″: ±3.3″) and
    # away from the stamp edge: the grid cannot model light from outside its footprint.
    half = min(3.0, 0.5 * (stamp_size - 4) * pixel_scale)
    galaxies: list[dict] = []

    def add_galaxy(xi, eta, flux_rel, hlr):
        galaxies.append(
            {
                "xi": float(xi),
                "eta": float(eta),
                "flux_rel": float(flux_rel),
                "hlr": float(hlr),
                "kind": "exponential" if rng.random() < 0.7 else "sersic2",
                "g": float(rng.uniform(0.0, 0.4)),
                "beta": float(rng.uniform(0.0, math.pi)),
            }
        )

    n_bg = int(rng.poisson(1.5))
    for _ in range(n_bg):
        for _try in range(50):
            xi, eta = rng.uniform(-half, half, 2)
            if math.hypot(xi, eta) >= 2.0:
                break
        add_galaxy(xi, eta, rng.uniform(0.3, 5.0), rng.uniform(0.2, 1.0))
    if blend == "moderate":
        r, phi = rng.uniform(0.8, 2.0), rng.uniform(0, 2 * math.pi)
        add_galaxy(
            r * math.cos(phi), r * math.sin(phi), rng.uniform(0.5, 5.0), rng.uniform(0.3, 1.0)
        )
    elif blend == "heavy":
        r, phi = rng.uniform(0.0, 0.8), rng.uniform(0, 2 * math.pi)
        add_galaxy(
            r * math.cos(phi), r * math.sin(phi), rng.uniform(1.0, 20.0), rng.uniform(0.3, 1.2)
        )
    stars = []
    for _ in range(int(rng.integers(0, 3)) if n_stars is None else int(n_stars)):
        for _try in range(50):
            xi, eta = rng.uniform(-half, half, 2)
            if math.hypot(xi, eta) >= 1.5:
                break
        stars.append(
            {"xi": float(xi), "eta": float(eta), "flux_rel": float(rng.uniform(0.5, 20.0))}
        )

    # --- the target ------------------------------------------------------------------
    components = [(0.0, 0.0, 1.0)]
    pa = float(rng.uniform(0, math.pi)) if binary is not None else 0.0

    def binary_components(sep_arcsec):
        dxi, deta = 0.5 * sep_arcsec * math.cos(pa), 0.5 * sep_arcsec * math.sin(pa)
        return [(dxi, deta, 1.0), (-dxi, -deta, ratio)]

    if binary is not None and separation_unit == "arcsec":
        components = binary_components(sep)
    detections = tuple(range(n_detections))
    mover_exps: list[int] = []
    if mover:
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
        fwhm = float(rng.uniform(0.8, 1.5))
        if binary is not None and separation_unit == "fwhm" and e == 0:
            sep = sep * fwhm  # now in arcsec
            components = binary_components(sep)
        zeropoint = float(rng.uniform(29.5, 30.5))
        scale30 = 10.0 ** (0.4 * (30.0 - zeropoint))
        gain = float(rng.uniform(3.5, 4.5))
        read_noise = float(rng.uniform(1.5, 2.5))
        sky = float(rng.uniform(400.0, 3000.0))
        # Target near the stamp centre, with a random sub-pixel phase.
        tx = (nx - 1) / 2.0 + float(rng.uniform(-0.5, 0.5))
        ty = (ny - 1) / 2.0 + float(rng.uniform(-0.5, 0.5))
        wcs = _tan_wcs(
            ra0,
            dec0,
            (tx, ty),
            pixel_scale * (1 + rng.normal(0, 0.002)),
            math.radians(rng.normal(0, 0.5)),
        )
        jac = _jacobian(wcs, galsim)
        profile, psf_kind = _psf_profile(galsim, rng, fwhm)
        psf, psf_inside = _effective_psf(galsim, profile, jac, psf_size, psf_oversampling)
        ee = psf_inside if psf_flux_zeropoint else 1.0
        sky_var = sky / gain + read_noise**2  # counts²

        # Flux scale of the scene: set from the target S/N in the first detection exposure.
        if flux_target is None:
            p = psf.render((ny, nx), center=(tx, ty))
            sigma_f = 1.0 / math.sqrt(float((p**2).sum()) / (sky_var * (scale30 / ee) ** 2))
            flux_target = snr * sigma_f  # flux30

        def to_pixel(xi, eta, wcs=wcs):
            ra, dec = tangent_to_sky(ra0, dec0, xi, eta)
            x, y = wcs.wcs_world2pix(np.atleast_1d(ra), np.atleast_1d(dec), 0)
            return float(x[0]), float(y[0])

        counts = np.zeros((ny, nx))
        gsparams = galsim.GSParams(
            folding_threshold=galaxy_accuracy, maxk_threshold=galaxy_accuracy / 5.0
        )
        image = galsim.ImageD(nx, ny, wcs=jac)
        for gal in galaxies:
            prof = _galaxy(galsim, gal, gal["flux_rel"] * flux_target / scale30)
            gx, gy = to_pixel(gal["xi"], gal["eta"])
            galsim.Convolve(prof, profile, gsparams=gsparams).drawImage(
                image=image, offset=(gx - (nx - 1) / 2.0, gy - (ny - 1) / 2.0), add_to_image=True
            )
        counts += image.array
        points = [(to_pixel(s["xi"], s["eta"]), s["flux_rel"]) for s in stars]
        if e in detections:
            for cxi, ceta, rel in components:
                points.append((to_pixel(cxi, ceta), rel))
            target_pix.append([to_pixel(cxi, ceta) for cxi, ceta, _ in components])
        if e in mover_exps:
            # The mover elsewhere in the stamp (at least 2″ from the detection position).
            r, phi = rng.uniform(2.0, half), rng.uniform(0, 2 * math.pi)
            mxi, meta_ = r * math.cos(phi), r * math.sin(phi)
            ra_m, dec_m = tangent_to_sky(ra0, dec0, mxi, meta_)
            ephemeris[e] = (float(ra_m), float(dec_m))
            for cxi, ceta, rel in components:
                points.append((to_pixel(mxi + cxi, meta_ + ceta), rel))
        if points:
            centers = np.array([xy for xy, _ in points])
            fluxes = np.array([rel for _, rel in points]) * flux_target / scale30
            counts += ee * np.tensordot(fluxes, psf.render((ny, nx), centers), axes=1)

        variance = np.full((ny, nx), sky_var)
        noise_var = variance + (np.clip(counts, 0, None) / gain if source_noise else 0.0)
        data = sky + counts + rng.normal(size=(ny, nx)) * np.sqrt(noise_var) * float(noise)
        mask = rng.random((ny, nx)) < 0.003
        if rng.random() < 0.25:
            mask[:, int(rng.integers(0, nx))] = True
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
                zeropoint=zeropoint + 2.5 * math.log10(ee),
                band="r",
                time=time,
                exptime=90.0,
                gain=gain,
                read_noise=read_noise,
                meta={"filename": f"exp{e:02d}.fits"},
            )
        )
        truth_exps.append(
            {
                "fwhm": fwhm,
                "psf": psf_kind,
                "zeropoint": zeropoint + 2.5 * math.log10(ee),
                "zeropoint_total": zeropoint,
                "psf_inside": psf_inside,
                "sky": sky,
                "sky30": sky * scale30 / ee,
                "gain": gain,
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
        "blend": blend,
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
        "pixel_scale": pixel_scale,
    }
    sim = TNOSimulation(exposures=tuple(exposures), target=target, truth=truth)
    if out_dir is not None:
        paths = write_tno_stamps(sim, out_dir)
        sim = TNOSimulation(exposures=sim.exposures, target=target, truth=truth, paths=tuple(paths))
    return sim


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
