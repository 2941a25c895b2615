"""Sampling weights that even out how often dense and sparse regions of the data are seen.

An autoencoder spends its capacity where its training cells are: drawn uniformly, the most
abundant cell type dominates the reconstruction loss, and the latent space spreads that type out
over a large volume while small types are squeezed together. k-means and the DEC stage then split
the large type and merge small ones. Drawing the cells of crowded regions less often evens this
out. Crowding is measured without the network, on a fixed partition of the input into many small
groups (k-means on its principal components, `_components.py`): a cell in a group of n cells is
drawn with probability proportional to n ** -power.

The same crowding weights (`crowding_weights`, on any points) let the k-means start of the
clustering stage count crowded regions of the latent space less (`_centroids.py`).
"""

from __future__ import annotations

import numpy as np

from .._threads import kmeans_thread_limit
from ..data import CellFeeder
from ._components import input_principal_components

# Enough groups to resolve regions much smaller than a typical cell type, few enough that each
# holds many cells on data of a few thousand cells (measured with these on the shared datasets).
N_GROUPS = 50
# Fewer groups on small data: the sizes of groups of a few cells are noise.
MIN_CELLS_PER_GROUP = 50
# k-means runs on at most this many cells; the others join their nearest group.
MAX_FIT_CELLS = 20_000


def density_balanced_weights(
    feeder: CellFeeder,
    power: float,
    *,
    random_state: int | None,
    n_groups: int = N_GROUPS,
    max_fit_cells: int = MAX_FIT_CELLS,
    components: np.ndarray | None = None,
) -> np.ndarray | None:
    """Return the probability of drawing each of the feeder's cells, or `None` for uniform draws.

    The cells are partitioned into `n_groups` groups by k-means on the first principal components of
    the network input (`components` when the caller has them already, else
    `input_principal_components`; k-means fitted on at most `max_fit_cells` cells, the others join
    their nearest group); a cell in a group of n cells gets weight n ** -`power`, normalised to sum
    to 1. `power` 0 (or data too small to split) gives `None`, as does a sharded feeder: in
    data-parallel training two processes with weights (each its share's, or all computing the whole
    data's alike) did not reproduce one process's clusters on the test data of
    tests/test_distributed.py, which is not understood yet, so the draws stay uniform there. They
    also stay uniform for data with batches (`batch_codes`): the groups would follow batches as well
    as cell types, and the weights were measured on data without batches only.
    """
    if power < 0:
        raise ValueError(f"power must be >= 0, got {power}.")
    # before the principal components, which cost a pass over the data
    if not draws_read_components(feeder, power, n_groups):
        return None
    if components is None:
        components = input_principal_components(feeder, random_state=random_state)
    weights = crowding_weights(
        components, power, random_state=random_state, n_groups=n_groups, max_fit_cells=max_fit_cells
    )
    return None if weights is None else weights / weights.sum()


def draws_read_components(feeder: CellFeeder, power: float, n_groups: int = N_GROUPS) -> bool:
    """Whether `density_balanced_weights` reads the input's principal components (else uniform)."""
    if feeder.distributed or feeder.batch_codes is not None:
        return False
    return power > 0 and _n_crowding_groups(feeder.n_obs, n_groups) >= 2


def crowding_weights(
    points: np.ndarray,
    power: float,
    *,
    random_state: int | None,
    n_groups: int = N_GROUPS,
    max_fit_cells: int = MAX_FIT_CELLS,
) -> np.ndarray | None:
    """Return n ** -`power` for each row of `points`, n the size of its group; `None` if uniform.

    The groups: k-means with `n_groups` clusters (fewer on small data, see
    `MIN_CELLS_PER_GROUP`) fitted on at most `max_fit_cells` rows, the others joining their
    nearest group.
    """
    n_obs = len(points)
    n_groups = _n_crowding_groups(n_obs, n_groups)
    if power == 0 or n_groups < 2:
        return None
    from sklearn.cluster import KMeans

    rng = np.random.default_rng(random_state)
    fit_rows = np.sort(rng.choice(n_obs, min(n_obs, max_fit_cells), replace=False))
    with kmeans_thread_limit():
        kmeans = KMeans(n_groups, n_init=3, random_state=random_state).fit(points[fit_rows])
        if len(fit_rows) == n_obs:  # fitted on every row (in order): their groups are known
            groups = kmeans.labels_.astype(np.int64)
        else:
            groups = kmeans.predict(points).astype(np.int64)
    sizes = np.bincount(groups, minlength=n_groups).astype(np.float64)
    weights = sizes[groups] ** -power
    if not (np.all(np.isfinite(weights)) and weights.max() > 0):
        # a large power underflows every weight to 0: the same ratios, from the smallest group
        weights = np.exp(-power * (np.log(sizes[groups]) - np.log(sizes[sizes > 0].min())))
    return weights


def _n_crowding_groups(n_obs: int, n_groups: int) -> int:
    """Return how many crowding groups `n_obs` points get: `n_groups`, fewer on small data."""
    return min(n_groups, n_obs // MIN_CELLS_PER_GROUP)
