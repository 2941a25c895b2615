"""The DEC clustering stage reuses the passes over the cells it already made: the soft
assignments before training give its first target, and the refresh that stops it gives the
final embedding and soft assignments."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from scdeepclust.data import CellFeeder, RowSource, stream_outputs
from scdeepclust.nn import ClusteringLayer, target_distribution
from scdeepclust.train import ClusteringStage, _loops, train_clustering
from scdeepclust.train._dec import embed_all, leaning_on_labels, soft_assignments


def _groups(n_per_group=200, seed=0):
    rng = np.random.default_rng(seed)
    x = np.vstack(
        [rng.normal(-2, 1.0, (n_per_group, 4)), rng.normal(2, 1.0, (n_per_group, 4))]
    ).astype(np.float32)
    return CellFeeder(RowSource(x), device=torch.device("cpu"))


def _run(feeder, *, initial=False, min_steps=0, max_epochs=30, outputs=None, tol=0.01):
    torch.manual_seed(0)
    weight = torch.nn.Parameter(torch.eye(4) + 0.1 * torch.randn(4, 4))
    layer = ClusteringLayer(torch.tensor([[-1.0] * 4, [1.0] * 4]))

    def embed(batch):
        return batch.x @ weight

    q0 = None
    if initial:
        with torch.no_grad():
            q0 = soft_assignments(embed_all(feeder, embed, 4), layer, "cpu")
    optimizer = torch.optim.SGD([weight, *layer.parameters()], lr=0.05, momentum=0.9)
    stage = ClusteringStage(max_epochs=max_epochs, batch_size=32, tol=tol, min_steps=min_steps)
    history = train_clustering(
        feeder,
        embed,
        layer,
        optimizer,
        stage,
        rng=np.random.default_rng(0),
        initial_probabilities=q0,
        outputs=outputs,
        progress=False,
    )
    return history, embed, layer


def test_outputs_of_the_stopping_refresh_are_those_of_a_fresh_pass():
    feeder = _groups()
    outputs = _loops.StageOutputs()
    history, embed, layer = _run(feeder, outputs=outputs)
    assert history["converged"] == [1.0]
    with torch.no_grad():
        fresh = stream_outputs(
            feeder, lambda b: {"z": (z := embed(b)), "q": layer(z)}, {"z": 4, "q": 2}
        )
    np.testing.assert_array_equal(outputs.embedding, fresh["z"])
    np.testing.assert_array_equal(outputs.probabilities, fresh["q"])


def test_no_outputs_when_the_stage_runs_out_of_epochs():
    feeder = _groups()
    outputs = _loops.StageOutputs()
    # no change of labels is below a `tol` of 0: the stage runs to its last epoch
    history, _, _ = _run(feeder, max_epochs=3, outputs=outputs, tol=0.0)
    assert history["converged"] == [0.0]
    assert outputs.embedding is None and outputs.probabilities is None


def test_initial_soft_assignments_replace_the_first_pass(monkeypatch):
    passes = []
    original = _loops.stream_outputs

    def counting(*args, **kwargs):
        passes.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(_loops, "stream_outputs", counting)
    feeder = _groups()
    streamed, _, layer_streamed = _run(feeder)
    n_streamed = len(passes)
    passes.clear()
    given, _, layer_given = _run(feeder, initial=True)
    assert len(passes) == n_streamed - 1
    assert given == streamed  # same label changes at every refresh, same losses
    torch.testing.assert_close(layer_given.centroids, layer_streamed.centroids, rtol=0, atol=0)


def test_soft_assignments_match_those_computed_while_streaming():
    feeder = _groups(n_per_group=5000)  # more than one chunk
    layer = ClusteringLayer(torch.tensor([[-1.0] * 4, [1.0] * 4]))
    with torch.no_grad():
        streamed = stream_outputs(feeder, lambda b: {"q": layer(b.x)}, {"q": 2})["q"]
        z = embed_all(feeder, lambda b: b.x, 4)
    np.testing.assert_array_equal(soft_assignments(z, layer, "cpu"), streamed)


def test_leaning_on_labels_mixes_each_row_with_its_label():
    q = torch.softmax(torch.randn(50, 4, generator=torch.Generator().manual_seed(0)), 1).numpy()
    labels = np.random.default_rng(0).integers(0, 4, 50)
    for weight in (0.0, 0.3, 0.5, 1.0):
        leaned = leaning_on_labels(q.copy(), labels, weight)
        expected = (1 - weight) * q + weight * np.eye(4, dtype=np.float32)[labels]
        np.testing.assert_allclose(leaned, expected, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(leaned.sum(1), 1.0, rtol=1e-5)
        if weight >= 0.5:
            np.testing.assert_array_equal(leaned.argmax(1), labels)


def test_a_small_compact_cluster_takes_fewer_cells_in_the_first_target():
    # A large spread group and a small compact one beside it, labelled as a graph clustering
    # would: the nearest centroid hands the large group's near edge to the small cluster, and
    # DEC's own target (which favours small clusters) hands over more; leaning on the labels
    # hands over far fewer, and the small group's own cells stay in its cluster either way.
    rng = np.random.default_rng(0)
    z = np.vstack([rng.normal(0, 2.0, (400, 2)), rng.normal((5, 0), 0.2, (20, 2))])
    labels = np.repeat([0, 1], [400, 20])
    centroids = torch.tensor(
        np.array([z[labels == c].mean(0) for c in (0, 1)]), dtype=torch.float32
    )
    q = soft_assignments(z.astype(np.float32), ClusteringLayer(centroids), "cpu")
    own = target_distribution(torch.from_numpy(q)).argmax(1).numpy()
    leaned = target_distribution(torch.from_numpy(leaning_on_labels(q.copy(), labels, 0.5)))
    leaned = leaned.argmax(1).numpy()
    handed_over, handed_over_leaning = np.sum(own[:400] == 1), np.sum(leaned[:400] == 1)
    assert handed_over >= 40
    assert handed_over_leaning < handed_over / 2
    assert np.all(own[400:] == 1) and np.all(leaned[400:] == 1)


@pytest.mark.parametrize("weight", [0.5, 1.0])
def test_leaning_the_first_target_on_leiden_is_no_label_change(weight):
    # The first target leans on the Leiden labels (initial_label_weight); the first count of
    # changed labels started from those, and counted every cell Leiden and the nearest
    # centroid disagree on as moved by training. Nothing trains here (lr=0).
    import warnings

    from scdeepclust.train import CentroidInit, deep_embedded_clustering, sgd

    rng = np.random.default_rng(0)
    z = np.concatenate(
        [
            rng.normal(-2, 1.5, (300, 2)),
            rng.normal(2, 0.5, (60, 2)),
            rng.normal((0, 4), 1, (200, 2)),
        ]
    ).astype(np.float32)
    feeder = CellFeeder(RowSource(z), device=torch.device("cpu"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # about the short stage
        outcome = deep_embedded_clustering(
            feeder,
            lambda batch: batch.x,
            [],
            2,
            CentroidInit(None, 0.3, 10, 0),
            ClusteringStage(max_epochs=6, batch_size=100, tol=0.001),
            lambda parameters: sgd(parameters, lr=0.0, momentum=0.0),
            rng=np.random.default_rng(0),
            initial_label_weight=weight,
            progress=False,
        )
    assert outcome.history["label_change"] == [0.0]


def test_tol_zero_warns_only_where_labels_still_moved():
    # tol=0 trains every epoch; where no label changed at the last refresh, "raise max_epochs
    # to let it settle" was advice that could not help
    from types import SimpleNamespace

    from scdeepclust.train._dec import _warn_not_converged

    stage = SimpleNamespace(tol=0.0, max_epochs=30)
    init = SimpleNamespace(seed_labels=None, n_clusters=3, resolution=None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _warn_not_converged({"label_change": [0.1, 0.0]}, stage, init, 3)
    with pytest.warns(UserWarning, match=r"2.0% of the cells changed cluster .* \(tol=0\)"):
        _warn_not_converged({"label_change": [0.1, 0.02]}, stage, init, 3)
    with pytest.warns(UserWarning, match=r"0.0% of the cells changed"):  # tol > 0: as before
        _warn_not_converged(
            {"label_change": [0.0]}, SimpleNamespace(tol=1e-9, max_epochs=30), init, 3
        )


def test_not_converging_suggests_fewer_clusters_only_above_two():
    from types import SimpleNamespace

    from scdeepclust.train._dec import _warn_not_converged

    stage = SimpleNamespace(tol=0.001, max_epochs=30)
    history = {"label_change": [0.1, 0.05]}
    searched = SimpleNamespace(seed_labels=None, n_clusters=[2, 5], resolution=None)
    with pytest.warns(UserWarning, match=r"\(search a range below n_clusters=\(2, 5\)\)\.$"):
        _warn_not_converged(history, stage, searched, 3)
    two = SimpleNamespace(seed_labels=None, n_clusters=2, resolution=None)
    with pytest.warns(UserWarning, match="without converging") as caught:
        _warn_not_converged(history, stage, two, 2)
    assert "fewer groups" not in str(caught[0].message)
