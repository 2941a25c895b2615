from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
from anndata import AnnData

if TYPE_CHECKING:
    from matplotlib.figure import Figure

from ._utils import check_result, closes_figures_on_error, finish, new_figure, wrap_to_width


@closes_figures_on_error
def n_clusters(
    adata: AnnData,
    key: str = "scdcc",
    *,
    ax=None,
    figsize: tuple[float, float] = (5.5, 3.5),
    show: bool | None = None,
    save=None,
) -> Figure | None:
    """Plot how the number of clusters of run `key` was chosen.

    The plot shows every candidate's score (the mean agreement of k-means partitions of random
    subsamples, ± its spread), the tolerance band below the best score, the choice and the
    runner-up.

    Parameters
    ----------
    adata
        AnnData with a result of :func:`scdeepclust.tl.scdcc` or :func:`scdeepclust.tl.desc`
        whose number of clusters was searched (``uns[key]['n_clusters_search']``).
    key
        The `key_added` of the run.
    ax
        Draw into this matplotlib axes instead of a new figure.
    figsize
        Size of a new figure.
    show
        Show the figure (default ``sc.settings.autoshow``); with ``show=False`` the figure is
        returned instead: save it with ``fig.savefig(path)``. In Jupyter, assign it
        (``fig = ...``) or end the line with ``;``: a Figure left as a cell's value is drawn
        twice, as matplotlib's figures are.
    save
        Deprecated, see :func:`scdeepclust.pl.umap`; its default file name here is
        ``n_clusters_<key>``.

    Returns
    -------
    matplotlib.figure.Figure or None
        The figure when ``show=False``; otherwise it is shown and `None` is returned.
    """
    keys = check_result(adata, key, "uns", reads_obs=False)
    uns = adata.uns[keys["uns"]]
    search = uns.get("n_clusters_search") if isinstance(uns, Mapping) else None
    if not isinstance(search, Mapping) and isinstance(uns, Mapping) and "model_version" in uns:
        raise KeyError(
            f"adata.uns[{key!r}] holds cells mapped onto a trained model (tl.map_to_model), "
            "which searches nothing; plot the run the model came from."
        )
    if not isinstance(search, Mapping):
        raise KeyError(
            f"adata.uns[{key!r}] has no 'n_clusters_search': the run was given its number of "
            "clusters or a Leiden resolution (both tools' default). Run it with "
            "n_clusters=(lo, hi) to search; tl.scdcc with label_key and no n_clusters searches "
            "too."
        )
    k = np.asarray(search["n_clusters"], dtype=int)
    score = np.asarray(search["score"], dtype=float)
    spread = np.asarray(search["spread"], dtype=float)
    chosen = int(search["chosen"])

    def score_of(candidate: int) -> float:
        return float(score[k == candidate][0])

    from matplotlib.ticker import MaxNLocator

    fig, ax = new_figure(figsize, ax)
    best = score.max()
    tolerance = float(search.get("tolerance", 0.0))
    ax.axhspan(best - tolerance, best, color="#dceaf7", zorder=0, label="within tolerance of best")
    ax.errorbar(
        k, score, yerr=spread, fmt="o-", color="C0", ms=4, capsize=2, label="score ± spread"
    )
    ax.plot([chosen], [score_of(chosen)], "o", ms=11, mfc="none", mec="C3", mew=2)

    def inside(candidate: int) -> str:  # a note centred on the first or last k was cut off
        return "left" if candidate == k.min() else "right" if candidate == k.max() else "center"

    ax.annotate(
        f"chosen: {chosen}",
        (chosen, score_of(chosen)),
        textcoords="offset points",
        xytext=(0, -18),
        ha=inside(chosen),
        color="C3",
    )
    if "runner_up" in search:
        runner = int(search["runner_up"])
        ax.plot([runner], [score_of(runner)], "s", ms=9, mfc="none", mec="grey", mew=1.5)
        ax.annotate(
            f"runner-up: {runner}",
            (runner, score_of(runner)),
            textcoords="offset points",
            xytext=(0, 10),
            ha=inside(runner),
            color="grey",
        )
    if len(k) <= 12:  # every candidate (one alone got ticks 9.45 ... 10.50)
        ax.set_xticks(k)
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # no "4.25 clusters"
    ax.set_xlabel("number of clusters k")
    ax.set_ylabel("agreement of subsample\nclusterings (ARI)")  # fits a short figure
    title = ax.set_title(f"{key}: choice of the number of clusters")
    # centred over the axes, which the y label's margin pushes right
    title.set_text(wrap_to_width(fig, title.get_text(), title.get_fontsize(), share=0.7))
    ax.legend(loc="lower left", fontsize=8, frameon=False)
    return finish(fig, f"n_clusters_{key}", show=show, save=save, returned=fig)
