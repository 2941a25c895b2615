"""`datasets.read` (the command line's reader) and `pp.recipe` (its preparation)."""

import re
import shutil
import warnings

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest
import scanpy as sc
from scipy import sparse

import scdeepclust as sdc
from _helpers import assert_unchanged, counts_data, snapshot
from scdeepclust._cli import in_command_terms
from scdeepclust.data import RowSource
from scdeepclust.pp import is_count_matrix
from scdeepclust.pp._counts import feature_statistics
from scdeepclust.pp._input import (
    HIGHLY_VARIABLE_IF_PRESENT,
    counts_of_transform,
    gene_mask,
    layer_names,
)


def write_10x_h5(path, adata, feature_types=None):
    """A Cell Ranger v3 file: genes x cells CSC in matrix/, with features/."""
    matrix = sparse.csc_matrix(adata.X.T, dtype=np.int32)
    with h5py.File(path, "w") as f:
        g = f.create_group("matrix")
        g["data"], g["indices"], g["indptr"] = matrix.data, matrix.indices, matrix.indptr
        g["shape"] = np.array(matrix.shape)
        g["barcodes"] = np.array([f"AAAC{i}-1".encode() for i in range(adata.n_obs)])
        features = g.create_group("features")
        names = [b"GENE"] * 2 + [f"g{i}".encode() for i in range(2, adata.n_vars)]
        features["name"] = np.array(names)
        features["id"] = np.array([f"ENSG{i}".encode() for i in range(adata.n_vars)])
        kinds = feature_types or ["Gene Expression"] * adata.n_vars
        features["feature_type"] = np.array([kind.encode() for kind in kinds])
        features["genome"] = np.array([b"GRCh38"] * adata.n_vars)


def test_read_tells_the_formats_apart(sim, tmp_path):
    tenx = tmp_path / "filtered_feature_bc_matrix.h5"
    write_10x_h5(tenx, sim)
    assert sdc.datasets.h5_layout(tenx) == "10x"
    with warnings.catch_warnings():
        # anndata's advice to make the names unique: read does that itself
        warnings.filterwarnings("error", message="Variable names are not unique")
        adata = sdc.datasets.read(tenx)
    assert adata.shape == sim.shape and adata.var_names.is_unique
    np.testing.assert_array_equal(adata.X.toarray(), sim.X.toarray())

    layout = tmp_path / "scdcc.h5"
    with h5py.File(layout, "w") as f:
        f["X"] = sim.X.toarray()
        f["Y"] = sim.obs["group"].cat.codes.to_numpy()
    assert sdc.datasets.h5_layout(layout) == "scdcc"
    assert list(sdc.datasets.read(layout).obs["label"].cat.categories) == ["0", "1", "2"]

    h5ad = tmp_path / "sim.h5ad"
    sim.write_h5ad(h5ad)
    assert sdc.datasets.read(h5ad).shape == sim.shape
    renamed = tmp_path / "anndata.h5"  # an .h5ad under another name is recognised too
    h5ad.rename(renamed)
    assert sdc.datasets.h5_layout(renamed) == "h5ad"

    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["counts"] = np.zeros((2, 2))
    with pytest.raises(ValueError, match="neither a 10x"):
        sdc.datasets.read(other)
    with pytest.raises(ValueError, match="must be an .h5ad"):
        (tmp_path / "table.csv").write_text("a,b\n")
        sdc.datasets.read(tmp_path / "table.csv")
    with pytest.raises(FileNotFoundError):
        sdc.datasets.read(tmp_path / "absent.h5ad")
    (tmp_path / "text.h5").write_text("not HDF5")
    with pytest.raises(ValueError, match="not a readable HDF5 file"):
        sdc.datasets.read(tmp_path / "text.h5")


def test_read_keeps_the_antibodies_of_a_10x_file_apart_from_its_genes(sim, tmp_path):
    """CITE-seq in a 10x file: the genes are X, as scanpy's gex_only reads them, and the
    antibody counts go to obsm['protein'] (they were dropped), where tl.scdcc reads them."""
    rng = np.random.default_rng(0)
    antibodies = rng.poisson(20, size=(sim.n_obs, 3)).astype(np.float32)
    guide = rng.poisson(1, size=(sim.n_obs, 1)).astype(np.float32)
    features = sc.AnnData(sparse.hstack([sim.X, antibodies, guide]).tocsr())
    kinds = ["Gene Expression"] * sim.n_vars + ["Antibody Capture"] * 3 + ["CRISPR Guide Capture"]
    path = tmp_path / "cite.h5"
    write_10x_h5(path, features, kinds)
    with h5py.File(path, "r+") as f:  # the antibodies' own names
        names = f["matrix/features/name"][:]
        names[sim.n_vars : sim.n_vars + 3] = [b"CD3", b"CD4", b"CD8"]
        del f["matrix/features/name"]
        f["matrix/features/name"] = names
    adata = sdc.datasets.read(path)
    assert adata.n_vars == sim.n_vars and set(adata.var["feature_types"]) == {"Gene Expression"}
    np.testing.assert_array_equal(adata.X.toarray(), sim.X.toarray())
    protein = adata.obsm["protein"]
    assert list(protein.columns) == ["CD3", "CD4", "CD8"]
    assert list(protein.index) == list(adata.obs_names)
    np.testing.assert_array_equal(protein.to_numpy(), antibodies)
    plain = tmp_path / "genes.h5"
    write_10x_h5(plain, sim)
    assert "protein" not in sdc.datasets.read(plain).obsm


def test_read_h5_labels_of_any_storage(tmp_path):
    """Labels as bytes, a column vector or floats with missing values read as text."""
    counts = np.random.default_rng(0).poisson(1, (6, 4))
    cases = [
        (np.array([b"B", b"T", b"B", b"x", b"x", b"B"]), ["B", "T", "x"], 0),
        (np.arange(6.0)[:, None] % 3, ["0", "1", "2"], 0),
        (np.array([[0, 1, 0, 1, 2, 2]]), ["0", "1", "2"], 0),  # a row vector (R, MATLAB)
        (np.array([0.0, 1.0, np.nan, 2.0, 0.0, 1.0]), ["0", "1", "2"], 1),
        # in numeric order, as the types are numbered ("10" came before "2")
        (np.array([10, 2, 1, 2, 10, 1]), ["1", "2", "10"], 0),
        (np.array([10.0, 2.0, np.nan, 2.0, 10.0, 2.0]), ["2", "10"], 1),
    ]
    for y, categories, n_missing in cases:
        with h5py.File(tmp_path / "y.h5", "w") as f:
            f["X"] = counts
            f["Y"] = y
        labels = sdc.datasets.read_h5(tmp_path / "y.h5").obs["label"]
        assert list(labels.cat.categories) == categories and labels.isna().sum() == n_missing
    with h5py.File(tmp_path / "sparse.h5", "w") as f:
        f.create_group("X")["data"] = [1.0]
    with pytest.raises(ValueError, match="'X' is not the dense cells x genes matrix"):
        sdc.datasets.read_h5(tmp_path / "sparse.h5")


def test_read_h5_keeps_counts_apart_from_x(tmp_path):
    """scanpy's normalisation of X in place leaves the counts layer scDCC reads as it was."""
    counts = np.random.default_rng(0).poisson(0.5, (20, 8))
    with h5py.File(tmp_path / "counts.h5", "w") as f:
        f["X"] = counts
    adata = sdc.datasets.read_h5(tmp_path / "counts.h5")
    sc.pp.normalize_total(adata)
    sc.pp.log1p(adata)
    np.testing.assert_array_equal(adata.layers["counts"].toarray(), counts)


def test_read_takes_suffixes_in_any_case_and_names_an_h5ad_in_the_scdcc_layout(sim, tmp_path):
    upper = tmp_path / "SIM.H5AD"
    sim.write_h5ad(upper)
    assert sdc.datasets.read(upper).shape == sim.shape
    layout = tmp_path / "COUNTS.H5"
    with h5py.File(layout, "w") as f:
        f["X"] = sim.X.toarray()
    assert sdc.datasets.read(layout).shape == sim.shape
    # an .h5ad holding an 'obs' dataset beside the scDCC layout's X is still not anndata's
    misnamed = tmp_path / "scdcc.h5ad"
    with h5py.File(misnamed, "w") as f:
        f["X"] = sim.X.toarray()
        f["obs"] = np.arange(sim.n_obs)
    with pytest.raises(ValueError, match="in the scDCC layout, not an AnnData .h5ad"):
        sdc.datasets.read(misnamed)


def test_recipe_from_counts(sim):
    sim.X = sim.X.copy()
    del sim.layers["counts"]
    sim.X[:3] = 0  # three empty cells
    sim.X = sparse.csr_matrix(sim.X)
    sim.X.eliminate_zeros()
    clipped = sim.copy()
    steps = sdc.pp.recipe(sim, "desc")
    assert steps[0] == "raw counts from X, kept in layers['counts']"
    assert "removed 3 cells without any count" in steps
    assert "X: scale (zero mean, unit variance per gene, not clipped)" in steps
    assert sim.n_obs == 237 and is_count_matrix(sim.layers["counts"])
    X = np.asarray(sim.X)
    np.testing.assert_allclose(X.mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(X.std(0, ddof=1), 1, atol=1e-3)
    assert X.max() > 3  # genes seen in a few cells keep their high values
    steps = sdc.pp.recipe(clipped, "desc", max_value=3)
    assert "X: scale (zero mean, unit variance per gene, clipped at 3)" in steps
    assert np.asarray(clipped.X).max() <= 3


def test_recipe_keeps_the_counts_of_x_without_copying_them_twice(sim):
    """X's counts were copied into layers['counts'] and X copied again to be normalised: two
    copies of the matrix at the peak, where the layer can keep X's own, unchanged."""
    del sim.layers["counts"]
    counts = sim.X
    before = counts.copy()
    sdc.pp.recipe(sim, "scdcc", n_top_genes=None)
    assert sim.layers["counts"] is counts and sim.X is not counts
    assert (sim.layers["counts"] != before).nnz == 0  # X was normalised in a copy


def test_recipe_can_leave_the_scaling_to_desc_and_keep_x_sparse(sim):
    """scale=False: X log-normalised and sparse; tl.desc(scale=True) z-scores the same values."""
    counts = sparse.csr_matrix(sim.layers["counts"])
    scaled, unscaled = sc.AnnData(counts.copy()), sc.AnnData(counts.copy())
    sdc.pp.recipe(scaled, "desc")
    steps = sdc.pp.recipe(unscaled, "desc", scale=False)
    assert steps[-1].startswith("X: left log-normalised, not scaled (scale=False)")
    assert sparse.issparse(unscaled.X) and unscaled.X.min() >= 0
    # the statistics tl.desc(scale=True) z-scores with (its feeder applies them per minibatch)
    mean, sd = feature_statistics(RowSource(unscaled.X))
    np.testing.assert_allclose((unscaled.X.toarray() - mean) / sd, scaled.X, atol=1e-4)
    for bad, match in (
        (dict(scale=False, max_value=10), "max_value=10 clips the scaling"),
        (dict(scale=1), "scale must be True or False"),
        (dict(max_value=-1), r"max_value must be a number > 0 \(or None: no clip\), got -1"),
        (dict(max_value="x"), "max_value must be a number > 0"),
    ):
        untouched = sc.AnnData(counts.copy())
        with pytest.raises(ValueError, match=match):
            sdc.pp.recipe(untouched, "desc", **bad)
        assert not untouched.layers and (untouched.X != counts).nnz == 0
    # scdcc's X is never scaled here: scale=False changes nothing, and a clip would do nothing
    sdc.pp.recipe(sc.AnnData(counts.copy()), "scdcc", scale=False)
    untouched = sc.AnnData(counts.copy())
    with pytest.raises(ValueError, match=r"clip there with tl.scdcc\(max_value=...\)"):
        sdc.pp.recipe(untouched, "scdcc", max_value=10)
    assert not untouched.layers and (untouched.X != counts).nnz == 0


@pytest.mark.parametrize("where", ["X", "counts"])
def test_recipe_refuses_values_beyond_float32_before_changing_anything(where):
    """scanpy's variable-gene choice read them as float32 and failed with "Input contains NaN"."""
    sim = sdc.datasets.simulate(n_cells=60, n_genes=3200, n_groups=2, random_state=0)
    counts = sim.layers.pop("counts").toarray().astype(np.float64)
    counts[0, 0] = -1e39 if where == "X" else 1e39
    adata = sc.AnnData(counts.copy())
    if where == "counts":
        adata.layers["counts"] = counts
        adata.X = np.log1p(counts.clip(0, 1e6))
    name = "X" if where == "X" else "layers['counts']"
    match = rf"adata\.{re.escape(name)} holds values as large as 1e\+39"
    with pytest.raises(ValueError, match=match):
        sdc.pp.recipe(adata, "desc")
    assert adata.n_vars == 3200 and (where == "counts") == ("counts" in adata.layers)


def test_recipe_on_a_view_gives_an_actual_anndata_whether_it_succeeds_or_fails(monkeypatch):
    sim = sdc.datasets.simulate(n_cells=80, n_genes=100, n_groups=2, random_state=0)
    sim.X = sim.layers.pop("counts").toarray()
    done = sim[:50]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # neither anndata's warning about changing a view
        sdc.pp.recipe(done, "desc")
    assert not done.is_view and done.n_obs == 50 and "counts" in done.layers
    failed, parent_x = sim[:50], sim.X.copy()

    def fail(*args, **kwargs):
        raise RuntimeError("stopped")

    monkeypatch.setattr(sc.pp, "log1p", fail)
    with pytest.raises(RuntimeError, match="stopped"):
        sdc.pp.recipe(failed, "desc")
    assert not failed.is_view and isinstance(failed.X, np.ndarray) and not failed.layers
    np.testing.assert_array_equal(failed.X, parent_x[:50])
    np.testing.assert_array_equal(sim.X, parent_x)  # the parent untouched
    refused = sim[:50]  # refused before any change: still a view
    with pytest.raises(KeyError, match="Layer 'missing' not found"):
        sdc.pp.recipe(refused, "scdcc", layer="missing")
    assert refused.is_view


def test_recipe_leaves_nested_uns_entries_of_the_caller_alone():
    """anndata's constructor moves an old layout of uns['neighbors'] out of its dict."""
    sim = sdc.datasets.simulate(n_cells=40, n_genes=60, n_groups=2, random_state=0)
    graph = sparse.identity(40, format="csr")
    neighbors = {"params": {"n_neighbors": 5}, "connectivities": graph, "distances": graph}
    sim.uns["neighbors"] = neighbors
    sdc.pp.recipe(sim, "scdcc")
    assert set(neighbors) == {"params", "connectivities", "distances"}


def _stored_twice(matrix):
    """The same counts with every entry stored in two whole parts (scipy sums them on reading)."""
    coo = sparse.coo_matrix(matrix)
    half = np.floor(coo.data / 2)
    data = np.concatenate([half, coo.data - half])
    rows, cols = np.tile(coo.row, 2), np.tile(coo.col, 2)
    order = np.argsort(rows, kind="stable")
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=matrix.shape[0]))])
    twice = sparse.csr_matrix((data[order], cols[order], indptr), shape=matrix.shape)
    assert not twice.has_canonical_format
    return twice


@pytest.mark.parametrize(
    "form",
    [
        lambda m: _stored_twice(m),
        lambda m: sparse.csr_array(m),
        lambda m: m.toarray().astype(">f4"),
        lambda m: m.toarray().astype(np.float16),
        # numba's steps failed on these (TypingError), scipy's on the big-endian CSR
        lambda m: m.astype(np.longdouble),
        lambda m: m.toarray().astype(np.longdouble),
        lambda m: sparse.csr_matrix((m.data.astype(">f4"), m.indices, m.indptr), shape=m.shape),
    ],
    ids=[
        "repeated-entries",
        "csr_array",
        "big-endian",
        "float16",
        "longdouble",
        "longdouble-dense",
        "big-endian-sparse",
    ],
)
@pytest.mark.parametrize("method", ["desc", "scdcc"])
def test_recipe_gives_the_same_result_for_any_form_of_the_counts(form, method):
    plain = sdc.datasets.simulate(n_cells=80, n_genes=400, n_groups=2, random_state=0)
    del plain.layers["counts"]
    other = plain.copy()
    other.X = form(plain.X)
    steps = sdc.pp.recipe(other, method, n_top_genes=50, hvg_above=300)
    stored = [step for step in steps if step.endswith(": the same values")]
    assert stored and stored[0].startswith("X stored as ")
    assert [step for step in steps if step not in stored] == sdc.pp.recipe(
        plain, method, n_top_genes=50, hvg_above=300
    )
    assert list(other.var_names) == list(plain.var_names)
    dense = [m.toarray() if sparse.issparse(m) else np.asarray(m) for m in (other.X, plain.X)]
    np.testing.assert_allclose(dense[0], dense[1], rtol=1e-5, atol=1e-5)


def test_recipe_changes_nothing_when_it_refuses_and_warns_of_batches_it_leaves_small():
    sim = sdc.datasets.simulate(n_cells=60, n_genes=50, n_groups=2, random_state=0)
    del sim.layers["counts"]
    sc.pp.normalize_total(sim)
    sc.pp.log1p(sim)
    sim.X = sparse.csr_array(sim.X)
    with pytest.raises(ValueError, match="scdcc models raw counts"):
        sdc.pp.recipe(sim, "scdcc")
    assert isinstance(sim.X, sparse.csr_array)  # not converted before the refusal
    # a batch of 12 cells, 5 of them without counts: small once those are removed
    counts = sdc.datasets.simulate(n_cells=60, n_genes=50, n_groups=2, random_state=0)
    del counts.layers["counts"]
    counts.X = counts.X.toarray()
    counts.X[:5] = 0
    counts.obs["donor"] = ["d0"] * 12 + ["d1"] * 48
    with pytest.warns(UserWarning, match=r"batch\(es\) 'd0' \(7\) of adata.obs\['donor'\]"):
        sdc.pp.recipe(counts, "desc", batch_key="donor")
    empty = ad.AnnData(obs=sim.obs.copy(), var=sim.var.copy())
    with pytest.raises(ValueError, match=r"adata.X is empty \(None\)"):
        sdc.pp.recipe(empty, "desc")


def test_recipe_refuses_values_that_are_not_numbers_and_points_at_raw_counts():
    sim = sdc.datasets.simulate(n_cells=40, n_genes=30, n_groups=2, random_state=0)
    objects = sim.copy()
    objects.X = sim.X.toarray().astype(object)
    with pytest.raises(TypeError, match=r"adata.X has dtype object; a numeric matrix"):
        sdc.pp.recipe(objects, "desc")
    lognorm = sim.copy()
    del lognorm.layers["counts"]
    lognorm.raw = lognorm.copy()
    sc.pp.normalize_total(lognorm)
    sc.pp.log1p(lognorm)
    with pytest.raises(ValueError, match=r"adata.raw holds counts: `adata.layers\['counts'\]"):
        sdc.pp.recipe(lognorm, "scdcc")
    lognorm.raw = lognorm.raw.to_adata()[:, 1:]  # the line given would raise a KeyError
    with pytest.raises(ValueError, match=r"adata.raw holds counts, but lacks 1 of X's 30 genes"):
        sdc.pp.recipe(lognorm, "scdcc")


def test_recipe_selects_genes_and_keeps_counts_for_scdcc():
    sim = sdc.datasets.simulate(n_cells=100, n_genes=400, n_groups=2, random_state=0)
    steps = sdc.pp.recipe(sim, "scdcc", n_top_genes=50, hvg_above=300)
    assert "kept the 50 most variable genes of 400" in steps
    assert sim.n_vars == 50 and sim.raw.n_vars == 400
    assert is_count_matrix(sim.layers["counts"]) and not is_count_matrix(sim.X)
    # counts and X were one object in `simulate`: normalising X left the counts alone
    assert sim.layers["counts"] is not sim.X
    # marked as scanpy's subset=True leaves them: the tools see that the genes were chosen
    assert sim.var["highly_variable"].all()
    genes = gene_mask(sim, HIGHLY_VARIABLE_IF_PRESENT)
    assert genes.chosen_by_user and genes.columns is None


def test_recipe_normalises_each_cell_to_the_median_total_or_the_given_one():
    """As scanpy's `normalize_total` and scDCC's size factors: deep and shallow cells alike."""
    sim = sdc.datasets.simulate(n_cells=120, n_genes=150, n_groups=2, random_state=0)
    counts = sim.layers["counts"].copy()
    median = np.median(np.asarray(counts.sum(axis=1)).ravel())
    steps = sdc.pp.recipe(sim, "scdcc")  # X log-normalised, not scaled
    assert "X: normalize_total (each cell to the median total) + log1p" in steps
    totals = np.expm1(sim.X.toarray()).sum(axis=1)
    np.testing.assert_allclose(totals, median, rtol=1e-4)
    given = sc.AnnData(counts.copy())
    steps = sdc.pp.recipe(given, "scdcc", target_sum=1e4)
    assert "X: normalize_total (each cell to 10000 counts) + log1p" in steps
    np.testing.assert_allclose(np.expm1(given.X.toarray()).sum(axis=1), 1e4, rtol=1e-4)
    for bad in (0, -1.0, float("nan"), "1e4"):
        untouched = sc.AnnData(counts.copy())
        with pytest.raises(ValueError, match="target_sum must be a positive number"):
            sdc.pp.recipe(untouched, "desc", target_sum=bad)
        assert not untouched.layers and (untouched.X != counts).nnz == 0


def test_recipe_refuses_other_matrices_in_another_byte_order_before_changing_anything():
    """X and the counts are converted; another such matrix would fail the subsetting."""
    sim = sdc.datasets.simulate(n_cells=120, n_genes=150, n_groups=2, random_state=0)
    counts = sim.layers.pop("counts")
    sim.X = counts.copy()
    spliced = sparse.csr_matrix((counts.data.astype(">f4"), counts.indices, counts.indptr))
    sim.layers["spliced"] = spliced
    with pytest.raises(ValueError, match=r"adata\.layers\['spliced'\] is a sparse matrix") as e:
        sdc.pp.recipe(sim, "desc")
    assert layer_names(sim) == ["spliced"] and (sim.X != counts).nnz == 0
    exec(str(e.value).split("`")[1], {"adata": sim})
    assert "X: scale (zero mean, unit variance per gene, not clipped)" in sdc.pp.recipe(sim, "desc")


def test_recipe_refuses_a_counts_layer_in_another_byte_order_that_it_does_not_read():
    # layers['counts'] was exempt from the check also where it holds no counts (X does not
    # either: DESC reads X as it is), so the subsetting failed in scipy's words
    sim = sdc.datasets.simulate(n_cells=120, n_genes=150, n_groups=2, random_state=0)
    counts = sim.layers["counts"]
    sim.X = sparse.csr_matrix(np.log1p(counts.toarray()))
    logged = sparse.csr_matrix(np.log1p(counts.toarray()))
    sim.layers["counts"] = sparse.csr_matrix(
        (logged.data.astype(">f4"), logged.indices, logged.indptr), shape=logged.shape
    )
    with pytest.raises(ValueError, match=r"adata\.layers\['counts'\] is a sparse matrix") as e:
        sdc.pp.recipe(sim, "desc")
    exec(str(e.value).split("`")[1], {"adata": sim})
    assert sdc.pp.recipe(sim, "desc")


def test_the_byte_order_advice_on_a_view_names_the_parent():
    sim = sdc.datasets.simulate(n_cells=120, n_genes=150, n_groups=2, random_state=0)
    protein = sparse.csr_matrix(np.ones((sim.n_obs, 3), dtype=np.float32))
    sim.obsm["adt"] = sparse.csr_matrix(
        (protein.data.astype(">f4"), protein.indices, protein.indptr), shape=protein.shape
    )
    with pytest.raises(ValueError, match="In the AnnData the view was taken from") as e:
        sdc.pp.recipe(sim[:80], "desc")
    exec(str(e.value).split("`")[1], {"adata": sim})
    assert sdc.pp.recipe(sim[:80].copy(), "desc")


@pytest.mark.parametrize("dense", [True, False])
def test_recipe_takes_0_1_data_stored_as_bool(dense):
    """scanpy's normalize_total divided a dense bool matrix in place (a numpy casting error,
    after layers['counts'] had been added): bool is stored as float32 first."""
    sim = sdc.datasets.simulate(n_cells=120, n_genes=150, n_groups=2, random_state=0)
    binary = sim.layers["counts"] > 0
    binary = binary.toarray() if dense else sparse.csr_matrix(binary)
    as_bool, as_float = sc.AnnData(binary), sc.AnnData(binary.astype(np.float32))
    steps = sdc.pp.recipe(as_bool, "desc")
    assert "X stored as float32 (was bool): the same values" in steps
    sdc.pp.recipe(as_float, "desc")
    np.testing.assert_array_equal(np.asarray(as_bool.X), np.asarray(as_float.X))
    assert as_bool.layers["counts"].dtype == np.float32


def test_recipe_tells_normalised_from_log_normalised_data():
    """Normalised values under 50 are log-transformed; log-normalised ones are left alone."""
    sim = sdc.datasets.simulate(n_cells=120, n_genes=150, n_groups=2, random_state=0)
    del sim.layers["counts"]
    sc.pp.normalize_total(sim)  # to the median total: every value far below 50
    assert sim.X.max() < 50 and "log1p" not in sim.uns
    normalised = sim.X.copy()
    steps = sdc.pp.recipe(sim.copy(), "desc")
    assert any(step.startswith("X looks normalised but not log-transformed") for step in steps)
    logged = sim.copy()
    logged.X = np.log1p(normalised)  # log-normalised elsewhere: no scanpy record of it
    steps = sdc.pp.recipe(logged, "desc")
    assert "X looks log-normalised already: no normalisation" in steps


@pytest.mark.parametrize("change", ["genes removed", "an empty cell"])
def test_recipe_tells_normalised_data_whose_totals_differ(change):
    # A gene subset after normalize_total, or a cell it left empty, unevened the totals: the
    # shallow normalised values (all under 50) were taken as log-normalised, never logged
    sim = sdc.datasets.simulate(n_cells=120, n_genes=150, n_groups=2, random_state=0)
    if change == "an empty cell":
        sim.layers["counts"][0] = 0
        sim.X = sim.layers["counts"].copy()
    normalised = sim.copy()
    sc.pp.normalize_total(normalised)
    if change == "genes removed":  # the most expressed ones, as of mitochondrial genes
        top = np.argsort(-np.asarray(normalised.X.mean(0)).ravel())[:10]
        normalised = normalised[:, np.setdiff1d(np.arange(sim.n_vars), top)].copy()
    assert normalised.X.max() < 50 and "log1p" not in normalised.uns
    for counts_layer in (True, False):
        prepared = normalised.copy()
        if not counts_layer:
            del prepared.layers["counts"]
        steps = sdc.pp.recipe(prepared, "desc", n_top_genes=None)
        expected = counts_layer or change == "an empty cell"  # without counts: totals only
        assert (
            any(step.startswith("X looks normalised but not log") for step in steps) == expected
        ), (counts_layer, steps)
    # log-normalised values beside their counts are not proportional to them
    logged = normalised.copy()
    sc.pp.log1p(logged)
    del logged.uns["log1p"]
    steps = sdc.pp.recipe(logged, "desc", n_top_genes=None)
    assert "X looks log-normalised already: no normalisation" in steps


def test_recipe_trusts_scanpys_record_of_a_log1p():
    """Log-normalised values rescaled to equal totals look normalised; uns['log1p'] says not."""
    sim = sdc.datasets.simulate(n_cells=120, n_genes=150, n_groups=2, random_state=0)
    del sim.layers["counts"]
    sc.pp.normalize_total(sim)
    sc.pp.log1p(sim)
    sc.pp.normalize_total(sim, target_sum=100)
    before = sim.X.copy()
    steps = sdc.pp.recipe(sim, "desc", n_top_genes=None, scale=False)
    assert "X looks log-normalised already: no normalisation" in steps
    np.testing.assert_array_equal(sim.X.toarray(), before.toarray())


def test_recipe_selects_genes_only_above_hvg_above():
    sim = sdc.datasets.simulate(n_cells=100, n_genes=300, n_groups=2, random_state=0)
    sdc.pp.recipe(sim, "desc", n_top_genes=100, hvg_above=300, scale=False)
    assert sim.n_vars == 300 and sim.raw is None
    sim = sdc.datasets.simulate(n_cells=100, n_genes=300, n_groups=2, random_state=0)
    sdc.pp.recipe(sim, "desc", n_top_genes=100, hvg_above=299)
    assert sim.n_vars == 100 and sim.raw.n_vars == 300


def test_recipe_chooses_the_genes_scanpy_chooses_within_the_batches():
    sim = sdc.datasets.simulate(
        n_cells=300, n_genes=400, n_groups=3, n_batches=2, batch_effect=1, random_state=0
    )
    logged = sim.copy()
    sc.pp.normalize_total(logged)
    sc.pp.log1p(logged)
    chosen = {}
    for batch_key in ("batch", None):
        expected = sc.pp.highly_variable_genes(
            logged, n_top_genes=100, flavor="seurat", batch_key=batch_key, inplace=False
        )
        chosen[batch_key] = set(logged.var_names[expected["highly_variable"].to_numpy()])
    assert chosen["batch"] != chosen[None]
    prepared = sim.copy()
    sdc.pp.recipe(prepared, "scdcc", n_top_genes=100, hvg_above=300, batch_key="batch")
    assert set(prepared.var_names) == chosen["batch"]


def test_recipe_warns_that_it_cannot_keep_x_counts_beside_a_counts_layer_of_other_values():
    sim = sdc.datasets.simulate(n_cells=60, n_genes=80, n_groups=2, random_state=0)
    sim.layers["counts"] = np.log1p(sim.X.toarray())
    with pytest.warns(UserWarning, match=r"layers\['counts'\] does not hold counts .* rename"):
        sdc.pp.recipe(sim, "desc", n_top_genes=None)


def test_recipe_checks_its_keys_before_changing_anything():
    sim = sdc.datasets.simulate(n_cells=60, n_genes=80, n_groups=2, random_state=0)
    before = sim.copy()
    with pytest.raises(KeyError, match=r"batch_key 'donor' is not a column of adata.obs"):
        sdc.pp.recipe(sim, "desc", batch_key="donor")
    assert sim.uns.keys() == before.uns.keys() and sim.raw is None
    np.testing.assert_array_equal(sim.X.toarray(), before.X.toarray())
    # X holds counts, layers['counts'] does not: the message says so and how to use X's
    sim.layers["counts"] = np.log1p(sim.X.toarray())
    with pytest.raises(
        ValueError, match=r"layers\['counts'\] does not hold counts .* while X does"
    ):
        sdc.pp.recipe(sim, "scdcc")
    with pytest.raises(ValueError, match=r"if adata.X holds them, rename that layer"):
        sdc.tl.scdcc(sim, 2, progress=False)
    # in the caller's terms: Python's argument here, the command line's option in `run`
    del sim.layers["counts"]
    sc.pp.normalize_total(sim, target_sum=1e4)
    sc.pp.log1p(sim)
    with pytest.raises(ValueError, match=r"name the layer that holds them \(`layer`\)") as error:
        sdc.pp.recipe(sim, "scdcc")
    assert "(`--layer`)" in in_command_terms(str(error.value))


def test_recipe_chooses_genes_within_batches_of_any_type():
    """Integer batches (scanpy wants categories) and cells removed before the choice."""
    sim = sdc.datasets.simulate(n_cells=120, n_genes=400, n_groups=2, random_state=0)
    del sim.layers["counts"]
    sim.X = sim.X.toarray()
    sim.X[:2] = 0  # two empty cells, removed first
    sim.obs["donor"] = np.arange(sim.n_obs) % 2
    steps = sdc.pp.recipe(sim, "scdcc", n_top_genes=50, hvg_above=300, batch_key="donor")
    assert "removed 2 cells without any count" in steps
    assert (
        "kept the 50 most variable genes of 400 (chosen within the batches of obs['donor'])"
        in steps
    )
    with pytest.raises(
        ValueError, match=r"n_top_genes must be an integer >= 1 \(or None\), got 2.5"
    ):
        sdc.pp.recipe(sim, "desc", n_top_genes=2.5)


def test_recipe_respects_prepared_data(sim):
    sc.pp.normalize_total(sim)
    sc.pp.log1p(sim)
    del sim.layers["counts"]
    with pytest.raises(ValueError, match="scdcc models raw counts"):
        sdc.pp.recipe(sim.copy(), "scdcc")
    steps = sdc.pp.recipe(sim, "desc")
    assert "X looks log-normalised already: no normalisation" in steps
    scaled = sim.X.copy()
    assert sdc.pp.recipe(sim, "desc") == [
        "X has negative values, so it is taken as scaled already: used as is"
    ]
    np.testing.assert_array_equal(sim.X, scaled)
    with pytest.raises(KeyError, match=r"Layer 'raw' not found; layers: \[\]"):  # not X's None
        sdc.pp.recipe(sim, "desc", layer="raw")
    with pytest.raises(ValueError, match="method must be"):
        sdc.pp.recipe(sim, "leiden")


def test_recipe_refuses_sparse_counts_read_lazily_before_changing_anything(sim, tmp_path):
    # it failed deep inside: "'_CSRDataset' object has no attribute 'sum'"
    path = tmp_path / "counts.h5ad"
    sim.write_h5ad(path)
    with h5py.File(path) as f:
        adata = sim.copy()
        adata.layers["counts"] = ad.io.sparse_dataset(f["X"])
        before = adata.X.copy()
        with pytest.raises(ValueError, match=r"layers\['counts'\] is read from a file or by dask"):
            sdc.pp.recipe(adata, "scdcc")
        assert (adata.X != before).nnz == 0 and adata.n_vars == sim.n_vars
    with h5py.File(path) as f:  # counts in X alone, read from the file
        adata = ad.AnnData(ad.io.sparse_dataset(f["X"]), obs=sim.obs, var=sim.var)
        with pytest.raises(ValueError, match=r"adata.X is read from a file or by dask"):
            sdc.pp.recipe(adata, "scdcc")
        assert layer_names(adata) == []
    da = pytest.importorskip("dask.array")
    adata = sim.copy()
    del adata.layers["counts"]
    adata.X = da.from_array(sim.X, chunks=(50, -1))
    with pytest.raises(ValueError, match=r"`adata.X = adata.X.compute\(\)`"):
        sdc.pp.recipe(adata, "scdcc")
    assert layer_names(adata) == []


def test_recipe_says_whether_entries_were_summed_or_only_sorted(sim):
    # pbmc68k's matrices have unsorted indices and no repeated entry: the step line said
    # "repeated entries summed" all the same.
    counts = sparse.csr_matrix(sim.X)
    unsorted = counts.copy()
    for row in range(unsorted.shape[0]):  # each row's entries in reverse column order
        lo, hi = unsorted.indptr[row], unsorted.indptr[row + 1]
        unsorted.indices[lo:hi] = unsorted.indices[lo:hi][::-1].copy()
        unsorted.data[lo:hi] = unsorted.data[lo:hi][::-1].copy()
    unsorted.has_sorted_indices = False
    steps = sdc.pp.recipe(sc.AnnData(unsorted), "scdcc", n_top_genes=None)
    assert any("column indices sorted" in s for s in steps)
    assert not any("repeated" in s for s in steps)
    end = counts.indptr[1]  # one more entry in the first row, at the column of its first
    indptr = counts.indptr.copy()
    indptr[1:] += 1
    repeated = sparse.csr_matrix(
        (
            np.r_[counts.data[:end], 1.0, counts.data[end:]],
            np.r_[counts.indices[:end], counts.indices[0], counts.indices[end:]],
            indptr,
        ),
        shape=counts.shape,
    )
    steps = sdc.pp.recipe(sc.AnnData(repeated), "scdcc", n_top_genes=None)
    assert any("repeated entries summed" in s for s in steps)


@pytest.mark.parametrize(
    ("failing", "error", "n_genes"),
    [("log1p", RuntimeError, 300), ("scale", KeyboardInterrupt, 300), ("scale", OSError, 3200)],
)
def test_a_step_that_fails_or_is_interrupted_leaves_the_anndata_as_it_was(
    failing, error, n_genes, monkeypatch
):
    """Every step replaces what it changes, so the AnnData is put back whole (with 3,200 genes
    after the log-normalised values went to .raw and the variable genes were kept)."""
    sim = sdc.datasets.simulate(n_cells=80, n_genes=n_genes, n_groups=2, random_state=0)
    kept = np.ones(80)
    kept[:2] = 0  # two empty cells, removed by the recipe before it normalises
    counts = sparse.csr_matrix(sparse.diags(kept) @ sim.layers.pop("counts"))
    counts.eliminate_zeros()
    if failing == "log1p":  # from counts: they are copied to a layer, cells removed first
        adata = sc.AnnData(counts.copy())
    else:  # dense log-normalised X, which scanpy's scale changes in place
        logged = sc.AnnData(counts[2:].copy())
        sc.pp.normalize_total(logged)
        sc.pp.log1p(logged)
        adata = sc.AnnData(logged.X.toarray())
    adata.obs["group"] = "a"
    adata.uns["kept"] = {"x": 1}
    x, obs, uns = adata.X, adata.obs.copy(), dict(adata.uns)
    values = x.copy()

    def fail(step_adata, *args, **kwargs):  # as scanpy's steps do: X changed in place
        changed = step_adata.X
        (changed.data if sparse.issparse(changed) else changed)[...] = -1
        raise error("stopped")

    monkeypatch.setattr(sc.pp, failing, fail)
    with pytest.raises(error, match="stopped"):
        sdc.pp.recipe(adata, "desc")
    assert adata.X is x and adata.shape == x.shape
    assert (abs(adata.X - values) > 0).sum() == 0
    assert not adata.layers and adata.raw is None
    assert dict(adata.uns) == uns and list(adata.var_names) == list(map(str, range(n_genes)))
    pd.testing.assert_frame_equal(adata.obs, obs)


def test_recipe_reads_counts_from_a_layer_named_x():
    sim = sdc.datasets.simulate(n_cells=60, n_genes=50, n_groups=2, random_state=0)
    adata = sc.AnnData(np.log1p(sim.layers["counts"].toarray()))
    adata.layers["X"] = sim.layers["counts"].copy()
    steps = sdc.pp.recipe(adata, "scdcc", layer="X")
    assert steps[0].startswith("X holds log1p(counts), not normalised")  # X's own, normalised
    assert steps[1] == "raw counts from layers['X']" and layer_names(adata) == ["X"]


@pytest.mark.parametrize("where", ["X", "counts"])
@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_recipe_refuses_values_that_are_not_finite_before_changing_anything(sim, where, value):
    # a NaN made X read as log-normalised (every comparison with it fails); the scaling spread
    # it over its gene, in place, and the counts were not kept
    adata = sim.copy()
    if where == "X":
        del adata.layers["counts"]
    matrix = adata.X if where == "X" else adata.layers["counts"]
    matrix = matrix.astype(np.float32)
    matrix.data[5] = value
    if where == "X":
        adata.X = matrix
    else:
        adata.layers["counts"] = matrix
    before = snapshot(adata)
    name = "X" if where == "X" else "layers['counts']"
    with pytest.raises(ValueError, match=rf"adata.{re.escape(name)} contains 1 NaN or infinite"):
        sdc.pp.recipe(adata, "desc")
    assert_unchanged(adata, before)


def test_recipe_names_counts_with_float_noise_and_how_to_round_them(sim):
    # they read as log-normalised: scaled without normalisation, the counts not kept
    adata = sim.copy()
    del adata.layers["counts"]
    adata.X = adata.X.astype(np.float64)
    adata.X.data += 1e-7
    before = snapshot(adata)
    with pytest.raises(ValueError, match=r"within 1e-07 of whole numbers") as refused:
        sdc.pp.recipe(adata, "desc")
    assert_unchanged(adata, before)
    advice = re.search(r"e.g. `([^`]+)` for a sparse", str(refused.value)).group(1)
    exec(advice, {"np": np, "adata": adata})
    assert "normalize_total" in " ".join(sdc.pp.recipe(adata, "desc"))
    # on a view, rounding a temporary copy would change nothing: the advice makes it actual
    parent = sim.copy()
    del parent.layers["counts"]
    parent.X = parent.X.astype(np.float64)
    parent.X.data += 1e-7
    namespace = {"np": np, "adata": parent[:100]}
    with pytest.raises(
        ValueError, match=r"`adata = adata.copy\(\)` \(adata is a view\)"
    ) as refused:
        sdc.pp.recipe(namespace["adata"], "desc")
    lines = re.findall(r"`([^`]+)`", str(refused.value).split(" for a sparse matrix")[0])
    assert lines[-2] == "adata = adata.copy()"
    exec("\n".join(lines[-2:]), namespace)
    assert "normalize_total" in " ".join(sdc.pp.recipe(namespace["adata"], "desc"))


def test_an_anndata_without_x_names_the_layers_to_read():
    counts = sparse.csr_matrix(np.ones((20, 5), dtype=np.float32))
    adata = ad.AnnData(
        X=None,
        obs=pd.DataFrame(index=[str(i) for i in range(20)]),
        var=pd.DataFrame(index=[f"g{i}" for i in range(5)]),
        layers={"raw": counts},
    )
    with pytest.raises(ValueError, match=r"The data are in layers \['raw'\]: pass layer="):
        sdc.tl.desc(adata)
    with pytest.raises(ValueError, match=r"adata.X = adata.layers\['raw'\].copy\(\)"):
        sdc.pp.recipe(adata, "scdcc")


def test_a_gene_of_one_value_is_scaled_to_zeros_not_nan():
    # scanpy's float32 variance of such a gene came out below 0 for some values (log1p(1)),
    # and the recipe returned X with that gene NaN in every cell, without a word
    adata = sdc.datasets.simulate(1000, 300, 3, random_state=10)
    sc.pp.normalize_total(adata)
    sc.pp.log1p(adata)
    values = adata.X.toarray().astype(np.float32)
    values[:, 5] = np.float32(np.log1p(1.0))
    prepared = ad.AnnData(values, uns={"log1p": {"base": None}})
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        steps = sdc.pp.recipe(prepared, "desc")
    assert np.isfinite(prepared.X).all()
    np.testing.assert_array_equal(prepared.X[:, 5], 0.0)
    assert "1 gene(s) of one value in (nearly) every cell" in steps[-1]


def test_recipe_keeps_the_raw_the_user_set():
    """Values go to .raw only when there is none: the user's own .raw was replaced."""
    adata = sdc.datasets.simulate(n_cells=300, n_genes=400, n_groups=3, random_state=0)
    sc.pp.normalize_total(adata)
    sc.pp.log1p(adata)
    adata.raw = adata[:, :100].copy()
    sdc.pp.recipe(adata, "desc", n_top_genes=50, hvg_above=0)
    assert adata.n_vars == 50 and adata.raw.n_vars == 100


TRANSFORMS = {  # how a count matrix was transformed without normalising, and the step's words
    "log1p": (np.log1p, "X holds log1p(counts), not normalised (e.g. "),
    "log2": (lambda x: np.log2(1 + x), "X holds log2(1 + counts) (e.g. "),
    "sqrt": (np.sqrt, "X holds the square root of counts (e.g. "),
}


@pytest.mark.parametrize("transform", TRANSFORMS)
@pytest.mark.parametrize("method", ["desc", "scdcc"])
@pytest.mark.parametrize("layout", ["csr", "dense"])
def test_recipe_recovers_counts_that_were_transformed_without_normalising(
    transform, method, layout
):
    """log1p without normalize_total first (a common slip): the counts come back exactly and
    are prepared as counts are, where they were taken as log-normalised (DESC) or refused."""
    sim = sdc.datasets.simulate(n_cells=60, n_genes=50, n_groups=2, random_state=0)
    counts = sim.layers.pop("counts").toarray()
    sim.X = counts.copy()
    given = sim.copy()
    function, said = TRANSFORMS[transform]
    values = function(counts).astype(np.float32)
    given.X = sparse.csr_matrix(values) if layout == "csr" else values
    if transform == "log1p":
        given.uns["log1p"] = {"base": None}  # as sc.pp.log1p records it
    x = given.X
    steps = sdc.pp.recipe(given, method, n_top_genes=None)
    assert steps[0].startswith(said) and steps[1] == "raw counts from X, kept in layers['counts']"
    expected = sdc.pp.recipe(sim, method, n_top_genes=None)
    assert steps[2:] == expected[1:]
    recovered = given.layers["counts"]
    assert sparse.issparse(recovered) == (layout == "csr") and recovered.dtype == np.float32
    np.testing.assert_array_equal(np.asarray(_dense(recovered)), counts)
    np.testing.assert_allclose(_dense(given.X), _dense(sim.X), rtol=1e-5, atol=1e-5)
    assert (abs(x - values) > 0).sum() == 0  # the caller's matrix itself is not changed


def _dense(matrix):
    return matrix.toarray() if sparse.issparse(matrix) else np.asarray(matrix)


def test_recipe_recovers_no_counts_from_log_normalised_values_nor_where_one_value_is_none(
    monkeypatch,
):
    sim = sdc.datasets.simulate(n_cells=60, n_genes=50, n_groups=2, random_state=0)
    counts = sim.layers.pop("counts").toarray()
    logged = sim.copy()
    sc.pp.normalize_total(logged)
    logged.X = np.log1p(logged.X.toarray())
    assert "X looks log-normalised already: no normalisation" in sdc.pp.recipe(logged, "desc")
    # the first values are transformed counts, a value further on is not: not recovered, and
    # found in a later chunk of the values
    monkeypatch.setattr(sdc.pp._recipe, "RECOVERY_CHUNK", 100)
    mixed = np.log1p(counts).astype(np.float32)
    mixed[-1, -1] = 0.5
    adata = sc.AnnData(mixed)
    assert "X looks log-normalised already: no normalisation" in sdc.pp.recipe(adata, "desc")
    assert "counts" not in adata.layers
    # chunk by chunk, all transformed counts: recovered
    adata = sc.AnnData(np.log1p(counts).astype(np.float32))
    sdc.pp.recipe(adata, "desc", n_top_genes=None)
    np.testing.assert_array_equal(adata.layers["counts"], counts)
    # a layers['counts'] of other values is the user's: X's counts are recovered and
    # normalised, not written over it
    other = sc.AnnData(np.log1p(counts).astype(np.float32), layers={"counts": mixed})
    steps = sdc.pp.recipe(other, "desc", n_top_genes=None)
    assert steps[0].startswith("X holds log1p(counts), not normalised (e.g. ")
    assert "X: normalize_total (each cell to the median total) + log1p" in steps
    assert np.array_equal(other.layers["counts"], mixed)


def test_recipe_that_fails_after_recovering_counts_leaves_the_anndata_as_it_was(monkeypatch):
    sim = sdc.datasets.simulate(n_cells=60, n_genes=50, n_groups=2, random_state=0)
    adata = sc.AnnData(np.log1p(sim.layers["counts"].toarray()).astype(np.float32))
    adata.uns["log1p"] = {"base": None}
    x = adata.X
    before = x.copy()

    def fail(*args, **kwargs):
        raise RuntimeError("stopped")

    monkeypatch.setattr(sc.pp, "normalize_total", fail)
    with pytest.raises(RuntimeError, match="stopped"):
        sdc.pp.recipe(adata, "scdcc")
    assert adata.X is x and np.array_equal(adata.X, before)
    assert not adata.layers and dict(adata.uns) == {"log1p": {"base": None}}


def test_recipe_takes_unlogged_normalised_values_for_no_transform_of_counts():
    """Counts per million of shallow cells (every value 80 or more) passed for square roots of
    counts under a tolerance that grew with the value; and no numpy warning comes out."""
    sim = sdc.datasets.simulate(n_cells=60, n_genes=50, n_groups=2, random_state=0)
    del sim.layers["counts"]
    sc.pp.normalize_total(sim, target_sum=1e6)
    assert sim.X.data.min() > 80
    for method in ("desc", "scdcc"):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            adata = sim.copy()
            if method == "scdcc":
                with pytest.raises(ValueError, match="scdcc models raw counts"):
                    sdc.pp.recipe(adata, method)
                continue
            steps = sdc.pp.recipe(adata, method)
        assert steps[0].startswith("X looks normalised but not log-transformed")
        assert "counts" not in adata.layers


def test_log1p_of_normalised_values_rounded_is_no_transform_of_counts():
    """Rounded counts per 10,000 are whole numbers too, but step by more than 1: not counts."""
    sim = sdc.datasets.simulate(n_cells=60, n_genes=50, n_groups=2, random_state=0)
    del sim.layers["counts"]
    sc.pp.normalize_total(sim, target_sum=1e4)
    sim.X = np.log1p(np.round(sim.X.toarray())).astype(np.float32)
    assert "X looks log-normalised already: no normalisation" in sdc.pp.recipe(sim.copy(), "desc")
    with pytest.raises(ValueError, match="scdcc models raw counts"):
        sdc.pp.recipe(sim, "scdcc")


def test_counts_are_recovered_only_where_float32_tells_the_integer():
    """log1p of counts above about 40,000 in float32 no longer names one integer: not taken."""
    from scdeepclust.pp._input import counts_of_transform

    small = np.arange(1, 20_001, dtype=np.float64)
    recovered = counts_of_transform(
        np.log1p(small).astype(np.float32), "log1p(counts), not normalised"
    )
    np.testing.assert_array_equal(recovered, small)
    large = np.log1p(np.array([3.0, 60_000.0])).astype(np.float32)
    assert counts_of_transform(large, "log1p(counts), not normalised") is None
    assert counts_of_transform(np.sqrt([4.0, 9.0]), "the square root of counts") is not None
    assert counts_of_transform(np.array([-2.0, 3.0]), "the square root of counts") is None


def test_recipe_normalises_the_counts_of_x_beside_a_counts_layer_where_x_is_log1p_of_them():
    """layers['counts'] kept, then sc.pp.log1p without normalize_total: X's counts are
    recovered and normalised, as from the counts alone."""
    sim = sdc.datasets.simulate(n_cells=60, n_genes=50, n_groups=2, random_state=0)
    reference = sim.copy()
    sim.X = sim.layers["counts"].copy()
    sc.pp.log1p(sim)
    steps = sdc.pp.recipe(sim, "desc", n_top_genes=None)
    assert steps[0].startswith("X holds log1p(counts), not normalised (e.g. ")
    assert steps[0].endswith("its counts recovered (np.expm1(X)), to be normalised")
    expected = sdc.pp.recipe(reference, "desc", n_top_genes=None)
    assert steps[1:] == expected
    np.testing.assert_allclose(_dense(sim.X), _dense(reference.X), rtol=1e-5, atol=1e-5)
    # X's counts corrected (ambient RNA removed), the layer's raw: X's own are normalised
    corrected = sdc.datasets.simulate(n_cells=60, n_genes=50, n_groups=2, random_state=0)
    raw = corrected.layers["counts"].toarray()
    less = np.maximum(raw - np.random.default_rng(0).poisson(0.3, raw.shape), 0)
    less[:, :] = np.where(raw > 0, np.maximum(less, 1), 0)  # the same genes and cells kept
    corrected.X = np.log1p(less).astype(np.float32)
    sdc.pp.recipe(corrected, "desc", n_top_genes=None, scale=False)
    alone = sc.AnnData(less.astype(np.float32))
    sdc.pp.recipe(alone, "desc", n_top_genes=None, scale=False)
    np.testing.assert_allclose(_dense(corrected.X), _dense(alone.X), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(_dense(corrected.layers["counts"]), raw)
    # log-normalised X beside the counts is left as it is
    logged = sdc.datasets.simulate(n_cells=60, n_genes=50, n_groups=2, random_state=0)
    sc.pp.normalize_total(logged)
    sc.pp.log1p(logged)
    assert "X looks log-normalised already: no normalisation" in sdc.pp.recipe(logged, "desc")


def test_read_makes_repeated_antibody_names_unique_and_refuses_a_file_without_genes(sim, tmp_path):
    antibodies = np.ones((sim.n_obs, 2), dtype=np.float32)
    features = sc.AnnData(sparse.hstack([sim.X, antibodies]).tocsr())
    path = tmp_path / "cite.h5"
    write_10x_h5(path, features, ["Gene Expression"] * sim.n_vars + ["Antibody Capture"] * 2)
    with h5py.File(path, "r+") as f:
        names = f["matrix/features/name"][:]
        names[-2:] = [b"CD4", b"CD4"]
        del f["matrix/features/name"]
        f["matrix/features/name"] = names
    adata = sdc.datasets.read(path)
    assert list(adata.obsm["protein"].columns) == ["CD4", "CD4-1"]
    adata.write_h5ad(tmp_path / "out.h5ad")  # refused repeated column names
    only = tmp_path / "antibodies.h5"
    write_10x_h5(only, sc.AnnData(sparse.csr_matrix(antibodies)), ["Antibody Capture"] * 2)
    with pytest.raises(ValueError, match=r"holds no gene expression: its features are \['Antibody"):
        sdc.datasets.read(only)


def test_recipe_keeps_log_normalised_values_in_raw_before_scaling_few_genes():
    """Without a gene selection (at most `hvg_above` genes) the scaled X was all there was:
    marker genes came out with NaN fold changes. The log-normalised values go to .raw."""
    sim = sdc.datasets.simulate(n_cells=120, n_genes=200, n_groups=2, random_state=0)
    expected = sc.pp.log1p(sc.pp.normalize_total(sim, inplace=False)["X"].toarray())
    steps = sdc.pp.recipe(sim, "desc")
    assert "log-normalised values kept in .raw (marker genes read them there)" in steps
    assert sim.raw.n_vars == sim.n_vars == 200 and sim.X.min() < 0
    np.testing.assert_allclose(_dense(sim.raw.X), expected, rtol=1e-5, atol=1e-6)
    sim.obs["group"] = sim.obs["group"].astype("category")
    sc.tl.rank_genes_groups(sim, "group", method="t-test")
    assert np.isfinite(sim.uns["rank_genes_groups"]["logfoldchanges"]["0"]).all()
    # the user's own .raw stays, as the other gene selection leaves it
    sim = sdc.datasets.simulate(n_cells=120, n_genes=200, n_groups=2, random_state=0)
    sim.raw = sim[:, :50].copy()
    sdc.pp.recipe(sim, "desc")
    assert sim.raw.n_vars == 50


def test_recipe_warns_where_raw_holds_counts_that_marker_genes_would_read():
    """As exported from Seurat: X log-normalised, .raw the counts. Scaling X left nothing
    log-normalised, and sc.tl.rank_genes_groups read the counts in .raw, without a word."""
    sim = sdc.datasets.simulate(n_cells=120, n_genes=200, n_groups=2, random_state=0)
    del sim.layers["counts"]  # as exported: the counts in .raw alone
    sim.raw = sim.copy()
    sc.pp.normalize_total(sim)
    sc.pp.log1p(sim)
    said = r"adata.raw holds counts, .* \(`adata.layers\['counts'\] = adata.raw\[:, adata.var_"
    said += r".*rank_genes_groups\(\.\.\., use_raw=False\)"
    with pytest.warns(UserWarning, match=said):
        sdc.pp.recipe(sim.copy(), "desc")
    sim.raw = sim.raw.to_adata()[:, 1:]  # a .raw short of X's genes: no line that would fail
    with pytest.warns(UserWarning, match=r"before pp.recipe \(`del adata.raw`\)"):
        sdc.pp.recipe(sim, "desc")
    assert sdc.pp.is_count_matrix(sim.raw.X)  # the user's .raw is left as it is
    # the advice, followed: the counts in a layer, the log-normalised values in .raw
    sim = sdc.datasets.simulate(n_cells=120, n_genes=200, n_groups=2, random_state=0)
    del sim.layers["counts"]  # as exported: the counts in .raw alone
    sim.raw = sim.copy()
    sc.pp.normalize_total(sim)
    sc.pp.log1p(sim)
    sim.layers["counts"] = sim.raw[:, sim.var_names].X.copy()
    del sim.raw
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        sdc.pp.recipe(sim, "desc")
    assert sim.raw is not None and not sdc.pp.is_count_matrix(sim.raw.X)


def test_recipe_keeps_every_gene_where_there_are_no_more_than_it_would_choose():
    sim = sdc.datasets.simulate(n_cells=100, n_genes=80, n_groups=2, random_state=0)
    steps = sdc.pp.recipe(sim, "desc", n_top_genes=100, hvg_above=0, scale=False)
    assert sim.n_vars == 80 and sim.raw is None
    assert "highly_variable" not in sim.var.columns
    assert not any("variable genes" in step for step in steps)


def test_recipe_chooses_genes_from_the_counts_beside_an_x_scaled_already(scaled):
    steps = sdc.pp.recipe(scaled, "desc", n_top_genes=30, hvg_above=0)
    assert "X has negative values, so it is taken as scaled already: used as is" in steps
    assert scaled.n_vars == 30 and "kept the 30 most variable genes of 120" in steps


def test_cells_with_counts_only_in_unmarked_genes_are_removed_unless_every_gene_is_kept():
    sim = sdc.datasets.simulate(n_cells=60, n_genes=40, n_groups=2, random_state=0)
    counts = sim.layers["counts"].toarray()
    counts[0, :20] = 0
    counts[0, 20:] = np.maximum(counts[0, 20:], 1)
    sim.X = sparse.csr_matrix(counts)
    sim.layers["counts"] = sparse.csr_matrix(counts)
    sim.var["highly_variable"] = np.arange(40) < 20
    every_gene = sim.copy()
    steps = sdc.pp.recipe(sim, "scdcc")
    assert sim.n_obs == 59 and sim.obs_names[0] != every_gene.obs_names[0]
    assert (
        "removed 1 cells without any count in the 20 genes the tools read (those "
        "var['highly_variable'] marks)" in steps
    )
    steps = sdc.pp.recipe(every_gene, "scdcc", n_top_genes=None)
    assert every_gene.n_obs == 60 and not any("removed" in step for step in steps)


def test_x_log_normalised_in_a_single_cell_is_taken_as_log_normalised():
    values = np.zeros((30, 10), dtype=np.float32)
    values[0] = np.linspace(0.1, 2.3, 10, dtype=np.float32) + 0.013
    adata = ad.AnnData(values)
    steps = sdc.pp.recipe(adata, "desc", n_top_genes=None, scale=False)
    assert "X looks log-normalised already: no normalisation" in steps
    np.testing.assert_array_equal(adata.X, values)


def test_recipe_takes_values_above_50_for_normalised_ones_whatever_their_totals():
    sim = sdc.datasets.simulate(n_cells=60, n_genes=40, n_groups=2, random_state=0)
    del sim.layers["counts"]
    sc.pp.normalize_total(sim, target_sum=1e4)
    sim = sim[:, :30].copy()  # the totals no longer alike
    sim.X = sim.X.toarray()
    values = sim.X.copy()
    assert values.max() > 50
    steps = sdc.pp.recipe(sim, "desc", n_top_genes=None, scale=False)
    assert any(step.startswith("X looks normalised but not log-transformed") for step in steps)
    np.testing.assert_allclose(sim.X, np.log1p(values), rtol=1e-6)


def test_log_normalised_x_of_cells_with_counts_all_alike_is_not_taken_for_normalised():
    rng = np.random.default_rng(0)
    counts = (rng.random((60, 40)) < 0.3).astype(np.float32)  # 0/1 counts, as shallow data
    counts[:, 0] = 1
    adata = ad.AnnData(sparse.csr_matrix(counts))
    adata.layers["counts"] = adata.X.copy()
    sc.pp.normalize_total(adata, target_sum=1234.5)
    sc.pp.log1p(adata)
    del adata.uns["log1p"]
    values = adata.X.toarray()
    steps = sdc.pp.recipe(adata, "desc", n_top_genes=None, scale=False)
    assert "X looks log-normalised already: no normalisation" in steps
    np.testing.assert_array_equal(adata.X.toarray(), values)


def test_normalised_x_with_a_stored_zero_is_still_taken_for_normalised():
    sim = sdc.datasets.simulate(n_cells=60, n_genes=40, n_groups=2, random_state=0)
    sim.X = sim.layers["counts"].copy()
    sc.pp.normalize_total(sim)
    sim = sim[:, :30].copy()  # the totals no longer alike
    sim.layers["counts"].data[0] = 0  # a zero stored in both, where anndata kept it
    sim.X.data[0] = 0
    values = sim.X.toarray()
    assert values.max() < 50
    steps = sdc.pp.recipe(sim, "desc", n_top_genes=None, scale=False)
    assert any(step.startswith("X looks normalised but not log-transformed") for step in steps)
    np.testing.assert_allclose(sim.X.toarray(), np.log1p(values), rtol=1e-6)


def test_recipe_keeps_every_gene_where_var_highly_variable_marks_them_all():
    sim = sdc.datasets.simulate(n_cells=60, n_genes=40, n_groups=2, random_state=0)
    sim.var["highly_variable"] = True
    steps = sdc.pp.recipe(sim, "desc", n_top_genes=10, hvg_above=0)
    assert sim.n_vars == 40 and "kept the 40 genes of 40 marked in var['highly_variable']" in steps


def test_recipe_says_nothing_of_the_storage_of_float64_counts():
    sim = sdc.datasets.simulate(n_cells=60, n_genes=40, n_groups=2, random_state=0)
    sim.X = sim.layers.pop("counts").toarray().astype(np.float64)
    steps = sdc.pp.recipe(sim, "desc")
    assert not any("stored as" in step for step in steps), steps
    assert sim.layers["counts"].dtype == np.float64


def test_read_h5_keeps_labels_that_are_not_whole_numbers_apart(tmp_path):
    """Whole numbers among them are not read as codes: 0.5 and 1.5 stay labels of their own."""
    with h5py.File(tmp_path / "y.h5", "w") as f:
        f["X"] = np.random.default_rng(0).poisson(1, (6, 4))
        f["Y"] = np.array([0.5, 1.0, 1.5, 1.0, np.nan, 2.0])
    labels = sdc.datasets.read_h5(tmp_path / "y.h5").obs["label"]
    # as text, as whole-number labels are, in numeric order; NaN is no label
    assert list(labels.cat.categories) == ["0.5", "1", "1.5", "2"]
    assert list(labels.astype(object)[:4]) == ["0.5", "1", "1.5", "1"] and labels.isna()[4]


def test_read_h5_refuses_an_x_that_is_not_two_dimensional(tmp_path):
    with h5py.File(tmp_path / "flat.h5", "w") as f:
        f["X"] = np.ones(6)
    with pytest.raises(ValueError, match="'X' is not the dense cells x genes matrix"):
        sdc.datasets.read_h5(tmp_path / "flat.h5")


def test_read_refuses_a_folder_named_like_a_file(tmp_path):
    (tmp_path / "cells.h5ad").mkdir()
    with pytest.raises(ValueError, match=r"cells\.h5ad is a directory; give an \.h5ad or \.h5"):
        sdc.datasets.read(tmp_path / "cells.h5ad")


def test_read_reads_a_zarr_store(sim, tmp_path):
    sim.write_zarr(tmp_path / "cells.zarr")
    adata = sdc.datasets.read(tmp_path / "cells.zarr")
    assert (adata.X != sim.X).nnz == 0 and adata.obs.equals(sim.obs)


def test_read_names_a_zarr_store_that_anndata_did_not_write(sim, tmp_path):
    """A SpatialData store keeps its AnnData under tables/<name>: read gave anndata's
    "AnnData.__init__() got an unexpected keyword argument 'tables'"; a damaged store a JSON
    parser's position. Neither named the store."""
    import zarr

    root = zarr.open_group(tmp_path / "sdata.zarr", mode="w")
    root.create_group("tables")
    sim.write_zarr(tmp_path / "sdata.zarr" / "tables" / "table")
    with pytest.raises(ValueError, match=r"sdata\.zarr is a \.zarr store without.*'tables'"):
        sdc.datasets.read(tmp_path / "sdata.zarr")
    (tmp_path / "bad.zarr").mkdir()
    (tmp_path / "bad.zarr" / "zarr.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"cannot read .*bad\.zarr: .*written by anndata"):
        sdc.datasets.read(tmp_path / "bad.zarr")
    # a group lost since: the consolidated metadata still listed it, and anndata read the genes
    # without their names
    sim.write_zarr(tmp_path / "cut.zarr")
    shutil.rmtree(tmp_path / "cut.zarr" / "var")
    with pytest.raises(ValueError, match=r"cut\.zarr is a \.zarr store without .*lost them since"):
        sdc.datasets.read(tmp_path / "cut.zarr")


def as_mudata_file(path, adata, modalities=("prot", "rna")):
    """Write `adata` where mudata would, marked as mudata marks its files (.h5mu or .zarr)."""
    if path.suffix == ".zarr":
        import zarr

        adata.write_zarr(path)
        on_disk = {"use_consolidated": False} if int(zarr.__version__.split(".")[0]) >= 3 else {}
        root = zarr.open_group(path, mode="r+", **on_disk)
    else:
        import h5py

        adata.write_h5ad(path)
        root = h5py.File(path, "r+")
    root.attrs["encoding-type"] = "MuData"  # as mudata writes it
    mod = root.create_group("mod")
    for name in modalities:
        mod.create_group(name)
    if hasattr(root, "close"):
        root.close()
    else:
        zarr.consolidate_metadata(path)


@pytest.mark.parametrize("name", ["cells.h5mu", "cells.h5ad", "cells.h5", "cells.zarr"])
def test_read_names_a_mudata_file_and_the_line_that_writes_a_modality(sim, tmp_path, name):
    """anndata read a MuData's top-level obs and var and failed on the rest, in words that said
    to update anndata; an .h5mu was refused by its name alone."""
    as_mudata_file(tmp_path / name, sim)
    reader = "read_zarr" if name.endswith(".zarr") else "read_h5mu"
    with pytest.raises(
        ValueError,
        match=rf"cells\.\w+ holds a MuData \(modalities: \['prot', 'rna'\]\), and the tools "
        rf"cluster the cells of one AnnData: .* `mudata\.{reader}\('.*cells\.\w+'\)\['rna'\]"
        r"\.write_h5ad\('rna\.h5ad'\)`",
    ):
        sdc.datasets.read(tmp_path / name)
    as_mudata_file(tmp_path / f"other{name}", sim, modalities=("atac", "prot"))
    with pytest.raises(ValueError, match=r"\(modalities: \['atac', 'prot'\]\).*\['atac'\]"):
        sdc.datasets.read(tmp_path / f"other{name}")
    as_mudata_file(tmp_path / f"empty{name}", sim, modalities=())
    with pytest.raises(ValueError, match=r"holds a MuData without modalities: there are no cells"):
        sdc.datasets.read(tmp_path / f"empty{name}")


def test_recipe_normalises_a_copy_of_an_x_of_counts_beside_a_counts_layer(monkeypatch):
    """Kills P02 and P03: X's counts beside layers['counts'] were normalised in the caller's own
    matrix, so a step that failed after it restored a normalised X (and every other holder of
    that matrix saw it change)."""
    sim = sdc.datasets.simulate(n_cells=60, n_genes=50, n_groups=2, random_state=0)
    sim.X = sim.layers["counts"].copy()
    x, before = sim.X, sim.X.copy()

    def fail(*args, **kwargs):
        raise RuntimeError("stopped")

    monkeypatch.setattr(sc.pp, "log1p", fail)
    with pytest.raises(RuntimeError, match="stopped"):
        sdc.pp.recipe(sim, "scdcc", n_top_genes=None)
    assert sim.X is x and (x != before).nnz == 0


def test_recipe_log_transforms_a_copy_of_a_normalised_x(monkeypatch):
    """Kills P07: a normalised X was log-transformed in the caller's own matrix, so a step that
    failed after it (scale) restored a log-transformed X."""
    sim = sdc.datasets.simulate(n_cells=60, n_genes=50, n_groups=2, random_state=0)
    adata = sc.AnnData(sim.layers["counts"].toarray())
    sc.pp.normalize_total(adata)
    x, before = adata.X, adata.X.copy()

    def fail(*args, **kwargs):
        raise RuntimeError("stopped")

    monkeypatch.setattr(sc.pp, "scale", fail)
    with pytest.raises(RuntimeError, match="stopped"):
        sdc.pp.recipe(adata, "desc")
    assert adata.X is x
    np.testing.assert_array_equal(x, before)


def test_read_h5_orders_labels_that_are_not_whole_numbers_by_value_not_as_text(tmp_path):
    """Kills D03: the categories were sorted as text ("10.5" before "2.5")."""
    with h5py.File(tmp_path / "y.h5", "w") as f:
        f["X"] = np.random.default_rng(0).poisson(1, (4, 3))
        f["Y"] = np.array([10.5, 2.5, 2.0, 10.5])
    labels = sdc.datasets.read_h5(tmp_path / "y.h5").obs["label"]
    assert list(labels.cat.categories) == ["2", "2.5", "10.5"]


# M040
def test_recipe_names_the_line_that_fills_missing_values_of_highly_variable():
    """pp.recipe refuses var['highly_variable'] with missing values; its advice names the line
    that fills them, and that line mends the column."""
    adata = counts_data()
    marked = pd.array([True] * 10 + [False] * 19 + [None], dtype="boolean")
    adata.var["highly_variable"] = marked
    with pytest.raises(ValueError, match="has missing values") as refused:
        sdc.pp.recipe(adata, "desc")
    line = re.search(r"\(`(adata\.var\['highly_variable'\] = .*?)`\)", str(refused.value)).group(1)
    exec(line, {"adata": adata})
    assert adata.var["highly_variable"].sum() == 10


# M136, M138, M139
def test_read_refuses_a_zarr_store_missing_var_and_names_tables_only_where_there_are(tmp_path):
    import zarr

    adata = counts_data()
    cut = zarr.open_group(tmp_path / "cut.zarr", mode="w")  # obs without var
    cut.create_group("obs")
    cut.create_group("X")
    with pytest.raises(
        ValueError, match=r"cut\.zarr is a \.zarr store without AnnData's 'obs' and 'var'"
    ) as refused:
        sdc.datasets.read(tmp_path / "cut.zarr")
    assert "SpatialData" not in str(refused.value)
    root = zarr.open_group(tmp_path / "sdata.zarr", mode="w")
    root.create_group("tables")
    adata.write_zarr(tmp_path / "sdata.zarr" / "tables" / "table")
    with pytest.raises(ValueError, match="A SpatialData store") as refused:
        sdc.datasets.read(tmp_path / "sdata.zarr")
    line = re.search(r"(anndata\.read_zarr\('.*?)/<name>'\)", str(refused.value)).group(1)
    table = ad.read_zarr(line.split("'")[1] + "/table")
    assert table.shape == adata.shape


# M140
def test_a_foreign_zarr_store_is_refused_with_its_keys_in_order(tmp_path):
    import zarr

    root = zarr.open_group(tmp_path / "other.zarr", mode="w")
    for name in ("zeta", "alpha", "mid"):
        root.create_group(name)
    with pytest.raises(ValueError, match=re.escape("(it holds ['alpha', 'mid', 'zeta'])")):
        sdc.datasets.read(tmp_path / "other.zarr")


def test_read_prefers_the_rna_modality_whatever_its_case(sim, tmp_path):
    as_mudata_file(tmp_path / "cells.h5mu", sim, modalities=("ADT", "RNA"))
    with pytest.raises(ValueError, match=r"\['RNA'\]\.write_h5ad\('RNA\.h5ad'\)"):
        sdc.datasets.read(tmp_path / "cells.h5mu")
    as_mudata_file(tmp_path / "gex.h5mu", sim, modalities=("adt", "GEX"))
    with pytest.raises(ValueError, match=r"\['GEX'\]\.write_h5ad"):
        sdc.datasets.read(tmp_path / "gex.h5mu")


def test_read_names_a_mudata_file_without_its_mod_group(sim, tmp_path):
    """A file marked as a MuData whose 'mod' is missing: told it holds no modalities, not
    h5py's KeyError."""
    import h5py

    sim.write_h5ad(tmp_path / "cells.h5mu")
    with h5py.File(tmp_path / "cells.h5mu", "r+") as f:
        f.attrs["encoding-type"] = "MuData"
    with pytest.raises(ValueError, match=r"holds a MuData without modalities"):
        sdc.datasets.read(tmp_path / "cells.h5mu")


def test_recipe_names_the_layers_of_counts_bare_as_its_message_does(sim):
    """pp.recipe names layers bare ("there is no layers['counts']"): the advice too."""
    import scanpy as sc

    sim.layers["raw_counts"] = sim.layers.pop("counts")
    sc.pp.normalize_total(sim)
    sc.pp.log1p(sim)
    with pytest.raises(ValueError, match=r"layers\['raw_counts'\] holds counts") as error:
        sdc.pp.recipe(sim, "scdcc")
    assert "adata.layers['raw_counts']" not in str(error.value)


def test_read_names_a_mudata_zarr_store_without_its_mod_group(sim, tmp_path):
    """A .zarr store marked as a MuData but holding no 'mod' group: refused as a MuData without
    modalities, not read as the AnnData of its top-level obs and var."""
    import zarr

    sim.write_zarr(tmp_path / "cells.zarr")
    root = zarr.open_group(tmp_path / "cells.zarr", mode="r+", use_consolidated=False)
    root.attrs["encoding-type"] = "MuData"
    zarr.consolidate_metadata(tmp_path / "cells.zarr")
    with pytest.raises(ValueError, match=r"holds a MuData without modalities"):
        sdc.datasets.read(tmp_path / "cells.zarr")


def test_read_reads_a_zarr_store_named_in_capitals(tmp_path):
    adata = counts_data()
    adata.write_zarr(tmp_path / "cells.ZARR")
    read = sdc.datasets.read(tmp_path / "cells.ZARR")
    assert (read.X != adata.X).nnz == 0


def test_one_value_near_zero_among_square_roots_of_counts_is_no_count():
    """0.01 squares to 0.0001, within the tolerance of the count 0, which only the value 0
    stands for: one such value makes the values no square roots of counts."""
    assert counts_of_transform(np.sqrt([4.0, 9.0]), "the square root of counts") is not None
    assert counts_of_transform(np.array([0.01, 2.0, 3.0]), "the square root of counts") is None
