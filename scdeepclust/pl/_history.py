from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
from anndata import AnnData

if TYPE_CHECKING:
    from matplotlib.figure import Figure

from ._utils import (
    check_figure_options,
    check_result,
    closes_figures_on_error,
    finish,
    joined_runs,
    spans_decades,
    wrap_to_width,
)

# Clustering-stage history entries that are not reconstruction losses.
_CLUSTER_LOSSES = {
    "clustering": "clustering (KL)",
    "must_link": "must-link",
    "cannot_link": "cannot-link",
    "known_class": "known labels",
    "batch_mixing": "batch mixing (MMD)",
}
_NOT_LOSSES = {"label_change", "label_change_epoch", "converged"}
_RECONSTRUCTION_NAMES = {"zinb": "ZINB NLL", "mse": "MSE"}


def _loss_name(stage: str) -> str:
    # scDCC's reconstruction loss is the ZINB likelihood; DESC's stages are all MSE.
    return _RECONSTRUCTION_NAMES.get(stage, f"{stage} MSE")


@closes_figures_on_error
def history(
    adata: AnnData,
    key: str = "scdcc",
    *,
    figsize: tuple[float, float] = (13.0, 3.8),
    show: bool | None = None,
    save=None,
) -> Figure | None:
    """Training curves of a run, from ``uns[key]['history']``.

    Three panels: the reconstruction loss per epoch over the whole run, pretraining stages and
    the clustering stage shaded and named (DESC's layer-wise stages one after another; scDCC's
    ZINB loss carries on into the clustering stage, while DESC drops its decoder there); the
    clustering-stage losses per epoch (KL, and must-link / cannot-link with constraints); and
    the share of cells whose label changed at each target refresh, against the stopping
    tolerance `tol`. Works for DESC and scDCC results.

    Parameters
    ----------
    adata
        AnnData with the results of :func:`scdeepclust.tl.desc` or :func:`scdeepclust.tl.scdcc`.
    key
        The `key_added` of the run.
    figsize
        Size of the figure.
    show
        Show the figure (default ``sc.settings.autoshow``); with ``show=False`` the figure is
        returned instead: save it with ``fig.savefig(path)``. In Jupyter, assign it
        (``fig = ...``) or end the line with ``;``: a Figure left as a cell's value is drawn
        twice, as matplotlib's figures are.
    save
        Deprecated, see :func:`scdeepclust.pl.umap`; its default file name here is
        ``history_<key>``.

    Returns
    -------
    The :class:`~matplotlib.figure.Figure` when ``show=False``.
    """
    import matplotlib.pyplot as plt

    keys = check_result(adata, key, "uns", reads_obs=False)
    check_figure_options(figsize=figsize)
    uns = adata.uns[keys["uns"]]
    record = uns.get("history") if isinstance(uns, Mapping) else None
    if not isinstance(record, Mapping):
        raise KeyError(joined_runs(keys["uns"], "history"))
    if "model_version" in uns and not any(len(np.ravel(v)) for v in record.values()):
        raise ValueError(
            f"adata.uns[{key!r}] holds cells mapped onto a trained model (tl.map_to_model), "
            "which trains nothing: there is no history to plot. Plot the run the model came "
            "from."
        )
    record = {str(k): np.asarray(v, dtype=float).ravel() for k, v in record.items()}
    pretrain = {k[len("pretrain_") :]: v for k, v in record.items() if k.startswith("pretrain_")}
    # Stages in training order (h5ad files store uns keys sorted): DESC's layer1, layer2, ...
    # come before its end-to-end autoencoder stage.
    pretrain = dict(sorted(pretrain.items(), key=lambda item: _stage_order(item[0])))
    cluster = {k[len("cluster_") :]: v for k, v in record.items() if k.startswith("cluster_")}

    fig, (rec_ax, loss_ax, change_ax) = plt.subplots(
        1, 3, figsize=figsize, layout="constrained", gridspec_kw={"width_ratios": [1.5, 1, 1]}
    )
    _reconstruction_panel(rec_ax, pretrain, cluster)
    _clustering_panel(loss_ax, cluster)
    params = uns.get("params", {})
    _label_change_panel(change_ax, cluster, params.get("tol") if hasattr(params, "get") else None)
    status = []
    if "init_method" in uns:
        status.append(f"centroids: {uns['init_method']}")
    if "converged" in uns:
        status.append(
            "converged (label change < tol)" if uns["converged"] else "stopped at max_epochs"
        )
    title = fig.suptitle(f"{key}: training history" + (f" ({'; '.join(status)})" if status else ""))
    # the centroids' description runs to ~90 characters: cut off at the edges of a saved file
    title.set_text(wrap_to_width(fig, title.get_text(), title.get_fontsize()))
    return finish(fig, f"history_{key}", show=show, save=save, returned=fig)


def _reconstruction_panel(ax, pretrain: dict, cluster: dict) -> None:
    reconstruction = {
        k: v for k, v in cluster.items() if k not in _CLUSTER_LOSSES and k not in _NOT_LOSSES
    }
    n_cluster_epochs = max((len(v) for k, v in cluster.items() if k not in _NOT_LOSSES), default=0)
    colors = iter(["C0", "C1", "C2", "C3", "C4", "C5", "C6", "C7"])
    color_of: dict[str, str] = {}
    offset = 0
    spans = []
    values = []
    for stage, losses in pretrain.items():
        if not len(losses):
            continue
        color_of.setdefault(stage, next(colors))
        x = offset + np.arange(1, len(losses) + 1)
        ax.plot(x, losses, color=color_of[stage], label=_loss_name(stage))
        spans.append(
            (
                offset,
                offset + len(losses),
                f"pretrain\n{stage}" if len(pretrain) > 1 else "pretraining",
            )
        )
        offset += len(losses)
        values.append(losses)
    pretrain_end = offset
    for name, losses in reconstruction.items():
        if not len(losses):
            continue
        color = color_of.setdefault(name, next(colors))
        x = pretrain_end + np.arange(1, len(losses) + 1)
        label = None if name in pretrain else _loss_name(name)
        ax.plot(x, losses, color=color, label=label)
        values.append(losses)
    if n_cluster_epochs:
        text = "clustering" if reconstruction else "clustering\n(no decoder)"
        spans.append((pretrain_end, pretrain_end + n_cluster_epochs, text))
    shades = ["#f0f0f0", "#e0e0e0"]
    for i, (start, stop, text) in enumerate(spans):
        clustering = i == len(spans) - 1 and n_cluster_epochs
        ax.axvspan(
            start + 0.5, stop + 0.5, color="#dceaf7" if clustering else shades[i % 2], zorder=0
        )
        ax.text(
            (start + stop + 1) / 2,
            1.01,
            text,
            transform=ax.get_xaxis_transform(),
            ha="center",
            va="bottom",
            fontsize=7.5,
        )
    if values:
        if spans_decades(np.concatenate(values)):
            ax.set_yscale("log")
        ax.legend(fontsize=8, frameon=False, loc="best")
    else:
        _empty(ax, "no reconstruction loss recorded")
    ax.set_xlim(0.5, max(offset + n_cluster_epochs, 1) + 0.5)
    ax.set_xlabel("epoch (whole run)")
    ax.set_ylabel("reconstruction loss")
    ax.set_title("reconstruction", pad=22, fontsize=10)


def _clustering_panel(ax, cluster: dict) -> None:
    plotted = []
    for name, label in _CLUSTER_LOSSES.items():
        losses = cluster.get(name)
        if losses is None or not len(losses):
            continue
        ax.plot(np.arange(1, len(losses) + 1), losses, label=label, **_markers(len(losses)))
        plotted.append(losses)
    if plotted:
        if spans_decades(np.concatenate(plotted)):
            ax.set_yscale("log")
        ax.legend(fontsize=8, frameon=False)
        _epoch_axis(ax, max(len(v) for v in plotted))
    else:
        _empty(ax, "no clustering epochs recorded")
    ax.set_xlabel("clustering epoch")
    ax.set_ylabel("loss")
    ax.set_title("clustering stage", pad=22, fontsize=10)


def _label_change_panel(ax, cluster: dict, tol) -> None:
    change = cluster.get("label_change")
    if change is not None and len(change):
        epochs = cluster.get("label_change_epoch")
        if epochs is None or len(epochs) != len(change):
            epochs = np.arange(1, len(change) + 1)
        ax.plot(epochs, 100 * change, color="C3", label="labels changed", **_markers(len(change)))
        if tol is not None:
            ax.axhline(
                100 * float(tol),
                color="grey",
                linestyle="--",
                linewidth=0.8,
                label=f"tol = {100 * float(tol):g}%",
            )
        ax.legend(fontsize=8, frameon=False)
        ax.set_ylim(bottom=0)
        _epoch_axis(ax, float(np.max(epochs)))
    else:
        _empty(ax, "no target refresh recorded")
    ax.set_xlabel("clustering epoch\n(at each target refresh)")  # one line outgrew the panel
    ax.set_ylabel("cells that changed label (%)")
    ax.set_title("label change per refresh", pad=22, fontsize=10)


def _markers(n_points: int) -> dict:
    """Dots on short curves (a handful of epochs), plain lines on long ones."""
    return {"marker": "o", "markersize": 3} if n_points <= 40 else {}


def _stage_order(stage: str) -> tuple:
    if stage.startswith("layer") and stage[len("layer") :].isdigit():
        return (0, int(stage[len("layer") :]), stage)
    return (1, 0, stage)


def _epoch_axis(ax, last: float) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.set_xlim(0.5, max(last, 1.0) + 0.5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))


def _empty(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="grey")
    ax.set_xticks([])
    ax.set_yticks([])
