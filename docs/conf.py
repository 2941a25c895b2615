"""Sphinx configuration of the scdeepclust documentation.

Build from the repository root with::

    .venv/bin/python -m sphinx -W --keep-going -b html docs docs/_build/html
"""

from __future__ import annotations

import os
import tomllib
from datetime import datetime
from pathlib import Path

import scdeepclust

# -- Project ------------------------------------------------------------------------------------

_metadata = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]
project = _metadata["name"]
author = ", ".join(a["name"] for a in _metadata.get("authors", [])) or f"the {project} authors"
copyright = f"{datetime.now():%Y}, {author}"
release = scdeepclust.__version__
version = ".".join(release.split(".")[:2])

# -- General ------------------------------------------------------------------------------------

extensions = [
    "myst_nb",  # Markdown pages (MyST) and Jupyter notebooks; brings myst_parser along
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",  # numpydoc-style "Parameters / Returns" sections
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
]

# .rst first: autosummary writes its generated pages with the first suffix.
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
root_doc = "index"
templates_path = ["_templates"]
exclude_patterns = [
    "_build",
    "README.md",  # how to build these docs, for people browsing the repository
    "**.ipynb_checkpoints",
    "Thumbs.db",
    ".DS_Store",
]

# Every reference must resolve: a renamed function or a typo in a cross-reference fails the
# build (with -W). Types from other packages are not linked (no network needed to build), so
# their names are exempt, and so are the engine's internal types (private modules, the
# constraints module) that appear in the signatures of `models`' engine-level functions.
nitpicky = True
_external = "anndata|numpy|np|pandas|pd|scipy|scanpy|sc|torch|matplotlib|collections|os|pathlib"
nitpick_ignore_regex = [
    (r"py:.*", rf"({_external})(\..*)?"),
    (r"py:.*", r"(AnnData|Axes|Figure|PathLike|Path|Sequence|Iterable|Callable|Mapping)"),
    (r"py:.*", r"scdeepclust\.(.*\.)?_.*"),
    (r"py:.*", r"scdeepclust\.constraints\..*"),
]

# `single backticks` in docstrings are code, as in scanpy and the scverse template.
default_role = "literal"

# -- API reference --------------------------------------------------------------------------------

autosummary_generate = True
autodoc_member_order = "groupwise"
autodoc_typehints = "signature"
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = True
# Parameters documented together ("n_neighbors, min_dist") stay one entry.
napoleon_use_param = False

# -- MyST and notebooks -------------------------------------------------------------------------

myst_enable_extensions = ["amsmath", "colon_fence", "deflist", "dollarmath"]
myst_heading_anchors = 3

# The tutorial page shows docs/tutorial.ipynb, the executed copy of notebooks/tutorial.ipynb
# written by docs/render_tutorial.py (figures included; tests/test_notebook.py checks that its
# cells match the source). SCDEEPCLUST_DOCS_EXECUTE=1 runs it again while building instead.
nb_execution_mode = "force" if os.environ.get("SCDEEPCLUST_DOCS_EXECUTE") == "1" else "off"
nb_execution_timeout = 3600
nb_execution_in_temp = True
nb_execution_raise_on_error = True
nb_merge_streams = True
# Progress bars and library warnings on stderr are noise on a documentation page.
nb_output_stderr = "remove"
nb_execution_show_tb = True

# -- HTML -----------------------------------------------------------------------------------------

html_theme = "sphinx_book_theme"
html_title = f"scdeepclust {release}"
html_theme_options = {
    "show_toc_level": 2,
    "navigation_with_keys": False,
}
html_static_path: list[str] = []


# -- Every public name documented -----------------------------------------------------------------

API_MODULES = ("tl", "pl", "pp", "datasets", "models")


def check_api_complete(app) -> None:
    """Warn (an error with -W) about names in a subpackage's `__all__` missing from api.md."""
    import importlib
    import re

    from sphinx.util import logging

    api = Path(app.srcdir, "api.md").read_text()
    modules = "|".join(API_MODULES)
    listed = set(re.findall(rf"^\s+((?:{modules})\.\w+)\s*$", api, re.M))
    for name in API_MODULES:
        module = importlib.import_module(f"scdeepclust.{name}")
        for public in module.__all__:
            if f"{name}.{public}" not in listed:
                logging.getLogger(__name__).warning(
                    f"scdeepclust.{name}.{public} is public (in __all__) but not listed in api.md"
                )


def write_cli_help(app) -> None:
    """Write the command line's --help texts for cli.md, so the page shows this version's."""
    import contextlib
    import io

    from scdeepclust._cli import main

    out = Path(app.srcdir, "generated", "cli")
    out.mkdir(parents=True, exist_ok=True)
    columns = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"  # argparse wraps at the terminal width
    try:
        for name, argv in {"main": [], "run": ["run"], "demo": ["demo"]}.items():
            text = io.StringIO()
            with contextlib.redirect_stdout(text), contextlib.suppress(SystemExit):
                main([*argv, "--help"])
            target = out / f"{name}.txt"
            if not target.exists() or target.read_text() != text.getvalue():
                target.write_text(text.getvalue())
    finally:
        if columns is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = columns


def drop_builtin_docstrings(app, what, name, obj, options, lines) -> None:
    """Drop the docstring a constant without one of its own gets from its type (int's)."""
    if what in {"data", "attribute"} and type(obj).__module__ == "builtins":
        if lines and "\n".join(lines).strip() == (type(obj).__doc__ or "").strip():
            lines.clear()


def setup(app):
    """Connect the checks above to the build."""
    app.connect("builder-inited", check_api_complete)
    app.connect("builder-inited", write_cli_help)
    app.connect("autodoc-process-docstring", drop_builtin_docstrings)
