import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score
from sklearn.neighbors import NearestNeighbors

import scdeepclust as sdc
from scdeepclust._results import assigned_soft_assignment
from scdeepclust.train import _confidence
from scdeepclust.train._confidence import (
    ConfidenceMap,
    calibrated_confidence,
    fit_confidence_map,
    neighbour_view,
)


def _overlapping_groups(n=3000, seed=0):
    """Three Gaussian groups in 8 dimensions close enough that some cells cross over."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 3, n)
    centres = np.eye(3, 8) * 3.0
    z = (centres[truth] + rng.normal(size=(n, 8))).astype(np.float32)
    return z, truth, centres


def _expected_calibration_error(confidence, correct, n_bins=10):
    bins = np.clip((confidence * n_bins).astype(int), 0, n_bins - 1)
    return sum(
        (bins == b).mean() * abs(confidence[bins == b].mean() - correct[bins == b].mean())
        for b in np.unique(bins)
    )


def test_neighbours_are_exact_and_never_the_cell_itself():
    z, _, _ = _overlapping_groups(500)
    view = neighbour_view(z, 10, random_state=0)
    np.testing.assert_array_equal(view.reference, np.arange(500))
    expected = NearestNeighbors(n_neighbors=11).fit(z).kneighbors(z)[1][:, 1:]
    assert (np.sort(view.neighbours, 1) == np.sort(expected, 1)).mean() > 0.999
    assert not (view.neighbours == np.arange(500)[:, None]).any()


def test_neighbours_stay_exact_far_from_the_origin():
    z, _, _ = _overlapping_groups(500)
    shifted = z + np.float32(1000.0)  # |x|^2 ~ 8e6: float32 expansions lose the distances
    view = neighbour_view(shifted, 10, random_state=0)
    expected = NearestNeighbors(n_neighbors=11).fit(z).kneighbors(z)[1][:, 1:]
    assert (np.sort(view.neighbours, 1) == np.sort(expected, 1)).mean() > 0.999


def test_large_data_looks_up_neighbours_in_a_sample(monkeypatch):
    monkeypatch.setattr(_confidence, "REFERENCE_MAX_CELLS", 200)
    z, _, _ = _overlapping_groups(1000)
    view = neighbour_view(z, 5, random_state=0)
    assert len(view.reference) == 200 and len(np.unique(view.reference)) == 200
    assert view.neighbours.shape == (1000, 5) and view.neighbours.max() < 200
    sampled = view.reference  # the sampled cells do not find themselves
    assert not (view.reference[view.neighbours[sampled]] == sampled[:, None]).any()


@pytest.mark.parametrize("k", [1, 15, 625])
def test_grouped_search_of_a_full_reference_finds_the_plain_top_k(k):
    import torch

    distances = torch.randn(64, _confidence.REFERENCE_MAX_CELLS)  # distinct values
    grouped = _confidence._nearest(distances, k)
    plain = distances.topk(k, largest=False).indices
    torch.testing.assert_close(grouped.sort(1).values, plain.sort(1).values)


def test_sampled_reference_neighbours_are_exact(monkeypatch):
    monkeypatch.setattr(_confidence, "REFERENCE_MAX_CELLS", 320)  # 20 groups of 16 columns
    calls = []
    plain_top_k = _confidence.torch.Tensor.topk
    monkeypatch.setattr(
        _confidence.torch.Tensor,
        "topk",
        lambda t, k, **kw: calls.append(t.shape[1]) or plain_top_k(t, k, **kw),
    )
    z, _, _ = _overlapping_groups(2000)
    view = neighbour_view(z, 10, random_state=0)
    assert 320 not in calls  # no top-k over the whole reference
    reference = z[view.reference]
    expected = NearestNeighbors(n_neighbors=11).fit(reference).kneighbors(z)[1]
    is_self = view.reference[expected] == np.arange(2000)[:, None]
    expected = np.array([row[~own][:10] for row, own in zip(expected, is_self)])
    assert (np.sort(view.neighbours, 1) == np.sort(expected, 1)).mean() > 0.999


def test_map_is_increasing_bounded_and_survives_a_dict_round_trip():
    rng = np.random.default_rng(0)
    soft = rng.random(2000).astype(np.float32)
    agreement = np.clip(soft + rng.normal(0, 0.2, 2000), 0, 1)
    mapping = fit_confidence_map(soft, agreement)
    out = mapping(np.sort(soft))
    assert (np.diff(out) >= 0).all() and out.min() >= 0 and out.max() <= 1
    assert abs(out.mean() - agreement.mean()) < 0.02  # isotonic regression keeps the mean
    back = ConfidenceMap.from_dict(mapping.as_dict())
    np.testing.assert_array_equal(back(soft), mapping(soft))


def test_confidence_is_calibrated_where_near_uniform_soft_assignments_are_not():
    """Clusters = the nearest centre; a cell is right when its group is its cluster's. DEC's t
    kernel on a wide latent scale gives near-uniform q (as DESC's); the confidence keeps q's
    order and matches the share of right cells."""
    z, truth, centres = _overlapping_groups()
    d2 = ((z[:, None, :] - centres[None]) ** 2).sum(-1)
    q = 1.0 / (1.0 + d2)
    q /= q.sum(1, keepdims=True)
    labels = q.argmax(1)
    correct = labels == truth
    assert 0.8 < correct.mean() < 0.99  # some cells do cross over
    confidence, _ = calibrated_confidence(q, labels, neighbour_view(z, 15, random_state=0))
    raw_error = _expected_calibration_error(q.max(1), correct)
    error = _expected_calibration_error(confidence, correct)
    assert raw_error > 0.2 and error < 0.05, (raw_error, error)
    order = np.argsort(q.max(1))
    assert (np.diff(confidence[order]) >= -1e-6).all()


def test_input_components_lower_the_confidence_of_cells_the_embedding_misplaced():
    """One cell in ten sits inside another cluster in the embedding (clusters far apart, so
    its neighbours there all agree with it) but among its own type in the input: neighbour
    agreement in the embedding alone reports every cell as sure (0.9 of them are right); with
    the input's components the level comes down towards the share of right cells (the right
    cells' input neighbours include the misplaced ones, so it lands below). Components that are
    the embedding itself change nothing."""
    rng = np.random.default_rng(0)
    n, centres = 3000, np.eye(3, 8) * 6.0
    truth = rng.integers(0, 3, n)
    misplaced = rng.random(n) < 0.1
    labels = np.where(misplaced, (truth + rng.integers(1, 3, n)) % 3, truth)
    z = (centres[labels] + rng.normal(size=(n, 8))).astype(np.float32)
    components = (centres[truth] + rng.normal(size=(n, 8))).astype(np.float32)
    q = 1.0 / (1.0 + ((z[:, None, :] - centres[None]) ** 2).sum(-1))
    q /= q.sum(1, keepdims=True)
    assert (q.argmax(1) == labels).mean() > 0.99
    correct = labels == truth
    view = neighbour_view(z, 15, random_state=0)
    embedding_only, _ = calibrated_confidence(q, labels, view)
    both, mapping = calibrated_confidence(q, labels, view, components)
    assert embedding_only.mean() > 0.99 and 0.75 < both.mean() < correct.mean()
    assert _expected_calibration_error(both, correct) < _expected_calibration_error(
        embedding_only, correct
    )
    np.testing.assert_array_equal(both, mapping(assigned_soft_assignment(q, labels)))
    same, _ = calibrated_confidence(q, labels, view, z)
    np.testing.assert_allclose(same, embedding_only, atol=1e-6)


@pytest.mark.parametrize("tool", ["desc", "scdcc"])
def test_desc_calibrates_its_confidence_and_scdcc_reports_its_soft_assignment(sim, tool):
    fit = dict(pretrain_epochs=20, max_epochs=20, batch_size=60, progress=False)
    if tool == "desc":
        adata = sim.copy()
        adata.X = np.log1p(adata.X)
        sdc.tl.desc(adata, n_clusters=3, **fit)
    else:
        adata = sim
        sdc.tl.scdcc(adata, 3, **fit)
    assert adjusted_rand_score(adata.obs["group"], adata.obs[tool]) > 0.9
    confidence = adata.obs[f"{tool}_confidence"].to_numpy()
    soft = adata.obsm[f"{tool}_probs"].max(1)
    if tool == "scdcc":
        np.testing.assert_array_equal(confidence, soft)
        assert "confidence_calibration" not in adata.uns[tool]
        return
    mapping = ConfidenceMap.from_dict(adata.uns[tool]["confidence_calibration"])
    np.testing.assert_allclose(confidence, mapping(soft), rtol=1e-6)
    assert confidence.min() >= 0 and confidence.max() <= 1
    # well separated groups: cells agree with their neighbours, whatever q's level
    assert np.median(confidence) > 0.9


@pytest.mark.parametrize("smoothing", [0.0, 0.5])
def test_the_engine_calibrates_only_when_asked(smoothing):
    # Target smoothing builds the neighbour view the calibration reads: it calibrated the
    # confidence also with calibrate_confidence=False.
    import torch

    from scdeepclust.data import CellFeeder, RowSource
    from scdeepclust.train import CentroidInit, ClusteringStage, deep_embedded_clustering, sgd

    rng = np.random.default_rng(0)
    z = np.concatenate([rng.normal(-2, 1, (150, 2)), rng.normal(2, 1, (150, 2))])
    feeder = CellFeeder(RowSource(z.astype(np.float32)), device=torch.device("cpu"))
    outcomes = [
        deep_embedded_clustering(
            feeder,
            lambda batch: batch.x,
            [],
            2,
            CentroidInit(2, None, 5, 0),
            ClusteringStage(max_epochs=3, batch_size=100, tol=0.001),
            lambda parameters: sgd(parameters, lr=0.01, momentum=0.0),
            rng=np.random.default_rng(0),
            target_smoothing=smoothing,
            calibrate_confidence=calibrate,
            progress=False,
        )
        for calibrate in (False, True)
    ]
    assert outcomes[0].confidence is None and outcomes[0].confidence_map is None
    assert "confidence_calibration" not in outcomes[0].info
    assert outcomes[1].confidence is not None and "confidence_calibration" in outcomes[1].info


def test_fewer_cells_than_neighbours_gives_every_other_cell_and_never_itself():
    z = np.random.default_rng(0).normal(size=(6, 3)).astype(np.float32)
    view = neighbour_view(z, 15, random_state=0)
    assert view.neighbours.shape == (6, 5)
    for cell, row in enumerate(view.neighbours):
        assert sorted(row) == [other for other in range(6) if other != cell]


def test_map_rises_from_unsure_to_sure_soft_assignments():
    """A flat map (the mean agreement everywhere) is non-decreasing and calibrated on average
    as well: the level must follow the agreement."""
    rng = np.random.default_rng(0)
    soft = rng.random(4000)
    agreement = (rng.random(4000) < soft).astype(np.float32)  # right with probability `soft`
    low, high = fit_confidence_map(soft.astype(np.float32), agreement)(np.array([0.05, 0.95]))
    assert low < 0.2 and high > 0.8


def _cells(n=200, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    z = (np.eye(3, 4)[labels] * 1.5 + rng.normal(size=(n, 4))).astype(np.float32)
    return z, labels


def test_agreement_and_neighbour_means_read_the_sampled_reference_cells(monkeypatch):
    """Neighbours are positions in the reference sample: their labels and rows are the
    reference cells', also where the means are taken in several blocks."""
    monkeypatch.setattr(_confidence, "REFERENCE_MAX_CELLS", 50)
    monkeypatch.setattr(_confidence, "_MEAN_CHUNK_ROWS", 16)
    z, labels = _cells()
    view = neighbour_view(z, 5, random_state=0)
    assert len(view.reference) == 50
    cells = view.reference[view.neighbours]  # the neighbours as cell indices
    expected = (labels[cells] == labels[:, None]).mean(1)
    np.testing.assert_allclose(view.agreement(labels), expected)
    values = np.random.default_rng(1).random((len(z), 3)).astype(np.float32)
    np.testing.assert_allclose(view.neighbour_mean(values), values[cells].mean(1), rtol=1e-6)


def test_the_reference_sample_follows_random_state(monkeypatch):
    monkeypatch.setattr(_confidence, "REFERENCE_MAX_CELLS", 50)
    z, _ = _cells()
    first = neighbour_view(z, 5, random_state=3).reference
    np.testing.assert_array_equal(neighbour_view(z, 5, random_state=3).reference, first)
    assert not np.array_equal(neighbour_view(z, 5, random_state=4).reference, first)


def test_a_single_cell_agrees_with_its_cluster():
    view = neighbour_view(np.zeros((1, 3), np.float32), 15, random_state=0)
    assert view.neighbours.shape == (1, 0)
    np.testing.assert_array_equal(view.agreement(np.array([2])), [1.0])


def test_the_map_spans_the_soft_assignments_at_distinct_knots_and_gives_float32():
    rng = np.random.default_rng(0)
    soft = np.round(rng.random(3000), 2).astype(np.float32)  # many ties
    agreement = (rng.random(3000) < soft).astype(np.float32)
    mapping = fit_confidence_map(soft, agreement)
    knots = mapping.soft_assignment
    assert knots[0] == soft.min() and knots[-1] == soft.max()
    assert (np.diff(knots) > 0).all() and 90 <= len(knots) <= _confidence.N_KNOTS
    wide = fit_confidence_map(rng.random(3000).astype(np.float32), agreement)
    assert len(wide.soft_assignment) == _confidence.N_KNOTS == 201
    assert mapping(np.array([0.3, 0.7])).dtype == np.float32


def test_the_confidence_is_fitted_on_the_soft_assignment_to_the_reported_cluster():
    """Cells the refinement moved are reported in a cluster other than their largest soft
    assignment: their confidence comes from the soft assignment to the reported one."""

    z, _ = _cells(300)
    rng = np.random.default_rng(1)
    q = rng.random((300, 3)).astype(np.float32)
    q /= q.sum(1, keepdims=True)
    labels = q.argmax(1)
    labels[:50] = q[:50].argmin(1)  # moved
    soft = assigned_soft_assignment(q, labels)
    confidence, mapping = calibrated_confidence(q, labels, neighbour_view(z, 10, random_state=0))
    assert mapping.soft_assignment[0] == soft.min() < 1 / 3  # below any largest assignment
    np.testing.assert_array_equal(confidence, mapping(soft))
