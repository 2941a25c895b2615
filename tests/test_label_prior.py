import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.decomposition import PCA

import scdeepclust as sdc
import scdeepclust.train._dec as dec
from _helpers import FAST, count_calls
from scdeepclust.data import CellFeeder, RowSource
from scdeepclust.train import _components, _loops
from scdeepclust.train._components import input_principal_components
from scdeepclust.train._confidence import NeighbourView
from scdeepclust.train._label_prior import classifier_prior


def _blobs(n_per_class=60, n_classes=3, dim=8, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 6, (n_classes, dim))
    classes = np.repeat(np.arange(n_classes), n_per_class)
    return (centres[classes] + rng.normal(0, 1, (len(classes), dim))).astype(np.float32), classes


def _no_neighbours(n):
    return NeighbourView(reference=np.arange(n), neighbours=np.empty((n, 0), np.int64))


def _assert_signs_fixed(components, x):
    """Each axis points towards its gene of largest loading (a solver's sign is arbitrary)."""
    clipped = np.clip(x, -_components.INPUT_CLIP, _components.INPUT_CLIP).astype(np.float64)
    centred = clipped - clipped.mean(0)
    loadings = centred.T @ (components - components.mean(0))  # genes x components
    leading = np.abs(loadings).argmax(0)
    assert (loadings[leading, np.arange(loadings.shape[1])] > 0).all()


def test_principal_components_are_those_of_the_clipped_input():
    rng = np.random.default_rng(0)
    # distinct variances along random directions, so every component is well defined
    x = (rng.normal(size=(300, 12)) * np.linspace(5, 0.5, 12)) @ np.linalg.qr(
        rng.normal(size=(12, 12))
    )[0]
    x = x.astype(np.float32) + 3.0
    assert (np.abs(x) > _components.INPUT_CLIP).any()  # as z-scores of rare genes are
    feeder = CellFeeder(RowSource(x), device=torch.device("cpu"))
    ours = input_principal_components(feeder, 4, random_state=0)
    theirs = PCA(4).fit_transform(np.clip(x, -_components.INPUT_CLIP, _components.INPUT_CLIP))
    assert ours.shape == (300, 4) and ours.dtype == np.float32
    for j in range(4):  # the same axes up to sign
        assert abs(np.corrcoef(ours[:, j], theirs[:, j])[0, 1]) > 0.9999
    np.testing.assert_allclose(np.abs(ours), np.abs(theirs), atol=1e-3)
    _assert_signs_fixed(ours, x)


def test_principal_components_of_many_genes_without_their_covariance(monkeypatch):
    # Above DIRECT_MAX_GENES the genes x genes covariance is not formed (300 cells of 10,000
    # genes: 51 of 80 s of a scDCC run); subspace iteration finds the same axes.
    rng = np.random.default_rng(0)
    n_genes = 200
    scales = 6 * 0.8 ** np.arange(n_genes)  # decaying, as the spectra of expression data
    x = (rng.normal(size=(400, n_genes)) * scales) @ np.linalg.qr(
        rng.normal(size=(n_genes, n_genes))
    )[0]
    x = x.astype(np.float32) + 1.0
    monkeypatch.setattr(_components, "DIRECT_MAX_GENES", 50)

    def refuse(*_):
        raise AssertionError("the covariance was decomposed")

    monkeypatch.setattr(_components, "_leading_eigenvectors", refuse)
    feeder = CellFeeder(RowSource(x), device=torch.device("cpu"))
    ours = input_principal_components(feeder, 4, random_state=0)
    theirs = PCA(4).fit_transform(np.clip(x, -_components.INPUT_CLIP, _components.INPUT_CLIP))
    assert ours.shape == (400, 4) and ours.dtype == np.float32
    for j in range(4):
        assert abs(np.corrcoef(ours[:, j], theirs[:, j])[0, 1]) > 0.9999
    np.testing.assert_allclose(np.abs(ours), np.abs(theirs), atol=1e-3)
    again = input_principal_components(feeder, 4, random_state=0)
    np.testing.assert_array_equal(again, ours)
    _assert_signs_fixed(ours, x)


def test_principal_components_ignore_the_callers_default_device():
    # The sign fix indexed with a column index built on torch's default device: under
    # `torch.device("meta")` it read uninitialised memory (16 of 50 columns all zero), and a
    # default device other than the feeder's would fail.
    x, _ = _blobs()
    feeder = CellFeeder(RowSource(x), device=torch.device("cpu"))
    want = input_principal_components(feeder, 5, random_state=0)
    with torch.device("meta"):
        got = input_principal_components(feeder, 5, random_state=0)
    np.testing.assert_array_equal(got, want)


def test_principal_components_from_a_sample_above_the_cap(monkeypatch):
    x, _ = _blobs(n_per_class=200)
    feeder = CellFeeder(RowSource(x), device=torch.device("cpu"))
    monkeypatch.setattr(_components, "COVARIANCE_MAX_CELLS", 150)
    rows_read = []
    read = feeder.batch
    monkeypatch.setattr(feeder, "batch", lambda index: rows_read.append(len(index)) or read(index))
    sampled = input_principal_components(feeder, 2, random_state=0)
    theirs = PCA(2).fit_transform(np.clip(x, -_components.INPUT_CLIP, _components.INPUT_CLIP))
    assert sampled.shape == (600, 2)
    assert sum(rows_read) == 150 + 600  # a 150-cell covariance, then every cell projected
    for j in range(2):
        assert abs(np.corrcoef(sampled[:, j], theirs[:, j])[0, 1]) > 0.99


def test_classifier_prior_places_unlabelled_cells_and_leaves_extra_clusters_neutral():
    x, classes = _blobs()
    known = np.where(np.random.default_rng(1).random(len(x)) < 0.2, classes, -1)
    prior = classifier_prior(x, known, 4, [_no_neighbours(len(x))], random_state=0)
    assert prior.shape == (len(x), 4) and prior.dtype == np.float32
    np.testing.assert_allclose(prior.sum(1), 1, rtol=1e-5)
    assert np.mean(prior[known < 0, :3].argmax(1) == classes[known < 0]) > 0.95
    # the cluster beyond the known classes: 1/3 against class probabilities summing to 1
    np.testing.assert_allclose(prior[:, 3], 0.25, rtol=1e-5)


def test_classifier_prior_is_smoothed_over_neighbours():
    x, classes = _blobs()
    known = np.where(np.arange(len(x)) % 5 == 0, classes, -1)
    alone = classifier_prior(x, known, 3, [_no_neighbours(len(x))], random_state=0)
    # every cell's neighbours: the cells of the next class
    nxt = (classes + 1) % 3
    neighbours = np.stack([np.flatnonzero(classes == c)[:5] for c in nxt])
    view = NeighbourView(reference=np.arange(len(x)), neighbours=neighbours)
    smoothed = classifier_prior(x, known, 3, [view], random_state=0)
    expected = 0.5 * alone + 0.5 * alone[neighbours].mean(1)
    np.testing.assert_allclose(smoothed, expected, atol=1e-5)


def test_no_prior_from_a_single_known_class():
    x, classes = _blobs()
    known = np.where(classes == 0, 0, -1)
    assert classifier_prior(x, known, 3, [], random_state=0) is None
    known = np.where(classes == 2, 2, -1)  # one class, not the first
    assert classifier_prior(x, known, 3, [], random_state=0) is None


def _captured_prior(monkeypatch):
    seen = {}
    train = dec.train_clustering

    def spy(*args, **kwargs):
        seen["prior"] = kwargs.get("target_prior")
        return train(*args, **kwargs)

    monkeypatch.setattr(dec, "train_clustering", spy)
    return seen


def test_scdcc_weighs_the_target_by_the_labels(sim, monkeypatch):
    labelled = np.arange(sim.n_obs) % 4 == 0
    sim.obs["known"] = sim.obs["group"].astype(object).where(labelled)
    seen = _captured_prior(monkeypatch)
    sharpen, applied = _loops.target_distribution, []

    def spy(q, frequency, balance=1.0, prior=None):  # the prior reaches the target
        applied.append(prior)
        return sharpen(q, frequency, balance, prior)

    monkeypatch.setattr(_loops, "target_distribution", spy)
    out = sdc.tl.scdcc(sim, 3, label_key="known", copy=True, **FAST)
    prior = seen["prior"].numpy()
    assert prior.shape == (sim.n_obs, 3)
    assert applied and all(p is not None and p.shape == prior.shape for p in applied)
    codes = pd.Categorical(sim.obs["known"][labelled].astype(str)).codes
    assert np.mean(prior[labelled].argmax(1) == codes) > 0.95
    info = out.uns["scdcc"]["label_prior"]
    assert info["weight"] == 2.0
    assert "label_prior_s" in out.uns["scdcc"]["timings"]


def test_scdcc_computes_the_input_components_once(sim, monkeypatch):
    # the balanced draws (on by default with k) and the label prior share one pass
    passes = count_calls(monkeypatch, _components, "stream_outputs")
    sim.obs["known"] = sim.obs["group"].astype(object).where(np.arange(sim.n_obs) % 4 == 0)
    out = sdc.tl.scdcc(sim, 3, label_key="known", copy=True, **FAST)
    assert out.uns["scdcc"]["params"]["pretrain_balance"] > 0 and "label_prior" in out.uns["scdcc"]
    assert len(passes) == 1


@pytest.mark.parametrize("options", [dict(label_prior=0.0), dict(resolution=1.0)])
def test_scdcc_without_label_prior(sim, monkeypatch, options):
    sim.obs["known"] = sim.obs["group"].astype(object).where(np.arange(sim.n_obs) % 4 == 0)
    seen = _captured_prior(monkeypatch)
    n_clusters = None if "resolution" in options else 3
    out = sdc.tl.scdcc(sim, n_clusters, label_key="known", copy=True, **options, **FAST)
    assert seen["prior"] is None
    assert "label_prior" not in out.uns["scdcc"]


def test_scdcc_refuses_a_negative_label_prior(sim):
    sim.obs["known"] = sim.obs["group"].astype(object)
    with pytest.raises(ValueError, match="label_prior"):
        sdc.tl.scdcc(sim, 3, label_key="known", label_prior=-1.0, **FAST)


def test_neighbour_mean_in_blocks_is_the_mean_over_all_neighbours(monkeypatch):
    import scdeepclust.train._confidence as confidence

    rng = np.random.default_rng(0)
    values = rng.random((101, 4)).astype(np.float32)
    view = NeighbourView(reference=np.arange(0, 101, 2), neighbours=rng.integers(0, 51, (101, 5)))
    want = values[view.reference][view.neighbours].mean(1)
    monkeypatch.setattr(confidence, "_MEAN_CHUNK_ROWS", 16)  # several blocks and a short last
    got = view.neighbour_mean(values)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, want)


def test_two_neighbour_views_share_the_neighbours_half_of_the_prior():
    """scDCC passes two views (components and embedding); with one view in the tests, a sum
    not divided by their number would have gone unseen (the classifier's share 1/3, not 1/2)."""
    from scdeepclust.train._confidence import NeighbourView
    from scdeepclust.train._label_prior import classifier_prior

    rng = np.random.default_rng(0)
    truth = np.repeat([0, 1, 2], 40)
    x = (np.eye(3)[truth] * 3 + rng.normal(0, 1, (120, 3))).astype(np.float32)
    known = np.where(rng.random(120) < 0.3, truth, -1)
    alone = NeighbourView(reference=np.arange(120), neighbours=np.empty((120, 0), np.int64))
    views = [
        NeighbourView(reference=np.arange(120), neighbours=rng.integers(0, 120, (120, 5)))
        for _ in range(2)
    ]
    own = classifier_prior(x, known, 3, [alone], random_state=0)
    both = classifier_prior(x, known, 3, views, random_state=0)
    neighbours = (views[0].neighbour_mean(own) + views[1].neighbour_mean(own)) / 2
    np.testing.assert_allclose(both, 0.5 * own + 0.5 * neighbours, atol=1e-5)


def test_no_prior_when_more_classes_are_known_than_clusters():
    x, classes = _blobs()
    known = np.where(np.arange(len(x)) % 5 == 0, classes, -1)  # three classes known
    assert classifier_prior(x, known, 2, [_no_neighbours(len(x))], random_state=0) is None


def test_classifier_prior_keeps_each_class_in_its_own_column():
    """Class codes with a gap (a clustering stage that emptied cluster 1 leaves classes 0 and
    2): the classifier's second class is class 2, and no cell is placed in class 1."""
    x, classes = _blobs()
    known = np.where((np.arange(len(x)) % 5 == 0) & (classes != 1), classes, -1)
    prior = classifier_prior(x, known, 3, [_no_neighbours(len(x))], random_state=0)
    assert prior.shape == (len(x), 3)
    np.testing.assert_array_equal(prior[:, 1], 0.0)
    assert np.mean(prior[classes == 2].argmax(1) == 2) > 0.95


def test_scdcc_takes_a_label_prior_at_its_maximum(sim):
    """label_prior must be *at most* MAX_LABEL_PRIOR: the maximum itself is taken and applied."""
    from scdeepclust.train._label_prior import MAX_LABEL_PRIOR

    sim.obs["known"] = sim.obs["group"].astype(object).where(np.arange(sim.n_obs) % 4 == 0)
    out = sdc.tl.scdcc(
        sim,
        3,
        label_key="known",
        label_prior=MAX_LABEL_PRIOR,
        copy=True,
        pretrain_epochs=1,
        max_epochs=1,
        progress=False,
        batch_size=64,
    )
    assert out.uns["scdcc"]["label_prior"]["weight"] == MAX_LABEL_PRIOR


def test_the_prior_keeps_a_floor_where_the_classifier_rules_a_cluster_out(monkeypatch):
    from types import SimpleNamespace

    from scdeepclust.train._label_prior import PRIOR_FLOOR

    ruled_out = np.tile(np.array([[1.0, 0.0]], np.float32), (30, 1))
    monkeypatch.setattr(dec, "classifier_prior", lambda *args, **kwargs: ruled_out)
    z = np.random.default_rng(0).normal(size=(30, 4)).astype(np.float32)
    init = SimpleNamespace(random_state=0, seed_labels=np.zeros(30, np.int64))
    prior = dec._label_prior(z, z, init, 2, 2.0, SimpleNamespace(device=torch.device("cpu")))
    np.testing.assert_allclose(prior[:, 0], 1.0)
    np.testing.assert_allclose(prior[:, 1], PRIOR_FLOOR**2)


def test_the_prior_takes_neighbours_in_the_embedding_and_in_the_input(sim, monkeypatch):
    sim.obs["known"] = sim.obs["group"].astype(object).where(np.arange(sim.n_obs) % 4 == 0)
    widths, original = [], dec.neighbour_view

    def spy(space, n_neighbors, **kwargs):
        widths.append(space.shape[1])
        return original(space, n_neighbors, **kwargs)

    monkeypatch.setattr(dec, "neighbour_view", spy)
    out = sdc.tl.scdcc(sim, 3, label_key="known", refine=0, copy=True, **FAST)
    assert "label_prior" in out.uns["scdcc"]
    assert len(widths) == 2 and widths[0] == out.obsm["X_scdcc"].shape[1] != widths[1]


def test_fewer_genes_than_components_give_one_component_per_gene():
    x, _ = _blobs(dim=8)
    feeder = CellFeeder(RowSource(x), device=torch.device("cpu"))
    assert input_principal_components(feeder, random_state=0).shape == (180, 8)


def test_the_covariance_is_estimated_on_a_sample_of_at_most_its_cap_of_cells(monkeypatch):
    x, _ = _blobs(n_per_class=100)
    feeder = CellFeeder(RowSource(x), device=torch.device("cpu"))
    every_cell = input_principal_components(feeder, 4, random_state=0)
    monkeypatch.setattr(_components, "COVARIANCE_MAX_CELLS", 200)
    sampled = input_principal_components(feeder, 4, random_state=0)
    assert sampled.shape == (300, 4) and not np.array_equal(sampled, every_cell)


def test_subspace_iteration_finds_the_leading_axes_above_a_flat_spectrum(monkeypatch):
    # four axes above 196 of equal variance: one pass of the iteration leaves them mixed
    rng = np.random.default_rng(0)
    n_genes = 200
    scales = np.r_[[6.0, 5.0, 4.0, 3.0], np.full(n_genes - 4, 1.5)]
    x = (rng.normal(size=(1000, n_genes)) * scales) @ np.linalg.qr(
        rng.normal(size=(n_genes, n_genes))
    )[0]
    x = x.astype(np.float32)
    monkeypatch.setattr(_components, "DIRECT_MAX_GENES", 50)
    feeder = CellFeeder(RowSource(x), device=torch.device("cpu"))
    ours = input_principal_components(feeder, 4, random_state=0)
    theirs = PCA(4).fit_transform(np.clip(x, -_components.INPUT_CLIP, _components.INPUT_CLIP))
    for j in range(4):
        assert abs(np.corrcoef(ours[:, j], theirs[:, j])[0, 1]) > 0.999
