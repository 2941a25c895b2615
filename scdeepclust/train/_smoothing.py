"""DEC's target from soft assignments mixed with those of each cell's neighbours.

DEC sharpens every cell's own soft assignment, so where the initial centroids split one type or
cut across a boundary the target confirms the cut. Mixing each cell's soft assignment with the
mean of its nearest neighbours' in the *pretrained* embedding before sharpening makes the
target follow that embedding's neighbourhoods instead: cells of one dense region are pulled to
one cluster, and boundaries settle where the neighbourhood graph is thin, as in Leiden. DESC
trains its encoder on the clustering loss alone, so this is the only place its clustering stage
sees the pretrained structure (tl.desc, benchmarks/desc_accuracy.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..data import CellFeeder
from ._confidence import NeighbourView
from ._distributed import all_reduce_sum

# Rows of neighbours gathered at once: a (rows x neighbours x clusters) temporary.
_CHUNK_ROWS = 65_536


@dataclass
class TargetSmoothing:
    """Each cell's soft assignment replaced by (1 - weight) x its own + weight x its neighbours'.

    `reference` holds the cells neighbours are drawn from (indices among all cells), and
    `neighbours` this process's cells' neighbours as positions in `reference` (a
    `NeighbourView` of the pretrained embedding, sliced to the process's shard).
    """

    weight: float
    reference: np.ndarray
    neighbours: torch.Tensor

    @classmethod
    def from_view(cls, weight: float, view: NeighbourView, feeder: CellFeeder) -> TargetSmoothing:
        neighbours = view.neighbours
        if feeder.shard is not None:
            neighbours = neighbours[feeder.shard.start : feeder.shard.stop]
        neighbours = torch.from_numpy(np.ascontiguousarray(neighbours))
        return cls(float(weight), view.reference, neighbours)

    def __call__(self, q: torch.Tensor, feeder: CellFeeder) -> torch.Tensor:
        """Smooth `q`, the soft assignments of this process's cells (CPU, cells x clusters)."""
        if self.weight == 0 or self.neighbours.shape[1] == 0:
            return q
        reference_q = self._reference_rows(q, feeder)
        mixed = torch.empty_like(q)
        for start in range(0, len(q), _CHUNK_ROWS):
            stop = min(start + _CHUNK_ROWS, len(q))
            around = reference_q[self.neighbours[start:stop]].mean(1)
            torch.lerp(q[start:stop], around, self.weight, out=mixed[start:stop])
        return mixed

    def _reference_rows(self, q: torch.Tensor, feeder: CellFeeder) -> torch.Tensor:
        """Return the soft assignments of the reference cells, whichever process holds them."""
        if feeder.shard is None:
            return q[torch.from_numpy(self.reference)]
        start, stop = feeder.shard.start, feeder.shard.stop
        here = (self.reference >= start) & (self.reference < stop)
        rows = torch.zeros((len(self.reference), q.shape[1]), dtype=q.dtype, device=q.device)
        rows[torch.from_numpy(here)] = q[torch.from_numpy(self.reference[here] - start)]
        return all_reduce_sum(rows, feeder)


__all__ = ["TargetSmoothing"]
