"""A confidence for each cell's cluster that reads as a probability.

The soft assignment q of the clustering layer ranks cells by how sure their cluster is, but its
level can say little: DESC's q stays near uniform (largest value about 0.3 on 10X PBMC, where
about 85% of the cells sit in a cluster led by their own annotated type). The calibrated
confidence keeps q's ranking and takes its level from the data: an increasing function of q,
fitted (isotonic regression) to the share of each cell's nearest neighbours in the *pretrained*
embedding that carry the same cluster label. That embedding is taken before the clustering
stage pulls the cells to their centroids, so it still shows where clusters touch. Where the
input's principal components are at hand (DESC's refinement computes them), a cell counts only
as much as the smaller of that share and the same share among its neighbours in the
components: a cell can sit inside its cluster in the embedding and still among cells of another
cluster in its input. That lowered the median expected calibration error of every DESC row of
`calibration.md` (by 0.004-0.024; 23 of the 24 runs lower, one the same).

Measured against annotated types (expected calibration error, `benchmarks/calibration.py`) it
is far better calibrated than DESC's q. It cannot see a type that a cluster has swallowed whole
(its cells agree with their neighbours), so where clusters merge types it is too high; scDCC's
pretrained embedding separates its clusters so well that this makes it worse than scDCC's own
q, which is therefore reported as it is (`deep_embedded_clustering(calibrate_confidence=...)`;
the cells its refinement moves report the refinement's probability instead).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .._results import assigned_soft_assignment

# Neighbours are looked up among at most this many cells (a random sample above it), which
# bounds the work at n_obs x REFERENCE_MAX_CELLS distances.
REFERENCE_MAX_CELLS = 10_000
# Number of (soft assignment, confidence) knots kept of the fitted function.
N_KNOTS = 201
# Rows of `z` per distance block: 256 x 10,000 distances stay in cache, which made the whole
# lookup (then with `torch.cdist`) 30% faster than blocks of 2,048 rows (200,000 cells: 9.1
# against 12.9 s), with the same neighbours (each row's distances do not depend on the block it
# is in); with the matrix multiply below, 512 rows measured the same as 256.
_CHUNK_ROWS = 256
_MEAN_CHUNK_ROWS = 16_384


@dataclass
class NeighbourView:
    """Each cell's nearest neighbours among `reference` cells, in one embedding."""

    reference: np.ndarray  # int64 (n_reference,): cell indices
    neighbours: np.ndarray  # int64 (n_obs, n_neighbors): positions in `reference`

    def agreement(self, labels: np.ndarray) -> np.ndarray:
        """Share of each cell's neighbours whose label is the cell's."""
        if self.neighbours.shape[1] == 0:  # a single cell: nothing contradicts its cluster
            return np.ones(len(labels), np.float32)
        neighbour_labels = labels[self.reference][self.neighbours]
        return (neighbour_labels == labels[:, None]).mean(1).astype(np.float32)

    def neighbour_mean(self, values: np.ndarray) -> np.ndarray:
        """Average of each cell's neighbours' rows of `values` (cells x columns, float32).

        In blocks of rows: all at once the neighbours' rows take n_neighbors times the memory
        of `values` (1.8 GB for a million cells and 30 clusters).
        """
        reference_rows = values[self.reference]
        mean = np.empty(values.shape, np.float32)
        for start in range(0, len(values), _MEAN_CHUNK_ROWS):
            block = self.neighbours[start : start + _MEAN_CHUNK_ROWS]
            mean[start : start + len(block)] = reference_rows[block].mean(1)
        return mean


def neighbour_view(
    z: np.ndarray,
    n_neighbors: int,
    *,
    random_state: int | None,
    device: torch.device | str = "cpu",
) -> NeighbourView:
    """Find the exact nearest neighbours of every row of `z` among reference rows.

    The reference is a random sample of `REFERENCE_MAX_CELLS` rows (all rows below that); a
    cell is never its own neighbour.
    """
    n = len(z)
    if n > REFERENCE_MAX_CELLS:
        rng = np.random.default_rng(random_state)
        reference = np.sort(rng.choice(n, REFERENCE_MAX_CELLS, replace=False))
    else:
        reference = np.arange(n)
    k = min(n_neighbors, len(reference) - 1)
    position_in_reference = np.full(n, -1, np.int64)
    position_in_reference[reference] = np.arange(len(reference))
    ref = torch.as_tensor(z[reference], dtype=torch.float32, device=device)
    # Distances do not move with the origin; measured from the reference's mean, the expansion
    # below loses less to float32 cancellation.
    origin = ref.mean(0)
    ref = ref - origin
    # A row's squared distances less its own squared norm, |r|^2 - 2 r.x: the same order of
    # neighbours as the distances, in one matrix multiply (no per-row norm, no square root).
    ref_t = ref.T.contiguous()
    ref_squared_norms = ref.pow(2).sum(1)
    neighbours = np.empty((n, max(k, 0)), np.int64)
    for start in range(0, n, _CHUNK_ROWS):
        stop = min(start + _CHUNK_ROWS, n)
        rows = torch.as_tensor(z[start:stop], dtype=torch.float32, device=device) - origin
        distances = torch.addmm(ref_squared_norms, rows, ref_t, alpha=-2)
        own = position_in_reference[start:stop]
        in_ref = np.flatnonzero(own >= 0)
        distances[in_ref, own[in_ref]] = torch.inf
        neighbours[start:stop] = _nearest(distances, k).cpu().numpy()
    return NeighbourView(reference=reference, neighbours=neighbours)


# Columns per group in `_nearest`'s first pass.
_GROUPS = 16


def _nearest(distances: torch.Tensor, k: int) -> torch.Tensor:
    """Columns of the `k` smallest distances of each row, in no particular order.

    The neighbours are used as a set (shares and means), so they need no order. A top-k over the
    full reference (`REFERENCE_MAX_CELLS` columns) took most of the lookup (20 of 34 s for
    DESC's two lookups at a million cells), so there the columns are cut into groups of
    `_GROUPS`, and only the `k` groups with the smallest minima are searched: a group left out
    holds nothing nearer than the k minima of those searched, so the neighbours are the same
    (where two columns tie at the k-th distance, either may be taken). Measured at 200,000
    cells: 2.4 against 4.3 s for the whole lookup. On a smaller reference the lookup takes a
    second at most, and the plain top-k keeps the order in which means over the neighbours
    have always been summed.
    """
    n_rows, n_columns = distances.shape
    width = n_columns // _GROUPS
    if n_columns < REFERENCE_MAX_CELLS or n_columns % _GROUPS or k > width:
        return distances.topk(k, largest=False, sorted=False).indices
    # group g holds columns g, g + width, g + 2 width, ...: the minimum over the _GROUPS rows of
    # this view runs along contiguous memory
    smallest = distances.view(n_rows, _GROUPS, width).amin(1)
    groups = smallest.topk(k, largest=False, sorted=False).indices
    offsets = torch.arange(_GROUPS, device=distances.device) * width
    columns = (groups[:, :, None] + offsets).reshape(n_rows, k * _GROUPS)
    picked = distances.gather(1, columns).topk(k, largest=False, sorted=False).indices
    return columns.gather(1, picked)


@dataclass
class ConfidenceMap:
    """An increasing function from the soft assignment to the reported confidence.

    Kept as knots for `np.interp`, so that cells mapped later (`tl.map_to_model`) get the
    same scale.
    """

    soft_assignment: np.ndarray  # float32, increasing
    confidence: np.ndarray  # float32, non-decreasing

    def __call__(self, soft_assignment: np.ndarray) -> np.ndarray:
        return np.interp(soft_assignment, self.soft_assignment, self.confidence).astype(np.float32)

    def as_dict(self) -> dict:
        return {
            "soft_assignment": self.soft_assignment.tolist(),
            "confidence": self.confidence.tolist(),
        }

    @classmethod
    def from_dict(cls, stored: dict) -> ConfidenceMap:
        return cls(
            np.asarray(stored["soft_assignment"], np.float32),
            np.asarray(stored["confidence"], np.float32),
        )


def fit_confidence_map(soft_assignment: np.ndarray, agreement: np.ndarray) -> ConfidenceMap:
    """Isotonic regression of neighbour agreement on the soft assignment, kept at quantiles."""
    from sklearn.isotonic import IsotonicRegression

    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
    iso.fit(soft_assignment.astype(np.float64), agreement.astype(np.float64))
    knots = np.unique(np.quantile(soft_assignment, np.linspace(0, 1, N_KNOTS)))
    return ConfidenceMap(knots.astype(np.float32), iso.predict(knots).astype(np.float32))


def calibrated_confidence(
    probabilities: np.ndarray,
    labels: np.ndarray,
    view: NeighbourView,
    input_components: np.ndarray | None = None,
    *,
    device: torch.device | str = "cpu",
) -> tuple[np.ndarray, ConfidenceMap]:
    """Return every cell's confidence and the function that gave it.

    With `input_components` (the input's principal components, one row per cell), the function
    is fitted to the smaller of each cell's two agreements, in `view` and among its nearest
    neighbours in the components, over `view`'s reference cells only (at most
    `REFERENCE_MAX_CELLS`, which bounds the second lookup).
    """
    soft = assigned_soft_assignment(probabilities, labels)
    agreement = view.agreement(labels)
    if input_components is None:
        mapping = fit_confidence_map(soft, agreement)
    else:
        cells = view.reference
        in_input = neighbour_view(
            input_components[cells], view.neighbours.shape[1], random_state=None, device=device
        ).agreement(labels[cells])
        mapping = fit_confidence_map(soft[cells], np.minimum(agreement[cells], in_input))
    return mapping(soft), mapping


__all__ = [
    "ConfidenceMap",
    "NeighbourView",
    "calibrated_confidence",
    "fit_confidence_map",
    "neighbour_view",
]
