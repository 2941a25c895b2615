"""Checks shared by the public tools, all done before any training.

A bad input thus fails fast, with a message that says what to change, and the caller's AnnData
is never touched.
"""

from __future__ import annotations

import copy
import math
import numbers
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import numpy as np
import pandas as pd
from anndata import AnnData

from .._messages import PROTEINS_FROM_ANOTHER_ANNDATA, caller_stacklevel
from .._missing import NO_LABEL_AS_TEXT, listed, made_missing, text_counts
from ..pp._batches import BatchCovariate
from ..pp._input import (
    GeneMask,
    MatrixSummary,
    check_finite,
    checked_counts,
    input_matrix,
    scan_matrix,
    warn_if_not_like_raw_counts,
)
from ..pp._input import (
    check_bools as check_bools,  # the tools check with it too
)
from ..pp._input import (
    check_names as check_names,
)
from ..train._centroids import check_init as check_init  # the engine checks with it too
from ..train._checkpoint import TrainingCheckpoint, array_digest, open_checkpoint, run_digest
from ..train._distributed import check_same_run, check_shards_mix_batches
from ..train._n_clusters import (
    MIN_CELLS_PER_CANDIDATE_CLUSTER,
    SEARCH_MAX_CELLS,
    largest_upper_bound,
)


def check_int(name: str, value, *, minimum: int, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    whole = isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral)
    ok = ok or (whole and float(value).is_integer())  # 3.0, numpy's float32(3.0) too
    if not ok or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")


def as_int(name: str, value, *, minimum: int, allow_none: bool = False) -> int | None:
    """Check an integer option (whole-number floats allowed) and return it as an int."""
    check_int(name, value, minimum=minimum, allow_none=allow_none)
    return None if value is None else int(value)


def check_positive(name: str, value, *, allow_zero: bool = False) -> None:
    """Check a finite number > 0 (>= 0 with `allow_zero`)."""
    if not (_finite_number(value) and (value >= 0 if allow_zero else value > 0)):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}.")


def check_between(name: str, value, low: float, high: float, *, high_open: bool = False) -> None:
    """Check a number in [low, high] ([low, high) with `high_open`)."""
    ok = _finite_number(value) and low <= value and (value < high if high_open else value <= high)
    if not ok:
        closing = ")" if high_open else "]"
        raise ValueError(f"{name} must be a number in [{low:g}, {high:g}{closing}, got {value!r}.")


def as_layer_sizes(name: str, sizes, *, allow_empty: bool) -> tuple[int, ...]:
    """Check a sequence of layer widths (integers >= 1) and return it as a tuple of ints."""
    if isinstance(sizes, str) or not isinstance(sizes, Sequence | np.ndarray):
        raise ValueError(
            f"{name} must be a sequence of layer sizes, e.g. (256, 64); got {sizes!r}."
        )
    if not len(sizes) and not allow_empty:
        raise ValueError(f"{name} must name at least one layer size; got {tuple(sizes)!r}.")
    for size in sizes:
        check_int(f"each size in {name}", size, minimum=1)
    return tuple(int(size) for size in sizes)


def check_random_state(random_state) -> None:
    """None or an integer in 0..2**32 - 1: what numpy's and scikit-learn's seeding take."""
    ok = isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool)
    if random_state is not None and not (ok and 0 <= random_state < 2**32):
        raise ValueError(
            f"random_state must be an integer in 0..2**32 - 1, a numpy RandomState or Generator "
            f"(or None), got {random_state!r}."
        )


def resolved_random_state(random_state, *, distributed: bool, checkpoint_dir) -> int:
    """Check `random_state`; `None` draws a seed, which the results' params then record.

    Every random choice of the run (weights, minibatches, noise, k-means, Leiden) follows the
    one seed, rather than torch's following 0 and numpy's nothing. A numpy generator, which
    scanpy's functions take, gives the seed by one draw, made on a copy: the caller's generator
    advances by that draw only once the results are written (`advance_generator`), so a refused
    or failed call leaves it where it was.
    """
    generator = isinstance(random_state, np.random.RandomState | np.random.Generator)
    if not generator:
        check_random_state(random_state)
    if random_state is not None and not generator:
        return int(random_state)
    if distributed or checkpoint_dir is not None:
        why = (
            "the processes of a distributed run must share one"
            if distributed
            else "a checkpoint is resumed only by a run with the seed that wrote it"
        )
        given = "a numpy generator gives" if generator else "random_state=None draws"
        raise ValueError(
            f"{given} a new seed at every call, but {why}: pass an integer random_state."
        )
    if generator:
        return _draw_seed(copy.deepcopy(random_state))
    from scanpy import logging as logg

    seed = int(np.random.SeedSequence().entropy % 2**32)
    logg.info(f"    random_state=None: drew the seed {seed}")
    return seed


def _draw_seed(generator: np.random.RandomState | np.random.Generator) -> int:
    if isinstance(generator, np.random.RandomState):
        return int(generator.randint(0, 2**32, dtype=np.int64))
    return int(generator.integers(0, 2**32))


def advance_generator(random_state) -> None:
    """Spend on a caller's numpy generator the draw that gave a successful run its seed."""
    if isinstance(random_state, np.random.RandomState | np.random.Generator):
        _draw_seed(random_state)


def check_update_interval(update_interval: float | None) -> None:
    if update_interval is not None and not (
        _finite_number(update_interval) and update_interval > 0
    ):
        raise ValueError(
            f"update_interval must be a positive number of epochs (or None for the default), "
            f"got {update_interval!r}."
        )


def _finite_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def check_weight(name: str, value: float, zero_means: str) -> None:
    """Check a loss weight: a finite number >= 0; `zero_means` says what 0 does."""
    if not (_finite_number(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0 ({zero_means}), got {value!r}.")


def check_share(name: str, value: float, meaning: str) -> None:
    """Check a mixing weight: a number in [0, 1]; `meaning` says what it weighs."""
    if not (isinstance(value, numbers.Real) and not isinstance(value, bool) and 0 <= value <= 1):
        raise ValueError(f"{name} must be a number in [0, 1] ({meaning}), got {value!r}.")


def check_target_smoothing(target_smoothing: float) -> None:
    check_share(
        "target_smoothing",
        target_smoothing,
        "the weight of the neighbours' soft assignments in the clustering target; 0 turns it off",
    )


def check_initial_label_weight(initial_label_weight: float) -> None:
    check_share(
        "initial_label_weight",
        initial_label_weight,
        "the weight of the initial clustering's labels in the first clustering target; 0 gives "
        "DEC's own first target",
    )


def check_refine(refine: float) -> None:
    check_share(
        "refine",
        refine,
        "the share of each cluster's most confident cells that train the classifier which "
        "assigns every cell at the end; 0 keeps the clustering stage's labels",
    )


def as_min_cluster_size(min_cluster_size) -> int | float:
    """Return `min_cluster_size` as an int (cells) or a float in [0, 1) (a share of them).

    Read as scikit-learn reads ``min_samples_leaf``; anything else is refused.
    """
    meaning = (
        "a cluster of fewer cells is merged when the number of clusters comes from the data: "
        "an integer is a number of cells, a float in [0, 1) a share of them; 0 keeps every cluster"
    )
    if isinstance(min_cluster_size, bool) or not isinstance(min_cluster_size, numbers.Real):
        raise ValueError(
            f"min_cluster_size must be an integer >= 0 or a float in [0, 1) ({meaning}), got "
            f"{min_cluster_size!r}."
        )
    if isinstance(min_cluster_size, numbers.Integral):
        if min_cluster_size > np.iinfo(np.int64).max:  # h5ad stores int64
            raise ValueError(
                f"min_cluster_size={min_cluster_size} is more cells than any data hold; give a "
                "number of cells below 2**63, or a share of them in [0, 1)."
            )
        if min_cluster_size < 0:
            raise ValueError(
                f"min_cluster_size must be an integer >= 0 or a float in [0, 1) ({meaning}), "
                f"got {min_cluster_size!r}."
            )
        return int(min_cluster_size)
    if not (0 <= min_cluster_size < 1):
        hint = (
            f" For {min_cluster_size:g} {'cell' if min_cluster_size == 1 else 'cells'} pass "
            f"the integer {int(min_cluster_size)}."
            if math.isfinite(min_cluster_size)
            and min_cluster_size >= 1
            and float(min_cluster_size).is_integer()
            else ""
        )
        raise ValueError(
            f"min_cluster_size must be an integer >= 0 or a float in [0, 1) ({meaning}), got "
            f"{min_cluster_size!r}.{hint}"
        )
    return float(min_cluster_size)


def check_degrees_of_freedom(alpha: float) -> None:
    if not (_finite_number(alpha) and alpha > 0):
        raise ValueError(
            f"alpha must be a finite number > 0 (the degrees of freedom of the Student's t "
            f"kernel; 1 is DEC's), got {alpha!r}."
        )


def check_batch_mixing(batch_mixing: float) -> None:
    check_weight("batch_mixing", batch_mixing, "0 turns the penalty off")


def check_n_clusters(n_clusters, n_obs: int) -> int | tuple[int, int] | None:
    """Check `n_clusters`: an integer >= 2, search bounds ``(lo, hi)`` or `None`.

    Bounds need 2 <= lo <= hi. The value is returned as an int, a tuple of ints, or `None`.
    """
    if isinstance(n_clusters, tuple | list):
        if len(n_clusters) != 2:
            raise ValueError(
                "n_clusters must be an integer, or (lo, hi) bounds of the search for the number "
                f"of clusters; got a sequence of length {len(n_clusters)}."
            )
        lo, hi = n_clusters
        check_int("n_clusters lower bound", lo, minimum=2)
        check_int("n_clusters upper bound", hi, minimum=2)
        if lo > hi:
            raise ValueError(f"n_clusters=({lo}, {hi}): the lower bound exceeds the upper one.")
        searched = min(n_obs, SEARCH_MAX_CELLS)  # the search clusters a sample of large data
        most = largest_upper_bound(n_obs)
        if hi > most:
            sample = "" if searched == n_obs else f" (the search clusters {searched} of them)"
            raise ValueError(
                f"n_clusters=({lo}, {hi}): the search scores partitions by how well they come "
                f"back under resampling, which clusters of a cell or two always do, so it "
                f"leaves at least {MIN_CELLS_PER_CANDIDATE_CLUSTER} cells per cluster: on "
                f"{n_obs} cells{sample} an upper bound of {most} at most"
                + (
                    "."
                    if lo <= most
                    else f", below the lower bound {lo}: give n_clusters=(2, {most}) or a number."
                    if most >= 2
                    else ": too few cells to search; give n_clusters as a number."
                )
            )
        return int(lo), int(hi)
    check_int("n_clusters", n_clusters, minimum=2, allow_none=True)
    if n_clusters is not None and n_clusters > n_obs:
        raise ValueError(f"n_clusters={n_clusters} is larger than the number of cells ({n_obs}).")
    return None if n_clusters is None else int(n_clusters)


def check_resolution(resolution, *, several: bool = False) -> None:
    """`None` or a positive number (or, with `several`, a non-empty list of distinct ones)."""
    if resolution is None:
        return
    if not several and isinstance(resolution, list | tuple | np.ndarray) and np.ndim(resolution):
        raise ValueError(
            f"resolution must be one number here, got {resolution!r}; for several, call the "
            "tool once per resolution, each with its own key_added."
        )
    values = _resolution_values(resolution)
    if not len(values):
        raise ValueError("resolution must be a number or a non-empty list of numbers.")
    for value in values:
        if not (_finite_number(value) and value > 0):
            raise ValueError(f"resolution must be a positive number, got {value!r}.")
    plain = [_plain_number(v) for v in values]  # as they name the keys
    repeated = sorted({v for v in plain if plain.count(v) > 1})
    if repeated:
        raise ValueError(
            f"resolution lists {repeated} more than once; each resolution gives one result "
            "(key_added + '_' + resolution), so give each once."
        )


def resolution_list(resolution) -> list[float | int | None]:
    """Return the checked `resolution` as a list of Python numbers (``[None]`` for none).

    A numpy float32 keeps its short form (0.3, not 0.30000001192092896), which names the keys.
    """
    if resolution is None:
        return [None]
    return [_plain_number(v) for v in _resolution_values(resolution)]


def _plain_number(value) -> float | int:
    """Return the number as written.

    float32's shortest form, and floats of sums such as 0.1 + 0.2 or
    ``np.arange(0.6, 1.3, 0.2)`` to 12 significant digits (0.3, 1.2).
    """
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, np.float32 | np.float16):
        return float(str(value))
    return float(f"{float(value):.12g}")


def warn_if_start_options_unused(init: str, n_clusters, resolution=None) -> None:
    """Warn about `init` and a given `resolution` where they do not start the clusters.

    `init` says how a given number of clusters is reached: without one, Leiden at the
    resolution clusters the cells. A `resolution` given with a number only starts
    ``init='leiden'``'s way to it, and a searched number is reached by k-means. (With known
    classes, scDCC warns of its own.) The command line refuses these combinations.
    """
    unused = []
    if n_clusters is None and init != "leiden":
        unused.append(
            f"init={init!r} has no effect without `n_clusters`: it says how a given number of "
            "clusters is reached, and here Leiden at `resolution` clusters the cells. Give "
            "`n_clusters`, or leave `init` out."
        )
    if resolution is not None and isinstance(n_clusters, tuple | list):
        unused.append(
            f"resolution={resolution:g} has no effect on a searched number of clusters "
            f"(n_clusters={tuple(n_clusters)}), which k-means reaches. Leave it out, or give "
            "it without `n_clusters` to let Leiden choose the clusters."
        )
    elif resolution is not None and n_clusters is not None and init != "leiden":
        unused.append(
            f"resolution={resolution:g} has no effect with init={init!r}: it only starts "
            "init='leiden''s way to `n_clusters`. Leave it out, or pass init='leiden'."
        )
    for message in unused:
        warnings.warn(message, UserWarning, stacklevel=caller_stacklevel())


def _resolution_values(resolution) -> list:
    if isinstance(resolution, np.ndarray) and resolution.ndim == 0:
        resolution = resolution[()]  # the numpy scalar
    if isinstance(resolution, str | bytes):  # refused as a number below
        return [resolution]
    if isinstance(resolution, Sequence | np.ndarray | pd.Series | pd.Index):  # range too
        return list(resolution)
    return [resolution]


def check_training_sizes(
    n_obs: int,
    *,
    batch_size: int,
    n_clusters: int | tuple[int, int] | None,
    n_neighbors: int,
    resolution=None,
    init: str = "kmeans",
) -> tuple[int, int]:
    """Check the minibatch and kNN sizes against the number of cells; return them as ints."""
    batch_size = as_int("batch_size", batch_size, minimum=2)
    n_neighbors = as_int("n_neighbors", n_neighbors, minimum=2)
    if isinstance(n_clusters, int) and init == "leiden" and n_neighbors >= n_obs:
        raise ValueError(
            f"init='leiden' needs more cells ({n_obs}) than n_neighbors={n_neighbors}: pass a "
            "smaller n_neighbors, or init='kmeans'."
        )
    if n_clusters is None and resolution is not None and n_neighbors >= n_obs:
        raise ValueError(
            f"Leiden initialisation needs more cells ({n_obs}) than n_neighbors={n_neighbors}: "
            "pass a smaller n_neighbors, or give n_clusters with init='kmeans'."
        )
    if batch_size > n_obs:
        warnings.warn(
            f"batch_size={batch_size} is larger than the number of cells ({n_obs}): each epoch "
            "is a single full-batch step, so the networks train little. Pass a smaller "
            f"batch_size (e.g. {max(2, n_obs // 4)}).",
            UserWarning,
            stacklevel=caller_stacklevel(),
        )
    return batch_size, n_neighbors


def check_key_added(key_added: str) -> None:
    if not isinstance(key_added, str) or not key_added.strip():
        raise ValueError(f"key_added must be a non-empty string, got {key_added!r}.")
    if "/" in key_added:  # .h5ad would store it as nested groups it cannot read back
        raise ValueError(
            f"key_added {key_added!r} contains '/', which .h5ad and .zarr files cannot hold in "
            "a key (the file would not read back); use another character, e.g. '_'."
        )
    if "\\" in key_added:
        raise ValueError(
            f"key_added {key_added!r} contains a backslash, which .zarr stores read as a separator "
            "(the store would not read back as written); use another character, e.g. '_'."
        )
    if key_added in (".", "..", "_index") or "\x00" in key_added:
        raise ValueError(
            f"key_added {key_added!r} cannot be written to .h5ad (a path of its own, anndata's "
            "reserved '_index', or a NUL character); choose another name."
        )
    if key_added in (".zattrs", ".zgroup", ".zarray", ".zmetadata", "zarr.json"):
        raise ValueError(
            f"key_added {key_added!r} is the name of a .zarr store's own metadata file, so "
            "adata.write_zarr would fail or write a store that does not read back; choose "
            "another name."
        )
    if key_added.endswith("_colors"):  # scanpy's slot for the colours of obs[...]
        raise ValueError(
            f"key_added {key_added!r} ends in '_colors', where scanpy keeps the colours of an "
            f"obs column (uns[{key_added!r}] for obs[{key_added[: -len('_colors')]!r}]); plots "
            "would read this run's results as colours, or overwrite them. Choose another name."
        )


def check_keys(adata: AnnData, **keys: str | None) -> None:
    """``label_key`` in ``obs``, ``protein_key`` in ``obsm``, before any data is read."""
    where = {"label_key": "obs", "protein_key": "obsm"}
    for name, key in keys.items():
        if key is None:
            continue
        container = getattr(adata, where[name])
        if key not in container:
            listing = list(container.columns if where[name] == "obs" else container.keys())
            advice = f" {PROTEINS_FROM_ANOTHER_ANNDATA}" if name == "protein_key" else ""
            raise KeyError(
                f"{name} {key!r} is not in adata.{where[name]}; available: {listing}.{advice}"
            )


def warn_if_placeholder_labels(adata: AnnData, label_key: str | None) -> bool:
    """Warn about label values that look like "no label" but count as a cell type.

    Only missing values (NaN, None) mark unlabelled cells; a text "unknown", an "NA" exported
    by R or a "nan" left by ``astype(str)`` is a class of its own, with its own must-link pairs
    and centroid. Return whether it warned.
    """
    if label_key is None or label_key not in adata.obs:
        return False
    found = text_counts(adata.obs[label_key], NO_LABEL_AS_TEXT)
    if found.empty:
        return False
    warnings.warn(
        f"adata.obs[{label_key!r}] labels cells {listed(found)}: such a value is a cell type "
        "of its own here (must-link pairs among those cells, a centroid of their own), since "
        "only missing values mark cells without a label. If it means 'no label', make those "
        f"cells missing first, e.g. {made_missing(label_key, str(found.index[0]))}.",
        UserWarning,
        stacklevel=caller_stacklevel(),
    )
    return True


def check_known_labels(labels: pd.Series, label_key: str) -> None:
    """Refuse a label column that cannot give pairs: cells of at least two types are needed."""
    known = labels[labels.notna()]
    n_types = known.astype(str).nunique()
    if len(known) >= 2 and n_types >= 2:
        return
    if known.empty:
        held = "labels no cell (every value is missing)"
    elif len(known) == 1:
        held = f"labels only 1 cell ({known.astype(str).iloc[0]!r})"
    else:
        held = f"labels {len(known)} cells, all {known.astype(str).iloc[0]!r}"
    found = text_counts(labels, NO_LABEL_AS_TEXT)
    placeholder = (
        ""
        if found.empty
        else f" {str(found.index[0])!r} is a type of its own here: if it means 'no label', make "
        f"those cells missing first, e.g. {made_missing(label_key, str(found.index[0]))}."
    )
    raise ValueError(
        f"adata.obs[{label_key!r}] {held}: the labels give must-link and cannot-link pairs, "
        "which need labelled cells of at least two types. Label cells of two or more types "
        f"(missing values mark the cells without a label), or leave label_key out.{placeholder}"
    )


def check_gene_names(
    adata: AnnData, *, use_rep: str | None, return_model: bool, genes: GeneMask | None = None
) -> None:
    """Repeated gene names: a returned model could not match genes by name, so it is refused.

    Only the names of the genes read (`genes`) count.
    """
    names = adata.var_names
    if genes is not None and genes.columns is not None:
        names = names[genes.columns]
    if use_rep is not None or names.is_unique:
        return
    examples = [str(g) for g in names[names.duplicated()][:3]]
    if return_model:
        raise ValueError(
            f"adata.var_names are not unique (e.g. {examples}), so a model of this run could "
            "not match new cells' genes to its own by name. Run "
            "`adata.var_names_make_unique()` first."
        )
    warnings.warn(
        f"adata.var_names are not unique (e.g. {examples}). The clusters do not depend on the "
        "names, but genes that share one cannot be told apart afterwards (plots, a saved "
        "model); consider `adata.var_names_make_unique()` first.",
        UserWarning,
        stacklevel=caller_stacklevel(),
    )


def check_switches(progress, copy, return_model, resume, distributed, **own) -> None:
    """Refuse the tools' switches (their common ones and `own`) that are not True or False."""
    check_bools(
        progress=progress,
        copy=copy,
        return_model=return_model,
        resume=resume,
        distributed=distributed,
        **own,
    )


def check_checkpointing(
    checkpoint_dir: str | PathLike | None, checkpoint_every: int, resume: bool
) -> None:
    check_int("checkpoint_every", checkpoint_every, minimum=1)
    if checkpoint_dir is not None and (
        not isinstance(checkpoint_dir, str | PathLike) or str(checkpoint_dir).strip() == ""
    ):  # "" is the current folder to pathlib
        raise ValueError(
            f"checkpoint_dir must name a folder (a path), got {checkpoint_dir!r}; None (the "
            "default) saves no checkpoint."
        )
    if resume and checkpoint_dir is None:
        raise ValueError("resume=True needs the checkpoint_dir of the run to continue.")
    if checkpoint_dir is not None and Path(checkpoint_dir).exists():
        if not Path(checkpoint_dir).is_dir():
            raise ValueError(
                f"checkpoint_dir {str(checkpoint_dir)!r} is a file; name a folder (created if "
                "needed) for the checkpoint."
            )


def open_run(
    checkpoint_dir,
    *,
    every: int,
    resume: bool,
    distributed: bool,
    device,
    across_processes: dict | None = None,
    **run,
) -> TrainingCheckpoint | None:
    """Open the run's checkpoint (if any).

    First a distributed run's processes are checked to have the same data and options, those of
    `across_processes` included. `run` describes the run as `open_checkpoint` takes it: what
    its checkpoint can be resumed with (DESC's resolutions are not part of it: each has a stage
    of its own after the shared pretraining).
    """
    if distributed:
        check_same_run(run_digest(**run, **(across_processes or {})), device)
    return open_checkpoint(checkpoint_dir, every=every, resume=resume, **run)


def batches_in_run(batches: BatchCovariate | None) -> dict:
    """Return what identifies a run's batches beyond their names: which cell is in which."""
    return {} if batches is None else {"batch_codes": array_digest(batches.codes)}


def start_distributed(
    device,
    *,
    checkpoint_dir: str | PathLike | None,
    constraints: bool = False,
    batches: BatchCovariate | None = None,
    batch_mixing: float = 0.0,
) -> tuple[int, int, object]:
    """Return (rank, world size, device) of this process in a `distributed=True` run.

    Options that sharded training does not support yet are refused, and so are cells ordered
    by batch where the batches are to be mixed.
    """
    from ..train import init_distributed

    if checkpoint_dir is not None:
        raise ValueError("checkpoint_dir cannot be used with distributed=True (not supported yet).")
    if constraints:
        raise ValueError(
            "Pairwise constraints (label_key, must_link, cannot_link, protein_key) cannot be "
            "used with distributed=True (not supported yet)."
        )
    rank, world_size, device = init_distributed(device)
    if batches is not None and batch_mixing > 0:
        check_shards_mix_batches(batches.codes, batches.categories, world_size)
    return rank, world_size, device


@dataclass
class ToolInput:
    """A tool's input matrix, where it came from and which of its columns are used."""

    matrix: object
    where: str
    columns: np.ndarray | None  # positions of the columns used; None: all
    summary: MatrixSummary  # of the columns `scanned`
    scanned: np.ndarray | None = None  # positions (increasing) the summary covers; None: all

    @property
    def n_columns(self) -> int:
        return self.summary.shape[1] if self.columns is None else len(self.columns)

    def feature_names(self, adata: AnnData, use_rep: str | None) -> list[str]:
        names = (
            np.arange(self.summary.shape[1]).astype(str)
            if use_rep is not None
            else np.asarray(adata.var_names).astype(str)
        )
        return list(names if self.columns is None else names[self.columns])

    def content_digest(
        self, adata: AnnData, use_rep: str | None, columns: np.ndarray | None = None
    ) -> str:
        """Return a digest of the cells, the features used and the row and column sums.

        Tells a checkpoint's data from other cells, another gene order or other values of the
        same shape. `columns` overrides the columns used (scdcc's highly variable genes).
        """
        used = self.columns if columns is None else columns
        names = self.feature_names(adata, use_rep)
        if columns is not None:
            names = list(np.asarray(adata.var_names).astype(str)[columns])
        col_sums = self.summary.col_sums
        if used is not None:
            col_sums = col_sums[
                used if self.scanned is None else np.searchsorted(self.scanned, used)
            ]
        return array_digest(
            np.asarray(adata.obs_names).astype(str),
            np.asarray(names),
            self.summary.row_sums.astype(np.float32),
            col_sums.astype(np.float32),
        )


def tool_input(
    adata: AnnData,
    *,
    layer: str | None = None,
    use_rep: str | None = None,
    counts: bool,
    genes: GeneMask | None = None,
) -> ToolInput:
    """Find and check a tool's input in one pass over the matrix.

    `counts=True` (scdcc): raw counts from `layer`, ``layers['counts']`` or ``X``; anything but
    finite non-negative integers is refused, and so are cells without counts (no size factor).
    `counts=False` (desc): ``X``, `layer` or ``obsm[use_rep]``; must be finite; all-zero cells
    are kept with a warning (every cell gets a result). All-zero genes (columns) are left out
    with a warning in both cases. With `genes` (`gene_mask`) only those columns are read and
    judged: the others may hold anything.
    """
    read = None if genes is None else genes.columns
    if counts:
        matrix, where, summary = checked_counts(adata, layer, columns=read)
        warn_if_not_like_raw_counts(summary, where)
    else:
        matrix, where = input_matrix(adata, layer=layer, use_rep=use_rep, columns=read)
        summary = scan_matrix(matrix, where=where, gene_scales=True, columns=read)
        check_finite(summary, where)
    in_genes = ""
    if read is not None:
        in_genes = f" in the {len(read)} gene{'s' if len(read) > 1 else ''} of {genes.describe()}"
    if summary.zero_cols.all():
        other = "" if read is None else " Choose other genes, or pass mask_var=None."
        raise ValueError(
            f"adata.{where} holds only zeros{in_genes}; there is nothing to cluster.{other}"
        )
    n_zero_cells = int(summary.zero_rows.sum())
    if n_zero_cells:
        examples = list(adata.obs_names[summary.zero_rows][:3])
        if counts:
            raise ValueError(
                f"{n_zero_cells} cell(s) have no counts in adata.{where}{in_genes} (e.g. "
                f"{examples}); scdcc needs a library size for every cell. Remove them first, "
                f"e.g. {_keep_cells_with_values(where, genes if read is not None else None)}"
            )
        warnings.warn(
            f"{n_zero_cells} cell(s) are all zero in adata.{where}{in_genes} (e.g. {examples}): "
            "they carry no information and all land where the zero vector does. Consider "
            "removing them, e.g. "
            + (
                "`sc.pp.filter_cells(adata, min_genes=1)` before normalising."
                if read is None and where == "X"  # filter_cells counts X alone
                else _keep_cells_with_values(where, genes if read is not None else None)
            ),
            UserWarning,
            stacklevel=caller_stacklevel(),
        )
    columns = read
    if summary.zero_cols.any():
        scanned = np.arange(summary.shape[1]) if read is None else read
        columns = scanned[~summary.zero_cols]
        what = "column(s)" if use_rep is not None else "gene(s)"
        zero = scanned[summary.zero_cols]
        names = zero if use_rep is not None else adata.var_names[zero]
        warnings.warn(
            f"{len(zero)} {what} of adata.{where}{in_genes} are all zero (e.g. "
            f"{[str(n) for n in names[:3]]}) and are left out of training.",
            UserWarning,
            stacklevel=caller_stacklevel(),
        )
    return ToolInput(matrix, where, columns, summary, scanned=read)


def _keep_cells_with_values(where: str, genes: GeneMask | None) -> str:
    """Return a line that keeps the cells with a non-zero value in what a tool reads."""
    if genes is None and where == "X":  # filter_cells counts X, whatever the layers hold
        return "`sc.pp.filter_cells(adata, min_counts=1)`."
    if genes is None:  # non-zero entries, not the sum: a representation has negative values
        return f"`adata = adata[np.asarray((adata.{where} != 0).sum(axis=1)).ravel() > 0].copy()`."
    if genes.name is None:
        return (
            f"keep the cells with values in those genes (the columns of adata.{where} that "
            "mask_var marks), or pass mask_var=None to use every gene."
        )
    return (
        f"`adata = adata[np.asarray(({genes.selects(where)} != 0).sum(axis=1)).ravel() > 0]"
        ".copy()`, or pass mask_var=None to use every gene."
    )


def target_adata(adata: AnnData, copy: bool) -> AnnData:
    """Return the object results are written to: a copy, or the caller's.

    A view is made actual, with anndata's usual warning, only at write time; its parent is
    never changed.
    """
    return adata.copy() if copy else adata


def tool_return(adata: AnnData, copy: bool, model, return_model: bool):
    """Return what a tool returns: None, the copy, the model, or (copy, model)."""
    if return_model:
        return (adata, model) if copy else model
    return adata if copy else None
