"""DESC: a stacked autoencoder pretrained greedily then end to end, refined by the DEC loss.

The encoder is refined by the DEC clustering loss alone (with batches, plus a batch-mixing
penalty), one run per Leiden resolution.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import torch
from scanpy import logging as logg
from torch.nn import functional as F

from .._results import ClusteringResult
from ..data import Batch, CellFeeder, RowSource
from ..nn import DropoutMasks, StackedAutoencoder, batch_mixing_mmd
from ..train import (
    DEFAULT_MIN_CLUSTER_SIZE,
    MIN_CLUSTERING_STEPS,
    CentroidInit,
    ClusteringStage,
    LatentCache,
    PlateauStopper,
    TrainingCheckpoint,
    adam,
    deep_embedded_clustering,
    default_epochs,
    divergence_hint,
    dropout_generator,
    embed_all,
    fit_epochs,
    initial_network,
    merges_small_clusters,
    numpy_rng,
    refined_share,
    sgd,
)
from ..train._centroids import LEIDEN_COARSE_RESOLUTION
from ._settings import BatchSettings


def default_hidden(n_obs: int) -> tuple[int, ...]:
    """Layer sizes by dataset size, as DESC chooses them: wider and deeper for more cells.

    Measured on 10X PBMC (4,271 cells, 50 pretraining epochs): (128, 32) gave ARI 0.63 / 0.58
    (seeds 0 / 1) where DESC's (64, 32) gave 0.57.
    """
    if n_obs <= 20_000:
        return (128, 32)
    # Not wider beyond: (512, 128, 32) costs twice as much per epoch, and on a million simulated
    # cells its clustering stage had not settled after 24 epochs (nor did (256, 64, 32)'s, which
    # clusters 100,000 of those cells perfectly).
    return (256, 64, 32)


# `tl.desc`'s default Leiden resolution (its docstring and the changelog give the measurements);
# a given number of clusters also starts from a Leiden clustering at it (`init="leiden"`).
DEFAULT_RESOLUTION = LEIDEN_COARSE_RESOLUTION


@dataclass
class DESCConfig(BatchSettings):
    """Settings of a DESC run: the parameters of `tl.desc`, which documents them."""

    hidden: Sequence[int] | None = None
    drop_rate: float = 0.2
    layerwise: bool = True
    pretrain_epochs: int | None = None
    pretrain_lr: float = 1e-3
    n_clusters: int | tuple[int, int] | None = None
    n_neighbors: int = 10
    target_smoothing: float = 0.5
    initial_label_weight: float = 0.5
    refine: float = 0.5
    min_cluster_size: int | float = DEFAULT_MIN_CLUSTER_SIZE
    init: str = "leiden"
    kernel: str = "t"
    alpha: float = 1.0
    lr: float = 0.01
    momentum: float = 0.9
    update_interval: float | None = None
    tol: float = 0.005
    max_epochs: int | None = None
    batch_size: int = 256
    precision: str = "float32"
    random_state: int | None = 0
    progress: bool = True

    def resolved_max_epochs(self, n_obs: int) -> int:
        """Return `max_epochs`, or by default one that depends on the number of cells `n_obs`."""
        if self.max_epochs is not None:
            return int(self.max_epochs)
        # 100 epochs up to 100,000 cells, the same number of steps beyond (10 at a million):
        # the stage usually stops far earlier on `tol`; the cap bounds the work on large data.
        return default_epochs(n_obs, base=100, reference_cells=100_000, minimum=2)

    def resolved_hidden(self, n_obs: int) -> tuple[int, ...]:
        """Return the layer sizes `hidden`, or by default `default_hidden` of `n_obs` cells."""
        return tuple(self.hidden) if self.hidden is not None else default_hidden(n_obs)

    def resolved_pretrain_epochs(self, n_obs: int) -> int:
        """Return `pretrain_epochs`, or by default one that depends on the number of cells."""
        if self.pretrain_epochs is not None:
            return int(self.pretrain_epochs)
        # 25 epochs per stage on up to 100,000 cells, the same number of steps beyond (2 at a
        # million), as the clustering stage's cap. On a million simulated cells (8 groups,
        # `benchmarks/scaling.py`) the earlier 200,000-cell reference (5 epochs) gave an
        # embedding with far-out cells of every group that Leiden split off: ARI 0.854 after
        # an unsettled clustering stage, against 0.962 with 3 epochs and 0.957 with 2, each
        # settled after one.
        # Against 50, the earlier default (seeds 0-2, median ARI at defaults / true k): 10X PBMC
        # 0.613 / 0.768 against 0.606 / 0.764, bladder 0.644 / 0.518 against 0.614 / 0.541,
        # worm 0.456 / 0.464 against 0.437 / 0.508 (seeds 0-8 at the true k: 0.499 against
        # 0.489), CBMC 0.626 / 0.527 against 0.588 / 0.512, at half the time. 15 lost more;
        # end to end only (`layerwise=False`) lost 0.07 on worm at the true k.
        return default_epochs(n_obs, base=25, reference_cells=100_000, minimum=2)

    def resolved_pretrain_epoch_cells(self, n_obs: int) -> int | None:
        """Return the cells of a pretraining epoch: all (`None`) or a random subset.

        A subset where the default epochs over all cells would pass `PRETRAIN_CELL_VISITS` per
        stage, sized to keep to it.
        """
        if self.pretrain_epochs is not None:
            return None
        n_epochs = self.resolved_pretrain_epochs(n_obs)
        if n_epochs * n_obs <= PRETRAIN_CELL_VISITS:
            return None
        return max(self.batch_size, PRETRAIN_CELL_VISITS // n_epochs)


# Cells a pretraining stage sees by default, repeats counted (about 2,000 minibatches of 256):
# on 100,000 simulated cells (8 groups, `benchmarks/scaling.py`, seed 2) 2, 3 and 5 epochs per
# stage gave an embedding whose Leiden clusters (10,000 sampled cells, resolution 0.8) were the
# 8 groups (ARI 0.999), while 10 epochs gave 17 clusters, 5.5% of the cells in clusters mixing
# every group (seed 0: 5 epochs 9 clusters, 0.4% mixed; 10 epochs 18 clusters, 8.9%); on a
# million cells one epoch (3,900 minibatches) gave 7.5%. The real datasets
# (up to 8,617 cells x 25 epochs) stay below it.
PRETRAIN_CELL_VISITS = 500_000


@dataclass
class PretrainedDESC:
    """The outcome of `pretrain_desc`: the autoencoder, the loss history and the time taken.

    `model` is the pretrained stacked autoencoder, `history` the epoch losses of each
    pretraining stage by stage name, and `seconds` the wall time of the pretraining.
    """

    model: StackedAutoencoder
    history: dict
    seconds: float
    # the model's embedding of the cells and its neighbour views, shared by the resolutions
    latent: LatentCache = field(default_factory=LatentCache)


def pretrain_desc(
    feeder: CellFeeder, config: DESCConfig, checkpoint: TrainingCheckpoint | None = None
) -> PretrainedDESC:
    """Pretrain DESC's autoencoder: greedily layer by layer, then end to end.

    Greedy layer-wise denoising pretraining (each layer reconstructs its input from a
    dropped-out copy), then end-to-end fine-tuning of the whole autoencoder on MSE.

    Parameters
    ----------
    feeder
        The cells, preprocessed, as minibatches.
    config
        The settings of the run.
    checkpoint
        Save (and resume) the training state of every stage.

    Returns
    -------
    PretrainedDESC
        The autoencoder, the loss history of each stage and the time taken.
    """
    t0 = time.perf_counter()
    rng = numpy_rng(config.random_state)
    # Built on the CPU whatever torch's default device is (the same initial weights on every
    # device), then moved.
    model = initial_network(
        lambda: StackedAutoencoder(
            feeder.n_vars,
            config.resolved_hidden(feeder.n_total),
            n_batches=config.n_batches,
            precision=config.precision,
        ),
        config.random_state,
    )
    model = model.to(feeder.device)
    dropout_rng = dropout_generator(config.random_state)
    if checkpoint is not None:
        checkpoint.attach(
            modules={"model": model},
            numpy_rngs={"rng": rng},
            torch_generators={"dropout": dropout_rng},
        )
    n_epochs = config.resolved_pretrain_epochs(feeder.n_total)
    epoch_cells = config.resolved_pretrain_epoch_cells(feeder.n_total)
    if epoch_cells is not None:
        logg.info(f"    DESC pretraining: each epoch draws {epoch_cells:,} of the cells")
    auto_stop = config.pretrain_epochs is None
    history: dict[str, list[float]] = {}

    def run(name, step, params, stage_feeder=feeder):
        logg.info(f"    DESC pretraining: {name}")
        out = fit_epochs(
            stage_feeder,
            step,
            adam(params, lr=config.pretrain_lr),
            n_epochs=n_epochs,
            batch_size=config.batch_size,
            rng=rng,
            stopper=PlateauStopper() if auto_stop else None,
            stage=name,
            progress=config.progress,
            divergence=divergence_hint("pretrain_lr", config.pretrain_lr),
            checkpoint=checkpoint,
            epoch_cells=epoch_cells,
        )
        history[name] = out.get("mse", [])  # no epochs (pretrain_epochs=0): no losses

    # Drawn before any stage, so a run resumed from a checkpoint builds the same banks.
    bank_seeds = torch.randint(
        0, 2**62, (model.depth, 2), generator=dropout_rng, device="cpu"
    ).tolist()
    if config.layerwise:
        layer_feeder = feeder
        for i in range(model.depth):
            drop_input, drop_code = (
                DropoutMasks(
                    model.widths[i + j],
                    config.drop_rate,
                    seed=bank_seeds[i][j],
                    offsets=dropout_rng,
                    # a last minibatch of one cell joins the one before; no minibatch
                    # holds more than the cells
                    max_rows=min(config.batch_size + 1, feeder.n_obs),
                    device=feeder.device,
                )
                if config.drop_rate > 0
                else None
                for j in (0, 1)
            )
            if i > 0:
                # Deeper layers learn from the frozen output of the layers below: compute it
                # once (cells x width, small) instead of once per epoch, from the output of
                # the layers below the last one (the input of the stage before), so that the
                # widest layer runs over all cells once, not once per stage.
                with torch.no_grad():
                    h = embed_all(
                        layer_feeder,
                        lambda b, i=i: model.encode_layer(i - 1, b.x, b.batch_code),
                        model.widths[i],
                    )
                layer_feeder = CellFeeder(
                    RowSource(h),
                    device=feeder.device,
                    shard=feeder.shard,
                    batch_codes=feeder.batch_codes,
                )

            def layer_step(
                b: Batch, i=i, drop_input=drop_input, drop_code=drop_code
            ) -> dict[str, torch.Tensor]:
                out = model.layer_pair(
                    i, b.x, b.batch_code, drop_input=drop_input, drop_code=drop_code
                )
                return {"mse": F.mse_loss(out, b.x)}

            run(f"layer{i + 1}", layer_step, model.layer_parameters(i), layer_feeder)

    def end_to_end(b: Batch) -> dict[str, torch.Tensor]:
        reconstruction = model.decode(model.encode(b.x, batch_code=b.batch_code), b.batch_code)
        return {"mse": F.mse_loss(reconstruction, b.x)}

    run("autoencoder", end_to_end, list(model.parameters()))
    return PretrainedDESC(model, history, time.perf_counter() - t0)


def cluster_desc(
    feeder: CellFeeder,
    pretrained: PretrainedDESC,
    config: DESCConfig,
    resolution: float | None,
    checkpoint: TrainingCheckpoint | None = None,
) -> ClusteringResult:
    """Drop the decoder and train a copy of the pretrained encoder with centroids on KL alone.

    Parameters
    ----------
    feeder
        The cells, preprocessed, as minibatches.
    pretrained
        The outcome of `pretrain_desc`; its model is copied, not changed.
    config
        The settings of the run.
    resolution
        Leiden resolution of the initial clustering (see `tl.desc`); ignored when
        ``config.n_clusters`` is given.
    checkpoint
        The stage is saved and resumed as ``clustering_{resolution}`` (or ``clustering``
        without a resolution).

    Returns
    -------
    scdeepclust._results.ClusteringResult
        Labels, embedding, soft assignments, parameters, history and timings of the run.
    """
    model = copy.deepcopy(pretrained.model)
    rng = numpy_rng(config.random_state)
    if checkpoint is not None:
        checkpoint.attach(modules={"model": model}, numpy_rngs={"rng": rng})

    def batch_mixing(batch: Batch, z: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"batch_mixing": config.batch_mixing * batch_mixing_mmd(z, batch.batch_code)}

    outcome = deep_embedded_clustering(
        feeder,
        lambda b: model.encode(b.x, batch_code=b.batch_code),
        model.encoder_parameters(),
        model.latent_dim,
        CentroidInit(
            n_clusters=config.n_clusters,
            resolution=resolution,
            n_neighbors=config.n_neighbors,
            random_state=config.random_state,
            init=config.init,
        ),
        ClusteringStage(
            max_epochs=config.resolved_max_epochs(feeder.n_total),
            batch_size=config.batch_size,
            tol=config.tol,
            update_interval=config.update_interval,
            min_steps=MIN_CLUSTERING_STEPS,
        ),
        lambda params: sgd(params, lr=config.lr, momentum=config.momentum),
        rng=rng,
        kernel=config.kernel,
        alpha=config.alpha,
        extra_loss=batch_mixing if config.mixes_batches else None,
        target_smoothing=config.target_smoothing,
        initial_label_weight=config.initial_label_weight,
        # DESC's soft assignments stay near uniform (about 0.3 at most on 10X PBMC);
        # scDCC's are as close to a probability as the calibration (calibration.md)
        calibrate_confidence=True,
        # the input's components carry the batch effects that the clustering stage removes
        refine_share=0.0 if config.mixes_batches else config.refine,
        min_cluster_size=config.min_cluster_size,
        progress=config.progress,
        stage_name="clustering" if resolution is None else f"clustering_{resolution}",
        divergence=divergence_hint("lr", config.lr, ", or lower `momentum`"),
        checkpoint=checkpoint,
        latent=pretrained.latent,
    )
    history = {f"pretrain_{k}": v for k, v in pretrained.history.items()}
    history.update({f"cluster_{k}": v for k, v in outcome.history.items()})
    params = asdict(config)
    params["hidden"] = list(config.resolved_hidden(feeder.n_total))
    params["resolution"] = resolution
    params["refine"] = refined_share(outcome.info)  # 0 where mixed batches or processes skip it
    if not merges_small_clusters(config.n_clusters, known_labels=False):
        params["min_cluster_size"] = 0  # the number of clusters was given: nothing merged
    params["batch_mixing"] = config.batch_mixing_used
    return ClusteringResult(
        labels=outcome.labels,
        embedding=outcome.embedding,
        probabilities=outcome.probabilities,
        confidence=outcome.confidence,
        params=params,
        history=history,
        timings={"pretrain_s": pretrained.seconds, **outcome.timings},
        info={
            **outcome.info,
            "pretrain_epochs": {k: len(v) for k, v in pretrained.history.items()},
            # only where pretraining epochs drew a subset (h5ad has no None)
            **(
                {"pretrain_epoch_cells": epoch_cells}
                if (epoch_cells := config.resolved_pretrain_epoch_cells(feeder.n_total))
                else {}
            ),
        },
        trained={
            "network": model,
            "centroids": outcome.centroids,
            "confidence_map": outcome.confidence_map,
        },
    )


__all__ = ["DESCConfig", "PretrainedDESC", "cluster_desc", "default_hidden", "pretrain_desc"]
