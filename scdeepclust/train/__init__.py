"""Training: device and seeds, the epoch loops, the DEC clustering stage, centroid init."""

from ._balance import density_balanced_weights, draws_read_components
from ._centroids import centroids_from_labels, initial_centroids, kmeans_labels, leiden_labels
from ._checkpoint import (
    CHECKPOINT_FILE,
    TrainingCheckpoint,
    array_digest,
    open_checkpoint,
    report_interruption,
    run_digest,
    run_fingerprint,
)
from ._components import input_principal_components
from ._dec import (
    CentroidInit,
    DECOutcome,
    LatentCache,
    deep_embedded_clustering,
    embed_all,
    refined_share,
)
from ._device import (
    check_precision,
    dropout_generator,
    initial_network,
    numpy_rng,
    resolve_device,
    standard_torch_mode,
    torch_generator,
)
from ._distributed import check_same_run, init_distributed
from ._loops import (
    MIN_CLUSTERING_STEPS,
    ClusteringStage,
    PlateauStopper,
    TrainingDiverged,
    default_epochs,
    divergence_hint,
    fit_epochs,
    train_clustering,
)
from ._optim import adadelta, adam, sgd
from ._small_clusters import DEFAULT_MIN_CLUSTER_SIZE, merges_small_clusters

__all__ = [
    "DEFAULT_MIN_CLUSTER_SIZE",
    "merges_small_clusters",
    "adadelta",
    "adam",
    "sgd",
    "CHECKPOINT_FILE",
    "TrainingCheckpoint",
    "divergence_hint",
    "open_checkpoint",
    "report_interruption",
    "array_digest",
    "run_digest",
    "run_fingerprint",
    "check_same_run",
    "CentroidInit",
    "ClusteringStage",
    "MIN_CLUSTERING_STEPS",
    "DECOutcome",
    "LatentCache",
    "deep_embedded_clustering",
    "density_balanced_weights",
    "draws_read_components",
    "embed_all",
    "refined_share",
    "input_principal_components",
    "PlateauStopper",
    "TrainingDiverged",
    "centroids_from_labels",
    "default_epochs",
    "fit_epochs",
    "init_distributed",
    "initial_centroids",
    "kmeans_labels",
    "leiden_labels",
    "check_precision",
    "numpy_rng",
    "resolve_device",
    "dropout_generator",
    "initial_network",
    "standard_torch_mode",
    "torch_generator",
    "train_clustering",
]
