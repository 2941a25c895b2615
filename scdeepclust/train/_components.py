"""Principal components of the network's clean input, streamed from the feeder.

Shared by what looks at the data beside the network: the label prior's classifier
(`_label_prior.py`) and the groups of density-balanced pretraining (`_balance.py`).
"""

from __future__ import annotations

import numpy as np
import torch

from ..data import CellFeeder, dense_chunk_rows, stream_outputs
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
# Above this many genes the covariance (genes x genes, float64) is not formed: 300 cells of
# 10,000 genes spent 51 of 80 s of a scDCC run on it, and 54 of 57 s of DESC's (0.8 GB; 3.2 GB
# at 20,000 genes). The leading directions come from subspace iteration instead, one pass over
# the sample per iteration, holding genes x (components + oversampling) numbers: there the
# first components matched the exact ones (|correlation| 1.000) and the 50 held 99% of their
# variance (97% with 6 iterations and 10 extra directions; the rest of that spectrum is noise
# of nearly equal variance). Up to it, the exact decomposition (2,000 genes: 0.4 s).
DIRECT_MAX_GENES = 4096
SUBSPACE_OVERSAMPLING = 20
SUBSPACE_ITERATIONS = 10
SUBSPACE_START_SEED = 0


def input_principal_components(
    feeder: CellFeeder, n_components: int = N_COMPONENTS, *, random_state: int | None
) -> np.ndarray | None:
    """Return the leading principal components of the feeder's clean input, per cell.

    The input is read clipped to [-INPUT_CLIP, INPUT_CLIP], whatever `max_value` the network
    reads it with.

    The covariance comes from a random sample of at most `COVARIANCE_MAX_CELLS` cells (summed
    over all processes when sharded); every cell is projected in chunks, so the input is never
    held dense as a whole. Above `DIRECT_MAX_GENES` genes its leading eigenvectors are found
    by subspace iteration on the sample, without forming it. Sharded: all processes' rows on
    rank 0, `None` on the others.
    """
    n_components = min(n_components, feeder.n_vars)
    rng = np.random.default_rng(random_state)
    share = COVARIANCE_MAX_CELLS * feeder.n_obs // max(feeder.n_total, 1)
    rows = np.arange(feeder.n_obs)
    if feeder.n_obs > share:
        rows = np.sort(rng.choice(feeder.n_obs, max(share, 1), replace=False))

    def clipped(batch):
        return batch.x.clamp(-INPUT_CLIP, INPUT_CLIP)

    chunk_rows = dense_chunk_rows(feeder.n_vars)

    def sample():
        for start in range(0, len(rows), chunk_rows):
            yield clipped(feeder.batch(rows[start : start + chunk_rows])).double()

    count = all_reduce_sum(torch.tensor([float(len(rows))], device=feeder.device), feeder)
    if feeder.n_vars > DIRECT_MAX_GENES:
        mean, vectors = _leading_eigenvectors_by_iteration(sample, count, feeder, n_components)
    else:
        total = torch.zeros(feeder.n_vars, dtype=torch.float64, device=feeder.device)
        products = torch.zeros(
            (feeder.n_vars, feeder.n_vars), dtype=torch.float64, device=feeder.device
        )
        for x in sample():
            total += x.sum(0)
            products += x.T @ x
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


def _leading_eigenvectors_by_iteration(
    sample, count: torch.Tensor, feeder: CellFeeder, n_components: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the sample's mean and its covariance's leading eigenvectors, largest first.

    Subspace iteration with oversampling (Halko, Martinsson and Tropp 2011): the covariance
    is applied to a basis in one pass over the `sample` chunks (summed over processes), the
    basis re-orthonormalised after each pass, and the eigenvectors read from the covariance
    projected on the last basis (Rayleigh-Ritz). The mean is summed in the first pass.
    """
    n_vars, device = feeder.n_vars, feeder.device
    width = min(n_components + SUBSPACE_OVERSAMPLING, n_vars)
    mean = None

    def covariance_times(basis: torch.Tensor) -> torch.Tensor:
        nonlocal mean
        applied = torch.zeros((n_vars, width), dtype=torch.float64, device=device)
        total = torch.zeros(n_vars, dtype=torch.float64, device=device)
        for x in sample():
            applied += x.T @ (x @ basis)
            if mean is None:
                total += x.sum(0)
        if mean is None:
            mean = all_reduce_sum(total, feeder) / count
        return all_reduce_sum(applied, feeder) / count - torch.outer(mean, mean @ basis)

    # The same start on every process and device: drawn by numpy from a generator of its own
    # (the sample's generator has drawn as many rows as each process holds, which may differ).
    start = np.random.default_rng(SUBSPACE_START_SEED).standard_normal((n_vars, width))
    start = torch.from_numpy(start).to(device)
    basis = torch.linalg.qr(start).Q
    for _ in range(SUBSPACE_ITERATIONS):
        basis = torch.linalg.qr(covariance_times(basis)).Q
    projected = basis.T @ covariance_times(basis)
    _, rotation = torch.linalg.eigh((projected + projected.T) / 2)  # ascending eigenvalues
    return mean, basis @ rotation[:, -n_components:].flip(1)
