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


def _cpu_feeder(n: int = 10, n_vars: int = 1) -> CellFeeder:
    x = np.arange(n * n_vars, dtype=np.float32).reshape(n, n_vars)
    return CellFeeder(RowSource(x), device=torch.device("cpu"))


def test_torchrun_variables_missing_are_each_named(monkeypatch):
    """One variable of torchrun's missing is named, and no process group is made without it."""
    from scdeepclust.train import _distributed

    for var, value in [("RANK", "0"), ("WORLD_SIZE", "1"), ("MASTER_ADDR", "127.0.0.1")]:
        monkeypatch.setenv(var, value)
    monkeypatch.delenv("MASTER_PORT", raising=False)
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: False)
    monkeypatch.setattr(torch.distributed, "init_process_group", None)  # not called
    assert _distributed.missing_torchrun_env() == ["MASTER_PORT"]
    with pytest.raises(ValueError, match=r"torchrun.* Not set here: MASTER_PORT\.$"):
        _distributed.init_distributed(torch.device("cpu"))


def test_same_run_check_compares_the_largest_and_smallest_fingerprint(monkeypatch):
    """Processes agreeing pass (60-bit values: an int64); another fingerprint on the other
    process is refused, whether larger or smaller; one process checks nothing."""
    from torch import distributed as dist

    from scdeepclust.train._distributed import check_same_run

    def other_process(fingerprint):
        other = int(fingerprint[:15], 16)

        def all_reduce(tensor, op=dist.ReduceOp.SUM):
            theirs = torch.tensor([other, -other], dtype=tensor.dtype)
            combined = torch.maximum(tensor, theirs) if op == dist.ReduceOp.MAX else tensor + theirs
            tensor.copy_(combined)

        monkeypatch.setattr(dist, "all_reduce", all_reduce)

    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "get_world_size", lambda: 2)
    high, low = "f" * 64, "1" + "0" * 63
    other_process(high)
    check_same_run(high, torch.device("cpu"))
    for mine, theirs in [(high, low), (low, high)]:
        other_process(theirs)
        with pytest.raises(ValueError, match="given different data or options"):
            check_same_run(mine, torch.device("cpu"))
    monkeypatch.setattr(dist, "get_world_size", lambda: 1)
    check_same_run(low, torch.device("cpu"))  # one process: nothing to compare


def test_sums_over_processes_are_new_tensors(monkeypatch):
    """all_reduce_sum adds the other processes' values into a new tensor, leaving the input
    alone; without shards it returns the input."""
    from scdeepclust.train._distributed import all_reduce_sum

    monkeypatch.setattr(torch.distributed, "get_backend", lambda: "gloo")
    monkeypatch.setattr(torch.distributed, "all_reduce", lambda t, *a, **k: t.mul_(2))
    x = torch.tensor([1.0, 2.0])
    feeder = _cpu_feeder()
    assert all_reduce_sum(x, feeder) is x
    total = all_reduce_sum(x, feeder.sharded(0, 2))
    assert total.tolist() == [2.0, 4.0] and x.tolist() == [1.0, 2.0]


def test_parameters_come_from_rank_0_and_gradients_are_averaged_over_processes(monkeypatch):
    """Each parameter takes its own slice of rank 0's values; each gradient becomes its mean over
    the processes, and a parameter without a gradient is passed over."""
    from scdeepclust.train._distributed import average_gradients, sync_parameters

    layer = torch.nn.Linear(2, 3)
    frozen = torch.nn.Parameter(torch.zeros(2))
    optimizer = torch.optim.SGD([*layer.parameters(), frozen], lr=0.1)
    feeder = _cpu_feeder().sharded(0, 3)
    rank_0 = torch.arange(11, dtype=torch.float32)
    monkeypatch.setattr(torch.distributed, "get_backend", lambda: "gloo")
    monkeypatch.setattr(torch.distributed, "broadcast", lambda t, src: t.copy_(rank_0))
    sync_parameters(optimizer, feeder)
    assert layer.weight.flatten().tolist() == rank_0[:6].tolist()
    assert layer.bias.tolist() == rank_0[6:9].tolist() and frozen.tolist() == [9.0, 10.0]

    (layer(torch.tensor([[1.0, 2.0]])) * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    weight, bias = layer.weight.grad.clone(), layer.bias.grad.clone()
    # the other two processes' gradients are 1 and 2 larger: the mean is 1 larger
    monkeypatch.setattr(torch.distributed, "all_reduce", lambda t, *a, **k: t.mul_(3).add_(3))
    average_gradients(optimizer, feeder)
    torch.testing.assert_close(layer.weight.grad, weight + 1)
    torch.testing.assert_close(layer.bias.grad, bias + 1)
    assert frozen.grad is None


def test_rank_0_gathers_every_shards_rows_in_order_and_broadcasts_its_objects(monkeypatch):
    """gather_rows pads each shard to the largest, and rank 0 cuts the padding off again; the
    other ranks get None. broadcast_object gives rank 0's object; is_main is rank 0 alone."""
    from scdeepclust.train._distributed import broadcast_object, gather_rows, is_main

    x = np.arange(14, dtype=np.float64).reshape(7, 2)
    feeder = _cpu_feeder(7, 2)
    shards = [feeder.sharded(r, 2) for r in range(2)]  # 4 and 3 rows
    sent = {}

    def gather(tensor, parts, dst):
        assert dst == 0
        sent[len(sent)] = tensor.clone()
        for r, part in enumerate(parts or []):
            part.copy_(sent[1 - r])

    monkeypatch.setattr(torch.distributed, "get_backend", lambda: "gloo")
    monkeypatch.setattr(torch.distributed, "gather", gather)
    assert gather_rows(x[4:], shards[1]) is None  # sent first: rank 1's rows
    gathered = gather_rows(x[:4], shards[0])
    assert gathered.dtype == np.float32
    np.testing.assert_array_equal(gathered, x)
    assert gather_rows(x, feeder) is x

    def broadcast(box, src, device=None):
        box[0] = "rank 0's"

    monkeypatch.setattr(torch.distributed, "broadcast_object_list", broadcast)
    assert broadcast_object("mine", shards[1]) == "rank 0's"
    assert broadcast_object("mine", feeder) == "mine"
    assert [is_main(f) for f in (feeder, *shards)] == [True, True, False]


def test_shares_are_judged_from_ten_expected_cells_of_their_own_size():
    """A batch expected with exactly 10 cells in a share and absent there marks cells ordered by
    batch; 9.95 expected cells (a share of 100 of 201 cells) prove nothing, nor does a tenth of
    the expected cells. A share holding one batch names it."""
    from scdeepclust.train._distributed import check_shards_mix_batches

    with pytest.raises(ValueError, match=r"process 0's share holds one batch, 'b'\."):
        check_shards_mix_batches(np.repeat([1, 0], 100), ["a", "b"], 2)
    ten_expected = np.repeat([0, 1, 0], [100, 20, 80])
    with pytest.raises(ValueError, match=r"process 0's share holds one batch, 'a'\."):
        check_shards_mix_batches(ten_expected, ["a", "b"], 2)
    check_shards_mix_batches(np.repeat([0, 1, 0], [100, 20, 81]), ["a", "b"], 2)
    a_tenth = np.repeat([0, 1, 0, 1], [390, 10, 210, 190])  # 10 of the expected 100
    check_shards_mix_batches(a_tenth, ["a", "b"], 2)
