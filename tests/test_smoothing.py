"""DEC's target sharpened from soft assignments mixed with the cells' neighbours'."""

import numpy as np
import pytest
import torch

import scdeepclust as sdc
from scdeepclust.data import CellFeeder, RowSource
from scdeepclust.train import _dec, _smoothing
from scdeepclust.train._confidence import NeighbourView, neighbour_view
from scdeepclust.train._smoothing import TargetSmoothing


def _feeder(n):
    return CellFeeder(RowSource(np.zeros((n, 2), np.float32)), device=torch.device("cpu"))


def _soft_assignments(n, k, seed=0):
    q = torch.rand((n, k), generator=torch.Generator().manual_seed(seed))
    return q / q.sum(1, keepdim=True)


@pytest.mark.parametrize("weight", [0.0, 0.3, 1.0])
def test_each_cell_is_mixed_with_the_mean_of_its_neighbours(weight):
    q = _soft_assignments(50, 4)
    rng = np.random.default_rng(0)
    reference = np.sort(rng.choice(50, 20, replace=False))  # neighbours among a sample
    neighbours = rng.integers(0, 20, (50, 5))
    smoothing = TargetSmoothing.from_view(weight, NeighbourView(reference, neighbours), _feeder(50))
    expected = (1 - weight) * q.numpy() + weight * q.numpy()[reference][neighbours].mean(1)
    np.testing.assert_allclose(smoothing(q, _feeder(50)).numpy(), expected, rtol=1e-6, atol=1e-7)


def test_smoothed_rows_stay_distributions_and_chunks_change_nothing(monkeypatch):
    q = _soft_assignments(301, 6, seed=1)
    view = neighbour_view(np.random.default_rng(1).normal(size=(301, 3)), 7, random_state=0)
    smoothing = TargetSmoothing.from_view(0.5, view, _feeder(301))
    whole = smoothing(q, _feeder(301))
    np.testing.assert_allclose(whole.sum(1).numpy(), 1.0, rtol=1e-5)
    monkeypatch.setattr(_smoothing, "_CHUNK_ROWS", 64)
    np.testing.assert_array_equal(smoothing(q, _feeder(301)).numpy(), whole.numpy())


def test_a_cell_among_another_clusters_cells_gets_their_target():
    # Cell 0 leans to cluster 0 while all its neighbours are firmly in cluster 1: DEC's own
    # target would confirm cluster 0, the smoothed one moves it to cluster 1.
    q = torch.tensor([[0.6, 0.4]] + [[0.1, 0.9]] * 5 + [[0.9, 0.1]] * 6)
    neighbours = np.array([[1, 2, 3]] + [[1, 2, 3]] * 5 + [[6, 7, 8]] * 6)
    view = NeighbourView(np.arange(12), neighbours)
    smoothing = TargetSmoothing.from_view(0.5, view, _feeder(12))
    own = sdc.nn.target_distribution(q)
    smoothed = sdc.nn.target_distribution(smoothing(q, _feeder(12)))
    assert own[0].argmax() == 0 and smoothed[0].argmax() == 1


@pytest.mark.parametrize(("weight", "smoothed"), [(None, True), (0.25, True), (0.0, False)])
def test_desc_passes_its_smoothing_to_the_clustering_stage(scaled, monkeypatch, weight, smoothed):
    seen = []
    original = _dec.train_clustering

    def spy(*args, target_smoothing=None, **kwargs):
        seen.append(target_smoothing)
        return original(*args, target_smoothing=target_smoothing, **kwargs)

    monkeypatch.setattr(_dec, "train_clustering", spy)
    options = {} if weight is None else {"target_smoothing": weight}
    out = sdc.tl.desc(
        scaled, n_neighbors=8, pretrain_epochs=2, max_epochs=2, progress=False, copy=True, **options
    )
    expected = 0.5 if weight is None else weight
    assert out.uns["desc"]["params"]["target_smoothing"] == expected
    if smoothed:
        assert seen[0].weight == expected
        assert seen[0].neighbours.shape == (scaled.n_obs, 8)
    else:
        assert seen[0] is None


def test_sharded_processes_together_hold_every_reference_row(monkeypatch):
    """Each process fills in the reference cells of its own shard, the sum (all-reduce) the rest."""
    monkeypatch.setattr(_smoothing, "all_reduce_sum", lambda rows, feeder: rows)
    q = _soft_assignments(50, 4)
    reference = np.arange(0, 50, 5)  # a reference cell at every shard's first row
    smoothing = TargetSmoothing(0.5, reference, torch.zeros((50, 3), dtype=torch.long))
    whole = _feeder(50)
    shards = [whole.sharded(rank, 2) for rank in range(2)]
    parts = [smoothing._reference_rows(q[s.shard.start : s.shard.stop], s) for s in shards]
    np.testing.assert_array_equal(sum(parts).numpy(), q[reference].numpy())
