"""Sphinx configuration for doqu's documentation.

Build (from the repository root, warnings are errors)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.abspath(".."))

import doqu

project = "doqu"
author = "the doqu authors"
copyright = "2026, the doqu authors"
release = doqu.__version__
version = ".".join(release.split(".")[:2])

extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon"]

# No network at build time, so no intersphinx.
autodoc_typehints = "signature"
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "show-inheritance": True}
napoleon_google_docstring = True
napoleon_numpy_docstring = False

default_role = "literal"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
templates_path: list[str] = []
html_theme = "alabaster"
html_theme_options = {
    "description": "Pydantic documents stored anywhere, queried the same way everywhere.",
    "fixed_sidebar": True,
}
html_static_path: list[str] = []
html_title = f"doqu {release}"
