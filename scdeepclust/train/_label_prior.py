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

import numpy as np

from .._process import ignoring_warnings
from ._confidence import NeighbourView

# The regularisation of `benchmarks/supervised_ceiling.py`'s logistic regression, whose
# accuracy is the target this prior is for.
CLASSIFIER_C = 0.1
# Share of a cell's own class probabilities in the smoothed prior; the rest is the mean of its
# neighbours'.
OWN_SHARE = 0.5
PRIOR_NEIGHBOURS = 15
PRIOR_FLOOR = 1e-6
# The floor raised to this power stays a normal float32 (1e-36 > 1.2e-38).
MAX_LABEL_PRIOR = 6.0


def classifier_prior(
    features: np.ndarray,
    known_classes: np.ndarray,
    n_clusters: int,
    views: list[NeighbourView],
    *,
    random_state: int | None,
    regularisation: float = CLASSIFIER_C,
) -> np.ndarray | None:
    """Class probabilities of every cell from the labelled ones, smoothed over neighbours.

    `known_classes`: class code per cell (0 .. n_classes - 1; -1 unlabelled), cluster i standing
    for class i. Returns (n_obs, n_clusters) float32 rows summing to 1, or `None` when fewer
    than two classes are known (nothing to tell apart). `regularisation` is the logistic
    regression's C (smaller: stronger).
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    known = known_classes >= 0
    n_classes = int(known_classes.max()) + 1 if known.any() else 0
    # counted, not read from the largest code: a clustering stage that emptied clusters 0 and 1
    # leaves class 2 alone
    if len(np.unique(known_classes[known])) < 2 or n_classes > n_clusters:
        return None
    # scikit-learn reads many classes among few cells as "a regression problem"; here they are
    # clusters, however many the caller asked for
    with (
        ignoring_warnings(ConvergenceWarning),
        ignoring_warnings(UserWarning, message="The number of unique classes is greater"),
    ):
        classifier = LogisticRegression(
            C=regularisation,
            max_iter=2000,
            random_state=random_state,
        )
        classifier.fit(features[known], known_classes[known])
    probabilities = np.zeros((len(features), n_classes), np.float32)
    probabilities[:, classifier.classes_] = classifier.predict_proba(features)
    neighbour_mean = np.zeros_like(probabilities)
    n_views = 0
    for view in views:
        if view.neighbours.shape[1]:
            neighbour_mean += view.neighbour_mean(probabilities)
            n_views += 1
    if n_views:
        probabilities = OWN_SHARE * probabilities + (1 - OWN_SHARE) * neighbour_mean / n_views
    prior = np.full((len(features), n_clusters), 1.0 / n_classes, np.float32)
    prior[:, :n_classes] = probabilities
    return prior / prior.sum(1, keepdims=True)
