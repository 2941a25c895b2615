"""scDCC: a denoising ZINB autoencoder refined by the DEC loss and pairwise constraints."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
from scanpy import logging as logg

from .._results import ClusteringResult
from ..constraints import PairLoss, PairwiseConstraints
from ..data import Batch, CellFeeder, stream_outputs
from ..nn import ClusteringLayer, ZINBAutoencoder, zinb_nll
from ..train import (
    ClusteringStage,
    PlateauStopper,
    default_epochs,
    fit_epochs,
    initial_centroids,
    numpy_rng,
    seeded,
    torch_generator,
    train_clustering,
)


@dataclass
class SCDCCConfig:
    n_clusters: int | None = None
    encoder_hidden: Sequence[int] = (256, 64)
    latent_dim: int = 32
    decoder_hidden: Sequence[int] = (64, 256)
    sigma: float = 2.5
    pretrain_epochs: int | None = None
    pretrain_lr: float = 1e-3
    max_epochs: int = 300
    lr: float = 1.0
    gamma: float = 1.0
    update_interval: float = 1.0
    tol: float = 1e-3
    resolution: float = 1.0
    n_neighbors: int = 15
    ml_weight: float = 1.0
    cl_weight: float = 1.0
    batch_size: int = 256
    random_state: int | None = 0
    progress: bool = True

    def resolved_pretrain_epochs(self, n_obs: int) -> int:
        if self.pretrain_epochs is not None:
            return int(self.pretrain_epochs)
        return default_epochs(n_obs, base=200, reference_cells=20_000)


def fit_scdcc(
    feeder: CellFeeder,
    config: SCDCCConfig,
    constraints: PairwiseConstraints | None = None,
) -> ClusteringResult:
    """Pretrain the ZINB autoencoder, initialise centroids, run the clustering stage."""
    device = feeder.device
    rng = numpy_rng(config.random_state)
    noise = torch_generator(config.random_state, device)
    timings: dict[str, float] = {}

    with seeded(config.random_state):
        model = ZINBAutoencoder(
            feeder.n_vars,
            encoder_hidden=config.encoder_hidden,
            latent_dim=config.latent_dim,
            decoder_hidden=config.decoder_hidden,
        ).to(device)

    def denoising_zinb(batch: Batch) -> dict[str, torch.Tensor]:
        noisy = batch.x + config.sigma * torch.randn(batch.x.shape, generator=noise, device=device)
        params = model.decode(model.encode(noisy), batch.size_factors)
        return {"zinb": zinb_nll(batch.counts, params)}

    t0 = time.perf_counter()
    n_pretrain = config.resolved_pretrain_epochs(feeder.n_obs)
    logg.info(f"    pretraining the ZINB autoencoder for up to {n_pretrain} epochs")
    pretrain_history = fit_epochs(
        feeder,
        denoising_zinb,
        torch.optim.Adam(model.parameters(), lr=config.pretrain_lr, amsgrad=True),
        n_epochs=n_pretrain,
        batch_size=config.batch_size,
        rng=rng,
        stopper=PlateauStopper() if config.pretrain_epochs is None else None,
        stage="pretraining",
        progress=config.progress,
    )
    timings["pretrain_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    model.eval()
    z = stream_outputs(feeder, lambda b: {"z": model.encode(b.x)}, {"z": config.latent_dim})["z"]
    model.train()
    centroids, init_labels, init_method = initial_centroids(
        z,
        n_clusters=config.n_clusters,
        resolution=config.resolution,
        n_neighbors=config.n_neighbors,
        random_state=config.random_state,
    )
    timings["init_s"] = time.perf_counter() - t0
    logg.info(f"    {len(centroids)} initial centroids by {init_method}")

    t0 = time.perf_counter()
    layer = ClusteringLayer(torch.from_numpy(centroids)).to(device)
    optimizer = torch.optim.Adadelta(
        [*model.parameters(), *layer.parameters()], lr=config.lr, rho=0.95
    )
    stage = ClusteringStage(
        max_epochs=config.max_epochs,
        batch_size=config.batch_size,
        tol=config.tol,
        update_interval=config.update_interval,
        clustering_weight=config.gamma,
    )
    pair_loss = None
    if constraints is not None and len(constraints):
        pair_loss = PairLoss(
            constraints,
            feeder,
            lambda b: model.encode(b.x),
            layer,
            steps_per_epoch=feeder.n_batches(config.batch_size),
            ml_weight=config.ml_weight,
            cl_weight=config.cl_weight,
            rng=rng,
        )
    cluster_history = train_clustering(
        feeder,
        lambda b: model.encode(b.x),
        layer,
        optimizer,
        stage,
        rng=rng,
        extra_loss=denoising_zinb,
        pair_loss=pair_loss,
        progress=config.progress,
    )
    timings["cluster_s"] = time.perf_counter() - t0

    model.eval()
    with torch.no_grad():
        out = stream_outputs(
            feeder,
            lambda b: {"z": (z_ := model.encode(b.x)), "q": layer(z_)},
            {"z": config.latent_dim, "q": layer.n_clusters},
        )
    converged = bool(cluster_history.pop("converged", [0.0])[0])
    history = {f"pretrain_{k}": v for k, v in pretrain_history.items()}
    history.update({f"cluster_{k}": v for k, v in cluster_history.items()})
    return ClusteringResult(
        labels=out["q"].argmax(1),
        embedding=out["z"],
        probabilities=out["q"],
        params={k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(config).items()},
        history=history,
        timings=timings,
        info={
            "init_method": init_method,
            "pretrain_epochs": len(pretrain_history.get("zinb", [])),
            "converged": converged,
            "n_constraints": {
                "must_link": 0 if constraints is None else len(constraints.must_link),
                "cannot_link": 0 if constraints is None else len(constraints.cannot_link),
            },
        },
    )
