"""skyscene: from astronomical images to trustworthy measurements.

The top level exposes little; import the stage you need, e.g.
``from skyscene.io import read_exposure`` or ``from skyscene.psf import MoffatPSF``.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("skyscene")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = ["__version__"]
