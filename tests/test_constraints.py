import warnings

import numpy as np
import pandas as pd
import pytest
import torch

import scdeepclust as sdc
from _helpers import ONE_EPOCH, record_keyword
from scdeepclust.constraints import (
    PairwiseConstraints,
    label_codes,
    pairs_from_labels,
    pairs_from_protein,
    pairs_from_user,
)


def test_pairs_from_labels():
    labels = np.array(["a", "b", None, "a", "b", None, "c", "a"], dtype=object)
    c = pairs_from_labels(labels, 15, np.random.default_rng(0))
    assert len(c) == 15  # 6 labelled cells give exactly 15 distinct pairs
    known = {0, 1, 3, 4, 6, 7}
    for a, b in c.must_link:
        assert labels[a] == labels[b] and {a, b} <= known
    for a, b in c.cannot_link:
        assert labels[a] != labels[b] and {a, b} <= known
    keys = {tuple(sorted(p)) for p in np.concatenate([c.must_link, c.cannot_link])}
    assert len(keys) == 15


def test_labels_are_classes_as_text_as_the_rest_of_scdcc_reads_them():
    # A column put together from two tables (1 and "1") gave two classes in the pairs and one
    # in the centroids' start: cannot-links joined cells of one class.
    mixed = pd.Series([1, "1", 2, "2", 1.0, None], dtype=object)
    c = pairs_from_labels(mixed, 10, np.random.default_rng(0))
    text = mixed.where(mixed.isna(), mixed.astype(str))
    for a, b in c.must_link:
        assert text[a] == text[b]
    for a, b in c.cannot_link:
        assert text[a] != text[b]
    assert {(0, 1), (2, 3)} <= {tuple(sorted(p)) for p in c.must_link}


@pytest.mark.parametrize(
    ("labels", "classes"),
    [
        # numbers by value, not as text ("10" before "2"), whatever holds them
        (pd.Series([10, 2, None, 1], dtype="Int64"), ["1", "2", "10"]),
        (pd.Series([10.5, 2.0, np.nan, 1.0]), ["1.0", "2.0", "10.5"]),
        (pd.Series([10, 2, 1, None], dtype=object), ["1", "2", "10"]),
        (pd.Series([1, 1.0, 10, 2.5], dtype=object), ["1", "1.0", "2.5", "10"]),
        (np.array([3, 20, 1]), ["1", "3", "20"]),
        # a categorical column's own order, without the categories no cell has
        (pd.Categorical(["b", "a", None, "c"], categories=["c", "b", "z", "a"]), ["c", "b", "a"]),
        (pd.Categorical([10, 2, 1]), ["1", "2", "10"]),
        # other text alphabetically, as pandas orders it
        (pd.Series(["b cell", "T cell", None, "a"], dtype=object), ["T cell", "a", "b cell"]),
        (pd.Series(["10", "2", pd.NA], dtype="string"), ["10", "2"]),
        (pd.Series([True, False, None], dtype=object), ["False", "True"]),
        (pd.Series([10, "2", 1, True], dtype=object), ["1", "10", "2", "True"]),
    ],
)
def test_classes_keep_the_columns_own_order(labels, classes):
    """Class i names cluster i, so the classes follow the order the column gives its values."""
    codes, found = label_codes(labels)
    assert list(found) == classes
    text = pd.Series(labels, dtype=object)
    known = text.notna().to_numpy()
    assert np.all(codes[~known] == -1)
    np.testing.assert_array_equal(found[codes[known]], text[known].astype(str))


def test_labels_need_two_classes():
    with pytest.raises(ValueError, match="same label"):
        pairs_from_labels(pd.Series(["a", "a", np.nan]), 5, np.random.default_rng(0))


def test_protein_pairs_separate_near_and_far():
    rng = np.random.default_rng(0)
    protein = np.concatenate([rng.normal(0, 0.1, (50, 3)), rng.normal(5, 0.1, (50, 3))])
    c = pairs_from_protein(protein, 40, rng)
    assert len(c.must_link) > 0 and len(c.cannot_link) > 0
    group = np.repeat([0, 1], 50)
    assert np.all(group[c.must_link[:, 0]] == group[c.must_link[:, 1]])
    assert np.all(group[c.cannot_link[:, 0]] != group[c.cannot_link[:, 1]])


def test_protein_pairs_of_many_cells_are_drawn_in_batches_alike(monkeypatch):
    import scdeepclust.constraints as constraints

    protein = np.random.default_rng(0).normal(size=(3000, 4)).astype(np.float32)
    whole = pairs_from_protein(protein, 400, np.random.default_rng(1))  # 20,000 at once
    monkeypatch.setattr(constraints, "PROTEIN_PAIRS_AT_ONCE", 5000)  # 4 batches
    batched = pairs_from_protein(protein, 400, np.random.default_rng(1))
    for pairs in (batched.must_link, batched.cannot_link):
        keys = np.minimum(*pairs.T) * len(protein) + np.maximum(*pairs.T)
        assert len(np.unique(keys)) == len(pairs) and np.all(pairs[:, 0] != pairs[:, 1])

    def dist(pairs):
        return np.linalg.norm(protein[pairs[:, 0]] - protein[pairs[:, 1]], axis=1)

    assert len(batched.cannot_link) == len(whole.cannot_link) == 400
    # 0.5% of 20,000 each; the batched quantile comes from the first 5,000 pairs alone
    assert 60 <= len(batched.must_link) <= 140 and len(whole.must_link) == 100
    assert dist(batched.must_link).max() < dist(batched.cannot_link).min()
    for near_or_far in ("must_link", "cannot_link"):
        got, want = dist(getattr(batched, near_or_far)), dist(getattr(whole, near_or_far))
        assert abs(np.median(got) - np.median(want)) < 0.1 * np.median(want)


def test_protein_pairs_of_few_cells_are_all_the_pairs_there_are(monkeypatch):
    import scdeepclust.constraints as constraints

    protein = np.random.default_rng(0).normal(size=(40, 2)).astype(np.float32)  # 780 pairs
    whole = pairs_from_protein(protein, 100, np.random.default_rng(1))  # 5,000 asked for
    assert len(whole.must_link) == 4 and len(whole.cannot_link) == 39  # 0.5% and 5% of 780
    monkeypatch.setattr(constraints, "PROTEIN_PAIRS_AT_ONCE", 1000)  # no batches to draw
    again = pairs_from_protein(protein, 100, np.random.default_rng(1))
    np.testing.assert_array_equal(again.must_link, whole.must_link)
    np.testing.assert_array_equal(again.cannot_link, whole.cannot_link)


def test_check_rejects_bad_pairs():
    ml = np.array([[0, 1], [2, 3]])
    with pytest.raises(ValueError, match="both must-link and cannot-link"):
        PairwiseConstraints(ml, np.array([[1, 0]])).check(5)
    with pytest.raises(ValueError, match="outside"):
        PairwiseConstraints(np.array([[0, 9]]), np.empty((0, 2), int)).check(5)
    with pytest.raises(ValueError, match="itself"):
        PairwiseConstraints(np.array([[2, 2]]), np.empty((0, 2), int)).check(5)


def test_user_pairs_by_name():
    names = pd.Index(["x", "y", "z"])
    np.testing.assert_array_equal(pairs_from_user([["z", "x"]], names, "ml"), [[2, 0]])
    with pytest.raises(KeyError, match="not in adata.obs_names"):
        pairs_from_user([["z", "w"]], names, "ml")
    with pytest.raises(ValueError, match="shape"):
        pairs_from_user([1, 2, 3], names, "ml")


def test_user_pairs_as_whole_numbers_of_any_type():
    """Positions read from a table (floats, nullable integers) are positions, not names."""
    names = pd.Index(["x", "y", "z", "w"])
    for pairs in (
        pd.DataFrame({"a": [0, 2], "b": [1, 3]}, dtype="Int64"),
        np.array([[0, 1], [2, 3]], dtype=object),
        np.array([[0.0, 1.0], [2.0, 3.0]]),
    ):
        np.testing.assert_array_equal(pairs_from_user(pairs, names, "ml"), [[0, 1], [2, 3]])
    for pairs in (np.array([[0.5, 1.0]]), [[True, False]]):
        with pytest.raises(ValueError, match=r"ml must hold cell positions \(whole numbers\)"):
            pairs_from_user(pairs, names, "ml")


def test_whole_numbers_beside_names_that_are_other_whole_numbers_are_warned_of():
    """Cell ids read from a table come back as integers, read as positions: with cells named
    '3', '2', ... the pairs joined other cells than those named, without a word. Where the
    names are the positions (anndata's default names) or are not numbers, nothing is said."""
    reversed_ids = pd.Index(["3", "2", "1", "0"])
    for pairs in ([[0, 1]], np.array([[0.0, 1.0]])):
        with pytest.warns(
            UserWarning,
            match=r"ml holds whole numbers, read as cell positions, while adata\.obs_names are "
            r"whole numbers too, other than the positions \(the cell at position 0 is named "
            r"'3'\)\. If they are cell names, pass them as text, spelled as in adata\.obs_names\.",
        ):
            np.testing.assert_array_equal(pairs_from_user(pairs, reversed_ids, "ml"), [[0, 1]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for names in (["0", "1", "2", "3"], ["3", "x", "1", "0"], ["000", "001", "002", "99"]):
            pairs_from_user([[1, 2]], pd.Index(names), "ml")
        pairs_from_user([[1, 2]], reversed_ids[[0, 2, 1, 3]], "ml")  # '1' at 1 and '2' at 2
    with pytest.warns(UserWarning, match=r"position 3 is named '10{30}'"):  # beyond int64
        pairs_from_user([[1, 3]], pd.Index(["0", "1", "2", str(10**30)]), "ml")


def test_random_pairs_for_most_of_all_pairs_are_distinct_pairs_of_the_candidates():
    """Asked for 3/4 or more of all pairs, the pairs are enumerated, not drawn until met (the
    time this saves is a benchmark's matter): still distinct, unordered, of the candidates."""
    from scdeepclust.constraints import _random_distinct_pairs

    candidates = np.arange(100, 400)
    n_possible = 300 * 299 // 2
    for n_pairs in (n_possible, (3 * n_possible) // 4 + 1):
        pairs = _random_distinct_pairs(candidates, n_pairs, np.random.default_rng(0))
        assert len(pairs) == n_pairs and np.all(pairs[:, 0] != pairs[:, 1])
        assert len({tuple(sorted(p)) for p in pairs}) == n_pairs
        assert np.isin(pairs, candidates).all()


def test_protein_pairs_that_contradict_the_labels_are_left_out():
    """Two random draws: where a near protein pair holds two cells of different labelled
    classes (or a far one two of the same), the labels win instead of failing the call."""
    rng = np.random.default_rng(0)
    n = 200
    protein = rng.normal(0, 1, (n, 2))  # proteins that say nothing of the classes
    labels = np.where(rng.random(n) < 0.5, np.array(["a", "b"])[rng.integers(0, 2, n)], None)
    from_labels = pairs_from_labels(labels, 2000, rng)
    from_protein = pairs_from_protein(protein, 2000, rng)
    with pytest.raises(ValueError, match="both must-link and cannot-link"):
        (from_labels + from_protein).check(n)
    kept = from_protein.without_contradicting(from_labels, n)
    (from_labels + kept).check(n)
    assert 0 < len(from_protein) - len(kept) < len(from_protein)


def test_initial_clustering_subsamples_large_data(monkeypatch):
    from scdeepclust.train import _centroids

    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [6.0, 0.0], [0.0, 6.0]])
    truth = rng.integers(0, 3, 3000)
    z = (centres[truth] + rng.normal(0, 0.5, (3000, 2))).astype(np.float32)
    monkeypatch.setattr(_centroids, "KMEANS_MAX_CELLS", 500)
    monkeypatch.setattr(_centroids, "LEIDEN_MAX_CELLS", 500)
    from sklearn.metrics import adjusted_rand_score

    km = _centroids.kmeans_labels(z, 3, random_state=0)
    assert adjusted_rand_score(truth, km) > 0.95
    ld = _centroids.leiden_labels(z, resolution=0.1, n_neighbors=15, random_state=0)
    assert len(ld) == 3000 and adjusted_rand_score(truth, ld) > 0.9


def test_known_classes_place_the_first_centroids():
    from scdeepclust.train import _centroids

    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [8.0, 0.0], [0.0, 8.0]])
    truth = rng.integers(0, 3, 900)
    z = (centres[truth] + rng.normal(0, 0.5, (900, 2))).astype(np.float32)
    seeds = np.full(900, -1)
    labelled = np.flatnonzero(truth < 2)[:40]  # classes 0 and 1 known, class 2 not
    seeds[labelled] = truth[labelled]

    initial = _centroids.initial_centroids(
        z, n_clusters=3, resolution=1.0, n_neighbors=15, random_state=0, seed_labels=seeds
    )
    centroids, labels = initial.centroids, initial.labels
    assert initial.method == "known class means"
    for code in (0, 1):  # centroid i sits at the labelled cells of class i, not refitted
        np.testing.assert_allclose(
            centroids[code], z[labelled][truth[labelled] == code].mean(0), atol=1e-5
        )
    # The extra centroid is the free k-means centre farthest from the known classes.
    np.testing.assert_allclose(centroids[2], [0.0, 8.0], atol=0.2)
    assert np.array_equal(labels, truth)

    too_many = np.where(seeds >= 0, seeds, -1)
    with pytest.warns(UserWarning, match="more than n_clusters=1") as caught:
        _centroids.initial_centroids(
            z, n_clusters=1, resolution=1.0, n_neighbors=15, random_state=0, seed_labels=too_many
        )
    assert caught[0].filename == __file__  # the caller's line (it named one in the package)


_CONSTRAINED_RUN = """
import hashlib, sys
import numpy as np, torch
import scdeepclust as sdc
torch.set_num_threads(2)
sim = sdc.datasets.simulate(1000, 100, 4, random_state=0)
pairs = np.random.default_rng(0).integers(0, 1000, (40000, 2))
pairs = pairs[pairs[:, 0] != pairs[:, 1]]
out = sdc.tl.scdcc(sim, 16, must_link=pairs, pretrain_epochs=1, max_epochs=2, tol=0,
                   batch_size=64, progress=False, copy=True)
sys.stdout.write(hashlib.md5(out.obsm["X_scdcc"].tobytes()).hexdigest())
"""


def test_constrained_runs_are_identical_in_separate_processes():
    """Repeated cells in a step's pairs once made the gradient's sum order depend on thread
    timing: the same call gave different embeddings in two processes."""
    import subprocess
    import sys

    digests = {
        subprocess.run(
            [sys.executable, "-c", _CONSTRAINED_RUN], capture_output=True, text=True, check=True
        ).stdout
        for _ in range(3)
    }
    assert len(digests) == 1, digests


def test_ordered_gradient_rows_match_index_select_bit_for_bit():
    """The CPU path of the GPU-safe gather is index_select's own: constrained CPU results are
    unchanged by it."""
    from scdeepclust.constraints import rows_with_ordered_gradient

    g = torch.Generator().manual_seed(0)
    source = torch.randn(50, 7, generator=g, requires_grad=True)
    index = torch.randint(0, 50, (400,), generator=g)  # most rows repeated many times
    weights = torch.randn(400, 7, generator=g)
    ours = torch.autograd.grad((rows_with_ordered_gradient(source, index) * weights).sum(), source)
    torch_own = torch.autograd.grad((source.index_select(0, index) * weights).sum(), source)
    assert torch.equal(ours[0], torch_own[0])
    assert torch.equal(rows_with_ordered_gradient(source, index), source.index_select(0, index))


def test_a_term_of_some_steps_is_recorded_as_its_mean_over_those_steps():
    # pairs spread over an epoch's steps leave steps without them: the recorded term was
    # divided by every step's cells and shrank with the number of steps
    from scdeepclust.data import CellFeeder, RowSource
    from scdeepclust.train._loops import _accumulate, _epoch_means

    feeder = CellFeeder(RowSource(np.zeros((4, 1), np.float32)), device=torch.device("cpu"))
    sums, cells = {}, {}
    steps = [
        ({"clustering": 1.0, "must_link": 2.0}, 10),
        ({"clustering": 3.0}, 10),
        ({"clustering": 5.0, "must_link": 4.0}, 30),
        ({"clustering": 7.0}, 50),
    ]
    for values, n in steps:
        _accumulate(sums, cells, {k: torch.tensor(v) for k, v in values.items()}, n)
    means = _epoch_means(sums, cells, feeder)
    assert means["clustering"] == pytest.approx((10 + 30 + 150 + 350) / 100)
    assert means["must_link"] == pytest.approx((20 + 120) / 40)


def test_the_recorded_pairwise_term_does_not_shrink_with_the_steps():
    import scdeepclust as sdc
    from scdeepclust.nn import must_link_loss

    adata = sdc.datasets.simulate(300, 120, 3, random_state=0)
    group = adata.obs["group"].to_numpy()
    first = np.flatnonzero(group == group[0])
    pairs = np.array([[first[0], first[1]], [first[2], first[3]]])
    fast = dict(pretrain_epochs=2, max_epochs=1, refine=0, progress=False)
    for batch_size in (300, 32):  # one step an epoch, and ten of which two have the pairs
        out = sdc.tl.scdcc(adata, 3, must_link=pairs, batch_size=batch_size, copy=True, **fast)
        q = torch.from_numpy(np.asarray(out.obsm["scdcc_probs"], np.float64))
        on_the_result = float(must_link_loss(q[pairs[:, 0]], q[pairs[:, 1]]))
        recorded = out.uns["scdcc"]["history"]["cluster_must_link"][-1]
        assert recorded == pytest.approx(on_the_result, rel=0.25), batch_size


def _build(adata, **kw):
    from scdeepclust.tl._scdcc import _build_constraints

    args = dict(label_key=None, must_link=None, cannot_link=None, protein_key=None, n_pairs=None)
    args.update(kw)
    return _build_constraints(adata, **args, rng=np.random.default_rng(0))


def _contradicting(constraints, codes):
    must, cannot = constraints.must_link, constraints.cannot_link
    known_must = (codes[must] >= 0).all(1)
    known_cannot = (codes[cannot] >= 0).all(1)
    return (
        int((known_must & (codes[must[:, 0]] != codes[must[:, 1]])).sum()),
        int((known_cannot & (codes[cannot[:, 0]] == codes[cannot[:, 1]])).sum()),
    )


def test_protein_pairs_never_contradict_the_labels_nor_the_given_pairs():
    # They were checked against the label pairs drawn, not the labels: with more labelled
    # cells than the draw covers, 78 must-links across classes and 134 cannot-links within
    # one stayed in (2,000 cells, half labelled, proteins that say nothing of the classes)
    import anndata as ad

    rng = np.random.default_rng(1)
    n = 2000
    labels = pd.Series(np.array(["a", "b", "c"])[rng.integers(0, 3, n)], dtype=object)
    labels[::2] = None
    adata = ad.AnnData(
        obs=pd.DataFrame({"known": labels.to_numpy()}, index=[f"c{i}" for i in range(n)])
    )
    adata.obsm["prot"] = rng.normal(size=(n, 5))
    built = _build(adata, label_key="known", protein_key="prot")
    codes = pd.Categorical(labels.astype(str).where(labels.notna())).codes.astype(np.int64)
    assert _contradicting(built, codes) == (0, 0)
    protein_only = _build(adata, protein_key="prot")
    assert min(_contradicting(protein_only, codes)) > 0  # so the labels had something to undo
    # each unordered pair once
    for pairs in (built.must_link, built.cannot_link):
        assert len(np.unique(np.sort(pairs, axis=1), axis=0)) == len(pairs)
    # a given pair outweighs the proteins' draw, whatever the seed
    far = protein_only.cannot_link[0]
    with_given = _build(adata, protein_key="prot", must_link=[far])
    keys = {tuple(sorted(p)) for p in with_given.cannot_link.tolist()}
    assert tuple(sorted(far.tolist())) not in keys
    assert tuple(sorted(far.tolist())) in {tuple(sorted(p)) for p in with_given.must_link.tolist()}


def test_given_pairs_that_contradict_the_labels_are_refused_whatever_the_draw():
    import anndata as ad

    labels = np.array(["a", "a", "b", None] * 25, dtype=object)
    adata = ad.AnnData(obs=pd.DataFrame({"known": labels}, index=[f"c{i}" for i in range(100)]))
    for n_pairs in (5, 4000):  # the draw held the pair, or not
        with pytest.raises(
            ValueError,
            match=r"1 pair\(s\) of cannot_link contradict obs\['known'\], e.g. cells 'c0' "
            r"and 'c1' .* labelled 'a' and 'a'",
        ):
            _build(adata, label_key="known", cannot_link=[[0, 1]], n_pairs=n_pairs)
        with pytest.raises(ValueError, match=r"of must_link contradict .* labelled 'a' and 'b'"):
            _build(adata, label_key="known", must_link=[[0, 2]], n_pairs=n_pairs)
    # pairs with an unlabelled cell say something the labels do not
    built = _build(adata, label_key="known", must_link=[[0, 3]], cannot_link=[[2, 3]])
    assert [0, 3] in built.must_link.tolist() and [2, 3] in built.cannot_link.tolist()


def test_missing_protein_levels_of_a_nullable_column_are_named_as_missing():
    import anndata as ad

    adata = ad.AnnData(obs=pd.DataFrame(index=[f"c{i}" for i in range(50)]))
    levels = pd.DataFrame(
        {"CD3": pd.array([1, 2] * 25, dtype="Int64"), "CD4": np.linspace(0, 1, 50)},
        index=adata.obs_names,
    )
    levels.iloc[3, 0] = pd.NA
    adata.obsm["prot"] = levels
    with pytest.raises(ValueError, match=r"1 NaN or infinite values"):
        _build(adata, protein_key="prot")


def test_check_refuses_positions_just_outside_the_cells():
    # -1 would silently index the last cell; n_obs is one past the last
    empty = np.empty((0, 2), int)
    for bad in ([[-1, 2]], [[0, 5]]):
        with pytest.raises(ValueError, match=r"outside 0\.\.4"):
            PairwiseConstraints(np.array(bad), empty).check(5)
        with pytest.raises(ValueError, match=r"cannot_link has cell indices outside"):
            PairwiseConstraints(empty, np.array(bad)).check(5)
    PairwiseConstraints(np.array([[0, 4]]), np.array([[4, 1]])).check(5)  # the edges are fine


def test_labels_need_two_labelled_cells():
    with pytest.raises(ValueError, match="fewer than 2 cells with a known label"):
        pairs_from_labels(pd.Series(["a", None, None]), 5, np.random.default_rng(0))


def test_protein_levels_alike_in_every_cell_are_refused():
    protein = np.ones((60, 3))
    with pytest.raises(ValueError, match="do not tell cells apart"):
        pairs_from_protein(protein, 20, np.random.default_rng(0))


def test_protein_pairs_at_exactly_the_quantiles_are_kept():
    # a marker on or off: pair distances are 0 or 1, and the quantiles are those very values
    on = np.repeat([0.0, 1.0], 30)[:, None]
    c = pairs_from_protein(on, 20, np.random.default_rng(0))
    assert len(c.must_link) == 20 and len(c.cannot_link) == 20
    assert np.all(on[c.must_link[:, 0]] == on[c.must_link[:, 1]])
    assert np.all(on[c.cannot_link[:, 0]] != on[c.cannot_link[:, 1]])


def test_protein_pairs_drawn_in_two_batches_are_distinct(monkeypatch):
    import scdeepclust.constraints as constraints

    protein = np.random.default_rng(0).normal(size=(100, 3)).astype(np.float32)  # 4,950 pairs
    monkeypatch.setattr(constraints, "PROTEIN_PAIRS_AT_ONCE", 2500)  # 5,000: two batches
    c = pairs_from_protein(protein, 100, np.random.default_rng(1))
    for pairs in (c.must_link, c.cannot_link):
        assert len(pairs) > 0
        assert len({tuple(sorted(p)) for p in pairs.tolist()}) == len(pairs)
    # the second batch's near pairs count too: 0.5% of 20,000 pairs, not of the first 10,000
    many = np.random.default_rng(0).normal(size=(3000, 4)).astype(np.float32)
    monkeypatch.setattr(constraints, "PROTEIN_PAIRS_AT_ONCE", 10_000)
    c = pairs_from_protein(many, 400, np.random.default_rng(1))
    assert 75 <= len(c.must_link) <= 140 and len(c.cannot_link) == 400


def test_distinct_keeps_the_first_of_each_pair_in_order():
    empty = np.empty((0, 2), np.int64)
    for pairs, kept in (
        ([[0, 1], [2, 3], [1, 0]], [[0, 1], [2, 3]]),
        ([[2, 3], [0, 1], [3, 2], [1, 0]], [[2, 3], [0, 1]]),
    ):
        got = PairwiseConstraints(np.array(pairs), empty).distinct(5)
        np.testing.assert_array_equal(got.must_link, kept)
        np.testing.assert_array_equal(
            PairwiseConstraints(empty, np.array(pairs)).distinct(5).cannot_link, kept
        )


def test_user_pairs_of_another_shape_or_mixed_values_are_refused():
    names = pd.Index(["x", "y", "z"])
    for pairs in ([0, 1], np.zeros((2, 1, 2), int)):
        with pytest.raises(ValueError, match=r"must have shape \(n, 2\)"):
            pairs_from_user(pairs, names, "ml")
    with pytest.raises(ValueError, match=r"ml must hold cell positions \(whole numbers\)"):
        pairs_from_user(np.array([["x", 1]], dtype=object), names, "ml")


def test_user_pairs_of_duplicate_names_bools_or_infinities_are_refused():
    with pytest.raises(ValueError, match="obs_names are not unique"):
        pairs_from_user([["x", "y"]], pd.Index(["x", "y", "x"]), "ml")
    names = pd.Index(["x", "y", "z"])
    for pairs in (np.array([[True, 1]], dtype=object), np.array([[0.0, np.inf]])):
        with pytest.raises(ValueError, match=r"ml must hold cell positions \(whole numbers\)"):
            pairs_from_user(pairs, names, "ml")


def _loss_parts():
    from scdeepclust.data import CellFeeder, RowSource
    from scdeepclust.nn import ClusteringLayer

    x = np.random.default_rng(0).normal(size=(6, 2)).astype(np.float32)
    feeder = CellFeeder(RowSource(x), device=torch.device("cpu"))
    layer = ClusteringLayer(torch.tensor([[0.0, 0.0], [1.0, 1.0], [-1.0, 1.0]]))
    return feeder, (lambda batch: batch.x), layer


def _pair_terms(pairs, ml_weight, cl_weight):
    """The terms of one training step of the pair loss on `_loss_parts`."""
    from scdeepclust.constraints import PairLoss

    feeder, embed, layer = _loss_parts()
    loss = PairLoss(
        pairs,
        feeder,
        embed,
        layer,
        steps_per_epoch=1,
        ml_weight=ml_weight,
        cl_weight=cl_weight,
        rng=np.random.default_rng(0),
    )
    return loss(0)


def test_pairs_and_classes_at_weight_zero_give_no_term():
    from scdeepclust.constraints import KnownClassLoss

    feeder, embed, layer = _loss_parts()
    pairs = PairwiseConstraints(np.array([[0, 1]]), np.array([[2, 3]]))
    for ml, cl, terms in ((0.0, 1.0, {"cannot_link"}), (1.0, 0.0, {"must_link"})):
        assert set(_pair_terms(pairs, ml, cl)) == terms
    classes = np.array([0, -1, -1, 0, -1, -1])  # class 0 is a class too
    for weight, terms in ((0.0, set()), (1.0, {"known_class"})):
        known = KnownClassLoss(
            classes,
            feeder,
            embed,
            layer,
            steps_per_epoch=1,
            weight=weight,
            rng=np.random.default_rng(0),
        )
        assert set(known(0)) == terms


def test_pair_terms_take_their_own_weights_and_a_new_order_each_epoch():
    from scdeepclust.constraints import KnownClassLoss, PairLoss

    feeder, embed, layer = _loss_parts()
    pairs = PairwiseConstraints(np.array([[0, 1], [4, 5]]), np.array([[2, 3]]))

    def terms(ml, cl):
        return {k: v.item() for k, v in _pair_terms(pairs, ml, cl).items()}

    one, other = terms(1.0, 1.0), terms(2.0, 3.0)
    assert other["must_link"] == pytest.approx(2 * one["must_link"])
    assert other["cannot_link"] == pytest.approx(3 * one["cannot_link"])
    # 30 pairs over 3 steps an epoch: each epoch shuffles them anew
    rng = np.random.default_rng(1)
    many = PairwiseConstraints(rng.integers(0, 3, (30, 2)), rng.integers(3, 6, (30, 2)))
    loss = PairLoss(
        many,
        feeder,
        embed,
        layer,
        steps_per_epoch=3,
        ml_weight=1.0,
        cl_weight=1.0,
        rng=np.random.default_rng(0),
    )
    epochs = [[loss(step)["must_link"].item() for step in range(e * 3, e * 3 + 3)] for e in (0, 1)]
    assert epochs[0] != epochs[1]
    classes = np.array([0, 1, 2, 0, 1, 2])
    known = KnownClassLoss(
        classes, feeder, embed, layer, steps_per_epoch=3, weight=1.0, rng=np.random.default_rng(0)
    )
    epochs = [[known(s)["known_class"].item() for s in range(e * 3, e * 3 + 3)] for e in (0, 1)]
    assert epochs[0] != epochs[1]


def test_a_contradiction_is_named_by_its_cells_in_order():
    with pytest.raises(ValueError, match=r"1 pair\(s\) .* e.g. cells 0 and 3\."):
        PairwiseConstraints(np.array([[0, 3]]), np.array([[3, 0]])).check(5)


def test_must_link_and_cannot_link_weights_are_not_swapped(sim, monkeypatch):
    # mutants S26 (tl -> config) and M13 (config -> PairLoss) swapped ml_weight and cl_weight
    import scdeepclust.models._scdcc as scdcc_model

    seen = record_keyword(monkeypatch, scdcc_model, "PairLoss", "ml_weight", "cl_weight")
    out = sdc.tl.scdcc(
        sim, 3, must_link=[[0, 1]], ml_weight=2.0, cl_weight=0.0, copy=True, **ONE_EPOCH
    )
    params = out.uns["scdcc"]["params"]
    assert (params["ml_weight"], params["cl_weight"]) == (2.0, 0.0)
    assert seen and set(seen) == {(2.0, 0.0)}
    # the must-links act (weight 2 > 0): prior knowledge, so no refinement and the stricter tol
    assert params["refine"] == 0.0 and params["tol"] == 0.001


def test_numbered_names_are_compared_with_positions_in_range_only():
    """Positions outside the cells (negative, or past the last) are not named by any cell:
    no warning from this check (nor an IndexError), whatever is refused later."""
    names = pd.Index(["0", "1", "2", "3"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for pairs in ([[-1, 0]], [[1, 10]]):
            try:
                pairs_from_user(pairs, names, "ml")
            except ValueError:  # refused later in words: fine, but no warning / IndexError
                pass


def test_a_name_of_zeros_only_is_the_number_zero():
    """'000' at position 0 names the cell position 0 names: no warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pairs_from_user([[0, 1]], pd.Index(["000", "001", "002", "99"]), "ml")


def test_negative_numbers_as_names_are_compared_too():
    """Names such as '-1', '0', '1', '2' are whole numbers, other than the positions."""
    with pytest.warns(UserWarning, match=r"position 0 is named '-1'"):
        pairs_from_user([[0, 1]], pd.Index(["-1", "0", "1", "2"]), "ml")


def test_only_the_cell_at_position_zero_differs():
    with pytest.warns(UserWarning, match=r"position 0 is named '5'"):
        pairs_from_user([[0, 1]], pd.Index(["5", "1", "2", "3"]), "ml")


def test_names_that_are_their_positions_are_not_warned_of_with_a_reordered_index():
    """The last call of test_whole_numbers_beside_names... ran inside pytest.warns, which
    never checks that it warns nothing."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pairs_from_user([[1, 2]], pd.Index(["3", "1", "2", "0"]), "ml")
