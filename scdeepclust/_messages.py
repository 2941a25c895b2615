"""Where the package's warnings point, and what scanpy says about the package's own work."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

_PACKAGE = str(Path(__file__).resolve().parent)


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


@contextlib.contextmanager
def scanpy_quiet():
    """Silence scanpy's info messages inside the block (its warnings stay).

    For scanpy calls on the package's own temporary AnnData objects: at verbosity 2 and above
    scanpy reported "added to `.uns['neighbors']`" and "'leiden', the cluster labels" about
    keys the user's object never gets.
    """
    import scanpy as sc

    verbosity = sc.settings.verbosity
    if verbosity > 1:
        sc.settings.verbosity = 1
    try:
        yield
    finally:
        sc.settings.verbosity = verbosity
