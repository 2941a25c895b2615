from __future__ import annotations

from anndata import AnnData


def embedding(
    adata: AnnData, key: str = "scdcc", *, basis: str | None = None, color=None, **kwargs
):
    """Cells on a 2-d embedding coloured by the clusters of `key` (and any other `color`).

    `basis` defaults to ``X_umap`` if present, else the first two dimensions of the method's own
    embedding ``obsm['X_' + key]``. Other arguments (`show`, `save`, `ax`, `legend_loc`, ...)
    go to :func:`scanpy.pl.embedding`.
    """
    import scanpy as sc

    if key not in adata.obs:
        raise KeyError(f"adata.obs has no {key!r}; run scdeepclust.tl first, or pass key=.")
    if basis is None:
        basis = "X_umap" if "X_umap" in adata.obsm else f"X_{key}"
    colors = [key] + ([] if color is None else ([color] if isinstance(color, str) else list(color)))
    return sc.pl.embedding(adata, basis=basis, color=colors, **kwargs)
