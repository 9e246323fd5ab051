"""scikit-learn's estimator contract without the dependency (``sklearn.base.BaseEstimator``).

Shared by every scikit-learn-shaped estimator (``skyscene.spectra.MixtureModel``,
``SingleComponentModel``, ``skyscene.classify.RealBogusClassifier``); a private
top-level helper that any layer may import (docs/DESIGN.md).

``__init__`` stores each argument unmodified as the attribute of the same name and
validates nothing; :meth:`~EstimatorParams.get_params` and
:meth:`~EstimatorParams.set_params` are derived from ``__init__``'s signature;
``fit`` validates (through a frozen ``*Config``), returns ``self`` and sets the fitted
attributes, whose names end in ``_``. :func:`clone` gives an unfitted copy with the
same parameters. The shape is the one ``sklearn.base.clone`` and ``GridSearchCV``
rely on, so the estimators also work with them where scikit-learn is installed.
"""

from __future__ import annotations

import copy
import inspect
from typing import Any

from skyscene.errors import ParameterError

__all__ = ["EstimatorParams", "clone"]


class EstimatorParams:
    """Mixin: ``get_params``/``set_params`` from the parameters of ``__init__``."""

    @classmethod
    def _get_param_names(cls) -> list[str]:
        init = cls.__init__
        if init is object.__init__:
            return []
        names = []
        for p in inspect.signature(init).parameters.values():
            if p.name == "self":
                continue
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                raise TypeError(  # a programming error of the estimator class, not of its user
                    f"{cls.__name__}.__init__ must name its parameters (no *args/**kwargs)"
                )
            names.append(p.name)
        return sorted(names)

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Parameters of this estimator, by name (the values given to ``__init__``).

        Parameters
        ----------
        deep : bool
            Also return the parameters of parameters that are estimators
            (``name__param``), as scikit-learn does.
        """
        out: dict[str, Any] = {}
        for name in self._get_param_names():
            value = getattr(self, name)
            if deep and hasattr(value, "get_params") and not isinstance(value, type):
                out.update((f"{name}__{k}", v) for k, v in value.get_params().items())
            out[name] = value
        return out

    def set_params(self, **params: Any):
        """Set parameters by name (``name__param`` for nested estimators); return ``self``.

        Raises
        ------
        ParameterError
            If a name is not a parameter of ``__init__`` (the message lists them).
        """
        valid = self._get_param_names()
        nested: dict[str, dict[str, Any]] = {}
        for key, value in params.items():
            name, sep, sub = key.partition("__")
            if name not in valid:
                raise ParameterError(
                    f"{name!r} is not a parameter of {type(self).__name__} "
                    f"(its __init__ has no parameter {name!r}); choose from {', '.join(valid)}",
                    name=name,
                    value=value,
                )
            if sep:
                nested.setdefault(name, {})[sub] = value
            else:
                setattr(self, name, value)
        for name, sub_params in nested.items():
            getattr(self, name).set_params(**sub_params)
        return self

    def __repr__(self) -> str:
        shown = []
        for name in self._get_param_names():
            value = getattr(self, name)
            default = inspect.signature(type(self).__init__).parameters[name].default
            if default is inspect.Parameter.empty or not _same(value, default):
                shown.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(shown)})"


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except (TypeError, ValueError):  # arrays and other objects without a scalar ==
        return a is b


def clone(estimator, *, deep_copy: bool = True):
    """An unfitted estimator of the same class with the same parameters.

    Parameters
    ----------
    estimator : EstimatorParams
        Fitted or not.
    deep_copy : bool
        Deep-copy the parameter values (as ``sklearn.base.clone``); with False the new
        estimator shares them (e.g. a large, immutable spectral grid).
    """
    if not hasattr(estimator, "get_params"):
        raise ParameterError(f"cannot clone {estimator!r}: it has no get_params()", value=estimator)
    params = estimator.get_params(deep=False)
    if deep_copy:
        params = {k: copy.deepcopy(v) for k, v in params.items()}
    return type(estimator)(**params)
