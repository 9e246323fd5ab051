"""Run the ``Examples`` sections (doctests) of every skyscene module.

Done here rather than with ``--doctest-modules`` so that pytest never collects the test
folders' ``conftest.py`` files as doctest modules (they share one module name).
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import skyscene

# Alembic's migration scripts run only inside Alembic (they read its ``context``)
SKIP = ("skyscene.store.migrations",)

MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(skyscene.__path__, prefix="skyscene.")
    if not info.name.endswith("__main__") and not info.name.startswith(SKIP)
)


@pytest.mark.parametrize("name", MODULES)
def test_module_examples(name):
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in finder.find(module, name, globs=dict(vars(module))):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
