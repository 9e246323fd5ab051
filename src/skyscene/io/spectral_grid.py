"""Spectral grid files: the HDF5 grid format and readers of raw model-spectrum libraries.

On disk a grid is an HDF5 file (DESIGN.md, "Spectral grids"):

``/wavelength``  float64 (n_wl,), Å, strictly increasing
``/parameters``  float64 (n_grid, n_dim), attribute ``names`` (e.g. Teff, logg, FeH)
``/flux``        float (n_grid, n_wl), raw model flux (not normalised)

Optional root attributes record where the grid came from (reader, truncation,
resolution, v sin i, sampling), as JSON in the attribute ``meta``.
:func:`read_spectral_grid` / :func:`write_spectral_grid` read and write it (atomically);
:func:`spectral_grid_from_directory` builds a :class:`~skyscene.spectra.SpectralGrid`
from a folder of raw library spectra read by a pluggable reader.

A reader is any object with

- ``names``: tuple of parameter names, e.g. ``("Teff", "logg", "FeH")``;
- ``find(directory) -> list[(params, path)]``: the spectra of a folder, sorted;
- ``read(path) -> (wavelength, flux)``: wavelength in Å (float64, increasing) and raw flux.

Register new readers in :data:`READERS` (name → class) to make them available to
``skyscene spectra grid --reader NAME``. The old names (``SpectralGrid.read``,
``.write``, ``.from_directory``, ``skyscene.spectra.readers``) call these.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from skyscene.errors import DataError, HeaderError, InputFileError, ParameterError, require
from skyscene.io._atomic import atomic_path

if TYPE_CHECKING:
    from skyscene.spectra.grid import SpectralGrid

__all__ = [
    "READERS",
    "GridReader",
    "PhoenixACESReader",
    "get_reader",
    "iter_raw_spectra",
    "read_spectral_grid",
    "spectral_grid_from_directory",
    "write_spectral_grid",
]

log = logging.getLogger(__name__)

_DATASETS = ("wavelength", "parameters", "flux")
FORMAT = "skyscene spectral grid 1"


def write_spectral_grid(grid: SpectralGrid, path: str | os.PathLike) -> Path:
    """Write ``grid`` to an HDF5 file of the documented layout (atomically); return the path."""
    h5py = require("h5py", "spectra")
    path = Path(path)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("wavelength", data=grid.wavelength)
        f["wavelength"].attrs["unit"] = "Angstrom"
        dset = f.create_dataset("parameters", data=grid.parameters)
        dset.attrs["names"] = np.array(grid.names, dtype=h5py.string_dtype())
        f.create_dataset("flux", data=grid.flux, chunks=(1, grid.n_wavelength))
        f.attrs["meta"] = json.dumps(grid.meta)
        f.attrs["format"] = FORMAT
    log.info("wrote %s to %s", grid, path)
    return path


def read_spectral_grid(path: str | os.PathLike) -> SpectralGrid:
    """Read a grid written by :func:`write_spectral_grid` (or any file of the layout).

    Raises
    ------
    InputFileError
        If the file is missing, not HDF5, or lacks a dataset or the ``names`` attribute,
        or if its contents are not a valid grid (the message names the file).
    """
    from skyscene.spectra.grid import SpectralGrid

    h5py = require("h5py", "spectra")
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"spectral grid file {str(path)!r} does not exist")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise InputFileError(f"{str(path)!r} is not a readable HDF5 file: {exc}") from exc
    with f:
        for name in _DATASETS:
            if name not in f:
                raise InputFileError(
                    f"spectral grid {str(path)!r} is missing the dataset '/{name}' "
                    f"(expected /wavelength, /parameters with attr 'names', /flux)"
                )
        if "names" not in f["parameters"].attrs:
            raise InputFileError(
                f"spectral grid {str(path)!r}: dataset '/parameters' lacks the attribute 'names'"
            )
        names = [
            n.decode() if isinstance(n, bytes) else str(n) for n in f["parameters"].attrs["names"]
        ]
        try:
            meta = json.loads(f.attrs.get("meta", "{}"))
        except json.JSONDecodeError as exc:
            raise InputFileError(
                f"spectral grid {str(path)!r}: attribute 'meta' is not JSON: {exc}"
            ) from exc
        wl, params, flux = (f[name][()] for name in _DATASETS)
    try:
        return SpectralGrid(wl, params, flux, names=names, meta=meta)
    except DataError as exc:
        raise InputFileError(f"spectral grid {str(path)!r}: {exc}") from exc


def iter_raw_spectra(
    found: list[tuple[tuple[float, ...], Path]], reader: GridReader
) -> Iterator[tuple[tuple[float, ...], np.ndarray, np.ndarray]]:
    """(parameters, wavelength, flux) of each spectrum ``reader.find`` listed, read lazily."""
    for params, path in found:
        wl, flux = reader.read(path)
        yield params, wl, flux


def spectral_grid_from_directory(
    directory: str | os.PathLike,
    *,
    reader="phoenix",
    wavelength_range: tuple[float, float] | None = None,
    resolution: float | None = None,
    dv: float | None = None,
    progress: bool = False,
) -> SpectralGrid:
    """Build a grid from a folder of raw model spectra read by a pluggable reader.

    Parameters
    ----------
    directory : path
        Folder searched recursively by the reader.
    reader : str or reader object
        ``"phoenix"`` (:class:`PhoenixACESReader`) or any object with ``names``,
        ``find(directory)`` and ``read(path)`` (see :class:`GridReader`).
    wavelength_range, resolution, dv
        Truncation (Å), instrumental resolving power and output sampling (km/s); see
        :meth:`skyscene.spectra.SpectralGrid.from_spectra` (which does the processing).
    progress : bool
        Show a tqdm progress bar.
    """
    from skyscene.spectra.grid import SpectralGrid

    rdr = get_reader(reader)
    found = rdr.find(directory)
    if not found:
        raise InputFileError(
            f"no spectra matching the {type(rdr).__name__} file pattern in {str(directory)!r}"
        )
    log.info("building a grid from %d spectra in %s", len(found), directory)
    spectra = iter_raw_spectra(found, rdr)
    if progress:
        from tqdm import tqdm

        spectra = tqdm(spectra, total=len(found), desc="reading spectra", unit="spectrum")
    return SpectralGrid.from_spectra(
        spectra,
        names=rdr.names,
        wavelength_range=wavelength_range,
        resolution=resolution,
        dv=dv,
        meta={"reader": type(rdr).__name__, "source": str(directory)},
    )


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
