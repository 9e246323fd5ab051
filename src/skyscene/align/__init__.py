"""Frame alignment: similarity transforms from star matching, translation fallback."""

from skyscene.align.transform import (
    AlignmentResult,
    find_transform,
    find_transform_from_positions,
    translation_by_cross_correlation,
    warp,
)

__all__ = [
    "AlignmentResult",
    "find_transform",
    "find_transform_from_positions",
    "translation_by_cross_correlation",
    "warp",
]
