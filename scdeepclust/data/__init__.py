"""Data feeding: row access to dense / sparse / backed matrices and minibatches for torch."""

from ._feeding import Batch, CellFeeder, RowShard, minibatch_count, stream_outputs
from ._rows import DEFAULT_CHUNK_SIZE, RowSource, dense_chunk_rows, is_dask_array

__all__ = [
    "Batch",
    "CellFeeder",
    "DEFAULT_CHUNK_SIZE",
    "RowShard",
    "RowSource",
    "dense_chunk_rows",
    "is_dask_array",
    "minibatch_count",
    "stream_outputs",
]
