"""Clusters under a least size, merged when the number of clusters comes from the data."""

import warnings

import anndata as ad
import numpy as np
import pytest

import scdeepclust as sdc
from _helpers import FAST, assert_unchanged, snapshot
from scdeepclust.tl._validate import as_min_cluster_size
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


def test_a_small_cluster_does_not_take_the_cells_of_another_one_merged():
    labels = np.repeat([0, 1, 2], [30, 4, 3])
    # the cells of 2 lean to 1 next, which is merged too: they go to 0
    probabilities = _leaning(labels, 3, {0: 1, 1: 0, 2: 1})
    merge = merged_small_clusters(labels, probabilities, 5)
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
    [(5, 10_000, 5), (0.001, 2_500, 3), (0.001, 1_000, 1), (0.001, 100_000, 100), (0.0, 50, 0)],
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


def test_merged_clusters_are_named_with_the_option_that_keeps_them():
    labels = np.array([0, 0, 2, 2])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Leiden's number: logged, not warned
        assert _empty_clusters(labels, 3, asked=None, merged=[1], min_cells=5) == [1]
    with pytest.warns(
        UserWarning,
        match=r"\(clusters 1, 3\): the cells of 3 moved to other clusters during training; "
        r"cluster 1 held fewer than 5 cells \(`min_cluster_size`; 0 keeps them\), and its cells "
        r"went to the clusters of their next highest soft assignment, so the labels name 2",
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
    least = int(sizes.max())  # every cluster but the largest is under it
    before = snapshot(scaled)
    with pytest.warns(UserWarning, match="Every cell is in one cluster"):
        merged = sdc.tl.desc(
            scaled, resolution=1.0, min_cluster_size=least, refine=0, copy=True, **FAST
        )
    assert_unchanged(scaled, before)
    record = merged.uns["desc"]["small_clusters"]
    assert record["min_cells"] == least
    assert sorted(record["merged"]) == sorted(int(c) for c in sizes.index[1:])
    assert record["cells_moved"] == scaled.n_obs - sizes.max()
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


def test_a_searched_number_keeps_its_lower_bound(scaled):
    out = sdc.tl.desc(scaled, n_clusters=(3, 4), min_cluster_size=0.9, copy=True, **FAST)
    search = out.uns["desc"]["n_clusters_search"]
    record = out.uns["desc"]["small_clusters"]
    assert len(record["merged"]) == int(search["chosen"]) - 3
    assert out.uns["desc"]["n_clusters"] >= 3


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
