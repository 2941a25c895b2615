"""Choosing the number of clusters from the pretrained embedding, without labels.

Each candidate number k is scored by how well k-means partitions of the embedding reproduce:
k-means is fitted on several random subsamples, each from its own seed, every fit assigns all
searched cells to its nearest centroid, and the score is the mean adjusted Rand index between
the fits (1: the same partition every time; near 0: no agreement beyond chance). A partition
that follows real groups comes back under subsampling and reseeding; one that cuts a group at
an arbitrary place does not.

The coarsest partitions (a few lineages) are often the most reproducible of all, so the choice
is the largest k whose score is within `tolerance` of the best score: the finest clustering
that is about as reproducible as the most reproducible one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._process import ignoring_warnings
from .._threads import kmeans_thread_limit

# The search clusters at most this many cells (a random subsample of the embedding): enough to
# find populations of a fraction of a percent, at a cost that does not grow with the data.
SEARCH_MAX_CELLS = 20_000
DEFAULT_BOUNDS = (2, 30)
# Candidates leave at least this many cells per cluster on average: with a cell or two per
# cluster every k-means fit finds the same partition, whose perfect agreement the choice
# would then follow (12 cells of 3 groups gave 11 clusters, 200 cells searched up to 199: 137).
MIN_CELLS_PER_CANDIDATE_CLUSTER = 5
# Agreement a finer clustering may lose against the most reproducible one and still be chosen.
DEFAULT_TOLERANCE = 0.05
N_REPEATS = 6
SUBSAMPLE_FRACTION = 0.8
# k-means starts per fit: one start too often lands in a local optimum (two groups merged,
# another split), which reads as disagreement the data do not have.
N_INIT = 3
# Below this best agreement no number of clusters comes back under resampling: tl.desc's search
# (2-20, seed 0) scored 0.74 (worm neurons) to 1.00 at best on the labelled datasets, and 0.11
# on simulated cells of one group.
STABLE_SCORE = 0.5


@dataclass
class ClusterNumberSearch:
    """Every candidate's score and spread, and the choice."""

    n_clusters: np.ndarray  # candidates, ascending
    score: np.ndarray  # mean pairwise ARI between the repeated clusterings
    spread: np.ndarray  # standard deviation of those ARIs
    chosen: int
    runner_up: int | None
    tolerance: float
    n_cells: int  # cells the search clustered
    n_repeats: int

    def as_dict(self) -> dict:
        """Return what `uns[key]['n_clusters_search']` holds (h5ad-safe)."""
        out = {
            "n_clusters": self.n_clusters.astype(np.int64),
            "score": self.score.astype(np.float64),
            "spread": self.spread.astype(np.float64),
            "chosen": int(self.chosen),
            "tolerance": float(self.tolerance),
            "n_cells": int(self.n_cells),
            "n_repeats": int(self.n_repeats),
            "criterion": "subsample k-means agreement (mean pairwise ARI)",
        }
        if self.runner_up is not None:
            out["runner_up"] = int(self.runner_up)
        return out


def search_summary(search) -> str:
    """Describe a search in one line (as stored by `ClusterNumberSearch.as_dict`).

    The line gives the choice and the runner-up with their scores, and why a runner-up that
    scores higher was not chosen.
    """
    candidates = [int(k) for k in search["n_clusters"]]

    def score(k: int) -> float:
        return float(search["score"][candidates.index(k)])

    def scored(k: int) -> str:
        i = candidates.index(k)
        return f"{k} (agreement {search['score'][i]:.3f} ± {search['spread'][i]:.3f})"

    chosen = int(search["chosen"])
    text = f"chose {scored(chosen)}"
    if "runner_up" in search:
        runner = int(search["runner_up"])
        text += f", runner-up {scored(runner)}"
        if score(runner) > score(chosen) and "tolerance" in search:
            text += (
                f": the most clusters within {float(search['tolerance']):.3g} of the best "
                "agreement are chosen"
            )
    return text


def largest_upper_bound(n_obs: int) -> int:
    """Return the largest number of clusters a search takes on `n_obs` cells.

    The search clusters a sample of large data and leaves `MIN_CELLS_PER_CANDIDATE_CLUSTER`
    cells per cluster of it.
    """
    return min(n_obs, SEARCH_MAX_CELLS) // MIN_CELLS_PER_CANDIDATE_CLUSTER


def resolve_bounds(n_clusters, n_obs: int) -> tuple[int, int]:
    """Return the candidate range of a search.

    `n_clusters` as ``(lo, hi)``, or the default range (capped at a fifth of the number of
    cells) when it is `None`.
    """
    if n_clusters is None:
        lo, hi = DEFAULT_BOUNDS
        return lo, max(lo, min(hi, n_obs // MIN_CELLS_PER_CANDIDATE_CLUSTER))
    lo, hi = (int(v) for v in n_clusters)
    return lo, hi


def search_n_clusters(
    z: np.ndarray,
    bounds: tuple[int, int],
    *,
    random_state: int | None,
    n_repeats: int = N_REPEATS,
    fraction: float = SUBSAMPLE_FRACTION,
    tolerance: float = DEFAULT_TOLERANCE,
    max_cells: int = SEARCH_MAX_CELLS,
) -> ClusterNumberSearch:
    """Score every k in `bounds` (inclusive) and choose one.

    Each k is scored by the agreement of k-means fits on random subsamples of `z`; the largest k
    within `tolerance` of the best score is chosen.
    """
    from sklearn.cluster import KMeans
    from sklearn.exceptions import ConvergenceWarning

    lo, hi = bounds
    rng = np.random.default_rng(random_state)
    if len(z) > max_cells:
        z = z[np.sort(rng.choice(len(z), max_cells, replace=False))]
    z = np.ascontiguousarray(z, dtype=np.float32)
    n = len(z)
    subsamples = [
        rng.choice(n, max(int(fraction * n), hi + 1), replace=False) for _ in range(n_repeats)
    ]
    seeds = rng.integers(0, 2**31 - 1, size=n_repeats)
    candidates = np.arange(lo, hi + 1)
    scores = np.empty(len(candidates))
    spreads = np.empty(len(candidates))
    # fewer distinct cells than k: the fits agree on the groups there are (sklearn warns per fit)
    with kmeans_thread_limit(), ignoring_warnings(ConvergenceWarning):
        for i, k in enumerate(candidates):
            partitions = [
                KMeans(n_clusters=int(k), n_init=N_INIT, random_state=int(seed))
                .fit(z[rows])
                .predict(z)
                for rows, seed in zip(subsamples, seeds)
            ]
            agreement = [
                _adjusted_rand(partitions[a], partitions[b], int(k))
                for a in range(n_repeats)
                for b in range(a + 1, n_repeats)
            ]
            scores[i], spreads[i] = np.mean(agreement), np.std(agreement)
    return _choose(candidates, scores, spreads, tolerance, n, n_repeats)


def _choose(candidates, scores, spreads, tolerance, n_cells, n_repeats) -> ClusterNumberSearch:
    eligible = np.flatnonzero(scores >= scores.max() - tolerance)
    chosen = int(candidates[eligible.max()])
    others = [i for i in np.argsort(-scores, kind="stable") if candidates[i] != chosen]
    return ClusterNumberSearch(
        n_clusters=candidates,
        score=scores,
        spread=spreads,
        chosen=chosen,
        runner_up=int(candidates[others[0]]) if others else None,
        tolerance=float(tolerance),
        n_cells=int(n_cells),
        n_repeats=int(n_repeats),
    )


def _adjusted_rand(a: np.ndarray, b: np.ndarray, k: int) -> float:
    """Compute the adjusted Rand index of two labelings with codes 0..k-1.

    From their k x k contingency table (one bincount; sklearn's general version sorts and builds
    a sparse matrix).
    """
    table = np.bincount(a * k + b, minlength=k * k).reshape(k, k).astype(np.float64)
    n = len(a)

    def pairs(x):
        return (x * (x - 1) / 2).sum()

    index = pairs(table)
    rows, cols = pairs(table.sum(1)), pairs(table.sum(0))
    expected = rows * cols / (n * (n - 1) / 2)
    maximum = (rows + cols) / 2
    if maximum == expected:
        return 1.0
    return float((index - expected) / (maximum - expected))
