"""Science / reference / difference cutouts ("triplets") centred on candidates.

:func:`make_cutouts` cuts square stamps (odd size, 63 by default) on the science pixel
grid, centred on the pixel nearest each candidate (no resampling of the science image or
of D). The reference is put on the science grid through the two WCSs: an integer shift
is a plain slice, a sub-pixel translation Keys' cubic convolution (vectorised over
candidates), anything else (rotation, scale) a bicubic spline on a local affine map. Pixels off the image are NaN with ``CutoutBits.OFF_IMAGE``;
masked pixels are NaN with ``CutoutBits.MASKED``; variances are ``inf`` at both.

:func:`cutout_fits_bytes` gives one cutout as gzip-compressed FITS (primary image with
the cutout's WCS and ``BUNIT``; ``UNCERT`` variance HDU with ``UTYPE =
'VarianceUncertainty'`` and a ``MASK`` HDU, the layout ``astropy.nddata.CCDData.read``
understands), for an alert packet's ``stampData``.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from skyscene._validation import check_choice, check_int, check_odd
from skyscene.errors import DataError, ParameterError
from skyscene.io.stamps import STAMP_COMPRESSLEVEL, encode_fits_stamp

__all__ = ["CutoutBits", "Cutouts", "cutout_fits_bytes", "make_cutouts"]

KINDS = ("science", "reference", "difference")

# ZogyResult.mask bits where D itself is not usable (kept in sync with diffim.MaskBits)
_DIRECT = 1 | 2 | 4 | 32  # SCIENCE_MASKED | REFERENCE_MASKED | SATURATED | NONFINITE


class CutoutBits(enum.IntFlag):
    """Bits of the cutout mask planes (0 = good pixel).

    ``OFF_IMAGE``: outside the image (data NaN, variance inf). ``MASKED``: masked in the
    input exposure, or a ZOGY mask bit that makes D unusable (data NaN, variance inf).
    ``FLAGGED``: other ZOGY mask bits (edge band, near a masked region): data kept.
    """

    OFF_IMAGE = 1
    MASKED = 2
    FLAGGED = 4


@dataclass(frozen=True, kw_only=True, eq=False)
class Cutouts:
    """Cutout triplets of N candidates, on the science pixel grid.

    Attributes
    ----------
    science, reference, difference : ndarray of float32, (N, size, size)
        Science counts; reference counts (resampled onto the science grid); the proper
        difference D scaled to science counts (``D * flux_ratio / F_D``: a transient of
        science flux f shows as ``f P_D``). NaN off the image and at masked pixels.
    science_variance, reference_variance, difference_variance : ndarray of float32
        Variances (units squared); ``inf`` where the data are NaN. The difference variance
        is the background variance of D, ``(flux_ratio / F_D)**2``.
    science_mask, reference_mask, difference_mask : ndarray of uint8
        :class:`CutoutBits`.
    origin : ndarray of int, (N, 2)
        Science pixel ``(x0, y0)`` of each cutout's pixel ``[0, 0]``.
    candid : ndarray of int64, (N,)
        Candidate ids (0 when not given).
    wcs_cards : tuple
        ``(key, value, comment)`` of the science WCS header (CRPIX shifted per cutout),
        empty without a WCS.
    meta : dict
        ``size``, ``flux_ratio``, ``flux_zeropoint``, ``bunit``.
    """

    science: np.ndarray
    reference: np.ndarray
    difference: np.ndarray
    science_variance: np.ndarray
    reference_variance: np.ndarray
    difference_variance: np.ndarray
    science_mask: np.ndarray
    reference_mask: np.ndarray
    difference_mask: np.ndarray
    origin: np.ndarray
    candid: np.ndarray
    wcs_cards: tuple = ()
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.science.shape[0])

    @property
    def size(self) -> int:
        """Side of the square cutouts, pixels."""
        return int(self.science.shape[1])

    @property
    def off_image(self) -> np.ndarray:
        """``(N,)`` bool: the science cutout reaches beyond the image."""
        bit = np.uint8(CutoutBits.OFF_IMAGE)
        return np.asarray(((self.science_mask & bit) > 0).any(axis=(1, 2)))

    def __getitem__(self, index) -> Cutouts:
        """A subset (int, slice, index or boolean array) as a new :class:`Cutouts`."""
        if isinstance(index, int | np.integer):
            index = [int(index)]
        arrays = {
            name: getattr(self, name)[index]
            for name in (
                "science",
                "reference",
                "difference",
                "science_variance",
                "reference_variance",
                "difference_variance",
                "science_mask",
                "reference_mask",
                "difference_mask",
                "origin",
                "candid",
            )
        }
        return Cutouts(**arrays, wcs_cards=self.wcs_cards, meta=dict(self.meta))

    def triplet(self, i: int) -> np.ndarray:
        """``(3, size, size)`` science, reference, difference of cutout ``i``."""
        return np.stack([self.science[i], self.reference[i], self.difference[i]])

    def wcs(self, i: int):
        """The astropy WCS of cutout ``i`` (None without a WCS)."""
        if not self.wcs_cards:
            return None
        from astropy.io import fits
        from astropy.wcs import WCS

        header = fits.Header()
        for key, value, comment in _cards_for(self, i):
            header[key] = (value, comment)
        return WCS(header)

    def fits_bytes(self, i: int, kind: str, *, compresslevel: int = STAMP_COMPRESSLEVEL) -> bytes:
        """Gzip-compressed FITS of cutout ``i``; see :func:`cutout_fits_bytes`."""
        return cutout_fits_bytes(self, i, kind, compresslevel=compresslevel)


# --------------------------------------------------------------------------- building


def _box_indices(cx: np.ndarray, cy: np.ndarray, size: int):
    """Index grids ``(N, size, size)`` of boxes centred on integer pixels, and origins."""
    half = size // 2
    offs = np.arange(size) - half
    x0, y0 = cx - half, cy - half
    gx = cx[:, None, None] + offs[None, None, :]
    gy = cy[:, None, None] + offs[None, :, None]
    return np.broadcast_arrays(gx, gy), np.column_stack([x0, y0])


def _index(shape, gx: np.ndarray, gy: np.ndarray):
    """Flat indices of ``(gy, gx)`` clipped into ``shape`` and the off-image map."""
    ny, nx = shape
    off = (gx < 0) | (gy < 0) | (gx >= nx) | (gy >= ny)
    flat = np.minimum(np.maximum(gy, 0), ny - 1) * nx + np.minimum(np.maximum(gx, 0), nx - 1)
    return flat, off


def _take(image: np.ndarray, flat: np.ndarray, off: np.ndarray, fill=0.0):
    vals = image.reshape(-1).take(flat)
    if off.any():
        vals = np.where(off, fill, vals)
    return vals


def _gather(image: np.ndarray, gx: np.ndarray, gy: np.ndarray, fill=0.0):
    """``image[gy, gx]`` with ``fill`` where off the image; also the off-image map."""
    flat, off = _index(image.shape, gx, gy)
    return _take(image, flat, off, fill), off


def _finish(data, variance, masked, off, flagged=None):
    """NaN data / inf variance at masked and off-image pixels; the mask plane."""
    bits = np.zeros(data.shape, np.uint8)
    bits[off] |= np.uint8(CutoutBits.OFF_IMAGE)
    bits[masked & ~off] |= np.uint8(CutoutBits.MASKED)
    if flagged is not None:
        bits[flagged & ~(masked | off)] |= np.uint8(CutoutBits.FLAGGED)
    bad = off | masked
    data = data.astype(np.float32)
    data[bad] = np.nan
    variance = np.broadcast_to(np.asarray(variance, np.float32), data.shape).copy()
    variance[bad] = np.inf
    return data, variance, bits


def _keys_weights(frac: np.ndarray) -> np.ndarray:
    """``(N, 4)`` weights of Keys' cubic convolution (a = -0.5) at taps -1, 0, 1, 2."""
    t = np.abs(frac[:, None] - np.arange(-1, 3)[None, :])
    a = -0.5
    near = ((a + 2) * t - (a + 3)) * t * t + 1
    far = ((a * t - 5 * a) * t + 8 * a) * t - 4 * a
    return np.where(t <= 1, near, np.where(t < 2, far, 0.0))


def _translated(reference, shift_x, shift_y, gx, gy):
    """Reference at science grid + per-candidate offsets (a local translation), by
    separable cubic convolution (Keys) over all candidates at once."""
    ny, nx = reference.shape
    size = gx.shape[1]
    ix0 = np.floor(shift_x).astype(int)
    iy0 = np.floor(shift_y).astype(int)
    wx = _keys_weights(shift_x - ix0)  # taps at floor-1 .. floor+2
    wy = _keys_weights(shift_y - iy0)
    offs = np.arange(-1, size + 2)
    bx = (gx[:, 0, 0] + ix0)[:, None] + offs[None, :]  # (N, size + 3)
    by = (gy[:, 0, 0] + iy0)[:, None] + offs[None, :]
    cbx, cby = np.clip(bx, 0, nx - 1), np.clip(by, 0, ny - 1)
    block = reference.data[cby[:, :, None], cbx[:, None, :]]  # (N, size+3, size+3)
    # along x: out[:, r, u] = sum_i w_x[i] block[:, r, u + i]
    win = np.lib.stride_tricks.sliding_window_view(block, 4, axis=2)  # (N, s+3, s, 4)
    rows = np.einsum("nrui,ni->nru", win, wx)
    win = np.lib.stride_tricks.sliding_window_view(rows, 4, axis=1)  # (N, s, s, 4)
    data = np.einsum("nvui,ni->nvu", win, wy)
    # nearest reference pixel for variance and mask; off the image where it leaves it
    px = gx + shift_x[:, None, None]
    py = gy + shift_y[:, None, None]
    off = (px < -0.5) | (py < -0.5) | (px > nx - 0.5) | (py > ny - 0.5)
    jx = np.clip(np.floor(px + 0.5).astype(int), 0, nx - 1)
    jy = np.clip(np.floor(py + 0.5).astype(int), 0, ny - 1)
    return data, reference.variance[jy, jx], reference.mask[jy, jx], off


def _reference_on_science_grid(science, reference, cx, cy, size):
    """Reference data, variance, mask and off-image maps on the science cutout grids."""
    n = len(cx)
    (gx, gy), _ = _box_indices(cx, cy, size)
    if science.wcs is None or reference.wcs is None:
        if reference.shape != science.shape:
            raise DataError(
                f"reference shape {reference.shape} differs from science shape {science.shape} "
                "and the pair has no WCS to put the reference on the science grid: pass a "
                "reference already aligned to the science image"
            )
        data, off = _gather(reference.data, gx, gy)
        var, _ = _gather(reference.variance, gx, gy, np.inf)
        mask, _ = _gather(reference.mask, gx, gy, True)
        return data, var, mask, off
    # reference pixel of each cutout centre and the local Jacobian d(ref)/d(sci)
    xs = np.concatenate([cx, cx + 1.0, cx]).astype(float)
    ys = np.concatenate([cy, cy, cy + 1.0]).astype(float)
    world = science.wcs.pixel_to_world_values(xs, ys)
    rx, ry = reference.wcs.world_to_pixel_values(*world)
    rx, ry = np.asarray(rx, float), np.asarray(ry, float)
    if not (np.all(np.isfinite(rx)) and np.all(np.isfinite(ry))):
        raise DataError("the reference WCS does not cover the candidates' positions")
    r0x, r0y = rx[:n], ry[:n]
    jac = np.empty((n, 2, 2))
    jac[:, 0, 0], jac[:, 1, 0] = rx[n : 2 * n] - r0x, ry[n : 2 * n] - r0y
    jac[:, 0, 1], jac[:, 1, 1] = rx[2 * n :] - r0x, ry[2 * n :] - r0y
    shift_x, shift_y = np.round(r0x - cx), np.round(r0y - cy)
    integer = (
        np.all(np.abs(r0x - cx - shift_x) < 1e-3)
        and np.all(np.abs(r0y - cy - shift_y) < 1e-3)
        and np.all(np.abs(jac - np.eye(2)) * size < 1e-3)
    )
    if integer:
        rgx, rgy = gx + shift_x.astype(int)[:, None, None], gy + shift_y.astype(int)[:, None, None]
        data, off = _gather(reference.data, rgx, rgy)
        var, _ = _gather(reference.variance, rgx, rgy, np.inf)
        mask, _ = _gather(reference.mask, rgx, rgy, True)
        return data, var, mask, off
    if np.all(np.abs(jac - np.eye(2)) * size < 1e-2):
        return _translated(reference, r0x - cx, r0y - cy, gx, gy)
    # local affine map, bicubic spline on a padded sub-image per candidate
    half = size // 2
    u = np.arange(size) - half
    du, dv = np.meshgrid(u, u)  # du along x, dv along y
    ny, nx = reference.shape
    data = np.empty((n, size, size))
    var = np.empty((n, size, size))
    mask = np.empty((n, size, size), bool)
    off = np.empty((n, size, size), bool)
    for k in range(n):
        px = r0x[k] + jac[k, 0, 0] * du + jac[k, 0, 1] * dv
        py = r0y[k] + jac[k, 1, 0] * du + jac[k, 1, 1] * dv
        off[k] = (px < -0.5) | (py < -0.5) | (px > nx - 0.5) | (py > ny - 0.5)
        x0 = math.floor(px.min()) - 3
        y0 = math.floor(py.min()) - 3
        x1 = math.ceil(px.max()) + 4
        y1 = math.ceil(py.max()) + 4
        ix = np.clip(np.arange(x0, x1), 0, nx - 1)
        iy = np.clip(np.arange(y0, y1), 0, ny - 1)
        sub = reference.data[np.ix_(iy, ix)]
        data[k] = ndimage.map_coordinates(sub, [py - y0, px - x0], order=3, mode="nearest")
        jx = np.clip(np.floor(px + 0.5).astype(int), 0, nx - 1)
        jy = np.clip(np.floor(py + 0.5).astype(int), 0, ny - 1)
        var[k] = reference.variance[jy, jx]
        mask[k] = reference.mask[jy, jx]
    return data, var, mask, off


def make_cutouts(
    result,
    science,
    reference,
    x,
    y,
    *,
    size: int = 63,
    candid=None,
) -> Cutouts:
    """Cut science / reference / difference stamps centred on ``(x, y)``.

    Parameters
    ----------
    result : skyscene.diffim.ZogyResult
        The subtraction (D, F_D, flux ratio, mask) on the science grid.
    science, reference : Exposure
        The inputs of the subtraction. The reference is put on the science grid through
        the two WCSs (ZOGY does not keep its aligned reference); without WCSs it must
        already be on the science grid (same shape).
    x, y : array_like
        Science pixel positions (0-based); each cutout is centred on the nearest pixel.
    size : int
        Side of the square cutouts (odd), pixels.
    candid : array_like of int, optional
        Candidate ids to carry along.

    Returns
    -------
    Cutouts

    Examples
    --------
    >>> from skyscene.datasets.pairs import simulate_pair
    >>> from skyscene.diffim import Zogy
    >>> pair = simulate_pair(shape=(256, 256), rng=5, n_transients=1)
    >>> result = Zogy()(pair.science, pair.reference)
    >>> cut = make_cutouts(result, pair.science, pair.reference, [3.0], [60.0], size=15)
    >>> cut.science.shape, bool(cut.off_image[0])
    ((1, 15, 15), True)
    """
    check_odd("make_cutouts size", size, low=3)
    x = np.atleast_1d(np.asarray(x, float))
    y = np.atleast_1d(np.asarray(y, float))
    if x.shape != y.shape or x.ndim != 1:
        raise ParameterError(f"x and y must be 1-D of one length, got {x.shape} and {y.shape}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ParameterError("make_cutouts: candidate positions must be finite")
    if result.difference.shape != science.shape:
        raise DataError(
            f"ZOGY result shape {result.difference.shape} differs from the science shape "
            f"{science.shape}"
        )
    n = len(x)
    cx = np.floor(x + 0.5).astype(int)
    cy = np.floor(y + 0.5).astype(int)
    (gx, gy), origin = _box_indices(cx, cy, size)

    flat, off = _index(science.shape, gx, gy)
    sci = _take(science.data, flat, off)
    sci_var = _take(science.variance, flat, off, np.inf)
    sci_mask = _take(science.mask, flat, off, True)
    science_out = _finish(sci, sci_var, sci_mask, off)

    ref, ref_var, ref_mask, ref_off = _reference_on_science_grid(science, reference, cx, cy, size)
    reference_out = _finish(ref, ref_var, ref_mask, ref_off)

    scale = float(result.flux_ratio) / float(result.flux_zeropoint)
    diff = _take(result.difference, flat, off)
    bits = _take(result.mask, flat, off, 0)
    masked = (bits & _DIRECT) > 0
    difference_out = _finish(diff * scale, np.float32(scale**2), masked, off, flagged=bits > 0)

    cards: tuple = ()
    if science.wcs is not None:
        header = science.wcs.to_header(relax=True)
        cards = tuple(
            (key, header[key], header.comments[key])
            for key in header
            if key not in ("COMMENT", "HISTORY", "")
        )
    candid = np.zeros(n, np.int64) if candid is None else np.asarray(candid, np.int64).reshape(n)
    return Cutouts(
        science=science_out[0],
        reference=reference_out[0],
        difference=difference_out[0],
        science_variance=science_out[1],
        reference_variance=reference_out[1],
        difference_variance=difference_out[1],
        science_mask=science_out[2],
        reference_mask=reference_out[2],
        difference_mask=difference_out[2],
        origin=origin.astype(np.int64),
        candid=candid,
        wcs_cards=cards,
        meta={
            "size": int(size),
            "flux_ratio": float(result.flux_ratio),
            "flux_zeropoint": float(result.flux_zeropoint),
            "bunit": "adu",
        },
    )


# --------------------------------------------------------------------------- FITS bytes


def _cards_for(cutouts: Cutouts, i: int):
    x0, y0 = (int(v) for v in cutouts.origin[i])
    for key, value, comment in cutouts.wcs_cards:
        if key == "CRPIX1":
            value = float(value) - x0
        elif key == "CRPIX2":
            value = float(value) - y0
        yield key, value, comment


def cutout_fits_bytes(
    cutouts: Cutouts, i: int, kind: str, *, compresslevel: int = STAMP_COMPRESSLEVEL
) -> bytes:
    """One cutout as gzip-compressed FITS bytes (for an alert's ``stampData``).

    Parameters
    ----------
    cutouts : Cutouts
    i : int
        Index of the candidate.
    kind : {"science", "reference", "difference"}
    compresslevel : int
        gzip level, 0–9 (see :func:`skyscene.io.encode_fits_stamp`; 1 is the fastest
        that compresses; the float noise compresses little at any level).

    Returns
    -------
    bytes
        gzip of a FITS file: primary float32 image with the cutout's WCS, ``BUNIT``,
        ``CANDID``, ``STAMPTYP``, ``LTV1``/``LTV2`` (the cutout's place in the science
        image); HDU ``UNCERT`` (variance, ``UTYPE = 'VarianceUncertainty'``); HDU
        ``MASK`` (uint8 :class:`CutoutBits`). ``gzip.decompress`` then
        ``astropy.io.fits.open`` (or ``CCDData.read`` of the file) reads it.
    """
    check_choice("cutout kind", kind, KINDS)
    check_int("compresslevel", compresslevel, low=0, high=9)
    n = len(cutouts)
    if not -n <= int(i) < n:
        raise ParameterError(f"cutout index {i} out of range for {n} cutouts")
    i = int(i) % n
    data = getattr(cutouts, kind)[i]
    variance = getattr(cutouts, f"{kind}_variance")[i]
    mask = getattr(cutouts, f"{kind}_mask")[i]
    x0, y0 = (int(v) for v in cutouts.origin[i])
    return encode_fits_stamp(
        data,
        variance=variance,
        mask=mask,
        wcs=tuple(_cards_for(cutouts, i)),
        bunit=cutouts.meta.get("bunit", "adu"),
        cards=(
            ("STAMPTYP", kind, "science, reference or difference"),
            ("CANDID", int(cutouts.candid[i]), "skyscene candidate id"),
            ("LTV1", float(-x0), "cutout origin: x0 = -LTV1 (science pixels)"),
            ("LTV2", float(-y0), "cutout origin: y0 = -LTV2 (science pixels)"),
            ("FLUXRAT", float(cutouts.meta.get("flux_ratio", 1.0)), "F_n / F_r of the pair"),
        ),
        mask_comment="CutoutBits: 1 off image, 2 masked, 4 flagged",
        compresslevel=compresslevel,
    )
