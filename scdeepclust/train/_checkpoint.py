"""Checkpoints of a training run, so that an interrupted run can continue where it stopped.

One file, ``checkpoint.pt`` in the checkpoint directory, holds a snapshot per training stage
(e.g. ``pretraining``, ``clustering``): the weights of the attached modules, the RNG states and
the loss history, plus, for the stage in progress, the epoch, the optimizer state and what the
loop needs to go on (early-stopping counters, the DEC target). A finished stage keeps its final
snapshot, so a resumed run skips it, with the same weights and RNG states it ended with.

The loops (`fit_epochs`, `train_clustering`) call `restore` when a stage starts and `save` every
`every` epochs and when the stage ends; the methods only `attach` their modules and RNGs.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import tempfile
import warnings
from dataclasses import asdict
from os import PathLike
from pathlib import Path

import numpy as np
import torch
from scanpy import logging as logg

from .._messages import caller_stacklevel
from .._serialization import check_format_version, load_tensors, save_tensors
from .._version import __version__
from ._optim import TrainingOptimizer

CHECKPOINT_FORMAT_VERSION = 1
CHECKPOINT_FILE = "checkpoint.pt"


def run_fingerprint(**parts) -> str:
    """Return a digest of what defines a run (method, settings, data summary).

    A checkpoint is only resumed by the same run.
    """
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def array_digest(*arrays: np.ndarray) -> str:
    """Return a digest of the arrays' shapes, types and contents (for `run_fingerprint`)."""
    digest = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array)
        if array.dtype.kind in "OU":  # names: their text, not object pointers
            array = np.asarray([str(item).encode() for item in array.ravel()], dtype=bytes)
        digest.update(f"{array.dtype.str}{array.shape};".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()[:16]


def open_checkpoint(
    directory: str | PathLike | None, *, every: int, resume: bool, method: str, config, **data
) -> TrainingCheckpoint | None:
    """Return the checkpoint of a run, or None without a directory.

    The run is one of `method` with `config` (a dataclass; `progress` aside) on data summarised
    by `data`.
    """
    if directory is None:
        return None
    settings = run_settings(method=method, config=config, **data)
    return TrainingCheckpoint(
        directory,
        every=every,
        resume=resume,
        fingerprint=run_fingerprint(**settings),
        settings=settings,
    )


# Settings that do not change the training a checkpoint holds: the progress bar, and the least
# size of the reported clusters, read from the trained model's labels (a checkpoint written
# before it existed resumes, and a resumed run may merge otherwise).
NOT_OF_THE_RUN = frozenset({"progress", "min_cluster_size"})


def run_settings(*, method: str, config, **data) -> dict:
    """Return what identifies a run of `method` with `config` (a dataclass) on `data`.

    As plain JSON values: the checkpoint keeps them, to name what differs from a later call.
    """
    settings = {k: v for k, v in asdict(config).items() if k not in NOT_OF_THE_RUN}
    return json.loads(json.dumps({"method": method, "config": settings, **data}, default=str))


def run_digest(*, method: str, config, **data) -> str:
    """Return the fingerprint of a run of `method` with `config` (a dataclass) on `data`.

    What a checkpoint is resumed by, and what the processes of a distributed run must share.
    """
    return run_fingerprint(**run_settings(method=method, config=config, **data))


@contextlib.contextmanager
def report_interruption(checkpoint: TrainingCheckpoint | None):
    """On Ctrl-C during training, say how to continue (the interruption goes on up)."""
    try:
        yield
    except KeyboardInterrupt:
        if checkpoint is not None:
            logg.warning(
                "interrupted; nothing was written to adata. The same call with resume=True "
                f"continues from the checkpoint in {str(checkpoint.directory)!r} "
                f"({checkpoint.describe()})."
            )
        raise


class TrainingCheckpoint:
    """Saves and restores the training state of one run in `directory`.

    With ``resume=False`` an existing checkpoint is never overwritten (it may hold hours of
    training): the call fails and says so. With ``resume=True`` and no checkpoint yet, training
    starts from the beginning.
    """

    def __init__(
        self,
        directory: str | Path,
        *,
        every: int,
        resume: bool,
        fingerprint: str,
        settings: dict | None = None,
    ):
        if int(every) != every or every < 1:
            raise ValueError(f"checkpoint_every must be an integer >= 1, got {every!r}.")
        self.directory = Path(directory)
        self.path = self.directory / CHECKPOINT_FILE
        self.every = int(every)
        self.fingerprint = fingerprint
        self.settings = settings
        self.modules: dict[str, torch.nn.Module] = {}
        self.numpy_rngs: dict[str, np.random.Generator] = {}
        self.torch_generators: dict[str, torch.Generator] = {}
        self.stages: dict[str, dict] = {}
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            # found now, not at the first save after epochs of training (resumed runs save too)
            tempfile.TemporaryFile(dir=self.directory).close()
        except OSError as error:
            raise OSError(
                error.errno,
                f"checkpoint_dir {str(self.directory)!r} cannot be written "
                f"({error.strerror or error}): give a folder this process can write to",
            ) from error
        if self.path.exists():
            if not resume:
                raise FileExistsError(
                    f"{self.path} already holds a checkpoint. Pass resume=True to continue that "
                    "run, or use another checkpoint_dir (or delete the file) to start afresh."
                )
            data = load_tensors(self.path)
            check_format_version(data, CHECKPOINT_FORMAT_VERSION, "checkpoint", self.path)
            if not _same_run(data, fingerprint, settings):
                raise ValueError(
                    f"{self.path} was written by a run with other settings or other data; it "
                    f"can only be resumed by the same call{_differences(data, settings)}. Use "
                    "another checkpoint_dir to start a new run."
                )
            self.stages = data["stages"]
            logg.info(f"    resuming from {self.path}: {self.describe()}")
        elif resume:
            warnings.warn(
                f"resume=True, but there is no checkpoint in {str(self.directory)!r} yet: training "
                "starts from the beginning.",
                UserWarning,
                stacklevel=caller_stacklevel(),
            )

    def describe(self) -> str:
        parts = [
            f"{name} " + ("done" if snap["done"] else f"after epoch {snap['epoch'] + 1}")
            for name, snap in self.stages.items()
        ]
        return ", ".join(parts) or "nothing saved yet"

    def attach(
        self,
        *,
        modules: dict[str, torch.nn.Module] | None = None,
        numpy_rngs: dict[str, np.random.Generator] | None = None,
        torch_generators: dict[str, torch.Generator] | None = None,
    ) -> None:
        """Register what a snapshot holds."""
        self.modules.update(modules or {})
        self.numpy_rngs.update(numpy_rngs or {})
        self.torch_generators.update(torch_generators or {})

    def due(self, epoch: int) -> bool:
        return (epoch + 1) % self.every == 0

    def save(
        self,
        stage: str,
        *,
        epoch: int,
        done: bool,
        history: dict,
        optimizer: TrainingOptimizer | None = None,
        extra: dict | None = None,
    ) -> None:
        snapshot = {
            "epoch": int(epoch),
            "done": bool(done),
            "history": {k: [float(v) for v in vals] for k, vals in history.items()},
            "extra": extra or {},
            "modules": {
                name: {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}
                for name, module in self.modules.items()
            },
            "rng": self._rng_states(),
        }
        if optimizer is not None and not done:
            snapshot["optimizer"] = _to_cpu(copy.deepcopy(optimizer.state_dict()))
        stages = {**self.stages, stage: snapshot}
        save_tensors(
            self.path,
            {
                "format_version": CHECKPOINT_FORMAT_VERSION,
                "scdeepclust_version": __version__,
                "fingerprint": self.fingerprint,
                # text: read back with weights_only, whatever the values' types
                "settings": None if self.settings is None else json.dumps(self.settings),
                "stages": stages,
            },
        )
        # only once written: an interruption's message describes what the file holds
        self.stages = stages

    def restore(self, stage: str, optimizer: TrainingOptimizer | None = None) -> dict | None:
        """Load the saved state of `stage` into the attached modules, RNGs and `optimizer`.

        Return the snapshot (``done``, ``epoch``, ``history``, ``extra``), or None if there is
        none.
        """
        snapshot = self.stages.get(stage)
        if snapshot is None:
            return None
        for name, state in snapshot["modules"].items():
            if name in self.modules:
                _load_module(self.modules[name], state)
        if optimizer is not None and "optimizer" in snapshot:
            optimizer.load_state_dict(snapshot["optimizer"])
        rng = snapshot["rng"]
        for name, state in rng["numpy"].items():
            if name in self.numpy_rngs:
                self.numpy_rngs[name].bit_generator.state = state
        # Checkpoints written before DESC's dropout had its own generator saved the global
        # CPU generator it drew from then: the same kind of generator, the same stream.
        saved = {**({"dropout": rng["global"]} if "global" in rng else {}), **rng["torch"]}
        for name, state in saved.items():
            if name in self.torch_generators:
                self.torch_generators[name].set_state(state)
        if not snapshot["done"]:
            logg.info(f"    {stage}: continuing after epoch {snapshot['epoch'] + 1}")
        return snapshot

    def _rng_states(self) -> dict:
        return {
            "numpy": {k: g.bit_generator.state for k, g in self.numpy_rngs.items()},
            "torch": {k: g.get_state() for k, g in self.torch_generators.items()},
        }


def _load_module(module: torch.nn.Module, state: dict) -> None:
    # A parameter whose shape differs (centroids, if a re-run initialisation found another
    # number of clusters) takes the saved shape; the optimizer keeps the same parameter object.
    own = module.state_dict()
    for name, param in module.named_parameters():
        if name in state and own[name].shape != state[name].shape:
            param.data = torch.empty_like(state[name], device=param.device)
    module.load_state_dict(state)


def _to_cpu(obj):
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_cpu(v) for v in obj]
    return obj


# Settings that identified a run in checkpoints of earlier versions and no longer do: DESC's
# resolutions (each has a stage of its own after the shared pretraining, so that a call with
# other resolutions resumes the checkpoint).
_NO_LONGER_IDENTIFYING = ("resolutions",)
# Identify a run since a later version; a checkpoint written before is judged on the rest.
_IDENTIFYING_SINCE_LATER = ("batch_codes",)


def _same_run(saved: dict, fingerprint: str, settings: dict | None = None) -> bool:
    """Whether the checkpoint `saved` was written by the run of `fingerprint` (`settings`).

    Also for a checkpoint of an earlier version whose fingerprint included settings that no
    longer identify a run (`_NO_LONGER_IDENTIFYING`), or lacked some that now do
    (`_IDENTIFYING_SINCE_LATER`).
    """
    if saved.get("fingerprint") == fingerprint:
        return True
    if saved.get("settings") is None:
        return False
    then = json.loads(saved["settings"])
    kept = {k: v for k, v in then.items() if k not in _NO_LONGER_IDENTIFYING}
    unrecorded = [k for k in _IDENTIFYING_SINCE_LATER if k in (settings or {}) and k not in then]
    if unrecorded:
        now = {k: v for k, v in settings.items() if k not in unrecorded}
        return run_fingerprint(**kept) == run_fingerprint(**now)
    return len(kept) < len(then) and run_fingerprint(**kept) == fingerprint


def _differences(saved: dict, settings: dict | None, most: int = 6) -> str:
    """Name the settings in which the checkpoint's run and this call differ (for the refusal).

    A checkpoint written before the settings were kept (or by another scdeepclust, whose
    defaults may differ) can only be told apart by its fingerprint.
    """
    then = saved.get("settings")
    if then is None or settings is None:
        return (
            f" (it was written by scdeepclust {saved.get('scdeepclust_version', '?')}, which "
            "did not keep its settings; another version's defaults may differ even where the "
            "call is the same)"
        )
    then = {k: v for k, v in json.loads(then).items() if k not in _NO_LONGER_IDENTIFYING}
    unrecorded = [k for k in _IDENTIFYING_SINCE_LATER if k not in then]
    before = _flat(then)
    now = _flat({k: v for k, v in settings.items() if k not in unrecorded})
    # the tool, the data and the call's own options first: another tool differs in every
    # config.* entry, which sorted before it and hid it past the first few
    changed = sorted(
        (k for k in before.keys() | now.keys() if before.get(k) != now.get(k)),
        key=lambda k: (k != "method", "." in k, k),
    )
    if not changed:
        return ""
    shown = [
        f"{k}: {before.get(k, '(absent)')!r} then, {now.get(k, '(absent)')!r} now" for k in changed
    ]
    more = f"; and {len(changed) - most} more" if len(changed) > most else ""
    data = " (a digest of the data)" if any(k.startswith("data") for k in changed) else ""
    genes = ""
    shapes = before.get("shape"), now.get("shape")
    from_genes = not any(str(s.get("input", "")).startswith("obsm") for s in (before, now))
    if (
        from_genes
        and all(isinstance(s, list) and len(s) == 2 for s in shapes)
        and shapes[0][1] != shapes[1][1]
    ):
        genes = (
            ". The number of genes read differs: by default the tools read only the genes "
            "var['highly_variable'] marks; pass the run's mask_var (None: every gene)"
        )
    return f"; they differ in {'; '.join(shown[:most])}{more}{data}{genes}"


def _flat(settings: dict, prefix: str = "") -> dict:
    """Return `settings` with nested keys joined by dots (``config.init``)."""
    flat = {}
    for key, value in settings.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
