"""batch_key: per-batch scaling, conditional autoencoders, batches stored with the model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scanpy as sc
import torch
from scipy import sparse
from sklearn.metrics import adjusted_rand_score
from sklearn.neighbors import NearestNeighbors

import scdeepclust as sdc
from _helpers import assert_unchanged, snapshot
from scdeepclust.data import RowSource
from scdeepclust.nn import StackedAutoencoder, ZINBAutoencoder
from scdeepclust.pp._counts import count_statistics, feature_statistics

TRAIN = dict(pretrain_epochs=15, max_epochs=10, progress=False, batch_size=64)
TINY = dict(pretrain_epochs=2, max_epochs=2, progress=False, batch_size=64)


def distorted(seed: int = 0, factor_sd: float = 1.0):
    """Three well-separated groups; cells split at random into batches "a" and "b", the counts
    of "b" multiplied by gene-wise factors and a library-size factor of 0.6."""
    adata = sdc.datasets.simulate(400, 100, 3, de_fraction=0.3, de_log_fold=2.0, random_state=1)
    rng = np.random.default_rng(seed)
    in_b = rng.random(adata.n_obs) < 0.5
    counts = adata.layers["counts"].toarray()
    factors = np.exp(rng.normal(0.0, factor_sd, adata.n_vars)) * 0.6
    counts[in_b] = rng.poisson(counts[in_b] * factors)
    adata.X = sparse.csr_matrix(counts.astype(np.float32))
    adata.layers["counts"] = adata.X.copy()
    adata.obs["batch"] = np.where(in_b, "b", "a")
    adata.obs["batch"] = adata.obs["batch"].astype("category")
    return adata


def lognorm_scaled(adata):
    adata = adata.copy()
    adata.X = adata.X.toarray()
    sc.pp.normalize_total(adata)
    sc.pp.log1p(adata)
    sc.pp.scale(adata)
    return adata


def other_batch_fraction(embedding: np.ndarray, batches: np.ndarray, k: int = 15) -> float:
    """Mean fraction of each cell's k nearest neighbours from the other batch (0.5: mixed)."""
    _, idx = NearestNeighbors(n_neighbors=k + 1).fit(embedding).kneighbors(embedding)
    return float(np.mean(batches[idx[:, 1:]] != batches[:, None]))


# -- statistics ------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["dense", "csr"])
def test_feature_statistics_within_groups_match_numpy(fmt):
    rng = np.random.default_rng(0)
    values = rng.normal(size=(300, 20)) * (rng.random((300, 20)) < 0.4)
    values[:, 3] = 2.0  # constant column: scale 1
    groups = rng.integers(0, 3, 300)
    matrix = sparse.csr_matrix(values) if fmt == "csr" else values
    mean, scale = feature_statistics(RowSource(matrix), groups=groups, n_groups=3, chunk_size=64)
    assert mean.shape == scale.shape == (3, 20)
    for g in range(3):
        part = values[groups == g]
        np.testing.assert_allclose(mean[g], part.mean(0), rtol=1e-5, atol=1e-6)
        expected = part.std(0, ddof=1)
        expected[3] = 1.0
        np.testing.assert_allclose(scale[g], expected, rtol=1e-4, atol=1e-6)


def test_a_spread_without_a_float32_inverse_is_taken_as_constant():
    # one value of 1e-40 (subnormal in float32): its scale, 6e-42, gave an infinite inverse,
    # and training failed with advice to lower the learning rate
    values = np.zeros((300, 3), np.float32)
    values[:, 1] = np.arange(300)
    values[0, 0] = np.float32(1e-40)
    _, scale = feature_statistics(RowSource(values))
    assert scale[0] == 1.0 and np.isfinite(1 / scale).all()
    assert scale[1] == pytest.approx(np.arange(300).std(ddof=1))


def test_count_statistics_within_batches():
    adata = distorted()
    codes = (adata.obs["batch"] == "b").to_numpy().astype(np.int64)
    stats = count_statistics(RowSource(adata.layers["counts"]), batch_codes=codes, n_batches=2)
    overall = count_statistics(RowSource(adata.layers["counts"]))
    # the public function takes the matrix itself too, and checks the codes
    from_matrix = count_statistics(adata.layers["counts"], batch_codes=codes, n_batches=2)
    np.testing.assert_array_equal(from_matrix.gene_mean, stats.gene_mean)
    for bad in (codes[:-1], codes + 1, codes.astype(float)):
        with pytest.raises(
            ValueError, match=r"batch_codes must hold one integer in 0..n_batches-1"
        ):
            count_statistics(adata.layers["counts"], batch_codes=bad, n_batches=2)
    with pytest.raises(TypeError, match="takes the count matrix, not the AnnData"):
        count_statistics(adata)
    np.testing.assert_allclose(stats.size_factors, overall.size_factors)
    logn = np.log1p(adata.layers["counts"].toarray() / overall.size_factors[:, None])
    for code in (0, 1):
        np.testing.assert_allclose(
            stats.gene_mean[code], logn[codes == code].mean(0), rtol=1e-4, atol=1e-6
        )


# -- networks --------------------------------------------------------------------------------


def test_without_batches_the_networks_are_unchanged():
    torch.manual_seed(0)
    plain = ZINBAutoencoder(30, encoder_hidden=(16,), latent_dim=4, decoder_hidden=(16,))
    torch.manual_seed(0)
    conditional = ZINBAutoencoder(
        30, encoder_hidden=(16,), latent_dim=4, decoder_hidden=(16,), n_batches=3
    )
    plain_state = plain.state_dict()
    assert not any("batch" in k for k in plain_state)
    for name, value in plain_state.items():  # same random draws for the shared parameters
        torch.testing.assert_close(conditional.state_dict()[name], value)
    # The batch shifts start at zero: at initialisation the networks agree.
    x, code = torch.randn(8, 30), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    torch.testing.assert_close(conditional.encode(x, code), plain.encode(x))
    sf = torch.ones(8)
    torch.testing.assert_close(
        conditional.decode(plain.encode(x), sf, code).log_mean,
        plain.decode(plain.encode(x), sf).log_mean,
    )
    with pytest.raises(ValueError, match="trained with batches"):
        conditional.encode(x)
    stacked = StackedAutoencoder(30, (16, 4), n_batches=2)
    assert len(stacked.encoder_parameters()) == 4 + 1
    assert stacked.decode(stacked.encode(x, batch_code=code % 2), code % 2).shape == (8, 30)


def test_batches_change_what_the_network_computes():
    model = ZINBAutoencoder(10, encoder_hidden=(8,), latent_dim=2, decoder_hidden=(8,), n_batches=2)
    torch.nn.init.normal_(model.encoder_batch.weight)
    x = torch.randn(4, 10)
    z0 = model.encode(x, torch.zeros(4, dtype=torch.long))
    z1 = model.encode(x, torch.ones(4, dtype=torch.long))
    assert not torch.allclose(z0, z1)


# -- the tools -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def batch_data():
    return distorted()


def test_scdcc_batch_key_mixes_batches_and_keeps_groups(batch_data):
    adata = batch_data.copy()
    plain = sdc.tl.scdcc(adata, 3, copy=True, **TRAIN)
    sdc.tl.scdcc(adata, 3, batch_key="batch", **TRAIN)
    batches = adata.obs["batch"].to_numpy()
    mixed = other_batch_fraction(adata.obsm["X_scdcc"], batches)
    unmixed = other_batch_fraction(plain.obsm["X_scdcc"], batches)
    # measured: 0.43 against 0.34 (0.5 = perfectly mixed)
    assert mixed > unmixed + 0.05
    assert mixed > 0.4
    # measured at random_state 0-5 on the CPU: 0.93, 0.90, 0.91, 0.50, 0.93, 0.97 (at 3, the
    # mixing penalty merges two groups over the clustering epochs: 0.85 after one); CUDA at
    # 0: 0.87. Without batch_key: 0.94-0.99.
    assert adjusted_rand_score(adata.obs["group"], adata.obs["scdcc"]) > 0.85
    uns = adata.uns["scdcc"]
    assert uns["params"]["batch_key"] == "batch"
    assert list(uns["params"]["batch_categories"]) == ["a", "b"]
    sizes = dict(zip(uns["params"]["batch_categories"], uns["batch_sizes"].tolist()))
    assert sizes == adata.obs["batch"].value_counts().to_dict()
    # the draws stay uniform with batches, and params say so
    assert uns["params"]["pretrain_balance"] == 0.0 and uns["params"]["refine"] == 0.0


def test_batch_names_with_a_slash_survive_an_h5ad_round_trip(batch_data, tmp_path):
    import anndata as ad

    adata = batch_data.copy()
    adata.obs["batch"] = adata.obs["batch"].map({"a": "10x/v2", "b": "10x/v3"})
    sdc.tl.scdcc(adata, 3, batch_key="batch", pretrain_epochs=1, max_epochs=1, progress=False)
    adata.write_h5ad(tmp_path / "a.h5ad")
    uns = ad.read_h5ad(tmp_path / "a.h5ad").uns["scdcc"]
    assert list(uns["params"]["batch_categories"]) == ["10x/v2", "10x/v3"]
    counts = adata.obs["batch"].value_counts()
    assert uns["batch_sizes"].tolist() == [counts["10x/v2"], counts["10x/v3"]]


def test_desc_batch_key_mixes_batches_and_keeps_groups(batch_data):
    adata = lognorm_scaled(batch_data)
    plain = sdc.tl.desc(adata, copy=True, **TRAIN)
    sdc.tl.desc(adata, batch_key="batch", **TRAIN)
    batches = adata.obs["batch"].to_numpy()
    mixed = other_batch_fraction(adata.obsm["X_desc"], batches)
    unmixed = other_batch_fraction(plain.obsm["X_desc"], batches)
    # measured: 0.48 against 0.10 (0.5 = perfectly mixed)
    assert mixed > unmixed + 0.2
    assert mixed > 0.4
    assert adjusted_rand_score(adata.obs["group"], adata.obs["desc"]) > 0.9
    assert list(adata.uns["desc"]["params"]["batch_categories"]) == ["a", "b"]
    assert "refinement" not in adata.uns["desc"] and "refinement" in plain.uns["desc"]
    assert adata.uns["desc"]["params"]["refine"] == 0.0 and plain.uns["desc"]["params"]["refine"]


def test_without_batch_key_nothing_depends_on_the_batch_column(batch_data):
    a = batch_data.copy()
    b = batch_data.copy()
    b.obs["batch"] = b.obs["batch"].cat.rename_categories({"a": "b", "b": "a"})
    for adata in (a, b):
        sdc.tl.scdcc(adata, 3, pretrain_epochs=2, max_epochs=2, progress=False)
    np.testing.assert_array_equal(a.obsm["X_scdcc"], b.obsm["X_scdcc"])
    assert "batch_sizes" not in a.uns["scdcc"]


@pytest.mark.parametrize("tool", ["scdcc", "desc"])
def test_saved_model_keeps_batches_and_maps_new_cells(tool, batch_data, tmp_path):
    adata = batch_data if tool == "scdcc" else lognorm_scaled(batch_data)
    train, new = adata[:300].copy(), adata[300:].copy()
    kwargs = dict(batch_key="batch", pretrain_epochs=3, max_epochs=2, progress=False)
    if tool == "scdcc":
        _, model = sdc.tl.scdcc(train, 3, return_model=True, copy=True, **kwargs)
    else:
        _, model = sdc.tl.desc(train, return_model=True, copy=True, **kwargs)
    assert model.batch_key == "batch" and model.batch_categories == ["a", "b"]
    model.save(tmp_path / "m")
    loaded = sdc.models.load(tmp_path / "m")
    assert loaded.batch_categories == ["a", "b"]
    first, second = new.copy(), new.copy()
    assert sdc.tl.map_to_model(first, model) is None  # in place, as scanpy's tools
    sdc.tl.map_to_model(second, tmp_path / "m")
    np.testing.assert_allclose(first.obsm["X_" + tool], second.obsm["X_" + tool], atol=1e-5)
    # the results may not go to the column the model reads the batches from
    clashing = new.copy()
    with pytest.raises(ValueError, match=r"which this run reads as batch_key"):
        sdc.tl.map_to_model(clashing, model, key_added="batch")
    assert list(clashing.obs["batch"].cat.categories) == ["a", "b"]
    assert second.uns[tool]["params"]["batch_key"] == "batch"
    # The batch changes the embedding of the same cells.
    swapped = new.copy()
    swapped.obs["batch"] = swapped.obs["batch"].cat.rename_categories({"a": "b", "b": "a"})
    sdc.tl.map_to_model(swapped, model)
    assert not np.allclose(swapped.obsm["X_" + tool], first.obsm["X_" + tool])
    # A column under another name.
    renamed = new.copy()
    renamed.obs["donor"] = renamed.obs.pop("batch")
    sdc.tl.map_to_model(renamed, model, batch_key="donor")
    np.testing.assert_allclose(renamed.obsm["X_" + tool], first.obsm["X_" + tool], atol=1e-5)
    np.testing.assert_array_equal(
        model.get_latent_representation(renamed, batch_key="donor"), renamed.obsm["X_" + tool]
    )


def test_mapping_errors_name_the_known_batches(batch_data):
    train = batch_data[:300].copy()
    _, model = sdc.tl.scdcc(
        train,
        3,
        batch_key="batch",
        pretrain_epochs=1,
        max_epochs=1,
        progress=False,
        return_model=True,
        copy=True,
    )
    new = batch_data[300:].copy()
    new.obs["batch"] = new.obs["batch"].astype(str)
    new.obs.iloc[:5, new.obs.columns.get_loc("batch")] = "c"
    before = snapshot(new)
    with pytest.raises(
        ValueError,
        match=r"5 cell\(s\) are in batches the model does not know "
        r"\(\['c'\]\); it knows \['a', 'b'\]",
    ):
        model.predict(new)
    assert_unchanged(new, before)
    # a missing batch: a name of its own would be refused as above, so the advice is a known one
    new.obs.iloc[:5, new.obs.columns.get_loc("batch")] = None
    with pytest.raises(
        ValueError,
        match=r"5 cell\(s\) have no batch .* Give each of them the one of the model's batches "
        r"\['a', 'b'\] it resembles",
    ):
        model.predict(new)
    missing = batch_data[300:].copy()
    del missing.obs["batch"]
    with pytest.raises(KeyError, match="trained with batch_key='batch'"):
        model.predict(missing)
    with pytest.raises(
        KeyError, match=r"batch_key 'donr' is not a column .* trained with batch_key='batch'"
    ):
        model.predict(batch_data[300:].copy(), batch_key="donr")
    _, plain = sdc.tl.scdcc(
        train, 3, pretrain_epochs=1, max_epochs=1, progress=False, return_model=True, copy=True
    )
    with pytest.raises(ValueError, match="trained without batch_key"):
        plain.predict(batch_data[300:].copy(), batch_key="batch")


@pytest.mark.parametrize(
    ("edit", "error", "match"),
    [
        (lambda a: a, KeyError, r"batch_key 'donor' is not a column of adata.obs"),
        (
            lambda a: a.obs.__setitem__("donor", [None] * 3 + ["x"] * (a.n_obs - 3)),
            ValueError,
            r"3 cell\(s\) have no batch in adata.obs\['donor'\]",
        ),
    ],
)
@pytest.mark.parametrize("tool", ["scdcc", "desc"])
def test_bad_batch_key(tool, edit, error, match, batch_data):
    adata = batch_data.copy()
    edit(adata)
    if tool == "desc":  # the object DESC is given, checked as it is
        adata = lognorm_scaled(adata)
    before = snapshot(adata)
    with pytest.raises(error, match=match):
        if tool == "scdcc":
            sdc.tl.scdcc(adata, 3, batch_key="donor", pretrain_epochs=1, progress=False)
        else:
            sdc.tl.desc(adata, batch_key="donor", pretrain_epochs=1)
    assert_unchanged(adata, before)


def test_single_batch_warns(batch_data):
    adata = batch_data.copy()
    adata.obs["donor"] = "only"
    with pytest.warns(UserWarning, match="names a single batch"):
        sdc.tl.scdcc(adata, 3, batch_key="donor", pretrain_epochs=1, max_epochs=1, progress=False)


def test_desc_scale_inside_matches_scanpy_scale_without_densifying(batch_data):
    lognorm = batch_data.copy()
    sc.pp.normalize_total(lognorm)
    sc.pp.log1p(lognorm)
    assert sparse.issparse(lognorm.X)
    scaled = lognorm.copy()
    scaled.X = scaled.X.toarray()
    sc.pp.scale(scaled)
    mean, scale = feature_statistics(RowSource(lognorm.X))
    rows = np.arange(0, 400, 7)
    inside = (lognorm.X[rows].toarray() - mean) / scale
    np.testing.assert_allclose(inside, scaled.X[rows], rtol=1e-4, atol=1e-4)
    before = snapshot(lognorm)
    out, model = sdc.tl.desc(
        lognorm,
        scale=True,
        pretrain_epochs=2,
        max_epochs=2,
        progress=False,
        copy=True,
        return_model=True,
    )
    assert_unchanged(lognorm, before)
    assert sparse.issparse(out.X) and out.uns["desc"]["params"]["scale"]
    np.testing.assert_allclose(
        model.get_latent_representation(lognorm), out.obsm["X_desc"], atol=1e-5
    )
    assert_unchanged(lognorm, before)
    # the statistics the run scaled with are sc.pp.scale's (only recorded as scale=True before)
    np.testing.assert_allclose(model.preprocessing["gene_mean"], scaled.var["mean"], rtol=1e-4)
    np.testing.assert_allclose(model.preprocessing["gene_scale"], scaled.var["std"], rtol=1e-4)


# -- batch-mixing penalty ----------------------------------------------------------------------


def brute_force_mmd(z, codes, scales=(0.1, 0.3, 1.0)):
    """Unbiased squared MMD of each batch against the rest, pair by pair, averaged."""
    z = z.double()
    sq = torch.cdist(z, z).pow(2)
    n = len(z)
    median = sq[~torch.eye(n, dtype=torch.bool)].median()
    kernel = sum(torch.exp(-sq / (s * median)) for s in scales) / len(scales)

    def mean_pairs(a, b):
        total = count = 0.0
        for i in a:
            for j in b:
                if i != j:
                    total += float(kernel[i, j])
                    count += 1
        return total / count

    values = []
    for b in sorted(set(codes.tolist())):
        inside = [i for i in range(n) if codes[i] == b]
        rest = [i for i in range(n) if codes[i] != b]
        if len(inside) > 1 and len(rest) > 1:
            values.append(
                mean_pairs(inside, inside) + mean_pairs(rest, rest) - 2 * mean_pairs(inside, rest)
            )
    return float(np.mean(values))


def test_batch_mixing_mmd_matches_the_pairwise_definition():
    from scdeepclust.nn import batch_mixing_mmd

    gen = torch.Generator().manual_seed(0)
    z = torch.randn(23, 4, generator=gen)
    codes = torch.tensor([0] * 9 + [1] * 8 + [2] * 5 + [3])  # batch 3: one cell, left out
    z[codes == 1] += 1.5
    assert batch_mixing_mmd(z, codes).item() == pytest.approx(brute_force_mmd(z, codes), rel=1e-4)


def test_batch_mixing_mmd_is_larger_for_separate_batches_and_zero_for_one_batch():
    from scdeepclust.nn import batch_mixing_mmd

    gen = torch.Generator().manual_seed(1)
    z = torch.randn(64, 8, generator=gen)
    codes = torch.arange(64) % 2
    apart = z + 3.0 * codes[:, None]
    assert batch_mixing_mmd(apart, codes) > 10 * batch_mixing_mmd(z, codes).abs()
    assert batch_mixing_mmd(z, torch.zeros(64, dtype=torch.long)).item() == 0.0
    # its gradient pulls the batches together and cannot be lowered by scaling z
    apart.requires_grad_(True)
    batch_mixing_mmd(apart, codes).backward()
    step = apart.detach() - 0.5 * apart.grad
    assert batch_mixing_mmd(step, codes) < batch_mixing_mmd(apart.detach(), codes)
    assert batch_mixing_mmd(2 * apart.detach(), codes).item() == pytest.approx(
        batch_mixing_mmd(apart.detach(), codes).item(), rel=1e-5
    )


def test_scdcc_batch_mixing_penalty_is_trained_only_with_batches(batch_data):
    adata = batch_data.copy()
    with_penalty = sdc.tl.scdcc(adata, 3, batch_key="batch", copy=True, **TRAIN)
    history = with_penalty.uns["scdcc"]["history"]
    assert "cluster_batch_mixing" in history and "pretrain_batch_mixing" not in history
    off = sdc.tl.scdcc(adata, 3, batch_key="batch", batch_mixing=0, copy=True, **TRAIN)
    assert "cluster_batch_mixing" not in off.uns["scdcc"]["history"]
    plain = sdc.tl.scdcc(adata, 3, copy=True, **TRAIN)
    assert "cluster_batch_mixing" not in plain.uns["scdcc"]["history"]


def test_desc_batch_mixing_penalty_is_trained_only_with_batches(batch_data):
    adata = lognorm_scaled(batch_data)
    with_penalty = sdc.tl.desc(adata, n_clusters=3, batch_key="batch", copy=True, **TRAIN)
    assert "cluster_batch_mixing" in with_penalty.uns["desc"]["history"]
    assert with_penalty.uns["desc"]["params"]["batch_mixing"] == 10.0
    off = sdc.tl.desc(adata, n_clusters=3, batch_key="batch", batch_mixing=0, copy=True, **TRAIN)
    assert "cluster_batch_mixing" not in off.uns["desc"]["history"]
    plain = sdc.tl.desc(adata, n_clusters=3, copy=True, **TRAIN)
    assert "cluster_batch_mixing" not in plain.uns["desc"]["history"]


def test_desc_batch_mixing_mixes_the_embedding(batch_data):
    adata = lognorm_scaled(batch_data)
    batches = adata.obs["batch"].to_numpy()
    settings = {**TRAIN, "max_epochs": 40, "tol": 0.0}
    fractions = {}
    for weight in (0.0, 10.0):
        out = sdc.tl.desc(
            adata, n_clusters=3, batch_key="batch", batch_mixing=weight, copy=True, **settings
        )
        truth = adata.obs["group"].to_numpy()
        assert adjusted_rand_score(truth, out.obs["desc"]) > 0.9, weight
        fractions[weight] = other_batch_fraction(out.obsm["X_desc"], batches)
    assert fractions[10.0] > fractions[0.0] + 0.03, fractions


@pytest.mark.parametrize("tool", ["scdcc", "desc"])
@pytest.mark.parametrize("value", [-1.0, float("nan"), "high", True])
def test_bad_batch_mixing(value, tool, batch_data):
    adata = batch_data.copy()
    before = snapshot(adata)
    with pytest.raises(ValueError, match="batch_mixing must be a finite number >= 0"):
        if tool == "scdcc":
            sdc.tl.scdcc(adata, 3, batch_key="batch", batch_mixing=value, progress=False)
        else:
            sdc.tl.desc(adata, batch_key="batch", batch_mixing=value, progress=False)
    assert_unchanged(adata, before)


def test_tol_stop_waits_for_the_minimum_number_of_steps():
    from scdeepclust.data import CellFeeder
    from scdeepclust.nn import ClusteringLayer
    from scdeepclust.train import ClusteringStage, train_clustering

    # Two far-apart groups with centroids on them: no label ever changes, so only `min_steps`
    # keeps the stage from stopping at its first check.
    rng = np.random.default_rng(0)
    x = np.vstack([rng.normal(-5, 0.1, (64, 2)), rng.normal(5, 0.1, (64, 2))]).astype(np.float32)
    feeder = CellFeeder(RowSource(x), device=torch.device("cpu"))
    steps_per_epoch = feeder.n_batches(32)

    def run(min_steps):
        layer = ClusteringLayer(torch.tensor([[-5.0, -5.0], [5.0, 5.0]]))
        weight = torch.nn.Parameter(torch.eye(2))
        optimizer = torch.optim.SGD([weight, *layer.parameters()], lr=0.01)
        stage = ClusteringStage(max_epochs=50, batch_size=32, tol=1e-3, min_steps=min_steps)
        return train_clustering(
            feeder,
            lambda b: b.x @ weight,
            layer,
            optimizer,
            stage,
            rng=np.random.default_rng(0),
            progress=False,
        )

    assert len(run(0)["clustering"]) == 1
    history = run(5 * steps_per_epoch + 1)
    assert history["converged"] == [1.0]
    # the first refresh at or after the minimum: the start of epoch 7
    assert history["label_change_epoch"][-1] == 6
    assert all(change == 0 for change in history["label_change"])
    # a stage shorter than the minimum (20 epochs of 4 steps) may stop from its middle on,
    # not never (small data ran every epoch and reported no convergence)
    stage = ClusteringStage(max_epochs=20, batch_size=32, tol=1e-3, min_steps=240)
    layer = ClusteringLayer(torch.tensor([[-5.0, -5.0], [5.0, 5.0]]))
    weight = torch.nn.Parameter(torch.eye(2))
    short = train_clustering(
        feeder,
        lambda b: b.x @ weight,
        layer,
        torch.optim.SGD([weight, *layer.parameters()], lr=0.01),
        stage,
        rng=np.random.default_rng(0),
        progress=False,
    )
    assert short["converged"] == [1.0] and short["label_change_epoch"][-1] == 10


def test_methods_train_the_minimum_steps(batch_data, monkeypatch):
    """scDCC waits for the minimum while the batch-mixing penalty is on, DESC always."""
    from scdeepclust.models import _desc, _scdcc

    monkeypatch.setattr(_scdcc, "MIN_CLUSTERING_STEPS", 40)
    monkeypatch.setattr(_desc, "MIN_CLUSTERING_STEPS", 40)
    settings = {**TRAIN, "max_epochs": None}
    steps_per_epoch = -(-batch_data.n_obs // settings["batch_size"])

    def last_check_step(out, key):
        return out.uns[key]["history"]["cluster_label_change_epoch"][-1] * steps_per_epoch

    mixed = sdc.tl.scdcc(batch_data, 3, batch_key="batch", copy=True, **settings)
    assert last_check_step(mixed, "scdcc") >= 40
    # no penalty, no minimum: this stage stops at an earlier check
    off = sdc.tl.scdcc(batch_data, 3, batch_key="batch", batch_mixing=0, copy=True, **settings)
    assert last_check_step(off, "scdcc") < 40
    plain = sdc.tl.desc(lognorm_scaled(batch_data), n_clusters=3, copy=True, **settings)
    assert last_check_step(plain, "desc") >= 40


def test_desc_centres_a_representation_within_batches_and_keeps_its_spread(batch_data):
    # use_rep with batch_key z-scored each principal component within each batch, which
    # tl.desc warns against for scale=True (the components' spread is their weight)
    adata = lognorm_scaled(batch_data)
    sc.pp.pca(adata, n_comps=10)
    options = dict(n_clusters=3, use_rep="X_pca", batch_key="batch", return_model=True, copy=True)
    _, model = sdc.tl.desc(adata, **options, **TINY)
    codes = (adata.obs["batch"] == "b").to_numpy().astype(int)
    for b in (0, 1):
        np.testing.assert_allclose(
            model.preprocessing["gene_mean"][b], adata.obsm["X_pca"][codes == b].mean(0), atol=1e-4
        )
    np.testing.assert_array_equal(model.preprocessing["gene_scale"], 1.0)
    assert model.config["scale"] is False
    with pytest.warns(UserWarning, match=r"scale=True z-scores each column"):
        _, scaled = sdc.tl.desc(adata, scale=True, **options, **TINY)
    assert not np.allclose(scaled.preprocessing["gene_scale"], 1.0)
    # genes are z-scored within batches whatever `scale` says, and the record says so
    genes = sdc.tl.desc(adata, n_clusters=3, batch_key="batch", copy=True, **TINY)
    assert genes.uns["desc"]["params"]["scale"] is True


def test_values_equal_as_text_are_refused_as_batch_names(batch_data):
    # 1 and "1" were one batch (the names are text) where a categorical column is refused
    adata = batch_data.copy()
    adata.obs["donor"] = pd.Series(
        [1 if i % 2 else "1" for i in range(adata.n_obs)], index=adata.obs_names, dtype=object
    )
    before = snapshot(adata)
    with pytest.raises(ValueError, match=r"holds 2 distinct values that read as 1 batch names"):
        sdc.tl.scdcc(adata, 3, batch_key="donor", **TINY)
    assert_unchanged(adata, before)


def test_batch_mixing_is_recorded_as_used_and_the_recipe_speaks_of_genes(batch_data):
    plain = sdc.tl.scdcc(batch_data, 3, copy=True, **TINY)
    assert plain.uns["scdcc"]["params"]["batch_mixing"] == 0.0
    one = batch_data.copy()
    one.obs["one"] = "x"
    one_scaled = lognorm_scaled(one)
    with pytest.warns(UserWarning, match="names a single batch"):
        sdc.tl.desc(one_scaled, n_clusters=3, batch_key="one", batch_mixing=3.0, **TINY)
    assert one_scaled.uns["desc"]["params"]["batch_mixing"] == 0.0
    with pytest.warns(UserWarning, match=r"single batch .*the genes are chosen as without"):
        sdc.pp.recipe(one.copy(), "desc", batch_key="one")


def test_a_blank_batch_key_is_refused_not_read_as_the_models(batch_data):
    adata = lognorm_scaled(batch_data)
    _, model = sdc.tl.desc(
        adata, n_clusters=3, batch_key="batch", return_model=True, copy=True, **TINY
    )
    with pytest.raises(TypeError, match=r"batch_key must name a column of adata.obs, not ''"):
        model.predict(adata, batch_key="")
    with pytest.raises(TypeError, match=r"batch_key must name a column of adata.obs, not ''"):
        sdc.tl.map_to_model(adata.copy(), model, batch_key="")


def test_categories_without_cells_are_no_batches():
    """What subsetting leaves (adata[adata.obs.batch != "x"]): the empty category became a
    batch of its own, an input of the networks and a warning of a batch of 0 cells."""
    import warnings

    import anndata as ad

    from scdeepclust.pp._batches import batch_covariate

    adata = ad.AnnData(np.ones((40, 3), np.float32))
    adata.obs["batch"] = ["a"] * 30 + ["b"] * 10  # 10 cells: enough
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        batch_covariate(adata, "batch")
    adata.obs["batch"] = ["a"] * 31 + ["b"] * 9
    with pytest.warns(sdc.pp.BatchWarning, match=r"'b' \(9\)"):
        batch_covariate(adata, "batch")
    # a missing value made text by astype(str) is quoted as text, not as np.str_('nan')
    batches = pd.Series(pd.Categorical(["a"] * 39 + [None]), index=adata.obs_names)
    adata.obs["batch"] = batches.astype(str)
    with pytest.warns(sdc.pp.BatchWarning, match=r"batch\(es\) 'nan' \(1\) of adata"):
        with pytest.warns(sdc.pp.BatchWarning, match=r"batch\(es\) 'nan' \(1 cell\), the"):
            batch_covariate(adata, "batch")
    adata.obs["batch"] = pd.Categorical(["a"] * 20 + ["b"] * 20, categories=["a", "b", "gone"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        covariate = batch_covariate(adata, "batch")
    assert tuple(covariate.categories) == ("a", "b") and covariate.n_batches == 2


@pytest.mark.parametrize("missing", [np.nan, None, pd.NA, "NA"])
def test_a_missing_batch_made_text_is_named_in_a_warning(missing):
    """`obs[key].astype(str)` turns missing batches into a batch 'nan' / 'None' / '<NA>', and R
    exports them as 'NA', which passes the check for missing values: those cells were corrected
    as a batch of their own."""
    import warnings

    import anndata as ad

    from scdeepclust.pp._batches import batch_covariate

    adata = ad.AnnData(np.ones((60, 3), np.float32))
    batches = pd.Series(["a"] * 25 + ["b"] * 23 + [missing] * 12, index=adata.obs_names)
    adata.obs["batch"] = batches.astype(str)
    text = str(missing)
    with pytest.warns(sdc.pp.BatchWarning, match=rf"batch\(es\) '{text}' \(12 cells\),"):
        covariate = batch_covariate(adata, "batch")
    assert text in covariate.categories  # a warning, not a refusal: it may be a real name
    for name in ["unknown", "nano", "na_1"]:  # names people give on purpose
        adata.obs["batch"] = ["a"] * 25 + ["b"] * 23 + [name] * 12
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            batch_covariate(adata, "batch")


def test_batch_mixing_mmd_gradient_holds_the_bandwidth_fixed():
    """The median bandwidth is taken without gradient. The penalty's value is the same for z
    scaled by any factor (the bandwidth follows the scale), so a gradient that went through the
    bandwidth as well would have no component along z; held fixed, spreading the separated
    batches apart lowers the kernel sums, and the gradient has one. Kills L16 (the median not
    detached)."""
    from scdeepclust.nn import batch_mixing_mmd

    gen = torch.Generator().manual_seed(2)
    codes = torch.arange(32) % 2
    z = (torch.randn(32, 4, generator=gen) + 2.0 * codes[:, None]).requires_grad_(True)
    (grad,) = torch.autograd.grad(batch_mixing_mmd(z, codes), z)
    along_z = (z.detach() * grad).sum()
    assert along_z < -0.1 * grad.norm() * z.detach().norm()


def test_greedy_pretraining_of_a_layer_pair_trains_its_batch_inputs():
    """Layer pair i trains its two layers and the batch shifts that enter them: the encoder's
    (pair 0 only) and decoder layer i's. Kills M11 (the decoder's batch shift left out, so the
    greedy pretraining never fits it)."""
    model = StackedAutoencoder(6, (5, 3), n_batches=2)

    def ids(params):
        return {id(p) for p in params}

    for i in range(2):
        expected = ids(model.encoder_layers[i].parameters()) | ids(
            model.decoder_layers[i].parameters()
        )
        expected |= ids(model.decoder_batch[i].parameters())
        if i == 0:
            expected |= ids(model.encoder_batch.parameters())
        assert ids(model.layer_parameters(i)) == expected


@pytest.mark.parametrize("tool", ["scdcc", "desc"])
def test_the_batch_mixing_penalty_needs_two_batches_and_a_positive_weight(tool):
    """A configuration mixes batches with two or more known batches and a weight above 0 (by
    default the tool's), and reports the weight trained with: 0 without mixing."""
    import inspect

    from scdeepclust.models import DESCConfig, SCDCCConfig

    config = {"scdcc": SCDCCConfig, "desc": DESCConfig}[tool]
    default = inspect.signature(getattr(sdc.tl, tool)).parameters["batch_mixing"].default
    plain = config()
    assert plain.batch_mixing == default == 10.0
    assert (plain.n_batches, plain.mixes_batches, plain.batch_mixing_used) == (0, False, 0.0)
    one = config(batch_key="b", batch_categories=("x",))
    assert (one.n_batches, one.mixes_batches, one.batch_mixing_used) == (1, False, 0.0)
    two = config(batch_key="b", batch_categories=("x", "y"), batch_mixing=2.5)
    assert (two.n_batches, two.mixes_batches, two.batch_mixing_used) == (2, True, 2.5)
    off = config(batch_key="b", batch_categories=("x", "y"), batch_mixing=0.0)
    assert (off.mixes_batches, off.batch_mixing_used) == (False, 0.0)


@pytest.mark.parametrize("text", ["NaN", " nan ", "None", ""])
def test_missing_values_as_text_of_any_case_or_spacing_are_named(text):
    import anndata as ad

    from scdeepclust.pp._batches import batch_covariate

    adata = ad.AnnData(np.ones((60, 3), np.float32))
    adata.obs["batch"] = ["a"] * 25 + ["b"] * 23 + [text] * 12
    with pytest.warns(sdc.pp.BatchWarning, match=rf"batch\(es\) '{text}' \(12 cells\),"):
        batch_covariate(adata, "batch")


def test_batches_of_a_column_of_text_are_in_sorted_order():
    import anndata as ad

    from scdeepclust.pp._batches import batch_covariate

    adata = ad.AnnData(np.ones((40, 3), np.float32))
    adata.obs["batch"] = ["b"] * 20 + ["a"] * 20
    covariate = batch_covariate(adata, "batch")
    assert covariate.categories == ("a", "b")
    np.testing.assert_array_equal(covariate.codes, [1] * 20 + [0] * 20)


def test_batch_categories_equal_as_text_are_refused():
    import anndata as ad

    from scdeepclust.pp._batches import batch_covariate

    adata = ad.AnnData(np.ones((40, 3), np.float32))
    adata.obs["batch"] = pd.Categorical([1, "1"] * 20, categories=[1, "1"])
    with pytest.raises(ValueError, match="categories that are equal as text"):
        batch_covariate(adata, "batch")


def test_a_single_small_batch_is_warned_of_once():
    import warnings

    import anndata as ad

    from scdeepclust.pp._batches import batch_covariate

    adata = ad.AnnData(np.ones((5, 3), np.float32))
    adata.obs["batch"] = ["a"] * 5
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        batch_covariate(adata, "batch")
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1 and "names a single batch" in messages[0]


def test_a_missing_batch_column_of_the_models_own_name_says_the_model_needs_it():
    import anndata as ad

    from scdeepclust.pp._batches import known_batch_codes

    adata = ad.AnnData(np.ones((4, 3), np.float32))
    with pytest.raises(KeyError, match=r"This model was trained with batch_key='batch'"):
        known_batch_codes(adata, "batch", ["a", "b"], trained_key="batch")
    with pytest.raises(KeyError, match=r"'other' is not a column .* batch_key='batch'"):
        known_batch_codes(adata, "other", ["a", "b"], trained_key="batch")


def test_batch_key_must_be_a_name_and_numeric_categories_are_coded():
    import anndata as ad

    from scdeepclust.pp._batches import batch_covariate

    adata = ad.AnnData(np.ones((40, 3), np.float32))
    with pytest.raises(TypeError, match="batch_key must be the name of an adata.obs column"):
        batch_covariate(adata, 5)
    adata.obs["batch"] = pd.Categorical([2, 1] * 20)
    covariate = batch_covariate(adata, "batch")
    assert covariate.categories == ("1", "2")
    np.testing.assert_array_equal(covariate.codes, [1, 0] * 20)


def test_count_statistics_refuse_a_negative_batch_code_of_dense_counts():
    counts = np.array([[1, 2], [4, 0], [3, 3], [2, 2]], dtype=np.float32)
    for matrix in (counts, sparse.csr_matrix(counts)):
        with pytest.raises(
            ValueError, match=r"batch_codes must hold one integer in 0..n_batches-1"
        ):
            count_statistics(matrix, batch_codes=np.array([0, 1, -1, 0]), n_batches=2)


def test_statistics_of_a_batch_without_cells_are_zero_mean_and_unit_scale():
    counts = np.array([[1, 2], [4, 0], [3, 3], [2, 2]], dtype=np.float32)
    for matrix in (counts, sparse.csr_matrix(counts)):
        stats = count_statistics(matrix, batch_codes=np.array([0, 0, 2, 2]), n_batches=3)
        np.testing.assert_array_equal(stats.gene_mean[1], [0, 0])
        np.testing.assert_array_equal(stats.gene_scale[1], [1, 1])
        assert np.isfinite(stats.gene_mean).all() and np.isfinite(stats.gene_scale).all()


def test_batches_of_one_cell_each_are_refused_and_eleven_small_ones_said_as_ten():
    """P03: two cells in two batches are batches of one cell each, and (P01) one cell is a
    single batch; P04: past 10 small batches the warning names 10 and counts the others."""
    import anndata as ad

    from scdeepclust.pp._batches import batch_covariate

    adata = ad.AnnData(np.ones((1, 3), np.float32))
    adata.obs["batch"] = ["a"]
    with pytest.warns(sdc.pp.BatchWarning, match=r"names a single batch \('a'\)"):
        batch_covariate(adata, "batch")
    adata = ad.AnnData(np.ones((2, 3), np.float32))
    adata.obs["batch"] = ["a", "b"]
    with pytest.raises(ValueError, match=r"gives every cell a batch of its own \(2 batches"):
        batch_covariate(adata, "batch")
    adata = ad.AnnData(np.ones((52, 3), np.float32))
    adata.obs["batch"] = ["big"] * 30 + [f"s{i:02d}" for i in range(11) for _ in range(2)]
    with pytest.warns(sdc.pp.BatchWarning, match=r"'s09' \(2\), and 1 more of adata"):
        batch_covariate(adata, "batch")
