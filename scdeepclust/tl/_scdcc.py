from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from os import PathLike

import numpy as np
from anndata import AnnData
from scanpy import logging as logg

from .._messages import caller_stacklevel
from .._results import check_result_keys, warn_if_results_replaced, write_results
from .._threads import torch_threads_kept
from ..constraints import (
    PairwiseConstraints,
    label_codes,
    pairs_from_labels,
    pairs_from_protein,
    pairs_from_user,
)
from ..data import CellFeeder, RowSource
from ..models import SCDCC, SCDCCConfig, fit_scdcc
from ..models._scdcc import DEFAULT_RESOLUTION
from ..pp._batches import batch_covariate
from ..pp._counts import count_statistics, library_sizes
from ..pp._input import (
    HIGHLY_VARIABLE_IF_PRESENT,
    advise_loading_backed,
    check_adata,
    gene_mask,
    warn_if_genes_unselected,
)
from ..pp._protein import holds_protein_counts, protein_levels
from ..pp._recipe import scanpy_computable
from ..train import (
    DEFAULT_MIN_CLUSTER_SIZE,
    array_digest,
    check_precision,
    report_interruption,
    resolve_device,
    standard_torch_mode,
)
from ..train._centroids import KNOWN_CLASS_MEANS
from ..train._label_prior import MAX_LABEL_PRIOR
from ..train._n_clusters import resolve_bounds
from ._validate import (
    advance_generator,
    as_int,
    as_layer_sizes,
    as_min_cluster_size,
    batches_in_run,
    check_batch_mixing,
    check_between,
    check_checkpointing,
    check_gene_names,
    check_init,
    check_key_added,
    check_keys,
    check_known_labels,
    check_n_clusters,
    check_names,
    check_positive,
    check_refine,
    check_resolution,
    check_switches,
    check_training_sizes,
    check_update_interval,
    check_weight,
    open_run,
    resolution_list,
    resolved_random_state,
    start_distributed,
    target_adata,
    tool_input,
    tool_return,
    warn_if_placeholder_labels,
    warn_if_start_options_unused,
)

# Measured on 10X PBMC with 10% labelled cells (ARI on the rest): 20 pairs per labelled cell
# 0.774, 100 pairs 0.800; more pairs cost little since they involve only the labelled cells.
DEFAULT_PAIRS_PER_LABELLED_CELL = 100


@advise_loading_backed
def scdcc(
    adata: AnnData,
    n_clusters: int | np.integer | tuple[int, int] | None = None,
    *,
    init: str = "leiden",
    layer: str | None = None,
    mask_var: np.ndarray | str | None = HIGHLY_VARIABLE_IF_PRESENT,
    batch_key: str | None = None,
    batch_mixing: float = 10.0,
    n_top_genes: int | None = None,
    label_key: str | None = None,
    must_link: Sequence | np.ndarray | None = None,
    cannot_link: Sequence | np.ndarray | None = None,
    protein_key: str | None = None,
    n_pairs: int | None = None,
    ml_weight: float = 1.0,
    cl_weight: float = 1.0,
    label_weight: float = 10.0,
    keep_labels: bool = True,
    label_prior: float = 2.0,
    refine: float = 0.5,
    min_cluster_size: int | float = DEFAULT_MIN_CLUSTER_SIZE,
    resolution: float | None = None,
    n_neighbors: int = 15,
    encoder_hidden: Sequence[int] = (256, 64),
    latent_dim: int = 32,
    decoder_hidden: Sequence[int] = (64, 256),
    sigma: float = 2.5,
    max_value: float | None = None,
    pretrain_epochs: int | None = None,
    pretrain_lr: float = 1e-3,
    pretrain_balance: float | None = None,
    max_epochs: int | None = None,
    lr: float = 1.0,
    gamma: float = 1.0,
    balance: float = 1.0,
    update_interval: float | None = None,
    tol: float | None = None,
    batch_size: int = 256,
    device: str = "auto",
    precision: str = "float32",
    random_state: int | np.random.RandomState | np.random.Generator | None = 0,
    key_added: str = "scdcc",
    progress: bool = True,
    copy: bool = False,
    return_model: bool = False,
    checkpoint_dir: str | PathLike | None = None,
    checkpoint_every: int = 10,
    resume: bool = False,
    distributed: bool = False,
) -> AnnData | SCDCC | tuple[AnnData, SCDCC] | None:
    """Deep count autoencoder clustering with pairwise constraints (scDCC).

    A denoising autoencoder reads z-scored log1p(normalised counts) with Gaussian noise; its
    decoder gives the mean, dispersion and dropout of a zero-inflated negative binomial fitted
    to the raw counts with size factors. After pretraining on that likelihood, centroids are
    initialised in the latent space (Leiden at a resolution, by default 0.3; Leiden brought to
    a given number of clusters; or k-means at a number searched from the data) and the network is
    trained on ZINB + `gamma` x KL(p || q) (DEC), plus must-link / cannot-link losses from
    prior knowledge, until fewer than `tol` of the labels change between target refreshes. The
    reported labels are the clusters read once more by a classifier of the input (`refine`).

    Parameters
    ----------
    adata
        Annotated data of cells x genes, holding raw counts. Genes are used as `mask_var`
        says: ``var['highly_variable']`` when scanpy has marked them, else all; or pass
        `n_top_genes`.
    n_clusters
        Number of clusters (initialised as `init` says), or ``(lo, hi)`` bounds of a search for it.
        Default, with no `resolution` either: Leiden at resolution 0.3 on the pretrained latent
        space chooses the clusters (see `resolution`); with `label_key` the number is searched
        instead (at least one cluster per known class) and the known classes place the centroids
        (between 2 and 30, and at most a fifth of the cells, as in :func:`scdeepclust.tl.desc`). The
        search, between 2 and 30 for ``n_clusters=(2, 30)``: k-means on random subsamples, each from
        its own seed, for every candidate k; the score of k is the mean adjusted Rand index between
        those partitions, and the choice is the largest k whose score is within 0.05 of the best
        (see ``uns[key_added]['n_clusters_search']`` and :func:`scdeepclust.pl.n_clusters`). Leiden
        measured better than the search at the defaults over the four datasets (ARI, median of
        seeds 0-2, 10X PBMC / mouse bladder / worm neurons / CITE CBMC): 0.742 / 0.608 / 0.519 /
        0.649 against 0.723 / 0.643 / 0.430 / 0.623, the search ahead on bladder alone, where
        the seeds spread 0.086 against Leiden's 0.041.
    init
        How a given number of clusters `n_clusters` is reached on the pretrained latent space (a
        searched number by a new k-means fit, the kind of partition its search scored, balanced
        with ``"balanced-kmeans"``). ``"leiden"`` (default): Leiden on its kNN graph (`n_neighbors`)
        brought to `n_clusters` as :func:`scdeepclust.tl.desc` does by default (its ladder from
        `resolution`, 0.8 when `None`, merged by Ward's criterion, or Leiden at resolution 0.5
        merged or with its most separate parts split off, whichever cuts less of the graph).
        ``"kmeans"``: k-means on the latent vectors (scDCC's own start, and the default here
        until Leiden's start measured better). ``"balanced-kmeans"``: k-means on the cells'
        directions (each latent vector scaled to unit length: its length follows the library
        size, which the size factors already model), each cell weighted by n ** -0.5 for its
        group of n among 50 k-means groups of the directions, so that the most abundant type is
        not cut in two at the cost of small ones. k-means cuts large types in two and joins
        small ones: on simulated rare types (benchmarks/rare_types.py, seeds 0-2) its start
        already misses the groups of 2%, 1% and 0.5% of the cells in most runs, which Leiden's
        start holds. With the default `refine` (ARI at the true k, median of seeds 0-2,
        benchmarks/scdcc_accuracy.py, one machine; 10X PBMC / mouse bladder / worm neurons /
        CITE CBMC): Leiden 0.749 / 0.612 / 0.427 / 0.630 (bladder with the longer pretraining
        of small data; 0.560 before) against k-means' 0.746 / 0.590 / 0.430 / 0.549; rare
        groups found (F1 >= 0.8) in 2 / 2 / 2 of 3 runs against 1 / 0 / 0. Balanced k-means
        with `refine` measured 0.776 / 0.555 / 0.438 / 0.522 and 2 / 1 / 2. Not used when the
        known classes of `label_key` place the centroids.
    layer
        Layer with raw counts. Default: ``layers['counts']`` if present, else ``X`` if it holds
        non-negative integers.
    mask_var
        The genes to read, as in ``sc.pp.pca``: a boolean column of ``adata.var`` by name, or a
        boolean array over the genes; None reads every gene. By default ``var['highly_variable']``
        when it exists, so that genes marked by ``sc.pp.highly_variable_genes(adata,
        n_top_genes=2000)`` without ``subset=True`` are the ones trained on (simulated data, 3,000
        cells of 8 groups, 15,000 genes of which 1% differ between groups, true k, scratch runs of
        seeds 0-2: ARI 0.09, 1.00 and 0.00 on every gene, 1.00 on the 2,000 marked). Size factors
        come from the counts of these genes. With `n_top_genes`, those are chosen among them.
    batch_key
        An `obs` column naming each cell's batch (donor, run, technology...). The input is
        z-scored within each batch, and the autoencoder is conditional on the batch (the
        batch enters its encoder, decoder and ZINB heads, so mean, dispersion and dropout may
        differ by batch): the latent space, and so the clusters, need not follow the batches.
        The batches are stored with the model; mapped cells must come from one of them.
    batch_mixing
        With `batch_key`: weight of a batch-mixing penalty in the clustering stage, the
        maximum mean discrepancy between each batch's latent codes and the other cells of the
        minibatch (Gaussian kernels at 0.1, 0.3 and 1 x the median squared distance). It pulls
        the batches together where the clusters already hold the cell types in place; in
        pretraining it cost cell-type accuracy on 10X PBMC, so it is not used there. With the
        penalty on, the clustering stage trains at least 240 minibatch steps (or half its
        steps, when it has fewer than 480) before `tol` may stop it (the labels settle before
        the batches have mixed). 0 turns it off. Ignored
        without batches (or with one), and then recorded as 0 in ``params``.
    n_top_genes
        Use only this many highly variable genes (scanpy's 'seurat' flavour on the counts
        normalised to 10,000 per cell and log1p-transformed), chosen internally among the
        genes of `mask_var`; `adata` is not modified.
    label_key
        `obs` column with known labels for some cells and missing values for the rest. Random
        pairs among labelled cells become must-link (same label) or cannot-link constraints.
        Unless `resolution` is given without `n_clusters`, the labelled cells also place the
        initial centroids (with `n_clusters`, in place of `init`'s start, so that `init` and
        `resolution` have no effect there, and a warning says so): each
        known class starts at the mean latent position of its labelled cells (further clusters
        from k-means), and a loss term weighted by `label_weight` keeps each labelled cell in its
        class's cluster. Only missing values (NaN, None) mark unlabelled cells: a text such as
        "unknown" or "nan" is a class of its own (the tool warns). With more known classes
        than 30 or a fifth of the cells, the searched number falls short of them (see
        `n_clusters`), and the classes then neither place the centroids nor keep their cells:
        give `n_clusters` as a number.
    must_link, cannot_link
        Explicit constraints, arrays of shape (n, 2) of cell positions or `obs_names`. Numbers
        are positions, with a warning where `obs_names` are other whole numbers (pass names as
        text). A pair given twice counts once; pairs that contradict `label_key` (a must-link
        between two different known classes, a cannot-link within one) are refused.
    protein_key
        `obsm` key of protein levels (e.g. CITE-seq ADT; an array, sparse matrix or
        DataFrame): random cell pairs closest in protein space become must-link, the farthest
        cannot-link. The distance is Euclidean on the levels as given: normalise ADT counts
        first (a centred log-ratio per cell, `pp.clr`), else the most abundant proteins
        decide (counts are warned about). Protein pairs that contradict the labels of
        `label_key` (two cells of different known classes near, or of one class far) or the
        given `must_link` / `cannot_link` are left out, and a pair drawn from both the labels
        and the proteins counts once.
    n_pairs
        Number of random pairs drawn for `label_key` (default: 100 per labelled cell); for
        `protein_key`, the most pairs of each kind (default `n_obs`), out of 50 x `n_pairs`
        random pairs, the nearest 0.5% must-linked and the farthest 5% cannot-linked.
    ml_weight, cl_weight
        Weights of the must-link and cannot-link losses.
    label_weight
        Weight of the term that keeps each cell of `label_key` in its known class's cluster
        (-log of its soft assignment there). 0 uses the labels only through pairs and the
        initial centroids, as earlier releases did.
    keep_labels
        Labelled cells keep their known class in the result (the cluster their class started
        at); their soft assignments in `obsm` are left as trained. When the labels may be wrong,
        pass `False` (the labelled cells are then assigned by the model like every other cell)
        and a lower `label_weight`: at the default weight the network learns the given labels
        of nearly all labelled cells, even random ones.
    label_prior
        How strongly the labelled cells' classes guide the others. A logistic regression on 50
        principal components of the input (clipped to [-10, 10] for them, as scanpy's PCA workflow
        does), trained on the cells of `label_key`, gives every cell class probabilities, averaged
        with those of its 15 nearest neighbours (in the components and in the pretrained latent
        space); DEC's target p is multiplied by these probabilities raised to the power
        `label_prior`, so unlabelled cells go where both the clusters and the labels point. 0 leaves
        the target to the clusters alone, as earlier releases did; at most 6. Used with
        `label_key` when the known classes place the initial centroids (not with `resolution`
        without `n_clusters`).
    refine
        Read the clusters once more in another view before reporting them, as `tl.desc` does: a
        logistic regression on 50 principal components of the input (clipped to [-10, 10] for
        them), trained on this share of each cluster's cells (those of highest soft assignment;
        about 20,000 in all, in proportion to the clusters, but at least 50 of each), gives
        class probabilities that,
        averaged with those of each cell's 15 nearest neighbours in those components, give
        every cell its reported cluster; `uns[key_added]['refinement']` says how many cells
        moved. The soft assignments in `obsm` stay the clustering stage's. 0 reports the stage's
        own labels. Not used with `label_key`, pairs or proteins (pairs of weight 0 aside; the
        label prior reads the labels with the same classifier) nor where batches are mixed
        (`batch_key` with `batch_mixing` > 0: the input holds the batch effects the stage
        removed) or `distributed`; ``params['refine']`` is then 0. The stage blurs the edges
        of small clusters, which the input still draws: on the simulated rare types, with the
        Leiden start, the 0.5% group's best F1 fell from 1.00 at the start to 0.75 at the end
        of the stage (seed 0) and is 1.00 refined. With the Leiden start, against 0 (true k, ARI,
        median of seeds 0-2, 10X PBMC / mouse bladder / worm neurons / CITE CBMC): 0.749 /
        0.560 / 0.427 / 0.630 (bladder 0.612 since the longer pretraining of small data) against
        0.740 / 0.597 / 0.433 / 0.537 (this one on another machine); with k-means' start
        0.746 / 0.590 / 0.430 / 0.549 against 0.753 / 0.586 / 0.426 / 0.538.
    min_cluster_size
        When the number of clusters comes from the data (`resolution`, or a searched range of
        `n_clusters`), a reported cluster (after `refine`) with fewer cells than this is merged,
        the smallest first and the sizes counted again after each: each of its cells takes the
        cluster of its highest soft assignment among those that stay, and the cluster is left
        empty (`uns[key_added]['empty_clusters']`; `small_clusters` says which, the least size in
        cells and how many cells moved). An integer is a number of cells, a float in [0, 1) a
        share of them (rounded up); 0 keeps every cluster. Never below a searched range's lower
        bound; not used with a given `n_clusters` or with `label_key`
        (``params['min_cluster_size']`` is then 0). It reads the trained model's labels, so a
        checkpoint resumes with another value. The default, 0.1% of the cells, is five times
        below the rarest simulated type of `benchmarks/rare_types.py`; on large data the Leiden
        start holds communities of a few dozen sampled cells of which the clustering stage and
        `refine` leave remnants.
    resolution, n_neighbors
        Initialise by Leiden on a kNN graph (of `n_neighbors` neighbours) of the pretrained
        latent space at this resolution; `None` with no `n_clusters`: 0.3 (without
        `label_key`). When a number `n_clusters` is given, only the starting resolution of
        ``init="leiden"`` (0.8 when `None`); nothing for another `init` or a searched number
        (a warning says so). On more than 10,000 cells Leiden runs on a random
        sample of 10,000 and every cell, those of the sample too, joins the cluster of the
        nearest mean on the sample.
    encoder_hidden, latent_dim, decoder_hidden
        Network shape.
    sigma
        Standard deviation of the Gaussian noise added to the (z-scored) input during training.
        The default is scDCC's own. Less noise measured better on worm neurons given the true
        number of clusters (1.0-1.5: ARI 0.48-0.49 against 0.43, median of seeds 0-2) and worse
        on 10X PBMC at the defaults (0.61-0.62 against 0.74) and on CITE CBMC given the true
        number with 1.5-2.0 (0.53-0.57 against 0.63; docs/measurements.md).
    max_value
        Clip the z-scored network input to [-max_value, max_value], as `sc.pp.scale` does.
    pretrain_epochs
        Pretraining epochs. `None`: chosen from the number of cells (40 up to 100,000 cells,
        fewer beyond, so that the number of minibatch steps stays the same), and at least
        enough for 680 minibatch steps (those 40 epochs on 10X PBMC's 4,271 cells), so that
        small data are not trained less (62 epochs for 2,746 cells, 85 for 2,000, at most 100:
        up to about 1,500 cells); with early stopping on a plateau of the loss when the cells are
        drawn uniformly (with `pretrain_balance` > 0 each epoch's loss moves with the draw,
        and all epochs run).
    pretrain_lr
        Learning rate of pretraining (Adam with AMSGrad, scDCC's choice).
    pretrain_balance
        Evens out how often crowded and sparse regions of the data are seen in pretraining.
        The cells are split into small groups (50, or one per 50 cells below 2,500; k-means
        on 50 principal components of the network input, clipped to [-10, 10] for them), and
        a cell in a group of n cells is drawn with probability proportional to
        n^-pretrain_balance (with replacement; as many draws per epoch as cells); 0 draws
        every cell equally often. Drawn uniformly, the most abundant cell type dominates the
        reconstruction and the latent space spreads it out, so that k-means may split it
        while merging small types. `None` (default): 0.5 when `n_clusters` is a number,
        else 0. At the true k (median of seeds 0-2), 0.5 against 0: mouse bladder 0.637 /
        0.538, CITE CBMC 0.568 / 0.533, worm neurons 0.443 / 0.428, 10X PBMC 0.759 / 0.767;
        when the number of clusters is searched, 0.5 made the search choose fewer clusters
        (mouse bladder 0.504 against 0.642), hence 0 there. Draws stay uniform with
        `batch_key`, `distributed=True` and under 100 cells (``params['pretrain_balance']`` is
        then 0).
    max_epochs
        Upper bound on clustering-stage epochs. Default: 300 up to 20,000 cells, the same
        number of minibatch steps beyond (6 epochs at a million cells).
    lr
        Adadelta learning rate of the clustering stage.
    gamma
        Weight of the clustering (KL) loss against the ZINB loss.
    balance
        Exponent of the cluster frequency f in the target p = q^2 / f^balance (normalised per
        cell). 1 is DEC's target, which favours clusters of equal size; 0 leaves the sizes to
        the data.
    update_interval
        Epochs between refreshes of the target distribution p (fractions refresh within an
        epoch). Default: every epoch, or every 500 minibatches when an epoch is longer.
    tol
        Stop when fewer than this fraction of cells change label between refreshes. Default
        0.005, or 0.001 with constraints or known labels (`label_key`, `protein_key`,
        `must_link`, `cannot_link`; pairs only where their weight is above 0), which keep
        improving the clusters after the labels have
        mostly settled. 0 trains every epoch of `max_epochs` (warning that the stage did
        not converge only where labels still changed at the last refresh).
    batch_size
        Minibatch size.
    device
        "auto" (CUDA when available, else CPU), "cpu", "cuda" or "cuda:N" (an integer N means
        "cuda:N"); other torch devices (mps, xpu, meta) are refused.
    precision
        ``"float32"``, or ``"bfloat16"``: the network's layers compute in bfloat16 (torch's
        autocast; weights, optimiser, likelihood and clustering stay float32), for speed on
        CPUs with AMX or AVX-512 BF16 instructions (others emulate bfloat16 and may be slower
        than float32) and on GPUs that compute in it (not yet timed). On a 2-core Intel Xeon
        with AMX (10X PBMC, seeds 0-2) scDCC at the true k took 22.4 s against 26.3 s and
        DESC at its defaults 5.2 s against 6.8 s; the median ARIs of the four benchmark datasets
        moved by at most 0.026 either way, except scDCC's on CBMC at the true k, 0.061 lower
        (`benchmarks/results/*_accuracy_bfloat16.md`; README). A
        saved model keeps it, so that mapped cells are embedded as in training.
    random_state
        Seed of weights, minibatch order, noise, k-means / Leiden and constraint sampling. The
        same value gives the same labels on the same machine. `None` draws a seed, kept in
        ``uns[key_added]['params']['random_state']`` so that the run can be repeated (not with
        `checkpoint_dir` or `distributed`, which need the seed known in advance). A numpy
        ``RandomState`` or ``Generator``, which scanpy's functions also take, gives the seed
        (one draw from it, spent only when the results are written), kept there too (not with
        those two options either).
    key_added
        Prefix of the keys written (not ending in "_colors", scanpy's place for the colours of
        an obs column, and without '/', which h5ad files cannot hold in a key).
    progress
        Show progress bars (not at ``sc.settings.verbosity = 0``, errors only).
    copy
        Return a modified copy instead of writing to `adata`. Not possible for a backed AnnData
        (the results are then added to the object in memory, the file is only read).
    return_model
        Also return the trained model, an :class:`scdeepclust.models.SCDCC`: `save` it, `load`
        it, map new cells onto its clusters with `predict` / :func:`~scdeepclust.tl.map_to_model`.
    checkpoint_dir
        Save the training state (weights, optimizer, centroids, stage, epoch, RNG states) to
        ``checkpoint_dir/checkpoint.pt`` every `checkpoint_every` epochs and at the end of each
        stage. An existing checkpoint is never overwritten unless `resume=True`.
    checkpoint_every
        Epochs between checkpoints.
    resume
        Continue from the checkpoint in `checkpoint_dir` (the same call, same data); finished
        stages are skipped. Starts from the beginning if there is no checkpoint yet.
    distributed
        Data-parallel training over the processes started by ``torchrun`` (one per GPU, or
        several on CPUs): every process calls the tool on the same `adata`, trains on its own
        contiguous share of the cells and averages gradients with the others (backend nccl on
        CUDA, gloo on the CPU; each process uses ``cuda:LOCAL_RANK``). Rank, world size and
        address come from torchrun's environment, and the process group is initialised if it
        is not already. `batch_size` is the global minibatch (each process takes its share), so
        the training follows the single-process one up to its random draws (minibatch
        order, noise), except that the pretraining draws stay uniform and `refine` is not
        used (``params`` record 0 for both), which measured lower on small simulated data.
        Centroids are initialised on rank 0 and broadcast; the target distribution and the
        `tol` criterion are computed over all cells. The processes' data and options are
        compared first, and a run whose processes differ is refused on all of them. Only rank
        0 writes the results; the other processes leave `adata` unchanged and return what
        rank 0 would with no AnnData to write to (`None`, ``(None, model)`` with `copy` and
        `return_model`, the model, identical on every rank, with `return_model`). Not yet with
        checkpoints or pairwise constraints. With `batch_key`, the batch-mixing penalty
        compares batches within each process's share, so cells ordered by batch (as
        ``anndata.concat`` leaves them) are refused: shuffle them first.

    Returns
    -------
    `None`; the copy if `copy=True`; the model if `return_model=True`; ``(copy, model)`` if
    both. Writes (to `adata`, or to the copy), after training succeeded:

    `adata.obs[key_added]`
        Cluster labels, categorical ("0", "1", ...): the clusters that hold cells (a cluster the
        clustering stage or `refine` empties has no category; a warning says which, when
        `n_clusters` was given), as `refine` reads them.
    `adata.obs[key_added + '_confidence']`
        Soft-assignment probability of each cell's reported cluster: its highest, except for
        labelled cells that keep their known class (`keep_labels`); for the cells that
        `refine` moved to another cluster, the probability the refinement's classifier gives
        that cluster (their soft assignment to it is low: 0.08-0.24 on average where 0.28-0.74
        of them are in a cluster led by their annotated type; docs/measurements.md).
        Unlike DESC's, scDCC's soft assignments are already about as well calibrated against
        annotated types as a neighbour-based calibration makes them, so they are reported as
        they are.
    `adata.obsm['X_' + key_added]`
        Latent embedding (float32).
    `adata.obsm[key_added + '_probs']`
        Soft assignment q (cells x clusters), column i for label "i".
    `adata.uns[key_added]`
        `params`, `n_clusters` (non-empty clusters), `empty_clusters` (the others), `history`
        (per-epoch losses of both stages, label change per refresh), `timings`, `environment` (the
        versions of scdeepclust, torch, scanpy, anndata, numpy and Python, and torch's thread count,
        on which the last digits of the embedding depend), `converged`
        (False, with a warning, where the stage stopped at `max_epochs`), `n_constraints`,
        `refinement` (`share`, `cells_moved`) when `refine` was used, `small_clusters`
        (`min_cells`, `merged`, `cells_moved`) when `min_cluster_size` applied,
        `n_clusters_search` when the number of clusters was searched (candidates, their scores
        and spreads, `chosen`, `runner_up`), `label_classes` when the known classes of
        `label_key` placed the initial centroids (cluster "i" started from class
        ``label_classes[i]``; classes in the column's order: its categories, numbers by value,
        other text alphabetically), `genes_used` (the names of the genes read)
        where some were left out (by `mask_var`, `n_top_genes`, or for holding only zeros), and
        `batch_sizes` with `batch_key` (cells per batch, in the order of
        ``params['batch_categories']``).
    """
    t_start = time.perf_counter()
    # read before check_adata refuses a non-AnnData: a MuData's layers are None
    in_x = layer is None and "counts" not in (getattr(adata, "layers", None) or {})
    check_adata(adata, copy=copy, reads="the raw counts scdcc reads" if in_x else "")
    check_key_added(key_added)
    check_names(layer=layer, batch_key=batch_key, label_key=label_key, protein_key=protein_key)
    n_clusters = check_n_clusters(n_clusters, adata.n_obs)
    check_resolution(resolution)
    resolution = resolution_list(resolution)[0]
    check_switches(progress, copy, return_model, resume, distributed, keep_labels=keep_labels)
    check_init(init)
    if label_key is None or (n_clusters is None and resolution is not None):
        warn_if_start_options_unused(init, n_clusters, resolution)  # the classes' own below
    if n_clusters is None and resolution is None and label_key is None:
        resolution = DEFAULT_RESOLUTION
    batch_size, n_neighbors = check_training_sizes(
        adata.n_obs,
        batch_size=batch_size,
        n_clusters=n_clusters,
        n_neighbors=n_neighbors,
        resolution=resolution,
        init=init,
    )
    check_keys(adata, label_key=label_key, protein_key=protein_key)
    check_result_keys(
        adata, [key_added], label_key=label_key, batch_key=batch_key, protein_key=protein_key
    )
    if label_key is not None:
        check_known_labels(adata.obs[label_key], label_key)
    placeholders = warn_if_placeholder_labels(adata, label_key)  # the same cause, said once
    if (
        label_key is not None
        and keep_labels
        and not placeholders
        and adata.obs[label_key].notna().all()
    ):
        warnings.warn(
            f"adata.obs[{label_key!r}] labels every cell, and labelled cells keep their label "
            "(keep_labels=True): the clusters will be those labels. Leave the cells whose type "
            "is not known missing (NaN), or pass keep_labels=False (tl.scdcc) to let the "
            "model assign every cell.",
            UserWarning,
            stacklevel=caller_stacklevel(),
        )
    batches = batch_covariate(adata, batch_key)
    check_batch_mixing(batch_mixing)
    for name, weight, zero_means in (
        ("ml_weight", ml_weight, "0 ignores must-link pairs"),
        ("cl_weight", cl_weight, "0 ignores cannot-link pairs"),
        ("label_weight", label_weight, "0 uses labels through pairs and centroids only"),
        ("label_prior", label_prior, "0 leaves DEC's target to the clusters alone"),
        ("balance", balance, "0 leaves the cluster sizes to the data"),
    ):
        check_weight(name, weight, zero_means)
    if label_prior > MAX_LABEL_PRIOR:
        raise ValueError(
            f"label_prior must be at most {MAX_LABEL_PRIOR:g}, got {label_prior!r}: the class "
            f"probabilities raised to a larger power leave float32's range, and at "
            f"{MAX_LABEL_PRIOR:g} the classifier already overrules the clusters nearly everywhere "
            "(a ratio of 0.9 to 0.1 becomes half a million to one)."
        )
    check_refine(refine)
    min_cluster_size = as_min_cluster_size(min_cluster_size)
    if pretrain_balance is not None:
        check_weight("pretrain_balance", pretrain_balance, "0 draws every cell equally often")
    check_update_interval(update_interval)
    given_random_state = random_state
    random_state = resolved_random_state(
        random_state, distributed=distributed, checkpoint_dir=checkpoint_dir
    )
    gene_selection = gene_mask(adata, mask_var)
    check_gene_names(adata, use_rep=None, return_model=return_model, genes=gene_selection)
    n_top_genes = as_int("n_top_genes", n_top_genes, minimum=1, allow_none=True)
    n_pairs = as_int("n_pairs", n_pairs, minimum=1, allow_none=True)
    if n_pairs is not None and label_key is None and protein_key is None:
        warnings.warn(
            f"n_pairs={n_pairs} has no effect without `label_key` or `protein_key`: it is the "
            "number of pairs drawn from them (given `must_link` / `cannot_link` are used as "
            "they are).",
            UserWarning,
            stacklevel=caller_stacklevel(),
        )
    pretrain_epochs = as_int("pretrain_epochs", pretrain_epochs, minimum=1, allow_none=True)
    max_epochs = as_int("max_epochs", max_epochs, minimum=1, allow_none=True)
    latent_dim = as_int("latent_dim", latent_dim, minimum=1)
    encoder_hidden = as_layer_sizes("encoder_hidden", encoder_hidden, allow_empty=True)
    decoder_hidden = as_layer_sizes("decoder_hidden", decoder_hidden, allow_empty=True)
    check_positive("pretrain_lr", pretrain_lr)
    check_positive("lr", lr)
    check_positive("sigma", sigma, allow_zero=True)
    check_weight("gamma", gamma, "0 leaves the clustering loss out")
    if tol is not None:
        check_between("tol", tol, 0, 1)
    if max_value is not None:
        check_positive("max_value", max_value)
    check_checkpointing(checkpoint_dir, checkpoint_every, resume)
    dev = resolve_device(device)
    check_precision(precision, dev)
    if distributed:
        has_constraints = any(
            v is not None for v in (label_key, must_link, cannot_link, protein_key)
        )
        rank, world_size, dev = start_distributed(
            dev,
            checkpoint_dir=checkpoint_dir,
            constraints=has_constraints,
            batches=batches,
            batch_mixing=batch_mixing,
        )
    start = logg.info(f"running scDCC on {adata.n_obs} cells")

    data = tool_input(adata, layer=layer, counts=True, genes=gene_selection)
    counts, where, genes_used = data.matrix, data.where, data.columns
    if gene_selection.param is not None:
        logg.info(f"    reading {data.n_columns} genes of {gene_selection.describe()}")
    if n_top_genes is None:
        warn_if_genes_unselected(
            gene_selection,
            data.n_columns,
            where,
            alternative=", pass n_top_genes=2000",
        )
    n_genes = adata.n_vars if genes_used is None else len(genes_used)
    if n_top_genes is not None and n_top_genes < n_genes:
        kept = np.arange(adata.n_vars) if genes_used is None else genes_used
        chosen = _highly_variable(counts, n_top_genes, None if genes_used is None else kept)
        genes_used = kept[chosen]
    source = RowSource(counts, columns=genes_used)
    batch_codes = None if batches is None else batches.codes
    try:
        stats = count_statistics(
            source, batch_codes=batch_codes, n_batches=1 if batches is None else batches.n_batches
        )
    except ValueError:
        if n_top_genes is None or n_top_genes >= n_genes:
            raise
        # the input check passed every cell: only the chosen genes can have left some empty
        empty = library_sizes(source) <= 0
        raise ValueError(
            f"{int(empty.sum())} cell(s) (e.g. {list(adata.obs_names[empty][:3])}) have no "
            f"counts in the n_top_genes={n_top_genes} most variable genes; pass a larger "
            "n_top_genes (or none), or leave those cells out."
        ) from None
    rng = np.random.default_rng(random_state)
    constraints = _build_constraints(
        adata, label_key, must_link, cannot_link, protein_key, n_pairs, rng
    )
    feeder = CellFeeder(
        source,
        device=dev,
        size_factors=stats.size_factors,
        gene_mean=stats.gene_mean,
        gene_scale=stats.gene_scale,
        max_value=max_value,
        batch_codes=batch_codes,
    )
    if distributed:
        feeder = feeder.sharded(rank, world_size)
    config = SCDCCConfig(
        n_clusters=n_clusters,
        init=init,
        encoder_hidden=tuple(encoder_hidden),
        latent_dim=latent_dim,
        decoder_hidden=tuple(decoder_hidden),
        sigma=sigma,
        pretrain_epochs=pretrain_epochs,
        pretrain_lr=pretrain_lr,
        pretrain_balance=pretrain_balance,
        max_epochs=max_epochs,
        lr=lr,
        gamma=gamma,
        balance=balance,
        update_interval=update_interval,
        tol=tol,
        resolution=resolution,
        n_neighbors=n_neighbors,
        ml_weight=ml_weight,
        cl_weight=cl_weight,
        label_weight=label_weight,
        keep_known_labels=keep_labels,
        label_prior=label_prior,
        refine=float(refine),
        min_cluster_size=min_cluster_size,
        batch_size=batch_size,
        precision=precision,
        random_state=random_state,
        progress=progress,
        batch_key=batch_key,
        batch_categories=None if batches is None else batches.categories,
        batch_mixing=float(batch_mixing),
    )
    seed_labels = label_classes = None
    if label_key is not None and (n_clusters is not None or resolution is None):
        seed_labels, label_classes = label_codes(adata.obs[label_key])
        _warn_if_classes_replace_init(init, resolution, n_clusters, len(label_classes), adata.n_obs)
    run = dict(
        method="scdcc",
        config=config,
        shape=[adata.n_obs, source.n_vars],
        median_library_size=stats.median_library_size,
        n_constraints=0 if constraints is None else len(constraints),
        max_value=max_value,
        data=data.content_digest(adata, None, columns=genes_used),
        constraints=None
        if constraints is None
        else array_digest(constraints.must_link, constraints.cannot_link),
        seed_labels=None if seed_labels is None else array_digest(seed_labels),
        **batches_in_run(batches),
    )
    checkpoint = open_run(
        checkpoint_dir,
        every=checkpoint_every,
        resume=resume,
        distributed=distributed,
        device=dev,
        **run,
    )
    warn_if_results_replaced(adata, [key_added], copy=copy)
    with standard_torch_mode(), report_interruption(checkpoint):
        result = fit_scdcc(
            feeder,
            config,
            constraints,
            seed_labels,
            checkpoint=checkpoint,
            median_library_size=stats.median_library_size,
        )
    result.params.update(
        method="scdcc",
        distributed=distributed,
        counts_from=where,
        mask_var=gene_selection.param,
        n_top_genes=n_top_genes,
        label_key=label_key,
        protein_key=protein_key,
        n_pairs=n_pairs,
        max_value=max_value,
        device=str(dev),
    )
    result.timings["total_s"] = time.perf_counter() - t_start
    if distributed:
        result.info["n_processes"] = world_size
    if batches is not None:
        result.info["batch_sizes"] = batches.sizes()
    if label_classes is not None and result.info["init_method"].startswith(KNOWN_CLASS_MEANS):
        # the known classes started clusters 0, 1, ...: which is which
        result.info["label_classes"] = label_classes
    genes = adata.var_names if genes_used is None else adata.var_names[genes_used]
    if genes_used is not None:
        result.info["genes_used"] = np.asarray(genes)
    model = None
    if return_model:
        model = SCDCC(
            result.trained["network"],
            result.trained["centroids"],
            config=result.params,  # as run: tol, refine and pretrain_balance resolved
            features=list(genes.astype(str)),
            preprocessing={
                "counts_from": where,
                "median_library_size": stats.median_library_size,
                "gene_mean": stats.gene_mean,
                "gene_scale": stats.gene_scale,
                "max_value": max_value,
            },
            key_added=key_added,
            label_classes=result.info.get("label_classes"),
            empty_clusters=result.info["empty_clusters"],
        )
    if result.labels is None:  # not rank 0 of a distributed run: rank 0 writes the results
        return tool_return(None, copy, model, return_model)

    adata = target_adata(adata, copy)
    write_results(adata, {key_added: result})
    advance_generator(given_random_state)
    logg.info(
        f"    found {len(np.unique(result.labels))} clusters",
        time=start,
        deep=f"added\n    {key_added!r}, {key_added + '_confidence'!r} (adata.obs)\n"
        f"    {'X_' + key_added!r}, {key_added + '_probs'!r} (adata.obsm)\n"
        f"    {key_added!r} (adata.uns)",
    )
    return tool_return(adata, copy, model, return_model)


def _warn_if_classes_replace_init(
    init: str, resolution, n_clusters, n_classes: int, n_obs: int
) -> None:
    """Warn about `init` and `resolution` where the known classes leave them nothing to do.

    The classes place the centroids for a given number of at least as many clusters as classes,
    and for a searched one whose upper bound reaches them: `init` and `resolution` then do
    nothing. With fewer clusters than classes k-means starts them (balanced with
    ``init='balanced-kmeans'``; Leiden does not run with known classes), and a warning at that
    point says so: `resolution` does nothing there either.
    """
    if isinstance(n_clusters, int):
        anchored = n_clusters >= n_classes
    else:
        anchored = resolve_bounds(n_clusters, n_obs)[1] >= n_classes
    ignored = [f"init={init!r}"] if anchored and init != "leiden" else []
    if resolution is not None:  # only given with n_clusters here: otherwise Leiden clusters
        ignored.append(f"resolution={resolution:g}")
    if not ignored:
        return
    why = (
        "each known class starts a centroid at the mean of its labelled cells (further "
        "clusters from k-means)"
        if anchored
        else "the classes outnumber the clusters, which k-means starts (Leiden does not run "
        "with known classes)"
    )
    warnings.warn(
        f"{' and '.join(ignored)} {'has' if len(ignored) == 1 else 'have'} no effect with "
        f"`label_key`: {why}. Leave them out, or give `resolution` without `n_clusters` to "
        "start from Leiden's clusters instead.",
        UserWarning,
        stacklevel=caller_stacklevel(),
    )


def _highly_variable(counts, n_top_genes: int, columns: np.ndarray | None) -> np.ndarray:
    """Positions (among `columns`, if given) of the most variable genes ('seurat' flavour)."""
    import scanpy as sc
    from scipy import sparse

    source = RowSource(counts, columns=columns)
    # in memory, block by block: the choice needs every cell's counts (and scanpy's log1p
    # would take repeated entries of a sparse matrix one by one; scipy cannot slice one whose
    # values are in another byte order, which the blocks are read out of)
    if source.is_backed or source.sums_duplicates or source.swaps_bytes:
        # each block as scipy stores it (float16 and other byte orders it refuses)
        blocks = [sparse.csr_matrix(scanpy_computable(b)[0]) for _, _, b in source.iter_blocks()]
        counts = sparse.vstack(blocks, format="csr")
    elif columns is not None:
        counts = counts[:, columns]
    counts, _ = scanpy_computable(counts)  # the recipe's storage: the same values
    # 10,000 rather than the recipe's median total: the median chose genes that scored lower
    # (10X PBMC, mouse bladder; docs/measurements.md)
    with torch_threads_kept():
        normalised = sc.pp.normalize_total(AnnData(counts), target_sum=1e4, inplace=False)["X"]
        tmp = AnnData(normalised)
        sc.pp.log1p(tmp)
        table = sc.pp.highly_variable_genes(
            tmp, n_top_genes=n_top_genes, flavor="seurat", inplace=False
        )
    return np.flatnonzero(table["highly_variable"].to_numpy())


def _build_constraints(
    adata: AnnData,
    label_key: str | None,
    must_link,
    cannot_link,
    protein_key: str | None,
    n_pairs: int | None,
    rng: np.random.Generator,
) -> PairwiseConstraints | None:
    labelled = from_protein = user = PairwiseConstraints.empty()
    codes = None
    if must_link is not None or cannot_link is not None:
        user = PairwiseConstraints(
            pairs_from_user([] if must_link is None else must_link, adata.obs_names, "must_link"),
            pairs_from_user(
                [] if cannot_link is None else cannot_link, adata.obs_names, "cannot_link"
            ),
        )
        user.check(adata.n_obs)
    if label_key is not None:  # both keys were checked by check_keys, before any work
        labels = adata.obs[label_key]
        n_labelled = int(labels.notna().sum())
        n = n_pairs if n_pairs is not None else DEFAULT_PAIRS_PER_LABELLED_CELL * n_labelled
        labelled = pairs_from_labels(labels, n, rng)
        codes, classes = label_codes(labels)
        # both are the user's word: where they disagree, whatever the draw, the user decides
        user.refuse_against_labels(codes, classes, label_key, adata.obs_names)
    if protein_key is not None:
        protein = protein_levels(adata.obsm[protein_key], protein_key)
        if protein.ndim != 2 or not np.all(np.isfinite(protein)):
            raise ValueError(
                f"adata.obsm[{protein_key!r}] must be a finite cells x proteins matrix; it has "
                f"shape {protein.shape} and {int(np.sum(~np.isfinite(protein)))} NaN or "
                "infinite values."
            )
        if holds_protein_counts(protein):
            warnings.warn(
                f"adata.obsm[{protein_key!r}] holds counts (values from 0 up to "
                f"{protein.max():.6g}): distances between cells then follow the most abundant "
                "proteins. Normalise the antibody counts first, e.g. by a centred log-ratio "
                f"per cell: `sdc.pp.clr(adata, {protein_key!r})`.",
                UserWarning,
                stacklevel=caller_stacklevel(),
            )
        n = n_pairs if n_pairs is not None else adata.n_obs
        from_protein = pairs_from_protein(
            protein, n, rng, where=f"The levels of adata.obsm[{protein_key!r}]"
        )
        # random draws from a distance: where the labels or the given pairs say otherwise,
        # they say more
        if codes is not None:
            from_protein = from_protein.agreeing_with(codes)
        from_protein = from_protein.without_contradicting(user, adata.n_obs)
    # a pair drawn from two sources (or given twice) counts once
    constraints = (labelled + from_protein + user).distinct(adata.n_obs)
    if not len(constraints):
        return None
    constraints.check(adata.n_obs)
    return constraints
