"""The one place that knows which obs / obsm / uns keys a clustering run writes."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from anndata import AnnData

from ._messages import caller_stacklevel


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
    """Drop None (an option not given is absent); turn tuples and numpy scalars into plain types."""
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


def is_run_entry(stored) -> bool:
    """Whether an ``uns`` entry is what a run of either tool (or a mapping) wrote, or its rest.

    anndata.concat keeps of joined runs' ``uns`` what they had in common, which may be their
    ``params`` alone: those name the method, as no scanpy tool's do (sc.tl.leiden's hold its
    resolution, random_state and iterations). The first versions' params did not name it.
    """
    if not isinstance(stored, Mapping):
        return False
    params = stored.get("params")
    method = params.get("method") if isinstance(params, Mapping) else None
    return (isinstance(method, str) and method in ("desc", "scdcc")) or any(
        name in stored for name in ("n_clusters", "history", "timings", "model_version")
    )


def foreign_entries(adata: AnnData, key: str) -> list[str]:
    """Return the entries under `key` that no run of scdeepclust wrote.

    Another tool's or the user's, which a result would replace: uns['spatial'] (a Visium
    section's images), obsm['X_pca'], obs['cell_type'] (the annotation a benchmark scores
    against). An earlier run's entries are not among them, also where its ``uns`` entry is gone
    (anndata.concat's default drops it) but its labels and embedding are there, nor pl.umap's
    layout.
    """
    names = result_keys(key)
    stored = names["uns"] in adata.uns
    if stored and is_run_entry(adata.uns[names["uns"]]):
        return []
    if not stored and names["labels"] in adata.obs and names["embedding"] in adata.obsm:
        return []
    return (
        ([f"uns[{names['uns']!r}]"] if stored else [])
        + [f"obs[{names[part]!r}]" for part in ("labels", "confidence") if names[part] in adata.obs]
        + [
            f"obsm[{names[part]!r}]"
            for part in ("embedding", "probabilities")
            if names[part] in adata.obsm and not _is_umap_cache(adata, names[part])
        ]
    )


def _is_umap_cache(adata: AnnData, name: str) -> bool:
    """Whether ``obsm[name]`` holds the coordinates that pl.umap laid out and keeps."""
    entry = adata.uns.get(name)
    params = entry.get("params") if isinstance(entry, Mapping) else None
    return isinstance(params, Mapping) and "scdeepclust_source" in params


def derived_entries(adata: AnnData, key: str) -> list[tuple[str, str]]:
    """Return ``(part, name)`` of what was computed from the embedding under `key`.

    The kNN graph of ``sc.pp.neighbors(use_rep='X_' + key, key_added='neighbors_' + key)`` (as
    `pl.umap` caches it) and `pl.umap`'s coordinates: a new result under `key` makes them
    stale, and only `pl.umap` would notice.
    """
    embedding = result_keys(key)["embedding"]
    found = []
    neighbors = adata.uns.get(f"neighbors_{key}")
    params = neighbors.get("params") if isinstance(neighbors, Mapping) else None
    if isinstance(params, Mapping) and params.get("use_rep") == embedding:
        found.append(("uns", f"neighbors_{key}"))
        for graph in ("connectivities_key", "distances_key"):
            name = neighbors.get(graph)
            if isinstance(name, str) and name in adata.obsp:
                found.append(("obsp", name))
    if _is_umap_cache(adata, f"X_umap_{key}"):
        found.append(("uns", f"X_umap_{key}"))
        # unless a run under key "umap_<key>" keeps its embedding there
        other_run = f"umap_{key}" in adata.obs and isinstance(adata.uns.get(f"umap_{key}"), Mapping)
        if f"X_umap_{key}" in adata.obsm and not other_run:
            found.append(("obsm", f"X_umap_{key}"))
    return found


def check_result_keys(adata: AnnData, keys: list[str], **inputs: str | None) -> None:
    """Refuse results that would overwrite what the run reads, or that could not be saved.

    Also those that would replace another tool's or the user's entries (`foreign_entries`: an
    ``uns``, ``obs`` or ``obsm`` key that no run wrote).

    Called as the options are checked: `keys` are the runs' `key_added`, `inputs` the run's
    ``label_key``, ``batch_key`` (obs columns), ``use_rep`` and ``protein_key`` (obsm keys).
    """
    where = {"label_key": "obs", "batch_key": "obs", "use_rep": "obsm", "protein_key": "obsm"}
    for key in keys:
        names = result_keys(key)
        written = {
            "obs": {names["labels"], names["confidence"]},
            "obsm": {names["embedding"], names["probabilities"]},
        }
        for option, value in inputs.items():
            if value is not None and value in written[where[option]]:
                raise ValueError(
                    f"key_added {key!r} would write over adata.{where[option]}[{value!r}], "
                    f"which this run reads as {option}; choose another key_added."
                )
        foreign = foreign_entries(adata, key)
        if foreign:
            # the overwrite warning, given at every re-run of a notebook cell, would lose them
            raise ValueError(
                f"key_added {key!r} would replace adata.{', adata.'.join(foreign)}, which no "
                "run of scdeepclust wrote: another tool's results or the user's annotations "
                "(uns['spatial'] holds a Visium section's images, obsm['X_pca'] scanpy's PCA). "
                "Choose another key_added; to replace them on purpose, delete them first: "
                f"`del adata.{', adata.'.join(foreign)}`."
            )
        index_name = adata.obs.index.name
        if index_name is not None and index_name in written["obs"]:
            # anndata refuses to write such a table: the results could never be saved
            raise ValueError(
                f"key_added {key!r} would add the column obs[{index_name!r}], the name of "
                f"adata.obs's index, and .h5ad / .zarr files cannot hold both. Choose another "
                "key_added, or clear the index's name first: `adata.obs.index.name = None`."
            )
        if names["labels"] in adata.var_names:
            # scanpy's plots take such a name for the gene and the column at once, and refuse it
            raise ValueError(
                f"key_added {key!r} is also a gene of adata.var_names: scanpy's plots (and "
                f"sc.get.obs_df) could not tell the clusters from the gene "
                f"(`sc.pl.umap(adata, color={key!r})` refuses it). Choose another key_added."
            )


def warn_if_results_replaced(adata: AnnData, keys: list[str], *, copy: bool) -> None:
    """Warn about the results of earlier runs that these keys will overwrite.

    Not with `copy`: the caller's results stay as they were, and only the copy holds new ones.

    Called once the input has been read and checked, just before training: a call refused for
    its input does not speak of overwriting anything, a warning turned into an error
    (``-W error``) costs no training, and a run with several keys warns once.
    """
    if copy:
        return
    found = [name for key in keys for name in existing_keys(adata, key)]
    derived = [f"{part}[{name!r}]" for key in keys for part, name in derived_entries(adata, key)]
    if found:
        removed = (
            f" The UMAP and kNN graph of the embedding replaced ({', '.join(derived)}) will be "
            "removed."
            if derived
            else ""
        )
        warnings.warn(
            f"adata.{', '.join(found)} already exist(s) and will be overwritten. Pass another "
            f"`key_added` to keep them.{removed}",
            UserWarning,
            stacklevel=caller_stacklevel(),
        )


def write_results(
    adata: AnnData, results: dict[str, ClusteringResult], *, uns: Mapping | None = None
) -> None:
    """Write the results of each key, and `uns`'s entries; called only after training succeeded.

    All or nothing: every value is made first, and an error or interruption while they are
    assigned puts back what was there. Keys that exist are overwritten:
    `warn_if_results_replaced` warned about them before training.
    """
    entries = [entry for key, result in results.items() for entry in _entries(key, result)]
    entries += [("uns", name, value) for name, value in (uns or {}).items()]
    # computed from the embeddings replaced: removed with them, not left to be read as theirs
    entries += [
        (part, name, _ABSENT) for key in results for part, name in derived_entries(adata, key)
    ]
    # anndata.experimental.read_lazy's obs cannot drop a column: kept whole, to put back
    lazy_obs = None if isinstance(adata.obs, pd.DataFrame) else adata.obs.copy()
    earlier = []
    for part, name, _ in entries:
        store = getattr(adata, part)
        value = store[name] if name in store else _ABSENT
        if adata.is_view and hasattr(value, "copy"):
            # a view's arrays are views of its parent's: put back as arrays of their own, since
            # the first write makes the view actual
            value = value.copy()
        earlier.append((part, name, value))
    try:
        for part, name, value in entries:
            # looked up each time: the first write makes a view actual, with new tables
            if value is _ABSENT:
                del getattr(adata, part)[name]
            else:
                getattr(adata, part)[name] = value
    except BaseException:
        for part, name, value in reversed(earlier):
            if part == "obs" and lazy_obs is not None:
                continue
            store = getattr(adata, part)
            if value is not _ABSENT:
                store[name] = value
            elif name in store:
                del store[name]
        if lazy_obs is not None:
            adata.obs = lazy_obs
        raise


_ABSENT = object()


def label_categories(labels: np.ndarray) -> list[str]:
    """Return the categories of ``obs[key]`` for these cluster numbers: those holding cells."""
    return [str(i) for i in np.unique(labels)]


def run_environment() -> dict:
    """Return what a run's floats depend on besides its settings and data.

    The versions of the packages that computed it, and torch's thread count, with which float
    sums, so the embedding's last digits (and rarely a label), can change.
    """
    import platform
    from importlib.metadata import PackageNotFoundError, version

    import torch

    from ._version import __version__

    def installed(name: str) -> str:
        # not scanpy.__version__ / anndata.__version__: deprecated, each read warns
        try:
            return version(name)
        except PackageNotFoundError:
            return "unknown"

    return {
        "scdeepclust": __version__,
        "torch": str(torch.__version__),  # a TorchVersion, which h5ad cannot hold
        "scanpy": installed("scanpy"),
        "anndata": installed("anndata"),
        "numpy": str(np.__version__),
        "python": platform.python_version(),
        "torch_threads": torch.get_num_threads(),
    }


def _entries(key: str, result: ClusteringResult) -> list[tuple]:
    """("obs" / "obsm" / "uns", name, value) of one key's results."""
    keys = result_keys(key)
    # Categories are the clusters that hold cells, named by their column of the soft
    # assignments: an empty category breaks scanpy steps that follow (rank_genes_groups,
    # dendrogram).
    populated = np.unique(result.labels)
    codes = np.searchsorted(populated, result.labels)
    categories = label_categories(result.labels)
    confidence = result.confidence
    if confidence is None:
        confidence = assigned_soft_assignment(result.probabilities, result.labels)
    uns = _h5ad_safe(
        {
            "params": result.params,
            "n_clusters": len(populated),
            "history": result.history,
            "timings": result.timings,
            "environment": run_environment(),
            **result.info,
        }
    )
    return [
        ("obs", keys["labels"], pd.Categorical.from_codes(codes, categories=categories)),
        ("obs", keys["confidence"], confidence),
        ("obsm", keys["embedding"], result.embedding),
        ("obsm", keys["probabilities"], result.probabilities),
        ("uns", keys["uns"], uns),
    ]
