"""Candidates on ZOGY's S_corr: finding, PSF photometry on D, shape and quality features.

``CandidateFinder(config)(result, science, reference)`` takes a
:class:`~skyscene.diffim.ZogyResult` and the two exposures it came from and returns a
:class:`CandidateTable`: one row per significant change with ZTF-named features
(:mod:`skyscene.candidates.columns`) and, by default, the science / reference /
difference cutouts (:class:`~skyscene.candidates.Cutouts`).

Every step works on the few pixels around the candidates (vectorised over candidates);
no full-image filter is run, so the cost follows the number of candidates.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from skyscene._validation import (
    check_choice,
    check_int,
    check_odd,
    check_optional,
    check_positive,
    check_range,
)
from skyscene.candidates.columns import COLUMNS, column_names
from skyscene.candidates.cutouts import Cutouts, make_cutouts
from skyscene.errors import DataError, ParameterError

__all__ = [
    "ZTF_FID",
    "CandidateConfig",
    "CandidateFinder",
    "CandidateFlags",
    "CandidateTable",
    "candidate_id",
    "find_candidates",
    "reference_catalog",
]

log = logging.getLogger(__name__)

FWHM_PER_SIGMA = 2.3548200450309493
MAG_PER_LN = 2.5 / math.log(10.0)  # 1.0857: sigma_mag = MAG_PER_LN * sigma_f / f

#: ZTF filter ids (``fid``) of the band names; other bands get 0 (or CandidateConfig.fid).
ZTF_FID = {
    "g": 1,
    "ztfg": 1,
    "zg": 1,
    "r": 2,
    "R": 2,
    "ztfr": 2,
    "zr": 2,
    "i": 3,
    "ztfi": 3,
    "zi": 3,
}

# diffim.MaskBits values (not imported: candidates sits above diffim but keeps this light)
_SCIENCE_MASKED, _REFERENCE_MASKED, _SATURATED, _EDGE, _NEAR_MASKED, _NONFINITE = (
    1,
    2,
    4,
    8,
    16,
    32,
)
_DIRECT = _SCIENCE_MASKED | _REFERENCE_MASKED | _SATURATED | _NONFINITE


class CandidateFlags(enum.IntFlag):
    """Bits of the ``flags`` column (0 = clean).

    ``EDGE``: within ``near_radius`` of the image border or of ZOGY's ``EDGE`` band.
    ``SATURATED_NEAR``: a saturated pixel within ``near_radius``.
    ``MASKED_NEAR``: a masked (either image), near-masked or non-finite pixel within
    ``near_radius``. ``DIPOLE``: an opposite-sign S_corr extremum beyond the threshold
    within ``dipole_radius`` (a subtraction dipole or misalignment).
    ``CUTOUT_OFF_IMAGE``: part of the cutout is off the image (NaN pixels there).
    ``FIT_FAILED``: the PSF-fit flux has the sign opposite to ``isdiffpos`` or is not
    finite (magnitudes NaN). ``SHAPE_FAILED``: the windowed moments are not usable
    (``fwhm``, ``aimage``, ``bimage``, ``elong``, ``roundness`` NaN).
    ``NO_CALIBRATION``: no science zeropoint (magnitudes NaN) or no WCS (``ra``/``dec``
    NaN).
    """

    EDGE = 1
    SATURATED_NEAR = 2
    MASKED_NEAR = 4
    DIPOLE = 8
    CUTOUT_OFF_IMAGE = 16
    FIT_FAILED = 32
    SHAPE_FAILED = 64
    NO_CALIBRATION = 128


@dataclass(frozen=True, kw_only=True)
class CandidateConfig:
    """Settings of :class:`CandidateFinder`.

    Parameters
    ----------
    threshold : float
        Detection threshold on ``|S_corr|`` (σ).
    merge_radius : float
        Peaks of one sign closer than this (pixels) are one candidate (the strongest).
    fit_size : int, optional
        Side (odd, pixels) of the PSF-fit box on D; default ``2 ceil(1.5 FWHM_D) + 1``
        within [7, P_D size].
    aperture_radius : float, optional
        Radius of the aperture for ``magap``, pixels; default ``1.5 FWHM_D``.
    near_radius : int
        Half-size of the box (pixels) searched for saturated/masked/edge pixels.
    dipole_radius : float, optional
        Radius for the opposite-sign search of ``dipole``; default ``2 FWHM_D``.
    cutouts : bool
        Make the cutout triplets (``CandidateTable.cutouts``).
    cutout_size : int
        Side of the cutouts (odd), pixels.
    max_candidates : int, optional
        Keep only the strongest (by ``|scorr|``); None: all.
    fid : int, optional
        Filter id for every row; default from the band (``ZTF_FID``, else 0).
    catalog_threshold : float
        Detection threshold (σ) of the reference catalog for ``distnr``/``magnr`` when
        none is given.
    nr_radius : float
        Largest ``distnr`` (pixels); no source within it: ``distnr``, ``magnr`` NaN.
    """

    threshold: float = 5.0
    merge_radius: float = 3.0
    fit_size: int | None = None
    aperture_radius: float | None = None
    near_radius: int = 5
    dipole_radius: float | None = None
    cutouts: bool = True
    cutout_size: int = 63
    max_candidates: int | None = None
    fid: int | None = None
    catalog_threshold: float = 5.0
    nr_radius: float = 30.0

    def __post_init__(self) -> None:
        name = "CandidateConfig."
        check_positive(name + "threshold", self.threshold)
        check_positive(name + "merge_radius", self.merge_radius, allow_zero=True)
        check_optional(check_odd, name + "fit_size", self.fit_size, low=3)
        check_optional(check_range, name + "aperture_radius", self.aperture_radius, low=0.5)
        check_int(name + "near_radius", self.near_radius, low=0, high=64)
        check_optional(check_range, name + "dipole_radius", self.dipole_radius, low=1.0, high=64)
        check_choice(name + "cutouts", self.cutouts, (True, False))
        check_odd(name + "cutout_size", self.cutout_size, low=5)
        check_optional(check_int, name + "max_candidates", self.max_candidates, low=1)
        check_optional(check_int, name + "fid", self.fid, low=0)
        check_positive(name + "catalog_threshold", self.catalog_threshold)
        check_positive(name + "nr_radius", self.nr_radius)

    def to_dict(self) -> dict:
        """The configuration as a plain dict (for output metadata)."""
        return dataclasses.asdict(self)


# --------------------------------------------------------------------------- result


@dataclass(frozen=True, kw_only=True, eq=False)
class CandidateTable:
    """Candidates of one subtraction: ZTF-named columns, metadata and cutouts.

    Attributes
    ----------
    columns : dict of str -> ndarray
        One array per :data:`~skyscene.candidates.columns.COLUMNS` entry, sorted by
        ``|scorr|``, strongest first.
    meta : dict
        ``pair_id``, the effective ``config``, the subtraction's ``flux_ratio``,
        ``flux_zeropoint``, ``fwhm_difference_psf`` (pixels), ``diffmaglim``.
    cutouts : Cutouts or None
        Triplets in row order (None when ``CandidateConfig.cutouts`` is False).

    Indexing: ``table["magpsf"]`` a column, ``table[3]`` a row (dict), a slice or an
    index/boolean array a new table (cutouts subset along). Iteration gives rows.
    """

    columns: dict
    meta: dict = field(default_factory=dict)
    cutouts: Cutouts | None = None

    def __len__(self) -> int:
        return len(self.columns["candid"])

    @property
    def names(self) -> list[str]:
        """Column names, in order."""
        return list(self.columns)

    def row(self, i: int) -> dict:
        """Row ``i`` as a dict of Python scalars."""
        return {name: values[i].item() for name, values in self.columns.items()}

    def __iter__(self) -> Iterator[dict]:
        for i in range(len(self)):
            yield self.row(i)

    def __getitem__(self, key):
        if isinstance(key, str):
            if key not in self.columns:
                raise KeyError(f"no candidate column {key!r}; columns: {', '.join(self.columns)}")
            return self.columns[key]
        if isinstance(key, int | np.integer):
            n = len(self)
            if not -n <= int(key) < n:
                raise IndexError(f"candidate index {key} out of range for {n} candidates")
            return self.row(int(key) % n)
        index = np.arange(len(self))[key]
        return CandidateTable(
            columns={name: values[index] for name, values in self.columns.items()},
            meta=dict(self.meta),
            cutouts=None if self.cutouts is None else self.cutouts[index],
        )

    def to_table(self):
        """The candidates as an astropy Table with units and metadata."""
        import json

        from astropy import units as u
        from astropy.table import Table

        import skyscene

        table = Table()
        for col in COLUMNS:
            values = self.columns[col.name]
            table[col.name] = values
            if col.unit:
                table[col.name].unit = u.Unit(col.unit)
            table[col.name].description = col.description
        meta = {k: v for k, v in self.meta.items() if k != "config"}
        table.meta.update(meta)
        table.meta["config"] = json.dumps(self.meta.get("config", {}), sort_keys=True)
        table.meta["skyscene_version"] = skyscene.__version__
        return table


# --------------------------------------------------------------------------- helpers


def candidate_id(pair_id: str, x, y, isdiffpos) -> np.ndarray:
    """Stable 63-bit candidate ids: BLAKE2b of ``"pair_id|x|y|isdiffpos"``.

    ``x``, ``y`` are written with two decimals (0.01 px), so reruns on the same inputs
    give the same ids; ids are positive ``int64``.

    Examples
    --------
    >>> int(candidate_id("pair-1", [10.0], [20.0], ["t"])[0]) == int(
    ...     candidate_id("pair-1", [10.0], [20.0], ["t"])[0])
    True
    """
    x = np.atleast_1d(np.asarray(x, float))
    y = np.atleast_1d(np.asarray(y, float))
    sign = np.broadcast_to(np.asarray(isdiffpos), x.shape)
    out = np.empty(len(x), np.int64)
    mask63 = (1 << 63) - 1
    for k in range(len(x)):
        text = f"{pair_id}|{x[k]:.2f}|{y[k]:.2f}|{sign[k]}".encode()
        digest = hashlib.blake2b(text, digest_size=8).digest()
        out[k] = int.from_bytes(digest, "big") & mask63
    return out


def reference_catalog(reference, *, threshold: float = 5.0):
    """Sources of the reference image for ``distnr``/``magnr`` (sep via skyscene.detection).

    Compute it once per reference and pass it to every search with that reference.

    Returns
    -------
    astropy.table.Table
        ``x``, ``y`` (reference pixels), ``flux`` (reference counts), ``snr``.
    """
    from skyscene.detection import find_sources

    variance = np.where(reference.mask, np.inf, reference.variance)
    return find_sources(reference.data, variance=variance, mask=reference.mask, threshold=threshold)


def _fwhm_of(psf: np.ndarray) -> float:
    """FWHM of a centred PSF stamp from its half-maximum area (pixels)."""
    peak = float(psf.max())
    area = float(np.count_nonzero(psf >= 0.5 * peak))
    return 2.0 * math.sqrt(area / math.pi)


def _shifted_psfs(psf: np.ndarray, dx: np.ndarray, dy: np.ndarray, size: int) -> np.ndarray:
    """``(N, size, size)`` crops of the centred PSF moved by ``(dx, dy)`` (Fourier shift)."""
    m = psf.shape[0]
    spectrum = np.fft.rfft2(np.fft.ifftshift(psf))
    ky = np.fft.fftfreq(m)[None, :, None]
    kx = np.fft.rfftfreq(m)[None, None, :]
    phase = np.exp(-2j * np.pi * (kx * dx[:, None, None] + ky * dy[:, None, None]))
    shifted = np.fft.irfft2(spectrum[None] * phase, s=(m, m), axes=(1, 2))
    shifted = np.fft.fftshift(shifted, axes=(1, 2))
    c, h = m // 2, size // 2
    return shifted[:, c - h : c + h + 1, c - h : c + h + 1]


def _stamps(image: np.ndarray, cx: np.ndarray, cy: np.ndarray, half: int, fill):
    """``(N, 2h+1, 2h+1)`` boxes around integer pixels and the off-image map."""
    offs = np.arange(-half, half + 1)
    gx = cx[:, None, None] + offs[None, None, :]
    gy = cy[:, None, None] + offs[None, :, None]
    gx, gy = np.broadcast_arrays(gx, gy)
    ny, nx = image.shape
    off = (gx < 0) | (gy < 0) | (gx >= nx) | (gy >= ny)
    vals = image[np.clip(gy, 0, ny - 1), np.clip(gx, 0, nx - 1)]
    if off.any():
        vals = np.where(off, fill, vals)
    return vals, off


def _peaks(score_corr: np.ndarray, good: np.ndarray, threshold: float):
    """Pixels beyond ``±threshold`` that are 3x3 extrema of their sign (unflagged only)."""
    s = np.where(good, score_corr, 0.0)
    iy, ix = np.nonzero(np.abs(s) >= threshold)
    if len(iy) == 0:
        return iy, ix, np.zeros(0)
    vals = s[iy, ix]
    ny, nx = s.shape
    positive = vals > 0
    keep = np.ones(len(iy), bool)
    for ddy in (-1, 0, 1):
        for ddx in (-1, 0, 1):
            if ddx == 0 and ddy == 0:
                continue
            jy, jx = iy + ddy, ix + ddx
            inside = (jy >= 0) & (jy < ny) & (jx >= 0) & (jx < nx)
            nb = np.where(inside, s[np.clip(jy, 0, ny - 1), np.clip(jx, 0, nx - 1)], 0.0)
            keep &= np.where(positive, vals >= nb, vals <= nb)
    return iy[keep], ix[keep], vals[keep]


def _merge(iy, ix, vals, radius: float):
    """Keep the strongest peak of each sign within ``radius`` (greedy suppression)."""
    order = np.argsort(-np.abs(vals), kind="stable")
    iy, ix, vals = iy[order], ix[order], vals[order]
    if radius <= 0 or len(iy) < 2:
        return iy, ix, vals
    from scipy.spatial import cKDTree

    keep = np.ones(len(iy), bool)
    for sign in (1, -1):
        idx = np.flatnonzero(np.sign(vals) == sign)
        if len(idx) < 2:
            continue
        tree = cKDTree(np.column_stack([ix[idx], iy[idx]]))
        pairs = tree.query_pairs(radius, output_type="ndarray")
        if len(pairs) == 0:
            continue
        # indices in idx are in strength order: suppress each weaker member
        neighbours: dict[int, list[int]] = {}
        for a, b in pairs:
            lo, hi = (a, b) if a < b else (b, a)
            neighbours.setdefault(int(lo), []).append(int(hi))
        alive = np.ones(len(idx), bool)
        for a in range(len(idx)):
            if alive[a]:
                for b in neighbours.get(a, ()):
                    alive[b] = False
        keep[idx[~alive]] = False
    return iy[keep], ix[keep], vals[keep]


def _subpixel(score: np.ndarray, good: np.ndarray, iy, ix, sign):
    """Sub-pixel offsets of the extrema of ``sign * S`` by a 3x3 quadratic fit."""
    z, off = _stamps(score, ix, iy, 1, 0.0)
    ok3, _ = _stamps(good, ix, iy, 1, False)
    z = z * sign[:, None, None]
    usable = ok3.all(axis=(1, 2)) & ~off.any(axis=(1, 2))
    # z = c0 + c1 x + c2 y + c3 x^2 + c4 x y + c5 y^2 on the 3x3 grid (least squares)
    u = np.array([-1.0, 0.0, 1.0])
    gx, gy = np.meshgrid(u, u)
    design = np.column_stack(
        [np.ones(9), gx.ravel(), gy.ravel(), gx.ravel() ** 2, (gx * gy).ravel(), gy.ravel() ** 2]
    )
    coef = z.reshape(len(iy), 9) @ np.linalg.pinv(design).T
    c1, c2, c3, c4, c5 = coef[:, 1], coef[:, 2], coef[:, 3], coef[:, 4], coef[:, 5]
    det = 4 * c3 * c5 - c4**2
    with np.errstate(divide="ignore", invalid="ignore"):
        dx = (c4 * c2 - 2 * c5 * c1) / det
        dy = (c4 * c1 - 2 * c3 * c2) / det
    maximum = (c3 < 0) & (det > 0)
    usable &= maximum & np.isfinite(dx) & np.isfinite(dy)
    dx = np.where(usable, np.clip(dx, -1.0, 1.0), 0.0)
    dy = np.where(usable, np.clip(dy, -1.0, 1.0), 0.0)
    return dx, dy


def _window_moments(image, weight, dx, dy, sigma_w):
    """Window-corrected second moments of stamps centred at ``(dx, dy)`` offsets.

    Returns aimage, bimage (NaN where not measurable).
    """
    _n, k, _ = image.shape
    h = k // 2
    u = np.arange(-h, h + 1, dtype=float)
    rx = u[None, None, :] - dx[:, None, None]
    ry = u[None, :, None] - dy[:, None, None]
    window = np.exp(-(rx**2 + ry**2) / (2 * sigma_w**2)) * weight
    wi = window * image
    m0 = wi.sum(axis=(1, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        mxx = (wi * rx**2).sum(axis=(1, 2)) / m0
        myy = (wi * ry**2).sum(axis=(1, 2)) / m0
        mxy = (wi * rx * ry).sum(axis=(1, 2)) / m0
        # measured = (C^-1 + W^-1)^-1  =>  C^-1 = M^-1 - W^-1 (Gaussian source and window)
        det = mxx * myy - mxy**2
        ixx, iyy, ixy = myy / det, mxx / det, -mxy / det
        ixx = ixx - 1.0 / sigma_w**2
        iyy = iyy - 1.0 / sigma_w**2
        det_i = ixx * iyy - ixy**2
        cxx, cyy, cxy = iyy / det_i, ixx / det_i, -ixy / det_i
        tr = cxx + cyy
        disc = np.sqrt(np.maximum((cxx - cyy) ** 2 / 4 + cxy**2, 0.0))
        lam1, lam2 = tr / 2 + disc, tr / 2 - disc
        ok = (m0 > 0) & (det > 0) & (ixx > 0) & (det_i > 0) & (lam2 > 0) & np.isfinite(lam1)
        a = np.where(ok, np.sqrt(np.where(ok, lam1, 1.0)), np.nan)
        b = np.where(ok, np.sqrt(np.where(ok, lam2, 1.0)), np.nan)
    return a, b


def _default_pair_id(science, reference) -> str:
    parts = []
    for exp in (science, reference):
        parts.append(str(exp.filename or ""))
    if science.time is not None:
        parts.append(f"{float(science.time.utc.jd):.8f}")
    return "|".join(parts)


def _empty_columns() -> dict:
    out = {}
    for col in COLUMNS:
        out[col.name] = np.zeros(0, dtype="<U1" if col.dtype == "str" else col.dtype)
    return out


# --------------------------------------------------------------------------- finder


class CandidateFinder:
    """Candidates on S_corr with ZTF-named features and cutouts.

    Parameters
    ----------
    config : CandidateConfig, optional
        Settings; default ``CandidateConfig()``.

    Notes
    -----
    ``CandidateFinder(config)(result, science, reference)``:

    1. **Peaks**: unflagged pixels (``result.mask == 0``) with ``|S_corr| >= threshold``
       that are 3x3 extrema of their sign; peaks of one sign within ``merge_radius``
       merged (the strongest kept). ``isdiffpos`` is 't' for S_corr > 0, 'f' (the source
       faded) for S_corr < 0, as ZTF.
    2. **Position**: the maximum of ``±S`` by a 3x3 quadratic fit. S is D correlated
       with P_D (eq. 17), so its maximum is the maximum-likelihood position of a point
       source in D (white noise).
    3. **PSF photometry on D**: ``D ≈ α F_D P_D(x − x₀)`` with unit white background
       noise (eqs. 13–15), so ``α = Σ w D P / (F_D Σ w P²)`` over the fit box (``w``: 0
       at unusable pixels), with P_D moved to ``x₀`` by a Fourier phase ramp. α is in
       reference counts; ``psfflux = α · flux_ratio`` in science counts and
       ``magpsf = magzpsci − 2.5 log10 |psfflux|``. The error has the background part
       ``1 / (F_D² Σ w P²)`` times the source-noise factor of ZOGY's noise model at the
       peak, ``flux_err² F_S`` (eqs. 26–27, 42–43; 1 on empty sky).
    4. **Aperture photometry on D** within ``aperture_radius`` (pixel centres),
       aperture-corrected with the same P_D: ``α_ap = Σ_ap D / (F_D Σ_ap P)``.
    5. **Shape**: Gaussian-windowed second moments of ``±D`` (window σ = 1.5 σ_D),
       corrected for the window (exact for a Gaussian), as SExtractor's windowed
       ``A_IMAGE``/``B_IMAGE``.
    6. **Quality**: ZTF's ``nneg``, ``nbad``, ``sumrat`` (5x5 box), ``mindtoedge``,
       the ``dipole`` score and :class:`CandidateFlags`.
    7. **Nearest reference source** (``distnr``, ``magnr``, ``sigmagnr``, ``ranr``,
       ``decnr``) from a reference catalog (:func:`reference_catalog`; pass one computed
       once per reference with ``reference_catalog=`` to save its cost).
    8. **Cutouts** (:func:`~skyscene.candidates.make_cutouts`).

    Examples
    --------
    >>> from skyscene.datasets.pairs import simulate_pair
    >>> from skyscene.diffim import Zogy
    >>> pair = simulate_pair(shape=(256, 256), rng=5, n_transients=3, transient_snr=30.0)
    >>> result = Zogy()(pair.science, pair.reference)
    >>> found = CandidateFinder()(result, pair.science, pair.reference, pair_id="demo")
    >>> len(found) >= 3, set(found["isdiffpos"]) <= {"t", "f"}
    (True, True)
    """

    def __init__(self, config: CandidateConfig | None = None):
        if config is not None and not isinstance(config, CandidateConfig):
            raise ParameterError(
                f"config must be a CandidateConfig, got {type(config).__name__}",
                name="config",
                value=config,
            )
        self.config = config or CandidateConfig()

    def __repr__(self) -> str:
        return f"CandidateFinder({self.config!r})"

    def __call__(
        self,
        result,
        science,
        reference,
        *,
        pair_id: str | None = None,
        reference_catalog=None,
    ) -> CandidateTable:
        """Find and measure the candidates of one subtraction.

        Parameters
        ----------
        result : skyscene.diffim.ZogyResult
            The subtraction of ``reference`` from ``science``.
        science, reference : Exposure
            Its inputs (zeropoint, band, time, exposure time and WCS are read from the
            science exposure; the reference gives the cutouts and the catalog).
        pair_id : str, optional
            Identifier of the pair, hashed into ``candid``; default: the two file names
            and the science time.
        reference_catalog : astropy.table.Table, optional
            ``x``, ``y`` (reference pixels), ``flux`` (reference counts) and ``snr`` or
            ``flux_err``; default: :func:`reference_catalog` of ``reference``.

        Returns
        -------
        CandidateTable

        Raises
        ------
        DataError
            ``result`` does not match ``science`` (shape), or the pair cannot be put on
            one grid for the cutouts.
        """
        cfg = self.config
        from skyscene.io import Exposure

        for exp, name in ((science, "science"), (reference, "reference")):
            if not isinstance(exp, Exposure):
                raise ParameterError(
                    f"{name} must be an Exposure, got {type(exp).__name__}", name=name
                )
        if result.score_corr.shape != science.shape:
            raise DataError(
                f"ZOGY result shape {result.score_corr.shape} differs from the science shape "
                f"{science.shape}{science._where()}"
            )
        if pair_id is None:
            pair_id = _default_pair_id(science, reference)
        psf = np.asarray(result.difference_psf, float)
        fwhm_d = _fwhm_of(psf)
        f_d = float(result.flux_zeropoint)
        f_s = float(result.flux_normalization)
        ratio = float(result.flux_ratio)
        zp = None if science.zeropoint is None else float(science.zeropoint)
        diffmaglim = (
            zp - 2.5 * math.log10(5.0 * ratio / math.sqrt(f_s)) if zp is not None else math.nan
        )
        meta: dict[str, Any] = {
            "pair_id": pair_id,
            "config": cfg.to_dict(),
            "flux_ratio": ratio,
            "flux_zeropoint": f_d,
            "fwhm_difference_psf": fwhm_d,
            "diffmaglim": diffmaglim,
            "threshold": float(cfg.threshold),
        }

        good = result.mask == 0
        iy, ix, vals = _peaks(result.score_corr, good, cfg.threshold)
        iy, ix, vals = _merge(iy, ix, vals, cfg.merge_radius)
        if cfg.max_candidates is not None:
            iy, ix, vals = (
                iy[: cfg.max_candidates],
                ix[: cfg.max_candidates],
                vals[: cfg.max_candidates],
            )
        n = len(iy)
        log.info("%d candidates at |S_corr| >= %g", n, cfg.threshold)
        if n == 0:
            cut = None
            if cfg.cutouts:
                cut = make_cutouts(
                    result, science, reference, np.zeros(0), np.zeros(0), size=cfg.cutout_size
                )
            return CandidateTable(columns=_empty_columns(), meta=meta, cutouts=cut)

        sign = np.sign(vals)
        dx, dy = _subpixel(result.score, good, iy, ix, sign)
        xpos, ypos = ix + dx, iy + dy
        cols = self._measure(result, science, psf, fwhm_d, ix, iy, dx, dy, sign, vals)
        isdiffpos = np.where(sign > 0, "t", "f")
        candid = candidate_id(pair_id, xpos, ypos, isdiffpos)
        if len(np.unique(candid)) != n:  # pragma: no cover - 63-bit collision
            raise DataError(f"candidate id collision in pair {pair_id!r}")

        ny, nx = science.shape
        flags = cols.pop("_flags")
        mindtoedge = np.minimum.reduce([xpos, ypos, nx - 1 - xpos, ny - 1 - ypos])
        flags |= np.where(mindtoedge < cfg.near_radius, int(CandidateFlags.EDGE), 0)
        half = cfg.cutout_size // 2
        off = (ix - half < 0) | (iy - half < 0) | (ix + half >= nx) | (iy + half >= ny)
        flags |= np.where(off, int(CandidateFlags.CUTOUT_OFF_IMAGE), 0)

        ra = dec = np.full(n, np.nan)
        if science.wcs is not None:
            ra, dec = (np.asarray(v, float) for v in science.wcs.pixel_to_world_values(xpos, ypos))
        if zp is None or science.wcs is None:
            flags |= int(CandidateFlags.NO_CALIBRATION)
        zp_value = zp if zp is not None else math.nan
        psfflux, psffluxerr = cols["psfflux"], cols["psffluxerr"]
        apflux, apfluxerr = cols.pop("_apflux"), cols.pop("_apfluxerr")
        with np.errstate(divide="ignore", invalid="ignore"):
            fitted = sign * psfflux > 0
            magpsf = np.where(fitted, zp_value - 2.5 * np.log10(np.abs(psfflux)), np.nan)
            sigmapsf = np.where(fitted, MAG_PER_LN * psffluxerr / np.abs(psfflux), np.nan)
            ap_ok = sign * apflux > 0
            magap = np.where(ap_ok, zp_value - 2.5 * np.log10(np.abs(apflux)), np.nan)
            sigmagap = np.where(ap_ok, MAG_PER_LN * apfluxerr / np.abs(apflux), np.nan)
        flags |= np.where(fitted & np.isfinite(psffluxerr), 0, int(CandidateFlags.FIT_FAILED))

        nr = self._nearest_reference(science, reference, reference_catalog, xpos, ypos)
        jd = math.nan
        if science.time is not None:
            start = science.time
            if science.exptime:
                from astropy import units as u

                start = start - float(science.exptime) / 2.0 * u.s
            jd = float(start.utc.jd)
        fid = cfg.fid if cfg.fid is not None else ZTF_FID.get(str(science.band), 0)
        fwhm = cols["fwhm"]
        with np.errstate(divide="ignore", invalid="ignore"):
            columns = {
                "candid": candid,
                "jd": np.full(n, jd),
                "fid": np.full(n, fid, np.int32),
                "band": np.full(n, str(science.band or "")),
                "ra": ra,
                "dec": dec,
                "xpos": xpos,
                "ypos": ypos,
                "isdiffpos": isdiffpos,
                "scorr": vals.astype(float),
                "magpsf": magpsf,
                "sigmapsf": sigmapsf,
                "chipsf": cols["chipsf"],
                "magap": magap,
                "sigmagap": sigmagap,
                "magdiff": magap - magpsf,
                "magfromlim": diffmaglim - magap,
                "diffmaglim": np.full(n, diffmaglim),
                "magzpsci": np.full(n, zp_value),
                "exptime": np.full(n, float(science.exptime) if science.exptime else np.nan),
                "fwhm": fwhm,
                "aimage": cols["aimage"],
                "bimage": cols["bimage"],
                "aimagerat": cols["aimage"] / fwhm,
                "bimagerat": cols["bimage"] / fwhm,
                "elong": cols["aimage"] / cols["bimage"],
                "nneg": cols["nneg"],
                "nbad": cols["nbad"],
                "sumrat": cols["sumrat"],
                "mindtoedge": mindtoedge,
                **nr,
                "pair_id": np.full(n, pair_id),
                "psfflux": psfflux,
                "psffluxerr": psffluxerr,
                "sharpness": cols["sharpness"],
                "roundness": 1.0 - cols["bimage"] / cols["aimage"],
                "dipole": cols["dipole"],
                "flags": flags.astype(np.int32),
            }
        if list(columns) != column_names():  # pragma: no cover - kept in step by tests
            raise RuntimeError("candidate columns out of step with skyscene.candidates.columns")
        cut = None
        if cfg.cutouts:
            cut = make_cutouts(
                result, science, reference, xpos, ypos, size=cfg.cutout_size, candid=candid
            )
        return CandidateTable(columns=columns, meta=meta, cutouts=cut)

    # -- measurements ------------------------------------------------------------------
    def _measure(self, result, science, psf, fwhm_d, ix, iy, dx, dy, sign, vals) -> dict:
        cfg = self.config
        m = psf.shape[0]
        f_d = float(result.flux_zeropoint)
        f_s = float(result.flux_normalization)
        ratio = float(result.flux_ratio)
        fit_size = cfg.fit_size or int(np.clip(2 * math.ceil(1.5 * fwhm_d) + 1, 7, m))
        fit_size = min(fit_size, m)
        r_ap = cfg.aperture_radius if cfg.aperture_radius is not None else 1.5 * fwhm_d
        ap_size = min(2 * math.ceil(r_ap) + 1, m)
        r_dip = cfg.dipole_radius if cfg.dipole_radius is not None else 2.0 * fwhm_d
        r_dip = min(r_dip, 31.0)
        big = max(fit_size, ap_size, 7)
        hb = big // 2
        shifted = _shifted_psfs(psf, dx, dy, big)  # (N, big, big)
        diff, off = _stamps(result.difference, ix, iy, hb, 0.0)
        bits, _ = _stamps(result.mask, ix, iy, hb, _EDGE)
        usable = ~off & ((bits & (_DIRECT | _EDGE)) == 0)
        u = np.arange(-hb, hb + 1, dtype=float)
        rr = np.hypot(u[None, None, :] - dx[:, None, None], u[None, :, None] - dy[:, None, None])

        # PSF fit in the central fit box
        hf = fit_size // 2
        inner = slice(hb - hf, hb + hf + 1)
        p = shifted[:, inner, inner]
        d = diff[:, inner, inner]
        w = usable[:, inner, inner].astype(float)
        spp = (w * p * p).sum(axis=(1, 2))
        with np.errstate(divide="ignore", invalid="ignore"):
            alpha = (w * d * p).sum(axis=(1, 2)) / (f_d * spp)
            var_bg = 1.0 / (f_d**2 * spp)
            resid = w * (d - alpha[:, None, None] * f_d * p) ** 2
            dof = w.sum(axis=(1, 2)) - 1.0
            chipsf = np.where(dof > 0, resid.sum(axis=(1, 2)) / dof, np.nan)
        # source-noise factor of ZOGY's noise model at the peak (1 on empty sky)
        err = result.flux_err[iy, ix].astype(float)
        factor = np.where(np.isfinite(err), np.maximum(err**2 * f_s, 1.0), 1.0)
        alpha_err = np.sqrt(var_bg * factor)

        # aperture (pixel centres within r_ap), aperture-corrected with P_D
        ap = (rr <= r_ap) & usable
        with np.errstate(divide="ignore", invalid="ignore"):
            ap_sum_p = (ap * shifted).sum(axis=(1, 2))
            alpha_ap = (ap * diff).sum(axis=(1, 2)) / (f_d * ap_sum_p)
            alpha_ap_err = np.sqrt(factor * ap.sum(axis=(1, 2))) / (f_d * np.abs(ap_sum_p))

        # shape: windowed moments of sign * D
        sigma_d = fwhm_d / FWHM_PER_SIGMA
        a, b = _window_moments(
            sign[:, None, None] * diff, usable.astype(float), dx, dy, 1.5 * sigma_d
        )
        fwhm = FWHM_PER_SIGMA * np.sqrt(a * b)

        # sharpness: central pixel of D over the fitted PSF's value there
        with np.errstate(divide="ignore", invalid="ignore"):
            model_peak = alpha * f_d * shifted[:, hb, hb]
            sharpness = np.where(usable[:, hb, hb], diff[:, hb, hb] / model_peak, np.nan)

        # ZTF 5x5 quantities (sign-corrected D; nbad: bad or off-image pixels)
        d7, off7 = _stamps(result.difference, ix, iy, 3, 0.0)
        b7, _ = _stamps(result.mask, ix, iy, 3, 0)
        d7 = d7 * sign[:, None, None]
        core = slice(1, 6)
        nneg = ((d7[:, core, core] < 0) & ~off7[:, core, core]).sum(axis=(1, 2))
        nbad = (((b7[:, core, core] & _DIRECT) > 0) | off7[:, core, core]).sum(axis=(1, 2))
        windows = np.lib.stride_tricks.sliding_window_view(d7, (3, 3), axis=(1, 2))
        med = np.median(windows.reshape(len(ix), 5, 5, 9), axis=-1)
        with np.errstate(divide="ignore", invalid="ignore"):
            sumrat = med.sum(axis=(1, 2)) / np.abs(med).sum(axis=(1, 2))

        # dipole: the strongest opposite-sign S_corr within r_dip
        hd = math.ceil(r_dip)
        sc, offd = _stamps(result.score_corr, ix, iy, hd, 0.0)
        bd, _ = _stamps(result.mask, ix, iy, hd, 0)
        ud = np.arange(-hd, hd + 1)
        disk = (ud[None, :] ** 2 + ud[:, None] ** 2) <= r_dip**2
        opposite = np.where(disk[None] & ~offd & (bd == 0), -sign[:, None, None] * sc, 0.0)
        opposite = opposite.max(axis=(1, 2))
        dipole = np.clip(opposite / np.abs(vals), 0.0, 1.0)

        # flags from the ZOGY mask in the near box
        hn = cfg.near_radius
        bn, offn = _stamps(result.mask, ix, iy, hn, 0)
        flags = np.zeros(len(ix), np.int64)
        flags |= np.where(
            ((bn & _SATURATED) > 0).any(axis=(1, 2)), int(CandidateFlags.SATURATED_NEAR), 0
        )
        masked_bits = _SCIENCE_MASKED | _REFERENCE_MASKED | _NEAR_MASKED | _NONFINITE
        flags |= np.where(
            ((bn & masked_bits) > 0).any(axis=(1, 2)), int(CandidateFlags.MASKED_NEAR), 0
        )
        edge = ((bn & _EDGE) > 0).any(axis=(1, 2)) | offn.any(axis=(1, 2))
        flags |= np.where(edge, int(CandidateFlags.EDGE), 0)
        flags |= np.where(opposite >= cfg.threshold, int(CandidateFlags.DIPOLE), 0)
        flags |= np.where(np.isfinite(a) & np.isfinite(b), 0, int(CandidateFlags.SHAPE_FAILED))

        return {
            "psfflux": alpha * ratio,
            "psffluxerr": alpha_err * ratio,
            "chipsf": chipsf,
            "_apflux": alpha_ap * ratio,
            "_apfluxerr": alpha_ap_err * ratio,
            "fwhm": fwhm,
            "aimage": a,
            "bimage": b,
            "nneg": nneg.astype(np.int32),
            "nbad": nbad.astype(np.int32),
            "sumrat": sumrat,
            "sharpness": sharpness,
            "dipole": dipole,
            "_flags": flags,
        }

    def _nearest_reference(self, science, reference, catalog, xpos, ypos) -> dict:
        cfg = self.config
        n = len(xpos)
        out = {
            name: np.full(n, np.nan) for name in ("distnr", "magnr", "sigmagnr", "ranr", "decnr")
        }
        if catalog is None:
            catalog = reference_catalog(reference, threshold=cfg.catalog_threshold)
        for name in ("x", "y", "flux"):
            if name not in catalog.colnames:
                raise ParameterError(
                    f"reference_catalog needs columns x, y, flux; missing {name!r}",
                    name="reference_catalog",
                )
        if len(catalog) == 0:
            return out
        rx = np.asarray(catalog["x"], float)
        ry = np.asarray(catalog["y"], float)
        flux = np.asarray(catalog["flux"], float)
        if "flux_err" in catalog.colnames:
            snr = flux / np.asarray(catalog["flux_err"], float)
        elif "snr" in catalog.colnames:
            snr = np.asarray(catalog["snr"], float)
        else:
            snr = np.full(len(flux), np.nan)
        ra_nr = dec_nr = np.full(len(rx), np.nan)
        if reference.wcs is not None and science.wcs is not None:
            ra_nr, dec_nr = (
                np.asarray(v, float) for v in reference.wcs.pixel_to_world_values(rx, ry)
            )
            sx, sy = (
                np.asarray(v, float) for v in science.wcs.world_to_pixel_values(ra_nr, dec_nr)
            )
        else:
            sx, sy = rx, ry
        from scipy.spatial import cKDTree

        finite = np.isfinite(sx) & np.isfinite(sy)
        if not finite.any():
            return out
        keep = np.flatnonzero(finite)
        dist, idx = cKDTree(np.column_stack([sx[keep], sy[keep]])).query(
            np.column_stack([xpos, ypos]), distance_upper_bound=cfg.nr_radius
        )
        hit = np.isfinite(dist)
        j = keep[np.where(hit, idx, 0)]
        zp_ref = math.nan if reference.zeropoint is None else float(reference.zeropoint)
        with np.errstate(divide="ignore", invalid="ignore"):
            mag = np.where(flux[j] > 0, zp_ref - 2.5 * np.log10(flux[j]), np.nan)
            sig = np.where(snr[j] > 0, MAG_PER_LN / snr[j], np.nan)
        out["distnr"] = np.where(hit, dist, np.nan)
        out["magnr"] = np.where(hit, mag, np.nan)
        out["sigmagnr"] = np.where(hit, sig, np.nan)
        out["ranr"] = np.where(hit, ra_nr[j], np.nan)
        out["decnr"] = np.where(hit, dec_nr[j], np.nan)
        return out


def find_candidates(
    result, science, reference, *, config: CandidateConfig | None = None, **kwargs
) -> CandidateTable:
    """Function twin of :class:`CandidateFinder`.

    ``kwargs`` (``pair_id``, ``reference_catalog``) go to :meth:`CandidateFinder.__call__`.
    """
    return CandidateFinder(config)(result, science, reference, **kwargs)
