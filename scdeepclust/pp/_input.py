"""Finding a tool's input matrix in an AnnData and checking it, in one streaming pass.

Shared by every tool and by the trained models: whether the AnnData has enough cells, where
the matrix comes from (``X``, a layer, an ``obsm`` entry, the default count layer), whether it
is numeric and finite, whether it holds counts, and which cells and genes are all zero.
Nothing here modifies the AnnData.
"""

from __future__ import annotations

import enum
import functools
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy import sparse

from .._messages import caller_stacklevel, not_anndata
from ..data import RowSource, is_dask_array

HOW_TO_PASS_COUNTS = (
    "scdcc models raw counts: pass a layer that holds them as `layer`, or, where none does, "
    "keep them when you load the data again, before normalising: "
    "`adata.layers['counts'] = adata.X.copy()` right after loading (scdcc reads that layer by "
    "default)."
)


# A line of advice that reads X, copies the AnnData or runs a scanpy step on it, e.g.
# `adata = adata[...].copy()`: anndata refuses those for a backed AnnData (its layers, obs and
# var are in memory, so lines on them work)
_LINE_ON_X = re.compile(r"`[^`]*(?:\badata\.X\b|\.copy\(\)|\bsc\.pp\.)[^`]*`")

BACKED_NOTE = (
    "adata is backed: its X stays in the file, where lines that change or copy X, or run "
    "scanpy steps on it, cannot act. Load it first, `adata = adata.to_memory()`, then run them."
)


def advise_loading_backed(function):
    """Decorate a tool: a refusal whose advice is a line on a backed `adata` says to load it.

    The advice is written for an AnnData in memory (``adata[...].copy()``, ``adata.X.data``,
    ``sc.pp.filter_cells``), which anndata refuses for one read from a file.
    """

    @functools.wraps(function)
    def tool(adata, *args, **kwargs):
        try:
            return function(adata, *args, **kwargs)
        except (ValueError, TypeError) as error:
            text = str(error)
            if (
                isinstance(adata, AnnData)
                and adata.isbacked
                and _LINE_ON_X.search(text)
                and "to_memory()" not in text
            ):
                error.add_note(BACKED_NOTE)
            raise

    return tool


def check_bools(**options) -> None:
    """Refuse switches that are not True or False (bool or numpy bool).

    Only their truth was read: the text "False", 1 or a list each switched an option on.
    """
    for name, value in options.items():
        if not isinstance(value, bool | np.bool_):
            raise ValueError(f"{name} must be True or False, got {value!r}.")


_NAMED_IN = {
    "layer": "a layer in adata.layers",
    "use_rep": "a key of adata.obsm",
    "label_key": "a column of adata.obs",
    "batch_key": "a column of adata.obs",
    "protein_key": "a key of adata.obsm",
    "key_added": "a key to write (non-empty text)",
}


def check_names(**options) -> None:
    """Refuse a key option that is neither None nor one name (non-empty text).

    A list reached anndata or pandas as a key and failed there as "unhashable type: 'list'",
    which names neither the option nor its fix.
    """
    for name, value in options.items():
        if value is not None and not (isinstance(value, str) and value):
            several = isinstance(value, list | tuple | np.ndarray | pd.Index)
            hint = " (one name: the tools read one at a time)" if several else ""
            raise TypeError(f"{name} must name {_NAMED_IN[name]}{hint}, not {value!r}.")


def check_adata(
    adata,
    *,
    copy: bool = False,
    min_cells: int = 2,
    need_genes: bool = True,
    writes: bool = True,
    reads: str | None = None,
) -> None:
    """Check that `adata` is an AnnData with enough cells (and genes).

    Parameters
    ----------
    adata
        What the caller passed as its AnnData.
    copy
        Whether the caller will write to a copy: refused for a backed AnnData, and for one
        holding a sparse matrix in another byte order (anndata's copy fails on it).
    min_cells
        The fewest cells the caller can work with.
    need_genes
        Whether an AnnData without variables is refused (not when the input is in ``obsm``).
    writes
        Whether the caller writes results into `adata`; a backed one is then told that they
        stay in memory. Readers such as ``model.predict`` pass `False`.
    reads
        What the caller reads in ``X``, for that message (e.g. "the raw counts"): a backed
        AnnData keeps ``X`` alone in its file (its layers and ``obsm`` are in memory). `""`
        when the caller reads no ``X``; `None` when that is not known yet.
    """
    if not isinstance(adata, AnnData):
        raise not_anndata(adata, writes_obs=writes)
    if adata.n_obs == 0 or (need_genes and adata.n_vars == 0):
        raise ValueError(f"adata is empty (shape {adata.shape}): there is nothing to cluster.")
    if adata.n_obs < min_cells:
        raise ValueError(f"adata has {adata.n_obs} cell(s); at least {min_cells} are needed.")
    if adata.isbacked and writes:
        if adata.is_view:
            raise ValueError(
                "adata is a view of a backed AnnData, which cannot take results (anndata makes "
                "a view actual in memory only when the data are in memory). Load the cells "
                "first: `adata = adata.to_memory()`."
            )
        if copy:
            raise ValueError(
                "copy=True cannot copy a backed AnnData (anndata needs a new file for that). "
                "Pass copy=False: the results are added to the object in memory, and the file "
                "is only read. Or load it first with `adata = adata.to_memory()`."
            )
        if reads is None:
            read = "X is read from the file where it is the input, and "
        else:
            read = f"X ({reads}) is read from the file, and " if reads else ""
        mode = adata.file._filemode
        into_file = (
            " (or into this file with `adata.write()`, which mode 'r+' allows)"
            if mode == "r+"
            else ""
        )
        # a modality of a backed MuData holds no mode of its own
        opened = f" (mode {mode!r})" if mode is not None else ""
        warnings.warn(
            f"adata is backed by {adata.filename}{opened}: {read}the results are added "
            "to the object in memory only, not to the file. Save them with "
            f"`adata.write_h5ad(new_path)`{into_file}.",
            UserWarning,
            stacklevel=caller_stacklevel(),
        )
    if adata.is_view and not adata.isbacked and writes:
        refuse_sparse_in_other_byte_order(
            adata,
            "make actual (a view is, when results are written to it)",
            fix="In the AnnData the view was taken from, ",
        )
    elif copy and not adata.isbacked:
        refuse_sparse_in_other_byte_order(adata, "copy (copy=True)", fix="Pass copy=False, or ")


def refuse_sparse_in_other_byte_order(
    adata: AnnData,
    action: str,
    *,
    fix: str = "",
    skip: tuple[str, ...] = (),
    only: str | None = None,
) -> None:
    """Refuse an AnnData holding a sparse matrix of values in another byte order.

    The tools read such a matrix ('>f4' read from a file, say), but anndata cannot copy it, make
    a view of it actual, or subset it: each fails with scipy's bare "does not support dtype
    >f4" (after training, where results are written). `action` names what would fail, `fix`
    how else to go on; the stores named in `skip` are the caller's to convert; with `only`, that
    store alone is checked.
    """
    if adata.is_view:  # a view's matrices are sliced when read, which fails on these
        adata = getattr(adata, "_adata_ref", adata)
        fix = fix or "In the AnnData the view was taken from, "
    stores = [("X", adata.X)] + [(f"layers[{k!r}]", adata.layers[k]) for k in layer_names(adata)]
    for name in ("obsm", "varm", "obsp", "varp"):
        stores += [(f"{name}[{k!r}]", v) for k, v in getattr(adata, name).items()]
    if adata.raw is not None:
        stores.append(("raw.X", adata.raw.X))
    for where, matrix in stores:
        if only is not None and where != only:
            continue
        if where not in skip and sparse.issparse(matrix) and not matrix.dtype.isnative:
            data = f"adata.{where}.data"
            convert = f"{fix}convert it in place first" if fix else "Convert it in place first"
            raise ValueError(
                f"adata.{where} is a sparse matrix of {matrix.dtype.str!r} values (another byte "
                f"order than this machine's), which anndata cannot {action}. {convert}: "
                f"`{data} = {data}.astype({data}.dtype.newbyteorder('='))`."
            )


def layer_names(adata: AnnData) -> list[str]:
    """Return the names of `adata`'s layers (anndata >= 0.13 also lists ``X``, as `None`)."""
    return [k for k in adata.layers.keys() if k is not None]


def input_matrix(
    adata: AnnData,
    *,
    layer: str | None = None,
    use_rep: str | None = None,
    columns: np.ndarray | None = None,
):
    """Return ``(matrix, where)``: the input matrix and where it was found.

    The matrix is ``adata.obsm[use_rep]``, ``adata.layers[layer]`` or ``adata.X``; `where` is a
    short description such as ``"layers['counts']"`` for messages. A dask array is computed,
    in `columns` alone when given (the columns a tool reads; the others are left zero).
    """
    if layer is not None and use_rep is not None:
        raise ValueError("Pass either layer or use_rep, not both.")
    if use_rep is not None:
        if use_rep not in adata.obsm:
            raise KeyError(
                f"use_rep {use_rep!r} is not in adata.obsm; keys: {list(adata.obsm.keys())}."
            )
        where = f"obsm[{use_rep!r}]"
        _refuse_slicing_other_byte_order(adata, where)
        matrix = adata.obsm[use_rep]
        if hasattr(matrix, "to_numpy"):  # a DataFrame in obsm
            frame, matrix = matrix, matrix.to_numpy()
            if matrix.dtype == object and all(map(pd.api.types.is_numeric_dtype, frame.dtypes)):
                # pandas' nullable types (Float64, Int64) come out as objects; missing values
                # become NaN, refused as every other NaN is
                matrix = frame.to_numpy(dtype=np.float64, na_value=np.nan)
    elif layer is not None:
        if layer not in adata.layers:
            raise KeyError(f"Layer {layer!r} not found; available layers: {layer_names(adata)}.")
        where = f"layers[{layer!r}]"
        _refuse_slicing_other_byte_order(adata, where)
        matrix = adata.layers[layer]
    else:
        _refuse_slicing_other_byte_order(adata, "X")
        matrix, where = adata.X, "X"
    if matrix is None:
        layers = layer_names(adata)
        advice = (
            f" The data are in layers {layers}: pass layer= naming the one to read."
            if layers and where == "X"
            else ""
        )
        raise ValueError(f"adata.{where} is empty (None).{advice}")
    if is_dask_array(matrix):
        # computed once, here: read by row (random minibatches) it would compute every chunk
        # again for each step, and computed wherever it is read it was computed twice
        matrix = _computed(matrix, columns)
    return matrix, where


def _refuse_slicing_other_byte_order(adata: AnnData, where: str) -> None:
    """Refuse to read the store `where` of a view where scipy cannot slice it (its byte order).

    The tools refuse such views before (they make them actual); a reader such as
    ``model.predict`` got scipy's bare "does not support dtype >f4". A backed AnnData's layers
    are in memory, and sliced alike.
    """
    if adata.is_view:
        refuse_sparse_in_other_byte_order(adata, "slice for a view", only=where)


def _computed(matrix, columns: np.ndarray | None):
    """Compute a dask array, reading only `columns` where given (zeros elsewhere).

    The shape stays the whole matrix's, so that column positions mean what they meant; a
    sparse one then holds only the values read (a lazily read whole transcriptome with a few
    thousand genes marked), a dense one is filled in.
    """
    n_rows, n_columns = matrix.shape
    wanted = None if columns is None else np.unique(np.asarray(columns, dtype=np.int64))
    if wanted is None or len(wanted) == n_columns:
        block = matrix.compute()
        return sparse.csr_matrix(block) if sparse.issparse(block) else np.asarray(block)
    block = matrix[:, wanted].compute()
    if sparse.issparse(block):
        block = sparse.csr_matrix(block)
        return sparse.csr_matrix(
            (block.data, wanted[block.indices], block.indptr), shape=(n_rows, n_columns)
        )
    block = np.asarray(block)
    full = np.zeros((n_rows, n_columns), dtype=block.dtype)
    full[:, wanted] = block
    return full


def counts_location(adata: AnnData, layer: str | None) -> tuple[str | None, str]:
    """Return the layer scdcc reads counts from (None for X) and its description.

    That is `layer`, else ``layers['counts']`` if present, else ``X``.
    """
    if layer is None and "counts" in adata.layers:
        layer = "counts"
    return layer, ("X" if layer is None else f"layers[{layer!r}]")


class _MaskDefault(enum.Enum):
    HIGHLY_VARIABLE_IF_PRESENT = "highly_variable if present"

    def __repr__(self) -> str:  # the tools' signatures, also as Sphinx parses them
        return "HIGHLY_VARIABLE_IF_PRESENT"


HIGHLY_VARIABLE_IF_PRESENT = _MaskDefault.HIGHLY_VARIABLE_IF_PRESENT


@dataclass(frozen=True)
class GeneMask:
    """The genes a tool reads, as `mask_var` chose them (the rule of `sc.pp.pca`)."""

    name: str | None  # the var column, or None for an array given (or no mask)
    columns: np.ndarray | None  # positions of the genes, increasing; None: every gene
    from_array: bool = False
    chosen_by_user: bool = True  # False: the default found no var['highly_variable']

    def describe(self) -> str:
        return "mask_var" if self.name is None else f"var[{self.name!r}]"

    @property
    def param(self) -> str | None:
        """What ``uns[key]['params']['mask_var']`` records: the column, "array", or nothing."""
        return "array" if self.from_array else self.name

    def selects(self, where: str) -> str:
        """Return how `adata.<where>` ("X", "layers['counts']") is written in these genes."""
        return f"adata.{where}[:, adata.var[{self.name!r}].to_numpy()]"


class MaskRefused(ValueError):
    """A `mask_var` that cannot mark genes: `reason` says why, the message adds what to do."""

    def __init__(self, reason: str, advice: str, fix: str | None = None):
        super().__init__(reason + advice)
        self.reason = reason
        self.fix = fix  # the line that mends the mask, where there is one


def _names_genes(values: np.ndarray, adata: AnnData) -> bool:
    """Whether text `values` are gene names (R's VariableFeatures()), not True/False words."""
    if values.ndim != 1:  # a set: one object, not an array of names
        return False
    words = pd.Index(np.asarray(values, dtype=str)).str.strip().str.lower()
    return not words.isin(["true", "false"]).all() and pd.Index(values).isin(adata.var_names).any()


def gene_mask(adata: AnnData, mask_var, *, use_rep: str | None = None) -> GeneMask:
    """Resolve `mask_var` as `sc.pp.pca` does: ``var['highly_variable']`` when present.

    A boolean column of ``adata.var`` (by name) or a boolean array over the genes (a Series
    indexed by gene names is aligned to ``var_names``); None uses every gene. A mask that keeps
    every gene gives ``columns=None``: the same run as without one.
    """
    if mask_var is HIGHLY_VARIABLE_IF_PRESENT:
        if use_rep is not None:
            return GeneMask(None, None)
        if "highly_variable" not in adata.var.columns:
            return GeneMask(None, None, chosen_by_user=False)
        mask_var = "highly_variable"
    elif mask_var is None:
        return GeneMask(None, None)
    elif use_rep is not None:
        raise ValueError(
            f"mask_var chooses genes of X or a layer, but the input is adata.obsm[{use_rep!r}] "
            "(use_rep); leave mask_var out."
        )
    if isinstance(mask_var, str):
        if mask_var not in adata.var.columns:
            raise ValueError(
                f"mask_var={mask_var!r} is not a column of adata.var. Mark the genes to use, "
                "e.g. `sc.pp.highly_variable_genes(adata, n_top_genes=2000)` (var["
                "'highly_variable']), or pass mask_var=None to use every gene."
            )
        values, what = adata.var[mask_var], f"adata.var[{mask_var!r}]"
    else:
        values, what = mask_var, "mask_var"
        # before the alignment: a Series of names (`pd.Series(names)`, `.to_series()`) is no
        # mask to align by its index
        if _holds_text(values) and _names_genes(np.asarray(values), adata):
            raise MaskRefused(
                f"{what} holds gene names; it takes one True/False per gene",
                ": mark the named genes with `mask_var=adata.var_names.isin(names)`.",
            )
        if isinstance(values, pd.Series):
            values = _aligned_to_genes(values, adata.var_names)
    text = _holds_text(values)
    # bool() of any word but "" is True: text is compared with "true" instead
    if isinstance(mask_var, str):
        convert = (
            f"`{what} = {what}.astype(str).str.lower() == 'true'`"
            if text
            else f"`{what} = {what}.astype(bool)`"
        )
    elif isinstance(mask_var, pd.Series):  # kept a Series, still read by its gene names
        convert = (
            "`mask_var = mask_var.astype(str).str.lower() == 'true'`"
            if text
            else "`mask_var = mask_var.astype(bool)`"
        )
    else:
        convert = (
            '`np.char.lower(np.asarray(mask_var, dtype=str)) == "true"`'
            if text
            else "`np.asarray(mask_var, dtype=bool)`"
        )
    # missing values first: converted as they are, NaN would become True (a marked gene)
    missing = values.isna().to_numpy() if isinstance(values, pd.Series) else pd.isna(values)
    if np.any(missing):
        if text:
            fill = convert + " (missing values become False)"
        elif isinstance(mask_var, str):
            fill = f"`{what} = {what}.to_numpy(dtype=bool, na_value=False)`"
        else:
            fill = "fill them with False"
        raise MaskRefused(
            f"{what} has missing values",
            f"; mark each gene True (use it) or False (leave it out), e.g. {fill}.",
            fix=None if text or not fill.startswith("`") else fill,
        )
    if isinstance(values, pd.Series) and (
        pd.api.types.is_bool_dtype(values.dtype)
        or (
            isinstance(values.dtype, pd.CategoricalDtype)
            and pd.api.types.is_bool_dtype(values.cat.categories.dtype)
        )
    ):
        values = values.to_numpy(dtype=bool)
    array = np.asarray(values)
    if array.dtype != bool:
        dtype = values.dtype if isinstance(values, pd.Series) else array.dtype
        holds = "the words True/False" if text else "True/False or 1/0"
        raise MaskRefused(
            f"{what} must be boolean (True for the genes to use), not of dtype {dtype}",
            f". If it holds {holds}, convert it: {convert}; or pass mask_var=None to "
            "use every gene.",
            fix=f"if it holds {holds}, {convert}" if isinstance(mask_var, str) else None,
        )
    if array.shape != (adata.n_vars,):
        raise MaskRefused(
            f"{what} has shape {array.shape}",
            f"; it needs one True/False per gene ({adata.n_vars}).",
        )
    if not array.any():
        raise MaskRefused(
            f"{what} marks no gene to use",
            ". Choose genes, e.g. `sc.pp.highly_variable_genes(adata, n_top_genes=2000)`, or "
            "pass mask_var=None to use every gene.",
        )
    name = mask_var if isinstance(mask_var, str) else None
    return GeneMask(name, None if array.all() else np.flatnonzero(array), name is None)


def _holds_text(values) -> bool:
    """Whether a mask holds words (also as categories), as a column read from text does."""
    if isinstance(values, pd.Series) and isinstance(values.dtype, pd.CategoricalDtype):
        values = values.cat.categories
    try:
        return pd.api.types.infer_dtype(values, skipna=True) == "string"
    except TypeError:  # a scalar, refused below
        return False


def _aligned_to_genes(values: pd.Series, var_names: pd.Index) -> pd.Series:
    """Return a Series mask in `var_names`' order: by its index when that names the genes.

    A default index (0, 1, ...) is taken by position; any other index must hold exactly the
    genes, else the mask could silently mark the wrong ones.
    """
    if values.index.equals(var_names) or values.index.equals(pd.RangeIndex(len(values))):
        return values
    if not var_names.is_unique:
        raise ValueError(
            "mask_var is a Series indexed otherwise than adata.var_names, which repeat names, "
            "so it cannot be aligned to the genes. Pass a plain array in adata.var_names' "
            "order, or make the names unique first (`adata.var_names_make_unique()`)."
        )
    if values.index.is_unique and set(values.index) == set(var_names):
        return values.reindex(var_names)
    raise ValueError(
        "mask_var is a Series whose index is not adata.var_names (in any order), so which "
        "genes it marks is unclear. Index it by the gene names, or pass a plain array in "
        "adata.var_names' order."
    )


@dataclass
class MatrixSummary:
    """What one pass over a matrix found."""

    shape: tuple[int, int]
    dtype: np.dtype
    n_nonfinite: int  # NaN or infinite entries
    n_negative: int
    # a finite value that is not an integer, if any (looked for while no value is negative)
    example_non_integer: float | None
    # how far from a whole number the non-integers of the block holding that value are at most
    # (tiny for counts that went through a float conversion, e.g. 2.9999999)
    non_integer_offset: float | None
    # the median distance of that block's non-zero values from whole numbers: about 0.25 for
    # normalised or log values, near 0 for estimated counts (mostly whole, some fractional)
    median_whole_distance: float | None
    # the transform of counts that the block's values are, if one is ("log2(1 + counts)", ...);
    # judged on its first `TRANSFORM_VALUES` values
    counts_transform: str | None
    zero_rows: np.ndarray  # bool (n_obs,): rows without a non-zero entry
    zero_cols: np.ndarray  # bool (n_vars,)
    row_sums: np.ndarray  # float64 (n_obs,); not finite where the matrix is not
    col_sums: np.ndarray  # float64 (n_vars,)
    sum_of_squares: float = 0.0  # of the finite entries
    col_sums_of_squares: np.ndarray | None = None  # float64 (n_vars,), with `gene_scales`
    largest: float = 0.0  # the largest absolute finite entry (of floats wider than float32)
    n_infinite: int = 0  # of the non-finite entries, those that are not NaN
    # per row: the smallest positive value (inf where none), and whether the row has enough
    # positive values to judge its step (`coarse_step_rows`)
    smallest_positive: np.ndarray | None = None
    judged_rows: np.ndarray | None = None
    coarse_step_rows: np.ndarray | None = None

    @property
    def is_counts(self) -> bool:
        return self.n_nonfinite == 0 and self.n_negative == 0 and self.example_non_integer is None

    @property
    def share_on_coarse_step(self) -> float:
        """The share of the judged rows whose values step by more than 1 (`_row_steps`)."""
        if self.judged_rows is None or not self.judged_rows.any():
            return 0.0
        return float(self.coarse_step_rows[self.judged_rows].mean())

    def column_moments(self) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """Each column's mean, variance and mean square (with `gene_scales`; else None)."""
        if self.col_sums_of_squares is None or not self.shape[0]:
            return None
        mean_square = self.col_sums_of_squares / self.shape[0]
        mean = self.col_sums / self.shape[0]
        return mean, np.maximum(mean_square - mean * mean, 0.0), mean_square

    @property
    def median_gene_scale(self) -> float | None:
        """The median standard deviation of the columns that vary (1 for z-scored genes)."""
        moments = self.column_moments()
        if moments is None:
            return None
        _, variance, mean_square = moments
        # a constant column leaves a rounding error of E[x^2] - E[x]^2, not 0
        varying = variance > 1e-9 * mean_square
        return float(np.median(np.sqrt(variance[varying]))) if varying.any() else None

    @property
    def root_mean_square(self) -> float:
        """The entries' root mean square (non-finite ones count as 0): about 1 for z-scores."""
        size = self.shape[0] * self.shape[1]
        return float(np.sqrt(self.sum_of_squares / size)) if size else 0.0


def _check_dtype(dtype, where: str) -> np.dtype:
    dtype = np.dtype(dtype)
    if dtype.kind not in "biuf":
        raise TypeError(
            f"adata.{where} has dtype {dtype}; a numeric matrix (integers or floats) is needed."
        )
    return dtype


# Squares and sums of values near float64's limit overflow to inf, which the checks read and
# refuse in their own words; numpy's "overflow encountered" beside them says nothing more.
@np.errstate(over="ignore")
def scan_matrix(
    matrix,
    *,
    where: str = "X",
    chunk_size: int = 8192,
    steps: bool = False,
    gene_scales: bool = False,
    columns: np.ndarray | None = None,
) -> MatrixSummary:
    """Find non-finite, negative and non-integer values and all-zero rows / columns.

    Also sums each row and column, which tells one matrix from another at little cost (a
    resumed checkpoint checks them). The matrix is read block by block, and a sparse one
    through its stored entries only, so that no dense copy of a large matrix is made. With
    `steps`, also how each row's values step (`_row_steps`), which tells raw counts from
    multiplied or normalised ones, and what non-integer values look like (estimated or
    transformed counts); with `gene_scales`, each column's sum of squares too
    (`median_gene_scale`), which tells scaled data from unscaled. With `columns` (positions),
    only those columns are read: the summary is of the matrix they make (what a tool reads
    when `mask_var` chooses genes).
    """
    source = RowSource(matrix, columns=columns)
    dtype = _check_dtype(getattr(source.matrix, "dtype", np.float64), where)
    n_nonfinite = n_negative = 0
    non_integer = non_integer_offset = whole_distance = counts_transform = None
    row_nonzero = np.zeros(source.n_obs, dtype=bool)
    col_nonzero = np.zeros(source.n_vars, dtype=bool)
    row_sums = np.zeros(source.n_obs)
    col_sums = np.zeros(source.n_vars)
    sum_of_squares = largest = 0.0
    n_infinite = 0
    smallest = judged = coarse = None
    col_squares = np.zeros(source.n_vars) if gene_scales else None
    if steps:
        smallest = np.full(source.n_obs, np.inf)
        judged = np.zeros(source.n_obs, dtype=bool)
        coarse = np.zeros(source.n_obs, dtype=bool)
    for start, stop, block in source.iter_blocks(chunk_size):
        if sparse.issparse(block):
            block = sparse.csr_matrix(block)
            values = block.data
            nonzero = values != 0
            rows = np.repeat(np.arange(stop - start), np.diff(block.indptr))
            row_nonzero[start:stop] |= np.bincount(rows[nonzero], minlength=stop - start) > 0
            col_nonzero[block.indices[nonzero]] = True
            row_sums[start:stop] += np.asarray(block.sum(axis=1)).ravel()
            col_sums += np.asarray(block.sum(axis=0)).ravel()
            if gene_scales:
                squares = np.square(values, dtype=np.float64)
                col_squares += np.bincount(block.indices, squares, minlength=source.n_vars)
        else:
            values = np.asarray(block)
            nonzero = values != 0
            row_nonzero[start:stop] |= nonzero.any(axis=1)
            col_nonzero |= nonzero.any(axis=0)
            row_sums[start:stop] += values.sum(axis=1, dtype=np.float64)
            col_sums += values.sum(axis=0, dtype=np.float64)
            if gene_scales:
                col_squares += np.square(values, dtype=np.float64).sum(axis=0)
            values = values.ravel()
        if steps and dtype.kind in "iuf":
            step = _row_steps(block, rows if sparse.issparse(block) else None)
            smallest[start:stop], judged[start:stop], coarse[start:stop] = step
        if values.size == 0:
            continue
        if dtype.kind == "b":
            sum_of_squares += int(np.count_nonzero(values))
            continue
        if dtype.kind == "f":
            finite = np.isfinite(values)
            n_block_nonfinite = int(values.size - np.count_nonzero(finite))
            if n_block_nonfinite:  # copied only then: most matrices are finite throughout
                n_nonfinite += n_block_nonfinite
                n_infinite += int(np.isinf(values).sum())
                values = values[finite]
        sum_of_squares += float(np.square(values, dtype=np.float64).sum())
        if values.size and wider_than_float32(dtype):
            largest = max(largest, float(np.abs(values).max()))
        n_negative += int((values < 0).sum())
        # negative values already rule out counts (and name the reason in messages): a scaled
        # matrix skips the rounding of every value
        if non_integer is None and dtype.kind == "f" and not n_negative:
            rounded = np.round(values)
            off = values != rounded
            if off.any():
                non_integer = float(values[np.argmax(off)])
                non_integer_offset = float(np.abs(values[off] - rounded[off]).max())
                if steps:  # what the counts' refusal says (`check_counts`)
                    nonzero = values != 0
                    whole_distance = float(np.median(np.abs(values - rounded)[nonzero]))
                # DESC warns about a transform of counts too (log1p without normalize_total)
                found = transform_of_counts(values)
                counts_transform = None if found is None else found[0]
    return MatrixSummary(
        shape=(source.n_obs, source.n_vars),
        dtype=dtype,
        n_nonfinite=n_nonfinite,
        n_negative=n_negative,
        example_non_integer=non_integer,
        non_integer_offset=non_integer_offset,
        median_whole_distance=whole_distance,
        counts_transform=counts_transform,
        zero_rows=~row_nonzero,
        zero_cols=~col_nonzero,
        row_sums=row_sums,
        col_sums=col_sums,
        sum_of_squares=sum_of_squares,
        col_sums_of_squares=col_squares,
        largest=largest,
        n_infinite=n_infinite,
        smallest_positive=smallest,
        judged_rows=judged,
        coarse_step_rows=coarse,
    )


# Transforms of counts that keep many values whole (1 stays 1: log2(1 + 1), sqrt(1)), so that
# they look like estimated counts; each with the inverse that recovers the counts (as code to
# paste, and as a function), and that inverse's slope at (value, count).
COUNT_TRANSFORMS = {
    "log2(1 + counts)": ("np.exp2({x}) - 1", lambda v: np.exp2(v) - 1, lambda v, c: (c + 1) * 0.7),
    "the square root of counts": ("np.square({x})", np.square, lambda v, c: 2 * v),
    "log1p(counts), not normalised": ("np.expm1({x})", np.expm1, lambda v, c: c + 1),
}
# A value's relative rounding error allowed (two float32 steps: log1p and its storage), and
# the largest error of a recovered count that still names one integer. Beyond it (log1p of
# counts above about 40,000 in float32) a value cannot be told from a fraction, and un-logged
# normalised values above 80 pass for square roots (the CPM of shallow cells did).
VALUE_ROUNDING = 2.4e-7
MAX_COUNT_ERROR = 0.1


# Values of a matrix judged for a transform of counts (one block's first ones): a few million
# would cost a second per transform, and one value that is no transformed count decides.
TRANSFORM_VALUES = 1_000_000


def transform_of_counts(values: np.ndarray) -> tuple[str, float] | None:
    """Return the `COUNT_TRANSFORMS` entry that maps every value to a count, and a value.

    Judged on the first `TRANSFORM_VALUES` non-zero values (flat), of which one at least must
    be a fraction: whole numbers are counts (and squares of them).
    """
    head = values[:TRANSFORM_VALUES]
    head = head[head != 0]
    fractional = head != np.round(head)
    if not fractional.any():
        return None
    for name in COUNT_TRANSFORMS:
        if counts_of_transform(head, name) is not None:
            return name, float(head[np.argmax(fractional)])
    return None


def counts_of_transform(values: np.ndarray, transform: str) -> np.ndarray | None:
    """Return the counts (float64) that `transform` maps to `values`; None if one is no count."""
    values = np.asarray(values, dtype=np.float64)
    if np.any(values < 0):  # the square of one would be a count
        return None
    _, inverse, slope = COUNT_TRANSFORMS[transform]
    with np.errstate(over="ignore", invalid="ignore"):  # inf: no count, refused below
        counts = inverse(values)
        # the value's rounding error, carried through the inverse
        tolerance = 1e-3 + slope(values, counts) * values * VALUE_ROUNDING
        whole = np.round(counts)
        found = np.all(tolerance <= MAX_COUNT_ERROR) and np.all(np.abs(counts - whole) <= tolerance)
        # each transform maps 0 to 0 alone: a non-zero value near 0 (values on a far smaller
        # scale) stands for no count, though it lies within the tolerance of 0
        found = found and not np.any((whole == 0) & (values != 0))
    return whole if found else None


# Raw counts step by 1: in nearly every cell the smallest non-zero count is 1, and many values
# are 1 (47-71% of the non-zero counts of the four labelled datasets). Counts multiplied by a
# factor, or normalised to equal totals and rounded, step by more: their smallest value stands
# for a count of 1, and as many values are exactly it. A row is judged on 10 or more positive
# values; it steps coarsely when its smallest is 2 or more and a tenth of its values equal it.
# Judged rows stepping coarsely: none in the labelled datasets, nor in simulated counts with
# median totals up to 6 million (where the smallest count passes 1 in most cells, but few values
# equal it); 95-100% of them multiplied by 3 or 1,000, or normalised to 10,000 or a million and
# rounded; and at most 20% where each molecule gave Poisson(10 to 100) reads (worm neurons; none
# in the other three), as read counts without UMIs can (values spread from 1 to 1.5 times the
# smallest there, so a looser test, values below 1.5 times it, took 62-100% of the cells).
MIN_JUDGED_VALUES = 10
COARSE_STEP_SHARE = 0.1


def _row_steps(block, rows: np.ndarray | None = None):
    """Per row: the smallest positive value, whether it is judged, whether it steps coarsely."""
    if sparse.issparse(block):
        values = block.data
        positive = np.isfinite(values) & (values > 0)
        kept = np.where(positive, values, np.inf)
        lengths = np.diff(block.indptr)
        smallest = np.full(len(lengths), np.inf)
        filled = lengths > 0
        smallest[filled] = np.minimum.reduceat(kept, block.indptr[:-1][filled])
        if rows is None:  # the row of each stored value, as the caller may have it already
            rows = np.repeat(np.arange(len(lengths)), lengths)
        n_positive = np.bincount(rows[positive], minlength=len(lengths))
        n_smallest = np.bincount(rows[kept == smallest[rows]], minlength=len(lengths))
    else:
        values = np.asarray(block)
        kept = np.where(np.isfinite(values) & (values > 0), values, np.inf)
        smallest = kept.min(axis=1, initial=np.inf).astype(np.float64)
        n_positive = np.isfinite(kept).sum(axis=1)
        n_smallest = ((kept == smallest[:, None]) & np.isfinite(kept)).sum(axis=1)
    judged = n_positive >= MIN_JUDGED_VALUES
    coarse = judged & (smallest >= 2) & (n_smallest >= COARSE_STEP_SHARE * n_positive)
    return smallest, judged, coarse


def checked_counts(adata: AnnData, layer: str | None, columns: np.ndarray | None = None):
    """Return ``(matrix, where, summary)`` of scdcc's raw counts, refusing anything else.

    The counts are `layer`, else ``layers['counts']`` if present, else ``X``
    (`counts_location`), read in one pass (`scan_matrix`); when ``layers['counts']`` was taken
    for its name and holds no counts, the message says how to read ``X`` instead.
    """
    if not isinstance(adata, AnnData):
        raise not_anndata(adata)
    found_by_name = layer is None and "counts" in adata.layers
    layer, _ = counts_location(adata, layer)
    matrix, where = input_matrix(adata, layer=layer, columns=columns)
    summary = scan_matrix(matrix, where=where, steps=True, columns=columns)
    check_counts(
        summary,
        where,
        raw_hint=where == "X" and adata.raw is not None,
        found_by_name=found_by_name,
        view=adata.is_view,
        count_layers=(
            layers_holding_counts(adata, columns, skip=layer)
            if (where == "X" or found_by_name) and not summary.is_counts
            else ()
        ),
    )
    return matrix, where, summary


def counts_layer_advice(count_layers: Sequence[str], owner: str = "adata.") -> str:
    """Return the advice to read counts from `count_layers` (a sentence without its stop).

    `owner`: what the layers' names start with ("" where the message names them bare).
    """
    layers = ", ".join(f"{owner}layers[{name!r}]" for name in count_layers)
    first = f"`layer={count_layers[0]!r}`"
    if len(count_layers) == 1:
        return f"{layers} holds counts: pass {first} to read them"
    return f"{layers} hold counts: pass the one to read as `layer`, e.g. {first}"


def layers_holding_counts(
    adata: AnnData, columns: np.ndarray | None, skip: str | None = None
) -> list[str]:
    """Return the layers that hold raw counts (read only where the counts expected are none).

    scvi-tools users keep counts under names of their own ('raw_counts', 'umi', ...). `skip`: a
    layer already found to hold none.
    """
    found = []
    for name in layer_names(adata):
        if name == skip:
            continue
        try:
            summary = scan_matrix(adata.layers[name], where=f"layers[{name!r}]", columns=columns)
        except (TypeError, ValueError):  # a dtype or shape that holds no counts
            continue
        # not flags (booleans, or only 0s and 1s: x^2 sums to x) nor an all-zero placeholder
        flags = summary.dtype.kind == "b" or summary.sum_of_squares <= summary.row_sums.sum()
        if summary.is_counts and not flags:
            found.append(name)
    return found


# The tools compute in float32: larger values (or counts per cell) would become infinite there.
FLOAT32_MAX = float(np.finfo(np.float32).max)


def check_finite(summary: MatrixSummary, where: str) -> None:
    """Refuse NaN or infinite values, and values that float32 (the tools' precision) cannot hold."""
    if summary.n_nonfinite:
        float16 = (
            " float16 holds at most 65,504: larger values stored as float16 became infinite; "
            "store the matrix as float32 (or counts as int32) from the source."
            if summary.dtype == np.float16 and summary.n_infinite
            else ""
        )
        raise ValueError(
            f"adata.{where} contains {summary.n_nonfinite} NaN or infinite value(s). Find them "
            f"with `~np.isfinite(adata.{where})` (`~np.isfinite(adata.{where}.data)` for a "
            f"sparse matrix) and remove or replace those cells or genes first.{float16}"
        )
    check_float32_range(summary.largest, where)


def wider_than_float32(dtype: np.dtype) -> bool:
    """Whether values of `dtype` may lie beyond float32's range (floats wider than 32 bits)."""
    return dtype.kind == "f" and dtype.itemsize > 4


def check_float32_range(largest: float, where: str) -> None:
    """Refuse a matrix whose largest finite magnitude float32 cannot hold."""
    if largest > FLOAT32_MAX:
        raise ValueError(
            f"adata.{where} holds values as large as {largest:.3g} (in magnitude), beyond "
            f"float32's range ({FLOAT32_MAX:.3g}), in which the tools compute: they would "
            f"become infinite. Find them with `abs(adata.{where}) > 3e38` and remove or "
            "replace those cells or genes first (no expression measure is that large)."
        )


# The root mean square of DESC's input outside which it warns (z-scored genes: about 1; scanpy's
# log-normalised counts of the labelled datasets: 0.10-0.41, median-normalised ones 0.27-5.9).
# Simulated groups z-scored, then multiplied: ARI 1.00 from 0.03 to 3 times, 0.85 at 0.01, one
# cluster at 0.003, 0.99 at 10, 0.41 (33 clusters) at 30.
INPUT_SCALE_RANGE = (0.03, 10.0)


def is_off_scale(summary: MatrixSummary) -> bool:
    """Whether DESC's input lies far from the z-scored genes its network reads."""
    low, high = INPUT_SCALE_RANGE
    return not low <= summary.root_mean_square <= high


# sc.pp.scale run on new cells alone centres and scales each gene on them, not as the model's
# training cells were: a sample of fewer cell types then lands elsewhere (a user session,
# pbmc68k_reduced, a model of 500 cells scaled by sc.pp.scale: of 43 held-out CD14+ monocytes
# 22 joined the training monocytes' cluster, 40 when scaled with the training statistics).
SCALE_AS_TRAINED = (
    "scale them with the training cells' gene means and standard deviations, which "
    "sc.pp.scale kept in the training AnnData (ref): `(new[:, ref.var_names].X - "
    "ref.var['mean'].values) / ref.var['std'].values`, clipped at the max_value used "
    "(sc.pp.scale on the new cells alone uses their own statistics); or train with "
    "scale=True, and the model scales new cells itself"
)
SCALE_AS_TRAINED_UNCENTRED = (
    "divide each gene by the training cells' standard deviation, which "
    "sc.pp.scale(zero_center=False) kept in the training AnnData (ref): "
    "`new[:, ref.var_names].X / ref.var['std'].values` (sc.pp.scale on the new cells alone "
    "uses their own); or train with scale=True, and the model scales new cells itself"
)


def warn_if_off_scale(
    summary: MatrixSummary,
    where: str,
    *,
    mapping: bool = False,
    use_rep: str | None = None,
    components: bool = False,
) -> bool:
    """DESC's network reads z-scored genes: warn about input on a far smaller or larger scale.

    `mapping`: the cells are mapped onto a model trained on z-scored genes. `use_rep`: the
    input is that ``obsm`` entry, which sc.pp.scale does not reach; `components`: it holds
    principal components, whose spread z-scoring would undo. Return whether it warned.
    """
    if use_rep is None and summary.is_counts:  # counts have a warning of their own
        return False
    if not is_off_scale(summary):
        return False
    rms = summary.root_mean_square
    if use_rep is not None:
        effect = (
            "on such a scale its network learns little. Divide it by a constant into an entry "
            f"of its own, which keeps its columns' relative spread (`adata.obsm['{use_rep}_scaled']"
            f" = adata.obsm[{use_rep!r}] / {rms:.3g}`, then use_rep='{use_rep}_scaled')"
            + ("." if components else ", or pass scale=True to z-score each column.")
        )
    elif mapping:
        effect = (
            "the model was trained on such genes, and its network places cells on another "
            "scale where they do not belong. Prepare the new cells as the model's were: "
            f"normalise and log-transform them, then {SCALE_AS_TRAINED}."
        )
    else:
        effect = (
            "on such a scale its network learns little (simulated groups z-scored and then "
            "multiplied by 0.003: one cluster; by 30: ARI 0.41). Pass scale=True to z-score "
            "each gene inside DESC, or run sc.pp.scale first."
        )
    warnings.warn(
        f"adata.{where} holds values whose root mean square is {rms:.3g}, far from the z-scored "
        f"{'values' if use_rep else 'genes'} DESC reads (about 1"
        f"{'' if use_rep else ' after sc.pp.scale'}): {effect}",
        UserWarning,
        stacklevel=caller_stacklevel(),
    )
    return True


# A representation of this many columns or fewer is a layout (UMAP, t-SNE) or the cells'
# positions (obsm['spatial']), not one of their expression (PCA, scVI: 10 to 50 columns).
LAYOUT_COLUMNS = 3


def warn_if_layout(summary: MatrixSummary, where: str) -> bool:
    """Warn about a `use_rep` whose few columns place the cells (a layout, positions).

    Return whether it warned.
    """
    n_columns = summary.shape[1]
    if n_columns > LAYOUT_COLUMNS:
        return False
    warnings.warn(
        f"adata.{where} has {n_columns} column(s): a layout (UMAP, t-SNE) or the cells' "
        "positions (obsm['spatial']) rather than a representation of their expression such as "
        "'X_pca' or 'X_scVI', and DESC would cluster the cells by where they lie in it. Pass "
        "the representation to cluster as use_rep (sc.pp.pca writes 'X_pca'), or leave "
        "use_rep out to read the genes.",
        UserWarning,
        stacklevel=caller_stacklevel(),
    )
    return True


def looks_like_principal_components(summary: MatrixSummary) -> bool:
    """Whether the columns are centred and their spread falls from the first to the last.

    As sc.pp.pca writes principal components (and harmony's corrected ones keep them), whose
    spread is their weight.
    """
    n_obs, n_columns = summary.shape
    moments = summary.column_moments()
    if moments is None or n_obs < 2 or n_columns < 2:
        return False
    mean, variance, _ = moments
    spread = np.sqrt(variance)
    if not (spread > 0).all():
        return False
    centred = np.median(np.abs(mean) / spread) <= 0.2
    falling = np.mean(np.diff(spread) <= 0) >= 0.8
    return bool(centred and falling)


# Below this median standard deviation of the genes, non-negative input looks normalised and
# log-transformed but not scaled. z-scored genes: 1 (sc.pp.scale with zero_center=False too,
# max_value=10 at least 0.60); unscaled inputs that lost accuracy on 10X PBMC and worm neurons
# (log1p of normalised counts, log2, log1p or sqrt of raw counts, normalize_total alone):
# 0.06-0.24.
UNSCALED_GENE_SCALE = 0.35


def warn_if_unscaled(
    summary: MatrixSummary,
    where: str,
    *,
    remedy: str = "Pass scale=True to z-score each gene inside DESC, or run sc.pp.scale first.",
) -> bool:
    """DESC's network reads z-scored genes: warn about normalised data that were not scaled.

    Return whether it warned.
    """
    scale = summary.median_gene_scale
    if (
        summary.is_counts  # counts have a warning of their own
        or summary.counts_transform is not None  # and so have transformed ones
        or summary.n_negative
        or is_off_scale(summary)  # and so has input far from z-scores
        or scale is None
        or scale >= UNSCALED_GENE_SCALE
    ):
        return False
    warnings.warn(
        f"adata.{where} has no negative values and its genes' median standard deviation is "
        f"{scale:.2g} (1 after sc.pp.scale): it looks normalised but not scaled, which costs "
        "DESC accuracy (worm neurons, log-normalised: ARI 0.42 unscaled, 0.59 with scale=True, "
        f"three seeds). {remedy}",
        UserWarning,
        stacklevel=caller_stacklevel(),
    )
    return True


# Above this many genes read without a selection, the tools suggest one (pp.recipe's hvg_above).
MANY_GENES = 3000


def warn_if_genes_unselected(
    genes: GeneMask, n_genes: int, where: str, *, alternative: str = ""
) -> None:
    """Warn where a tool reads thousands of genes that nobody chose (no `mask_var`, no column).

    Most genes of a whole transcriptome carry noise for clustering, and they cost time.
    """
    if genes.chosen_by_user or n_genes <= MANY_GENES:
        return
    warnings.warn(
        f"Reading all {n_genes:,} genes of adata.{where}: no gene selection was found "
        "(var['highly_variable']). Clustering reads best on a few thousand variable genes "
        "(simulated data of 15,000 genes, 1% of them telling 8 groups apart: ARI 0.74-1.00 for "
        "DESC, 0.00-1.00 for scDCC, against 1.00 on 2,000 marked, in a fraction of the "
        "time). Mark them with `sc.pp.highly_variable_genes(adata, n_top_genes=2000)` on "
        f"log-normalised X (the tools then read those){alternative}, or pass mask_var=None to "
        "read every gene.",
        UserWarning,
        stacklevel=caller_stacklevel(),
    )


def warn_if_counts(
    summary: MatrixSummary,
    where: str,
    *,
    model_scales: bool | None = None,
    trained_on_negatives: bool | None = None,
    trained_gene_scale: float | None = None,
) -> None:
    """DESC's input (and a DESC model's) is log-normalised, scaled data, not counts.

    `model_scales`: None for training; for a model's new cells, whether the model z-scores
    each gene itself (trained with ``scale=True``), where scaled cells would be scaled twice.
    `trained_on_negatives`: whether the model's training cells had negative values (scaled
    or corrected), None where the model does not say (saved before it was kept);
    `trained_gene_scale` (their genes' median spread) tells scaled from corrected ones.
    """
    if not summary.is_counts:
        return
    if model_scales is None:
        advice = (
            "DESC expects log-normalised, scaled data: run sc.pp.normalize_total, sc.pp.log1p "
            "and sc.pp.scale first (or pass use_rep)."
        )
    elif model_scales:
        advice = (
            "This model z-scores each gene itself, with its training cells' means and scales: "
            "run sc.pp.normalize_total and sc.pp.log1p first, not sc.pp.scale."
        )
    else:
        scaled = None if trained_gene_scale is None else trained_gene_scale >= SCALED_GENE_SCALE
        if trained_on_negatives and scaled:
            steps = (
                "sc.pp.normalize_total and sc.pp.log1p (they had negative values, as scaled "
                f"data have); then {SCALE_AS_TRAINED}"
            )
        elif trained_on_negatives and scaled is False:
            steps = (
                "sc.pp.normalize_total, sc.pp.log1p and the same correction (they had negative "
                "values but spread less than scaled data: corrected, e.g. by ComBat or "
                "sc.pp.regress_out), not sc.pp.scale"
            )
        else:
            steps = {
                True: "sc.pp.normalize_total, sc.pp.log1p and sc.pp.scale or the correction "
                "they had (they had negative values)",
                False: "sc.pp.normalize_total and sc.pp.log1p, not sc.pp.scale (they had no "
                "negative values)",
                None: "log-normalised (sc.pp.normalize_total, sc.pp.log1p), and scaled if they "
                "were",
            }[trained_on_negatives]
        advice = f"Prepare the new cells as the model's training cells were: {steps}."
    warnings.warn(
        f"adata.{where} looks like raw counts. {advice}",
        UserWarning,
        stacklevel=caller_stacklevel(),
    )


def warn_if_transformed_counts(
    summary: MatrixSummary, where: str, *, then: str | None = None
) -> None:
    """DESC reads log-normalised data: warn about counts that were transformed, not normalised.

    `then`: what to run on the recovered counts (default: DESC's training steps).
    """
    name = summary.counts_transform
    if name is None or summary.n_negative:
        return
    inverse = COUNT_TRANSFORMS[name][0]
    if then is None:
        then = "sc.pp.normalize_total, sc.pp.log1p and sc.pp.scale (or tl.desc's scale=True)"
        if where == "X":
            then += "; `sdc.pp.recipe(adata, 'desc')` does all of it"
    warnings.warn(
        f"adata.{where} holds {name} (e.g. {summary.example_non_integer:.4g}): DESC reads "
        "normalised data, and without normalisation each cell's sequencing depth weighs on "
        f"where it is placed. Recover the counts (`adata.{where}.data = "
        f"np.round({inverse.format(x=f'adata.{where}.data')})` for a sparse matrix, "
        f"`adata.{where} = np.round({inverse.format(x=f'adata.{where}')})` for a dense one), "
        f"then run {then}.",
        UserWarning,
        stacklevel=caller_stacklevel(),
    )


def warn_if_scaled_for_a_scaling_model(summary: MatrixSummary, where: str) -> None:
    """Warn where a model that z-scores genes itself gets cells scaled already (negative values).

    Scaled again with the training cells' means and scales, they land elsewhere, silently:
    200 simulated cells, ARI against the training labels 0.58 -> 0.49.
    """
    if summary.n_negative == 0:
        return
    warnings.warn(
        f"adata.{where} has negative values, as scaled data have, but this model z-scores each "
        "gene itself with its training cells' means and scales (trained with scale=True): "
        "scaled twice, the cells land where they do not belong. Pass the log-normalised "
        "values (sc.pp.normalize_total and sc.pp.log1p, without sc.pp.scale), e.g. from "
        "adata.raw or a layer that keeps them.",
        UserWarning,
        stacklevel=caller_stacklevel(),
    )


# sc.pp.scale makes each gene's standard deviation 1 (clipping at max_value lowers a few);
# log-normalised genes spread far less (10X PBMC: a median of 0.53), corrected ones too.
SCALED_GENE_SCALE = 0.9
# Genes of new cells prepared as the training cells were spread at most about as much: a few
# cell types spread less (one type of 10X PBMC, worm neurons or mouse bladder: 0.5-0.8 times
# the median standard deviation of all, log-normalised; 0 for a worm type), never twice as much.
SPREAD_FACTOR = 2.0
# The median spread counts the genes that vary, which among a few cells are the expressed ones:
# 10X PBMC, new cells drawn from those prepared as 3,000 training cells were, spread more than
# twice as much in 30% of draws of 8 cells, 3% of 12, none of 16-50 (200 draws each); their
# median ratio falls from 1.9 (8 cells) to 1.4 (50). Fewer new cells are not judged.
SPREAD_MIN_CELLS = 50


def warn_if_prepared_unlike_training(
    summary: MatrixSummary,
    where: str,
    *,
    trained_on_negatives: bool,
    trained_gene_scale: float | None,
) -> bool:
    """Warn where new cells were prepared otherwise than the model's training cells.

    For a model that reads its input as given. Scaled (centred) or corrected cells (ComBat,
    regress_out) have negative values; log-normalised ones, and ones scaled without centring,
    none. The training cells' median gene spread tells scaled from the others. Where the new
    cells differ in having negative values, or their genes spread far more, they land where
    they do not belong, silently (10X PBMC, 1,200 training cells: 46% and 75% of 500 new cells
    changed cluster). Return whether it warned.
    """
    if summary.is_counts or summary.counts_transform is not None:  # warned of on their own
        return False
    if bool(summary.n_negative) == trained_on_negatives:
        return _warn_if_spread_differs(summary, where, trained_gene_scale)
    scaled = None if trained_gene_scale is None else trained_gene_scale >= SCALED_GENE_SCALE
    if trained_on_negatives:
        found = "has no negative values, but the model's training cells had them"
        training, remedy = {
            True: ("scaled, e.g. by sc.pp.scale", SCALE_AS_TRAINED),
            False: (
                "corrected without scaling, e.g. by ComBat or sc.pp.regress_out: their genes "
                "spread less than scaled ones",
                "apply the same correction to the new cells, and not sc.pp.scale",
            ),
            None: ("scaled or corrected", "scale or correct the new cells the same way"),
        }[scaled]
    else:
        found = (
            "has negative values, as scaled or corrected data have, but the model's training "
            "cells had none"
        )
        training, remedy = {
            True: (
                "scaled without centring, sc.pp.scale(zero_center=False)",
                SCALE_AS_TRAINED_UNCENTRED,
            ),
            False: (
                "normalised and log-transformed, not scaled",
                "pass the log-normalised values (without sc.pp.scale), e.g. from adata.raw or "
                "a layer that keeps them",
            ),
            None: (
                "log-normalised, or scaled without centring",
                "pass the values prepared as the training cells' were",
            ),
        }[scaled]
    warnings.warn(
        f"adata.{where} {found} ({training}): the network places such cells where they do not "
        f"belong. Prepare the new cells as the model's were: {remedy}.",
        UserWarning,
        stacklevel=caller_stacklevel(),
    )
    return True


def warn_if_normalised_unlike_training(
    summary: MatrixSummary, where: str, trained_gene_scale: float | None
) -> bool:
    """Warn where new cells spread far more than a scaling model's training cells did.

    The model (trained with scale=True) z-scores genes itself, with its training cells' means
    and scales; genes that spread more, as counts normalised to a larger total do, land far
    from the training cells then: 10X PBMC, a model of 3,000 cells normalised to their median
    total and log-transformed; 1,271 new cells normalised to 10,000 instead spread 3.5 times
    as much and got other clusters (ARI 0.86 against those of the same cells prepared as in
    training), normalised to a million 10 times as much (0.76). Return whether it warned.
    """
    if summary.is_counts or summary.counts_transform is not None or summary.n_negative:
        return False  # warned of on their own
    return _warn_if_spread_differs(
        summary,
        where,
        trained_gene_scale,
        remedy="the same normalisation (sc.pp.normalize_total's target_sum) and log "
        "transformation as theirs; the model scales them itself",
    )


def _warn_if_spread_differs(
    summary: MatrixSummary, where: str, trained_gene_scale: float | None, remedy: str | None = None
) -> bool:
    """Warn where the new cells' genes spread more than twice as much as the training cells'.

    E.g. cells corrected by ComBat and then scaled, for a model of corrected ones (ARI against
    the training labels 0.88 -> 0.31), which negative values alone do not tell apart. Less
    spread is no sign: the new cells may be of fewer types.
    """
    if summary.shape[0] < SPREAD_MIN_CELLS:
        return False
    new_scale = summary.median_gene_scale
    if trained_gene_scale is None or new_scale is None or trained_gene_scale <= 0:
        return False
    factor = new_scale / trained_gene_scale
    if factor <= SPREAD_FACTOR:
        return False
    if remedy is None:
        if new_scale >= SCALED_GENE_SCALE and trained_gene_scale < SCALED_GENE_SCALE:
            remedy = "the training cells were not scaled, so leave out sc.pp.scale"
        elif trained_gene_scale >= SCALED_GENE_SCALE:
            remedy = (
                f"the same normalisation and log transformation as theirs; then {SCALE_AS_TRAINED}"
            )
        else:
            remedy = "the same normalisation, log transformation and scaling as theirs"
    warnings.warn(
        f"adata.{where}'s genes spread {factor:.2g} times as much as the model's training cells' "
        f"(a median standard deviation of {new_scale:.2g} against {trained_gene_scale:.2g}): the "
        "network places such cells where they do not belong. Prepare the new cells as the "
        f"model's were: {remedy}.",
        UserWarning,
        stacklevel=caller_stacklevel(),
    )
    return True


# Above this share of judged cells stepping by more than 1, the counts look multiplied.
MULTIPLIED_COUNTS_SHARE = 0.5


def warn_if_not_like_raw_counts(
    summary: MatrixSummary, where: str, *, mapping: bool = False
) -> None:
    """Warn about counts scDCC's ZINB model does not fit: multiplied, or only 0s and 1s."""
    warn_if_multiplied_counts(summary, where, mapping=mapping)
    warn_if_binary(summary, where)


def warn_if_multiplied_counts(summary: MatrixSummary, where: str, *, mapping: bool = False) -> None:
    """Warn about integers that step by more than 1: scDCC's ZINB model is for raw counts."""
    alternative = "" if mapping else ", or use tl.desc on log-normalised data"
    share = summary.share_on_coarse_step
    if share <= MULTIPLIED_COUNTS_SHARE:
        return
    smallest = float(np.median(summary.smallest_positive[summary.coarse_step_rows]))
    warnings.warn(
        f"adata.{where} holds integers that do not step like raw counts: in {share:.0%} of the "
        f"cells with {MIN_JUDGED_VALUES} or more non-zero values, the smallest is 2 or more "
        f"(median {smallest:,.0f}) and many values equal it, as the 1s of raw counts do. "
        "Counts multiplied by a factor, or normalised (CPM, normalize_total) and rounded, look "
        "like this. scDCC's ZINB model is fitted to raw counts; on worm neurons, counts x 1,000 "
        "lowered its ARI from 0.42 to 0.29 and rounded CPM to 0.28 (on 10X PBMC it held). Pass "
        f"the raw UMI or read counts (`layer=`){alternative}.",
        UserWarning,
        stacklevel=caller_stacklevel(),
    )


# Below this median distance of the non-zero values from whole numbers, non-integer counts are
# estimated counts, to be rounded: normalised or log-transformed values lie about 0.25 from them
# (uniform fractional parts); counts with 5-15% fractional values (EM), or minus an ambient share
# (SoupX: 0.975, 1.95), far nearer.
ESTIMATED_COUNTS_DISTANCE = 0.1


# Binarised data (detection calls, ATAC peaks) hold only 0 and 1; real counts of this many
# values, and of this many per cell on average, hold some 2s and more (counts so shallow that
# they do not, about one per cell, can hold only 1s).
MIN_BINARY_VALUES = 500
MIN_BINARY_VALUES_PER_CELL = 5


def warn_if_binary(summary: MatrixSummary, where: str) -> None:
    """Warn about counts that are all 0 or 1: scDCC's ZINB model is for counts."""
    # for non-negative integers, v * v == v only for 0 and 1
    n_ones = summary.sum_of_squares
    if (
        not summary.is_counts
        or n_ones < max(MIN_BINARY_VALUES, MIN_BINARY_VALUES_PER_CELL * summary.shape[0])
        or n_ones != summary.row_sums.sum()
    ):
        return
    warnings.warn(
        f"adata.{where} holds only 0s and 1s: binarised data (detection calls, ATAC peaks)? "
        "scDCC's ZINB model is fitted to counts; pass the counts if there are any (`layer=`).",
        UserWarning,
        stacklevel=caller_stacklevel(),
    )


def rounding_lines(where: str, *, view: bool = False) -> str:
    """Return the lines that round ``adata.<where>``'s values (a view made actual first)."""
    first = "`adata = adata.copy()` (adata is a view), then " if view else ""
    return (
        f"{first}`adata.{where}.data = np.round(adata.{where}.data)` for a sparse matrix "
        f"(`adata.{where} = np.round(adata.{where})` for a dense one)"
    )


def counts_with_float_noise(summary: MatrixSummary, where: str, *, view: bool) -> str | None:
    """Say so where the values lie within 1e-3 of whole numbers (counts through a float)."""
    offset = summary.non_integer_offset
    if summary.n_negative or offset is None or offset >= 1e-3:
        return None
    return (
        f"it has values such as {summary.example_non_integer!r}, within {offset:.1g} of whole "
        "numbers: counts that went through a float conversion? Round them first, e.g. "
        f"{rounding_lines(where, view=view)}"
    )


def check_counts(
    summary: MatrixSummary,
    where: str,
    *,
    raw_hint: bool = False,
    found_by_name: bool = False,
    view: bool = False,
    count_layers: Sequence[str] = (),
) -> None:
    """Refuse anything but finite non-negative integers, saying what was found.

    `found_by_name`: the matrix is ``layers['counts']``, read because of its name (no `layer`
    was given); the message then says how to read ``X`` instead. `view`: the AnnData is a view,
    whose matrices a line such as ``adata.X.data = ...`` would change in a temporary copy only;
    the advice then makes it actual first. `count_layers`: the layers that hold counts, named
    as the ones to read.
    """
    check_finite(summary, where)
    first = "`adata = adata.copy()` (adata is a view), then " if view else ""
    float_noise = counts_with_float_noise(summary, where, view=view)
    if summary.is_counts:
        totals = summary.row_sums
        if totals.size and totals.max() > FLOAT32_MAX:  # the size factors are float32
            raise ValueError(
                f"adata.{where} has cells whose total count is up to {totals.max():.3g}, beyond "
                f"float32's range ({FLOAT32_MAX:.3g}), in which scdcc computes the size "
                f"factors; no read count is that large: find the cells with "
                f"`np.asarray(adata.{where}.sum(axis=1)).ravel() > 3e38` and leave them out."
            )
        return
    if summary.n_negative:
        found = f"it has {summary.n_negative} negative value(s) (scaled or centred data?)"
    elif float_noise:
        found = float_noise
    elif summary.counts_transform is not None:
        inverse = COUNT_TRANSFORMS[summary.counts_transform][0]
        found = (
            f"its values are {summary.counts_transform} (e.g. "
            f"{summary.example_non_integer:.4g}). Pass the raw counts; where only these are "
            f"left, {first}`adata.{where}.data = "
            f"np.round({inverse.format(x=f'adata.{where}.data')})` "
            f"recovers them for a sparse matrix (`adata.{where} = "
            f"np.round({inverse.format(x=f'adata.{where}')})` for a dense one)"
        )
    elif (
        summary.median_whole_distance is not None
        and summary.median_whole_distance < ESTIMATED_COUNTS_DISTANCE
    ):
        found = (
            f"most of its non-zero values are whole numbers or lie near them, but some are "
            f"fractional (e.g. {summary.example_non_integer:.4g}): counts estimated by an EM "
            "quantifier (alevin-fry, salmon, STARsolo's multi-mapper EM) or with ambient RNA "
            f"removed (SoupX) look like this. Round them first, e.g. "
            f"{rounding_lines(where, view=view)}"
        )
    else:
        found = (
            f"it has non-integer values such as {summary.example_non_integer!r}: it looks "
            "normalised or log-transformed"
        )
    rounding_helps = summary.median_whole_distance is not None and (
        summary.median_whole_distance < ESTIMATED_COUNTS_DISTANCE
        or summary.non_integer_offset < 1e-3
    )
    if count_layers:
        raise ValueError(
            f"adata.{where} does not hold raw counts (non-negative integers): {found}. "
            + counts_layer_advice(count_layers)
            + "."
        )
    if rounding_helps and not summary.n_negative and summary.counts_transform is None:
        # where the counts are is not in question
        raise ValueError(
            f"adata.{where} does not hold raw counts (non-negative integers): {found}."
        )
    hint = (
        " adata.raw holds a matrix too; if it has counts, "
        "`adata.layers['counts'] = adata.raw[:, adata.var_names].X` puts those of adata's genes "
        "where scdcc reads them."
        if raw_hint
        else ""
    )
    how = HOW_TO_PASS_COUNTS
    if found_by_name:
        how = (
            f"scdcc reads raw counts from adata.{where} when there is such a layer; if adata.X "
            f"holds them, rename that layer (`adata.layers['lognorm'] = "
            f"adata.layers.pop('counts')`), or pass `layer=` naming the layer with the counts."
        )
    raise ValueError(
        f"adata.{where} does not hold raw counts (non-negative integers): {found}. {how}{hint}"
    )
