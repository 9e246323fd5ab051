"""Binary targets: two point sources in the detection exposure(s), positions fitted."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from skyscene.errors import ParameterError
from skyscene.scene.config import SceneConfig, Target
from skyscene.scene.model import (
    SceneModel,
    SceneResult,
    _make_result,
    _optimize_offsets,
    flux_to_mag,
    position_marginal_solution,
)

__all__ = ["BinaryResult", "fit_binary"]


@dataclass(frozen=True, kw_only=True, eq=False)
class BinaryResult:
    """Single-source and binary fits of the same target, and their comparison.

    Attributes
    ----------
    single : SceneResult
        Best single point source (position fitted).
    binary : SceneResult
        The binary fit (``flux`` is the primary; ``extra_fluxes`` the secondary).
    flux1, flux1_err, flux2, flux2_err : ndarray, shape (n_detections,)
        Component fluxes (zeropoint 30); component 1 is the brighter in the first
        detection exposure.
    offset1, offset2 : ndarray, shape (2,)
        Component offsets ``(Δξ, Δη)`` from the nominal target position, arcsec.
    shift1, shift2 : ndarray, shape (n_detections, 2)
        Component pixel positions minus the nominal target pixel, per detection exposure.
    separation_pixels, separation_arcsec : float
        Component separation (pixels of the first detection exposure; arcsec).
    separation_err_pixels, separation_err_arcsec : float
        1σ errors of the separation from the position covariance (inverse Fisher
        matrix of fluxes and positions).
    delta_chi2 : float
        ``χ²_single − χ²_binary`` (≥ 0 up to optimiser tolerance).
    bic_single, bic_binary : float
        Bayesian information criteria ``χ² + k ln n`` (``n`` fitted pixels).
    n_starts : int
        Number of optimiser starts tried.
    """

    single: SceneResult
    binary: SceneResult
    flux1: np.ndarray
    flux1_err: np.ndarray
    flux2: np.ndarray
    flux2_err: np.ndarray
    offset1: np.ndarray
    offset2: np.ndarray
    shift1: np.ndarray
    shift2: np.ndarray
    separation_pixels: float
    separation_arcsec: float
    separation_err_pixels: float
    separation_err_arcsec: float
    delta_chi2: float
    bic_single: float
    bic_binary: float
    n_starts: int

    @property
    def preferred(self) -> bool:
        """True if the information criterion prefers the binary."""
        return self.bic_binary < self.bic_single

    @property
    def mag1(self) -> np.ndarray:
        return flux_to_mag(self.flux1, self.flux1_err, self.binary.config.zeropoint)[0]

    @property
    def mag2(self) -> np.ndarray:
        return flux_to_mag(self.flux2, self.flux2_err, self.binary.config.zeropoint)[0]

    @property
    def mag1_err(self) -> np.ndarray:
        return flux_to_mag(self.flux1, self.flux1_err, self.binary.config.zeropoint)[1]

    @property
    def mag2_err(self) -> np.ndarray:
        return flux_to_mag(self.flux2, self.flux2_err, self.binary.config.zeropoint)[1]

    def to_table(self):
        """One row per detection exposure (astropy Table)."""
        from astropy.table import Table

        det = list(self.binary.detections)
        n = len(det)
        return Table(
            {
                "exposure": np.array(det, dtype=int),
                "flux1": self.flux1,
                "flux1_err": self.flux1_err,
                "mag1": self.mag1,
                "mag1_err": self.mag1_err,
                "flux2": self.flux2,
                "flux2_err": self.flux2_err,
                "mag2": self.mag2,
                "mag2_err": self.mag2_err,
                "dx1": self.shift1[:, 0],
                "dy1": self.shift1[:, 1],
                "dx2": self.shift2[:, 0],
                "dy2": self.shift2[:, 1],
                "separation_pix": np.full(n, self.separation_pixels),
                "separation_arcsec": np.full(n, self.separation_arcsec),
                "separation_err_pix": np.full(n, self.separation_err_pixels),
                "delta_chi2": np.full(n, self.delta_chi2),
                "bic_single": np.full(n, self.bic_single),
                "bic_binary": np.full(n, self.bic_binary),
                "binary_preferred": np.full(n, self.preferred),
                "flux_single": self.single.flux,
                "flux_single_err": self.single.flux_err,
            },
            meta={
                "zeropoint": self.binary.config.zeropoint,
                "config": self.binary.config.to_json(),
            },
        )


def fit_binary(
    exposures: Sequence,
    target: Target,
    *,
    config: SceneConfig | None = None,
    starts: Sequence[tuple[float, float, float, float]] | None = None,
    separations_fwhm: Sequence[float] = (0.5, 1.0),
    n_angles: int = 4,
    n_polish: int = 3,
    **options,
) -> BinaryResult:
    """Fit one and two point sources to the detection exposure(s) on the shared scene.

    The static scene (grid, skies) is built once; the component positions (a common
    sky offset for each component in all detection exposures) are found by
    Nelder–Mead on the profile χ² (the linear fluxes solved at every step through the
    Schur complement), from several starts, keeping the best.

    Parameters
    ----------
    exposures, target, config, **options
        As :func:`~skyscene.scene.fit_scene` (``fit_offset`` is forced on for the single fit).
    starts : sequence of (ξ1, η1, ξ2, η2), optional
        User starting offsets in arcsec; default: the single-source offset split
        symmetrically along ``n_angles`` position angles at each of ``separations_fwhm``.
    separations_fwhm : sequence of float
        Automatic start separations in units of the PSF FWHM of the first detection
        exposure (default 0.5 and 1.0 FWHM).
    n_angles : int
        Position angles of automatic starts (equally spaced over 180°).
    n_polish : int
        The starts are ranked by χ²; the best ``n_polish`` are optimised (Nelder–Mead).

    Returns
    -------
    BinaryResult

    Notes
    -----
    BIC: ``k_single = n_fixed + n_det + 2`` and ``k_binary = n_fixed + 2 n_det + 4``, with
    ``n`` the number of pixels with weight. The binary is preferred when its BIC is lower,
    i.e. ``Δχ² > (n_det + 2) ln n``.
    """
    model = SceneModel(config, **options)
    cfg = model.config
    import dataclasses

    single_model = SceneModel(dataclasses.replace(cfg, fit_offset=True))
    problem = single_model.prepare(exposures, target)
    single = single_model.fit_prepared(problem)  # re-weighs ``problem`` for shot noise
    dets = problem.target.detections
    n_det = len(dets)
    bound = cfg.max_offset + 1.0

    def sources(params):
        o1, o2 = params[:2], params[2:]
        xy1 = problem.detection_xy(o1)
        xy2 = problem.detection_xy(o2)
        return [*zip(dets, xy1, strict=True), *zip(dets, xy2, strict=True)]

    def objective(params):
        return problem.profile_chi2(sources(params))

    if starts is None:
        starts = []
        fwhm = problem.fwhm_arcsec(dets[0])
        for sep_fwhm in separations_fwhm:
            if not sep_fwhm > 0:
                raise ParameterError(
                    f"fit_binary separations_fwhm must be positive, got {sep_fwhm!r}"
                )
            sep = sep_fwhm * fwhm
            for k in range(int(n_angles)):
                angle = math.pi * k / n_angles
                d = 0.5 * sep * np.array([math.cos(angle), math.sin(angle)])
                starts.append((*(single.offset + d), *(single.offset - d)))
    start_arrays = [np.asarray(s, float) for s in starts]
    for arr in start_arrays:
        if arr.shape != (4,):
            raise ParameterError(f"each binary start must be (xi1, eta1, xi2, eta2), got {arr!r}")
    # Rank the starts by χ², then optimise the best few.
    ranked = sorted(start_arrays, key=objective)
    best = None
    for s in ranked[: max(1, int(n_polish))]:
        x, fun, _ = _optimize_offsets(objective, s, bound)
        if best is None or fun < best[1]:
            best = (x, fun)
    params = best[0]  # type: ignore[index]
    flux = problem.solve(problem.target_columns(sources(params)), refine=False).target
    # Order: component 1 is the brighter in the first detection.
    if flux[n_det] > flux[0]:
        params = np.concatenate([params[2:], params[:2]])
    src = sources(params)
    sol = position_marginal_solution(problem, sources, params)
    names = [f"target_{e}" for e in dets] + [f"secondary_{e}" for e in dets]
    flags = list(problem.flags) + [f for f in single.flags if f == "shot_noise_skipped"]
    binary = _make_result(problem, sol, src, params[:2], flags, extra={"names": names})
    flux1, flux1_err = binary.flux, binary.flux_err
    flux2 = binary.extra_fluxes.values
    flux2_err = binary.extra_fluxes.errors
    nominal = problem.detection_xy(np.zeros(2))
    xy1 = problem.detection_xy(params[:2])
    xy2 = problem.detection_xy(params[2:])
    sep_pix = float(np.hypot(*(xy1[0] - xy2[0])))
    sep_arcsec = float(np.hypot(*(params[:2] - params[2:])))
    # Separation errors: gradients of |o1 − o2| (arcsec) and of |J (o1 − o2)| (pixels,
    # J the local Jacobian of the first detection's WCS) through the position covariance.
    pos_cov = sol.position_covariance
    jac = (
        np.stack(
            [
                problem.detection_xy(np.array([1e-3, 0.0]))[0]
                - problem.detection_xy(np.zeros(2))[0],
                problem.detection_xy(np.array([0.0, 1e-3]))[0]
                - problem.detection_xy(np.zeros(2))[0],
            ],
            axis=1,
        )
        / 1e-3
    )
    diff = params[:2] - params[2:]
    errors = []
    for grad in (diff / max(sep_arcsec, 1e-12), jac.T @ (jac @ diff) / max(sep_pix, 1e-12)):
        g = np.concatenate([grad, -grad])
        errors.append(math.sqrt(max(float(g @ pos_cov @ g), 0.0)))
    n_pix = float(problem.npix.sum())
    n_fixed = len(problem.fixed_names) - problem.fixed_factor.n_dropped
    bic_single = single.chi2 + (n_fixed + n_det + 2) * math.log(n_pix)
    bic_binary = binary.chi2 + (n_fixed + 2 * n_det + 4) * math.log(n_pix)
    return BinaryResult(
        single=single,
        binary=binary,
        flux1=flux1,
        flux1_err=flux1_err,
        flux2=flux2,
        flux2_err=flux2_err,
        offset1=params[:2].copy(),
        offset2=params[2:].copy(),
        shift1=xy1 - nominal,
        shift2=xy2 - nominal,
        separation_pixels=sep_pix,
        separation_arcsec=sep_arcsec,
        separation_err_pixels=errors[1],
        separation_err_arcsec=errors[0],
        delta_chi2=float(single.chi2 - binary.chi2),
        bic_single=float(bic_single),
        bic_binary=float(bic_binary),
        n_starts=len(starts),
    )
