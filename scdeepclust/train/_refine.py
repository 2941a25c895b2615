"""A second reading of the clusters, by a linear classifier of the input.

DEC assigns each cell to the nearest centroid of a latent space that its own clustering stage
has shaped, so a cell the encoder placed on the wrong side of a boundary stays there. The
refinement reads the clusters once more in another view of the same cells: each cluster's
cells of highest soft assignment (a `share` of it) train a logistic regression on the principal
components of the network's input (the label prior's classifier, `_label_prior.py`, with the
clusters as the known classes); its class probabilities, averaged with those of each cell's
nearest neighbours in those components, assign every cell. For DESC it raised the ARI on
every labelled dataset, worm neurons most (0.545 to 0.618 at the true k); for scDCC it restores
the small clusters that its Leiden start holds and its clustering stage blurs
(`docs/measurements.md`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .._results import assigned_soft_assignment
from ._confidence import neighbour_view
from ._label_prior import PRIOR_NEIGHBOURS, classifier_prior

# The classifier learns from at most this many cells in all: a random sample of the clusters'
# confident cells, drawn in proportion to the clusters (at least MIN_TEACHING_CELLS of each), so
# that it sees them as frequent as they are and its fit is bounded on any number of cells.
# With an equal number per cluster it took three clusters of 117-3,186 cells among a million as
# likely as the 125,000-cell groups and grew them to 22,500-27,600 cells each (ARI 0.912
# against the stage's 0.995; 0.988 with this draw, docs/measurements.md).
MAX_TEACHING_CELLS = 20_000
MIN_TEACHING_CELLS = 50
# The logistic regression's C: sklearn's default. The label prior's stronger 0.1 shrinks the
# classes that few cells teach, which lost the rare-type simulation's 0.5% group (20 cells)
# on one seed of three (F1 0.69) once the clusters kept their frequencies.
REFINE_C = 1.0


def teaching_cells(
    labels: np.ndarray,
    soft_assignment: np.ndarray,
    share: float,
    *,
    rng: np.random.Generator,
) -> np.ndarray:
    """Per cell, its cluster where it teaches the classifier, else -1.

    A cluster's candidates are its `share` most confident cells; above `MAX_TEACHING_CELLS`
    candidates in all, each cluster keeps the same fraction of its own (at least
    `MIN_TEACHING_CELLS`, or all it has), drawn at random.
    """
    teaching = np.full(len(labels), -1, np.int64)
    order = np.lexsort((-soft_assignment, labels))  # by cluster, most confident first
    clusters, starts, sizes = np.unique(labels[order], return_index=True, return_counts=True)
    cores = [
        order[start : start + max(1, int(round(share * size)))]
        for start, size in zip(starts, sizes, strict=True)
    ]
    fraction = min(1.0, MAX_TEACHING_CELLS / sum(len(core) for core in cores))
    for cluster, core in zip(clusters, cores, strict=True):
        keep = min(len(core), max(MIN_TEACHING_CELLS, int(round(fraction * len(core)))))
        if keep < len(core):
            core = rng.choice(core, keep, replace=False)
        teaching[core] = cluster
    return teaching


@dataclass(frozen=True)
class Refinement:
    """Each cell's cluster as the classifier reads it, and how sure the classifier is of it."""

    labels: np.ndarray
    # the classifier's probability of each cell's cluster; None where the labels were kept as
    # they came (fewer than two clusters)
    probability: np.ndarray | None


def refined_clusters(
    components: np.ndarray,
    labels: np.ndarray,
    probabilities: np.ndarray,
    share: float,
    *,
    random_state: int | None,
    device: torch.device | str = "cpu",
) -> Refinement:
    """Read each cell's cluster with the classifier of the clusters' confident cells.

    `components`: the input's principal components per cell; `labels` and `probabilities`:
    the clustering stage's clusters and soft assignments. With fewer than two clusters there is
    nothing to tell apart, and `labels` come back as they are.
    """
    n_clusters = probabilities.shape[1]
    teaching = teaching_cells(
        labels,
        assigned_soft_assignment(probabilities, labels),
        share,
        rng=np.random.default_rng(random_state),
    )
    view = neighbour_view(components, PRIOR_NEIGHBOURS, random_state=random_state, device=device)
    # Clusters after the last one that holds cells are no class (probability 0): the label
    # prior's level for clusters beyond its classes would take a share of every cell's.
    n_taught = int(teaching.max()) + 1
    classes = classifier_prior(
        components, teaching, n_taught, [view], random_state=random_state, regularisation=REFINE_C
    )
    if classes is None:
        return Refinement(labels, None)
    classes = np.pad(classes, ((0, 0), (0, n_clusters - n_taught)))
    refined = classes.argmax(1)
    return Refinement(refined, np.take_along_axis(classes, refined[:, None], axis=1)[:, 0])


__all__ = ["Refinement", "refined_clusters", "teaching_cells"]
