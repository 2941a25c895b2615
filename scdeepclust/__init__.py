"""scdeepclust: deep embedding clustering of single-cell data (DESC, scDCC) for scanpy."""

from . import datasets, pl, pp, tl
from ._version import __version__

__all__ = ["__version__", "datasets", "pl", "pp", "tl"]
