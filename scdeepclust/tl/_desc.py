from __future__ import annotations

import numbers
import time
import warnings
from collections.abc import Sequence
from os import PathLike

import numpy as np
import pandas as pd
from anndata import AnnData
from scanpy import logging as logg

from .._messages import caller_stacklevel
from .._results import (
    ClusteringResult,
    check_result_keys,
    warn_if_results_replaced,
    write_results,
)
from ..data import CellFeeder, RowSource
from ..models import DESC, DESCConfig, cluster_desc, pretrain_desc
from ..models._desc import DEFAULT_RESOLUTION
from ..pp._batches import batch_covariate
from ..pp._counts import feature_statistics
from ..pp._input import (
    HIGHLY_VARIABLE_IF_PRESENT,
    advise_loading_backed,
    check_adata,
    gene_mask,
    is_off_scale,
    looks_like_principal_components,
    warn_if_counts,
    warn_if_genes_unselected,
    warn_if_layout,
    warn_if_off_scale,
    warn_if_transformed_counts,
    warn_if_unscaled,
)
from ..train import (
    DEFAULT_MIN_CLUSTER_SIZE,
    TrainingDiverged,
    check_precision,
    report_interruption,
    resolve_device,
    standard_torch_mode,
)
from ._validate import (
    advance_generator,
    as_int,
    as_layer_sizes,
    as_min_cluster_size,
    batches_in_run,
    check_batch_mixing,
    check_between,
    check_checkpointing,
    check_degrees_of_freedom,
    check_gene_names,
    check_init,
    check_initial_label_weight,
    check_key_added,
    check_n_clusters,
    check_names,
    check_positive,
    check_refine,
    check_resolution,
    check_switches,
    check_target_smoothing,
    check_training_sizes,
    check_update_interval,
    open_run,
    resolution_list,
    resolved_random_state,
    start_distributed,
    target_adata,
    tool_input,
    tool_return,
    warn_if_start_options_unused,
)


@advise_loading_backed
def desc(
    adata: AnnData,
    *,
    resolution: float | Sequence[float] | np.ndarray | None = DEFAULT_RESOLUTION,
    n_clusters: int | np.integer | tuple[int, int] | None = None,
    init: str = "leiden",
    layer: str | None = None,
    use_rep: str | None = None,
    mask_var: np.ndarray | str | None = HIGHLY_VARIABLE_IF_PRESENT,
    batch_key: str | None = None,
    batch_mixing: float = 10.0,
    scale: bool = False,
    hidden: Sequence[int] | None = None,
    drop_rate: float = 0.2,
    layerwise: bool = True,
    pretrain_epochs: int | None = None,
    pretrain_lr: float = 1e-3,
    n_neighbors: int = 10,
    target_smoothing: float = 0.5,
    initial_label_weight: float = 0.5,
    refine: float = 0.5,
    min_cluster_size: int | float = DEFAULT_MIN_CLUSTER_SIZE,
    kernel: str = "t",
    alpha: float = 1.0,
    lr: float = 0.01,
    momentum: float = 0.9,
    update_interval: float | None = None,
    tol: float = 0.005,
    max_epochs: int | None = None,
    batch_size: int = 256,
    device: str = "auto",
    precision: str = "float32",
    random_state: int | np.random.RandomState | np.random.Generator | None = 0,
    key_added: str = "desc",
    progress: bool = True,
    copy: bool = False,
    return_model: bool = False,
    checkpoint_dir: str | PathLike | None = None,
    checkpoint_every: int = 10,
    resume: bool = False,
    distributed: bool = False,
) -> AnnData | DESC | dict[str, DESC] | tuple | None:
    """Deep embedding clustering (DESC, Li et al. 2020).

    A stacked autoencoder (ReLU inside, tanh on the embedding) is pretrained greedily layer by
    layer as denoising autoencoders (dropout `drop_rate`), then end to end on MSE. Centroids come
    from Leiden on a kNN graph of the embedding, so no cluster count is needed; the decoder is
    then dropped and the encoder trained with the centroids on KL(p || q) alone, p refreshed every
    `update_interval` epochs, until fewer than `tol` of the labels change.

    Parameters
    ----------
    adata
        Cells x genes, preprocessed as usual with scanpy (normalize_total, log1p, scale).
    resolution
        Leiden resolution of the initial clustering on a kNN graph of the pretrained
        embedding, or a list of them: the autoencoder is pretrained once (and the cells
        embedded and their neighbours looked up once) and the clustering stage runs once per
        resolution. Ignored when `n_clusters` is given (see `init`), with a warning where it
        is not the default. On
        more than 10,000 cells Leiden runs on a random sample of 10,000 and every cell, those
        of the sample too, joins the cluster of the nearest mean on the sample: Leiden's
        clusters get finer as its graph holds more
        cells. The default 0.5 is coarser than the original DESC's 0.8, which split annotated
        types on this package's embedding: ARI (median of seeds 0-2) 10X PBMC 0.774 against
        0.618, mouse bladder 0.711 against 0.632, worm neurons 0.471 against 0.433, CITE CBMC
        0.687 against 0.690; on simulated groups of 1-2% of the cells it merges a few more
        of them (README, "How many clusters"). Leiden's clusters get coarser as the graph
        holds fewer cells: on about 1,000 cells or fewer 0.8 measured better (changelog).
    n_clusters
        The number of clusters (reached as `init` says), or ``(lo, hi)`` bounds of a search
        for it on the pretrained embedding: k-means on random subsamples, each from its own
        seed, for every candidate k; the score of k is the mean adjusted Rand index between
        those partitions, and the choice is the largest k whose score is within 0.05 of the
        best (see ``uns[key]['n_clusters_search']`` and :func:`scdeepclust.pl.n_clusters`).
        ``resolution=None`` with no `n_clusters` searches between 2 and 30 (at most a fifth of
        the cells: bounds above that are refused, since clusters of a cell or two come back
        under any resampling and would be chosen). The search is not
        DESC's default: on DESC's embedding its choice measured too coarse on 10X PBMC, mouse
        bladder and CBMC and too fine on worm neurons (benchmarks/n_clusters.py). Nor is it
        scDCC's, where Leiden measured better too; `tl.scdcc` searches by default only with
        known labels (`label_key`).
    init
        How a given number of clusters `n_clusters` is reached on the pretrained embedding.
        ``"leiden"``: Leiden on its kNN graph (`n_neighbors`) brought to `n_clusters`, by
        the better of two ways: from resolution 0.8 (the original DESC's default, not
        `resolution`'s), raised by factors of 1.25 until Leiden finds at least `n_clusters`
        clusters, which are then merged in pairs by Ward's criterion (the pair whose merge
        adds least to the within-cluster sum of squares); or from Leiden at resolution 0.5
        (this tool's default), merged the same way when it finds more clusters, and when it
        finds fewer, with the sub-populations most apart from the rest of their cluster split
        off (Leiden within each cluster at resolution 1, parts of at least 10 cells, lowest
        conductance first). The start is the one whose clusters cut less of the graph's edge
        weight (``uns[key_added]['init_method']`` says which); k-means when neither
        reaches `n_clusters`. A finer resolution reaches a larger k by cutting large types in
        pieces; the coarse clusters keep them whole and separate what the graph separates.
        At the true k (median (min-max) of seeds 0-2, benchmarks/desc_accuracy.py): mouse
        bladder 0.690 (0.678-0.715) against 0.577 (0.566-0.656) from the resolution ladder
        alone, CITE CBMC 0.642 (0.622-0.681) against 0.593 (0.542-0.689); 10X PBMC and worm
        neurons within 0.002.
        ``"kmeans"``: k-means (DESC's original). Leiden follows the data's graph, where
        k-means cuts large types and joins small ones. At the true k, against k-means (an
        earlier version, with the ladder alone): 10X PBMC 0.775 (0.775-0.779) against 0.732
        (0.614-0.772), mouse bladder 0.599 (0.522-0.620) against 0.573, worm neurons 0.546
        (0.532-0.553) against 0.529 (0.404-0.552), CITE CBMC 0.558 against 0.529.
        ``"balanced-kmeans"``: k-means on the cells' directions, crowded regions weighted down
        (see :func:`scdeepclust.tl.scdcc`'s `init`; not measured on DESC's embedding). The
        searched number keeps k-means, whose partitions the search scores (balanced with
        ``"balanced-kmeans"``).
    layer
        Use ``adata.layers[layer]`` instead of ``X``.
    use_rep
        Use ``adata.obsm[use_rep]`` (e.g. ``'X_pca'``) instead of ``X``. The scaled genes
        measured better than principal components in scratch runs at the true k: 50 PCs gave
        10X PBMC 0.669 against 0.780 (means of three seeds), 10 PCs worm neurons 0.305 against
        0.601.
    mask_var
        The genes to read, as in ``sc.pp.pca``: a boolean column of ``adata.var`` by name, or a
        boolean array over the genes; None reads every gene. By default ``var['highly_variable']``
        when it exists, so that genes marked by ``sc.pp.highly_variable_genes(adata,
        n_top_genes=2000)`` without ``subset=True`` are the ones trained on (simulated data, 3,000
        cells of 8 groups, 15,000 genes of which 1% differ between groups, true k, scratch runs of
        seeds 0-2: ARI 0.74-1.00 on every gene, 1.00 on the 2,000 marked, in a quarter to two thirds
        of the time). Not with `use_rep`.
    scale
        Z-score every gene (zero mean, unit variance) inside DESC instead of beforehand: the
        statistics come from one streaming pass and are applied per minibatch, so a sparse
        log-normalised matrix is never densified (``sc.pp.scale`` on a million cells makes a
        dense copy of 8 GB). The statistics are stored with a returned model. Implied within
        batches by `batch_key` for genes (``params['scale']`` then records True).
    batch_key
        An `obs` column naming each cell's batch (donor, run, technology...). The genes are
        z-scored within each batch (as DESC's authors recommend for data from several
        batches); a representation of `use_rep` is centred within each batch, its columns
        keeping their spread (z-scored with ``scale=True``). The autoencoder is conditional
        on the batch (it enters the first encoder layer and every decoder layer), so the
        embedding need not follow the batches. The batches and their scaling statistics are
        stored with the model; mapped cells must come from one of them.
    batch_mixing
        With `batch_key`: weight of a batch-mixing penalty added to the clustering stage, the
        maximum mean discrepancy between each batch's embedded cells and the other cells of
        the minibatch (as in :func:`scdeepclust.tl.scdcc`). Without it the clustering stage,
        which pulls each cell towards its centroid, let the batches drift apart within the
        clusters (10X PBMC split into two batches, benchmarks/batch.py: mixing entropy
        0.82-0.87 without it, 0.97 with it, at a mean ARI 0.016 lower). 0 turns it off.
        Ignored without batches (or with one), and then recorded as 0 in ``params``.
    hidden
        Encoder layer sizes, the last one being the embedding. Default by number of cells:
        (128, 32) up to 20,000 cells, (256, 64, 32) beyond.
    drop_rate
        Dropout of the layer-wise denoising pretraining.
    layerwise
        Greedy layer-wise pretraining before end-to-end fine-tuning; `False` trains end to end
        only.
    pretrain_epochs
        Epochs of each pretraining stage. `None`: chosen from the number of cells, with early
        stopping on a plateau; above 20,000 cells each epoch is a random subset of them, so
        that a stage sees about 500,000 cells (longer pretraining pushed some cells of every
        group far out on large simulated data); `uns[key_added]['pretrain_epoch_cells']` then
        says how many. A given number means whole epochs.
    pretrain_lr
        Adam learning rate of pretraining.
    n_neighbors
        kNN graph size for Leiden, and of the neighbourhoods that scale the reported confidence
        and smooth the clustering target.
    target_smoothing
        Weight of each cell's `n_neighbors` nearest neighbours in the pretrained embedding in the
        clustering stage's target: the target p is sharpened from ``(1 - w) q + w x`` the mean of
        the neighbours' q, so that cells of one dense region are pulled to one cluster and
        boundaries settle where the neighbourhood graph is thin. 0 is DESC's own target.
        Against 0, at 0.5 (ARI, median of seeds 0-2, benchmarks/desc_accuracy.py): at the
        defaults 10X PBMC 0.617 against 0.580, mouse bladder 0.658 against 0.605, CITE CBMC
        0.692 against 0.632, worm neurons 0.441 against 0.442; level or a little better at the
        true k.
    initial_label_weight
        Weight of the initial clustering's labels in the clustering stage's first target: it is
        sharpened from ``(1 - w) q + w e``, with ``e`` the one-hot vector of the cell's initial
        label, so that the stage starts from the Leiden clusters as the graph drew them rather
        than from the cells nearest to their centroids (which give the edge of a large, spread
        cluster to a small, compact one). 0 is DEC's own first target. Against 0, at 0.5 (ARI,
        median of seeds 0-2, benchmarks/desc_accuracy.py): at the true k worm neurons 0.538
        against 0.521 and CITE CBMC 0.691 against 0.642, 10X PBMC and mouse bladder level; at
        the defaults worm 0.484 against 0.471, the others within 0.005.
    refine
        Read the clusters once more in another view before reporting them: each cluster's most
        confident cells (this share of it, by soft assignment; about 20,000 in all, drawn in
        proportion to the clusters, but at least 50 of each) train a logistic regression on 50
        principal components of the input (clipped to [-10, 10] for them), whose class
        probabilities, averaged with those of each cell's 15 nearest neighbours in those components,
        give every cell its reported cluster. It moves cells that the embedding placed across a
        boundary that the input does not draw; `uns[key]['refinement']` says how many. The soft
        assignments in `obsm` stay the clustering stage's, so a moved cell's label is not its
        highest soft assignment. 0 reports the stage's own labels. Not used where batches are mixed
        (`batch_key` with `batch_mixing` > 0: the input holds the batch effects the stage removed)
        nor with `distributed` (``params['refine']`` is then 0). At 0.5 against 0 (ARI at the
        defaults / the true k, median of seeds 0-2, benchmarks/desc_accuracy.py): worm neurons 0.586
        / 0.618 against 0.515 / 0.545; 10X PBMC 0.778 / 0.780 against 0.766 / 0.769; mouse bladder
        0.714 / 0.715 against 0.706 / 0.703; CITE CBMC 0.700 / 0.697 against 0.689 / 0.688.
    min_cluster_size
        When the number of clusters comes from the data (`resolution`, or a searched range of
        `n_clusters`), a reported cluster (after `refine`) with fewer cells than this is merged,
        the smallest first and the sizes counted again after each: each of its cells takes the
        cluster of its highest soft assignment among those that stay, and the cluster is left
        empty (`uns[key]['empty_clusters']`; `small_clusters` says which, the least size in
        cells and how many cells moved). An integer is a number of cells, a float in [0, 1) a
        share of them (rounded up); 0 keeps every cluster. Never below a searched range's lower
        bound; not used with a given `n_clusters` (``params['min_cluster_size']`` is
        then 0). It reads the trained model's labels, so a checkpoint resumes with another
        value. The default, 0.1% of the cells, is five times below the rarest simulated type
        of `benchmarks/rare_types.py`; on large data the Leiden start holds communities of a
        few dozen sampled cells of which the clustering stage and `refine` leave remnants.
    kernel
        "t" (Student's t with `alpha` degrees of freedom) or "gaussian".
    alpha
        Degrees of freedom of the Student's t kernel (DEC's 1): larger values give lighter
        tails, so each cell's soft assignment leans more on its nearest centroids. From 1 to 5
        the ARI moves by at most 0.01 on three of the four labelled datasets (worm neurons at
        the true k rises by up to 0.03) and the 0.5% group of the rare-type simulation is found
        less often, so the default stays 1 (docs/measurements.md). Ignored by the Gaussian kernel.
    lr, momentum
        SGD settings of the clustering stage.
    update_interval
        Epochs between refreshes of the target distribution p (fractions refresh within an
        epoch). Default: every epoch, or every 500 minibatches when an epoch is longer.
    tol
        Stop when fewer than this fraction of cells change label between refreshes, checked
        from the 240th minibatch step of the clustering stage on (the first check on small
        data came after a dozen steps, before cells between clusters had been resolved), or
        from the middle of the stage when all its `max_epochs` hold fewer than 480 steps.
        0 trains every epoch of `max_epochs` (warning that the stage did not converge only
        where labels still changed at the last refresh).
    max_epochs
        Upper bound on clustering-stage epochs. Default: 100 up to 100,000 cells, the same
        number of minibatch steps beyond (10 epochs at a million cells).
    batch_size, device, precision, random_state, progress, copy
        As in :func:`scdeepclust.tl.scdcc`.
    return_model
        Also return the trained model, an :class:`scdeepclust.models.DESC` (with a list of
        resolutions: a dict of them by key).
    checkpoint_dir, checkpoint_every, resume
        Save the training state every `checkpoint_every` epochs, and continue an interrupted
        run, as in :func:`scdeepclust.tl.scdcc`. The call that resumes may ask for other
        resolutions (each has a stage of its own): it reuses the pretraining and the
        resolutions finished, which come out as they would alone.
    distributed
        Data-parallel training over the processes started by ``torchrun``, as in
        :func:`scdeepclust.tl.scdcc` (every process calls `desc` on the same `adata`, which
        is checked; only rank 0 writes the results; `refine` is not used; cells ordered by
        batch are refused with `batch_key`). Not yet with checkpoints.
    key_added
        Prefix of the keys written (as in :func:`scdeepclust.tl.scdcc`). With a list of
        resolutions (also a list of one), each result is written under
        ``f"{key_added}_{resolution}"`` (e.g. ``desc_0.8``, ``X_desc_0.8``, ``desc_0.8_probs``).

    Returns
    -------
    `None`; the copy if `copy=True`; the model if `return_model=True`; ``(copy, model)`` if
    both. Writes (to `adata`, or to the copy), after training succeeded, for each key:

    `adata.obs[key]`
        Cluster labels, categorical ("0", "1", ...): the clusters that hold cells, each named
        by its column of the soft assignments (a cluster the clustering stage or `refine`
        empties has no category; a warning says which, when `n_clusters` was given), as
        `refine` reads them.
    `adata.obs[key + '_confidence']`
        How sure each cell's cluster is, on a probability scale: an increasing function of its
        soft assignment to that cluster (its highest, except for the cells `refine` moved;
        DESC's stay near uniform), fitted to the share of the
        cell's nearest neighbours in the pretrained embedding that share its cluster (with
        `refine`, the smaller of that and the same share among its neighbours in the input's
        principal components); kept as `uns[key]['confidence_calibration']`. It cannot see
        types that one cluster holds whole, so it is too high there.
    `adata.obsm['X_' + key]`
        Embedding (float32).
    `adata.obsm[key + '_probs']`
        Soft assignment q (cells x clusters).
    `adata.uns[key]`
        `params`, `n_clusters` (clusters holding cells), `empty_clusters` (those without),
        `history` (pretraining losses per stage, clustering KL and label change), `timings`
        (seconds; with a list of resolutions, `pretrain_s` is the one pretraining they share
        and `total_s` the whole call's, in each key: sum neither over the keys),
        `environment` (the versions of scdeepclust, torch, scanpy, anndata, numpy and Python, and
        torch's thread count, on which the last digits of the embedding depend),
        `converged` (False, with a warning, where the stage stopped at `max_epochs`),
        `refinement` (`share`, `cells_moved`) with `refine`, `small_clusters` (`min_cells`,
        `merged`, `cells_moved`) when `min_cluster_size` applied,
        `n_clusters_search` when the number of clusters was searched (candidates, their scores
        and spreads, `chosen`, `runner_up`), `genes_used` (the names of the genes read) where
        some were left out (by `mask_var`, or for holding only zeros), and `batch_sizes` with
        `batch_key` (cells per batch, in the order of ``params['batch_categories']``).
    """
    t_start = time.perf_counter()
    in_x = layer is None and use_rep is None
    reads = "the log-normalised data DESC scales" if scale else "the scaled data DESC reads"
    reads = reads if in_x else ""
    check_adata(adata, copy=copy, need_genes=use_rep is None, reads=reads)
    check_key_added(key_added)
    check_names(layer=layer, use_rep=use_rep, batch_key=batch_key)
    n_clusters = check_n_clusters(n_clusters, adata.n_obs)
    check_resolution(resolution, several=True)
    check_switches(
        progress, copy, return_model, resume, distributed, scale=scale, layerwise=layerwise
    )
    check_init(init)
    if resolution is not None:  # else the number is searched, and `init` says how it is reached
        warn_if_start_options_unused(init, n_clusters)
    if n_clusters is not None and resolution is not None:
        given = resolution_list(resolution)
        if given != [DEFAULT_RESOLUTION]:  # the default cannot be told from one left out
            shown = f"{given[0]:g}" if len(given) == 1 else str(given)
            warnings.warn(
                f"resolution={shown} has no effect with n_clusters={n_clusters!r}: DESC reaches "
                "a given number of clusters as `init` says (init='leiden' from resolutions of "
                "its own) and a searched one by k-means, and writes one result under "
                f"{key_added!r}. "
                "Leave resolution out, or leave n_clusters out to let Leiden at each "
                "resolution choose the clusters.",
                UserWarning,
                stacklevel=caller_stacklevel(),
            )
    batch_size, n_neighbors = check_training_sizes(
        adata.n_obs,
        batch_size=batch_size,
        n_clusters=n_clusters,
        n_neighbors=n_neighbors,
        resolution=resolution,
        init=init,
    )
    batches = batch_covariate(adata, batch_key)
    check_batch_mixing(batch_mixing)
    check_update_interval(update_interval)
    given_random_state = random_state
    random_state = resolved_random_state(
        random_state, distributed=distributed, checkpoint_dir=checkpoint_dir
    )
    genes = gene_mask(adata, mask_var, use_rep=use_rep)
    check_gene_names(adata, use_rep=use_rep, return_model=return_model, genes=genes)
    pretrain_epochs = as_int("pretrain_epochs", pretrain_epochs, minimum=1, allow_none=True)
    max_epochs = as_int("max_epochs", max_epochs, minimum=1, allow_none=True)
    check_positive("pretrain_lr", pretrain_lr)
    check_positive("lr", lr)
    check_between("momentum", momentum, 0, 1, high_open=True)
    check_between("tol", tol, 0, 1)
    if hidden is not None:
        hidden = as_layer_sizes("hidden", hidden, allow_empty=False)
    check_target_smoothing(target_smoothing)
    check_initial_label_weight(initial_label_weight)
    check_refine(refine)
    min_cluster_size = as_min_cluster_size(min_cluster_size)
    check_checkpointing(checkpoint_dir, checkpoint_every, resume)
    if not isinstance(kernel, str) or kernel not in {"t", "gaussian"}:
        raise ValueError(f"kernel must be 't' or 'gaussian', not {kernel!r}.")
    check_degrees_of_freedom(alpha)
    if not (isinstance(drop_rate, numbers.Real) and 0 <= drop_rate < 1):
        raise ValueError(
            f"drop_rate must be in [0, 1) (the fraction of inputs dropped in the denoising "
            f"pretraining; 0 turns it off), got {drop_rate!r}."
        )
    resolutions = resolution_list(resolution)
    # a list, even of one, names its keys by resolution: a loop over lists gets one shape
    per_resolution = n_clusters is None and resolution is not None and np.ndim(resolution) > 0
    if n_clusters is not None:
        resolutions = [None]
    keys = [f"{key_added}_{r}" for r in resolutions] if per_resolution else [key_added]
    check_result_keys(adata, keys, batch_key=batch_key, use_rep=use_rep)
    dev = resolve_device(device)
    check_precision(precision, dev)
    if distributed:
        rank, world_size, dev = start_distributed(
            dev, checkpoint_dir=checkpoint_dir, batches=batches, batch_mixing=batch_mixing
        )
    start = logg.info(f"running DESC on {adata.n_obs} cells")

    data = tool_input(adata, layer=layer, use_rep=use_rep, counts=False, genes=genes)
    where = data.where
    if genes.param is not None:
        logg.info(f"    reading {data.n_columns} genes of {genes.describe()}")
    warn_if_genes_unselected(genes, data.n_columns, where)
    source = RowSource(data.matrix, columns=data.columns)
    if use_rep is not None:
        # by its name too: a subset of cells (one cell type re-clustered) keeps its parent's
        # components, neither centred on it nor falling in spread
        components = "pca" in use_rep.lower() or looks_like_principal_components(data.summary)
        # positions or a layout: rescaling them is no remedy, and no other warning is given
        layout = warn_if_layout(data.summary, where)
        if not layout and scale and components:
            warnings.warn(
                f"adata.{where} holds principal components (by its name, or centred columns "
                "whose spread falls), and scale=True z-scores each column: the components, "
                "whose spread is their weight, then count alike (pbmc68k_reduced's X_pca, a "
                "short run: ARI 0.45 -> 0.21). Leave scale out for principal components.",
                UserWarning,
                stacklevel=caller_stacklevel(),
            )
        elif not layout and not scale:
            warn_if_off_scale(data.summary, where, use_rep=use_rep, components=components)
    else:
        warn_if_counts(data.summary, where)
        warn_if_transformed_counts(data.summary, where)
        if not scale and batches is None:
            warn_if_off_scale(data.summary, where)
            warn_if_unscaled(data.summary, where)
    batch_codes = None if batches is None else batches.codes
    scaling = None
    if batches is not None:
        scaling = feature_statistics(source, groups=batch_codes, n_groups=batches.n_batches)
        if use_rep is not None and not scale:  # centred only: the columns' spread is their weight
            scaling = (scaling[0], np.ones_like(scaling[1]))
    elif scale:
        scaling = feature_statistics(source)
    feeder = CellFeeder(
        source,
        device=dev,
        gene_mean=None if scaling is None else scaling[0],
        gene_scale=None if scaling is None else scaling[1],
        batch_codes=batch_codes,
    )
    if distributed:
        feeder = feeder.sharded(rank, world_size)
    config = DESCConfig(
        hidden=None if hidden is None else tuple(hidden),
        drop_rate=drop_rate,
        layerwise=layerwise,
        pretrain_epochs=pretrain_epochs,
        pretrain_lr=pretrain_lr,
        n_clusters=n_clusters,
        n_neighbors=n_neighbors,
        target_smoothing=float(target_smoothing),
        initial_label_weight=float(initial_label_weight),
        refine=float(refine),
        min_cluster_size=min_cluster_size,
        init=init,
        kernel=kernel,
        alpha=alpha,
        lr=lr,
        momentum=momentum,
        update_interval=update_interval,
        tol=tol,
        max_epochs=max_epochs,
        batch_size=batch_size,
        precision=precision,
        random_state=random_state,
        progress=progress,
        batch_key=batch_key,
        batch_categories=None if batches is None else batches.categories,
        batch_mixing=float(batch_mixing),
    )
    run = dict(
        method="desc",
        config=config,
        shape=[adata.n_obs, source.n_vars],
        input=where,
        scale=scale,
        data=data.content_digest(adata, use_rep),
        **batches_in_run(batches),
        # z-scored within batches before this version: such a checkpoint is refused
        **({"rep_scaling": "centred"} if use_rep and batches and not scale else {}),
    )
    checkpoint = open_run(
        checkpoint_dir,
        every=checkpoint_every,
        resume=resume,
        distributed=distributed,
        device=dev,
        across_processes={"resolutions": resolutions},
        **run,
    )
    warn_if_results_replaced(adata, keys, copy=copy)
    results: dict[str, ClusteringResult] = {}
    with standard_torch_mode(), report_interruption(checkpoint):
        try:
            pretrained = pretrain_desc(feeder, config, checkpoint=checkpoint)
        except TrainingDiverged as error:
            if use_rep is None and not scale and batches is None and is_off_scale(data.summary):
                error.add_note(
                    f"adata.{where} is far from z-scores (root mean square "
                    f"{data.summary.root_mean_square:.3g}): that is the likelier cause here, "
                    "which no learning rate cures. Pass scale=True, or run sc.pp.scale first."
                )
            raise
        for res in resolutions:
            key = f"{key_added}_{res}" if per_resolution else key_added
            try:
                result = cluster_desc(feeder, pretrained, config, res, checkpoint=checkpoint)
            except Exception as error:
                if len(resolutions) > 1:  # results are written only when all of them succeed
                    reuse = (
                        ""
                        if checkpoint is None
                        else "; with resume=True the checkpoint gives them the pretraining and "
                        "the resolutions finished"
                    )
                    error.add_note(
                        f"(at resolution {res} of {resolutions}: nothing was written for any of "
                        f"them; leave that one out to get the others{reuse})"
                    )
                raise
            result.params.update(
                method="desc",
                input=where,
                mask_var=genes.param,
                device=str(dev),
                distributed=distributed,
                scale=scale or (batches is not None and use_rep is None),  # as applied
            )
            if use_rep is None and data.columns is not None:  # as scDCC: the genes read
                result.info["genes_used"] = np.asarray(adata.var_names[data.columns])
            if distributed:
                result.info["n_processes"] = world_size
            if batches is not None:
                result.info["batch_sizes"] = batches.sizes()
            results[key] = result
    total = time.perf_counter() - t_start
    for result in results.values():
        result.timings["total_s"] = total

    models = {}
    if return_model:
        input_spec = (
            {
                "kind": "obsm",
                "key": use_rep,
                "n_columns": data.summary.shape[1],
                # a DataFrame's columns are matched by name when new cells are mapped
                **_column_names(adata.obsm[use_rep], data.feature_names(adata, use_rep)),
            }
            if use_rep is not None
            else {"kind": "layer", "key": layer}
            if layer is not None
            else {"kind": "X", "key": None}
        )
        preprocessing = {"input": input_spec}
        # mapped cells are checked against it; obsm's columns are no genes
        if use_rep is None and data.summary.median_gene_scale is not None:
            preprocessing["input_gene_scale"] = data.summary.median_gene_scale
            # scaled (or corrected) cells have negative values: what new cells are told to be
            preprocessing["input_has_negatives"] = bool(data.summary.n_negative)
        if scaling is not None:  # z-scoring (within the training batches), for mapped cells too
            preprocessing.update(gene_mean=scaling[0], gene_scale=scaling[1])
        for key, result in results.items():
            models[key] = DESC(
                result.trained["network"],
                result.trained["centroids"],
                confidence_map=result.trained["confidence_map"],
                config=result.params,
                features=data.feature_names(adata, use_rep),
                preprocessing=preprocessing,
                key_added=key,
                empty_clusters=result.info["empty_clusters"],
            )
    model = models if per_resolution else next(iter(models.values()), None)
    if next(iter(results.values())).labels is None:
        # not rank 0 of a distributed run: rank 0 writes the results
        return tool_return(None, copy, model, return_model)
    adata = target_adata(adata, copy)
    write_results(adata, results)
    advance_generator(given_random_state)
    logg.info(
        "    " + ", ".join(f"{k}: {len(np.unique(r.labels))} clusters" for k, r in results.items()),
        time=start,
    )
    return tool_return(adata, copy, model, return_model)


def _column_names(stored, features: list[str]) -> dict:
    """``{"column_names": ...}``: the names of a DataFrame's columns the network reads, if any.

    Those are the `features` (positions; all-zero columns are left out); without distinct
    names (an array, repeated names) the columns are taken by position.
    """
    if not isinstance(stored, pd.DataFrame):
        return {}
    names = np.asarray(stored.columns.astype(str))
    if len(set(names)) != len(names):  # repeated, also as text only (1 and "1")
        return {}
    return {"column_names": [str(names[int(f)]) for f in features]}
