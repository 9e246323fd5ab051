"""The :class:`Exposure` container: pixels, noise, mask, WCS, PSF and calibration."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from skyscene.errors import DataError, ParameterError

__all__ = ["Exposure"]


@dataclass(frozen=True, kw_only=True, eq=False)
class Exposure:
    """One calibrated image with everything needed to model it.

    Parameters
    ----------
    data : ndarray, shape (ny, nx)
        Pixel values in counts (ADU or e-, as ``gain`` says).
    variance : ndarray, shape (ny, nx), optional
        Per-pixel variance in the units of ``data`` squared; ``inf`` where masked.
        Default: ones (unit weights), a choice that should be made explicitly.
    mask : ndarray of bool, shape (ny, nx), optional
        True marks a bad pixel. Masked pixels get ``variance = inf``.
    wcs : astropy.wcs.WCS or None
        Celestial WCS of the image.
    psf : PSF model or None
        Any object following the PSF protocol of :mod:`skyscene.psf`.
    zeropoint : float or None
        Magnitude of one count: ``mag = zeropoint - 2.5 log10(counts)``.
    band : str or None
        Filter name.
    time : astropy.time.Time or None
        Mid-exposure time.
    exptime : float or None
        Exposure time in seconds.
    gain : float or None
        Electrons per count (ADU), for source Poisson noise.
    read_noise : float or None
        Read noise in counts.
    origin : tuple of int
        ``(x0, y0)`` of pixel ``[0, 0]`` in the parent image (cutouts keep it so that a
        spatially varying PSF is evaluated at the right place).
    meta : dict
        Header and provenance (``filename`` among others).
    unit : str
        Unit of ``data`` as an astropy unit string (FITS ``BUNIT``); ``"adu"`` by
        default (and for files written without ``BUNIT``). ``variance`` is in ``unit``
        squared.

    Notes
    -----
    Pixel convention: 0-based ``(x, y)`` with integer values at pixel centres; arrays are
    indexed ``[y, x]``. Slicing ``exposure[y0:y1, x0:x1]`` gives a cutout with a shifted
    WCS and the same PSF.

    Examples
    --------
    >>> import numpy as np
    >>> exp = Exposure(data=np.zeros((10, 12)), variance=np.full((10, 12), 4.0))
    >>> exp.shape
    (10, 12)
    >>> exp[2:5, 3:9].origin
    (3, 2)
    """

    data: np.ndarray
    # None is accepted and replaced in __post_init__: after construction both are arrays.
    variance: np.ndarray = None  # type: ignore[assignment]
    mask: np.ndarray = None  # type: ignore[assignment]
    wcs: Any = None
    psf: Any = None
    zeropoint: float | None = None
    band: str | None = None
    time: Any = None
    exptime: float | None = None
    gain: float | None = None
    read_noise: float | None = None
    origin: tuple[int, int] = (0, 0)
    meta: dict = field(default_factory=dict)
    unit: str = "adu"

    def __post_init__(self) -> None:
        if not isinstance(self.unit, str):
            unit = getattr(self.unit, "to_string", None)
            if unit is None:
                raise ParameterError(
                    f"Exposure unit must be a unit string, got {self.unit!r}{self._where()}",
                    name="Exposure.unit",
                    value=self.unit,
                )
            object.__setattr__(self, "unit", unit())
        data = np.asarray(self.data, dtype=float)
        if data.ndim != 2:
            raise DataError(f"Exposure data must be 2-D, got shape {data.shape}{self._where()}")
        variance = (
            np.ones_like(data)
            if self.variance is None
            else np.array(self.variance, dtype=float, copy=True)
        )
        if variance.shape != data.shape:
            raise DataError(
                f"variance shape {variance.shape} does not match data shape {data.shape}"
                f"{self._where()}"
            )
        mask = np.zeros(data.shape, bool) if self.mask is None else np.asarray(self.mask, bool)
        if mask.shape != data.shape:
            raise DataError(
                f"mask shape {mask.shape} does not match data shape {data.shape}{self._where()}"
            )
        bad = ~np.isfinite(data) | ~(variance > 0) | np.isnan(variance)
        mask = mask | bad
        variance[mask] = np.inf
        data = np.where(mask, 0.0, data)  # masked: data 0, noise inf (as sep)
        object.__setattr__(self, "data", data)
        object.__setattr__(self, "variance", variance)
        object.__setattr__(self, "mask", mask)
        object.__setattr__(self, "origin", (int(self.origin[0]), int(self.origin[1])))

    def _where(self) -> str:
        name = self.meta.get("filename") if isinstance(self.meta, dict) else None
        return f" in {name}" if name else ""

    @property
    def shape(self) -> tuple[int, int]:
        """``(ny, nx)``."""
        return self.data.shape  # type: ignore[return-value]

    @property
    def filename(self) -> str | None:
        """File the exposure was read from, if any."""
        return self.meta.get("filename")

    @property
    def weight(self) -> np.ndarray:
        """Inverse variance, 0 where masked (never a division by zero)."""
        weight = np.zeros_like(self.variance)
        good = ~self.mask
        weight[good] = 1.0 / self.variance[good]
        return weight

    @property
    def sigma(self) -> np.ndarray:
        """Per-pixel noise (``inf`` where masked)."""
        return np.sqrt(self.variance)

    def to_ccddata(self):
        """This exposure as an ``astropy.nddata.CCDData``.

        ``uncertainty`` is an ``InverseVariance`` (0 where masked), ``mask`` the bad
        pixels, ``unit`` from :attr:`unit`, ``wcs`` the WCS and ``meta`` the FITS header
        skyscene writes (band, times, exposure time, gain, read noise, zeropoint, cutout
        origin, and the cards of ``meta['header']``). ``ccd.write(path)`` gives a file
        :func:`~skyscene.io.read_exposure` reads back.
        """
        from skyscene.io.ccddata import exposure_to_ccddata

        return exposure_to_ccddata(self)

    @classmethod
    def from_ccddata(cls, ccd, *, profile=None) -> Exposure:
        """An exposure from an ``astropy.nddata.CCDData`` (the inverse of :meth:`to_ccddata`).

        Any uncertainty type (standard deviation, variance, inverse variance) becomes
        ``variance``; without one, unit weights. ``ccd.meta`` is read as a FITS header
        (``profile`` as in :func:`~skyscene.io.read_exposure`; frames without a time
        get ``time=None``).
        """
        from skyscene.io.ccddata import exposure_from_ccddata

        return exposure_from_ccddata(ccd, profile=profile)

    def replace(self, **changes: Any) -> Exposure:
        """A copy with some fields replaced (the dataclass is immutable)."""
        return dataclasses.replace(self, **changes)

    def psf_at(self, x: float, y: float):
        """The PSF model at cutout position ``(x, y)`` (accounts for ``origin``)."""
        if self.psf is None:
            raise ParameterError(f"exposure has no PSF{self._where()}")
        at = getattr(self.psf, "at", None)
        return at(x + self.origin[0], y + self.origin[1]) if at is not None else self.psf

    def __getitem__(self, key) -> Exposure:
        if not (
            isinstance(key, tuple) and len(key) == 2 and all(isinstance(k, slice) for k in key)
        ):
            raise ParameterError("Exposure slicing needs two slices: exposure[y0:y1, x0:x1]")
        ys, xs = key
        ny, nx = self.shape
        y0, y1, ystep = ys.indices(ny)
        x0, x1, xstep = xs.indices(nx)
        if ystep != 1 or xstep != 1 or y1 <= y0 or x1 <= x0:
            raise ParameterError(f"invalid cutout slices {key!r} for shape {self.shape}")
        wcs = None
        if self.wcs is not None:
            wcs = self.wcs.deepcopy()
            wcs.wcs.crpix = wcs.wcs.crpix - np.array([x0, y0])
            if getattr(wcs, "sip", None) is not None:
                wcs.sip.crpix[0] -= x0
                wcs.sip.crpix[1] -= y0
            wcs.pixel_shape = (x1 - x0, y1 - y0)
        return dataclasses.replace(
            self,
            data=self.data[y0:y1, x0:x1],
            variance=self.variance[y0:y1, x0:x1],
            mask=self.mask[y0:y1, x0:x1],
            wcs=wcs,
            origin=(self.origin[0] + x0, self.origin[1] + y0),
        )

    def cutout(self, center: tuple[float, float], size: int | tuple[int, int]) -> Exposure:
        """Cutout of ``size`` pixels (``ny, nx`` or one int) centred on pixel ``(x, y)``.

        Raises :class:`~skyscene.errors.DataError` if the cutout leaves the image.
        """
        ny, nx = (
            (int(size), int(size))
            if isinstance(size, int | np.integer)
            else (int(size[0]), int(size[1]))
        )
        cx, cy = (round(float(c)) for c in center)
        x0, y0 = cx - nx // 2, cy - ny // 2
        if x0 < 0 or y0 < 0 or x0 + nx > self.shape[1] or y0 + ny > self.shape[0]:
            raise DataError(
                f"cutout of size {(ny, nx)} at {center} leaves the image of shape {self.shape}"
                f"{self._where()}"
            )
        return self[y0 : y0 + ny, x0 : x0 + nx]
