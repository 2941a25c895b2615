"""Data-parallel training: two CPU processes (gloo) under torchrun against one process."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import adjusted_rand_score

import scdeepclust as sdc
from _helpers import distributed_case
from scdeepclust.data import CellFeeder, RowSource

HERE = Path(__file__).resolve().parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_shards_cover_the_rows_with_equal_batch_counts():
    x = np.arange(103 * 2, dtype=np.float32).reshape(103, 2)
    feeder = CellFeeder(RowSource(x), device=torch.device("cpu"))
    shards = [feeder.sharded(r, 3) for r in range(3)]
    assert sum(s.n_obs for s in shards) == 103 and {s.n_total for s in shards} == {103}
    rows = np.concatenate([np.concatenate([b.x.numpy() for b in s.chunks(10)]) for s in shards])
    np.testing.assert_array_equal(rows, x)
    rng = np.random.default_rng(0)
    counts = {len(list(s.minibatches(16, rng))) for s in shards}
    assert counts == {shards[0].n_batches(16)}  # the same number of steps on every shard


def test_shards_draw_epoch_subsets_with_equal_batch_counts():
    """An epoch of n_cells (DESC's default pretraining on many cells) is each shard's share of
    them, in the same number of batches on every shard."""
    x = np.arange(1003, dtype=np.float32)[:, None]
    feeder = CellFeeder(RowSource(x), device=torch.device("cpu"))
    shards = [feeder.sharded(r, 3) for r in range(3)]
    rng = np.random.default_rng(0)
    epochs = [list(s.minibatches(48, rng, n_cells=300)) for s in shards]
    assert {len(e) for e in epochs} == {shards[0].n_batches(48, n_cells=300)}
    rows = np.concatenate([b.x.numpy().ravel() for e in epochs for b in e])
    assert len(rows) == 300 and len(np.unique(rows)) == 300
    # one process: the same count
    assert (
        len(np.concatenate([b.index.numpy() for b in feeder.minibatches(48, rng, n_cells=300)]))
        == 300
    )


def test_distributed_needs_torchrun_environment(sim, monkeypatch):
    for var in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(ValueError, match="torchrun"):
        sdc.tl.scdcc(sim, 3, distributed=True, device="cpu", progress=False)


@pytest.mark.parametrize(
    ("given", "local_rank", "expected"),
    [("cuda:1", "0", "cuda:1"), ("cuda", "3", "cuda:1"), ("cpu", "1", "cpu")],
)
def test_process_device_becomes_the_current_cuda_device(monkeypatch, given, local_rank, expected):
    # nccl works on the current CUDA device: an explicit cuda:N must become it as well, or the
    # process would also use GPU 0. No GPU here, so torch.cuda's calls are recorded instead.
    from scdeepclust.train import _distributed

    made_current = []
    monkeypatch.setattr(torch.cuda, "set_device", made_current.append)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_rank", lambda: 0)
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda: 2)
    monkeypatch.setenv("LOCAL_RANK", local_rank)
    rank, world, device = _distributed.init_distributed(torch.device(given))
    assert (rank, world, device) == (0, 2, torch.device(expected))
    assert made_current == ([] if expected == "cpu" else [torch.device(expected)])


def test_two_processes_match_one(tmp_path):
    out = tmp_path / "labels.npz"
    # Prepended: where the package itself comes from PYTHONPATH (the GPU check), it must stay.
    path = os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(_free_port()),
        str(HERE / "_distributed_worker.py"),
        str(out),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-6000:]
    two = np.load(out)
    assert int(two["n_processes"]) == 2

    adata, options = distributed_case()
    sdc.tl.scdcc(adata, 4, **options["scdcc"])
    sdc.tl.desc(adata, **options["desc"])
    truth = adata.obs["group"].to_numpy()
    for key in ("scdcc", "desc"):
        one = adata.obs[key].cat.codes.to_numpy()
        assert adjusted_rand_score(one, two[key]) > 0.9, key
        assert adjusted_rand_score(truth, one) > 0.9, key
        assert adjusted_rand_score(truth, two[key]) > 0.9, key


@pytest.mark.parametrize("tool", ["desc", "scdcc"])
def test_cells_ordered_by_batch_are_refused_where_the_processes_would_not_mix_them(
    sim, tool, monkeypatch
):
    # each process holds a contiguous share: on cells sorted by batch (as anndata.concat
    # leaves them) the batch-mixing penalty was 0 on every process, without a word
    adata = sim.copy()
    adata.obs["batch"] = np.where(np.arange(adata.n_obs) < adata.n_obs // 2, "a", "b")
    monkeypatch.setattr("scdeepclust.train.init_distributed", lambda device: (0, 2, device))
    with pytest.raises(ValueError, match=r"process 0's share holds one batch, 'a'.*Shuffle"):
        getattr(sdc.tl, tool)(adata, n_clusters=3, batch_key="batch", distributed=True)


def test_shares_of_shuffled_batches_mix_and_ordered_ones_are_named():
    from scdeepclust.train._distributed import check_shards_mix_batches

    rng = np.random.default_rng(0)
    codes = np.repeat(np.arange(3), [400, 400, 40])
    for world_size in (2, 4):
        check_shards_mix_batches(rng.permutation(codes), ["a", "b", "c"], world_size)
    # a batch too small to reach every share proves no order: shuffled cells all pass
    small = np.repeat([0, 1], [5000, 20])
    for seed in range(20):
        shuffled = np.random.default_rng(seed).permutation(small)
        check_shards_mix_batches(shuffled, ["a", "b"], 8)
    # two batches in each share, but the third (expected 20 cells per share) all in the last
    with pytest.raises(ValueError, match=r"process 0's share holds 0 cells of batch 'c' where"):
        check_shards_mix_batches(codes, ["a", "b", "c"], 2)
    check_shards_mix_batches(codes, ["a", "b", "c"], 1)  # one process: nothing to refuse


def test_a_shard_carries_its_own_cells_batch_codes_and_size_factors():
    """Sliced from the start, every rank after 0 trained with rank 0's cells' batches."""
    rng = np.random.default_rng(0)
    x = rng.poisson(2.0, (23, 7)).astype(np.float32)
    codes, factors = rng.integers(0, 3, 23), rng.uniform(0.5, 2.0, 23).astype(np.float32)
    feeder = CellFeeder(
        RowSource(x),
        device=torch.device("cpu"),
        size_factors=factors,
        gene_mean=x.mean(axis=0),
        gene_scale=x.std(axis=0) + 1,
        batch_codes=codes,
    )
    for rank in range(3):
        shard = feeder.sharded(rank, 3)
        local = np.arange(shard.shard.stop - shard.shard.start)
        mine, whole = shard.batch(local), feeder.batch(local + shard.shard.start)
        np.testing.assert_array_equal(
            mine.batch_code.numpy(), codes[shard.shard.start :][: len(local)]
        )
        torch.testing.assert_close(mine.size_factors, whole.size_factors)
        torch.testing.assert_close(mine.x, whole.x)
        torch.testing.assert_close(mine.counts, whole.counts)


def test_a_share_holding_under_a_tenth_of_a_batchs_cells_is_refused():
    """Only shares without any cell of a batch were tested: a looser bound went unseen."""
    from scdeepclust.train._distributed import check_shards_mix_batches

    # 2 shares of 400 cells; batch 'b' expects 100 in each: 5 in the first, 195 in the second
    first = np.r_[np.zeros(395, int), np.ones(5, int)]
    codes = np.concatenate([first, np.r_[np.zeros(205, int), np.ones(195, int)]])
    with pytest.raises(ValueError, match=r"process 0's share holds 5 cells of batch 'b'"):
        check_shards_mix_batches(codes, ["a", "b"], 2)
    # 40 of the expected 100 is no order by batch
    first = np.r_[np.zeros(360, int), np.ones(40, int)]
    check_shards_mix_batches(
        np.concatenate([first, np.r_[np.zeros(240, int), np.ones(160, int)]]), ["a", "b"], 2
    )


def test_a_shard_feeds_its_own_cells_counts_size_factors_and_batches():
    """A shard's batch index i is the shard's i-th cell: its counts, its size factor and its
    batch code, all from the same rows. Kills F5 (the shard kept the whole data's size factors,
    so its cells were divided by those of the first cells; optional: test_two_processes_match_one
    also kills F5, through torchrun, this is the fast unit check)."""
    x = np.arange(1, 11, dtype=np.float32)[:, None]
    size_factors = np.linspace(0.5, 2.0, 10)
    codes = np.arange(10) % 3
    feeder = CellFeeder(
        RowSource(x), device=torch.device("cpu"), size_factors=size_factors, batch_codes=codes
    )
    part = feeder.sharded(1, 2)  # cells 5..9
    batch = part.batch(np.arange(5))
    np.testing.assert_array_equal(batch.counts.numpy(), x[5:])
    np.testing.assert_allclose(batch.size_factors.numpy(), size_factors[5:], rtol=1e-6)
    np.testing.assert_array_equal(batch.batch_code.numpy(), codes[5:])
    np.testing.assert_allclose(batch.x.numpy(), np.log1p(x[5:] / size_factors[5:, None]), rtol=1e-6)
