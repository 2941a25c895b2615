"""Plots of clustering results, on top of scanpy's plotting and matplotlib.

Each takes the `key` of a run (its `key_added`: "desc", "scdcc", ...), returns matplotlib
objects with ``show=False``, and saves with ``save=`` the way scanpy does.
"""

from ._compare import compare
from ._embedding import embedding
from ._history import history
from ._n_clusters import n_clusters
from ._probabilities import probabilities
from ._umap import umap

__all__ = ["compare", "embedding", "history", "n_clusters", "probabilities", "umap"]
