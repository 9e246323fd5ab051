"""Calibration master frames (:class:`MasterFrame`) and their FITS files.

A master bias, dark or flat is made by :mod:`skyscene.calibration`; this module holds
the container and the file format, so that the algorithms do no file I/O.

File layout: primary header with ``CALTYPE`` (bias/dark/flat), ``NCOMBINE``, ``BUNIT``
(``adu``, ``adu/s``, or empty for the dimensionless flat) and, when known, ``FILTER``,
``CCDSUM``, ``RDNOISE``, ``GAIN``, ``BIASCOEF``/``BIASFP``, ``COMBMETH``/``COMBSIG``,
``IMCMBnnn``; HDUs ``SCI`` (float64 values), ``VAR`` (variance, 0 where masked,
``UTYPE = 'VarianceUncertainty'``) and ``MSK`` (uint8, 1 = masked). The noise
convention is the one of exposures (see :mod:`skyscene.io.ccddata`): astropy reads a
master with ``CCDData.read(path, hdu_uncertainty="VAR", hdu_mask="MSK")`` (add
``unit=""`` for a flat).
"""

from __future__ import annotations

import functools
import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from skyscene.errors import DataError, HeaderError, InputFileError, ParameterError
from skyscene.io._atomic import atomic_path
from skyscene.io.fits import _hdu_data, _noise_kind, _quiet_fits, check_cards, open_fits
from skyscene.io.headers import InstrumentProfile, binning_keyword, float_keyword

__all__ = ["MASTER_KINDS", "MASTER_UNITS", "MasterFrame", "read_master", "write_master"]

log = logging.getLogger(__name__)

MASTER_KINDS = ("bias", "dark", "flat")
#: ``BUNIT`` of each kind of master (the flat is a dimensionless relative response).
MASTER_UNITS = {"bias": "adu", "dark": "adu/s", "flat": ""}


@dataclass(frozen=True, kw_only=True, eq=False)
class MasterFrame:
    """A combined calibration frame.

    Attributes
    ----------
    data : ndarray of float, shape (ny, nx)
        Bias level (ADU), dark current (ADU/s) or relative flat response (median 1).
        0 where masked (1 for a flat).
    variance : ndarray of float, shape (ny, nx)
        Variance of ``data`` (units squared); ``inf`` where masked.
    kind : {"bias", "dark", "flat"}
    n_frames : int
        Number of input frames.
    mask : ndarray of bool, shape (ny, nx), optional
        True where the master has no valid estimate (also set where ``data`` or
        ``variance`` is not finite).
    meta : dict
        Provenance: ``files`` (input file names, if known), ``binning`` (x, y) if
        known, ``band`` (flats), ``read_noise`` and ``gain`` used or measured,
        ``exptime`` (input exposure times), ``combine`` (settings), ``filename``
        (when read from disk). A dark made with a master bias also records
        ``bias_coefficient`` (``k`` in ``D = ... - k B``) and ``bias_fingerprint``, so
        that :func:`~skyscene.calibration.calibrate` can account for the bias error it shares with the
        bias (see its Notes).
    """

    data: np.ndarray
    variance: np.ndarray
    kind: str
    n_frames: int
    mask: np.ndarray | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in MASTER_KINDS:
            raise ParameterError(
                f"master kind must be one of {', '.join(MASTER_KINDS)}, got {self.kind!r}"
            )
        data = np.array(self.data, dtype=float)
        variance = np.array(self.variance, dtype=float)
        mask = np.zeros(data.shape, bool) if self.mask is None else np.array(self.mask, bool)
        if data.ndim != 2 or variance.shape != data.shape or mask.shape != data.shape:
            raise DataError(
                f"master {self.kind}: data {data.shape}, variance {variance.shape} and mask "
                f"{mask.shape} must be 2-D arrays of one shape{self._where()}"
            )
        mask = mask | ~np.isfinite(data) | ~(variance >= 0) | ~np.isfinite(variance)
        data[mask] = 1.0 if self.kind == "flat" else 0.0
        variance[mask] = np.inf
        for arr in (data, variance, mask):
            arr.setflags(write=False)
        object.__setattr__(self, "data", data)
        object.__setattr__(self, "variance", variance)
        object.__setattr__(self, "mask", mask)
        object.__setattr__(self, "n_frames", int(self.n_frames))

    def __setstate__(self, state: dict) -> None:
        # unpickled arrays come back writeable: keep the master immutable across processes
        self.__dict__.update(state)
        for key in ("data", "variance", "mask"):
            state[key].setflags(write=False)

    def _where(self) -> str:
        meta = self.meta if isinstance(self.meta, dict) else {}
        if meta.get("filename"):
            return f" ({meta['filename']})"
        files = meta.get("files") or []
        if files:
            more = f" and {len(files) - 1} more" if len(files) > 1 else ""
            return f" (from {files[0]}{more})"
        return ""

    @property
    def shape(self) -> tuple[int, int]:
        """``(ny, nx)``."""
        return self.data.shape  # type: ignore[return-value]

    @functools.cached_property
    def fingerprint(self) -> str:
        """Short hash of the data (identifies the bias a dark was made with)."""
        digest = hashlib.sha1(np.ascontiguousarray(self.data).tobytes())
        digest.update(repr(self.shape).encode())
        return digest.hexdigest()[:16]

    @property
    def label(self) -> str:
        """Human-readable name used in messages, e.g. ``"master flat 'g' (flat_g.fits)"``."""
        band = self.meta.get("band")
        band_text = f" {band!r}" if self.kind == "flat" and band is not None else ""
        return f"master {self.kind}{band_text}{self._where()}"


def write_master(path: str | Path, master: MasterFrame, *, overwrite: bool = True) -> Path:
    """Write a master frame as FITS (``SCI``, ``VAR``, ``MSK`` HDUs), atomically.

    The primary header has ``CALTYPE`` (bias/dark/flat), ``NCOMBINE``, ``BUNIT`` and,
    when known, ``FILTER``, ``CCDSUM`` (binning), ``RDNOISE`` and ``GAIN``. ``VAR``
    holds the variance (0 where masked) marked ``UTYPE = 'VarianceUncertainty'``.

    Raises
    ------
    InputFileError
        ``path`` exists and ``overwrite`` is False.
    """
    from astropy.io import fits

    path = Path(path)
    if path.exists() and not overwrite:
        raise InputFileError(f"{path}: exists and overwrite=False")
    header = fits.Header()
    header["CALTYPE"] = (master.kind, "calibration master: bias, dark or flat")
    header["NCOMBINE"] = (master.n_frames, "number of frames combined")
    header["BUNIT"] = (MASTER_UNITS[master.kind], "unit of SCI")
    meta = master.meta
    if meta.get("band") is not None:
        header["FILTER"] = (str(meta["band"]), "filter of the flat")
    if meta.get("binning") is not None:
        header["CCDSUM"] = (f"{meta['binning'][0]} {meta['binning'][1]}", "binning x y")
    if meta.get("read_noise") is not None:
        header["RDNOISE"] = (float(meta["read_noise"]), "read noise (ADU)")
    if meta.get("gain") is not None:
        header["GAIN"] = (float(meta["gain"]), "e-/ADU")
    if meta.get("bias_coefficient") is not None:
        header["BIASCOEF"] = (float(meta["bias_coefficient"]), "dark = ... - BIASCOEF * bias")
        header["BIASFP"] = (str(meta["bias_fingerprint"]), "fingerprint of that bias")
    combine = meta.get("combine") or {}
    if "method" in combine:
        header["COMBMETH"] = (combine["method"], "combine estimator")
        header["COMBSIG"] = (float(combine["sigma"]), "clipping threshold (sigma)")
    for i, name in enumerate(meta.get("files") or []):
        if i >= 999:
            break
        header[f"IMCMB{i + 1:03d}"] = Path(name).name[:68]
    mask = np.asarray(master.mask, bool)
    variance = np.where(mask, 0.0, master.variance)  # no inf on disk
    var = fits.ImageHDU(variance.astype(np.float64), name="VAR")
    var.header["UTYPE"] = ("VarianceUncertainty", "VAR = variance, 0 = no data")
    hdus = fits.HDUList(
        [
            fits.PrimaryHDU(header=header),
            fits.ImageHDU(master.data.astype(np.float64), name="SCI"),
            var,
            fits.ImageHDU(mask.astype(np.uint8), name="MSK"),
        ]
    )
    with atomic_path(path) as tmp:
        hdus.writeto(tmp, overwrite=True)
    log.info("wrote %s to %s", master.label, path)
    return path


def read_master(path: str | Path) -> MasterFrame:
    """Read a master frame written by :func:`write_master`.

    Raises
    ------
    InputFileError
        Missing, unreadable, truncated or non-FITS file, or missing ``SCI``/``VAR``/``MSK``
        HDUs.
    HeaderError
        ``CALTYPE`` missing or not bias/dark/flat; an unparsable card or a malformed
        ``CCDSUM``/``RDNOISE``/``GAIN`` (the message names file and key).
    """
    path = Path(path)
    name = str(path)
    with _quiet_fits(), open_fits(path) as hdul:
        check_cards(hdul[0].header, name)
        header = hdul[0].header
        kind = str(header.get("CALTYPE", "")).strip().lower()
        if kind not in MASTER_KINDS:
            raise HeaderError(
                f"{name}: keyword CALTYPE={header.get('CALTYPE')!r} is not one of "
                f"{', '.join(MASTER_KINDS)} (not a skyscene master frame?)",
                filename=name,
                key="CALTYPE",
            )
        data = _hdu_data(hdul["SCI"], name, "SCI") if "SCI" in hdul else None
        missing = [h for h in ("SCI", "VAR", "MSK") if h not in hdul]
        if missing:
            size = path.stat().st_size
            hint = f" (the file is truncated: {size} bytes)" if size % 2880 else ""
            raise InputFileError(f"{name}: master frame lacks HDU(s) {', '.join(missing)}{hint}")
        data = np.asarray(data, dtype=float)
        variance = _variance(hdul["VAR"], name)
        mask = np.asarray(_hdu_data(hdul["MSK"], name, "MSK")) != 0
        meta: dict[str, Any] = {"filename": name}
        if "FILTER" in header:
            meta["band"] = str(header["FILTER"]).strip()
        if "CCDSUM" in header:
            profile = InstrumentProfile(name="master", binning_keys=("CCDSUM",))
            meta["binning"] = binning_keyword(header, profile, name)
        if "RDNOISE" in header:
            meta["read_noise"] = float_keyword(header, ("RDNOISE",), name, what="read noise")
        if "GAIN" in header:
            meta["gain"] = float_keyword(header, ("GAIN",), name, what="gain")
        if "BIASCOEF" in header and "BIASFP" in header:
            meta["bias_coefficient"] = float(header["BIASCOEF"])
            meta["bias_fingerprint"] = str(header["BIASFP"])
        if "COMBMETH" in header:
            meta["combine"] = {"method": header["COMBMETH"], "sigma": header.get("COMBSIG")}
        meta["files"] = [str(v) for k, v in header.items() if k.startswith("IMCMB")]
        n_frames = int(header.get("NCOMBINE", 0))
    if data.shape != variance.shape or data.shape != mask.shape:
        raise DataError(
            f"{name}: HDUs SCI {data.shape}, VAR {variance.shape} and MSK {mask.shape} differ"
        )
    return MasterFrame(
        data=data, variance=variance, mask=mask, n_frames=n_frames, kind=kind, meta=meta
    )


def _variance(hdu, name: str) -> np.ndarray:
    """Variance from the ``VAR`` HDU (a file marked with another UTYPE is converted)."""
    arr = np.asarray(_hdu_data(hdu, name, "VAR"), dtype=float)
    kind = _noise_kind(hdu, "VAR", name)
    if kind == "var":
        return arr
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if kind == "std":
            return arr**2
        return np.where(arr > 0, 1.0 / arr, 0.0)  # 0 = no data, as on disk
