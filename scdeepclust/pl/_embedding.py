from __future__ import annotations

from anndata import AnnData

from ._utils import as_list, check_result


def embedding(
    adata: AnnData, key: str = "scdcc", *, basis: str | None = None, color=None, **kwargs
):
    """Cells on a 2-d embedding coloured by the clusters of `key` (and any other `color`).

    `basis` defaults to ``X_umap`` if present, else the first two dimensions of the method's own
    embedding ``obsm['X_' + key]``. Other arguments (`show`, `save`, `ax`, `legend_loc`, ...)
    go to :func:`scanpy.pl.embedding`. For a UMAP of the method's own embedding, see
    :func:`scdeepclust.pl.umap`.
    """
    import scanpy as sc

    check_result(adata, key)
    if basis is None:
        basis = "X_umap" if "X_umap" in adata.obsm else f"X_{key}"
    colors = [key] + [c for c in as_list(color) if c != key]
    return sc.pl.embedding(adata, basis=basis, color=colors, **kwargs)
