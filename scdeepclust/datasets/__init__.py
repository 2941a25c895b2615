"""Built-in and simulated data, a reader for the scDCC / scDeepCluster HDF5 layout, and `read`
for any input of the command line (.h5ad, 10x .h5, scDCC .h5)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy import sparse

from ._read import h5_layout, read

__all__ = ["h5_layout", "pbmc68k", "read", "read_h5", "simulate"]


def pbmc68k() -> AnnData:
    """scanpy's bundled `pbmc68k_reduced` (700 cells, 765 genes) with its raw counts.

    The bundled `.raw` holds log1p(counts / n_counts * 1e4); the integer counts are recovered
    exactly from it into ``layers['counts']``. ``X`` is the log-normalised matrix,
    ``obs['bulk_labels']`` the annotated cell types. Needs no network.
    """
    import scanpy as sc

    bundled = sc.datasets.pbmc68k_reduced()
    adata = bundled.raw.to_adata()
    lognorm = sparse.csr_matrix(adata.X, dtype=np.float32)
    n_counts = bundled.obs["n_counts"].to_numpy(dtype=np.float64)
    counts = lognorm.copy().astype(np.float64)
    counts.data = np.expm1(counts.data)
    counts = sparse.diags(n_counts / 1e4) @ counts
    counts.data = np.round(counts.data)
    counts = sparse.csr_matrix(counts, dtype=np.float32)
    counts.eliminate_zeros()
    adata.X = lognorm
    adata.layers["counts"] = counts
    adata.obs = bundled.obs.copy()
    adata.obsm["X_umap"] = bundled.obsm["X_umap"].copy()
    return adata


def simulate(
    n_cells: int = 2000,
    n_genes: int = 1000,
    n_groups: int = 5,
    *,
    de_fraction: float = 0.1,
    de_log_fold: float = 1.5,
    mean_log_expression: float = -0.5,
    library_size_sd: float = 0.4,
    dispersion: float = 2.0,
    dropout: float = 0.1,
    random_state: int = 0,
    chunk_size: int = 20_000,
) -> AnnData:
    """Counts from a zero-inflated negative binomial model with known groups.

    Each group differs from a shared baseline in `de_fraction` of the genes by a log fold change
    of about `de_log_fold` (up or down). Cells get a log-normal library-size factor, counts are
    drawn from a gamma-Poisson (NB with inverse dispersion `dispersion`), then zeroed with
    probability `dropout`. Generated in row chunks, so a million cells fit in memory as CSR.

    Returns
    -------
    AnnData with sparse float32 counts in ``X`` and ``layers['counts']`` (the same matrix),
    ``obs['group']`` (categorical truth) and ``obs['library_factor']``.
    """
    rng = np.random.default_rng(random_state)
    base = rng.normal(mean_log_expression, 1.0, n_genes)
    log_means = np.tile(base, (n_groups, 1))
    n_de = max(1, int(round(de_fraction * n_genes)))
    for g in range(n_groups):
        genes = rng.choice(n_genes, n_de, replace=False)
        sign = rng.choice([-1.0, 1.0], n_de)
        log_means[g, genes] += sign * rng.normal(de_log_fold, 0.3, n_de)
    means = np.exp(log_means)
    groups = rng.integers(0, n_groups, n_cells)
    library = np.exp(rng.normal(0.0, library_size_sd, n_cells))

    blocks = []
    for start in range(0, n_cells, chunk_size):
        stop = min(start + chunk_size, n_cells)
        mu = library[start:stop, None] * means[groups[start:stop]]
        lam = rng.gamma(dispersion, mu / dispersion)
        counts = rng.poisson(lam).astype(np.float32)
        counts[rng.random(counts.shape) < dropout] = 0
        blocks.append(sparse.csr_matrix(counts))
    X = sparse.vstack(blocks, format="csr", dtype=np.float32)
    obs = pd.DataFrame(
        {
            "group": pd.Categorical.from_codes(groups, [str(i) for i in range(n_groups)]),
            "library_factor": library.astype(np.float32),
        },
        index=[f"cell{i}" for i in range(n_cells)],
    )
    adata = AnnData(X, obs=obs, var=pd.DataFrame(index=[f"gene{i}" for i in range(n_genes)]))
    adata.layers["counts"] = adata.X
    return adata


def read_h5(path: str | Path, *, label_key: str = "label", protein_key: str = "protein") -> AnnData:
    """Read a file in the scDCC / scDeepCluster HDF5 layout.

    ``X``: cells x genes raw counts (into a CSR ``X`` and ``layers['counts']``); optional ``Y``:
    integer labels (into ``obs[label_key]`` as categorical); optional ``ADT_X``: protein levels
    (into ``obsm[protein_key]``). Cells are named ``cell0``..., genes ``gene0``... unless the
    file has ``obs_names`` / ``var_names`` datasets.
    """
    import h5py

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No such file: {path}")
    with h5py.File(path, "r") as f:
        if "X" not in f:
            raise ValueError(f"{path} has no dataset 'X'; keys: {list(f.keys())}.")
        X = sparse.csr_matrix(np.asarray(f["X"], dtype=np.float32))
        n_obs, n_vars = X.shape
        obs_names = _names(f, "obs_names", "cell", n_obs)
        var_names = _names(f, "var_names", "gene", n_vars)
        obs = pd.DataFrame(index=obs_names)
        if "Y" in f:
            y = np.asarray(f["Y"])
            if np.issubdtype(y.dtype, np.floating) and np.all(y == np.round(y)):
                y = y.astype(np.int64)
            obs[label_key] = pd.Categorical(y.astype(str) if y.dtype.kind in "iu" else y)
        adata = AnnData(X, obs=obs, var=pd.DataFrame(index=var_names))
        if "ADT_X" in f:
            adata.obsm[protein_key] = np.asarray(f["ADT_X"], dtype=np.float32)
    adata.layers["counts"] = adata.X.copy()
    return adata


def _names(f, key: str, prefix: str, n: int) -> list[str]:
    if key in f:
        return [v.decode() if isinstance(v, bytes) else str(v) for v in np.asarray(f[key])]
    return [f"{prefix}{i}" for i in range(n)]
