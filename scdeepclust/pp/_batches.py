"""The batch of each cell (`batch_key`).

Integer codes for the networks, and the categories that a trained model keeps so that new cells
are coded the same way.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from anndata import AnnData

from .._messages import caller_stacklevel
from .._missing import MISSING_AS_TEXT


class BatchWarning(UserWarning):
    """A `batch_key` column of one batch, of tiny batches, or with missing ones as text ('nan')."""


@dataclass(frozen=True)
class BatchCovariate:
    """Batch codes 0..len(categories)-1 of the cells, from `adata.obs[key]`."""

    key: str
    categories: tuple[str, ...]
    codes: np.ndarray  # int64, (n_obs,)

    @property
    def n_batches(self) -> int:
        return len(self.categories)

    def sizes(self) -> np.ndarray:
        """Cells per batch, in the order of `categories`.

        An array, not a dict by name: names with '/' do not survive an h5ad round trip as keys.
        """
        return np.bincount(self.codes, minlength=self.n_batches).astype(np.int64)


def _column(
    adata: AnnData,
    key: str,
    advice: str = "Give every cell a batch (e.g. a category 'unknown'), or leave those cells out.",
) -> pd.Series:
    if not isinstance(key, str):
        raise TypeError(f"batch_key must be the name of an adata.obs column, not {key!r}.")
    if key not in adata.obs:
        raise KeyError(
            f"batch_key {key!r} is not a column of adata.obs; columns: {list(adata.obs.columns)}."
        )
    column = adata.obs[key]
    missing = column.isna().to_numpy()
    if missing.any():
        raise ValueError(
            f"{int(missing.sum())} cell(s) have no batch in adata.obs[{key!r}]. {advice}"
        )
    return column


# Below this a batch's own gene means and spreads (its scaling) say little.
MIN_BATCH_CELLS = 10


def _warn_if_missing_as_text(key: str, categories: list[str], sizes: np.ndarray) -> None:
    found = [
        f"{str(c)!r} ({n} cell{'s' if n != 1 else ''})"
        for c, n in zip(categories, sizes)
        if n > 0 and str(c).strip().lower() in MISSING_AS_TEXT
    ]
    if not found:
        return
    warnings.warn(
        f"adata.obs[{key!r}] names batch(es) {', '.join(found)}, the text that `astype(str)` "
        "(or R) makes of a missing value: those cells are corrected as one batch of their own. If "
        "their batch is unknown, give them the batch they came from, or leave them out; if it "
        "is a real batch name, ignore this warning.",
        BatchWarning,
        stacklevel=caller_stacklevel(),
    )


def batch_covariate(
    adata: AnnData, key: str | None, *, for_recipe: bool = False
) -> BatchCovariate | None:
    """Return the batches of `adata.obs[key]`, or `None` without a key.

    Categories keep the order of a categorical column (unused ones dropped), else sorted; a
    single batch gives a warning (`for_recipe`: in the terms of `pp.recipe`, which trains
    nothing).
    """
    if key is None:
        return None
    column = _column(adata, key)
    if isinstance(column.dtype, pd.CategoricalDtype):
        column = column.cat.remove_unused_categories()
        categories = [str(c) for c in column.cat.categories]
        values = column.astype(str).to_numpy()
    else:
        values = column.astype(str).to_numpy()
        categories = sorted(set(values))
        distinct = len(pd.unique(column.to_numpy(dtype=object)))
        if distinct > len(categories):  # 1 and "1" are one batch as text
            raise ValueError(
                f"adata.obs[{key!r}] holds {distinct} distinct values that read as "
                f"{len(categories)} batch names ({categories[:10]}): values such as 1 and '1', "
                "which the batches are named by as text. Give the batches "
                f"distinct names, e.g. `adata.obs[{key!r}] = adata.obs[{key!r}].astype(str)` "
                "where equal text is one batch."
            )
    if len(set(categories)) != len(categories):
        raise ValueError(
            f"adata.obs[{key!r}] has categories that are equal as text "
            f"({categories}); give the batches distinct names."
        )
    if len(categories) < 2:
        differs = (
            "the genes are chosen as without batch_key (the tools' runs with it would still "
            "differ from runs without it)"
            if for_recipe
            else "yet the run differs from one without batch_key (the network takes the batch "
            "as an input, and the tools' settings for batches apply)"
        )
        warnings.warn(
            f"adata.obs[{key!r}] names a single batch ({categories[0]!r}): there is no batch "
            f"effect to correct, {differs}; leave it out, or check that the column is the one "
            "you meant.",
            BatchWarning,
            stacklevel=caller_stacklevel(),
        )
    codes = pd.Index(categories).get_indexer(values).astype(np.int64)
    sizes = np.bincount(codes, minlength=len(categories))
    if len(categories) > 1 and sizes.max() == 1:  # scanpy's per-batch genes fail on it
        raise ValueError(
            f"adata.obs[{key!r}] gives every cell a batch of its own ({len(categories)} "
            "batches of one cell): a batch groups the cells of one donor, sample, run or "
            "technology. Name the column that holds that (not one of cell names or barcodes)."
        )
    _warn_if_missing_as_text(key, categories, sizes)
    # as text: np.str_('nan') (an `astype(str)` of missing values) is no name to quote
    small = [f"{str(c)!r} ({n})" for c, n in zip(categories, sizes) if n < MIN_BATCH_CELLS]
    if len(small) > 10:  # a line, not a page
        small = [*small[:10], f"and {len(small) - 10} more"]
    if small and len(categories) > 1:
        warnings.warn(
            f"batch(es) {', '.join(small)} of adata.obs[{key!r}] hold fewer than "
            f"{MIN_BATCH_CELLS} cells. The genes are scaled within each batch, which leaves a "
            "batch of one cell all zeros and one of a few cells little to go on; merge them "
            "into a batch they resemble, or leave those cells out.",
            BatchWarning,
            stacklevel=caller_stacklevel(),
        )
    return BatchCovariate(key, tuple(categories), codes)


def known_batch_codes(
    adata: AnnData, key: str, categories: list[str], *, trained_key: str | None = None
) -> np.ndarray:
    """Return codes of the cells' batches among those a model was trained on.

    `key` is the column read, `trained_key` the model's own when the caller named another.
    A batch it does not know raises, naming the ones it knows.
    """
    if key not in adata.obs:
        if trained_key is not None and trained_key != key:
            raise KeyError(
                f"batch_key {key!r} is not a column of adata.obs (the model was trained with "
                f"batch_key={trained_key!r}); name the column that holds each cell's batch "
                f"among {list(categories)}."
            )
        raise KeyError(
            f"This model was trained with batch_key={key!r}: adata.obs needs that column, with "
            f"each cell's batch among {list(categories)} (or pass batch_key= naming the column "
            "that holds them)."
        )
    # a new batch name would be refused below: only the model's own batches will do
    advice = (
        f"Give each of them the one of the model's batches {list(categories)} it resembles, "
        "or leave those cells out."
    )
    values = _column(adata, key, advice).astype(str).to_numpy()
    codes = pd.Index(categories).get_indexer(values)
    unknown = codes < 0
    if unknown.any():
        raise ValueError(
            f"{int(unknown.sum())} cell(s) are in batches the model does not know "
            f"({sorted(set(values[unknown]))[:5]}); it knows {list(categories)}. Map cells of a "
            "new batch by training on it, or label them with the known batch they resemble."
        )
    return codes.astype(np.int64)
