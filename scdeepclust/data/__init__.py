"""Data feeding: row access to dense / sparse / backed matrices and minibatches for torch."""

from ._balance import density_balanced_weights
from ._feeding import Batch, CellFeeder, RowShard, stream_outputs
from ._rows import DEFAULT_CHUNK_SIZE, RowSource

__all__ = [
    "Batch",
    "CellFeeder",
    "DEFAULT_CHUNK_SIZE",
    "RowShard",
    "RowSource",
    "density_balanced_weights",
    "stream_outputs",
]
