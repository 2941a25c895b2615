"""The classifier's second reading of the clusters (`refine`)."""

import numpy as np
import pytest

import scdeepclust as sdc
import scdeepclust.train._dec as dec
from _helpers import FAST, count_calls
from scdeepclust.train import _refine
from scdeepclust.train._refine import Refinement, refined_clusters, teaching_cells


def _blobs(n_per_class=80, n_classes=3, dim=10, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 5, (n_classes, dim))
    classes = np.repeat(np.arange(n_classes), n_per_class)
    return (centres[classes] + rng.normal(0, 1, (len(classes), dim))).astype(np.float32), classes


def _soft_assignment(labels, n_clusters, sure, unsure_cells):
    """Rows that put `sure` on each cell's label, and less on the labels of `unsure_cells`."""
    rest = (1 - sure) / (n_clusters - 1)
    probabilities = np.full((len(labels), n_clusters), rest, np.float32)
    probabilities[np.arange(len(labels)), labels] = sure
    probabilities[unsure_cells] = 1.0 / n_clusters + 0.01 * np.eye(n_clusters)[labels[unsure_cells]]
    return probabilities / probabilities.sum(1, keepdims=True)


def test_teaching_cells_are_each_clusters_most_confident_share():
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
    soft = np.array([0.9, 0.2, 0.8, 0.1, 0.5, 0.6, 0.7, 0.1, 0.2, 0.3])
    teaching = teaching_cells(labels, soft, 0.5, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(teaching, [0, -1, 0, -1, 1, 1, 1, -1, -1, -1])
    # every cluster teaches with at least one cell, and share 1 uses them all
    assert (teaching_cells(labels, soft, 0.01, rng=np.random.default_rng(0)) >= 0).sum() == 2
    np.testing.assert_array_equal(
        teaching_cells(labels, soft, 1.0, rng=np.random.default_rng(0)), labels
    )


def test_teaching_cells_keep_the_clusters_proportions_under_the_cap(monkeypatch):
    monkeypatch.setattr(_refine, "MAX_TEACHING_CELLS", 33)
    monkeypatch.setattr(_refine, "MIN_TEACHING_CELLS", 4)
    labels = np.repeat([0, 1, 2, 3], [120, 60, 18, 3])
    soft = np.random.default_rng(0).random(len(labels))
    teaching = teaching_cells(labels, soft, 0.5, rng=np.random.default_rng(0))
    # candidates 60 / 30 / 9 / 2, 33 of 101 in all: about a third of each, but at least 4
    # (cluster 2's third is 3), or all a cluster has (cluster 3)
    assert [(teaching == c).sum() for c in range(4)] == [20, 10, 4, 2]
    order = np.argsort(-soft[labels == 0])
    assert set(np.flatnonzero(teaching == 0)) <= set(order[:60])  # from the confident half


def test_refinement_returns_misplaced_uncertain_cells_to_their_group():
    x, classes = _blobs()
    stage_labels = classes.copy()
    rng = np.random.default_rng(1)
    misplaced = rng.choice(len(classes), 24, replace=False)
    stage_labels[misplaced] = (classes[misplaced] + 1) % 3
    probabilities = _soft_assignment(stage_labels, 3, 0.9, misplaced)
    refined = refined_clusters(x, stage_labels, probabilities, 0.5, random_state=0)
    np.testing.assert_array_equal(refined.labels, classes)
    # the classifier's probability of each cell's cluster: its largest of three
    assert refined.probability.shape == (len(x),)
    assert np.all((refined.probability > 1 / 3) & (refined.probability <= 1))


def test_refinement_keeps_one_cluster_and_an_empty_clusters_column():
    x, _ = _blobs(n_classes=2)
    one = np.zeros(len(x), np.int64)
    probabilities = np.full((len(x), 3), 1 / 3, np.float32)
    kept = refined_clusters(x, one, probabilities, 0.5, random_state=0)
    np.testing.assert_array_equal(kept.labels, one)
    assert kept.probability is None
    last = np.full(len(x), 2, np.int64)  # the stage emptied clusters 0 and 1
    kept = refined_clusters(x, last, probabilities, 0.5, random_state=0)
    np.testing.assert_array_equal(kept.labels, last)
    two = np.repeat([0, 2], len(x) // 2)  # cluster 1 is empty: no cell goes there
    probabilities = _soft_assignment(two, 3, 0.8, np.array([], np.int64))
    refined = refined_clusters(x, two, probabilities, 0.5, random_state=0)
    assert set(refined.labels) == {0, 2}
    # clusters emptied at the end: their columns take no share of the cells' probabilities
    x, classes = _blobs()
    wide = _soft_assignment(classes, 5, 0.9, np.array([], np.int64))
    trailing = refined_clusters(x, classes, wide, 0.5, random_state=0)
    narrow = _soft_assignment(classes, 3, 0.9, np.array([], np.int64))
    np.testing.assert_allclose(
        trailing.probability, refined_clusters(x, classes, narrow, 0.5, random_state=0).probability
    )


def test_desc_records_the_refinement_and_zero_turns_it_off(scaled, monkeypatch):
    calls = []
    monkeypatch.setattr(
        dec,
        "refined_clusters",
        lambda *a, **k: calls.append(a[1].copy()) or Refinement(a[1][::-1].copy(), None),
    )
    refined = sdc.tl.desc(scaled, resolution=0.5, copy=True, **FAST)
    plain = sdc.tl.desc(scaled, resolution=0.5, refine=0, copy=True, **FAST)
    assert len(calls) == 1  # not with refine=0
    info = refined.uns["desc"]["refinement"]
    assert info["share"] == 0.5
    moved = calls[0][::-1] != calls[0]
    assert info["cells_moved"] == int(moved.sum())
    # the stub reversed the stage's labels: those are the reported ones, the soft
    # assignments stay the stage's
    np.testing.assert_array_equal(refined.obs["desc"].astype(int).to_numpy(), calls[0][::-1])
    np.testing.assert_array_equal(refined.obsm["desc_probs"].argmax(1), calls[0])
    assert "refinement" not in plain.uns["desc"]
    np.testing.assert_array_equal(plain.obsm["desc_probs"].argmax(1), calls[0])


def test_scdcc_refines_by_default_without_prior_knowledge_or_batches(sim, monkeypatch):
    calls = []
    monkeypatch.setattr(
        dec, "refined_clusters", lambda *a, **k: calls.append(a[3]) or Refinement(a[1], None)
    )
    plain = sdc.tl.scdcc(sim, 3, refine=0, copy=True, **FAST)
    assert calls == [] and "refinement" not in plain.uns["scdcc"]
    out = sdc.tl.scdcc(sim, 3, copy=True, **FAST)
    assert calls == [0.5] and out.uns["scdcc"]["refinement"]["cells_moved"] == 0
    assert out.uns["scdcc"]["refinement"]["share"] == 0.5
    known = sim.obs["group"].astype(object).copy()
    known.iloc[::2] = None
    sim.obs["known"] = known
    labelled = sdc.tl.scdcc(sim, 3, label_key="known", refine=1, copy=True, **FAST)
    sim.obs["batch"] = np.where(np.arange(sim.n_obs) % 2, "a", "b")
    batched = sdc.tl.scdcc(sim, 3, batch_key="batch", refine=1, copy=True, **FAST)
    assert len(calls) == 1
    assert "refinement" not in labelled.uns["scdcc"] and "refinement" not in batched.uns["scdcc"]
    # params record the share used: none with labels or batches
    shares = [r.uns["scdcc"]["params"]["refine"] for r in (out, plain, labelled, batched)]
    assert shares == [0.5, 0.0, 0.0, 0.0]


def test_refinement_finds_the_simulated_groups(scaled):
    out = sdc.tl.desc(scaled, n_clusters=3, copy=True, **FAST)
    assert out.uns["desc"]["refinement"]["cells_moved"] <= 0.05 * scaled.n_obs
    from sklearn.metrics import adjusted_rand_score

    assert adjusted_rand_score(scaled.obs["group"], out.obs["desc"]) > 0.95


def test_desc_resolutions_share_one_pass_for_the_input_components(scaled, monkeypatch):
    passes = count_calls(monkeypatch, dec, "input_principal_components")
    out = sdc.tl.desc(scaled, resolution=[0.3, 0.5], copy=True, **FAST)
    assert len(passes) == 1
    assert all("refinement" in out.uns[f"desc_{r}"] for r in (0.3, 0.5))


def test_scdcc_reports_the_classifiers_probability_for_the_cells_it_moved(sim, monkeypatch):
    def move_every_fifth(components, labels, probabilities, share, **kwargs):
        moved = labels.copy()
        moved[::5] = (labels[::5] + 1) % probabilities.shape[1]
        return Refinement(moved, np.linspace(0.3, 0.9, len(labels)))

    monkeypatch.setattr(dec, "refined_clusters", move_every_fifth)
    out = sdc.tl.scdcc(sim, 3, copy=True, **FAST)
    labels = out.obs["scdcc"].astype(int).to_numpy()
    probs = out.obsm["scdcc_probs"]
    confidence = out.obs["scdcc_confidence"].to_numpy()
    moved = probs.argmax(1) != labels
    assert moved.sum() == len(labels[::5])
    np.testing.assert_allclose(confidence[moved], np.linspace(0.3, 0.9, len(labels))[moved])
    np.testing.assert_allclose(
        confidence[~moved], probs[np.arange(len(labels)), labels][~moved], rtol=1e-6
    )


def test_a_cluster_the_refinement_empties_is_blamed_on_it(sim, monkeypatch):
    def empty_cluster_two(components, labels, probabilities, share, **kwargs):
        moved = labels.copy()
        moved[moved == 2] = 0
        return Refinement(moved, np.full(len(labels), 0.6, np.float32))

    monkeypatch.setattr(dec, "refined_clusters", empty_cluster_two)
    with pytest.warns(UserWarning, match=r"To keep them, pass refine=0"):
        out = sdc.tl.scdcc(sim, 3, copy=True, **FAST)
    assert out.obs["scdcc"].nunique() == 2


def test_mapped_cells_take_no_cluster_the_training_emptied(sim, monkeypatch, tmp_path):
    """`refine` emptied a cluster of the reference; mapping the cells gave it 6 of them again,
    a cluster name the reference's labels do not have."""

    def emptying_cluster_0(x, labels, *args, **kwargs):
        return Refinement(np.where(labels == 0, 1, labels), None)

    monkeypatch.setattr(dec, "refined_clusters", emptying_cluster_0)
    reference, model = sdc.tl.scdcc(
        sim, 3, pretrain_epochs=2, max_epochs=1, progress=False, copy=True, return_model=True
    )
    stage = reference.obsm["scdcc_probs"].argmax(1)
    assert (stage == 0).any()  # cells the refinement moved
    assert list(reference.uns["scdcc"]["empty_clusters"]) == [0] == model.empty_clusters
    model.save(tmp_path / "m")
    for mapping in (model, sdc.models.load(tmp_path / "m")):
        mapped = sdc.tl.map_to_model(sim, mapping, copy=True)
        labels = mapped.obs["scdcc"].astype(int).to_numpy()
        assert 0 not in labels
        # the others as before; the soft assignments keep every column
        np.testing.assert_array_equal(labels[stage != 0], stage[stage != 0])
        assert mapped.obsm["scdcc_probs"].shape[1] == 3
    # a model saved without the record maps as before
    config = tmp_path / "m" / "model.json"
    import json

    meta = json.loads(config.read_text())
    del meta["empty_clusters"]
    config.write_text(json.dumps(meta))
    older = sdc.tl.map_to_model(sim, sdc.models.load(tmp_path / "m"), copy=True)
    np.testing.assert_array_equal(older.obs["scdcc"].astype(int).to_numpy(), stage)


def test_teaching_cells_under_the_cap_are_drawn_from_all_confident_cells(monkeypatch):
    monkeypatch.setattr(_refine, "MAX_TEACHING_CELLS", 100)
    monkeypatch.setattr(_refine, "MIN_TEACHING_CELLS", 10)
    labels = np.zeros(400, np.int64)
    soft = np.linspace(1.0, 0.5, 400)  # cell 0 the most confident
    teaching = teaching_cells(labels, soft, 1.0, rng=np.random.default_rng(0))
    taught = np.flatnonzero(teaching == 0)
    assert len(taught) == 100
    # a random draw of the candidates, not only the most confident among them
    assert taught.max() >= 200


def test_a_small_cluster_teaches_with_at_least_fifty_cells_under_the_cap():
    labels = np.repeat([0, 1], [30_000, 60])
    soft = np.random.default_rng(0).random(len(labels))
    teaching = teaching_cells(labels, soft, 1.0, rng=np.random.default_rng(0))
    # 20,000 of 30,060 candidates: two thirds of each cluster, but at least 50
    assert (teaching == 1).sum() == 50
    assert (teaching == 0).sum() == round(30_000 * 20_000 / 30_060)


def test_desc_calibrates_its_confidence_also_in_the_refinements_components(scaled, monkeypatch):
    seen, original = [], dec.calibrated_confidence

    def spy(probabilities, labels, view, components=None, **kwargs):
        seen.append(components)
        return original(probabilities, labels, view, components, **kwargs)

    monkeypatch.setattr(dec, "calibrated_confidence", spy)
    sdc.tl.desc(scaled, n_clusters=3, copy=True, **FAST)
    sdc.tl.desc(scaled, n_clusters=3, refine=0, copy=True, **FAST)
    assert seen[0] is not None and len(seen[0]) == scaled.n_obs
    assert seen[1] is None
