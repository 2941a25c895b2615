"""Settings both methods' configurations share."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class BatchSettings:
    """The batches a model is conditioned on (`batch_key`); none by default."""

    batch_key: str | None = None
    batch_categories: tuple[str, ...] | None = None  # known batches, in code order
    # Weight of the batch-mixing penalty of the clustering stage (the MMD between each batch's
    # latent codes and the rest of the minibatch); used only with 2 or more batches.
    batch_mixing: float = 10.0

    @property
    def n_batches(self) -> int:
        """The number of known batches, `batch_categories` (0 without them)."""
        return len(self.batch_categories or ())

    @property
    def mixes_batches(self) -> bool:
        """Whether the clustering stage carries the batch-mixing penalty."""
        return self.n_batches > 1 and self.batch_mixing > 0

    @property
    def batch_mixing_used(self) -> float:
        """The penalty's weight as trained, 0 without two batches to mix."""
        return self.batch_mixing if self.mixes_batches else 0.0
