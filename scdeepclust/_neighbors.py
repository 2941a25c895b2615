"""Exact kNN graphs of embeddings through scanpy: Leiden's starts and the UMAP plots."""

from __future__ import annotations

import warnings

from anndata import AnnData
from scipy.sparse import SparseEfficiencyWarning


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

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SparseEfficiencyWarning)
        sc.pp.neighbors(
            adata,
            n_neighbors=n_neighbors,
            use_rep=use_rep,
            random_state=random_state,
            transformer="sklearn",
            **options,
        )
