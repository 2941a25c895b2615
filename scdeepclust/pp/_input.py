"""Finding a tool's input matrix in an AnnData and checking it, in one streaming pass.

Shared by every tool: where the matrix comes from (``X``, a layer, an ``obsm`` entry, the
default count layer), whether it is numeric and finite, whether it holds counts, and which
cells and genes are all zero. Nothing here modifies the AnnData.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from anndata import AnnData
from scipy import sparse

from ..data import RowSource

HOW_TO_PASS_COUNTS = (
    "scdcc models raw counts. Keep them before normalising, e.g. "
    "`adata.layers['counts'] = adata.X.copy()` right after loading, then pass `layer='counts'`."
)


def input_matrix(adata: AnnData, *, layer: str | None = None, use_rep: str | None = None):
    """(matrix, where): ``adata.obsm[use_rep]``, ``adata.layers[layer]`` or ``adata.X``, with
    `where` a short description such as ``"layers['counts']"`` for messages."""
    if layer is not None and use_rep is not None:
        raise ValueError("Pass either layer or use_rep, not both.")
    if use_rep is not None:
        if use_rep not in adata.obsm:
            raise KeyError(
                f"use_rep {use_rep!r} is not in adata.obsm; keys: {list(adata.obsm.keys())}."
            )
        matrix, where = adata.obsm[use_rep], f"obsm[{use_rep!r}]"
        if hasattr(matrix, "to_numpy"):  # a DataFrame in obsm
            matrix = matrix.to_numpy()
    elif layer is not None:
        if layer not in adata.layers:
            raise KeyError(
                f"Layer {layer!r} not found; available layers: {list(adata.layers.keys())}."
            )
        matrix, where = adata.layers[layer], f"layers[{layer!r}]"
    else:
        matrix, where = adata.X, "X"
    if matrix is None:
        raise ValueError(f"adata.{where} is empty (None).")
    return matrix, where


def counts_location(adata: AnnData, layer: str | None) -> tuple[str | None, str]:
    """The layer scdcc reads counts from (None for X) and its description: `layer`, else
    ``layers['counts']`` if present, else ``X``."""
    if layer is None and "counts" in adata.layers:
        layer = "counts"
    return layer, ("X" if layer is None else f"layers[{layer!r}]")


@dataclass
class MatrixSummary:
    """What one pass over a matrix found."""

    shape: tuple[int, int]
    dtype: np.dtype
    n_nonfinite: int  # NaN or infinite entries
    n_negative: int
    example_non_integer: float | None  # a finite value that is not an integer, if any
    zero_rows: np.ndarray  # bool (n_obs,): rows without a non-zero entry
    zero_cols: np.ndarray  # bool (n_vars,)

    @property
    def is_counts(self) -> bool:
        return self.n_nonfinite == 0 and self.n_negative == 0 and self.example_non_integer is None


def _check_dtype(dtype, where: str) -> np.dtype:
    dtype = np.dtype(dtype)
    if dtype.kind not in "biuf":
        raise TypeError(
            f"adata.{where} has dtype {dtype}; a numeric matrix (integers or floats) is needed."
        )
    return dtype


def scan_matrix(matrix, *, where: str = "X", chunk_size: int = 8192) -> MatrixSummary:
    """Non-finite, negative and non-integer values and all-zero rows / columns, block by block
    (a sparse matrix is read through its stored entries only)."""
    source = RowSource(matrix)
    dtype = _check_dtype(getattr(source.matrix, "dtype", np.float64), where)
    n_nonfinite = n_negative = 0
    non_integer = None
    row_nonzero = np.zeros(source.n_obs, dtype=bool)
    col_nonzero = np.zeros(source.n_vars, dtype=bool)
    for start, stop, block in source.iter_blocks(chunk_size):
        if sparse.issparse(block):
            block = sparse.csr_matrix(block)
            values = block.data
            nonzero = values != 0
            rows = np.repeat(np.arange(stop - start), np.diff(block.indptr))
            row_nonzero[start:stop] |= np.bincount(rows[nonzero], minlength=stop - start) > 0
            col_nonzero[block.indices[nonzero]] = True
        else:
            values = np.asarray(block)
            nonzero = values != 0
            row_nonzero[start:stop] |= nonzero.any(axis=1)
            col_nonzero |= nonzero.any(axis=0)
            values = values.ravel()
        if values.size == 0 or dtype.kind == "b":
            continue
        if dtype.kind == "f":
            finite = np.isfinite(values)
            n_nonfinite += int(values.size - finite.sum())
            values = values[finite]
        n_negative += int((values < 0).sum())
        if non_integer is None and dtype.kind == "f":
            off = values != np.round(values)
            if off.any():
                non_integer = float(values[np.argmax(off)])
    return MatrixSummary(
        shape=(source.n_obs, source.n_vars),
        dtype=dtype,
        n_nonfinite=n_nonfinite,
        n_negative=n_negative,
        example_non_integer=non_integer,
        zero_rows=~row_nonzero,
        zero_cols=~col_nonzero,
    )


def check_finite(summary: MatrixSummary, where: str) -> None:
    if summary.n_nonfinite:
        raise ValueError(
            f"adata.{where} contains {summary.n_nonfinite} NaN or infinite value(s). Find them "
            "with `np.isnan` / `np.isinf` and remove or replace those cells or genes first."
        )


def check_counts(summary: MatrixSummary, where: str, *, raw_hint: bool = False) -> None:
    """Refuse anything but finite non-negative integers, saying what was found."""
    check_finite(summary, where)
    if summary.is_counts:
        return
    if summary.n_negative:
        found = f"it has {summary.n_negative} negative value(s) (scaled or centred data?)"
    else:
        found = (
            f"it has non-integer values such as {summary.example_non_integer:.4g}: it looks "
            "normalised or log-transformed"
        )
    hint = (
        " adata.raw holds a matrix too; if it has counts, use `adata.raw.to_adata()`."
        if raw_hint
        else ""
    )
    raise ValueError(
        f"adata.{where} does not hold raw counts (non-negative integers): {found}. "
        f"{HOW_TO_PASS_COUNTS}{hint}"
    )
