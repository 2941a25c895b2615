"""Principal components of the network's clean input, streamed from the feeder.

Shared by what looks at the data beside the network: the label prior's classifier
(`_label_prior.py`) and the groups of density-balanced pretraining (`_balance.py`).
"""

from __future__ import annotations

import numpy as np
import torch

from ..data import CellFeeder, stream_outputs
from ._distributed import all_reduce_sum, gather_rows

N_COMPONENTS = 50
# The covariance of the input is estimated on at most this many cells (a random sample): its
# leading directions are stable long before that, and the cost stays bounded at any size.
COVARIANCE_MAX_CELLS = 50_000
# The components read the input clipped to [-10, 10], as scanpy's PCA workflow does
# (`sc.pp.scale(max_value=10)`): a gene expressed in a handful of cells has z-scores up to
# sqrt(n_cells), and unclipped such genes lead the components. The label prior's logistic
# regression on 10% of the labels, on scanpy's 50 PCs without / with the clip (medians of seeds
# 0-2, benchmarks/supervised_ceiling.py --max-value none / 10): worm neuron 0.840 / 0.866, CITE
# CBMC 0.799 / 0.811, 10X PBMC 0.826 / 0.821, mouse bladder 0.771 / 0.765.
INPUT_CLIP = 10.0
_CHUNK_ROWS = 4096


def input_principal_components(
    feeder: CellFeeder, n_components: int = N_COMPONENTS, *, random_state: int | None
) -> np.ndarray | None:
    """Return the leading principal components of the feeder's clean input, per cell.

    The input is read clipped to [-INPUT_CLIP, INPUT_CLIP], whatever `max_value` the network
    reads it with.

    The covariance comes from a random sample of at most `COVARIANCE_MAX_CELLS` cells (summed
    over all processes when sharded); every cell is projected in chunks, so the input is never
    held dense as a whole. Sharded: all processes' rows on rank 0, `None` on the others.
    """
    n_components = min(n_components, feeder.n_vars)
    rng = np.random.default_rng(random_state)
    share = COVARIANCE_MAX_CELLS * feeder.n_obs // max(feeder.n_total, 1)
    rows = np.arange(feeder.n_obs)
    if feeder.n_obs > share:
        rows = np.sort(rng.choice(feeder.n_obs, max(share, 1), replace=False))
    total = torch.zeros(feeder.n_vars, dtype=torch.float64, device=feeder.device)
    products = torch.zeros(
        (feeder.n_vars, feeder.n_vars), dtype=torch.float64, device=feeder.device
    )

    def clipped(batch):
        return batch.x.clamp(-INPUT_CLIP, INPUT_CLIP)

    for start in range(0, len(rows), _CHUNK_ROWS):
        x = clipped(feeder.batch(rows[start : start + _CHUNK_ROWS])).double()
        total += x.sum(0)
        products += x.T @ x
    count = all_reduce_sum(torch.tensor([float(len(rows))], device=feeder.device), feeder)
    total, products = all_reduce_sum(total, feeder), all_reduce_sum(products, feeder)
    mean = total / count
    covariance = products / count - torch.outer(mean, mean)
    vectors = _leading_eigenvectors(covariance, n_components)
    # The sign of an eigenvector is arbitrary: fix it so results do not depend on the solver.
    largest = vectors.abs().argmax(0)
    columns = torch.arange(n_components, device=vectors.device)
    vectors = vectors * torch.sign(vectors[largest, columns])
    mean32, vectors32 = mean.float(), vectors.float()
    components = stream_outputs(
        feeder, lambda b: {"pc": (clipped(b) - mean32) @ vectors32}, {"pc": n_components}
    )["pc"]
    return gather_rows(components, feeder)


def _leading_eigenvectors(covariance: torch.Tensor, n_components: int) -> torch.Tensor:
    """Return the eigenvectors of the `n_components` largest eigenvalues, largest first."""
    if covariance.device.type == "cpu":
        from scipy.linalg import eigh

        # Only the leading eigenpairs: half the time of a full decomposition (0.4 of 0.8 s
        # for 2,000 genes), the same vectors.
        n = covariance.shape[0]
        _, vectors = eigh(covariance.numpy(), subset_by_index=[n - n_components, n - 1])
        return torch.from_numpy(vectors[:, ::-1].copy())
    _, vectors = torch.linalg.eigh(covariance)  # ascending eigenvalues
    return vectors[:, -n_components:].flip(1)
