"""Property-based tests of the validation and data-feeding layer over random small matrices:
shapes, sparsity, storage formats and dtypes. No training, so they are fast."""

from __future__ import annotations

import warnings

import anndata as ad
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import sparse

from scdeepclust.data import CellFeeder, RowSource
from scdeepclust.data._feeding import ResidentRows
from scdeepclust.pp import all_finite, count_statistics, is_count_matrix
from scdeepclust.pp._input import scan_matrix
from scdeepclust.tl._validate import tool_input

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DTYPES = [np.float32, np.float64, np.float16, np.int32, np.int64, np.uint16]
FORMATS = ["dense", "csr", "csc", "coo"]


@st.composite
def matrices(draw, *, allow_special: bool = True, min_rows: int = 1):
    """(stored matrix, dense float64 reference) of random shape, sparsity, dtype, format;
    optionally with NaN / inf / negative / fractional entries, and a sparse one with zeros
    stored as entries (as arithmetic on sparse matrices leaves them)."""
    n_obs = draw(st.integers(min_rows, 12))
    n_vars = draw(st.integers(1, 12))  # rows of 10 or more values are judged by their steps
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    density = draw(st.floats(0.0, 1.0))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    dense = rng.poisson(3.0, (n_obs, n_vars)).astype(np.float64)
    dense[rng.random((n_obs, n_vars)) > density] = 0
    if allow_special and dtype.kind == "f":
        special = draw(st.sampled_from([None, np.nan, np.inf, -2.0, 0.5]))
        if special is not None:
            dense[rng.integers(n_obs), rng.integers(n_vars)] = special
    elif allow_special and dtype.kind == "i" and draw(st.booleans()):
        dense[rng.integers(n_obs), rng.integers(n_vars)] = -1
    stored = dense.astype(dtype)
    reference = stored.astype(np.float64)
    fmt = draw(st.sampled_from(FORMATS))
    if fmt != "dense" and dtype != np.float16:  # scipy.sparse has no float16
        stored = sparse.coo_matrix(stored)
        if draw(st.booleans()):
            zeros = np.flatnonzero(reference.ravel() == 0)
            zeros = zeros[rng.random(len(zeros)) < 0.5]
            stored = sparse.coo_matrix(
                (
                    np.concatenate([stored.data, np.zeros(len(zeros), dtype)]),
                    (
                        np.concatenate([stored.row, zeros // n_vars]),
                        np.concatenate([stored.col, zeros % n_vars]),
                    ),
                ),
                shape=stored.shape,
            )
        stored = stored.asformat(fmt)
    return stored, reference


@SETTINGS
@given(matrices())
def test_scan_matrix_matches_numpy(pair):
    stored, ref = pair
    summary = scan_matrix(stored, chunk_size=5, steps=True, gene_scales=True)
    finite = np.isfinite(ref)
    assert summary.n_nonfinite == int((~finite).sum())
    assert summary.n_negative == int((ref[finite] < 0).sum())
    integral = np.all(ref[finite] == np.round(ref[finite]))
    if not summary.n_negative:  # negative values alone rule out counts
        assert (summary.example_non_integer is None) == integral
    positive = np.where(finite & (ref > 0), ref, np.inf)
    np.testing.assert_array_equal(summary.smallest_positive, positive.min(axis=1))
    judged = np.isfinite(positive).sum(axis=1) >= 10
    np.testing.assert_array_equal(summary.judged_rows, judged)
    if finite.all():
        scales = ref.std(axis=0)
        varying = scales > 1e-12
        expected = np.median(scales[varying]) if varying.any() else None
        if expected is None:
            assert summary.median_gene_scale in (None, pytest.approx(0.0, abs=1e-6))
        else:
            assert summary.median_gene_scale == pytest.approx(expected, rel=1e-6, abs=1e-9)
    np.testing.assert_array_equal(summary.zero_rows, ~(ref != 0).any(axis=1))
    np.testing.assert_array_equal(summary.zero_cols, ~(ref != 0).any(axis=0))
    assert summary.is_counts == (finite.all() and (ref >= 0).all() and integral)
    assert is_count_matrix(stored) == summary.is_counts
    assert all_finite(stored) == (summary.n_nonfinite == 0)


@st.composite
def column_selections(draw, n_vars: int):
    k = draw(st.integers(1, n_vars + 3))
    return np.asarray(draw(st.lists(st.integers(-1, n_vars - 1), min_size=k, max_size=k)))


@SETTINGS
@given(data=st.data())
def test_row_source_rows_blocks_and_column_selection(data):
    stored, ref = data.draw(matrices(allow_special=False))
    columns = data.draw(st.none() | column_selections(ref.shape[1]))
    expected = ref if columns is None else np.where(columns >= 0, ref[:, columns], 0.0)
    source = RowSource(stored, columns=columns)
    assert (source.n_obs, source.n_vars) == expected.shape
    assert source.n_missing_columns == (0 if columns is None else int((columns < 0).sum()))
    index = np.asarray(
        data.draw(st.lists(st.integers(0, ref.shape[0] - 1), min_size=1, max_size=8))
    )
    rows = source.rows(index)
    assert rows.dtype == np.float32
    np.testing.assert_allclose(rows, expected[index].astype(np.float32), rtol=1e-6)
    chunk = data.draw(st.integers(1, 5))
    blocks = [
        block.toarray() if sparse.issparse(block) else np.asarray(block)
        for _, _, block in source.iter_blocks(chunk)
    ]
    np.testing.assert_allclose(np.vstack(blocks), expected, rtol=1e-6)


@SETTINGS
@given(data=st.data())
def test_rows_kept_on_the_device_are_the_host_rows(data):
    """Rows copied to a device once and gathered there (here on the CPU) are exactly the host
    path's rows: any format and dtype, column selection, shard, repeated and empty rows."""
    stored, ref = data.draw(matrices(allow_special=False))
    columns = data.draw(st.none() | column_selections(ref.shape[1]))
    source = RowSource(stored, columns=columns)
    start = data.draw(st.integers(0, source.n_obs - 1))
    source = source.shard(start, data.draw(st.integers(start + 1, source.n_obs)))
    resident = ResidentRows.upload(source, torch.device("cpu"))
    assert ResidentRows.nbytes(source) >= sum(t.nbytes for t in resident.csr or [resident.dense])
    index = np.asarray(
        data.draw(st.lists(st.integers(0, source.n_obs - 1), min_size=1, max_size=8))
    )
    rows = resident.rows(index, torch.from_numpy(index))
    assert rows.dtype == torch.float32
    np.testing.assert_array_equal(rows.numpy(), source.rows(index))


@SETTINGS
@given(
    pair=matrices(allow_special=False, min_rows=2),
    batch_size=st.integers(2, 7),
    seed=st.integers(0, 1000),
)
def test_count_feeding_matches_reference(pair, batch_size, seed):
    stored, ref = pair
    ref[:, 0] += 1  # every cell has counts
    stored = ref.astype(np.float32)
    source = RowSource(sparse.csr_matrix(stored))
    stats = count_statistics(source, chunk_size=3)
    library = ref.sum(1)
    np.testing.assert_allclose(stats.size_factors, library / np.median(library), rtol=1e-5)
    log = np.log1p(ref / (library / np.median(library))[:, None])
    np.testing.assert_allclose(stats.gene_mean, log.mean(0), rtol=1e-4, atol=1e-5)
    feeder = CellFeeder(
        source,
        device=torch.device("cpu"),
        size_factors=stats.size_factors,
        gene_mean=stats.gene_mean,
        gene_scale=stats.gene_scale,
    )
    seen = []
    for batch in feeder.minibatches(batch_size, np.random.default_rng(seed)):
        idx = batch.index.numpy()
        seen.extend(idx.tolist())
        assert len(idx) >= 2  # never a lone cell
        np.testing.assert_allclose(batch.counts.numpy(), ref[idx], rtol=1e-6)
        expected = (log[idx] - stats.gene_mean) / stats.gene_scale
        np.testing.assert_allclose(batch.x.numpy(), expected, rtol=1e-3, atol=1e-3)
        assert torch.isfinite(batch.x).all()
    assert sorted(seen) == list(range(ref.shape[0]))
    assert len(seen) and feeder.n_batches(batch_size) == len(
        list(feeder.minibatches(batch_size, np.random.default_rng(seed)))
    )


@SETTINGS
@given(pair=matrices(), counts=st.booleans(), in_layer=st.booleans())
def test_validation_accepts_or_refuses_cleanly_and_never_modifies(pair, counts, in_layer):
    stored, ref = pair
    if sparse.issparse(stored) and stored.format == "coo":
        stored = stored.tocsr()  # AnnData stores CSR and CSC only
    adata = ad.AnnData(
        np.zeros(ref.shape, np.float32) if in_layer else stored,
        layers={"counts": stored} if in_layer else None,
    )
    x_before = adata.X.copy()
    layer_before = stored.copy() if in_layer else None
    layer = "counts" if in_layer else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            checked = tool_input(adata, layer=layer, counts=counts)
        except (ValueError, TypeError) as err:
            assert "adata." in str(err)
            checked = None
    finite = np.isfinite(ref).all()
    nonzero_cols = (ref != 0).any(axis=0)
    nonzero_rows = (ref != 0).any(axis=1)
    refuse = not finite or not nonzero_cols.any()
    if counts:
        is_counts = finite and (ref >= 0).all() and np.all(ref == np.round(ref))
        refuse = refuse or not is_counts or not nonzero_rows.all()
    assert (checked is None) == refuse
    if checked is not None:
        used = np.arange(ref.shape[1]) if checked.columns is None else checked.columns
        np.testing.assert_array_equal(used, np.flatnonzero(nonzero_cols))
    # nothing was modified
    after = adata.X.toarray() if sparse.issparse(adata.X) else adata.X
    before = x_before.toarray() if sparse.issparse(x_before) else x_before
    np.testing.assert_array_equal(after, before)
    if in_layer:  # the matrix read, where it is a layer
        now = adata.layers["counts"]
        now = now.toarray() if sparse.issparse(now) else now
        then = layer_before.toarray() if sparse.issparse(layer_before) else layer_before
        np.testing.assert_array_equal(now, then)
    assert not adata.obs.columns.size and not adata.obsm and not adata.uns


@pytest.mark.parametrize("fmt", ["csr", "csc", "coo"])
def test_column_selection_never_densifies_sparse(fmt):
    m = getattr(sparse, f"{fmt}_matrix")(sparse.random(50, 20, density=0.1, random_state=0))
    block = RowSource(m, columns=np.array([3, -1, 0])).row_range(0, 50)
    assert sparse.issparse(block) and block.shape == (50, 3)
