"""Sphinx configuration of skyscene's documentation (``make docs``)."""

from __future__ import annotations

import sys
from importlib.metadata import version as _version
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

project = "skyscene"
author = "The skyscene developers"
copyright = "2026, The skyscene developers"
release = _version("skyscene")
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_parser",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "**/.ipynb_checkpoints"]

# numpydoc: the class pages list their members through autodoc, not numpydoc's tables
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_validation_checks: set[str] = set()
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_typehints = "none"  # the numpydoc "Parameters" sections say the types
autodoc_member_order = "bysource"
autoclass_content = "class"

# no network at build time: intersphinx inventories are not fetched
intersphinx_mapping: dict[str, tuple[str, str | None]] = {}

myst_heading_anchors = 3
suppress_warnings = ["myst.xref_missing", "myst.header"]

html_theme = "alabaster"
html_static_path: list[str] = []
html_title = f"skyscene {release}"
