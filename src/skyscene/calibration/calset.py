"""A set of master frames built from calibration frames, applied by band.

No file I/O here: :meth:`CalibrationSet.from_directory`, :meth:`~CalibrationSet.save`
and :meth:`~CalibrationSet.load` call :mod:`skyscene.io.calset`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from skyscene.calibration.combine import CombineConfig
from skyscene.calibration.masters import (
    MasterFrame,
    bad_pixel_mask,
    make_master_bias,
    make_master_dark,
    make_master_flat,
)
from skyscene.calibration.process import calibrate
from skyscene.errors import DataError, ParameterError

# classification reads headers only; it lives with the folder reader in skyscene.io and is
# re-exported here (``from skyscene.calibration import classify_frame`` keeps working)
from skyscene.io.calset import FRAME_TYPE_KEYS, classify_frame
from skyscene.io.exposure import Exposure
from skyscene.io.headers import InstrumentProfile

__all__ = ["FRAME_TYPE_KEYS", "CalibrationSet", "classify_frame"]

log = logging.getLogger(__name__)


def _median_value(frames, attr: str) -> float | None:
    values = sorted({getattr(f, attr) for f in frames if getattr(f, attr) is not None})
    if len(values) > 1:
        log.warning("calibration frames disagree on %s: %s; using the median", attr, values)
    return float(np.median(values)) if values else None


@dataclass(frozen=True, kw_only=True, eq=False)
class CalibrationSet:
    """Master bias, dark and per-band flats, and the bad-pixel masks they imply.

    Parameters
    ----------
    bias, dark : MasterFrame, optional
    flats : dict of str to MasterFrame
        Master flat per band.
    gain : float, optional
        e-/ADU from the calibration headers, used for exposures without ``gain``.
    read_noise : float, optional
        ADU, likewise (default: the master bias's measured read noise).
    flat_limits : (float, float)
        Good flat-response interval for :func:`bad_pixel_mask`.
    hot_sigma : float
        Hot-pixel threshold for :func:`bad_pixel_mask`.
    source : str, optional
        Folder the set was built from.
    skipped : tuple of (str, str)
        Files skipped while reading the folder, with the reason.

    Attributes
    ----------
    bad_pixels : dict of (str or None) to ndarray of bool
        Bad-pixel mask per band (key None: without a flat), computed at construction.

    Examples
    --------
    >>> import numpy as np
    >>> from skyscene.calibration import MasterFrame
    >>> z = np.zeros((8, 8))
    >>> flat = MasterFrame(data=z + 1, variance=z, mask=z > 0, n_frames=1, kind="flat")
    >>> cal = CalibrationSet(flats={"g": flat}, gain=1.0, read_noise=1.0)
    >>> cal.bands
    ('g',)
    """

    bias: MasterFrame | None = None
    dark: MasterFrame | None = None
    flats: dict[str, MasterFrame] = field(default_factory=dict)
    gain: float | None = None
    read_noise: float | None = None
    flat_limits: tuple[float, float] = (0.5, 1.5)
    hot_sigma: float = 5.0
    source: str | None = None
    skipped: tuple[tuple[str, str], ...] = ()
    bad_pixels: dict = field(init=False, repr=False)

    def __post_init__(self) -> None:
        shapes = {}
        for label, master, kind in [("bias", self.bias, "bias"), ("dark", self.dark, "dark")] + [
            (f"flat {b!r}", f, "flat") for b, f in self.flats.items()
        ]:
            if master is None:
                continue
            if not isinstance(master, MasterFrame) or master.kind != kind:
                raise ParameterError(
                    f"CalibrationSet: {label} must be a MasterFrame of kind {kind!r}, got "
                    f"{getattr(master, 'kind', type(master).__name__)!r}"
                )
            shapes[master.label] = master.shape
        if len(set(shapes.values())) > 1:
            raise DataError(f"CalibrationSet: masters have different shapes: {shapes}")
        low, high = self.flat_limits
        if self.gain is not None and not self.gain > 0:
            raise ParameterError(f"CalibrationSet: gain must be positive, got {self.gain!r}")
        bad: dict[str | None, np.ndarray] = {}
        for band, flat in self.flats.items():
            bad[band] = bad_pixel_mask(
                flat, self.dark, low=low, high=high, hot_sigma=self.hot_sigma
            )
        if self.dark is not None:
            bad[None] = bad_pixel_mask(
                np.ones(self.dark.shape), self.dark, low=low, high=high, hot_sigma=self.hot_sigma
            )
        object.__setattr__(self, "bad_pixels", bad)

    @property
    def bands(self) -> tuple[str, ...]:
        """Bands with a master flat, sorted."""
        return tuple(sorted(self.flats))

    # ----------------------------------------------------------------- construction

    @classmethod
    def from_directory(
        cls,
        path: str | Path,
        *,
        profile: str | InstrumentProfile | None = None,
        combine: CombineConfig | None = None,
        flat_limits: tuple[float, float] = (0.5, 1.5),
        hot_sigma: float = 5.0,
    ) -> CalibrationSet:
        """Build the masters from a folder of raw calibration frames.

        Frames are classified by ``IMAGETYP``/``OBSTYPE`` (``bias``/``zero``,
        ``dark``, ``flat``/``dome flat``/``sky flat``), or by the file-name prefix
        (``bias*``, ``zero*``, ``dark*``, ``flat*``) when the header does not say.
        Flats are grouped by filter. Darks are bias-subtracted and scaled to ADU/s.

        Parameters
        ----------
        path : str or Path
            Folder with the calibration FITS files (``.fits``, ``.fit``, ``.fz``,
            ``.gz``: any file that starts with a FITS header).
        profile : str or InstrumentProfile, optional
            Instrument profile for the header keywords (auto-detected from INSTRUME).
        combine : CombineConfig, optional
            Stack combination settings (default: 3-sigma clipped mean).
        flat_limits, hot_sigma
            Bad-pixel thresholds, see :func:`bad_pixel_mask`.

        Returns
        -------
        CalibrationSet

        Raises
        ------
        InputFileError
            The folder does not exist, is empty, or holds no calibration frame.
        HeaderError
            A header card does not parse (``CRVAL1 = NaN``), a flat lacks a filter
            keyword, or a keyword is malformed; the message names the file and key.
        DataError
            Darks without bias frames; frames of different shapes or binnings.

        Notes
        -----
        Files that are not FITS, and FITS frames that are science frames or cannot
        be classified, are skipped with a logged warning naming the file; they are
        listed in :attr:`skipped`.
        """
        from skyscene.io.calset import calibration_set_from_directory

        return calibration_set_from_directory(
            path, profile=profile, combine=combine, flat_limits=flat_limits, hot_sigma=hot_sigma
        )

    @classmethod
    def from_frames(
        cls,
        frames: Mapping[str, Sequence[Any]],
        *,
        combine: CombineConfig | None = None,
        flat_limits: tuple[float, float] = (0.5, 1.5),
        hot_sigma: float = 5.0,
        source: str | None = None,
        skipped: tuple[tuple[str, str], ...] = (),
    ) -> CalibrationSet:
        """Build the masters from raw calibration frames already in memory (no file I/O).

        Parameters
        ----------
        frames : mapping of {"bias", "dark", "flat"} to sequence of frames
            Frames with ``data``, ``mask``, ``exptime``, ``gain``, ``read_noise``,
            ``band`` and ``meta`` (as :func:`skyscene.io.calibration_set_from_directory`
            reads them). Flats are grouped by ``band``. A missing key means no frame of
            that kind.
        combine : CombineConfig, optional
        flat_limits, hot_sigma
            Bad-pixel thresholds, see :func:`bad_pixel_mask`.
        source : str, optional
            Where the frames came from (named in messages and kept as :attr:`source`).
        skipped : tuple of (str, str)
            Files skipped while reading, with the reason.

        Raises
        ------
        DataError
            Darks without bias frames; frames of different shapes or binnings.
        """
        groups = {kind: list(frames.get(kind, ())) for kind in ("bias", "dark", "flat")}
        folder = source or "calibration frames"
        all_frames = [f for group in groups.values() for f in group]
        gain = _median_value(all_frames, "gain")
        bias = make_master_bias(groups["bias"], combine=combine) if groups["bias"] else None
        read_noise = _median_value(all_frames, "read_noise")
        if read_noise is None and bias is not None:
            read_noise = bias.meta["read_noise"]
        dark = None
        if groups["dark"]:
            if bias is None:
                raise DataError(
                    f"{folder}: {len(groups['dark'])} dark frame(s) but no bias frame; darks "
                    "are bias-subtracted and scaled by EXPTIME, so bias frames are needed"
                )
            dark = make_master_dark(
                groups["dark"], bias=bias, gain=gain, read_noise=read_noise, combine=combine
            )
        if groups["flat"] and bias is None:
            log.warning(
                "%s: flats without bias frames are used as they are (not bias-subtracted)", folder
            )
        flats: dict[str, MasterFrame] = {}
        by_band: dict[str, list[Any]] = {}
        for frame in groups["flat"]:
            by_band.setdefault(str(frame.band), []).append(frame)
        for band, band_frames in sorted(by_band.items()):
            flats[band] = make_master_flat(
                band_frames,
                bias=bias,
                dark=dark,
                gain=gain,
                read_noise=read_noise,
                band=band,
                combine=combine,
            )
        return cls(
            bias=bias,
            dark=dark,
            flats=flats,
            gain=gain,
            read_noise=read_noise,
            flat_limits=flat_limits,
            hot_sigma=hot_sigma,
            source=source,
            skipped=tuple(skipped),
        )

    # ----------------------------------------------------------------- application

    def apply(self, exposure: Exposure) -> Exposure:
        """Calibrate one raw exposure with the masters of its band.

        Parameters
        ----------
        exposure : Exposure
            Raw frame (ADU), e.g. from :func:`skyscene.io.read_exposure`. Its
            ``band`` chooses the flat; ``exptime`` scales the dark; ``gain`` and
            ``read_noise`` default to the set's when the exposure lacks them.

        Returns
        -------
        Exposure
            See :func:`calibrate`; the bad pixels of the band are masked.

        Raises
        ------
        DataError
            No master flat for the exposure's band (the message names the band and
            the bands available), or shape/binning mismatch.
        """
        name = exposure.filename or "exposure"
        flat = None
        if self.flats:
            if exposure.band is None:
                raise DataError(
                    f"{name}: exposure has no band (FILTER); cannot choose among the master "
                    f"flats for bands {', '.join(self.bands)}"
                )
            flat = self.flats.get(str(exposure.band))
            if flat is None:
                raise DataError(
                    f"{name}: no master flat for band {exposure.band!r}; master flats exist for "
                    f"band(s) {', '.join(self.bands)} (from {self.source or 'memory'})"
                )
        bad = self.bad_pixels.get(str(exposure.band) if flat is not None else None)
        return calibrate(
            exposure,
            bias=self.bias,
            dark=self.dark,
            flat=flat,
            bad_pixels=bad,
            gain=exposure.gain if exposure.gain is not None else self.gain,
            read_noise=exposure.read_noise if exposure.read_noise is not None else self.read_noise,
        )

    # ----------------------------------------------------------------- persistence

    def save(self, directory: str | Path) -> list[Path]:
        """Write the masters as ``bias.fits``, ``dark.fits`` and ``flat_<band>.fits``.

        Calls :func:`skyscene.io.write_calibration_set`.
        """
        from skyscene.io.calset import write_calibration_set

        return write_calibration_set(self, directory)

    @classmethod
    def load(
        cls,
        directory: str | Path,
        *,
        gain: float | None = None,
        flat_limits: tuple[float, float] = (0.5, 1.5),
        hot_sigma: float = 5.0,
    ) -> CalibrationSet:
        """Read masters written by :meth:`save` (calls :func:`skyscene.io.read_calibration_set`).

        Raises
        ------
        InputFileError
            The folder holds no master file.
        """
        from skyscene.io.calset import read_calibration_set

        return read_calibration_set(
            directory, gain=gain, flat_limits=flat_limits, hot_sigma=hot_sigma
        )
