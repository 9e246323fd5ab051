"""Readers of raw model-spectrum libraries, used to build a :class:`SpectralGrid`.

A reader is any object with

- ``names``: tuple of parameter names, e.g. ``("Teff", "logg", "FeH")``;
- ``find(directory) -> list[(params, path)]``: the spectra of a folder, sorted;
- ``read(path) -> (wavelength, flux)``: wavelength in Å (float64, increasing) and raw flux.

Register new readers in :data:`READERS` (name → class) to make them available to
``skyscene spectra grid --reader NAME``.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from skyscene.errors import HeaderError, InputFileError, ParameterError

__all__ = ["READERS", "GridReader", "PhoenixACESReader", "get_reader"]

log = logging.getLogger(__name__)


@runtime_checkable
class GridReader(Protocol):
    """Protocol of a raw spectral library reader (see the module docstring)."""

    names: tuple[str, ...]

    def find(self, directory: str | os.PathLike) -> list[tuple[tuple[float, ...], Path]]: ...

    def read(self, path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]: ...


class PhoenixACESReader:
    """Reader of the PHOENIX-ACES-AGSS-COND-2011 high-resolution library (Husser et al. 2013).

    Files are named ``lte{Teff:05d}-{logg:.2f}{[Fe/H]:+.1f}[.Alpha={α:+.2f}]
    .PHOENIX-ACES-AGSS-COND-2011-HiRes.fits`` (solar metallicity is written ``-0.0``
    in the distributed library; ``+0.0`` is accepted too), usually in sub-folders
    ``Z-0.0/``, ``Z+0.5/`` … . Each holds the flux (erg/s/cm²/cm, float32) in its
    primary HDU with the header keys ``PHXTEFF``, ``PHXLOGG``, ``PHXM_H``,
    ``PHXALPHA``. The wavelengths (vacuum, Å) are in the primary HDU of the common
    file ``WAVE_PHOENIX-ACES-AGSS-COND-2011.fits``.

    Parameters
    ----------
    wave_file : path, optional
        The wavelength file; default: found in the searched folder or its parents.
    alpha : float, optional
        Keep only spectra with this [α/Fe] (default 0.0: the files without ``.Alpha=``).
    air : bool, optional
        Convert vacuum wavelengths to air (Ciddor 1996 as given by Husser et al. 2013).

    Notes
    -----
    The grid parameters are Teff (K), logg (log10 of g in cm/s²) and FeH ([Fe/H], dex).
    The header values, when present, must agree with the file name.
    """

    names = ("Teff", "logg", "FeH")
    WAVE_NAME = "WAVE_PHOENIX-ACES-AGSS-COND-2011.fits"
    PATTERN = re.compile(
        r"^lte(?P<teff>\d{5})-(?P<logg>\d\.\d{2})(?P<feh>[+-]\d\.\d)"
        r"(?:\.Alpha=(?P<alpha>[+-]\d\.\d{2}))?\.PHOENIX-ACES-AGSS-COND-2011-HiRes\.fits$"
    )

    def __init__(
        self, *, wave_file: str | os.PathLike | None = None, alpha: float = 0.0, air: bool = False
    ):
        self.wave_file = Path(wave_file) if wave_file is not None else None
        self.alpha = float(alpha)
        self.air = bool(air)
        self._wave: np.ndarray | None = None
        self._wave_path: Path | None = None

    @classmethod
    def filename(cls, teff: float, logg: float, feh: float, alpha: float = 0.0) -> str:
        """File name of one spectrum, as in the distributed library (solar = ``-0.0``)."""
        feh_str = "-0.0" if feh == 0 else f"{feh:+.1f}"
        alpha_str = "" if alpha == 0 else f".Alpha={alpha:+.2f}"
        stem = f"lte{round(teff):05d}-{logg:.2f}{feh_str}{alpha_str}"
        return stem + ".PHOENIX-ACES-AGSS-COND-2011-HiRes.fits"

    def parse(self, name: str) -> tuple[tuple[float, float, float], float] | None:
        """(Teff, logg, FeH), alpha parsed from a file name, or None if it does not match."""
        m = self.PATTERN.match(name)
        if m is None:
            return None
        alpha = float(m["alpha"]) if m["alpha"] else 0.0
        feh = float(m["feh"]) + 0.0  # -0.0 -> 0.0
        return (float(m["teff"]), float(m["logg"]), feh), alpha

    def find(self, directory: str | os.PathLike) -> list[tuple[tuple[float, ...], Path]]:
        """All matching spectra under ``directory`` (recursive), sorted by parameters."""
        directory = Path(directory)
        if not directory.is_dir():
            raise InputFileError(f"raw spectra folder {str(directory)!r} does not exist")
        found: dict[tuple[float, ...], Path] = {}
        for path in sorted(directory.rglob("lte*.PHOENIX-ACES-AGSS-COND-2011-HiRes.fits")):
            parsed = self.parse(path.name)
            if parsed is None:
                log.warning("skipping %s: name does not follow the PHOENIX pattern", path)
                continue
            params, alpha = parsed
            if alpha != self.alpha:
                continue
            if params in found:
                raise InputFileError(
                    f"two files for the same parameters {params}: {found[params]} and {path}"
                )
            found[params] = path
        if self.wave_file is None and found:
            for folder in (directory, *directory.parents):
                candidate = folder / self.WAVE_NAME
                if candidate.is_file():
                    self._wave_path = candidate
                    break
        return sorted(found.items())

    def wavelength(self) -> np.ndarray:
        """The common wavelength array (Å), read once."""
        if self._wave is None:
            from astropy.io import fits

            path = self.wave_file or self._wave_path
            if path is None or not Path(path).is_file():
                raise InputFileError(
                    f"PHOENIX wavelength file {self.WAVE_NAME!r} not found "
                    f"(looked at {str(path) if path else 'the searched folder and its parents'}); "
                    "pass wave_file="
                )
            with fits.open(path) as hdul:
                wave = np.asarray(hdul[0].data, dtype=np.float64)
            if wave.ndim != 1 or wave.size < 2:
                raise InputFileError(f"{str(path)!r}: primary HDU is not a 1-D wavelength array")
            if self.air:
                wave = _vacuum_to_air(wave)
            self._wave = wave
        return self._wave

    def read(self, path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
        """Wavelength (Å) and flux (erg/s/cm²/cm) of one PHOENIX file."""
        from astropy.io import fits

        path = Path(path)
        parsed = self.parse(path.name)
        if parsed is None:
            raise InputFileError(f"{str(path)!r} is not a PHOENIX-ACES HiRes file name")
        (teff, logg, feh), alpha = parsed
        try:
            with fits.open(path) as hdul:
                header = hdul[0].header
                flux = np.asarray(hdul[0].data, dtype=np.float64)
        except OSError as exc:
            raise InputFileError(f"{str(path)!r} is not a readable FITS file: {exc}") from exc
        for key, value in (
            ("PHXTEFF", teff),
            ("PHXLOGG", logg),
            ("PHXM_H", feh),
            ("PHXALPHA", alpha),
        ):
            if key in header and not np.isclose(float(header[key]), value, atol=1e-3):
                raise HeaderError(
                    f"{str(path)!r}: header {key}={header[key]!r} disagrees with the "
                    f"file name ({value})",
                    filename=str(path),
                    key=key,
                )
        wave = self.wavelength()
        if flux.ndim != 1 or flux.size != wave.size:
            raise InputFileError(
                f"{str(path)!r}: flux has shape {flux.shape} but the wavelength file has "
                f"{wave.size} values (mismatched lengths)"
            )
        return wave, flux


def _vacuum_to_air(wave: np.ndarray) -> np.ndarray:
    """Vacuum to air wavelengths (Å), Husser et al. (2013) eq. 9-10 (Ciddor 1996)."""
    sigma2 = (1e4 / wave) ** 2
    f = 1.0 + 0.05792105 / (238.0185 - sigma2) + 0.00167917 / (57.362 - sigma2)
    return wave / f


READERS: dict[str, type] = {"phoenix": PhoenixACESReader}
"""Reader classes by name (``skyscene spectra grid --reader NAME``)."""


def get_reader(reader) -> GridReader:
    """A reader instance from a name in :data:`READERS` or a reader object."""
    if isinstance(reader, str):
        try:
            return READERS[reader.lower()]()
        except KeyError:
            raise ParameterError(
                f"reader={reader!r} is unknown; choose one of {sorted(READERS)}"
            ) from None
    if not isinstance(reader, GridReader):
        raise ParameterError(f"reader {reader!r} lacks names, find() and read()")
    return reader
