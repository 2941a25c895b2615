"""Where the package's warnings point, and what scanpy says about the package's own work."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ._process import ProcessWideOverride

_PACKAGE = str(Path(__file__).resolve().parent) + os.sep


def caller_stacklevel() -> int:
    """Return the `stacklevel` that makes a warning name the first line outside this package.

    For warnings raised at several depths (a tool, the cluster-number search, a mapping), where
    a fixed number pointed inside the package for some of them.
    """
    frame = sys._getframe(1)  # the function about to call warnings.warn
    level = 1
    while frame is not None and str(Path(frame.f_code.co_filename).resolve()).startswith(_PACKAGE):
        frame = frame.f_back
        level += 1
    return level


def _scanpy_verbosity(value=None):
    import scanpy as sc

    if value is None:
        return sc.settings.verbosity
    sc.settings.verbosity = value


_SCANPY_WARNINGS_ONLY = ProcessWideOverride(
    _scanpy_verbosity, _scanpy_verbosity, lambda verbosity: min(verbosity, 1)
)


def scanpy_quiet():
    """Silence scanpy's info messages inside the block (its warnings stay).

    For scanpy calls on the package's own temporary AnnData objects: at verbosity 2 and above
    scanpy reported "added to `.uns['neighbors']`" and "'leiden', the cluster labels" about
    keys the user's object never gets. The verbosity is the process's: held while any such
    block is open, in any thread.
    """
    return _SCANPY_WARNINGS_ONLY()
