import h5py
import matplotlib
import numpy as np
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
    ax = sdc.pl.embedding(sim, "scdcc", color="group", show=False)
    assert ax is not None
    with pytest.raises(KeyError, match="run scdeepclust.tl"):
        sdc.pl.embedding(sim, "desc", show=False)
