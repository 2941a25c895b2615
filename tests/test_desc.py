import re
import warnings

import numpy as np
import pandas as pd
import pytest
import scanpy as sc
import torch
from scipy import sparse
from sklearn.metrics import adjusted_rand_score

import scdeepclust as sdc
from _helpers import (
    ONE_EPOCH,
    assert_unchanged,
    count_calls,
    counts_data,
    fail_desc_at_resolution,
    record_keyword,
    snapshot,
)
from scdeepclust.data import CellFeeder, RowSource
from scdeepclust.models import DESCConfig, pretrain_desc
from scdeepclust.pp._input import looks_like_principal_components, scan_matrix, warn_if_unscaled

FAST = dict(pretrain_epochs=8, max_epochs=5, progress=False, batch_size=64)


def test_output_contract_and_round_trip(scaled, tmp_path):
    sdc.tl.desc(scaled, resolution=0.5, **FAST)
    labels = scaled.obs["desc"]
    probs = scaled.obsm["desc_probs"]
    assert scaled.obsm["X_desc"].shape == (scaled.n_obs, 32)
    assert scaled.obsm["X_desc"].dtype == np.float32
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(probs.argmax(1).astype(str), labels.to_numpy())
    uns = scaled.uns["desc"]
    assert uns["params"]["hidden"].tolist() == [128, 32]
    assert uns["params"]["method"] == "desc"
    assert set(uns["history"]) >= {
        "pretrain_layer1",
        "pretrain_layer2",
        "pretrain_autoencoder",
        "cluster_clustering",
    }
    path = tmp_path / "d.h5ad"
    scaled.write_h5ad(path)
    back = sc.read_h5ad(path)
    assert back.obs["desc"].equals(labels)
    np.testing.assert_array_equal(back.obsm["desc_probs"], probs)


def test_recovers_simulated_groups(scaled):
    sdc.tl.desc(scaled, resolution=0.3, pretrain_epochs=30, max_epochs=30, progress=False)
    assert adjusted_rand_score(scaled.obs["group"], scaled.obs["desc"]) > 0.9


def test_layerwise_pretraining_trains_every_layer(scaled):
    feeder = CellFeeder(RowSource(scaled.X), device=torch.device("cpu"))
    pre = pretrain_desc(feeder, DESCConfig(pretrain_epochs=15, progress=False, batch_size=64))
    assert list(pre.history) == ["layer1", "layer2", "autoencoder"]
    for name, losses in pre.history.items():
        assert len(losses) == 15
        assert losses[-1] < losses[0], name
    end_to_end = pretrain_desc(
        feeder, DESCConfig(pretrain_epochs=3, layerwise=False, progress=False, batch_size=64)
    )
    assert list(end_to_end.history) == ["autoencoder"]


def test_layerwise_pretraining_reads_the_input_once_for_the_frozen_layers(scaled, monkeypatch):
    """Each deeper stage's input is the one before it through one more layer, not the input
    through every layer again; the result is the same to the bit."""
    import scdeepclust.models._desc as desc_models

    models = []

    class Recorded(desc_models.StackedAutoencoder):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            models.append(self)

    x = torch.from_numpy(np.asarray(scaled.X, dtype=np.float32))
    streamed = []
    original = desc_models.embed_all

    def recording(feeder, encode, width):
        out = original(feeder, encode, width)
        with torch.no_grad():  # the layers below, as they are now
            expected = models[0].encode(x, depth=len(streamed) + 1).numpy()
        streamed.append((feeder, out, expected))
        return out

    monkeypatch.setattr(desc_models, "StackedAutoencoder", Recorded)
    monkeypatch.setattr(desc_models, "embed_all", recording)
    feeder = CellFeeder(RowSource(scaled.X), device=torch.device("cpu"))
    config = DESCConfig(hidden=(24, 12, 6), pretrain_epochs=2, progress=False, batch_size=64)
    pretrain_desc(feeder, config)
    assert len(streamed) == 2  # the inputs of layers 2 and 3
    assert streamed[0][0] is feeder and streamed[1][0] is not feeder
    for _, h, expected in streamed:
        np.testing.assert_array_equal(h, expected)


def test_several_resolutions_pretrain_once(scaled, monkeypatch):
    import scdeepclust.tl._desc as desc_module

    calls = count_calls(monkeypatch, desc_module, "pretrain_desc")
    sdc.tl.desc(scaled, resolution=np.array([0.2, 1.5], dtype=np.float32), **FAST)
    assert len(calls) == 1
    for key in ("desc_0.2", "desc_1.5"):  # float32 values named as written
        assert key in scaled.obs and f"X_{key}" in scaled.obsm and key in scaled.uns
        assert scaled.uns[key]["params"]["resolution"] == float(key.split("_")[1])
    assert "desc" not in scaled.obs
    # the same pretrained network: identical histories of pretraining
    np.testing.assert_array_equal(
        scaled.uns["desc_0.2"]["history"]["pretrain_autoencoder"],
        scaled.uns["desc_1.5"]["history"]["pretrain_autoencoder"],
    )
    assert scaled.uns["desc_1.5"]["n_clusters"] >= scaled.uns["desc_0.2"]["n_clusters"]

    # one failing resolution: nothing is written, and the error says which
    fail_desc_at_resolution(monkeypatch, 3)
    before = snapshot(scaled)
    with pytest.raises(ValueError, match="resolution=3 found") as failed:
        sdc.tl.desc(scaled, resolution=[0.2, 3], key_added="failed", **FAST)
    assert "at resolution 3 of [0.2, 3]: nothing was written" in failed.value.__notes__[0]
    assert_unchanged(scaled, before)
    # sums of floats are named as written, not as 1.2000000000000002
    from scdeepclust.tl._validate import check_resolution, resolution_list

    assert resolution_list(np.arange(0.6, 1.3, 0.2)) == [0.6, 0.8, 1.0, 1.2]
    # any sequence of numbers, as the signature says (a range was refused as "a number")
    assert resolution_list(range(1, 3)) == [1, 2]
    assert resolution_list(pd.Series([0.8, 1.5])) == [0.8, 1.5]
    with pytest.raises(ValueError, match="resolution must be a positive number"):
        check_resolution("0.8")  # text is not a sequence of resolutions
    check_resolution(range(1, 3))
    assert resolution_list([0.1 + 0.2, np.float32(0.3), 2]) == [0.3, 0.3, 2]


def test_resolutions_share_one_embedding_pass_and_neighbour_lookup(scaled, monkeypatch):
    import scdeepclust.train._dec as dec

    passes = count_calls(monkeypatch, dec, "embed_all")
    lookups = count_calls(monkeypatch, dec, "neighbour_view")
    both = sdc.tl.desc(scaled, resolution=[0.2, 1.5], copy=True, **FAST)
    assert len(passes) == 1 and len(lookups) == 1
    alone = sdc.tl.desc(scaled, resolution=1.5, copy=True, **FAST)
    # the second resolution's run is the one it would be on its own
    np.testing.assert_array_equal(both.obs["desc_1.5"], alone.obs["desc"])
    np.testing.assert_array_equal(both.obsm["X_desc_1.5"], alone.obsm["X_desc"])
    np.testing.assert_array_equal(both.obs["desc_1.5_confidence"], alone.obs["desc_confidence"])


def test_gaussian_kernel_and_kmeans(scaled):
    model = sdc.tl.desc(
        scaled, n_clusters=3, kernel="gaussian", init="kmeans", return_model=True, **FAST
    )
    assert scaled.uns["desc"]["params"]["kernel"] == "gaussian"
    assert scaled.uns["desc"]["init_method"] == "kmeans"
    # the soft assignments are the Gaussian kernel's of the embedding and the centroids (only
    # the recorded parameter was checked before)
    z, centroids = scaled.obsm["X_desc"], model.centroids
    distances = ((z[:, None, :] - centroids[None]) ** 2).sum(-1)
    gaussian = np.exp(-(distances - distances.min(1, keepdims=True)) / 2)
    gaussian /= gaussian.sum(1, keepdims=True)
    np.testing.assert_allclose(scaled.obsm["desc_probs"], gaussian, atol=1e-4)


def test_use_rep(scaled):
    sc.pp.pca(scaled, n_comps=20)
    sdc.tl.desc(scaled, use_rep="X_pca", n_clusters=3, **FAST)
    assert scaled.uns["desc"]["params"]["input"] == "obsm['X_pca']"
    assert adjusted_rand_score(scaled.obs["group"], scaled.obs["desc"]) > 0.5


def test_an_array_with_negative_strides_is_read_as_its_copy(scaled):
    """scanpy's PCA of a float32 X leaves obsm['X_pca'] a reversed view (strides (80, -4)),
    which torch refused: tl.desc(use_rep='X_pca') failed after a plain sc.pp.pca."""
    rep = np.random.default_rng(0).normal(size=(scaled.n_obs, 8)).astype(np.float32)
    reversed_view = np.ascontiguousarray(rep[:, ::-1])[:, ::-1]
    assert reversed_view.strides[1] < 0
    fast = dict(n_clusters=3, pretrain_epochs=1, max_epochs=1, progress=False, random_state=0)
    runs = []
    for values in (rep, reversed_view):
        scaled.obsm["X_rep"] = values
        runs.append(sdc.tl.desc(scaled, use_rep="X_rep", copy=True, **fast).obsm["X_desc"])
    np.testing.assert_array_equal(runs[0], runs[1])
    scaled.X = np.ascontiguousarray(scaled.X[:, ::-1], dtype=np.float32)[:, ::-1]
    assert scaled.X.strides[1] < 0
    sdc.tl.desc(scaled, **fast)


def test_sparse_equals_dense(sim):
    sc.pp.normalize_total(sim)
    sc.pp.log1p(sim)  # sparse, unscaled
    dense = sim.copy()
    dense.X = sim.X.toarray()
    a = sdc.tl.desc(sim, n_clusters=3, copy=True, **FAST)
    b = sdc.tl.desc(dense, n_clusters=3, copy=True, **FAST)
    np.testing.assert_allclose(a.obsm["X_desc"], b.obsm["X_desc"], rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(a.obs["desc"], b.obs["desc"])


def test_determinism(scaled):
    a = sdc.tl.desc(scaled, copy=True, **FAST)
    b = sdc.tl.desc(scaled, copy=True, **FAST)
    np.testing.assert_array_equal(a.obs["desc"], b.obs["desc"])
    np.testing.assert_array_equal(a.obsm["X_desc"], b.obsm["X_desc"])


def test_counts_warn(sim):
    with pytest.warns(UserWarning, match="looks like raw counts"):
        sdc.tl.desc(sim, n_clusters=3, pretrain_epochs=1, max_epochs=1, progress=False)


@pytest.mark.parametrize("factor", [1e-3, 100.0])
def test_input_far_from_z_scores_warns_unless_desc_scales_it(scaled, factor):
    # simulated groups z-scored and multiplied by 0.003: one cluster, by 30: ARI 0.41, silently
    scaled.X = scaled.X * factor
    options = dict(
        n_clusters=3, pretrain_epochs=1, max_epochs=1, progress=False, batch_size=64, copy=True
    )
    with pytest.warns(UserWarning, match="root mean square") as caught:
        sdc.tl.desc(scaled, **options)
    assert [w.filename for w in caught if "root mean square" in str(w.message)] == [__file__]
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        warnings.filterwarnings("ignore", "The clustering stage.* stopped at max_epochs")
        sdc.tl.desc(scaled, scale=True, **options)


def test_z_scored_log_normalised_and_counts_get_no_scale_warning():
    options = dict(
        n_clusters=3, pretrain_epochs=1, max_epochs=1, progress=False, batch_size=64, copy=True
    )
    counts = sdc.datasets.simulate(240, 120, 3, de_fraction=0.3, random_state=1)
    logged = counts.copy()
    sc.pp.normalize_total(logged)
    sc.pp.log1p(logged)
    scaled = logged.copy()
    sc.pp.scale(scaled, max_value=10)
    for adata in (scaled, logged, counts):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            sdc.tl.desc(adata, **options)
        assert not [w for w in caught if "root mean square" in str(w.message)]


def test_single_cluster_resolution_is_refused(scaled, monkeypatch):
    from scdeepclust.train import _centroids

    blob = np.random.default_rng(0).normal(size=(300, 4)).astype(np.float32)
    with pytest.raises(ValueError, match="larger `resolution`.*no distinct groups"):
        _centroids.initial_centroids(
            blob, n_clusters=None, resolution=1e-4, n_neighbors=10, random_state=0
        )
    # through the public function: an error, and the AnnData untouched
    monkeypatch.setattr(
        _centroids, "leiden_labels", lambda z, **kw: np.zeros(len(z), dtype=np.int64)
    )
    before = snapshot(scaled)
    with pytest.raises(ValueError, match="larger `resolution`"):
        sdc.tl.desc(scaled, resolution=0.01, **FAST)
    assert_unchanged(scaled, before)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(use_rep="X_missing"), KeyError, "use_rep 'X_missing'"),
        (dict(layer="missing"), KeyError, "Layer 'missing'"),
        (dict(layer="counts", use_rep="X_pca"), ValueError, "either layer or use_rep"),
        (dict(kernel="cauchy"), ValueError, "kernel"),
        (dict(drop_rate=1.0), ValueError, r"drop_rate must be in \[0, 1\)"),
        (dict(drop_rate=-0.1), ValueError, "drop_rate"),
        (dict(resolution=[]), ValueError, "non-empty"),
        (dict(resolution=[0.9, 0.3 + 0.6]), ValueError, r"resolution lists \[0\.9\] more"),
    ],
)
def test_bad_arguments(scaled, kwargs, error, match):
    before = snapshot(scaled)
    with pytest.raises(error, match=match):
        sdc.tl.desc(scaled, **kwargs, **FAST)
    assert_unchanged(scaled, before)


def test_nan_refused(scaled):
    scaled.X[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        sdc.tl.desc(scaled, **FAST)


def test_pretraining_steps_stop_growing_beyond_100000_cells():
    # Longer pretraining on large data gave far-out cells that Leiden split off (scaling_1m_desc*)
    config = DESCConfig()
    assert config.resolved_pretrain_epochs(4_000) == config.resolved_pretrain_epochs(100_000) == 25
    steps_at_100k = 25 * 100_000
    for n_obs in (200_000, 500_000, 1_000_000):  # at least 2 epochs: more steps beyond
        steps = config.resolved_pretrain_epochs(n_obs) * n_obs
        assert 0.75 * steps_at_100k <= steps <= 1.25 * steps_at_100k, n_obs
    assert DESCConfig(pretrain_epochs=7).resolved_pretrain_epochs(1_000_000) == 7


def test_first_target_leans_on_the_initial_labels(scaled, monkeypatch):
    from scdeepclust.train import _dec

    seen = {"labels": [], "initial": []}
    initial_centroids, train_clustering = _dec.initial_centroids, _dec.train_clustering

    def init_spy(z, **kwargs):
        out = initial_centroids(z, **kwargs)
        seen["labels"].append(out.labels)
        return out

    def stage_spy(*args, initial_probabilities=None, **kwargs):
        seen["initial"].append(initial_probabilities.copy())
        return train_clustering(*args, initial_probabilities=initial_probabilities, **kwargs)

    monkeypatch.setattr(_dec, "initial_centroids", init_spy)
    monkeypatch.setattr(_dec, "train_clustering", stage_spy)
    own = sdc.tl.desc(scaled, initial_label_weight=0, copy=True, **FAST)
    leaning = sdc.tl.desc(scaled, copy=True, **FAST)  # the default, 0.5
    assert own.uns["desc"]["params"]["initial_label_weight"] == 0
    assert leaning.uns["desc"]["params"]["initial_label_weight"] == 0.5
    np.testing.assert_array_equal(seen["labels"][0], seen["labels"][1])
    onehot = np.eye(seen["initial"][0].shape[1], dtype=np.float32)[seen["labels"][0]]
    np.testing.assert_allclose(
        seen["initial"][1], 0.5 * seen["initial"][0] + 0.5 * onehot, rtol=1e-6, atol=1e-7
    )


def test_existing_keys_are_announced_once_before_training(scaled, monkeypatch):
    # The warning came after training, key by key: under warnings as errors a run with several
    # resolutions trained, then wrote the first resolution's results and failed on the second.
    from scdeepclust.tl import _desc

    scaled.obs["desc_0.5"] = "old"
    scaled.obsm["X_desc_0.5"] = np.zeros((scaled.n_obs, 2))  # a run, its uns dropped by concat
    scaled.uns["desc_1.0"] = {"params": {"method": "desc"}}  # an earlier run's entry
    before = snapshot(scaled)

    def not_reached(*args, **kwargs):
        raise AssertionError("trained before warning")

    monkeypatch.setattr(_desc, "pretrain_desc", not_reached)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(UserWarning, match=r"desc_0\.5'\].*desc_1\.0'\].* will be"):
            sdc.tl.desc(scaled, resolution=[0.5, 1.0], **FAST)
    assert_unchanged(scaled, before)


def test_normalised_but_unscaled_input_is_warned_about():
    """Forgetting sc.pp.scale cost worm neurons 0.60 -> 0.42 (three seeds), without a word: the
    input's root mean square lay within the range the scale check accepts."""
    adata = sdc.datasets.simulate(300, 200, 3, mean_log_expression=-2.5, random_state=0)
    sc.pp.normalize_total(adata)
    sc.pp.log1p(adata)
    with pytest.warns(UserWarning, match=r"looks normalised but not scaled") as caught:
        sdc.tl.desc(adata, n_clusters=3, copy=True, **FAST)
    (warned,) = [w for w in caught if "not scaled" in str(w.message)]
    assert warned.filename == __file__
    assert "median standard deviation is 0.18 (1 after sc.pp.scale)" in str(warned.message)
    # what the message advises is heard: scale=True, or the input scaled (centred or not)
    centred, uncentred = adata.copy(), adata.copy()
    sc.pp.scale(centred)
    sc.pp.scale(uncentred, zero_center=False)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*not scaled")
        sdc.tl.desc(adata, n_clusters=3, scale=True, copy=True, **FAST)
        _, model = sdc.tl.desc(centred, n_clusters=3, copy=True, return_model=True, **FAST)
        sdc.tl.desc(uncentred, n_clusters=3, copy=True, **FAST)
        model.predict(centred)
    # new cells mapped onto a model of scaled ones must be scaled too
    with pytest.warns(UserWarning, match=r"not scaled.*Prepare the new cells as the model's"):
        model.predict(adata)
    # ... but onto a model of unscaled ones, as its own were
    with pytest.warns(UserWarning, match="not scaled"):
        _, unscaled_model = sdc.tl.desc(adata, n_clusters=3, return_model=True, copy=True, **FAST)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*not scaled")
        unscaled_model.predict(adata)


def test_counts_transformed_without_normalising_are_warned_about():
    """log1p without normalize_total first: each cell's depth weighs on its place, and the
    warning says how to recover the counts (not that the data are unscaled)."""
    adata = sdc.datasets.simulate(300, 200, 3, random_state=0)
    counts = adata.layers.pop("counts")
    adata.X = counts.copy()
    sc.pp.log1p(adata)
    with pytest.warns(UserWarning, match=r"adata.X holds log1p\(counts\), not normalised") as w:
        _, model = sdc.tl.desc(adata, n_clusters=3, return_model=True, copy=True, **FAST)
    (warned,) = [m for m in w if "holds log1p" in str(m.message)]
    assert warned.filename == __file__
    assert not any("not scaled" in str(m.message) for m in w)
    advice = str(warned.message).split("`")
    sparse_fix, recipe = advice[1], advice[5]
    assert recipe == "sdc.pp.recipe(adata, 'desc')"
    recovered = adata.copy()
    exec(sparse_fix, {"adata": recovered, "np": np})
    np.testing.assert_array_equal(recovered.X.toarray(), counts.toarray())
    # new cells given so are warned about as the model's own would be
    with pytest.warns(UserWarning, match=r"holds log1p.*the steps the model's training cells"):
        model.predict(adata)
    # log-normalised, or normalised in a layer that is read: no such warning
    sc.pp.normalize_total(recovered)
    sc.pp.log1p(recovered)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*holds log1p")
        sdc.tl.desc(recovered, n_clusters=3, scale=True, copy=True, **FAST)


def test_pretraining_with_no_epochs_returns_an_empty_history():
    # models.pretrain_desc(pretrain_epochs=0) failed with KeyError: 'mse' (tl.desc refuses 0)
    import torch

    from scdeepclust.data import CellFeeder, RowSource
    from scdeepclust.models import DESCConfig, pretrain_desc

    x = np.random.default_rng(0).standard_normal((100, 20)).astype(np.float32)
    feeder = CellFeeder(RowSource(x), device=torch.device("cpu"))
    outcome = pretrain_desc(feeder, DESCConfig(hidden=(8,), pretrain_epochs=0, progress=False))
    assert outcome.history and all(len(losses) == 0 for losses in outcome.history.values())


def test_a_resolution_given_with_a_number_of_clusters_is_named(scaled):
    """A list of resolutions beside n_clusters gave one result under key_added, silently (the
    command line refuses the combination)."""
    match = r"resolution=\[0.3, 0.8\] has no effect with n_clusters=3"
    with pytest.warns(UserWarning, match=match):
        out = sdc.tl.desc(scaled, n_clusters=3, resolution=[0.3, 0.8], copy=True, **FAST)
    assert "desc" in out.obs and "desc_0.3" not in out.obs
    with pytest.warns(UserWarning, match=r"resolution=1.2 has no effect with n_clusters=3"):
        sdc.tl.desc(scaled, n_clusters=3, resolution=1.2, copy=True, **FAST)
    with warnings.catch_warnings():  # the default cannot be told from a resolution left out
        warnings.filterwarnings("error", message=".*has no effect")
        sdc.tl.desc(scaled, n_clusters=3, copy=True, **FAST)


def test_init_without_a_number_of_clusters_is_named(scaled):
    with pytest.warns(UserWarning, match=r"init='kmeans' has no effect without `n_clusters`"):
        out = sdc.tl.desc(scaled, init="kmeans", copy=True, **FAST)
    assert out.uns["desc"]["init_method"].startswith("leiden")
    # a searched number (resolution=None) is reached as `init` says: nothing to name
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = sdc.tl.desc(scaled, resolution=None, init="balanced-kmeans", copy=True, **FAST)
    assert not any("no effect" in str(w.message) for w in caught)
    assert out.uns["desc"]["init_method"] == "balanced-kmeans, number searched"


def test_many_clusters_among_few_cells_leak_no_regression_warning():
    # the refinement's classifier: "The number of unique classes is greater than 50% of the
    # number of samples. `y` could represent a regression problem" from scikit-learn
    adata = sdc.datasets.simulate(60, 300, 3, random_state=11, de_log_fold=2.5)
    sdc.pp.recipe(adata, "desc")
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="The number of unique classes")
        sdc.tl.desc(adata, n_clusters=30, batch_size=16, pretrain_epochs=2, max_epochs=2)


def test_cells_all_zero_in_a_representation_get_advice_that_removes_them():
    """The advice was `sc.pp.filter_cells(adata, min_genes=1)`, which counts X: the zero rows
    of obsm stayed."""
    adata = sdc.datasets.simulate(120, 60, 3, de_fraction=0.3, de_log_fold=2.0, random_state=3)
    rep = np.random.default_rng(0).normal(size=(adata.n_obs, 8)).astype(np.float32)
    rep[:3] = 0
    rep[3:6] = -np.abs(rep[3:6])  # cells whose values sum below 0 are not empty
    adata.obsm["X_rep"] = rep
    with pytest.warns(UserWarning, match=r"3 cell\(s\) are all zero in adata.obsm") as caught:
        sdc.tl.desc(
            adata, use_rep="X_rep", n_clusters=3, pretrain_epochs=1, max_epochs=1, progress=False
        )
    said = next(str(w.message) for w in caught if "all zero" in str(w.message))
    line = said[said.index("`") + 1 : said.rindex("`")]
    kept = eval(line.removeprefix("adata = "), {"adata": adata, "np": np})
    assert kept.n_obs == adata.n_obs - 3


def test_a_representations_columns_are_no_genes_read(scaled):
    """A zero column of use_rep took gene names at its position as uns['desc']['genes_used']."""
    adata = scaled.copy()
    sc.pp.pca(adata, n_comps=10)
    adata.obsm["X_pca"][:, 3] = 0.0
    out = sdc.tl.desc(
        adata,
        n_clusters=3,
        use_rep="X_pca",
        copy=True,
        pretrain_epochs=2,
        max_epochs=2,
        progress=False,
    )
    assert "genes_used" not in out.uns["desc"]


def test_a_bad_kernel_is_refused_before_pretraining(scaled, monkeypatch):
    """An unknown `kernel` is refused up front, before the autoencoder is pretrained (the
    clustering layer refuses it too, but only after the whole pretraining)."""
    import scdeepclust.tl._desc as desc_module

    calls = count_calls(monkeypatch, desc_module, "pretrain_desc")
    with pytest.raises(ValueError, match=r"kernel must be 't' or 'gaussian', not 'cauchy'"):
        sdc.tl.desc(scaled, kernel="cauchy", **FAST)
    assert not calls


def test_batch_key_z_scores_within_batches_so_unscaled_input_is_not_warned_about():
    """With `batch_key` DESC z-scores every gene within each batch itself: log-normalised genes
    that were not scaled are what it expects, so no scale warning is given; params record the
    scaling as applied, and uns the cells of each batch."""
    adata = sdc.datasets.simulate(200, 100, 3, mean_log_expression=-2.5, random_state=0)
    sc.pp.normalize_total(adata)
    sc.pp.log1p(adata)
    adata.obs["batch"] = np.repeat(["a", "b"], [120, 80])
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*not scaled")
        warnings.filterwarnings("error", message=".*far from the z-scored")
        out = sdc.tl.desc(
            adata,
            n_clusters=3,
            batch_key="batch",
            copy=True,
            pretrain_epochs=2,
            max_epochs=2,
            progress=False,
            batch_size=64,
        )
    uns = out.uns["desc"]
    assert bool(uns["params"]["scale"])
    assert dict(zip(uns["params"]["batch_categories"], uns["batch_sizes"].tolist())) == {
        "a": 120,
        "b": 80,
    }


def test_momentum_is_the_clustering_optimizers_and_recorded(scaled, monkeypatch):
    """`momentum` is the momentum of the clustering stage's SGD, and params record it as given."""
    import scdeepclust.models._desc as desc_model

    seen = []
    original = desc_model.sgd

    def spy(params, **kwargs):
        optimizer = original(params, **kwargs)
        seen.append(optimizer.param_groups[0]["momentum"])
        return optimizer

    monkeypatch.setattr(desc_model, "sgd", spy)
    out = sdc.tl.desc(scaled, momentum=0.5, copy=True, **FAST)
    assert seen and set(seen) == {0.5}
    assert out.uns["desc"]["params"]["momentum"] == 0.5


def test_a_list_of_one_resolution_is_named_as_a_list_of_several(scaled):
    """A loop building lists of resolutions got `obs['desc']` and a model for a list of one, and
    keys by resolution and a dict of models for longer lists."""
    fast = dict(pretrain_epochs=1, max_epochs=1, progress=False, batch_size=64)
    adata, models = sdc.tl.desc(scaled, resolution=[0.8], return_model=True, copy=True, **fast)
    assert "desc_0.8" in adata.obs and "desc" not in adata.obs and list(models) == ["desc_0.8"]
    for one in (0.8, np.float32(0.8), np.array(0.8)):  # numbers, also numpy's 0-d array
        adata, model = sdc.tl.desc(scaled, resolution=one, return_model=True, copy=True, **fast)
        assert "desc" in adata.obs and isinstance(model, sdc.models.DESC)


def test_one_resolutions_failure_comes_without_a_note_on_other_resolutions(scaled, monkeypatch):
    """The note that names the failed resolution among several (nothing written for any, leave
    it out to get the others) is for a list of resolutions: one resolution's error comes as is."""
    fail_desc_at_resolution(monkeypatch, 3)
    with pytest.raises(ValueError, match="resolution=3 found") as failed:
        sdc.tl.desc(scaled, resolution=3, pretrain_epochs=1, max_epochs=1, progress=False)
    assert not getattr(failed.value, "__notes__", [])


def test_default_layer_sizes_widen_beyond_20000_cells():
    """(128, 32) up to 20,000 cells, as tl.desc's `hidden` documents; (256, 64, 32) beyond."""
    from scdeepclust.models import default_hidden

    assert default_hidden(20_000) == (128, 32)
    assert default_hidden(20_001) == (256, 64, 32)


def test_a_last_minibatch_of_one_cell_joins_the_one_before_under_dropout():
    """A last minibatch of a single cell joins the one before (64 + 1 rows here): the denoising
    pretraining's dropout masks take a minibatch one cell larger than `batch_size`."""
    x = np.random.default_rng(0).normal(size=(129, 20)).astype(np.float32)
    feeder = CellFeeder(RowSource(x), device=torch.device("cpu"))
    config = DESCConfig(hidden=(16, 8), pretrain_epochs=1, batch_size=64, progress=False)
    pre = pretrain_desc(feeder, config)
    assert {k: len(v) for k, v in pre.history.items()} == {
        "layer1": 1,
        "layer2": 1,
        "autoencoder": 1,
    }


def test_given_pretraining_epochs_are_whole_and_only_the_default_stops_on_a_plateau(monkeypatch):
    """A given `pretrain_epochs` means that many whole epochs per stage; early stopping on a
    plateau belongs to the default (None) only."""
    import scdeepclust.models._desc as desc_model

    x = np.random.default_rng(0).normal(size=(128, 20)).astype(np.float32)
    feeder = CellFeeder(RowSource(x), device=torch.device("cpu"))
    stoppers = count_calls(monkeypatch, desc_model, "PlateauStopper")
    config = DESCConfig(hidden=(16, 8), pretrain_epochs=3, batch_size=64, progress=False)
    pre = pretrain_desc(feeder, config)
    assert [len(v) for v in pre.history.values()] == [3, 3, 3]
    assert not stoppers
    config = DESCConfig(hidden=(16, 8), batch_size=64, progress=False)
    pretrain_desc(feeder, config)
    assert len(stoppers) == 3  # one per stage


def test_the_initial_weights_follow_random_state(monkeypatch):
    """The layers' initial weights are drawn from `random_state`: the same seed, the same
    weights; another seed, other weights."""
    import scdeepclust.models._desc as desc_model

    monkeypatch.setattr(desc_model, "fit_epochs", lambda *args, **kwargs: {})  # no training
    x = np.random.default_rng(0).normal(size=(128, 20)).astype(np.float32)
    feeder = CellFeeder(RowSource(x), device=torch.device("cpu"))

    def initial(seed):
        config = DESCConfig(hidden=(16, 8), pretrain_epochs=1, random_state=seed, progress=False)
        model = pretrain_desc(feeder, config).model
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    assert torch.equal(initial(1), initial(1))
    assert not torch.equal(initial(1), initial(2))


def test_drop_rate_zero_pretrains_without_dropout():
    """drop_rate=0 turns the denoising dropout of the layer-wise pretraining off (as documented)
    rather than failing."""
    x = np.random.default_rng(0).normal(size=(128, 20)).astype(np.float32)
    feeder = CellFeeder(RowSource(x), device=torch.device("cpu"))
    config = DESCConfig(hidden=(16, 8), drop_rate=0.0, pretrain_epochs=1, progress=False)
    assert list(pretrain_desc(feeder, config).history) == ["layer1", "layer2", "autoencoder"]


def test_uns_counts_the_pretraining_epochs_of_each_stage(scaled):
    out = sdc.tl.desc(
        scaled, copy=True, pretrain_epochs=3, max_epochs=1, progress=False, batch_size=64
    )
    counted = out.uns["desc"]["pretrain_epochs"]
    assert {k: int(v) for k, v in counted.items()} == {"layer1": 3, "layer2": 3, "autoencoder": 3}


def test_centred_values_of_a_small_spread_are_not_taken_for_unscaled():
    x = np.random.default_rng(0).normal(0, 0.1, (200, 50)).astype(np.float32)  # negatives
    summary = scan_matrix(x, where="X", gene_scales=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        assert warn_if_unscaled(summary, "X") is False


def test_the_converged_line_is_not_printed_onto_the_progress_bar(scaled, monkeypatch):
    """Left open by the break, the clustering stage's bar took "converged" onto its line."""
    import io
    import sys

    terminal = io.StringIO()
    terminal.isatty = lambda: True
    monkeypatch.setattr(sys, "stderr", terminal)
    before, logfile = sc.settings.verbosity, sc.settings.logfile
    sc.settings.verbosity, sc.settings.logfile = 3, terminal
    try:
        result = sdc.tl.desc(scaled, copy=True, **{**FAST, "progress": True})
    finally:
        sc.settings.verbosity, sc.settings.logfile = before, logfile
    assert result.uns["desc"]["converged"]
    lines = [part for part in re.split(r"[\r\n]", terminal.getvalue()) if "converged" in part]
    assert lines and lines[0].strip().startswith("clustering converged after"), lines


def test_each_resolution_starts_leiden_at_that_resolution(scaled, monkeypatch):
    # the clustering stage of resolution r must start from Leiden at r (mutant E12 started every
    # resolution at 0.5, so the results under desc_0.2 / desc_2.0 were all of resolution 0.5)
    import scdeepclust.models._desc as desc_model

    seen = record_keyword(monkeypatch, desc_model, "CentroidInit", "resolution")
    out = sdc.tl.desc(scaled, resolution=[0.2, 2.0], copy=True, **ONE_EPOCH)
    assert seen == [0.2, 2.0]
    assert out.uns["desc_0.2"]["params"]["resolution"] == 0.2


def test_desc_clustering_epoch_cap_keeps_the_step_budget_beyond_100000_cells():
    # 100 epochs up to 100,000 cells, the same number of steps beyond (mutant E02: 50,000)
    from scdeepclust.models import DESCConfig

    config = DESCConfig()
    assert config.resolved_max_epochs(100_000) == 100
    assert config.resolved_max_epochs(200_000) == 50
    assert config.resolved_max_epochs(1_000_000) == 10
    assert DESCConfig(max_epochs=7).resolved_max_epochs(1_000_000) == 7


def test_a_pretraining_epoch_subset_is_never_smaller_than_a_minibatch():
    # 50,000 cells x 25 default epochs pass the visits budget: each epoch draws 20,000 cells,
    # but never fewer than one minibatch (mutant E05 drew 20,000 for a batch_size of 30,000)
    from scdeepclust.models import DESCConfig

    assert DESCConfig().resolved_pretrain_epoch_cells(50_000) == 20_000
    assert DESCConfig(batch_size=30_000).resolved_pretrain_epoch_cells(50_000) == 30_000


def test_desc_alpha_reaches_the_clustering_stage(scaled, monkeypatch):
    # mutant D17 dropped alpha between tl.desc and DESCConfig: the t kernel kept 1 degree of
    # freedom whatever the user gave
    import scdeepclust.models._desc as desc_model

    seen = record_keyword(monkeypatch, desc_model, "deep_embedded_clustering", "alpha")
    out = sdc.tl.desc(scaled, n_clusters=3, alpha=3.0, copy=True, **ONE_EPOCH)
    assert seen == [3.0]
    assert out.uns["desc"]["params"]["alpha"] == 3.0


def test_layerwise_false_pretrains_end_to_end_only(scaled):
    # mutant D18 dropped layerwise between tl.desc and DESCConfig: the greedy stages always ran
    out = sdc.tl.desc(scaled, n_clusters=3, layerwise=False, copy=True, **ONE_EPOCH)
    assert list(out.uns["desc"]["pretrain_epochs"]) == ["autoencoder"]
    assert not out.uns["desc"]["params"]["layerwise"]


def test_desc_drop_rate_reaches_the_pretraining(scaled, monkeypatch):
    # mutant D19 dropped drop_rate between tl.desc and DESCConfig: the denoising pretraining
    # always dropped 20% of the inputs, also with drop_rate=0 ("turns it off")
    import scdeepclust.models._desc as desc_model

    masks = count_calls(monkeypatch, desc_model, "DropoutMasks")
    out = sdc.tl.desc(scaled, n_clusters=3, drop_rate=0.0, copy=True, **ONE_EPOCH)
    assert masks == []
    assert out.uns["desc"]["params"]["drop_rate"] == 0.0


@pytest.mark.parametrize("tool", ["desc", "scdcc"])
def test_n_neighbors_reaches_the_leiden_start(tool, request, monkeypatch):
    # mutants D24 / S18 dropped n_neighbors between the tool and its config: Leiden's kNN graph
    # was always of the default number of neighbours (10 / 15)
    import scdeepclust.models._desc as desc_model
    import scdeepclust.models._scdcc as scdcc_model

    module = {"desc": desc_model, "scdcc": scdcc_model}[tool]
    adata = request.getfixturevalue("scaled" if tool == "desc" else "sim")
    seen = record_keyword(monkeypatch, module, "CentroidInit", "n_neighbors")
    out = getattr(sdc.tl, tool)(adata, resolution=0.5, n_neighbors=6, copy=True, **ONE_EPOCH)
    assert seen == [6]
    assert out.uns[tool]["params"]["n_neighbors"] == 6


# M054, M055
def test_constant_genes_do_not_count_in_the_median_gene_spread():
    """Genes of one value (float64, whose E[x^2] - E[x]^2 leaves a rounding error, not 0) do
    not vary: the median spread is that of the varying genes, 1 for scaled ones."""
    from scdeepclust.pp._input import scan_matrix

    rng = np.random.default_rng(1)
    constant = np.tile(rng.uniform(0.1, 3.0, 100), (97, 1))
    varying = rng.normal(2.0, 1.0, (97, 10))
    summary = scan_matrix(np.concatenate([constant, varying], axis=1), gene_scales=True)
    assert summary.median_gene_scale == pytest.approx(varying.std(axis=0).mean(), rel=0.3)


# M086, M087
@pytest.mark.parametrize("factor", [0.01, 15.0])
def test_desc_warns_of_input_scaled_outside_its_range(factor):
    """INPUT_SCALE_RANGE is (0.03, 10): z-scored genes times 0.01 or 15 are far from DESC's
    scale."""
    adata = counts_data()
    sc.pp.normalize_total(adata)
    sc.pp.log1p(adata)
    sc.pp.scale(adata)
    adata.X = adata.X * factor
    with pytest.warns(UserWarning, match=r"root mean square is .*far from the z-scored genes"):
        sdc.tl.desc(adata, n_clusters=3, **ONE_EPOCH)


# M093
def test_desc_warns_of_genes_spread_at_a_third_of_scaled_ones():
    """Below UNSCALED_GENE_SCALE (0.35) non-negative genes look normalised but not scaled:
    genes of standard deviation 0.3 get the warning."""
    adata = counts_data()
    sc.pp.normalize_total(adata)
    sc.pp.log1p(adata)
    X = adata.X.toarray() if sparse.issparse(adata.X) else np.asarray(adata.X)
    sd = X.std(axis=0)
    adata.X = X / np.where(sd > 0, sd, 1) * 0.3
    with pytest.warns(
        UserWarning, match=r"median standard deviation is 0.3 .*looks normalised but not scaled"
    ):
        sdc.tl.desc(adata, n_clusters=3, **ONE_EPOCH)


# M101
def test_transformed_counts_are_not_named_where_a_later_block_has_negative_values():
    """The transform is judged on the first block that has non-integers; negative values found
    in a later block (here of 10 rows) rule out transformed counts, and the warning stays out."""
    from scdeepclust.pp._input import scan_matrix, warn_if_transformed_counts

    values = np.log2(1 + counts_data().layers["counts"].toarray())
    values[50, 3] = -0.5
    summary = scan_matrix(values, chunk_size=10, steps=True, gene_scales=True)
    assert summary.counts_transform is not None and summary.n_negative == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_if_transformed_counts(summary, "X")


def _unscaled_warning(summary):
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        return warn_if_unscaled(summary, "X")


def test_transformed_counts_are_not_also_called_unscaled():
    """log1p of raw counts has a warning of its own (the transform); the unscaled warning
    beside it would tell the user to scale what should be recovered."""
    counts = np.random.default_rng(0).poisson(0.3, (200, 40)).astype(np.float32)
    summary = scan_matrix(sparse.csr_matrix(np.log1p(counts)), gene_scales=True)
    assert summary.counts_transform is not None and summary.median_gene_scale < 0.35
    assert _unscaled_warning(summary) is False


def test_input_far_from_z_scores_is_not_also_called_unscaled():
    """Values on a far smaller scale have the off-scale warning: one warning, not two."""
    adata = counts_data(200, 40)
    x = np.log1p(adata.X.toarray() / adata.X.toarray().sum(1, keepdims=True) * 1e4) / 300
    summary = scan_matrix(x.astype(np.float32), gene_scales=True)
    assert summary.root_mean_square < 0.03 and summary.median_gene_scale < 0.35
    assert _unscaled_warning(summary) is False


def _use_rep_warnings(adata, use_rep, **options):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sdc.tl.desc(adata, use_rep=use_rep, n_clusters=3, copy=True, **ONE_EPOCH, **options)
    return [str(w.message) for w in caught if use_rep in str(w.message)]


def test_scale_true_is_warned_against_for_principal_components_alone(scaled):
    """The warning said to leave scale out of any representation: for cell-type abundances
    (non-negative, on scales of their own; a user session) scale=True is what clusters them."""
    sc.pp.pca(scaled, n_comps=10)
    rng = np.random.default_rng(0)
    scaled.obsm["abundance"] = rng.gamma(1.0, 5.0, (scaled.n_obs, 10)).astype(np.float32)
    scaled.obsm["components"] = scaled.obsm["X_pca"]
    for use_rep in ("X_pca", "components"):
        (pcs,) = _use_rep_warnings(scaled, use_rep, scale=True)
        assert "holds principal components" in pcs
    assert _use_rep_warnings(scaled, "abundance", scale=True) == []
    assert _use_rep_warnings(scaled, "X_pca") == []


def test_principal_components_of_a_subset_are_known_by_their_name(scaled):
    """Re-clustering one group on its parent's X_pca: the columns are neither centred on the
    subset nor falling in spread, and scale=True went unwarned."""
    sc.pp.pca(scaled, n_comps=10)
    subset = scaled[scaled.obs["group"] == scaled.obs["group"].iloc[0]].copy()
    (pcs,) = _use_rep_warnings(subset, "X_pca", scale=True)
    assert "holds principal components" in pcs


def test_positions_as_use_rep_are_warned_about_alone(scaled):
    """obsm['spatial'] passed as use_rep collapsed every cell onto one point; rescaling the
    positions, which an off-scale warning beside it offered, is no remedy."""
    rng = np.random.default_rng(0)
    scaled.obsm["spatial"] = rng.integers(0, 6000, (scaled.n_obs, 2))
    (layout,) = _use_rep_warnings(scaled, "spatial")
    assert "has 2 column(s): a layout (UMAP, t-SNE) or the cells' positions" in layout


def test_a_representation_off_scale_gets_a_remedy_that_reaches_obsm(scaled):
    """The only advice, to run sc.pp.scale, does not touch obsm; and principal components are
    not told to take scale=True, which the warning against it would then refuse."""
    sc.pp.pca(scaled, n_comps=10)
    scaled.obsm["wide"] = scaled.obsm["X_pca"][:, ::-1] * 100  # rising spread: no components
    scaled.obsm["X_pca"] = scaled.obsm["X_pca"] * 100
    (wide,) = _use_rep_warnings(scaled, "wide")
    assert "root mean square is" in wide and "sc.pp.scale" not in wide
    assert "adata.obsm['wide_scaled'] = adata.obsm['wide'] / " in wide
    assert "or pass scale=True" in wide
    (pcs,) = _use_rep_warnings(scaled, "X_pca")
    assert "adata.obsm['X_pca_scaled'] = adata.obsm['X_pca'] / " in pcs
    assert "scale=True" not in pcs


# _use_rep_warnings: the helper test_desc.py defines already


def test_following_the_off_scale_advice_for_a_representation_silences_it(scaled):
    """The line the warning gives, run as it is, makes an entry on the scale DESC reads, under
    the name the warning then passes as use_rep."""
    sc.pp.pca(scaled, n_comps=10)
    scaled.obsm["wide"] = scaled.obsm["X_pca"][:, ::-1] * 100  # rising spread: no components
    (warning,) = _use_rep_warnings(scaled, "wide")
    assert "far from the z-scored values DESC reads (about 1):" in warning
    (line,) = re.findall(r"`(adata\.obsm\[[^`]+)`", warning)
    exec(line, {"adata": scaled})
    (use_rep,) = re.findall(r"then use_rep='([^']+)'", warning)
    assert use_rep in scaled.obsm and use_rep != "wide"
    assert _use_rep_warnings(scaled, use_rep) == []


def test_scale_true_takes_an_off_scale_representation_without_a_warning(scaled):
    """scale=True z-scores each column, which is the remedy: nothing to warn about."""
    sc.pp.pca(scaled, n_comps=10)
    scaled.obsm["wide"] = scaled.obsm["X_pca"][:, ::-1] * 100  # rising spread: no components
    assert _use_rep_warnings(scaled, "wide", scale=True) == []


def test_counts_as_use_rep_are_warned_about_as_off_scale(scaled):
    """Counts in obsm (antibody counts, say) have no counts warning of their own there."""
    rng = np.random.default_rng(0)
    scaled.obsm["adt"] = rng.poisson(200, (scaled.n_obs, 10)).astype(np.float32)
    (warning,) = _use_rep_warnings(scaled, "adt")
    assert "root mean square is" in warning and "adata.obsm['adt_scaled']" in warning


def test_three_columns_are_a_layout_and_four_are_not(scaled):
    rng = np.random.default_rng(0)
    scaled.obsm["three"] = rng.normal(size=(scaled.n_obs, 3)).astype(np.float32)
    scaled.obsm["four"] = rng.normal(size=(scaled.n_obs, 4)).astype(np.float32)
    (layout,) = _use_rep_warnings(scaled, "three")
    assert "has 3 column(s): a layout" in layout
    assert _use_rep_warnings(scaled, "four") == []


def test_two_principal_components_with_scale_true_get_the_layout_warning_alone(scaled):
    sc.pp.pca(scaled, n_comps=10)
    scaled.obsm["X_pca"] = np.ascontiguousarray(scaled.obsm["X_pca"][:, :2])
    (layout,) = _use_rep_warnings(scaled, "X_pca", scale=True)
    assert "has 2 column(s)" in layout


def test_principal_components_are_known_by_their_name_in_capitals(scaled):
    rng = np.random.default_rng(0)
    scaled.obsm["X_PCA"] = rng.gamma(1.0, 5.0, (scaled.n_obs, 10)).astype(np.float32)
    (pcs,) = _use_rep_warnings(scaled, "X_PCA", scale=True)
    assert "holds principal components" in pcs


def _columns(spreads, means_in_spreads, n_obs=400):
    """Columns of exactly these spreads, whose means are these multiples of them."""
    z = np.random.default_rng(0).normal(size=(n_obs, len(spreads)))
    z = (z - z.mean(0)) / z.std(0)
    spreads = np.asarray(spreads, dtype=float)
    return (z * spreads + np.asarray(means_in_spreads) * spreads).astype(np.float32)


FALLING = np.arange(10, 0, -1)


@pytest.mark.parametrize(
    "spreads, means, expected",
    [
        (FALLING, 0.1, True),  # nearly centred (harmony's corrected components)
        (FALLING, 0.5, False),
        (FALLING, -1.0, False),  # far below 0 is not centred either
        (FALLING, [0.0] * 9 + [1.0], True),  # the median column decides
        ([10, 9, 8, 7, 6, 5, 6, 7, 8, 9], 0.0, False),  # 5 of 9 steps fall
        ([10, 9, 8, 7, 6, 5, 4, 3, 2, 2.5], 0.0, True),  # 8 of 9 steps fall
    ],
)
def test_principal_components_are_centred_columns_of_mostly_falling_spread(
    spreads, means, expected
):
    summary = scan_matrix(_columns(spreads, means), gene_scales=True)
    assert looks_like_principal_components(summary) is expected


def test_one_column_or_a_constant_one_is_no_principal_components_and_no_warning():
    one = _columns([3.0], 0.0)
    constant = _columns(FALLING, 0.0)
    constant[:, -1] = 5.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not looks_like_principal_components(scan_matrix(one, gene_scales=True))
        assert not looks_like_principal_components(scan_matrix(constant, gene_scales=True))
