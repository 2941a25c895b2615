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


def not_anndata(value) -> TypeError:
    """Return the error for a non-AnnData passed as `adata`, with the line that makes one."""
    kind = type(value).__name__
    module = type(value).__module__.split(".")[0]
    if kind == "MuData" or module in ("mudata", "muon"):
        advice = (
            "Pass one modality, e.g. `mdata.mod['rna']` (and `mdata.update()` afterwards to see "
            "its results in the MuData)."
        )
    elif isinstance(value, str | os.PathLike):
        advice = "Read the file first: `adata = sc.read_h5ad(path)` (or `sc.read_10x_h5`)."
    elif hasattr(value, "shape") and len(getattr(value, "shape", ())) == 2:
        advice = (
            "Wrap the matrix (cells as rows) in one: `adata = anndata.AnnData(X)`; results are "
            "written into it."
        )
    else:
        advice = "Pass the AnnData the data are in (see `scdeepclust.datasets` for examples)."
    return TypeError(f"Expected an AnnData object, got {kind}. {advice}")
