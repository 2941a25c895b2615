"""The preparation the command line applies before a tool.

This is the one function in `pp` that modifies an AnnData (in place, like scanpy's `recipe_*`).
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy import sparse

from .._messages import caller_stacklevel, not_anndata
from .._process import ignoring_warnings
from .._threads import torch_threads_kept
from ..data import RowSource, is_dask_array
from ..data._rows import native_byte_order
from ._batches import BatchCovariate, BatchWarning, batch_covariate
from ._counts import is_count_matrix
from ._input import (
    COUNT_TRANSFORMS,
    HIGHLY_VARIABLE_IF_PRESENT,
    MULTIPLIED_COUNTS_SHARE,
    GeneMask,
    MaskRefused,
    _check_dtype,
    _row_steps,
    check_bools,
    check_finite,
    check_names,
    counts_layer_advice,
    counts_of_transform,
    counts_with_float_noise,
    gene_mask,
    layer_names,
    layers_holding_counts,
    refuse_sparse_in_other_byte_order,
    scan_matrix,
    transform_of_counts,
)

METHODS = ("desc", "scdcc")
# Log-normalised values (log1p of counts per median total or per 10,000) stay well below this.
LOG_MAX = 50.0

# the step said where X is left log-normalised for DESC, which the command line says its own way
LEFT_UNSCALED = "X: left log-normalised, not scaled"
DESC_SCALES = "DESC z-scores each gene as it reads the cells"


def recipe(
    adata: AnnData,
    method: str,
    *,
    layer: str | None = None,
    n_top_genes: int | None = 2000,
    hvg_above: int = 3000,
    max_value: float | None = None,
    batch_key: str | None = None,
    target_sum: float | None = None,
    scale: bool = True,
) -> list[str]:
    """Prepare `adata` in place for :func:`scdeepclust.tl.desc` or :func:`scdeepclust.tl.scdcc`.

    Each step is decided from what the data holds:

    0. ``X`` and the counts are stored as scanpy's steps compute right on them (the same
       values): a scipy sparse array becomes a sparse matrix, repeated entries of a sparse
       matrix are summed, bool and float16 become float32, a float wider than 64 bits
       (np.longdouble) float64 and another byte order this machine's.
    1. Raw counts: ``layers[layer]`` when `layer` is given, else ``layers['counts']``, else
       ``X`` when it holds non-negative integers (then copied to ``layers['counts']``, where
       scDCC reads them). Where ``X`` holds counts that were transformed but not normalised
       (``sc.pp.log1p`` without ``sc.pp.normalize_total``, log2(1 + counts) or their square
       root), its counts are recovered and normalised in step 3 (and, with no counts found
       elsewhere, kept as the raw counts). scDCC fails without counts; DESC can do without.
    2. With counts: cells without any count and genes detected in no cell are removed.
    3. ``X``: counts are normalised (each cell to the median total, or to `target_sum`) and
       log1p-transformed; non-integer values that are each cell's counts times one factor,
       or have the same total in every cell with any count (what ``sc.pp.normalize_total``
       leaves, also after genes were removed), or exceed 50, with no record of a log1p in
       ``uns['log1p']``, are taken as normalised and only log1p-transformed; anything else
       is taken as log-normalised already, or as scaled when it has negative values (then
       used as is).
    4. With more than `hvg_above` genes: the log-normalised ``X`` of all genes is kept in
       ``.raw`` (when there is none) and only the `n_top_genes` most variable genes are kept
       (scanpy's 'seurat' flavour, then marked True in ``var['highly_variable']``, as
       ``subset=True`` leaves them), or the genes ``var['highly_variable']`` marks when that
       boolean column exists (``sc.pp.highly_variable_genes`` without ``subset=True``): the
       tools read those by default too (`mask_var`). With counts and `n_top_genes`, cells
       without a count in the genes the tools will read are then removed, as cells without
       any count are (scDCC refuses them; DESC would place them by nothing).
    5. DESC only, unless `scale` is `False`: ``X`` is scaled to zero mean and unit variance
       per gene, clipped at `max_value` when given (this makes ``X`` dense); the
       log-normalised values are kept in ``.raw`` first (when there is none), where
       ``sc.tl.rank_genes_groups`` reads them.

    With `batch_key`, a single batch or batches of fewer than 10 cells (of the cells kept) are
    warned about (:class:`scdeepclust.pp.BatchWarning`).

    Should a step fail or be interrupted, `adata` is left as it was (a dense ``X`` is scaled in
    a copy for that).

    Parameters
    ----------
    adata
        Cells x genes, as read.
    method
        "desc" or "scdcc".
    layer
        Layer holding the raw counts.
    n_top_genes, hvg_above
        Gene selection; `n_top_genes=None` keeps every gene.
    max_value
        Clip of the scaling (DESC); `None` (scanpy's default) clips nothing. Clipping at 10
        (the earlier default) cut the weight of genes seen in few cells, the markers of small
        types (see the changelog). Refused for ``method='scdcc'``, which z-scores (and clips,
        with ``tl.scdcc(max_value=...)``) its input itself.
    batch_key
        An `obs` column of batches: the variable genes are chosen within each batch and
        ranked by in how many batches they are variable (scanpy's `batch_key`), so that genes
        which only tell the batches apart are not preferred.
    target_sum
        Total count of each cell after normalisation; `None` (scanpy's default) takes the
        median total of the cells, which is also what scDCC divides its counts by. A fixed
        10,000 (the earlier default) spreads shallow cells' zeros and ones far apart, and
        DESC then groups cells by depth (see the changelog).
    scale
        DESC only: `False` leaves ``X`` log-normalised (a sparse ``X`` stays sparse) for
        ``tl.desc(adata, scale=True)``, which z-scores each gene as it reads the cells: the
        same input without a dense copy (8 GB for a million cells x 2,000 genes, twice that
        while scanpy scales it), and an ``X`` that scanpy's other tools (marker genes) read
        as they expect. `scdeepclust run` prepares DESC's input this way.

    Returns
    -------
    list of str
        One line per step taken, saying what was done to `adata`.
    """
    if not isinstance(adata, AnnData):
        raise not_anndata(adata)
    if method not in METHODS:
        raise ValueError(f"method must be 'desc' or 'scdcc', not {method!r}.")
    if adata.isbacked:
        raise ValueError(
            "pp.recipe changes X in place, which a backed AnnData keeps in its file; load it "
            "first: `adata = adata.to_memory()`."
        )
    if n_top_genes is not None and not (
        isinstance(n_top_genes, numbers.Integral)
        and not isinstance(n_top_genes, bool | np.bool_)  # True kept 1 gene
        and n_top_genes >= 1
    ):
        raise ValueError(f"n_top_genes must be an integer >= 1 (or None), got {n_top_genes!r}.")
    if not (
        isinstance(hvg_above, numbers.Integral)
        and not isinstance(hvg_above, bool | np.bool_)
        and hvg_above >= 0
    ):  # NaN skipped the choice of genes without a word
        raise ValueError(f"hvg_above must be an integer >= 0, got {hvg_above!r}.")
    if target_sum is not None and not (
        isinstance(target_sum, numbers.Real)
        and not isinstance(target_sum, bool)
        and np.isfinite(target_sum)
        and target_sum > 0
    ):
        raise ValueError(
            f"target_sum must be a positive number (or None: the median total), got {target_sum!r}."
        )
    if max_value is not None and not (
        isinstance(max_value, numbers.Real)
        and not isinstance(max_value, bool)
        and np.isfinite(max_value)
        and max_value > 0
    ):
        raise ValueError(f"max_value must be a number > 0 (or None: no clip), got {max_value!r}.")
    check_bools(scale=scale)
    check_names(layer=layer, batch_key=batch_key)
    if method == "scdcc" and max_value is not None:
        raise ValueError(
            f"max_value={max_value!r} clips DESC's scaled input, which pp.recipe prepares; "
            "scDCC z-scores its input itself: clip there with tl.scdcc(max_value=...), and "
            "leave max_value out of pp.recipe for method='scdcc'."
        )
    if method == "desc" and not scale and max_value is not None:
        raise ValueError(
            f"max_value={max_value!r} clips the scaling, which scale=False leaves to "
            "tl.desc(scale=True), and that does not clip; leave max_value out, or scale here."
        )
    with ignoring_warnings(BatchWarning):  # said below, of the cells kept
        batches = batch_covariate(adata, batch_key, for_recipe=True)  # before any change
    if n_top_genes is not None:  # checked before anything is changed
        _marked_genes(adata)
    if adata.X is None:
        layers = layer_names(adata)
        advice = (
            f" The data are in layers {layers}: put the one to prepare in X first, e.g. "
            f"`adata.X = adata.layers[{layers[0]!r}].copy()`."
            if layers
            else ""
        )
        raise ValueError(f"adata.X is empty (None); pp.recipe prepares X.{advice}")
    _check_dtype(adata.X.dtype, "X")
    _refuse_read_lazily(adata.X, "X")
    _refuse_unusable_values(adata.X, "X", view=adata.is_view)
    counts_candidate = layer or "counts"
    if counts_candidate in adata.layers:
        where = f"layers[{counts_candidate!r}]"
        _refuse_read_lazily(adata.layers[counts_candidate], where)
        _refuse_unusable_values(adata.layers[counts_candidate], where, view=adata.is_view)
    counts_key, counts_from_x = _counts_location(adata, layer)
    # X's own counts, once recovered in `_prepare`; beside a counts layer they may differ from
    # its counts (corrected for ambient RNA, say), and the layer is left as it is
    recovered = None if counts_from_x else _recovered_counts(adata.X)
    if recovered is not None and counts_key is None and layer is None:
        if "counts" not in adata.layers:  # the only counts there are: kept, as X's are
            counts_key, counts_from_x = "counts", True
    # X and the counts are converted below; any other such matrix (also a layers['counts']
    # that holds no counts, which is left as it is) would fail the subsetting
    refuse_sparse_in_other_byte_order(
        adata,
        "subset (pp.recipe removes empty cells and genes and keeps the variable genes)",
        skip=("X",) if counts_key is None else ("X", f"layers[{counts_key!r}]"),
    )
    if counts_key is None and method == "scdcc":
        count_layers = layers_holding_counts(adata, None, skip=counts_candidate)
        name_it = (
            counts_layer_advice(count_layers, owner="")
            if count_layers
            else "name the layer that holds them (`layer`)"
        )
        if "counts" not in adata.layers:
            found = "X does not hold counts (non-negative integers), and there is no "
            found += f"layers['counts']; {name_it}"
        elif is_count_matrix(adata.X):
            found = (
                "layers['counts'] does not hold counts (non-negative integers), while X does; "
                "rename that layer (`adata.layers['lognorm'] = adata.layers.pop('counts')`) so "
                f"that X's counts are used, or {name_it}"
            )
        else:
            found = (
                f"neither X nor layers['counts'] holds counts (non-negative integers); {name_it}"
            )
        if adata.raw is not None and is_count_matrix(adata.raw.X):
            lacking = (~adata.var_names.isin(adata.raw.var_names)).sum()
            found += (
                "; adata.raw holds counts: `adata.layers['counts'] = "
                "adata.raw[:, adata.var_names].X` puts them where scdcc reads them"
                if not lacking
                else f"; adata.raw holds counts, but lacks {lacking} of X's {adata.n_vars} genes"
            )
        raise ValueError(f"scdcc models raw counts, but {found}.")
    if counts_key is None and layer is None and "counts" in adata.layers:
        if is_count_matrix(adata.X):  # scDCC was refused above: DESC goes on without them
            warnings.warn(
                "layers['counts'] does not hold counts (non-negative integers), while X does: "
                "pp.recipe normalises X's counts without keeping them, and does not remove the "
                "cells and genes without counts. To keep them, rename that layer first: "
                "`adata.layers['lognorm'] = adata.layers.pop('counts')`.",
                UserWarning,
                stacklevel=caller_stacklevel(),
            )
    if adata.is_view:  # made actual (a copy) by its first change anyway; restored as such
        adata._init_as_actual(adata.copy())
    before = _sharing_matrices(adata)
    try:
        with torch_threads_kept():
            return _prepare(
                adata,
                method,
                n_top_genes=n_top_genes,
                hvg_above=hvg_above,
                max_value=max_value,
                batch_key=batch_key,
                batches=batches,
                target_sum=target_sum,
                scale=scale,
                counts_key=counts_key,
                counts_from_x=counts_from_x,
                recovered=recovered,
                original_x=before.X,
            )
    except BaseException:  # a step failed or was interrupted: adata as it was
        adata._init_as_actual(before)
        raise


def _sharing_matrices(adata: AnnData) -> AnnData:
    """Return an AnnData holding `adata`'s matrices (not copied) in its own tables and mappings.

    The recipe's steps replace matrices rather than change them (the one exception, `scale` on
    the caller's dense X, works on a copy), so this is all it takes to undo them.
    """
    # anndata's warnings (about `adata`'s names, or an old layout of uns['neighbors']) are not
    # the user's: this object is internal
    with ignoring_warnings(UserWarning), ignoring_warnings(FutureWarning):
        return AnnData(
            X=adata.X,
            obs=adata.obs.copy(),
            var=adata.var.copy(),
            uns=_nested_dicts_copied(adata.uns),  # anndata's constructor edits nested ones
            obsm=dict(adata.obsm),
            varm=dict(adata.varm),
            obsp=dict(adata.obsp),
            varp=dict(adata.varp),
            layers={name: adata.layers[name] for name in layer_names(adata)},
            raw=adata.raw,
        )


def _nested_dicts_copied(mapping) -> dict:
    """Return `mapping` with every nested mapping copied (the values themselves shared)."""
    return {
        key: _nested_dicts_copied(value) if isinstance(value, Mapping) else value
        for key, value in mapping.items()
    }


def _prepare(
    adata: AnnData,
    method: str,
    *,
    n_top_genes: int | None,
    hvg_above: int,
    max_value: float | None,
    batch_key: str | None,
    batches: BatchCovariate | None,
    target_sum: float | None,
    scale: bool,
    counts_key: str | None,
    counts_from_x: bool,
    recovered: RecoveredCounts | None,
    original_x,
) -> list[str]:
    """Take the steps of `recipe` on `adata`, whose arguments are checked; return them."""
    import scanpy as sc

    steps: list[str] = []
    if recovered is not None:
        adata.X = recovered.counts
        adata.uns.pop("log1p", None)  # scanpy's record of the transform undone
        steps.append(
            f"X holds {recovered.transform} (e.g. {recovered.example:.4g}): its counts "
            f"recovered ({recovered.inverse.format(x='X')}), to be normalised"
        )
    _keep_counts(adata, counts_key, counts_from_x, steps)
    adata.X = _computable(adata.X, "X", steps)
    if counts_key is not None:
        where = f"layers[{counts_key!r}]"
        adata.layers[counts_key] = _computable(adata.layers[counts_key], where, steps)
        _drop_empty(adata, counts_key, steps)
    if batches is not None:  # of the cells kept so far; warned about once the cells are final
        with ignoring_warnings(BatchWarning):
            batches = batch_covariate(adata, batch_key, for_recipe=True)

    counts = None if counts_key is None or counts_from_x else adata.layers[counts_key]
    state = _x_state(adata.X, logged="log1p" in adata.uns, counts=counts)
    if state == "counts":
        adata.X = _own_x(adata, original_x)
        sc.pp.normalize_total(adata, target_sum=target_sum)
        sc.pp.log1p(adata)
        to = "the median total" if target_sum is None else f"{target_sum:g} counts"
        steps.append(f"X: normalize_total (each cell to {to}) + log1p")
        state = "log"
    elif state == "normalised":
        adata.X = _own_x(adata, original_x)
        sc.pp.log1p(adata)
        steps.append(
            "X looks normalised but not log-transformed (each cell's counts times one factor, "
            "the same total in every cell, or values above 50): log1p"
        )
        state = "log"
    elif state == "log":
        steps.append("X looks log-normalised already: no normalisation")
    else:
        steps.append("X has negative values, so it is taken as scaled already: used as is")

    if n_top_genes is not None and adata.n_vars > max(hvg_above, n_top_genes):
        if state == "scaled" and counts_key is None:
            steps.append(f"kept all {adata.n_vars} genes (X is scaled and there are no counts)")
        else:
            n_before = adata.n_vars
            if adata.raw is None and state == "log":
                adata.raw = adata
                steps.append("log-normalised values of all genes kept in .raw")
            if "highly_variable" in adata.var.columns:  # the user's choice, read as mask_var
                marked = _marked_genes(adata, of="the genes detected in some cell")
                if marked.columns is not None:
                    adata._inplace_subset_var(marked.columns)
                steps.append(
                    f"kept the {adata.n_vars} genes of {n_before} marked in var['highly_variable']"
                )
            else:
                selected = _highly_variable(adata, counts_key, n_top_genes, batches, target_sum)
                adata._inplace_subset_var(selected)
                # as scanpy's subset=True leaves it: the tools then know the genes were chosen
                adata.var["highly_variable"] = True
                within = f" (chosen within the batches of obs[{batch_key!r}])" if batch_key else ""
                steps.append(f"kept the {adata.n_vars} most variable genes of {n_before}{within}")

    if counts_key is not None and n_top_genes is not None:  # else every gene is read
        _drop_cells_empty_in_genes_read(adata, counts_key, steps)
    if batches is not None:  # of the cells kept: warns about small batches (once)
        batch_covariate(adata, batch_key, for_recipe=True)

    if method == "desc" and state != "scaled" and not scale:
        steps.append(f"{LEFT_UNSCALED} (scale=False): {DESC_SCALES} (tl.desc(adata, scale=True))")
    elif method == "desc" and state != "scaled":
        # marker genes (sc.tl.rank_genes_groups) read .raw's log-normalised values: scaled ones
        # give no fold changes. Kept above with more genes than `hvg_above`; also here.
        keep_raw = adata.raw is None and state == "log"
        if keep_raw:
            adata.raw = adata  # shares X, which is replaced before scanpy scales it in place
            steps.append("log-normalised values kept in .raw (marker genes read them there)")
        elif state == "log" and is_count_matrix(adata.raw.X):
            counts_too = (
                ""
                if counts_key is not None or not adata.var_names.isin(adata.raw.var_names).all()
                else ("`adata.layers['counts'] = adata.raw[:, adata.var_names].X.copy()`, then ")
            )
            warnings.warn(
                "adata.raw holds counts, which sc.tl.rank_genes_groups reads by default: once "
                "X is scaled no log-normalised values are left for marker genes. To keep them "
                f"in .raw, move the counts out of it before pp.recipe ({counts_too}"
                "`del adata.raw`), or pass scale=False (X stays log-normalised; then "
                "tl.desc(adata, scale=True), and rank_genes_groups(..., use_raw=False)).",
                UserWarning,
                stacklevel=caller_stacklevel(),
            )
        if sparse.issparse(adata.X):
            adata.X = adata.X.toarray()  # scaling centres the values: the result is dense
        elif adata.X is original_x or keep_raw:
            # scanpy scales in place: the caller's X (restored should a step fail) and the
            # .raw just kept must not be scaled with it
            adata.X = adata.X.copy()
        with ignoring_warnings(RuntimeWarning, message="invalid value encountered in sqrt"):
            sc.pp.scale(adata, max_value=max_value)  # the genes it concerns are mended below
        clip = "not clipped" if max_value is None else f"clipped at {max_value:g}"
        steps.append(f"X: scale (zero mean, unit variance per gene, {clip})")
        # scanpy's float32 variance of a gene of one value (or nearly) can come out below 0, and
        # its square root NaN over the whole gene (X was checked finite): 0 once centred
        constant = ~np.isfinite(np.asarray(adata.X.sum(axis=0), dtype=np.float64)).ravel()
        if constant.any():
            adata.X[:, constant] = 0.0
            steps.append(
                f"X: {int(constant.sum())} gene(s) of one value in (nearly) every cell, too "
                "little spread for float32, set to 0 (scanpy's scaling left them NaN)"
            )
    return steps


def _refuse_read_lazily(matrix, where: str) -> None:
    """Refuse a matrix read from a file (HDF5, anndata's sparse dataset) or a sparse dask array.

    scanpy's steps cannot change those in place (dense dask arrays they can). The tools
    themselves read such a matrix; only the preparation needs it in memory (it failed deep
    inside with "'_CSRDataset' object has no attribute 'sum'", or "Expected a 2-d matrix").
    """
    if isinstance(matrix, np.ndarray) or sparse.issparse(matrix):  # in memory
        return
    if is_dask_array(matrix):
        if not sparse.issparse(matrix._meta):  # scanpy's steps take dense dask arrays
            return
        load = f"`adata.{where} = adata.{where}.compute()`"
    else:
        source = RowSource(matrix)
        if not source.is_backed:
            return
        to_memory = ".to_memory()" if source.is_sparse else "[:]"
        load = f"`adata.{where} = adata.{where}{to_memory}`"
    raise ValueError(
        f"adata.{where} is read from a file or by dask ({type(matrix).__name__}), which "
        f"pp.recipe cannot prepare in place; load it into memory first: {load}. The tools "
        "read such matrices themselves, prepared already."
    )


def _computable(matrix, where: str, steps: list[str]):
    """Return `matrix` as :func:`scanpy_computable` stores it; what changed goes to `steps`."""
    matrix, done = scanpy_computable(matrix)
    if done:
        steps.append(f"{where} stored as " + ", ".join(done) + ": the same values")
    return matrix


def scanpy_computable(matrix) -> tuple[object, list[str]]:
    """Return `matrix` in a form scanpy's steps compute right on (a copy where it changes).

    A scipy sparse matrix rather than array (scanpy 1.11's `normalize_total` fails on arrays),
    each entry stored once (its `log1p` takes repeated entries one by one), native byte order
    (numba's `scale` fails on others), float32 rather than bool (`normalize_total` divides in
    place) or float16 (log1p's precision) and float64 rather than a wider float (numba has no
    np.longdouble). The values stay the same; the second item says what changed.
    """
    done = []
    if not matrix.dtype.isnative:  # first: scipy cannot even copy a sparse matrix of these
        matrix = native_byte_order(matrix)
        done.append("in this machine's byte order")
    if sparse.issparse(matrix):
        if not isinstance(matrix, sparse.spmatrix):
            matrix = sparse.csr_matrix(matrix)
            done.append("a scipy sparse matrix (not array)")
        if not matrix.has_canonical_format:
            entries = matrix.nnz
            matrix = matrix.copy()
            matrix.sum_duplicates()
            # sorting alone (the usual case) is not worth the word "repeated"
            done.append(
                "each entry stored once (repeated entries summed)"
                if matrix.nnz < entries
                else "column indices sorted"
            )
    dtype = matrix.dtype
    if dtype.kind == "b":
        matrix = matrix.astype(np.float32)
        done.append("float32 (was bool)")
    elif dtype == np.float16:
        matrix = matrix.astype(np.float32)
        done.append("float32 (was float16)")
    elif dtype.kind == "f" and dtype.itemsize > 8:
        matrix = matrix.astype(np.float64)
        done.append(f"float64 (was {dtype.name})")
    return matrix, done


def _counts_location(adata: AnnData, layer: str | None) -> tuple[str | None, bool]:
    """Return where the raw counts are, changing nothing.

    The layer that holds them, or will (``'counts'``, when X holds them: the second item), or
    `None`; a given `layer` that is missing or holds no counts is refused.
    """
    if layer is not None:
        if layer not in adata.layers:
            raise KeyError(f"Layer {layer!r} not found; layers: {layer_names(adata)}.")
        if not is_count_matrix(adata.layers[layer]):
            raise ValueError(f"layers[{layer!r}] does not hold raw counts (non-negative integers).")
        return layer, False
    if "counts" in adata.layers and is_count_matrix(adata.layers["counts"]):
        return "counts", False
    if "counts" not in adata.layers and is_count_matrix(adata.X):
        return "counts", True
    return None, False


@dataclass
class RecoveredCounts:
    transform: str  # a `COUNT_TRANSFORMS` name
    counts: np.ndarray | sparse.csr_matrix | sparse.csc_matrix  # X's shape and layout
    example: float  # a value of X

    @property
    def inverse(self) -> str:
        return COUNT_TRANSFORMS[self.transform][0]


# Values converted at once while recovering counts (float64 temporaries of 80 MB each).
RECOVERY_CHUNK = 10_000_000


def _recovered_counts(X) -> RecoveredCounts | None:
    """Return the counts behind X where every value of X is a transform of counts.

    log1p without `normalize_total` first is a common slip (`COUNT_TRANSFORMS`); its counts
    come back exactly, in float32 (float64 for a float64 X), without changing X.
    """
    if not (sparse.issparse(X) or isinstance(X, np.ndarray)) or X.dtype.kind != "f":
        return None
    values = X.data if sparse.issparse(X) else np.asarray(X).reshape(-1)
    found = transform_of_counts(values)  # the first values decide which, if any
    if found is None:
        return None
    transform, example = found
    out = np.empty(values.shape, dtype=np.float64 if X.dtype == np.float64 else np.float32)
    for start in range(0, len(values), RECOVERY_CHUNK):
        chunk = counts_of_transform(values[start : start + RECOVERY_CHUNK], transform)
        if chunk is None:  # a value further on is no transformed count
            return None
        out[start : start + RECOVERY_CHUNK] = chunk
    if sparse.issparse(X):
        counts = X.copy()
        counts.data = out
    else:
        counts = out.reshape(X.shape)
    # normalised values rounded, then log1p: whole numbers too, but their smallest non-zero
    # value in most cells stands for a count of 1 (`_row_steps`), as no raw counts do
    judged = counts[: min(counts.shape[0], STEP_ROWS)]
    _, rows_judged, coarse = _row_steps(sparse.csr_matrix(judged) if sparse.issparse(X) else judged)
    if rows_judged.any() and coarse[rows_judged].mean() > MULTIPLIED_COUNTS_SHARE:
        return None
    return RecoveredCounts(transform, counts, example)


# Rows whose steps tell recovered counts from normalised values that were rounded.
STEP_ROWS = 2000


def _own_x(adata: AnnData, original_x):
    """X, copied where scanpy's in-place steps would change a matrix that is not the recipe's.

    The caller's X is restored should a step fail, and a layer (the counts) may hold X's
    matrix; one copy of X made earlier (`_keep_counts`, `_drop_empty`) is the recipe's own.
    """
    shared = adata.X is original_x or any(adata.X is m for m in adata.layers.values())
    return adata.X.copy() if shared else adata.X


def _keep_counts(adata: AnnData, counts_key: str | None, from_x: bool, steps: list[str]) -> None:
    """Say where the raw counts are, copying X's to ``layers[counts_key]`` first."""
    if counts_key is None:
        return
    if not from_x:
        steps.append(f"raw counts from layers[{counts_key!r}]")
        return
    counts = native_byte_order(adata.X)  # a copy where it changes (scipy's copy refuses)
    if counts is adata.X:
        # the layer keeps X's own matrix, unchanged; X gets the copy that is normalised in place
        adata.X = counts.copy()
    adata.layers[counts_key] = counts
    steps.append(f"raw counts from X, kept in layers[{counts_key!r}]")


def _drop_empty(adata: AnnData, counts_key: str, steps: list[str]) -> None:
    """Remove cells and genes without counts."""
    counts = adata.layers[counts_key]
    per_cell = np.asarray(counts.sum(axis=1)).ravel()
    keep_cells = per_cell > 0
    if not keep_cells.all():
        steps.append(f"removed {int((~keep_cells).sum())} cells without any count")
        adata._inplace_subset_obs(keep_cells)
        counts = adata.layers[counts_key]
    detected = np.asarray((counts > 0).sum(axis=0)).ravel()
    keep_genes = detected > 0
    if not keep_genes.all():
        steps.append(f"removed {int((~keep_genes).sum())} genes detected in no cell")
        adata._inplace_subset_var(keep_genes)
    if adata.n_obs < 2 or adata.n_vars < 1:
        raise ValueError(f"Only {adata.n_obs} cells x {adata.n_vars} genes have counts.")


def _drop_cells_empty_in_genes_read(adata: AnnData, counts_key: str, steps: list[str]) -> None:
    """Remove cells without counts in the genes the tools will read (scDCC refuses them).

    Cells without any count are gone already, but a cell may have counts only in genes that
    the choice of variable genes, or ``var['highly_variable']``, leaves out.
    """
    try:
        genes = gene_mask(adata, HIGHLY_VARIABLE_IF_PRESENT)
    except MaskRefused:  # kept as it is where recipe keeps every gene; the tools refuse it
        return
    counts = adata.layers[counts_key]
    if genes.columns is not None:
        counts = counts[:, genes.columns]
    keep = np.asarray(counts.sum(axis=1)).ravel() > 0
    if keep.all():
        return
    which = "" if genes.columns is None else " (those var['highly_variable'] marks)"
    steps.append(
        f"removed {int((~keep).sum())} cells without any count in the {counts.shape[1]} genes "
        f"the tools read{which}"
    )
    adata._inplace_subset_obs(keep)
    if adata.n_obs < 2:
        raise ValueError(f"Only {adata.n_obs} cells have counts in the genes the tools read.")


def _refuse_unusable_values(matrix, where: str, *, view: bool) -> None:
    """Refuse NaN, infinite values and values beyond float32, and counts with float noise.

    All before any step, as the tools refuse them. A NaN made X read as log-normalised (every
    comparison with it fails), and the scaling spread it over its gene; beyond float32, scanpy's
    variable-gene choice failed with "Input contains NaN". Counts near whole numbers (within
    1e-3, as a float conversion leaves them) read as log-normalised and were scaled without
    normalisation.
    """
    summary = scan_matrix(matrix, where=where)
    check_finite(summary, where)
    float_noise = counts_with_float_noise(summary, where, view=view)
    if float_noise:
        raise ValueError(
            f"adata.{where} does not hold exact counts, and pp.recipe would take it for "
            f"normalised values: {float_noise}."
        )


def looks_scaled(X) -> bool:
    """Whether X has negative values: scaled (or centred) data, which the recipe uses as is."""
    values = X.data if sparse.issparse(X) else np.asarray(X)
    return values.size > 0 and float(np.min(values)) < 0


def _x_state(X, *, logged: bool, counts=None) -> str:
    """Return what X holds: "counts", "normalised" (not logged), "log" or "scaled".

    Normalised values are told from log-normalised ones by scanpy's record of a log1p
    (`logged`), else by each cell's values being its `counts` times one factor
    (`_proportional_to_counts`), by equal totals among the cells with any value (what
    `normalize_total` leaves; it leaves an empty cell empty) or by values above `LOG_MAX`.
    Without counts, a gene subset taken after `normalize_total` (which unevens the totals) on
    shallow data (no value above `LOG_MAX`) reads as log-normalised.
    """
    if is_count_matrix(X):
        return "counts"
    if looks_scaled(X):
        return "scaled"
    values = X.data if sparse.issparse(X) else np.asarray(X)
    if values.size == 0 or logged:
        return "log"
    if counts is not None and _proportional_to_counts(X, counts):
        return "normalised"
    high = float(np.max(values))
    totals = np.asarray(X.sum(axis=1), dtype=np.float64).ravel()
    totals = totals[totals > 0]
    equal_totals = totals.size > 1 and np.ptp(totals) <= 1e-3 * float(totals.max())
    return "normalised" if equal_totals or high > LOG_MAX else "log"


# Cells compared by `_proportional_to_counts`: a random sample above this (a dense X of 30,000
# genes then takes 31 MB in float32 per matrix).
PROPORTION_MAX_CELLS = 256


def _proportional_to_counts(X, counts) -> bool:
    """Whether each cell's values in X are its counts times one factor (of that cell).

    That is what ``sc.pp.normalize_total`` leaves, and gene subsets of it; log1p's values are
    not, except in a cell whose counts are all alike, so only cells with two different counts
    decide (none: False). Checked on a random sample of `PROPORTION_MAX_CELLS` cells.
    """
    n = X.shape[0]
    rows = np.arange(n)
    if n > PROPORTION_MAX_CELLS:
        rows = np.sort(np.random.default_rng(0).choice(n, PROPORTION_MAX_CELLS, replace=False))
    x, c = (_canonical_rows(m, rows) for m in (X, counts))
    if not (np.array_equal(x.indptr, c.indptr) and np.array_equal(x.indices, c.indices)):
        return False  # not zero where the counts are, or the other way round
    filled = np.flatnonzero(np.diff(c.indptr))
    if not filled.size:
        return False
    starts = c.indptr[filled]
    ratio = x.data / c.data
    low, high = np.minimum.reduceat(ratio, starts), np.maximum.reduceat(ratio, starts)
    distinct = np.minimum.reduceat(c.data, starts) < np.maximum.reduceat(c.data, starts)
    if not distinct.any():
        return False
    return bool(np.all(high[distinct] - low[distinct] <= 1e-4 * np.abs(high[distinct])))


def _canonical_rows(matrix, rows: np.ndarray) -> sparse.csr_matrix:
    """Rows `rows` of `matrix` as a float64 CSR matrix without stored zeros, indices sorted."""
    part = matrix[rows]
    part = sparse.csr_matrix(part if sparse.issparse(part) else np.asarray(part), dtype=np.float64)
    part.sum_duplicates()
    part.eliminate_zeros()
    part.sort_indices()
    return part


def _marked_genes(adata: AnnData, of: str = "") -> GeneMask:
    """``var['highly_variable']`` read by the tools' rule (`mask_var`), with advice for recipe."""
    try:
        return gene_mask(adata, HIGHLY_VARIABLE_IF_PRESENT)
    except MaskRefused as error:
        reason = error.reason + (f" among {of}" if of else "")
        mend = f" ({error.fix})" if error.fix else ""
        raise MaskRefused(
            reason,
            ": pp.recipe keeps the genes var['highly_variable'] marks, as the tools read them. "
            f"Fix that column{mend}, or delete it (`del adata.var['highly_variable']`) to let "
            "pp.recipe choose the genes.",
        ) from None


def _highly_variable(
    adata: AnnData,
    counts_key: str | None,
    n_top_genes: int,
    batches: BatchCovariate | None,
    target_sum: float | None,
) -> np.ndarray:
    """Mask of the most variable genes ('seurat' flavour on log-normalised values)."""
    import scanpy as sc

    if counts_key is not None:
        tmp = AnnData(sparse.csr_matrix(adata.layers[counts_key], dtype=np.float32))
        sc.pp.normalize_total(tmp, target_sum=target_sum)
        sc.pp.log1p(tmp)
    else:
        tmp = AnnData(adata.X)
    batch_key = None
    if batches is not None:  # as text categories: scanpy needs categories, not numbers
        batch_key = batches.key
        tmp.obs[batch_key] = pd.Categorical.from_codes(batches.codes, list(batches.categories))
    table = sc.pp.highly_variable_genes(
        tmp, n_top_genes=n_top_genes, flavor="seurat", inplace=False, batch_key=batch_key
    )
    return table["highly_variable"].to_numpy()
