"""Helpers shared by the plots.

Finding a run's results with clear errors, cluster colours, and scanpy-style show handling
(the figure is returned with ``show=False`` and saved through it).
"""

from __future__ import annotations

import functools
import numbers
import os
import warnings
from collections.abc import Callable, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import ParamSpec, TypeVar

import numpy as np
import pandas as pd
from anndata import AnnData

from .._messages import caller_stacklevel, not_anndata
from .._process import ignoring_warnings
from .._results import is_run_entry, result_keys
from .._serialization import write_atomically

P = ParamSpec("P")
R = TypeVar("R")


def closes_figures_on_error(plot: Callable[P, R]) -> Callable[P, R]:
    """Close the figures `plot` opened when it raises: a failed call leaves none open.

    Whether the error comes from our checks, matplotlib (a bad colour map) or scanpy's
    `embedding`, which has drawn its figure before it reads some of its keywords.
    """

    @functools.wraps(plot)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        import matplotlib.pyplot as plt

        show = kwargs.get("show")
        if show is not None and not isinstance(show, bool | np.bool_):  # "False" showed it
            raise ValueError(
                f"show must be True, False or None (sc.settings.autoshow), got {show!r}."
            )
        before = set(plt.get_fignums())
        try:
            return plot(*args, **kwargs)
        except BaseException:
            for number in set(plt.get_fignums()) - before:
                plt.close(number)
            raise

    return wrapper


# What each plot needs from a run, by the names of `result_keys`.
_WHERE = {
    "labels": "obs",
    "confidence": "obs",
    "embedding": "obsm",
    "probabilities": "obsm",
    "uns": "uns",
}


def result_names(adata: AnnData) -> list[str]:
    """Keys of the clustering runs stored in `adata` (those with labels and an uns entry)."""
    return [
        k
        for k, v in adata.uns.items()
        if isinstance(v, Mapping) and "history" in v and "params" in v and k in adata.obs
    ]


def check_result(adata: AnnData, key: str, *parts: str, reads_obs: bool = True) -> dict[str, str]:
    """Return the keys of run `key` after checking that its `parts` are all in `adata`.

    `parts` are names such as "labels" or "probabilities". When one is missing, a KeyError says
    which, and which runs `adata` does hold, so that a mistyped key is easy to correct.
    `reads_obs`: the plot draws columns of ``obs``, which must then be pandas'.
    """
    if not isinstance(adata, AnnData):
        raise not_anndata(adata)
    if not isinstance(key, str) or not key:
        raise TypeError(f"key must be the non-empty key_added of a run, got {key!r}.")
    if reads_obs and not isinstance(adata.obs, pd.DataFrame):
        # anndata.experimental.read_lazy's: xarray arrays, without pandas' categoricals
        raise ValueError(
            f"adata.obs is read lazily (a {type(adata.obs).__name__}, as "
            "anndata.experimental.read_lazy gives it), and the plot needs its columns in "
            "memory: load the object first, adata = adata.to_memory()."
        )
    keys = result_keys(key)
    missing = [
        f"adata.{_WHERE[p]}[{keys[p]!r}]"
        for p in ("labels",) + tuple(p for p in parts if p != "labels")
        if keys[p] not in getattr(adata, _WHERE[p])
    ]
    # a run's other results there, its uns gone: a join dropped it
    run_left = keys["embedding"] in adata.obsm or keys["confidence"] in adata.obs
    if missing == [f"adata.uns[{keys['uns']!r}]"] and run_left:
        raise KeyError(
            f"adata.uns[{keys['uns']!r}] not found, while obs[{keys['labels']!r}] is there, "
            "as anndata.concat (its default uns_merge=None) and "
            "anndata.experimental.concat_on_disk (whatever its uns_merge) leave joined runs. "
            "Plot the run from the object it was made on, join with anndata.concat(..., "
            "uns_merge='first') to keep the first object's, or run the tool again."
        )
    if missing:
        found = result_names(adata)
        runs = f" Runs in this AnnData: {found}; pass one of them as key=, or" if found else ""
        raise KeyError(
            f"No clustering result {key!r}: {', '.join(missing)} not found.{runs} "
            f"run scdeepclust.tl.desc(adata, key_added={key!r}) or "
            f"scdeepclust.tl.scdcc(adata, n_clusters, key_added={key!r}) first."
        )
    stored = adata.uns.get(keys["uns"])
    ours = is_run_entry(stored)
    if ours and "uns" in parts and "n_clusters" not in stored:
        raise KeyError(joined_runs(keys["uns"], "n_clusters"))
    if isinstance(stored, Mapping) and not ours:
        raise KeyError(
            f"adata.uns[{keys['uns']!r}] is not a scdeepclust result: another tool wrote under "
            f"this key (e.g. sc.tl.leiden(adata, key_added={key!r})), so obs[{key!r}] need not "
            "be the clusters of the soft assignments and embedding left from an earlier run. "
            "Run the scdeepclust tool again, or plot another key."
        )
    return keys


def joined_runs(uns_key: str, entry: str) -> str:
    """Say that `entry` of a run's ``uns`` is gone as anndata.concat leaves joined runs."""
    return (
        f"adata.uns[{uns_key!r}] lacks the run's {entry!r}, as anndata.concat(..., "
        "uns_merge='same' or 'unique') leaves it, keeping only what the joined runs had in "
        "common. Plot the run from the object it was made on, or join with uns_merge='first' "
        "to keep the first object's."
    )


def check_obs_column(adata: AnnData, column: str, what: str) -> None:
    if column not in adata.obs:
        raise KeyError(
            f"{what} {column!r} is not a column of adata.obs; columns: {list(adata.obs.columns)}."
        )


def cluster_categories(adata: AnnData, key: str) -> pd.Categorical:
    labels = adata.obs[key]
    if not isinstance(labels.dtype, pd.CategoricalDtype):
        labels = labels.astype("category")
    return pd.Categorical(labels)


def check_palette_covers(palette: Mapping, column: str, categories: list) -> None:
    """Refuse a palette dict without a colour for each category, naming those it lacks."""
    missing = [c for c in categories if c not in palette]
    if missing:
        raise KeyError(
            f"palette has no colour for the {column} categories {missing}; give one for each "
            f"of {categories}."
        )


def cluster_colors(adata: AnnData, key: str, palette=None) -> list:
    """One colour per category of ``obs[key]``, without writing to `adata`.

    The colours come from `palette` if given (a list, a dict by category or a matplotlib
    colormap name), else from ``uns[key + '_colors']`` as scanpy stores it, else as scanpy
    would choose them: matplotlib's colour cycle where it has enough colours, else scanpy's
    default palettes.
    """
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    categories = list(cluster_categories(adata, key).categories)
    k = len(categories)
    if palette is not None:
        if isinstance(palette, Mapping):
            check_palette_covers(palette, key, categories)
            return [palette[c] for c in categories]
        if isinstance(palette, str):
            cmap = colormaps[palette]
            return [to_hex(cmap(i / max(k - 1, 1))) for i in range(k)]
        palette = list(palette)
        return [palette[i % len(palette)] for i in range(k)]
    from matplotlib.colors import is_color_like

    stored = adata.uns.get(f"{key}_colors")
    # scanpy's palette slot, if it holds colours (not, say, a dict of another run's results)
    if (
        isinstance(stored, list | tuple | np.ndarray)
        and len(stored) >= k
        and all(is_color_like(c) for c in list(stored)[:k])
    ):
        return list(stored)[:k]
    return scanpy_default_colors(k)


def scanpy_default_colors(k: int) -> list:
    """Return the colours scanpy stores for `k` categories that have none.

    Matplotlib's colour cycle where it has enough colours, else scanpy's default palettes.
    """
    from matplotlib import rcParams
    from scanpy.plotting import palettes

    cycle = rcParams["axes.prop_cycle"].by_key().get("color", [])
    if len(cycle) >= k:
        return list(cycle)[:k]
    for default in (palettes.default_20, palettes.default_28, palettes.default_102):
        if k <= len(default):
            return list(default)[:k]
    return ["grey"] * k


def figure_of(returned):
    """Return the figure behind what a plot returned: a Figure, an Axes or a list of Axes."""
    from matplotlib.figure import Figure

    if isinstance(returned, Figure):
        return returned
    return (returned[0] if isinstance(returned, list) else returned).figure


SAVE_DEPRECATED = (
    "Argument `save` of scdeepclust.pl is deprecated and will be removed in the next release "
    "(as scanpy 1.12 deprecates its own). Save through the figure instead: "
    "`fig = sdc.pl.history(adata, key, show=False)` then `fig.savefig(path)`; for the plots "
    "that return axes (umap, embedding, compare), `ax.figure.savefig(path)`, or "
    "`axes[0].figure.savefig(path)` where they return a list of axes (several colours)."
)


def warn_if_saving(save) -> None:
    """Warn that `save=` is deprecated, pointing at the caller of the plot.

    As in scanpy, an explicit `save` that asks for no file (`None`, `False`, ``''``) does not
    warn, and ``sc.settings.autosave`` goes on saving without a warning.
    """
    if save is not None and save is not False and save != "":
        warnings.warn(SAVE_DEPRECATED, FutureWarning, stacklevel=caller_stacklevel())


def _figure_formats() -> set[str]:
    from matplotlib.backend_bases import FigureCanvasBase

    return set(FigureCanvasBase.get_supported_filetypes())


def figure_path(save: bool | str | os.PathLike | None, name: str) -> Path | None:
    """Where the deprecated `save`, or ``sc.settings.autosave``, sends a figure (or `None`).

    Kept only until `save=` is removed; it follows scanpy's convention. `True`:
    ``sc.settings.figdir / (name + plot_suffix + '.' + file_format_figs)``. A string without a
    directory, like scanpy's ``save='_pbmc.pdf'``, is appended to the plot's name in
    ``figdir``; the extension, when it is a known figure format, sets the format. A
    :class:`~pathlib.Path`, or a string with a directory part (``'out/umap.png'``,
    ``'./umap.png'``), is used as the file name as it is. `None` follows
    ``sc.settings.autosave``.
    """
    import scanpy as sc

    if save is None:
        save = sc.settings.autosave
    if save is False or save == "":
        return None
    formats = _figure_formats()
    if save is True:
        return (
            sc.settings.figdir / f"{name}{sc.settings.plot_suffix}.{sc.settings.file_format_figs}"
        )
    text = os.fspath(save)
    as_path = isinstance(save, os.PathLike) or os.sep in text or "/" in text
    stem, ext = os.path.splitext(text)
    ext = ext[1:].lower()
    if ext not in formats:
        stem, ext = text, sc.settings.file_format_figs
    if as_path:
        return Path(f"{stem}.{ext}")
    return sc.settings.figdir / f"{name}{stem}{sc.settings.plot_suffix}.{ext}"


def finish(fig, name: str, *, show: bool | None, save, returned):
    """Show `fig` the way scanpy's plots do; return `returned` when `show` is False.

    scanpy returns plot objects only with ``show=False``, so that a caller saves through them
    (``fig.savefig``). The deprecated `save` still writes a file, with a FutureWarning; so does
    ``sc.settings.autosave``, without one, as in scanpy.
    """
    import matplotlib.pyplot as plt
    import scanpy as sc
    from scanpy import logging as logg

    warn_if_saving(save)
    path = figure_path(save, name)
    if path is not None:
        logg.warning(f"saving figure to file {path}")
        # a failed write leaves an earlier figure there as it was, as the command line's do
        write_atomically(path, lambda tmp: fig.savefig(tmp, dpi=save_dpi(), bbox_inches="tight"))
    # numpy's False too: `is False` lost the figure of show=np.False_
    show = bool(sc.settings.autoshow if show is None else show)
    if show:
        plt.show()
    if path is not None:
        plt.close(fig)
    return None if show else returned


def save_dpi() -> float:
    """Return the resolution figures are written at: ``savefig.dpi`` as the user set it.

    Matplotlib's default (``'figure'``, the screen's 100 dpi or scanpy's 80) gives 150, the
    `dpi_save` of ``sc.set_figure_params``; a number set there or in rcParams is kept, as scanpy
    keeps it.
    """
    from matplotlib import rcParams

    dpi = rcParams["savefig.dpi"]
    return 150 if isinstance(dpi, str) else dpi


@contextmanager
def scanpy_draws_only():
    """Let a scanpy plot draw without saving: `finish` saves the finished figure itself.

    Without this, ``sc.settings.autosave`` would make scanpy write (and close) the figure
    before it is finished, under scanpy's file name. Matplotlib's notice that scanpy's own call
    of ``Colormap.set_bad`` will be deprecated is not the user's: under warnings as errors
    (``python -W error``, pytest's ``-W error``) it stopped every plot.
    """
    import scanpy as sc

    autosave = sc.settings.autosave
    sc.settings.autosave = False
    try:
        with ignoring_warnings(PendingDeprecationWarning, message="The set_bad function"):
            yield
    finally:
        sc.settings.autosave = autosave


def check_figure_options(*, figsize=None, ax=None) -> None:
    """Refuse a `figsize` or `ax` of another kind before anything is drawn or cached.

    matplotlib failed on them deep inside ("object of type 'int' has no len()", "'str' object
    has no attribute 'set_title'"), naming neither the option nor what it takes.
    """
    from matplotlib.axes import Axes

    if figsize is not None:
        pair = isinstance(figsize, tuple | list | np.ndarray) and len(figsize) == 2
        if not pair or not all(
            isinstance(side, numbers.Real)
            and not isinstance(side, bool | np.bool_)
            and np.isfinite(side)
            and side > 0
            for side in figsize
        ):
            raise ValueError(
                f"figsize must be (width, height) in inches, two numbers > 0, got {figsize!r}."
            )
    if ax is not None and not isinstance(ax, Axes):
        raise TypeError(
            "ax must be a matplotlib Axes to draw into (e.g. `fig, ax = plt.subplots()`), or "
            f"None for a new figure; got {ax!r}."
        )


def new_figure(figsize, ax=None):
    """(figure, axes): a fresh figure, or the one holding `ax`."""
    import matplotlib.pyplot as plt

    check_figure_options(figsize=figsize, ax=ax)
    if ax is not None:
        return ax.figure, ax
    fig, ax = plt.subplots(figsize=figsize, layout="constrained")  # labels kept inside
    return fig, ax


def as_list(value) -> list:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return list(value)


def panel_colors(adata: AnnData, key: str, color, kwargs: dict) -> list[str]:
    """Return the panels: the run's clusters, then each `color`, checked before drawing.

    A key that is neither an ``obs`` column nor a gene (in ``var_names``, ``raw`` or the
    `gene_symbols` column) is refused here, before the UMAP is cached in `adata`; so is an
    `ax` for more than one panel, which scanpy refuses without saying that the clusters'
    panel is always drawn.
    """
    check_figure_options(ax=kwargs.get("ax"))
    colors = [key] + [c for c in as_list(color) if c != key]
    _align_per_panel_options(key, as_list(color), colors, kwargs)
    genes = set(adata.var_names)
    symbols = kwargs.get("gene_symbols")
    if symbols is not None and symbols in adata.var:
        genes |= set(adata.var[symbols].astype(str))
    if adata.raw is not None and kwargs.get("use_raw") is not False:
        genes |= set(adata.raw.var_names)
    unknown = [c for c in colors[1:] if c not in adata.obs.columns and c not in genes]
    if unknown:
        raise KeyError(
            f"color {unknown} not found: each must be a column of adata.obs or a gene of "
            "adata.var_names (or of adata.raw)."
        )
    # scanpy refuses them, but only after the UMAP was computed and stored (genes of .raw
    # alone, or of gene_symbols, it tells apart from a column)
    both = [c for c in colors if c in adata.obs.columns and c in adata.var_names]
    if both:
        raise KeyError(
            f"{both} name both a column of adata.obs and a gene of adata.var_names, which "
            "scanpy's plots cannot tell apart: rename the column, e.g. "
            f"`adata.obs = adata.obs.rename(columns={ {name: f'{name}_obs' for name in both} })`."
        )
    palette = kwargs.get("palette")
    if isinstance(palette, Mapping):  # scanpy raised a bare KeyError naming one category
        for column in colors:
            if column in adata.obs.columns and not pd.api.types.is_numeric_dtype(adata.obs[column]):
                categories = list(cluster_categories(adata, column).categories)
                check_palette_covers(palette, column, categories)
    if kwargs.get("ax") is not None and len(colors) > 1:
        raise ValueError(
            f"ax= holds one panel, but this plot draws {len(colors)}: the {key} clusters and "
            f"each color ({colors[1:]}). Leave out `ax` to get a grid of panels, or draw one "
            "panel per axes: `color=None` for the clusters, or sc.pl.embedding(adata, "
            "basis=..., color=..., ax=ax) for another colour."
        )
    return colors


# scanpy reads these, given as lists, one entry per panel
PER_PANEL_OPTIONS = ("title", "vmin", "vmax", "vcenter", "norm")


def _align_per_panel_options(key: str, asked: list, colors: list[str], kwargs: dict) -> None:
    """Give lists of one entry per `color` an entry for the clusters' panel drawn before them.

    Without it scanpy lined a user's ``title=[...]`` of one entry per colour up with the panels
    from the clusters' on: each panel labelled as the one before it.
    """
    for name in PER_PANEL_OPTIONS:
        value = kwargs.get(name)
        if name == "title" and not isinstance(value, str | None) and np.iterable(value):
            value = list(value)  # scanpy takes any iterable of titles (an array, an Index)
        if not isinstance(value, list | tuple) or len(value) == 1 and name != "title":
            continue  # one value applies to every panel, as in scanpy
        if len(value) == len(asked) and (len(asked) != len(colors) or key in asked):
            for_clusters = value[asked.index(key)] if key in asked else None
            if name == "title" and for_clusters is None:
                for_clusters = key  # scanpy's own title of the panel
            kwargs[name] = [for_clusters, *(v for c, v in zip(asked, value) if c != key)]
        elif len(value) != len(colors):
            raise ValueError(
                f"{name} has {len(value)} entries, but the plot draws {len(colors)} panels: "
                f"the {key} clusters, then each color ({colors[1:]}). Give one entry per "
                f"color ({len(colors) - 1}) or one per panel ({len(colors)})"
                + ("." if name == "title" else ", or one value for all.")
            )


def turn_long_tick_names(ax, names) -> None:
    """Turn the x tick labels upright where level ones would overlap (many, or long, names)."""
    if len(names) > 12 or max((len(str(n)) for n in names), default=0) > 3:
        ax.tick_params(axis="x", labelrotation=90)


def wrap_to_width(fig, text: str, fontsize: float, share: float = 0.95) -> str:
    """Break `text` into lines that fit `share` of the width of `fig` at `fontsize` (points)."""
    import textwrap

    # an average character of matplotlib's default sans-serif is about 0.6 em wide
    per_line = max(20, int(share * fig.get_figwidth() * 72 / (0.6 * fontsize)))
    return textwrap.fill(text, per_line)


def spans_decades(values, ratio: float = 20.0) -> bool:
    """Whether positive `values` spread over more than `ratio`: then a log axis reads better."""
    values = np.asarray(values, dtype=float)
    if not values.size or not np.all(np.isfinite(values) & (values > 0)):
        return False
    return bool(values.max() / values.min() > ratio)
