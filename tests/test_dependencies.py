"""Declared dependencies match what the code imports (issue 10, finding 15)."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _require_calls():
    for path in sorted((ROOT / "src" / "skyscene").rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", getattr(node.func, "attr", None)) == "require"
                and len(node.args) == 2
                and all(isinstance(a, ast.Constant) for a in node.args)
            ):
                yield path.relative_to(ROOT), node.args[0].value, node.args[1].value


def _names(specs):
    return {re.split(r"[<>=!~\[ ;]", spec, maxsplit=1)[0].lower() for spec in specs}


def test_every_require_names_an_extra_that_provides_the_module():
    extras = PYPROJECT["project"]["optional-dependencies"]
    distribution = {"astroscrappy": "astroscrappy", "piff": "piff", "torch": "torch"}
    calls = list(_require_calls())
    assert calls, "expected require(...) calls in skyscene"
    for path, module, extra in calls:
        assert extra in extras, f"{path}: require({module!r}, {extra!r}) names no extra"
        wanted = distribution.get(module, module).lower()
        core = _names(PYPROJECT["project"]["dependencies"])
        assert wanted in _names(extras[extra]) or wanted in core, (
            f"{path}: extra {extra!r} does not provide {module!r}"
        )


def test_third_party_imports_are_declared():
    declared = _names(PYPROJECT["project"]["dependencies"])
    for specs in PYPROJECT["project"]["optional-dependencies"].values():
        declared |= _names(specs)
    # import name -> distribution name where they differ
    aliases = {
        "skimage": "scikit-image",
        "yaml": "pyyaml",
        "distributed": "dask",
        "psycopg": "psycopg",
        "sklearn": "scikit-learn",
        "PIL": "pillow",
    }
    stdlib = set(__import__("sys").stdlib_module_names)
    missing = set()
    for path in (ROOT / "src" / "skyscene").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top in stdlib or top in ("skyscene", "__future__"):
                    continue
                if aliases.get(top, top).lower().replace("_", "-") not in {
                    d.replace("_", "-") for d in declared
                }:
                    missing.add((str(path.relative_to(ROOT)), top))
    assert not missing, f"imported but not declared: {sorted(missing)}"
