"""One- and two-component stellar spectrum models fitted to an observed spectrum.

The two-component ("mixture") model of Starfish (Czekala et al. 2015, mixture model
mode) describes a photosphere with two temperature components — a star and its spots,
or an unresolved binary — in each spectral order (chunk) m as

    f_mix(λ) = (1 − c) · f₁(λ)/f̄₁ + c · q_m · f₂(λ)/f̄₂,

where f_k/f̄_k is the grid spectrum of component k at θ_k = (Teff, log g, [Fe/H]) —
from the spectral emulator (ln-flux eigenspectra with cubic-spline weights,
:mod:`skyscene.spectra.emulator`) or, as a reference, multilinear interpolation of the
normalised grid spectra — normalised by its mean in the order, c is the solid-angle (filling)
fraction of component 2 and q_m = f̄₂/f̄₁ the ratio of the raw mean fluxes
(:mod:`skyscene.spectra.fluxratio`). The mixture is broadened by rotation (shared
v sin i, Gray's profile with ε = 0.6) and the instrument (Gaussian, resolving power R,
fixed), Doppler-shifted (shared RV) and multiplied by a Chebyshev polynomial per order
(the continuum / instrument response). The Chebyshev coefficients enter linearly and are
marginalised analytically under flat priors at every evaluation, so the optimiser and
the sampler only see the non-linear parameters.

Label switching is removed by requiring T₂ < T₁ (component 2 is the cooler one). Units:
wavelength Å, velocities km/s, temperatures K.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import fft as sp_fft
from scipy import optimize

from skyscene._estimator import EstimatorParams
from skyscene._validation import check_choice, check_finite, check_int, check_optional, check_range
from skyscene.errors import ConvergenceWarning, DataError, ParameterError, ParameterRangeError
from skyscene.spectra.broadening import (
    C_KMS,
    check_wavelength,
    doppler_factor,
    instrumental_transfer,
    rotational_transfer,
)
from skyscene.spectra.fluxratio import MeanFluxRatio, make_flux_ratio, order_mean_flux
from skyscene.spectra.interpolate import (
    BOUNDARIES,
    FEH_COORDINATES,
    RegularGridInterpolator,
    is_temperature_name,
)

__all__ = [
    "MixtureModel",
    "ModelComparison",
    "SingleComponentModel",
    "SpectralFit",
    "SpectralFitConfig",
    "SpectrumPrediction",
    "TrimmedRange",
    "compare_models",
]

log = logging.getLogger(__name__)

# Finite-difference steps for the Gauss-Newton covariance, by parameter kind.
_FD_STEP = {"teff": 10.0, "c": 0.005, "vsini": 0.2, "rv": 0.05}
_FD_STEP_DEFAULT = 0.02
# A mixture must improve 2 × (−ln posterior) by this much over its c = 0 limit to be reported
# with c > 0 (MixtureModel._prefer_nested): ties between equivalent optima go to c = 0.
_NESTED_DCHI2 = 2.0


def _bounds(label: str, value, *, low: float | None = None) -> tuple[float, float]:
    """A (min, max) pair of finite numbers with ``low <= min < max``, as floats."""
    name = f"SpectralFitConfig.{label}"
    try:
        pair = tuple(value)
    except TypeError:
        pair = ()
    rule = f"{low:g} <= min < max" if low is not None else "min < max"
    if len(pair) != 2:
        raise ParameterError(f"{label}={value!r} must be a pair (min, max)", name=name, value=value)
    lo, hi = (float(check_finite(name, v)) for v in pair)
    if not lo < hi or (low is not None and lo < low):
        raise ParameterRangeError(
            f"{label}={(lo, hi)!r} must satisfy {rule}", name=name, value=value, min=low
        )
    return lo, hi


@dataclass(frozen=True, kw_only=True)
class SpectralFitConfig:
    """Validated settings of a one- or two-component spectral fit (recorded in outputs).

    :class:`MixtureModel` and :class:`SingleComponentModel` take these as keyword
    arguments (scikit-learn style, stored unmodified) and build this object in
    ``fit()`` (``config_``); :meth:`MixtureModel.from_config` goes the other way.
    The grid-dependent checks (a regular grid with one temperature axis, ``shared``
    naming its parameters) are made in ``fit()``.

    Attributes
    ----------
    n_components : {1, 2}
        1: :class:`SingleComponentModel`; 2: :class:`MixtureModel`.
    resolution : float or None
        Instrumental resolving power R (> 0), or None if the grid is at the instrument's
        resolution.
    continuum_degree : int
        Degree (>= 0) of the Chebyshev continuum per order.
    shared : tuple of str
        Grid parameters common to both components (empty for one component).
    vsini_bounds, rv_bounds : (float, float)
        Flat-prior ranges (km/s): 0 <= min < max for v sin i, ``|rv| < c`` for RV.
    flux_ratio : {"grid", "pairs"}
        q_m approach (:mod:`skyscene.spectra.fluxratio`).
    interpolation : {"emulator", "linear"}
        Grid spectra between nodes.
    emulator_tolerance : float
        > 0, the largest ln F error at the nodes allowed by the eigenspectrum truncation.
    teff_boundary : {"not-a-knot", "natural"}
        End condition of the emulator's and ln s_m's cubic splines along 1/Teff.
    feh_coordinate : {"abundance", "dex"}
        Spline coordinate of the metallicity axis: 10^[Fe/H] (default) or [Fe/H].
    limb_darkening : float
        ε in [0, 1] of the rotational profile.
    n_starts : int
        >= 1 optimiser starts from the best (T₂, c) grid candidates (+1 jittered).
    maxiter : int
        >= 1, limit on the residual evaluations of the final Gauss-Newton run.

    Examples
    --------
    >>> cfg = SpectralFitConfig(resolution=30000.0, rv_bounds=(-50, 50))
    >>> cfg.rv_bounds, cfg.single().shared
    ((-50.0, 50.0), ())
    >>> SpectralFitConfig.from_dict(cfg.to_dict()) == cfg
    True
    """

    n_components: int = 2
    resolution: float | None = None
    continuum_degree: int = 2
    shared: tuple[str, ...] = ("logg", "FeH")
    vsini_bounds: tuple[float, float] = (0.0, 100.0)
    rv_bounds: tuple[float, float] = (-200.0, 200.0)
    flux_ratio: str = "grid"
    interpolation: str = "emulator"
    emulator_tolerance: float = 1e-6
    teff_boundary: str = "not-a-knot"
    feh_coordinate: str = "abundance"
    limb_darkening: float = 0.6
    n_starts: int = 3
    maxiter: int = 500

    def __post_init__(self) -> None:
        name = type(self).__name__
        set_ = object.__setattr__
        check_choice(f"{name}.n_components", self.n_components, (1, 2))
        res = check_optional(
            check_range, f"{name}.resolution", self.resolution, low=0, low_inclusive=False
        )
        set_(self, "resolution", None if res is None else float(res))
        set_(
            self,
            "continuum_degree",
            int(check_int(f"{name}.continuum_degree", self.continuum_degree, low=0)),
        )
        if isinstance(self.shared, str):
            raise ParameterError(
                f"shared={self.shared!r} must be a sequence of parameter names, "
                f"e.g. ({self.shared!r},)",
                name=f"{name}.shared",
                value=self.shared,
            )
        shared = tuple(str(s) for s in self.shared)
        if self.n_components == 1 and shared:
            raise ParameterError(
                f"shared={shared!r}: a one-component model shares nothing (use shared=())",
                name=f"{name}.shared",
                value=shared,
            )
        set_(self, "shared", shared)
        set_(self, "vsini_bounds", _bounds("vsini_bounds", self.vsini_bounds, low=0.0))
        rv = _bounds("rv_bounds", self.rv_bounds)
        if not max(abs(rv[0]), abs(rv[1])) < C_KMS:
            raise ParameterRangeError(
                f"rv_bounds={rv!r} must satisfy min < max, |rv| < c",
                name=f"{name}.rv_bounds",
                value=self.rv_bounds,
                min=-C_KMS,
                max=C_KMS,
            )
        set_(self, "rv_bounds", rv)
        if self.flux_ratio not in ("grid", "pairs"):
            raise ParameterError(
                f"flux_ratio={self.flux_ratio!r}: choose 'grid' or 'pairs'",
                name=f"{name}.flux_ratio",
                value=self.flux_ratio,
            )
        if self.interpolation not in ("emulator", "linear"):
            raise ParameterError(
                f"interpolation={self.interpolation!r}: choose 'emulator' or 'linear'",
                name=f"{name}.interpolation",
                value=self.interpolation,
            )
        tol = self.emulator_tolerance
        if isinstance(tol, bool) or not isinstance(tol, float | int) or not tol > 0:
            raise ParameterRangeError(
                f"emulator_tolerance={tol!r} must be a positive number",
                name=f"{name}.emulator_tolerance",
                value=tol,
                min=0,
            )
        set_(self, "emulator_tolerance", float(check_finite(f"{name}.emulator_tolerance", tol)))
        if self.teff_boundary not in BOUNDARIES:
            raise ParameterError(
                f"teff_boundary={self.teff_boundary!r}: choose one of {BOUNDARIES}",
                name=f"{name}.teff_boundary",
                value=self.teff_boundary,
            )
        if self.feh_coordinate not in FEH_COORDINATES:
            raise ParameterError(
                f"feh_coordinate={self.feh_coordinate!r}: choose one of {FEH_COORDINATES}",
                name=f"{name}.feh_coordinate",
                value=self.feh_coordinate,
            )
        set_(
            self,
            "limb_darkening",
            float(check_range(f"{name}.limb_darkening", self.limb_darkening, low=0.0, high=1.0)),
        )
        set_(self, "n_starts", int(check_int(f"{name}.n_starts", self.n_starts, low=1)))
        set_(self, "maxiter", int(check_int(f"{name}.maxiter", self.maxiter, low=1)))

    def single(self) -> SpectralFitConfig:
        """The one-component version: nothing shared, one start (the former defaults)."""
        return dataclasses.replace(self, n_components=1, shared=(), flux_ratio="grid", n_starts=1)

    def to_dict(self) -> dict:
        """The configuration as plain JSON types (tuples as lists), for output metadata."""
        out = dataclasses.asdict(self)
        for key in ("shared", "vsini_bounds", "rv_bounds"):
            out[key] = list(out[key])
        return out

    @classmethod
    def from_dict(cls, data: dict) -> SpectralFitConfig:
        """Inverse of :meth:`to_dict` (unknown keys are a :class:`ParameterError`)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ParameterError(
                f"{cls.__name__}: unknown key(s) {unknown}; expected {sorted(known)}",
                name=cls.__name__,
                value=unknown,
            )
        return cls(**data)


@dataclass(frozen=True, kw_only=True, eq=False)
class SpectralFit:
    """Result of a spectral fit: parameter values, uncertainties and fit statistics.

    Attributes
    ----------
    names : tuple of str
        Free non-linear parameters, e.g. ("Teff1", "logg", "FeH", "Teff2", "c", "vsini", "rv").
    values, errors : ndarray
        Best values and 1σ uncertainties (MAP + Gauss-Newton, or posterior median and
        standard deviation after :meth:`MixtureModel.sample`).
    chi2 : float
        χ² at the best fit (continuum at its best coefficients).
    n_data : int
        Number of pixels with finite σ.
    n_params : int
        Free parameters including the Chebyshev coefficients.
    bic : float
        χ² + n_params ln n_data.
    method : str
        "map" or "emcee".
    converged : bool
        Whether the optimiser reported success.
    continuum : list of ndarray
        Chebyshev coefficients of each order.
    q : ndarray
        Flux ratio q_m of each order at the best fit (ones for one component).
    """

    names: tuple[str, ...]
    values: np.ndarray
    errors: np.ndarray
    chi2: float
    n_data: int
    n_params: int
    bic: float
    method: str
    converged: bool
    continuum: list = field(default_factory=list)
    q: np.ndarray = field(default_factory=lambda: np.ones(0))

    def to_dict(self) -> dict:
        """JSON-serialisable dictionary."""
        return {
            "parameters": {
                n: {"value": float(v), "error": float(e)}
                for n, v, e in zip(self.names, self.values, self.errors, strict=True)
            },
            "chi2": float(self.chi2),
            "n_data": int(self.n_data),
            "n_params": int(self.n_params),
            "bic": float(self.bic),
            "method": self.method,
            "converged": bool(self.converged),
            "continuum": [np.asarray(c).tolist() for c in self.continuum],
            "q": np.asarray(self.q).tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict) -> SpectralFit:
        """Inverse of :meth:`to_dict` (arrays come back as float64)."""
        params = data["parameters"]
        return cls(
            names=tuple(params),
            values=np.array([p["value"] for p in params.values()], dtype=float),
            errors=np.array([p["error"] for p in params.values()], dtype=float),
            chi2=float(data["chi2"]),
            n_data=int(data["n_data"]),
            n_params=int(data["n_params"]),
            bic=float(data["bic"]),
            method=str(data["method"]),
            converged=bool(data["converged"]),
            continuum=[np.asarray(c, dtype=float) for c in data["continuum"]],
            q=np.asarray(data["q"], dtype=float),
        )

    def to_table(self):
        """astropy Table with one row per parameter (name, value, error)."""
        from astropy.table import Table

        return Table(
            {"name": list(self.names), "value": self.values, "error": self.errors},
            meta={"chi2": self.chi2, "bic": self.bic, "method": self.method},
        )


@dataclass(frozen=True, kw_only=True, eq=False)
class SpectrumPrediction:
    """Model flux at some wavelengths and its parts (all multiplied by the continuum)."""

    wavelength: np.ndarray
    order: np.ndarray
    total: np.ndarray
    component1: np.ndarray
    component2: np.ndarray
    continuum: np.ndarray


@dataclass(frozen=True, kw_only=True)
class TrimmedRange:
    """What ``fit(..., trim=True)`` left out.

    ``wavelength_range`` (Å) is the data range the grid supports for the RV and v sin i
    bounds; ``n_pixels`` the pixels outside it (not fitted); ``orders_dropped`` the
    orders with no pixel inside it.
    """

    wavelength_range: tuple[float, float]
    n_pixels: int
    orders_dropped: tuple = ()

    def to_dict(self) -> dict:
        """JSON-serialisable dictionary."""
        return {
            "wavelength_range": list(self.wavelength_range),
            "n_pixels": self.n_pixels,
            "orders_dropped": list(self.orders_dropped),
        }


@dataclass(frozen=True, kw_only=True)
class ModelComparison:
    """Evidence comparison of a single-component and a mixture fit to the same data.

    ``delta_chi2 = χ²_single − χ²_mixture`` and ``delta_bic = BIC_single − BIC_mixture``
    (positive: the mixture fits better); ``preferred`` is the model with the lower BIC.
    """

    delta_chi2: float
    delta_bic: float
    preferred: str

    def to_dict(self) -> dict:
        """JSON-serialisable dictionary."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ModelComparison:
        """Inverse of :meth:`to_dict`."""
        return cls(**data)


def compare_models(single, mixture) -> ModelComparison:
    """Compare a fitted :class:`SingleComponentModel` and :class:`MixtureModel` by Δχ² and BIC."""
    for m in (single, mixture):
        if not hasattr(m, "result_"):
            raise ParameterError(f"{type(m).__name__} is not fitted; call fit() first")
    if single.n_data_ != mixture.n_data_:
        raise ParameterError(
            "the models were fitted to different data "
            f"({single.n_data_} vs {mixture.n_data_} pixels)"
        )
    d_bic = single.bic_ - mixture.bic_
    return ModelComparison(
        delta_chi2=float(single.chi2_ - mixture.chi2_),
        delta_bic=float(d_bic),
        preferred="mixture" if d_bic > 0 else "single",
    )


class _Order:
    """Precomputed model of one spectral order."""

    def __init__(
        self, grid, wl, y, w, lo, hi, *, model_range, resolution, degree, names, emulator=None
    ):
        self.wl, self.y, self.w = wl, y, w
        self.lo, self.hi = lo, hi
        self.degree = degree
        self.x_scale = 2.0 / (hi - lo)
        self.basis = self.chebyshev(wl)
        seg = (grid.wavelength >= model_range[0]) & (grid.wavelength <= model_range[1])
        idx = np.flatnonzero(seg)
        self.model_wl = grid.wavelength[idx]
        self.x0 = float(np.log(self.model_wl[0]))
        self.dx = float(np.mean(np.diff(np.log(self.model_wl))))
        if emulator is not None:
            self.interp = None
            self.mean = emulator.mean_[idx]
            self.eigen = np.ascontiguousarray(emulator.eigenspectra_[:, idx])
        else:
            s = order_mean_flux(grid, [(lo, hi)])[:, 0]
            norm = (np.asarray(grid.flux[:, idx], dtype=float) / s[:, None])[grid._cube_order()]
            cube = norm.reshape((*(a.size for a in grid.axes), idx.size))
            self.interp = RegularGridInterpolator(grid.axes, cube, names=names)
        self.n = idx.size
        self.n_fft = sp_fft.next_fast_len(self.n, real=True)
        dv = float(np.expm1(self.dx)) * C_KMS
        self.freq = sp_fft.rfftfreq(self.n_fft, d=dv)
        h_inst = instrumental_transfer(self.freq, resolution)
        # beyond this frequency the instrumental transfer is negligible (< 1e-12)
        live = np.flatnonzero(h_inst > 1e-12)
        self.n_live = int(live[-1]) + 1 if live.size else self.freq.size
        self.h_inst = h_inst[: self.n_live]
        self.freq_live = self.freq[: self.n_live]
        self._shift_key = None

    def normalised(self, thetas, weights, log_mean):
        """Grid spectra f_k/f̄_k of the components on the model wavelengths, (n_comp, n).

        Emulator: exp(μ + w_k·ξ − ln s_m(θ_k)) from the eigenspectrum ``weights`` (n_comp, K)
        and the interpolated log mean flux of this order ``log_mean`` (n_comp,);
        otherwise multilinear interpolation of the normalised grid spectra at ``thetas``.
        """
        if self.interp is not None:
            return np.array([self.interp(t) for t in thetas])
        a = weights @ self.eigen
        a += self.mean
        a -= log_mean[:, None]
        return np.exp(a, out=a)

    def doppler_weights(self, factor, wl=None):
        """Indices and cubic-convolution weights (Keys 1981, a = −1/2) of the observed pixels."""
        key = (factor, None if wl is None else id(wl))
        if wl is None and key == self._shift_key:
            return self._shift
        wl = self.wl if wl is None else wl
        u = (np.log(wl) - np.log(factor) - self.x0) / self.dx
        i = np.clip(u.astype(np.int64), 1, self.n - 3)
        t = u - i
        t2 = t * t
        t3 = t2 * t
        weights = np.stack(
            [
                -0.5 * t3 + t2 - 0.5 * t,
                1.5 * t3 - 2.5 * t2 + 1.0,
                -1.5 * t3 + 2.0 * t2 + 0.5 * t,
                0.5 * t3 - 0.5 * t2,
            ]
        )
        index = i[None, :] + np.arange(-1, 3)[:, None]
        if wl is self.wl:
            self._shift_key, self._shift = key, (index, weights)
        return index, weights

    def chebyshev(self, wl):
        x = (wl - self.lo) * self.x_scale - 1.0
        return np.polynomial.chebyshev.chebvander(x, self.degree)

    def broaden_shift(self, f, transfer, factor, wl=None):
        """Convolve model-grid flux ``f`` by ``transfer`` and sample it at the observed ``wl``."""
        spec = sp_fft.rfft(f, n=self.n_fft)
        spec[: self.n_live] *= transfer
        spec[self.n_live :] = 0.0
        g = sp_fft.irfft(spec, n=self.n_fft)
        index, weights = self.doppler_weights(factor, wl)
        return np.einsum("ij,ij->j", g[index], weights)


class _SpectrumModel(EstimatorParams):
    """Shared machinery of :class:`SingleComponentModel` and :class:`MixtureModel`.

    The subclasses follow scikit-learn's estimator contract: ``__init__`` stores its
    arguments unmodified; ``fit()`` validates them into :attr:`config_`
    (:class:`SpectralFitConfig`), which everything after uses.
    """

    n_components = 2
    grid: object

    # ------------------------------------------------------------------ set-up
    @classmethod
    def from_config(cls, grid, config: SpectralFitConfig):
        """A model of ``grid`` with the settings of ``config`` (of this many components)."""
        if config.n_components != cls.n_components:
            hint = " (use config.single())" if cls.n_components == 1 else ""
            raise ParameterError(
                f"{cls.__name__} has {cls.n_components} component(s) but the config "
                f"n_components={config.n_components}{hint}",
                name="SpectralFitConfig.n_components",
                value=config.n_components,
            )
        names = [n for n in cls._get_param_names() if n != "grid"]
        return cls(grid, **{n: getattr(config, n) for n in names})  # type: ignore[call-arg]

    def _make_config(self) -> SpectralFitConfig:
        params = self.get_params(deep=False)
        params.pop("grid")
        if self.n_components == 1:
            params.update(shared=(), flux_ratio="grid")
        return SpectralFitConfig(n_components=self.n_components, **params)

    def _validate_config(self):
        self.config_ = cfg = self._make_config()
        grid = self.grid
        if not grid.is_regular:
            grid.cube()  # raises ParameterError naming the axes
        temp = [n for n in grid.names if is_temperature_name(n)]
        if len(temp) != 1:
            raise ParameterError(
                f"the grid needs one temperature parameter (Teff); it has {grid.names}"
            )
        self._teff_name = temp[0]
        lower = {n.lower(): n for n in grid.names}
        shared = []
        for s in cfg.shared:
            if s.lower() not in lower:
                raise ParameterError(
                    f"shared={s!r} is not a grid parameter {grid.names}",
                    name="SpectralFitConfig.shared",
                    value=s,
                )
            if is_temperature_name(s):
                raise ParameterError(
                    "shared: the temperature cannot be shared by the components",
                    name="SpectralFitConfig.shared",
                    value=s,
                )
            shared.append(lower[s.lower()])
        self._shared_set = set(shared)

    def _layout(self):
        """Names, bounds and kinds of the free non-linear parameters."""
        grid = self.grid
        names, bounds, kinds, idx1, idx2 = [], [], [], [], []
        suffix = "1" if self.n_components == 2 else ""
        for name, axis in zip(grid.names, grid.axes, strict=True):
            label = name if name in self._shared_set else name + suffix
            idx1.append(len(names))
            names.append(label)
            bounds.append((float(axis[0]), float(axis[-1])))
            kinds.append("teff" if is_temperature_name(name) else name)
        if self.n_components == 2:
            for k, (name, axis) in enumerate(zip(grid.names, grid.axes, strict=True)):
                if name in self._shared_set:
                    idx2.append(idx1[k])
                    continue
                idx2.append(len(names))
                names.append(name + "2")
                bounds.append((float(axis[0]), float(axis[-1])))
                kinds.append("teff" if is_temperature_name(name) else name)
            names.append("c")
            bounds.append((0.0, 1.0))
            kinds.append("c")
        names += ["vsini", "rv"]
        bounds += [
            tuple(map(float, self.config_.vsini_bounds)),
            tuple(map(float, self.config_.rv_bounds)),
        ]
        kinds += ["vsini", "rv"]
        self._names = tuple(names)
        self._bounds = np.array(bounds)
        self._kinds = kinds
        self._idx1 = np.array(idx1)
        self._idx2 = np.array(idx2) if idx2 else None
        t = grid.names.index(self._teff_name)
        self._i_t1 = idx1[t]
        self._i_t2 = idx2[t] if idx2 else None
        self._i_c = names.index("c") if "c" in names else None
        self._i_vsini = names.index("vsini")
        self._i_rv = names.index("rv")

    def _setup(self, wavelength, flux, sigma, orders, trim=False):
        wl = np.asarray(wavelength, dtype=float)
        y = np.asarray(flux, dtype=float)
        sig = np.asarray(sigma, dtype=float)
        for name, arr in (("wavelength", wl), ("flux", y), ("sigma", sig)):
            if arr.ndim != 1:
                raise DataError(f"{name} must be 1-D, got shape {arr.shape}")
        if not wl.size == y.size == sig.size:
            raise DataError(
                f"mismatched lengths: wavelength has {wl.size}, flux {y.size}, "
                f"sigma {sig.size} values"
            )
        if np.any(np.isnan(sig)) or np.any(sig <= 0):
            i = int(np.flatnonzero(np.isnan(sig) | (sig <= 0))[0])
            raise DataError(
                f"sigma must be positive (inf marks a masked pixel); sigma[{i}]={float(sig[i])!r}"
            )
        good = np.isfinite(sig)
        if np.any(~np.isfinite(y[good])):
            i = int(np.flatnonzero(good & ~np.isfinite(y))[0])
            raise DataError(
                f"flux[{i}]={float(y[i])!r} is not finite (give it sigma=inf to mask it)"
            )
        if orders is None:
            labels = np.zeros(wl.size, dtype=np.int64)
        else:
            labels = np.asarray(orders)
            if labels.shape != wl.shape:
                raise DataError(
                    f"mismatched lengths: orders has {labels.size} values, wavelength {wl.size}"
                )
        self._validate_config()
        self._layout()
        self._rot_table = None
        # resampled once per grid object (cached by the grid), so that its emulator is
        # built only once
        grid = self.grid.log_uniform(rtol=1e-4)
        self.grid_ = grid
        d_lo, d_hi = (
            doppler_factor(self.config_.rv_bounds[0]),
            doppler_factor(self.config_.rv_bounds[1]),
        )
        width = self.config_.vsini_bounds[1] + (
            5.0 * C_KMS / self.config_.resolution if self.config_.resolution else 0.0
        )
        pad = 1.0 + width / C_KMS + 3 * grid.sampling_kms / C_KMS
        # the data range whose model the grid can compute for every RV and v sin i allowed
        supported = (
            float(grid.wavelength[0]) * d_hi * pad * (1 + 1e-12),
            float(grid.wavelength[-1]) * d_lo / pad * (1 - 1e-12),
        )
        keep = (wl >= supported[0]) & (wl <= supported[1])
        self.fitted_pixels_ = keep if trim else np.ones(wl.size, dtype=bool)
        self.trimmed_ = None
        if trim:
            if not keep.any():
                raise ParameterError(
                    f"trim=True: no pixel of {float(wl.min()):g}-{float(wl.max()):g} Å lies "
                    f"in the range {supported[0]:.2f}-{supported[1]:.2f} Å that the grid "
                    f"({grid.wavelength[0]:g}-{grid.wavelength[-1]:g} Å) supports for "
                    f"rv_bounds={self.config_.rv_bounds} km/s and vsini up to "
                    f"{self.config_.vsini_bounds[1]} km/s",
                    name="trim",
                    value=trim,
                )
            dropped_orders = sorted(set(np.unique(labels).tolist()) - set(labels[keep].tolist()))
            self.trimmed_ = TrimmedRange(
                wavelength_range=supported,
                n_pixels=int(np.count_nonzero(~keep)),
                orders_dropped=tuple(dropped_orders),
            )
            if self.trimmed_.n_pixels:
                log.info(
                    "trim=True: fitting %d of %d pixels, %.2f-%.2f Å (the range the grid "
                    "supports); orders left out entirely: %s",
                    int(keep.sum()),
                    wl.size,
                    *supported,
                    dropped_orders or "none",
                )
            wl, y, sig, good, labels = wl[keep], y[keep], sig[keep], good[keep], labels[keep]
        self.orders_ = np.unique(labels)
        emulator = None
        if self.config_.interpolation == "emulator":
            emulator = grid.emulator(
                tolerance=self.config_.emulator_tolerance,
                teff_boundary=self.config_.teff_boundary,
                feh_coordinate=self.config_.feh_coordinate,
            )
        self._emulator = emulator
        self.emulator_ = emulator
        self._orders = []
        ranges = []
        for m in self.orders_:
            sel = labels == m
            wl_m = check_wavelength(wl[sel], name=f"wavelength of order {m}")
            w_m = np.where(good[sel], 1.0 / np.where(good[sel], sig[sel], 1.0) ** 2, 0.0)
            if np.count_nonzero(w_m) <= self.config_.continuum_degree + 1:
                raise DataError(f"order {m} has too few unmasked pixels ({np.count_nonzero(w_m)})")
            lo, hi = float(wl_m[0]), float(wl_m[-1])
            need = (lo / d_hi / pad, hi / d_lo * pad)
            if need[0] < grid.wavelength[0] or need[1] > grid.wavelength[-1]:
                raise ParameterError(
                    f"order {m} ({lo:g}-{hi:g} Å) needs grid wavelengths "
                    f"{need[0]:.2f}-{need[1]:.2f} Å for rv_bounds={self.config_.rv_bounds} km/s "
                    f"and vsini up to {self.config_.vsini_bounds[1]} km/s, "
                    f"but the grid covers {grid.wavelength[0]:g}-{grid.wavelength[-1]:g} Å; "
                    f"fit(..., trim=True) fits {supported[0]:.2f}-{supported[1]:.2f} Å only"
                )
            y_m = np.where(good[sel], y[sel], 0.0)
            self._orders.append(
                _Order(
                    grid,
                    wl_m,
                    y_m,
                    w_m,
                    lo,
                    hi,
                    model_range=(need[0] * (1 - 1e-9), need[1] * (1 + 1e-9)),
                    resolution=self.config_.resolution,
                    degree=self.config_.continuum_degree,
                    names=grid.names,
                    emulator=emulator,
                )
            )
            ranges.append((lo, hi))
        self._ranges = ranges
        # ln s_m(θ), cubic in 1/Teff
        self._mean_flux = MeanFluxRatio(
            grid,
            ranges,
            teff_boundary=self.config_.teff_boundary,
            feh_coordinate=self.config_.feh_coordinate,
        )
        self._ratio = None
        if self.n_components == 2:
            self._ratio = (
                self._mean_flux
                if self.config_.flux_ratio == "grid"
                else make_flux_ratio(grid, ranges, method=self.config_.flux_ratio)
            )
        self.n_data_ = int(np.count_nonzero(good))
        self._labels = labels

    # ------------------------------------------------------------------ evaluation
    def _split(self, p):
        theta1 = p[self._idx1]
        theta2 = p[self._idx2] if self._idx2 is not None else None
        c = float(p[self._i_c]) if self._i_c is not None else 0.0
        return theta1, theta2, c, float(p[self._i_vsini]), float(p[self._i_rv])

    def _raw_models(self, p, *, components=False, wavelengths=None):
        """Broadened, shifted model (before continuum) of each order at the data pixels."""
        theta1, theta2, c, vsini, rv = self._split(p)
        factor = doppler_factor(rv)
        thetas = [theta1] if theta2 is None else [theta1, theta2]
        weights = log_mean = None
        if self._emulator is not None:
            weights = np.array([self._emulator.weights(t) for t in thetas])
            log_mean = np.array([self._mean_flux.log_mean_flux(t) for t in thetas])
        q = None
        if theta2 is not None:
            if self._ratio is self._mean_flux and log_mean is not None:
                q = np.exp(log_mean[1] - log_mean[0])  # the same as self._ratio(θ₁, θ₂)
            else:
                q = self._ratio(theta1, theta2)
        rot_cache: dict[int, np.ndarray] = {}
        out = []
        for m, order in enumerate(self._orders):
            key = order.n_fft
            if key not in rot_cache:
                rot_cache[key] = order.h_inst * self._rotation(order.freq_live, vsini)
            transfer = rot_cache[key]
            wl = None if wavelengths is None else wavelengths[m]
            spectra = order.normalised(
                thetas, weights, None if log_mean is None else log_mean[:, m]
            )
            f1 = spectra[0]
            if theta2 is None:
                parts = [f1] if not components else [f1, np.zeros_like(f1)]
            else:
                # divided by the mixture's order mean (1 − c) + c q_m, so that the model has
                # unit mean whatever c and q: the flat prior on the continuum coefficients
                # (and so the marginalisation term ln det) does not depend on the model scale
                f2 = spectra[1]
                scale = 1.0 / ((1.0 - c) + c * q[m])
                w1, w2 = (1.0 - c) * scale, c * q[m] * scale
                parts = [w1 * f1 + w2 * f2] if not components else [w1 * f1, w2 * f2]
            out.append([order.broaden_shift(f, transfer, factor, wl) for f in parts])
        return out, q

    def _rotation(self, freq, vsini):
        """Rotational transfer function, linearly interpolated in a fine table of u = 2π v s.

        The table step (0.004 in u) keeps the interpolation error below 1e-6.
        """
        if vsini < 0:
            raise ParameterError(f"vsini={vsini!r} km/s must be >= 0")
        u = (2.0 * np.pi * vsini) * freq
        table = getattr(self, "_rot_table", None)
        if table is None or u[-1] > table[0][-1]:
            u_max = (
                max(float(u[-1]), 2.0 * np.pi * self.config_.vsini_bounds[1] * float(freq[-1]))
                * 1.01
                + 1.0
            )
            grid_u = np.arange(0.0, u_max + 0.004, 0.004)
            table = (
                grid_u,
                rotational_transfer(
                    grid_u, 1.0 / (2.0 * np.pi), limb_darkening=self.config_.limb_darkening
                ),
            )
            self._rot_table = table
        return np.interp(u, table[0], table[1])

    def _continuum_solve(self, order, model):
        a = order.basis * model[:, None]
        aw = a * order.w[:, None]
        ata = aw.T @ a
        atb = aw.T @ order.y
        try:
            chol = np.linalg.cholesky(ata)
        except np.linalg.LinAlgError:
            return None, np.inf, np.inf
        coef = np.linalg.solve(ata, atb)
        resid = order.y - a @ coef
        chi2 = float(np.sum(order.w * resid * resid))
        logdet = 2.0 * float(np.sum(np.log(np.diag(chol))))
        return coef, chi2, logdet

    def _objective(self, p):
        """−ln posterior (up to a constant), continuum marginalised; and χ²."""
        models, _ = self._raw_models(p)
        total, chi2_total = 0.0, 0.0
        for order, (model,) in zip(self._orders, models, strict=True):
            _, chi2, logdet = self._continuum_solve(order, model)
            total += 0.5 * (chi2 + logdet)
            chi2_total += chi2
        return total, chi2_total

    def _nll(self, p) -> float:
        return self._objective(p)[0]

    def _in_bounds(self, p) -> bool:
        b = self._bounds
        if np.any(p < b[:, 0]) or np.any(p > b[:, 1]):
            return False
        return self._i_t2 is None or p[self._i_t2] < p[self._i_t1]

    # ------------------------------------------------------------------ optimiser coordinates
    def _to_unit(self, p):
        b = self._bounds
        width = b[:, 1] - b[:, 0]
        u = (p - b[:, 0]) / np.where(width > 0, width, 1.0)
        if self._i_t2 is not None:
            tmin = b[self._i_t2, 0]
            span = p[self._i_t1] - tmin
            u[self._i_t2] = (p[self._i_t2] - tmin) / span if span > 0 else 0.0
        return np.clip(u, 0.0, 1.0)

    def _from_unit(self, u):
        b = self._bounds
        p = b[:, 0] + np.clip(u, 0.0, 1.0) * (b[:, 1] - b[:, 0])
        if self._i_t2 is not None:
            tmin = b[self._i_t2, 0]
            p[self._i_t2] = tmin + np.clip(u[self._i_t2], 0.0, 1.0) * (p[self._i_t1] - tmin)
        return p

    def _residuals(self, p, offset):
        """Residual vector whose squared norm is 2 × (−ln posterior) + ``offset``.

        Normalised residuals √w (y − model · continuum) of every order (continuum at its
        best coefficients: variable projection), then one entry √(Σ ln det + offset)
        that carries the continuum-marginalisation term.
        """
        models, _ = self._raw_models(p)
        parts, logdet = [], 0.0
        for order, (model,) in zip(self._orders, models, strict=True):
            a = order.basis * model[:, None]
            coef, _, ld = self._continuum_solve(order, model)
            if coef is None:  # degenerate model (e.g. all zero): a large, finite penalty
                parts.append(np.sqrt(order.w) * order.y * 1e3)
                continue
            parts.append(np.sqrt(order.w) * (order.y - a @ coef))
            logdet += ld
        parts.append(np.array([np.sqrt(max(logdet + offset, 1e-12))]))
        return np.concatenate(parts)

    def _minimize(self, p0, *, max_nfev=None, fixed=()):
        """Trust-region Gauss-Newton (scipy ``least_squares``, "trf") in the unit box.

        The −ln posterior is a sum of squares (χ² with the continuum projected out, plus
        the marginalisation term), so a Gauss-Newton method sees its curvature: it
        follows the long, narrow valleys of the posterior (T₁–log g–[Fe/H]–c, where
        the χ² changes by < 1 over 100 K) to the minimum, where quasi-Newton methods
        with finite-difference gradients stop early. T₂ < T₁ is built into the unit
        coordinates, the box bounds are handled by the trust region. Parameters whose
        indices are in ``fixed`` stay at their values in ``p0``.
        """
        lim = np.ones(p0.size)
        if self._i_t2 is not None:
            lim[self._i_t2] = 1.0 - 1e-6  # u_T2 = 1 would mean T2 = T1
        _, _, ld0 = zip(
            *(
                self._continuum_solve(o, m[0])
                for o, m in zip(self._orders, self._raw_models(p0)[0], strict=True)
            ),
            strict=True,
        )
        finite = [v for v in ld0 if np.isfinite(v)]
        offset = max(0.0, -sum(finite)) + 100.0

        u0 = np.minimum(self._to_unit(p0), lim)
        free = self._bounds[:, 1] > self._bounds[:, 0]  # single-node grid axes stay fixed
        free[list(fixed)] = False

        def fun(x):
            u = u0.copy()
            u[free] = x
            return self._residuals(self._from_unit(u), offset)

        res = optimize.least_squares(
            fun,
            u0[free],
            bounds=(np.zeros(int(free.sum())), lim[free]),
            method="trf",
            x_scale="jac",
            diff_step=1e-7,
            xtol=1e-10,
            ftol=1e-12,
            gtol=1e-10,
            max_nfev=max_nfev or self.config_.maxiter,
        )
        u = u0.copy()
        u[free] = res.x
        p = self._from_unit(u)
        # status 0: max_nfev reached; > 0: a convergence criterion was met
        return p, self._nll(p), bool(res.status > 0)

    # ------------------------------------------------------------------ initialisation
    def _initial_single(self):
        grid = self.grid
        b = self._bounds
        centre = np.array([a[(a.size - 1) // 2] for a in grid.axes])
        p = np.empty(len(self._names))
        p[self._idx1] = centre
        if self._idx2 is not None:
            p[self._idx2] = centre
            p[self._i_t2] = grid.axes[grid.names.index(self._teff_name)][0]
            p[self._i_c] = 0.0
        p[self._i_vsini] = np.clip(10.0, *b[self._i_vsini])
        p[self._i_rv] = np.clip(0.0, *b[self._i_rv])
        step = max(1.0, 2.0 * float(np.expm1(self._orders[0].dx)) * C_KMS)
        rvs = np.arange(b[self._i_rv, 0], b[self._i_rv, 1] + step / 2, step)

        def scan(index, values, p):
            best, best_v = np.inf, p[index]
            for v in values:
                q = p.copy()
                q[index] = v
                f = self._nll(q)
                if f < best:
                    best, best_v = f, v
            p = p.copy()
            p[index] = best_v
            return p

        p = scan(self._i_rv, rvs, p)
        # coordinate-wise scan of the grid nodes: Teff, then the others, then Teff again
        t = grid.names.index(self._teff_name)
        others = [k for k in range(grid.n_dim) if k != t]
        for dims in ([t], others, [t]):
            best, best_node = np.inf, None
            for combo in itertools.product(*(grid.axes[k] for k in dims)):
                q = p.copy()
                q[self._idx1[dims]] = combo
                f = self._nll(q)
                if f < best:
                    best, best_node = f, combo
            p[self._idx1[dims]] = best_node
        vs = [
            v
            for v in (0.0, 2.0, 5.0, 10.0, 20.0, 40.0, 70.0)
            if b[self._i_vsini, 0] <= v <= b[self._i_vsini, 1]
        ]
        p = scan(self._i_vsini, vs or [b[self._i_vsini].mean()], p)
        fine = p[self._i_rv] + np.arange(-3 * step, 3 * step + 1e-9, step / 4)
        p = scan(self._i_rv, np.clip(fine, *b[self._i_rv]), p)
        return p

    # ------------------------------------------------------------------ public API
    def fit(self, wavelength, flux, sigma, *, orders=None, rng=None, trim=False):
        """Fit the model to an observed spectrum (maximum a posteriori).

        Parameters
        ----------
        wavelength : array_like, shape (n_pix,)
            Observed wavelengths (Å), strictly increasing within each order.
        flux : array_like, shape (n_pix,)
            Observed flux, any units (the Chebyshev continuum absorbs scale and shape).
        sigma : array_like, shape (n_pix,)
            1σ noise of ``flux``, > 0; ``inf`` masks a pixel.
        orders : array_like of int, shape (n_pix,), optional
            Spectral order (chunk) of each pixel; default: one order.
        rng : numpy.random.Generator or int, optional
            Seeds the jittered extra starting points of the optimiser.
        trim : bool
            If the grid does not extend beyond the data by the RV + v sin i margin, fit
            the pixels of the largest range it supports (logged; recorded in
            :attr:`trimmed_` and :attr:`fitted_pixels_`) instead of raising
            :class:`~skyscene.errors.ParameterError`.

        Returns
        -------
        self
        """
        t0 = time.perf_counter()
        rng = np.random.default_rng(rng)
        self._setup(wavelength, flux, sigma, orders, trim=trim)
        p_single = self._initial_single()
        self._p_single = p_single
        starts = [p_single]
        if self.n_components == 2:
            starts = self._mixture_starts(p_single, rng)
        best = None
        for p0 in starts:  # short runs from every start, then a full run from the best
            p, f, ok = self._minimize(p0, max_nfev=self.config_.maxiter if len(starts) == 1 else 40)
            log.debug("start %s -> %s (%.3f)", np.round(p0, 3), np.round(p, 3), f)
            if best is None or f < best[1]:
                best = (p, f, ok)
        p, f, ok = self._minimize(best[0])
        if self.n_components == 2:
            p, ok = self._prefer_nested(p, f, ok, starts[0])
        if not ok:
            import warnings

            warnings.warn(
                f"{type(self).__name__}: the optimiser did not report convergence",
                ConvergenceWarning,
                stacklevel=2,
            )
        self._p_map = p
        cov = self._covariance(p)
        self.covariance_ = cov
        self._set_result(p, np.sqrt(np.diag(cov)), method="map", converged=ok)
        self.fit_time_ = time.perf_counter() - t0
        log.info("%s fit in %.1f s: %s", type(self).__name__, self.fit_time_, self._summary())
        return self

    def _prefer_nested(self, p, f, ok, p_start):
        """Report c = 0 when the mixture is no better than its one-component limit.

        A one-component spectrum has several equivalent mixture optima: c = 0 (T₂ free),
        c = 1 (all flux from component 2, the hotter component 1 invisible) and T₂ = T₁
        (c free); the optimiser may end on any of them, with improvements of χ² from
        fitting noise alone (~χ² with 2 degrees of freedom). The c = 0 representation is
        kept when the mixture improves 2 Δ(−ln p) by less than ``_NESTED_DCHI2`` (= 2):
        θ₁ fitted with c = 0, θ₂ at the best grid start's, so c is reported as 0 ± σ_c.
        """
        nested = p_start.copy()
        nested[self._i_c] = 0.0
        nested[self._idx1] = self._p_single[self._idx1]
        own2 = [i for i in self._idx2 if i not in set(self._idx1.tolist())]
        q, f_nested, ok_nested = self._minimize(nested, fixed=[self._i_c, *own2])
        log.debug("mixture -ln p %.3f, c = 0 limit %.3f", f, f_nested)
        if 2.0 * (f_nested - f) < _NESTED_DCHI2:
            return q, ok_nested
        return p, ok

    def _mixture_starts(self, p_single, rng):
        grid = self.grid
        t_axis = grid.axes[grid.names.index(self._teff_name)]
        t1 = p_single[self._i_t1]
        cand = []
        for t2 in t_axis[t_axis < t1]:
            for c in (0.1, 0.3, 0.5):
                p = p_single.copy()
                p[self._idx2] = p_single[self._idx1]
                p[self._i_t2] = t2
                p[self._i_c] = c
                cand.append((self._nll(p), p))
        if not cand:  # T1 at the lowest node: start from a slightly hotter primary
            p = p_single.copy()
            p[self._idx2] = p_single[self._idx1]
            p[self._i_t1] = min(t_axis[1], self._bounds[self._i_t1, 1]) if t_axis.size > 1 else t1
            p[self._i_c] = 0.05
            cand.append((self._nll(p), p))
        cand.sort(key=lambda x: x[0])
        starts = [p for _, p in cand[: max(1, self.config_.n_starts)]]
        # one jittered start around the best candidate
        u = self._to_unit(starts[0]) + rng.normal(0.0, 0.05, starts[0].size)
        starts.append(self._from_unit(np.clip(u, 0.0, 1.0 - 1e-6)))
        return starts

    def _covariance(self, p):
        """Gauss-Newton covariance of the non-linear parameters, continuum marginalised.

        The Jacobian of the model with respect to the non-linear parameters (central
        differences) and the Chebyshev coefficients (exact) gives the Fisher matrix;
        a weak Gaussian prior of width equal to each parameter's range keeps
        unconstrained directions (e.g. T₂ when c = 0) finite. The inverse's non-linear
        block is the covariance marginalised over the continuum.
        """
        models, _ = self._raw_models(p)
        coefs = []
        for order, (model,) in zip(self._orders, models, strict=True):
            coefs.append(self._continuum_solve(order, model)[0])
        n_nl = p.size
        k = self.config_.continuum_degree + 1
        n_tot = n_nl + k * len(self._orders)
        fisher = np.zeros((n_tot, n_tot))
        eval_lo = self._bounds[:, 0].copy()
        eval_hi = self._bounds[:, 1].copy()
        if self._i_c is not None:
            eval_lo[self._i_c], eval_hi[self._i_c] = -1.0, 2.0  # c enters linearly
        eval_lo[self._i_rv], eval_hi[self._i_rv] = -np.inf, np.inf
        eval_hi[self._i_vsini] = np.inf
        derivs = []
        for j in range(n_nl):
            h = _FD_STEP.get(self._kinds[j], _FD_STEP_DEFAULT)
            hi_p, lo_p = p.copy(), p.copy()
            hi_p[j] = min(p[j] + h, eval_hi[j])
            lo_p[j] = max(p[j] - h, eval_lo[j])
            if hi_p[j] == lo_p[j]:  # a grid axis with a single node: fixed parameter
                derivs.append([np.zeros(o.wl.size) for o in self._orders])
                continue
            m_hi, _ = self._raw_models(hi_p)
            m_lo, _ = self._raw_models(lo_p)
            derivs.append(
                [(a[0] - b[0]) / (hi_p[j] - lo_p[j]) for a, b in zip(m_hi, m_lo, strict=True)]
            )
        for m, (order, (model,)) in enumerate(zip(self._orders, models, strict=True)):
            cont = order.basis @ coefs[m]
            jac = np.zeros((order.wl.size, n_tot))
            for j in range(n_nl):
                jac[:, j] = derivs[j][m] * cont
            jac[:, n_nl + k * m : n_nl + k * (m + 1)] = order.basis * model[:, None]
            fisher += (jac * order.w[:, None]).T @ jac
        span = self._bounds[:, 1] - self._bounds[:, 0]
        if self._i_t2 is not None:
            span[self._i_t2] = max(p[self._i_t1] - self._bounds[self._i_t2, 0], 1.0)
        free = np.concatenate([span > 0, np.ones(n_tot - n_nl, dtype=bool)])
        fisher[np.arange(n_nl)[span > 0], np.arange(n_nl)[span > 0]] += 1.0 / span[span > 0] ** 2
        cov = np.zeros((n_tot, n_tot))
        sub = fisher[np.ix_(free, free)]
        d = np.sqrt(np.diag(sub))  # Jacobi scaling: the raw matrix spans > 15 decades
        cov[np.ix_(free, free)] = np.linalg.pinv(sub / np.outer(d, d), hermitian=True) / np.outer(
            d, d
        )
        cov = cov[:n_nl, :n_nl]
        return 0.5 * (cov + cov.T)

    def _set_result(self, p, err, *, method, converged):
        models, q = self._raw_models(p)
        coefs, chi2 = [], 0.0
        for order, (model,) in zip(self._orders, models, strict=True):
            coef, c2, _ = self._continuum_solve(order, model)
            coefs.append(coef)
            chi2 += c2
        n_params = p.size + len(self._orders) * (self.config_.continuum_degree + 1)
        self.result_ = SpectralFit(
            names=self._names,
            values=np.asarray(p, dtype=float).copy(),
            errors=np.asarray(err, dtype=float).copy(),
            chi2=chi2,
            n_data=self.n_data_,
            n_params=n_params,
            bic=chi2 + n_params * np.log(self.n_data_),
            method=method,
            converged=converged,
            continuum=coefs,
            q=np.ones(len(self._orders)) if q is None else np.asarray(q),
        )
        theta1, theta2, c, vsini, rv = self._split(p)
        e1, e2, ec, ev, er = self._split(np.asarray(err, dtype=float))
        self.parameter_names_ = self.grid.names
        self.theta1_, self.theta1_err_ = np.array(theta1), np.array(e1)
        self.theta2_ = None if theta2 is None else np.array(theta2)
        self.theta2_err_ = None if e2 is None else np.array(e2)
        self.c_, self.c_err_ = c, (ec if self._i_c is not None else 0.0)
        self.vsini_, self.vsini_err_ = vsini, ev
        self.rv_, self.rv_err_ = rv, er
        self.continuum_ = coefs
        self.q_ = self.result_.q
        self.chi2_ = chi2
        self.n_params_ = n_params
        self.bic_ = self.result_.bic
        self.log_likelihood_ = -0.5 * chi2
        self.converged_ = converged

    def _summary(self) -> str:
        parts = [
            f"{n}={v:.4g}±{e:.2g}"
            for n, v, e in zip(self._names, self.result_.values, self.result_.errors, strict=True)
        ]
        return ", ".join(parts) + f", chi2={self.chi2_:.1f}/{self.n_data_}"

    def _check_fitted(self):
        if not hasattr(self, "result_"):
            raise ParameterError(f"{type(self).__name__} is not fitted; call fit() first")

    def _assign_orders(self, wavelength, orders):
        wl = np.asarray(wavelength, dtype=float)
        if orders is not None:
            labels = np.asarray(orders)
            if labels.shape != wl.shape:
                raise DataError(
                    f"mismatched lengths: orders has {labels.size}, wavelength {wl.size}"
                )
            unknown = set(np.unique(labels).tolist()) - set(self.orders_.tolist())
            if unknown:
                raise ParameterError(
                    f"orders {sorted(unknown)} were not fitted (fitted: {self.orders_.tolist()})"
                )
            return wl, np.searchsorted(self.orders_, labels)
        pos = np.full(wl.shape, -1)
        for m, (lo, hi) in enumerate(self._ranges):
            pos[(pos < 0) & (wl >= lo) & (wl <= hi)] = m
        if np.any(pos < 0):
            i = int(np.flatnonzero(pos < 0)[0])
            raise ParameterError(
                f"wavelength[{i}]={float(wl[i])!r} Å is outside the fitted orders {self._ranges}"
            )
        return wl, pos

    def predict_components(self, wavelength, *, orders=None) -> SpectrumPrediction:
        """Model flux, its two components and the continuum at ``wavelength`` (Å)."""
        self._check_fitted()
        wl, pos = self._assign_orders(wavelength, orders)
        p = self.result_.values
        wls = [wl[pos == m] for m in range(len(self._orders))]
        models, _ = self._raw_models(p, components=True, wavelengths=wls)
        total = np.empty(wl.size)
        comp1, comp2, cont = np.empty(wl.size), np.empty(wl.size), np.empty(wl.size)
        for m, order in enumerate(self._orders):
            sel = pos == m
            if not sel.any():
                continue
            cm = order.chebyshev(wl[sel]) @ self.result_.continuum[m]
            comp1[sel] = models[m][0] * cm
            comp2[sel] = models[m][1] * cm
            total[sel] = comp1[sel] + comp2[sel]
            cont[sel] = cm
        return SpectrumPrediction(
            wavelength=wl,
            order=self.orders_[pos],
            total=total,
            component1=comp1,
            component2=comp2,
            continuum=cont,
        )

    def predict(self, wavelength, *, orders=None) -> np.ndarray:
        """Model flux at ``wavelength`` (Å), continuum included; shape like ``wavelength``."""
        return self.predict_components(wavelength, orders=orders).total

    def evaluate(self, params: Sequence[float]) -> list[np.ndarray]:
        """Model (before the continuum) of each fitted order at the data pixels for ``params``.

        ``params`` follows :attr:`result_` ``.names``; used by the benchmark.
        """
        if not hasattr(self, "_orders"):
            raise ParameterError(f"{type(self).__name__} is not set up; call fit() first")
        return [m[0] for m in self._raw_models(np.asarray(params, dtype=float))[0]]

    def sample(
        self,
        *,
        n_walkers: int | None = None,
        n_steps: int = 1000,
        burn: int | None = None,
        rng=None,
        progress: bool = False,
    ):
        """Sample the posterior with emcee (Foreman-Mackey et al. 2013) around the MAP.

        Flat priors inside the grid and the bounds, T₂ < T₁, continuum marginalised.
        Afterwards the fitted attributes hold posterior medians and standard
        deviations, :attr:`samples_` the flattened chain after ``burn`` steps.

        Returns
        -------
        self
        """
        from skyscene.errors import require

        emcee = require("emcee", "spectra")
        self._check_fitted()
        rng = np.random.default_rng(rng)
        p_map = self._p_map
        free = self._bounds[:, 1] > self._bounds[:, 0]  # single-node grid axes stay fixed
        ndim = int(free.sum())
        n_walkers = n_walkers or max(16, 2 * ndim + 2)
        if n_walkers < 2 * ndim:
            raise ParameterError(f"n_walkers={n_walkers} must be >= 2 * {ndim} parameters")
        burn = n_steps // 2 if burn is None else burn
        if not 0 <= burn < n_steps:
            raise ParameterError(f"burn={burn!r} must be in [0, n_steps={n_steps})")
        # walkers drawn from the Gauss-Newton covariance (correlations included): they start
        # spread along the long T₁–log g–[Fe/H]–c valley instead of in a small ball
        cov = self.covariance_[np.ix_(free, free)]
        floor = 1e-4 * (self._bounds[:, 1] - self._bounds[:, 0])[free]
        cov = cov + np.diag(floor**2)
        try:
            chol = np.linalg.cholesky(cov)
        except np.linalg.LinAlgError:
            chol = np.diag(np.sqrt(np.clip(np.diag(cov), 0, None)))

        def full(x):
            p = p_map.copy()
            p[free] = x
            return p

        start = []
        for k in range(1000 * n_walkers):
            shrink = 0.5 ** (k // (100 * n_walkers))  # near a bound, try smaller draws
            x = p_map[free] + shrink * (chol @ rng.normal(0.0, 1.0, ndim))
            if self._in_bounds(full(x)):
                start.append(x)
            if len(start) == n_walkers:
                break
        else:
            raise ParameterError(
                "could not place the emcee walkers inside the prior around the MAP"
            )

        def log_prob(x):
            p = full(x)
            if not self._in_bounds(p):
                return -np.inf
            return -self._nll(p)

        sampler = emcee.EnsembleSampler(n_walkers, ndim, log_prob)
        sampler.random_state = np.random.RandomState(int(rng.integers(2**31))).get_state()
        sampler.run_mcmc(np.array(start), n_steps, progress=progress)
        chain = np.tile(p_map, (n_walkers * (n_steps - burn), 1))
        chain[:, free] = sampler.get_chain(discard=burn, flat=True)
        self.samples_ = chain
        self.acceptance_fraction_ = float(np.mean(sampler.acceptance_fraction))
        med = np.median(chain, axis=0)
        std = np.std(chain, axis=0)
        self._set_result(med, std, method="emcee", converged=self.converged_)
        return self


class MixtureModel(_SpectrumModel):
    """Two-component (star + spots, or unresolved binary) spectral model, scikit-learn style.

    scikit-learn's estimator contract: the parameters are stored unmodified
    (:meth:`get_params`/:meth:`set_params` follow the signature, :func:`clone` copies);
    :meth:`fit` validates them into :attr:`config_` (:class:`SpectralFitConfig`, the same
    checks and messages) and returns ``self``; the fitted attributes end in ``_``.
    :meth:`from_config` builds the model from a config.

    Parameters
    ----------
    grid : SpectralGrid
        Regular grid with a temperature axis (Teff); raw, unbroadened-by-rotation spectra
        sampled uniformly in ln λ (else resampled).
    resolution : float or None
        Instrumental resolving power R (Gaussian line-spread function, fixed);
        None if the grid is already at the instrument's resolution.
    continuum_degree : int
        Degree of the Chebyshev polynomial per order (analytically marginalised).
    shared : sequence of str
        Grid parameters common to both components (default log g and [Fe/H], the
        spotted-star case; ``()`` for an unresolved binary).
    vsini_bounds, rv_bounds : tuple of float
        Flat-prior ranges (km/s).
    flux_ratio : {"grid", "pairs"}
        q_m approach (:mod:`skyscene.spectra.fluxratio`); "grid" is faster and more accurate.
    interpolation : {"emulator", "linear"}
        How grid spectra are obtained between nodes: "emulator" (default,
        :class:`~skyscene.spectra.emulator.SpectralEmulator`: ln-flux eigenspectra with
        cubic-spline weights in 1/Teff, log g, [Fe/H]; error ~1e-5 of the flux on the
        default toy grid) or "linear" (multilinear interpolation of the normalised grid
        spectra, error ~0.1–1 %; kept as a reference — it biases fits at S/N ≳ 50).
    emulator_tolerance : float
        Largest error of ln F at the nodes allowed by the eigenspectrum truncation.
    teff_boundary : {"not-a-knot", "natural"}
        End condition of the emulator's and the mean flux's cubic splines along 1/Teff:
        "not-a-knot" (default) or "natural" (zero curvature at the end nodes).
    feh_coordinate : {"abundance", "dex"}
        Spline coordinate of the metallicity axis of the emulator and of ln s_m:
        "abundance" (default), 10^[Fe/H], in which line opacities and so ln F of the
        lines are linear; "dex", [Fe/H] itself (the former behaviour; on the coarse
        [Fe/H] steps of the independent grids of issue 15 it biased the fitted [Fe/H],
        not c or the temperatures; docs/spectra.md).
    limb_darkening : float
        ε of the rotational profile.
    n_starts : int
        Number of optimiser starts from the best (T₂, c) grid candidates (+1 jittered).
    maxiter : int
        Limit on the residual evaluations of the final trust-region Gauss-Newton run
        (scipy ``least_squares``; the short runs from each start use 40).

    Attributes
    ----------
    config_ : SpectralFitConfig
        The validated parameters (``config_.to_dict()`` is what outputs record).
    fitted_pixels_ : ndarray of bool (n_pix,)
        The pixels fitted (all but those left out by ``fit(..., trim=True)``).
    trimmed_ : TrimmedRange or None
        What ``trim=True`` left out (None without it).
    emulator_ : SpectralEmulator or None
        The emulator of ``grid_`` used (None with ``interpolation="linear"``).
    grid_ : SpectralGrid
        The grid the fit used: ``grid``, or its ln λ-uniform resampling
        (:meth:`SpectralGrid.log_uniform`, computed once per grid).
    theta1_, theta2_ : ndarray (n_dim,)
        Parameters of the hotter and the cooler component (order of ``parameter_names_``).
    theta1_err_, theta2_err_ : ndarray (n_dim,)
        Their 1σ uncertainties.
    c_, c_err_ : float
        Filling factor of component 2 and its uncertainty.
    vsini_, vsini_err_, rv_, rv_err_ : float
        Shared projected rotation and radial velocity (km/s).
    q_ : ndarray (n_orders,)
        Flux ratio per order at the best fit.
    continuum_ : list of ndarray
        Chebyshev coefficients per order (domain: each order's wavelength range).
    chi2_, bic_, n_params_, n_data_, log_likelihood_ : float or int
        Fit statistics for model comparison (:func:`compare_models`).
    covariance_ : ndarray
        MAP covariance of the free non-linear parameters (``result_.names``).
    result_ : SpectralFit
        Everything above as a result object.

    Notes
    -----
    Czekala et al. (2015), ApJ 812, 128, §2 and the "mixture model" of the Starfish
    documentation. The grid spectra come from an emulator (§2.3 of the paper, with
    cubic-spline rather than Gaussian-process weights; the emulator is built once per
    grid and cached, see :meth:`SpectralGrid.emulator`). The MAP is found with
    a trust-region Gauss-Newton method (the −ln posterior is a sum of squares, with the
    continuum projected out) from several starts chosen on the grid nodes; uncertainties
    come from the Gauss-Newton Hessian (:meth:`fit`) or from an emcee chain
    (:meth:`sample`). The model is divided by its order mean (1 − c) + c q_m, so the flat
    prior on the continuum coefficients does not depend on the model's scale. When the
    mixture is no better than its c = 0 limit (2 Δ(−ln p) < 2), c = 0 is reported: a
    one-component spectrum also fits c = 1 or T₂ = T₁ equally well.

    Examples
    --------
    >>> from skyscene.datasets.spectra import simulate_spectral_grid, simulate_spectrum
    >>> grid = simulate_spectral_grid(teff=tuple(range(3500, 5501, 250)), logg=(4.5,),
    ...                               feh=(0.0,), wavelength_range=(5300, 5700), n_wavelength=4096)
    >>> s = simulate_spectrum(theta1=(5200, 4.5, 0.0), theta2=(3800, 4.5, 0.0), c=0.3,
    ...                       wavelength_range=(5320, 5680), pixels_per_order=4096, rng=3)
    >>> model = MixtureModel(grid, resolution=30000, rv_bounds=(-50, 50), vsini_bounds=(0, 30))
    >>> model = model.fit(s.wavelength, s.flux, s.sigma, rng=0)
    >>> bool(abs(model.c_ - 0.3) < 0.03 and abs(model.theta2_[0] - 3800) < 100)
    True
    """

    n_components = 2

    def __init__(
        self,
        grid,
        *,
        resolution: float | None = None,
        continuum_degree: int = 2,
        shared: Sequence[str] = ("logg", "FeH"),
        vsini_bounds: tuple[float, float] = (0.0, 100.0),
        rv_bounds: tuple[float, float] = (-200.0, 200.0),
        flux_ratio: str = "grid",
        interpolation: str = "emulator",
        emulator_tolerance: float = 1e-6,
        teff_boundary: str = "not-a-knot",
        feh_coordinate: str = "abundance",
        limb_darkening: float = 0.6,
        n_starts: int = 3,
        maxiter: int = 500,
    ):
        self.grid = grid
        self.resolution = resolution
        self.continuum_degree = continuum_degree
        self.shared = shared
        self.vsini_bounds = vsini_bounds
        self.rv_bounds = rv_bounds
        self.flux_ratio = flux_ratio
        self.interpolation = interpolation
        self.emulator_tolerance = emulator_tolerance
        self.teff_boundary = teff_boundary
        self.feh_coordinate = feh_coordinate
        self.limb_darkening = limb_darkening
        self.n_starts = n_starts
        self.maxiter = maxiter


class SingleComponentModel(_SpectrumModel):
    """One-component spectral model with the interface of :class:`MixtureModel`.

    The parameters are those of :class:`MixtureModel` without ``shared`` and
    ``flux_ratio`` (and ``n_starts=1``). ``c_`` is 0 and ``theta2_`` is None; compare
    with a mixture fit by :func:`compare_models` (Δχ², ΔBIC).
    """

    n_components = 1

    def __init__(
        self,
        grid,
        *,
        resolution: float | None = None,
        continuum_degree: int = 2,
        vsini_bounds: tuple[float, float] = (0.0, 100.0),
        rv_bounds: tuple[float, float] = (-200.0, 200.0),
        interpolation: str = "emulator",
        emulator_tolerance: float = 1e-6,
        teff_boundary: str = "not-a-knot",
        feh_coordinate: str = "abundance",
        limb_darkening: float = 0.6,
        n_starts: int = 1,
        maxiter: int = 500,
    ):
        self.grid = grid
        self.resolution = resolution
        self.continuum_degree = continuum_degree
        self.vsini_bounds = vsini_bounds
        self.rv_bounds = rv_bounds
        self.interpolation = interpolation
        self.emulator_tolerance = emulator_tolerance
        self.teff_boundary = teff_boundary
        self.feh_coordinate = feh_coordinate
        self.limb_darkening = limb_darkening
        self.n_starts = n_starts
        self.maxiter = maxiter
