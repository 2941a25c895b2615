"""Clusters that end with no cells: what is written and what the user is told."""

import re
import warnings

import numpy as np
import pandas as pd
import pytest
import scanpy as sc
from anndata import AnnData, ImplicitModificationWarning

import scdeepclust as sdc
import scdeepclust._results as results
from _helpers import FAST, assert_unchanged, counts_data, snapshot
from scdeepclust._results import (
    ClusteringResult,
    check_result_keys,
    derived_entries,
    existing_keys,
    is_run_entry,
    run_environment,
    warn_if_results_replaced,
    write_results,
)
from scdeepclust.train import _dec as dec
from scdeepclust.train._centroids import InitialClustering
from scdeepclust.train._dec import _empty_clusters
from scdeepclust.train._refine import Refinement


def _result(labels: np.ndarray, n_clusters: int) -> ClusteringResult:
    rng = np.random.default_rng(0)
    probs = rng.random((len(labels), n_clusters)).astype(np.float32)
    probs[np.arange(len(labels)), labels] += n_clusters  # argmax is the label
    probs /= probs.sum(1, keepdims=True)
    return ClusteringResult(
        labels=labels,
        embedding=rng.normal(size=(len(labels), 4)).astype(np.float32),
        probabilities=probs,
        params={},
    )


def test_categories_are_the_populated_clusters(sim):
    labels = np.repeat([0, 2, 3], sim.n_obs // 3)
    write_results(sim, {"c": _result(labels, 4)})
    assert list(sim.obs["c"].cat.categories) == ["0", "2", "3"]
    np.testing.assert_array_equal(sim.obs["c"].to_numpy(), labels.astype(str))
    assert sim.obsm["c_probs"].shape[1] == 4  # a column per centroid, the empty one included
    assert sim.uns["c"]["n_clusters"] == 3
    # the scanpy steps after clustering run on the labels (an empty category breaks both)
    sc.pp.log1p(sim)
    sc.tl.rank_genes_groups(sim, "c")
    sc.tl.dendrogram(sim, "c", use_rep="X_c")
    assert set(sim.uns["rank_genes_groups"]["names"].dtype.names) == {"0", "2", "3"}


def test_options_not_given_are_absent_from_uns(sim):
    """A parameter left at None is left out, as in scanpy's own uns entries, at any depth."""
    sdc.tl.scdcc(sim, 3, **FAST)

    def nones(value, path):
        if isinstance(value, dict):
            return [p for k, v in value.items() for p in nones(v, f"{path}/{k}")]
        return [path] if value is None else []

    assert nones(sim.uns["scdcc"], "scdcc") == []
    assert "resolution" not in sim.uns["scdcc"]["params"]


def _refused_last_entry_for(monkeypatch, failing_key: str) -> None:
    """Make the last value written for `failing_key` one that anndata refuses (3 rows)."""
    entries = results._entries

    def with_a_refused_last(key, result):
        made = entries(key, result)
        if key == failing_key:
            made[-1] = ("obsm", f"{key}_never", np.zeros((3, 2)))
        return made

    monkeypatch.setattr(results, "_entries", with_a_refused_last)


def test_results_are_written_all_or_none(sim, monkeypatch):
    """Interrupted while writing, DESC with two resolutions left the first key's results and
    part of the second's; a key that held an earlier run's results lost them."""
    labels = np.repeat([0, 1, 2], sim.n_obs // 3)
    write_results(sim, {"a": _result(labels, 3)})  # an earlier run, overwritten below
    sim.obsm["a_probs"] = sim.obsm["a_probs"] * 0.5  # told from what the next run writes
    before = snapshot(sim)
    kept_uns = sim.uns["a"]
    _refused_last_entry_for(monkeypatch, "b")
    with pytest.raises(ValueError):
        write_results(sim, {"a": _result(labels[::-1], 3), "b": _result(labels, 3)})
    assert_unchanged(sim, before)
    np.testing.assert_array_equal(sim.obsm["a_probs"], before["obsm"]["a_probs"])
    assert sim.uns["a"] is kept_uns


def test_empty_clusters_warn_when_the_number_or_its_lower_bound_was_given():
    labels = np.array([0, 0, 2, 2])
    with pytest.warns(UserWarning, match=r"1 of the 3 clusters holds no cells .*cluster 1\)"):
        assert _empty_clusters(labels, 3, asked=3) == [1]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _empty_clusters(labels, 3, asked=None) == [1]  # Leiden's number: logged
        assert _empty_clusters(labels, 3, asked=(2, 5)) == [1]  # a searched number: logged
        assert _empty_clusters(np.array([0, 1, 2]), 3, asked=3) == []
    # a searched number that ends below the search's lower bound: a warning
    with pytest.warns(UserWarning, match=r"below the lower bound of n_clusters=\(3, 5\)"):
        assert _empty_clusters(labels, 3, asked=(3, 5)) == [1]
    with pytest.warns(UserWarning, match=r"Every cell is in one cluster"):  # Leiden's number
        assert _empty_clusters(np.array([2, 2, 2]), 3, asked=None) == [0, 1]
    # emptied by the refinement, not in training: the warning says so, and how to keep them
    with pytest.warns(
        UserWarning,
        match=r"\(clusters 1, 3\): the cells of 1 moved to other clusters during training; the "
        r"refinement \(`refine`; 0 keeps the stage's clusters\) moved the cells the clustering "
        r"stage left in cluster 3 to the clusters of their neighbours in the input, so",
    ):
        stage = np.array([0, 0, 2, 3])
        assert _empty_clusters(labels, 4, asked=4, stage_labels=stage) == [1, 3]
    with pytest.warns(
        UserWarning,
        match=r"\(clusters 1, 3\): the refinement .* left in them to the clusters of their "
        r"neighbours .* To keep them, pass refine=0.$",
    ):  # all of them the refinement's: no advice on `init`
        assert _empty_clusters(labels, 4, asked=4, stage_labels=np.array([0, 1, 2, 3])) == [1, 3]


@pytest.mark.parametrize("tool", ["desc", "scdcc"])
def test_tool_reports_a_cluster_emptied_in_training(sim, monkeypatch, tool):
    """A centroid placed far from every cell never wins one; the result says so."""
    original = dec.initial_centroids

    def one_far_centroid(z, *, n_clusters, **kwargs):
        start = original(z, n_clusters=n_clusters - 1, **kwargs)
        far = np.abs(z).max() + 100.0
        centroids = np.vstack([start.centroids, np.full((1, z.shape[1]), far, np.float32)])
        return InitialClustering(centroids, start.labels, start.method)

    monkeypatch.setattr(dec, "initial_centroids", one_far_centroid)
    if tool == "desc":
        sc.pp.normalize_total(sim)
        sc.pp.log1p(sim)
    with pytest.warns(UserWarning, match="1 of the 4 clusters holds no cells") as record:
        # the stage's own labels: at these few epochs the refinement may empty another cluster
        getattr(sdc.tl, tool)(sim, n_clusters=4, init="kmeans", refine=0, **FAST)
    # the warning points at the user's call
    assert [w.filename for w in record if "no cells" in str(w.message)] == [__file__]
    assert list(sim.uns[tool]["empty_clusters"]) == [3]
    assert sim.uns[tool]["n_clusters"] == 3
    assert list(sim.obs[tool].cat.categories) == ["0", "1", "2"]
    assert sim.obsm[f"{tool}_probs"].shape[1] == 4


@pytest.mark.parametrize("tool", ["desc", "scdcc"])
def test_tool_warns_when_the_clustering_stage_stops_at_max_epochs(sim, tool):
    """Labels still moving at the epoch cap are written, with a warning saying how many moved."""
    if tool == "desc":
        sc.pp.normalize_total(sim)
        sc.pp.log1p(sim)
    run = dict(FAST, max_epochs=2, update_interval=0.25, n_clusters=5, init="kmeans", refine=0)
    if tool == "desc":  # labels still moving at the last refresh (tol=0 warns only then)
        run["lr"] = 0.5
    with pytest.warns(UserWarning, match="stopped at max_epochs=2 without converging") as record:
        getattr(sdc.tl, tool)(sim, tol=0.0, **run)
    message = next(str(w.message) for w in record if "without converging" in str(w.message))
    history = sim.uns[tool]["history"]
    last = next(v for name, v in history.items() if name.endswith("_label_change"))[-1]
    assert f"{last:.1%} of the cells changed cluster" in message
    assert "fewer groups than 5 (give a smaller `n_clusters`)" in message
    assert [w.filename for w in record if "without converging" in str(w.message)] == [__file__]
    assert not sim.uns[tool]["converged"]
    assert sim.obs[tool].notna().all()  # the results are written all the same
    if tool == "scdcc":  # a resolution that only started Leiden's way to n_clusters is not named
        leiden = dict(run, init="leiden", resolution=2.0, key_added="leiden")
        with pytest.warns(UserWarning, match="The clustering stage stopped at") as record:
            sdc.tl.scdcc(sim, tol=0.0, **leiden)
        assert not any("at resolution" in str(w.message) for w in record)
    with warnings.catch_warnings():  # a stage that converges says nothing
        warnings.simplefilter("error", UserWarning)
        getattr(sdc.tl, tool)(sim, tol=1.0, key_added="settled", **run)
    assert sim.uns["settled"]["converged"]


def test_agreement_compares_labels_as_text_and_leaves_out_missing_ones():
    from sklearn.metrics import adjusted_rand_score

    from scdeepclust._metrics import agreement

    clusters = pd.Series([1, "1", 2, None, 2, 0, 0]).astype(object)
    truth = pd.Categorical(["a", "a", "b", "b", None, "c", "b"])
    got = agreement(clusters, truth)
    assert got.n_cells == 5  # the missing cluster and the missing label left out
    want = adjusted_rand_score(["a", "a", "b", "c", "b"], ["1", "1", "2", "0", "0"])
    assert got.ari == pytest.approx(want)
    assert agreement(np.array(["x", "y"]), ["p", "q"]).ari == 1.0
    with pytest.raises(ValueError, match="No cell has both"):
        agreement([None, 1], [2, None])
    with pytest.raises(ValueError, match="No cell has both"):  # no label at all
        agreement(["a", "b"], pd.Series([np.nan, np.nan]))
    # labels equal as numbers but not as text stay apart, as text
    assert agreement([1, 1.0, True], ["a", "b", "c"]).ari == 1.0


def test_a_failed_write_onto_a_view_puts_back_arrays_of_its_own(sim, monkeypatch):
    labels = np.repeat([0, 1, 2], sim.n_obs // 3)
    write_results(sim, {"a": _result(labels, 3)})
    view = sim[: sim.n_obs // 2]
    kept = np.array(view.obsm["a_probs"])
    _refused_last_entry_for(monkeypatch, "a")
    with pytest.warns(ImplicitModificationWarning), pytest.raises(ValueError):
        write_results(view, {"a": _result(labels[: view.n_obs], 3)})
    assert not view.is_view and type(view.obsm["a_probs"]) is np.ndarray
    np.testing.assert_array_equal(view.obsm["a_probs"], kept)
    assert "a_never" not in view.obsm


def test_results_keep_plain_types_in_uns_and_existing_keys_name_every_part(sim):
    """Lists and tuples are written as arrays and numpy scalars as Python's; a run's embedding
    and soft assignments alone are named as existing."""
    from scdeepclust._results import existing_keys

    labels = np.repeat([0, 1, 2], sim.n_obs // 3)
    result = _result(labels, 3)
    result.params = {"hidden": [8, 4], "shape": (2,), "rate": np.float32(0.5), "n": np.int64(3)}
    write_results(sim, {"c": result})
    params = sim.uns["c"]["params"]
    assert isinstance(params["hidden"], np.ndarray) and isinstance(params["shape"], np.ndarray)
    assert type(params["rate"]) is float and type(params["n"]) is int
    del sim.obs["c"], sim.obs["c_confidence"], sim.uns["c"]
    assert existing_keys(sim, "c") == ["obsm['X_c']", "obsm['c_probs']"]


def test_derived_entries_are_the_graph_and_umap_pl_umap_made_of_the_embedding():
    """The kNN graph of obsm['X_<key>'] (the graphs obsp holds) and the UMAP pl.umap marked are
    derived; a UMAP without pl.umap's mark is not, nor the embedding of a run "umap_<key>"."""
    from anndata import AnnData
    from scipy import sparse

    from scdeepclust._results import derived_entries

    adata = AnnData(np.zeros((4, 1), dtype=np.float32))
    adata.obsm["X_c"] = adata.obsm["X_umap_c"] = np.zeros((4, 2))
    adata.uns["neighbors_c"] = {
        "params": {"use_rep": "X_c"},
        "connectivities_key": "neighbors_c_connectivities",
        "distances_key": "neighbors_c_distances",  # not in obsp
    }
    adata.obsp["neighbors_c_connectivities"] = sparse.csr_matrix((4, 4))
    graph = [("uns", "neighbors_c"), ("obsp", "neighbors_c_connectivities")]
    adata.uns["X_umap_c"] = {"params": {}}  # the user's own
    assert derived_entries(adata, "c") == graph
    adata.uns["X_umap_c"] = {"params": {"scdeepclust_source": "0"}}
    adata.uns["umap_c"] = {"params": {}}  # no run without its labels
    umap = [("uns", "X_umap_c"), ("obsm", "X_umap_c")]
    assert derived_entries(adata, "c") == graph + umap
    adata.obs["umap_c"] = "0"  # a run under key "umap_c" keeps its embedding
    assert derived_entries(adata, "c") == graph + umap[:1]
    adata.uns["neighbors_c"]["params"]["use_rep"] = "X_pca"  # a graph of another representation
    assert derived_entries(adata, "c") == umap[:1]


def test_confidence_left_unset_is_the_soft_assignment_to_the_reported_cluster(sim):
    """Without a calibrated confidence, a cell's confidence is its soft assignment to the cluster
    it is reported in, also where another cluster's is larger."""
    labels = np.repeat([0, 1, 2], sim.n_obs // 3)
    result = _result(labels, 3)
    result.labels = (labels + 1) % 3  # none of them the largest soft assignment
    write_results(sim, {"c": result})
    expected = result.probabilities[np.arange(sim.n_obs), result.labels]
    np.testing.assert_array_equal(sim.obs["c_confidence"].to_numpy(), expected)


def test_a_numpy_integer_number_of_clusters_counts_as_given():
    with pytest.warns(UserWarning, match=r"1 of the 3 clusters holds no cells .*n_clusters`"):
        assert _empty_clusters(np.array([0, 0, 2, 2]), 3, asked=np.int64(3)) == [1]


def test_the_clustering_epochs_are_those_of_the_history(sim):
    out = sdc.tl.scdcc(sim, 3, copy=True, **FAST)
    uns = out.uns["scdcc"]
    assert uns["clustering_epochs"] == len(uns["history"]["cluster_clustering"]) > 0


def test_agreement_reads_categories_equal_as_text_as_one_label():
    from scdeepclust._metrics import agreement

    clusters = pd.Series(pd.Categorical([1, "1", 2, 2]))  # categories [1, 2, '1']
    got = agreement(clusters, ["a", "a", "b", "b"])
    assert got.ari == 1.0 and got.nmi == 1.0


def test_a_cluster_the_refinement_emptied_is_told_as_the_refinements(scaled, monkeypatch):
    """The refinement's empties are told from the stage's labels, not the reported ones."""

    def emptying(components, labels, probabilities, share, **kwargs):
        moved = labels.copy()
        present = np.unique(labels)
        moved[labels == present[-1]] = present[0]
        return Refinement(moved, None)

    monkeypatch.setattr(dec, "refined_clusters", emptying)
    with pytest.warns(UserWarning) as said:
        sdc.tl.desc(scaled, n_clusters=3, init="kmeans", refine=0.5, copy=True, **FAST)
    text = " ".join(str(w.message) for w in said)
    assert "the refinement (`refine`; 0 keeps the stage's clusters) moved the cells" in text
    assert "To keep them, pass refine=0." in text


@pytest.mark.parametrize("tool", ["desc", "scdcc"])
@pytest.mark.parametrize("key", ["spatial", "pca"])
def test_a_key_holding_another_tools_entries_is_refused_before_any_work(sim, tool, key):
    """key_added='spatial' replaced uns['spatial'] (a Visium section's images, which
    sc.pl.spatial reads) after the warning that every re-run of a notebook cell gives;
    key_added='pca' replaced the user's obsm['X_pca']."""
    sim.uns["spatial"] = {"section1": {"images": {"hires": np.zeros((4, 4, 3), np.float32)}}}
    sim.obsm["X_pca"] = np.ones((sim.n_obs, 5), np.float32)
    before = snapshot(sim)
    where = r"uns\['spatial'\]" if key == "spatial" else r"obsm\['X_pca'\]"
    with pytest.raises(ValueError, match=rf"would replace adata\.{where}, which no run"):
        getattr(sdc.tl, tool)(sim, n_clusters=3, key_added=key, **FAST)
    assert_unchanged(sim, before)
    assert list(sim.uns["spatial"]) == ["section1"]


def test_a_key_of_an_earlier_run_is_replaced_with_a_warning_only(sim):
    sdc.tl.desc(sim, n_clusters=3, key_added="spatial_run", **FAST)
    del sim.obs["spatial_run"]  # the entries written, less one, are still the run's
    with pytest.warns(UserWarning, match=r"already exist\(s\) and will be overwritten"):
        sdc.tl.desc(sim, n_clusters=3, key_added="spatial_run", **FAST)
    assert sim.uns["spatial_run"]["params"]["method"] == "desc"


def test_uns_records_the_versions_and_threads_a_run_depends_on(sim, tmp_path):
    """The embedding's last digits can move with torch's threads: a saved result said nothing
    of them, nor of the versions that computed it."""
    import anndata
    import torch

    sdc.tl.scdcc(sim, n_clusters=3, **FAST)
    environment = sim.uns["scdcc"]["environment"]
    assert environment["scdeepclust"] == sdc.__version__
    assert environment["torch"] == torch.__version__
    assert environment["anndata"] == anndata.__version__
    assert environment["torch_threads"] == torch.get_num_threads()
    # read after training: scanpy's and anndata's __version__ warn (deprecated), and a warning
    # turned into an error there lost the trained result
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert run_environment() == environment
    sim.write_h5ad(tmp_path / "run.h5ad")
    back = anndata.read_h5ad(tmp_path / "run.h5ad").uns["scdcc"]["environment"]
    assert {k: str(v) for k, v in back.items()} == {k: str(v) for k, v in environment.items()}


def test_the_empty_clusters_warning_lists_a_few_of_many():
    """Cells collapsed onto a point left 659 of 660 Leiden clusters empty: the warning listed
    each (3,613 characters)."""
    labels = np.zeros(660, dtype=np.int64)
    with pytest.warns(UserWarning) as caught:
        assert len(_empty_clusters(labels, 660, asked=660)) == 659
    (message,) = [str(w.message) for w in caught]
    assert "(clusters 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 and 649 more)" in message
    assert len(message) < 600


def test_an_earlier_runs_entries_without_its_uns_are_replaced_with_a_warning_only(sim):
    """anndata.concat's default drops uns, and a user may delete a large history: the run's
    labels beside its obsm entries still tell them apart from another tool's."""
    import anndata

    sdc.tl.desc(sim, n_clusters=3, **FAST)
    joined = anndata.concat([sim[:60], sim[60:]])
    assert "desc" not in joined.uns and "X_desc" in joined.obsm
    with pytest.warns(UserWarning, match=r"already exist\(s\) and will be overwritten"):
        sdc.tl.desc(joined, n_clusters=3, **FAST)
    # the first versions' params did not name the method
    sim.uns["desc"] = {"params": {"n_clusters": 3}, "history": {}}
    with pytest.warns(UserWarning, match=r"already exist\(s\) and will be overwritten"):
        sdc.tl.desc(sim, n_clusters=3, **FAST)


def test_the_refusal_of_another_tools_entries_deletes_them_all_in_one_line(sim):
    sim.obsm["X_pca"] = np.ones((sim.n_obs, 4), np.float32)
    sim.obsm["pca_probs"] = np.ones((sim.n_obs, 2), np.float32)
    sim.uns["pca"] = {"variance": np.ones(4)}
    with pytest.raises(ValueError, match="no run of scdeepclust wrote") as refused:
        sdc.tl.desc(sim, n_clusters=3, key_added="pca", **FAST)
    (line,) = re.findall(r"`(del adata[^`]+)`", str(refused.value))
    exec(line, {"adata": sim})
    assert not {"X_pca", "pca_probs"} & set(sim.obsm) and "pca" not in sim.uns
    with pytest.warns(UserWarning):  # refused no more
        sdc.tl.desc(sim, n_clusters=3, key_added="pca", **FAST)


def _plain_result(n_obs: int, n_clusters: int = 3) -> ClusteringResult:
    """`_result` of every cluster in turn, with settings and timings to write."""
    result = _result(np.arange(n_obs) % n_clusters, n_clusters)
    result.params = {"n_clusters": n_clusters}
    result.timings = {"pretraining": 1.5}
    return result


def test_existing_keys_name_all_five_parts_of_a_result():
    adata = counts_data()
    write_results(adata, {"c": _plain_result(adata.n_obs)})
    assert existing_keys(adata, "c") == [
        "obs['c']",
        "obs['c_confidence']",
        "obsm['X_c']",
        "obsm['c_probs']",
        "uns['c']",
    ]
    assert adata.uns["c"]["timings"] == {"pretraining": 1.5}
    del adata.obs["c"], adata.obsm["X_c"], adata.obsm["c_probs"]
    assert existing_keys(adata, "c") == ["obs['c_confidence']", "uns['c']"]


@pytest.mark.parametrize(
    "inputs, where",
    [
        (
            dict(label_key="c_confidence"),
            r"adata.obs\['c_confidence'\], which this run reads as label_key",
        ),
        (dict(batch_key="c"), r"adata.obs\['c'\], which this run reads as batch_key"),
        (dict(use_rep="c_probs"), r"adata.obsm\['c_probs'\], which this run reads as use_rep"),
        (dict(protein_key="X_c"), r"adata.obsm\['X_c'\], which this run reads as protein_key"),
    ],
)
def test_every_key_a_run_writes_is_refused_as_one_of_its_inputs(inputs, where):
    adata = counts_data()
    with pytest.raises(ValueError, match=rf"key_added 'c' would write over {where}"):
        check_result_keys(adata, ["c"], **inputs)
    check_result_keys(adata, ["d"], **inputs)  # another key writes elsewhere


def test_a_copy_says_nothing_of_the_results_it_leaves_in_place():
    adata = counts_data()
    write_results(adata, {"c": _plain_result(adata.n_obs)})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_if_results_replaced(adata, ["c"], copy=True)
        warn_if_results_replaced(adata, ["d"], copy=False)
    with pytest.warns(UserWarning, match=r"adata.obs\['c'\], obs\['c_confidence'\], "):
        warn_if_results_replaced(adata, ["c"], copy=False)


def test_results_interrupted_while_written_are_all_put_back(monkeypatch):
    """A KeyboardInterrupt (not an Exception) while the values are assigned also puts back what
    was there."""

    class Interrupting:
        shape = property(lambda self: (_ for _ in ()).throw(KeyboardInterrupt()))

    adata = counts_data()
    write_results(adata, {"c": _plain_result(adata.n_obs)})
    adata.obsm["c_probs"] = adata.obsm["c_probs"] * 0.5
    before = snapshot(adata)
    kept = adata.obsm["c_probs"].copy()
    entries = results._entries

    def interrupted_last(key, result):
        return [*entries(key, result), ("obsm", f"{key}_never", Interrupting())]

    monkeypatch.setattr(results, "_entries", interrupted_last)
    with pytest.raises(KeyboardInterrupt):
        write_results(adata, {"c": _plain_result(adata.n_obs, 4)})
    assert_unchanged(adata, before)
    np.testing.assert_array_equal(adata.obsm["c_probs"], kept)


def test_a_column_named_like_a_run_without_its_uns_entry_keeps_the_umap_derived():
    """obs['umap_c'] alone is a column of the user's, not a run under key "umap_c": pl.umap's
    coordinates obsm['X_umap_c'] of run "c" are still derived from it."""

    adata = AnnData(np.zeros((4, 1), dtype=np.float32))
    adata.obsm["X_c"] = adata.obsm["X_umap_c"] = np.zeros((4, 2))
    adata.uns["X_umap_c"] = {"params": {"scdeepclust_source": "0"}}
    adata.obs["umap_c"] = "0"
    adata.uns["umap_c"] = "a note"  # not a run's entry
    assert derived_entries(adata, "c") == [("uns", "X_umap_c"), ("obsm", "X_umap_c")]


def test_no_overwrite_warning_names_nothing_where_only_derived_entries_are_left():
    """The run's own keys deleted, pl.umap's UMAP of its embedding left: there is no earlier
    result to name, and no "adata. already exist(s)" naming nothing."""
    adata = counts_data()
    write_results(adata, {"c": _plain_result(adata.n_obs)})
    adata.uns["X_umap_c"] = {"params": {"scdeepclust_source": "0"}}
    adata.obsm["X_umap_c"] = np.zeros((adata.n_obs, 2))
    for part, name in [
        ("obs", "c"),
        ("obs", "c_confidence"),
        ("obsm", "X_c"),
        ("obsm", "c_probs"),
        ("uns", "c"),
    ]:
        del getattr(adata, part)[name]
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        warn_if_results_replaced(adata, ["c"], copy=False)
    assert not [w for w in said if "already exist" in str(w.message)]


def test_a_calibrated_confidence_is_written_as_it_is():
    adata = counts_data()
    result = _plain_result(adata.n_obs)
    result.confidence = np.linspace(0, 1, adata.n_obs, dtype=np.float32)
    write_results(adata, {"c": result})
    np.testing.assert_array_equal(adata.obs["c_confidence"].to_numpy(), result.confidence)


def test_an_annotation_column_under_the_key_is_refused(sim):
    """key_added='group' replaced the labels a benchmark scores against, with the warning
    that every re-run gives; an earlier run's labels are still replaced."""
    before = snapshot(sim)
    with pytest.raises(ValueError, match=r"would replace adata\.obs\['group'\], which no run"):
        sdc.tl.desc(sim, n_clusters=3, key_added="group", **FAST)
    assert_unchanged(sim, before)
    sim.obs["group_confidence"] = 1.0
    with pytest.raises(ValueError, match=r"adata\.obs\['group_confidence'\]`"):
        sdc.tl.scdcc(sim, n_clusters=3, key_added="group", **FAST)


def test_a_plain_value_under_the_key_is_another_tools_entry():
    """uns[key] that is no mapping (a note, an array) is nobody's run: refused, not replaced."""
    adata = counts_data()
    adata.uns["note"] = "the donor's consent form, version 2"
    assert not is_run_entry(adata.uns["note"])
    with pytest.raises(ValueError, match=r"would replace adata\.uns\['note'\], which no run"):
        check_result_keys(adata, ["note"])


def test_the_refusal_names_every_entry_of_another_tool_in_its_first_line():
    adata = counts_data()
    adata.uns["pca"] = {"variance": np.ones(4)}
    adata.obsm["X_pca"] = np.ones((adata.n_obs, 4), np.float32)
    adata.obsm["pca_probs"] = np.ones((adata.n_obs, 2), np.float32)
    with pytest.raises(ValueError) as refused:
        check_result_keys(adata, ["pca"])
    assert str(refused.value).startswith(
        "key_added 'pca' would replace adata.uns['pca'], adata.obsm['X_pca'], "
        "adata.obsm['pca_probs'], which no run of scdeepclust wrote"
    )


def test_a_layout_pl_umap_keeps_is_no_other_tools_entry_but_scanpys_umap_is():
    """key_added='umap_c' writes obsm['X_umap_c'], where pl.umap keeps the layout of run 'c'
    (its uns entry names the source): not refused. sc.tl.umap(key_added='X_umap_c') writes an
    uns entry of params too, but without the source: that is another tool's layout."""
    adata = counts_data()
    adata.obsm["X_umap_c"] = np.zeros((adata.n_obs, 2), np.float32)
    adata.uns["X_umap_c"] = {"params": {"scdeepclust_source": "0"}}
    check_result_keys(adata, ["umap_c"])
    adata.uns["X_umap_c"] = {"params": {"a": 0.583, "b": 1.334}}
    with pytest.raises(ValueError, match=r"would replace adata\.obsm\['X_umap_c'\], which no"):
        check_result_keys(adata, ["umap_c"])


def test_an_earlier_runs_labels_alone_tell_its_obsm_entries_from_another_tools():
    """The run's uns entry and confidence column deleted: its labels still name the run."""
    adata = AnnData(np.zeros((30, 2), np.float32))
    write_results(adata, {"c": _plain_result(30)})
    del adata.uns["c"], adata.obs["c_confidence"]
    check_result_keys(adata, ["c"])


def test_the_environment_names_each_package_by_its_own_version():
    import platform
    from importlib.metadata import version

    import torch

    environment = run_environment()
    assert environment == {
        "scdeepclust": sdc.__version__,
        "torch": str(torch.__version__),
        "scanpy": version("scanpy"),
        "anndata": version("anndata"),
        "numpy": np.__version__,
        "python": platform.python_version(),
        "torch_threads": torch.get_num_threads(),
    }
    assert type(environment["torch"]) is str  # not torch's TorchVersion


def test_the_environment_of_a_package_without_metadata_is_unknown(monkeypatch):
    import importlib.metadata as metadata

    found = metadata.version

    def version(name):
        if name == "scanpy":
            raise metadata.PackageNotFoundError(name)
        return found(name)

    monkeypatch.setattr(metadata, "version", version)
    assert run_environment()["scanpy"] == "unknown"


def test_ten_empty_clusters_are_listed_without_a_count_of_more():

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _empty_clusters(np.zeros(50, dtype=np.int64), 11, asked=11)
    (message,) = [str(w.message) for w in caught]
    assert "(clusters 1, 2, 3, 4, 5, 6, 7, 8, 9, 10):" in message and "more" not in message


def test_each_list_of_the_empty_clusters_warning_is_cut_at_ten():

    ten = lambda first: ", ".join(str(first + i) for i in range(10))  # noqa: E731
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _empty_clusters(
            np.zeros(50, dtype=np.int64),
            41,
            asked=41,
            stage_labels=np.arange(25),
            merged=list(range(1, 13)),
            min_cells=5,
        )
    (message,) = [str(w.message) for w in caught]
    assert f"(clusters {ten(1)} and 30 more)" in message
    assert f"the cells of {ten(25)} and 6 more moved" in message  # trained
    assert f"clusters {ten(1)} and 2 more held fewer than 5 cells" in message  # merged
    assert f"left in clusters {ten(13)} and 2 more to the clusters" in message  # refined
