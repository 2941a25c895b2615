"""Training loops shared by the methods.

Epochs of minibatch steps with early stopping, and the DEC clustering stage with periodic target
refresh and the label-change stop.
"""

from __future__ import annotations

import math
import sys
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scanpy as sc
import torch
from scanpy import logging as logg
from tqdm.auto import tqdm

from ..data import Batch, CellFeeder, stream_outputs
from ..nn import ClusteringLayer, kl_divergence, target_distribution
from ._checkpoint import TrainingCheckpoint
from ._distributed import all_reduce_sum, average_gradients, is_main, sync_parameters
from ._optim import VANISHING_EVERY, TrainingOptimizer, zero_vanishing_averages
from ._smoothing import TargetSmoothing

LossTerms = dict[str, torch.Tensor]


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite."""


@dataclass
class PlateauStopper:
    """Early stopping on a plateau of the epoch loss.

    Stops when the epoch loss has not improved by more than `min_rel_delta` (relative) for
    `patience` epochs.
    """

    patience: int = 10
    min_rel_delta: float = 1e-3
    best: float = math.inf
    since_best: int = 0

    def update(self, loss: float) -> bool:
        if not math.isfinite(self.best) or loss < self.best - self.min_rel_delta * abs(self.best):
            self.best, self.since_best = loss, 0
        else:
            self.since_best += 1
        return self.since_best >= self.patience


def default_epochs(
    n_obs: int, *, base: int, reference_cells: int = 20_000, minimum: int = 10
) -> int:
    """Fewer epochs for more cells, as scvi-tools does: base * reference / n in [minimum, base]."""
    return int(min(base, max(minimum, round(base * reference_cells / max(n_obs, 1)))))


def _check_finite(value: float, stage: str, epoch: int, hint: str) -> None:
    if not math.isfinite(value):
        raise TrainingDiverged(
            f"The {stage} loss became {value} in epoch {epoch + 1}; training stopped and nothing "
            f"was written. {hint}"
        )


# Seconds between redraws of a progress bar written into a log file.
LOG_REDRAW_SECONDS = 5.0

DIVERGENCE_HINT = (
    "This usually means a learning rate that is too high for this data, or extreme values in "
    "the input; try a lower learning rate or check the input for outliers."
)


def divergence_hint(lr_name: str, lr: float, extra: str = "") -> str:
    """Say what to change when a stage trained with learning rate `lr_name` diverges."""
    return (
        f"The likely cause is a learning rate too high for this data: lower `{lr_name}` "
        f"(now {lr:g}), e.g. to {lr / 10:g}. Extreme values in the input can also cause it: "
        f"check it for outliers{extra}."
    )


def fit_epochs(
    feeder: CellFeeder,
    step_loss: Callable[[Batch], LossTerms],
    optimizer: TrainingOptimizer,
    *,
    n_epochs: int,
    batch_size: int,
    rng: np.random.Generator,
    stopper: PlateauStopper | None = None,
    stage: str = "pretraining",
    progress: bool = True,
    divergence: str = DIVERGENCE_HINT,
    checkpoint: TrainingCheckpoint | None = None,
    sample_weights: np.ndarray | None = None,
    epoch_cells: int | None = None,
) -> dict[str, list[float]]:
    """Minibatch epochs minimising the sum of the loss terms; per-epoch means of each term.

    `sample_weights`: draw each epoch's cells with these probabilities (see
    `CellFeeder.minibatches`) instead of each cell once; `epoch_cells`: each epoch is a random
    subset of that many cells (see `CellFeeder.minibatches`).

    A non-finite loss stops training with `TrainingDiverged` (its message ends with
    `divergence`, what to change). With a `checkpoint`, the stage resumes from its saved state
    (or is skipped if it had finished) and is saved every `checkpoint.every` epochs.
    """
    history: dict[str, list[float]] = defaultdict(list)
    saved, first_epoch = _resume(checkpoint, stage, optimizer, history)
    if saved is not None:
        if saved["done"]:
            return dict(history)
        if stopper is not None:
            stopper.best, stopper.since_best = saved["extra"]["stopper"]
    bar = _epoch_bar(first_epoch, n_epochs, stage, progress, feeder)
    sync_parameters(optimizer, feeder)
    epoch = first_epoch - 1
    # counted from the stage's start, so that a resumed stage keeps the clean-up schedule
    steps = first_epoch * feeder.n_batches(
        batch_size, None if sample_weights is not None else epoch_cells
    )
    for epoch in bar:
        sums: dict[str, torch.Tensor] = {}
        cells: dict[str, int] = {}
        for batch in feeder.minibatches(batch_size, rng, sample_weights, epoch_cells):
            steps += 1
            values = _optimizer_step(optimizer, step_loss(batch), feeder, steps)
            _accumulate(sums, cells, values, len(batch.index))
        means = _epoch_means(sums, cells, feeder)
        total = sum(means.values())
        _check_finite(total, stage, epoch, divergence)
        for name, value in means.items():
            history[name].append(value)
        bar.set_postfix(loss=f"{total:.4g}", refresh=False)
        if stopper is not None and stopper.update(total):
            bar.close()  # left open by the break, the bar took the message onto its line
            logg.info(f"    {stage}: loss plateaued, stopped after {epoch + 1} epochs")
            break
        if checkpoint is not None and checkpoint.due(epoch) and epoch + 1 < n_epochs:
            extra = {} if stopper is None else {"stopper": [stopper.best, stopper.since_best]}
            checkpoint.save(
                stage, epoch=epoch, done=False, history=history, optimizer=optimizer, extra=extra
            )
    if checkpoint is not None:
        checkpoint.save(stage, epoch=epoch, done=True, history=history)
    return dict(history)


def _resume(
    checkpoint: TrainingCheckpoint | None,
    stage: str,
    optimizer: TrainingOptimizer,
    history: dict[str, list[float]],
) -> tuple[dict | None, int]:
    """Return (saved state of `stage` or None, first epoch to run).

    The saved history is restored into `history` and the optimizer state into `optimizer`.
    """
    if checkpoint is None or (saved := checkpoint.restore(stage, optimizer)) is None:
        return None, 0
    history.update({k: list(v) for k, v in saved["history"].items()})
    return saved, saved["epoch"] + 1


class _NoBar:
    """The epochs without a progress bar: what the loops use of tqdm, doing nothing."""

    def __init__(self, epochs: range):
        self._epochs = epochs

    def __iter__(self):
        return iter(self._epochs)

    def set_postfix(self, **kwargs) -> None:
        pass

    def close(self) -> None:
        pass


def _epoch_bar(first_epoch: int, n_epochs: int, stage: str, progress: bool, feeder: CellFeeder):
    # Into a log file (stderr not a terminal, not a notebook) a bar wrote a frame per epoch,
    # hundreds per run; there it is redrawn every few seconds at most.
    interactive = getattr(sys.stderr, "isatty", lambda: False)() or "ipykernel" in sys.modules
    # scanpy's verbosity 0 means errors only: no bar then (scanpy shows its own, sc.tl.umap's,
    # only above 3; a training of minutes shows its epochs at the default, as scvi-tools does)
    quiet = int(sc.settings.verbosity) == 0
    # no stream to draw on where Python runs without a console (pythonw, a frozen app)
    unwritable = sys.stderr is None
    if not progress or quiet or unwritable or not is_main(feeder):  # one bar, from rank 0
        # not a disabled tqdm: that starts tqdm's monitor thread all the same, for good
        return _NoBar(range(first_epoch, n_epochs))
    return tqdm(
        range(first_epoch, n_epochs),
        desc=stage,
        leave=False,
        initial=first_epoch,
        total=n_epochs,
        mininterval=0.1 if interactive else LOG_REDRAW_SECONDS,
    )


def _optimizer_step(
    optimizer: TrainingOptimizer,
    terms: LossTerms,
    feeder: CellFeeder,
    step: int,
) -> LossTerms:
    """Take one training step and return this process's loss terms, detached.

    Backward pass, gradients averaged over processes (when sharded), optimizer step, and every
    `VANISHING_EVERY` steps (`step` counts them) the optimizer's vanishing averages zeroed
    (`zero_vanishing_averages`). The values
    stay on the device: reading them would make the host wait for the device at every step, so
    they are summed there and read once per epoch, where `_check_finite` sees them. A non-finite
    loss (on any process: the averaged gradients carry it to all) therefore stops training at the
    end of its epoch, before anything is saved or written.
    """
    values = {name: value.detach() for name, value in terms.items()}
    loss = sum(terms.values())
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    average_gradients(optimizer, feeder)
    optimizer.step()
    if step % VANISHING_EVERY == 0:
        zero_vanishing_averages(optimizer)
    return values


def _accumulate(
    sums: dict[str, torch.Tensor], cells: dict[str, int], values: LossTerms, n: int
) -> None:
    """Add each loss term, weighted by the `n` cells of its step, to the epoch's sums.

    The sums are float64, on the device, in step order: the same numbers as adding the values
    read on the host. `cells` counts, per term, the cells of the steps that had it.
    """
    for name, value in values.items():
        weighted = value.double() * n
        sums[name] = weighted if name not in sums else sums[name] + weighted
        cells[name] = cells.get(name, 0) + n


def _epoch_means(
    sums: dict[str, torch.Tensor], cells: dict[str, int], feeder: CellFeeder
) -> dict[str, float]:
    """Each loss term's cell-weighted mean over the epoch's steps that had it, read in one go.

    Over the steps that had it, not all of them: the pairwise and known-class terms are
    spread over an epoch's steps, and with fewer pairs (or labelled cells) than steps some
    steps have none, which made the recorded term shrink with the number of steps (50 pairs
    on 20,000 cells: about 50/79 of its value).
    """
    names = list(sums)
    if not names:
        return {}
    if not feeder.distributed:
        values = torch.stack([sums[k] for k in names]).tolist()
        return {k: v / cells[k] for k, v in zip(names, values)}
    # every process has the same terms (constraints, whose steps differ, are not sharded)
    counts = torch.tensor(
        [float(cells[k]) for k in names], dtype=torch.float64, device=feeder.device
    )
    sums_here = torch.stack([sums[k].to(feeder.device) for k in names])
    totals = all_reduce_sum(torch.cat([sums_here, counts]), feeder).tolist()
    return {k: totals[i] / totals[len(names) + i] for i, k in enumerate(names)}


# On large data one epoch is many thousands of steps. Refreshing p (one inference pass) after a
# fixed number of them keeps the stage as it is on data of up to ~100,000 cells, where one epoch
# is a few hundred steps, and notices convergence early: scDCC on a million simulated cells
# stopped on `tol` within its first epoch (45 s). DESC on those cells did not settle, whether
# refreshing every 500 steps or every 2,000 (see the README's scaling section). 500 steps of
# 256 cells: every epoch up to 128,000 cells, eight times per epoch at a million.
REFRESH_MAX_STEPS = 500


# The `tol` stop compares the labels of two refreshes. On a few thousand cells one epoch is a
# dozen steps, and the stage stopped at its first check, before the clustering loss had resolved
# the cells between clusters or a batch-mixing penalty had done its work. Measured, 240 steps
# against the stop at the first check (the same commands at commit 6200a06, whose
# benchmarks/batch.py took one `--seed`):
# - DESC, benchmarks/desc_accuracy.py (medians of seeds 0 / 1 / 2): 10X PBMC true k 0.764 (was
#   0.751), defaults 0.606 (0.608, 20.1 s); mouse bladder defaults 0.614 (0.595), true k 0.541
#   (0.543); worm neuron true k 0.508 (0.492), defaults 0.437 (0.437).
# - DESC with batch_key on the simulated batches of benchmarks/batch.py: ARI 1.000 on all 6
#   runs (was 0.998-0.999 on 3 of them: cells with near-uniform soft assignments left in the
#   wrong cluster).
# - scDCC with the batch-mixing penalty there: mixing entropy, seeds 0 / 1 / 2, 2 batches
#   0.977 / 0.971 / 0.962 (was 0.968 / 0.967 / 0.964), 4 batches 0.960 / 0.961 / 0.955 (was
#   0.938 / 0.942 / 0.915); 120 steps mixed 4 batches less (0.956 / 0.957), 480 no better.
#   scDCC without it is left as measured in benchmarks/results/scdcc_accuracy.md.
# At a million cells the first check comes after REFRESH_MAX_STEPS anyway.
MIN_CLUSTERING_STEPS = 240


@dataclass
class ClusteringStage:
    """Settings of the DEC clustering stage."""

    max_epochs: int
    batch_size: int
    tol: float
    # Epochs between target refreshes (may be fractional); None: every epoch, or every
    # REFRESH_MAX_STEPS minibatches when an epoch is longer than that.
    update_interval: float | None = None
    clustering_weight: float = 1.0
    # exponent of the cluster frequency in the target (`nn.target_distribution`)
    balance: float = 1.0
    # Training steps before the `tol` stop applies (MIN_CLUSTERING_STEPS in the methods).
    min_steps: int = 0

    def refresh_every(self, n_batches: int) -> int:
        """Training steps between target refreshes."""
        if self.update_interval is None:
            return min(n_batches, REFRESH_MAX_STEPS)
        return max(1, round(self.update_interval * n_batches))


@dataclass
class StageOutputs:
    """Every cell's embedding and soft assignment as the clustering stage left them."""

    embedding: np.ndarray | None = None  # float32 (cells, latent width)
    probabilities: np.ndarray | None = None  # float32 (cells, clusters)


@torch.no_grad()
def stream_stage_outputs(
    feeder: CellFeeder, embed: Callable[[Batch], torch.Tensor], clustering_layer: ClusteringLayer
) -> StageOutputs:
    """Embed every cell of `feeder` and assign it softly, in one streaming pass.

    Without autograd: the pass only reads the network, and the refreshes call it on every cell.
    """

    def embed_and_assign(batch: Batch) -> dict[str, torch.Tensor]:
        z = embed(batch)
        return {"z": z, "q": clustering_layer(z)}

    widths = {"z": clustering_layer.centroids.shape[1], "q": clustering_layer.n_clusters}
    out = stream_outputs(feeder, embed_and_assign, widths)
    return StageOutputs(out["z"], out["q"])


def train_clustering(
    feeder: CellFeeder,
    embed: Callable[[Batch], torch.Tensor],
    clustering_layer: ClusteringLayer,
    optimizer: TrainingOptimizer,
    settings: ClusteringStage,
    *,
    rng: np.random.Generator,
    extra_loss: Callable[[Batch, torch.Tensor], LossTerms] | None = None,
    step_loss: Callable[[int], LossTerms] | None = None,
    target_prior: torch.Tensor | None = None,
    target_smoothing: TargetSmoothing | None = None,
    initial_probabilities: np.ndarray | None = None,
    initial_labels: np.ndarray | None = None,
    outputs: StageOutputs | None = None,
    progress: bool = True,
    stage: str = "clustering",
    divergence: str = DIVERGENCE_HINT,
    checkpoint: TrainingCheckpoint | None = None,
) -> dict[str, list[float]]:
    """Train `embed` and the centroids on KL(p || q) until the labels settle.

    p is refreshed (by streaming inference) as `settings.refresh_every` says, stopping once fewer
    than `tol` of the labels change between refreshes (not before `settings.min_steps` training
    steps, or half the stage's steps when it has fewer). `extra_loss(batch, z)` adds e.g. a
    reconstruction term or a batch-mixing penalty (z: `embed(batch)`, as the soft assignment
    sees it); `step_loss(step)` adds terms that depend on the training step rather than on the
    minibatch (pairwise constraints, known classes).
    `target_prior` (this process's cells x clusters, a CPU tensor) weighs the target
    (`nn.target_distribution`), e.g. by what known labels say of each cell;
    `target_smoothing` mixes the soft assignments with the cells' neighbours' before the target
    is sharpened from them (the labels whose changes are counted stay the cells' own). `stage`,
    `divergence` and `checkpoint` as in `fit_epochs` (the modules, including `clustering_layer`, are
    attached by the caller).

    Each refresh is a pass over every cell; two of them can come from elsewhere. The first needs
    the soft assignments before any training step: `initial_probabilities` (this process's
    cells, as `clustering_layer` gives them from the caller's embedding), when the caller has them.
    Where the caller changed them for the first target (`dec.leaning_on_labels`), the labels
    they gave before that are `initial_labels`: the first count of changed labels starts from
    those, so that it counts only what training moved.
    When the stage stops on `tol`, its last refresh came after its last step, so the cells'
    embedding and soft assignments at that refresh are the final ones: they are put in `outputs`
    (left empty when the stage ran to `max_epochs` or had finished before a resume).
    """
    history: dict[str, list[float]] = defaultdict(list)
    n_batches = feeder.n_batches(settings.batch_size)
    refresh_every = settings.refresh_every(n_batches)
    # On small data (or with few max_epochs) the whole stage may be shorter than min_steps; the
    # `tol` stop then applies from its second half instead of never.
    min_steps = min(settings.min_steps, settings.max_epochs * n_batches // 2)
    device = clustering_layer.centroids.device

    previous_labels: np.ndarray | None = None
    target: torch.Tensor | None = None
    step = 0
    saved, first_epoch = _resume(checkpoint, stage, optimizer, history)
    if saved is not None:
        if saved["done"]:
            return dict(history)
        step = saved["extra"]["step"]
        if saved["extra"]["previous_labels"] is not None:
            previous_labels = saved["extra"]["previous_labels"].numpy()
        if saved["extra"]["target"] is not None:
            target = saved["extra"]["target"].to(device)
    bar = _epoch_bar(first_epoch, settings.max_epochs, stage, progress, feeder)
    sync_parameters(optimizer, feeder)
    converged = False
    epoch = first_epoch - 1
    for epoch in bar:
        sums: dict[str, torch.Tensor] = {}
        cells: dict[str, int] = {}
        for batch in feeder.minibatches(settings.batch_size, rng):
            if step % refresh_every == 0:
                # Over this process's cells; the cluster frequencies of the target and the
                # count of changed labels are summed over all processes.
                if step == 0 and initial_probabilities is not None:
                    q_all, z_all = torch.from_numpy(initial_probabilities), None
                else:
                    streamed = stream_stage_outputs(feeder, embed, clustering_layer)
                    q_all, z_all = torch.from_numpy(streamed.probabilities), streamed.embedding
                if step == 0 and initial_labels is not None:
                    labels = initial_labels
                else:
                    labels = q_all.argmax(1).numpy()
                if previous_labels is not None:
                    changed = torch.tensor(
                        [float(np.sum(labels != previous_labels))], device=device
                    )
                    delta = float(all_reduce_sum(changed, feeder)) / feeder.n_total
                    history["label_change"].append(delta)
                    history["label_change_epoch"].append(step / n_batches)
                    bar.set_postfix(changed=f"{delta:.4f}", refresh=False)
                    if delta < settings.tol and step >= min_steps:
                        converged = True
                        if outputs is not None and z_all is not None:
                            outputs.embedding, outputs.probabilities = z_all, q_all.numpy()
                        break
                previous_labels = labels
                del z_all
                if target_smoothing is not None:
                    q_all = target_smoothing(q_all, feeder)
                frequency = all_reduce_sum(q_all.sum(0), feeder)
                target = target_distribution(q_all, frequency, settings.balance, target_prior).to(
                    device
                )
            z = embed(batch)
            q = clustering_layer(z)
            terms = {
                "clustering": settings.clustering_weight * kl_divergence(target[batch.index], q)
            }
            if extra_loss is not None:
                terms.update(extra_loss(batch, z))
            if step_loss is not None:
                terms.update(step_loss(step))
            step += 1
            values = _optimizer_step(optimizer, terms, feeder, step)
            _accumulate(sums, cells, values, len(batch.index))
        means = _epoch_means(sums, cells, feeder)
        if means:
            _check_finite(sum(means.values()), stage, epoch, divergence)
            for name, value in means.items():
                history[name].append(value)
        if converged:
            bar.close()
            logg.info(f"    clustering converged after {epoch} epochs (labels changed < tol)")
            break
        if checkpoint is not None and checkpoint.due(epoch) and epoch + 1 < settings.max_epochs:
            extra = {
                "step": step,
                "previous_labels": None
                if previous_labels is None
                else torch.from_numpy(previous_labels),
                "target": None if target is None else target.detach().cpu(),
            }
            checkpoint.save(
                stage, epoch=epoch, done=False, history=history, optimizer=optimizer, extra=extra
            )
    history["converged"] = [float(converged)]
    if checkpoint is not None:
        checkpoint.save(stage, epoch=epoch, done=True, history=history)
    return dict(history)
