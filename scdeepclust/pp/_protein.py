"""Protein (CITE-seq ADT) levels: reading them from ``obsm`` and normalising their counts."""

from __future__ import annotations

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy import sparse

from .._messages import PROTEINS_FROM_ANOTHER_ANNDATA, is_mudata, not_anndata
from ..data import is_dask_array
from ._input import check_names

# Raw ADT counts of a cell run into the tens or thousands; small integers (0/1 marks, a few
# levels) are levels someone chose, which a log-ratio would distort.
COUNTS_ABOVE = 10
# No log or log-ratio scale of counts reaches this (log1p of 2**62 is 43): fractional levels
# above it are counts (e.g. corrected for ambient signal) or counts scaled without a log.
LOG_SCALE_MAX = 50.0


def protein_levels(stored, protein_key: str) -> np.ndarray:
    """Return the levels in ``obsm[protein_key]`` (array, sparse or DataFrame) as float64."""
    if is_dask_array(stored):
        stored = stored.compute()
    if sparse.issparse(stored):
        stored = stored.toarray()
    try:
        if hasattr(stored, "to_numpy"):  # missing values of nullable columns become NaN
            stored = stored.to_numpy(dtype=np.float64, na_value=np.nan)
        return np.asarray(stored, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"adata.obsm[{protein_key!r}] must hold numbers (cells x proteins): {error}."
        ) from None


def holds_protein_counts(levels: np.ndarray) -> bool:
    """Whether `levels` look like antibody counts rather than normalised levels.

    Counts are >= 0, and whole numbers some of which are above 10, or reach above any log
    scale (50), as fractional counts corrected for ambient signal do. Euclidean distances on
    such counts follow the most abundant proteins; a centred log-ratio per cell (`clr`) puts
    the proteins on one footing.
    """
    if not levels.size or not np.all(np.isfinite(levels)) or levels.min() < 0:
        return False
    largest = levels.max()
    return bool(
        largest > LOG_SCALE_MAX or (largest > COUNTS_ABOVE and np.all(levels == np.round(levels)))
    )


def clr(
    adata: AnnData,
    protein_key: str = "protein",
    *,
    key_added: str | None = None,
    copy: bool = False,
) -> AnnData | None:
    """Normalise protein (ADT) counts in ``obsm`` by a centred log-ratio per cell.

    Each cell's counts x become ``log1p(x / g)``, where ``log(g)`` is the mean of
    ``log1p(x)`` over the cell's proteins (Seurat's ``NormalizeData(normalization.method =
    "CLR", margin = 2)``, per cell), so that the proteins of a cell are measured against each
    other rather than by their raw abundance.
    This is what `tl.scdcc`'s ``protein_key`` expects of CITE-seq antibody counts, such as
    those `datasets.read` puts in ``obsm['protein']`` from a 10x ``.h5``.

    Parameters
    ----------
    adata
        The annotated data matrix.
    protein_key
        `obsm` key of the counts: cells x proteins, an array, a sparse matrix or a DataFrame
        (kept a DataFrame, with its columns). Counts are >= 0, and whole numbers or
        (corrected for ambient signal, say) fractions reaching above 50: negative values,
        and fractions that stay within a log scale, are refused as normalised already.
    key_added
        `obsm` key to write the normalised levels to; default: over `protein_key`.
    copy
        Return a normalised copy instead of writing into `adata`.

    Returns
    -------
    The copy with `copy=True`, else `None`: ``adata.obsm[key_added]`` (float32) is written.
    """
    if not isinstance(adata, AnnData):
        if is_mudata(adata):
            raise TypeError(
                "Expected an AnnData object, got MuData: pp.clr normalises the protein counts "
                "in an AnnData's obsm, those of the cells to cluster. Put a protein modality's "
                "counts there first: `rna = mdata.mod['rna']; rna.obsm['protein'] = "
                "mdata.mod['prot'].to_df().reindex(rna.obs_names)`, then `sdc.pp.clr(rna)`."
            )
        raise not_anndata(adata)
    check_names(protein_key=protein_key, key_added=key_added)
    if key_added is not None and "/" in key_added:
        raise ValueError(
            f"key_added {key_added!r} contains '/', which .h5ad and .zarr files cannot hold in "
            "a key; use another character, e.g. '_'."
        )
    if protein_key not in adata.obsm:
        raise KeyError(
            f"protein_key {protein_key!r} is not in adata.obsm; keys: {list(adata.obsm.keys())}. "
            + PROTEINS_FROM_ANOTHER_ANNDATA
        )
    stored = adata.obsm[protein_key]
    counts = protein_levels(stored, protein_key)
    if counts.ndim != 2 or 0 in counts.shape:
        raise ValueError(
            f"adata.obsm[{protein_key!r}] must be a cells x proteins matrix with at least one "
            f"cell and one protein; it has shape {counts.shape}."
        )
    n_bad = int(np.sum(~np.isfinite(counts)))
    if n_bad:
        raise ValueError(
            f"adata.obsm[{protein_key!r}] holds {n_bad} NaN or infinite values; a centred "
            "log-ratio needs every count of a cell. Fill or leave out those cells first."
        )
    fractional = counts != np.round(counts)
    if counts.min() < 0 or (fractional.any() and counts.max() <= LOG_SCALE_MAX):
        found = (
            f"negative values (the smallest is {counts.min():.10g})"
            if counts.min() < 0
            else f"fractions (e.g. {counts[fractional][0]:.10g}) no larger than {counts.max():.10g}"
        )
        raise ValueError(
            f"adata.obsm[{protein_key!r}] holds {found}, so it is not antibody counts: it "
            "looks normalised already. Pass it to tl.scdcc(protein_key=...) as it is, or "
            "normalise the raw counts instead."
        )
    logged = np.log1p(counts)
    levels = np.log1p(counts / np.exp(logged.mean(axis=1, keepdims=True))).astype(np.float32)
    if isinstance(stored, pd.DataFrame):
        levels = pd.DataFrame(levels, index=stored.index, columns=stored.columns)
    target = adata.copy() if copy else adata
    target.obsm[key_added or protein_key] = levels
    return target if copy else None
