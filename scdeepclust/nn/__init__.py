"""Torch modules and losses shared by DESC and scDCC."""

from ._losses import (
    batch_mixing_mmd,
    cannot_link_loss,
    kl_divergence,
    known_class_loss,
    must_link_loss,
    target_distribution,
    zinb_nll,
)
from ._modules import (
    PRECISIONS,
    ClusteringLayer,
    DropoutMasks,
    StackedAutoencoder,
    ZINBAutoencoder,
    ZINBParameters,
    mlp,
)

__all__ = [
    "PRECISIONS",
    "ClusteringLayer",
    "DropoutMasks",
    "StackedAutoencoder",
    "ZINBAutoencoder",
    "ZINBParameters",
    "batch_mixing_mmd",
    "cannot_link_loss",
    "known_class_loss",
    "kl_divergence",
    "mlp",
    "must_link_loss",
    "target_distribution",
    "zinb_nll",
]
