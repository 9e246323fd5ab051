"""Helpers shared by the batch pipelines' per-task records (``smp``, ``search``).

:func:`data_errors` is the tuple of exceptions a batch task records as a failure of its
input (anything else is a bug and stops the batch); :func:`jsonable` turns a record into
plain JSON types (non-finite floats become ``None``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from skyscene.errors import SkysceneError

__all__ = ["data_errors", "jsonable"]


def data_errors(*extra: type[BaseException]) -> tuple[type[BaseException], ...]:
    """The errors of bad input data, plus ``extra`` (e.g. ``EOFError`` of a truncated file)."""
    from astropy.io.fits.verify import VerifyError

    return (
        SkysceneError,
        ValueError,  # numpy's LinAlgError; astropy's WCS errors derive from ValueError
        OSError,
        KeyError,
        IndexError,
        ArithmeticError,
        RuntimeError,
        VerifyError,
        *extra,
    )


def jsonable(value: Any) -> Any:
    """``value`` with mappings, sequences, arrays and numpy scalars as plain JSON types."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
