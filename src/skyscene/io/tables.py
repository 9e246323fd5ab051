"""Tables on disk: CSV for people and Parquet for programs, from one astropy Table."""

from __future__ import annotations

from pathlib import Path

from skyscene.io._atomic import atomic_path

__all__ = ["write_table"]


def write_table(table, path: str | Path, *, parquet: bool = True) -> list[Path]:
    """Write ``table`` (astropy Table) to ``path`` (``.csv``) and a ``.parquet`` twin.

    Both files are written atomically; metadata (``table.meta``) goes into the
    Parquet file. Returns the paths written.
    """
    path = Path(path)
    written = []
    with atomic_path(path) as tmp:
        table.write(tmp, format="ascii.csv", overwrite=True)
    written.append(path)
    if parquet:
        ppath = path.with_suffix(".parquet")
        with atomic_path(ppath) as tmp:
            table.write(tmp, format="parquet", overwrite=True)
        written.append(ppath)
    return written
