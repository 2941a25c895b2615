"""Row access to a cells x genes matrix that is dense, sparse or HDF5-backed.

The whole point of this module is that nothing ever densifies the full matrix: rows are
materialised as float32 one minibatch (or one inference chunk) at a time.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator

import numpy as np
from scipy import sparse

DEFAULT_CHUNK_SIZE = 4096
# A chunk made dense holds at most this many values (4,096 rows of 2,048 genes, 32 MiB of
# float32; at least 64 rows), so that its temporaries do not grow with the number of genes:
# 4,096 rows of 20,000 genes make 328 MB each, and on 2,000 cells (one chunk of 160 MB) a
# scDCC pass over them held several at once, 610 MB above its start.
DENSE_CHUNK_VALUES = DEFAULT_CHUNK_SIZE * 2048


def dense_chunk_rows(n_vars: int) -> int:
    """Rows per chunk when a chunk of `n_vars` columns is read dense (at least 64)."""
    return max(64, min(DEFAULT_CHUNK_SIZE, DENSE_CHUNK_VALUES // max(n_vars, 1)))


class RowSource:
    """Dense float32 rows of a matrix, read one block at a time.

    Accepts numpy arrays, scipy sparse matrices (CSC/COO are converted to CSR once, since every
    access is by row) and anndata's backed sparse datasets. A CSR matrix whose values are in
    another byte order (e.g. '>f4' read from a file), which scipy refuses to slice or copy, is
    read block by block in this machine's order.

    `columns` selects and orders the columns seen: positions in `matrix`, with -1 for a column
    that `matrix` lacks and that reads as zeros (genes matched by name, missing genes filled).
    The selection is applied per block, so it never copies the whole matrix either.
    """

    def __init__(self, matrix, columns: np.ndarray | None = None):
        if sparse.issparse(matrix) and not isinstance(
            matrix, (sparse.csr_matrix, sparse.csr_array)
        ):
            matrix = sparse.csr_matrix(matrix)
        elif not sparse.issparse(matrix) and not _is_backed(matrix):
            matrix = np.asarray(matrix)
            if matrix.ndim != 2:
                raise ValueError(f"Expected a 2-d matrix, got an array of shape {matrix.shape}.")
        self.matrix = matrix
        # A sparse matrix may store one entry several times (scipy sums them when it reads
        # values, but not in `.data`): blocks are then summed up before anyone reads `.data`.
        self.sums_duplicates = sparse.issparse(matrix) and not matrix.has_canonical_format
        self.swaps_bytes = sparse.issparse(matrix) and not matrix.dtype.isnative
        self.n_obs, n_stored = matrix.shape
        self._selection = None
        if columns is None:
            self.n_vars = n_stored
        else:
            columns = np.asarray(columns, dtype=np.int64)
            if columns.ndim != 1 or np.any(columns >= n_stored) or np.any(columns < -1):
                raise ValueError(f"columns must be positions in 0..{n_stored - 1} or -1.")
            self.n_vars = len(columns)
            self._selection = _ColumnSelection(columns, n_stored)
        self._offset = 0  # first row of this source in `matrix` (a shard of the rows)

    def shard(self, start: int, stop: int) -> RowSource:
        """Return the rows start:stop as a source of their own, reading from the same matrix.

        Nothing is copied: one process's share of the cells in data-parallel training.
        """
        if not 0 <= start <= stop <= self.n_obs:
            raise ValueError(f"shard {start}:{stop} is outside 0..{self.n_obs}.")
        part = copy.copy(self)
        part._offset = self._offset + start
        part.n_obs = stop - start
        return part

    @property
    def n_missing_columns(self) -> int:
        """Columns selected with -1, read as zeros."""
        return (
            0
            if self._selection is None
            else len(self._selection.columns) - len(self._selection.present)
        )

    @property
    def is_sparse(self) -> bool:
        return sparse.issparse(self.matrix) or _is_backed_sparse(self.matrix)

    @property
    def max_entries(self) -> int:
        """The most entries this source's rows of an in-memory sparse matrix hold as read.

        Those stored, times the most times one column is selected (a column may be selected
        twice).
        """
        indptr = self.matrix.indptr
        stored = int(indptr[self._offset + self.n_obs] - indptr[self._offset])
        if self._selection is None:
            return stored
        selected = self._selection.columns[self._selection.present]
        return stored * (int(np.bincount(selected).max()) if len(selected) else 0)

    @property
    def is_backed(self) -> bool:
        return _is_backed(self.matrix)

    def dense_float32_rows(self) -> np.ndarray | None:
        """Return the rows as a view of the matrix, when it is an in-memory float32 array.

        C-contiguous, writeable and without a column selection, so that torch can use it in
        place; `None` otherwise.
        """
        matrix = self.matrix
        if (
            self._selection is not None
            or not isinstance(matrix, np.ndarray)
            or matrix.dtype != np.float32
            or not matrix.flags.c_contiguous
            or not matrix.flags.writeable
        ):
            return None
        return matrix[self._offset : self._offset + self.n_obs]

    def rows(self, index: np.ndarray) -> np.ndarray:
        """Dense float32 copy of the rows in `index` (any order)."""
        index = np.asarray(index) + self._offset if self._offset else np.asarray(index)
        if self.is_backed:
            # HDF5 reads strictly increasing indices only: each row once, then spread out (draws
            # with replacement repeat rows)
            unique, position = np.unique(index, return_inverse=True)
            block = self._select(self.matrix[unique])
            block = block.toarray() if sparse.issparse(block) else np.asarray(block)
            return np.asarray(block, dtype=np.float32)[position.reshape(-1)]
        block = self._select(
            _native_rows(self.matrix, index) if self.swaps_bytes else self.matrix[index]
        )
        if sparse.issparse(block):
            return block.toarray().astype(np.float32, copy=False)
        return np.asarray(block, dtype=np.float32)

    def row_range(self, start: int, stop: int):
        """Rows start:stop in their native format (CSR stays CSR, without repeated entries)."""
        if self.swaps_bytes:
            rows = np.arange(self._offset + start, self._offset + stop)
            block = _native_rows(self.matrix, rows)
        else:
            block = self.matrix[self._offset + start : self._offset + stop]
        # a backed file's blocks are checked one by one (anndata writes repeated entries as is)
        if self.sums_duplicates or (
            self.is_backed and sparse.issparse(block) and not block.has_canonical_format
        ):
            block = block.copy() if block is self.matrix else block  # a slice is a copy
            block.sum_duplicates()
        return self._select(block)

    def _select(self, block):
        return block if self._selection is None else self._selection(block)

    def iter_blocks(
        self, chunk_size: int = DEFAULT_CHUNK_SIZE
    ) -> Iterator[tuple[int, int, object]]:
        """Consecutive (start, stop, native block) over all rows.

        A dense matrix's blocks hold at most twice `dense_chunk_rows` rows (8,192 up to 2,048
        columns), so that their float64 copies stay bounded whatever the width (8,192 rows of
        20,000 genes: 1.3 GB).
        """
        if not self.is_sparse:
            # a file's rows are read whole before their columns are selected
            width = self.matrix.shape[1] if self.is_backed else self.n_vars
            chunk_size = min(chunk_size, 2 * dense_chunk_rows(width))
        for start in range(0, self.n_obs, chunk_size):
            stop = min(start + chunk_size, self.n_obs)
            yield start, stop, self.row_range(start, stop)


class _ColumnSelection:
    """Takes columns of a block by position, inserting zero columns where the position is -1."""

    def __init__(self, columns: np.ndarray, n_stored: int):
        self.columns = columns
        self.present = np.flatnonzero(columns >= 0)
        self.complete = len(self.present) == len(columns)
        # Missing columns: a sparse 0/1 matrix maps stored columns to output positions.
        self.mapping = sparse.csr_matrix(
            (
                np.ones(len(self.present), dtype=np.float32),
                (columns[self.present], self.present),
            ),
            shape=(n_stored, len(columns)),
        )

    def __call__(self, block):
        if self.complete:
            return block[:, self.columns]
        if sparse.issparse(block):
            return sparse.csr_matrix(block) @ self.mapping
        block = np.asarray(block)
        out = np.zeros((block.shape[0], len(self.columns)), dtype=np.result_type(block, np.float32))
        out[:, self.present] = block[:, self.columns[self.present]]
        return out


def native_byte_order(matrix):
    """Return `matrix` with its values in this machine's byte order (itself when they are).

    A sparse matrix is rebuilt around a converted copy of its values: scipy refuses to copy,
    slice or convert to COO one whose values are in another order.
    """
    dtype = matrix.dtype
    if dtype.isnative:
        return matrix
    native = dtype.newbyteorder("=")
    if sparse.issparse(matrix) and matrix.format in ("csr", "csc"):
        return type(matrix)(
            (matrix.data.astype(native), matrix.indices.copy(), matrix.indptr.copy()),
            shape=matrix.shape,
        )
    return matrix.astype(native)


def _native_rows(matrix, index: np.ndarray):
    """Return rows `index` (any order) of a CSR matrix of values in another byte order.

    As a CSR matrix of values in this machine's order: scipy's own slicing refuses the other.
    """
    indptr = matrix.indptr
    starts = indptr[index]
    lengths = indptr[index + 1] - starts
    new_indptr = np.zeros(len(index) + 1, dtype=np.int64)
    np.cumsum(lengths, out=new_indptr[1:])
    take = np.arange(new_indptr[-1]) + np.repeat(starts - new_indptr[:-1], lengths)
    return type(matrix)(
        (
            matrix.data[take].astype(matrix.dtype.newbyteorder("=")),
            matrix.indices[take],
            new_indptr,
        ),
        shape=(len(index), matrix.shape[1]),
    )


def _is_backed_sparse(matrix) -> bool:
    # anndata's backed CSR/CSC datasets; imported lazily because the class moved between versions.
    return type(matrix).__name__ in {"CSRDataset", "CSCDataset", "_CSRDataset", "_CSCDataset"}


def is_dask_array(matrix) -> bool:
    """Tell a dask array (what anndata's lazy readers give) without importing dask.

    Also a subclass of one: a view of an AnnData holds anndata's `DaskArrayView`.
    """
    of_dask = any(cls.__module__.startswith("dask.") for cls in type(matrix).__mro__)
    return of_dask and hasattr(matrix, "compute")


def _is_backed(matrix) -> bool:
    return _is_backed_sparse(matrix) or type(matrix).__module__.startswith("h5py")
