import h5py
import matplotlib
import numpy as np
import pandas as pd
import pytest

import scdeepclust as sdc
from scdeepclust.pp import is_count_matrix

matplotlib.use("Agg")


def test_pbmc68k_counts_are_recovered():
    adata = sdc.datasets.pbmc68k()
    counts = adata.layers["counts"]
    assert is_count_matrix(counts)
    # the bundled log-normalised values follow from the recovered counts
    n_counts = adata.obs["n_counts"].to_numpy()
    expected = np.log1p(counts.toarray() / n_counts[:, None] * 1e4)
    np.testing.assert_allclose(adata.X.toarray(), expected, rtol=1e-3, atol=1e-3)
    assert "bulk_labels" in adata.obs


def test_read_h5_layout(tmp_path):
    path = tmp_path / "toy.h5"
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        f["X"] = rng.poisson(1.0, (20, 7)).astype(np.float32)
        f["Y"] = np.repeat([0.0, 1.0], 10)
        f["ADT_X"] = rng.normal(size=(20, 3))
    adata = sdc.datasets.read_h5(path)
    assert adata.shape == (20, 7)
    assert list(adata.obs["label"].cat.categories) == ["0", "1"]
    assert adata.obsm["protein"].shape == (20, 3)
    assert adata.obs_names[0] == "cell0" and adata.var_names[-1] == "gene6"
    assert is_count_matrix(adata.layers["counts"])
    with pytest.raises(FileNotFoundError):
        sdc.datasets.read_h5(tmp_path / "absent.h5")


def test_embedding_plot(sim, tmp_path):
    sdc.tl.scdcc(sim, 3, pretrain_epochs=2, max_epochs=1, progress=False)
    axes = sdc.pl.embedding(sim, "scdcc", color="group", show=False)
    assert [ax.get_title() for ax in axes] == ["scdcc", "group"]
    with pytest.raises(KeyError, match="run scdeepclust.tl"):
        sdc.pl.embedding(sim, "desc", show=False)


def test_simulate_without_differing_genes_makes_groups_alike():
    # de_fraction=0 still gave every group one gene of a large fold change
    def largest_log_fold(de_fraction):
        adata = sdc.datasets.simulate(
            4000, 50, 2, de_fraction=de_fraction, mean_log_expression=2.0, dropout=0.0
        )
        counts = adata.X.toarray()
        group = adata.obs["group"].to_numpy() == "0"
        means = np.log(counts[group].mean(0) + 0.1), np.log(counts[~group].mean(0) + 0.1)
        return np.abs(means[0] - means[1]).max()

    assert largest_log_fold(0.0) < 0.2 < 1.0 < largest_log_fold(0.02)


def test_simulate_one_batch_is_unchanged():
    """n_batches=1 reproduces the call without batch options exactly; more batches leave the
    groups and the cells' own library factors as they were (a separate generator)."""
    kwargs = {"de_fraction": 0.2, "random_state": 5, "chunk_size": 64}
    default = sdc.datasets.simulate(200, 60, 3, **kwargs)
    one = sdc.datasets.simulate(200, 60, 3, n_batches=1, batch_effect=2.0, **kwargs)
    for attr in ("data", "indices", "indptr"):
        np.testing.assert_array_equal(getattr(one.X, attr), getattr(default.X, attr))
    pd.testing.assert_frame_equal(one.obs, default.obs)
    assert "batch" not in one.obs and not one.uns
    three = sdc.datasets.simulate(200, 60, 3, n_batches=3, **kwargs)
    pd.testing.assert_frame_equal(three.obs[["group", "library_factor"]], default.obs)
    # batch factors of exp(0) = 1: the counts are those without batches
    flat = sdc.datasets.simulate(200, 60, 3, n_batches=3, batch_effect=0.0, **kwargs)
    assert (flat.X != default.X).nnz == 0
    assert flat.obs["batch"].nunique() == 3


def test_simulate_batches_share_groups():
    adata = sdc.datasets.simulate(3000, 50, 6, n_batches=4, random_state=1)
    batch = adata.obs["batch"]
    assert isinstance(batch.dtype, pd.CategoricalDtype)
    assert list(batch.cat.categories) == ["batch0", "batch1", "batch2", "batch3"]
    table = pd.crosstab(adata.obs["group"], batch)
    assert table.shape == (6, 4) and (table.to_numpy() > 50).all()
    assert is_count_matrix(adata.X)
    factors = adata.uns["simulate_batches"]
    assert factors["gene_factor"].shape == (4, 50) and factors["library_factor"].shape == (4,)


def test_simulate_batch_effects_follow_the_factors():
    adata = sdc.datasets.simulate(
        4000, 200, 4, mean_log_expression=1.0, n_batches=2, batch_effect=0.8, random_state=0
    )
    factors = adata.uns["simulate_batches"]
    is_b1 = (adata.obs["batch"] == "batch1").to_numpy()
    counts = adata.X.toarray()
    observed = np.log(counts[is_b1].mean(0)) - np.log(counts[~is_b1].mean(0))
    gene = np.log(factors["gene_factor"][1]) - np.log(factors["gene_factor"][0])
    library = np.log(factors["library_factor"][1]) - np.log(factors["library_factor"][0])
    # gene means differ by the gene factors times the batch library shift
    assert np.corrcoef(observed, gene)[0, 1] > 0.9
    assert abs(np.median(observed - gene) - library) < 0.1
    # counts per cell: batch0's gene means moved by the factors predict batch1's library size
    mean0 = counts[~is_b1].mean(0)
    predicted = library + np.log((mean0 * np.exp(gene)).sum() / mean0.sum())
    totals = np.log(counts[is_b1].sum(1).mean() / counts[~is_b1].sum(1).mean())
    assert abs(totals - predicted) < 0.05 and abs(totals) > 0.1


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_batches": 0}, "n_batches must be an integer >= 1"),
        ({"n_batches": 2.0}, "n_batches must be an integer >= 1"),
        ({"n_batches": True}, "n_batches must be an integer >= 1"),
        ({"n_batches": 2, "batch_effect": -0.1}, "batch_effect must be a finite number >= 0"),
        ({"n_batches": 2, "batch_effect": float("nan")}, "batch_effect must be a finite number"),
        ({"n_groups": 0}, "n_groups must be an integer >= 1, got 0"),
        ({"n_cells": 0}, "n_cells must be an integer >= 1, got 0"),
        ({"n_cells": 20.0}, "n_cells must be an integer >= 1, got 20.0"),
        ({"n_genes": -1}, "n_genes must be an integer >= 1"),
        ({"chunk_size": 0}, "chunk_size must be an integer >= 1"),
        ({"de_fraction": 2}, r"de_fraction must be a number in \[0, 1\], got 2"),
        ({"dropout": -0.1}, r"dropout must be a number in \[0, 1\]"),
        ({"dispersion": 0}, "dispersion must be a positive number, got 0"),
    ],
)
def test_simulate_rejects_bad_arguments(kwargs, match):
    args = {"n_cells": 20, "n_genes": 10, "n_groups": 2, **kwargs}
    with pytest.raises(ValueError, match=match):
        sdc.datasets.simulate(**args)


def test_simulate_a_small_de_fraction_still_sets_one_gene_apart():
    # 0.1% of 50 genes rounds to none: each group still differs in one gene
    adata = sdc.datasets.simulate(
        4000, 50, 2, de_fraction=0.001, mean_log_expression=2.0, dropout=0.0
    )
    counts = adata.X.toarray()
    group = adata.obs["group"].to_numpy() == "0"
    means = np.log(counts[group].mean(0) + 0.1), np.log(counts[~group].mean(0) + 0.1)
    assert np.abs(means[0] - means[1]).max() > 1.0


def test_simulate_dropout_zeroes_that_share_of_the_counts():
    kwargs = dict(n_cells=500, n_genes=40, n_groups=2, mean_log_expression=3.0, random_state=0)
    full = sdc.datasets.simulate(**kwargs, dropout=0.0)
    dropped = sdc.datasets.simulate(**kwargs, dropout=0.5)
    assert dropped.X.nnz / full.X.nnz == pytest.approx(0.5, abs=0.05)
