"""Clusters under a least size, merged when the number of clusters comes from the data."""

import inspect
import io
import re
import warnings

import anndata as ad
import numpy as np
import pytest
import scanpy as sc

import scdeepclust as sdc
from _helpers import FAST, ONE_EPOCH, assert_unchanged, snapshot, with_known_labels
from scdeepclust.models import DESCConfig, SCDCCConfig
from scdeepclust.tl._validate import as_min_cluster_size
from scdeepclust.train import DEFAULT_MIN_CLUSTER_SIZE
from scdeepclust.train._dec import _empty_clusters
from scdeepclust.train._small_clusters import least_cells, merged_small_clusters


def _leaning(labels, n_clusters, second):
    """Soft assignments with 0.6 on each cell's label and 0.3 on `second[label]`."""
    probabilities = np.full((len(labels), n_clusters), 0.1 / max(n_clusters - 2, 1), np.float32)
    probabilities[np.arange(len(labels)), labels] = 0.6
    probabilities[np.arange(len(labels)), [second[c] for c in labels]] = 0.3
    return probabilities


def test_cells_of_a_small_cluster_take_their_next_populated_cluster():
    # cluster 3 is empty; cluster 4 (3 cells) leans to the empty 3 first, then to 1
    labels = np.repeat([0, 1, 2, 4], [20, 15, 10, 3])
    probabilities = _leaning(labels, 5, {0: 1, 1: 0, 2: 0, 4: 3})
    probabilities[labels == 4, 1] = 0.2
    merge = merged_small_clusters(labels, probabilities, 5)
    assert merge.merged == [4] and merge.cells_moved == 3 and merge.min_cells == 5
    expected = labels.copy()
    expected[labels == 4] = 1
    np.testing.assert_array_equal(merge.labels, expected)
    # the caller's labels are left as they were
    assert (labels == 4).sum() == 3
    # a cluster of exactly the least size stays
    assert merged_small_clusters(labels, probabilities, 3).merged == []
    assert merged_small_clusters(labels, probabilities, 0).merged == []


def test_sizes_are_counted_again_after_each_merge():
    labels = np.repeat([0, 1, 2], [30, 4, 3])
    # the cells of 2 (the smallest) lean to 1 next, which then holds 7 cells and stays
    probabilities = _leaning(labels, 3, {0: 1, 1: 0, 2: 1})
    merge = merged_small_clusters(labels, probabilities, 5)
    assert merge.merged == [2] and merge.cells_moved == 3
    np.testing.assert_array_equal(merge.labels, np.repeat([0, 1], [30, 7]))
    # two groups cut in halves of 30 under a least size of 40: one half of each goes to the
    # other, and both groups stay (merged all at once, one cluster was left)
    halves = np.repeat([0, 1, 2, 3], 30)
    probabilities = _leaning(halves, 4, {0: 1, 1: 0, 2: 3, 3: 2})
    merge = merged_small_clusters(halves, probabilities, 40)
    assert merge.merged == [1, 3]
    assert len(set(merge.labels)) == 2 and merge.cells_moved == 60
    assert set(merge.labels[:60]) != set(merge.labels[60:])
    # a merged cluster's cells that went to a cluster merged later move on: counted once
    chain = np.repeat([0, 1, 2], [30, 4, 3])
    probabilities = _leaning(chain, 3, {0: 1, 1: 0, 2: 1})
    merge = merged_small_clusters(chain, probabilities, 8)
    assert merge.merged == [1, 2] and merge.cells_moved == 7
    np.testing.assert_array_equal(merge.labels, np.zeros(37, np.int64))


def test_the_smallest_go_first_and_the_lower_bound_is_kept():
    labels = np.repeat([0, 1, 2, 3], [40, 2, 4, 3])
    probabilities = _leaning(labels, 4, {0: 1, 1: 0, 2: 0, 3: 0})
    assert merged_small_clusters(labels, probabilities, 5, keep_at_least=3).merged == [1]
    assert merged_small_clusters(labels, probabilities, 5, keep_at_least=2).merged == [1, 3]
    assert merged_small_clusters(labels, probabilities, 5, keep_at_least=4).merged == []
    # at equal size the later cluster goes first
    tied = np.repeat([0, 1, 2], [40, 3, 3])
    tied_probabilities = _leaning(tied, 3, {0: 1, 1: 0, 2: 0})
    assert merged_small_clusters(tied, tied_probabilities, 5, keep_at_least=2).merged == [2]
    # every cluster under the least size: the largest stays
    merge = merged_small_clusters(labels, probabilities, 100)
    assert merge.merged == [1, 2, 3]
    assert set(merge.labels) == {0}


@pytest.mark.parametrize(
    ("size", "n_cells", "expected"),
    [
        (5, 10_000, 5),
        (0.001, 2_500, 3),
        (0.001, 1_000, 1),
        (0.001, 100_000, 100),
        (0.0, 50, 0),
        (0.07, 100, 7),  # 0.07 * 100 is 7.000000000000001
        (np.float32(0.001), 1_000, 1),
    ],
)
def test_least_cells_reads_an_integer_as_cells_and_a_float_as_a_share(size, n_cells, expected):
    assert least_cells(size, n_cells) == expected
    assert least_cells(np.int64(7), 10) == 7


def test_min_cluster_size_is_a_count_or_a_share():
    assert as_min_cluster_size(np.int64(20)) == 20 and isinstance(as_min_cluster_size(20), int)
    assert as_min_cluster_size(0.01) == 0.01 and isinstance(as_min_cluster_size(0.01), float)
    assert as_min_cluster_size(0) == 0
    for bad in (True, -1, -0.1, 1.5, float("nan"), float("inf"), "0.1", None):
        with pytest.raises(ValueError, match="min_cluster_size must be an integer >= 0 or a float"):
            as_min_cluster_size(bad)
    with pytest.raises(ValueError, match=r"For 20 cells pass the integer 20\.$"):
        as_min_cluster_size(20.0)
    with pytest.raises(ValueError, match=r"For 1 cell pass the integer 1\.$"):
        as_min_cluster_size(1.0)
    assert as_min_cluster_size(2**63 - 1) == 2**63 - 1
    with pytest.raises(ValueError, match=r"min_cluster_size=18446744073709551616 is more cells"):
        as_min_cluster_size(2**64)


def test_merged_clusters_are_named_with_the_option_that_keeps_them():
    labels = np.array([0, 0, 2, 2])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Leiden's number: logged, not warned
        assert _empty_clusters(labels, 3, asked=None, merged=[1], min_cells=5) == [1]
    with pytest.warns(
        UserWarning,
        match=r"\(clusters 1, 3\): the cells of 3 moved to other clusters during training; "
        r"cluster 1 held fewer than 5 cells \(`min_cluster_size`; 0 keeps them\), and its cells "
        r"went to the clusters of their highest soft assignment among those that stay, so the "
        r"labels name 2",
    ):
        assert _empty_clusters(labels, 4, asked=(3, 5), merged=[1], min_cells=5) == [1, 3]
    with pytest.warns(
        UserWarning,
        match=r": they held fewer than 9 cells .*Every cell .* a smaller `min_cluster_size`",
    ):
        assert _empty_clusters(np.zeros(4, int), 3, asked=None, merged=[1, 2], min_cells=9) == [
            1,
            2,
        ]


def test_desc_merges_clusters_under_the_least_size(scaled, tmp_path):
    kept = sdc.tl.desc(scaled, resolution=1.0, min_cluster_size=0, refine=0, copy=True, **FAST)
    sizes = kept.obs["desc"].value_counts()
    assert len(sizes) >= 2 and "small_clusters" not in kept.uns["desc"]
    least = scaled.n_obs  # every cluster is under it, whatever it takes in
    before = snapshot(scaled)
    with pytest.warns(UserWarning, match="Every cell is in one cluster"):
        merged = sdc.tl.desc(
            scaled, resolution=1.0, min_cluster_size=least, refine=0, copy=True, **FAST
        )
    assert_unchanged(scaled, before)
    record = merged.uns["desc"]["small_clusters"]
    assert record["min_cells"] == least
    (left,) = merged.obs["desc"].unique()
    assert sorted(record["merged"]) == sorted(int(c) for c in sizes.index if c != left)
    assert record["cells_moved"] == scaled.n_obs - sizes[left]
    assert list(merged.uns["desc"]["empty_clusters"]) == sorted(record["merged"])
    assert merged.obs["desc"].nunique() == 1 and merged.uns["desc"]["n_clusters"] == 1
    # the same training: the soft assignments are those of the run that kept them
    np.testing.assert_array_equal(merged.obsm["desc_probs"], kept.obsm["desc_probs"])
    assert merged.uns["desc"]["params"]["min_cluster_size"] == least
    path = tmp_path / "merged.h5ad"
    merged.write_h5ad(path)
    back = ad.read_h5ad(path).uns["desc"]["small_clusters"]
    assert int(back["min_cells"]) == least and list(back["merged"]) == list(record["merged"])


def test_the_default_least_size_leaves_well_separated_groups_as_they_are(scaled):
    default = sdc.tl.desc(scaled, resolution=1.0, copy=True, **FAST)
    plain = sdc.tl.desc(scaled, resolution=1.0, min_cluster_size=0, copy=True, **FAST)
    record = default.uns["desc"]["small_clusters"]
    assert record["min_cells"] == 1 and len(record["merged"]) == 0  # 0.1% of 240 cells
    np.testing.assert_array_equal(default.obs["desc"], plain.obs["desc"])
    assert default.uns["desc"]["params"]["min_cluster_size"] == 0.001


@pytest.mark.parametrize("tool", ["desc", "scdcc"])
def test_a_given_number_of_clusters_is_not_merged(sim, scaled, tool):
    adata = scaled if tool == "desc" else sim
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the few epochs may not converge
        out = getattr(sdc.tl, tool)(
            adata, n_clusters=3, min_cluster_size=0.9, refine=0, copy=True, **FAST
        )
    assert "small_clusters" not in out.uns[tool]
    assert out.obs[tool].nunique() == 3


def test_scdcc_merges_without_known_labels_only(sim):
    merged = sdc.tl.scdcc(sim, resolution=1.0, min_cluster_size=0.9, copy=True, **FAST)
    assert merged.obs["scdcc"].nunique() == 1 and "small_clusters" in merged.uns["scdcc"]
    known = sim.obs["group"].astype(object).copy()
    known.iloc[::2] = None
    sim.obs["known"] = known
    labelled = sdc.tl.scdcc(sim, label_key="known", min_cluster_size=0.9, copy=True, **FAST)
    assert "small_clusters" not in labelled.uns["scdcc"]


@pytest.mark.parametrize("tool", ["desc", "scdcc"])
def test_a_bad_min_cluster_size_is_refused_before_training(sim, tool):
    before = snapshot(sim)
    with pytest.raises(ValueError, match=r"min_cluster_size must be .*got 2\.5"):
        getattr(sdc.tl, tool)(sim, min_cluster_size=2.5, **FAST)
    assert_unchanged(sim, before)


@pytest.mark.parametrize("tool", ["desc", "scdcc"])
def test_params_record_no_least_size_where_the_number_was_given(sim, scaled, tool):
    adata = scaled if tool == "desc" else sim
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the few epochs may not converge
        given = getattr(sdc.tl, tool)(adata, n_clusters=3, min_cluster_size=9, copy=True, **FAST)
        found = getattr(sdc.tl, tool)(adata, resolution=0.5, min_cluster_size=9, copy=True, **FAST)
    assert given.uns[tool]["params"]["min_cluster_size"] == 0
    assert found.uns[tool]["params"]["min_cluster_size"] == 9


def test_a_checkpoint_resumes_with_another_least_size_and_from_before_it(scaled, tmp_path):
    """The least size reads the trained model's labels: no part of what a checkpoint holds."""
    import json

    from scdeepclust._serialization import load_tensors, save_tensors
    from scdeepclust.train._checkpoint import CHECKPOINT_FILE, run_fingerprint

    ckpt = tmp_path / "ckpt"
    options = dict(FAST, resolution=1.0, refine=0, copy=True, checkpoint_dir=ckpt)
    first = sdc.tl.desc(scaled, **options)
    least = scaled.n_obs
    with pytest.warns(UserWarning, match="Every cell is in one cluster"):
        merged = sdc.tl.desc(scaled, resume=True, min_cluster_size=least, **options)
    np.testing.assert_array_equal(merged.obsm["X_desc"], first.obsm["X_desc"])
    assert merged.obs["desc"].nunique() == 1
    # a checkpoint written before the option existed
    path = ckpt / CHECKPOINT_FILE
    saved = load_tensors(path)
    settings = json.loads(saved["settings"])
    assert "min_cluster_size" not in settings["config"]
    settings["config"]["progress"] = False  # neither is part of it
    saved.update(settings=json.dumps(settings), fingerprint=run_fingerprint(**settings))
    save_tensors(path, saved)
    with pytest.raises(ValueError, match="they differ in config.progress"):
        sdc.tl.desc(scaled, resume=True, **options)
    del settings["config"]["progress"]
    saved.update(settings=json.dumps(settings), fingerprint=run_fingerprint(**settings))
    save_tensors(path, saved)
    again = sdc.tl.desc(scaled, resume=True, **options)
    np.testing.assert_array_equal(again.obs["desc"], first.obs["desc"])


def _two_ways(labels, n_clusters):
    """Soft assignments of 0.7 on each cell's label and 0.3 on cluster 0 (0.3 on 1 for 0's)."""
    probabilities = np.zeros((len(labels), n_clusters), np.float32)
    probabilities[:, 0] = 0.3
    probabilities[labels == 0, 1] = 0.3
    probabilities[np.arange(len(labels)), labels] = 0.7
    return probabilities


def test_a_merge_that_merges_nothing_moves_no_cell_and_keeps_more_than_it_has():
    labels = np.repeat([0, 1, 2], [30, 3, 2])
    probabilities = _two_ways(labels, 3)
    for merge in (
        merged_small_clusters(labels, probabilities, 0),
        # a lower bound above the populated clusters: none merged (not the slice's far end)
        merged_small_clusters(labels, probabilities, 5, keep_at_least=4),
    ):
        assert merge.merged == [] and merge.cells_moved == 0
        np.testing.assert_array_equal(merge.labels, labels)
    # keep_at_least=0 still keeps the largest
    assert merged_small_clusters(labels, probabilities, 100, keep_at_least=0).merged == [1, 2]


def test_cells_without_weight_on_the_staying_clusters_still_leave_a_merged_one():
    labels = np.repeat([1, 0], [10, 2])
    probabilities = np.zeros((12, 2), np.float32)
    probabilities[labels == 1, 1] = 1.0
    probabilities[labels == 0, 0] = 1.0  # an underflowed soft assignment: 0 on cluster 1
    merge = merged_small_clusters(labels, probabilities, 5)
    assert merge.merged == [0]
    np.testing.assert_array_equal(merge.labels, np.ones(12, np.int64))


def test_the_record_holds_plain_ints_and_an_int64_array():
    assert type(least_cells(np.int64(7), 10)) is int
    labels = np.repeat([0, 1, 2], [30, 3, 2])
    probabilities = _two_ways(labels, 3)
    for least in (0, 5):
        record = merged_small_clusters(labels, probabilities, least).as_dict()
        assert isinstance(record["merged"], np.ndarray) and record["merged"].dtype == np.int64


def test_min_cluster_size_edges_of_its_range():
    assert type(as_min_cluster_size(np.int64(20))) is int
    zero = as_min_cluster_size(0.0)
    assert zero == 0.0 and type(zero) is float
    assert type(as_min_cluster_size(np.float32(0.25))) is float
    with pytest.raises(ValueError, match=r"got 1\.0\. For 1 cell pass the integer 1\.$"):
        as_min_cluster_size(1.0)
    with pytest.raises(ValueError, match=r"0 keeps every cluster\), got 1\.5\.$"):
        as_min_cluster_size(1.5)  # no hint: 1.5 is no number of cells


def test_merged_and_refined_clusters_are_named_apart():
    labels = np.array([0, 0, 3, 3])
    with pytest.warns(
        UserWarning,
        match=r"\(clusters 1, 2\): cluster 1 held fewer than 5 cells \(`min_cluster_size`; 0 "
        r"keeps them\), and its cells went to the clusters of their highest soft assignment "
        r"among those that stay; the refinement \(`refine`; 0 keeps the stage's clusters\) "
        r"moved the cells the clustering stage left in cluster 2 to the clusters of their "
        r"neighbours",
    ):
        empty = _empty_clusters(
            labels, 4, asked=(3, 5), stage_labels=np.array([0, 1, 2, 3]), merged=[1], min_cells=5
        )
    assert empty == [1, 2]


def test_a_run_says_which_clusters_min_cluster_size_merged(scaled):
    n = scaled.n_obs
    with pytest.warns(UserWarning) as said:
        out = sdc.tl.desc(scaled, resolution=1.0, min_cluster_size=n, refine=0, copy=True, **FAST)
    text = " ".join(str(w.message) for w in said)
    assert f"held fewer than {n} cells (`min_cluster_size`; 0 keeps them)" in text
    assert "or give `n_clusters`, or a smaller `min_cluster_size`." in text
    assert out.uns["desc"]["small_clusters"]["min_cells"] == n


def test_a_search_merges_down_to_its_lower_bound_not_its_upper(scaled):
    out = sdc.tl.desc(scaled, n_clusters=(2, 4), min_cluster_size=0.9, copy=True, **FAST)
    chosen = int(out.uns["desc"]["n_clusters_search"]["chosen"])
    assert chosen > 2  # else the bound cannot be told from the chosen number
    assert len(out.uns["desc"]["small_clusters"]["merged"]) == chosen - 2
    assert out.uns["desc"]["n_clusters"] == 2


def test_every_entry_point_has_the_same_default_least_size():
    assert DEFAULT_MIN_CLUSTER_SIZE == 0.001
    assert DESCConfig().min_cluster_size == DEFAULT_MIN_CLUSTER_SIZE
    assert SCDCCConfig().min_cluster_size == DEFAULT_MIN_CLUSTER_SIZE
    for tool in (sdc.tl.desc, sdc.tl.scdcc):
        default = inspect.signature(tool).parameters["min_cluster_size"].default
        assert default == DEFAULT_MIN_CLUSTER_SIZE


def test_the_merge_is_logged_with_the_cells_it_moved_and_only_when_it_merged(scaled):
    n = scaled.n_obs
    before, logfile = sc.settings.verbosity, sc.settings.logfile
    merging, plain = io.StringIO(), io.StringIO()
    try:
        sc.settings.verbosity, sc.settings.logfile = "info", merging
        with pytest.warns(UserWarning, match="Every cell is in one cluster"):
            out = sdc.tl.desc(
                scaled, resolution=1.0, min_cluster_size=n, refine=0, copy=True, **FAST
            )
        sc.settings.logfile = plain
        sdc.tl.desc(scaled, resolution=1.0, refine=0, copy=True, **FAST)  # nothing merged
    finally:
        sc.settings.verbosity, sc.settings.logfile = before, logfile
    record = out.uns["desc"]["small_clusters"]
    said = re.search(
        r"(\d+) clusters? under (\d+) cells merged \((\d+) cells moved\)", merging.getvalue()
    )
    assert said, merging.getvalue()
    assert [int(g) for g in said.groups()] == [len(record["merged"]), n, record["cells_moved"]]
    assert len(record["merged"]) != record["cells_moved"]
    assert "cells merged" not in plain.getvalue()


def test_a_scdcc_model_knows_the_clusters_merging_emptied(sim):
    # mutant S37 gave the model no empty clusters: mapped cells could land in a cluster that
    # holds no training cell and has no category in obs
    out, model = sdc.tl.scdcc(
        sim, resolution=1.0, min_cluster_size=0.9, copy=True, return_model=True, **FAST
    )
    empty = [int(c) for c in out.uns["scdcc"]["empty_clusters"]]
    assert empty  # merging emptied clusters
    assert model.empty_clusters == sorted(empty)


def test_scdcc_params_record_no_least_size_with_known_labels(sim):
    # nothing is merged with label_key, so params say 0 (mutant M21 recorded the default)
    with_known_labels(sim)
    out = sdc.tl.scdcc(sim, label_key="known", min_cluster_size=9, copy=True, **ONE_EPOCH)
    assert "small_clusters" not in out.uns["scdcc"]
    assert out.uns["scdcc"]["params"]["min_cluster_size"] == 0
