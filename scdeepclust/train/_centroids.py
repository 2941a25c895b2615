"""Initial centroids in the latent space: k-means for a given number of clusters, or Leiden on a
kNN graph when the number is not known."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd


def kmeans_labels(
    z: np.ndarray, n_clusters: int, *, random_state: int | None, n_init: int = 20
) -> np.ndarray:
    from sklearn.cluster import KMeans

    km = KMeans(n_clusters=n_clusters, n_init=n_init, random_state=random_state)
    return km.fit_predict(z).astype(np.int64)


def leiden_labels(
    z: np.ndarray, *, resolution: float, n_neighbors: int, random_state: int | None
) -> np.ndarray:
    import anndata as ad
    import scanpy as sc

    tmp = ad.AnnData(obsm={"X_latent": z}, obs=pd.DataFrame(index=np.arange(len(z)).astype(str)))
    sc.pp.neighbors(
        tmp, n_neighbors=n_neighbors, use_rep="X_latent", random_state=random_state or 0
    )
    with warnings.catch_warnings():
        # scanpy announces a future change of the default flavor; we choose it explicitly.
        warnings.simplefilter("ignore", FutureWarning)
        sc.tl.leiden(
            tmp,
            resolution=resolution,
            random_state=random_state or 0,
            flavor="leidenalg",
            key_added="leiden",
        )
    return tmp.obs["leiden"].astype(int).to_numpy()


def centroids_from_labels(z: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Mean of z per label; labels must be 0..k-1."""
    k = int(labels.max()) + 1
    sums = np.zeros((k, z.shape[1]), dtype=np.float64)
    np.add.at(sums, labels, z)
    counts = np.bincount(labels, minlength=k)[:, None]
    return (sums / np.maximum(counts, 1)).astype(np.float32)


def initial_centroids(
    z: np.ndarray,
    *,
    n_clusters: int | None,
    resolution: float,
    n_neighbors: int,
    random_state: int | None,
) -> tuple[np.ndarray, np.ndarray, str]:
    """(centroids, initial labels, method name)."""
    if n_clusters is not None:
        labels = kmeans_labels(z, n_clusters, random_state=random_state)
        method = "kmeans"
    else:
        labels = leiden_labels(
            z, resolution=resolution, n_neighbors=n_neighbors, random_state=random_state
        )
        method = "leiden"
        if labels.max() < 1:
            raise ValueError(
                f"Leiden at resolution={resolution} found a single cluster in the latent space. "
                "Use a larger `resolution`, or give `n_clusters`."
            )
    return centroids_from_labels(z, labels), labels, method
