"""Clusters too small to stand on their own, given to the clusters their cells lean to next.

When the number of clusters comes from the data, its start is a Leiden clustering of the
pretrained embedding, which on large data holds communities of a few dozen sampled cells that
no type of the data stands behind. The clustering stage shrinks them and the refinement
(`_refine.py`) gives most of their cells to the large clusters, but both leave remnants: DESC
at its defaults on 100,000 simulated cells of 8 groups reported 23 clusters, 13-15 of them
under 0.1% of the cells (`docs/measurements.md`, "Clusters under a least size"). A reported
cluster under the least size is merged, the smallest first and the sizes counted again after
each (merged at once by their first sizes, the halves of two groups cut under the least size
all went into one cluster): each of its cells takes the populated cluster of its highest soft
assignment among those that stay. The least size is far below the rarest types the benchmarks
ask for (0.5% of the cells, `benchmarks/rare_types.py`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# `min_cluster_size`'s default: a share of the cells.
DEFAULT_MIN_CLUSTER_SIZE = 0.001


def merges_small_clusters(n_clusters, *, known_labels: bool) -> bool:
    """Whether `min_cluster_size` applies: the number of clusters comes from the data.

    Not where the user gave the number (an integer `n_clusters`) or known labels placed the
    clusters.
    """
    return not known_labels and not isinstance(n_clusters, int | np.integer)


def least_cells(min_cluster_size: int | float, n_cells: int) -> int:
    """Return the cells a cluster needs to stay.

    `min_cluster_size` itself when it is an integer, else that share of `n_cells`, rounded up.
    The share and the product are rounded to 9 decimals first: 7% of 100 cells is 7 cells, not
    the 8 of 7.000000000000001, and a float32 0.001 of 1,000 cells is 1.
    """
    if isinstance(min_cluster_size, int | np.integer):
        return int(min_cluster_size)
    return math.ceil(round(round(float(min_cluster_size), 9) * n_cells, 9))


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

    The smallest goes first: each of its cells takes the populated cluster of its highest soft
    assignment among the others, and the sizes are counted again before the next, so that two
    halves of a group do not both go when one of them, grown, would stay. Never so many that
    fewer than `keep_at_least` clusters are left (a searched range's lower bound); when every
    cluster is under the least size, the largest stays.
    """
    n_columns = probabilities.shape[1]
    sizes = np.bincount(labels, minlength=n_columns)
    staying = sizes > 0
    keep_at_least = max(1, keep_at_least)
    merged: list[int] = []
    moved = np.zeros(len(labels), bool)
    labels = labels.copy()
    while staying.sum() > keep_at_least:
        # smallest first; at equal size the later cluster first, so the order of the columns
        # does not decide
        candidates = np.flatnonzero(staying)
        order = np.lexsort((-candidates, sizes[candidates]))
        smallest = candidates[order[0]]
        if sizes[smallest] >= min_cells:
            break
        staying[smallest] = False
        moving = np.flatnonzero(labels == smallest)
        leaning = np.where(staying, probabilities[moving], -np.inf)
        labels[moving] = leaning.argmax(1)
        sizes += np.bincount(labels[moving], minlength=n_columns)
        sizes[smallest] = 0
        moved[moving] = True
        merged.append(int(smallest))
    return SmallClusterMerge(labels, min_cells, sorted(merged), int(moved.sum()))


__all__ = [
    "DEFAULT_MIN_CLUSTER_SIZE",
    "SmallClusterMerge",
    "least_cells",
    "merged_small_clusters",
    "merges_small_clusters",
]
