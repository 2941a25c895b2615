"""kNN graphs of embeddings through scanpy: Leiden's starts (exact) and the UMAP plots."""

from __future__ import annotations

import numpy as np
from anndata import AnnData
from scipy.sparse import SparseEfficiencyWarning, csr_matrix

from ._process import ignoring_warnings
from ._threads import torch_threads_kept


def sparse_graphs():
    """Keep scikit-learn's transformers returning their own output inside the block.

    A caller's ``sklearn.set_config(transform_output="pandas")`` made the kNN transformers of
    `sc.pp.neighbors` refuse their sparse graphs, and both tools failed (as scanpy's own
    neighbors does). The setting is the calling thread's, and is restored after the block.
    """
    import sklearn

    return sklearn.config_context(transform_output="default")


def exact_neighbors(
    adata: AnnData, *, use_rep: str, n_neighbors: int, random_state: int, **options
) -> None:
    """Run `sc.pp.neighbors` on `obsm[use_rep]` with exact neighbours (sklearn's search).

    Exact: scanpy 1.11's approximate path (pynndescent, used above 4,096 cells) breaks on
    scipy >= 1.17 sparse arrays, and the embeddings are low-dimensional. Identical cells
    (all-zero or duplicated input cells) tie at distance 0, and scanpy then zeroes a cell's
    distance to itself in its sparse matrix; scipy's efficiency warning about that is nothing
    a user can act on, so it is not passed on. `options` go to `sc.pp.neighbors`.
    """
    import scanpy as sc

    with ignoring_warnings(SparseEfficiencyWarning), torch_threads_kept(), sparse_graphs():
        sc.pp.neighbors(
            adata,
            n_neighbors=n_neighbors,
            use_rep=use_rep,
            random_state=random_state,
            transformer="sklearn",
            **options,
        )


# Above this many cells the UMAP plots' graph is approximate (pynndescent with UMAP's settings,
# scanpy's default above 4,096 cells): the exact search grows with the square of the cells
# (80,000 cells: 22 s on 2 threads; a million: about half an hour), while pynndescent takes
# 3 s there after compiling for about 30 s, once per process.
EXACT_PLOT_NEIGHBORS_MAX_CELLS = 100_000


def plot_neighbors(
    adata: AnnData, *, use_rep: str, n_neighbors: int, random_state: int, **options
) -> None:
    """Run `sc.pp.neighbors` for a plot: exact neighbours, approximate on many cells."""
    import scanpy as sc

    n = adata.n_obs
    if n <= EXACT_PLOT_NEIGHBORS_MAX_CELLS:
        exact_neighbors(
            adata, use_rep=use_rep, n_neighbors=n_neighbors, random_state=random_state, **options
        )
        return
    from pynndescent import PyNNDescentTransformer

    search = PyNNDescentTransformer(
        n_neighbors=n_neighbors,
        metric="euclidean",
        random_state=random_state,
        n_jobs=1,  # reproducible: several threads may meet the neighbours in other orders
        n_trees=min(64, 5 + round(n**0.5 / 20.0)),
        n_iters=max(5, round(np.log2(n))),
    )
    with torch_threads_kept(), sparse_graphs():
        sc.pp.neighbors(
            adata,
            n_neighbors=n_neighbors,
            use_rep=use_rep,
            random_state=random_state,
            transformer=_SparseMatrixOutput(search),
            **options,
        )


class _SparseMatrixOutput:
    """A kNN transformer whose graphs are scipy sparse matrices, not sparse arrays.

    scanpy 1.11 reads the graph with `getnnz`, which scipy >= 1.17's `csr_array` (what
    pynndescent returns there) no longer has. Without an `index_`, scanpy keeps no search
    forest in `uns`, which nothing here reads.
    """

    def __init__(self, transformer):
        self.transformer = transformer

    def get_params(self, deep: bool = True) -> dict:
        return self.transformer.get_params(deep)

    def fit(self, x):
        self.transformer.fit(x)
        return self

    def transform(self, x):
        return csr_matrix(self.transformer.transform(x))

    def fit_transform(self, x):
        return csr_matrix(self.transformer.fit_transform(x))
