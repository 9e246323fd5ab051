"""Tables on disk from one astropy Table: CSV for people, ECSV and Parquet for programs.

- **CSV**: plain values, one header line of column names (spreadsheets, pandas).
- **ECSV**: astropy's self-describing text format: column units, dtypes, descriptions
  and the table metadata travel with the values; ``Table.read(path)`` restores them.
- **Parquet**: the same, columnar and compressed; ``Table.read(path)`` restores units
  and metadata. (astropy's Parquet reader needs pandas, a declared dependency.)

Table metadata must be JSON values (str, int, float, bool, None, lists and dicts of
them with str keys); :func:`jsonable_meta` converts the usual scientific types
(numpy scalars and arrays, tuples, paths, quantities, times, configuration objects
with ``to_dict()``) and refuses anything else with a message naming the key, so that a
``repr()`` never stands in for a value.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from skyscene.errors import ParameterError
from skyscene.io._atomic import atomic_path

__all__ = ["TABLE_FORMATS", "jsonable_meta", "write_table"]

#: Formats :func:`write_table` writes, by file suffix, with the astropy format name.
TABLE_FORMATS = {".csv": "ascii.csv", ".ecsv": "ascii.ecsv", ".parquet": "parquet"}


def _jsonable(value: Any, where: str) -> Any:
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ParameterError(
                    f"table meta {where}: key {key!r} is not a string",
                    name=f"meta{where}",
                    value=key,
                )
            out[key] = _jsonable(item, f"{where}[{key!r}]")
        return out
    if isinstance(value, list | tuple):
        return [_jsonable(v, f"{where}[{i}]") for i, v in enumerate(value)]
    from astropy import units as u
    from astropy.time import Time

    if isinstance(value, u.Quantity):  # before ndarray: a Quantity is one
        return {"value": _jsonable(value.value, where), "unit": value.unit.to_string()}
    if isinstance(value, u.UnitBase):
        return value.to_string()
    if isinstance(value, Time):
        return {"value": _jsonable(value.isot, where), "scale": value.scale, "format": "isot"}
    if isinstance(value, np.ndarray):
        if value.ndim == 0:
            return _jsonable(value.item(), where)
        return [_jsonable(v, f"{where}[{i}]") for i, v in enumerate(value.tolist())]
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        return _jsonable(to_dict(), where)
    raise ParameterError(
        f"table meta {where} = {type(value).__name__} is not a JSON value "
        "(str, number, bool, None, list or dict of them; objects need to_dict())",
        name=f"meta{where}",
        value=type(value).__name__,
    )


def jsonable_meta(meta: Mapping) -> dict:
    """``meta`` with every value converted to JSON types (see the module notes).

    Raises
    ------
    ParameterError
        A key is not a string, or a value has no JSON form (the message names the key).

    Examples
    --------
    >>> import numpy as np
    >>> jsonable_meta({"n": np.int64(3), "shape": (2, 3), "ok": np.True_})
    {'n': 3, 'shape': [2, 3], 'ok': True}
    """
    return _jsonable(dict(meta), "")


def write_table(
    table,
    path: str | Path,
    *,
    parquet: bool = True,
    ecsv: bool = True,
) -> list[Path]:
    """Write ``table`` (astropy Table) to ``path`` (``.csv``) with ECSV and Parquet twins.

    Parameters
    ----------
    table : astropy.table.Table
        Columns may carry units (``Quantity`` columns or ``Column.unit``) and
        descriptions; they are kept in the ECSV and Parquet files.
    path : str or Path
        The CSV file; the twins replace its suffix with ``.ecsv`` and ``.parquet``.
    parquet, ecsv : bool
        Write the twin.

    Returns
    -------
    list of Path
        The files written, CSV first. Each is written atomically.

    Raises
    ------
    ParameterError
        ``table.meta`` holds a value without a JSON form (see :func:`jsonable_meta`).
    """
    path = Path(path)
    out = table.copy(copy_data=False)  # the caller's meta is left as it is
    out.meta = jsonable_meta(table.meta)
    targets = [path]
    if ecsv:
        targets.append(path.with_suffix(".ecsv"))
    if parquet:
        targets.append(path.with_suffix(".parquet"))
    for target in targets:
        fmt = TABLE_FORMATS.get(target.suffix, "ascii.csv")
        with atomic_path(target) as tmp:
            out.write(tmp, format=fmt, overwrite=True)
    return targets
