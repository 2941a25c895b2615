from __future__ import annotations

from typing import TYPE_CHECKING

from anndata import AnnData

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

from ._utils import (
    check_result,
    closes_figures_on_error,
    figure_of,
    finish,
    panel_colors,
    scanpy_draws_only,
)


@closes_figures_on_error
def embedding(
    adata: AnnData,
    key: str = "scdcc",
    *,
    basis: str | None = None,
    color=None,
    show: bool | None = None,
    save=None,
    **kwargs,
) -> Axes | list[Axes] | Figure | None:
    """Cells on a 2-d embedding coloured by the clusters of `key` (and any other `color`).

    `basis` defaults to ``X_umap`` if present, else the first two dimensions of the method's own
    embedding ``obsm['X_' + key]``. For a UMAP of the method's own embedding, see
    :func:`scdeepclust.pl.umap`.

    Parameters
    ----------
    adata
        AnnData with the results of :func:`scdeepclust.tl.desc` or :func:`scdeepclust.tl.scdcc`.
    key
        The `key_added` of the run.
    basis
        The ``obsm`` key of the coordinates.
    color
        More panels besides the clusters: `obs` columns or genes. Lists of one entry per panel
        (`title`, `vmin`, `vmax`, `vcenter`, `norm`) may give one entry per `color`, as in
        :func:`scdeepclust.pl.umap`.
    show
        Show the figure (default ``sc.settings.autoshow``); with ``show=False`` the axes are
        returned instead: save the figure with ``ax.figure.savefig(path)``.
    save
        Deprecated, see :func:`scdeepclust.pl.umap`; its default file name here is `basis`,
        as in scanpy.
    **kwargs
        Passed to :func:`scanpy.pl.embedding`: `ax`, `legend_loc`, `palette`, `title`, ...

    Returns
    -------
    With ``show=False``, what :func:`scanpy.pl.embedding` returns: an Axes, or a list of Axes
    with several panels; with ``return_fig=True`` the Figure, without ``plt.show()`` (as in
    scanpy; in Jupyter, assign it or end the line with ``;``, else the cell draws it twice).
    """
    import scanpy as sc

    check_result(adata, key)
    if basis is None:
        basis = "X_umap" if "X_umap" in adata.obsm else f"X_{key}"
    if not isinstance(basis, str):
        raise TypeError(
            "basis must be the name of coordinates in adata.obsm ('X_umap', or 'umap' for "
            f"it), one at a time; got {basis!r}. Available: {list(adata.obsm.keys())}."
        )
    colors = panel_colors(adata, key, color, kwargs)
    # scanpy names the axes after the basis it is given: "UMAP1" for "umap", "X_umap1" for
    # "X_umap"; it finds obsm["X_" + name] itself when no obsm[name] stands in the way
    named = basis[2:] if basis.startswith("X_") and basis[2:] not in adata.obsm else basis
    # scanpy only draws; saving and showing are finish's, so that `save` is not handed to
    # scanpy, whose own `save` is deprecated in 1.12
    with scanpy_draws_only():
        returned = sc.pl.embedding(adata, basis=named, color=colors, show=False, **kwargs)
    if kwargs.get("return_fig"):  # scanpy returns that figure without showing it
        show = False
    return finish(figure_of(returned), basis, show=show, save=save, returned=returned)
