from __future__ import annotations

import numbers
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from anndata import AnnData

if TYPE_CHECKING:
    from matplotlib.figure import Figure

from ._utils import (
    check_figure_options,
    check_result,
    closes_figures_on_error,
    cluster_categories,
    cluster_colors,
    finish,
    turn_long_tick_names,
)

# Inches: the default figure stops growing with the number of clusters here.
MAX_FIGURE_WIDTH = 18.0


@closes_figures_on_error
def probabilities(
    adata: AnnData,
    key: str = "scdcc",
    *,
    threshold: float = 0.5,
    max_cells: int = 5000,
    cmap: str = "viridis",
    palette=None,
    figsize: tuple[float, float] | None = None,
    show: bool | None = None,
    save=None,
) -> Figure | None:
    """Soft cluster assignments, and which cells are uncertain.

    Left: the soft assignment matrix ``obsm[key + '_probs']`` as a heatmap, one row per cell,
    cells grouped by their assigned cluster and sorted by confidence within it (confident cells
    at the top of each block). Right: the distribution of the confidence
    ``obs[key + '_confidence']`` in each cluster, with the share of cells below `threshold`.

    Parameters
    ----------
    adata
        AnnData with the results of :func:`scdeepclust.tl.desc` or :func:`scdeepclust.tl.scdcc`.
    key
        The `key_added` of the run.
    threshold
        Confidence below which a cell counts as uncertain (dashed line, percentages).
    max_cells
        Show at most this many rows in the heatmap (evenly spaced in the sorted order, so every
        cluster keeps its share); the confidence panel always uses all cells.
    cmap
        Colormap of the heatmap.
    palette
        Cluster colours (list, dict by cluster or colormap name); default: scanpy's colours of
        ``obs[key]``.
    figsize
        Size of the figure.
    show
        Show the figure (default ``sc.settings.autoshow``); with ``show=False`` the figure is
        returned instead: save it with ``fig.savefig(path)``. In Jupyter, assign it
        (``fig = ...``) or end the line with ``;``: a Figure left as a cell's value is drawn
        twice, as matplotlib's figures are.
    save
        Deprecated, see :func:`scdeepclust.pl.umap`; its default file name here is
        ``probabilities_<key>``.

    Returns
    -------
    The :class:`~matplotlib.figure.Figure` when ``show=False`` (axes: cluster strip, heatmap,
    colour bar, confidence).
    """
    import matplotlib.pyplot as plt

    if isinstance(threshold, bool | np.bool_) or not (
        isinstance(threshold, numbers.Real) and 0 <= threshold <= 1
    ):
        raise ValueError(f"threshold must be a number between 0 and 1, got {threshold!r}.")
    if isinstance(max_cells, bool | np.bool_) or not (
        isinstance(max_cells, numbers.Integral) and max_cells >= 1
    ):
        raise ValueError(f"max_cells must be an integer >= 1, got {max_cells!r}.")
    check_figure_options(figsize=figsize)
    keys = check_result(adata, key, "probabilities", "confidence")
    probs = np.asarray(adata.obsm[keys["probabilities"]], dtype=np.float32)
    stored = adata.obs[keys["confidence"]]
    if not pd.api.types.is_float_dtype(stored.dtype):  # read as numbers, labels 0, 1, 2 drew
        raise ValueError(
            f"adata.obs[{keys['confidence']!r}] holds {stored.dtype} values, not the run's "
            f"confidences (another run's key_added may have written over it); run the tool "
            "again, or with another key_added."
        )
    confidence = np.asarray(stored, dtype=np.float32)
    labels = cluster_categories(adata, key)
    categories = [str(c) for c in labels.categories]
    codes = labels.codes
    column_names = _column_names(categories, codes, probs)
    if column_names is None:
        beyond = [c for c in categories if _is_number(c) and int(c) >= probs.shape[1]]
        raise ValueError(
            f"obs[{key!r}] has cluster(s) {beyond} without a column among the "
            f"{probs.shape[1]} of obsm[{keys['probabilities']!r}]: the labels and the soft "
            "assignments come from different runs (e.g. after anndata.concat of two results). "
            "Run the tool on the combined data."
        )
    sums = probs.sum(axis=1)
    cut = np.isfinite(sums) & (np.abs(sums - 1) > 1e-3)
    if cut.any():  # an inner anndata.concat keeps the columns the runs share
        raise ValueError(
            f"The soft assignments of {int(cut.sum())} cells in obsm[{keys['probabilities']!r}] "
            f"do not sum to 1 (e.g. {float(sums[cut][0]):.3f}): they lost columns, as "
            "anndata.concat of two runs with different numbers of clusters leaves them. Run the "
            "tool on the combined data, or draw each run's cells apart."
        )
    colors = cluster_colors(adata, key, palette)

    # cells without a cluster (added after the run, e.g. by anndata.concat) have no row
    clustered = np.flatnonzero(codes >= 0)
    # by cluster, then by falling confidence
    order = clustered[np.lexsort((-confidence[clustered], codes[clustered]))]
    shown = order
    if len(order) > max_cells:
        shown = order[np.linspace(0, len(order) - 1, max_cells).round().astype(int)]
    shown_codes = codes[shown]

    k = len(categories)
    if figsize is None:
        # wider with more clusters up to a page, and taller with it: 29 clusters made a strip
        # of 30 x 4.8 inches, unreadable at a notebook's width
        width = min(MAX_FIGURE_WIDTH, max(9.0, 4.0 + 0.55 * k + 0.35 * probs.shape[1]))
        figsize = (width, max(4.8, width / 3))
    fig = plt.figure(figsize=figsize, layout="constrained")
    grid = fig.add_gridspec(
        1, 4, width_ratios=[0.35, max(3.0, 0.35 * probs.shape[1]), 0.18, max(3.0, 0.55 * k)]
    )
    strip_ax = fig.add_subplot(grid[0])
    heat_ax = fig.add_subplot(grid[1], sharey=strip_ax)
    cbar_ax = fig.add_subplot(grid[2])
    conf_ax = fig.add_subplot(grid[3])

    # Cluster strip beside the heatmap: which block of rows is which cluster.
    from matplotlib.colors import ListedColormap

    strip = np.where(shown_codes < 0, np.nan, shown_codes).astype(float)[:, None]
    strip_ax.imshow(
        strip,
        aspect="auto",
        cmap=ListedColormap(colors),
        vmin=-0.5,
        vmax=k - 0.5,
        interpolation="nearest",
    )
    boundaries = np.flatnonzero(np.diff(shown_codes)) + 0.5
    centers, names = [], []
    min_gap = 0.028 * len(shown_codes)  # keep tick labels of tiny blocks from overlapping
    for code in np.unique(shown_codes[shown_codes >= 0]):
        rows = np.flatnonzero(shown_codes == code)
        if centers and rows.mean() - centers[-1] < min_gap:
            continue
        centers.append(rows.mean())
        names.append(categories[code])
    strip_ax.set_yticks(centers, names, fontsize=_tick_size(len(names)))
    strip_ax.set_xticks([])
    strip_ax.set_ylabel(f"cells, by {key} cluster")
    for spine in strip_ax.spines.values():
        spine.set_visible(False)

    image = heat_ax.imshow(
        probs[shown],
        aspect="auto",
        cmap=cmap,
        vmin=0.0,
        vmax=1.0,
        interpolation="nearest",
        rasterized=True,
    )
    for y in boundaries:
        heat_ax.axhline(y, color="white", linewidth=0.8)
    heat_ax.set_xticks(range(probs.shape[1]), column_names, fontsize=_tick_size(probs.shape[1]))
    turn_long_tick_names(heat_ax, column_names)
    heat_ax.tick_params(axis="y", left=False, labelleft=False)
    heat_ax.set_xlabel("soft assignment to cluster")
    subsampled = f", {len(shown)} of {len(order)} shown" if len(shown) < len(order) else ""
    unclustered = len(codes) - len(order)
    if unclustered:
        subsampled += f"; {unclustered} without a cluster left out"
    heat_ax.set_title(f"{key}: soft assignments ({len(order)} cells{subsampled})", fontsize=10)
    fig.colorbar(image, cax=cbar_ax, label="probability")
    # sc.set_figure_params turns the grid on, which would cross the images
    for image_ax in (strip_ax, heat_ax, cbar_ax):
        image_ax.grid(False)

    _confidence_panel(conf_ax, confidence, codes, categories, colors, threshold, key)
    return finish(fig, f"probabilities_{key}", show=show, save=save, returned=fig)


def _is_number(name: str) -> bool:
    # "²" and "١" are digits to str.isdigit, and int() refuses the first: names, not numbers
    return name.isascii() and name.isdigit()


def _column_names(categories: list[str], codes: np.ndarray, probs: np.ndarray) -> list[str] | None:
    """Name column j of the soft assignments, which is the run's cluster "j".

    Categories that are the run's numbers (with leading zeros or not) name their own columns by
    their spelling, unless most of them hold their cells in another column each (clusters
    numbered again, e.g. from 1 after one was left out), or one holds its cells in the column of
    another category (names swapped, or shifted down after a merge): the refinement moves cells
    into a column no longer claimed, not into one another cluster moved out of. Other names
    (annotations such as "T cells", numbers beyond the columns) name the column most of their
    cells are assigned to, where no other category claims it; the other columns keep their
    numbers (where the category of that number holds its cells there, it names it), in brackets
    where a category holding cells elsewhere took that name. None when numbered categories
    holding cells outnumber the columns (labels and soft assignments of different runs).
    """
    n_columns = probs.shape[1]
    assigned = probs.argmax(1)
    claims: dict[str, int] = {}
    for code, name in enumerate(categories):
        cells = codes == code
        if cells.any():
            claims[name] = int(np.bincount(assigned[cells], minlength=n_columns).argmax())
    # a user's zero-padded names ("00", "01") are the numbers written their way
    spellings: dict[int, list[str]] = {}
    for name in claims:
        if _is_number(name):
            spellings.setdefault(int(name), []).append(name)
    numbers = [
        names[0] if len(names := spellings.get(j, [])) == 1 else str(j) for j in range(n_columns)
    ]
    numbered = all(_is_number(name) for name in claims)
    if numbered and all(int(name) < n_columns for name in claims):
        distinct = len(set(claims.values())) == len(claims)
        moved = {int(name): column for name, column in claims.items() if column != int(name)}
        claimed = {int(name) for name in claims}
        renamed = any(column in claimed for column in moved.values())
        if not (distinct and (2 * len(moved) > len(claims) or renamed)):
            return numbers
    elif numbered and len(claims) > n_columns:
        return None
    holders: dict[int, list[str]] = {}
    for name, column in claims.items():
        holders.setdefault(column, []).append(name)
    taken = set(claims)  # a category without cells is drawn nowhere: no name to tell apart
    return [
        holders[j][0]
        if len(holders.get(j, [])) == 1
        else number
        if number in holders.get(j, []) or number not in taken
        else f"({number})"
        for j, number in enumerate(numbers)
    ]


def _confidence_panel(ax, confidence, codes, categories, colors, threshold, key):
    positions, data, used_colors, used_names, below = [], [], [], [], []
    for code, name in enumerate(categories):
        values = confidence[codes == code]
        if not len(values):
            continue
        positions.append(len(positions))
        data.append(values)
        used_colors.append(colors[code])
        used_names.append(name)
        below.append(float(np.mean(values < threshold)))
    violin_at = [i for i, v in enumerate(data) if len(v) > 1 and np.ptp(v) > 0]
    if violin_at:
        parts = ax.violinplot(
            [data[i] for i in violin_at],
            positions=violin_at,
            widths=0.8,
            showextrema=False,
            showmedians=False,
        )
        for body, i in zip(parts["bodies"], violin_at):
            body.set_facecolor(used_colors[i])
            body.set_edgecolor("black")
            body.set_linewidth(0.5)
            body.set_alpha(0.8)
    for i, values in enumerate(data):
        q1, median, q3 = np.percentile(values, [25, 50, 75])
        ax.vlines(i, q1, q3, color="black", linewidth=2.5)
        ax.scatter([i], [median], color="white", edgecolor="black", s=14, zorder=3)
        if i not in violin_at:  # a single cell, or all equal: show the points
            ax.scatter(np.full(len(values), i), values, color=used_colors[i], s=10, zorder=2)
        ax.text(
            i,
            1.015,
            f"{100 * below[i]:.0f}%",
            ha="center",
            va="bottom",
            fontsize=_tick_size(len(data), small=7),
            rotation=90 if len(data) > 12 else 0,
        )
    ax.axhline(threshold, color="grey", linestyle="--", linewidth=0.8)
    ax.set_xticks(range(len(used_names)), used_names, fontsize=_tick_size(len(used_names)))
    turn_long_tick_names(ax, used_names)
    ax.set_xlim(-0.6, len(data) - 0.4)
    low = min(float(confidence.min()), threshold) if len(confidence) else 0.0
    ax.set_ylim(max(0.0, low - 0.05), 1.09 if len(data) <= 12 else 1.14)
    ax.set_xlabel(f"{key} cluster")
    ax.set_ylabel("confidence")
    ax.set_title(f"confidence per cluster (on top: % of cells below {threshold:g})", fontsize=10)
    ax.spines[["top", "right"]].set_visible(False)


def _tick_size(n: int, small: float = 6.0) -> float:
    return 9.0 if n <= 12 else (7.5 if n <= 24 else small)
