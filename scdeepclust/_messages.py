"""Where the package's warnings point, and what scanpy says about the package's own work."""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import sys
import threading
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


# where scanpy's logger cannot take a filter: its verbosity, the process's, is held instead
_SCANPY_WARNINGS_ONLY = ProcessWideOverride(
    _scanpy_verbosity, _scanpy_verbosity, lambda verbosity: min(verbosity, 1)
)


class _QuietThreads(logging.Filter):
    """Drop scanpy's records below warnings that come from threads inside `scanpy_quiet`."""

    def __init__(self):
        super().__init__()
        self.lock = threading.Lock()
        self.open_blocks: collections.Counter = collections.Counter()

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or record.thread not in self.open_blocks


_QUIET_THREADS = _QuietThreads()


@contextlib.contextmanager
def scanpy_quiet():
    """Silence scanpy's info messages inside the block (its warnings stay).

    For scanpy calls on the package's own temporary AnnData objects: at verbosity 2 and above
    scanpy reported "added to `.uns['neighbors']`" and "'leiden', the cluster labels" about
    keys the user's object never gets. Only this thread's messages are dropped: lowering the
    verbosity, which is the process's, silenced the caller's scanpy calls in other threads and
    undid a verbosity set meanwhile.
    """
    import scanpy as sc

    logger = getattr(sc.settings, "_root_logger", None)
    if not isinstance(logger, logging.Logger):
        with _SCANPY_WARNINGS_ONLY():
            yield
        return
    thread = threading.get_ident()
    opened = False
    try:
        with _QUIET_THREADS.lock:
            _QUIET_THREADS.open_blocks[thread] += 1
            opened = True
            if _QUIET_THREADS not in logger.filters:
                logger.addFilter(_QUIET_THREADS)
        yield
    finally:
        if opened:
            with _QUIET_THREADS.lock:
                _QUIET_THREADS.open_blocks[thread] -= 1
                if _QUIET_THREADS.open_blocks[thread] == 0:
                    del _QUIET_THREADS.open_blocks[thread]


# Where a MuData user keeps proteins: the tools read them from the RNA cells' obsm
PROTEINS_FROM_ANOTHER_ANNDATA = (
    "Proteins kept in an AnnData of their own (a MuData's protein modality, say) are put there "
    "with `adata.obsm['protein'] = prot.to_df().reindex(adata.obs_names)` (prot: that "
    "AnnData; cells it lacks get NaN, to leave out)."
)


def is_mudata(value) -> bool:
    """Whether `value` is a MuData (mudata's or muon's), known without importing mudata."""
    module = type(value).__module__.split(".")[0]
    return type(value).__name__ == "MuData" or module in ("mudata", "muon")


def not_anndata(value, *, writes_obs: bool = False) -> TypeError:
    """Return the error for a non-AnnData passed as `adata`, with the line that makes one.

    `writes_obs`: whether the caller writes columns into ``obs``, which a MuData shows only
    once pulled from the modality.
    """
    kind = type(value).__name__
    if is_mudata(value):
        # pull_obs, not update(): mudata 0.4's update() no longer pulls the modalities' columns
        advice = "Pass one modality, e.g. `mdata.mod['rna']`" + (
            "; `mdata.pull_obs()` then shows the columns written into its obs in `mdata.obs`."
            if writes_obs
            else "."
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
