"""The one place that knows which obs / obsm / uns keys a clustering run writes."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from anndata import AnnData


@dataclass
class ClusteringResult:
    labels: np.ndarray  # int, (n_obs,)
    embedding: np.ndarray  # float32, (n_obs, latent_dim)
    probabilities: np.ndarray  # float32, (n_obs, n_clusters)
    params: dict
    # calibrated (train/_confidence.py), or the refinement's probability for the cells it moved;
    # None: the soft assignment to the reported cluster
    confidence: np.ndarray | None = None
    history: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)
    # What a trained model is built from (not written to the AnnData): "network" (the torch
    # module) and "centroids" (n_clusters x latent_dim).
    trained: dict = field(default_factory=dict)


def assigned_soft_assignment(probabilities: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Each cell's soft assignment to its reported cluster."""
    return np.take_along_axis(probabilities, labels[:, None], axis=1)[:, 0]


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


def existing_keys(adata: AnnData, key: str) -> list[str]:
    """Return the keys of a result under `key` that `adata` already has.

    For example ``["obs['scdcc']"]``.
    """
    keys = result_keys(key)
    found = [f"obs[{keys[k]!r}]" for k in ("labels", "confidence") if keys[k] in adata.obs]
    found += [f"obsm[{keys[k]!r}]" for k in ("embedding", "probabilities") if keys[k] in adata.obsm]
    found += [f"uns[{keys['uns']!r}]"] if keys["uns"] in adata.uns else []
    return found


def write_results(adata: AnnData, key: str, result: ClusteringResult) -> None:
    """Write everything in one step; called only after training succeeded.

    Keys that exist are overwritten with a warning.
    """
    keys = result_keys(key)
    # Categories are the clusters that hold cells, named by their column of the soft
    # assignments: an empty category breaks scanpy steps that follow (rank_genes_groups,
    # dendrogram).
    populated = np.unique(result.labels)
    codes = np.searchsorted(populated, result.labels)
    categories = [str(i) for i in populated]
    if found := existing_keys(adata, key):
        warnings.warn(
            f"adata.{', '.join(found)} already exist(s) and are overwritten. Pass another "
            "`key_added` to keep them.",
            UserWarning,
            stacklevel=3,
        )
    adata.obs[keys["labels"]] = pd.Categorical.from_codes(codes, categories=categories)
    confidence = result.confidence
    if confidence is None:
        confidence = assigned_soft_assignment(result.probabilities, result.labels)
    adata.obs[keys["confidence"]] = confidence
    adata.obsm[keys["embedding"]] = result.embedding
    adata.obsm[keys["probabilities"]] = result.probabilities
    adata.uns[keys["uns"]] = _h5ad_safe(
        {
            "params": result.params,
            "n_clusters": len(populated),
            "history": result.history,
            "timings": result.timings,
            **result.info,
        }
    )
