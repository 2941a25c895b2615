"""Data-parallel training over processes with `torch.distributed`, as launched by `torchrun`.

Each process trains the same networks on its own shard of the cells (a `CellFeeder` with a
`RowShard`) and every collective the loops need is here: parameters broadcast from rank 0 at
the start of each stage, gradients (and the step's loss) averaged over ranks after each
backward pass, sums all-reduced (per-cluster frequencies of the DEC target, changed labels,
epoch losses), small objects broadcast from rank 0 (the initial centroids), rows gathered to
rank 0 (latents for centroid init, the final results).

Every helper takes the feeder and does nothing (returns its input) when the feeder is not
sharded over several processes, so the loops have one code path.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torch import distributed as dist

from ..data import CellFeeder, RowShard
from ._optim import TrainingOptimizer

ENV_HINT = (
    "distributed=True runs one process per GPU (or CPU worker) under torchrun, e.g. "
    "`torchrun --nproc_per_node 4 script.py`, which sets RANK, WORLD_SIZE, MASTER_ADDR and "
    "MASTER_PORT; alternatively initialise torch.distributed yourself before the call."
)


# What torchrun sets for each process, and init_process_group reads.
TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def missing_torchrun_env() -> list[str]:
    """Return the variables of torchrun's environment that are not set here."""
    return [name for name in TORCHRUN_ENV if name not in os.environ]


def init_distributed(device: torch.device) -> tuple[int, int, torch.device]:
    """Return (rank, world size, this process's device).

    Uses the default process group if one is initialised, else creates it from torchrun's
    environment: backend nccl on CUDA, gloo on the CPU. A CUDA device without an index becomes
    ``cuda:LOCAL_RANK``; either way it becomes the process's current CUDA device.
    """
    if not dist.is_available():
        raise RuntimeError("This torch build has no torch.distributed; distributed=True needs it.")
    if not dist.is_initialized():
        missing = missing_torchrun_env()
        if missing:
            raise ValueError(f"{ENV_HINT} Not set here: {', '.join(missing)}.")
        device = _process_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    else:
        device = _process_device(device)
    return dist.get_rank(), dist.get_world_size(), device


def check_same_run(fingerprint: str, device: torch.device) -> None:
    """Refuse, on every process at once, a run whose processes differ in data or options.

    Each process trains on its share of the rows it was given and rank 0 gathers the results
    in rank order: other cells, another order or other options on one process gave labels of
    the wrong cells, a collective mismatch deep in torch, or a hang. `fingerprint` is the run's
    (hexadecimal, as `run_digest` gives it); the largest and smallest over the processes are
    compared, so that every process sees the same outcome.
    """
    if not dist.is_initialized() or dist.get_world_size() < 2:
        return
    value = int(fingerprint[:15], 16)  # 60 bits: an int64 on every backend
    extremes = torch.tensor([value, -value], dtype=torch.int64, device=device)
    dist.all_reduce(extremes, op=dist.ReduceOp.MAX)
    if int(extremes[0]) != value or -int(extremes[1]) != value:
        raise ValueError(
            "The processes of this distributed run were given different data or options "
            "(cells, their order, genes, values or settings). Every process must call the tool "
            "on the same AnnData with the same arguments."
        )


def _process_device(device: torch.device) -> torch.device:
    """Make a CUDA device this process's current one (``cuda:LOCAL_RANK`` without an index).

    nccl runs its collectives on the current CUDA device; left at cuda:0, every process given
    an explicit ``cuda:N`` would also put work and memory on GPU 0.
    """
    if device.type != "cuda":
        return device
    if device.index is None:
        local = int(os.environ.get("LOCAL_RANK", os.environ.get("RANK", 0)))
        device = torch.device("cuda", local % torch.cuda.device_count())
    torch.cuda.set_device(device)
    return device


def is_main(feeder: CellFeeder) -> bool:
    """Rank 0, or not distributed: the process that initialises centroids and writes results."""
    return not feeder.distributed or feeder.shard.rank == 0


def _comm(tensor: torch.Tensor, feeder: CellFeeder) -> torch.Tensor:
    """Move the tensor where the backend wants it: CUDA for nccl, CPU for gloo."""
    if dist.get_backend() == "nccl":
        return tensor.to(feeder.device)
    return tensor.cpu()


def all_reduce_sum(tensor: torch.Tensor, feeder: CellFeeder) -> torch.Tensor:
    """Sum of `tensor` over ranks (a new tensor on the input's device)."""
    if not feeder.distributed:
        return tensor
    buffer = _comm(tensor.detach().clone(), feeder)
    dist.all_reduce(buffer)
    return buffer.to(tensor.device)


def _trained_parameters(optimizer: TrainingOptimizer) -> list[torch.Tensor]:
    return [p for group in optimizer.param_groups for p in group["params"]]


def sync_parameters(optimizer: TrainingOptimizer, feeder: CellFeeder) -> None:
    """Copy rank 0's values of the optimised parameters to every rank (one broadcast)."""
    if not feeder.distributed:
        return
    params = _trained_parameters(optimizer)
    flat = _comm(torch.cat([p.detach().reshape(-1) for p in params]), feeder)
    dist.broadcast(flat, src=0)
    with torch.no_grad():
        offset = 0
        for p in params:
            p.copy_(flat[offset : offset + p.numel()].view_as(p))
            offset += p.numel()


def average_gradients(optimizer: TrainingOptimizer, feeder: CellFeeder) -> None:
    """Replace each gradient by its mean over ranks, so that every rank takes the same step.

    A non-finite loss on one rank makes its gradients non-finite, and through the mean those of
    every rank: all of them stop together at the end of the epoch (`_epoch_means` sums the
    losses over ranks).
    """
    if not feeder.distributed:
        return
    grads = [p.grad for p in _trained_parameters(optimizer) if p.grad is not None]
    flat = _comm(torch.cat([g.reshape(-1) for g in grads]), feeder)
    dist.all_reduce(flat)
    flat /= feeder.shard.world_size
    flat = flat.to(grads[0].device)
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def broadcast_object(obj, feeder: CellFeeder):
    """Rank 0's `obj` (any picklable object) on every rank."""
    if not feeder.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0, device=feeder.device if _nccl() else None)
    return box[0]


def _nccl() -> bool:
    return dist.get_backend() == "nccl"


def gather_rows(array: np.ndarray, feeder: CellFeeder) -> np.ndarray | None:
    """Gather the rows of every shard, in order, on rank 0 (`None` on the other ranks); float32."""
    if not feeder.distributed:
        return array
    shard = feeder.shard
    bounds = RowShard.bounds(shard.n_total, shard.world_size)
    padded = np.zeros((shard.max_rows, *array.shape[1:]), dtype=np.float32)
    padded[: len(array)] = array
    tensor = _comm(torch.from_numpy(padded), feeder)
    parts = [torch.empty_like(tensor) for _ in range(shard.world_size)] if shard.rank == 0 else None
    dist.gather(tensor, parts, dst=0)
    if shard.rank != 0:
        return None
    return np.concatenate(
        [p[: int(bounds[r + 1] - bounds[r])].cpu().numpy() for r, p in enumerate(parts)]
    )


def check_shards_mix_batches(codes: np.ndarray, categories, world_size: int) -> None:
    """Refuse a run whose processes' shares of the cells cannot mix the batches.

    Each process trains on a contiguous block of rows, and the batch-mixing penalty compares
    batches within its minibatches: on cells ordered by batch (as ``anndata.concat`` leaves
    them) a process holding one batch adds no penalty at all. A batch expected with at least
    10 cells in a share and holding under a tenth of that there (in a random order, about 1 in
    2,000 for 10 expected cells) marks cells ordered by batch.
    """
    n_batches = len(categories)
    if world_size < 2 or n_batches < 2:
        return
    bounds = RowShard.bounds(len(codes), world_size)
    totals = np.bincount(codes, minlength=n_batches)
    for rank in range(world_size):
        held = np.bincount(codes[bounds[rank] : bounds[rank + 1]], minlength=n_batches)
        expected = totals * (bounds[rank + 1] - bounds[rank]) / len(codes)
        short = np.flatnonzero((expected >= 10) & (held < expected / 10))
        if not len(short):  # a batch too small to reach every share proves no order
            continue
        detail = (
            f"one batch, {categories[int(np.argmax(held))]!r}"
            if (held > 0).sum() < 2
            else f"{int(held[short[0]])} cells of batch {categories[short[0]]!r} where an even "
            f"spread gives {expected[short[0]]:.0f}"
        )
        raise ValueError(
            f"distributed=True gives each of the {world_size} processes a contiguous share of "
            f"the cells, and the cells are ordered by batch: process {rank}'s share holds "
            f"{detail}. The batch-mixing penalty compares batches within each process's "
            "minibatches, so it would mix little or nothing. Shuffle the cells first, "
            "`adata = adata[np.random.default_rng(0).permutation(adata.n_obs)].copy()` (for "
            "the command line, then write the file again), or pass batch_mixing=0 "
            "(--batch-mixing 0) to train without the penalty."
        )
