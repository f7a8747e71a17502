"""Sphinx configuration for wampweb's documentation (builds offline, warning-free with -W)."""

from __future__ import annotations

import sys
from pathlib import Path

# The repository root: `wampweb` is autodoc'd from it, and `listings` and `examples`
# (literalinclude'd by the tutorial) live there too.
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

project = "wampweb"
author = "the wampweb authors"
copyright = "2026, the wampweb authors"

extensions = ["sphinx.ext.autodoc"]

# Types go into the parameter list of each description, not into the signature, which would
# otherwise be too long to read.
autodoc_typehints = "description"
autodoc_member_order = "bysource"
# Only wampweb's own docstrings: an undocumented method must not borrow one from a base
# class (typing.Protocol would lend `Session.register` the docstring of ABCMeta.register).
autodoc_inherit_docstrings = False

root_doc = "index"
exclude_patterns = ["_build"]
language = "en"
pygments_style = "sphinx"

html_theme = "alabaster"
html_theme_options = {
    "description": "WAMP inside a web application",
    "fixed_sidebar": True,
}
html_title = "wampweb"
