"""Apply master bias, dark and flat to a science frame, propagating the variance."""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from skyscene.calibration.masters import MasterFrame, _check_master
from skyscene.errors import DataError, ParameterError
from skyscene.io import Exposure

__all__ = ["calibrate"]

log = logging.getLogger(__name__)


def _science_label(exposure: Exposure | None) -> str:
    name = exposure.filename if exposure is not None else None
    return f"science frame {name}" if name else "science frame"


def _check_binning(exposure: Exposure | None, master: Any) -> None:
    if exposure is None or not isinstance(master, MasterFrame):
        return
    sci_bin = exposure.meta.get("binning")
    cal_bin = master.meta.get("binning")
    if sci_bin is None or cal_bin is None:
        return
    sci_bin, cal_bin = tuple(int(v) for v in sci_bin), tuple(int(v) for v in cal_bin)
    if sci_bin != cal_bin:
        raise DataError(
            f"binning mismatch: {_science_label(exposure)} is binned "
            f"{sci_bin[0]}x{sci_bin[1]} but {master.label} is {cal_bin[0]}x{cal_bin[1]}"
        )


def _positive(value: Any, what: str, *, allow_zero: bool) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ParameterError(f"calibrate: {what} must be a number, got {value!r}") from None
    if not math.isfinite(out) or out < 0 or (out == 0 and not allow_zero):
        rule = "non-negative" if allow_zero else "positive"
        raise ParameterError(f"calibrate: {what} must be {rule}, got {value!r}")
    return out


def _shared_bias_coefficient(bias: Any, dark: Any) -> float:
    """``k`` when ``dark`` was made by subtracting this very ``bias`` (else 0)."""
    if not (isinstance(bias, MasterFrame) and isinstance(dark, MasterFrame)):
        return 0.0
    k = dark.meta.get("bias_coefficient")
    if k is None or dark.meta.get("bias_fingerprint") != bias.fingerprint:
        return 0.0
    return float(k)


def calibrate(
    exposure_or_array: Exposure | np.ndarray,
    *,
    bias: MasterFrame | np.ndarray | None = None,
    dark: MasterFrame | np.ndarray | None = None,
    flat: MasterFrame | np.ndarray | None = None,
    bad_pixels: np.ndarray | None = None,
    gain: float | None = None,
    read_noise: float | None = None,
    exptime: float | None = None,
) -> Exposure:
    """Bias-, dark- and flat-correct a raw frame with full variance propagation.

    Parameters
    ----------
    exposure_or_array : Exposure or ndarray, shape (ny, nx)
        Raw frame in ADU. Its mask is kept; its variance is ignored (the raw noise
        is modelled from ``gain`` and ``read_noise``).
    bias : MasterFrame or ndarray, optional
        Master bias, ADU. Plain arrays count as noiseless.
    dark : MasterFrame or ndarray, optional
        Master dark current, ADU/s, scaled by the exposure time.
    flat : MasterFrame or ndarray, optional
        Master flat (relative response, median 1).
    bad_pixels : ndarray of bool, optional
        Extra bad-pixel mask (True = bad), e.g. from :func:`bad_pixel_mask`.
    gain : float, optional
        e-/ADU. Default: the exposure's ``gain``. Required (for the shot noise).
    read_noise : float, optional
        ADU. Default: the exposure's ``read_noise``, else the bias master's
        ``meta['read_noise']``.
    exptime : float, optional
        Seconds; default: the exposure's ``exptime``. Required with ``dark``.

    Returns
    -------
    Exposure
        Calibrated data and variance (ADU, ADU²), mask = input mask | any master
        masked | flat ≤ 0 | ``bad_pixels``; other fields copied from the input.
        ``meta['calibration']`` records what was applied.

    Raises
    ------
    DataError
        A master's shape or binning differs from the science frame (the message
        names both).
    ParameterError
        Gain, read noise or (with a dark) exposure time unknown or invalid.

    Notes
    -----
    With raw ``R``, bias ``B``, dark current ``D``, exposure time ``t`` and flat ``F``,
    the calibrated value is ``C = (R - B - t D) / F``. First-order propagation with
    independent errors gives

    ``Var(C) = [Var(R) + Var(B) + t² Var(D)] / F² + C² Var(F) / F²``,

    where ``Var(R) = max(R - B, 0) / gain + read_noise²`` is the shot noise of all the
    charge collected above the bias (sky, sources *and* dark current) plus read
    noise, in ADU².

    A master dark made with this master bias (:func:`make_master_dark`) contains
    ``-k B`` with ``k = mean(1 / t_dark)``, so the bias error is shared: the bracket
    then reads ``Var(R) + (1 - t k)² Var(B) + t² [Var(D) - k² Var(B)]`` (recognised by
    the bias fingerprint stored with the dark). The much smaller correlation of the
    flat with the bias and dark (through ``1 / flat level``) is neglected.

    Examples
    --------
    >>> import numpy as np
    >>> raw = np.full((4, 4), 1100.0)
    >>> out = calibrate(raw, bias=np.full((4, 4), 100.0), gain=2.0, read_noise=5.0)
    >>> float(out.data[0, 0]), float(out.variance[0, 0])
    (1000.0, 525.0)
    """
    if isinstance(exposure_or_array, Exposure):
        exposure: Exposure | None = exposure_or_array
        raw = exposure_or_array.data
        in_mask = np.array(exposure_or_array.mask, dtype=bool)
    else:
        exposure = None
        raw = np.asarray(exposure_or_array, dtype=float)
        if raw.ndim != 2:
            raise DataError(f"calibrate needs a 2-D frame, got shape {raw.shape}")
        in_mask = ~np.isfinite(raw)
    shape = raw.shape
    target = _science_label(exposure)
    mask = in_mask.copy()
    zeros = np.zeros(shape)
    applied: dict[str, Any] = {}

    for name, master in (("bias", bias), ("dark", dark), ("flat", flat)):
        if master is not None:
            _check_binning(exposure, master)
            _check_master(master, name, shape, target)
    if bad_pixels is not None:
        bad_pixels = np.asarray(bad_pixels, bool)
        if bad_pixels.shape != shape:
            raise DataError(
                f"shape mismatch: bad-pixel mask has shape {bad_pixels.shape}, {target} has {shape}"
            )
        mask |= bad_pixels

    if gain is None and exposure is not None:
        gain = exposure.gain
    if gain is None:
        raise ParameterError(
            f"calibrate: the gain (e-/ADU) of {target} is unknown; give gain= or a GAIN "
            "header keyword"
        )
    gain = _positive(gain, "gain", allow_zero=False)
    if read_noise is None and exposure is not None:
        read_noise = exposure.read_noise
    if read_noise is None and isinstance(bias, MasterFrame):
        read_noise = bias.meta.get("read_noise")
    if read_noise is None:
        raise ParameterError(
            f"calibrate: the read noise (ADU) of {target} is unknown; give read_noise=, an "
            "RDNOISE header keyword or a master bias that measured it"
        )
    read_noise = _positive(read_noise, "read_noise", allow_zero=True)

    b_data, b_var = zeros, zeros
    if bias is not None:
        b_data, b_var, b_mask = _check_master(bias, "bias", shape, target)
        mask |= b_mask
        applied["bias"] = bias.label if isinstance(bias, MasterFrame) else "array"
    d_data, d_var, t = zeros, zeros, 0.0
    if dark is not None:
        if exptime is None and exposure is not None:
            exptime = exposure.exptime
        if exptime is None:
            raise ParameterError(
                f"calibrate: the exposure time of {target} is unknown; it is needed to scale "
                "the master dark (give exptime= or an EXPTIME header keyword)"
            )
        t = _positive(exptime, "exptime", allow_zero=True)
        d_data, d_var, d_mask = _check_master(dark, "dark", shape, target)
        mask |= d_mask
        applied["dark"] = dark.label if isinstance(dark, MasterFrame) else "array"
        applied["exptime"] = t
    f_data, f_var = np.ones(shape), zeros
    if flat is not None:
        f_data, f_var, f_mask = _check_master(flat, "flat", shape, target)
        mask |= f_mask | ~(f_data > 0)
        applied["flat"] = flat.label if isinstance(flat, MasterFrame) else "array"

    good = ~mask & np.isfinite(raw)
    above_bias = np.where(good, raw - b_data, 0.0)
    signal = above_bias - t * d_data
    flat_safe = np.where(good, f_data, 1.0)
    data = np.where(good, signal / flat_safe, 0.0)
    raw_var = np.maximum(above_bias, 0.0) / gain + read_noise**2
    k = _shared_bias_coefficient(bias, dark)
    if k:  # D = D' - k B: the bias error enters through B and t D
        own_dark_var = np.maximum(d_var - k**2 * b_var, 0.0)
        num_var = raw_var + (1.0 - t * k) ** 2 * b_var + t**2 * own_dark_var
        applied["bias_dark_correlation"] = k
    else:
        num_var = raw_var + b_var + t**2 * d_var
    variance = np.full(shape, np.inf)
    variance[good] = (num_var[good] + data[good] ** 2 * f_var[good]) / flat_safe[good] ** 2
    mask = ~good
    applied.update({"gain": gain, "read_noise": read_noise, "n_masked": int(mask.sum())})
    log.info(
        "calibrated %s (%s); %d pixels masked",
        target,
        ", ".join(k for k in ("bias", "dark", "flat") if k in applied) or "nothing applied",
        int(mask.sum()),
    )
    if exposure is None:
        return Exposure(
            data=data,
            variance=variance,
            mask=mask,
            exptime=exptime,
            gain=gain,
            read_noise=read_noise,
            meta={"calibration": applied},
        )
    meta = dict(exposure.meta)
    meta["calibration"] = applied
    return exposure.replace(
        data=data,
        variance=variance,
        mask=mask,
        gain=gain,
        read_noise=read_noise,
        meta=meta,
    )
