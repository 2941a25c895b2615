"""scDCC: a denoising ZINB autoencoder refined by the DEC loss and pairwise constraints."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from scanpy import logging as logg

from .._results import ClusteringResult
from ..constraints import PairLoss, PairwiseConstraints
from ..data import Batch, CellFeeder, minibatch_count
from ..nn import ZINBAutoencoder, batch_mixing_mmd, zinb_nll
from ..train import (
    DEFAULT_MIN_CLUSTER_SIZE,
    MIN_CLUSTERING_STEPS,
    CentroidInit,
    ClusteringStage,
    PlateauStopper,
    TrainingCheckpoint,
    adadelta,
    adam,
    deep_embedded_clustering,
    default_epochs,
    density_balanced_weights,
    divergence_hint,
    draws_read_components,
    fit_epochs,
    initial_network,
    input_principal_components,
    merges_small_clusters,
    numpy_rng,
    refined_share,
    torch_generator,
)
from ._settings import BatchSettings

# The Leiden resolution of `tl.scdcc` when neither the number of clusters nor a resolution is
# given (and no labels are): coarser than DESC's 0.5, since the ZINB autoencoder's latent space
# splits into more Leiden clusters at a resolution. Against the k-means search it replaced
# (docs/measurements.md, "scDCC without k"), seeds 0-2, median: 10X PBMC 0.742 against 0.723,
# worm neurons 0.519 against 0.430, CITE CBMC 0.649 against 0.623, mouse bladder 0.607 against
# 0.611 with a spread of 0.021 against 0.106.
DEFAULT_RESOLUTION = 0.3
# `pretrain_balance` when the number of clusters is given (see `resolved_pretrain_balance`).
DEFAULT_PRETRAIN_BALANCE = 0.5
# The fewest minibatch steps of a default pretraining: those of the 40 epochs measured on 10X
# PBMC (4,271 cells, 17 steps an epoch). Smaller data took as many epochs but fewer steps, and
# their small groups stayed joined in the latent space (see `resolved_pretrain_epochs`).
MIN_PRETRAIN_STEPS = 680
# That floor stops at this many epochs (up to about 1,500 cells), so that a cell costs at most 2.5
# times the pretraining of 40 epochs: the whole floor took 300 simulated cells 340 epochs (18.8 s
# against 2.2 s with 40) for the same clusters.
MAX_FLOOR_PRETRAIN_EPOCHS = 100
# `tol` without and with constraints or known labels (see `resolved_tol`).
DEFAULT_TOL = 0.005
TOL_WITH_PRIOR_KNOWLEDGE = 0.001


@dataclass
class SCDCCConfig(BatchSettings):
    """Settings of an scDCC run: the parameters of `tl.scdcc`, which documents them."""

    n_clusters: int | tuple[int, int] | None = None
    encoder_hidden: Sequence[int] = (256, 64)
    latent_dim: int = 32
    decoder_hidden: Sequence[int] = (64, 256)
    sigma: float = 2.5
    pretrain_epochs: int | None = None
    pretrain_lr: float = 1e-3
    pretrain_balance: float | None = None
    max_epochs: int | None = None
    lr: float = 1.0
    gamma: float = 1.0
    balance: float = 1.0
    update_interval: float | None = None
    tol: float | None = None
    resolution: float | None = None
    init: str = "leiden"
    n_neighbors: int = 15
    ml_weight: float = 1.0
    cl_weight: float = 1.0
    label_weight: float = 10.0
    keep_known_labels: bool = True
    label_prior: float = 2.0
    refine: float = 0.5
    min_cluster_size: int | float = DEFAULT_MIN_CLUSTER_SIZE
    batch_size: int = 256
    precision: str = "float32"
    random_state: int | None = 0
    progress: bool = True

    def resolved_max_epochs(self, n_obs: int) -> int:
        """Return `max_epochs`, or by default one that depends on the number of cells `n_obs`."""
        if self.max_epochs is not None:
            return int(self.max_epochs)
        # 300 epochs up to 20,000 cells, the same number of steps beyond (6 at a million): the
        # stage usually stops far earlier on `tol`; the cap bounds the work on large data.
        return default_epochs(n_obs, base=300, reference_cells=20_000, minimum=2)

    def resolved_tol(self, *, prior_knowledge: bool) -> float:
        """Return `tol`, or by default 0.005, or 0.001 with constraints or known labels."""
        if self.tol is not None:
            return float(self.tol)
        # Measured at the true k, seeds 0-2 (medians; ARI at 0.005 / 0.001, from the labels of
        # every refresh of one run): without prior knowledge 0.005 stops after about half the
        # epochs at the same ARI (10X PBMC 0.758 / 0.754 in 9 / 21 epochs, mouse bladder 0.599 /
        # 0.600 in 24 / 48, worm 0.411 / 0.412, CITE CBMC 0.549 / 0.533). With 10% of the cells
        # labelled the labels keep pulling cells over after that (worm 0.850 / 0.858), so the
        # stage runs to 0.001 there, as in scDCC's paper.
        return TOL_WITH_PRIOR_KNOWLEDGE if prior_knowledge else DEFAULT_TOL

    def resolved_pretrain_balance(self) -> float:
        """Return `pretrain_balance`, or by default 0.5 with a given number of clusters, else 0."""
        if self.pretrain_balance is not None:
            return float(self.pretrain_balance)
        # Measured at the true k (seeds 0-2, median): 0.5 against 0 gives mouse bladder 0.637
        # against 0.538, CITE CBMC 0.568 / 0.533, worm 0.443 / 0.428, 10X PBMC 0.759 / 0.767,
        # the rare-group simulation 0.953 / 0.953. Searching the number of clusters, it lost
        # (bladder 0.504 against 0.642, PBMC 0.711 / 0.723; worm 0.429 / 0.387): the search
        # then chose fewer clusters, so it stays off there.
        return DEFAULT_PRETRAIN_BALANCE if isinstance(self.n_clusters, int) else 0.0

    def resolved_pretrain_epochs(self, n_obs: int) -> int:
        """Return `pretrain_epochs`, or by default one that depends on the number of cells."""
        if self.pretrain_epochs is not None:
            return int(self.pretrain_epochs)
        # Measured on 10X PBMC (4,271 cells): ARI of k-means on the latent space peaks after
        # 20-40 epochs and falls with longer pretraining (0.67 after 177 epochs). What trains
        # the network is the number of Adam steps, so smaller data get as many steps as those
        # 40 epochs were: with 40 epochs of 8 steps, 2,000 simulated cells in 20 groups kept
        # 11-14 Leiden clusters in the latent space (ARI 0.65-0.89 at the defaults). Bladder and
        # 1,000-cell subsets of PBMC and bladder gained too; scanpy's 700-cell pbmc68k_reduced
        # lost (docs/measurements.md).
        epochs = default_epochs(n_obs, base=40, reference_cells=100_000, minimum=2)
        steps_per_epoch = max(minibatch_count(n_obs, self.batch_size), 1)
        floor = min(-(-MIN_PRETRAIN_STEPS // steps_per_epoch), MAX_FLOOR_PRETRAIN_EPOCHS)
        return max(epochs, floor)


def initial_mean_count(median_library_size: float, n_genes: int) -> float:
    """Return the mean, before the size factor, near which the genes start: at least 1.

    The normalised counts of a cell sum to the median library size, so their mean per gene is
    `median_library_size / n_genes`. A start below the genes' level failed: with the mean
    head's bias near 0 (means near 1), simulated groups with a median library of 2,300 counts
    in 300 genes (a level of 7.7) ended in one or two clusters (ARI 0.00-0.21), and deeper
    counts in a single one, as Adam moves the bias by about `pretrain_lr` a step and the other
    weights took on the genes' levels; started at the level, ARI 0.997-1.00. A start above the
    level did not fail: the labelled datasets' levels are 0.02-0.45 and they start near 1, as
    measured; started at their level, 10X PBMC fell from 0.76 to 0.58 (seeds 0-2, defaults).
    """
    return max(median_library_size / max(n_genes, 1), 1.0)


def fit_scdcc(
    feeder: CellFeeder,
    config: SCDCCConfig,
    constraints: PairwiseConstraints | None = None,
    seed_labels: np.ndarray | None = None,
    checkpoint: TrainingCheckpoint | None = None,
    *,
    median_library_size: float | None = None,
) -> ClusteringResult:
    """Pretrain the ZINB autoencoder, initialise centroids, run the clustering stage.

    Parameters
    ----------
    feeder
        The cells, preprocessed, as minibatches.
    config
        The settings of the run.
    constraints
        Must-link and cannot-link pairs for the clustering stage, if any.
    seed_labels
        Known classes of some cells (codes, -1 elsewhere) whose mean latent positions are the
        first initial centroids.
    checkpoint
        Save (and resume) the training state of both stages.
    median_library_size
        The median library size of the cells the size factors divide by (the feeder's
        normalised counts sum to it in every cell): the genes' means start at the level it
        gives when that is above 1 (`initial_mean_count`). `None`: near 1 whatever the data,
        which lost the groups of deep counts.

    Returns
    -------
    scdeepclust._results.ClusteringResult
        Labels, embedding, soft assignments, parameters, history and timings of the run.
    """
    device = feeder.device
    rng = numpy_rng(config.random_state)
    noise = torch_generator(config.random_state, device)
    timings: dict[str, float] = {}

    # Built on the CPU whatever torch's default device is (the same initial weights on every
    # device), then moved.
    model = initial_network(
        lambda: ZINBAutoencoder(
            feeder.n_vars,
            encoder_hidden=config.encoder_hidden,
            latent_dim=config.latent_dim,
            decoder_hidden=config.decoder_hidden,
            n_batches=config.n_batches,
            precision=config.precision,
        ),
        config.random_state,
    ).to(device)
    if median_library_size is not None:
        model.scale_initial_mean(initial_mean_count(median_library_size, feeder.n_vars))
    if checkpoint is not None:
        checkpoint.attach(
            modules={"model": model}, numpy_rngs={"rng": rng}, torch_generators={"noise": noise}
        )
    clip_hint = "" if feeder.max_value is not None else ", or clip the input with `max_value=10`"

    def denoising_zinb(batch: Batch, mixing_weight: float = 0.0) -> dict[str, torch.Tensor]:
        noisy = batch.x + config.sigma * torch.randn(batch.x.shape, generator=noise, device=device)
        z = model.encode(noisy, batch.batch_code)
        params = model.decode(z, batch.size_factors, batch.batch_code)
        terms = {"zinb": zinb_nll(batch.counts, params)}
        if mixing_weight > 0:
            terms["batch_mixing"] = mixing_weight * batch_mixing_mmd(z, batch.batch_code)
        return terms

    def clustering_extra(batch: Batch, _z: torch.Tensor) -> dict[str, torch.Tensor]:
        # the penalty on the codes of the noisy input the ZINB term reconstructs from
        return denoising_zinb(batch, config.batch_mixing_used)

    t0 = time.perf_counter()
    # pairs at weight 0 do not act (an ablation): they change nothing else either
    pairs_act = constraints is not None and (
        (len(constraints.must_link) > 0 and config.ml_weight > 0)
        or (len(constraints.cannot_link) > 0 and config.cl_weight > 0)
    )
    prior_knowledge = seed_labels is not None or pairs_act
    # Known labels and pairs already say where cells belong (the label prior reads the labels
    # with the refinement's classifier), and the input's components carry the batch effects
    # that the clustering stage removes.
    refine_share = 0.0 if prior_knowledge or config.mixes_batches else config.refine
    # The balanced draws, the label prior and the refinement look at the same principal
    # components of the input: computed once when the draws and another need them (a pass over
    # the data; 11 s at a million cells). Not when sharded, where the draws stay uniform and
    # only rank 0 would hold the components.
    components = None
    if draws_read_components(feeder, config.resolved_pretrain_balance()) and (
        (seed_labels is not None and config.label_prior > 0) or refine_share > 0
    ):
        components = input_principal_components(feeder, random_state=config.random_state)
    # Drawn less often where the data are crowded, so that the latent space does not spread the
    # most abundant types at the cost of small ones (see train._balance).
    sample_weights = density_balanced_weights(
        feeder,
        config.resolved_pretrain_balance(),
        random_state=config.random_state,
        components=components,
    )
    n_pretrain = config.resolved_pretrain_epochs(feeder.n_total)
    logg.info(f"    pretraining the ZINB autoencoder for up to {n_pretrain} epochs")
    pretrain_history = fit_epochs(
        feeder,
        denoising_zinb,
        adam(model.parameters(), lr=config.pretrain_lr, amsgrad=True),
        n_epochs=n_pretrain,
        batch_size=config.batch_size,
        rng=rng,
        # Drawn with weights (and replacement), each epoch sees another multiset of cells and its
        # loss moves with the draw: on 20 simulated groups of 1-10% the plateau rule then stopped
        # pretraining after 14 of 40 epochs and the clustering collapsed (seed 1: ARI 0.05; 0.68
        # after all 40).
        stopper=PlateauStopper()
        if config.pretrain_epochs is None and sample_weights is None
        else None,
        stage="pretraining",
        progress=config.progress,
        divergence=divergence_hint("pretrain_lr", config.pretrain_lr, clip_hint),
        checkpoint=checkpoint,
        sample_weights=sample_weights,
    )
    timings["pretrain_s"] = time.perf_counter() - t0

    pair_loss_factory = None
    if constraints is not None and len(constraints):

        def pair_loss_factory(embed, layer):
            return PairLoss(
                constraints,
                feeder,
                embed,
                layer,
                steps_per_epoch=feeder.n_batches(config.batch_size),
                ml_weight=config.ml_weight,
                cl_weight=config.cl_weight,
                rng=rng,
            )

    tol = config.resolved_tol(prior_knowledge=prior_knowledge)
    outcome = deep_embedded_clustering(
        feeder,
        lambda batch: model.encode(batch.x, batch.batch_code),
        model.parameters(),
        config.latent_dim,
        CentroidInit(
            n_clusters=config.n_clusters,
            resolution=config.resolution,
            n_neighbors=config.n_neighbors,
            random_state=config.random_state,
            seed_labels=seed_labels,
            init=config.init,
        ),
        ClusteringStage(
            max_epochs=config.resolved_max_epochs(feeder.n_total),
            batch_size=config.batch_size,
            tol=tol,
            update_interval=config.update_interval,
            clustering_weight=config.gamma,
            balance=config.balance,
            # the labels settle before the batches have mixed
            min_steps=MIN_CLUSTERING_STEPS if config.mixes_batches else 0,
        ),
        lambda params: adadelta(params, lr=config.lr, rho=0.95),
        rng=rng,
        extra_loss=clustering_extra,
        make_pair_loss=pair_loss_factory,
        known_class_weight=config.label_weight,
        keep_known_labels=config.keep_known_labels,
        label_prior_weight=config.label_prior,
        input_components=components,
        refine_share=refine_share,
        min_cluster_size=config.min_cluster_size,
        progress=config.progress,
        divergence=divergence_hint("lr", config.lr, clip_hint),
        checkpoint=checkpoint,
    )
    history = {f"pretrain_{k}": v for k, v in pretrain_history.items()}
    history.update({f"cluster_{k}": v for k, v in outcome.history.items()})
    return ClusteringResult(
        labels=outcome.labels,
        embedding=outcome.embedding,
        probabilities=outcome.probabilities,
        confidence=outcome.confidence,
        params={
            **asdict(config),
            # the values used: uniform draws with batches or on small data, no refinement with
            # prior knowledge, mixed batches or several processes
            "pretrain_balance": 0.0
            if sample_weights is None
            else config.resolved_pretrain_balance(),
            "refine": refined_share(outcome.info),
            # nothing merged where the number of clusters or known labels were given
            "min_cluster_size": config.min_cluster_size
            if merges_small_clusters(config.n_clusters, known_labels=seed_labels is not None)
            else 0,
            "tol": tol,
            "batch_mixing": config.batch_mixing_used,
        },
        history=history,
        timings={**timings, **outcome.timings},
        info={
            **outcome.info,
            "pretrain_epochs": len(pretrain_history.get("zinb", [])),
            "n_constraints": {
                "must_link": 0 if constraints is None else len(constraints.must_link),
                "cannot_link": 0 if constraints is None else len(constraints.cannot_link),
            },
        },
        trained={
            "network": model,
            "centroids": outcome.centroids,
            "confidence_map": outcome.confidence_map,
        },
    )
