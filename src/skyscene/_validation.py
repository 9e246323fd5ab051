"""Validation of configuration values, shared by every ``*Config`` (STYLE.md rule 4).

Each check returns the value it accepts (so ``__post_init__`` can normalise with
``object.__setattr__``) and raises :class:`~skyscene.errors.ParameterError` (or its
:class:`~skyscene.errors.ParameterRangeError` subclass, which carries ``value``, ``min``
and ``max``) with a message naming the parameter, the rule and the value, in the spirit
of photutils' ``utils/_parameters.py``.

Examples
--------
>>> from skyscene._validation import check_range, check_choice
>>> check_range("ZogyConfig.threshold", 5.0, low=0, low_inclusive=False)
5.0
>>> check_choice("ZogyConfig.psf", "auto", ("auto", "exposure", "estimate"))
'auto'
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, TypeVar

from skyscene.errors import ParameterError, ParameterRangeError

__all__ = [
    "check_choice",
    "check_finite",
    "check_int",
    "check_odd",
    "check_optional",
    "check_positive",
    "check_range",
]

T = TypeVar("T")


def check_finite(name: str, value: Any) -> Any:
    """``value`` if it is a finite number, else :class:`ParameterError`."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ParameterError(
            f"{name} must be a number, got {value!r}", name=name, value=value
        ) from None
    if not math.isfinite(number):
        raise ParameterError(f"{name} must be finite, got {value!r}", name=name, value=value)
    return value


def check_range(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
) -> Any:
    """``value`` if finite and within ``[low, high]`` (bounds open or closed), else raise.

    Raises :class:`ParameterRangeError` with ``value``, ``min``, ``max`` attributes.
    """
    check_finite(name, value)
    below = low is not None and (value < low if low_inclusive else value <= low)
    above = high is not None and (value > high if high_inclusive else value >= high)
    if below or above:
        if low is not None and high is not None:
            rule = (
                f"in {'[' if low_inclusive else '('}{low}, {high}{']' if high_inclusive else ')'}"
            )
        elif low is not None:
            rule = f"{'>=' if low_inclusive else '>'} {low}"
        else:
            rule = f"{'<=' if high_inclusive else '<'} {high}"
        raise ParameterRangeError(
            f"{name} must be {rule}, got {value!r}", name=name, value=value, min=low, max=high
        )
    return value


def check_positive(name: str, value: Any, *, allow_zero: bool = False) -> Any:
    """``value`` if finite and > 0 (>= 0 with ``allow_zero``), else raise."""
    return check_range(name, value, low=0, low_inclusive=allow_zero)


def check_int(name: str, value: Any, *, low: int | None = None, high: int | None = None) -> int:
    """``value`` if an integer (not a bool) within ``[low, high]``, else raise."""
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            import numpy as np

            if not isinstance(value, np.integer):
                raise TypeError
        except TypeError:
            raise ParameterError(
                f"{name} must be an integer, got {value!r}", name=name, value=value
            ) from None
    return check_range(name, value, low=low, high=high)


def check_odd(name: str, value: Any, *, low: int = 1) -> int:
    """``value`` if an odd integer >= ``low``, else raise."""
    check_int(name, value, low=low)
    if value % 2 == 0:
        raise ParameterError(
            f"{name} must be odd and >= {low}, got {value!r}", name=name, value=value
        )
    return value


def check_choice(name: str, value: T, choices: Iterable[T]) -> T:
    """``value`` if one of ``choices``, else raise naming them."""
    options = tuple(choices)
    if value not in options:
        listed = ", ".join(repr(c) for c in options)
        raise ParameterError(
            f"{name} must be one of {listed}, got {value!r}", name=name, value=value
        )
    return value


def check_optional(check, name: str, value: Any, *args: Any, **kwargs: Any) -> Any:
    """``None``, or ``check(name, value, ...)``."""
    return None if value is None else check(name, value, *args, **kwargs)
