"""Agreement of a clustering with a known labelling (used by `pl.compare` and the CLI)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass
class Agreement:
    ari: float
    nmi: float
    n_cells: int  # cells with a known label (the others are left out)


def agreement(clusters, truth) -> Agreement:
    """Compute ARI and NMI (scikit-learn) of `clusters` against `truth`.

    Only the cells whose `truth` is known (not missing) are scored.
    """
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    clusters = pd.Series(np.asarray(clusters, dtype=object))
    truth = pd.Series(np.asarray(truth, dtype=object))
    known = (truth.notna() & clusters.notna()).to_numpy()
    if not known.any():
        raise ValueError("No cell has both a cluster and a known label to compare.")
    a = clusters[known].astype(str).to_numpy()
    b = truth[known].astype(str).to_numpy()
    return Agreement(
        ari=float(adjusted_rand_score(b, a)),
        nmi=float(normalized_mutual_info_score(b, a)),
        n_cells=int(known.sum()),
    )
