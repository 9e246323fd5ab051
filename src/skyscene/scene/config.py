"""Configuration and target description of scene-modelling photometry."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

import numpy as np

from skyscene._validation import (
    check_choice,
    check_finite,
    check_int,
    check_optional,
    check_positive,
    check_range,
)
from skyscene.errors import ParameterError, ParameterRangeError

__all__ = ["SceneConfig", "Target"]

_SKY_MODES = ("fit", "subtract", "none")
_MOVER_MODES = ("mask", "model", "ignore")
_OFFSET_MODES = ("common", "per_detection")
_SOLVERS = ("dense", "sparse")


def _positive(name: str, value: float) -> float:
    """``check_positive`` with the message this config always gave ("positive and finite")."""
    try:
        return check_positive(f"SceneConfig.{name}", value)
    except (ParameterError, TypeError):
        raise ParameterRangeError(
            f"SceneConfig.{name} must be positive and finite, got {value!r}",
            name=f"SceneConfig.{name}",
            value=value,
            min=0,
        ) from None


@dataclass(frozen=True, kw_only=True)
class SceneConfig:
    """Settings of a scene-modelling fit (recorded in every result's metadata).

    Parameters
    ----------
    grid_n : int
        The static scene is a ``grid_n × grid_n`` grid of point sources (default 20).
    grid_spacing : float
        Grid spacing, arcsec (default 0.35″, Bernardinelli et al. 2023).
    sky : {"fit", "subtract", "none"}
        ``"fit"``: one free constant per exposure; ``"subtract"``: subtract the
        sigma-clipped median of each stamp first, then fit no sky; ``"none"``: no sky term.
    ridge : float
        Precision (1 / flux30²) of a zero-mean Gaussian prior on each grid flux; 0 = none.
        A ridge regularises nearly degenerate grid modes; it shrinks grid fluxes toward 0,
        so a target blended with the grid can be biased, and the reported covariance is
        the posterior one, ``(DᵀWD + ridge·I_grid)⁻¹``, smaller than the unregularised.
    fit_offset : bool
        Fit a common sky offset ``(Δξ, Δη)`` of the target (in all detection exposures)
        by minimising the profile χ² around the linear solve.
    offset_mode : {"common", "per_detection"}
        With ``fit_offset``: one offset shared by all detection exposures (a static
        target, or a mover whose ephemeris is off by the same amount throughout), or one
        per detection exposure (ephemeris errors that differ between exposures; fitted
        one detection at a time, cycling until none moves by > 0.001″).
    max_offset : float
        Bound of the fitted offset, arcsec (each axis).
    shot_noise : bool
        Second pass (default): add the source shot noise of the first-pass model
        (``(model − sky) / gain``, in counts; target, stars and galaxies) to the variance
        and refit. Survey weight maps hold the sky + read-noise variance only, so without
        this pass the flux errors of bright or blended targets are too small. Needs
        ``Exposure.gain``; without it the pass is skipped, warned and flagged.
    first_pass_grid_n : int or None
        Grid size of the first pass, which only supplies the source model for the
        shot-noise variance: ``first_pass_grid_n`` nodes per axis taken evenly from the
        full grid (both ends included), i.e. the same area at a coarser spacing, and
        the full grid's rendered PSFs reused. None (default): ``ceil(grid_n / 2)``
        (10 × 10 nodes ~0.74″ apart for a 20 × 20 grid; the first pass then costs
        ~1/10 of a full one). ``grid_n`` repeats the full fit, as in Bernardinelli et
        al. (2023). A coarse model misses some of the sharpest structure of stars, i.e.
        a few per cent of *their* shot noise, which changes weights, not the
        unbiasedness of the fit.
    mover : {"mask", "model", "ignore"}
        What to do at the target's ephemeris positions in non-detection exposures:
        give zero weight within ``mover_radius``, fit a free point-source flux there,
        or nothing.
    mover_radius : float
        Mask radius for ``mover="mask"``, arcsec.
    refine : bool
        One step of iterative refinement of the linear solution with residuals formed
        from the design (corrected semi-normal equations). A grid finer than the PSF
        makes ``DᵀWD`` ill-conditioned (``κ`` ~ 1e7–1e8 for the default grid), so grid
        fluxes are solved to ~1e-8 relative (target fluxes to ~1e-13); with ``refine``
        (default) all to ~1e-12, for ~4 ms per fit (two more passes over the design; not
        in the shot-noise first pass). ``False`` saves that time: the grid fluxes are
        nuisance parameters and their rounding is ~1e-6 of their statistical errors.
    solver : {"dense", "sparse"}
        How ``DᵀWD`` is formed: BLAS on the dense design (fast; the PSF support covers the
        stamp) or ``scipy.sparse`` on the design with exact zeros dropped. Same result.
    pixelize_psf : bool
        Sample non-pixelised PSF models (Gaussian, Moffat, GalSim) as a
        :class:`~skyscene.psf.PixelizedPSF` before rendering (fast). If False they are
        rendered exactly through ``psf.render`` (slow for Moffat).
    psf_size : int or None
        Native-pixel size of that sampling; None: twice the stamp diagonal, so that the
        unit-sum normalisation of the sampled image does not cut the wings inside the stamp.
    psf_oversampling : int
        Samples per pixel of that sampling.
    psf_rank_tol : float
        Relative singular-value cut of the separable form in which pixelised PSFs are
        rendered (the rendering then differs from ``psf.render`` by ~``psf_rank_tol``
        of the PSF peak; 0 keeps the full rank).
    zeropoint : float
        Common zeropoint of the fitted fluxes (30, as DES).
    pixel_limit_sigma : float or None
        Guard against non-physical pixel values in exposures given in memory (the
        readers of :mod:`skyscene.io` mask them at read): a pixel above the exposure's
        saturation level (``meta["saturate"]`` or the ``SATURATE`` header card), or
        farther than ``pixel_limit_sigma`` noise σ (``√variance``) from its stamp's
        median, is masked and counted (flag ``"nonphysical:FILE:N"``, a
        :class:`~skyscene.errors.FlaggedDataWarning`). Default 1e6 σ: no detector
        reaches it (a full well of ~1e6 e⁻ over a noise floor of a few e⁻ is ≲ 3e5 σ),
        while a corrupted value (1e30) is caught. None: no guard.
    max_reduced_chi2 : float
        A fit with ``χ²/dof`` above this (default 100, i.e. residuals ~10× the noise
        model) is flagged ``"chi2_absurd"``: its fluxes and errors are not to be trusted
        (a wrong variance map, an unmasked artefact, a wrong PSF or WCS).
    """

    grid_n: int = 20
    grid_spacing: float = 0.35
    sky: str = "fit"
    ridge: float = 0.0
    fit_offset: bool = False
    offset_mode: str = "common"
    max_offset: float = 1.0
    shot_noise: bool = True
    first_pass_grid_n: int | None = None
    mover: str = "mask"
    mover_radius: float = 1.0
    refine: bool = True
    solver: str = "dense"
    pixelize_psf: bool = True
    psf_size: int | None = None
    psf_oversampling: int = 3
    psf_rank_tol: float = 1e-7
    zeropoint: float = 30.0
    pixel_limit_sigma: float | None = 1e6
    max_reduced_chi2: float = 100.0

    def first_pass_nodes(self) -> np.ndarray:
        """Indices (along each axis) of the full grid's nodes used by the first pass.

        ``first_pass_grid_n`` nodes spread evenly over ``0 .. grid_n − 1`` (both ends
        included), so the first pass covers the same area with a ~2× coarser spacing
        by default and reuses the full grid's rendered PSFs.
        """
        n = self.grid_n
        m = self.first_pass_grid_n
        if m is None:
            m = math.ceil(n / 2)
        m = min(m, n)
        if m == 0:
            return np.zeros(0, dtype=int)
        return np.unique(np.round(np.linspace(0, n - 1, m)).astype(int))

    def __post_init__(self) -> None:
        name = "SceneConfig."
        check_int(name + "grid_n", self.grid_n, low=0, high=200)
        check_optional(
            check_int, name + "first_pass_grid_n", self.first_pass_grid_n, low=0, high=200
        )
        _positive("grid_spacing", self.grid_spacing)
        _positive("max_offset", self.max_offset)
        _positive("mover_radius", self.mover_radius)
        check_choice(name + "offset_mode", self.offset_mode, _OFFSET_MODES)
        check_choice(name + "sky", self.sky, _SKY_MODES)
        check_choice(name + "mover", self.mover, _MOVER_MODES)
        check_choice(name + "solver", self.solver, _SOLVERS)
        check_positive(name + "ridge", self.ridge, allow_zero=True)
        check_int(name + "psf_oversampling", self.psf_oversampling, low=1)
        check_optional(check_int, name + "psf_size", self.psf_size, low=3)
        check_range(name + "psf_rank_tol", self.psf_rank_tol, low=0, high=1, high_inclusive=False)
        check_finite(name + "zeropoint", self.zeropoint)
        check_optional(check_positive, name + "pixel_limit_sigma", self.pixel_limit_sigma)
        check_positive(name + "max_reduced_chi2", self.max_reduced_chi2)
        for key in ("grid_n", "first_pass_grid_n", "psf_oversampling", "psf_size"):
            value = getattr(self, key)
            if value is not None:  # numpy integers become ints (JSON metadata)
                object.__setattr__(self, key, int(value))

    def to_dict(self) -> dict:
        """Plain dict of JSON types (for output metadata); ``SceneConfig(**d)`` rebuilds it."""
        return asdict(self)

    def to_json(self) -> str:
        """``to_dict()`` as JSON (sorted keys): what outputs record as their config."""
        import json

        return json.dumps(self.to_dict(), sort_keys=True)


@dataclass(frozen=True, kw_only=True)
class Target:
    """The point source to measure.

    Parameters
    ----------
    ra, dec : float or sequence of float
        Position in degrees (ICRS), one for all detection exposures or one per detection
        exposure (a moving object).
    detections : sequence of int
        Indices of the exposures in which the target is measured (one flux each).
    ephemeris : mapping int -> (ra, dec), optional
        Predicted positions (degrees) of the target in other exposures, handled per
        ``SceneConfig.mover``.
    grid_center : (ra, dec), optional
        Centre of the background grid; default: the first detection position.

    Examples
    --------
    >>> t = Target(ra=10.0, dec=-5.0, detections=[0])
    >>> t.positions().shape
    (1, 2)
    """

    ra: float | tuple[float, ...]
    dec: float | tuple[float, ...]
    detections: tuple[int, ...] = (0,)
    ephemeris: Mapping[int, tuple[float, float]] = field(default_factory=dict)
    grid_center: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        dets = tuple(int(d) for d in np.atleast_1d(self.detections))
        if not dets:
            raise ParameterError("Target.detections must name at least one exposure")
        if len(set(dets)) != len(dets):
            raise ParameterError(f"Target.detections has repeated exposures: {dets}")
        object.__setattr__(self, "detections", dets)
        ra = np.atleast_1d(np.asarray(self.ra, dtype=float))
        dec = np.atleast_1d(np.asarray(self.dec, dtype=float))
        if ra.shape != dec.shape or len(ra) not in (1, len(dets)):
            raise ParameterError(
                f"Target.ra/dec must be scalars or have one value per detection ({len(dets)}), "
                f"got {len(ra)} and {len(dec)}"
            )
        if not (np.all(np.isfinite(ra)) and np.all(np.isfinite(dec)) and np.all(np.abs(dec) <= 90)):
            raise ParameterError(
                f"Target.ra/dec must be finite degrees, got {self.ra!r}, {self.dec!r}"
            )
        eph = {int(k): (float(v[0]), float(v[1])) for k, v in dict(self.ephemeris).items()}
        overlap = set(eph) & set(dets)
        if overlap:
            raise ParameterError(f"Target.ephemeris names detection exposures {sorted(overlap)}")
        object.__setattr__(self, "ephemeris", eph)

    def positions(self) -> np.ndarray:
        """``(n_detections, 2)`` array of (ra, dec) in degrees."""
        ra = np.broadcast_to(np.atleast_1d(np.asarray(self.ra, float)), (len(self.detections),))
        dec = np.broadcast_to(np.atleast_1d(np.asarray(self.dec, float)), (len(self.detections),))
        return np.stack([ra, dec], axis=1)

    def center(self) -> tuple[float, float]:
        """Grid centre (ra, dec) in degrees."""
        if self.grid_center is not None:
            return float(self.grid_center[0]), float(self.grid_center[1])
        ra, dec = self.positions()[0]
        return float(ra), float(dec)
