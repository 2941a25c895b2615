"""Must-link / cannot-link constraints for the clustering stage (scDCC).

Building them from prior knowledge and turning them into loss terms during the clustering stage.
"""

from __future__ import annotations

import numbers
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from ._messages import caller_stacklevel
from .data import CellFeeder
from .nn import ClusteringLayer, cannot_link_loss, known_class_loss, must_link_loss


@dataclass
class PairwiseConstraints:
    """Pairs of cell positions that must (must-link) or must not (cannot-link) share a cluster."""

    must_link: np.ndarray  # int64 (m, 2)
    cannot_link: np.ndarray  # int64 (c, 2)

    @classmethod
    def empty(cls) -> PairwiseConstraints:
        """Return constraints without any pair."""
        return cls(np.empty((0, 2), np.int64), np.empty((0, 2), np.int64))

    def __len__(self) -> int:
        """Return the number of pairs, must-link and cannot-link together."""
        return len(self.must_link) + len(self.cannot_link)

    def __add__(self, other: PairwiseConstraints) -> PairwiseConstraints:
        """Return the pairs of both, must-link and cannot-link each concatenated."""
        return PairwiseConstraints(
            np.concatenate([self.must_link, other.must_link]),
            np.concatenate([self.cannot_link, other.cannot_link]),
        )

    def without_contradicting(self, other: PairwiseConstraints, n_obs: int) -> PairwiseConstraints:
        """Return these pairs less the must-links that `other` cannot-links, and vice versa."""
        return PairwiseConstraints(
            self.must_link[
                ~np.isin(_keys(self.must_link, n_obs), _pair_keys(other.cannot_link, n_obs))
            ],
            self.cannot_link[
                ~np.isin(_keys(self.cannot_link, n_obs), _pair_keys(other.must_link, n_obs))
            ],
        )

    def agreeing_with(self, codes: np.ndarray) -> PairwiseConstraints:
        """Return these pairs less those that contradict known classes (`codes`, -1: unknown).

        A must-link between two cells of different known classes goes, and a cannot-link
        between two cells of one.
        """
        return PairwiseConstraints(
            self.must_link[~_between_known(codes, self.must_link, same=False)],
            self.cannot_link[~_between_known(codes, self.cannot_link, same=True)],
        )

    def refuse_against_labels(
        self, codes: np.ndarray, classes: np.ndarray, label_key: str, obs_names
    ) -> None:
        """Refuse pairs that contradict the known classes (`codes` into `classes`, -1: unknown)."""
        for name, pairs, same in (
            ("must_link", self.must_link, False),
            ("cannot_link", self.cannot_link, True),
        ):
            wrong = pairs[_between_known(codes, pairs, same=same)]
            if len(wrong):
                a, b = (int(i) for i in wrong[0])
                labels = " and ".join(repr(str(classes[codes[i]])) for i in (a, b))
                raise ValueError(
                    f"{len(wrong)} pair(s) of {name} contradict obs[{label_key!r}], e.g. cells "
                    f"{obs_names[a]!r} and {obs_names[b]!r} (positions {a} and {b}), labelled "
                    f"{labels}. Remove those pairs, or correct the labels."
                )

    def distinct(self, n_obs: int) -> PairwiseConstraints:
        """Return these pairs with each unordered pair once (the first of each kept)."""
        return PairwiseConstraints(
            _distinct(self.must_link, n_obs), _distinct(self.cannot_link, n_obs)
        )

    def check(self, n_obs: int) -> None:
        """Refuse out-of-range, self and contradictory pairs."""
        for name, pairs in (("must_link", self.must_link), ("cannot_link", self.cannot_link)):
            if len(pairs) and (pairs.min() < 0 or pairs.max() >= n_obs):
                raise ValueError(f"{name} has cell indices outside 0..{n_obs - 1}.")
            if np.any(pairs[:, 0] == pairs[:, 1]):
                raise ValueError(f"{name} pairs a cell with itself; remove those pairs.")
        both = np.intersect1d(
            _pair_keys(self.must_link, n_obs),
            _pair_keys(self.cannot_link, n_obs),
            assume_unique=True,
        )
        if len(both):
            a, b = divmod(int(both[0]), n_obs)
            raise ValueError(
                f"{len(both)} pair(s) are both must-link and cannot-link, e.g. cells {a} and {b}. "
                "Remove the contradiction from the constraints or the labels they come from."
            )


def _between_known(codes: np.ndarray, pairs: np.ndarray, *, same: bool) -> np.ndarray:
    """Which pairs join two cells of known classes that are the same (`same`) or differ."""
    a, b = codes[pairs[:, 0]], codes[pairs[:, 1]]
    known = (a >= 0) & (b >= 0)
    return known & ((a == b) if same else (a != b))


# What pandas' `infer_dtype` calls a column of numbers alone (booleans and text mixed in are not)
NUMBER_KINDS = ("integer", "floating", "mixed-integer-float")


def label_codes(labels) -> tuple[np.ndarray, np.ndarray]:
    """Return each cell's class code (-1 where the label is missing) and the classes.

    Labels are compared as text, as the rest of scDCC reads them: 1 and "1" (a column put
    together from two tables) are one class, 1 and 1.0 two. The classes keep the column's own
    order, since class i names cluster i: a categorical column's categories, numbers by value
    (2 before 10), other text alphabetically.
    """
    series = pd.Series(labels).reset_index(drop=True)
    known = series.notna().to_numpy()
    classes = pd.Categorical(series[known].astype(str), categories=_class_order(series[known]))
    codes = np.full(len(series), -1, np.int64)
    codes[known] = classes.codes
    return codes, np.asarray(classes.categories, dtype=str)


def _class_order(known: pd.Series) -> list[str]:
    """Return the distinct labels of `known` (none missing) as text, in the column's own order."""
    if isinstance(known.dtype, pd.CategoricalDtype):
        present = known.cat.remove_unused_categories().cat.categories
        return list(dict.fromkeys(present.astype(str)))
    text = known.astype(str)
    first = ~text.duplicated().to_numpy()  # one value per class; 1 and 1.0 stay two
    names = text.to_numpy()[first]
    if pd.api.types.infer_dtype(known, skipna=True) in NUMBER_KINDS:
        values = known.to_numpy()[first]
        return [name for _, name in sorted(zip(values, names, strict=True))]
    return sorted(names)


def _keys(pairs: np.ndarray, n_obs: int) -> np.ndarray:
    """One number per pair, the same for (a, b) and (b, a)."""
    lo, hi = np.minimum(pairs[:, 0], pairs[:, 1]), np.maximum(pairs[:, 0], pairs[:, 1])
    return lo * n_obs + hi


def _pair_keys(pairs: np.ndarray, n_obs: int) -> np.ndarray:
    return _sorted_unique(_keys(pairs, n_obs))


def _sorted_unique(keys: np.ndarray) -> np.ndarray:
    """Return `np.unique(keys)`, found by sorting.

    numpy 2.4's `np.unique` of integers goes through a hash table that slows down once it
    outgrows the caches: 1.2 s on 1.6 million pair keys where sorting takes 0.1 s.
    """
    keys = np.sort(keys)
    return keys[_run_starts(keys)]


def _run_starts(sorted_keys: np.ndarray) -> np.ndarray:
    """Mark the first of each run of equal values in sorted keys."""
    first = np.ones(len(sorted_keys), bool)
    np.not_equal(sorted_keys[1:], sorted_keys[:-1], out=first[1:])
    return first


def _random_distinct_pairs(
    candidates: np.ndarray, n_pairs: int, rng: np.random.Generator
) -> np.ndarray:
    """Up to n_pairs distinct unordered pairs of distinct elements of `candidates`."""
    n = len(candidates)
    n_possible = n * (n - 1) // 2
    n_pairs = min(n_pairs, n_possible)
    if n_pairs <= 0:
        return np.empty((0, 2), np.int64)
    if 4 * n_pairs >= 3 * n_possible:  # drawing would take long to meet the last unseen pairs
        a, b = np.triu_indices(n, k=1)
        chosen = rng.permutation(n_possible)[:n_pairs]
        return np.stack([candidates[a[chosen]], candidates[b[chosen]]], axis=1).astype(np.int64)
    found = np.empty(0, np.int64)
    while len(found) < n_pairs:
        draw = rng.integers(0, n, size=(2 * (n_pairs - len(found)) + 16, 2))
        draw = draw[draw[:, 0] != draw[:, 1]]
        keys = np.minimum(draw[:, 0], draw[:, 1]) * n + np.maximum(draw[:, 0], draw[:, 1])
        found = _sorted_unique(np.concatenate([found, keys]))
    found = rng.permutation(found)[:n_pairs]
    a, b = np.divmod(found, n)
    return np.stack([candidates[a], candidates[b]], axis=1).astype(np.int64)


def pairs_from_labels(labels, n_pairs: int, rng: np.random.Generator) -> PairwiseConstraints:
    """Draw random pairs among cells with a known label (missing = unknown).

    Pairs with the same label must-link, pairs with different labels cannot-link.
    """
    code_of, classes = label_codes(labels)
    known = np.flatnonzero(code_of >= 0)
    if len(known) < 2:
        raise ValueError("The label column has fewer than 2 cells with a known label.")
    if len(classes) < 2:
        raise ValueError(
            "All labelled cells have the same label: that gives must-link pairs only and cannot "
            "separate clusters. Label cells of at least two types."
        )
    pairs = _random_distinct_pairs(known, n_pairs, rng)
    same = code_of[pairs[:, 0]] == code_of[pairs[:, 1]]
    return PairwiseConstraints(pairs[same], pairs[~same])


# Random pairs measured at once when drawing protein constraints; beyond it the pairs are
# drawn and filtered in batches of this size (at once, a million cells with the default pairs
# took 8 GB: fifty million pairs, each with its two cells' protein levels).
PROTEIN_PAIRS_AT_ONCE = 2_000_000


def pairs_from_protein(
    protein: np.ndarray,
    n_pairs: int,
    rng: np.random.Generator,
    *,
    low_quantile: float = 0.005,
    high_quantile: float = 0.95,
    where: str = "the protein levels",
) -> PairwiseConstraints:
    """Draw constraints from random cell pairs by their distance in protein space.

    Of 50 x `n_pairs` random cell pairs, those closer in protein space than the `low_quantile`
    of pair distances must-link, those farther than the `high_quantile` cannot-link (at most
    `n_pairs` of each). Levels that (nearly) never differ between cells make the two quantiles
    meet, and are refused: every pair would then be both near and far. Beyond
    `PROTEIN_PAIRS_AT_ONCE` random pairs, the quantiles come from that many and the rest are
    drawn and filtered in batches.
    """
    protein = np.asarray(protein, dtype=np.float32)
    cells = np.arange(len(protein))
    n_candidates = 50 * n_pairs
    candidates = _random_distinct_pairs(cells, min(n_candidates, PROTEIN_PAIRS_AT_ONCE), rng)
    dist = _pair_distances(protein, candidates)
    low, high = np.quantile(dist, [low_quantile, high_quantile])
    if not high > low:
        raise ValueError(
            f"{where} do not tell cells apart: most random pairs of cells are equally far "
            f"apart (distance {low:.3g}), so no pair is nearer or farther than the rest for a "
            "constraint. Pass protein levels that vary between cells (e.g. the normalised ADT "
            "matrix), or leave out protein_key."
        )
    near, far = [candidates[dist <= low]], [candidates[dist >= high]]
    # fewer than asked for: those were all the pairs there are
    n_more = n_candidates - len(candidates) if len(candidates) >= PROTEIN_PAIRS_AT_ONCE else 0
    for start in range(0, n_more, PROTEIN_PAIRS_AT_ONCE):
        batch = _random_distinct_pairs(cells, min(PROTEIN_PAIRS_AT_ONCE, n_more - start), rng)
        dist = _pair_distances(protein, batch)
        near.append(batch[dist <= low])
        far.append(batch[dist >= high])
    if len(near) > 1:  # batches drawn apart may repeat a pair
        near, far = (_distinct(np.concatenate(pairs), len(protein)) for pairs in (near, far))
    else:
        near, far = near[0], far[0]
    return PairwiseConstraints(
        near[rng.permutation(len(near))[:n_pairs]], far[rng.permutation(len(far))[:n_pairs]]
    )


def _pair_distances(protein: np.ndarray, pairs: np.ndarray, chunk: int = 65_536) -> np.ndarray:
    """Euclidean distance between the two cells of each pair, in blocks of pairs."""
    dist = np.empty(len(pairs), np.float32)
    for start in range(0, len(pairs), chunk):
        a, b = pairs[start : start + chunk].T
        dist[start : start + chunk] = np.linalg.norm(protein[a] - protein[b], axis=1)
    return dist


def _distinct(pairs: np.ndarray, n_obs: int) -> np.ndarray:
    """Drop repeated pairs (as unordered pairs), keeping the first of each in order."""
    keys = _keys(pairs, n_obs)
    order = np.argsort(keys, kind="stable")  # by sorting, as `_sorted_unique`
    return pairs[np.sort(order[_run_starts(keys[order])])]


def pairs_from_user(pairs, obs_names: pd.Index, name: str) -> np.ndarray:
    """Convert an (n, 2) array of positions or obs_names to int64 positions."""
    arr = np.asarray(pairs)
    if arr.size == 0:
        return np.empty((0, 2), np.int64)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"{name} must have shape (n, 2), got {arr.shape}.")
    positions = (
        arr.astype(np.int64) if np.issubdtype(arr.dtype, np.integer) else _whole_numbers(arr)
    )
    if positions is not None:
        _warn_if_numbers_name_other_cells(positions, obs_names, name)
        return positions
    if arr.dtype.kind in "fcb" or not all(isinstance(x, str) for x in arr.ravel()):
        raise ValueError(
            f"{name} must hold cell positions (whole numbers) or cell names (strings); it holds "
            f"values such as {[str(x) for x in arr.ravel()[:3]]}."
        )
    if not obs_names.is_unique:
        raise ValueError(
            f"{name} names cells, but adata.obs_names are not unique, so a name may stand for "
            "several cells. Call `adata.obs_names_make_unique()` first, or give the pairs as "
            "cell positions (integers)."
        )
    pos = obs_names.get_indexer(arr.ravel())
    if np.any(pos < 0):
        missing = [str(m) for m in arr.ravel()[pos < 0][:3]]
        raise KeyError(f"{name} names cells not in adata.obs_names, e.g. {missing}.")
    return pos.reshape(-1, 2).astype(np.int64)


def _warn_if_numbers_name_other_cells(positions: np.ndarray, obs_names: pd.Index, name: str):
    """Warn where the cells' names are whole numbers too, other than the positions given.

    Cell ids read from a table come back as integers, which are read as positions: with names
    such as '699', '698', ... the pairs would join other cells than those named, silently.
    """
    n_obs = len(obs_names)
    if n_obs == 0 or not str(obs_names[0]).lstrip("-").isdigit():  # most names: no cost
        return
    names = pd.Index(obs_names).astype(str)
    if not names.str.fullmatch(r"-?\d+").all():
        return
    given = positions.ravel()
    given = given[(given >= 0) & (given < n_obs)]
    # as numbers ('007' at position 7 names the cell the position does), of any length
    spelled = names[given].str.lstrip("0").str.replace(r"^$", "0", regex=True)
    differs = given[spelled != given.astype(str)]
    if differs.size:
        warnings.warn(
            f"{name} holds whole numbers, read as cell positions, while adata.obs_names are "
            f"whole numbers too, other than the positions (the cell at position {differs[0]} "
            f"is named {names[differs[0]]!r}). If they are cell names, pass them as text, "
            "spelled as in adata.obs_names.",
            UserWarning,
            stacklevel=caller_stacklevel(),
        )


def _whole_numbers(arr: np.ndarray) -> np.ndarray | None:
    """Return `arr` as int64 when every value is a whole number, else None.

    Floats come from tables with missing values, numbers in object arrays from nullable columns.
    """
    if arr.dtype.kind == "O":
        values = arr.ravel()
        if not all(isinstance(x, numbers.Number) and not isinstance(x, bool) for x in values):
            return None
        arr = arr.astype(np.float64)
    if arr.dtype.kind != "f" or not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
        return None
    return arr.astype(np.int64)


class _RowsWithOrderedGradient(torch.autograd.Function):
    """``source.index_select(0, index)`` whose backward adds repeated rows in a fixed order.

    A cell is in many of a step's pairs, so the gradient of its row of q is a sum over them.
    index_select's own backward adds them with atomics on a GPU, in an order that changes from
    run to run: constrained runs on the GPU machine gave three different embeddings in three
    processes. The sum is small (pairs x clusters), so on an accelerator it is done on the host,
    in index order, as the CPU does it; on the CPU this is index_select's own backward, bit for
    bit. It costs one wait for the device per constrained step.
    """

    @staticmethod
    def forward(ctx, source: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(index)
        ctx.source_shape = source.shape
        return source.index_select(0, index)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (index,) = ctx.saved_tensors
        host_grad, host_index = grad.cpu(), index.cpu()
        summed = host_grad.new_zeros(ctx.source_shape).index_add_(0, host_index, host_grad)
        return summed.to(grad.device), None


def rows_with_ordered_gradient(source: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Rows `index` of `source`; repeated rows' gradients are added in the same order every run."""
    return _RowsWithOrderedGradient.apply(source, index)


def _share_of_step(order: np.ndarray, slot: int, steps_per_epoch: int) -> np.ndarray:
    """Return the part of a shuffled `order` that training step `slot` of an epoch uses.

    The epoch's steps together use every element once.
    """
    per_step = -(-len(order) // steps_per_epoch)
    return order[slot * per_step : (slot + 1) * per_step]


class PairLoss:
    """Must-link and cannot-link loss terms, cycling through shuffled constraints.

    Each epoch of `steps_per_epoch` training steps sees every pair once.
    """

    def __init__(
        self,
        constraints: PairwiseConstraints,
        feeder: CellFeeder,
        embed,
        clustering_layer: ClusteringLayer,
        *,
        steps_per_epoch: int,
        ml_weight: float,
        cl_weight: float,
        rng: np.random.Generator,
    ):
        self.feeder, self.embed, self.layer = feeder, embed, clustering_layer
        self.rng = rng
        self.steps_per_epoch = steps_per_epoch
        self.parts = [
            (pairs, weight, fn, name)
            for pairs, weight, fn, name in (
                (constraints.must_link, ml_weight, must_link_loss, "must_link"),
                (constraints.cannot_link, cl_weight, cannot_link_loss, "cannot_link"),
            )
            if len(pairs) and weight > 0
        ]
        self._orders = [None] * len(self.parts)

    def __call__(self, step: int) -> dict[str, torch.Tensor]:
        """Return the weighted must-link and cannot-link terms of training step `step`."""
        if not self.parts:
            return {}
        slot = step % self.steps_per_epoch
        chosen = []
        for i, (pairs, *_rest) in enumerate(self.parts):
            if slot == 0 or self._orders[i] is None:
                self._orders[i] = self.rng.permutation(len(pairs))
            chosen.append(pairs[_share_of_step(self._orders[i], slot, self.steps_per_epoch)])
        if sum(len(c) for c in chosen) == 0:
            return {}
        cells, inverse = np.unique(np.concatenate([c.ravel() for c in chosen]), return_inverse=True)
        q = self.layer(self.embed(self.feeder.batch(cells)))
        inverse = torch.from_numpy(inverse).to(q.device)
        terms, offset = {}, 0
        for (_pairs, weight, fn, name), sel in zip(self.parts, chosen):
            idx = inverse[offset : offset + 2 * len(sel)].view(-1, 2)
            offset += 2 * len(sel)
            if len(sel):
                # not q[idx]: the backward of advanced indexing adds the gradients of
                # repeated cells in a thread-dependent order on the CPU (torch 2.13), and
                # index_select's does on a GPU, which made constrained runs differ
                terms[name] = weight * fn(
                    rows_with_ordered_gradient(q, idx[:, 0]),
                    rows_with_ordered_gradient(q, idx[:, 1]),
                )
        return terms


class KnownClassLoss:
    """Keeps each labelled cell in the cluster of its known class.

    The term is -log q(cell, its class's cluster), cluster i standing for class code i (the
    centroids started at the class means). Cycles through the labelled cells so that each epoch of
    `steps_per_epoch` training steps sees every one once, as `PairLoss` does with its pairs.

    Pairs of labelled cells say only "same" or "different"; the class of each cell says which
    cluster, which is what a classifier trained on those labels learns from. With 10% of the
    cells labelled this is what lifts the clustering to a classifier's accuracy (see the
    changelog).
    """

    def __init__(
        self,
        known_classes: np.ndarray,
        feeder: CellFeeder,
        embed,
        clustering_layer: ClusteringLayer,
        *,
        steps_per_epoch: int,
        weight: float,
        rng: np.random.Generator,
    ):
        if feeder.shard is not None:  # positions in this process's rows
            known_classes = known_classes[feeder.shard.start : feeder.shard.stop]
        self.cells = np.flatnonzero(known_classes >= 0)
        self.classes = torch.from_numpy(known_classes[self.cells])
        self.feeder, self.embed, self.layer = feeder, embed, clustering_layer
        self.steps_per_epoch, self.weight, self.rng = steps_per_epoch, weight, rng
        self._order: np.ndarray | None = None

    def __call__(self, step: int) -> dict[str, torch.Tensor]:
        """Return the weighted known-class term of training step `step`."""
        if not len(self.cells) or self.weight <= 0:
            return {}
        slot = step % self.steps_per_epoch
        if slot == 0 or self._order is None:
            self._order = self.rng.permutation(len(self.cells))
        chosen = _share_of_step(self._order, slot, self.steps_per_epoch)
        if not len(chosen):
            return {}
        q = self.layer(self.embed(self.feeder.batch(self.cells[chosen])))
        return {"known_class": self.weight * known_class_loss(q, self.classes[chosen].to(q.device))}
