from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from anndata import AnnData

if TYPE_CHECKING:
    from matplotlib.axes import Axes

from .._metrics import agreement
from .._missing import warn_if_no_label_as_truth
from ._utils import (
    check_obs_column,
    check_result,
    closes_figures_on_error,
    finish,
    new_figure,
    turn_long_tick_names,
)

_NORMALIZE = {"row": "share of each known label", "column": "share of each cluster", None: "cells"}


@closes_figures_on_error
def compare(
    adata: AnnData,
    key: str,
    truth: str,
    *,
    normalize: str | None = "row",
    annotate: bool | None = None,
    cmap: str = "Blues",
    ax=None,
    figsize: tuple[float, float] | None = None,
    show: bool | None = None,
    save=None,
) -> Axes | None:
    """Clusters against a known labelling: a contingency heatmap with ARI and NMI.

    Rows are the known labels ``obs[truth]``, columns the clusters ``obs[key]``, each cell the
    number of cells in both. Columns are ordered so that each cluster sits under the known label
    it matches best (one-to-one matches found by the Hungarian algorithm, other clusters beside
    the label holding most of their cells), which puts the matches near the diagonal. Cells with
    a missing known label are left out. ARI and NMI (scikit-learn) are in the title.

    Parameters
    ----------
    adata
        AnnData with the results of :func:`scdeepclust.tl.desc` or :func:`scdeepclust.tl.scdcc`.
    key
        The `key_added` of the run.
    truth
        `obs` column with the known labels (e.g. ``'bulk_labels'``, ``'cell_type'``).
    normalize
        Colour by ``'row'`` (how each known label splits over the clusters), ``'column'`` (what
        each cluster is made of) or `None` (cell counts).
    annotate
        Write the cell counts in the boxes; default: when the table is at most 25 x 25.
    cmap
        Colormap.
    ax
        Draw into this axes.
    figsize
        Size of a new figure (default from the table size).
    show
        Show the figure (default ``sc.settings.autoshow``); with ``show=False`` the axes is
        returned instead: save it with ``ax.figure.savefig(path)``.
    save
        Deprecated, see :func:`scdeepclust.pl.umap`; its default file name here is
        ``compare_<key>``.

    Returns
    -------
    The :class:`~matplotlib.axes.Axes` when ``show=False``.
    """
    check_result(adata, key)
    check_obs_column(adata, truth, "truth")
    if normalize not in _NORMALIZE:
        raise ValueError(f"normalize must be 'row', 'column' or None, not {normalize!r}.")
    warn_if_no_label_as_truth(adata.obs[truth], truth, f"adata.obs[{truth!r}]")
    score = agreement(adata.obs[key], adata.obs[truth])
    # the cells the scores count: a cell without a cluster (cells added after the run) too is
    # left out, rather than drawn as a cluster "nan"
    clustered = adata.obs[key].notna().to_numpy()
    known = adata.obs[truth].notna().to_numpy() & clustered
    table = pd.crosstab(
        adata.obs[truth][known].astype(str).to_numpy(),
        adata.obs[key][known].astype(str).to_numpy(),
    )
    table = table.loc[_category_order(adata.obs[truth], table.index)]
    table = table[_category_order(adata.obs[key], table.columns)]
    table = table[table.columns[diagonal_order(table.to_numpy())]]
    counts = table.to_numpy()

    if normalize == "row":
        shown = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    elif normalize == "column":
        shown = counts / np.maximum(counts.sum(0, keepdims=True), 1)
    else:
        shown = counts.astype(float)
    n_rows, n_cols = counts.shape
    if figsize is None:
        figsize = (min(2.5 + 0.5 * n_cols, 16), min(1.8 + 0.38 * n_rows, 14))
    fig, ax = new_figure(figsize, ax)
    image = ax.imshow(shown, cmap=cmap, aspect="auto", vmin=0, interpolation="nearest")
    ax.set_xticks(range(n_cols), table.columns, fontsize=_size(n_cols))
    ax.set_yticks(range(n_rows), table.index, fontsize=_size(n_rows))
    turn_long_tick_names(ax, table.columns)
    if annotate is None:
        annotate = n_rows <= 25 and n_cols <= 25
    if annotate:
        top = shown.max() if shown.size else 0
        for i in range(n_rows):
            for j in range(n_cols):
                if counts[i, j]:
                    dark = top > 0 and shown[i, j] > 0.6 * top
                    ax.text(
                        j,
                        i,
                        str(counts[i, j]),
                        ha="center",
                        va="center",
                        fontsize=min(_size(n_rows), _size(n_cols)) - 1,
                        color="white" if dark else "black",
                    )
    bar = fig.colorbar(image, ax=ax, label=_NORMALIZE[normalize], fraction=0.05, pad=0.02)
    # sc.set_figure_params turns the grid on, which would cross every cell of the table
    for image_ax in (ax, bar.ax):
        image_ax.grid(False)
    ax.set_xlabel(f"{key} cluster")
    ax.set_ylabel(truth)
    ax.set_title(
        f"{key} vs {truth}: ARI {score.ari:.3f}, NMI {score.nmi:.3f}"
        + (
            ""
            if score.n_cells == adata.n_obs
            else f"\n({score.n_cells} cells with a label"
            + ("" if clustered.all() else " and a cluster")
            + ")"
        ),
        fontsize=10,
    )
    return finish(fig, f"compare_{key}", show=show, save=save, returned=ax)


def diagonal_order(counts: np.ndarray) -> np.ndarray:
    """Column order that puts each column under its best-matching row.

    Rows and columns are first paired one to one (Hungarian algorithm, most shared cells); the
    other columns go to the row holding most of their cells. Columns are then sorted by that
    row, and the paired column first, then by falling overlap.
    """
    from scipy.optimize import linear_sum_assignment

    n_rows, n_cols = counts.shape
    if not n_rows or not n_cols:
        return np.arange(n_cols)
    home = counts.argmax(0)
    paired = np.zeros(n_cols, dtype=bool)
    rows, cols = linear_sum_assignment(-counts)
    for r, c in zip(rows, cols):
        if counts[r, c] > 0:
            home[c] = r
            paired[c] = True
    overlap = counts[home, np.arange(n_cols)]
    return np.lexsort((-overlap, ~paired, home))


def _category_order(values: pd.Series, present) -> list:
    """Return `present` labels in the order of the column's categories.

    A column that is not categorical is ordered by its values (numbers as numbers: 2 before 10).
    """
    present = list(present)
    if isinstance(values.dtype, pd.CategoricalDtype):
        ordered = [str(c) for c in values.cat.categories]
    else:
        try:
            ordered = [str(v) for v in sorted(pd.unique(values.dropna()))]
        except TypeError:  # values of mixed types: as found
            return present
    if set(present) <= set(ordered):
        return [c for c in ordered if c in set(present)]
    return present


def _size(n: int) -> float:
    return 9.0 if n <= 15 else (7.5 if n <= 30 else 6.0)
