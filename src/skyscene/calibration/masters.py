"""Master bias, dark and flat frames; bad-pixel masks.

All values are in ADU (detector counts). A master dark is a dark *current* in ADU
per second; a master flat is a relative response normalised to median 1.

The :class:`MasterFrame` container and its FITS files (:func:`read_master`,
:func:`write_master`) live in :mod:`skyscene.io.masters` (algorithms do no file I/O);
they are re-exported here so that existing imports keep working.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np

from skyscene.calibration.combine import CombineConfig, _frame_name, combine_frames
from skyscene.errors import DataError, ParameterError
from skyscene.io.masters import MASTER_KINDS, MasterFrame, read_master, write_master

__all__ = [
    "MASTER_KINDS",
    "MasterFrame",
    "bad_pixel_mask",
    "make_master_bias",
    "make_master_dark",
    "make_master_flat",
    "read_master",
    "write_master",
]

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- helpers


def _frames(frames, kind: str) -> list:
    if isinstance(frames, np.ndarray):
        frames = [frames] if frames.ndim == 2 else list(frames)
    frames = list(frames)
    if not frames:
        raise ParameterError(f"master {kind} needs at least one frame, got none")
    return frames


def _data(frame) -> np.ndarray:
    return np.asarray(getattr(frame, "data", frame), dtype=float)


def _frame_value(frames, values, attr: str, what: str, kind: str) -> list[float | None]:
    """Per-frame scalar from an explicit argument or from the Exposure attribute."""
    n = len(frames)
    if values is not None:
        arr = np.asarray(values, dtype=float).reshape(-1)
        if arr.size == 1:
            arr = np.full(n, arr[0])
        if arr.size != n:
            raise ParameterError(f"master {kind}: got {arr.size} values of {what} for {n} frames")
        return [float(v) for v in arr]
    return [getattr(f, attr, None) for f in frames]


def _common(frames, values, attr: str, what: str, kind: str) -> float | None:
    """One value of gain or read noise for the stack (explicit, else from the frames)."""
    if values is not None:
        value = float(values)
        valid = math.isfinite(value) and (value > 0 if attr == "gain" else value >= 0)
        if not valid:
            raise ParameterError(f"master {kind}: {what} must be positive, got {values!r}")
        return value
    found = sorted({float(v) for f in frames if (v := getattr(f, attr, None)) is not None})
    if len(found) > 1:
        log.warning("master %s: frames disagree on %s (%s); using the median", kind, what, found)
    return float(np.median(found)) if found else None


def _binning(frames, kind: str) -> tuple[int, int] | None:
    binning = None
    for i, frame in enumerate(frames):
        meta = getattr(frame, "meta", None)
        value = meta.get("binning") if isinstance(meta, dict) else None
        if value is None:
            continue
        value = tuple(int(v) for v in value)
        if binning is None:
            binning, first = value, i
        elif value != binning:
            raise DataError(
                f"master {kind}: {_frame_name(frame, i)} has binning {value[0]}x{value[1]} but "
                f"{_frame_name(frames[first], first)} has {binning[0]}x{binning[1]}"
            )
    return binning  # type: ignore[return-value]


def _files(frames) -> list[str]:
    out = []
    for frame in frames:
        meta = getattr(frame, "meta", None)
        name = meta.get("filename") if isinstance(meta, dict) else None
        if name:
            out.append(str(name))
    return out


def _check_master(master, kind: str, shape, target: str):
    """(data, variance, mask) of a master or plain array, 0 where masked, shape checked."""
    if isinstance(master, MasterFrame):
        data, variance = master.data, master.variance
        mask = np.asarray(master.mask, bool)
        label = master.label
    else:
        data = np.asarray(master, dtype=float)
        variance, mask = np.zeros_like(data), ~np.isfinite(data)
        label = f"{kind} array"
    if data.shape != tuple(shape):
        raise DataError(
            f"shape mismatch: {label} has shape {data.shape}, {target} has {tuple(shape)}"
        )
    return np.where(mask, 0.0, data), np.where(mask, 0.0, variance), mask


def _poisson_variance(signal: np.ndarray, gain: float, read_noise: float) -> np.ndarray:
    """Variance (ADU^2) of a raw pixel with ``signal`` ADU above bias."""
    return np.maximum(signal, 0.0) / gain + read_noise**2


def _config(config: CombineConfig | None) -> CombineConfig:
    return CombineConfig() if config is None else config


def _efficiency(config: CombineConfig) -> float:
    return math.pi / 2 if config.method == "median" else 1.0


# --------------------------------------------------------------------------- masters


def _measure_read_noise(frames) -> float:
    """Read noise (ADU) from the pixel-wise scatter of a stack of bias frames."""
    from astropy.stats import sigma_clipped_stats

    n = len(frames)
    if n < 2:
        raise DataError(
            f"master bias: cannot measure the read noise from {n} frame; give read_noise= "
            "(or RDNOISE in the headers) or at least two frames"
        )
    first = _data(frames[0])
    offset = float(np.nanmedian(first))
    total = np.zeros(first.shape)
    total_sq = np.zeros(first.shape)
    for frame in frames:  # running sums: one frame in memory at a time
        values = _data(frame) - offset
        total += values
        total_sq += values**2
    variance = (total_sq - total**2 / n) / (n - 1)
    finite = variance[np.isfinite(variance)]
    if finite.size == 0:
        raise DataError("master bias: no finite pixel to measure the read noise")
    mean_var, _, _ = sigma_clipped_stats(finite, sigma=5.0, maxiters=10)
    return float(np.sqrt(max(mean_var, 0.0)))


def make_master_bias(
    frames,
    *,
    read_noise: float | None = None,
    combine: CombineConfig | None = None,
) -> MasterFrame:
    """Combine bias (zero) frames into a master bias.

    Parameters
    ----------
    frames : sequence of ndarray (ny, nx) or Exposure
        Bias frames in ADU.
    read_noise : float, optional
        Read noise in ADU. Default: the frames' ``read_noise`` if they carry one,
        otherwise measured from the stack (``meta['read_noise_source']`` says which).
    combine : CombineConfig, optional
        Clipping and estimator (default: 3-sigma clipped mean).

    Returns
    -------
    MasterFrame
        ``kind="bias"``; variance ``read_noise**2 / n_used`` (times pi/2 for a
        median); ``meta['read_noise']`` in ADU.

    Notes
    -----
    The measured read noise is the square root of the sigma-clipped mean, over
    pixels, of the per-pixel sample variance of the stack (cosmic rays and other
    outliers are removed by the clipping over pixels). This one number is used
    instead of the per-pixel sample variance, which, from a handful of frames, is
    too noisy to clip or weight with.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> frames = 1000.0 + 5.0 * rng.standard_normal((10, 64, 64))
    >>> bias = make_master_bias(frames)
    >>> round(bias.meta["read_noise"], 1), bias.n_frames
    (5.0, 10)
    """
    frames = _frames(frames, "bias")
    config = _config(combine)
    source = "argument"
    rn = _common(frames, read_noise, "read_noise", "read noise", "bias")
    if read_noise is None and rn is not None:
        source = "header"
    if rn is not None and rn <= 0:
        log.warning("master bias: read noise %r is not positive; measuring it instead", rn)
        rn = None
    if rn is None:
        rn = _measure_read_noise(frames)
        source = "measured"
    combined = combine_frames(frames, config=config, variances=[rn**2] * len(frames))
    variance = combined.variance
    has = combined.n_used > 0
    log.info("master bias from %d frames, read noise %.3g ADU (%s)", len(frames), rn, source)
    return MasterFrame(
        data=combined.data,
        variance=variance,
        mask=~has,
        n_frames=len(frames),
        kind="bias",
        meta={
            "files": _files(frames),
            "binning": _binning(frames, "bias"),
            "read_noise": rn,
            "read_noise_source": source,
            "combine": config.to_dict(),
        },
    )


def make_master_dark(
    frames,
    *,
    bias,
    exptime: float | Sequence[float] | None = None,
    gain: float | None = None,
    read_noise: float | None = None,
    combine: CombineConfig | None = None,
) -> MasterFrame:
    """Combine dark frames into a master dark current (ADU per second).

    Each dark is bias-subtracted and divided by its exposure time, then the stack is
    sigma-clip combined, so darks of different lengths can be mixed.

    Parameters
    ----------
    frames : sequence of ndarray (ny, nx) or Exposure
        Raw dark frames in ADU.
    bias : MasterFrame, ndarray or None
        Master bias subtracted from each dark (None: darks are already bias-free).
    exptime : float or sequence of float, optional
        Exposure time(s) in seconds; default: the frames' ``exptime``.
    gain : float, optional
        e-/ADU, for the shot noise of each dark. Default: the frames' ``gain``. When
        unknown, the variance comes from the per-pixel scatter of the stack.
    read_noise : float, optional
        ADU. Default: the frames', else the bias master's ``meta['read_noise']``.
    combine : CombineConfig, optional

    Returns
    -------
    MasterFrame
        ``kind="dark"``, data in ADU/s.

    Raises
    ------
    ParameterError
        An exposure time is missing or not positive.
    DataError
        Shapes or binnings differ.

    Notes
    -----
    With ``d_i = (r_i - B) / t_i`` and shot + read noise per dark,
    ``Var(d) = sum_i Var(r_i) / t_i**2 / n**2 + Var(B) * k**2`` with
    ``k = mean(1 / t_i)``: the bias error is common to all darks and does not average
    down. ``k`` and the bias fingerprint are kept in ``meta`` because the same bias
    error enters a science frame twice (through ``B`` and through ``t D``).
    """
    frames = _frames(frames, "dark")
    config = _config(combine)
    shape = _data(frames[0]).shape
    times = _frame_value(frames, exptime, "exptime", "exposure time", "dark")
    for i, t in enumerate(times):
        if t is None or not (math.isfinite(t) and t > 0):
            raise ParameterError(
                f"master dark: exposure time of {_frame_name(frames[i], i)} is {t!r}; it must "
                "be positive (pass exptime= or set EXPTIME)"
            )
    t_arr = np.asarray(times, dtype=float)
    if bias is None:
        b_data, b_var, b_mask = np.zeros(shape), np.zeros(shape), np.zeros(shape, bool)
    else:
        b_data, b_var, b_mask = _check_master(bias, "bias", shape, "the dark frames")
    g = _common(frames, gain, "gain", "gain", "dark")
    rn = _common(frames, read_noise, "read_noise", "read noise", "dark")
    if rn is None and isinstance(bias, MasterFrame):
        rn = bias.meta.get("read_noise")
    # float32 working copies: a stack of large frames must fit in memory
    signals = [(_data(f) - b_data).astype(np.float32) for f in frames]
    variances = None
    if g is not None and rn is not None:
        variances = [_poisson_variance(s, g, rn).astype(np.float32) for s in signals]
    else:
        log.info("master dark: gain or read noise unknown; variance from the stack scatter")
    masks = [np.zeros(shape, bool) | b_mask for _ in frames]
    combined = combine_frames(
        [_Frame(s, getattr(f, "mask", None)) for s, f in zip(signals, frames, strict=True)],
        config=config,
        scale=1.0 / t_arr,
        variances=variances,
        masks=masks,
    )
    bias_coefficient = float(np.mean(1.0 / t_arr))
    variance = combined.variance + b_var * bias_coefficient**2
    bias_link = {}
    if isinstance(bias, MasterFrame):
        bias_link = {"bias_coefficient": bias_coefficient, "bias_fingerprint": bias.fingerprint}
    return MasterFrame(
        data=combined.data,
        variance=variance,
        mask=combined.mask | b_mask,
        n_frames=len(frames),
        kind="dark",
        meta={
            "files": _files(frames),
            "binning": _binning(frames, "dark"),
            "exptime": [float(t) for t in t_arr],
            "gain": g,
            "read_noise": rn,
            "combine": config.to_dict(),
            **bias_link,
        },
    )


def make_master_flat(
    frames,
    *,
    bias,
    dark=None,
    exptime: float | Sequence[float] | None = None,
    gain: float | None = None,
    read_noise: float | None = None,
    band: str | None = None,
    combine: CombineConfig | None = None,
) -> MasterFrame:
    """Combine flat-field frames of one band into a master flat normalised to median 1.

    Each flat is bias- and dark-subtracted, divided by its own sigma-clipped median,
    then the stack is sigma-clip combined and the result divided by its median.

    Parameters
    ----------
    frames : sequence of ndarray (ny, nx) or Exposure
        Raw flat frames of one band, ADU.
    bias : MasterFrame, ndarray or None
        Master bias (None: flats are already bias-free).
    dark : MasterFrame or ndarray, optional
        Master dark current (ADU/s), scaled by each flat's exposure time.
    exptime : float or sequence of float, optional
        Needed only with ``dark``; default: the frames' ``exptime``.
    gain, read_noise : float, optional
        As in :func:`make_master_dark`.
    band : str, optional
        Filter of the flats (default: the frames' common ``band``).
    combine : CombineConfig, optional

    Returns
    -------
    MasterFrame
        ``kind="flat"``, ``meta['band']``, ``meta['levels']`` (the medians, ADU).

    Raises
    ------
    DataError
        A flat has a non-positive median level, or shapes/binnings/bands differ.
    ParameterError
        ``dark`` given but an exposure time is missing.

    Notes
    -----
    ``f_i = (r_i - B - t_i D) / m_i``; the common error of the bias and dark adds
    ``Var(B) mean(1/m_i)**2 + Var(D) mean(t_i/m_i)**2`` to the variance of the
    combined value; the final normalisation by the median (a number measured on
    ~all pixels) is treated as exact.
    """
    from astropy.stats import sigma_clipped_stats

    frames = _frames(frames, "flat")
    config = _config(combine)
    shape = _data(frames[0]).shape
    n = len(frames)
    if band is None:
        bands = {getattr(f, "band", None) for f in frames} - {None}
        if len(bands) > 1:
            raise DataError(
                f"master flat: frames of several bands {sorted(map(str, bands))}; combine one band"
            )
        band = bands.pop() if bands else None
    if bias is None:
        b_data, b_var, b_mask = np.zeros(shape), np.zeros(shape), np.zeros(shape, bool)
    else:
        b_data, b_var, b_mask = _check_master(bias, "bias", shape, "the flat frames")
    times = np.zeros(n)
    d_data, d_var, d_mask = np.zeros(shape), np.zeros(shape), np.zeros(shape, bool)
    if dark is not None:
        d_data, d_var, d_mask = _check_master(dark, "dark", shape, "the flat frames")
        values = _frame_value(frames, exptime, "exptime", "exposure time", "flat")
        for i, t in enumerate(values):
            if t is None or not (math.isfinite(t) and t >= 0):
                raise ParameterError(
                    f"master flat: exposure time of {_frame_name(frames[i], i)} is {t!r}; it is "
                    "needed to subtract the dark (pass exptime= or set EXPTIME)"
                )
        times = np.asarray(values, dtype=float)
    g = _common(frames, gain, "gain", "gain", "flat")
    rn = _common(frames, read_noise, "read_noise", "read noise", "flat")
    if rn is None and isinstance(bias, MasterFrame):
        rn = bias.meta.get("read_noise")
    base_mask = b_mask | d_mask
    signals, masks, levels = [], [], []
    for i, frame in enumerate(frames):
        raw = _data(frame)
        signal = raw - b_data - times[i] * d_data
        mask = base_mask | ~np.isfinite(signal)
        frame_mask = getattr(frame, "mask", None)
        if frame_mask is not None:
            mask = mask | np.asarray(frame_mask, bool)
        if mask.all():
            raise DataError(f"master flat: {_frame_name(frame, i)} has no good pixel")
        _, level, _ = sigma_clipped_stats(signal[~mask], sigma=3.0, maxiters=5)
        if not (np.isfinite(level) and level > 0):
            raise DataError(
                f"master flat: {_frame_name(frame, i)} has median level {float(level):.4g} ADU "
                "after bias/dark subtraction; a flat needs a positive level"
            )
        signals.append(signal.astype(np.float32))
        masks.append(mask)
        levels.append(float(level))
    m = np.asarray(levels)
    variances = None
    if g is not None and rn is not None:
        variances = [
            _poisson_variance(_data(f) - b_data, g, rn).astype(np.float32) for f in frames
        ]  # shot noise of all charge above bias (sky/lamp and dark)
    else:
        log.info("master flat: gain or read noise unknown; variance from the stack scatter")
    combined = combine_frames(
        signals, config=config, scale=1.0 / m, variances=variances, masks=masks
    )
    variance = combined.variance + b_var * np.mean(1.0 / m) ** 2 + d_var * np.mean(times / m) ** 2
    mask = combined.mask | base_mask
    good = ~mask & (combined.data > 0)
    if not good.any():
        raise DataError("master flat: no pixel has a positive combined response")
    norm = float(np.median(combined.data[good]))
    log.info("master flat %s from %d frames (levels %s ADU)", band, n, [round(v) for v in levels])
    return MasterFrame(
        data=combined.data / norm,
        variance=variance / norm**2,
        mask=mask,
        n_frames=n,
        kind="flat",
        meta={
            "files": _files(frames),
            "binning": _binning(frames, "flat"),
            "band": band,
            "levels": levels,
            "exptime": [float(t) for t in times] if dark is not None else None,
            "gain": g,
            "read_noise": rn,
            "combine": config.to_dict(),
        },
    )


class _Frame:
    """A bare (data, mask) pair for :func:`combine_frames`."""

    def __init__(self, data: np.ndarray, mask) -> None:
        self.data = data
        self.mask = mask


# --------------------------------------------------------------------------- bad pixels


def bad_pixel_mask(
    master_flat,
    master_dark=None,
    *,
    low: float = 0.5,
    high: float = 1.5,
    hot_sigma: float = 5.0,
) -> np.ndarray:
    """Bad pixels from a master flat (and optionally a master dark).

    Parameters
    ----------
    master_flat : MasterFrame or ndarray, shape (ny, nx)
        Relative response, median 1.
    master_dark : MasterFrame or ndarray, optional
        Dark current (ADU/s).
    low, high : float
        Good flat response interval ``[low, high]``.
    hot_sigma : float
        A dark pixel is hot when its dark current exceeds the sigma-clipped median by
        ``hot_sigma`` times the sigma-clipped standard deviation of the master dark.

    Returns
    -------
    ndarray of bool, shape (ny, nx)
        True = bad (flat out of range, hot, or masked in a master).

    Raises
    ------
    ParameterError
        ``low >= high`` or ``hot_sigma <= 0``.
    DataError
        The flat and dark have different shapes.

    Examples
    --------
    >>> import numpy as np
    >>> flat = np.ones((4, 4)); flat[1, 2] = 0.1
    >>> np.argwhere(bad_pixel_mask(flat)).tolist()
    [[1, 2]]
    """
    from astropy.stats import sigma_clipped_stats

    if not (low < high):
        raise ParameterError(f"bad_pixel_mask: low must be below high, got low={low}, high={high}")
    if not hot_sigma > 0:
        raise ParameterError(f"bad_pixel_mask: hot_sigma must be positive, got {hot_sigma}")
    if isinstance(master_flat, MasterFrame):
        flat, bad = master_flat.data, np.array(master_flat.mask, dtype=bool)
    else:
        flat = np.asarray(master_flat, dtype=float)
        bad = ~np.isfinite(flat)
    flat = np.where(bad, 1.0, flat)
    bad |= (flat < low) | (flat > high)
    n_flat = int(bad.sum())
    n_hot = 0
    if master_dark is not None:
        dark, dark_mask, _ = (
            (master_dark.data, master_dark.mask, None)
            if isinstance(master_dark, MasterFrame)
            else (np.asarray(master_dark, dtype=float), None, None)
        )
        if dark_mask is None:
            dark_mask = ~np.isfinite(dark)
        if dark.shape != flat.shape:
            raise DataError(
                f"shape mismatch: master dark has shape {dark.shape}, master flat has {flat.shape}"
            )
        _, median, std = sigma_clipped_stats(dark[~dark_mask], sigma=3.0, maxiters=10)
        hot = np.zeros(flat.shape, bool)
        hot[~dark_mask] = dark[~dark_mask] > median + hot_sigma * std
        n_hot = int(hot.sum())
        bad |= hot | dark_mask
    log.info("bad pixels: %d from the flat, %d hot, %d in total", n_flat, n_hot, int(bad.sum()))
    return bad
