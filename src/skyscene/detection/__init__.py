"""Source detection and catalogs (sep)."""

from skyscene.detection.catalog import find_sources, match_catalogs

__all__ = ["find_sources", "match_catalogs"]
