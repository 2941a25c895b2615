"""Bad input: one row per case, the exact exception (or warning) and message each gets, and the
caller's AnnData unchanged afterwards. Also failures during training (non-finite loss,
KeyboardInterrupt) leave it unchanged."""

from __future__ import annotations

import hashlib
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scanpy as sc
import torch
from anndata import ImplicitModificationWarning
from scipy import sparse

import scdeepclust as sdc
from _helpers import FAST, ONE_EPOCH, assert_unchanged, big_endian_csr, counts_data, snapshot
from scdeepclust.pp._input import (
    HOW_TO_PASS_COUNTS,
    check_counts,
    scan_matrix,
    transform_of_counts,
)
from scdeepclust.tl import _desc as _tl_desc
from scdeepclust.tl import _scdcc as _tl_scdcc
from scdeepclust.train import TrainingDiverged, _loops

# Rows that train do so for one epoch per stage on 90 cells.
TINY = dict(pretrain_epochs=1, max_epochs=1, progress=False, batch_size=32)


def lognorm_data() -> ad.AnnData:
    adata = counts_data()
    sc.pp.normalize_total(adata)
    sc.pp.log1p(adata)
    return adata


def _set(matrix_key: str, row, col, value: float, dtype=None):
    """Put `value` at (row, col) of X or a layer (dense afterwards, of `dtype` if given)."""

    def edit(a):
        m = a.X if matrix_key == "X" else a.layers[matrix_key]
        m = m.toarray() if sparse.issparse(m) else np.array(m)
        m = m if dtype is None else m.astype(dtype)
        m[row, col] = value
        return _stored(a, matrix_key, m)

    return edit


def _stored(a, key, matrix):
    """`a` with `matrix` as X (key "X") or as layers[key]."""
    if key == "X":
        a.X = matrix
    else:
        a.layers[key] = matrix
    return a


def _counts_in_x(transform):
    """scdcc with counts only in X, transformed (e.g. to floats)."""

    def edit(a):
        del a.layers["counts"]
        a.X = transform(a.X.toarray())
        return a

    return edit


def _zero_cell(key):
    def edit(a):
        m = (a.X if key == "X" else a.layers[key]).toarray()
        m[5] = 0
        if key == "X":
            a.X = sparse.csr_matrix(m)
        else:
            a.layers[key] = sparse.csr_matrix(m)
        return a

    return edit


def _zero_gene(a):
    for key in ("X", "counts"):
        m = (a.X if key == "X" else a.layers[key]).toarray()
        m[:, 3] = 0
        if key == "X":
            a.X = sparse.csr_matrix(m)
        else:
            a.layers[key] = sparse.csr_matrix(m)
    return a


def _big_endian(key):
    """X or a layer as a CSR matrix of big-endian values (as read from some files)."""

    def edit(a):
        return _stored(a, key, big_endian_csr(a.X if key == "X" else a.layers[key]))

    return edit


def _obs(column, values):
    def edit(a):
        a.obs[column] = values(a)
        return a

    return edit


def _index_named(name):
    def edit(a):
        a.obs.index.name = name
        return a

    return edit


def _obsm(key, values):
    def edit(a):
        a.obsm[key] = values(a)
        return a

    return edit


def _set_obs_names(names):
    def edit(a):
        a.obs_names = names(a)
        return a

    return edit


def _principal_components(n_obs, n_columns):
    """Centred columns of falling spread, as sc.pp.pca writes them."""
    x = np.random.default_rng(0).normal(size=(n_obs, n_columns)) * np.arange(n_columns, 0, -1)
    return x - x.mean(axis=0)


def _existing_key(a):
    """What an earlier run of each tool left (its labels and uns entry)."""
    for tool in ("scdcc", "desc"):
        a.obs[tool] = "old"
        a.uns[tool] = {"params": {"method": tool}}
    return a


def _counts_in_raw_only(a):
    a.raw = a.copy()
    a.X = np.log1p(a.X.toarray() / 3.0)
    del a.layers["counts"]
    return a


def _marked(values):
    """var['highly_variable'] as given (a gene mask the tools read by default)."""

    def edit(a):
        a.var["highly_variable"] = values(a.n_vars) if callable(values) else values
        return a

    return edit


def _cell_outside_marked_genes(a):
    """Cell 5 has counts only in genes 20-29; var['highly_variable'] marks genes 0-19."""
    m = a.layers["counts"].toarray()
    m[5, :20] = 0
    m[5, 20] = 3
    a.layers["counts"] = sparse.csr_matrix(m)
    a.var["highly_variable"] = np.arange(a.n_vars) < 20
    return a


@dataclass
class Case:
    id: str
    tool: str  # "scdcc" | "desc"
    kwargs: dict = field(default_factory=dict)
    edit: object = None  # AnnData -> AnnData, applied before the call
    raises: type | None = None  # exception type ...
    warns: type | None = None  # ... or warning type (the call then succeeds)
    match: str = ""  # regex on the message
    # for rows that succeed: run with copy=True and check the input is unchanged (False: run
    # in place, where the warning is about the caller's own results)
    copy: bool = True


# input, exception, message: the table of the report.
CASES = [
    # -- counts for scdcc ------------------------------------------------------------------
    Case(
        "scdcc-float-values",
        "scdcc",
        edit=_counts_in_x(lambda x: x + 0.5),
        raises=ValueError,
        match=r"adata\.X does not hold raw counts \(non-negative integers\): it has non-integer "
        r"values such as \d+\.5: it looks normalised.*scdcc reads that layer by default",
    ),
    Case(
        "scdcc-nearly-whole-values",
        "scdcc",
        edit=_counts_in_x(lambda x: x * (1 - 1e-6)),
        raises=ValueError,
        match=r"it has values such as \d+\.\d+, within \S+ of whole numbers: counts that "
        r"went through a float conversion\? Round them first, e\.g\. `adata\.X\.data = ",
    ),
    Case(
        "scdcc-estimated-counts",
        "scdcc",
        edit=_counts_in_x(
            lambda x: x + 0.5 * ((x > 0) & (np.arange(x.size) % 10 == 0).reshape(x.shape))
        ),
        raises=ValueError,
        match=r"most of its non-zero values are whole numbers or lie near them, but some are "
        r"fractional \(e\.g\. \d+\.5\): counts estimated by an EM quantifier.*Round them first",
    ),
    Case(
        "scdcc-float16-overflow",
        "scdcc",
        edit=_set("counts", 0, 0, 1e5, dtype=np.float16),
        raises=ValueError,
        match=r"contains 1 NaN or infinite value\(s\).*float16 holds at most 65,504",
    ),
    Case(
        "scdcc-multiplied-counts",
        "scdcc",
        kwargs=dict(n_clusters=3),
        edit=_counts_in_x(lambda x: x * 1000),
        warns=UserWarning,
        match=r"adata\.X holds integers that do not step like raw counts: in 100% of the cells "
        r"with 10 or more non-zero values, the smallest is 2 or more \(median 1,000\)",
    ),
    Case(
        "scdcc-binarised",
        "scdcc",
        kwargs=dict(n_clusters=3),
        edit=_counts_in_x(lambda x: (x > 0).astype(np.float32)),
        warns=UserWarning,
        match=r"adata\.X holds only 0s and 1s: binarised data",
    ),
    Case(
        "scdcc-float16-nan",
        "scdcc",
        edit=_set("counts", 0, 0, np.nan, dtype=np.float16),
        raises=ValueError,
        match=r"contains 1 NaN or infinite value\(s\)\. .* genes first\.$",  # no float16 hint
    ),
    Case(
        "scdcc-negative-values",
        "scdcc",
        edit=_counts_in_x(lambda x: x - 1),
        raises=ValueError,
        match=r"adata\.X does not hold raw counts.*it has \d+ negative value\(s\)",
    ),
    Case(
        "scdcc-log-normalised",
        "scdcc",
        edit=lambda a: _counts_in_x(lambda x: x)(lognorm_data()),
        raises=ValueError,
        match=r"does not hold raw counts.*looks normalised or log-transformed",
    ),
    Case(
        "scdcc-nan",
        "scdcc",
        edit=_set("counts", 0, 0, np.nan),
        raises=ValueError,
        match=r"adata\.layers\['counts'\] contains 1 NaN or infinite value\(s\)",
    ),
    Case(
        "scdcc-inf",
        "scdcc",
        edit=_set("counts", 3, 2, np.inf),
        raises=ValueError,
        match=r"contains 1 NaN or infinite value\(s\)",
    ),
    Case(
        "scdcc-count-beyond-float32",
        "scdcc",
        edit=_set("counts", 0, 0, 1e300, dtype=np.float64),
        raises=ValueError,
        match=r"adata\.layers\[.counts.\] holds values as large as 1e\+300 \(in magnitude\)",
    ),
    Case(
        "scdcc-cell-total-beyond-float32",
        "scdcc",
        edit=_set("counts", 0, slice(0, 2), 3e38, dtype=np.float64),
        raises=ValueError,
        match=r"has cells whose total count is up to 6e\+38, beyond float32's range",
    ),
    Case(
        "scdcc-big-endian-sparse-copy",
        "scdcc",
        kwargs=dict(copy=True),
        edit=_big_endian("counts"),
        raises=ValueError,
        match=r"adata\.layers\['counts'\] is a sparse matrix of '>f4' values \(another byte "
        r"order than this machine's\), which anndata cannot copy \(copy=True\)\. Pass "
        r"copy=False, or convert it in place first: `adata\.layers\['counts'\]\.data = ",
    ),
    Case(
        "scdcc-all-zero-cell",
        "scdcc",
        edit=_zero_cell("counts"),
        raises=ValueError,
        match=r"1 cell\(s\) have no counts in adata\.layers\['counts'\] \(e\.g\. \['cell5'\]\)"
        r".*`adata = adata\[np\.asarray\(\(adata\.layers\['counts'\] != 0\)\.sum\(axis=1\)\)",
    ),
    Case(
        "scdcc-all-zero-gene",
        "scdcc",
        kwargs=dict(n_clusters=3),
        edit=_zero_gene,
        warns=UserWarning,
        match=r"1 gene\(s\) of adata\.layers\['counts'\] are all zero \(e\.g\. \['gene3'\]\) and "
        r"are left out of training",
    ),
    Case(
        "scdcc-fewer-cells-than-batch",
        "scdcc",
        kwargs=dict(n_clusters=3, batch_size=500),
        warns=UserWarning,
        match=r"batch_size=500 is larger than the number of cells \(90\)",
    ),
    Case(
        "scdcc-n-clusters-above-cells",
        "scdcc",
        kwargs=dict(n_clusters=91),
        raises=ValueError,
        match=r"n_clusters=91 is larger than the number of cells \(90\)",
    ),
    Case(
        "scdcc-n-clusters-1",
        "scdcc",
        kwargs=dict(n_clusters=1),
        raises=ValueError,
        match=r"n_clusters must be an integer >= 2, got 1",
    ),
    Case(
        "scdcc-n-clusters-fraction",
        "scdcc",
        kwargs=dict(n_clusters=2.5),
        raises=ValueError,
        match=r"n_clusters must be an integer >= 2, got 2\.5",
    ),
    Case(
        "scdcc-no-cells",
        "scdcc",
        edit=lambda a: a[:0].copy(),
        raises=ValueError,
        match=r"adata is empty \(shape \(0, 30\)\)",
    ),
    Case(
        "scdcc-no-genes",
        "scdcc",
        edit=lambda a: a[:, :0].copy(),
        raises=ValueError,
        match=r"adata is empty \(shape \(90, 0\)\)",
    ),
    Case(
        "scdcc-one-cell",
        "scdcc",
        edit=lambda a: a[:1].copy(),
        raises=ValueError,
        match=r"adata has 1 cell\(s\); at least 2 are needed",
    ),
    Case(
        "scdcc-missing-layer",
        "scdcc",
        kwargs=dict(layer="raw"),
        raises=KeyError,
        match=r"Layer 'raw' not found; available layers: \['counts'\]",
    ),
    Case(
        "scdcc-missing-label-key",
        "scdcc",
        kwargs=dict(label_key="cell_type"),
        raises=KeyError,
        match=r"label_key 'cell_type' is not in adata\.obs; available: \['group'",
    ),
    Case(
        "scdcc-missing-protein-key",
        "scdcc",
        kwargs=dict(protein_key="adt"),
        raises=KeyError,
        match=r"protein_key 'adt' is not in adata\.obsm",
    ),
    Case(
        "scdcc-protein-nan",
        "scdcc",
        kwargs=dict(n_clusters=3, protein_key="adt"),
        edit=_obsm("adt", lambda a: np.full((a.n_obs, 4), np.nan)),
        raises=ValueError,
        match=r"adata\.obsm\['adt'\] must be a finite cells x proteins matrix",
    ),
    Case(
        "scdcc-random-state-negative",
        "scdcc",
        kwargs=dict(n_clusters=3, random_state=-1),
        raises=ValueError,
        match=r"0\.\.2\*\*32 - 1, a numpy RandomState or Generator \(or None\), got -1",
    ),
    Case(
        "desc-random-state-float",
        "desc",
        kwargs=dict(n_clusters=3, random_state=1.5),
        raises=ValueError,
        match=r"0\.\.2\*\*32 - 1, a numpy RandomState or Generator \(or None\), got 1\.5",
    ),
    Case(
        "scdcc-protein-text",
        "scdcc",
        kwargs=dict(n_clusters=3, protein_key="adt"),
        edit=_obsm("adt", lambda a: np.full((a.n_obs, 2), "high", dtype=object)),
        raises=ValueError,
        match=r"adata\.obsm\['adt'\] must hold numbers \(cells x proteins\)",
    ),
    Case(
        "scdcc-n-pairs-zero",
        "scdcc",
        kwargs=dict(n_clusters=3, protein_key="adt", n_pairs=0),
        edit=_obsm("adt", lambda a: np.random.default_rng(0).normal(size=(a.n_obs, 4))),
        raises=ValueError,
        match=r"n_pairs must be an integer >= 1, got 0",
    ),
    Case(
        "scdcc-n-top-genes-negative",
        "scdcc",
        kwargs=dict(n_clusters=3, n_top_genes=-5),
        raises=ValueError,
        match=r"n_top_genes must be an integer >= 1, got -5",
    ),
    Case(
        "desc-pretrain-epochs-zero",
        "desc",
        kwargs=dict(n_clusters=3, pretrain_epochs=0),
        raises=ValueError,
        match=r"pretrain_epochs must be an integer >= 1, got 0",
    ),
    Case(
        "desc-max-epochs-inf",
        "desc",
        kwargs=dict(n_clusters=3, max_epochs=float("inf")),
        raises=ValueError,
        match=r"max_epochs must be an integer >= 1, got inf",
    ),
    Case(
        "desc-hidden-zero",
        "desc",
        kwargs=dict(n_clusters=3, hidden=(16, 0)),
        raises=ValueError,
        match=r"each size in hidden must be an integer >= 1, got 0",
    ),
    Case(
        "scdcc-encoder-hidden-int",
        "scdcc",
        kwargs=dict(n_clusters=3, encoder_hidden=64),
        raises=ValueError,
        match=r"encoder_hidden must be a sequence of layer sizes",
    ),
    Case(
        "scdcc-latent-dim-zero",
        "scdcc",
        kwargs=dict(n_clusters=3, latent_dim=0),
        raises=ValueError,
        match=r"latent_dim must be an integer >= 1, got 0",
    ),
    Case(
        "desc-lr-nan",
        "desc",
        kwargs=dict(n_clusters=3, lr=float("nan")),
        raises=ValueError,
        match=r"lr must be a finite number > 0, got nan",
    ),
    Case(
        "desc-momentum-above-1",
        "desc",
        kwargs=dict(n_clusters=3, momentum=1.5),
        raises=ValueError,
        match=r"momentum must be a number in \[0, 1\), got 1\.5",
    ),
    Case(
        "scdcc-sigma-negative",
        "scdcc",
        kwargs=dict(n_clusters=3, sigma=-1),
        raises=ValueError,
        match=r"sigma must be a finite number >= 0, got -1",
    ),
    Case(  # a negative exponent drew crowded regions more often, not less
        "scdcc-pretrain-balance-negative",
        "scdcc",
        kwargs=dict(n_clusters=3, pretrain_balance=-0.5),
        raises=ValueError,
        match=r"pretrain_balance must be a finite number >= 0",
    ),
    Case(
        "scdcc-pretrain-balance-nan",
        "scdcc",
        kwargs=dict(n_clusters=3, pretrain_balance=float("nan")),
        raises=ValueError,
        match=r"pretrain_balance must be a finite number >= 0",
    ),
    Case(
        "scdcc-tol-negative",
        "scdcc",
        kwargs=dict(n_clusters=3, tol=-1),
        raises=ValueError,
        match=r"tol must be a number in \[0, 1\], got -1",
    ),
    Case(
        "scdcc-max-value-zero",
        "scdcc",
        kwargs=dict(n_clusters=3, max_value=0),
        raises=ValueError,
        match=r"max_value must be a finite number > 0, got 0",
    ),
    Case(
        "desc-random-state-huge",
        "desc",
        kwargs=dict(n_clusters=3, random_state=2**40),
        raises=ValueError,
        match=r"random_state must be an integer in 0\.\.2\*\*32 - 1",
    ),
    Case(
        "desc-update-interval-inf",
        "desc",
        kwargs=dict(n_clusters=3, update_interval=float("inf")),
        raises=ValueError,
        match=r"update_interval must be a positive number of epochs",
    ),
    Case(
        "scdcc-protein-constant",
        "scdcc",
        kwargs=dict(n_clusters=3, protein_key="adt"),
        edit=_obsm("adt", lambda a: np.ones((a.n_obs, 4))),
        raises=ValueError,
        match=r"The levels of adata\.obsm\['adt'\] do not tell cells apart",
    ),
    Case(
        "scdcc-pair-out-of-range",
        "scdcc",
        kwargs=dict(n_clusters=3, must_link=[[0, 90]]),
        raises=ValueError,
        match=r"must_link has cell indices outside 0\.\.89",
    ),
    Case(
        "scdcc-pair-negative",
        "scdcc",
        kwargs=dict(n_clusters=3, cannot_link=[[-1, 4]]),
        raises=ValueError,
        match=r"cannot_link has cell indices outside 0\.\.89",
    ),
    Case(
        "scdcc-pair-unknown-name",
        "scdcc",
        kwargs=dict(n_clusters=3, must_link=[["cell0", "nobody"]]),
        raises=KeyError,
        match=r"must_link names cells not in adata\.obs_names, e\.g\. \['nobody'\]",
    ),
    Case(
        "scdcc-pair-names-not-unique",
        "scdcc",
        kwargs=dict(n_clusters=3, must_link=[["cell0", "cell1"]]),
        edit=_set_obs_names(lambda a: [f"cell{i % 45}" for i in range(a.n_obs)]),
        raises=ValueError,
        match=r"must_link names cells, but adata\.obs_names are not unique.*obs_names_make_unique",
    ),
    Case(
        "scdcc-pair-wrong-shape",
        "scdcc",
        kwargs=dict(n_clusters=3, must_link=[0, 1, 2]),
        raises=ValueError,
        match=r"must_link must have shape \(n, 2\), got \(3,\)",
    ),
    Case(
        "scdcc-pair-contradictory",
        "scdcc",
        kwargs=dict(n_clusters=3, must_link=[[0, 1]], cannot_link=[["cell1", "cell0"]]),
        raises=ValueError,
        match=r"1 pair\(s\) are both must-link and cannot-link, e\.g\. cells 0 and 1",
    ),
    Case(
        "scdcc-pair-with-itself",
        "scdcc",
        kwargs=dict(n_clusters=3, must_link=[[2, 2]]),
        raises=ValueError,
        match=r"must_link pairs a cell with itself",
    ),
    Case(
        "scdcc-labels-single-class",
        "scdcc",
        kwargs=dict(n_clusters=3, label_key="known"),
        edit=_obs("known", lambda a: ["T"] * 10 + [np.nan] * (a.n_obs - 10)),
        raises=ValueError,
        match=r"adata.obs\['known'\] labels 10 cells, all 'T': the labels give must-link "
        r"and cannot-link pairs, which need labelled cells of at least two types",
    ),
    Case(
        "scdcc-labels-none-known",
        "scdcc",
        kwargs=dict(n_clusters=3, label_key="known"),
        edit=_obs("known", lambda a: [np.nan] * a.n_obs),
        raises=ValueError,
        match=r"adata.obs\['known'\] labels no cell \(every value is missing\).*or leave "
        r"label_key out",
    ),
    Case(
        "scdcc-labels-one-known",
        "scdcc",
        kwargs=dict(n_clusters=3, label_key="known"),
        edit=_obs("known", lambda a: ["T"] + [np.nan] * (a.n_obs - 1)),
        raises=ValueError,
        match=r"adata.obs\['known'\] labels only 1 cell \('T'\)",
    ),
    Case(
        "scdcc-key-added-is-label-key",
        "scdcc",
        kwargs=dict(n_clusters=3, label_key="known", key_added="known"),
        edit=_obs("known", lambda a: (["T", "B"] * a.n_obs)[: a.n_obs]),
        raises=ValueError,
        match=r"key_added 'known' would write over adata.obs\['known'\], which this run reads "
        r"as label_key",
    ),
    Case(
        "desc-key-added-over-use-rep",
        "desc",
        kwargs=dict(n_clusters=3, use_rep="X_pca", key_added="pca"),
        edit=_obsm("X_pca", lambda a: np.random.default_rng(0).normal(size=(a.n_obs, 5))),
        raises=ValueError,
        match=r"key_added 'pca' would write over adata.obsm\['X_pca'\], which this run reads as "
        r"use_rep",
    ),
    Case(
        "desc-use-rep-scaled",
        "desc",
        kwargs=dict(n_clusters=3, use_rep="X_pca", scale=True),
        # centred columns of falling spread, as principal components
        edit=_obsm("X_pca", lambda a: _principal_components(a.n_obs, 5)),
        warns=UserWarning,
        match=r"adata.obsm\['X_pca'\] holds principal components .* scale=True z-scores "
        r"each column",
    ),
    Case(
        "scdcc-counts-in-raw-only",
        "scdcc",
        kwargs=dict(n_clusters=3),
        edit=_counts_in_raw_only,
        raises=ValueError,
        match=r"adata.layers\['counts'\] = adata.raw\[:, adata.var_names\].X` puts those",
    ),
    Case(
        "desc-key-added-dot",
        "desc",
        kwargs=dict(n_clusters=3, key_added="."),
        raises=ValueError,
        match=r"key_added '\.' cannot be written to .h5ad",
    ),
    Case(  # anndata refused to write the result: the training was lost for a name
        "desc-key-added-is-the-index-name",
        "desc",
        kwargs=dict(n_clusters=3, key_added="cell"),
        edit=_index_named("cell"),
        raises=ValueError,
        match=r"key_added 'cell' would add the column obs\['cell'\], the name of adata\.obs's "
        r"index.*`adata\.obs\.index\.name = None`",
    ),
    Case(
        "scdcc-confidence-key-is-the-index-name",
        "scdcc",
        kwargs=dict(n_clusters=3),
        edit=_index_named("scdcc_confidence"),
        raises=ValueError,
        match=r"would add the column obs\['scdcc_confidence'\]",
    ),
    Case(  # scanpy's plots refuse a name that is a column and a gene at once
        "scdcc-key-added-is-a-gene",
        "scdcc",
        kwargs=dict(n_clusters=3, key_added="gene3"),
        raises=ValueError,
        match=r"key_added 'gene3' is also a gene of adata\.var_names",
    ),
    Case(
        "scdcc-labels-placeholder-text",
        "scdcc",
        kwargs=dict(n_clusters=3, label_key="known"),
        edit=_obs("known", lambda a: (["T", "B"] * 10 + ["unknown"] * a.n_obs)[: a.n_obs]),
        warns=UserWarning,
        match=r"labels cells 'unknown' \(\d+ cells\): such a value is a cell type of its own",
    ),
    Case(
        "scdcc-label-weight-negative",
        "scdcc",
        kwargs=dict(n_clusters=3, label_weight=-1.0),
        raises=ValueError,
        match=r"label_weight must be a finite number >= 0 \(0 uses labels through pairs and "
        r"centroids only\), got -1\.0",
    ),
    Case(
        "scdcc-balance-negative",
        "scdcc",
        kwargs=dict(n_clusters=3, balance=-0.5),
        raises=ValueError,
        match=r"balance must be a finite number >= 0 \(0 leaves the cluster sizes to the data\)",
    ),
    Case(
        "scdcc-label-prior-huge",
        "scdcc",
        kwargs=dict(n_clusters=3, label_prior=1e6),
        raises=ValueError,
        match=r"label_prior must be at most 6, got 1000000\.0: the class probabilities raised",
    ),
    Case(
        "scdcc-ml-weight-nan",
        "scdcc",
        kwargs=dict(n_clusters=3, ml_weight=float("nan")),
        raises=ValueError,
        match=r"ml_weight must be a finite number >= 0",
    ),
    Case(
        "scdcc-leiden-too-few-cells",
        "scdcc",
        kwargs=dict(n_neighbors=15, resolution=1.0),
        edit=lambda a: a[:12].copy(),
        raises=ValueError,
        match=r"Leiden initialisation needs more cells \(12\) than n_neighbors=15",
    ),
    Case(
        "scdcc-batch-of-one-cell",
        "scdcc",
        kwargs=dict(n_clusters=3, batch_key="donor"),
        edit=_obs("donor", lambda a: ["d1"] * (a.n_obs - 1) + ["d2"]),
        warns=UserWarning,
        match=r"batch\(es\) 'd2' \(1\) of adata\.obs\['donor'\] hold fewer than 10 cells",
    ),
    Case(
        "desc-every-cell-its-own-batch",
        "desc",
        kwargs=dict(batch_key="barcode"),
        edit=_obs("barcode", lambda a: [f"c{i}" for i in range(a.n_obs)]),
        raises=ValueError,
        match=r"adata\.obs\['barcode'\] gives every cell a batch of its own \(\d+ batches of one",
    ),
    Case(
        "scdcc-many-small-batches-named-in-a-line",
        "scdcc",
        kwargs=dict(n_clusters=3, batch_key="pair"),
        edit=_obs("pair", lambda a: [f"p{i // 2}" for i in range(a.n_obs)]),
        warns=UserWarning,
        match=r"batch\(es\) 'p0' \(2\), .*'p17' \(2\), and 35 more of adata\.obs\['pair'\]",
    ),
    Case(
        "scdcc-batch-size-0",
        "scdcc",
        kwargs=dict(n_clusters=3, batch_size=0),
        raises=ValueError,
        match=r"batch_size must be an integer >= 2, got 0",
    ),
    Case(
        "scdcc-update-interval-0",
        "scdcc",
        kwargs=dict(n_clusters=3, update_interval=0),
        raises=ValueError,
        match=r"update_interval must be a positive number of epochs",
    ),
    Case(
        "desc-update-interval-negative",
        "desc",
        kwargs=dict(update_interval=-1.0),
        raises=ValueError,
        match=r"update_interval must be a positive number of epochs",
    ),
    Case(
        "desc-unknown-init",
        "desc",
        kwargs=dict(n_clusters=3, init="gmm"),
        raises=ValueError,
        match=r"init must be one of \('balanced-kmeans', 'kmeans', 'leiden'\)",
    ),
    Case(
        "desc-leiden-init-too-few-cells",
        "desc",
        kwargs=dict(n_clusters=3, n_neighbors=15),
        edit=lambda a: a[:12].copy(),
        raises=ValueError,
        match=r"init='leiden' needs more cells \(12\) than n_neighbors=15.*init='kmeans'",
    ),
    Case(
        "desc-target-smoothing-above-1",
        "desc",
        kwargs=dict(target_smoothing=1.5),
        raises=ValueError,
        match=r"target_smoothing must be a number in \[0, 1\]",
    ),
    Case(
        "desc-initial-label-weight-negative",
        "desc",
        kwargs=dict(initial_label_weight=-0.1),
        raises=ValueError,
        match=r"initial_label_weight must be a number in \[0, 1\]",
    ),
    Case(
        "desc-refine-above-1",
        "desc",
        kwargs=dict(refine=1.5),
        raises=ValueError,
        match=r"refine must be a number in \[0, 1\] \(the share of each cluster's",
    ),
    Case(
        "scdcc-refine-negative",
        "scdcc",
        kwargs=dict(n_clusters=3, refine=-0.5),
        raises=ValueError,
        match=r"refine must be a number in \[0, 1\].*0 keeps the clustering stage's labels",
    ),
    Case(
        "scdcc-resume-without-dir",
        "scdcc",
        kwargs=dict(n_clusters=3, resume=True),
        raises=ValueError,
        match=r"resume=True needs the checkpoint_dir",
    ),
    Case(
        "scdcc-checkpoint-every-0",
        "scdcc",
        kwargs=dict(n_clusters=3, checkpoint_dir="unused", checkpoint_every=0),
        raises=ValueError,
        match=r"checkpoint_every must be an integer >= 1, got 0",
    ),
    Case(
        "scdcc-unknown-device",
        "scdcc",
        kwargs=dict(n_clusters=3, device="gpu"),
        raises=ValueError,
        match=r"device='gpu' is not a device torch knows",
    ),
    Case(
        "desc-no-seed-with-checkpoints",
        "desc",
        kwargs=dict(n_clusters=3, random_state=None, checkpoint_dir="unused"),
        raises=ValueError,
        match=r"random_state=None draws a new seed at every call, but a checkpoint is resumed",
    ),
    Case(
        "scdcc-device-not-cpu-or-cuda",
        "scdcc",
        kwargs=dict(n_clusters=3, device="mps"),
        raises=ValueError,
        match=r"device='mps': scdeepclust trains on the CPU or on CUDA GPUs only",
    ),
    Case(
        "desc-meta-device",
        "desc",
        kwargs=dict(n_clusters=3, device="meta"),
        raises=ValueError,
        match=r"device='meta': scdeepclust trains on the CPU or on CUDA GPUs only",
    ),
    Case(
        "scdcc-cuda-without-cuda",
        "scdcc",
        kwargs=dict(n_clusters=3, device="cuda"),
        raises=ValueError,
        match=r"device='cuda' was requested but CUDA is not available",
    ),
    Case(
        "scdcc-existing-key",
        "scdcc",
        kwargs=dict(n_clusters=3),
        edit=_existing_key,
        warns=UserWarning,
        match=r"adata\.obs\['scdcc'\], uns\['scdcc'\] already exist\(s\) and will be overwritten",
        copy=False,
    ),
    Case(
        "scdcc-not-anndata",
        "scdcc",
        edit=lambda a: a.X.toarray(),
        raises=TypeError,
        match=r"Expected an AnnData object, got ndarray",
    ),
    # -- desc ------------------------------------------------------------------------------
    Case(
        "desc-nan",
        "desc",
        edit=_set("X", 1, 1, np.nan),
        raises=ValueError,
        match=r"adata\.X contains 1 NaN or infinite value\(s\)",
    ),
    Case(
        "desc-inf",
        "desc",
        edit=_set("X", 1, 1, -np.inf),
        raises=ValueError,
        match=r"adata\.X contains 1 NaN or infinite value\(s\)",
    ),
    Case(
        "desc-value-beyond-float32",
        "desc",
        edit=_set("X", 1, 1, -1e39, dtype=np.float64),
        raises=ValueError,
        match=r"adata\.X holds values as large as 1e\+39 \(in magnitude\)",
    ),
    Case(
        "desc-raw-counts",
        "desc",
        kwargs=dict(n_clusters=3),
        edit=lambda a: counts_data(),
        warns=UserWarning,
        match=r"adata\.X looks like raw counts\. DESC expects log-normalised, scaled data",
    ),
    Case(
        "desc-all-zero-cell",
        "desc",
        kwargs=dict(n_clusters=3),
        edit=_zero_cell("X"),
        warns=UserWarning,
        match=r"1 cell\(s\) are all zero in adata\.X \(e\.g\. \['cell5'\]\)",
    ),
    Case(
        "desc-all-zero-gene",
        "desc",
        kwargs=dict(n_clusters=3),
        edit=_zero_gene,
        warns=UserWarning,
        match=r"1 gene\(s\) of adata\.X are all zero \(e\.g\. \['gene3'\]\) and are left out",
    ),
    Case(
        "desc-all-zero-matrix",
        "desc",
        edit=lambda a: ad.AnnData(np.zeros((20, 5), np.float32)),
        raises=ValueError,
        match=r"adata\.X holds only zeros",
    ),
    Case(
        "desc-missing-use-rep",
        "desc",
        kwargs=dict(use_rep="X_pca"),
        raises=KeyError,
        match=r"use_rep 'X_pca' is not in adata\.obsm",
    ),
    Case(
        "desc-missing-layer",
        "desc",
        kwargs=dict(layer="scaled"),
        raises=KeyError,
        match=r"Layer 'scaled' not found",
    ),
    Case(
        "desc-layer-and-use-rep",
        "desc",
        kwargs=dict(layer="counts", use_rep="X_pca"),
        raises=ValueError,
        match=r"Pass either layer or use_rep, not both",
    ),
    Case(
        "desc-use-rep-nan",
        "desc",
        kwargs=dict(use_rep="X_pca"),
        edit=_obsm("X_pca", lambda a: np.full((a.n_obs, 3), np.nan)),
        raises=ValueError,
        match=r"adata\.obsm\['X_pca'\] contains 270 NaN or infinite value\(s\)",
    ),
    Case(
        "desc-n-clusters-1",
        "desc",
        kwargs=dict(n_clusters=1),
        raises=ValueError,
        match=r"n_clusters must be an integer >= 2, got 1",
    ),
    Case(
        "desc-n-clusters-above-cells",
        "desc",
        kwargs=dict(n_clusters=100),
        raises=ValueError,
        match=r"n_clusters=100 is larger than the number of cells \(90\)",
    ),
    Case(
        "desc-no-cells",
        "desc",
        edit=lambda a: a[:0].copy(),
        raises=ValueError,
        match=r"adata is empty \(shape \(0, 30\)\)",
    ),
    Case(
        "desc-bad-kernel",
        "desc",
        kwargs=dict(kernel="cauchy"),
        raises=ValueError,
        match=r"kernel must be 't' or 'gaussian', not 'cauchy'",
    ),
    Case(
        "desc-bad-alpha",
        "desc",
        kwargs=dict(alpha=0),
        raises=ValueError,
        match=r"alpha must be a finite number > 0 \(the degrees of freedom",
    ),
    Case(
        "desc-bad-precision",
        "desc",
        kwargs=dict(precision="float16"),
        raises=ValueError,
        match=r"precision='float16' is not one of 'float32', 'bfloat16'",
    ),
    Case(
        "scdcc-bad-precision",
        "scdcc",
        kwargs=dict(precision="half"),
        raises=ValueError,
        match=r"precision='half' is not one of 'float32', 'bfloat16'",
    ),
    Case(
        "desc-empty-resolution",
        "desc",
        kwargs=dict(resolution=[]),
        raises=ValueError,
        match=r"resolution must be a number or a non-empty list",
    ),
    Case(
        "desc-repeated-resolution",
        "desc",
        kwargs=dict(resolution=[0.5, np.float32(0.5)]),
        raises=ValueError,
        match=r"resolution lists \[0\.5\] more than once",
    ),
    Case(
        "scdcc-resolution-list",
        "scdcc",
        kwargs=dict(resolution=[0.3, 0.5]),
        raises=ValueError,
        match=r"resolution must be one number here.*once per resolution",
    ),
    Case(
        "desc-key-with-slash",
        "desc",
        kwargs=dict(n_clusters=3, key_added="run/1"),
        raises=ValueError,
        match=r"key_added 'run/1' contains '/'",
    ),
    Case(
        "scdcc-key-with-backslash",
        "scdcc",
        kwargs=dict(n_clusters=3, key_added="run\\1"),
        raises=ValueError,
        match=r"key_added 'run\\\\1' contains a backslash, which \.zarr stores read",
    ),
    Case(
        "scdcc-key-in-scanpy-colour-slot",
        "scdcc",
        kwargs=dict(n_clusters=3, key_added="scdcc_colors"),
        raises=ValueError,
        match=r"key_added 'scdcc_colors' ends in '_colors', where scanpy keeps the colours",
    ),
    Case(
        "desc-existing-key",
        "desc",
        kwargs=dict(n_clusters=3),
        edit=_existing_key,
        warns=UserWarning,
        match=r"adata\.obs\['desc'\], uns\['desc'\] already exist\(s\) and will be overwritten",
        copy=False,
    ),
    # -- the genes read (mask_var) -----------------------------------------------------------
    Case(
        "desc-mask-var-not-a-column",
        "desc",
        kwargs=dict(mask_var="hvg"),
        raises=ValueError,
        match=r"mask_var='hvg' is not a column of adata\.var\. Mark the genes to use, e\.g\. "
        r"`sc\.pp\.highly_variable_genes\(adata, n_top_genes=2000\)`.*mask_var=None",
    ),
    Case(
        "scdcc-marked-genes-not-boolean",
        "scdcc",
        edit=_marked(lambda n: np.arange(n) % 2),
        raises=ValueError,
        match=r"adata\.var\['highly_variable'\] must be boolean \(True for the genes to use\), "
        r"not of dtype int64\. If it holds True/False or 1/0, convert it: `adata\.var\["
        r"'highly_variable'\] = adata\.var\['highly_variable'\]\.astype\(bool\)`",
    ),
    Case(
        "desc-marked-genes-missing-values",
        "desc",
        edit=_marked(lambda n: pd.array([True, None] + [False] * (n - 2), dtype="boolean")),
        raises=ValueError,
        match=r"adata\.var\['highly_variable'\] has missing values.*`adata\.var\["
        r"'highly_variable'\] = adata\.var\['highly_variable'\]\.to_numpy\(dtype=bool, "
        r"na_value=False\)`",
    ),
    Case(
        "scdcc-mask-var-marks-nothing",
        "scdcc",
        kwargs=dict(mask_var=np.zeros(30, dtype=bool)),
        raises=ValueError,
        match=r"mask_var marks no gene to use",
    ),
    Case(
        "desc-mask-var-wrong-length",
        "desc",
        kwargs=dict(mask_var=np.ones(29, dtype=bool)),
        raises=ValueError,
        match=r"mask_var has shape \(29,\); it needs one True/False per gene \(30\)",
    ),
    Case(
        "desc-mask-var-with-use-rep",
        "desc",
        kwargs=dict(mask_var="highly_variable", use_rep="X_pca"),
        edit=_obsm("X_pca", lambda a: np.ones((a.n_obs, 5))),
        raises=ValueError,
        match=r"mask_var chooses genes of X or a layer, but the input is adata\.obsm\['X_pca'\]",
    ),
    Case(
        "scdcc-cell-without-counts-in-marked-genes",
        "scdcc",
        edit=_cell_outside_marked_genes,
        raises=ValueError,
        match=r"1 cell\(s\) have no counts in adata\.layers\['counts'\] in the 20 genes of "
        r"var\['highly_variable'\].*`adata = adata\[np\.asarray\(\(adata\.layers\['counts'\]"
        r"\[:, adata\.var\['highly_variable'\]\.to_numpy\(\)\] != 0\)\.sum\(axis=1\)\)\.ravel\(\) "
        r"> 0\]\.copy\(\)`, or pass mask_var=None",
    ),
    Case(
        "desc-marked-genes-all-zero",
        "desc",
        edit=lambda a: _marked(lambda n: np.arange(n) == 3)(_zero_gene(a)),
        raises=ValueError,
        match=r"adata\.X holds only zeros in the 1 gene of var\['highly_variable'\]; there is "
        r"nothing to cluster\. Choose other genes, or pass mask_var=None",
    ),
    Case(
        "desc-cuda-without-cuda",
        "desc",
        kwargs=dict(device="cuda:0"),
        raises=ValueError,
        match=r"device='cuda:0' was requested but CUDA is not available",
    ),
]


def _run(case: Case, adata, **extra):
    kwargs = {**TINY, **case.kwargs, **extra}
    if case.tool == "scdcc":
        return sdc.tl.scdcc(adata, **kwargs)
    return sdc.tl.desc(adata, **kwargs)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case):
    if "cuda" in case.kwargs.get("device", "") and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    adata = counts_data() if case.tool == "scdcc" else lognorm_data()
    if case.edit is not None:
        adata = case.edit(adata)
    if not isinstance(adata, ad.AnnData):
        with pytest.raises(case.raises, match=case.match):
            _run(case, adata)
        return
    before = snapshot(adata)
    if case.raises is not None:
        with pytest.raises(case.raises, match=case.match):
            _run(case, adata)
        assert_unchanged(adata, before)
    else:
        with pytest.warns(case.warns, match=case.match):
            out = _run(case, adata, copy=True) if case.copy else _run(case, adata) or adata
        if case.copy:
            assert_unchanged(adata, before)
        assert case.tool in out.obs and f"X_{case.tool}" in out.obsm


def test_values_beyond_float32_are_refused_without_numpy_overflow_warnings():
    """The check of the values squared them in float64: numpy's "overflow encountered in
    square" reached the user beside the refusal that names the value."""
    case = next(c for c in CASES if c.id == "scdcc-count-beyond-float32")
    adata = case.edit(counts_data())
    near_the_limit = _set("counts", slice(0, 2), 0, 1.5e308, dtype=np.float64)(counts_data())
    for data, match in ((adata, case.match), (near_the_limit, r"as large as 1\.5e\+308")):
        with warnings.catch_warnings():  # the sums of the second overflow too
            warnings.simplefilter("error", RuntimeWarning)
            with pytest.raises(case.raises, match=match):
                _run(case, data)


def test_the_table_covers_both_tools_and_all_outcomes():
    ids = {c.id for c in CASES}
    assert len(ids) == len(CASES)
    assert {c.tool for c in CASES} == {"scdcc", "desc"}
    assert all((c.raises is None) != (c.warns is None) for c in CASES)


@pytest.mark.parametrize("tool", ["scdcc", "desc"])
def test_whole_number_floats_are_taken_as_integers(tool):
    """5.0 passes the integer checks, so it must reach torch and sklearn as 5."""
    adata = counts_data() if tool == "scdcc" else lognorm_data()
    out = _run(Case("", tool), adata, n_clusters=3, batch_size=32.0, n_neighbors=5.0, copy=True)
    same = _run(Case("", tool), adata, n_clusters=3, batch_size=32, n_neighbors=5, copy=True)
    np.testing.assert_array_equal(out.obsm[f"X_{tool}"], same.obsm[f"X_{tool}"])


@pytest.mark.parametrize("tool", ["scdcc", "desc"])
def test_sparse_input_in_another_byte_order_is_read_and_the_copy_hint_works(tool):
    """scipy refuses to slice or copy a CSR matrix of big-endian values: the tools read it
    block by block; copy=True, which anndata cannot make, is refused before any work, with a
    line of code that converts the matrix."""
    data = counts_data if tool == "scdcc" else lognorm_data
    big_endian = _big_endian("counts" if tool == "scdcc" else "X")
    expected = _run(Case("", tool), data(), n_clusters=3, copy=True)
    adata = big_endian(data())
    _run(Case("", tool), adata, n_clusters=3)
    np.testing.assert_array_equal(adata.obsm[f"X_{tool}"], expected.obsm[f"X_{tool}"])
    adata = big_endian(data())
    with pytest.raises(ValueError, match="which anndata cannot copy") as refused:
        _run(Case("", tool), adata, n_clusters=3, copy=True)
    exec(str(refused.value).split("`")[1], {"adata": adata})  # the conversion it names
    out = _run(Case("", tool), adata, n_clusters=3, copy=True)
    np.testing.assert_array_equal(out.obsm[f"X_{tool}"], expected.obsm[f"X_{tool}"])
    # a view is made actual when results are written: refused too, the parent converted
    parent = big_endian(data())
    with pytest.raises(ValueError, match="cannot make actual") as refused:
        _run(Case("", tool), parent[: parent.n_obs - 1], n_clusters=3)
    assert "In the AnnData the view was taken from" in str(refused.value)
    exec(str(refused.value).split("`")[1], {"adata": parent})
    view = parent[: parent.n_obs - 1]
    _run(Case("", tool), view, n_clusters=3)
    assert f"X_{tool}" in view.obsm and f"X_{tool}" not in parent.obsm


# -- views and backed AnnData ---------------------------------------------------------------


@pytest.mark.parametrize("tool", ["scdcc", "desc"])
def test_view_is_made_actual_and_parent_untouched(tool):
    parent = counts_data() if tool == "scdcc" else lognorm_data()
    before = snapshot(parent)
    view = parent[:60]
    assert view.is_view
    # a failing call leaves the view a view
    with pytest.raises(ValueError, match="n_clusters must be"):
        _run(Case("", tool), view, n_clusters=1)
    assert view.is_view
    with pytest.warns(ImplicitModificationWarning, match="initializing view as actual"):
        _run(Case("", tool), view, n_clusters=3)
    assert not view.is_view and tool in view.obs
    assert_unchanged(parent, before)


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("tool", ["scdcc", "desc"])
def test_backed_read_only(tool, tmp_path):
    adata = counts_data() if tool == "scdcc" else lognorm_data()
    path = tmp_path / "data.h5ad"
    adata.write_h5ad(path)
    digest = _sha(path)
    backed = ad.read_h5ad(path, backed="r")
    obs_before = backed.obs.copy()
    with pytest.raises(ValueError, match="copy=True cannot copy a backed AnnData"):
        _run(Case("", tool), backed, n_clusters=3, copy=True)
    assert backed.obs.equals(obs_before) and not backed.obsm
    # the message names what the tool reads from the file: anndata keeps X alone there
    reads = {
        "scdcc": r": the results",  # layers['counts'], in memory
        "desc": r": X \(the scaled data DESC reads\) is read from the file",
    }[tool]
    with pytest.warns(UserWarning, match=rf"adata is backed by .* \(mode 'r'\){reads}.*in memory"):
        _run(Case("", tool), backed, n_clusters=3)
    assert tool in backed.obs and f"X_{tool}" in backed.obsm
    backed.file.close()
    assert _sha(path) == digest  # the file is only read
    in_memory = _run(Case("", tool), ad.read_h5ad(path), n_clusters=3, copy=True)
    np.testing.assert_array_equal(in_memory.obsm[f"X_{tool}"], backed.obsm[f"X_{tool}"])


def test_a_file_opened_to_write_is_told_it_can_take_the_results(tmp_path):
    """Opened with backed='r+', a file takes the results with adata.write(); the warning named
    only write_h5ad(new_path)."""
    counts_data().write_h5ad(tmp_path / "data.h5ad")
    backed = ad.read_h5ad(tmp_path / "data.h5ad", backed="r+")
    with pytest.warns(UserWarning, match=r"\(mode 'r\+'\).*into this file with `adata\.write\(\)`"):
        _run(Case("", "scdcc"), backed, n_clusters=3)
    backed.write()
    backed.file.close()
    saved = ad.read_h5ad(tmp_path / "data.h5ad")
    np.testing.assert_array_equal(saved.obsm["X_scdcc"], backed.obsm["X_scdcc"])


def test_a_backed_modality_without_a_mode_of_its_own_is_not_said_to_have_mode_none(tmp_path):
    """A backed MuData's modality holds no mode of its own: the warning read "(mode None)"."""
    counts_data().write_h5ad(tmp_path / "data.h5ad")
    backed = ad.read_h5ad(tmp_path / "data.h5ad", backed="r")
    backed.file._filemode = None  # as mudata leaves it on a modality
    with pytest.warns(UserWarning, match=r"adata is backed by \S+data\.h5ad: the results"):
        _run(Case("", "scdcc"), backed, n_clusters=3)


def test_advice_on_a_backed_adata_says_to_load_it_first(tmp_path):
    """Lines written for data in memory (`adata[...].copy()`, `sc.pp.filter_cells`) fail on an
    AnnData read from a file; the refusal says to load it, and then its line works."""
    from scdeepclust.pp._input import BACKED_NOTE

    adata = counts_data()
    counts = adata.X.toarray()
    counts[4] = 0
    adata.X = sparse.csr_matrix(counts)
    del adata.layers["counts"]
    adata.write_h5ad(tmp_path / "data.h5ad")
    backed = ad.read_h5ad(tmp_path / "data.h5ad", backed="r")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # backed: results in memory only
        with pytest.raises(ValueError, match="no counts") as refused:
            _run(Case("", "scdcc"), backed, n_clusters=3)
    assert refused.value.__notes__ == [BACKED_NOTE]
    namespace = {"adata": backed, "np": np, "sc": sc}
    exec(re.search(r"`(adata = adata\.to_memory\(\))`", BACKED_NOTE).group(1), namespace)
    line = re.search(r"`(sc\.pp\.filter_cells\(adata.*?\))`", str(refused.value)).group(1)
    exec(line, namespace)
    assert namespace["adata"].n_obs == adata.n_obs - 1
    with pytest.raises(ValueError, match="no counts") as refused:  # in memory: no note
        _run(Case("", "scdcc"), adata, n_clusters=3)
    assert not getattr(refused.value, "__notes__", [])
    # a line on var works on a backed AnnData as written: no note
    adata.var["highly_variable"] = np.where(np.arange(adata.n_vars) < 10, "True", "False")
    adata.write_h5ad(tmp_path / "text.h5ad")
    backed = ad.read_h5ad(tmp_path / "text.h5ad", backed="r")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        with pytest.raises(ValueError, match="the words True/False") as refused:
            _run(Case("", "scdcc"), backed, n_clusters=3)
    assert not getattr(refused.value, "__notes__", [])


def test_count_statistics_of_an_adata_names_a_line_that_finds_the_counts():
    adata = counts_data()
    with pytest.raises(TypeError, match="takes the count matrix, not the AnnData") as refused:
        sdc.pp.count_statistics(adata)
    line = re.search(r"`(scdeepclust\.pp\.get_counts\(adata\)\[0\])`", str(refused.value))
    counts = eval(line.group(1), {"adata": adata, "scdeepclust": sdc})
    assert sdc.pp.count_statistics(counts).size_factors.shape == (adata.n_obs,)


class MuData:  # stands for mudata's class, which the tests do not install
    __module__ = "mudata._core.mudata"
    layers = None  # as mudata's, whose MuData has no layers of its own


@pytest.mark.parametrize(
    ("value", "advice"),
    [
        (MuData(), r"mdata\.mod\['rna'\]"),
        ("pbmc.h5ad", r"sc\.read_h5ad\(path\)"),
        (np.ones((5, 3)), r"anndata\.AnnData\(X\)"),
        (pd.DataFrame(np.ones((5, 3))), r"anndata\.AnnData\(X\)"),
        ([1, 2], r"Pass the AnnData"),
    ],
)
def test_something_else_than_an_anndata_is_refused_with_the_line_that_makes_one(value, advice):
    calls = (sdc.tl.desc, sdc.tl.scdcc, sdc.pp.get_counts, lambda v: sdc.pp.recipe(v, "desc"))
    for call in (*calls, lambda v: sdc.pl.probabilities(v, "desc")):
        with pytest.raises(TypeError, match=r"Expected an AnnData object, got \w+\. .*" + advice):
            call(value)


def test_a_mudata_is_told_to_pull_the_columns_only_where_the_call_writes_them():
    """mudata 0.4's update() no longer brings the modalities' obs columns into the MuData's;
    pull_obs does, and only the tools write such columns."""
    for call in (sdc.tl.desc, sdc.tl.scdcc):
        with pytest.raises(TypeError, match=r"mod\['rna'\]`; `mdata\.pull_obs\(\)` then shows"):
            call(MuData())
    for call in (sdc.pp.get_counts, lambda v: sdc.pl.probabilities(v, "desc")):
        with pytest.raises(TypeError, match=r"mod\['rna'\]`\.$"):
            call(MuData())


@pytest.mark.parametrize("name", ["all_finite", "is_count_matrix", "count_statistics"])
def test_the_matrix_checks_refuse_an_anndata_or_a_mudata(name):
    """numpy read an AnnData as an object array ("exceed the maximum number of dimension"), and
    went through mudata's MuData without end."""
    check = getattr(sdc.pp, name)
    with pytest.raises(TypeError, match=rf"^{name} takes a matrix, not a MuData: .*\.X`\.$"):
        check(MuData())
    with pytest.raises(TypeError, match=rf"^{name} takes (a|the count) matrix, not the AnnData"):
        check(sdc.datasets.simulate(20, 10, 2, random_state=0))


def test_proteins_of_another_anndata_are_shown_the_way_into_obsm():
    """A MuData keeps proteins in a modality of their own, which pp.clr and protein_key do not
    read: the refusals said "keys: []" alone, and pp.clr's MuData advice named the RNA."""
    with pytest.raises(TypeError, match=r"got MuData: pp\.clr normalises .* `sdc\.pp\.clr\(rna\)`"):
        sdc.pp.clr(MuData())
    adata = sdc.datasets.simulate(60, 30, 2, random_state=0)
    advice = r"\[\]\. Proteins kept in an AnnData of their own .* `adata\.obsm\['protein'\] = prot"
    with pytest.raises(KeyError, match=r"protein_key 'protein' is not in .*; keys: " + advice):
        sdc.pp.clr(adata)
    with pytest.raises(KeyError, match=r"protein_key 'adt' is not in .* available: " + advice):
        sdc.tl.scdcc(adata, 2, protein_key="adt", **FAST)
    # the line, followed: cells without proteins are NaN rows, refused as such
    prot = ad.AnnData(np.full((50, 4), 20, dtype=np.float32))
    prot.obs_names = adata.obs_names[:50]
    adata.obsm["protein"] = prot.to_df().reindex(adata.obs_names)
    with pytest.raises(ValueError, match=r"holds 40 NaN or infinite values.*leave out"):
        sdc.pp.clr(adata)


def test_backed_gene_selection_view_and_recipe(tmp_path):
    """scdcc's n_top_genes reads a backed file block by block (the genes and results of the
    data in memory); a view of a backed AnnData, which cannot take results, and pp.recipe,
    which changes X in place, are refused before any work."""
    path = tmp_path / "data.h5ad"
    adata = counts_data()
    adata.X = sparse.csr_matrix(adata.layers.pop("counts"))  # backed mode reads X only
    adata.write_h5ad(path)
    backed = ad.read_h5ad(path, backed="r")
    with pytest.warns(UserWarning, match=r"X \(the raw counts scdcc reads\) is read from the "):
        _run(Case("", "scdcc"), backed, n_clusters=3, n_top_genes=15)
    in_memory = _run(Case("", "scdcc"), ad.read_h5ad(path), n_clusters=3, n_top_genes=15, copy=True)
    np.testing.assert_array_equal(
        backed.uns["scdcc"]["genes_used"], in_memory.uns["scdcc"]["genes_used"]
    )
    np.testing.assert_array_equal(backed.obsm["X_scdcc"], in_memory.obsm["X_scdcc"])
    view = ad.read_h5ad(path, backed="r")[:60]
    with pytest.raises(ValueError, match=r"a view of a backed AnnData.*adata.to_memory\(\)"):
        _run(Case("", "scdcc"), view, n_clusters=3)
    assert not view.obsm
    with pytest.raises(ValueError, match=r"pp.recipe changes X in place.*to_memory"):
        sdc.pp.recipe(ad.read_h5ad(path, backed="r"), "scdcc")


# -- failures during training ---------------------------------------------------------------


@pytest.mark.parametrize(
    "tool, kwargs, match",
    [
        ("scdcc", dict(pretrain_lr=1e8), r"pretraining loss became .* lower `pretrain_lr` \(now"),
        ("desc", dict(pretrain_lr=1e8), r"layer1 loss became .* lower `pretrain_lr` \(now 1e\+08"),
        ("desc", dict(lr=1e30), r"clustering\S* loss became .* lower `lr` \(now 1e\+30\), e\.g"),
    ],
)
def test_non_finite_loss_names_the_cause_and_leaves_adata(tool, kwargs, match):
    adata = counts_data() if tool == "scdcc" else lognorm_data()
    before = snapshot(adata)
    with pytest.raises(TrainingDiverged, match=match):
        _run(Case("", tool), adata, n_clusters=3, pretrain_epochs=3, max_epochs=3, **kwargs)
    assert_unchanged(adata, before)


def test_desc_diverging_on_input_far_from_z_scores_names_the_scale():
    """No learning rate cures values of 1e19: the error says to scale, beside the rate."""
    adata = lognorm_data()
    sc.pp.scale(adata)
    adata.X = adata.X * 1e19
    before = snapshot(adata)
    with pytest.warns(UserWarning, match="root mean square"):
        with pytest.raises(TrainingDiverged) as diverged:
            _run(Case("", "desc"), adata, n_clusters=3, pretrain_epochs=3, max_epochs=3)
    assert "Pass scale=True, or run sc.pp.scale first." in diverged.value.__notes__[0]
    assert_unchanged(adata, before)


@pytest.mark.parametrize("tool", ["scdcc", "desc"])
def test_keyboard_interrupt_during_training_leaves_adata(tool, monkeypatch, tmp_path):
    adata = counts_data() if tool == "scdcc" else lognorm_data()
    adata.obs["scdcc"] = pd.Categorical(["x"] * adata.n_obs)  # an earlier result stays as is
    adata.uns["scdcc"] = {"params": {"method": "scdcc"}}
    before = snapshot(adata)

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(_loops, "kl_divergence", interrupt)
    with pytest.raises(KeyboardInterrupt):
        _run(Case("", tool), adata, n_clusters=3, checkpoint_dir=tmp_path / "ckpt")
    assert_unchanged(adata, before)


def test_existing_key_warning_lists_every_key():
    adata = counts_data()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sdc.tl.scdcc(adata, 3, **TINY)
    assert not [w for w in caught if "overwritten" in str(w.message)]
    with pytest.warns(UserWarning, match="overwritten") as record:
        sdc.tl.scdcc(adata, 3, **TINY)
    message = str([w for w in record if "overwritten" in str(w.message)][0].message)
    for key in ("obs['scdcc']", "obs['scdcc_confidence']", "obsm['X_scdcc']", "uns['scdcc']"):
        assert key in message


@pytest.mark.parametrize("tool", ["scdcc", "desc"])
def test_a_call_refused_for_its_input_does_not_speak_of_overwriting(tool, monkeypatch):
    """The warning about earlier results comes once the input is read and checked: a layer
    misnamed was refused after 'will be overwritten' (nothing was), and as an error
    (-W error) the warning still costs no training."""
    adata = _existing_key(counts_data() if tool == "scdcc" else lognorm_data())
    before = snapshot(adata)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(KeyError, match="'count'"):
            getattr(sdc.tl, tool)(adata, n_clusters=3, layer="count", **TINY)
    assert not [w for w in caught if "overwritten" in str(w.message)]
    assert_unchanged(adata, before)
    trained = []
    module = {"scdcc": _tl_scdcc, "desc": _tl_desc}[tool]
    name = {"scdcc": "fit_scdcc", "desc": "pretrain_desc"}[tool]
    monkeypatch.setattr(module, name, lambda *args, **kwargs: trained.append(1))
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*will be overwritten")
        with pytest.raises(UserWarning, match="will be overwritten"):
            getattr(sdc.tl, tool)(adata, n_clusters=3, **TINY)
    assert not trained
    assert_unchanged(adata, before)


def test_the_advice_for_cells_without_counts_removes_only_those(sim):
    """sc.pp.filter_cells counts X: on a scaled X it took 144 of 300 cells for one empty one."""
    counts = sim.layers["counts"].tolil()
    counts[5] = 0
    sim.layers["counts"] = counts.tocsr()
    sc.pp.normalize_total(sim)
    sc.pp.log1p(sim)
    sc.pp.scale(sim)
    with pytest.raises(ValueError, match="have no counts") as refused:
        sdc.tl.scdcc(sim, n_clusters=3, pretrain_epochs=1, max_epochs=1, progress=False)
    snippet = re.search(r"`(adata = [^`]+)`", str(refused.value)).group(1)
    namespace = {"adata": sim, "np": np}
    exec(snippet, namespace)
    assert list(namespace["adata"].obs_names) == [n for n in sim.obs_names if n != "cell5"]


def test_the_advice_for_estimated_counts_rounds_them(sim):
    counts = sim.layers["counts"].astype(np.float32)
    counts.data[::7] -= 0.05  # ambient RNA removed, as SoupX leaves them
    sim.layers["counts"] = counts
    with pytest.raises(ValueError, match="Round them first") as refused:
        sdc.pp.get_counts(sim)
    advice = re.search(r"e\.g\. `([^`]+)`", str(refused.value)).group(1)
    exec(advice, {"np": np, "adata": sim})
    matrix, where = sdc.pp.get_counts(sim)
    assert where == "layers['counts']" and np.all(matrix.data == np.round(matrix.data))


def test_the_advice_for_counts_of_a_view_makes_it_actual_first(sim):
    # On a view, `adata.layers['counts'].data = ...` changed a temporary copy: following the
    # advice, the tool refused the same values again.
    counts = sim.layers["counts"].astype(np.float32)
    counts.data[::7] -= 0.05
    sim.layers["counts"] = counts
    namespace = {"np": np, "adata": sim[: sim.n_obs // 2]}
    with pytest.raises(ValueError, match="Round them first") as refused:
        sdc.pp.get_counts(namespace["adata"])
    lines = re.search(r"e\.g\. `([^`]+)` \(adata is a view\), then `([^`]+)`", str(refused.value))
    for line in lines.groups():
        exec(line, namespace)
    matrix, _ = sdc.pp.get_counts(namespace["adata"])
    assert np.all(matrix.data == np.round(matrix.data))
    assert not np.all(sim.layers["counts"].data == np.round(sim.layers["counts"].data))


@pytest.mark.parametrize(
    "transform, name",
    [
        (lambda v: np.log2(v + 1), r"log2\(1 \+ counts\)"),
        (np.sqrt, "the square root of counts"),
        (np.log1p, r"log1p\(counts\), not normalised"),
    ],
)
def test_transformed_counts_are_named_and_the_advice_recovers_them(sim, transform, name):
    """log2 and square roots keep the 1s whole: they were taken for estimated counts, and the
    advice to round them was accepted silently."""
    counts = sim.layers.pop("counts").astype(np.float32)
    sim.X = counts.copy()
    sim.X.data = transform(sim.X.data).astype(np.float32)
    with pytest.raises(ValueError, match=f"its values are {name}") as refused:
        sdc.pp.get_counts(sim)
    advice = re.search(r"left, `([^`]+)` recovers them", str(refused.value)).group(1)
    exec(advice, {"np": np, "adata": sim})
    np.testing.assert_array_equal(sdc.pp.get_counts(sim)[0].toarray(), counts.toarray())


def test_the_advice_that_recovers_transformed_counts_of_a_view_makes_it_actual_first(sim):
    counts = sim.layers.pop("counts").astype(np.float32)
    sim.X = counts.copy()
    sim.X.data = np.log2(sim.X.data + 1).astype(np.float32)
    namespace = {"np": np, "adata": sim[: sim.n_obs // 2]}
    with pytest.raises(ValueError, match=r"log2\(1 \+ counts\)") as refused:
        sdc.pp.get_counts(namespace["adata"])
    lines = re.search(r"left, `([^`]+)` \(adata is a view\), then `([^`]+)`", str(refused.value))
    for line in lines.groups():
        exec(line, namespace)
    recovered = sdc.pp.get_counts(namespace["adata"])[0].toarray()
    np.testing.assert_array_equal(recovered, counts[: sim.n_obs // 2].toarray())


def test_deep_counts_given_to_desc_get_the_counts_warning_alone():
    """Counts far from z-scores are warned about as counts; the warning about the scale of
    the input, which suggests scale=True, is for values that are not counts."""
    adata = counts_data()
    adata.X = adata.X * 50  # integers still, with a root mean square far above 10
    with pytest.warns(UserWarning) as caught:
        sdc.tl.desc(adata, n_clusters=3, copy=True, **TINY)
    messages = [str(w.message) for w in caught]
    assert any("looks like raw counts" in m for m in messages)
    assert not any("root mean square" in m for m in messages)


@pytest.mark.parametrize("tool", ["scdcc", "desc"])
@pytest.mark.parametrize(
    "option", ["copy", "return_model", "progress", "resume", "distributed", "tool_switch"]
)
def test_switches_take_true_or_false_only(tool, option):
    # only their truth was read: the text "False" returned a copy, kept labels, resumed...
    adata = sdc.datasets.simulate(60, 40, 2, random_state=0)
    before = snapshot(adata)
    name = {"scdcc": "keep_labels", "desc": "scale"}[tool] if option == "tool_switch" else option
    with pytest.raises(ValueError, match=rf"{name} must be True or False, got 'False'"):
        getattr(sdc.tl, tool)(adata, n_clusters=2, **{name: "False"})
    assert_unchanged(adata, before)


def test_numpy_false_is_false():
    adata = sdc.datasets.simulate(60, 40, 2, random_state=0)
    sdc.tl.scdcc(adata, 2, copy=np.False_, pretrain_epochs=1, max_epochs=1, progress=False)
    assert "scdcc" in adata.obs


@pytest.mark.parametrize("folder", ["", "  "])
def test_an_empty_folder_name_is_refused(folder, tmp_path):
    adata = sdc.datasets.simulate(60, 40, 2, random_state=0)
    with pytest.raises(ValueError, match=r"checkpoint_dir must name a folder"):
        sdc.tl.scdcc(adata, 2, checkpoint_dir=folder)
    with pytest.raises(ValueError, match=r"checkpoint_dir must name a folder"):
        sdc.tl.scdcc(adata, 2, checkpoint_dir=True)
    model = sdc.tl.scdcc(
        adata, 2, return_model=True, pretrain_epochs=1, max_epochs=1, progress=False
    )
    with pytest.raises(ValueError, match=r"directory must name a folder"):
        model.save(folder)
    with pytest.raises(ValueError, match=r"overwrite must be True or False"):
        model.save(tmp_path / "m", overwrite="no")
    with pytest.raises(ValueError, match=r"soft must be True or False"):
        model.predict(adata, soft="False")
    with pytest.raises(ValueError, match=r"copy must be True or False"):
        sdc.tl.map_to_model(adata, model, copy="False")


def test_recipe_refuses_a_bool_number_of_genes_and_a_bad_threshold_of_many_genes():
    adata = sdc.datasets.simulate(60, 40, 2, random_state=0)
    before = snapshot(adata)
    for options, match in (
        (dict(n_top_genes=True), r"n_top_genes must be an integer >= 1 \(or None\), got True"),
        (dict(hvg_above=float("nan")), r"hvg_above must be an integer >= 0, got nan"),
        (dict(hvg_above="auto"), r"hvg_above must be an integer >= 0, got 'auto'"),
    ):
        with pytest.raises(ValueError, match=match):
            sdc.pp.recipe(adata, "scdcc", **options)
        assert_unchanged(adata, before)


def test_key_options_take_one_name_and_say_which():
    # a list reached anndata or pandas as a key: "unhashable type: 'list'", naming no option
    adata = sdc.datasets.simulate(60, 40, 2, random_state=0)
    adata.obsm["proteins"] = np.ones((60, 2), dtype=np.float32)
    before = snapshot(adata)
    for tool, options in (
        (sdc.tl.desc, dict(layer=["counts"])),
        (sdc.tl.desc, dict(use_rep=("X_pca",))),
        (sdc.tl.desc, dict(batch_key=["group"])),
        (sdc.tl.scdcc, dict(label_key=["group"])),
        (sdc.tl.scdcc, dict(protein_key=["proteins"])),
        (sdc.pp.recipe, dict(layer=["counts"])),
    ):
        ((name, value),) = options.items()
        match = rf"{name} must name .* \(one name: the tools read one at a time\), not"
        with pytest.raises(TypeError, match=match):
            if tool is sdc.pp.recipe:
                tool(adata, "scdcc", **options)
            else:
                tool(adata, n_clusters=2, **options)
        assert_unchanged(adata, before)
    with pytest.raises(ValueError, match=r"kernel must be 't' or 'gaussian', not \['t'\]"):
        sdc.tl.desc(adata, n_clusters=2, kernel=["t"])
    with pytest.raises(ValueError, match=r"key_added must be a non-empty string, got '  '"):
        sdc.tl.desc(adata, n_clusters=2, key_added="  ")
    assert_unchanged(adata, before)
    model = sdc.tl.scdcc(
        adata, 2, return_model=True, copy=True, pretrain_epochs=1, max_epochs=1, progress=False
    )[1]
    with pytest.raises(TypeError, match=r"layer must name a layer in adata.layers"):
        model.predict(adata, layer=["counts"])
    with pytest.raises(TypeError, match=r"batch_key must name a column of adata.obs"):
        sdc.tl.map_to_model(adata, model, batch_key=["group"])
    assert_unchanged(adata, before)


def test_a_whole_number_of_clusters_of_any_float_kind_is_taken():
    # 3.0 was taken and numpy's float32(3.0), as arithmetic on arrays gives it, refused
    adata = sdc.datasets.simulate(60, 40, 2, random_state=0)
    sdc.tl.scdcc(adata, np.float32(2.0), pretrain_epochs=1, max_epochs=1, progress=False)
    assert adata.uns["scdcc"]["params"]["n_clusters"] == 2
    with pytest.raises(ValueError, match=r"n_clusters must be an integer >= 2, got np.float32"):
        sdc.tl.scdcc(adata, np.float32(2.5))


def test_as_many_clusters_or_a_batch_as_cells_is_allowed():
    from scdeepclust.tl._validate import check_n_clusters, check_training_sizes

    assert check_n_clusters(5, 5) == 5
    with pytest.raises(ValueError, match=r"n_clusters=6 is larger than the number of cells \(5\)"):
        check_n_clusters(6, 5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_training_sizes(256, batch_size=256, n_clusters=3, n_neighbors=15)
    with pytest.warns(UserWarning, match=r"batch_size=257 is larger than the number of cells"):
        check_training_sizes(256, batch_size=257, n_clusters=3, n_neighbors=15)


def test_the_advice_on_counts_fits_where_they_were_read():
    """Renaming layers['counts'] is advised only where it was read for its name, and putting
    adata.raw's counts there only where X was read."""
    adata = lognorm_data()
    adata.raw = adata
    adata.layers["counts"] = adata.X.copy()  # log-normalised values under that name

    def message(**kwargs) -> str:
        with pytest.raises(ValueError, match="does not hold raw counts") as refused:
            sdc.tl.scdcc(adata, 3, **TINY, **kwargs)
        return str(refused.value)

    by_name = message()
    assert "rename that layer" in by_name and "adata.raw holds" not in by_name
    assert "rename that layer" not in message(layer="counts")
    del adata.layers["counts"]
    assert "adata.raw holds a matrix too" in message()


@pytest.mark.parametrize(
    ("value", "advice"),
    [
        (type("MuData", (), {})(), r"mdata\.mod\['rna'\]"),  # by its name alone
        (type("Other", (), {"__module__": "muon._core"})(), r"mdata\.mod\['rna'\]"),
        (Path("pbmc.h5ad"), r"sc\.read_h5ad\(path\)"),
        (np.ones(3), r"Pass the AnnData"),  # a vector is no matrix of cells
        (np.ones((2, 3, 4)), r"Pass the AnnData"),
    ],
)
def test_the_advice_for_something_else_than_an_anndata_follows_what_it_is(value, advice):
    """MuData by class name or muon's module, paths as well as text, and two-dimensional arrays
    alone, get their own advice."""
    from scdeepclust._messages import not_anndata

    assert re.fullmatch(
        r"Expected an AnnData object, got \w+\. .*" + advice + ".*", str(not_anndata(value))
    )


def test_recipe_refuses_no_genes_an_infinite_target_sum_and_a_clip_at_zero():
    adata = sdc.datasets.simulate(60, 40, 2, random_state=0)
    before = snapshot(adata)
    for method, options, match in (
        ("scdcc", dict(n_top_genes=0), r"n_top_genes must be an integer >= 1 \(or None\), got 0"),
        ("desc", dict(target_sum=float("inf")), r"target_sum must be a positive number .*got inf"),
        ("desc", dict(max_value=0), r"max_value must be a number > 0 \(or None: no clip\), got 0"),
    ):
        with pytest.raises(ValueError, match=match):
            sdc.pp.recipe(adata, method, **options)
        assert_unchanged(adata, before)


def test_recipe_refuses_a_named_layer_that_holds_no_counts():
    adata = sdc.datasets.simulate(60, 40, 2, random_state=0)
    adata.layers["lognorm"] = np.log1p(adata.layers["counts"].toarray())
    before = snapshot(adata)
    with pytest.raises(ValueError, match=r"layers\['lognorm'\] does not hold raw counts"):
        sdc.pp.recipe(adata, "scdcc", layer="lognorm")
    assert_unchanged(adata, before)


def test_recipe_refuses_counts_left_in_a_single_cell():
    adata = sdc.datasets.simulate(60, 40, 2, random_state=0)
    counts = adata.layers["counts"].toarray()
    counts[1:] = 0
    adata.X = sparse.csr_matrix(counts)
    adata.layers["counts"] = sparse.csr_matrix(counts)
    before = snapshot(adata)
    with pytest.raises(ValueError, match=r"Only 1 cells x \d+ genes have counts"):
        sdc.pp.recipe(adata, "scdcc")
    assert_unchanged(adata, before)
    # the same where one cell alone has counts in the genes var['highly_variable'] marks
    counts = adata.layers["counts"].toarray() + 0
    counts[1:, 20:] = 1
    adata.X = sparse.csr_matrix(counts)
    adata.layers["counts"] = sparse.csr_matrix(counts)
    adata.var["highly_variable"] = np.arange(40) < 20
    before = snapshot(adata)
    with pytest.raises(ValueError, match=r"Only 1 cells have counts in the genes the tools read"):
        sdc.pp.recipe(adata, "scdcc")
    assert_unchanged(adata, before)


@pytest.mark.parametrize(
    ("tool", "kwargs", "match"),
    [
        # a bool is no integer, and None only where the option takes it
        ("scdcc", dict(latent_dim=True), r"latent_dim must be an integer >= 1, got True"),
        ("desc", dict(batch_size=None), r"batch_size must be an integer >= 2, got None"),
        ("desc", dict(checkpoint_every=0), r"checkpoint_every must be an integer >= 1, got 0"),
        # seeds are 32-bit: 2**32 is one past the last
        ("scdcc", dict(random_state=2**32), r"random_state must be .*got 4294967296"),
        # a share is a number: True is not 1
        ("scdcc", dict(refine=True), r"refine must be a number in \[0, 1\] .*got True"),
        # a resolution is positive: 0 is refused
        ("desc", dict(n_clusters=None, resolution=0), r"resolution must be a positive number"),
        # anndata's reserved name and a NUL character cannot be keys of an .h5ad
        ("desc", dict(key_added="_index"), r"key_added '_index' cannot be written to \.h5ad"),
        ("scdcc", dict(key_added="a\x00b"), r"cannot be written to \.h5ad"),
        # momentum is in [0, 1): 1 itself is refused
        ("desc", dict(momentum=1), r"momentum must be a number in \[0, 1\), got 1"),
        # layer sizes: text is no sequence of sizes, and DESC needs at least one layer
        ("desc", dict(hidden="64"), r"hidden must be a sequence of layer sizes"),
        ("desc", dict(hidden=()), r"hidden must name at least one layer size; got \(\)"),
    ],
)
def test_options_just_outside_what_they_take_are_refused(tool, kwargs, match):
    adata = counts_data() if tool == "scdcc" else lognorm_data()
    before = snapshot(adata)
    with pytest.raises(ValueError, match=match):
        _run(Case("", tool), adata, **{"n_clusters": 3, **kwargs})
    assert_unchanged(adata, before)


@pytest.mark.parametrize(
    ("tool", "kwargs", "match"),
    [
        ("scdcc", dict(resolution=1.0), r"Leiden initialisation needs more cells \(12\) than"),
        ("desc", dict(n_clusters=3), r"init='leiden' needs more cells \(12\) than n_neighbors=12"),
    ],
)
def test_leiden_needs_more_cells_than_as_many_neighbours(tool, kwargs, match):
    adata = (counts_data() if tool == "scdcc" else lognorm_data())[:12].copy()
    with pytest.raises(ValueError, match=match):
        _run(Case("", tool), adata, n_neighbors=12, **kwargs)


def test_repeated_gene_names_are_refused_only_where_a_model_matches_genes_by_name():
    from scdeepclust.tl._validate import check_gene_names

    adata = ad.AnnData(np.ones((4, 3)), var=pd.DataFrame(index=["g0", "g0", "g1"]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a representation's columns have no gene names
        check_gene_names(adata, use_rep="X_pca", return_model=True)
    with pytest.raises(ValueError, match=r"var_names are not unique \(e\.g\. \['g0'\]\), so a"):
        check_gene_names(adata, use_rep=None, return_model=True)
    with pytest.warns(UserWarning, match=r"var_names are not unique \(e\.g\. \['g0'\]\)\. The"):
        check_gene_names(adata, use_rep=None, return_model=False)


def test_labels_of_one_type_written_as_a_number_and_as_text_are_refused():
    """scDCC reads labels as text (1 and "1", a column put together from two tables, are one
    class): kills K04 (the check counted the values, two, and let one type through)."""
    from scdeepclust.tl._validate import check_known_labels

    labels = pd.Series([1, "1", np.nan, "1"], dtype=object)
    with pytest.raises(ValueError, match=r"adata.obs\['known'\] labels 3 cells, all '1'"):
        check_known_labels(labels, "known")
    check_known_labels(pd.Series([1, "2", np.nan], dtype=object), "known")


def test_desc_divergence_with_scale_true_does_not_advise_scale_true(scaled):
    # the note "Pass scale=True" is for input DESC did not scale; with scale=True the input is
    # z-scored first, so only the learning rate is named (mutant D25 advised scale=True anyway)
    from scdeepclust.train import TrainingDiverged

    scaled.X = scaled.X * 1000.0
    with pytest.raises(TrainingDiverged) as diverged:
        sdc.tl.desc(scaled, n_clusters=3, scale=True, pretrain_lr=1e8, copy=True, **FAST)
    notes = getattr(diverged.value, "__notes__", [])
    assert not any("Pass scale=True" in n for n in notes)


def _with_explicit_zeros(matrix, row=None, col=None):
    """A CSR matrix whose entries of `row` (or `col`) are stored, as explicit zeros."""
    dense = np.asarray(sparse.csr_matrix(matrix).toarray())
    if row is not None:
        dense[row] = 0
    if col is not None:
        dense[:, col] = 0
    stored = sparse.csr_matrix(dense + 1)  # every entry stored
    stored.data -= 1  # explicit zeros where dense was 0
    assert stored.nnz == dense.size
    return stored


# M002
def test_a_copy_line_on_a_layer_of_a_backed_adata_gets_the_note_to_load_it(tmp_path):
    """The line that drops cells without counts in layers['counts'] is `adata = adata[...].copy()`,
    which anndata refuses on a backed AnnData: the refusal says to load it first."""
    from scdeepclust.pp._input import BACKED_NOTE

    adata = counts_data()
    counts = adata.X.toarray()
    counts[4] = 0
    adata.layers["counts"] = sparse.csr_matrix(counts)
    adata.write_h5ad(tmp_path / "data.h5ad")
    backed = ad.read_h5ad(tmp_path / "data.h5ad", backed="r")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        with pytest.raises(ValueError, match=r"no counts in adata\.layers\['counts'\]") as refused:
            sdc.tl.scdcc(backed, n_clusters=3, **ONE_EPOCH)
    assert "].copy()`" in str(refused.value)
    assert refused.value.__notes__ == [BACKED_NOTE]
    backed.file.close()


# M005
@pytest.mark.parametrize(
    ("tool", "option"), [("scdcc", "layer"), ("desc", "layer"), ("desc", "use_rep")]
)
def test_an_empty_name_is_refused_as_no_name(tool, option):
    """ "" names no layer or obsm key: refused as a wrong kind of name, not looked up."""
    adata = counts_data()
    adata.layers[""] = adata.X.copy()  # even where anndata holds one by that name
    adata.obsm[""] = np.ones((adata.n_obs, 2))
    with pytest.raises(TypeError, match=rf"{option} must name .*, not ''"):
        getattr(sdc.tl, tool)(adata, n_clusters=3, **{option: ""}, **ONE_EPOCH)


# M019, M021
@pytest.mark.parametrize("store", ["raw.X", "obsp['distances']", "varm['loadings']"])
def test_copy_is_refused_for_any_big_endian_sparse_store(store):
    """anndata's copy fails on any sparse matrix of big-endian values, not only the input's:
    copy=True names the store and the line that converts it."""
    adata = counts_data()
    if store == "raw.X":
        adata.raw = adata.copy()
        adata.raw._X = big_endian_csr(adata.raw.X)
    elif store.startswith("obsp"):
        adata.obsp["distances"] = big_endian_csr(
            sparse.random(adata.n_obs, adata.n_obs, 0.1, random_state=0)
        )
    else:
        adata.varm["loadings"] = big_endian_csr(sparse.random(adata.n_vars, 4, 0.5, random_state=0))
    with pytest.raises(ValueError, match=re.escape(f"adata.{store} is a sparse matrix of '>f4'")):
        sdc.tl.scdcc(adata, n_clusters=3, copy=True, **ONE_EPOCH)


# M026
def test_an_obsm_dataframe_with_a_text_column_is_refused_as_not_numeric():
    adata = counts_data()
    sc.pp.normalize_total(adata)
    sc.pp.log1p(adata)
    frame = pd.DataFrame(
        np.random.default_rng(0).normal(size=(adata.n_obs, 3)), index=adata.obs_names
    )
    frame["sample"] = "a"
    adata.obsm["pca"] = frame
    with pytest.raises(TypeError, match=r"adata.obsm\['pca'\] has dtype object; a numeric matrix"):
        sdc.tl.desc(adata, n_clusters=3, use_rep="pca", **ONE_EPOCH)


# M057, M058
def test_explicit_zeros_of_a_sparse_matrix_are_zeros_for_empty_cells_and_genes():
    adata = counts_data()
    adata.layers["counts"] = _with_explicit_zeros(adata.layers["counts"], row=4)
    with pytest.raises(ValueError, match=r"1 cell\(s\) have no counts in adata.layers\['counts'\]"):
        sdc.tl.scdcc(adata, n_clusters=3, **ONE_EPOCH)
    adata = counts_data()
    adata.layers["counts"] = _with_explicit_zeros(adata.layers["counts"], col=7)
    with pytest.warns(UserWarning, match=r"1 gene\(s\) of adata.layers\['counts'\] are all zero"):
        sdc.tl.scdcc(adata, n_clusters=3, **ONE_EPOCH)


# M061
def test_detection_calls_stored_as_bool_are_told_to_be_binary():
    adata = counts_data()
    adata.layers["counts"] = sparse.csr_matrix(adata.layers["counts"] > 0)  # dtype bool
    assert adata.layers["counts"].nnz >= 500
    with pytest.warns(UserWarning, match=r"adata.layers\['counts'\] holds only 0s and 1s"):
        sdc.tl.scdcc(adata, n_clusters=3, **ONE_EPOCH)


# M067
def test_square_roots_of_large_counts_in_float32_are_told_as_such():
    """float32 square roots of counts in the tens of thousands square back to within a few
    thousandths of the count: still read as square roots, and the recovery line gives the counts."""
    adata = counts_data()
    counts = adata.layers["counts"].toarray()
    counts[:, 0] = 40_000 + np.arange(adata.n_obs)  # deep genes
    adata.layers["counts"] = sparse.csr_matrix(np.sqrt(counts).astype(np.float32))
    with pytest.raises(ValueError, match=r"its values are the square root of counts") as refused:
        sdc.tl.scdcc(adata, n_clusters=3, **ONE_EPOCH)
    line = re.search(r"`(adata\.layers\['counts'\]\.data = .*?)`", str(refused.value)).group(1)
    exec(line, {"adata": adata, "np": np})
    np.testing.assert_array_equal(adata.layers["counts"].toarray(), counts)


# M075
def test_cells_with_exactly_ten_values_are_judged_for_multiplied_counts():
    """A cell is judged on 10 or more positive values (MIN_JUDGED_VALUES): counts x 3 in cells
    of exactly 10 values are told from raw ones."""
    rng = np.random.default_rng(0)
    adata = counts_data()
    counts = np.zeros(adata.shape)
    for row in counts:
        row[rng.choice(adata.n_vars, 10, replace=False)] = 3 * rng.integers(1, 4, 10)
    adata.layers["counts"] = sparse.csr_matrix(counts)
    assert (np.count_nonzero(counts, axis=1) == 10).all()
    with pytest.warns(
        UserWarning, match=r"do not step like raw counts: in 100% of the cells with 10"
    ):
        sdc.tl.scdcc(adata, n_clusters=3, **ONE_EPOCH)


# M121
def test_values_5e_3_from_whole_numbers_are_estimated_counts_not_float_noise():
    """Float noise lies within 1e-3 of whole numbers; counts 0.005 off are estimated ones."""
    adata = counts_data()
    counts = adata.layers["counts"].toarray()
    counts[counts > 0] += 0.005
    adata.layers["counts"] = sparse.csr_matrix(counts)
    with pytest.raises(ValueError, match=r"counts estimated by an EM quantifier") as refused:
        sdc.tl.scdcc(adata, n_clusters=3, **ONE_EPOCH)
    assert "float conversion" not in str(refused.value)


def test_a_mudata_is_known_by_its_module_or_its_class_name_alone():
    """is_mudata: mudata's (or muon's) module, or a class named MuData, each enough alone."""
    from scdeepclust._messages import is_mudata

    class Renamed:  # a subclass of mudata's MuData under another name, say
        __module__ = "muon._core.mudata"

    class MuData:  # a class named so, outside mudata's module
        __module__ = "my_project.data"

    assert is_mudata(Renamed()) and is_mudata(MuData())
    for value in (Renamed(), MuData()):
        with pytest.raises(TypeError, match=r"mdata\.mod\['rna'\]"):
            sdc.tl.desc(value)


def test_all_finite_given_the_anndata_names_any_matrix_not_the_counts():
    """all_finite checks any matrix (X, a layer): it is not told to take the counts."""
    with pytest.raises(
        TypeError, match=r"^all_finite takes a matrix, not the AnnData: pass adata\.X"
    ):
        sdc.pp.all_finite(sdc.datasets.simulate(20, 10, 2, random_state=0))


def test_a_backed_view_of_a_layer_in_another_byte_order_is_refused_in_words(tmp_path):
    """A layer put in memory beside a backed X, in another byte order: a view of the AnnData
    cannot slice it either, and got scipy's bare "does not support dtype >f4"."""
    import anndata as ad
    from scipy import sparse

    adata = sdc.datasets.simulate(120, 60, 2, random_state=0)
    adata.write_h5ad(tmp_path / "data.h5ad")
    backed = ad.read_h5ad(tmp_path / "data.h5ad", backed="r")
    m = sparse.csr_matrix(adata.layers["counts"])
    backed.layers["counts"] = sparse.csr_matrix(
        (m.data.astype(">f4"), m.indices, m.indptr), shape=m.shape
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        with pytest.raises(
            ValueError, match=r"adata\.layers\['counts'\] is a sparse matrix of '>f4'"
        ):
            sdc.pp.get_counts(backed[:100])


def test_counts_less_an_ambient_share_are_called_estimated_counts():
    """Counts lowered by 0.07 each (a SoupX-like correction) lie 0.07 from whole numbers: the
    refusal names estimated or corrected counts, and rounding, not normalised data."""
    x = counts_data(90, 30).X.astype(np.float32)
    x.data = x.data - np.float32(0.07)
    summary = scan_matrix(x, steps=True)
    with pytest.raises(ValueError, match="SoupX") as refused:
        check_counts(summary, "X")
    assert "np.round" in str(refused.value) and HOW_TO_PASS_COUNTS not in str(refused.value)


def test_near_whole_values_beside_negative_ones_are_not_sent_to_rounding():
    """Rounding does not make counts of a matrix with negative values: where the near-whole
    values come first (an earlier block) and negatives later, the refusal still says where to
    find counts."""
    x = np.zeros((40, 10), dtype=np.float32)
    x[:20] = np.random.default_rng(0).poisson(3, (20, 10)) + np.float32(0.0001)
    x[20:] = -1.5
    summary = scan_matrix(x, steps=True, chunk_size=20)
    assert summary.n_negative and summary.median_whole_distance is not None
    with pytest.raises(ValueError) as refused:
        check_counts(summary, "X")
    assert HOW_TO_PASS_COUNTS in str(refused.value)


def test_a_transform_of_counts_whose_values_are_mostly_whole_still_says_where_counts_go():
    """log2(1 + counts) of shallow counts: 1s and 3s become whole numbers, so rounding would
    look like it helps; the refusal recovers the counts and says how to pass them."""
    rng = np.random.default_rng(0)
    counts = rng.choice([0, 0, 0, 1, 1, 1, 3, 3, 2], size=(100, 30)).astype(np.float32)
    summary = scan_matrix(sparse.csr_matrix(np.log2(1 + counts)), steps=True)
    assert summary.counts_transform is not None and summary.median_whole_distance < 0.1
    with pytest.raises(ValueError, match="np.round") as refused:
        check_counts(summary, "X")
    assert HOW_TO_PASS_COUNTS in str(refused.value)


def test_values_on_a_far_smaller_scale_are_not_taken_for_transformed_counts():
    """Log-normalised values divided by 300 lie within the tolerance of 0 once squared: DESC
    said they were the square root of counts, and its recovery line made every value 0."""
    adata = counts_data(200, 40)
    dense = adata.X.toarray()
    x = np.log1p(dense / dense.sum(1, keepdims=True) * 1e4) / 300
    summary = scan_matrix(x.astype(np.float32))
    assert summary.counts_transform is None
    square_roots = np.sqrt(dense[dense > 0][:50])
    assert transform_of_counts(square_roots)[0] == "the square root of counts"
