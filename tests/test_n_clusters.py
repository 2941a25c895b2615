"""The search for the number of clusters: its criterion, its bounds, what it stores and shows."""

import matplotlib
import numpy as np
import pytest
import scanpy as sc
import sklearn.cluster
from sklearn.metrics import adjusted_rand_score

import scdeepclust as sdc
from _helpers import FAST, assert_unchanged, record_keyword, snapshot
from scdeepclust._cli import build_parser
from scdeepclust.models._scdcc import DEFAULT_RESOLUTION as SCDCC_DEFAULT_RESOLUTION
from scdeepclust.train import _n_clusters
from scdeepclust.train._centroids import kmeans_labels
from scdeepclust.train._n_clusters import _adjusted_rand, _choose, search_n_clusters, search_summary

matplotlib.use("Agg")


def blobs(sizes, dim=8, spread=0.3, seed=0):
    """Well-separated Gaussian groups of the given sizes in `dim` dimensions."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 4, (len(sizes), dim))
    truth = np.repeat(np.arange(len(sizes)), sizes)
    z = centres[truth] + rng.normal(0, spread, (len(truth), dim))
    return z.astype(np.float32), truth


@pytest.mark.parametrize("sizes", [[200] * 5, [400, 300, 200, 60, 30, 30]])
def test_search_finds_the_number_of_groups(sizes):
    z, _ = blobs(sizes)
    search = search_n_clusters(z, (2, 12), random_state=0)
    assert search.chosen == len(sizes)
    # past the true number, partitions cut groups at random places and agree less
    assert search.score[search.n_clusters == len(sizes)][0] > search.score[-1] + 0.05


def test_bounds_are_honoured():
    z, _ = blobs([150] * 6)
    search = search_n_clusters(z, (3, 4), random_state=0)
    assert list(search.n_clusters) == [3, 4]
    assert search.chosen in (3, 4) and search.runner_up in (3, 4)
    assert search_n_clusters(z, (5, 5), random_state=0).chosen == 5


def test_search_is_reproducible_and_subsamples_large_data():
    z, _ = blobs([300] * 4)
    a = search_n_clusters(z, (2, 6), random_state=3)
    b = search_n_clusters(z, (2, 6), random_state=3)
    np.testing.assert_array_equal(a.score, b.score)
    capped = search_n_clusters(z, (2, 6), random_state=3, max_cells=500)
    assert capped.n_cells == 500 and capped.chosen == 4


def test_search_is_reproducible_on_many_threads(monkeypatch):
    """scikit-learn's k-means adds its threads' partial centroids in arrival order: with three or
    more threads, repeated searches differed (seen on a 16-core machine). Its threads are capped
    at two, whose single addition is exact in either order."""
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_info, threadpool_limits

    from scdeepclust._threads import KMEANS_THREADS

    threads_seen = []
    fit = KMeans.fit

    def recording_fit(self, *args, **kwargs):
        pools = threadpool_info()
        threads_seen.extend(p["num_threads"] for p in pools if p["user_api"] == "openmp")
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(KMeans, "fit", recording_fit)
    z, _ = blobs([300] * 4)
    with threadpool_limits(limits=5, user_api="openmp"):
        scores = {tuple(search_n_clusters(z, (2, 6), random_state=3).score) for _ in range(6)}
        n_searched = len(threads_seen)
        kmeans_labels(z, 4, random_state=0)  # the initial centroids of a given k
    assert n_searched and len(threads_seen) > n_searched
    assert max(threads_seen) <= KMEANS_THREADS
    assert len(scores) == 1
    # a tighter limit of the caller's is kept, not raised to two
    threads_seen.clear()
    with threadpool_limits(limits=1, user_api="openmp"):
        kmeans_labels(z, 4, random_state=0)
    assert threads_seen and max(threads_seen) == 1


def test_adjusted_rand_matches_sklearn():
    rng = np.random.default_rng(0)
    for k in (2, 5, 9):
        a, b = rng.integers(0, k, 500), rng.integers(0, k, 500)
        b[:250] = a[:250]
        assert _adjusted_rand(a, b, k) == pytest.approx(adjusted_rand_score(a, b))
    assert _adjusted_rand(np.zeros(10, int), np.zeros(10, int), 1) == 1.0


def test_the_runner_up_is_the_best_scored_of_the_other_candidates():
    """It was only checked where a single other candidate was searched."""
    from scdeepclust.train._n_clusters import _choose

    scores = np.array([0.9, 1.0, 0.97, 0.3])
    search = _choose(np.array([2, 3, 4, 5]), scores, np.zeros(4), 0.05, 100, 5)
    assert search.chosen == 4 and search.runner_up == 3
    search = _choose(
        np.array([2, 3, 4, 5]), np.array([0.5, 0.6, 1.0, 0.7]), np.zeros(4), 0.05, 100, 5
    )
    assert search.chosen == 4 and search.runner_up == 5


def test_the_summary_says_why_a_runner_up_that_scores_higher_was_not_chosen():
    from scdeepclust.train._n_clusters import _choose, search_summary

    below = _choose(np.array([2, 3, 4]), np.array([0.9, 1.0, 0.97]), np.zeros(3), 0.05, 100, 5)
    line = search_summary(below.as_dict())
    assert line == (
        "chose 4 (agreement 0.970 ± 0.000), runner-up 3 (agreement 1.000 ± 0.000): the most "
        "clusters within 0.05 of the best agreement are chosen"
    )
    best = _choose(np.array([2, 3, 4]), np.array([0.9, 0.97, 1.0]), np.zeros(3), 0.05, 100, 5)
    assert search_summary(best.as_dict()).endswith("runner-up 3 (agreement 0.970 ± 0.000)")


@pytest.fixture
def groups4():
    return sdc.datasets.simulate(
        n_cells=400, n_genes=150, n_groups=4, de_fraction=0.3, de_log_fold=2.5, random_state=2
    )


def test_scdcc_default_is_leiden_at_its_resolution(groups4):
    sdc.tl.scdcc(groups4, pretrain_epochs=25, max_epochs=10, progress=False, batch_size=64)
    uns = groups4.uns["scdcc"]
    assert uns["init_method"] == "leiden" and "n_clusters_search" not in uns
    assert uns["params"]["resolution"] == SCDCC_DEFAULT_RESOLUTION
    assert uns["n_clusters"] == 4
    assert adjusted_rand_score(groups4.obs["group"], groups4.obs["scdcc"]) > 0.95


def test_scdcc_with_labels_and_no_number_searches(groups4):
    labelled = np.arange(groups4.n_obs) % 10 == 0
    groups4.obs["known"] = groups4.obs["group"].astype(object).where(labelled)
    sdc.tl.scdcc(groups4, label_key="known", pretrain_epochs=5, max_epochs=2, progress=False)
    uns = groups4.uns["scdcc"]
    assert "n_clusters_search" in uns and uns["n_clusters_search"]["chosen"] >= 4
    assert uns["init_method"].startswith("known class means")
    assert uns["params"].get("resolution") is None


def test_scdcc_search_stores_the_evidence(groups4, tmp_path):
    sdc.tl.scdcc(groups4, (2, 30), pretrain_epochs=25, max_epochs=10, progress=False, batch_size=64)
    uns = groups4.uns["scdcc"]
    search = uns["n_clusters_search"]
    assert search["chosen"] == 4 and uns["init_method"] == "kmeans, number searched"
    assert list(search["n_clusters"]) == list(range(2, 31))
    assert len(search["score"]) == len(search["spread"]) == 29
    assert adjusted_rand_score(groups4.obs["group"], groups4.obs["scdcc"]) > 0.95
    path = tmp_path / "searched.h5ad"
    groups4.write_h5ad(path)
    back = sc.read_h5ad(path)
    stored = back.uns["scdcc"]["n_clusters_search"]
    np.testing.assert_array_equal(stored["score"], search["score"])
    assert stored["chosen"] == 4 and stored["runner_up"] == search["runner_up"]
    fig = sdc.pl.n_clusters(back, "scdcc", show=False)
    assert isinstance(fig, matplotlib.figure.Figure)
    # the band within the tolerance of the best score
    band = [p for p in fig.axes[0].patches if p.get_label() == "within tolerance of best"][0]
    edges = band.get_path().transformed(band.get_patch_transform()).vertices[:, 1]
    best, tolerance = max(search["score"]), search["tolerance"]
    np.testing.assert_allclose([edges.min(), edges.max()], [best - tolerance, best], atol=1e-6)
    assert fig.axes[0].get_xlabel() == "number of clusters k"
    fig.canvas.draw()
    ticks = [t for t in fig.axes[0].get_xticks() if 2 <= t <= 30]
    assert ticks and all(float(t).is_integer() for t in ticks)  # no "4.25 clusters"
    # everything drawn lies inside the figure a plain savefig writes
    for drawn in (fig, sdc.pl.n_clusters(back, "scdcc", figsize=(3, 2.5), show=False)):
        drawn.canvas.draw()
        box, ax = drawn.bbox, drawn.axes[0]
        for text in [ax.title, ax.xaxis.label, ax.yaxis.label, *ax.texts]:
            extent = text.get_window_extent()
            assert extent.x0 >= box.x0 - 1 and extent.x1 <= box.x1 + 1 and extent.y0 >= box.y0 - 1


def test_bounds_through_the_tools(sim):
    sdc.tl.scdcc(sim, (4, 5), **FAST)
    search = sim.uns["scdcc"]["n_clusters_search"]
    assert list(search["n_clusters"]) == [4, 5]
    assert sim.obsm["scdcc_probs"].shape[1] == search["chosen"]
    sdc.tl.scdcc(sim, (4, 4), key_added="four", **FAST)
    for key, numbers in (("scdcc", [4, 5]), ("four", [4])):
        fig = sdc.pl.n_clusters(sim, key, show=False)
        fig.canvas.draw()
        ax = fig.axes[0]
        low, high = ax.get_xlim()
        assert [t for t in ax.get_xticks() if low <= t <= high] == numbers  # not 3.75, 4.25
    scaled = sim.copy()
    sc.pp.normalize_total(scaled)
    sc.pp.log1p(scaled)
    sc.pp.scale(scaled)
    sdc.tl.desc(scaled, n_clusters=(2, 3), **FAST)
    assert scaled.uns["desc"]["n_clusters_search"]["chosen"] in (2, 3)
    assert "resolution" not in scaled.uns["desc"]["params"]


def test_given_numbers_and_resolutions_do_not_search(sim):
    sdc.tl.scdcc(sim, 3, **FAST)
    assert "n_clusters_search" not in sim.uns["scdcc"]
    sdc.tl.scdcc(sim, resolution=0.5, key_added="leiden_init", **FAST)
    assert sim.uns["leiden_init"]["init_method"] == "leiden"
    assert "n_clusters_search" not in sim.uns["leiden_init"]
    with pytest.raises(KeyError, match="no 'n_clusters_search'"):
        sdc.pl.n_clusters(sim, "scdcc", show=False)


@pytest.mark.parametrize(
    "n_clusters, match",
    [
        ((5, 3), "lower bound exceeds"),
        ((1, 3), "lower bound must be an integer >= 2"),
        ((2, 3, 4), "length 3"),
        ((2, 240), r"on 240 cells an upper bound of 48 at most"),
    ],
)
def test_bad_bounds_are_refused_before_training(sim, n_clusters, match):
    before = snapshot(sim)
    with pytest.raises(ValueError, match=match):
        sdc.tl.scdcc(sim, n_clusters, **FAST)
    assert_unchanged(sim, before)


def test_the_upper_bound_is_checked_against_the_cells_the_search_clusters():
    # accepted up to a fifth of all cells, a bound beyond the search's sample of 20,000 failed
    # after pretraining in numpy's words ("Cannot take a larger sample than population")
    from scdeepclust.tl._validate import check_n_clusters

    assert check_n_clusters((2, 4000), 200_000) == (2, 4000)
    with pytest.raises(ValueError, match=r"on 200000 cells \(the search clusters 20000 of them\)"):
        check_n_clusters((2, 40_000), 200_000)


def test_bad_resolution_is_refused(sim):
    before = snapshot(sim)
    with pytest.raises(ValueError, match="resolution must be a positive number"):
        sdc.tl.scdcc(sim, resolution=-1.0, **FAST)
    assert_unchanged(sim, before)


def test_command_line_takes_bounds():
    parser = build_parser()
    args = parser.parse_args(["run", "in.h5ad", "-m", "scdcc", "-o", "o.h5ad", "-k", "3-9"])
    assert args.n_clusters == (3, 9)
    args = parser.parse_args(["run", "in.h5ad", "-m", "scdcc", "-o", "o.h5ad", "-k", "7"])
    assert args.n_clusters == 7
    args = parser.parse_args(["run", "in.h5ad", "-m", "scdcc", "-o", "o.h5ad", "-k", "5-5"])
    assert args.n_clusters == (5, 5)  # as tl takes n_clusters=(5, 5)
    with pytest.raises(SystemExit):
        parser.parse_args(["run", "in.h5ad", "-m", "scdcc", "-o", "o.h5ad", "-k", "9-3"])


def test_simulated_group_fractions():
    sim = sdc.datasets.simulate(4000, 50, 4, group_fractions=[0.7, 0.2, 0.08, 0.02], random_state=0)
    shares = sim.obs["group"].value_counts(normalize=True).sort_index().to_numpy()
    np.testing.assert_allclose(shares, [0.7, 0.2, 0.08, 0.02], atol=0.02)
    with pytest.raises(ValueError, match="one per group"):
        sdc.datasets.simulate(100, 20, 3, group_fractions=[0.5, 0.5])


def test_search_bounds_leave_several_cells_per_cluster():
    from scdeepclust.tl._validate import check_n_clusters
    from scdeepclust.train._n_clusters import resolve_bounds

    # by default up to 30, and at most a fifth of the cells (12 cells of 3 groups chose 11)
    assert resolve_bounds(None, 12) == (2, 2)
    assert resolve_bounds(None, 100) == (2, 20)
    assert resolve_bounds(None, 1_000) == (2, 30)
    assert check_n_clusters((2, 40), 200) == (2, 40)
    with pytest.raises(ValueError, match=r"n_clusters=\(2, 199\).*an upper bound of 40 at most\."):
        check_n_clusters((2, 199), 200)
    with pytest.raises(ValueError, match="too few cells to search; give n_clusters as a number"):
        check_n_clusters((2, 3), 9)
    # the largest upper bound below the lower one: the advice itself would be refused
    with pytest.raises(ValueError, match=r"below the lower bound 5: give n_clusters=\(2, 4\)"):
        check_n_clusters((5, 6), 20)


def test_a_search_without_a_stable_number_says_so():
    # cells of one group: every candidate's agreement about 0.1, and the choice said nothing
    import warnings

    from scdeepclust.train._n_clusters import STABLE_SCORE

    adata = sdc.datasets.simulate(400, 200, 1, random_state=0)
    sdc.pp.recipe(adata, "desc")
    with pytest.warns(UserWarning, match=r"No number of clusters from 2 to 6 comes back") as got:
        sdc.tl.desc(adata, n_clusters=(2, 6), **FAST)
    assert max(adata.uns["desc"]["n_clusters_search"]["score"]) < STABLE_SCORE
    assert not [w for w in got if "sklearn" in w.filename]
    # a single candidate is not a choice: its own agreement is said
    with pytest.warns(UserWarning, match=r"^3 clusters do not come back .* they mean little"):
        sdc.tl.desc(adata, n_clusters=(3, 3), **FAST)
    groups = sdc.datasets.simulate(400, 200, 4, de_fraction=0.3, de_log_fold=2.0, random_state=0)
    sdc.pp.recipe(groups, "desc")
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="No number of clusters")
        sdc.tl.desc(groups, n_clusters=(2, 6), **FAST)


def test_identical_cells_name_the_searched_number_without_sklearns_warnings():
    import warnings

    row = sdc.datasets.simulate(10, 100, 1, random_state=0).layers["counts"][:1].toarray()
    adata = sc.AnnData(np.tile(row, (200, 1)).astype(np.float32))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ValueError, match=r"The search chose \d clusters \(of 2 to 5\), but"):
            sdc.tl.scdcc(adata, n_clusters=(2, 5), **FAST)
    assert not [w for w in caught if "distinct clusters" in str(w.message)]


def test_a_candidate_exactly_at_the_tolerance_is_eligible_and_none_without_one():
    from scdeepclust.train._n_clusters import _choose

    # 4 scores 0.95, exactly the tolerance below the best: the finer number is taken
    search = _choose(np.array([3, 4]), np.array([1.0, 0.95]), np.zeros(2), 0.05, 100, 5)
    assert search.chosen == 4 and search.runner_up == 3
    # no tolerance: the best score itself
    search = _choose(np.array([2, 3, 4]), np.array([0.7, 0.9, 0.8]), np.zeros(3), 0.0, 100, 5)
    assert search.chosen == 3 and search.runner_up == 4


def test_the_default_bounds_of_very_few_cells_keep_a_candidate():
    from scdeepclust.train._n_clusters import resolve_bounds

    # fewer than ten cells leave no fifth of them above the lower bound: 2 is searched alone
    assert resolve_bounds(None, 9) == (2, 2)
    assert resolve_bounds(None, 4) == (2, 2)


def test_the_score_is_the_agreement_between_distinct_repeats():
    """With two repeats there is one pair to compare, so no spread; a repeat compared with
    itself (an ARI of 1) would lift every score and give a spread."""
    z = np.random.default_rng(0).uniform(size=(300, 2)).astype(np.float32)  # no groups
    search = search_n_clusters(z, (3, 5), random_state=0, n_repeats=2)
    np.testing.assert_array_equal(search.spread, 0.0)
    assert (search.score < 1).all()


def _searched_result(scores, chosen, runner_up):
    """A stored search (as `ClusterNumberSearch.as_dict` writes it) of k = 2, 3, ..."""
    import pandas as pd

    adata = sc.AnnData(np.zeros((20, 2), np.float32))
    adata.obs["run"] = pd.Categorical(np.arange(20) % 2)
    search = {
        "n_clusters": np.arange(2, 2 + len(scores)),
        "score": np.asarray(scores, float),
        "spread": np.zeros(len(scores)),
        "chosen": chosen,
        "runner_up": runner_up,
        "tolerance": 0.05,
        "n_cells": 20,
        "n_repeats": 6,
    }
    adata.uns["run"] = {"n_clusters": chosen, "n_clusters_search": search}
    return adata


def test_the_plot_marks_the_choice_and_the_runner_up_at_their_scores():
    adata = _searched_result([0.6, 0.9, 1.0, 0.97, 0.4], chosen=5, runner_up=4)
    fig = sdc.pl.n_clusters(adata, "run", show=False)
    ax = fig.axes[0]
    notes = {note.get_text(): note.xy for note in ax.texts}
    assert notes.keys() == {"chosen: 5", "runner-up: 4"}
    assert notes["chosen: 5"] == pytest.approx((5, 0.97))
    assert notes["runner-up: 4"] == pytest.approx((4, 1.0))
    rings = [line for line in ax.lines if len(line.get_xdata()) == 1]  # the two markers
    assert sorted((line.get_xdata()[0], line.get_ydata()[0]) for line in rings) == [
        (4, pytest.approx(1.0)),
        (5, pytest.approx(0.97)),
    ]


def test_notes_on_the_first_and_last_candidate_open_inwards():
    adata = _searched_result([0.98, 0.5, 0.6, 1.0], chosen=5, runner_up=2)
    ax = sdc.pl.n_clusters(adata, "run", show=False).axes[0]
    align = {note.get_text(): note.get_horizontalalignment() for note in ax.texts}
    assert align == {"chosen: 5": "right", "runner-up: 2": "left"}


def test_a_choice_at_the_upper_bound_is_named_with_a_wider_range():
    """Six groups searched up to four: the rule takes the largest number near the best, so a
    choice at the bound may stand for more; the warning says how to widen the range."""
    import warnings

    from scdeepclust.train._centroids import initial_centroids
    from scdeepclust.train._n_clusters import largest_upper_bound

    z, _ = blobs([150] * 6)
    start = dict(resolution=None, n_neighbors=10, random_state=0)
    with pytest.warns(UserWarning, match=r"chose 4 clusters, its upper bound.*n_clusters=\(2, 8\)"):
        initial_centroids(z, n_clusters=(2, 4), **start)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*upper bound")
        assert initial_centroids(z, n_clusters=(2, 10), **start).search.chosen == 6
        initial_centroids(z, n_clusters=(4, 4), **start)  # a single number is taken, not chosen
    # where the bound is as many clusters as a search takes, there is nothing to widen
    few, _ = blobs([5] * 12)
    most = largest_upper_bound(len(few))
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*upper bound")
        search = initial_centroids(few, n_clusters=(2, most), **{**start, "n_neighbors": 5}).search
    assert search.chosen == most


def test_search_bounds_are_two_numbers_up_to_the_largest_upper_bound():
    from scdeepclust.tl._validate import check_n_clusters

    assert check_n_clusters((2, 40), 200) == (2, 40)  # 40 is the largest upper bound on 200
    with pytest.raises(ValueError, match=r"n_clusters=\(2, 41\).*an upper bound of 40 at most\."):
        check_n_clusters((2, 41), 200)
    with pytest.raises(ValueError, match="got a sequence of length 1"):
        check_n_clusters((3,), 200)


def test_whole_number_float_bounds_come_back_as_ints():
    """As a number of clusters does: the bounds reach the search and the params as 2 and 3."""
    from scdeepclust.tl._validate import check_n_clusters

    bounds = check_n_clusters((2.0, np.float32(3.0)), 200)
    assert bounds == (2, 3) and all(type(bound) is int for bound in bounds)


def test_the_stored_search_holds_whole_numbers_and_plain_types():
    """uns[key]['n_clusters_search'] keeps the candidates as integers (h5ad: no '4.0 clusters')."""
    stored = _choose(
        np.array([2, 3, 4]), np.array([0.9, 1.0, 0.97]), np.zeros(3), 0.05, 100, 5
    ).as_dict()
    assert stored["n_clusters"].dtype == np.int64
    assert stored["score"].dtype == stored["spread"].dtype == np.float64
    assert all(type(stored[k]) is int for k in ("chosen", "runner_up", "n_cells", "n_repeats"))
    assert (stored["chosen"], stored["runner_up"], stored["n_cells"], stored["n_repeats"]) == (
        4,
        3,
        100,
        5,
    )


def test_the_summary_gives_no_reason_where_the_runner_up_only_ties_the_choice():
    tied = _choose(np.array([2, 3]), np.array([1.0, 1.0]), np.zeros(2), 0.05, 100, 5)
    assert (tied.chosen, tied.runner_up) == (3, 2)
    assert search_summary(tied.as_dict()) == (
        "chose 3 (agreement 1.000 ± 0.000), runner-up 2 (agreement 1.000 ± 0.000)"
    )


def test_score_and_spread_are_the_mean_and_standard_deviation_of_the_pairwise_agreements(
    monkeypatch,
):
    """Three repeats give three pairs per candidate: their mean ARI is the score, the standard
    deviation the spread."""
    pairs = iter([0.2, 0.4, 0.9, 0.1, 0.1, 0.7])
    monkeypatch.setattr(_n_clusters, "_adjusted_rand", lambda a, b, k: next(pairs))
    z = np.random.default_rng(0).normal(size=(60, 3)).astype(np.float32)
    search = search_n_clusters(z, (2, 3), random_state=0, n_repeats=3)
    np.testing.assert_allclose(search.score, [0.5, 0.3])
    np.testing.assert_allclose(search.spread, [np.std([0.2, 0.4, 0.9]), np.std([0.1, 0.1, 0.7])])


def test_every_repeat_fits_k_means_from_its_own_seed_with_several_starts(monkeypatch):
    seen = record_keyword(monkeypatch, sklearn.cluster, "KMeans", "random_state", "n_init")
    z = np.random.default_rng(0).normal(size=(60, 3)).astype(np.float32)
    search_n_clusters(z, (2, 3), random_state=0, n_repeats=4)
    assert len(seen) == 8  # 2 candidates x 4 repeats
    seeds = [seed for seed, _ in seen]
    assert len(set(seeds[:4])) == 4 and seeds[:4] == seeds[4:]  # the same 4 seeds per candidate
    assert {n_init for _, n_init in seen} == {_n_clusters.N_INIT} and _n_clusters.N_INIT > 1


def test_each_repeat_fits_a_subsample_of_distinct_cells(monkeypatch):
    fitted = []
    fit = sklearn.cluster.KMeans.fit

    def recording_fit(self, X, *args, **kwargs):
        fitted.append(np.asarray(X).copy())
        return fit(self, X, *args, **kwargs)

    monkeypatch.setattr(sklearn.cluster.KMeans, "fit", recording_fit)
    z = np.random.default_rng(0).normal(size=(100, 3)).astype(np.float32)  # distinct rows
    search_n_clusters(z, (2, 2), random_state=0, n_repeats=3)
    assert len(fitted) == 3
    for rows in fitted:
        assert len(rows) == 80 and len(np.unique(rows, axis=0)) == 80  # 0.8 of them, no repeats
    assert not all(np.array_equal(fitted[0], other) for other in fitted[1:])


def test_among_equally_scored_others_the_runner_up_is_the_fewest_clusters():
    """Well separated data score several numbers 1.0; of the default range's 29 candidates
    the runner-up is the smallest of them, not whichever an unstable sort puts first."""
    scores = np.array(
        [
            0.9,
            0.9,
            0.8,
            0.8,
            1.0,
            1.0,
            0.8,
            0.8,
            1.0,
            1.0,
            0.8,
            0.9,
            1.0,
            0.8,
            1.0,
            0.9,
            0.9,
            0.9,
            1.0,
            1.0,
            0.8,
            0.8,
            0.8,
            0.9,
            0.8,
            1.0,
            0.9,
            0.8,
            1.0,
        ]
    )
    search = _choose(np.arange(2, 31), scores, np.zeros(29), 0.05, 1000, 6)
    assert search.chosen == 30 and search.runner_up == 6


@pytest.mark.parametrize("best, warns", [(0.74, False), (0.45, True)])
def test_only_a_search_whose_best_agreement_is_below_one_half_says_no_number_comes_back(
    monkeypatch, best, warns
):
    """The labelled datasets' best numbers scored 0.74 to 1.00: a best of 0.74 is a number that
    comes back; 0.45 (cells of one group score about 0.1) is not."""
    import warnings

    from scdeepclust.train import _centroids

    def scored(z, bounds, *, random_state):
        return _choose(
            np.array([2, 3, 4]),
            np.array([best - 0.2, best, best - 0.3]),
            np.zeros(3),
            0.05,
            len(z),
            6,
        )

    monkeypatch.setattr(_centroids, "search_n_clusters", scored)
    z = np.random.default_rng(0).normal(size=(200, 4)).astype(np.float32)
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        start = _centroids.initial_centroids(
            z, n_clusters=(2, 4), resolution=None, n_neighbors=10, random_state=0
        )
    assert start.search.chosen == 3
    unstable = [w for w in said if "No number of clusters from 2 to 4" in str(w.message)]
    assert len(unstable) == int(warns)
