import re
import warnings

import matplotlib

matplotlib.use("Agg")

import anndata as ad  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import scanpy as sc  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

import scdeepclust as sdc  # noqa: E402
from scdeepclust.pl._compare import diagonal_order  # noqa: E402

TINY = dict(pretrain_epochs=3, max_epochs=3, progress=False, batch_size=64)


@pytest.fixture(scope="module")
def clustered():
    """Both methods' results on one small simulated AnnData (DESC reads a scaled layer)."""
    adata = sdc.datasets.simulate(
        n_cells=240, n_genes=120, n_groups=3, de_fraction=0.3, de_log_fold=2.0, random_state=1
    )
    sdc.tl.scdcc(adata, 3, **TINY)
    scaled = sc.pp.normalize_total(adata, target_sum=1e4, inplace=False)["X"]
    scaled = sc.pp.log1p(scaled.toarray())
    adata.layers["scaled"] = sc.pp.scale(scaled)
    sdc.tl.desc(adata, layer="scaled", n_clusters=3, **TINY)
    return adata


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture
def figdir(tmp_path):
    before = sc.settings.figdir
    sc.settings.figdir = tmp_path
    yield tmp_path
    sc.settings.figdir = before


def test_umap_is_cached_under_its_own_keys(clustered, tmp_path, monkeypatch):
    adata = clustered.copy()
    user_umap = np.zeros((adata.n_obs, 2), dtype=np.float32)
    adata.obsm["X_umap"] = user_umap
    users_neighbors = {"params": {"n_neighbors": 5, "method": "umap"}, "mine": 1}
    adata.uns["neighbors"] = users_neighbors
    axes = sdc.pl.umap(adata, "scdcc", color=["group", "scdcc_confidence"], show=False)
    assert isinstance(axes, list) and len(axes) == 3
    assert [ax.get_title() for ax in axes] == ["scdcc", "group", "scdcc_confidence"]
    assert axes[0].get_xlabel() == "UMAP1"
    assert adata.obsm["X_umap_scdcc"].shape == (adata.n_obs, 2)
    assert "neighbors_scdcc" in adata.uns and "neighbors_scdcc_connectivities" in adata.obsp
    assert adata.obsm["X_umap"] is user_umap and adata.uns["neighbors"] == users_neighbors

    # a second call reuses the stored UMAP, also after an .h5ad round trip
    path = tmp_path / "cached.h5ad"
    adata.write_h5ad(path)
    back = sc.read_h5ad(path)

    def no_recompute(*args, **kwargs):
        raise AssertionError("the cached UMAP should have been reused")

    monkeypatch.setattr(sc.tl, "umap", no_recompute)
    ax = sdc.pl.umap(back, "scdcc", show=False)
    assert isinstance(ax, Axes)
    # changed coordinates (another run written under key_added="umap_scdcc") are noticed
    other = back.copy()
    other.obsm["X_umap_scdcc"] = np.zeros((other.n_obs, 32), np.float32)
    with pytest.raises(AssertionError, match="cached UMAP"):
        sdc.pl.umap(other, "scdcc", show=False)
    # other settings are another UMAP
    for setting in ({"min_dist": 0.1}, {"n_neighbors": 7}, {"random_state": 3}):
        with pytest.raises(AssertionError, match="cached UMAP"):
            sdc.pl.umap(back, "scdcc", show=False, **setting)
    # a changed embedding (e.g. a new run of the tool) is noticed
    back.obsm["X_scdcc"] = back.obsm["X_scdcc"] + 1.0
    with pytest.raises(AssertionError, match="cached UMAP"):
        sdc.pl.umap(back, "scdcc", show=False)
    # a run named "umap_scdcc" holds the cache's keys: refused, not overwritten
    clash = adata.copy()
    clash.obs["umap_scdcc"] = clash.obs["scdcc"]
    clash.uns["umap_scdcc"] = dict(clash.uns["scdcc"])
    clash.obsm["X_umap_scdcc"] = clash.obsm["X_scdcc"].copy()
    with pytest.raises(ValueError, match=r"The run 'umap_scdcc' holds the keys where pl.umap"):
        sdc.pl.umap(clash, "scdcc", show=False)
    np.testing.assert_array_equal(clash.obsm["X_umap_scdcc"], clash.obsm["X_scdcc"])
    # nor a run named "X_umap_scdcc": scanpy's umap replaced its uns entry whole
    named = adata.copy()
    for key in ("X_umap_scdcc", "X_umap_scdcc_confidence"):
        named.obs[key] = named.obs["scdcc" + key[len("X_umap_scdcc") :]]
    named.uns["X_umap_scdcc"] = dict(named.uns["scdcc"])
    named.obsm["X_X_umap_scdcc"] = named.obsm["X_scdcc"].copy()
    named.obsm["X_umap_scdcc_probs"] = named.obsm["scdcc_probs"].copy()
    with pytest.raises(ValueError, match=r"The run 'X_umap_scdcc' holds the keys"):
        sdc.pl.umap(named, "scdcc", show=False)
    assert "history" in named.uns["X_umap_scdcc"]
    with pytest.raises(ValueError, match="A UMAP needs at least 4 cells; adata has 3"):
        sdc.pl.umap(adata[:3].copy(), "scdcc", show=False)


def test_umap_of_many_cells_uses_approximate_neighbours(clustered, monkeypatch):
    # The exact search grows with the square of the cells (a million: about half an hour);
    # scanpy 1.11's own pynndescent path fails on scipy >= 1.17's sparse arrays.
    import scdeepclust._neighbors as neighbors

    monkeypatch.setattr(neighbors, "EXACT_PLOT_NEIGHBORS_MAX_CELLS", 100)  # 240 cells here
    monkeypatch.setattr(neighbors, "exact_neighbors", None)  # not called
    first, again = clustered.copy(), clustered.copy()
    sdc.pl.umap(first, "scdcc", show=False)
    sdc.pl.umap(again, "scdcc", show=False)
    graph = first.obsp["neighbors_scdcc_distances"]
    assert graph.shape == (240, 240) and np.all(np.diff(graph.indptr) >= 14)  # self kept: 16
    np.testing.assert_array_equal(first.obsm["X_umap_scdcc"], again.obsm["X_umap_scdcc"])
    # the neighbours are (nearly all) the exact ones on this small, well-separated data
    z = first.obsm["X_scdcc"]
    d = ((z[:, None, :] - z[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    nearest = np.argsort(d, axis=1)[:, :14]
    found = np.split(graph.indices, graph.indptr[1:-1])
    recall = np.mean([len(np.intersect1d(f, t)) / 14 for f, t in zip(found, nearest, strict=True)])
    assert recall > 0.9


def test_umap_ax_and_saving_through_the_figure(clustered, tmp_path, figdir):
    adata = clustered.copy()
    fig, ax = plt.subplots()
    returned = sdc.pl.umap(adata, "desc", ax=ax, show=False)
    assert returned is ax
    assert not list(figdir.iterdir())  # nothing saved unasked
    returned.figure.savefig(tmp_path / "u.png")
    assert (tmp_path / "u.png").stat().st_size > 0


PLOTS = {
    "umap": (lambda a, **kw: sdc.pl.umap(a, "desc", **kw), "umap_desc"),
    "embedding": (lambda a, **kw: sdc.pl.embedding(a, "desc", **kw), "X_desc"),
    "probabilities": (
        lambda a, **kw: sdc.pl.probabilities(a, "scdcc", **kw),
        "probabilities_scdcc",
    ),
    "history": (lambda a, **kw: sdc.pl.history(a, "scdcc", **kw), "history_scdcc"),
    "compare": (lambda a, **kw: sdc.pl.compare(a, "scdcc", "group", **kw), "compare_scdcc"),
}


@pytest.mark.parametrize("plot", PLOTS)
def test_save_is_deprecated_but_still_saves(plot, clustered, tmp_path, figdir):
    draw, name = PLOTS[plot]
    adata = clustered.copy()
    with pytest.warns(FutureWarning, match=r"`save` .* deprecated.*savefig") as caught:
        draw(adata, show=False, save=tmp_path / "sub" / "f.png")
    ours = [w for w in caught if w.category is FutureWarning]
    assert len(ours) == 1 and ours[0].filename == __file__  # points at the caller's line
    assert (tmp_path / "sub" / "f.png").stat().st_size > 0
    with pytest.warns(FutureWarning, match="deprecated"):
        draw(adata, show=False, save="_suffix.pdf")  # scanpy's convention
    assert (figdir / f"{name}_suffix.pdf").exists()
    # only ours: `save` is not handed on to scanpy (whose own is deprecated in 1.12)
    assert all("scdeepclust" in str(w.message) for w in caught if w.category is FutureWarning)


@pytest.mark.parametrize("plot", PLOTS)
def test_autosave_saves_once_without_a_warning(plot, clustered, figdir, recwarn):
    draw, name = PLOTS[plot]
    # a property of scanpy's settings class, which monkeypatch cannot restore
    before, sc.settings.autosave = sc.settings.autosave, True
    try:
        draw(clustered.copy(), show=False)
    finally:
        sc.settings.autosave = before
    assert not [w for w in recwarn if w.category is FutureWarning]
    # one file, under our name: scanpy did not save the unfinished figure under its own
    assert [p.name for p in figdir.iterdir()] == [
        f"{name}{sc.settings.plot_suffix}.{sc.settings.file_format_figs}"
    ]


@pytest.mark.parametrize(
    "draw",
    [
        lambda a: sdc.pl.probabilities(a, "scdcc", cmap="no-such-map", show=False),
        lambda a: sdc.pl.compare(a, "scdcc", "group", cmap="no-such-map", show=False),
        # fails in the drawing, after the figure was made (a colormap is refused before it)
        lambda a: sdc.pl.embedding(a, "desc", basis="X_desc", no_such_keyword=1, show=False),
        lambda a: sdc.pl.umap(a, "desc", color="desc", no_such_keyword=1, show=False),
    ],
    ids=["probabilities", "compare", "embedding", "umap"],
)
def test_a_failed_plot_leaves_no_figure_open(draw, clustered):
    plt.close("all")
    with pytest.raises((ValueError, TypeError, AttributeError)):
        draw(clustered.copy())
    assert plt.get_fignums() == []


def test_probabilities_refuses_labels_of_another_run(clustered):
    adata = clustered.copy()
    adata.obsm["scdcc_probs"] = adata.obsm["scdcc_probs"][:, :2]  # as after a concat
    with pytest.raises(ValueError, match=r"cluster\(s\) \['2'\] without a column among the 2"):
        sdc.pl.probabilities(adata, "scdcc", show=False)
    # a run under key_added="scdcc_confidence" wrote its labels there: they drew as 0, 1, 2
    other = clustered.copy()
    other.obs["scdcc_confidence"] = other.obs["scdcc"]
    with pytest.raises(ValueError, match=r"holds category values, not the run's confidences"):
        sdc.pl.probabilities(other, "scdcc", show=False)


@pytest.mark.parametrize("plot", ["probabilities", "umap", "compare", "history", "n_clusters"])
def test_plots_refuse_a_key_another_tool_wrote_over(clustered, plot):
    """sc.tl.leiden's {"params": ...} is no scdeepclust run, nor what concat leaves of one."""
    adata = clustered.copy()
    sc.pp.neighbors(adata, use_rep="X_desc")
    sc.tl.leiden(adata, key_added="desc", flavor="igraph", n_iterations=2, directed=False)
    draw = {
        "probabilities": lambda: sdc.pl.probabilities(adata, "desc", show=False),
        "umap": lambda: sdc.pl.umap(adata, "desc", show=False),
        "compare": lambda: sdc.pl.compare(adata, "desc", "group", show=False),
        "history": lambda: sdc.pl.history(adata, "desc", show=False),
        "n_clusters": lambda: sdc.pl.n_clusters(adata, "desc", show=False),
    }[plot]
    with pytest.raises(KeyError, match=r"adata.uns\['desc'\] is not a scdeepclust result"):
        draw()


@pytest.mark.parametrize(
    "merge, differing",
    [
        ("same", "n_clusters"),
        ("unique", "n_clusters"),
        ("same", "history"),
        ("same", "all but params"),
    ],
)
def test_plots_draw_runs_joined_by_concat_and_those_that_need_one_run_say_so(
    clustered, merge, differing
):
    """anndata.concat(uns_merge="same") keeps only what two runs share: where they found 3 and
    2 clusters, n_clusters went, and every plot refused the key as another tool's. Runs that
    differ in everything (a reference and cells mapped onto its model) leave their params."""
    first, second = clustered.copy(), clustered.copy()
    second.obs_names = [f"{name}-b" for name in second.obs_names]
    entry = second.uns["desc"]
    changed = [name for name in entry if name != "params"]
    for name in {"n_clusters": ["n_clusters"], "history": ["history"]}.get(differing, changed):
        entry[name] = {"other": 1.0} if isinstance(entry[name], dict) else -1
    joined = ad.concat([first, second], label="sample", uns_merge=merge)
    assert "n_clusters" not in joined.uns["desc"] or "history" not in joined.uns["desc"]
    if differing == "all but params":
        assert set(joined.uns["desc"]) == {"params"} and "method" in joined.uns["desc"]["params"]
    assert len(sdc.pl.embedding(joined, "desc", color="sample", show=False)) == 2
    assert isinstance(sdc.pl.umap(joined, "desc", show=False), Axes)
    assert isinstance(sdc.pl.compare(joined, "desc", "group", show=False), Axes)
    assert isinstance(sdc.pl.probabilities(joined, "desc", show=False), Figure)
    one_run = r"as anndata.concat\(\.\.\., uns_merge='same' or 'unique'\) leaves it.*'first'"
    with pytest.raises(KeyError, match=one_run):
        sdc.pl.history(joined, "desc", show=False)
    if differing != "history":  # else the run's n_clusters says it searched none
        with pytest.raises(KeyError, match=one_run):
            sdc.pl.n_clusters(joined, "desc", show=False)


def test_stored_colours_that_are_not_colours_are_passed_over(clustered):
    adata = clustered.copy()
    adata.uns["desc_colors"] = {"params": {}, "history": {}}  # e.g. an older run's results
    fig = sdc.pl.probabilities(adata, "desc", show=False)
    assert isinstance(fig, Figure)
    adata.uns["desc_colors"] = ["red", "not-a-colour", "blue"]
    assert isinstance(sdc.pl.probabilities(adata, "desc", show=False), Figure)


def test_panels_are_checked_before_the_umap_is_cached(clustered):
    adata = clustered.copy()
    before = (set(adata.obsm), set(adata.obsp), set(adata.uns))
    with pytest.raises(KeyError, match=r"color \['nope'\] not found.*adata.obs"):
        sdc.pl.umap(adata, "scdcc", color="nope", show=False)
    _, ax = plt.subplots()
    for plot in (sdc.pl.umap, sdc.pl.embedding):
        with pytest.raises(ValueError, match=r"ax= holds one panel, but this plot draws 2"):
            plot(adata, "scdcc", color="group", ax=ax, show=False)
    with pytest.raises(ValueError, match=r"pl.umap draws obsm\['X_umap_scdcc'\].*pl.embedding"):
        sdc.pl.umap(adata, "scdcc", basis="X_pca", show=False)
    assert (set(adata.obsm), set(adata.obsp), set(adata.uns)) == before
    # a gene is a colour, and return_fig returns the figure whatever `show` says
    fig = sdc.pl.umap(adata, "scdcc", color=adata.var_names[0], return_fig=True)
    assert isinstance(fig, Figure) and len(fig.axes) >= 2
    assert sdc.pl.umap(adata, "scdcc", ax=ax, show=False) is ax


@pytest.mark.parametrize("plot", ["umap", "embedding"])
def test_plots_draw_under_warnings_as_errors(clustered, plot):
    # scanpy's call of Colormap.set_bad raised matplotlib's PendingDeprecationWarning
    adata = clustered.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        if plot == "umap":
            sdc.pl.umap(adata, "scdcc", color="scdcc_confidence", show=False)
        else:
            sdc.pl.embedding(adata, "scdcc", basis="X_scdcc", color="scdcc_confidence", show=False)


def test_probabilities(clustered, tmp_path):
    fig = sdc.pl.probabilities(clustered, "scdcc", show=False)
    assert isinstance(fig, Figure) and len(fig.axes) == 4
    fig.savefig(tmp_path / "p.png")
    assert (tmp_path / "p.png").exists()
    heat = fig.axes[1].images[0].get_array()
    assert heat.shape == clustered.obsm["scdcc_probs"].shape
    for ends in (0, 1):  # the threshold's range is closed
        assert isinstance(
            sdc.pl.probabilities(clustered, "scdcc", threshold=ends, show=False), Figure
        )
    fig = sdc.pl.probabilities(clustered, "desc", max_cells=50, threshold=0.9, show=False)
    assert fig.axes[1].images[0].get_array().shape == (50, 3)
    assert "50 of 240 shown" in fig.axes[1].get_title()


def test_probabilities_names_each_column_by_its_cluster(clustered):
    """Column j of the soft assignments is cluster "j", whatever the order of the categories."""
    adata = clustered.copy()
    n_columns = adata.obsm["scdcc_probs"].shape[1]
    numbers = [str(j) for j in range(n_columns)]
    # each cell in the cluster of its largest soft assignment (this few epochs' refinement
    # moved most of them), so that an annotation's cells point at its column
    top = adata.obsm["scdcc_probs"].argmax(1).astype(str)
    adata.obs["scdcc"] = pd.Categorical(top, categories=numbers[::-1])
    reordered = sdc.pl.probabilities(adata, "scdcc", show=False)
    adata.obs["scdcc"] = adata.obs["scdcc"].astype(str)
    as_text = sdc.pl.probabilities(adata, "scdcc", show=False)
    for fig in (reordered, as_text):
        assert [t.get_text() for t in fig.axes[1].get_xticklabels()] == numbers
    adata.obs["scdcc"] = adata.obs["scdcc"].astype("category")
    renamed = [f"type {j}" for j in range(n_columns)]
    adata.obs["scdcc"] = adata.obs["scdcc"].cat.rename_categories(renamed)
    fig = sdc.pl.probabilities(adata, "scdcc", show=False)
    assert [t.get_text() for t in fig.axes[1].get_xticklabels()] == renamed
    # annotations mapped onto the numbers and sorted by name: each still names its own column
    adata.obs["scdcc"] = adata.obs["scdcc"].cat.reorder_categories(renamed[::-1])
    fig = sdc.pl.probabilities(adata, "scdcc", show=False)
    assert [t.get_text() for t in fig.axes[1].get_xticklabels()] == renamed
    # an annotation joining clusters 1 and 2 names the column most of its cells are in
    joined = pd.Categorical(np.where(top == "0", "type 0", "types 1+2"))
    adata.obs["scdcc"] = joined
    fig = sdc.pl.probabilities(adata, "scdcc", show=False)
    most = "1" if (top == "1").sum() >= (top == "2").sum() else "2"
    expected = ["type 0", "types 1+2" if most == "1" else "1", "types 1+2" if most == "2" else "2"]
    assert [t.get_text() for t in fig.axes[1].get_xticklabels()] == expected
    with pytest.raises(KeyError, match=r"palette has no colour for the scdcc categories"):
        sdc.pl.probabilities(adata, "scdcc", palette={"type 0": "red"}, show=False)


def test_probabilities_follows_clusters_renamed_to_other_numbers(clustered):
    """Numbers counted from 1, or a cluster left out and the rest numbered again, name the
    columns that hold their cells (they were taken for the run's own numbers: a refusal, or
    every column named after its neighbour)."""
    adata = clustered.copy()
    n_columns = adata.obsm["scdcc_probs"].shape[1]
    top = adata.obsm["scdcc_probs"].argmax(1)  # see the test above
    numbers = [str(j) for j in range(n_columns)]
    adata.obs["scdcc"] = pd.Categorical(top.astype(str), categories=numbers)
    one_based = [str(j + 1) for j in range(n_columns)]
    adata.rename_categories("scdcc", one_based)
    fig = sdc.pl.probabilities(adata, "scdcc", show=False)
    assert [t.get_text() for t in fig.axes[1].get_xticklabels()] == one_based
    # the last cluster left out, the others numbered from 1: its column keeps "(2)"
    kept = adata[top != n_columns - 1].copy()
    kept.obs["scdcc"] = pd.Categorical(
        (top[top != n_columns - 1] + 1).astype(str), categories=one_based[:-1]
    )
    fig = sdc.pl.probabilities(kept, "scdcc", show=False)
    assert [t.get_text() for t in fig.axes[1].get_xticklabels()] == [*one_based[:-1], "(2)"]


def test_probabilities_keeps_the_runs_numbers_and_draws_its_labels_renamed(clustered):
    """The run's own labels, where this few epochs' refinement put most of a cluster's cells
    in another's column: a subset keeps the run's numbers, and numbered from 1 they draw."""
    adata = clustered.copy()
    labels = adata.obs["scdcc"]
    n_columns = adata.obsm["scdcc_probs"].shape[1]
    dropped = labels.cat.categories[1]
    subset = adata[labels != dropped].copy()
    fig = sdc.pl.probabilities(subset, "scdcc", show=False)
    assert [t.get_text() for t in fig.axes[1].get_xticklabels()] == [
        str(j) for j in range(n_columns)
    ]
    adata.rename_categories("scdcc", [str(int(c) + 1) for c in labels.cat.categories])
    fig = sdc.pl.probabilities(adata, "scdcc", show=False)
    names = [t.get_text() for t in fig.axes[1].get_xticklabels()]
    assert len(names) == n_columns and len(set(names)) == n_columns


@pytest.mark.parametrize("key", ["scdcc", "desc"])
def test_history(clustered, key, tmp_path, figdir):
    with pytest.warns(FutureWarning, match="deprecated"):
        fig = sdc.pl.history(clustered, key, show=False, save=True)
    assert isinstance(fig, Figure) and len(fig.axes) == 3
    assert (figdir / f"history_{key}.{sc.settings.file_format_figs}").exists()
    reconstruction, losses, change = fig.axes
    assert reconstruction.get_lines() and losses.get_lines() and change.get_lines()
    # pretraining stages in training order, also after an .h5ad round trip (sorted keys)
    path = tmp_path / "h.h5ad"
    clustered.write_h5ad(path)
    fig = sdc.pl.history(sc.read_h5ad(path), key, show=False)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    expected = ["ZINB NLL"] if key == "scdcc" else ["layer1 MSE", "layer2 MSE", "autoencoder MSE"]
    assert labels == expected


def test_history_fits_a_long_status_inside_the_saved_figure(clustered):
    """The centroids' description (~90 characters) ran past both edges of a saved figure."""
    run = clustered.copy()
    run.uns["scdcc"]["init_method"] = (
        "leiden (resolution 0.8), merged by Ward's criterion (graph cut 0.028 against 0.028)"
    )
    frameon = sc.settings._frameon
    with plt.rc_context():  # the tutorial's settings, undone after
        sc.set_figure_params(dpi=80, frameon=False)
        try:
            fig = sdc.pl.history(run, "scdcc", show=False)
            fig.canvas.draw()
        finally:
            sc.settings._frameon = frameon
    box = fig.bbox
    for text in [fig._suptitle, *(ax.xaxis.label for ax in fig.axes)]:
        extent = text.get_window_extent()
        assert extent.x0 >= box.x0 - 1 and extent.x1 <= box.x1 + 1, text.get_text()
    assert "graph cut 0.028" in fig.get_suptitle()


def test_history_draws_the_batch_and_label_terms_as_clustering_losses(clustered):
    # they were drawn as reconstruction losses ("batch_mixing MSE"), and DESC's decoder-free
    # clustering stage was then labelled as if it had one
    adata = clustered.copy()
    for key in ("scdcc", "desc"):
        history = adata.uns[key]["history"]
        epochs = len(history["cluster_clustering"])
        history["cluster_batch_mixing"] = np.linspace(0.2, 0.1, epochs)
        history["cluster_known_class"] = np.linspace(0.5, 0.3, epochs)
        fig = sdc.pl.history(adata, key, show=False)
        reconstruction, losses, _ = fig.axes
        legend = [t.get_text() for t in reconstruction.get_legend().get_texts()]
        assert not [label for label in legend if "batch" in label or "known" in label]
        legend = [t.get_text() for t in losses.get_legend().get_texts()]
        assert {"batch mixing (MMD)", "known labels"} <= set(legend)
        spans = [t.get_text() for t in reconstruction.texts]
        assert ("clustering\n(no decoder)" in spans) == (key == "desc")


@pytest.mark.parametrize("figure_params", [False, True])
def test_cluster_colours_are_those_scanpy_stores(clustered, figure_params):
    # before scanpy had stored uns[key + '_colors'], the plots took scanpy's 20-colour palette,
    # while scanpy takes matplotlib's colour cycle where it has enough colours (tab10: the
    # third cluster green '#2ca02c' in one plot, '#279e68' in the UMAP)
    from matplotlib.colors import to_hex

    from scdeepclust.pl._utils import cluster_colors

    adata = clustered.copy()
    adata.uns.pop("scdcc_colors", None)
    cycle = (
        {"axes.prop_cycle": plt.cycler(color=sc.pl.palettes.default_20)} if figure_params else {}
    )
    with plt.rc_context(cycle):
        ours = cluster_colors(adata, "scdcc")
        sdc.pl.embedding(adata, "scdcc", basis="X_scdcc", show=False)
    assert [to_hex(c) for c in ours] == [to_hex(c) for c in adata.uns["scdcc_colors"]]


def test_the_colours_scanpy_stored_for_the_clusters_are_used(clustered):
    """One colour per cluster, as scanpy stores them, was passed over for the colour cycle."""
    from matplotlib.colors import to_hex

    from scdeepclust.pl._utils import cluster_colors

    adata = clustered.copy()
    own = ["#ff0000", "#00ff00", "#0000ff"][: len(adata.obs["scdcc"].cat.categories)]
    adata.uns["scdcc_colors"] = own
    assert [to_hex(c) for c in cluster_colors(adata, "scdcc")] == own


def test_cluster_colours_span_a_named_colormap_and_fill_the_colour_cycle_exactly():
    import anndata as ad
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    from scdeepclust.pl._utils import cluster_colors

    adata = ad.AnnData(np.zeros((30, 2), np.float32))
    adata.obs["c"] = pd.Categorical([str(i % 3) for i in range(30)])
    viridis = colormaps["viridis"]
    expected = [to_hex(viridis(x)) for x in (0.0, 0.5, 1.0)]  # both ends of the map
    assert cluster_colors(adata, "c", palette="viridis") == expected
    # as many clusters as the colour cycle has colours: the cycle, as scanpy takes it
    adata.obs["c"] = pd.Categorical([str(i % 10) for i in range(30)])
    tab10 = [to_hex(c) for c in colormaps["tab10"].colors]
    with plt.rc_context({"axes.prop_cycle": plt.cycler(color=tab10)}):
        assert [to_hex(c) for c in cluster_colors(adata, "c")] == tab10


def test_probabilities_draws_each_clusters_confident_cells_first():
    """The docstring's order (confident cells at the top of each block) was read by no test."""
    import anndata as ad

    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(3) * 0.7, 90).astype(np.float32)
    labels = probs.argmax(1)
    adata = ad.AnnData(np.zeros((90, 2), np.float32))
    adata.obs["scdcc"] = pd.Categorical(labels.astype(str), categories=["0", "1", "2"])
    adata.obsm["scdcc_probs"] = probs
    adata.obs["scdcc_confidence"] = probs.max(1)
    adata.uns["scdcc"] = {"params": {"method": "scdcc"}, "n_clusters": 3}
    fig = sdc.pl.probabilities(adata, "scdcc", show=False)
    shown = np.asarray(fig.axes[1].images[0].get_array())
    for cluster in range(3):
        block = shown[np.sort(labels) == cluster].max(axis=1)
        assert len(block) and np.all(np.diff(block) <= 0)


def test_compare(clustered, tmp_path):
    adata = clustered.copy()
    ax = sdc.pl.compare(adata, "scdcc", "group", show=False)
    assert isinstance(ax, Axes)
    assert "ARI" in ax.get_title() and "NMI" in ax.get_title()
    ax.figure.savefig(tmp_path / "c.svg")
    assert (tmp_path / "c.svg").exists()
    # partially known truth: only labelled cells count, and the title says so
    adata.obs["partial"] = adata.obs["group"].astype(object)
    adata.obs.loc[adata.obs_names[:40], "partial"] = np.nan
    _, own = plt.subplots()
    assert sdc.pl.compare(adata, "desc", "partial", normalize=None, ax=own, show=False) is own
    assert "200 cells with a label" in own.get_title()
    # cells without a cluster (added after the run) are left out of the table as of the scores
    unclustered = clustered.copy()
    unclustered.obs["desc"] = unclustered.obs["desc"].astype(object)
    unclustered.obs.loc[unclustered.obs_names[:60], "desc"] = np.nan
    ax = sdc.pl.compare(unclustered, "desc", "group", normalize=None, show=False)
    assert "nan" not in [t.get_text() for t in ax.get_xticklabels()]
    assert ax.images[0].get_array().sum() == 180
    assert "180 cells with a label and a cluster" in ax.get_title()
    with pytest.raises(ValueError, match="normalize"):
        sdc.pl.compare(adata, "desc", "group", normalize="all", show=False)
    # integer truth: rows in numeric order (2 before 10)
    adata.obs["number"] = np.arange(adata.n_obs) % 12
    ax = sdc.pl.compare(adata, "desc", "number", show=False)
    assert [t.get_text() for t in ax.get_yticklabels()] == [str(i) for i in range(12)]


def test_images_are_drawn_without_grid_lines_under_scanpys_figure_params(clustered):
    # sc.set_figure_params (as in scanpy's tutorials) turns rcParams["axes.grid"] on: grey
    # lines crossed every cell of the tables and heatmaps
    def gridded(ax):
        return [ax for line in ax.get_xgridlines() + ax.get_ygridlines() if line.get_visible()]

    with plt.rc_context({"axes.grid": True}):
        ax = sdc.pl.compare(clustered, "scdcc", "group", show=False)
        fig = sdc.pl.probabilities(clustered, "scdcc", show=False)
    assert not any(gridded(a) for a in ax.figure.axes)
    assert not any(gridded(a) for a in fig.axes[:3])  # the confidence panel may keep its grid


def test_embedding_axes_are_named_as_scanpy_names_them(clustered):
    adata = clustered.copy()
    adata.obsm["X_umap"] = adata.obsm["X_scdcc"][:, :2]
    assert sdc.pl.embedding(adata, "scdcc", show=False).get_xlabel() == "UMAP1"
    ax = sdc.pl.embedding(adata, "scdcc", basis="X_desc", show=False)
    assert ax.get_xlabel() == "desc1"
    adata.obsm["desc"] = adata.obsm["X_desc"] + 1  # a key without "X_" is not looked past
    ax = sdc.pl.embedding(adata, "scdcc", basis="X_desc", show=False)
    assert ax.get_xlabel() == "X_desc1"
    np.testing.assert_allclose(
        ax.collections[0].get_offsets()[:, 0].min(), adata.obsm["X_desc"][:, 0].min(), rtol=1e-6
    )


def test_diagonal_order_puts_matches_on_the_diagonal():
    counts = np.array([[0, 9, 1, 0], [8, 0, 0, 2], [0, 1, 0, 7]])
    order = diagonal_order(counts)
    assert order.tolist() == [1, 2, 0, 3]  # each row's match first, extra columns beside it
    best = counts[:, order].argmax(1)
    assert best.tolist() == sorted(best.tolist())


def test_edges_are_those_of_the_graph_the_umap_was_laid_out_from(clustered):
    """scanpy's default graph, obsp['connectivities'], is the user's (of PCA, say)."""
    from matplotlib.collections import LineCollection

    run = clustered.copy()
    sc.pp.pca(run, n_comps=10)
    sc.pp.neighbors(run, n_neighbors=5)  # another graph under scanpy's default key
    ax = sdc.pl.umap(run, "scdcc", edges=True, show=False)
    drawn = [c for c in ax.collections if isinstance(c, LineCollection)][0].get_segments()
    graph = run.obsp["neighbors_scdcc_connectivities"]
    assert len(drawn) == np.triu(graph.toarray(), 1).astype(bool).sum()
    assert len(drawn) != np.triu(run.obsp["connectivities"].toarray(), 1).astype(bool).sum()
    del run.uns["neighbors"], run.obsp["connectivities"], run.obsp["distances"]
    sdc.pl.umap(run, "scdcc", edges=True, show=False)  # needs no graph of the user's
    # the cached UMAP's graph removed: laid out again from the same settings
    coordinates = run.obsm["X_umap_scdcc"].copy()
    del run.uns["neighbors_scdcc"], run.obsp["neighbors_scdcc_connectivities"]
    ax = sdc.pl.umap(run, "scdcc", edges=True, show=False)
    again = [c for c in ax.collections if isinstance(c, LineCollection)][0].get_segments()
    assert len(again) == len(drawn)
    np.testing.assert_array_equal(run.obsm["X_umap_scdcc"], coordinates)


@pytest.mark.parametrize("plot", [sdc.pl.umap, sdc.pl.embedding])
def test_lists_of_one_entry_per_colour_go_to_their_colours_panels(clustered, plot):
    """A title per colour labelled each panel as the one before it (the clusters' is first)."""
    colors = ["scdcc_confidence", "group"]
    axes = plot(clustered, "scdcc", color=colors, title=["confidence", "type"], show=False)
    assert [ax.get_title() for ax in axes] == ["scdcc", "confidence", "type"]
    axes = plot(clustered, "scdcc", color=["scdcc_confidence"], vmin=[0.5], vmax=[0.9], show=False)
    assert axes[1].collections[0].get_clim() == (0.5, 0.9)
    # the clusters named among the colours take their own entry; one per panel is kept
    titled = plot(clustered, "scdcc", color=["group", "scdcc"], title=["type", "mine"], show=False)
    assert [ax.get_title() for ax in titled] == ["mine", "type"]
    titled = plot(clustered, "scdcc", color="group", title=["a", "b"], show=False)
    assert [ax.get_title() for ax in titled] == ["a", "b"]
    for given in (np.array(["confidence", "type"]), pd.Index(["confidence", "type"])):
        titled = plot(clustered, "scdcc", color=colors, title=given, show=False)
        assert [ax.get_title() for ax in titled] == ["scdcc", "confidence", "type"]
    with pytest.raises(ValueError, match=r"title has 3 entries, but the plot draws 2 panels"):
        plot(clustered, "scdcc", color="group", title=["a", "b", "c"], show=False)


def test_errors_name_what_is_missing(clustered):
    for plot in (sdc.pl.umap, sdc.pl.probabilities, sdc.pl.history, sdc.pl.embedding):
        with pytest.raises(KeyError, match=r"'leiden'.*Runs in this AnnData.*run scdeepclust.tl"):
            plot(clustered, "leiden", show=False)
    with pytest.raises(KeyError, match="truth 'cell_type' is not a column"):
        sdc.pl.compare(clustered, "scdcc", "cell_type", show=False)
    bare = clustered.copy()
    del bare.obsm["scdcc_probs"]
    with pytest.raises(KeyError, match=r"adata.obsm\['scdcc_probs'\] not found"):
        sdc.pl.probabilities(bare, "scdcc", show=False)


def test_embedding_names_the_categories_a_palette_lacks(clustered):
    """scanpy raised a bare KeyError('1') for a palette dict without a colour for cluster 1."""
    adata = clustered.copy()
    adata.obs["group"] = "type " + adata.obs["group"].astype(str)  # text, not categorical
    categories = list(adata.obs["scdcc"].cat.categories)
    palette = {c: "red" for c in categories}
    with pytest.raises(KeyError, match=r"palette has no colour for the group categories \["):
        sdc.pl.embedding(adata, "scdcc", basis="X_scdcc", color="group", palette=palette)
    assert not plt.get_fignums()  # refused before drawing
    del palette[categories[-1]]
    with pytest.raises(KeyError, match=rf"for the scdcc categories \['{categories[-1]}'\]; give"):
        sdc.pl.embedding(adata, "scdcc", basis="X_scdcc", palette=palette, show=False)
    palette[categories[-1]] = "blue"
    assert sdc.pl.embedding(adata, "scdcc", basis="X_scdcc", palette=palette, show=False)


def test_figures_are_saved_at_the_users_resolution():
    """sc.set_figure_params(dpi_save=60) was raised to 150; scanpy keeps the user's number."""
    from matplotlib import rc_context

    from scdeepclust.pl._utils import save_dpi

    with rc_context({"savefig.dpi": "figure"}):
        assert save_dpi() == 150
    with rc_context({"savefig.dpi": 60}):
        assert save_dpi() == 60
    with rc_context({"savefig.dpi": 300}):
        assert save_dpi() == 300


def test_a_colour_naming_a_column_and_a_gene_is_refused_before_the_umap(clustered):
    """scanpy refuses it too, but after the UMAP was computed and stored in adata."""
    adata = clustered.copy()
    gene = adata.var_names[0]
    adata.obs[gene] = adata.obs["group"]
    before = (set(adata.obsm), set(adata.obsp), set(adata.uns))
    with pytest.raises(KeyError, match=rf"\['{gene}'\] name both a column of adata.obs and a gene"):
        sdc.pl.umap(adata, "scdcc", color=gene, show=False)
    assert (set(adata.obsm), set(adata.obsp), set(adata.uns)) == before
    with pytest.raises(KeyError) as refused:
        sdc.pl.umap(adata, "scdcc", color=gene, show=False)
    exec(re.search(r"`(adata\.obs = .*?)`", str(refused.value)).group(1), {"adata": adata})
    assert gene not in adata.obs.columns and f"{gene}_obs" in adata.obs.columns


def test_a_colour_naming_a_gene_of_raw_alone_is_drawn(clustered):
    """Only var_names make a name ambiguous for scanpy; .raw's genes it tells apart."""
    adata = clustered.copy()
    adata.raw = adata
    gene = adata.var_names[0]
    adata = adata[:, adata.var_names[1:]].copy()
    adata.obs[gene] = adata.obs["group"]
    assert sdc.pl.umap(adata, "scdcc", color=gene, show=False)


def test_a_new_run_under_the_key_removes_the_umap_and_graph_of_the_old_embedding(clustered):
    # pl.umap noticed the new embedding, but pl.embedding(basis='X_umap_<key>') and Leiden on
    # neighbors_<key> read the old run's coordinates and graph as this run's
    adata = clustered.copy()
    sdc.pl.umap(adata, "scdcc", show=False)
    sdc.pl.umap(adata, "desc", show=False)
    derived = {
        "obsm": ["X_umap_scdcc"],
        "uns": ["X_umap_scdcc", "neighbors_scdcc"],
        "obsp": ["neighbors_scdcc_connectivities", "neighbors_scdcc_distances"],
    }
    assert all(name in getattr(adata, part) for part, names in derived.items() for name in names)
    with pytest.warns(
        UserWarning,
        match=r"The UMAP and kNN graph of the embedding replaced .* "
        r"obsm\['X_umap_scdcc'\]\) will be removed",
    ):
        sdc.tl.scdcc(adata, 2, random_state=3, **TINY)
    assert not any(
        name in getattr(adata, part) for part, names in derived.items() for name in names
    )
    assert "X_umap_desc" in adata.obsm and "neighbors_desc" in adata.uns  # another run's stay
    # a run under key "umap_scdcc" keeps its embedding obsm['X_umap_scdcc'], which its key
    # shares with pl.umap's cache of "scdcc"
    sdc.pl.umap(adata, "scdcc", show=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sdc.tl.scdcc(adata, 2, key_added="umap_scdcc", random_state=5, **TINY)
        embedding = adata.obsm["X_umap_scdcc"].copy()
        sdc.tl.scdcc(adata, 2, random_state=6, **TINY)
    np.testing.assert_array_equal(adata.obsm["X_umap_scdcc"], embedding)
    assert "X_umap_scdcc" not in adata.uns  # pl.umap's record of its cache
    # a subset's new run: the coordinates of the cells kept are the old run's all the same
    full = clustered.copy()
    sdc.pl.umap(full, "desc", show=False)
    subset = full[full.obs["group"] != full.obs["group"].cat.categories[0]].copy()
    assert "X_umap_desc" in subset.obsm
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sdc.tl.desc(subset, layer="scaled", n_clusters=2, **TINY)
    assert "X_umap_desc" not in subset.obsm and "X_umap_desc" not in subset.uns
    # a graph the user made of another representation under that name stays
    sc.pp.neighbors(adata, use_rep="X_desc", key_added="neighbors_scdcc")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sdc.tl.scdcc(adata, 2, random_state=4, **TINY)
    assert "neighbors_scdcc" in adata.uns


def test_cells_added_without_a_result_are_named_not_passed_to_the_umap(clustered):
    import anndata as ad

    extra = sdc.datasets.simulate(n_cells=30, n_genes=120, n_groups=3, random_state=2)
    extra.obs_names = [f"new{i}" for i in range(30)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        joined = ad.concat([clustered, extra], join="outer", uns_merge="first")
    with pytest.raises(ValueError, match=r"no values \(NaN\) for 30 of 270 cells .* join='outer'"):
        sdc.pl.umap(joined, "scdcc", show=False)
    fig = sdc.pl.probabilities(joined, "scdcc", show=False)
    title = fig.axes[1].get_title()
    assert "(240 cells; 30 without a cluster left out)" in title


def test_soft_assignments_cut_by_a_concat_are_named(clustered):
    import anndata as ad

    other = clustered.copy()
    other.obs_names = [f"{n}-b" for n in other.obs_names]
    other.obsm["scdcc_probs"] = np.hstack([other.obsm["scdcc_probs"], np.zeros((other.n_obs, 1))])
    other.obsm["scdcc_probs"][:, [0, -1]] = other.obsm["scdcc_probs"][:, [-1, 0]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        joined = ad.concat([clustered, other], uns_merge="first")  # inner: 3 columns kept
    with pytest.raises(ValueError, match=r"of 240 cells .* do not sum to 1 .* anndata.concat"):
        sdc.pl.probabilities(joined, "scdcc", show=False)


def test_show_takes_numpy_false_and_refuses_text(clustered):
    # `show is False` lost the figure of numpy's False; the text "False" showed it
    fig = sdc.pl.probabilities(clustered, "scdcc", show=np.False_)
    assert isinstance(fig, Figure)
    with pytest.raises(ValueError, match=r"show must be True, False or None .*got 'False'"):
        sdc.pl.history(clustered, "scdcc", show="False")
    open_figures = plt.get_fignums()
    for options, match in (
        (dict(threshold=2.5), r"threshold must be a number between 0 and 1, got 2.5"),
        (dict(threshold=True), r"threshold must be a number between 0 and 1, got True"),
        (dict(max_cells=0), r"max_cells must be an integer >= 1, got 0"),
        (dict(max_cells=2.5), r"max_cells must be an integer >= 1, got 2.5"),
    ):
        with pytest.raises(ValueError, match=match):
            sdc.pl.probabilities(clustered, "scdcc", show=False, **options)
    assert plt.get_fignums() == open_figures  # refused before drawing anything


def test_options_of_another_kind_are_named_before_anything_is_drawn(clustered):
    # matplotlib and scanpy failed on them deep inside ("object of type 'int' has no len()",
    # "'str' object has no attribute 'set_title'"), and 2.5 neighbours ran as 2
    open_figures = plt.get_fignums()
    cached = "X_umap_scdcc" in clustered.obsm
    for plot, options, error, match in (
        (sdc.pl.history, dict(figsize=3), ValueError, r"figsize must be \(width, height\)"),
        (sdc.pl.probabilities, dict(figsize=3), ValueError, r"figsize must be \(width, height\)"),
        (sdc.pl.compare, dict(figsize=(3, -1)), ValueError, r"figsize must be .*got \(3, -1\)"),
        (sdc.pl.compare, dict(ax="a"), TypeError, r"ax must be a matplotlib Axes .*got 'a'"),
        (sdc.pl.umap, dict(ax="a"), TypeError, r"ax must be a matplotlib Axes"),
        (sdc.pl.umap, dict(n_neighbors=2.5), ValueError, r"n_neighbors must be an integer >= 2"),
        (sdc.pl.umap, dict(min_dist=-1), ValueError, r"min_dist must be a finite number >= 0"),
        (sdc.pl.umap, dict(recompute="no"), ValueError, r"recompute must be True or False"),
        (sdc.pl.embedding, dict(basis=["X_scdcc"]), TypeError, r"basis must be the name of "),
    ):
        args = ("group",) if plot is sdc.pl.compare else ()
        with pytest.raises(error, match=match):
            plot(clustered, "scdcc", *args, show=False, **options)
    assert plt.get_fignums() == open_figures
    assert ("X_umap_scdcc" in clustered.obsm) == cached
    sdc.pl.umap(clustered, "scdcc", n_neighbors=np.int64(10), min_dist=0.0, show=False)


def _labelled_run():
    """A run's clusters against known labels a, b, c: clusters 1 and 2 also lie in a."""
    adata = sc.AnnData(np.zeros((22, 2), np.float32))
    adata.obs["truth"] = pd.Categorical(list("a" * 12 + "b" * 6 + "c" * 4))
    clusters = [0] * 8 + [1] * 1 + [2] * 3 + [3] * 6 + [4] * 4
    adata.obs["run"] = pd.Categorical([str(c) for c in clusters])
    adata.uns["run"] = {"n_clusters": 5}
    return adata


def test_compare_orders_a_labels_extra_clusters_by_their_overlap_and_names_the_axes():
    ax = sdc.pl.compare(_labelled_run(), "run", "truth", show=False)
    # cluster 0 is a's match; of a's other clusters the one holding more of a comes first
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "2", "1", "3", "4"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b", "c"]
    assert ax.get_xlabel() == "run cluster" and ax.get_ylabel() == "truth"


def test_compare_warns_where_truth_holds_no_label_as_text():
    """'NA' (R's missing value exported as text) was scored as a cell type of its own."""
    adata = _labelled_run()
    truth = adata.obs["truth"].astype(str).to_numpy()
    truth[:3] = "NA"
    adata.obs["truth"] = truth
    with pytest.warns(UserWarning, match=r"labels cells 'NA' \(3 cells\): such a value is scored"):
        sdc.pl.compare(adata, "run", "truth", show=False)


def test_compare_normalises_each_known_label_and_writes_counts_readably():
    ax = sdc.pl.compare(_labelled_run(), "run", "truth", show=False)
    shown = np.asarray(ax.images[0].get_array())
    np.testing.assert_allclose(shown.sum(1), 1.0)  # each known label's split over the clusters
    colours = {(t.get_position(), t.get_text()): t.get_color() for t in ax.texts}
    assert colours[((0, 0), "8")] == "white"  # dark box
    assert colours[((2, 0), "1")] == "black"
    column = sdc.pl.compare(_labelled_run(), "run", "truth", normalize="column", show=False)
    np.testing.assert_allclose(np.asarray(column.images[0].get_array()).sum(0), 1.0)


def _run_with_history(converged):
    adata = sc.AnnData(np.zeros((10, 2), np.float32))
    adata.obs["run"] = pd.Categorical(np.arange(10) % 2)
    history = {
        "pretrain_zinb": np.linspace(2.0, 1.0, 5),
        "cluster_zinb": np.linspace(1.0, 0.9, 4),
        "cluster_clustering": np.linspace(0.2, 0.1, 4),
        "cluster_label_change": np.array([0.10, 0.04, 0.02]),
        "cluster_label_change_epoch": np.array([1, 2, 4]),
    }
    adata.uns["run"] = {
        "n_clusters": 2,
        "history": history,
        "params": {"tol": 0.03},
        "converged": converged,
    }
    return adata


def test_history_draws_the_label_change_in_percent_at_its_epochs_and_says_how_it_ended():
    fig = sdc.pl.history(_run_with_history(True), "run", show=False)
    change = fig.axes[2]
    curve, tol = change.get_lines()
    np.testing.assert_allclose(curve.get_xdata(), [1, 2, 4])
    np.testing.assert_allclose(curve.get_ydata(), [10.0, 4.0, 2.0])
    np.testing.assert_allclose(tol.get_ydata(), [3.0, 3.0])
    assert "converged (label change < tol)" in fig.get_suptitle()
    fig = sdc.pl.history(_run_with_history(False), "run", show=False)
    assert "stopped at max_epochs" in fig.get_suptitle()


def test_umap_refuses_to_write_over_a_run_named_as_its_graph(clustered):
    """A run under key_added="neighbors_scdcc" holds uns['neighbors_scdcc'], where the UMAP's
    kNN graph would go."""
    named = clustered.copy()
    named.obs["neighbors_scdcc"] = named.obs["scdcc"]
    named.uns["neighbors_scdcc"] = dict(named.uns["scdcc"])
    with pytest.raises(ValueError, match=r"The run 'neighbors_scdcc' holds the keys"):
        sdc.pl.umap(named, "scdcc", show=False)
    assert "history" in named.uns["neighbors_scdcc"]


def test_edges_of_a_graph_the_user_names_are_drawn(clustered):
    from matplotlib.collections import LineCollection
    from scipy import sparse

    run = clustered.copy()
    ring = sparse.csr_matrix(
        (np.ones(run.n_obs), (np.arange(run.n_obs), (np.arange(run.n_obs) + 1) % run.n_obs)),
        shape=(run.n_obs, run.n_obs),
    )
    run.obsp["ring_connectivities"] = run.obsp["ring_distances"] = ring + ring.T
    run.uns["ring"] = {
        "connectivities_key": "ring_connectivities",
        "distances_key": "ring_distances",
        "params": {"n_neighbors": 3, "method": "umap"},
    }
    ax = sdc.pl.umap(run, "scdcc", edges=True, neighbors_key="ring", show=False)
    drawn = [c for c in ax.collections if isinstance(c, LineCollection)][0].get_segments()
    assert len(drawn) == run.n_obs  # the ring's edges, not the UMAP's kNN graph


def test_diagonal_order_pairs_rows_and_columns_one_to_one():
    # both columns hold most of their cells in row 0, but the one-to-one match (the most
    # shared cells: 8 + 9) pairs column 1 with row 0 and column 0 with row 1
    assert diagonal_order(np.array([[10, 8], [9, 0]])).tolist() == [1, 0]


def test_compare_orders_numeric_labels_seen_out_of_order_as_numbers():
    adata = sc.AnnData(np.zeros((20, 2), np.float32))
    adata.obs["number"] = np.where(np.arange(20) % 2 == 0, 10, 2)  # 10 comes first
    adata.obs["run"] = pd.Categorical([str(i % 2) for i in range(20)])
    adata.uns["run"] = {"n_clusters": 2}
    ax = sdc.pl.compare(adata, "run", "number", show=False)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["2", "10"]


def test_probabilities_of_many_clusters_keeps_a_readable_shape():
    """29 clusters drew a strip of 30 x 4.8 inches; the default now stops at a page's width
    and grows in height with it. A figsize given is kept."""
    rng = np.random.default_rng(0)
    n, k = 600, 29
    codes = np.arange(n) % k
    probs = rng.dirichlet(np.full(k, 0.1), n).astype(np.float32)
    probs[np.arange(n), codes] += 2
    probs /= probs.sum(1, keepdims=True)
    adata = sc.AnnData(np.zeros((n, 2), np.float32))
    adata.obs["run"] = pd.Categorical([str(c) for c in codes], [str(c) for c in range(k)])
    adata.obsm["run_probs"] = probs
    adata.obs["run_confidence"] = probs.max(1)
    adata.uns["run"] = {"n_clusters": k}
    width, height = sdc.pl.probabilities(adata, "run", show=False).get_size_inches()
    assert width <= 18 and width / height <= 3
    few = adata[adata.obs["run"].isin(["0", "1", "2"])].copy()
    few.obs["run"] = few.obs["run"].cat.remove_unused_categories()
    few.obsm["run_probs"] = few.obsm["run_probs"][:, :3] / few.obsm["run_probs"][:, :3].sum(
        1, keepdims=True
    )
    assert tuple(sdc.pl.probabilities(few, "run", show=False).get_size_inches()) == (9.0, 4.8)
    given = sdc.pl.probabilities(adata, "run", figsize=(30, 4), show=False)
    assert tuple(given.get_size_inches()) == (30, 4)
    plt.close("all")


def test_embedding_returns_the_figure_with_return_fig_even_where_scanpy_would_show(
    clustered, monkeypatch
):
    """With return_fig=True pl.embedding returns the Figure without plt.show(), as scanpy does,
    also where `show` is left to sc.settings.autoshow (on)."""
    shown = []
    monkeypatch.setattr(plt, "show", lambda *args, **kwargs: shown.append(1))
    autoshow = sc.settings.autoshow
    sc.settings.autoshow = True  # a property of scanpy's settings: monkeypatch cannot undo it
    try:
        fig = sdc.pl.embedding(clustered.copy(), "scdcc", return_fig=True)
    finally:
        sc.settings.autoshow = autoshow
    assert isinstance(fig, Figure)
    assert not shown
    plt.close(fig)


class _SearchSettings(Exception):
    """Raised by a stand-in for pynndescent's transformer, with the settings it was given."""


def _refuse_search(**settings):
    raise _SearchSettings(settings)


def _cells(n: int):
    from anndata import AnnData

    obsm = {"X_e": np.zeros((n, 2), dtype=np.float32)}
    return AnnData(np.zeros((n, 0), dtype=np.float32), obsm=obsm)


def test_plot_neighbors_search_settings_follow_the_number_of_cells(monkeypatch):
    """Above the bound, pynndescent is set up as UMAP sets it: trees (at most 64) and iterations
    grow with the cells, one thread, the euclidean metric, the given seed and neighbours."""
    import pynndescent

    from scdeepclust._neighbors import plot_neighbors

    monkeypatch.setattr(pynndescent, "PyNNDescentTransformer", _refuse_search)
    for n, n_trees, n_iters in [(400_000, 37, 19), (2_000_000, 64, 21)]:
        with pytest.raises(_SearchSettings) as raised:
            plot_neighbors(_cells(n), use_rep="X_e", n_neighbors=7, random_state=3)
        assert raised.value.args[0] == dict(
            n_neighbors=7,
            metric="euclidean",
            random_state=3,
            n_jobs=1,
            n_trees=n_trees,
            n_iters=n_iters,
        )


def test_plot_neighbors_is_exact_up_to_its_bound_with_the_given_options(monkeypatch):
    """Exactly EXACT_PLOT_NEIGHBORS_MAX_CELLS cells still get the exact search, with the seed and
    scanpy's options passed on; one cell more gets the approximate one."""
    import pynndescent

    import scdeepclust._neighbors as neighbors

    calls = []
    monkeypatch.setattr(neighbors, "exact_neighbors", lambda adata, **kw: calls.append(kw))
    monkeypatch.setattr(pynndescent, "PyNNDescentTransformer", _refuse_search)
    monkeypatch.setattr(neighbors, "EXACT_PLOT_NEIGHBORS_MAX_CELLS", 50)
    options = dict(use_rep="X_e", n_neighbors=5, random_state=3, key_added="nb")
    neighbors.plot_neighbors(_cells(50), **options)
    assert calls == [options]
    with pytest.raises(_SearchSettings):
        neighbors.plot_neighbors(_cells(51), **options)
    assert len(calls) == 1


class _ArraySearch:
    """A search that gives scipy's sparse arrays, as pynndescent does on scipy >= 1.17."""

    def __init__(self):
        self.fitted = None

    def get_params(self, deep=True):
        return {"n_neighbors": 4, "deep": deep}

    def fit(self, x):
        self.fitted = x
        return self

    def transform(self, x):
        from scipy.sparse import csr_array

        return csr_array(np.eye(len(x)))

    def fit_transform(self, x):
        return self.fit(x).transform(x)


def test_the_sparse_matrix_output_fits_and_transforms_as_its_search_does():
    """The wrapper passes fit, transform and the parameters through, and gives scipy matrices
    (scanpy 1.11 reads them with getnnz, which scipy >= 1.17's sparse arrays lack)."""
    from scipy.sparse import csr_matrix

    from scdeepclust._neighbors import _SparseMatrixOutput

    x = np.zeros((5, 2))
    inner = _ArraySearch()
    search = _SparseMatrixOutput(inner)
    assert search.get_params(deep=False) == {"n_neighbors": 4, "deep": False}
    assert search.fit(x) is search and inner.fitted is x
    for graph in (search.transform(x), search.fit_transform(x)):
        assert type(graph) is csr_matrix
        np.testing.assert_array_equal(graph.toarray(), np.eye(5))


def test_probabilities_follows_cluster_names_swapped():
    """Two of five numbers swapped (say, to put the largest cluster first): each column is named
    by the cluster whose cells it holds; a cluster the refinement moved into a column no
    other holds keeps the run's numbers."""
    from scdeepclust.pl._probabilities import _column_names

    numbers = ["0", "1", "2", "3", "4"]
    probs = np.eye(5, dtype=np.float32)[np.repeat(np.arange(5), 10)]
    columns = np.repeat(np.arange(5), 10)
    swapped_codes = np.array([1, 0, 2, 3, 4])[columns]
    assert _column_names(numbers, swapped_codes, probs) == ["1", "0", "2", "3", "4"]
    # cluster 4 emptied, cluster 1's cells moved into its column: the numbers stay
    moved_codes = np.where(columns == 4, 1, np.where(columns == 1, 9, columns))
    kept = moved_codes != 9
    assert _column_names(numbers, moved_codes[kept], probs[kept]) == numbers
    # the swap on a run whose cluster 4 kept no cells: its column is its own, "4"
    kept = columns != 4
    assert _column_names(numbers, swapped_codes[kept], probs[kept]) == ["1", "0", "2", "3", "4"]


def test_probabilities_names_columns_as_zero_padded_categories_are_spelled():
    """Clusters renamed "00", "01", ... were drawn as columns "0", "1", ... beside a strip and
    a legend that say "00", "01"; a column whose cluster holds no cells keeps the run's
    number."""
    from scdeepclust.pl._probabilities import _column_names

    probs = np.eye(3, dtype=np.float32)[np.repeat(np.arange(3), 10)]
    codes = np.repeat(np.arange(3), 10)
    assert _column_names(["00", "01", "02"], codes, probs) == ["00", "01", "02"]
    assert _column_names(["01", "00", "02"], codes, probs) == ["01", "00", "02"]
    one_emptied = codes != 1
    assert _column_names(["00", "01", "02"], codes[one_emptied], probs[one_emptied]) == [
        "00",
        "1",
        "02",
    ]


def test_probabilities_reads_a_superscript_digit_as_a_name_not_a_number():
    """A superscript "²" is a digit to str.isdigit, and int() refused it: the plot failed."""
    from scdeepclust.pl._probabilities import _column_names

    probs = np.eye(3, dtype=np.float32)[np.repeat(np.arange(3), 10)]
    codes = np.repeat(np.arange(3), 10)
    assert _column_names(["0", "1", "²"], codes, probs) == ["0", "1", "²"]
    assert _column_names(["0", "1", "٢"], codes, probs) == ["0", "1", "٢"]  # Arabic-Indic 2


def test_probabilities_refuses_a_threshold_max_cells_or_figsize_of_another_kind(clustered):
    open_figures = plt.get_fignums()
    for options, match in (
        (dict(threshold=True), r"threshold must be a number between 0 and 1, got True"),
        (dict(threshold=1.5), r"threshold must be a number between 0 and 1, got 1.5"),
        (dict(max_cells=np.True_), r"max_cells must be an integer >= 1, got np.True_"),
        (dict(max_cells=0), r"max_cells must be an integer >= 1, got 0"),
        (dict(figsize=(3, 0)), r"figsize must be \(width, height\) .*got \(3, 0\)"),
        (dict(figsize=(3, np.inf)), r"figsize must be \(width, height\) .*got \(3, inf\)"),
        (dict(figsize=(3, 4, 5)), r"figsize must be \(width, height\) .*got \(3, 4, 5\)"),
    ):
        with pytest.raises(ValueError, match=match):
            sdc.pl.probabilities(clustered, "scdcc", show=False, **options)
    assert plt.get_fignums() == open_figures


def _soft_run(labels, probs):
    """An AnnData holding a run "scdcc" of these labels and soft assignments."""
    import anndata as ad

    adata = ad.AnnData(np.zeros((len(labels), 2), np.float32))
    categories = [str(c) for c in range(probs.shape[1])]
    adata.obs["scdcc"] = pd.Categorical(
        [None if c < 0 else str(c) for c in labels], categories=categories
    )
    adata.obsm["scdcc_probs"] = probs.astype(np.float32)
    adata.obs["scdcc_confidence"] = probs.max(1).astype(np.float32)
    adata.uns["scdcc"] = {"params": {"method": "scdcc"}, "n_clusters": probs.shape[1]}
    return adata


def _sure_of(labels, n_clusters=3):
    probs = np.full((len(labels), n_clusters), 0.2 / (n_clusters - 1), np.float32)
    probs[np.arange(len(labels)), labels] = 0.8
    return probs


def test_probabilities_refuses_soft_assignments_a_little_off_one():
    probs = np.random.default_rng(0).dirichlet(np.ones(3), 90)
    probs[:3] *= 0.97
    with pytest.raises(ValueError, match=r"soft assignments of 3 cells .* do not sum to 1"):
        sdc.pl.probabilities(_soft_run(probs.argmax(1), probs), "scdcc", show=False)


def test_probabilities_leaves_out_cells_without_a_cluster():
    probs = np.random.default_rng(0).dirichlet(np.ones(3), 90)
    labels = probs.argmax(1)
    labels[:5] = -1  # added after the run
    fig = sdc.pl.probabilities(_soft_run(labels, probs), "scdcc", show=False)
    assert fig.axes[1].images[0].get_array().shape == (85, 3)
    assert "(85 cells; 5 without a cluster left out)" in fig.axes[1].get_title()


def test_probabilities_shows_every_clusters_share_of_a_subsample():
    labels = np.repeat([0, 1, 2], [60, 60, 60])
    adata = _soft_run(labels, _sure_of(labels))
    fig = sdc.pl.probabilities(adata, "scdcc", max_cells=30, show=False)
    strip = np.asarray(fig.axes[0].images[0].get_array()).ravel()
    assert [int((strip == c).sum()) for c in range(3)] == [10, 10, 10]


def test_probabilities_names_one_of_two_tiny_neighbouring_blocks():
    labels = np.repeat([0, 1, 2], [1, 2, 87])
    fig = sdc.pl.probabilities(_soft_run(labels, _sure_of(labels)), "scdcc", show=False)
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["0", "2"]


def test_probabilities_draws_a_cluster_of_equal_confidences_as_points():
    labels = np.repeat([0, 1, 2], 30)
    probs = _sure_of(labels)  # cluster 0's cells all equally sure
    rng = np.random.default_rng(0)
    probs[30:] = rng.dirichlet(np.ones(3), 60)
    probs[30:60, 1] += 2
    probs[60:, 2] += 2
    probs /= probs.sum(1, keepdims=True)
    fig = sdc.pl.probabilities(_soft_run(labels, probs), "scdcc", show=False)
    from matplotlib.collections import PolyCollection

    violins = [c for c in fig.axes[3].collections if isinstance(c, PolyCollection)]
    assert len(violins) == 2


def test_column_names_of_numbered_clusters_that_share_a_column_are_the_numbers():
    from scdeepclust.pl._probabilities import _column_names

    probs = np.eye(3, dtype=np.float32)[np.full(30, 2)]  # every cell assigned to column 2
    codes = np.repeat([0, 1, 2], 10)
    assert _column_names(["0", "1", "2"], codes, probs) == ["0", "1", "2"]


def test_probabilities_turns_long_cluster_names_upright(clustered):
    """Names such as "CD14 Mono" overlapped under the heatmap and the violins."""
    adata = clustered.copy()
    fig = sdc.pl.probabilities(adata, "scdcc", show=False)
    assert all(t.get_rotation() == 0 for ax in fig.axes[1::2] for t in ax.get_xticklabels())
    names = ["CD14 Mono", "CD4 T", "B cells", "NK"][: len(adata.obs["scdcc"].cat.categories)]
    adata.rename_categories("scdcc", names)
    fig = sdc.pl.probabilities(adata, "scdcc", show=False)
    for ax in fig.axes[1::2]:  # the heatmap and the violins
        assert all(t.get_rotation() == 90 for t in ax.get_xticklabels())


def test_column_names_follow_clusters_merged_and_numbered_again():
    """Cluster 4 merged into 3 and the higher ones numbered down (5 -> 4, ...), as scanpy users
    tidy clusters: fewer than half moved and no two swapped, so the run's numbers stayed, and
    the cells called "4" lit up under the column named "5"."""
    from scdeepclust.pl._probabilities import _column_names

    columns = np.repeat(np.arange(7), 10)
    probs = np.eye(7, dtype=np.float32)[columns]
    codes = np.array([0, 1, 2, 3, 3, 4, 5])[columns]
    names = ["0", "1", "2", "3", "4", "5"]
    assert _column_names(names, codes, probs) == ["0", "1", "2", "3", "(4)", "4", "5"]


def test_column_names_keep_a_number_whose_cells_share_its_column_with_an_annotation():
    """Cells of low confidence set to "unassigned", most of them from cluster 2: column 2 was
    drawn as "(2)", as if cluster 2's cells sat elsewhere."""
    from scdeepclust.pl._probabilities import _column_names

    columns = np.repeat(np.arange(3), 10)
    probs = np.eye(3, dtype=np.float32)[columns]
    codes = np.where(np.arange(30) % 10 < 3, 3, columns)  # a few of each cluster's cells
    codes[(columns == 2) & (np.arange(30) % 10 < 8)] = 3  # and most of cluster 2's
    names = ["0", "1", "2", "unassigned"]
    assert _column_names(names, codes, probs) == ["0", "1", "2"]


def test_column_names_leave_a_column_two_annotations_hold_its_number():
    from scdeepclust.pl._probabilities import _column_names

    probs = np.eye(3, dtype=np.float32)[np.repeat([0, 0, 1], 10)]
    codes = np.repeat([0, 1, 2], 10)
    assert _column_names(["B cells", "T cells", "NK"], codes, probs) == ["0", "NK", "2"]


def test_probabilities_counts_the_cells_below_the_threshold_not_at_it():
    labels = np.repeat([0, 1, 2], 20)
    probs = np.full((60, 3), 0.25, np.float32)
    probs[np.arange(60), labels] = 0.5
    probs[:5, 0], probs[:5, 1] = 0.4, 0.35  # five of cluster 0 below
    fig = sdc.pl.probabilities(_soft_run(labels, probs), "scdcc", threshold=0.5, show=False)
    assert [t.get_text() for t in fig.axes[3].texts] == ["25%", "0%", "0%"]


def test_probabilities_of_twelve_clusters_keeps_the_large_ticks():
    labels = np.repeat(np.arange(12), 10)
    fig = sdc.pl.probabilities(_soft_run(labels, _sure_of(labels, 12)), "scdcc", show=False)
    assert {t.get_fontsize() for t in fig.axes[3].get_xticklabels()} == {9.0}


def test_probabilities_colours_each_confidence_by_its_cluster_after_an_empty_one():
    from matplotlib.collections import PolyCollection
    from matplotlib.colors import to_rgb

    labels = np.repeat([1, 2], 30)  # cluster 0 holds no cell
    probs = np.random.default_rng(0).dirichlet(np.ones(3), 60)
    probs[np.arange(60), labels] += 2
    probs /= probs.sum(1, keepdims=True)
    palette = ["red", "green", "blue"]
    fig = sdc.pl.probabilities(_soft_run(labels, probs), "scdcc", palette=palette, show=False)
    violins = [c for c in fig.axes[3].collections if isinstance(c, PolyCollection)]
    drawn = [v.get_facecolor()[0][:3] for v in violins]
    np.testing.assert_allclose(drawn, [to_rgb("green"), to_rgb("blue")])


def test_compare_names_no_label_as_text_of_any_spacing_largest_first():
    adata = _labelled_run()
    truth = adata.obs["truth"].astype(str).to_numpy().astype(object)
    truth[:3] = " unknown "
    truth[3:7] = "NA"
    truth[7] = "?"
    adata.obs["truth"] = truth
    with pytest.warns(UserWarning, match="labels cells") as caught:
        sdc.pl.compare(adata, "run", "truth", show=False)
    message = str(caught[0].message)
    assert "labels cells 'NA' (4 cells), ' unknown ' (3 cells), '?' (1 cell): such" in message
    # the line to paste makes the largest missing, whatever the column's type
    column = "adata.obs['truth']"
    assert f"`{column} = {column}.mask({column}.astype(str) == 'NA')`" in message


def test_compare_says_nothing_of_missing_values_nor_of_a_no_label_category_without_cells():
    adata = _labelled_run()
    truth = adata.obs["truth"].cat.add_categories(["NA"])  # a category, but of no cell
    truth.iloc[:3] = np.nan  # missing values are left out of the scores already
    adata.obs["truth"] = truth
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        sdc.pl.compare(adata, "run", "truth", show=False)


def test_a_missing_run_lists_only_the_runs_whose_labels_are_there():
    labels = np.repeat([0, 1, 2], 10)
    adata = _soft_run(labels, _sure_of(labels))
    adata.uns["scdcc"]["history"] = {}
    adata.uns["gone"] = {"history": {}, "params": {}, "n_clusters": 3}  # its labels deleted
    with pytest.raises(KeyError, match=r"Runs in this AnnData: \['scdcc'\];"):
        sdc.pl.probabilities(adata, "scdc", show=False)
    with pytest.raises(TypeError, match=r"key must be the non-empty key_added of a run, got ''"):
        sdc.pl.probabilities(adata, "", show=False)


def test_a_palette_of_fewer_colours_than_clusters_is_cycled():
    from matplotlib.collections import PolyCollection
    from matplotlib.colors import to_rgb

    labels = np.repeat([0, 1, 2], 30)
    probs = np.random.default_rng(0).dirichlet(np.ones(3), 90)
    probs[np.arange(90), labels] += 2
    probs /= probs.sum(1, keepdims=True)
    adata = _soft_run(labels, probs)
    fig = sdc.pl.probabilities(adata, "scdcc", palette=["red", "blue"], show=False)
    violins = [c for c in fig.axes[3].collections if isinstance(c, PolyCollection)]
    drawn = [v.get_facecolor()[0][:3] for v in violins]
    np.testing.assert_allclose(drawn, [to_rgb("red"), to_rgb("blue"), to_rgb("red")])


def test_a_save_that_asks_for_no_file_writes_none_and_does_not_warn(figdir):
    labels = np.repeat([0, 1, 2], 10)
    adata = _soft_run(labels, _sure_of(labels))
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        for save in ("", False, None):
            sdc.pl.probabilities(adata, "scdcc", show=False, save=save)
    assert list(figdir.iterdir()) == []


def test_a_saved_figure_takes_a_path_as_it_is_and_an_extension_in_any_case(
    figdir, tmp_path, monkeypatch
):
    from pathlib import Path

    labels = np.repeat([0, 1, 2], 10)
    adata = _soft_run(labels, _sure_of(labels))
    monkeypatch.chdir(tmp_path)
    open_figures = plt.get_fignums()
    with pytest.warns(FutureWarning, match="deprecated"):
        sdc.pl.probabilities(adata, "scdcc", show=False, save=Path("f.png"))
    assert (tmp_path / "f.png").stat().st_size > 0
    assert plt.get_fignums() == open_figures  # a saved figure is closed
    with pytest.warns(FutureWarning, match="deprecated"):
        sdc.pl.probabilities(adata, "scdcc", show=False, save="_x.PDF")
    assert (figdir / f"probabilities_scdcc_x{sc.settings.plot_suffix}.pdf").exists()


def test_panels_of_genes_by_symbol_are_drawn_and_of_raw_genes_only_where_raw_is_read(clustered):
    adata = clustered.copy()
    adata.var["symbol"] = [f"SYM{i}" for i in range(adata.n_vars)]
    axes = sdc.pl.embedding(
        adata, "scdcc", basis="X_scdcc", color="SYM3", gene_symbols="symbol", show=False
    )
    assert [ax.get_title() for ax in axes] == ["scdcc", "SYM3"]
    adata.raw = adata
    adata = adata[:, 1:].copy()  # gene0 now in .raw alone
    axes = sdc.pl.embedding(adata, "scdcc", basis="X_scdcc", color="gene0", show=False)
    assert [ax.get_title() for ax in axes] == ["scdcc", "gene0"]
    plt.close("all")
    with pytest.raises(KeyError, match=r"color \['gene0'\] not found"):  # not scanpy's later
        sdc.pl.embedding(adata, "scdcc", basis="X_scdcc", color="gene0", use_raw=False, show=False)


def test_panel_option_helpers_on_their_edges():
    from scdeepclust.pl._utils import _align_per_panel_options, spans_decades, wrap_to_width

    # one title for one colour names that colour's panel; the clusters' panel keeps its key
    kwargs = {"title": ["my gene"], "vmax": [3.0]}
    _align_per_panel_options("scdcc", ["gene1"], ["scdcc", "gene1"], kwargs)
    assert kwargs == {"title": ["scdcc", "my gene"], "vmax": [3.0]}  # one vmax: every panel
    # a narrow figure still gets lines of 20 characters, not one word each
    fig = plt.figure(figsize=(1, 1))
    lines = wrap_to_width(fig, "a b c d e f g h i j k l m n o p", fontsize=12).splitlines()
    plt.close(fig)
    assert max(map(len, lines)) > 10 and all(len(line) <= 20 for line in lines)
    # a zero spreads over no decades it could be drawn on: no log axis
    assert spans_decades([1.0, 100.0]) and not spans_decades([0.0, 100.0])


def test_tick_names_turn_upright_from_four_characters_or_thirteen_names():
    """Kills R01 (names of four characters, "CD14", stayed level: the bound was 4)."""
    from scdeepclust.pl._utils import turn_long_tick_names

    for names, turned in (
        (["CD14", "B"], True),
        (["NK1", "B"], False),
        ([str(i) for i in range(13)], True),
        ([str(i) for i in range(12)], False),
    ):
        _, ax = plt.subplots()
        ax.set_xticks(range(len(names)), names)
        turn_long_tick_names(ax, names)
        rotations = {t.get_rotation() for t in ax.get_xticklabels()}
        assert rotations == ({90} if turned else {0}), names


def test_compare_turns_the_cluster_names_upright_by_their_own_length():
    """Kills R07 and R08: the known labels' names (the rows) decided whether the clusters'
    names (the columns) turned, or pl.compare never turned them."""
    adata = _labelled_run()
    adata.obs["truth"] = adata.obs["truth"].cat.rename_categories(["CD14 Mono", "B", "NK"])
    ax = sdc.pl.compare(adata, "run", "truth", show=False)
    assert {t.get_rotation() for t in ax.get_xticklabels()} == {0}
    adata.obs["run"] = adata.obs["run"].cat.rename_categories(lambda c: f"cluster {c}")
    ax = sdc.pl.compare(adata, "run", "truth", show=False)
    assert {t.get_rotation() for t in ax.get_xticklabels()} == {90}


def test_umap_leaves_room_after_a_panel_for_its_own_legend(clustered):
    """Kills U06: the space between the panels was fitted to the legends of the panels after
    the first (short names here), and the clusters' long names ran into the next panel."""
    adata = clustered.copy()
    names = [f"a cluster of long name {c}" for c in adata.obs["scdcc"].cat.categories]
    adata.rename_categories("scdcc", names)
    axes = sdc.pl.umap(adata, "scdcc", color=["group"], show=False)
    axes[0].figure.canvas.draw()
    legend = axes[0].get_legend().get_window_extent()
    assert legend.x1 <= axes[1].get_window_extent().x0


def test_umap_of_fewer_cells_than_neighbours_takes_all_the_other_cells(clustered):
    """Kills U12 (as many neighbours as cells: a cell is not its own neighbour)."""
    small = clustered[:10].copy()
    sdc.pl.umap(small, "scdcc", show=False)
    assert small.uns["neighbors_scdcc"]["params"]["n_neighbors"] == 9


def test_umap_refuses_an_embedding_with_one_missing_coordinate(clustered):
    """Kills U13 (only cells without any coordinate were named; one NaN went to scikit-learn)."""
    run = clustered.copy()
    run.obsm["X_scdcc"] = run.obsm["X_scdcc"].copy()
    run.obsm["X_scdcc"][0, 0] = np.nan
    with pytest.raises(ValueError, match=r"no values \(NaN\) for 1 of 240 cells"):
        sdc.pl.umap(run, "scdcc", show=False)


def test_umap_of_a_subset_says_it_lays_out_anew_and_how_to_keep_the_parents_layout(clustered):
    """scanpy draws a subset where its parent's UMAP put it; pl.umap laid out a new one for
    the subset without a word."""
    run = clustered.copy()
    sdc.pl.umap(run, "scdcc", show=False)
    assert run.uns["X_umap_scdcc"]["params"]["scdeepclust_n_cells"] == 240
    outside = (run.obs["scdcc"] != "0").to_numpy()
    parents = run.obsm["X_umap_scdcc"][outside]
    kept = run[outside]
    sdc.pl.embedding(kept, "scdcc", basis="X_umap_scdcc", show=False)
    np.testing.assert_array_equal(kept.obsm["X_umap_scdcc"], parents)
    subset = run[outside]
    with pytest.warns(UserWarning, match=r"laid out on 240 cells, not these \d+: pl.umap") as w:
        sdc.pl.umap(subset, "scdcc", show=False)
    assert "pl.embedding(adata, 'scdcc', basis='X_umap_scdcc')" in str(w[0].message)
    assert w[0].filename == __file__
    assert subset.uns["X_umap_scdcc"]["params"]["scdeepclust_n_cells"] == subset.n_obs
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sdc.pl.umap(subset, "scdcc", show=False)  # its own layout now: reused, no warning
        sdc.pl.umap(run, "scdcc", show=False, n_neighbors=7)  # other settings: no warning
        sdc.pl.embedding(subset, "scdcc", basis="X_umap_scdcc", show=False)
        sdc.pl.umap(run[:50].copy(), "scdcc", recompute=True, show=False)
    # a concatenation stacks other objects' layouts: nothing to draw where they put the cells
    first, second = run[:100].copy(), run[100:200].copy()
    for part in (first, second):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sdc.pl.umap(part, "scdcc", recompute=True, show=False)
    joined = ad.concat([first, second], uns_merge="first")
    with pytest.warns(UserWarning, match=r"laid out on 100 cells, not these 200") as w:
        sdc.pl.umap(joined, "scdcc", show=False)
    assert "layouts of other objects" in str(w[0].message)
    assert "pl.embedding" not in str(w[0].message)


def test_umap_recompute_lays_out_a_cached_umap_again(clustered, monkeypatch):
    """Kills U15 (recompute=True reused a cached UMAP that matched)."""
    run = clustered.copy()
    sdc.pl.umap(run, "scdcc", show=False)
    laid_out, umap = [], sc.tl.umap
    monkeypatch.setattr(sc.tl, "umap", lambda *a, **k: laid_out.append(1) or umap(*a, **k))
    sdc.pl.umap(run, "scdcc", show=False)
    assert not laid_out
    sdc.pl.umap(run, "scdcc", recompute=True, show=False)
    assert laid_out == [1]


def test_edges_are_drawn_where_only_the_cached_graphs_connectivities_were_removed(clustered):
    """Kills U17: uns['neighbors_scdcc'] alone was taken for the graph, and scanpy's edges
    failed on the missing obsp['neighbors_scdcc_connectivities']."""
    run = clustered.copy()
    sdc.pl.umap(run, "scdcc", show=False)
    del run.obsp["neighbors_scdcc_connectivities"]
    sdc.pl.umap(run, "scdcc", edges=True, show=False)
    assert "neighbors_scdcc_connectivities" in run.obsp


def test_umap_lays_out_its_graph_with_the_random_state_given(clustered, monkeypatch):
    """Kills U23 (the graph took seed 0 whatever the random_state; it matters to the approximate
    neighbours of more than 100,000 cells)."""
    import scdeepclust.pl._umap as umap_module

    seen, neighbors = [], umap_module.plot_neighbors
    monkeypatch.setattr(
        umap_module,
        "plot_neighbors",
        lambda *a, **k: seen.append(k["random_state"]) or neighbors(*a, **k),
    )
    sdc.pl.umap(clustered.copy(), "scdcc", random_state=3, show=False)
    assert seen == [3]


def test_history_lays_the_clustering_stage_after_pretraining_on_one_epoch_axis():
    """Kills H07 (one stage named "pretrain\\nzinb"), H10 (the clustering stage's ZINB drawn
    over pretraining's epochs), H20 (the axis cut at pretraining's end) and H22 (the label
    change's axis cut at its count of refreshes, not the epoch of the last)."""
    fig = sdc.pl.history(_run_with_history(True), "run", show=False)
    reconstruction, _, change = fig.axes
    pretraining, clustering = reconstruction.get_lines()
    np.testing.assert_allclose(pretraining.get_xdata(), [1, 2, 3, 4, 5])
    np.testing.assert_allclose(clustering.get_xdata(), [6, 7, 8, 9])
    assert reconstruction.get_xlim() == (0.5, 9.5)
    assert [t.get_text() for t in reconstruction.texts] == ["pretraining", "clustering"]
    assert change.get_xlim() == (0.5, 4.5)


def test_history_orders_desc_layers_by_number_and_shades_no_clustering_stage_it_lacks():
    """Kills H04 ("layer10" before "layer2", as text) and H24 (the last pretraining stage of a
    run without clustering epochs shaded as the clustering stage)."""
    from matplotlib.colors import to_hex

    adata = sc.AnnData(np.zeros((4, 2), np.float32))
    adata.obs["run"] = pd.Categorical(np.arange(4) % 2)
    stages = ("autoencoder", "layer10", "layer2", "layer1")
    adata.uns["run"] = {
        "n_clusters": 2,
        "history": {f"pretrain_{stage}": np.linspace(2.0, 1.0, 3) for stage in stages},
    }
    reconstruction = sdc.pl.history(adata, "run", show=False).axes[0]
    legend = [t.get_text() for t in reconstruction.get_legend().get_texts()]
    assert legend == ["layer1 MSE", "layer2 MSE", "layer10 MSE", "autoencoder MSE"]
    assert "#dceaf7" not in {to_hex(p.get_facecolor()) for p in reconstruction.patches}


def test_probabilities_refusal_lists_numbers_beyond_the_columns_not_a_superscript_name():
    """Q03: the list of clusters beyond the columns read every category with int(): an unused
    category "²" turned the refusal into "invalid literal for int()"."""
    import anndata as ad

    labels = np.repeat(np.arange(4), 10)
    probs = np.eye(3, dtype=np.float32)[np.minimum(labels, 2)]
    adata = ad.AnnData(np.zeros((len(labels), 2), np.float32))
    adata.obs["scdcc"] = pd.Categorical(
        [str(c) for c in labels], categories=["0", "1", "2", "3", "²"]
    )
    adata.obsm["scdcc_probs"] = probs
    adata.obs["scdcc_confidence"] = probs.max(1)
    adata.uns["scdcc"] = {"params": {"method": "scdcc"}, "n_clusters": 3}
    with pytest.raises(ValueError, match=r"has cluster\(s\) \['3'\] without a column among"):
        sdc.pl.probabilities(adata, "scdcc", show=False)


@pytest.mark.parametrize("kept", ["history", "timings", "model_version"])
def test_a_joined_result_whose_params_lost_the_method_is_known_by_a_runs_entry(clustered, kept):
    """Kills R9/R10/R11: where the joined runs' params kept no method (a DESC and a scDCC run
    under one key, say), any one entry every run writes tells them from another tool's."""
    adata = clustered.copy()
    stored = adata.uns["desc"]
    params = {name: value for name, value in stored["params"].items() if name != "method"}
    adata.uns["desc"] = {"params": params, kept: stored.get(kept, "0.1.0")}
    assert isinstance(sdc.pl.probabilities(adata, "desc", show=False), Figure)
    with pytest.raises(KeyError, match=r"uns_merge='same' or 'unique'\) leaves it"):
        sdc.pl.history(adata, "desc", show=False)


@pytest.mark.parametrize("plot", ["history", "n_clusters"])
def test_plots_of_runs_joined_without_their_uns_say_how_to_keep_it(clustered, plot):
    """anndata.concat's default (uns_merge=None) keeps obs['desc'] and the embeddings but not
    uns['desc']: the plots said to run scdeepclust.tl.desc first."""
    first, second = clustered.copy(), clustered.copy()
    second.obs_names = [f"{name}-b" for name in second.obs_names]
    joined = ad.concat([first, second])
    assert "desc" in joined.obs and "desc" not in joined.uns
    with pytest.raises(KeyError, match=r"while obs\['desc'\] is there.*uns_merge='first'"):
        getattr(sdc.pl, plot)(joined, "desc", show=False)


@pytest.mark.parametrize("plot", ["history", "n_clusters"])
def test_plots_of_an_obs_column_that_is_no_run_list_the_runs(clustered, plot):
    """pl.history(adata, 'group'), a column of the input, said that anndata.concat had dropped
    the run's uns, and no longer listed the runs there are."""
    with pytest.raises(KeyError, match=r"Runs in this AnnData") as info:
        getattr(sdc.pl, plot)(clustered, "group", show=False)
    assert "concat" not in str(info.value)


def test_plots_of_a_lazily_read_anndata_say_to_load_it_or_draw_without_obs(clustered, tmp_path):
    """anndata.experimental.read_lazy's obs holds xarray arrays: the plots of obs columns
    failed inside scanpy or pandas (TypeError: bad operand type for unary -: 'str';
    AttributeError: 'DataArray' object has no attribute '_codes' / 'value_counts')."""
    pytest.importorskip("xarray")
    clustered.write_h5ad(tmp_path / "clustered.h5ad")
    lazy = ad.experimental.read_lazy(tmp_path / "clustered.h5ad")
    for draw in (
        lambda: sdc.pl.embedding(lazy, "scdcc", show=False),
        lambda: sdc.pl.umap(lazy, "scdcc", show=False),
        lambda: sdc.pl.probabilities(lazy, "scdcc", show=False),
        lambda: sdc.pl.compare(lazy, "scdcc", "group", show=False),
    ):
        with pytest.raises(ValueError, match=r"read lazily.*adata = adata\.to_memory\(\)"):
            draw()
    assert isinstance(sdc.pl.history(lazy, "scdcc", show=False), Figure)  # uns alone


def test_umap_of_a_view_of_a_backed_anndata_says_to_load_it(clustered, tmp_path):
    """anndata refused the layout's write: 'To copy an AnnData object in backed mode, pass a
    filename', though the caller asked for no copy."""
    adata = clustered.copy()
    sdc.pl.umap(adata, "scdcc", show=False)  # a layout cached for all cells
    adata.write_h5ad(tmp_path / "clustered.h5ad")
    backed = ad.read_h5ad(tmp_path / "clustered.h5ad", backed="r")
    try:
        subset = backed[:50]
        with pytest.raises(ValueError, match=r"view of a backed.*to_memory\(\).*basis='X_umap_"):
            sdc.pl.umap(subset, "scdcc", show=False)
        assert isinstance(sdc.pl.umap(backed, "scdcc", show=False), Axes)  # cached, all cells
        assert isinstance(sdc.pl.umap(subset.to_memory(), "scdcc", show=False), Axes)
    finally:
        backed.file.close()
    # without stored colours, the line would fail as pl.umap did (scanpy writes them)
    del adata.uns["scdcc_colors"]
    adata.write_h5ad(tmp_path / "uncoloured.h5ad")
    backed = ad.read_h5ad(tmp_path / "uncoloured.h5ad", backed="r")
    try:
        with pytest.raises(ValueError, match="view of a backed") as refused:
            sdc.pl.umap(backed[:50], "scdcc", show=False)
        assert "pl.embedding" not in str(refused.value)
    finally:
        backed.file.close()


def test_plots_draw_scdcc_runs_joined_with_their_params_alone(clustered):
    """Kills R8: scDCC's params name their method as DESC's do."""
    adata = clustered.copy()
    adata.uns["scdcc"] = {"params": dict(adata.uns["scdcc"]["params"])}
    assert adata.uns["scdcc"]["params"]["method"] == "scdcc"
    assert isinstance(sdc.pl.probabilities(adata, "scdcc", show=False), Figure)
    with pytest.raises(KeyError, match=r"uns_merge='same' or 'unique'\) leaves it"):
        sdc.pl.n_clusters(adata, "scdcc", show=False)


def test_probabilities_keeps_the_runs_number_for_a_column_two_spellings_claim():
    """Kills P1: "1" and "01" both number column 1; neither spelling names it."""
    from scdeepclust.pl._probabilities import _column_names

    probs = np.eye(2, dtype=np.float32)[np.repeat([0, 1, 1], 10)]
    codes = np.repeat(np.arange(3), 10)
    assert _column_names(["0", "01", "1"], codes, probs) == ["0", "1"]
    assert _column_names(["0", "1", "01"], codes, probs) == ["0", "1"]


def test_umap_says_nothing_of_a_recorded_layout_no_longer_in_obsm(clustered):
    """Kills U2: the warning named obsm's layout where the subset had none (deleted, or
    left out by anndata.concat's inner join of obsm)."""
    run = clustered.copy()
    sdc.pl.umap(run, "scdcc", show=False)
    subset = run[:100].copy()
    del subset.obsm["X_umap_scdcc"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sdc.pl.umap(subset, "scdcc", show=False)
    assert subset.uns["X_umap_scdcc"]["params"]["scdeepclust_n_cells"] == 100


def test_umap_laid_out_by_an_earlier_version_is_laid_out_again_without_a_warning(clustered):
    """Kills U4: a cached UMAP that records no number of cells (written before
    scdeepclust_n_cells) is no subset's layout."""
    run = clustered.copy()
    sdc.pl.umap(run, "scdcc", show=False)
    del run.uns["X_umap_scdcc"]["params"]["scdeepclust_n_cells"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sdc.pl.umap(run, "scdcc", show=False, n_neighbors=7)  # other settings: laid out again
    assert run.uns["X_umap_scdcc"]["params"]["scdeepclust_n_cells"] == run.n_obs


def test_plots_that_read_no_uns_draw_a_result_whose_uns_entry_is_gone(clustered):
    """Kills R7: without adata.uns[key] (deleted, or not kept by a join) the labels,
    embedding and soft assignments still draw; only the training plots need it."""
    adata = clustered.copy()
    del adata.uns["desc"]
    assert isinstance(sdc.pl.probabilities(adata, "desc", show=False), Figure)
    assert isinstance(sdc.pl.compare(adata, "desc", "group", show=False), Axes)
    with pytest.raises(KeyError, match=r"adata.uns\['desc'\] not found"):
        sdc.pl.history(adata, "desc", show=False)


matplotlib.use("Agg")

import pytest  # noqa: E402

import scdeepclust as sdc  # noqa: E402


def _run(truth, clusters, categories=None):
    adata = sc.AnnData(np.zeros((len(truth), 2), np.float32))
    adata.obs["truth"] = pd.Categorical(truth)
    adata.obs["run"] = pd.Categorical(clusters, categories=categories)
    adata.uns["run"] = {"n_clusters": len(set(clusters))}
    return adata


def test_compare_keeps_the_cluster_order_of_the_categories_among_equal_overlaps():
    """Clusters '2' and '10' hold one cell of 'a' each: they follow the run's categories (2
    before 10, as write_results orders them), not the text order of the table."""
    adata = _run(
        list("aaaaaabbbb"),
        ["0"] * 4 + ["2", "10"] + ["1"] * 4,
        categories=["0", "1", "2", "10"],
    )
    ax = sdc.pl.compare(adata, "run", "truth", show=False)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "2", "10", "1"]
    plt.close("all")


def test_compare_writes_the_counts_of_tables_up_to_25_by_25_and_only_in_boxes_with_cells():
    names = [f"t{i:02d}" for i in range(25)]
    square = _run(names, [str(i) for i in range(25)], categories=[str(i) for i in range(25)])
    ax = sdc.pl.compare(square, "run", "truth", show=False)
    assert sorted(t.get_text() for t in ax.texts) == ["1"] * 25  # the diagonal, no "0"
    # 30 known labels over 2 clusters: too many rows to write in
    tall = _run([f"t{i:02d}" for i in range(30)], ["0", "1"] * 15)
    assert not sdc.pl.compare(tall, "run", "truth", show=False).texts
    assert len(sdc.pl.compare(tall, "run", "truth", annotate=True, show=False).texts) == 30
    plt.close("all")


def test_compare_writes_white_only_on_boxes_darker_than_six_tenths_of_the_darkest():
    """Row shares 1/2 and 1/4 of a row whose darkest box is 1: black; as counts (normalize=None)
    the boxes of 1 cell, of 8 at most, are black too."""
    adata = _run(list("aaaabbbb"), ["0", "0", "1", "2", "3", "3", "3", "3"])
    ax = sdc.pl.compare(adata, "run", "truth", show=False)
    colours = {t.get_text(): t.get_color() for t in ax.texts}
    assert colours == {"2": "black", "1": "black", "4": "white"}
    counts = sdc.pl.compare(adata, "run", "truth", normalize=None, show=False)
    colours = {t.get_text(): t.get_color() for t in counts.texts}
    assert colours == {"2": "black", "1": "black", "4": "white"}
    plt.close("all")


def test_diagonal_order_leaves_a_column_under_the_label_holding_its_cells_not_an_empty_pairing():
    """The one-to-one match pairs the last row with column 1 at 0 shared cells: column 1 stays
    beside the row holding its cell, not under a label it has no cell of."""

    assert diagonal_order(np.array([[5, 1, 0], [0, 0, 2], [3, 0, 0]])).tolist() == [0, 1, 2]


def test_compare_names_the_colour_scale_of_each_normalisation():
    adata = _run(list("aaaabbbb"), ["0", "0", "1", "2", "3", "3", "3", "3"])
    for normalize, label in [
        ("row", "share of each known label"),
        ("column", "share of each cluster"),
        (None, "cells"),
    ]:
        ax = sdc.pl.compare(adata, "run", "truth", normalize=normalize, show=False)
        colorbar = [a for a in ax.figure.axes if a is not ax][0]
        assert colorbar.get_ylabel() == label
    plt.close("all")


def test_compare_keeps_the_order_of_the_known_labels_categories():
    adata = _run(list("aabbcc"), ["0", "0", "1", "1", "2", "2"])
    adata.obs["truth"] = adata.obs["truth"].cat.reorder_categories(["c", "a", "b"])
    ax = sdc.pl.compare(adata, "run", "truth", show=False)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["c", "a", "b"]
    plt.close("all")


def test_compare_takes_known_labels_of_mixed_types():
    adata = _run(list("aabbcc"), ["0", "0", "1", "1", "2", "2"])
    adata.obs["mixed"] = pd.Series([1, 1, "x", "x", 2.5, 2.5], index=adata.obs_names, dtype=object)
    ax = sdc.pl.compare(adata, "run", "mixed", show=False)
    assert sorted(t.get_text() for t in ax.get_yticklabels()) == ["1", "2.5", "x"]
    plt.close("all")


def test_compare_sizes_its_figure_and_ticks_by_the_table():
    adata = _run([f"t{i:02d}" for i in range(15)] * 2, [str(i % 5) for i in range(30)])
    ax = sdc.pl.compare(adata, "run", "truth", show=False)
    np.testing.assert_allclose(ax.figure.get_size_inches(), (2.5 + 0.5 * 5, 1.8 + 0.38 * 15))
    assert {t.get_fontsize() for t in ax.get_yticklabels()} == {9.0}  # 15 rows
    assert {t.get_fontsize() for t in ax.get_xticklabels()} == {9.0}
    wide = _run(["a"] * 40, [f"c{i:02d}" for i in range(40)])
    ax = sdc.pl.compare(wide, "run", "truth", show=False)
    np.testing.assert_allclose(ax.figure.get_size_inches(), (16, 1.8 + 0.38))  # capped
    assert {t.get_fontsize() for t in ax.get_xticklabels()} == {6.0}
    sixteen = _run([f"t{i:02d}" for i in range(16)], ["0"] * 16)
    ax = sdc.pl.compare(sixteen, "run", "truth", show=False)
    assert {t.get_fontsize() for t in ax.get_yticklabels()} == {7.5}
    plt.close("all")


def test_compare_colours_from_zero_where_every_box_holds_cells():
    adata = _run(list("aaabbb"), ["0", "0", "1", "1", "1", "0"])  # shares 2/3 and 1/3
    ax = sdc.pl.compare(adata, "run", "truth", show=False)
    assert ax.images[0].get_clim()[0] == 0
    plt.close("all")


def test_compare_titles_the_ari_and_the_nmi_each_by_its_name():
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    truth = list("aaaaaabbbbcccc")
    clusters = ["0"] * 4 + ["1"] * 2 + ["2"] * 4 + ["3"] * 4
    ax = sdc.pl.compare(_run(truth, clusters), "run", "truth", show=False)
    ari, nmi = adjusted_rand_score(truth, clusters), normalized_mutual_info_score(truth, clusters)
    assert f"{ari:.3f}" != f"{nmi:.3f}"
    assert ax.get_title() == f"run vs truth: ARI {ari:.3f}, NMI {nmi:.3f}"
    plt.close("all")


def test_diagonal_order_of_a_table_without_rows_keeps_its_columns():

    assert diagonal_order(np.zeros((0, 3), int)).tolist() == [0, 1, 2]
    assert diagonal_order(np.zeros((2, 0), int)).tolist() == []
