"""What the labelled cells say about the others: a classifier's prior for DEC's target.

With known labels for some cells, DEC's self-training sharpens the clusters of the latent space,
and where those disagree with the classes (types of unequal size, or types the autoencoder does
not separate) the unlabelled cells follow the clusters, not the labels: with 10% of the cells
labelled, scDCC ended below a logistic regression trained on the same labels
(`benchmarks/supervised_ceiling.py`). The prior puts the labels' evidence into the target: a
logistic regression on the principal components of the network's input, trained on the
labelled cells, gives every cell class probabilities; these are averaged with those of the
cell's nearest neighbours (in the components and in the pretrained embedding), so that the
structure of the unlabelled cells smooths the classifier; and DEC's target becomes
``p ∝ q² / f × prior^weight``. Clusters beyond the known classes get the uniform level
1 / n_classes, so the prior neither favours nor rules them out for a cell the classifier cannot
place.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from ..data import CellFeeder, stream_outputs
from ._confidence import NeighbourView
from ._distributed import all_reduce_sum, gather_rows

N_COMPONENTS = 50
# The covariance of the input is estimated on at most this many cells (a random sample): its
# leading directions are stable long before that, and the cost stays bounded at any size.
COVARIANCE_MAX_CELLS = 50_000
# The regularisation of `benchmarks/supervised_ceiling.py`'s logistic regression, whose
# accuracy is the target this prior is for.
CLASSIFIER_C = 0.1
# Share of a cell's own class probabilities in the smoothed prior; the rest is the mean of its
# neighbours'.
OWN_SHARE = 0.5
PRIOR_NEIGHBOURS = 15
PRIOR_FLOOR = 1e-6
_CHUNK_ROWS = 4096


def input_principal_components(
    feeder: CellFeeder, n_components: int = N_COMPONENTS, *, random_state: int | None
) -> np.ndarray | None:
    """Return the leading principal components of the feeder's clean input, per cell.

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
    for start in range(0, len(rows), _CHUNK_ROWS):
        x = feeder.batch(rows[start : start + _CHUNK_ROWS]).x.double()
        total += x.sum(0)
        products += x.T @ x
    count = all_reduce_sum(torch.tensor([float(len(rows))], device=feeder.device), feeder)
    total, products = all_reduce_sum(total, feeder), all_reduce_sum(products, feeder)
    mean = total / count
    covariance = products / count - torch.outer(mean, mean)
    _, vectors = torch.linalg.eigh(covariance)  # ascending eigenvalues
    vectors = vectors[:, -n_components:].flip(1)
    # The sign of an eigenvector is arbitrary: fix it so results do not depend on the solver.
    largest = vectors.abs().argmax(0)
    vectors = vectors * torch.sign(vectors[largest, torch.arange(n_components)])
    mean32, vectors32 = mean.float(), vectors.float()
    components = stream_outputs(
        feeder, lambda b: {"pc": (b.x - mean32) @ vectors32}, {"pc": n_components}
    )["pc"]
    return gather_rows(components, feeder)


def classifier_prior(
    features: np.ndarray,
    known_classes: np.ndarray,
    n_clusters: int,
    views: list[NeighbourView],
    *,
    random_state: int | None,
) -> np.ndarray | None:
    """Class probabilities of every cell from the labelled ones, smoothed over neighbours.

    `known_classes`: class code per cell (0 .. n_classes - 1; -1 unlabelled), cluster i standing
    for class i. Returns (n_obs, n_clusters) float32 rows summing to 1, or `None` when fewer
    than two classes are known (nothing to tell apart).
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    known = known_classes >= 0
    n_classes = int(known_classes.max()) + 1 if known.any() else 0
    if n_classes < 2 or n_classes > n_clusters:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        classifier = LogisticRegression(C=CLASSIFIER_C, max_iter=2000, random_state=random_state)
        classifier.fit(features[known], known_classes[known])
    probabilities = np.zeros((len(features), n_classes), np.float32)
    probabilities[:, classifier.classes_] = classifier.predict_proba(features)
    neighbour_mean = np.zeros_like(probabilities)
    n_views = 0
    for view in views:
        if view.neighbours.shape[1]:
            neighbour_mean += probabilities[view.reference][view.neighbours].mean(1)
            n_views += 1
    if n_views:
        probabilities = OWN_SHARE * probabilities + (1 - OWN_SHARE) * neighbour_mean / n_views
    prior = np.full((len(features), n_clusters), 1.0 / n_classes, np.float32)
    prior[:, :n_classes] = probabilities
    return prior / prior.sum(1, keepdims=True)
