"""scdeepclust: deep embedding clustering of single-cell data (DESC, scDCC) for scanpy."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ._version import __version__

if TYPE_CHECKING:  # what `__getattr__` loads on first use, for type checkers and editors
    from . import datasets, models, pl, pp, tl

__all__ = ["__version__", "datasets", "models", "pl", "pp", "tl"]

_SUBMODULES = {"datasets", "models", "pl", "pp", "tl"}


def __getattr__(name: str):
    # Submodules load on first use: `import scdeepclust` stays cheap (torch and scanpy are only
    # imported when a tool, plot or dataset is touched), so `scdeepclust --help` answers at once.
    if name in _SUBMODULES:
        try:
            module = importlib.import_module(f".{name}", __name__)
        except KeyboardInterrupt as interruption:
            # A library stopped half-way through its import (torch, pandas) often fails every
            # later import with an error that names neither the interruption nor the remedy.
            interruption.add_note(
                "scdeepclust was interrupted while it imported torch and scanpy (its first use "
                "takes a few seconds). Libraries stopped during their import often cannot be "
                "imported again: restart the Python session (in Jupyter, the kernel) first."
            )
            raise
        globals()[name] = module
        return module
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | _SUBMODULES)
