"""Minibatches and inference chunks as torch tensors on the training device.

`CellFeeder` turns a `RowSource` into what the networks consume. For count models (scDCC) it
carries the raw counts and size factors and builds the network input, z-scored
log1p(counts / size factor), on the device per batch; for models of already-transformed data
(DESC, `use_rep`) the rows are fed as they are, or z-scored with given statistics.

With `batch_codes` (each cell's batch, 0..n_batches-1) every minibatch carries them for
conditional networks, and the z-scoring statistics may be per batch ((n_batches, n_vars)).

In data-parallel training each process feeds its own `RowShard` of the cells (`shard`); the
shards yield the same number of minibatches per epoch, so collectives stay in step.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from ._rows import DEFAULT_CHUNK_SIZE, RowSource


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
        # Per-cell vectors stay on the host beside the rows; each batch's share is copied over.
        self._size_factors = (
            None
            if size_factors is None
            else torch.as_tensor(size_factors, dtype=torch.float32, device="cpu")
        )
        self._mean = None if gene_mean is None else _to(gene_mean, device)
        self._inv_scale = None if gene_scale is None else _to(1.0 / gene_scale, device)
        self.max_value = max_value
        self._pin = device.type == "cuda"
        self._batch_codes = (
            None
            if batch_codes is None
            else torch.as_tensor(batch_codes, dtype=torch.long, device="cpu")
        )
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
        """This feeder's cells' batch codes (`None` without batches)."""
        return None if self._batch_codes is None else self._batch_codes.numpy()

    @property
    def distributed(self) -> bool:
        return self.shard is not None and self.shard.world_size > 1

    def sharded(self, rank: int, world_size: int) -> CellFeeder:
        """This process's share of the cells, for data-parallel training: the same
        preprocessing (size factors and gene statistics of the whole data) on rows
        start:stop of `RowShard.of`."""
        shard = RowShard.of(self.n_obs, rank, world_size)
        part = copy.copy(self)
        part.source = self.source.shard(shard.start, shard.stop)
        if self._size_factors is not None:
            part._size_factors = self._size_factors[shard.start : shard.stop]
        if self._batch_codes is not None:
            part._batch_codes = self._batch_codes[shard.start : shard.stop]
        part.shard = shard
        return part

    def batch(self, index: np.ndarray) -> Batch:
        rows = torch.from_numpy(self.source.rows(index))
        index_t = torch.from_numpy(np.asarray(index, dtype=np.int64))
        if self._pin:
            rows = rows.pin_memory()
        rows = rows.to(self.device, non_blocking=True)
        code = None
        if self._batch_codes is not None:
            code = self._batch_codes[index_t].to(self.device, non_blocking=True)
        if self.count_model:
            sf = self._size_factors[index_t].to(self.device, non_blocking=True)
            x = torch.log1p(rows / sf[:, None])
            x = self._standardise(x, code)
            return Batch(
                index=index_t.to(self.device),
                x=x,
                counts=rows,
                size_factors=sf,
                batch_code=code,
            )
        return Batch(
            index=index_t.to(self.device), x=self._standardise(rows, code), batch_code=code
        )

    def _standardise(self, x: torch.Tensor, code: torch.Tensor | None) -> torch.Tensor:
        if self._mean is not None:
            if self._mean.ndim == 2:  # within each cell's batch
                x = (x - self._mean[code]) * self._inv_scale[code]
            else:
                x = (x - self._mean) * self._inv_scale
            if self.max_value is not None:
                x = x.clamp(-self.max_value, self.max_value)
        return x

    def minibatches(self, batch_size: int, rng: np.random.Generator) -> Iterator[Batch]:
        """One epoch of shuffled minibatches. A last batch of a single cell is merged into the
        previous one, since batch statistics of one cell are meaningless."""
        order = rng.permutation(self.n_obs)
        if self.distributed:
            for part in np.array_split(order, self.n_batches(batch_size)):
                yield self.batch(part)
            return
        bounds = _batch_bounds(self.n_obs, batch_size)
        for start, stop in zip(bounds[:-1], bounds[1:]):
            yield self.batch(order[start:stop])

    def chunks(self, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Iterator[Batch]:
        """All cells in order, for inference."""
        for start in range(0, self.n_obs, chunk_size):
            yield self.batch(np.arange(start, min(start + chunk_size, self.n_obs)))

    def n_batches(self, batch_size: int) -> int:
        """Minibatches per epoch, as `minibatches` makes them. Sharded, `batch_size` is the
        global batch: each of the `world_size` shards gives 1 / world_size of it, and every
        shard the same number of batches (that of the largest shard)."""
        if self.distributed:
            per_rank = -(-batch_size // self.shard.world_size)
            return len(_batch_bounds(self.shard.max_rows, per_rank)) - 1
        return len(_batch_bounds(self.n_obs, batch_size)) - 1


def _batch_bounds(n_obs: int, batch_size: int) -> list[int]:
    bounds = list(range(0, n_obs, batch_size)) + [n_obs]
    if len(bounds) > 2 and bounds[-1] - bounds[-2] == 1:
        bounds.pop(-2)
    return bounds


def _to(array: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.as_tensor(np.asarray(array, dtype=np.float32), device=device)


@torch.no_grad()
def stream_outputs(
    feeder: CellFeeder, fn, widths: dict[str, int], chunk_size: int = DEFAULT_CHUNK_SIZE
) -> dict[str, np.ndarray]:
    """Apply `fn(batch) -> {name: tensor}` over all cells in chunks, writing into preallocated
    float32 arrays of the given widths."""
    out = {name: np.empty((feeder.n_obs, w), dtype=np.float32) for name, w in widths.items()}
    for batch in feeder.chunks(chunk_size):
        start = int(batch.index[0])
        stop = start + len(batch.index)
        for name, value in fn(batch).items():
            out[name][start:stop] = value.detach().float().cpu().numpy()
    return out
