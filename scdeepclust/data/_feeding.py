"""Minibatches and inference chunks as torch tensors on the training device.

`CellFeeder` turns a `RowSource` into what the networks consume. For count models (scDCC) it
carries the raw counts and size factors and builds the network input, z-scored
log1p(counts / size factor), on the device per batch; for models of already-transformed data
(DESC, `use_rep`) the rows are fed as they are, or z-scored with given statistics.

With `batch_codes` (each cell's batch, 0..n_batches-1) every minibatch carries them for
conditional networks, and the z-scoring statistics may be per batch ((n_batches, n_vars)).

In data-parallel training each process feeds its own `RowShard` of the cells (`shard`); the
shards yield the same number of minibatches per epoch, so collectives stay in step.

Where the rows live: on a CUDA device whose free memory holds the matrix with room to spare,
the rows are copied to the device once (`ResidentRows`: CSR as three arrays, or dense) and each
minibatch is gathered and densified there, so training does not wait on the host; otherwise
they are densified on the host per minibatch, in pinned memory, and copied without blocking.
On the CPU a dense matrix is read as a float32 tensor kept for the whole call (the matrix
itself when it is float32 already, else a copy of at most CPU_RESIDENT_MAX_BYTES): converting
each minibatch from the float64 that `sc.pp.scale` leaves took about a fifth of DESC's
pretraining on 10X PBMC. Sparse rows stay where they are on the CPU: scipy densifies a
minibatch of them faster than the gather on the device does there.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from .._process import ignoring_warnings
from ._rows import RowSource, dense_chunk_rows

# Rows are kept on a CUDA device only when they take at most this share of its free memory,
# and leave at least RESIDENT_HEADROOM free: training, inference chunks and the gathered
# minibatches need room beside the data, and other processes may share the device.
RESIDENT_SHARE = 0.5
RESIDENT_HEADROOM = 2 * 2**30
# On the CPU a dense matrix that is not float32 is copied as float32 only up to this size (about
# 130,000 cells x 2,000 genes); larger ones are converted per minibatch, as sparse ones are.
CPU_RESIDENT_MAX_BYTES = 2**30
_UNDECIDED = object()


@dataclass(frozen=True)
class RowShard:
    """Rows start:stop of n_total, the share of process `rank` of `world_size`."""

    rank: int
    world_size: int
    start: int
    stop: int
    n_total: int

    @staticmethod
    def bounds(n_total: int, world_size: int) -> np.ndarray:
        """Contiguous, nearly equal shards: rank r holds rows bounds[r]:bounds[r + 1]."""
        return np.linspace(0, n_total, world_size + 1).round().astype(np.int64)

    @classmethod
    def of(cls, n_total: int, rank: int, world_size: int) -> RowShard:
        b = cls.bounds(n_total, world_size)
        return cls(rank, world_size, int(b[rank]), int(b[rank + 1]), n_total)

    @property
    def max_rows(self) -> int:
        return int(np.diff(self.bounds(self.n_total, self.world_size)).max())


@dataclass
class Batch:
    index: torch.Tensor  # long, positions of these cells in the data
    x: torch.Tensor  # network input
    counts: torch.Tensor | None = None  # raw counts, for count likelihoods
    size_factors: torch.Tensor | None = None
    batch_code: torch.Tensor | None = None  # long, each cell's batch (the `batch_key` covariate)


class CellFeeder:
    """Feeds cells of one dataset to a model, in shuffled minibatches or ordered chunks."""

    def __init__(
        self,
        source: RowSource,
        *,
        device: torch.device,
        size_factors: np.ndarray | None = None,
        gene_mean: np.ndarray | None = None,
        gene_scale: np.ndarray | None = None,
        max_value: float | None = None,
        shard: RowShard | None = None,
        batch_codes: np.ndarray | None = None,
    ):
        self.source = source
        self.shard = shard
        self.device = device
        self.count_model = size_factors is not None
        # Per-cell vectors are small: on the device, indexed there by each batch's cells.
        self._size_factors = None if size_factors is None else _to(size_factors, device)
        self._mean = None if gene_mean is None else _to(gene_mean, device)
        self._inv_scale = None if gene_scale is None else _to(1.0 / gene_scale, device)
        self.max_value = max_value
        self._pin = device.type == "cuda"
        self._batch_codes = (
            None
            if batch_codes is None
            else torch.as_tensor(np.asarray(batch_codes), dtype=torch.long, device=device)
        )
        # Decided at the first batch, so that a feeder sharded right away uploads its share only.
        self._resident = _UNDECIDED
        if self._mean is not None and self._mean.ndim == 2 and self._batch_codes is None:
            raise ValueError("Per-batch statistics need the cells' batch codes.")

    @property
    def n_obs(self) -> int:
        return self.source.n_obs

    @property
    def n_vars(self) -> int:
        return self.source.n_vars

    @property
    def n_total(self) -> int:
        """Cells of the whole dataset (all shards); `n_obs` is this feeder's share."""
        return self.n_obs if self.shard is None else self.shard.n_total

    @property
    def batch_codes(self) -> np.ndarray | None:
        """Batch codes of the feeder's cells (`None` without batches)."""
        return None if self._batch_codes is None else self._batch_codes.cpu().numpy()

    @property
    def distributed(self) -> bool:
        return self.shard is not None and self.shard.world_size > 1

    def sharded(self, rank: int, world_size: int) -> CellFeeder:
        """Return this process's share of the cells, for data-parallel training.

        The same preprocessing (size factors and gene statistics of the whole data) on rows
        start:stop of `RowShard.of`.
        """
        shard = RowShard.of(self.n_obs, rank, world_size)
        part = copy.copy(self)
        part.source = self.source.shard(shard.start, shard.stop)
        if self._size_factors is not None:
            part._size_factors = self._size_factors[shard.start : shard.stop]
        if self._batch_codes is not None:
            part._batch_codes = self._batch_codes[shard.start : shard.stop]
        part.shard = shard
        part._resident = _UNDECIDED
        return part

    def batch(self, index: np.ndarray) -> Batch:
        index = np.asarray(index, dtype=np.int64)
        index_t = torch.from_numpy(index).to(self.device, non_blocking=True)
        rows = self._rows(index, index_t)
        code = None if self._batch_codes is None else self._batch_codes[index_t]
        if self.count_model:
            sf = self._size_factors[index_t]
            x = torch.log1p(rows / sf[:, None])
            x = self._standardise(x, code)
            return Batch(index=index_t, x=x, counts=rows, size_factors=sf, batch_code=code)
        return Batch(index=index_t, x=self._standardise(rows, code), batch_code=code)

    def _rows(self, index: np.ndarray, index_t: torch.Tensor) -> torch.Tensor:
        """Dense float32 rows of `index` on the device (`index_t`: the same on the device)."""
        if self._resident is _UNDECIDED:
            keep = keeps_rows(self.source, self.device)
            self._resident = ResidentRows.upload(self.source, self.device) if keep else None
        if self._resident is not None:
            return self._resident.rows(index, index_t)
        rows = torch.from_numpy(self.source.rows(index))
        if self._pin:
            rows = rows.pin_memory()
        return rows.to(self.device, non_blocking=True)

    def _standardise(self, x: torch.Tensor, code: torch.Tensor | None) -> torch.Tensor:
        if self._mean is not None:
            if self._mean.ndim == 2:  # within each cell's batch
                x = (x - self._mean[code]) * self._inv_scale[code]
            else:
                x = (x - self._mean) * self._inv_scale
            if self.max_value is not None:
                x = x.clamp(-self.max_value, self.max_value)
        return x

    def minibatches(
        self,
        batch_size: int,
        rng: np.random.Generator,
        weights: np.ndarray | None = None,
        n_cells: int | None = None,
    ) -> Iterator[Batch]:
        """Yield one epoch of shuffled minibatches.

        A last batch of a single cell is merged into the previous one, since batch statistics of
        one cell are meaningless. With `weights` (a probability per cell of this feeder), the
        epoch's `n_obs` cells are drawn with replacement with these probabilities instead of
        each cell once; the batches are the same in number and size. With `n_cells` below
        `n_total` (without `weights`), the epoch is a random `n_cells` of the cells, each at
        most once (sharded, each process's share of them).
        """
        if weights is None:
            order = rng.permutation(self.n_obs)
            if n_cells is not None and n_cells < self.n_total:
                order = order[: self._epoch_rows(n_cells)]
        else:
            order = rng.choice(self.n_obs, self.n_obs, p=weights)
            n_cells = None
        if self.distributed:
            for part in np.array_split(order, self.n_batches(batch_size, n_cells)):
                yield self.batch(part)
            return
        bounds = _batch_bounds(len(order), batch_size)
        for start, stop in zip(bounds[:-1], bounds[1:]):
            yield self.batch(order[start:stop])

    def chunks(self, chunk_size: int | None = None) -> Iterator[Batch]:
        """All cells in order, for inference (default: `dense_chunk_rows` of the genes)."""
        if chunk_size is None:
            chunk_size = dense_chunk_rows(self.n_vars)
        for start in range(0, self.n_obs, chunk_size):
            yield self.batch(np.arange(start, min(start + chunk_size, self.n_obs)))

    def n_batches(self, batch_size: int, n_cells: int | None = None) -> int:
        """Return the number of minibatches per epoch, as `minibatches` makes them.

        Sharded, `batch_size` is the global batch: each of the `world_size` shards gives
        1 / world_size of it, and every shard the same number of batches (that of the largest
        shard, or of a share of `n_cells` when epochs are subsets).
        """
        if self.distributed:
            per_rank = -(-batch_size // self.shard.world_size)
            rows = self.shard.max_rows
            if n_cells is not None and n_cells < self.n_total:
                rows = -(-n_cells // self.shard.world_size)
            return minibatch_count(rows, per_rank)
        rows = self.n_obs if n_cells is None else min(n_cells, self.n_obs)
        return minibatch_count(rows, batch_size)

    def _epoch_rows(self, n_cells: int) -> int:
        """Return this process's rows of an epoch of `n_cells` cells across processes."""
        if self.distributed:
            return min(self.n_obs, -(-n_cells // self.shard.world_size))
        return n_cells


def minibatch_count(n_obs: int, batch_size: int) -> int:
    """Return the number of minibatches `minibatches` cuts `n_obs` rows into."""
    return len(_batch_bounds(n_obs, batch_size)) - 1


def _batch_bounds(n_obs: int, batch_size: int) -> list[int]:
    bounds = list(range(0, n_obs, batch_size)) + [n_obs]
    if len(bounds) > 2 and bounds[-1] - bounds[-2] == 1:
        bounds.pop(-2)
    return bounds


def keeps_rows(source: RowSource, device: torch.device) -> bool:
    """Decide whether the rows of `source` are held as a device tensor for the whole call.

    On a CUDA device when they fit (`fits_on_device`); on the CPU when they are dense and either
    float32 already (used in place) or small enough to copy (CPU_RESIDENT_MAX_BYTES); never when
    they are read from disk.
    """
    if source.is_backed:
        return False
    if device.type == "cuda":
        return fits_on_device(ResidentRows.nbytes(source), device)
    if device.type != "cpu" or source.is_sparse:
        return False
    return (
        source.dense_float32_rows() is not None
        or ResidentRows.nbytes(source) <= CPU_RESIDENT_MAX_BYTES
    )


def fits_on_device(nbytes: int, device: torch.device) -> bool:
    """Decide whether data of `nbytes` fits a CUDA device to be kept there for training.

    When it fits its free memory with room to spare (RESIDENT_SHARE, RESIDENT_HEADROOM); `False`
    for any other device (the CPU has its own rule, `keeps_rows`).
    """
    if device.type != "cuda":
        return False
    free, _ = torch.cuda.mem_get_info(device)
    return nbytes <= min(RESIDENT_SHARE * free, free - RESIDENT_HEADROOM)


class ResidentRows:
    """The rows of a `RowSource` copied once to a device.

    A CSR matrix as its three arrays (float32 values, int32 columns, int64 row pointers) or a
    dense float32 matrix. Minibatches are gathered and densified on the device
    (`gather_csr_rows`). Columns are selected as the source selects them, while copying.
    """

    def __init__(self, n_vars: int, *, dense=None, csr=None, indptr_host=None):
        self.n_vars = n_vars
        self.dense = dense
        self.csr = csr  # (indptr, indices, data) on the device
        # Row pointers also on the host: each batch's number of entries is known there, which
        # spares the device a synchronisation per batch.
        self._indptr_host = indptr_host

    @staticmethod
    def nbytes(source: RowSource) -> int:
        """Device memory the rows of `source` take (an upper bound when columns are selected)."""
        if source.is_sparse:
            return source.max_entries * 8 + (source.n_obs + 1) * 8
        return source.n_obs * source.n_vars * 4

    @classmethod
    def upload(cls, source: RowSource, device: torch.device) -> ResidentRows:
        """Copy the rows block by block into device arrays allocated once.

        Never more than a block is densified or converted on the host.
        """
        if not source.is_sparse:
            in_place = source.dense_float32_rows() if device.type == "cpu" else None
            if in_place is not None:
                return cls(source.n_vars, dense=_shared_tensor(in_place))
            dense = torch.empty((source.n_obs, source.n_vars), dtype=torch.float32, device=device)
            for start, stop, block in source.iter_blocks(dense_chunk_rows(source.n_vars)):
                # torch takes no negative strides, which scanpy's PCA leaves (a reversed view)
                block = np.ascontiguousarray(block, dtype=np.float32)
                dense[start:stop].copy_(_shared_tensor(block))
            return cls(source.n_vars, dense=dense)
        capacity = source.max_entries
        data = torch.empty(capacity, dtype=torch.float32, device=device)
        indices = torch.empty(capacity, dtype=torch.int32, device=device)
        indptr = np.zeros(source.n_obs + 1, dtype=np.int64)
        filled = 0
        for start, stop, block in source.iter_blocks():
            block = block.tocsr()
            n = int(block.indptr[-1])
            data[filled : filled + n].copy_(
                torch.from_numpy(np.asarray(block.data[:n], dtype=np.float32))
            )
            indices[filled : filled + n].copy_(
                torch.from_numpy(np.asarray(block.indices[:n], dtype=np.int32))
            )
            indptr[start + 1 : stop + 1] = filled + block.indptr[1:]
            filled += n
        indptr_t = torch.from_numpy(indptr).to(device)
        return cls(source.n_vars, csr=(indptr_t, indices, data), indptr_host=indptr)

    def rows(self, index: np.ndarray, index_t: torch.Tensor) -> torch.Tensor:
        """Dense rows `index` (`index_t`: the same positions on the device)."""
        if self.dense is not None:
            return self.dense.index_select(0, index_t)
        n_entries = int((self._indptr_host[index + 1] - self._indptr_host[index]).sum())
        return gather_csr_rows(*self.csr, index_t, self.n_vars, n_entries)


def gather_csr_rows(
    indptr: torch.Tensor,
    indices: torch.Tensor,
    data: torch.Tensor,
    rows: torch.Tensor,
    n_cols: int,
    n_entries: int | None = None,
) -> torch.Tensor:
    """Dense (len(rows), n_cols) rows of a CSR matrix given as tensors, on their device.

    `n_entries`: the number of stored entries in those rows, if known (otherwise it is counted,
    which waits for the device). Entries stored twice in a row are summed, as scipy's
    `toarray` does.
    """
    device = data.device
    starts = indptr[rows]
    counts = indptr[rows + 1] - starts
    if n_entries is None:
        n_entries = int(counts.sum())
    out = torch.zeros((len(rows), n_cols), dtype=data.dtype, device=device)
    if n_entries == 0:
        return out
    entry_row = torch.repeat_interleave(
        torch.arange(len(rows), device=device), counts, output_size=n_entries
    )
    # An entry's position in `data`: its row's start plus its rank among the row's entries.
    first = torch.cumsum(counts, 0) - counts
    source = torch.arange(n_entries, device=device) + (starts - first)[entry_row]
    out.index_put_((entry_row, indices[source].long()), data[source], accumulate=True)
    return out


def _to(array: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.as_tensor(np.ascontiguousarray(array, dtype=np.float32), device=device)


@torch.no_grad()
def stream_outputs(
    feeder: CellFeeder, fn, widths: dict[str, int], chunk_size: int | None = None
) -> dict[str, np.ndarray]:
    """Apply `fn(batch) -> {name: tensor}` over all cells in chunks (`CellFeeder.chunks`).

    The results are written into preallocated float32 arrays of the given widths.
    """
    out = {name: np.empty((feeder.n_obs, w), dtype=np.float32) for name, w in widths.items()}
    for batch in feeder.chunks(chunk_size):
        start = int(batch.index[0])
        stop = start + len(batch.index)
        for name, value in fn(batch).items():
            out[name][start:stop] = value.detach().float().cpu().numpy()
    return out


def _shared_tensor(array: np.ndarray) -> torch.Tensor:
    """Return a tensor sharing `array`'s memory, which the package only reads.

    torch warns when the array is read-only (the caller's may be, e.g. a memory map), since a
    tensor could write to it; nothing here does, and a copy would double the memory.
    """
    if array.flags.writeable:
        return torch.from_numpy(array)
    with ignoring_warnings(message="The given NumPy array is not writable"):
        return torch.from_numpy(array)
