"""Built-in and simulated data, and readers.

A reader for the scDCC / scDeepCluster HDF5 layout, and `read` for any input of the command line
(.h5ad, .zarr, 10x .h5, scDCC .h5).
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy import sparse

from ._read import h5_layout, read

__all__ = ["h5_layout", "pbmc68k", "read", "read_h5", "simulate"]


def pbmc68k() -> AnnData:
    """Scanpy's bundled `pbmc68k_reduced` (700 cells, 765 genes) with its raw counts.

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
    n_batches: int = 1,
    batch_effect: float = 0.5,
    group_fractions=None,
) -> AnnData:
    """Simulate counts from a zero-inflated negative binomial model with known groups.

    Each group differs from a shared baseline in `de_fraction` of the genes by a log fold change
    of about `de_log_fold` (up or down). Cells get a log-normal library-size factor, counts are
    drawn from a gamma-Poisson (NB with inverse dispersion `dispersion`), then zeroed with
    probability `dropout`. Generated in row chunks, so a million cells fit in memory as CSR.

    Parameters
    ----------
    n_cells, n_genes, n_groups
        Shape of the count matrix and number of true groups (cell types).
    de_fraction
        Fraction of the genes in which each group differs from the baseline (at least one
        gene, except with 0: then the groups do not differ).
    de_log_fold
        Mean absolute natural-log fold change of those genes.
    mean_log_expression
        Mean of the baseline log expression (gene-wise normal with standard deviation 1).
    library_size_sd
        Standard deviation of the cells' log library-size factors.
    dispersion
        Inverse dispersion of the negative binomial.
    dropout
        Probability that a count is set to zero afterwards.
    random_state
        Seed; the same seed gives the same counts.
    chunk_size
        Cells generated at once, for memory. Where it splits the cells it also orders the
        random draws: the same seed and `chunk_size` give the same counts, another
        `chunk_size` other counts of the same model (the groups and library factors stay).
    n_batches
        Number of batches. With more than one, every cell is assigned a batch uniformly at random,
        independently of its group (each batch holds all cell types). Each batch gets a gene-wise
        multiplicative factor ``exp(N(0, batch_effect))`` per gene and a library-size shift
        ``exp(N(0, batch_effect / 2))``, both multiplied into the cell's negative binomial mean.
        With ``n_batches=1`` (the default) the output is exactly that of a call without the
        batch options: the batch randomness comes from a separate generator.
    batch_effect
        Standard deviation, on the natural-log scale, of the batch factors (see `n_batches`);
        0 gives batches without any effect. Ignored when ``n_batches=1``.
    group_fractions
        Expected share of the cells in each group (`n_groups` non-negative numbers, normalised
        to sum to 1), for unequal or rare populations. Default: equal shares.

    Returns
    -------
    AnnData
        Sparse float32 counts in ``X`` and in ``layers['counts']`` (a copy of them),
        ``obs['group']`` (categorical truth) and ``obs['library_factor']`` (the cell's own
        factor, without the batch shift). With ``n_batches > 1`` also ``obs['batch']``
        (categorical, ``"batch0"``, ``"batch1"``, ...) and ``uns['simulate_batches']`` with the
        factors drawn: ``'gene_factor'`` (batches x genes) and ``'library_factor'`` (per batch).
    """
    for name, value in (
        ("n_cells", n_cells),
        ("n_genes", n_genes),
        ("n_groups", n_groups),
        ("n_batches", n_batches),
        ("chunk_size", chunk_size),
    ):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}.")
    for name, value, low, high in (
        ("de_fraction", de_fraction, 0.0, 1.0),
        ("dropout", dropout, 0.0, 1.0),
    ):
        if not (np.isfinite(value) and low <= value <= high):
            raise ValueError(f"{name} must be a number in [{low:g}, {high:g}], got {value!r}.")
    if not (np.isfinite(dispersion) and dispersion > 0):
        raise ValueError(f"dispersion must be a positive number, got {dispersion!r}.")
    if not (np.isfinite(library_size_sd) and library_size_sd >= 0):
        raise ValueError(f"library_size_sd must be a number >= 0, got {library_size_sd!r}.")
    if not np.isfinite(batch_effect) or batch_effect < 0:
        raise ValueError(f"batch_effect must be a finite number >= 0, got {batch_effect!r}.")
    if group_fractions is None:
        shares = None
    else:
        shares = np.asarray(group_fractions, dtype=np.float64)
        if shares.shape != (n_groups,) or not np.all(np.isfinite(shares)) or np.any(shares < 0):
            raise ValueError(
                f"group_fractions must be {n_groups} finite non-negative numbers (one per group), "
                f"got {group_fractions!r}."
            )
        if shares.sum() <= 0:
            raise ValueError("group_fractions must not all be zero.")
        shares = shares / shares.sum()
    rng = np.random.default_rng(random_state)
    base = rng.normal(mean_log_expression, 1.0, n_genes)
    log_means = np.tile(base, (n_groups, 1))
    n_de = 0 if de_fraction == 0 else max(1, int(round(de_fraction * n_genes)))
    for g in range(n_groups):
        genes = rng.choice(n_genes, n_de, replace=False)
        sign = rng.choice([-1.0, 1.0], n_de)
        log_means[g, genes] += sign * rng.normal(de_log_fold, 0.3, n_de)
    means = np.exp(log_means)
    groups = (
        rng.integers(0, n_groups, n_cells)
        if shares is None
        else rng.choice(n_groups, n_cells, p=shares)
    )
    library = np.exp(rng.normal(0.0, library_size_sd, n_cells))
    batch_scale = None
    if n_batches > 1:
        # A separate generator: the main one's draws, hence the output with one batch, stay
        # exactly as without batches.
        brng = np.random.default_rng(None if random_state is None else [random_state, 1])
        batches = brng.integers(0, n_batches, n_cells)
        gene_factor = np.exp(brng.normal(0.0, batch_effect, (n_batches, n_genes)))
        batch_library = np.exp(brng.normal(0.0, batch_effect / 2, n_batches))
        batch_scale = gene_factor * batch_library[:, None]

    blocks = []
    for start in range(0, n_cells, chunk_size):
        stop = min(start + chunk_size, n_cells)
        mu = library[start:stop, None] * means[groups[start:stop]]
        if batch_scale is not None:
            mu = mu * batch_scale[batches[start:stop]]
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
    # a copy: sc.pp.normalize_total / log1p on X must leave the counts as they are
    adata.layers["counts"] = adata.X.copy()
    if batch_scale is not None:
        names = [f"batch{i}" for i in range(n_batches)]
        adata.obs["batch"] = pd.Categorical.from_codes(batches, names)
        adata.uns["simulate_batches"] = {
            "batches": np.array(names, dtype=object),
            "gene_factor": gene_factor.astype(np.float32),
            "library_factor": batch_library.astype(np.float32),
        }
    return adata


def read_h5(
    path: str | PathLike, *, label_key: str = "label", protein_key: str = "protein"
) -> AnnData:
    """Read a file in the scDCC / scDeepCluster HDF5 layout.

    ``X``: cells x genes raw counts (into a CSR ``X`` and ``layers['counts']``); optional ``Y``:
    integer labels (into ``obs[label_key]`` as categorical); optional ``ADT_X``: protein levels
    (into ``obsm[protein_key]``). Cells are named ``cell0``..., genes ``gene0``... unless the
    file has ``obs_names`` / ``var_names`` datasets.

    Parameters
    ----------
    path
        The HDF5 file.
    label_key
        Column of ``obs`` that receives the labels ``Y``, if the file has them.
    protein_key
        Key of ``obsm`` that receives the protein levels ``ADT_X``, if the file has them.

    Returns
    -------
    AnnData
        Raw counts in ``X`` and ``layers['counts']``, with the labels and protein levels the
        file holds.
    """
    import h5py

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No such file: {path}")
    with h5py.File(path, "r") as f:
        if "X" not in f:
            raise ValueError(f"{path} has no dataset 'X'; keys: {list(f.keys())}.")
        if not isinstance(f["X"], h5py.Dataset) or f["X"].ndim != 2:
            raise ValueError(
                f"{path}: 'X' is not the dense cells x genes matrix of the scDCC layout (a "
                "group, e.g. a sparse matrix, or not 2-d). Read .h5ad files with "
                "scdeepclust.datasets.read or anndata.read_h5ad."
            )
        X = sparse.csr_matrix(np.asarray(f["X"], dtype=np.float32))
        n_obs, n_vars = X.shape
        obs_names = _names(f, "obs_names", "cell", n_obs)
        var_names = _names(f, "var_names", "gene", n_vars)
        obs = pd.DataFrame(index=obs_names)
        if "Y" in f:
            obs[label_key] = _labels(np.asarray(f["Y"]), n_obs, path)
        adata = AnnData(X, obs=obs, var=pd.DataFrame(index=var_names))
        if "ADT_X" in f:
            adata.obsm[protein_key] = np.asarray(f["ADT_X"], dtype=np.float32)
    adata.layers["counts"] = adata.X.copy()
    return adata


def _labels(y: np.ndarray, n_obs: int, path: Path) -> pd.Categorical:
    """Labels of the file's cells as text categories; missing where not finite."""
    if y.ndim == 2 and 1 in y.shape:  # a column or row vector
        y = y.ravel()
    if y.shape != (n_obs,):
        raise ValueError(
            f"{path}: 'Y' has shape {y.shape}; one label per cell ({n_obs}) is needed."
        )
    if y.dtype.kind in "SO":
        return pd.Categorical([v.decode() if isinstance(v, bytes) else v for v in y])
    if y.dtype.kind == "f":
        known = np.isfinite(y)
        if np.all(y[known] == np.round(y[known])):
            return _numbered(y[known].astype(np.int64), known)
        # other numbers too as text, in numeric order ("0.5", "1", "1.5")
        values = np.unique(y[known])
        names = [np.format_float_positional(v, trim="-") for v in values]
        text = np.full(len(y), None, dtype=object)
        text[known] = np.asarray(names, dtype=object)[np.searchsorted(values, y[known])]
        return pd.Categorical(text, categories=names)
    if y.dtype.kind in "iu":
        return _numbered(y, np.ones(len(y), dtype=bool))
    return pd.Categorical(y.astype(str) if y.dtype.kind == "b" else y)


def _numbered(codes: np.ndarray, known: np.ndarray) -> pd.Categorical:
    """Whole-number labels as text categories in numeric order ("2" before "10")."""
    text = np.full(len(known), None, dtype=object)
    text[known] = codes.astype(str)
    return pd.Categorical(text, categories=[str(v) for v in np.unique(codes)])


def _names(f, key: str, prefix: str, n: int) -> list[str]:
    if key in f:
        return [v.decode() if isinstance(v, bytes) else str(v) for v in np.asarray(f[key])]
    return [f"{prefix}{i}" for i in range(n)]
