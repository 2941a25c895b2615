"""Initial centroids in the latent space.

They come from k-means for a given or searched number of clusters (plain, or balanced: on the
cells' directions, crowded regions weighted down), from Leiden on a kNN
graph at a given resolution, or, for a given number, from Leiden brought to that number: the
smallest resolution of a ladder that finds at least that many clusters, merged down to it by
Ward's criterion, or a coarse Leiden clustering with its most separate parts split off,
whichever cuts less of the graph.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scanpy import logging as logg

from .._messages import caller_stacklevel, scanpy_quiet
from .._neighbors import exact_neighbors
from .._process import ignoring_warnings
from .._threads import kmeans_thread_limit
from ._balance import crowding_weights
from ._n_clusters import (
    MIN_CELLS_PER_CANDIDATE_CLUSTER,
    STABLE_SCORE,
    ClusterNumberSearch,
    largest_upper_bound,
    resolve_bounds,
    search_n_clusters,
    search_summary,
)

# Above these sizes the initial clustering runs on a random subsample and the other cells go
# to the nearest resulting centroid: the centroids are only a starting point for training.
# Leiden's sample is small on purpose: at a fixed resolution and number of neighbours, its
# clusters get finer as the graph holds more cells (each neighbourhood covers a smaller share
# of them). On simulated data with 8 groups (100,000 cells, DESC's pretrained embedding) a
# sample of 10,000 gives 11-13 clusters, 20,000 gives 13-17, 50,000 15-20 (scratch runs), whose
# extra ones hold high-library-size cells of one group or of several; DESC's clustering stage
# then mixed the groups (benchmarks/results/scaling_100k_desc*.md: ARI 0.83, not settled after
# 100 epochs, against 0.97 settled after one from 10,000).
# 10,000 keeps Leiden's graph as on a dataset of that size; the embedding, trained on all the
# cells, can still hold finer groups (a user session, 8 simulated groups with most counts
# dropped: 8 clusters on 10,000 cells, 17 on 30,000 and 27 on 100,000, the extra ones of 1 to
# a few hundred cells mixing the groups).
LEIDEN_MAX_CELLS = 10_000
KMEANS_MAX_CELLS = 200_000
# A given number of clusters from Leiden (`_ward_merged_ladder`): the resolution grows by this
# factor until Leiden finds enough clusters, up to this bound, which ends the search on a graph
# that does not split into that many (a number of clusters close to the number of cells).
LEIDEN_RESOLUTION_STEP = 1.25
LEIDEN_MAX_RESOLUTION = 100.0
# The ladder starts at the original DESC's resolution; starting at `tl.desc`'s default 0.5
# measured no better at the true k (seeds 0-2: 10X PBMC 0.773 against 0.775, mouse bladder
# 0.598 against 0.577, worm neurons 0.508 against 0.521, CITE CBMC 0.619 against 0.593).
LEIDEN_START_RESOLUTION = 0.8
# The coarse candidate of a given number of clusters (`leiden_k_labels`), at `tl.desc`'s
# default resolution (models._desc.DEFAULT_RESOLUTION reads it), and how it is split up.
LEIDEN_COARSE_RESOLUTION = 0.5
SPLIT_RESOLUTION = 1.0
MIN_PART_CELLS = 10
_WARD_CHUNK_ROWS = 256
# How an integer number of clusters is reached (`initial_centroids(init=...)`).
INIT_METHODS = ("balanced-kmeans", "kmeans", "leiden")
# Balanced k-means: a cell in a crowded group of n (of `train._balance.N_GROUPS` k-means groups
# of the directions) counts n ** -CROWDING_POWER, as in scDCC's balanced pretraining draws.
CROWDING_POWER = 0.5


def check_init(init: str) -> None:
    if init not in INIT_METHODS:
        raise ValueError(
            f"init must be one of {INIT_METHODS} (how a given n_clusters is reached), got {init!r}."
        )


def kmeans_labels(
    z: np.ndarray,
    n_clusters: int,
    *,
    random_state: int | None,
    n_init: int = 20,
    crowding_power: float = 0.0,
) -> np.ndarray:
    """k-means labels (on a random subsample, the rest by nearest centroid, for large data).

    With `crowding_power` > 0 each row weighs n ** -`crowding_power` in the fit, n the size of
    its group (`crowding_weights`).
    """
    from sklearn.cluster import KMeans

    if len(z) > KMEANS_MAX_CELLS:
        sample = _subsample(len(z), KMEANS_MAX_CELLS, random_state)
        labels = kmeans_labels(
            z[sample],
            n_clusters,
            random_state=random_state,
            n_init=n_init,
            crowding_power=crowding_power,
        )
        return _extended_from_sample(z, sample, labels)
    weights = crowding_weights(z, crowding_power, random_state=random_state)
    with kmeans_thread_limit():
        km = KMeans(n_clusters=n_clusters, n_init=n_init, random_state=random_state).fit(
            z, sample_weight=weights
        )
    return km.labels_.astype(np.int64)


def balanced_kmeans_labels(
    z: np.ndarray, n_clusters: int, *, random_state: int | None, n_init: int = 20
) -> np.ndarray:
    """k-means labels of the cells' directions in `z`, crowded regions weighted down.

    Each row is scaled to unit length, and each cell weighs n ** -`CROWDING_POWER` in the fit,
    n the size of its group among the directions' crowding groups (`crowding_weights`).

    Why (scDCC's pretrained ZINB embedding): the length of a cell's latent vector follows its
    library size (Spearman 0.23-0.44 on the four shared datasets), which the decoder's size
    factors already model, and k-means' squared error pays most for splitting the
    widest-spread, most abundant type while merging small ones. The directions lift the start
    on 10X PBMC, worm neurons and simulated rare groups, the weights on mouse bladder and CITE
    CBMC; after the clustering stage it is better on PBMC and worse on bladder than plain
    k-means (docs/measurements.md), so it is an option.
    """
    directions = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), np.finfo(z.dtype).tiny)
    return kmeans_labels(
        directions,
        n_clusters,
        random_state=random_state,
        n_init=n_init,
        crowding_power=CROWDING_POWER,
    )


# `init_method` of a start at the known classes (cluster i at class i)
KNOWN_CLASS_MEANS = "known class means"


def class_mean_centroids(
    z: np.ndarray, n_clusters: int, seed_labels: np.ndarray, *, random_state: int | None
) -> np.ndarray | None:
    """Centroids that start at the known classes.

    Centroid i is the mean position of the cells labelled with class code i (`seed_labels`, -1
    for unknown). Centroids beyond the known classes come from a free k-means run, those
    farthest from the known classes. `None` when more classes are known than `n_clusters`.

    No k-means iterations follow: measured with 10% of cells labelled (ARI on the other 90%),
    Lloyd steps from the class means drift towards k-means' own optimum and lose what the
    labels say (10X PBMC: 0.79 at the class means, 0.77 after k-means; worm neuron after the
    clustering stage: 0.67 against 0.52).
    """
    known = seed_labels >= 0
    seeds = centroids_from_labels(z[known], seed_labels[known])
    n_extra = n_clusters - len(seeds)
    if n_extra < 0:
        return None
    if n_extra:
        free = centroids_from_labels(z, kmeans_labels(z, n_clusters, random_state=random_state))
        dist = ((free[:, None, :] - seeds[None]) ** 2).sum(-1).min(1)
        seeds = np.concatenate([seeds, free[np.argsort(-dist)[:n_extra]]])
    return seeds


def leiden_labels(
    z: np.ndarray, *, resolution: float, n_neighbors: int, random_state: int | None
) -> np.ndarray:
    """Leiden labels of `z` at `resolution` (on a sample of large data, see LEIDEN_MAX_CELLS)."""
    if len(z) > LEIDEN_MAX_CELLS:
        sample = _subsample(len(z), LEIDEN_MAX_CELLS, random_state)
        labels = leiden_labels(
            z[sample], resolution=resolution, n_neighbors=n_neighbors, random_state=random_state
        )
        return _extended_from_sample(z, sample, labels)
    return LatentGraph(z, n_neighbors=n_neighbors, random_state=random_state).leiden(resolution)


class LatentGraph:
    """The kNN graph of an embedding, on which the Leiden clusterings of one start are run."""

    def __init__(self, z: np.ndarray, *, n_neighbors: int, random_state: int | None):
        import anndata as ad

        self.random_state = random_state or 0
        self._adata = ad.AnnData(
            obsm={"X_latent": z}, obs=pd.DataFrame(index=np.arange(len(z)).astype(str))
        )
        # The kernel's 0 / 0 between coincident cells is repaired below: numpy's warning about
        # it is not the user's.
        with np.errstate(invalid="ignore", divide="ignore"), scanpy_quiet():
            # Exact neighbours are cheap at this size (see LEIDEN_MAX_CELLS). Gaussian-kernel
            # weights (adaptive widths) avoid the umap weights' numba compilation, seconds per
            # process.
            exact_neighbors(
                self._adata,
                use_rep="X_latent",
                n_neighbors=n_neighbors,
                random_state=self.random_state,
                method="gauss",
            )
        self.weights = _coincident_cells_joined(
            sp.csr_matrix(self._adata.obsp["connectivities"]), z
        )
        # the full-graph Leiden reads the weights from here
        self._adata.obsp["connectivities"] = self.weights
        self.degree = np.asarray(self.weights.sum(1)).ravel()

    def leiden(self, resolution: float, cells: np.ndarray | None = None) -> np.ndarray:
        """Leiden labels (0..m-1) of all cells, or of the subgraph of `cells` alone."""
        import anndata as ad
        import scanpy as sc

        if cells is None:
            adata, adjacency = self._adata, None
        else:
            adata = ad.AnnData(obs=pd.DataFrame(index=np.arange(len(cells)).astype(str)))
            adjacency = self.weights[cells][:, cells]
        # igraph's implementation, with the settings scanpy recommends (and will default to):
        # the leidenalg flavour warns in every call from scanpy 1.11 on and is much slower.
        with scanpy_quiet():  # about the temporary object, not the user's
            sc.tl.leiden(
                adata,
                resolution=resolution,
                random_state=self.random_state,
                flavor="igraph",
                n_iterations=2,
                directed=False,
                key_added="leiden",
                adjacency=adjacency,
            )
        return adata.obs["leiden"].astype(int).to_numpy()

    def cut_fraction(self, labels: np.ndarray) -> float:
        """Return the share of the graph's edge weight that joins different clusters."""
        edges = self.weights.tocoo()
        return float(edges.data[labels[edges.row] != labels[edges.col]].sum() / edges.data.sum())

    def outflow(self, cells: np.ndarray) -> float:
        """Return the share of the edge weight of `cells` that leaves them (conductance)."""
        volume = self.degree[cells].sum()
        return float((volume - self.weights[cells][:, cells].sum()) / volume)


def _coincident_cells_joined(weights: sp.csr_matrix, z: np.ndarray) -> sp.csr_matrix:
    """Return the Gaussian-kernel weights with their 0 / 0 entries at the limit, and no loops.

    A cell whose neighbours mostly share its embedding (all-zero or duplicated input cells)
    gets a kernel width of 0, and the kernel between two such cells is 0 / 0. Left as NaN,
    those weights made Leiden put nearly every cell of the data in a cluster of its own (40
    all-zero cells among 2,000: 1,961 clusters). The limit is 1 between coincident cells and 0
    between distinct ones; the weights to cells outside are 0 (the kernel's own value for a
    width of 0), so a group of coincident cells is a cluster of its own, which a warning says.
    """
    rows = np.repeat(np.arange(weights.shape[0]), np.diff(weights.indptr))
    cols = weights.indices
    bad = ~np.isfinite(weights.data)
    # Ties at distance 0 can list a cell among its own neighbours: no loops, as in other graphs.
    loops = rows == cols
    if not (bad.any() or loops.any()):
        return weights
    weights = weights.copy()
    coincide = (z[rows[bad]] == z[cols[bad]]).all(axis=1)
    weights.data[bad] = coincide.astype(weights.dtype)
    weights.data[loops] = 0
    weights.eliminate_zeros()
    n_coincident = len(np.unique(rows[bad][coincide]))
    if n_coincident:
        warnings.warn(
            f"{n_coincident} of the {len(z)} cells clustered by Leiden share their point of "
            "the embedding with most of their nearest neighbours. Either their input rows are "
            "identical (e.g. all-zero cells, which scaling turns into identical rows, or "
            "duplicated cells): each such group becomes a cluster of its own; to leave empty "
            "cells out, remove them before normalising, e.g. "
            "`sc.pp.filter_cells(adata, min_genes=1)`. Or the network's units saturated on "
            "input far from z-scores (large values, not centred): pass scale=True to tl.desc, "
            "or run sc.pp.scale first.",
            UserWarning,
            stacklevel=caller_stacklevel(),
        )
    return weights


def _leiden_until(
    graph: LatentGraph, resolutions: Iterable[float], until: Callable[[np.ndarray], bool]
) -> tuple[np.ndarray, float]:
    """Leiden at each of `resolutions` in turn until `until(labels)` holds (else the last)."""
    for resolution in resolutions:
        labels = graph.leiden(resolution)
        if until(labels):
            break
    return labels, resolution


def _resolution_ladder(start: float) -> list[float]:
    # the given resolution is always tried, also above the ladder's top
    ladder = [start]
    while ladder[-1] * LEIDEN_RESOLUTION_STEP <= LEIDEN_MAX_RESOLUTION:
        ladder.append(ladder[-1] * LEIDEN_RESOLUTION_STEP)
    return ladder


def _ward_merged_ladder(
    graph: LatentGraph, z: np.ndarray, n_clusters: int, resolution: float
) -> tuple[np.ndarray, float] | None:
    """Leiden from `resolution` upwards until it finds `n_clusters`, merged down by Ward.

    The resolution grows by `LEIDEN_RESOLUTION_STEP` until Leiden finds at least `n_clusters`
    clusters; those are merged in pairs, each time the pair whose merge adds least to the
    within-cluster sum of squares. Returns the labels and the Leiden resolution, or `None`
    when no resolution up to `LEIDEN_MAX_RESOLUTION` (or the given one, if above) gives enough
    clusters.
    """
    labels, found_at = _leiden_until(
        graph,
        _resolution_ladder(resolution),
        lambda labels: len(np.unique(labels)) >= n_clusters,
    )
    if len(np.unique(labels)) < n_clusters:
        return None
    return ward_merged(z, labels, n_clusters), found_at


def leiden_k_labels(
    z: np.ndarray,
    n_clusters: int,
    *,
    resolution: float,
    n_neighbors: int,
    random_state: int | None,
) -> tuple[np.ndarray, str] | None:
    """Leiden clusters of `z` brought to `n_clusters`, and how they were reached.

    Two candidates on one kNN graph: Leiden from `resolution` upwards until it finds enough
    clusters, merged down by Ward's criterion (`_ward_merged_ladder`); and Leiden at the coarser
    `LEIDEN_COARSE_RESOLUTION`, merged by Ward's criterion when it finds more clusters, or,
    when it finds fewer, with the sub-populations that are most apart from the rest split off
    (`split_off_parts`). The start is the candidate whose clusters cut less of the graph's
    edge weight. A finer resolution reaches a larger k by cutting large populations into
    pieces; the coarse clusters keep them whole and separate what the graph separates. `None`
    when neither candidate reaches `n_clusters`. Above `LEIDEN_MAX_CELLS` cells both are built
    on a random sample of that many, and the other cells go to the nearest centroid.
    """
    if len(z) > LEIDEN_MAX_CELLS:
        sample = _subsample(len(z), LEIDEN_MAX_CELLS, random_state)
        found = leiden_k_labels(
            z[sample],
            n_clusters,
            resolution=resolution,
            n_neighbors=n_neighbors,
            random_state=random_state,
        )
        if found is None:
            return None
        labels, method = found
        return _extended_from_sample(z, sample, labels), method
    graph = LatentGraph(z, n_neighbors=n_neighbors, random_state=random_state)
    candidates = []
    ladder = _ward_merged_ladder(graph, z, n_clusters, resolution)
    if ladder is not None:
        labels, found_at = ladder
        candidates.append(
            (labels, f"leiden (resolution {found_at:.3g}), merged by Ward's criterion")
        )
    coarse = graph.leiden(LEIDEN_COARSE_RESOLUTION)
    n_coarse = len(np.unique(coarse))
    if n_coarse >= n_clusters:
        candidates.append(
            (
                ward_merged(z, coarse, n_clusters),
                f"leiden (resolution {LEIDEN_COARSE_RESOLUTION:g}), merged by Ward's criterion",
            )
        )
    else:
        split = split_off_parts(graph, coarse, n_clusters)
        if split is not None:
            n_split = n_clusters - n_coarse
            candidates.append(
                (
                    split,
                    f"leiden (resolution {LEIDEN_COARSE_RESOLUTION:g}), "
                    f"{n_split} separate part{'s' if n_split > 1 else ''} split off",
                )
            )
    if not candidates:
        return None
    cuts = [graph.cut_fraction(labels) for labels, _ in candidates]
    labels, method = candidates[int(np.argmin(cuts))]
    if len(candidates) > 1:
        method += f" (graph cut {min(cuts):.3f} against {max(cuts):.3f})"
    return labels, method


def split_off_parts(graph: LatentGraph, labels: np.ndarray, n_clusters: int) -> np.ndarray | None:
    """Bring `labels` up to `n_clusters` by splitting off the parts most apart from the rest.

    Leiden within each cluster (`SPLIT_RESOLUTION`) proposes its parts, all but the largest, of
    at least `MIN_PART_CELLS` cells; those whose edge weight leaves them least (lowest
    conductance) become clusters of their own. `None` when there are too few parts.
    """
    _, labels = np.unique(labels, return_inverse=True)
    needed = n_clusters - (labels.max() + 1)
    parts = []
    for cluster in range(labels.max() + 1):
        cells = np.flatnonzero(labels == cluster)
        if len(cells) < 2 * MIN_PART_CELLS:
            continue
        within = graph.leiden(SPLIT_RESOLUTION, cells)
        sizes = np.bincount(within)
        for part in np.flatnonzero(sizes >= MIN_PART_CELLS):
            if part != sizes.argmax():
                members = cells[within == part]
                parts.append((graph.outflow(members), members))
    if len(parts) < needed:
        return None
    split = labels.copy()
    order = np.argsort([outflow for outflow, _ in parts], kind="stable")
    for new_label, i in enumerate(order[:needed], start=labels.max() + 1):
        split[parts[i][1]] = new_label
    return split


def ward_merged(z: np.ndarray, labels: np.ndarray, n_clusters: int) -> np.ndarray:
    """Merge the clusters of `labels` by Ward's criterion down to `n_clusters` (0..k-1)."""
    _, labels = np.unique(labels, return_inverse=True)
    centroids = centroids_from_labels(z, labels).astype(np.float64)
    sizes = np.bincount(labels).astype(np.float64)
    m = len(sizes)
    # cost[i, j]: increase of the within-cluster sum of squares if clusters i and j merge;
    # only the merged cluster's row and column change after a merge
    cost = np.empty((m, m))
    for start in range(0, m, _WARD_CHUNK_ROWS):
        rows = np.arange(start, min(start + _WARD_CHUNK_ROWS, m))
        cost[rows] = _ward_costs(centroids[rows], sizes[rows], centroids, sizes)
    np.fill_diagonal(cost, np.inf)
    group = np.arange(m)  # the merged cluster each initial one belongs to
    alive = np.ones(m, bool)
    for _ in range(m - n_clusters):
        a, b = np.unravel_index(np.argmin(cost), cost.shape)
        keep, gone = min(a, b), max(a, b)
        total = sizes[keep] + sizes[gone]
        centroids[keep] = (sizes[keep] * centroids[keep] + sizes[gone] * centroids[gone]) / total
        sizes[keep] = total
        group[group == gone] = keep
        alive[gone] = False
        cost[gone, :] = cost[:, gone] = np.inf
        others = np.flatnonzero(alive)
        others = others[others != keep]
        row = _ward_costs(centroids[[keep]], sizes[[keep]], centroids[others], sizes[others])
        cost[keep, others] = cost[others, keep] = row[0]
    return np.unique(group, return_inverse=True)[1][labels]


def _ward_costs(
    centroids: np.ndarray, sizes: np.ndarray, other_centroids: np.ndarray, other_sizes: np.ndarray
) -> np.ndarray:
    """Increase of the within-cluster sum of squares for merging each cluster with each other."""
    squared = ((centroids[:, None] - other_centroids[None]) ** 2).sum(-1)
    return squared * (sizes[:, None] * other_sizes[None] / (sizes[:, None] + other_sizes[None]))


def _subsample(n: int, size: int, random_state: int | None) -> np.ndarray:
    return np.sort(np.random.default_rng(random_state).choice(n, size, replace=False))


def _extended_from_sample(z: np.ndarray, sample: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Labels of all rows of `z`: the nearest centroid of the clusters of the `sample` rows."""
    return nearest_centroid(z, centroids_from_labels(z[sample], labels))


def nearest_centroid(z: np.ndarray, centroids: np.ndarray, chunk_size: int = 65_536) -> np.ndarray:
    """Index of the nearest centroid of each row, in chunks (no n x k x d temporary)."""
    labels = np.empty(len(z), dtype=np.int64)
    c_sq = (centroids**2).sum(1)
    for start in range(0, len(z), chunk_size):
        block = z[start : start + chunk_size]
        labels[start : start + chunk_size] = np.argmin(c_sq - 2 * block @ centroids.T, axis=1)
    return labels


def centroids_from_labels(z: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Mean of z per label; labels must be 0..k-1."""
    k = int(labels.max()) + 1
    sums = np.zeros((k, z.shape[1]), dtype=np.float64)
    np.add.at(sums, labels, z)
    counts = np.bincount(labels, minlength=k)[:, None]
    return (sums / np.maximum(counts, 1)).astype(np.float32)


@dataclass
class InitialClustering:
    centroids: np.ndarray  # (n_clusters, latent_dim) float32
    labels: np.ndarray
    method: str
    search: ClusterNumberSearch | None = None  # when the number of clusters was searched
    # centroid i started at the mean of the cells labelled with class code i
    classes_anchored: bool = False


def initial_centroids(
    z: np.ndarray,
    *,
    n_clusters: int | tuple[int, int] | None,
    resolution: float | None,
    n_neighbors: int,
    random_state: int | None,
    seed_labels: np.ndarray | None = None,
    init: str = "kmeans",
) -> InitialClustering:
    """Cluster the embedding `z` to start the clustering stage from.

    For an integer `n_clusters`: k-means (``init="kmeans"``), balanced k-means
    (``"balanced-kmeans"``, `balanced_kmeans_labels`), or with ``init="leiden"`` Leiden brought
    to `n_clusters` (`leiden_k_labels`, its ladder from `resolution`, `LEIDEN_START_RESOLUTION`
    when `None`). Leiden at `resolution` when only that is given; otherwise k-means at a number
    of clusters searched between the bounds `n_clusters` (``(lo, hi)``, or the default range
    when `None`): the search scores k-means partitions, so the chosen number keeps k-means
    (balanced with ``init="balanced-kmeans"``). `seed_labels` (known classes of some cells, -1
    elsewhere) place the first centroids at the known classes when the number of clusters is
    given or searched.
    """
    check_init(init)
    search = None
    if n_clusters is None and resolution is None or isinstance(n_clusters, tuple | list):
        lo, hi = resolve_bounds(n_clusters, len(z))
        if seed_labels is not None:  # at least one cluster per known class
            n_known = len(np.unique(seed_labels[seed_labels >= 0]))
            lo = max(lo, min(hi, n_known))
            if n_known > hi:
                most = largest_upper_bound(len(z))
                instead = (
                    f"search up to at least {n_known}, e.g. "
                    f"n_clusters=({n_known}, {max(n_known, min(30, most))}),"
                    if n_known <= most
                    else f"give n_clusters={n_known} (a search leaves "
                    f"{MIN_CELLS_PER_CANDIDATE_CLUSTER} cells per cluster: {most} at most here)"
                )
                warnings.warn(
                    f"The labelled cells name {n_known} classes, more than the search's upper "
                    f"bound {hi}: every number below {n_known} leaves a class without a "
                    f"cluster to start from, so {hi} is the only number tried and the "
                    f"centroids come from k-means. To start from the known classes, {instead} "
                    "instead.",
                    UserWarning,
                    stacklevel=caller_stacklevel(),
                )
        search = search_n_clusters(z, (lo, hi), random_state=random_state)
        logg.info(f"    number of clusters: {search_summary(search.as_dict())}")
        n_clusters = search.chosen
        if search.score.max() < STABLE_SCORE:
            unstable = (
                f"No number of clusters from {lo} to {hi} comes back when the cells are "
                f"clustered again on subsamples: the best agreement is "
                f"{search.score.max():.2f} (1: the same partition every time; the labelled "
                f"datasets' best 0.74-1.00), so the choice of {n_clusters} means little."
                if lo < hi  # a single candidate was taken, not chosen
                else f"{n_clusters} clusters do not come back when the cells are clustered "
                f"again on subsamples: their agreement is {search.score.max():.2f} (1: the "
                "same partition every time; the labelled datasets' best number 0.74-1.00), so "
                "they mean little."
            )
            warnings.warn(
                f"{unstable} The cells may hold no distinct groups (scanpy's Leiden on their "
                "principal components tells); clusters forced on them are arbitrary.",
                UserWarning,
                stacklevel=caller_stacklevel(),
            )
        elif lo < n_clusters == hi < largest_upper_bound(len(z)):
            # the rule takes the largest number near the best score: more may do as well
            wider = min(2 * hi, largest_upper_bound(len(z)))
            warnings.warn(
                f"The search chose {hi} clusters, its upper bound (runner-up "
                f"{search.runner_up}): more clusters may fit these cells as well. Search a "
                f"wider range, e.g. n_clusters=({lo}, {wider}), and compare the scores "
                "(scdeepclust.pl.n_clusters).",
                UserWarning,
                stacklevel=caller_stacklevel(),
            )
    found = ", number searched" if search is not None else ""
    if n_clusters is not None and seed_labels is not None:
        seeds = class_mean_centroids(z, n_clusters, seed_labels, random_state=random_state)
        if seeds is not None:
            return InitialClustering(
                seeds,
                nearest_centroid(z, seeds),
                KNOWN_CLASS_MEANS + found,
                search,
                classes_anchored=True,
            )
        n_known = len(np.unique(seed_labels[seed_labels >= 0]))
        if search is None:  # a search's bound said so already
            warnings.warn(
                f"The labelled cells name {n_known} classes, more than n_clusters={n_clusters}; "
                "the centroids come from k-means instead of the known classes. Give "
                f"n_clusters >= {n_known} to start from the known classes.",
                UserWarning,
                stacklevel=caller_stacklevel(),
            )
    if n_clusters is not None and search is None and seed_labels is None and init == "leiden":
        start = LEIDEN_START_RESOLUTION if resolution is None else resolution
        reached = leiden_k_labels(
            z, n_clusters, resolution=start, n_neighbors=n_neighbors, random_state=random_state
        )
        if reached is not None:
            labels, method = reached
            return InitialClustering(centroids_from_labels(z, labels), labels, method)
        warnings.warn(
            f"Leiden found fewer than n_clusters={n_clusters} clusters at every resolution up "
            f"to {LEIDEN_MAX_RESOLUTION:g}; the initial centroids come from k-means instead.",
            UserWarning,
            stacklevel=caller_stacklevel(),
        )
    if n_clusters is not None:
        method = "balanced-kmeans" if init == "balanced-kmeans" else "kmeans"
        fit = balanced_kmeans_labels if method == "balanced-kmeans" else kmeans_labels
        from sklearn.exceptions import ConvergenceWarning

        with ignoring_warnings(ConvergenceWarning):  # said below, with what to do
            labels = fit(z, n_clusters, random_state=random_state)
        n_found = len(np.unique(labels))
        if n_found < n_clusters:  # fewer distinct positions than clusters (sklearn only warns)
            if method == "balanced-kmeans" and z.shape[1] < 2:
                raise ValueError(
                    f"n_clusters={n_clusters}, but init='balanced-kmeans' finds only {n_found} "
                    "group(s): it clusters the cells' directions, and a latent space of one "
                    "dimension has two. Give it at least two dimensions (scdcc's `latent_dim`, "
                    "the last of desc's `hidden`), or use init='kmeans'."
                )
            fewer = f"give n_clusters <= {n_found}" if n_found >= 2 else "no clusters to find"
            asked = (
                f"n_clusters={n_clusters}"
                if search is None
                else f"The search chose {n_clusters} clusters (of {lo} to {hi})"
            )
            raise ValueError(
                f"{asked}, but k-means finds only {n_found} distinct group(s) of cells in the "
                f"latent space (cells embedded at one point); {fewer}."
            )
        method += found
    else:
        labels = leiden_labels(
            z, resolution=resolution, n_neighbors=n_neighbors, random_state=random_state
        )
        method = "leiden"
        if labels.max() < 1:
            raise ValueError(
                f"Leiden at resolution={resolution} found a single cluster in the latent space. "
                "Use a larger `resolution`, or give `n_clusters`; or the cells may hold no "
                "distinct groups (scanpy's Leiden on their principal components tells), and "
                "any clusters forced on them would be arbitrary."
            )
    return InitialClustering(centroids_from_labels(z, labels), labels, method, search)
