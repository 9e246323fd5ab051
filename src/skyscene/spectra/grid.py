"""Spectral grids: raw model spectra tabulated on a grid of stellar parameters.

The container and its processing (no file I/O). On disk a grid is an HDF5 file
(DESIGN.md, "Spectral grids"), read and written by :mod:`skyscene.io.spectral_grid`
(:meth:`SpectralGrid.read`, :meth:`~SpectralGrid.write` and
:meth:`~SpectralGrid.from_directory` call it).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from skyscene.errors import DataError, InputFileError, ParameterError
from skyscene.spectra.broadening import (
    C_KMS,
    broaden,
    check_wavelength,
    doppler_factor,
    is_log_uniform,
    log_lambda_grid,
    resample,
)

__all__ = ["SpectralGrid"]

log = logging.getLogger(__name__)


class _GridCache:
    """What a grid derives from its (immutable) data, computed on first use.

    Owned by one :class:`SpectralGrid` and read only through its methods (:meth:`cube
    <SpectralGrid.cube>`, :meth:`interpolator <SpectralGrid.interpolator>`,
    :meth:`emulator <SpectralGrid.emulator>`, :meth:`log_uniform
    <SpectralGrid.log_uniform>`); never pickled (rebuilt on demand after unpickling).
    """

    __slots__ = ("cube", "emulators", "interpolator", "log_uniform")

    def __init__(self) -> None:
        self.cube: np.ndarray | None = None
        self.interpolator = None
        self.emulators: dict[tuple[float, int | None, str, str], object] = {}
        self.log_uniform: SpectralGrid | None = None


class SpectralGrid:
    """Raw model spectra on a grid of stellar parameters.

    Parameters
    ----------
    wavelength : array_like, shape (n_wl,)
        Strictly increasing wavelengths in Å.
    parameters : array_like, shape (n_grid, n_dim)
        Parameters of each spectrum, e.g. (Teff [K], log g [cgs dex], [Fe/H] [dex]).
    flux : array_like, shape (n_grid, n_wl)
        Raw flux (any unit, e.g. erg/s/cm²/cm for PHOENIX), finite and positive.
    names : sequence of str
        Parameter names, one per column of ``parameters``.
    meta : dict, optional
        Provenance (JSON-serialisable), written to the file.

    Notes
    -----
    The grid is immutable: the processing methods (:meth:`truncate`, :meth:`resample`,
    :meth:`broaden`, :meth:`shift`) return new grids. A *regular* grid (the full
    Cartesian product of :attr:`axes`) can be interpolated (:meth:`spectrum`) and
    fitted by :class:`~skyscene.spectra.MixtureModel`.

    Examples
    --------
    >>> import numpy as np
    >>> grid = SpectralGrid(np.array([5000.0, 5001.0]), [[4000.0], [4500.0]],
    ...                     np.array([[1.0, 2.0], [3.0, 4.0]]), names=["Teff"])
    >>> grid.spectrum([4250.0]).tolist()
    [2.0, 3.0]
    """

    def __init__(self, wavelength, parameters, flux, *, names: Sequence[str], meta=None):
        wl = check_wavelength(wavelength)
        params = np.atleast_2d(np.asarray(parameters, dtype=float))
        flux = np.asarray(flux)
        names = tuple(str(n) for n in names)
        if params.shape[1] != len(names):
            raise DataError(
                f"parameters has {params.shape[1]} columns but {len(names)} names {names}"
            )
        if len(set(names)) != len(names):
            raise DataError(f"parameter names must be unique, got {names}")
        if flux.ndim != 2 or flux.shape != (params.shape[0], wl.size):
            raise DataError(
                f"flux has shape {flux.shape}, expected (n_grid, n_wl) = "
                f"({params.shape[0]}, {wl.size}) (mismatched lengths)"
            )
        if not np.all(np.isfinite(params)):
            raise DataError("parameters contain non-finite values")
        if not np.all(np.isfinite(flux)) or np.any(flux <= 0):
            bad = int(np.flatnonzero(~(np.isfinite(flux) & (flux > 0)).all(axis=1))[0])
            raise DataError(
                f"flux of grid point {dict(zip(names, params[bad].tolist(), strict=True))} "
                "has non-finite or non-positive values"
            )
        keys = [tuple(p) for p in params.tolist()]
        if len(set(keys)) != len(keys):
            raise DataError("parameters contain duplicate grid points")
        self.wavelength = wl
        self.parameters = params
        self.flux = flux
        self.names = names
        self.meta = dict(meta or {})
        for arr in (self.wavelength, self.parameters, self.flux):
            arr.flags.writeable = False
        self._cache = _GridCache()

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        del state["_cache"]  # derived data: rebuilt on first use
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        for arr in (self.wavelength, self.parameters, self.flux):
            arr.flags.writeable = False
        self._cache = _GridCache()

    def clear_cache(self) -> None:
        """Forget the derived objects (cube, interpolator, emulators, ln λ resampling)."""
        self._cache = _GridCache()

    # ------------------------------------------------------------------ structure
    @property
    def n_grid(self) -> int:
        """Number of grid points (spectra)."""
        return self.parameters.shape[0]

    @property
    def n_dim(self) -> int:
        """Number of parameters."""
        return self.parameters.shape[1]

    @property
    def n_wavelength(self) -> int:
        """Number of wavelengths."""
        return self.wavelength.size

    @property
    def axes(self) -> tuple[np.ndarray, ...]:
        """Sorted unique values of each parameter."""
        return tuple(np.unique(self.parameters[:, k]) for k in range(self.n_dim))

    @property
    def is_regular(self) -> bool:
        """Whether the grid is the full Cartesian product of :attr:`axes`."""
        return self.n_grid == int(np.prod([a.size for a in self.axes]))

    def _cube_order(self) -> np.ndarray:
        if not self.is_regular:
            shape = tuple(a.size for a in self.axes)
            raise ParameterError(
                f"the grid is not regular: {self.n_grid} points but the axes {self.names} "
                f"span {int(np.prod(shape))} = {' x '.join(map(str, shape))} combinations"
            )
        idx = [np.searchsorted(a, self.parameters[:, k]) for k, a in enumerate(self.axes)]
        flat = np.ravel_multi_index(idx, tuple(a.size for a in self.axes))
        order = np.empty(self.n_grid, dtype=np.int64)
        order[flat] = np.arange(self.n_grid)
        return order

    def cube(self) -> np.ndarray:
        """Flux reshaped to (n_1, ..., n_d, n_wl) along :attr:`axes` (regular grids only)."""
        cube = self._cache.cube
        if cube is None:
            order = self._cube_order()
            shape = tuple(a.size for a in self.axes)
            cube = np.asarray(self.flux, dtype=float)[order].reshape((*shape, self.n_wavelength))
            cube.flags.writeable = False
            self._cache.cube = cube
        return cube

    def index(self, params: Sequence[float]) -> int:
        """Row of the grid point with exactly these parameters (ParameterError if none)."""
        p = np.asarray(params, dtype=float)
        hit = np.flatnonzero(np.all(self.parameters == p, axis=1))
        if hit.size == 0:
            raise ParameterError(
                f"{dict(zip(self.names, p.tolist(), strict=True))} is not a grid point"
            )
        return int(hit[0])

    def spectrum(self, params: Sequence[float], *, method: str = "linear") -> np.ndarray:
        """Raw flux at any parameters inside the grid.

        Parameters
        ----------
        params : sequence of float
            One value per grid parameter.
        method : {"linear", "emulator"}
            Multilinear interpolation of the raw flux (default), or the spectral
            emulator (:meth:`emulator`: ln-flux eigenspectra with cubic-spline weights,
            far more accurate between nodes; built once, cached).

        Raises
        ------
        ParameterError
            If a parameter is outside the grid range (never returns NaN).
        """
        if method == "emulator":
            return self.emulator()(params)
        if method != "linear":
            raise ParameterError(
                f"method={method!r}: choose 'linear' or 'emulator'", name="method", value=method
            )
        return self.interpolator()(params)

    def interpolator(self):
        """The multilinear :class:`~skyscene.spectra.interpolate.SpectrumInterpolator` (cached).

        Built on first use (regular grids only) and returned by later calls.
        """
        if self._cache.interpolator is None:
            from skyscene.spectra.interpolate import SpectrumInterpolator

            self._cache.interpolator = SpectrumInterpolator(self)
        return self._cache.interpolator

    def emulator(
        self,
        *,
        tolerance: float = 1e-6,
        max_components: int | None = None,
        teff_boundary: str = "not-a-knot",
        feh_coordinate: str = "abundance",
    ):
        """The :class:`~skyscene.spectra.emulator.SpectralEmulator` of this grid (cached).

        Built on first use (one SVD of the ln-flux matrix, seconds for ~700 × 16384)
        and returned by later calls with the same settings.
        """
        key = (float(tolerance), max_components, teff_boundary, feh_coordinate)
        emulators = self._cache.emulators
        if key not in emulators:
            from skyscene.spectra.emulator import SpectralEmulator

            emulators[key] = SpectralEmulator(
                self,
                tolerance=tolerance,
                max_components=max_components,
                teff_boundary=teff_boundary,
                feh_coordinate=feh_coordinate,
            )
        return emulators[key]

    def log_uniform(self, *, rtol: float = 1e-6) -> SpectralGrid:
        """This grid if its wavelengths are uniform in ln λ (to ``rtol``), else a resampling.

        The resampling (linear, onto a ln λ grid of step :attr:`sampling_kms`) is computed
        once and returned by later calls, so that its emulator is built only once.
        """
        if is_log_uniform(self.wavelength, rtol=rtol):
            return self
        if self._cache.log_uniform is None:
            self._cache.log_uniform = self.resample(dv=self.sampling_kms)
        return self._cache.log_uniform

    def __repr__(self) -> str:
        ranges = ", ".join(
            f"{n}=[{a[0]:g}..{a[-1]:g}]x{a.size}"
            for n, a in zip(self.names, self.axes, strict=True)
        )
        return (
            f"SpectralGrid({self.n_grid} spectra, {ranges}, "
            f"{self.n_wavelength} wavelengths {self.wavelength[0]:g}-{self.wavelength[-1]:g} Å)"
        )

    # ------------------------------------------------------------------ processing
    def _replace(self, wavelength, flux, **meta) -> SpectralGrid:
        return SpectralGrid(
            wavelength, self.parameters, flux, names=self.names, meta={**self.meta, **meta}
        )

    def truncate(self, wl_min: float, wl_max: float) -> SpectralGrid:
        """Keep the wavelengths in [wl_min, wl_max] (Å)."""
        keep = (self.wavelength >= wl_min) & (self.wavelength <= wl_max)
        if keep.sum() < 2:
            raise ParameterError(
                f"wavelength range [{wl_min:g}, {wl_max:g}] Å keeps fewer than 2 of the grid "
                f"wavelengths [{self.wavelength[0]:g}, {self.wavelength[-1]:g}]"
            )
        return self._replace(
            self.wavelength[keep], self.flux[:, keep], wavelength_range=[wl_min, wl_max]
        )

    def resample(self, wavelength=None, *, dv: float | None = None) -> SpectralGrid:
        """Linearly resample onto ``wavelength``, or onto a ln λ grid of step ``dv`` km/s."""
        if (wavelength is None) == (dv is None):
            raise ParameterError("resample: give exactly one of wavelength= or dv=")
        if wavelength is None and dv is not None:
            wavelength = log_lambda_grid(self.wavelength[0], self.wavelength[-1], dv=dv)
            wavelength = wavelength[wavelength <= self.wavelength[-1]]
        new = check_wavelength(wavelength)
        return self._replace(new, resample(self.wavelength, self.flux, new), sampling_kms=dv)

    def broaden(
        self, *, resolution: float | None = None, vsini: float | None = None
    ) -> SpectralGrid:
        """Convolve every spectrum with the instrument (resolving power R) and/or rotation.

        See :func:`skyscene.spectra.broadening.broaden`; v sin i in km/s.
        """
        flux = broaden(self.wavelength, self.flux, resolution=resolution, vsini=vsini)
        meta = {}
        if resolution is not None:
            meta["resolution"] = resolution
        if vsini:
            meta["vsini_kms"] = vsini
        return self._replace(self.wavelength, flux, **meta)

    def shift(self, rv: float) -> SpectralGrid:
        """Doppler-shift the grid by ``rv`` km/s (exact: the wavelengths are scaled)."""
        return self._replace(self.wavelength * doppler_factor(rv), self.flux, rv_kms=rv)

    @property
    def sampling_kms(self) -> float:
        """Median wavelength step expressed as a velocity, km/s."""
        return float(np.median(np.expm1(np.diff(np.log(self.wavelength))))) * C_KMS

    # ------------------------------------------------------------------ files (skyscene.io)
    def write(self, path: str | os.PathLike) -> Path:
        """Write the grid to an HDF5 file (atomically); return the path.

        Calls :func:`skyscene.io.spectral_grid.write_spectral_grid`, where the file
        format lives.
        """
        from skyscene.io.spectral_grid import write_spectral_grid

        return write_spectral_grid(self, path)

    @classmethod
    def read(cls, path: str | os.PathLike) -> SpectralGrid:
        """Read an HDF5 grid: :func:`skyscene.io.spectral_grid.read_spectral_grid`."""
        from skyscene.io.spectral_grid import read_spectral_grid

        return read_spectral_grid(path)

    @classmethod
    def from_spectra(
        cls,
        spectra: Iterable[tuple[Sequence[float], np.ndarray, np.ndarray]],
        *,
        names: Sequence[str],
        wavelength_range: tuple[float, float] | None = None,
        resolution: float | None = None,
        dv: float | None = None,
        meta=None,
    ) -> SpectralGrid:
        """Build a grid from (parameters, wavelength, flux) triples, processing each spectrum.

        Each spectrum is truncated to ``wavelength_range`` (Å, with a margin for the
        broadening), broadened to resolving power ``resolution``, then resampled to a
        common ln λ grid of step ``dv`` km/s (default: the first spectrum's sampling).
        """
        params_list, flux_list, common = [], [], None
        for params, wl, flux in spectra:
            wl = check_wavelength(wl)
            flux = np.asarray(flux, dtype=float)
            if flux.shape != wl.shape:
                raise DataError(
                    f"spectrum {list(params)}: flux has {flux.size} values but wavelength "
                    f"{wl.size} (mismatched lengths)"
                )
            if wavelength_range is not None:
                lo, hi = wavelength_range
                pad = 1.0 + (5.0 / resolution if resolution else 0.0) + 1e-3
                keep = (wl >= lo / pad) & (wl <= hi * pad)
                if keep.sum() < 2:
                    raise ParameterError(
                        f"wavelength range [{lo:g}, {hi:g}] Å does not overlap the spectrum "
                        f"{list(params)} ([{wl[0]:g}, {wl[-1]:g}] Å)"
                    )
                wl, flux = wl[keep], flux[keep]
            if resolution is not None:
                flux = broaden(wl, flux, resolution=resolution)
            if common is None:
                lo = max(wl[0], wavelength_range[0]) if wavelength_range else wl[0]
                hi = min(wl[-1], wavelength_range[1]) if wavelength_range else wl[-1]
                step = dv
                if step is None and resolution is not None:
                    step = C_KMS / resolution / 3.0
                if step is None:
                    common = wl[(wl >= lo) & (wl <= hi)]
                else:
                    common = log_lambda_grid(lo, hi, dv=step)
                    common = common[common <= hi]
            params_list.append([float(p) for p in params])
            flux_list.append(resample(wl, flux, common))
        if not params_list:
            raise InputFileError("no spectra were found to build the grid from")
        meta = {
            **(meta or {}),
            "wavelength_range": list(wavelength_range) if wavelength_range else None,
            "resolution": resolution,
            "sampling_kms": dv,
        }
        return cls(common, params_list, np.array(flux_list), names=names, meta=meta)

    @classmethod
    def from_directory(cls, directory: str | os.PathLike, **kwargs) -> SpectralGrid:
        """Build a grid from a folder of raw model spectra.

        Calls :func:`skyscene.io.spectral_grid.spectral_grid_from_directory` (same
        keyword arguments: ``reader``, ``wavelength_range``, ``resolution``, ``dv``,
        ``progress``).
        """
        from skyscene.io.spectral_grid import spectral_grid_from_directory

        return spectral_grid_from_directory(directory, **kwargs)
