"""The one place that knows which obs / obsm / uns keys a clustering run writes."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from anndata import AnnData
from scanpy import logging as logg


@dataclass
class ClusteringResult:
    labels: np.ndarray  # int, (n_obs,)
    embedding: np.ndarray  # float32, (n_obs, latent_dim)
    probabilities: np.ndarray  # float32, (n_obs, n_clusters)
    params: dict
    history: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)


def result_keys(key: str) -> dict[str, str]:
    return {
        "labels": key,
        "confidence": f"{key}_confidence",
        "embedding": f"X_{key}",
        "probabilities": f"{key}_probs",
        "uns": key,
    }


def _h5ad_safe(value):
    """Drop None (h5ad cannot store it) and turn tuples and numpy scalars into plain types."""
    if isinstance(value, dict):
        return {str(k): _h5ad_safe(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return np.asarray(value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def write_results(adata: AnnData, key: str, result: ClusteringResult) -> None:
    """Write everything in one step; called only after training succeeded."""
    keys = result_keys(key)
    n_clusters = result.probabilities.shape[1]
    categories = [str(i) for i in range(n_clusters)]
    for obs_key in (keys["labels"], keys["confidence"]):
        if obs_key in adata.obs:
            logg.warning(f"adata.obs[{obs_key!r}] already exists and is overwritten.")
    adata.obs[keys["labels"]] = pd.Categorical.from_codes(result.labels, categories=categories)
    adata.obs[keys["confidence"]] = result.probabilities.max(axis=1)
    adata.obsm[keys["embedding"]] = result.embedding
    adata.obsm[keys["probabilities"]] = result.probabilities
    adata.uns[keys["uns"]] = _h5ad_safe(
        {
            "params": result.params,
            "n_clusters": int(len(np.unique(result.labels))),
            "history": result.history,
            "timings": result.timings,
            **result.info,
        }
    )
