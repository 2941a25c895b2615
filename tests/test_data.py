import builtins
import errno
from pathlib import Path

import anndata as ad
import numpy as np
import pytest
import scanpy as sc
import torch
from scipy import sparse

import scdeepclust as sdc
from scdeepclust.data import (
    CellFeeder,
    RowSource,
    _feeding,
    is_dask_array,
    stream_outputs,
)
from scdeepclust.data._feeding import ResidentRows, fits_on_device, gather_csr_rows, keeps_rows
from scdeepclust.pp import count_statistics, is_count_matrix
from scdeepclust.pp._counts import feature_statistics, size_factors
from scdeepclust.train import density_balanced_weights


def test_count_statistics_match_scanpy(sim):
    counts = sim.X
    stats = count_statistics(RowSource(counts))
    lib = np.asarray(counts.sum(1)).ravel()
    np.testing.assert_allclose(stats.size_factors, lib / np.median(lib), rtol=1e-6)
    ref = ad.AnnData(counts.copy())
    sc.pp.normalize_total(ref, target_sum=float(np.median(lib)))
    sc.pp.log1p(ref)
    dense = ref.X.toarray()
    np.testing.assert_allclose(stats.gene_mean, dense.mean(0), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(stats.gene_scale, dense.std(0, ddof=1), rtol=1e-4, atol=1e-6)
    dense_stats = count_statistics(RowSource(counts.toarray()), chunk_size=50)
    np.testing.assert_allclose(dense_stats.gene_mean, stats.gene_mean, rtol=1e-5)


def test_count_statistics_of_any_storage_of_the_same_counts(sim, tmp_path):
    counts = sparse.csr_matrix(sim.X)
    expected = count_statistics(RowSource(counts))
    # every entry stored twice, as two whole parts: scipy sums them when it reads values
    coo = counts.tocoo()
    half = np.floor(coo.data / 2)
    rows = np.tile(coo.row, 2)
    order = np.argsort(rows, kind="stable")
    twice = sparse.csr_matrix(
        (
            np.concatenate([half, coo.data - half])[order],
            np.tile(coo.col, 2)[order],
            np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=counts.shape[0]))]),
        ),
        shape=counts.shape,
    )
    assert not twice.has_canonical_format
    dense = counts.toarray()
    big = dense.copy()
    big[0] = np.round(70_000 / dense.shape[1])  # one cell above float16's largest, 65,504
    for stored in (twice, dense.astype(np.float16), sparse.csr_array(counts)):
        stats = count_statistics(RowSource(stored))
        np.testing.assert_allclose(stats.size_factors, expected.size_factors, rtol=1e-6)
        np.testing.assert_allclose(stats.gene_mean, expected.gene_mean, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(stats.gene_scale, expected.gene_scale, rtol=1e-5, atol=1e-6)
    # also from a backed file, which anndata writes with the repeated entries as they are
    path = tmp_path / "twice.h5ad"
    ad.AnnData(twice).write_h5ad(path)
    backed = sc.read_h5ad(path, backed="r")
    stats = count_statistics(RowSource(backed.X))
    np.testing.assert_allclose(stats.gene_mean, expected.gene_mean, rtol=1e-5, atol=1e-6)
    backed.file.close()
    # scDCC's choice of variable genes reads the summed entries too
    from scdeepclust.tl._scdcc import _highly_variable

    np.testing.assert_array_equal(
        _highly_variable(twice, 20, None), _highly_variable(counts, 20, None)
    )
    # library sizes summed in float64, not in float16 (inf above 65,504)
    high = count_statistics(RowSource(big.astype(np.float16)))
    np.testing.assert_allclose(
        high.size_factors, count_statistics(RowSource(big)).size_factors, rtol=1e-6
    )


def test_is_count_matrix():
    assert is_count_matrix(np.array([[0, 3], [2, 1]], dtype=np.float32))
    assert is_count_matrix(sparse.csr_matrix(np.array([[0, 3], [2, 1]])))
    assert not is_count_matrix(np.array([[0.5, 3.0]]))
    assert not is_count_matrix(sparse.csr_matrix(np.array([[-1.0, 3.0]])))
    assert not is_count_matrix(np.array([[np.nan, 3.0]]))


def test_feeder_sparse_equals_dense(sim):
    stats = count_statistics(RowSource(sim.X))
    kw = dict(
        device=torch.device("cpu"),
        size_factors=stats.size_factors,
        gene_mean=stats.gene_mean,
        gene_scale=stats.gene_scale,
    )
    fs = CellFeeder(RowSource(sim.X), **kw)
    fd = CellFeeder(RowSource(sim.X.toarray()), **kw)
    idx = np.array([5, 0, 17, 3])
    bs, bd = fs.batch(idx), fd.batch(idx)
    torch.testing.assert_close(bs.x, bd.x)
    torch.testing.assert_close(bs.counts, torch.from_numpy(sim.X[idx].toarray()))
    # network input is the z-scored log-normalised counts
    expected = np.log1p(sim.X[idx].toarray() / stats.size_factors[idx, None]) - stats.gene_mean
    expected /= stats.gene_scale
    np.testing.assert_allclose(bs.x.numpy(), expected, rtol=1e-5, atol=1e-5)


def test_gather_csr_rows_matches_scipy_with_empty_rows_and_duplicates():
    rng = np.random.default_rng(0)
    for density in (0.0, 0.02, 0.3):
        matrix = sparse.random(80, 40, density=density, format="csr", random_state=rng)
        matrix = sparse.diags((rng.random(80) < 0.6).astype(float)) @ matrix  # empty rows
        matrix = sparse.csr_matrix(matrix, dtype=np.float32)
        # a row holding column 3 twice, which scipy sums when densifying
        matrix = sparse.vstack([matrix, sparse.csr_matrix(([1.5, 2.0], [3, 3], [0, 2]), (1, 40))])
        matrix = sparse.csr_matrix(matrix)
        arrays = [torch.from_numpy(a) for a in (matrix.indptr, matrix.indices, matrix.data)]
        for index in (
            rng.integers(0, 81, 50),
            np.array([80, 80, 0]),
            np.flatnonzero(np.diff(matrix.indptr) == 0)[:3],
        ):
            expected = matrix[index].toarray()
            rows = torch.from_numpy(index.astype(np.int64))
            np.testing.assert_array_equal(gather_csr_rows(*arrays, rows, 40).numpy(), expected)
            n = int(np.diff(matrix.indptr)[index].sum())
            np.testing.assert_array_equal(gather_csr_rows(*arrays, rows, 40, n).numpy(), expected)


def test_rows_on_the_device_with_a_column_selected_twice():
    """A column selected twice doubles its entries: more than the matrix stores."""
    matrix = sparse.csr_matrix(np.array([[2.0, 0.0, 1.0], [0.0, 3.0, 0.0]], dtype=np.float32))
    source = RowSource(matrix, columns=np.array([0, 0, -1, 2, 0]))
    resident = ResidentRows.upload(source, torch.device("cpu"))
    index = np.array([1, 0, 0])
    rows = resident.rows(index, torch.from_numpy(index)).numpy()
    np.testing.assert_array_equal(rows, source.rows(index))


def test_rows_of_a_sparse_matrix_in_another_byte_order(sim):
    """scipy refuses to slice or copy a CSR matrix of big-endian values: its rows and blocks
    are read in this machine's byte order instead (repeated entries summed, columns selected),
    the caller's matrix left as it is."""
    native = sparse.csr_matrix(sim.X, dtype=np.float32)
    n_obs = native.shape[0]
    twice = sparse.csr_matrix(  # every entry stored twice, each holding half
        (np.repeat(native.data / 2, 2), np.repeat(native.indices, 2), 2 * native.indptr),
        shape=native.shape,
    )
    assert not twice.has_canonical_format
    columns = np.array([5, -1, 0, 7, 5])
    for matrix in (native, native.astype(np.float64), twice):
        swapped = sparse.csr_matrix(
            (matrix.data.astype(matrix.dtype.newbyteorder(">")), matrix.indices, matrix.indptr),
            shape=matrix.shape,
        )
        for cols in (None, columns):
            expected, source = RowSource(matrix, columns=cols), RowSource(swapped, columns=cols)
            assert source.swaps_bytes and not expected.swaps_bytes
            index = np.array([7, 0, 7, n_obs - 1])
            np.testing.assert_array_equal(source.rows(index), expected.rows(index))
            for (_, _, got), (_, _, want) in zip(
                source.iter_blocks(50), expected.iter_blocks(50), strict=True
            ):
                assert got.dtype.isnative and got.dtype == want.dtype
                np.testing.assert_array_equal(got.toarray(), want.toarray())
            shard = source.shard(30, 90)
            np.testing.assert_array_equal(
                shard.rows(np.array([0, 59])), expected.rows(np.array([30, 89]))
            )
        np.testing.assert_allclose(
            count_statistics(RowSource(swapped)).size_factors,
            count_statistics(RowSource(matrix)).size_factors,
            rtol=1e-6,
        )
        assert not swapped.dtype.isnative  # the caller's matrix is left as it was


@pytest.mark.parametrize("dense", [False, True], ids=["csr", "dense"])
def test_feeder_with_rows_on_the_device_gives_the_host_batches(sim, monkeypatch, dense):
    matrix = sim.X.toarray() if dense else sim.X
    stats = count_statistics(RowSource(sim.X))
    codes = np.arange(sim.n_obs) % 3

    def feeder():
        return CellFeeder(
            RowSource(matrix),
            device=torch.device("cpu"),
            size_factors=stats.size_factors,
            gene_mean=np.stack([stats.gene_mean] * 3),
            gene_scale=np.stack([stats.gene_scale] * 3),
            batch_codes=codes,
        )

    monkeypatch.setattr(_feeding, "keeps_rows", lambda source, device: False)
    host = feeder()
    expected = list(host.minibatches(64, np.random.default_rng(0)))
    monkeypatch.setattr(_feeding, "keeps_rows", lambda source, device: True)
    kept = feeder()
    for a, b in zip(expected, kept.minibatches(64, np.random.default_rng(0)), strict=True):
        for field in ("index", "x", "counts", "size_factors", "batch_code"):
            torch.testing.assert_close(getattr(a, field), getattr(b, field), rtol=0, atol=0)
    assert host._resident is None and kept._resident is not None


def test_dense_rows_on_the_cpu_are_kept_as_float32(monkeypatch):
    """float32 rows are used in place; others are copied once, up to a size; sparse rows are
    read per minibatch."""
    cpu = torch.device("cpu")
    values = np.random.default_rng(0).normal(size=(30, 7))
    index = np.array([29, 0, 3, 3])
    as_float32 = RowSource(values.astype(np.float32))
    in_place = ResidentRows.upload(as_float32, cpu).dense
    assert keeps_rows(as_float32, cpu)
    assert in_place.data_ptr() == as_float32.matrix.ctypes.data  # no copy
    as_float64 = RowSource(values)
    assert keeps_rows(as_float64, cpu)
    copied = ResidentRows.upload(as_float64, cpu)
    assert copied.dense.dtype == torch.float32
    np.testing.assert_array_equal(
        copied.rows(index, torch.from_numpy(index)).numpy(), as_float64.rows(index)
    )
    shard = as_float32.shard(10, 20)
    np.testing.assert_array_equal(
        ResidentRows.upload(shard, cpu).rows(index[1:], torch.from_numpy(index[1:])).numpy(),
        shard.rows(index[1:]),
    )
    assert not keeps_rows(RowSource(sparse.csr_matrix(values)), cpu)
    monkeypatch.setattr(_feeding, "CPU_RESIDENT_MAX_BYTES", values.size * 4 - 1)
    assert not keeps_rows(as_float64, cpu)
    assert keeps_rows(as_float32, cpu)  # in place: no copy to bound
    selected = RowSource(values.astype(np.float32), columns=np.array([0, 2]))
    assert selected.dense_float32_rows() is None and keeps_rows(selected, cpu)


def test_rows_stay_on_a_cuda_device_only_with_room_to_spare(monkeypatch):
    gib = 2**30
    cuda = torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (40 * gib, 80 * gib))
    assert fits_on_device(20 * gib, cuda) and not fits_on_device(21 * gib, cuda)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (3 * gib, 80 * gib))
    assert fits_on_device(gib, cuda) and not fits_on_device(gib + 1, cuda)
    assert not fits_on_device(1, torch.device("cpu"))


def test_minibatches_cover_every_cell_once(sim):
    feeder = CellFeeder(RowSource(sim.X), device=torch.device("cpu"))
    seen = np.concatenate(
        [b.index.numpy() for b in feeder.minibatches(64, np.random.default_rng(0))]
    )
    assert sorted(seen.tolist()) == list(range(sim.n_obs))
    # a trailing single cell is merged into the previous batch
    sizes = [
        len(b.index)
        for b in CellFeeder(RowSource(sim.X[:129]), device=torch.device("cpu")).minibatches(
            64, np.random.default_rng(0)
        )
    ]
    assert sizes == [64, 65]


def test_weighted_minibatches_draw_by_the_weights():
    x = np.arange(1000, dtype=np.float32)[:, None]
    feeder = CellFeeder(RowSource(x), device=torch.device("cpu"))
    weights = np.where(np.arange(1000) < 100, 9.0, 1.0)  # the first 100 cells 9x as often
    weights /= weights.sum()
    rng = np.random.default_rng(0)
    batches = [b for _ in range(20) for b in feeder.minibatches(64, rng, weights)]
    assert [len(b.index) for b in batches[:16]] == [
        len(b.index) for b in feeder.minibatches(64, rng)
    ]
    drawn = np.concatenate([b.index.numpy() for b in batches])
    share = np.mean(drawn < 100)  # expected 900 / 1800
    assert 0.47 < share < 0.53
    a = [b.index.numpy() for b in feeder.minibatches(64, np.random.default_rng(1), weights)]
    b = [b.index.numpy() for b in feeder.minibatches(64, np.random.default_rng(1), weights)]
    assert all(np.array_equal(u, v) for u, v in zip(a, b))  # seeded


def test_density_balanced_weights_favour_small_groups():
    # a group of 5% of the cells beside two of 70% and 25%: its cells are drawn more often
    adata = sdc.datasets.simulate(
        2000, 200, 3, group_fractions=[0.7, 0.25, 0.05], de_fraction=0.3, random_state=0
    )
    stats = count_statistics(RowSource(adata.X))
    feeder = CellFeeder(
        RowSource(adata.X),
        device=torch.device("cpu"),
        size_factors=stats.size_factors,
        gene_mean=stats.gene_mean,
        gene_scale=stats.gene_scale,
    )
    weights = density_balanced_weights(feeder, 0.5, random_state=0)
    assert weights.shape == (2000,) and np.isclose(weights.sum(), 1.0) and (weights > 0).all()
    group = adata.obs["group"].cat.codes.to_numpy()
    per_cell = [weights[group == g].mean() for g in range(3)]
    # The smallest type's cells are drawn more often than the largest's, and the smallest type
    # more than its share, but not equalised. k-means tiles both larger types with groups of
    # about the same size, so how those two compare varies with the seed and the data (over 20
    # draws of data and seed, the smallest type led the largest in all 20, both others in 17).
    assert per_cell[2] > per_cell[0]
    share = [weights[group == g].sum() for g in range(3)]
    assert 0.05 < share[2] < 1 / 3
    np.testing.assert_array_equal(weights, density_balanced_weights(feeder, 0.5, random_state=0))
    # fitted on a subsample, the other cells streamed into their nearest group: the same picture
    streamed = density_balanced_weights(feeder, 0.5, random_state=0, max_fit_cells=800)
    assert streamed.shape == (2000,) and np.isclose(streamed.sum(), 1.0)
    per_cell = [streamed[group == g].mean() for g in range(3)]
    assert per_cell[2] > per_cell[0]
    assert density_balanced_weights(feeder, 0.0, random_state=0) is None
    small = CellFeeder(RowSource(adata.X[:99]), device=torch.device("cpu"))
    assert density_balanced_weights(small, 0.5, random_state=0) is None  # one group only
    with pytest.raises(ValueError, match="power must be >= 0"):
        density_balanced_weights(feeder, -1.0, random_state=0)


def test_stream_outputs_in_order(sim):
    feeder = CellFeeder(RowSource(sim.X), device=torch.device("cpu"))
    out = stream_outputs(feeder, lambda b: {"s": b.x.sum(1, keepdim=True)}, {"s": 1}, chunk_size=50)
    np.testing.assert_allclose(out["s"][:, 0], np.asarray(sim.X.sum(1)).ravel(), rtol=1e-5)
    assert out["s"].dtype == np.float32


def test_backed_anndata_rows(sim, tmp_path):
    path = tmp_path / "sim.h5ad"
    sim.write_h5ad(path)
    backed = sc.read_h5ad(path, backed="r")
    src = RowSource(backed.X)
    idx = np.array([9, 2, 30])
    np.testing.assert_array_equal(src.rows(idx), sim.X[idx].toarray())
    stats = count_statistics(src, chunk_size=100)
    np.testing.assert_allclose(
        stats.gene_mean, count_statistics(RowSource(sim.X)).gene_mean, rtol=1e-5
    )
    backed.file.close()
    # dense rows read repeatedly (draws with replacement): HDF5 reads increasing indices only
    dense_path = tmp_path / "dense.h5ad"
    ad.AnnData(sim.X.toarray()).write_h5ad(dense_path)
    dense = sc.read_h5ad(dense_path, backed="r")
    idx = np.array([5, 2, 5, 0, 2])
    np.testing.assert_array_equal(RowSource(dense.X).rows(idx), sim.X[idx].toarray())
    dense.file.close()


@pytest.mark.parametrize("chunks", ["sparse", "dense"])
def test_dask_arrays_are_computed_once_with_the_results_of_their_values(sim, chunks):
    # anndata's lazy readers give dask arrays: a sparse-chunked one failed ("Expected a 2-d
    # matrix"), a dense one was computed whole twice
    da = pytest.importorskip("dask.array")
    from dask.callbacks import Callback

    matrix = sim.X if chunks == "sparse" else sim.X.toarray()
    computed = []

    class Computes(Callback):
        def _start(self, dsk):
            computed.append(len(dsk))

    adata = sim.copy()
    adata.layers["counts"] = da.from_array(matrix, chunks=(50, -1))
    short = dict(pretrain_epochs=2, max_epochs=2, progress=False)
    want = sdc.tl.scdcc(sim, 3, copy=True, **short)
    with Computes():
        got = sdc.tl.scdcc(adata, 3, copy=True, **short)
    np.testing.assert_array_equal(got.obsm["X_scdcc"], want.obsm["X_scdcc"])
    assert len(computed) == 1  # once, as a whole
    assert type(adata.layers["counts"]).__module__.startswith("dask")  # the caller's as it was


@pytest.mark.parametrize("chunks", ["sparse", "dense"])
def test_a_dask_matrix_is_computed_only_in_the_genes_a_tool_reads(sim, chunks):
    """With mask_var, the gene chunks outside the mask were computed too: a whole lazily read
    transcriptome in memory for the few thousand genes marked."""
    da = pytest.importorskip("dask.array")
    matrix = sim.X.tocsr() if chunks == "sparse" else sim.X.toarray()
    read_chunks = set()

    def record(block, block_id=None):
        read_chunks.add(block_id[1])
        return block

    lazy = da.from_array(matrix, chunks=(-1, 20)).map_blocks(record, dtype=matrix.dtype)
    marked = np.zeros(sim.n_vars, dtype=bool)
    marked[:60:2] = True  # in the column chunks 0, 1 and 2 of 6
    short = dict(mask_var=marked, pretrain_epochs=2, max_epochs=2, progress=False)
    want, model = sdc.tl.scdcc(sim, 3, copy=True, return_model=True, **short)
    adata = sim.copy()
    adata.layers["counts"] = lazy
    got = sdc.tl.scdcc(adata, 3, copy=True, **short)
    assert read_chunks == {0, 1, 2}
    np.testing.assert_array_equal(got.obsm["X_scdcc"], want.obsm["X_scdcc"])
    read_chunks.clear()  # mapping reads the model's genes alone too
    got = sdc.tl.map_to_model(adata, model, copy=True)
    assert read_chunks == {0, 1, 2}
    want = sdc.tl.map_to_model(sim, model, copy=True)
    np.testing.assert_array_equal(got.obsm["X_scdcc"], want.obsm["X_scdcc"])


def test_a_desc_model_maps_a_dask_matrix_reading_only_its_genes(sim):
    da = pytest.importorskip("dask.array")
    lognorm = sim.copy()
    sc.pp.normalize_total(lognorm)
    sc.pp.log1p(lognorm)
    read_chunks = set()

    def record(block, block_id=None):
        read_chunks.add(block_id[1])
        return block

    marked = np.zeros(sim.n_vars, dtype=bool)
    marked[20:80:2] = True  # in the column chunks 1, 2 and 3 of 6
    _, model = sdc.tl.desc(
        lognorm,
        n_clusters=3,
        scale=True,
        mask_var=marked,
        copy=True,
        return_model=True,
        pretrain_epochs=2,
        max_epochs=2,
        progress=False,
    )
    lazy = lognorm.copy()
    lazy.X = da.from_array(lognorm.X.tocsr(), chunks=(-1, 20)).map_blocks(record, dtype=np.float32)
    got = sdc.tl.map_to_model(lazy, model, copy=True)
    assert read_chunks == {1, 2, 3}
    want = sdc.tl.map_to_model(lognorm, model, copy=True)
    np.testing.assert_array_equal(got.obsm["X_desc"], want.obsm["X_desc"])


def test_a_view_of_a_sparse_dask_matrix_is_read_as_the_copy_of_the_view(sim):
    """anndata wraps dask arrays of a view in its own subclass, which was not told a dask
    array: every tool that read it failed with "Expected a 2-d matrix, got an array of shape
    ()"."""
    da = pytest.importorskip("dask.array")
    plain = sim.copy()
    del plain.layers["counts"]  # so that the counts are read from the dask X
    adata = plain.copy()
    adata.X = da.from_array(plain.X, chunks=(50, -1), asarray=False)
    view = adata[20:]
    assert is_dask_array(view.X) and not type(view.X).__module__.startswith("dask")
    short = dict(pretrain_epochs=2, max_epochs=2, progress=False)
    want = sdc.tl.scdcc(plain[20:].copy(), 3, copy=True, **short)
    got = sdc.tl.scdcc(view, 3, copy=True, **short)
    np.testing.assert_array_equal(got.obsm["X_scdcc"], want.obsm["X_scdcc"])
    with pytest.raises(ValueError, match=r"load it into memory first: `adata.X = adata.X.compute"):
        sdc.pp.recipe(view, "scdcc")


def test_simulate_is_seeded_and_sparse():
    a = sdc.datasets.simulate(100, 50, 2, random_state=3)
    b = sdc.datasets.simulate(100, 50, 2, random_state=3)
    assert sparse.issparse(a.X) and a.X.dtype == np.float32
    assert (a.X != b.X).nnz == 0
    assert a.obs["group"].nunique() == 2
    assert is_count_matrix(a.X)
    # the counts layer is a copy: normalising X in place leaves it as it was
    assert (a.layers["counts"] != a.X).nnz == 0
    sc.pp.normalize_total(a)
    sc.pp.log1p(a)
    assert (a.layers["counts"] != b.X).nnz == 0


def test_protein_levels_from_a_sparse_dask_array():
    # they failed with "must hold numbers ... setting an array element with a sequence"
    da = pytest.importorskip("dask.array")
    from scdeepclust.pp._protein import protein_levels

    levels = sparse.random(30, 4, density=0.5, format="csr", random_state=0, dtype=np.float32)
    got = protein_levels(da.from_array(levels, chunks=(10, -1)), "protein")
    np.testing.assert_array_equal(got, levels.toarray().astype(np.float64))


def test_dense_chunks_hold_a_bounded_number_of_values():
    """Inference and the input's components read chunks whose rows shrink as genes grow: 4,096
    rows of 20,000 genes make dense temporaries of 328 MB each, several at a time."""
    from scdeepclust.data import dense_chunk_rows
    from scdeepclust.data._rows import DENSE_CHUNK_VALUES
    from scdeepclust.train import _components

    assert dense_chunk_rows(2000) == dense_chunk_rows(2048) == 4096  # as the benchmarks read
    assert dense_chunk_rows(10**7) == 64
    n_cells, n_genes = 600, 40_000
    x = sparse.random(n_cells, n_genes, density=0.001, format="csr", random_state=0)
    x.data[:] = np.round(x.data * 10) + 1
    feeder = CellFeeder(RowSource(x.astype(np.float32)), device=torch.device("cpu"))
    limit = DENSE_CHUNK_VALUES // n_genes
    sizes = []
    read = feeder.batch
    feeder.batch = lambda index: sizes.append(len(index)) or read(index)
    out = stream_outputs(feeder, lambda b: {"s": b.x.sum(1, keepdim=True)}, {"s": 1})["s"]
    np.testing.assert_allclose(out[:, 0], np.asarray(x.sum(1)).ravel(), rtol=1e-5)
    assert sum(sizes) == n_cells and max(sizes) == limit < n_cells
    sizes.clear()
    _components.input_principal_components(feeder, 5, random_state=0)
    assert sizes and max(sizes) <= limit
    # the gene statistics of a dense matrix, read as float64 (1.3 GB at 8,192 x 20,000)
    dense = RowSource(x.toarray())
    rows = []
    block_rows = dense.row_range
    dense.row_range = lambda start, stop: rows.append(stop - start) or block_rows(start, stop)
    mean, _ = feature_statistics(dense)
    np.testing.assert_allclose(mean, np.asarray(x.mean(0)).ravel(), rtol=1e-5)
    assert max(rows) == 2 * limit and sum(rows) == n_cells


def test_an_atomic_write_interrupted_as_its_file_is_created_leaves_no_file(tmp_path, monkeypatch):
    """An interruption between creating the temporary file and naming it left the file."""
    import os
    from pathlib import Path

    import scdeepclust._serialization as serialization

    opened = os.open

    def interrupted_once_created(*args, **kwargs):
        os.close(opened(*args, **kwargs))
        raise KeyboardInterrupt

    path = tmp_path / "model.json"
    path.write_text("old")
    monkeypatch.setattr(serialization.os, "open", interrupted_once_created)
    with pytest.raises(KeyboardInterrupt):
        serialization.write_atomically(path, lambda tmp: Path(tmp).write_text("new"))
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == ["model.json"] and path.read_text() == "old"


def test_atomic_writes_keep_permissions_name_the_target_and_take_long_names(tmp_path):
    """mkstemp's 0600 made every result unreadable to others; errors named the temporary file."""
    import errno
    import os
    from pathlib import Path

    from scdeepclust._serialization import save_tensors, write_atomically

    path = tmp_path / "result.h5ad"
    previous = os.umask(0o022)
    try:
        write_atomically(path, lambda tmp: Path(tmp).write_text("a"))
    finally:
        os.umask(previous)
    assert path.stat().st_mode & 0o777 == 0o644
    path.chmod(0o640)  # a file replaced keeps its permissions
    write_atomically(path, lambda tmp: Path(tmp).write_text("b"))
    assert path.stat().st_mode & 0o777 == 0o640 and path.read_text() == "b"

    def disk_full(tmp):
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError, match=r"No space left on device: could not write .*result\.h5ad"):
        write_atomically(path, disk_full)
    assert path.read_text() == "b" and sorted(p.name for p in tmp_path.iterdir()) == [path.name]
    # a filesystem without permissions (vfat, SMB) refuses chmod: the write goes on
    real_chmod = os.chmod

    def refused(*args, **kwargs):
        raise PermissionError(errno.EPERM, "Operation not permitted")

    os.chmod = refused
    try:
        write_atomically(path, lambda tmp: Path(tmp).write_text("c"))
    finally:
        os.chmod = real_chmod
    assert path.read_text() == "c"
    # a symbolic link is written through, as open() writes: the link stays one
    link = tmp_path / "link.h5ad"
    link.symlink_to(path)
    write_atomically(link, lambda tmp: Path(tmp).write_text("d"))
    assert link.is_symlink() and path.read_text() == "d"
    # a name the filesystem takes (255 bytes) must not fail for the temporary name's additions
    long = tmp_path / ("x" * 245 + ".h5ad")
    save_tensors(long, {"a": 1})
    assert long.exists()


def test_density_balanced_draws_stay_uniform_with_batches():
    from scdeepclust.train import draws_read_components

    adata = sdc.datasets.simulate(1000, 100, 3, random_state=0)
    codes = np.arange(adata.n_obs) % 2
    feeder = CellFeeder(RowSource(adata.X), device=torch.device("cpu"), batch_codes=codes)
    assert not draws_read_components(feeder, 0.5)
    assert density_balanced_weights(feeder, 0.5, random_state=0) is None


def test_minibatches_are_shuffled_by_the_generator():
    """Each epoch's cells in a random order drawn from `rng`: seeded, and not the stored order.
    Kills F1 (no shuffle)."""
    feeder = CellFeeder(RowSource(np.zeros((200, 1), np.float32)), device=torch.device("cpu"))

    def order(seed):
        batches = feeder.minibatches(64, np.random.default_rng(seed))
        return np.concatenate([b.index.numpy() for b in batches])

    assert np.array_equal(order(0), order(0))
    assert not np.array_equal(order(0), order(1))
    assert not np.array_equal(order(0), np.arange(200))


def test_a_single_cell_left_over_joins_the_only_other_batch():
    """65 cells in batches of 64: one batch of 65, not a second batch of one cell (whose batch
    statistics mean nothing), and `minibatch_count` says so. Kills F2 (the merge only from three
    batches on)."""
    from scdeepclust.data import minibatch_count

    feeder = CellFeeder(RowSource(np.zeros((65, 1), np.float32)), device=torch.device("cpu"))
    sizes = [len(b.index) for b in feeder.minibatches(64, np.random.default_rng(0))]
    assert sizes == [65]
    assert minibatch_count(65, 64) == feeder.n_batches(64) == 1


def test_an_epoch_of_more_cells_than_the_data_has_is_every_cell_once():
    """`n_cells` beyond the data: every cell once, and `n_batches` counts the batches that
    `minibatches` makes. Kills F3 (`n_batches` counted `n_cells` rows)."""
    feeder = CellFeeder(RowSource(np.zeros((200, 1), np.float32)), device=torch.device("cpu"))
    batches = list(feeder.minibatches(64, np.random.default_rng(0), n_cells=1000))
    assert sum(len(b.index) for b in batches) == 200
    assert feeder.n_batches(64, n_cells=1000) == len(batches) == feeder.n_batches(64)


def test_z_scored_input_is_clipped_on_both_sides():
    """`max_value` clips the z-scored input to [-max_value, max_value], as `sc.pp.scale` does.
    Kills F4 (clipped from above only)."""
    x = np.array([[-100.0, 0.5], [100.0, -0.5]], np.float32)
    feeder = CellFeeder(
        RowSource(x),
        device=torch.device("cpu"),
        gene_mean=np.zeros(2),
        gene_scale=np.ones(2),
        max_value=10.0,
    )
    got = feeder.batch(np.arange(2)).x
    torch.testing.assert_close(got, torch.tensor([[-10.0, 0.5], [10.0, -0.5]]))


def test_sparse_rows_uploaded_in_several_blocks_are_the_host_rows():
    """A CSR matrix of more rows than one upload block (4,096): each block's row pointers are
    offset by the entries of the blocks before it. Kills F9 (the offset dropped: rows past the
    first block read the first block's entries)."""
    matrix = sparse.random(5000, 6, density=0.3, format="csr", dtype=np.float32, random_state=0)
    source = RowSource(matrix)
    resident = ResidentRows.upload(source, torch.device("cpu"))
    index = np.array([0, 4095, 4096, 4999, 17, 4500])
    got = resident.rows(index, torch.from_numpy(index))
    np.testing.assert_array_equal(got.numpy(), source.rows(index))


def test_per_batch_statistics_without_batch_codes_are_refused():
    """Statistics per batch ((n_batches, n_vars)) need each cell's batch; without codes the
    feeder refuses at once rather than failing (or broadcasting) at the first minibatch. Kills
    F11 (the check dropped)."""
    with pytest.raises(ValueError, match="batch codes"):
        CellFeeder(
            RowSource(np.zeros((4, 2), np.float32)),
            device=torch.device("cpu"),
            gene_mean=np.zeros((2, 2)),
            gene_scale=np.ones((2, 2)),
        )


def test_column_positions_outside_the_matrix_are_refused():
    """Positions 0..n_vars - 1, or -1 for a missing column; n_vars itself (one past the end)
    and -2 are refused when the source is made. Kills R2 (n_vars accepted, failing at the
    first read instead)."""
    for columns in ([0, 4], [0, -2], [[0, 1]]):
        with pytest.raises(ValueError, match="columns must be"):
            RowSource(np.zeros((3, 4), np.float32), columns=columns)
    assert RowSource(np.zeros((3, 4), np.float32), columns=[3, -1, 0]).n_vars == 3


def test_shards_outside_the_rows_are_refused():
    """A shard start:stop must lie within 0..n_obs with start <= stop. Kills R3 (stop left
    unchecked: a shard past the end, or of negative length, was made)."""
    source = RowSource(np.zeros((10, 2), np.float32))
    for start, stop in ((0, 11), (6, 5), (-1, 3)):
        with pytest.raises(ValueError, match="outside"):
            source.shard(start, stop)
    assert source.shard(10, 10).n_obs == 0


def test_atomic_writes_pass_over_another_writers_file_and_name_the_target_in_errors(
    tmp_path, monkeypatch
):
    """A temporary name another writer created is neither written nor removed; an error on the
    temporary file names the target, with the reason once; other errors pass as they were."""
    import errno
    import os
    from pathlib import Path

    import scdeepclust._serialization as serialization

    tokens = iter(letter * 8 for letter in "abcdefgh")
    monkeypatch.setattr(serialization.secrets, "token_hex", lambda n: next(tokens))
    path = tmp_path / "new" / "deeper" / "model.json"  # the folders are made
    serialization.write_atomically(path, lambda tmp: Path(tmp).write_text("first"))
    theirs = path.parent / ".model.bbbbbbbb.partial.json"
    theirs.write_text("another writer's")
    serialization.write_atomically(path, lambda tmp: Path(tmp).write_text("second"))
    assert path.read_text() == "second" and theirs.read_text() == "another writer's"
    target = os.path.realpath(path)

    def refused(tmp):
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp))

    with pytest.raises(PermissionError) as raised:
        serialization.write_atomically(path, refused)
    assert str(raised.value) == f"[Errno 13] Permission denied: could not write {target}"

    def plain(tmp):
        raise OSError("the device went away")

    with pytest.raises(OSError) as raised:
        serialization.write_atomically(path, plain)
    assert str(raised.value) == f"the device went away: could not write {target}"

    def elsewhere(tmp):
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", "/elsewhere/in.txt")

    with pytest.raises(FileNotFoundError, match=r"directory: '/elsewhere/in\.txt'$"):
        serialization.write_atomically(path, elsewhere)
    assert sorted(p.name for p in path.parent.iterdir()) == [theirs.name, "model.json"]


def test_file_digests_read_files_whole_and_json_files_are_named_when_refused(tmp_path):
    """The digest covers files beyond one read (1 MiB); a broken or missing JSON file, or a
    missing weights file, is named."""
    import hashlib

    from scdeepclust._serialization import file_digest, load_tensors, read_json, write_json

    data = np.random.default_rng(0).bytes(3 << 20)
    (tmp_path / "big.bin").write_bytes(data)
    assert file_digest(tmp_path / "big.bin") == hashlib.sha256(data).hexdigest()
    write_json(tmp_path / "a.json", {"a": [1, 2]})
    assert read_json(tmp_path / "a.json") == {"a": [1, 2]}
    (tmp_path / "b.json").write_text("{")
    with pytest.raises(ValueError, match=r"b\.json is not valid JSON: "):
        read_json(tmp_path / "b.json")
    for read, name in [(read_json, "c.json"), (load_tensors, "c.pt")]:
        with pytest.raises(FileNotFoundError, match=rf"No such file: .*{name}"):
            read(tmp_path / name)


def test_cells_without_counts_are_named_in_the_refusal_of_size_factors():
    counts = np.array([[1, 2], [0, 0], [3, 0], [0, 0]], dtype=np.float32)
    names = np.array(["a", "b", "c", "d"])
    with pytest.raises(ValueError, match=r"^2 cell\(s\) \(e\.g\. \['b', 'd'\]\) have no counts"):
        size_factors(RowSource(counts), cell_names=names)
    factors, median = size_factors(RowSource(counts[[0, 2]]), median=6.0)
    np.testing.assert_allclose(factors, [0.5, 0.5])
    assert median == 6.0


def test_count_statistics_give_float32_size_factors():
    counts = np.array([[1, 2], [4, 0], [3, 3]], dtype=np.float64)
    stats = count_statistics(RowSource(counts))
    assert stats.size_factors.dtype == np.float32
    np.testing.assert_allclose(stats.size_factors, [0.75, 1.0, 1.5])


def test_the_temporary_file_keeps_the_suffix_and_only_the_target_stays(tmp_path):
    """matplotlib reads the format from the name it writes to."""
    from scdeepclust._serialization import write_atomically

    names = []

    def write(tmp):
        names.append(Path(tmp).name)
        Path(tmp).write_text("x")

    write_atomically(tmp_path / "figure.pdf", write)
    assert names[0].startswith(".figure.") and names[0].endswith(".partial.pdf")
    assert [p.name for p in tmp_path.iterdir()] == ["figure.pdf"]


def test_saved_weights_meeting_a_full_disk_name_the_file(tmp_path, monkeypatch):
    """The weights go through a plain write, whose error says what failed (torch's own writer
    said "unexpected pos 156544 vs 156432")."""
    import scdeepclust._serialization as serialization

    real_open = builtins.open

    def full_disk(file, mode="r", *args, **kwargs):
        if "partial" in str(file) and "w" in mode:
            raise OSError(errno.ENOSPC, "No space left on device", str(file))
        return real_open(file, mode, *args, **kwargs)

    path = tmp_path / "weights.pt"
    monkeypatch.setattr(builtins, "open", full_disk)
    with pytest.raises(OSError, match=r"No space left on device: could not write .*weights\.pt$"):
        serialization.save_tensors(path, {"a": 1})
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []


def test_weights_are_loaded_from_the_bytes_given_not_read_again(tmp_path):

    from scdeepclust._serialization import load_tensors, save_tensors

    path = tmp_path / "weights.pt"
    save_tensors(path, {"w": torch.arange(3)})
    data = path.read_bytes()
    path.unlink()  # the bytes read before, e.g. to check their digest
    loaded = load_tensors(path, data=data)
    assert torch.equal(loaded["w"], torch.arange(3))
    with pytest.raises(ValueError, match=r"weights\.pt could not be loaded as weights"):
        load_tensors(path, data=b"not a torch file")


def test_json_that_cannot_be_written_is_refused_and_leaves_no_file(tmp_path):
    from scdeepclust._serialization import read_json, write_json

    path = tmp_path / "model.json"
    write_json(path, {"a": 1})
    with pytest.raises(TypeError, match="not JSON serializable"):
        write_json(path, {"a": np.float32(0.5)})
    assert read_json(path) == {"a": 1} and [p.name for p in tmp_path.iterdir()] == ["model.json"]
