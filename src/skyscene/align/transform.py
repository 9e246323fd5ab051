"""Alignment of an image (or a catalog) to a reference frame.

The transform is a 3×3 affine matrix ``M`` mapping homogeneous image pixel
coordinates ``(x, y, 1)`` to reference pixels. With enough stars it is a similarity
transform found by astroalign's asterism matching; with too few stars a translation
is measured by phase cross-correlation; the result records why (``fallback``) and the
fallback is logged (INFO for too few stars, WARNING when detection or matching
failed). Failure raises :class:`~skyscene.errors.AlignmentError`; callers log and
exclude the frame.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from skyscene._validation import check_positive
from skyscene.errors import AlignmentError, ParameterError

__all__ = [
    "AlignmentResult",
    "find_transform",
    "find_transform_from_positions",
    "translation_by_cross_correlation",
    "warp",
]

log = logging.getLogger(__name__)

MIN_STARS = 5

# What star detection raises on data it cannot use (all masked, bad values, sep's
# buffer limits as MemoryError/OverflowError); :func:`find_transform` then falls back.
_DETECTION_ERRORS = (ValueError, MemoryError, OverflowError)


@dataclass(frozen=True, kw_only=True, eq=False)
class AlignmentResult:
    """An image → reference transform.

    Attributes
    ----------
    matrix : ndarray, shape (3, 3)
        Affine matrix mapping ``(x, y, 1)`` of the image to reference pixels.
    method : str
        ``"identity"``, ``"astroalign"`` or ``"cross-correlation"``.
    n_matches : int
        Matched stars (0 for cross-correlation).
    rms : float
        RMS residual of the matched stars, pixels (NaN for cross-correlation).
    fallback : str or None
        Why :func:`find_transform` fell back from star matching to cross-correlation
        (``"too few stars ..."``, ``"star detection failed: ..."``, ``"star matching
        failed: ..."``); None when the first method was used.
    """

    matrix: np.ndarray
    method: str
    n_matches: int
    rms: float
    fallback: str | None = None

    @classmethod
    def identity(cls) -> AlignmentResult:
        return cls(matrix=np.eye(3), method="identity", n_matches=0, rms=0.0)

    def apply(self, xy) -> np.ndarray:
        """Map image positions ``(N, 2)`` to the reference frame."""
        xy = np.atleast_2d(np.asarray(xy, dtype=float))
        return xy @ self.matrix[:2, :2].T + self.matrix[:2, 2]

    def inverse(self, xy) -> np.ndarray:
        """Map reference positions ``(N, 2)`` into the image."""
        inv = np.linalg.inv(self.matrix)
        xy = np.atleast_2d(np.asarray(xy, dtype=float))
        return xy @ inv[:2, :2].T + inv[:2, 2]

    @property
    def shift(self) -> tuple[float, float]:
        """Translation part ``(dx, dy)``, pixels."""
        return float(self.matrix[0, 2]), float(self.matrix[1, 2])

    @property
    def scale(self) -> float:
        return float(np.sqrt(abs(np.linalg.det(self.matrix[:2, :2]))))

    @property
    def rotation(self) -> float:
        """Rotation angle, radians."""
        return float(np.arctan2(self.matrix[1, 0], self.matrix[0, 0]))


def _asterism_invariants(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """astroalign's ``_generate_invariants``, vectorised (same arrays, same order).

    For each star, the triangles of its ``NUM_NEAREST_NEIGHBORS`` nearest stars (itself
    included), vertices ordered ``(a, b, c)`` as ``_arrangetriplet`` does (``a`` where
    the two shortest sides meet, ...), invariants ``(L3/L2, L2/L1)``; duplicates dropped
    keeping the last occurrence. astroalign's Python loop over the ~500 triangles of
    50 stars and its quadratic duplicate search took ~7 ms per star list (issue 15).
    """
    from itertools import combinations

    import astroalign
    from scipy.spatial import KDTree

    def norm(d):  # as np.linalg.norm of one 2-vector (a dot product): equal to the last bit
        return np.sqrt(np.matmul(d[:, None, :], d[:, :, None]).reshape(-1))

    knn = min(len(points), astroalign.NUM_NEAREST_NEIGHBORS)
    _, near = KDTree(points).query(points, knn)
    near = np.asarray(near).reshape(len(points), knn)
    combos = np.array(list(combinations(range(knn), 3)), dtype=int)  # itertools order
    tri = near[:, combos].reshape(-1, 3)  # (n_triangles, 3) star indices
    v = points[tri]  # (n, 3, 2)
    # side k joins vertices k and k + 1 (mod 3), as in _arrangetriplet
    sides = np.stack([norm(v[:, k] - v[:, (k + 1) % 3]) for k in range(3)], axis=1)
    order = np.argsort(sides, axis=1)  # l1, l2, l3 (shortest first)
    rows = np.arange(len(tri))[:, None]
    # the vertex shared by two sides is the one opposite the third: (third + 2) mod 3
    arranged = tri[rows, (order[:, [2, 0, 1]] + 2) % 3]
    va, vb, vc = (points[arranged[:, k]] for k in range(3))
    lengths = np.sort(
        np.stack(
            [
                norm(va - vb),
                norm(vb - vc),
                norm(va - vc),
            ],
            axis=1,
        ),
        axis=1,
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = np.stack([lengths[:, 2] / lengths[:, 1], lengths[:, 1] / lengths[:, 0]], axis=1)
    seen: set = set()
    keep = []
    for pos in range(len(inv) - 1, -1, -1):  # the last of equal invariants is kept
        key = (float(inv[pos, 0]), float(inv[pos, 1]))
        if key not in seen:
            seen.add(key)
            keep.append(pos)
    keep.reverse()
    return inv[keep], arranged[keep]


_REFERENCE_INVARIANTS: dict[bytes, tuple] = {}


def _reference_invariants(points: np.ndarray) -> tuple:
    """Invariants and their KD-tree of a reference star list, kept per process.

    Every frame of a filter is matched to the same reference list: its invariants are
    made once per worker instead of once per frame.
    """
    from scipy.spatial import KDTree

    key = points.shape[0].to_bytes(4, "little") + points.tobytes()
    hit = _REFERENCE_INVARIANTS.get(key)
    if hit is None:
        if len(_REFERENCE_INVARIANTS) > 32:
            _REFERENCE_INVARIANTS.clear()
        inv, asterisms = _asterism_invariants(points)
        hit = _REFERENCE_INVARIANTS[key] = (KDTree(inv), asterisms)
    return hit


def _match_positions(source: np.ndarray, target: np.ndarray):
    """astroalign's ``find_transform`` for two star lists, with the faster invariants.

    The same steps and constants (``query_ball_tree`` radius 0.1, its RANSAC and the
    choice of the best pair per source star), so the same transforms.
    """
    import astroalign
    from scipy.spatial import KDTree

    if len(source) < 3 or len(target) < 3:
        raise ValueError("fewer than 3 stars in a list")
    source_inv, source_asterisms = _asterism_invariants(source)
    target_tree, target_asterisms = _reference_invariants(target)
    matches_list = KDTree(source_inv).query_ball_tree(target_tree, r=0.1)
    matches = [
        list(zip(t1, t2, strict=True))
        for t1, t2_list in zip(source_asterisms, matches_list, strict=True)
        for t2 in target_asterisms[t2_list]
    ]
    matches = np.array(matches)
    inv_model = astroalign._MatchTransform(source, target)
    n_invariants = len(matches)
    min_matches = max(1, min(10, int(n_invariants * astroalign.MIN_MATCHES_FRACTION)))
    if (len(source) == 3 or len(target) == 3) and len(matches) == 1:
        best_t = inv_model.fit(matches)
        inlier_ind = np.arange(len(matches))
    else:
        best_t, inlier_ind = astroalign._ransac(
            matches, inv_model, astroalign.PIXEL_TOL, min_matches
        )
    inliers = matches[inlier_ind]
    pairs = {tuple(pair) for pair in inliers.reshape(-1, 2)}
    best: dict = {}  # per source star, the pair with the smallest reprojection error
    for s_i, t_i in pairs:
        pred = astroalign.matrix_transform(source[s_i], best_t.params)
        error = np.linalg.norm(pred - target[t_i])
        if s_i not in best or error < best[s_i][1]:
            best[s_i] = (t_i, error)
    s_idx = np.array(list(best), dtype=int)
    d_idx = np.array([best[k][0] for k in best], dtype=int)
    return best_t, (source[s_idx], target[d_idx])


def find_transform_from_positions(
    xy, reference_xy, *, max_control_points: int = 50
) -> AlignmentResult:
    """Similarity transform between two star lists (brightest first) by asterism matching.

    Raises
    ------
    AlignmentError
        Fewer than 5 stars in either list, or astroalign finds no consistent match.
    """
    import astroalign

    xy = np.atleast_2d(np.asarray(xy, dtype=float))[:max_control_points]
    reference_xy = np.atleast_2d(np.asarray(reference_xy, dtype=float))[:max_control_points]
    if len(xy) < MIN_STARS or len(reference_xy) < MIN_STARS:
        raise AlignmentError(
            f"too few stars to match ({len(xy)} in image, {len(reference_xy)} in reference; "
            f"need {MIN_STARS})"
        )
    try:
        transform, (src, dst) = _match_positions(xy, reference_xy)
    except (astroalign.MaxIterError, ValueError, TypeError) as exc:
        raise AlignmentError(f"no asterism match between the star lists: {exc}") from exc
    matrix = np.asarray(transform.params, dtype=float)
    pred = src @ matrix[:2, :2].T + matrix[:2, 2]
    rms = float(np.sqrt(np.mean(np.sum((pred - dst) ** 2, axis=1))))
    return AlignmentResult(matrix=matrix, method="astroalign", n_matches=len(src), rms=rms)


def translation_by_cross_correlation(
    image, reference, *, mask=None, reference_mask=None, min_significance: float = 8.0
) -> AlignmentResult:
    """Translation by phase cross-correlation (sub-pixel, upsampled by 20).

    The correlation peak must stand ``min_significance`` robust sigmas above the
    correlation surface, otherwise :class:`AlignmentError` is raised.
    """
    from scipy import fft
    from skimage.registration import phase_cross_correlation

    image = np.asarray(image, dtype=float)
    reference = np.asarray(reference, dtype=float)
    if image.shape != reference.shape:
        raise AlignmentError(
            f"cross-correlation needs equal shapes, got {image.shape} and {reference.shape}"
        )

    def prep(arr, msk):
        bad = ~np.isfinite(arr) if msk is None else (np.asarray(msk, bool) | ~np.isfinite(arr))
        if bad.all():
            raise AlignmentError("cross-correlation: image is entirely masked or non-finite")
        med = np.median(arr[~bad])
        return np.where(bad, 0.0, arr - med)

    img, ref = prep(image, mask), prep(reference, reference_mask)
    # significance of the peak of the (phase) correlation surface
    cross = fft.rfft2(ref) * np.conj(fft.rfft2(img))
    cross /= np.maximum(np.abs(cross), 1e-30)
    surface = fft.irfft2(cross, s=ref.shape)
    peak = surface.max()
    med = np.median(surface)
    mad = 1.4826 * np.median(np.abs(surface - med))
    significance = (peak - med) / mad if mad > 0 else 0.0
    if not significance >= min_significance:
        raise AlignmentError(
            f"cross-correlation peak is not significant ({significance:.1f} sigma < {min_significance})"
        )
    shift, _, _ = phase_cross_correlation(ref, img, upsample_factor=20, normalization=None)
    dy, dx = float(shift[0]), float(shift[1])
    matrix = np.array([[1.0, 0.0, dx], [0.0, 1.0, dy], [0.0, 0.0, 1.0]])
    return AlignmentResult(matrix=matrix, method="cross-correlation", n_matches=0, rms=float("nan"))


def find_transform(
    image,
    reference,
    *,
    mask=None,
    reference_mask=None,
    threshold: float = 5.0,
) -> AlignmentResult:
    """Align ``image`` to ``reference``: star matching, else cross-correlation.

    Parameters
    ----------
    image, reference : ndarray
        Images (backgrounds included or not).
    mask, reference_mask : ndarray of bool, optional
        True = bad pixel.
    threshold : float
        Detection threshold (sigma) for the stars used in matching (> 0).

    Returns
    -------
    AlignmentResult
        ``method="astroalign"``, or ``"cross-correlation"`` with ``fallback`` saying why
        (too few stars, star detection failed on the data, no asterism match).

    Raises
    ------
    AlignmentError
        Neither method succeeded.
    """
    from skyscene.detection import find_sources

    check_positive("find_transform threshold", threshold)
    reason = None
    stars: Any = []
    ref_stars: Any = []
    try:
        stars = find_sources(image, mask=mask, threshold=threshold)
        ref_stars = find_sources(reference, mask=reference_mask, threshold=threshold)
    except _DETECTION_ERRORS as exc:
        reason = f"star detection failed: {exc}"
    except Exception as exc:
        if type(exc) is not Exception:  # a bug, not a property of the data: raise it
            raise
        # sep reports its pixel-stack and deblending overflows as a bare Exception
        reason = f"star detection failed: {exc}"
    if reason is not None:
        log.warning("%s; aligning by cross-correlation", reason)
    elif len(stars) >= MIN_STARS and len(ref_stars) >= MIN_STARS:
        try:
            return find_transform_from_positions(
                np.c_[stars["x"], stars["y"]], np.c_[ref_stars["x"], ref_stars["y"]]
            )
        except AlignmentError as exc:
            reason = f"star matching failed: {exc}"
            log.warning("%s; aligning by cross-correlation", reason)
    else:
        reason = (
            f"too few stars to match ({len(stars)} in image, {len(ref_stars)} in reference; "
            f"need {MIN_STARS})"
        )
        log.info("%s; aligning by cross-correlation", reason)
    if np.shape(image) != np.shape(reference):
        raise AlignmentError(
            f"cannot align: too few stars to match and shapes differ ({np.shape(image)} vs {np.shape(reference)})"
        )
    result = translation_by_cross_correlation(
        image, reference, mask=mask, reference_mask=reference_mask
    )
    return dataclasses.replace(result, fallback=reason)


def warp(image, result: AlignmentResult, shape: tuple[int, int], *, order: int = 3) -> np.ndarray:
    """Resample ``image`` onto the reference grid of ``shape``; NaN outside the image.

    Non-finite input pixels spread to the output pixels they touch (as NaN).
    """
    from scipy import ndimage

    if order not in (0, 1, 3, 5):
        raise ParameterError(f"order must be 0, 1, 3 or 5, got {order!r}")
    image = np.asarray(image, dtype=float)
    inv = np.linalg.inv(result.matrix)
    # ndimage works in (row, col) = (y, x): swap axes of the inverse matrix.
    swap = np.array([[0, 1, 0], [1, 0, 0], [0, 0, 1]], dtype=float)
    m = swap @ inv @ swap
    bad = ~np.isfinite(image)
    filled = np.where(bad, 0.0, image)
    out = ndimage.affine_transform(
        filled,
        m[:2, :2],
        offset=m[:2, 2],
        output_shape=shape,
        order=order,
        mode="constant",
        cval=np.nan,
    )
    if bad.any():
        badw = ndimage.affine_transform(
            bad.astype(float),
            m[:2, :2],
            offset=m[:2, 2],
            output_shape=shape,
            order=1,
            mode="constant",
            cval=1.0,
        )
        out[badw > 0] = np.nan
    return out
