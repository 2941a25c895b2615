"""Initial clusterings of a given number of clusters: Leiden brought to it, balanced k-means."""

import warnings

import numpy as np
import pytest
import scanpy as sc
from scipy.sparse import SparseEfficiencyWarning
from sklearn.metrics import adjusted_rand_score

import scdeepclust as sdc
from scdeepclust.train import _centroids
from scdeepclust.train._centroids import (
    LatentGraph,
    _ward_merged_ladder,
    initial_centroids,
    leiden_k_labels,
    split_off_parts,
    ward_merged,
)


def _blobs(n_per, centres, scale=0.3, seed=0):
    rng = np.random.default_rng(seed)
    z = np.concatenate([rng.normal(c, scale, size=(n_per, len(c))) for c in centres])
    truth = np.repeat(np.arange(len(centres)), n_per)
    return z.astype(np.float32), truth


def _large_and_small_groups(seed=0):
    """Three groups of 300 cells in 10 dimensions, and two of 20 beside two of them."""
    rng = np.random.default_rng(seed)
    groups = [(300, 1.0, (0, 0)), (300, 1.0, (12, 0)), (300, 1.0, (0, 12))]
    groups += [(20, 0.3, (0, 0, 5)), (20, 0.3, (12, 0, 5))]
    z, truth = [], []
    for i, (n, scale, centre) in enumerate(groups):
        z.append(rng.normal(np.pad(centre, (0, 10 - len(centre))), scale, size=(n, 10)))
        truth += [i] * n
    return np.concatenate(z).astype(np.float32), np.array(truth)


def _sum_of_squares(points):
    return ((points - points.mean(0)) ** 2).sum()


def test_ward_merges_the_pair_that_adds_least_to_the_sum_of_squares():
    rng = np.random.default_rng(3)
    z = rng.normal(size=(200, 3)).astype(np.float32)
    labels = rng.integers(0, 6, 200)
    z += labels[:, None] * np.array([0.4, -0.2, 0.1], np.float32)  # unequal distances
    merged = ward_merged(z, labels, 5)
    assert len(np.unique(merged)) == 5

    def increase(a, b):
        both = z[(labels == a) | (labels == b)]
        return (
            _sum_of_squares(both)
            - _sum_of_squares(z[labels == a])
            - _sum_of_squares(z[labels == b])
        )

    pairs = [(a, b) for a in range(6) for b in range(a + 1, 6)]
    cheapest = min(pairs, key=lambda p: increase(*p))
    together = [(a, b) for a, b in pairs if merged[labels == a][0] == merged[labels == b][0]]
    assert together == [cheapest]


def test_ward_undoes_a_split_of_separated_groups():
    z, truth = _blobs(60, [(0, 0), (6, 0), (0, 6)])
    halves = truth * 2 + (np.arange(len(z)) % 2)  # every group cut in two at random
    merged = ward_merged(z, halves, 3)
    assert adjusted_rand_score(truth, merged) == 1.0
    assert sorted(np.unique(merged)) == [0, 1, 2]


def test_the_graph_of_coincident_cells_has_finite_weights_and_keeps_the_groups():
    # Seven or more cells at one point (all-zero or duplicated input cells) have a kernel width
    # of 0; their 0 / 0 weights, left as NaN, made Leiden give nearly every cell its own cluster.
    z, truth = _blobs(100, [(0, 0), (6, 0), (0, 6)])
    z = np.concatenate([z, np.full((30, 2), 3.0, np.float32)])
    truth = np.concatenate([truth, np.full(30, 3)])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # anndata 0.13 reads an option that pandas 3 deprecates, whoever builds an AnnData
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="anndata")
        graph = LatentGraph(z, n_neighbors=10, random_state=0)
    # ours, naming the cells; not numpy's 0 / 0 nor scipy's sparse-structure warning
    assert [str(w.message).split(" cells clustered")[0] for w in caught] == ["30 of the 330"]
    assert caught[0].filename == __file__
    assert np.isfinite(graph.weights.data).all()
    coincident = graph.weights[300:][:, 300:]
    assert coincident.nnz > 0 and np.all(coincident.data == 1.0)
    assert (graph.weights.diagonal() == 0).all()
    labels = graph.leiden(0.2)
    assert adjusted_rand_score(truth, labels) == 1.0


def test_desc_clusters_and_draws_data_holding_duplicated_cells(sim):
    sim.X = sim.X.toarray()
    sim.X[:29] = sim.X[29]  # thirty identical cells
    sc.pp.normalize_total(sim)
    sc.pp.log1p(sim)
    sc.pp.scale(sim)
    with pytest.warns(UserWarning, match="30 of the 240 cells clustered by Leiden share"):
        sdc.tl.desc(sim, pretrain_epochs=4, max_epochs=2, progress=False, batch_size=64)
    labels = sim.obs["desc"].to_numpy()
    assert len(np.unique(labels)) <= 4  # the three groups, and the duplicates perhaps apart
    assert adjusted_rand_score(sim.obs["group"][30:], labels[30:]) > 0.9
    with warnings.catch_warnings():
        warnings.simplefilter("error", SparseEfficiencyWarning)
        sdc.pl.umap(sim, "desc", show=False)
    assert np.isfinite(sim.obsm["X_umap_desc"]).all()


@pytest.mark.parametrize("n_clusters", [2, 4, 7])
def test_leiden_reaches_exactly_the_given_number(n_clusters):
    z, _ = _blobs(50, [(0, 0), (5, 0), (0, 5), (5, 5)])
    graph = LatentGraph(z, n_neighbors=10, random_state=0)
    labels, resolution = _ward_merged_ladder(graph, z, n_clusters, 0.1)
    assert sorted(np.unique(labels)) == list(range(n_clusters))
    if n_clusters == 7:  # more than the four groups: the resolution had to grow
        assert resolution > 0.1
    labels, _ = leiden_k_labels(z, n_clusters, resolution=0.1, n_neighbors=10, random_state=0)
    assert sorted(np.unique(labels)) == list(range(n_clusters))
    # a resolution above the ladder's top is tried as given (it failed with UnboundLocalError)
    labels, resolution = _ward_merged_ladder(graph, z, n_clusters, 150.0)
    assert sorted(np.unique(labels)) == list(range(n_clusters)) and resolution == 150.0


def test_initial_centroids_from_leiden_and_the_k_means_fallback(monkeypatch):
    z, truth = _blobs(50, [(0, 0), (5, 0), (0, 5), (5, 5)])
    initial = initial_centroids(
        z, n_clusters=4, resolution=None, n_neighbors=10, random_state=0, init="leiden"
    )
    assert initial.method.startswith("leiden (resolution") and "Ward" in initial.method
    assert initial.centroids.shape == (4, 2)
    assert adjusted_rand_score(truth, initial.labels) == 1.0
    # a graph on which Leiden never finds enough clusters: k-means, with a warning
    monkeypatch.setattr(
        LatentGraph,
        "leiden",
        lambda self, resolution, cells=None: np.zeros(
            len(self.degree) if cells is None else len(cells), dtype=np.int64
        ),
    )
    with pytest.warns(UserWarning, match="k-means instead"):
        fallback = initial_centroids(
            z, n_clusters=4, resolution=None, n_neighbors=10, random_state=0, init="leiden"
        )
    assert fallback.method == "kmeans" and fallback.centroids.shape == (4, 2)
    with pytest.raises(ValueError, match="init must be one of"):
        initial_centroids(
            z, n_clusters=4, resolution=None, n_neighbors=10, random_state=0, init="gmm"
        )


def test_leiden_on_a_sample_of_large_data(monkeypatch):
    monkeypatch.setattr(_centroids, "LEIDEN_MAX_CELLS", 120)
    z, truth = _blobs(100, [(0, 0), (5, 0), (0, 5)])
    labels = _centroids.leiden_labels(z, resolution=0.3, n_neighbors=10, random_state=0)
    assert len(labels) == len(z) and adjusted_rand_score(truth, labels) == 1.0
    labels, _ = leiden_k_labels(z, 3, resolution=0.8, n_neighbors=10, random_state=0)
    assert len(labels) == len(z) and adjusted_rand_score(truth, labels) == 1.0


def test_split_off_parts_separates_small_groups_hidden_in_larger_clusters():
    z, truth = _large_and_small_groups()
    graph = LatentGraph(z, n_neighbors=10, random_state=0)
    coarse = np.where(truth == 3, 0, np.where(truth == 4, 1, truth))  # each small one hidden
    split = split_off_parts(graph, coarse, 5)
    assert adjusted_rand_score(truth, split) == 1.0
    # five clusters the other way, a large group cut in three, cut more of the graph
    thirds = coarse.copy()
    thirds[truth == 2] = 2 + np.arange(300) % 3
    assert graph.cut_fraction(split) < graph.cut_fraction(thirds)
    # more clusters than there are parts to split off
    assert split_off_parts(graph, coarse, len(z)) is None


@pytest.mark.parametrize("n_clusters", [3, 5, 8])
def test_leiden_start_cuts_no_more_of_the_graph_than_the_ward_merged_ladder(n_clusters):
    z, truth = _large_and_small_groups(seed=1)
    labels, method = leiden_k_labels(z, n_clusters, resolution=0.8, n_neighbors=10, random_state=0)
    assert sorted(np.unique(labels)) == list(range(n_clusters))
    assert method.startswith("leiden (resolution")
    graph = LatentGraph(z, n_neighbors=10, random_state=0)
    ladder, _ = _ward_merged_ladder(graph, z, n_clusters, 0.8)
    assert graph.cut_fraction(labels) <= graph.cut_fraction(ladder)
    if n_clusters == 5:
        assert adjusted_rand_score(truth, labels) > 0.98


def test_desc_reaches_a_given_number_from_leiden_by_default(sim):
    sc.pp.normalize_total(sim)
    sc.pp.log1p(sim)
    sim.X = sim.X.toarray()
    sc.pp.scale(sim)
    fast = dict(pretrain_epochs=4, max_epochs=2, progress=False, batch_size=64)
    default = sdc.tl.desc(sim, n_clusters=3, copy=True, **fast)
    assert "Ward" in default.uns["desc"]["init_method"]
    assert default.uns["desc"]["params"]["init"] == "leiden"
    kmeans = sdc.tl.desc(sim, n_clusters=3, init="kmeans", copy=True, **fast)
    assert kmeans.uns["desc"]["init_method"] == "kmeans"
    searched = sdc.tl.desc(sim, n_clusters=(2, 4), copy=True, **fast)
    assert searched.uns["desc"]["init_method"] == "kmeans, number searched"
    balanced = sdc.tl.desc(sim, n_clusters=3, init="balanced-kmeans", copy=True, **fast)
    assert balanced.uns["desc"]["init_method"] == "balanced-kmeans"


def test_scdcc_can_reach_a_given_number_from_leiden(sim):
    fast = dict(pretrain_epochs=2, max_epochs=2, progress=False, batch_size=64)
    out = sdc.tl.scdcc(sim, 3, init="leiden", copy=True, **fast)
    assert "Ward" in out.uns["scdcc"]["init_method"]
    assert out.uns["scdcc"]["params"]["init"] == "leiden"
    assert out.obs["scdcc"].nunique() <= 3


def _directions_at_many_lengths(n_per=200, seed=0):
    """Three groups a few degrees apart by direction, each cell at a length from 1 to 10."""
    rng = np.random.default_rng(seed)
    axes = np.zeros((3, 6))
    axes[:, 0] = 1
    axes[0, 1], axes[1, 1], axes[2, 2] = 0.25, -0.25, 0.25
    truth = np.repeat(np.arange(3), n_per)
    directions = axes[truth] + rng.normal(0, 0.04, size=(len(truth), 6))
    lengths = rng.uniform(1, 10, size=(len(truth), 1))
    return (directions * lengths).astype(np.float32), truth


def test_balanced_kmeans_follows_directions_not_lengths():
    z, truth = _directions_at_many_lengths()
    balanced = _centroids.balanced_kmeans_labels(z, 3, random_state=0)
    plain = _centroids.kmeans_labels(z, 3, random_state=0)
    assert adjusted_rand_score(truth, balanced) > 0.98
    assert adjusted_rand_score(truth, plain) < 0.5  # plain k-means cuts by length
    again = _centroids.balanced_kmeans_labels(z, 3, random_state=0)
    np.testing.assert_array_equal(balanced, again)


def test_crowding_weights_count_crowded_groups_less():
    from scdeepclust.train._balance import crowding_weights

    rng = np.random.default_rng(0)
    crowded = rng.normal(0, 0.1, size=(900, 2))
    sparse = rng.normal(0, 0.1, size=(100, 2)) + [20, 0]
    points = np.concatenate([crowded, sparse]).astype(np.float32)
    weights = crowding_weights(points, 0.5, random_state=0, n_groups=2)
    np.testing.assert_allclose(weights[:900], 900**-0.5)
    np.testing.assert_allclose(weights[900:], 100**-0.5)
    assert crowding_weights(points, 0.0, random_state=0) is None
    assert crowding_weights(points[:60], 0.5, random_state=0) is None  # too few for 2 groups


def test_balanced_kmeans_on_large_data_fits_a_sample(monkeypatch):
    z, truth = _directions_at_many_lengths(n_per=300)
    z[0] = 0  # a zero vector has no direction: it must not turn into NaN
    monkeypatch.setattr(_centroids, "KMEANS_MAX_CELLS", 400)
    labels = _centroids.balanced_kmeans_labels(z, 3, random_state=0)
    assert labels.shape == (900,) and set(labels) == {0, 1, 2}
    assert adjusted_rand_score(truth[1:], labels[1:]) > 0.98


def test_scdcc_starts_from_leiden_by_default_and_kmeans_on_request(sim):
    fast = dict(pretrain_epochs=2, max_epochs=2, progress=False, batch_size=64)
    default = sdc.tl.scdcc(sim, 3, copy=True, **fast)
    assert default.uns["scdcc"]["init_method"].startswith("leiden (resolution")
    assert default.obs["scdcc"].nunique() <= 3
    kmeans = sdc.tl.scdcc(sim, 3, init="kmeans", copy=True, **fast)
    assert kmeans.uns["scdcc"]["init_method"] == "kmeans"
    out = sdc.tl.scdcc(sim, 3, init="balanced-kmeans", copy=True, **fast)
    assert out.uns["scdcc"]["init_method"] == "balanced-kmeans"
    assert out.uns["scdcc"]["params"]["init"] == "balanced-kmeans"
    assert out.obs["scdcc"].nunique() <= 3
    searched = sdc.tl.scdcc(sim, (2, 4), init="balanced-kmeans", copy=True, **fast)
    assert searched.uns["scdcc"]["init_method"] == "balanced-kmeans, number searched"
    # a searched number keeps the k-means partitions that the search scored
    searched = sdc.tl.scdcc(sim, (2, 4), copy=True, **fast)
    assert searched.uns["scdcc"]["init_method"] == "kmeans, number searched"


@pytest.mark.parametrize("init", ["kmeans", "balanced-kmeans"])
def test_kmeans_start_refuses_more_clusters_than_distinct_positions(init):
    z = np.repeat(np.array([[0.0, 1.0], [3.0, -1.0]], np.float32), 50, axis=0)
    with pytest.raises(ValueError, match=r"n_clusters=3, but k-means finds only 2 distinct"):
        initial_centroids(
            z, n_clusters=3, resolution=None, n_neighbors=10, random_state=0, init=init
        )
    if init == "kmeans":
        return
    line = np.linspace(-1, 1, 100, dtype=np.float32)[:, None]  # one dimension: two directions
    with pytest.raises(ValueError, match="a latent space of one dimension has two"):
        initial_centroids(
            line,
            n_clusters=3,
            resolution=None,
            n_neighbors=10,
            random_state=0,
            init="balanced-kmeans",
        )
    # every cell on one side: a single direction, and no smaller number of clusters to give
    half = np.linspace(0.1, 1, 100, dtype=np.float32)[:, None]
    with pytest.raises(ValueError, match=r"finds only 1 group.*\(scdcc's `latent_dim`, the last"):
        initial_centroids(
            half,
            n_clusters=3,
            resolution=None,
            n_neighbors=10,
            random_state=0,
            init="balanced-kmeans",
        )


def test_a_search_bounded_below_the_known_classes_says_so_once():
    """scDCC with labels of 4 classes searched in 2-3 became a silent "search" of 3 only, and
    the warning that followed named an n_clusters=3 nobody gave."""
    z, truth = _blobs(40, [(0, 0), (5, 0), (0, 5), (5, 5)])
    seed_labels = np.where(np.arange(len(z)) % 4 == 0, truth, -1)

    def searched(bounds, cells=slice(None), labels=seed_labels, n_neighbors=10):
        return initial_centroids(
            z[cells],
            n_clusters=bounds,
            resolution=None,
            n_neighbors=n_neighbors,
            random_state=0,
            seed_labels=labels,
        )

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        initial = searched((2, 3))
    said = [str(w.message) for w in caught if "classes" in str(w.message)]
    assert len(said) == 1 and "more than the search's upper bound 3" in said[0]
    assert "3 is the only number tried" in said[0]  # and scored alone, as uns records
    assert "n_clusters=(4, 30)" in said[0] and len(initial.centroids) == 3
    few = np.r_[np.arange(4), np.arange(40, 44), np.arange(80, 84), np.arange(120, 124)]
    with pytest.warns(UserWarning, match=r"give n_clusters=4 \(a search leaves 5 cells"):
        # 16 cells: a search goes up to 3 clusters at most, and bounds such as (4, 30) fail
        searched((2, 3), cells=few, labels=truth[few], n_neighbors=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # bounds that hold every class: nothing to say
        initial = searched((2, 6))
    assert len(initial.centroids) >= 4


def test_ward_merges_weigh_each_centroid_by_its_clusters_size():
    """A merged centroid placed by swapped weights sent every later merge astray."""
    from scdeepclust.train._centroids import ward_merged

    # a large group at 0 with one stray cell beside it; two small groups further out
    z = np.concatenate([np.zeros(100), [1.0], np.full(10, 3.0), np.full(10, 6.0)])
    labels = np.repeat([0, 1, 2, 3], [100, 1, 10, 10])
    merged = ward_merged(z[:, None].astype(np.float32), labels, 2)
    assert np.bincount(merged).tolist() == [101, 20]


def test_as_many_known_classes_as_clusters_start_at_the_class_means():
    """Every cluster named by a known class: no free k-means centroid is needed, and no warning."""
    z, truth = _blobs(40, [(0, 0), (5, 0), (0, 5)])
    seed_labels = np.where(np.arange(len(z)) % 4 == 0, truth, -1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        initial = initial_centroids(
            z,
            n_clusters=3,
            resolution=None,
            n_neighbors=10,
            random_state=0,
            seed_labels=seed_labels,
        )
    assert initial.method == "known class means" and initial.classes_anchored
    for code in range(3):
        np.testing.assert_allclose(
            initial.centroids[code], z[seed_labels == code].mean(0), atol=1e-5
        )


def test_a_search_starts_at_the_number_of_known_classes():
    """Every class gets a cluster: no number below the known classes is a candidate."""
    z, truth = _blobs(40, [(0, 0), (5, 0), (0, 5), (5, 5)])
    seed_labels = np.where(np.arange(len(z)) % 4 == 0, truth, -1)
    initial = initial_centroids(
        z,
        n_clusters=(2, 5),
        resolution=None,
        n_neighbors=10,
        random_state=0,
        seed_labels=seed_labels,
    )
    assert initial.search.n_clusters.tolist() == [4, 5]
    assert initial.method == "known class means, number searched"


def test_a_stable_best_number_is_not_called_unstable_for_its_poor_neighbours(monkeypatch):
    """The warning reads the best agreement: a poorly scored other candidate says nothing."""
    from scdeepclust.train._n_clusters import _choose

    scores = np.array([0.98, 0.2, 0.1])  # 2 comes back, 3 and 4 do not
    search = _choose(np.array([2, 3, 4]), scores, np.zeros(3), 0.05, 80, 6)
    monkeypatch.setattr(_centroids, "search_n_clusters", lambda *args, **kwargs: search)
    z, truth = _blobs(40, [(0, 0), (6, 0)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        initial = initial_centroids(
            z, n_clusters=(2, 4), resolution=None, n_neighbors=10, random_state=0
        )
    assert initial.search is search and initial.method == "kmeans, number searched"
    assert adjusted_rand_score(truth, initial.labels) == 1.0


def test_leiden_start_takes_the_candidate_that_cuts_less_of_the_graph():
    """Eight clusters of three large groups: the coarse clusters with separate parts split off
    cut less than the finer Leiden merged down, and are taken (the `<=` above holds either way)."""
    z, _ = _large_and_small_groups(seed=1)
    labels, method = leiden_k_labels(z, 8, resolution=0.8, n_neighbors=10, random_state=0)
    assert "separate parts split off" in method
    graph = LatentGraph(z, n_neighbors=10, random_state=0)
    ladder, _ = _ward_merged_ladder(graph, z, 8, 0.8)
    assert graph.cut_fraction(labels) < graph.cut_fraction(ladder)


def test_split_off_parts_gives_every_asked_number_or_none():
    """Each cluster keeps its largest part: splitting off every part of a cluster left its
    label empty, and fewer clusters than asked."""
    z, truth = _large_and_small_groups()
    graph = LatentGraph(z, n_neighbors=10, random_state=0)
    coarse = np.where(truth == 3, 0, np.where(truth == 4, 1, truth))
    for n_clusters in range(6, 30, 3):
        split = split_off_parts(graph, coarse, n_clusters)
        assert split is None or sorted(np.unique(split)) == list(range(n_clusters)), n_clusters


def test_balanced_kmeans_is_reproducible_where_its_crowding_groups_are_not_obvious():
    """Points without groups: the crowding groups, and so the weights, follow random_state."""
    z = np.random.default_rng(0).uniform(-1, 1, size=(1500, 3)).astype(np.float32)
    first = _centroids.balanced_kmeans_labels(z, 6, random_state=0)
    for _ in range(3):
        np.testing.assert_array_equal(
            _centroids.balanced_kmeans_labels(z, 6, random_state=0), first
        )


def test_balanced_kmeans_weighs_the_directions_by_their_crowding(monkeypatch):
    """The directions alone separate the groups above, so a fit without the weights passed."""
    from scdeepclust.train import _balance

    seen = []

    def recording(points, power, **kwargs):
        seen.append((points, power))
        return _balance.crowding_weights(points, power, **kwargs)

    monkeypatch.setattr(_centroids, "crowding_weights", recording)
    z, _ = _directions_at_many_lengths()
    _centroids.balanced_kmeans_labels(z, 3, random_state=0)
    _centroids.kmeans_labels(z, 3, random_state=0)
    (directions, balanced_power), (_, plain_power) = seen
    np.testing.assert_allclose(np.linalg.norm(directions, axis=1), 1.0, rtol=1e-5)
    assert balanced_power == _centroids.CROWDING_POWER > 0 and plain_power == 0


def test_leiden_finding_a_single_cluster_is_refused():
    z, _ = _blobs(100, [(0, 0)])  # one group: Leiden at a low resolution keeps it whole
    with pytest.raises(ValueError, match="found a single cluster in the latent space"):
        initial_centroids(z, n_clusters=None, resolution=0.01, n_neighbors=10, random_state=0)


def test_a_coarse_leiden_clustering_of_the_given_number_is_named_as_merged():
    """Coarse Leiden finding exactly the given number needs nothing split off; its start was
    named "0 separate part split off" when the boundary was missed."""
    z = np.random.default_rng(0).uniform(size=(400, 2)).astype(np.float32)  # no groups
    graph = LatentGraph(z, n_neighbors=10, random_state=0)
    n_coarse = len(np.unique(graph.leiden(_centroids.LEIDEN_COARSE_RESOLUTION)))
    labels, method = leiden_k_labels(z, n_coarse, resolution=5.0, n_neighbors=10, random_state=0)
    assert method.startswith("leiden (resolution 0.5), merged by Ward's criterion")
    assert sorted(np.unique(labels)) == list(range(n_coarse))


def test_crowding_weights_of_a_large_power_are_scaled_from_the_smallest_group():
    """n ** -power underflows to 0 for every group: the weights are then taken relative to the
    smallest group (weight 1); relative to the largest they overflowed to inf."""
    from scdeepclust.train._balance import crowding_weights

    rng = np.random.default_rng(0)
    crowded = rng.normal(0, 0.1, size=(900, 2))
    sparse = rng.normal(0, 0.1, size=(100, 2)) + [20, 0]
    points = np.concatenate([crowded, sparse]).astype(np.float32)
    weights = crowding_weights(points, 400.0, random_state=0, n_groups=2)
    assert np.isfinite(weights).all()
    np.testing.assert_array_equal(weights[900:], 1.0)
    assert (weights[:900] < 1e-300).all()


def test_exact_neighbors_stays_exact_where_scanpy_would_search_approximately(monkeypatch):
    """From 8,192 cells scanpy's own choice is pynndescent's search: exact_neighbors keeps the
    exact one, so that Leiden's starts find the true nearest cells."""
    import pynndescent
    from anndata import AnnData

    from scdeepclust._neighbors import exact_neighbors

    def approximate(**settings):
        raise AssertionError("the approximate search was used")

    monkeypatch.setattr(pynndescent, "PyNNDescentTransformer", approximate)
    z = np.random.default_rng(0).normal(size=(8200, 2)).astype(np.float32)
    adata = AnnData(np.zeros((len(z), 0), dtype=np.float32), obsm={"X_z": z})
    exact_neighbors(adata, use_rep="X_z", n_neighbors=3, random_state=0, method="gauss")
    graph = adata.obsp["distances"]
    d = ((z[:5, None, :] - z[None, :, :]) ** 2).sum(-1)
    d[np.arange(5), np.arange(5)] = np.inf
    for i in range(5):
        found = graph.indices[graph.indptr[i] : graph.indptr[i + 1]]
        assert set(found) == set(np.argsort(d[i])[:2])
