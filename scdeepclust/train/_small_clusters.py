"""Clusters too small to stand on their own, given to the clusters their cells lean to next.

When the number of clusters comes from the data, its start is a Leiden clustering of the
pretrained embedding, which on large data holds communities of a few dozen sampled cells that
no type of the data stands behind. The clustering stage shrinks them and the refinement
(`_refine.py`) gives most of their cells to the large clusters, but both leave remnants: DESC
at its defaults on 100,000 simulated cells of 8 groups reported 21-23 clusters, 13-15 of them
under 0.1% of the cells (`docs/measurements.md`, "Clusters under a least size"). A reported
cluster under the least size is merged: each of its cells takes the populated cluster of its
highest soft assignment among those that stay. The least size is far below the rarest types the
benchmarks ask for (0.5% of the cells, `benchmarks/rare_types.py`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# `min_cluster_size`'s default: a share of the cells.
DEFAULT_MIN_CLUSTER_SIZE = 0.001


def least_cells(min_cluster_size: int | float, n_cells: int) -> int:
    """Return the cells a cluster needs to stay.

    `min_cluster_size` itself when it is an integer, else that share of `n_cells`, rounded up
    (as scikit-learn reads a float ``min_samples_leaf``).
    """
    if isinstance(min_cluster_size, int | np.integer):
        return int(min_cluster_size)
    return math.ceil(float(min_cluster_size) * n_cells)


@dataclass(frozen=True)
class SmallClusterMerge:
    """The labels after the merge, and what it did."""

    labels: np.ndarray
    min_cells: int
    merged: list[int]
    cells_moved: int

    def as_dict(self) -> dict:
        return {
            "min_cells": self.min_cells,
            "merged": np.asarray(self.merged, dtype=np.int64),
            "cells_moved": self.cells_moved,
        }


def merged_small_clusters(
    labels: np.ndarray, probabilities: np.ndarray, min_cells: int, *, keep_at_least: int = 1
) -> SmallClusterMerge:
    """Merge the clusters under `min_cells` cells into those their cells lean to next.

    Each cell of a merged cluster takes the populated cluster of its highest soft assignment
    among those that stay.
    The smallest go first, and never so many that fewer than `keep_at_least` clusters are left
    (a searched range's lower bound); when every cluster is under the least size, the largest
    stays.
    """
    sizes = np.bincount(labels, minlength=probabilities.shape[1])
    populated = np.flatnonzero(sizes)
    small = populated[sizes[populated] < min_cells]
    # smallest first; at equal size the later cluster first, so the choice does not hang on order
    small = small[np.lexsort((-small, sizes[small]))]
    n_mergeable = max(0, len(populated) - max(1, keep_at_least))
    merged = np.sort(small[:n_mergeable])
    if not len(merged):
        return SmallClusterMerge(labels, min_cells, [], 0)
    staying = np.ones(probabilities.shape[1], bool)
    staying[merged] = False
    staying[sizes == 0] = False
    moving = np.isin(labels, merged)
    leaning = np.where(staying, probabilities[moving], -np.inf)
    labels = labels.copy()
    labels[moving] = leaning.argmax(1)
    return SmallClusterMerge(labels, min_cells, merged.tolist(), int(moving.sum()))


__all__ = [
    "DEFAULT_MIN_CLUSTER_SIZE",
    "SmallClusterMerge",
    "least_cells",
    "merged_small_clusters",
]
