"""Raw-count handling: finding counts in an AnnData, size factors, per-gene scaling statistics.

Nothing here modifies the AnnData; statistics are computed in one streaming pass over the rows,
touching only the non-zero entries of a sparse matrix.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from anndata import AnnData
from scipy import sparse

from .._messages import is_mudata
from ..data import RowSource
from ._input import (  # noqa: F401  (HOW_TO_PASS_COUNTS: re-exported)
    HOW_TO_PASS_COUNTS,
    checked_counts,
)


def _refuse_data_object(matrix, caller: str) -> None:
    """Refuse an AnnData or a MuData where a matrix is taken.

    numpy read an AnnData as an object array ("exceed the maximum number of dimension"), and
    went through a MuData without end.
    """
    if isinstance(matrix, AnnData) and caller == "all_finite":
        raise TypeError(
            "all_finite takes a matrix, not the AnnData: pass adata.X (or a layer, "
            "adata.layers[name])."
        )
    if isinstance(matrix, AnnData):
        raise TypeError(
            f"{caller} takes the count matrix, not the AnnData: pass adata.X or "
            "adata.layers['counts'] (`scdeepclust.pp.get_counts(adata)[0]` finds it)."
        )
    if is_mudata(matrix):
        raise TypeError(
            f"{caller} takes a matrix, not a MuData: pass one modality's, e.g. "
            "`mdata.mod['rna'].X`."
        )


def all_finite(matrix, *, chunk_size: int = 8192) -> bool:
    """Check whether the matrix has no NaN or infinite entries (checked block by block).

    Parameters
    ----------
    matrix
        A dense or sparse matrix, in memory or backed.
    chunk_size
        Rows checked at once.

    Returns
    -------
    bool
        `True` if every entry is finite.
    """
    _refuse_data_object(matrix, "all_finite")
    for _, _, block in RowSource(matrix).iter_blocks(chunk_size):
        values = block.data if sparse.issparse(block) else np.asarray(block)
        if not np.all(np.isfinite(values)):
            return False
    return True


def is_count_matrix(matrix, *, chunk_size: int = 8192) -> bool:
    """Check whether every entry is a finite, non-negative integer (stored as any dtype).

    Parameters
    ----------
    matrix
        A dense or sparse matrix, in memory or backed.
    chunk_size
        Rows checked at once.

    Returns
    -------
    bool
        `True` if the matrix holds counts.
    """
    _refuse_data_object(matrix, "is_count_matrix")
    for _, _, block in RowSource(matrix).iter_blocks(chunk_size):
        values = block.data if sparse.issparse(block) else np.asarray(block)
        if values.size == 0:
            continue
        if values.dtype.kind not in "biuf":
            return False
        if not np.all(np.isfinite(values)) or values.min() < 0:
            return False
        if np.issubdtype(values.dtype, np.floating) and not np.all(values == np.round(values)):
            return False
    return True


def get_counts(adata: AnnData, layer: str | None = None):
    """Return the raw count matrix of `adata` and a short name of where it came from.

    With ``layer=None``: ``layers['counts']`` if present, else ``adata.X`` if it holds counts.
    Anything else (NaN, negative or non-integer values) raises a `ValueError` that says what
    was found.

    Parameters
    ----------
    adata
        The cells; not modified.
    layer
        Layer that holds the counts, or `None` to look for them as described above.

    Returns
    -------
    matrix
        The count matrix, as stored (not copied).
    where : str
        Where it came from, e.g. ``"X"`` or ``"layers['counts']"``.
    """
    matrix, where, _ = checked_counts(adata, layer)
    return matrix, where


@dataclass
class CountStatistics:
    """Per-cell size factors and per-gene z-scoring statistics of log1p(counts / size factor)."""

    size_factors: np.ndarray  # float32, (n_obs,)
    median_library_size: float
    gene_mean: np.ndarray  # float32, (n_vars,), or (n_batches, n_vars) within batches
    gene_scale: np.ndarray  # float32, as gene_mean; 1 where a gene is constant


def library_sizes(source: RowSource, *, chunk_size: int = 8192) -> np.ndarray:
    totals = np.empty(source.n_obs, dtype=np.float64)
    for start, stop, block in source.iter_blocks(chunk_size):
        # in float64: float16 counts sum to inf above 65,504 (and round long before)
        totals[start:stop] = np.asarray(block.sum(axis=1, dtype=np.float64)).ravel()
    return totals


def size_factors(
    source: RowSource,
    median: float | None = None,
    *,
    chunk_size: int = 8192,
    cell_names=None,
    genes: str = "the genes used",
    remedy: str = (
        "Remove them first: keep the cells where `np.asarray(counts.sum(axis=1)).ravel() > 0` "
        "for the count matrix `counts` (`sc.pp.filter_cells(adata, min_counts=1)` where X "
        "holds the counts)."
    ),
) -> tuple[np.ndarray, float]:
    """Return (library size / median, median).

    The median is that of these cells, or a stored one (cells mapped onto a trained model are
    normalised like the cells it was trained on).
    """
    totals = library_sizes(source, chunk_size=chunk_size)
    if np.any(totals <= 0):
        empty = totals <= 0
        examples = (
            "" if cell_names is None else f" (e.g. {[str(c) for c in cell_names[empty][:3]]})"
        )
        raise ValueError(
            f"{int(empty.sum())} cell(s){examples} have no counts in {genes}. {remedy}"
        )
    median = float(np.median(totals)) if median is None else float(median)
    return totals / median, median


def count_statistics(
    source,
    *,
    batch_codes: np.ndarray | None = None,
    n_batches: int = 1,
    chunk_size: int = 8192,
) -> CountStatistics:
    """Compute size factors and per-gene mean and standard deviation of the log counts.

    Size factors (library size / median library size) and per-gene mean and standard deviation
    of log1p(counts / size factor), as scanpy's normalize/log1p/scale would give.

    Parameters
    ----------
    source
        The count matrix (numpy array, scipy sparse matrix, anndata's backed matrix, or a
        `scdeepclust.data.RowSource`), read block by block.
    batch_codes
        Batch of each cell (0..n_batches-1). With them, the means and scales are computed
        within each batch, (n_batches, n_vars) arrays: the z-scores remove per-batch gene-wise
        shifts.
    n_batches
        Number of batches of `batch_codes`.
    chunk_size
        Rows read at once.

    Returns
    -------
    CountStatistics
        Size factors, median library size, gene means and scales.
    """
    _refuse_data_object(source, "count_statistics")
    if not isinstance(source, RowSource):
        source = RowSource(source)
    if batch_codes is not None:
        batch_codes = np.asarray(batch_codes)
        if (
            batch_codes.shape != (source.n_obs,)
            or batch_codes.dtype.kind not in "iu"
            or batch_codes.min(initial=0) < 0
            or batch_codes.max(initial=0) >= n_batches
        ):
            raise ValueError(
                f"batch_codes must hold one integer in 0..n_batches-1 (n_batches={n_batches}) "
                f"per cell ({source.n_obs}); got shape {batch_codes.shape}, dtype "
                f"{batch_codes.dtype}."
            )
    size_factors_, median = size_factors(source, chunk_size=chunk_size)

    def log_normalised(block, start: int, stop: int):
        sf = size_factors_[start:stop]
        if sparse.issparse(block):
            block = sparse.csr_matrix(block)
            block.data = np.log1p(block.data / np.repeat(sf, np.diff(block.indptr)))
            return block
        return np.log1p(np.asarray(block, dtype=np.float64) / sf[:, None])

    mean, scale = feature_statistics(
        source,
        transform=log_normalised,
        groups=batch_codes,
        n_groups=n_batches,
        chunk_size=chunk_size,
    )
    return CountStatistics(
        size_factors=size_factors_.astype(np.float32),
        median_library_size=median,
        gene_mean=mean,
        gene_scale=scale,
    )


def feature_statistics(
    source: RowSource,
    *,
    transform=None,
    groups: np.ndarray | None = None,
    n_groups: int = 1,
    chunk_size: int = 8192,
) -> tuple[np.ndarray, np.ndarray]:
    """Compute the per-column mean and standard deviation of the transformed rows.

    Mean and standard deviation (unbiased, as `sc.pp.scale`; 1 for a constant column) of
    `transform(block, start, stop)` of the rows, in one streaming pass touching only the
    non-zeros of a sparse matrix (`transform` must keep zeros at zero). With `groups` (a code
    0..n_groups-1 per row), (n_groups, n_vars) float32 arrays of the statistics within each
    group; else (n_vars,) arrays.
    """
    n_vars = source.n_vars
    sums = np.zeros((n_groups, n_vars), dtype=np.float64)
    sums_sq = np.zeros((n_groups, n_vars), dtype=np.float64)
    for start, stop, block in source.iter_blocks(chunk_size):
        if transform is not None:
            block = transform(block, start, stop)
        block_groups = None if groups is None else groups[start:stop]
        if sparse.issparse(block):
            block = sparse.csr_matrix(block)
            values = np.asarray(block.data, dtype=np.float64)
            if block_groups is None:
                sums[0] += np.bincount(block.indices, weights=values, minlength=n_vars)
                sums_sq[0] += np.bincount(block.indices, weights=values**2, minlength=n_vars)
            else:
                flat = np.repeat(block_groups, np.diff(block.indptr)) * n_vars + block.indices
                size = n_groups * n_vars
                sums += np.bincount(flat, weights=values, minlength=size).reshape(n_groups, -1)
                sums_sq += np.bincount(flat, weights=values**2, minlength=size).reshape(
                    n_groups, -1
                )
        else:
            values = np.asarray(block, dtype=np.float64)
            if block_groups is None:
                sums[0] += values.sum(axis=0)
                sums_sq[0] += (values**2).sum(axis=0)
            else:
                for g in np.unique(block_groups):
                    part = values[block_groups == g]
                    sums[g] += part.sum(axis=0)
                    sums_sq[g] += (part**2).sum(axis=0)
    if groups is None:
        n = np.array([source.n_obs], dtype=np.float64)
    else:
        n = np.bincount(groups, minlength=n_groups).astype(np.float64)
    n = n[:, None]
    mean = sums / np.maximum(n, 1)
    # Unbiased variance, as sc.pp.scale uses.
    mean_sq = sums_sq / np.maximum(n, 1)
    var = np.maximum(mean_sq - mean**2, 0.0) * (n / np.maximum(n - 1, 1))
    scale = np.sqrt(var)
    # A constant column has variance 0 up to the rounding of mean_sq - mean**2 (relative error
    # ~1e-16 of mean_sq): scale 1, or its rounding noise would be blown up to unit variance.
    scale[var <= 1e-12 * mean_sq] = 1.0
    # a spread below float32's normal numbers (values of about 1e-38 or less) has no float32
    # inverse: taken as constant too, not divided by
    scale[scale < np.finfo(np.float32).tiny] = 1.0
    mean, scale = mean.astype(np.float32), scale.astype(np.float32)
    return (mean[0], scale[0]) if groups is None else (mean, scale)
