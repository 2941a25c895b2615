"""Plots of clustering results, on top of scanpy's plotting and matplotlib.

Each takes the `key` of a run (its `key_added`: "desc", "scdcc", ...) and, with ``show=False``,
returns its matplotlib objects, through which the figure is saved (``fig.savefig(path)``, or
``ax.figure.savefig(path)`` for the plots that return axes), the convention of scanpy 1.12.
``save=`` still works for one release, with a FutureWarning.
"""

from ._compare import compare
from ._embedding import embedding
from ._history import history
from ._n_clusters import n_clusters
from ._probabilities import probabilities
from ._umap import umap

__all__ = ["compare", "embedding", "history", "n_clusters", "probabilities", "umap"]
