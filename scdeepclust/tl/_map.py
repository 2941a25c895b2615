from __future__ import annotations

import time
from os import PathLike

from anndata import AnnData

from .._results import (
    check_result_keys,
    label_categories,
    warn_if_results_replaced,
    write_results,
)
from ..models import TrainedModel
from ..models import load as load_model
from ..pp._input import advise_loading_backed, check_adata, check_bools, check_names
from ._validate import check_key_added, target_adata


@advise_loading_backed
def map_to_model(
    adata: AnnData,
    model: TrainedModel | str | PathLike,
    *,
    key_added: str | None = None,
    layer: str | None = None,
    batch_key: str | None = None,
    device: str = "auto",
    copy: bool = False,
) -> AnnData | None:
    """Map new cells onto the clusters of a trained model.

    The cells are preprocessed as the training cells were, with the statistics stored in the
    model, embedded by its network and softly assigned to its centroids; nothing is trained.
    Genes are matched by name: genes of the model missing from `adata` are filled with zeros
    (a warning says how many), genes the model does not know are ignored.

    - scDCC: raw counts (`layer`; by default the layer the model was trained on where `adata`
      has one of that name, else ``layers['counts']``, else ``X``); size factors from
      each cell's library size in the model's genes relative to the training median; z-scored
      with the training gene means and scales.
    - DESC: the same representation as in training (``X``, the layer, or ``obsm[use_rep]``),
      which must be preprocessed the same way (normalised, log-transformed, scaled).

    Parameters
    ----------
    adata
        The new cells.
    model
        A model from ``tl.scdcc(..., return_model=True)`` / ``tl.desc(..., return_model=True)``,
        or the directory it was saved to.
    key_added
        Prefix of the keys written; default the key the model was trained under (e.g.
        ``'scdcc'``), so that labels of reference and new cells share a column name. The
        labels are the model's cluster numbers; clusters the reference's labels were renamed
        to (``rename_categories``) are named the same way here with the same mapping, e.g.
        ``adata.obs[key] = adata.obs[key].cat.rename_categories(names)`` with `names` a dict
        from number to name (a dict leaves numbers the new cells lack aside). The new cells'
        categories are the clusters they fall into (an empty category breaks scanpy steps
        such as `rank_genes_groups`), and ``uns[key + '_colors']`` gives them the colours
        scanpy gives the same clusters in the reference's plots at its default palette, in
        the order the tool wrote them. Where the reference's colours are your own, or its
        categories were reordered (``reorder_categories``), pass them by name as a `palette`
        (once the reference was plotted, which writes its colours):
        ``dict(zip(ref.obs[key].cat.categories, ref.uns[key + '_colors']))``.
    layer
        Take the input from this layer instead of the default.
    batch_key
        For a model trained with `batch_key`: the `obs` column holding the new cells' batches
        (default: the column name used in training). Every batch must be one the model was
        trained on; the cells are scaled with that batch's statistics and the network is
        given the batch, as in training.
    device
        "auto", "cpu", "cuda" or "cuda:N" (other torch devices are refused).
    copy
        Return a modified copy instead of writing to `adata`.

    Returns
    -------
    `None`, or the copy if `copy=True`. Writes `obs[key]` (labels "0".."k-1" of the trained
    clusters: each cell's highest soft assignment among the clusters that kept training cells
    (`model.empty_clusters`, e.g. emptied by `refine` or merged by `min_cluster_size`, take
    none), without the classifier that read the training cells' clusters again with `refine`,
    and without the known labels that scDCC's `keep_labels` kept for its labelled cells; its
    categories are those the cells fall into, as in training), `obs[key + '_confidence']` (on
    the scale fitted to the model's training cells; the soft assignment itself for models
    saved by earlier versions), `obsm['X_' + key]`, `obsm[key + '_probs']`,
    `uns[key]` (`params`: method, model key; `environment`: the versions and torch's threads
    of the mapping; `n_genes_missing`; `label_classes` for a model
    trained with known labels: cluster "i" started from class ``label_classes[i]``) and
    `uns[key + '_colors']`.

    See Also
    --------
    scdeepclust.models.TrainedModel.predict : The labels or soft assignments as an array,
        without writing to `adata`.
    scdeepclust.models.TrainedModel.get_latent_representation : The embedding as an array.
    """
    t_start = time.perf_counter()
    check_bools(copy=copy)
    if isinstance(model, (str, PathLike)):
        model = load_model(model)
    if not isinstance(model, TrainedModel):
        several = (
            " tl.desc returns one model per resolution in a dict: map onto one of them, e.g. "
            f"model[{next(iter(model))!r}]."
            if isinstance(model, dict)
            and model
            and all(isinstance(m, TrainedModel) for m in model.values())
            else ""
        )
        raise TypeError(
            f"model must be a trained scdeepclust model or the directory it was saved to, not "
            f"{type(model).__name__}.{several}"
        )
    key = model.key_added if key_added is None else key_added
    try:
        check_key_added(key)
    except ValueError as error:
        if key_added is not None:
            raise
        # saved by an earlier version, which took the name: the caller passed none
        raise ValueError(
            f"{error} It is the model's key_added, which its results are written under unless "
            "you pass key_added= another name."
        ) from None
    source = model.preprocessing.get("input", {})
    # an embedding-only AnnData (no genes) maps onto a model of obsm; others need genes
    check_adata(adata, copy=copy, min_cells=1, need_genes=source.get("kind") != "obsm")
    check_names(layer=layer, batch_key=batch_key)
    check_result_keys(
        adata,
        [key],
        batch_key=model.batch_key if batch_key is None else batch_key,
        use_rep=source.get("key") if source.get("kind") == "obsm" else None,
    )
    result = model._map_cells(adata, layer=layer, batch_key=batch_key, device=device)
    result.timings["total_s"] = time.perf_counter() - t_start
    warn_if_results_replaced(adata, [key], copy=copy)
    adata = target_adata(adata, copy)
    colors = {f"{key}_colors": _reference_colors(model, label_categories(result.labels))}
    write_results(adata, {key: result}, uns=colors)
    return adata if copy else None


def _reference_colors(model: TrainedModel, categories) -> list:
    """Return the colours scanpy gives the training cells' clusters the new cells hold.

    The training cells' categories are the clusters that kept cells, and scanpy colours
    categories by position: by their own positions the new cells' clusters took other colours
    than the same clusters of the reference (as ``sc.tl.ingest`` does not).
    """
    from matplotlib.colors import to_hex

    from ..pl._utils import scanpy_default_colors

    emptied = set(model.empty_clusters)
    kept = [str(c) for c in range(model.n_clusters) if c not in emptied]
    reference = dict(zip(kept, map(to_hex, scanpy_default_colors(len(kept)))))
    return [reference[str(c)] for c in categories]
