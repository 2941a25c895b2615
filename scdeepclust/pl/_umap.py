from __future__ import annotations

import hashlib
import warnings
from typing import TYPE_CHECKING

import numpy as np
from anndata import AnnData

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

from .._messages import caller_stacklevel
from .._neighbors import plot_neighbors
from .._threads import torch_threads_kept
from ..tl._validate import check_bools, check_int, check_positive
from ._utils import (
    check_result,
    closes_figures_on_error,
    figure_of,
    finish,
    panel_colors,
    result_names,
    scanpy_draws_only,
)


@closes_figures_on_error
def umap(
    adata: AnnData,
    key: str = "scdcc",
    *,
    color=None,
    n_neighbors: int = 15,
    min_dist: float = 0.5,
    random_state: int = 0,
    recompute: bool = False,
    show: bool | None = None,
    save=None,
    **kwargs,
) -> Axes | list[Axes] | Figure | None:
    """UMAP of a run's own embedding ``obsm['X_' + key]``, coloured by its clusters.

    The UMAP is computed on first use and cached: a kNN graph of the embedding under the
    neighbors key ``'neighbors_' + key`` (``uns``, and ``obsp['neighbors_<key>_distances']``,
    ``obsp['neighbors_<key>_connectivities']``), and the coordinates in
    ``obsm['X_umap_' + key]`` (parameters in ``uns['X_umap_' + key]``). So this plot **adds
    these keys to adata**; it never touches the user's ``X_umap`` or ``neighbors``. Later calls
    reuse the cached UMAP as long as the embedding and the settings are unchanged. A subset of
    the cells gets a layout of its own, with a warning (``pl.embedding(adata, key,
    basis='X_umap_' + key)`` draws the subset where the parent's layout put it); a new run of
    the tool under the key removes the cached UMAP and its kNN graph, so that nothing reads
    them as the new run's.

    Parameters
    ----------
    adata
        AnnData with the results of :func:`scdeepclust.tl.desc` or :func:`scdeepclust.tl.scdcc`.
    key
        The `key_added` of the run ("desc", "scdcc", "desc_0.8", ...).
    color
        More panels besides the clusters: `obs` columns (a known cell type, ``key +
        '_confidence'``, ...) or genes. Lists of one entry per panel (`title`, `vmin`, `vmax`,
        `vcenter`, `norm`) may give one entry per `color`: the clusters' panel, drawn first,
        then keeps scanpy's defaults.
    n_neighbors, min_dist, random_state
        Settings of the kNN graph and of :func:`scanpy.tl.umap`. The neighbours are exact up
        to 100,000 cells and approximate above (pynndescent, as in scanpy's default: the exact
        search would take about half an hour on a million cells).
    recompute
        Compute the UMAP again even if a cached one matches.
    show
        Show the figure (default ``sc.settings.autoshow``); with ``show=False`` the axes are
        returned instead: save the figure with ``ax.figure.savefig(path)`` (for a list of
        axes, ``axes[0].figure``).
    save
        Deprecated, as in scanpy 1.12 (a FutureWarning; removed in the next release): save
        through the returned axes instead. Until then it works as in scanpy 1.11: `True`
        (``sc.settings.figdir``), a suffix like ``'_pbmc.png'`` appended to ``umap_<key>`` in
        ``figdir``, or a path (``'out/umap.png'``). ``sc.settings.autosave`` still saves to
        ``figdir``, without a warning.
    **kwargs
        Passed to :func:`scanpy.pl.embedding`: `ax`, `legend_loc`, `palette`, `title`, `size`,
        `ncols`, `frameon`, `return_fig`, ... ``edges=True`` draws the kNN graph this UMAP
        was laid out from (``neighbors_key='neighbors_' + key``) unless `neighbors_key` says
        otherwise.

    Returns
    -------
    With ``show=False``, what :func:`scanpy.pl.embedding` returns: an Axes, or a list of Axes
    with several panels; with ``return_fig=True`` the Figure, without ``plt.show()`` (as in
    scanpy; in Jupyter, assign it or end the line with ``;``, else the cell draws it twice).
    """
    import scanpy as sc

    check_result(adata, key, "embedding")
    if "basis" in kwargs:
        raise ValueError(
            f"pl.umap draws obsm['X_umap_{key}'], the UMAP of the run's own embedding; for "
            "other coordinates use scdeepclust.pl.embedding(adata, key, basis=...)."
        )
    colors = panel_colors(adata, key, color, kwargs)
    # scanpy's umap writes uns['X_umap_<key>'] whole: a run stored under that key lost its
    # history and every other entry
    runs = result_names(adata)
    clashing = [run for run in (f"umap_{key}", f"neighbors_{key}", f"X_umap_{key}") if run in runs]
    if clashing:
        raise ValueError(
            f"The run {clashing[0]!r} holds the keys where pl.umap keeps the UMAP of {key!r} "
            f"(obsm['X_umap_{key}'], uns['X_umap_{key}'], uns['neighbors_{key}']), which "
            "drawing it would overwrite. "
            "Run that tool again with another key_added."
        )
    # scanpy's default graph, obsp['connectivities'], is the user's (of PCA, say), not the one
    # this UMAP was laid out from
    own_edges = bool(kwargs.get("edges")) and "neighbors_key" not in kwargs
    basis = umap_coordinates(
        adata,
        key,
        n_neighbors=n_neighbors,
        min_dist=min_dist,
        random_state=random_state,
        recompute=recompute,
        with_graph=own_edges,
    )
    if (
        len(colors) > 1
        and "wspace" not in kwargs
        and kwargs.get("legend_loc", "right margin") == ("right margin")
    ):
        kwargs["wspace"] = _legend_space(adata, colors[:-1])
    if own_edges:
        kwargs["neighbors_key"] = f"neighbors_{key}"
    with scanpy_draws_only():
        returned = sc.pl.embedding(adata, basis=basis, color=colors, show=False, **kwargs)
    fig = figure_of(returned)
    for ax in fig.axes:  # scanpy names the axes after the obsm key ("X_umap_scdcc1")
        if ax.get_xlabel() == f"{basis}1":
            ax.set_xlabel("UMAP1")
            ax.set_ylabel("UMAP2")
    if kwargs.get("return_fig"):  # scanpy returns that figure without showing it
        show = False
    return finish(fig, f"umap_{key}", show=show, save=save, returned=returned)


def _check_umap_settings(n_neighbors, min_dist, recompute) -> None:
    """Refuse settings that scanpy would take in another sense (2.5 neighbours ran as 2)."""
    check_int("n_neighbors", n_neighbors, minimum=2)
    check_positive("min_dist", min_dist, allow_zero=True)
    check_bools(recompute=recompute)


def umap_coordinates(
    adata: AnnData,
    key: str,
    *,
    n_neighbors: int = 15,
    min_dist: float = 0.5,
    random_state: int = 0,
    recompute: bool = False,
    with_graph: bool = False,
) -> str:
    """Compute (or reuse) the UMAP of ``obsm['X_' + key]``; returns its obsm key.

    `with_graph`: the kNN graph it was laid out from must be there too (to draw its edges).
    """
    import scanpy as sc

    embedding_key, umap_key, neighbors_key = f"X_{key}", f"X_umap_{key}", f"neighbors_{key}"
    _check_umap_settings(n_neighbors, min_dist, recompute)
    if adata.n_obs < 4:  # UMAP's spectral start needs more cells than its two dimensions + 1
        raise ValueError(f"A UMAP needs at least 4 cells; adata has {adata.n_obs}.")
    n_neighbors = int(min(n_neighbors, adata.n_obs - 1))
    embedding = np.asarray(adata.obsm[embedding_key])
    missing = ~np.isfinite(embedding).all(axis=1)
    if missing.any():  # scikit-learn's "Input X contains NaN" said nothing of where they came from
        raise ValueError(
            f"adata.obsm[{embedding_key!r}] has no values (NaN) for {int(missing.sum())} of "
            f"{adata.n_obs} cells (e.g. {list(adata.obs_names[missing][:3])}): cells without "
            "this run, as `anndata.concat(..., join='outer')` leaves them. Draw the cells of "
            f"the run, `adata[~np.isnan(adata.obsm[{embedding_key!r}]).any(axis=1)]`, or run "
            "the tool on the combined data (or map the new cells with tl.map_to_model)."
        )
    fingerprint = _fingerprint(embedding, n_neighbors, min_dist, random_state)
    params = adata.uns.get(umap_key, {})
    params = params.get("params", {}) if hasattr(params, "get") else {}
    # the coordinates too: another run's key_added may have written over them ("umap_<key>")
    if (
        not recompute
        and umap_key in adata.obsm
        and params.get("scdeepclust_source") == fingerprint
        and params.get("scdeepclust_coordinates") == _fingerprint(_coordinates(adata, umap_key))
    ):
        graph_kept = neighbors_key in adata.uns and f"{neighbors_key}_connectivities" in adata.obsp
        if with_graph and not graph_kept:  # the same settings give the same graph again
            _graph(adata, embedding_key, n_neighbors, random_state, neighbors_key)
        return umap_key
    if adata.is_view and adata.isbacked:
        # anndata refuses to make such a view actual ("pass a filename"): nowhere to keep it,
        # nor the colours scanpy would write where the file holds none
        parents = (
            f", or draw the cells where the stored layout put them: scdeepclust.pl.embedding("
            f"adata, {key!r}, basis={umap_key!r})"
            if umap_key in adata.obsm and f"{key}_colors" in adata.uns
            else ""
        )
        raise ValueError(
            "adata is a view of a backed AnnData, which cannot keep the UMAP pl.umap would lay "
            f"out for it. Load the cells first, adata = adata.to_memory(){parents}."
        )
    laid_out_on = params.get("scdeepclust_n_cells")
    if not recompute and umap_key in adata.obsm and laid_out_on not in (None, adata.n_obs):
        # scanpy's plots draw a subset where its parent's layout put it; this one would not.
        # More cells than that: coordinates of other objects' layouts, joined (concat)
        earlier = (
            "To draw the cells where the earlier layout put them, use "
            f"scdeepclust.pl.embedding(adata, {key!r}, basis={umap_key!r})."
            if adata.n_obs < laid_out_on
            else "The stored coordinates come from layouts of other objects (joined by "
            "anndata.concat, say), which place their cells apart from each other's."
        )
        warnings.warn(
            f"obsm[{umap_key!r}] holds a UMAP laid out on {int(laid_out_on)} cells, not these "
            f"{adata.n_obs}: pl.umap lays out a new one and writes it to this AnnData (a view "
            f"becomes an object of its own). {earlier}",
            UserWarning,
            stacklevel=caller_stacklevel(),
        )
    _graph(adata, embedding_key, n_neighbors, random_state, neighbors_key)
    with torch_threads_kept():
        sc.tl.umap(
            adata,
            min_dist=min_dist,
            random_state=random_state,
            neighbors_key=neighbors_key,
            key_added=umap_key,
        )
    adata.uns[umap_key]["params"]["scdeepclust_source"] = fingerprint
    adata.uns[umap_key]["params"]["scdeepclust_coordinates"] = _fingerprint(
        _coordinates(adata, umap_key)
    )
    adata.uns[umap_key]["params"]["scdeepclust_n_cells"] = adata.n_obs
    return umap_key


def _graph(adata, embedding_key, n_neighbors, random_state, neighbors_key) -> None:
    plot_neighbors(
        adata,
        use_rep=embedding_key,
        n_neighbors=n_neighbors,
        random_state=random_state,
        key_added=neighbors_key,
    )


def _coordinates(adata: AnnData, umap_key: str) -> np.ndarray:
    return np.asarray(adata.obsm[umap_key], dtype=np.float32)


def _legend_space(adata: AnnData, colors: list[str]) -> float:
    """Space between panels (scanpy's `wspace`, in panel widths) that fits the widest legend.

    Legends are drawn in the right margin; without the room they would run into the next panel.
    """
    import pandas as pd
    from matplotlib import rcParams

    widest = 0.0
    for c in colors:
        if c in adata.obs and isinstance(adata.obs[c].dtype, pd.CategoricalDtype):
            names = [str(x) for x in adata.obs[c].cat.categories]
            n_columns = 1 if len(names) <= 14 else 2 if len(names) <= 30 else 3
            width = n_columns * (0.4 + 0.09 * max((len(n) for n in names), default=0))
            widest = max(widest, width)
    panel_width = float(rcParams["figure.figsize"][0])
    return max(0.75 / panel_width + 0.02, widest / panel_width + 0.05)


def _fingerprint(embedding: np.ndarray, *settings) -> str:
    """Digest the embedding and the UMAP settings: the cache is valid while the digest matches."""
    digest = hashlib.sha1(np.ascontiguousarray(embedding).tobytes())
    digest.update(repr((embedding.shape, str(embedding.dtype), *settings)).encode())
    return digest.hexdigest()
