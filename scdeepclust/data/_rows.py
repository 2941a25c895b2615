"""Row access to a cells x genes matrix that is dense, sparse or HDF5-backed.

The whole point of this module is that nothing ever densifies the full matrix: rows are
materialised as float32 one minibatch (or one inference chunk) at a time.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from scipy import sparse

DEFAULT_CHUNK_SIZE = 4096


class RowSource:
    """Dense float32 rows of a matrix, read one block at a time.

    Accepts numpy arrays, scipy sparse matrices (CSC/COO are converted to CSR once, since every
    access is by row) and anndata's backed sparse datasets.
    """

    def __init__(self, matrix):
        if sparse.issparse(matrix) and not isinstance(
            matrix, (sparse.csr_matrix, sparse.csr_array)
        ):
            matrix = sparse.csr_matrix(matrix)
        elif not sparse.issparse(matrix) and not _is_backed(matrix):
            matrix = np.asarray(matrix)
            if matrix.ndim != 2:
                raise ValueError(f"Expected a 2-d matrix, got an array of shape {matrix.shape}.")
        self.matrix = matrix
        self.n_obs, self.n_vars = matrix.shape

    @property
    def is_sparse(self) -> bool:
        return sparse.issparse(self.matrix) or _is_backed_sparse(self.matrix)

    @property
    def is_backed(self) -> bool:
        return _is_backed(self.matrix)

    def rows(self, index: np.ndarray) -> np.ndarray:
        """Dense float32 copy of the rows in `index` (any order)."""
        if self.is_backed:
            # HDF5-backed data only supports increasing indices.
            order = np.argsort(index, kind="stable")
            block = self.matrix[index[order]]
            dense = np.empty((len(index), self.n_vars), dtype=np.float32)
            dense[order] = block.toarray() if sparse.issparse(block) else np.asarray(block)
            return dense
        block = self.matrix[index]
        if sparse.issparse(block):
            return block.toarray().astype(np.float32, copy=False)
        return np.asarray(block, dtype=np.float32)

    def row_range(self, start: int, stop: int):
        """Rows start:stop in their native format (CSR stays CSR)."""
        return self.matrix[start:stop]

    def iter_blocks(
        self, chunk_size: int = DEFAULT_CHUNK_SIZE
    ) -> Iterator[tuple[int, int, object]]:
        """Consecutive (start, stop, native block) over all rows."""
        for start in range(0, self.n_obs, chunk_size):
            stop = min(start + chunk_size, self.n_obs)
            yield start, stop, self.row_range(start, stop)


def _is_backed_sparse(matrix) -> bool:
    # anndata's backed CSR/CSC datasets; imported lazily because the class moved between versions.
    return type(matrix).__name__ in {"CSRDataset", "CSCDataset", "_CSRDataset", "_CSCDataset"}


def _is_backed(matrix) -> bool:
    return _is_backed_sparse(matrix) or type(matrix).__module__.startswith("h5py")
