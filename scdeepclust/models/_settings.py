"""Settings both methods' configurations share."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class BatchSettings:
    """The batches a model is conditioned on (`batch_key`); none by default."""

    batch_key: str | None = None
    batch_categories: tuple[str, ...] | None = None  # known batches, in code order

    @property
    def n_batches(self) -> int:
        return len(self.batch_categories or ())
