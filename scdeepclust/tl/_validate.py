"""Checks shared by the public tools, done before any training."""

from __future__ import annotations

from anndata import AnnData


def check_adata(adata, *, min_cells: int = 2) -> None:
    if not isinstance(adata, AnnData):
        raise TypeError(f"Expected an AnnData object, got {type(adata).__name__}.")
    if adata.n_obs < min_cells or adata.n_vars == 0:
        raise ValueError(
            f"adata has shape {adata.shape}; at least {min_cells} cells and one gene are needed."
        )


def check_n_clusters(n_clusters: int | None, n_obs: int) -> None:
    if n_clusters is None:
        return
    if int(n_clusters) != n_clusters or n_clusters < 2:
        raise ValueError(f"n_clusters must be an integer >= 2, got {n_clusters!r}.")
    if n_clusters > n_obs:
        raise ValueError(f"n_clusters={n_clusters} is larger than the number of cells ({n_obs}).")


def check_key_added(key_added: str) -> None:
    if not isinstance(key_added, str) or not key_added:
        raise ValueError("key_added must be a non-empty string.")


def target_adata(adata: AnnData, copy: bool) -> AnnData:
    """The object results are written to: a copy, or the caller's (a view is made actual, with
    anndata's usual warning, only at write time)."""
    return adata.copy() if copy else adata
