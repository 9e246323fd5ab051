"""Exceptions and warnings of skyscene.

Every exception derives from :class:`SkysceneError` *and* from the matching
built-in exception, so ``except ValueError`` keeps working for callers that do
not know skyscene. Messages name the file, key, parameter and offending value.
"""

from __future__ import annotations

__all__ = [
    "AlignmentError",
    "ConvergenceWarning",
    "DataError",
    "FlaggedDataWarning",
    "HeaderError",
    "InputFileError",
    "MissingDependencyError",
    "ParameterError",
    "ParameterRangeError",
    "SkysceneError",
    "SkysceneWarning",
]


class SkysceneError(Exception):
    """Base class of all skyscene errors."""


class ParameterError(SkysceneError, ValueError):
    """A function argument or configuration value is invalid.

    Parameters
    ----------
    message : str
        Names the parameter, the rule and the value.
    name : str, optional
        The parameter (``"ZogyConfig.psf_size"``).
    value : optional
        The offending value, kept as an attribute for programs that handle the error.
    """

    def __init__(self, message: str, *, name: str | None = None, value: object = None):
        super().__init__(message)
        self.name = name
        self.value = value


class ParameterRangeError(ParameterError):
    """A parameter is outside its allowed range (GalSim's ``GalSimRangeError`` shape).

    ``min``/``max`` are the bounds (None where open); ``value`` the offending value.
    """

    def __init__(
        self,
        message: str,
        *,
        name: str | None = None,
        value: object = None,
        min: object = None,
        max: object = None,
    ):
        super().__init__(message, name=name, value=value)
        self.min = min
        self.max = max


class DataError(SkysceneError, ValueError):
    """Pixel or table data are unusable (all masked, non-finite, wrong shape)."""


class InputFileError(SkysceneError, OSError):
    """A file is missing, unreadable or not of the expected format."""


class HeaderError(SkysceneError, KeyError):
    """A FITS header keyword is missing or malformed.

    Parameters
    ----------
    message : str
        Human-readable message; should name the file and the key.
    filename : str, optional
        The file whose header is at fault.
    key : str, optional
        The offending keyword.
    """

    def __init__(self, message: str, *, filename: str | None = None, key: str | None = None):
        super().__init__(message)
        self.filename = filename
        self.key = key

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0])


class AlignmentError(SkysceneError, RuntimeError):
    """A frame could not be aligned to its reference."""


class MissingDependencyError(SkysceneError, ImportError):
    """An optional dependency is not installed; the message names the extra."""


class SkysceneWarning(UserWarning):
    """Base class of all skyscene warnings."""


class ConvergenceWarning(SkysceneWarning):
    """An iterative fit did not converge; the result carries ``converged=False``."""


class FlaggedDataWarning(SkysceneWarning):
    """Some input was skipped or flagged; the result records which."""


def require(module: str, extra: str):
    """Import an optional dependency or raise a clear :class:`MissingDependencyError`.

    Parameters
    ----------
    module : str
        Module to import, e.g. ``"torch"``.
    extra : str
        Name of the skyscene extra that provides it, e.g. ``"classify"``.
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependencyError(
            f"optional dependency {module!r} is not installed; "
            f"install it with: pip install 'skyscene[{extra}]'"
        ) from exc
