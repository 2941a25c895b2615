"""Trained models: the network, the centroids and the preprocessing of one clustering run.

`tl.scdcc(..., return_model=True)` and `tl.desc(..., return_model=True)` return an `SCDCC` or
a `DESC`. A model maps new cells onto its clusters: `predict` and `get_latent_representation`
return arrays, `tl.map_to_model` writes the same result into the AnnData. It is saved to a
directory of two files:

``weights.pt``
    The network's state dict (tensors only), read back with ``torch.load(weights_only=True)``:
    loading a model never executes code from the file.
``model.json``
    Format version, method, scdeepclust version, configuration, the genes (or `obsm` columns)
    in the order the network reads them, the preprocessing statistics and the centroids.

A save that overwrites a model writes the new weights beside the old ones first
(``weights.next.pt``), then ``model.json`` with their digest, then renames them to
``weights.pt``: interrupted anywhere, the directory still holds a model to load, the old one or
the new one.
"""

from __future__ import annotations

import ast
import hashlib
import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import asdict, is_dataclass
from os import PathLike
from pathlib import Path
from typing import ClassVar, Self

import numpy as np
import pandas as pd
import torch
from anndata import AnnData
from scanpy import logging as logg

from .._messages import caller_stacklevel
from .._results import ClusteringResult, assigned_soft_assignment
from .._serialization import (
    check_format_version,
    file_digest,
    load_tensors,
    read_json,
    save_tensors,
    write_json,
)
from .._version import __version__
from ..data import CellFeeder, RowSource, stream_outputs
from ..nn import ClusteringLayer, StackedAutoencoder, ZINBAutoencoder
from ..pp._batches import known_batch_codes
from ..pp._counts import size_factors
from ..pp._input import (
    SCALE_AS_TRAINED,
    SCALE_AS_TRAINED_UNCENTRED,
    SCALED_GENE_SCALE,
    check_adata,
    check_bools,
    check_finite,
    check_names,
    checked_counts,
    input_matrix,
    layer_names,
    scan_matrix,
    warn_if_counts,
    warn_if_normalised_unlike_training,
    warn_if_not_like_raw_counts,
    warn_if_off_scale,
    warn_if_prepared_unlike_training,
    warn_if_scaled_for_a_scaling_model,
    warn_if_transformed_counts,
    warn_if_unscaled,
)
from ..train import initial_network, resolve_device, standard_torch_mode
from ..train._confidence import ConfidenceMap

MODEL_FORMAT_VERSION = 1
WEIGHTS_FILE = "weights.pt"
NEXT_WEIGHTS_FILE = "weights.next.pt"  # a save's new weights until model.json names them
# what `load` reads from model.json besides the format version and the method
MODEL_FIELDS = ("centroids", "config", "features", "preprocessing", "key_added")
# reads of model.json and its weights before a load gives up on saves landing in between
_LOAD_ATTEMPTS = 3
CONFIG_FILE = "model.json"


def _jsonable(value):
    """Plain JSON types: tuples and arrays become lists, numpy scalars numbers."""
    if is_dataclass(value) and not isinstance(value, type):
        value = asdict(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def match_features(var_names: pd.Index, features: list[str]) -> np.ndarray:
    """Positions of the model's genes in `var_names` (-1 where missing, read as zeros).

    Missing genes are reported in a warning, genes the model does not know are ignored.
    """
    var_names = pd.Index(var_names).astype(str)
    repeated = pd.Index(features)[pd.Index(features).duplicated()]
    if len(repeated):
        raise ValueError(
            f"This model's genes have repeated names (e.g. {[str(g) for g in repeated[:3]]}), "
            "so new cells' genes cannot be matched to them. Train it again after "
            "`adata.var_names_make_unique()`."
        )
    repeated = var_names.duplicated(keep=False)
    clash = pd.Index(features).intersection(var_names[repeated])
    if len(clash):  # repeated names of genes the model does not read do not matter
        raise ValueError(
            f"adata.var_names repeat genes of the model (e.g. {[str(g) for g in clash[:3]]}), "
            "so they cannot be matched to it by name. Run `adata.var_names_make_unique()` first."
        )
    unique = np.flatnonzero(~repeated)
    found = var_names[unique].get_indexer(pd.Index(features))
    columns = np.full(len(features), -1, dtype=np.int64)
    columns[found >= 0] = unique[found[found >= 0]]
    missing = columns < 0
    n_missing = int(missing.sum())
    if n_missing == len(features):
        raise ValueError(
            f"None of the model's {len(features)} genes is in adata.var_names (model: "
            f"{[str(f) for f in features[:3]]}, adata: {[str(v) for v in var_names[:3]]}). "
            "Use the same gene identifiers as the data the model was trained on (e.g. symbols, "
            "not Ensembl IDs)."
        )
    if n_missing:
        warnings.warn(
            f"{n_missing} of the model's {len(features)} genes are not in adata.var_names (e.g. "
            f"{[str(f) for f in np.asarray(features)[missing][:3]]}) and are filled with zeros: "
            "right for genes without any count in these cells (`pp.recipe` removes genes "
            "detected in no cell), and otherwise the more are missing, the less reliable the "
            "mapping.",
            UserWarning,
            # the caller of predict / map_to_model, through _map_cells and feeder
            stacklevel=caller_stacklevel(),
        )
    n_extra = len(var_names) - (len(features) - n_missing)
    if n_extra:
        logg.info(f"    {n_extra} genes of adata are not in the model and are ignored")
    return columns


class TrainedModel:
    """A trained clustering model (base of `SCDCC` and `DESC`).

    Attributes
    ----------
    network
        The torch module (its `encode` gives the embedding).
    centroids
        Cluster centres in the embedding, (n_clusters, latent_dim) float32.
    config
        The settings it was trained with.
    features
        Genes (``var_names``), or for DESC on ``obsm`` the column positions, in the order the
        network reads them.
    preprocessing
        What turns new cells into network input like the training cells were.
    key_added
        The key its training results were written under (the default key of
        `tl.map_to_model`).
    confidence_map
        The function from a cell's soft assignment to its reported confidence, fitted on the
        training cells; `None` for models saved before it existed (mapped cells then report
        the soft assignment itself).
    label_classes
        The known classes whose labelled cells started clusters 0, 1, ... (scDCC with
        `label_key`; ``uns[key]['label_classes']`` of the training run); `None` otherwise.
        Mapped cells get them in ``uns[key]['label_classes']`` too.
    empty_clusters
        The clusters that held no training cell at the end (``uns[key]['empty_clusters']`` of
        the training run, e.g. emptied by `refine` or merged by `min_cluster_size`): mapped
        cells are assigned among the others, so that their labels name clusters of the
        reference. Empty for models saved by earlier versions.
    """

    method: ClassVar[str] = ""

    def __init__(
        self,
        network: torch.nn.Module,
        centroids: np.ndarray,
        *,
        config: dict,
        features: list[str],
        preprocessing: dict,
        key_added: str,
        confidence_map: ConfidenceMap | None = None,
        trained_with: str = __version__,
        label_classes: Sequence[str] | None = None,
        empty_clusters: Sequence[int] = (),
    ):
        self.network = network
        self.centroids = np.asarray(centroids, dtype=np.float32)
        self.config = _jsonable(config)
        self.features = [str(f) for f in features]
        self.preprocessing = _jsonable(preprocessing)
        self.key_added = key_added
        self.confidence_map = confidence_map
        self.trained_with = trained_with
        self.label_classes = None if label_classes is None else [str(c) for c in label_classes]
        self.empty_clusters = sorted(int(c) for c in empty_clusters)

    @property
    def n_clusters(self) -> int:
        return self.centroids.shape[0]

    @property
    def latent_dim(self) -> int:
        return self.centroids.shape[1]

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__} model: {len(self.features)} features -> {self.latent_dim}-d "
            f"embedding, {self.n_clusters} clusters (trained as {self.key_added!r} with "
            f"scdeepclust {self.trained_with})"
        )

    # -- mapping new cells --------------------------------------------------------------------

    def _map_cells(
        self,
        adata: AnnData,
        *,
        layer: str | None = None,
        batch_key: str | None = None,
        device: str | torch.device = "auto",
    ) -> ClusteringResult:
        """Embed and assign new cells, reading `adata` only.

        The one path from new cells to a result: `predict`, `get_latent_representation` and
        :func:`scdeepclust.tl.map_to_model` (which writes it) all go through it.
        """
        reads_genes = self.preprocessing.get("input", {}).get("kind") != "obsm"
        check_adata(adata, min_cells=1, writes=False, need_genes=reads_genes)
        check_names(layer=layer, batch_key=batch_key)
        dev = resolve_device(device)
        start = logg.info(f"mapping {adata.n_obs} cells onto {self!r}")
        feeder = self.feeder(adata, layer=layer, device=dev, batch_key=batch_key)
        with standard_torch_mode():
            result = self.assign(feeder)
        result.params.update(
            layer=layer,
            device=str(dev),
            batch_key=batch_key if batch_key is not None else self.batch_key,
        )
        result.info["n_genes_missing"] = feeder.source.n_missing_columns
        if self.label_classes is not None:  # which cluster started from which known class
            result.info["label_classes"] = np.asarray(self.label_classes, dtype=str)
        logg.info(f"    assigned to {self.n_clusters} clusters", time=start)
        return result

    def predict(
        self,
        adata: AnnData,
        *,
        soft: bool = False,
        layer: str | None = None,
        batch_key: str | None = None,
        device: str | torch.device = "auto",
    ) -> np.ndarray:
        """Assign new cells to the trained clusters and return the result, writing nothing.

        The cells are preprocessed, embedded and assigned exactly as by
        :func:`scdeepclust.tl.map_to_model` (which documents what input each method expects and
        how genes are matched); `adata` is only read. To write the labels, probabilities and
        embedding into `adata` instead, call ``tl.map_to_model(adata, model)``.

        Parameters
        ----------
        adata
            The new cells.
        soft
            Return the soft assignments to every cluster instead of the labels.
        layer
            Take the input from this layer instead of the default.
        batch_key
            For a model trained with `batch_key`: the `obs` column holding the new cells'
            batches (default: the column name used in training).
        device
            "auto", "cpu", "cuda" or "cuda:N".

        Returns
        -------
        numpy.ndarray
            ``soft=False``: the cluster of each cell, integers ``0 .. n_clusters - 1`` of shape
            ``(n_obs,)`` (`map_to_model` writes them as the categories ``"0"``, ``"1"``, ...
            of ``obs[key]``). ``soft=True``: the soft assignments, float32 of shape
            ``(n_obs, n_clusters)`` with rows summing to 1 (``obsm[key + '_probs']``); the
            label is the largest of each row outside `empty_clusters`. On the training cells
            the labels are those of training except where training reported others: cells
            moved by `refine`, and labelled cells whose known class scDCC's `keep_labels` kept.

        See Also
        --------
        get_latent_representation : The embedding of the same cells.
        """
        check_bools(soft=soft)
        result = self._map_cells(adata, layer=layer, batch_key=batch_key, device=device)
        return result.probabilities if soft else result.labels

    def get_latent_representation(
        self,
        adata: AnnData,
        *,
        layer: str | None = None,
        batch_key: str | None = None,
        device: str | torch.device = "auto",
    ) -> np.ndarray:
        """Embed new cells with the trained network and return the embedding, writing nothing.

        The cells are preprocessed and embedded exactly as by
        :func:`scdeepclust.tl.map_to_model`; `adata` is only read.

        Parameters
        ----------
        adata
            The new cells.
        layer
            Take the input from this layer instead of the default.
        batch_key
            For a model trained with `batch_key`: the `obs` column holding the new cells'
            batches (default: the column name used in training).
        device
            "auto", "cpu", "cuda" or "cuda:N".

        Returns
        -------
        numpy.ndarray
            Float32 of shape ``(n_obs, latent_dim)``: what `map_to_model` writes to
            ``obsm['X_' + key]``. Store it yourself with e.g.
            ``adata.obsm['X_scdcc'] = model.get_latent_representation(adata)``.

        See Also
        --------
        predict : The clusters of the same cells.
        """
        return self._map_cells(adata, layer=layer, batch_key=batch_key, device=device).embedding

    @property
    def batch_key(self) -> str | None:
        """The `obs` column of the batches it was trained with (`None`: without batches)."""
        return self.config.get("batch_key")

    @property
    def batch_categories(self) -> list[str]:
        """The batches it knows, in the order of its batch codes."""
        return list(self.config.get("batch_categories") or [])

    def batch_codes(self, adata: AnnData, batch_key: str | None = None) -> np.ndarray | None:
        """Code the new cells' batches as in training.

        Parameters
        ----------
        adata
            The new cells.
        batch_key
            The `obs` column holding their batches (default: the column used in training).

        Returns
        -------
        numpy.ndarray or None
            One code per cell, in the order of :attr:`batch_categories`; `None` for a model
            trained without batches.
        """
        if not self.batch_categories:
            if batch_key is not None:
                raise ValueError(
                    "This model was trained without batch_key, so new cells' batches cannot "
                    "be used; leave batch_key out."
                )
            return None
        return known_batch_codes(
            adata,
            self.batch_key if batch_key is None else batch_key,
            self.batch_categories,
            trained_key=self.batch_key,
        )

    def feeder(
        self,
        adata: AnnData,
        *,
        layer: str | None,
        device: torch.device,
        batch_key: str | None = None,
    ) -> CellFeeder:
        """Prepare the new cells as network input, with genes matched to the model by name.

        Each model class reads and preprocesses its input as it did in training, which is why
        this is left to the subclasses.
        """
        raise NotImplementedError

    def clustering_layer(self) -> ClusteringLayer:
        return ClusteringLayer(
            torch.from_numpy(self.centroids),
            kernel=self.config.get("kernel", "t"),
            alpha=self.config.get("alpha", 1.0),
        )

    def assign(self, feeder: CellFeeder) -> ClusteringResult:
        """Embedding, soft assignments and labels of every cell of `feeder`."""
        network = self.network.to(feeder.device)
        layer = self.clustering_layer().to(feeder.device)

        def run(batch):
            z = network.encode(batch.x, batch_code=batch.batch_code)
            return {"z": z, "q": layer(z)}

        out = stream_outputs(feeder, run, {"z": self.latent_dim, "q": self.n_clusters})
        if self.empty_clusters:  # no cell of the reference is there to share a name with
            populated = np.setdiff1d(np.arange(self.n_clusters), self.empty_clusters)
            labels = populated[out["q"][:, populated].argmax(1)]
        else:
            labels = out["q"].argmax(1)
        confidence = None
        if self.confidence_map is not None:
            confidence = self.confidence_map(assigned_soft_assignment(out["q"], labels))
        return ClusteringResult(
            labels=labels,
            embedding=out["z"],
            probabilities=out["q"],
            confidence=confidence,
            params={"method": self.method, "model_key": self.key_added},
            info={"model_version": self.trained_with},
        )

    # -- saving and loading -------------------------------------------------------------------

    def save(self, directory: str | PathLike, *, overwrite: bool = False) -> Path:
        """Write ``weights.pt`` and ``model.json`` into `directory` (created if needed).

        ``model.json`` holds a digest of the weights, and the new weights take their place only
        after it is written: a save that stops anywhere (a full disk, an interruption) leaves
        the old model or the new one to load, never the new weights with the old centroids.

        Parameters
        ----------
        directory
            The folder to write; created with its parents if missing.
        overwrite
            Replace a model already in `directory`. Without it such a folder is refused
            (`FileExistsError`), so that running a notebook cell again cannot silently replace
            a model saved from another run.

        Returns
        -------
        The folder written, as a :class:`~pathlib.Path`.
        """
        check_bools(overwrite=overwrite)
        if not isinstance(directory, str | PathLike) or str(directory).strip() == "":
            raise ValueError(  # "" is the current folder to pathlib
                f"directory must name a folder (a path), got {directory!r}."
            )
        directory = Path(directory)
        existing = [f for f in (WEIGHTS_FILE, CONFIG_FILE) if (directory / f).exists()]
        if existing and not overwrite:
            raise FileExistsError(
                f"{directory} already holds a model ({', '.join(existing)}). Pass "
                "overwrite=True to replace it, or choose another directory."
            )
        state = {k: v.detach().cpu() for k, v in self.network.state_dict().items()}
        weights, next_weights = directory / WEIGHTS_FILE, directory / NEXT_WEIGHTS_FILE
        _finish_interrupted_save(directory)  # else this save would overwrite the model it left
        save_tensors(next_weights, state)
        meta = {**self.metadata(), "weights_sha256": file_digest(next_weights)}
        write_json(directory / CONFIG_FILE, meta)
        try:
            os.replace(next_weights, weights)
        except OSError as error:
            raise type(error)(
                error.errno, f"{error.strerror or error}: could not write {weights}"
            ) from error
        return directory

    def metadata(self) -> dict:
        return {
            "format_version": MODEL_FORMAT_VERSION,
            "method": self.method,
            "scdeepclust_version": self.trained_with,
            "key_added": self.key_added,
            "config": self.config,
            "features": self.features,
            "preprocessing": self.preprocessing,
            "centroids": self.centroids.tolist(),
            **(
                {}
                if self.confidence_map is None
                else {"confidence_map": self.confidence_map.as_dict()}
            ),
            **({} if self.label_classes is None else {"label_classes": self.label_classes}),
            **({"empty_clusters": self.empty_clusters} if self.empty_clusters else {}),
        }

    @classmethod
    def load(cls, directory: str | PathLike, *, device: str | torch.device = "cpu") -> Self:
        """Read a model written by `save`.

        Files of a newer format version are refused: this release cannot know what they hold.

        Parameters
        ----------
        directory
            A folder written by `save`.
        device
            Where the weights go: "cpu" (the default, so that a model saved on a GPU machine
            loads anywhere), "cuda" or "auto" (CUDA when present, as the tools' default).
        """
        directory = Path(directory)
        if directory.is_file() and directory.name in (CONFIG_FILE, WEIGHTS_FILE):
            raise FileNotFoundError(
                f"{directory} is a file of a saved model: pass its folder, {directory.parent}."
            )
        if not directory.is_dir():
            raise FileNotFoundError(f"No model directory {directory}.")
        device = resolve_device(device)
        weights_present = [f for f in (WEIGHTS_FILE, NEXT_WEIGHTS_FILE) if (directory / f).exists()]
        if not (directory / CONFIG_FILE).exists() and weights_present:
            raise FileNotFoundError(
                f"{directory} holds {weights_present[0]} but no {CONFIG_FILE}: a save that did "
                "not finish? Save the model again (overwrite=True)."
            )
        if not (directory / CONFIG_FILE).exists():
            raise FileNotFoundError(
                f"{directory} is not a saved model: it holds no {CONFIG_FILE} (nor "
                f"{WEIGHTS_FILE}). Pass the folder that model.save wrote."
            )
        # model.json, then the weights it names: a save by another process can land between
        # the two reads, which the digest tells (model.json read again, for earlier versions'
        # files without one); the pair is then read again, so that a load gives one model
        # whole, never one model's centroids with another's weights
        for attempt in range(_LOAD_ATTEMPTS):
            last = attempt + 1 == _LOAD_ATTEMPTS
            meta = read_json(directory / CONFIG_FILE)
            model_cls = cls._saved_class(meta, directory)
            try:
                weights, weights_bytes = _saved_weights(directory, meta.get("weights_sha256"))
            except (ValueError, FileNotFoundError):
                # tried again even where model.json reads the same: saves of two models in
                # turn can leave it as it was and weights.pt another's (and files truly put
                # together fail every time)
                if last:
                    raise
                continue
            if meta.get("weights_sha256") is not None or read_json(directory / CONFIG_FILE) == meta:
                break
            if last:
                raise ValueError(
                    f"{directory / CONFIG_FILE} changed while it was loaded, {_LOAD_ATTEMPTS} "
                    "times: another process is saving into the folder. Load it when that is done."
                )
        centroids = np.asarray(meta["centroids"], dtype=np.float32)
        # on the CPU whatever torch's default device is (moved below); the initial weights,
        # replaced by the saved ones, draw nothing from the caller's global generator
        with standard_torch_mode():
            network = initial_network(
                lambda: model_cls.build_network(meta["config"], len(meta["features"])), 0
            )
        state = load_tensors(weights, device, data=weights_bytes)
        try:
            network.load_state_dict(state)
        except (RuntimeError, KeyError) as err:
            raise ValueError(f"{weights} does not match {directory / CONFIG_FILE}: {err}") from err
        return model_cls(
            network.to(device),
            centroids,
            config=meta["config"],
            features=meta["features"],
            preprocessing=meta["preprocessing"],
            key_added=meta["key_added"],
            confidence_map=(
                ConfidenceMap.from_dict(meta["confidence_map"])
                if "confidence_map" in meta
                else None
            ),
            trained_with=meta.get("scdeepclust_version", "?"),
            label_classes=meta.get("label_classes"),
            empty_clusters=meta.get("empty_clusters", ()),
        )

    @classmethod
    def _saved_class(cls, meta: dict, directory: Path) -> type[TrainedModel]:
        """Check `meta` (a saved ``model.json``) and return the model class it names."""
        check_format_version(meta, MODEL_FORMAT_VERSION, "model", directory / CONFIG_FILE)
        model_cls = MODEL_CLASSES.get(meta.get("method"))
        if model_cls is None:
            raise ValueError(f"{directory} holds an unknown method {meta.get('method')!r}.")
        if cls is not TrainedModel and model_cls is not cls:
            raise ValueError(
                f"{directory} holds a {model_cls.__name__} model, not a {cls.__name__}; load it "
                f"with scdeepclust.models.{model_cls.__name__}.load or scdeepclust.models.load."
            )
        missing = [k for k in MODEL_FIELDS if k not in meta]
        if missing:
            raise ValueError(
                f"{directory / CONFIG_FILE} lacks {missing}; it was not written by "
                "model.save, or was edited. Save the model again."
            )
        return model_cls

    @staticmethod
    def build_network(config: dict, n_input: int) -> torch.nn.Module:
        raise NotImplementedError


class SCDCC(TrainedModel):
    """A trained scDCC model (ZINB autoencoder and centroids).

    Get one with ``tl.scdcc(adata, n_clusters, return_model=True)`` or
    ``SCDCC.load(directory)``; training lives in :mod:`scdeepclust.tl`, which builds on this
    module, so there is no ``SCDCC.fit``. New cells' counts are read from the layer of the
    training counts where they have one of that name (else ``layers['counts']``, else ``X``),
    normalised with size factors from their
    own library sizes (in the model's genes) relative to the training median, and z-scored with
    the training gene means and scales.
    """

    method = "scdcc"

    def training_layer(self, adata: AnnData) -> str | None:
        """Return the layer the training counts came from, where `adata` has one of that name.

        Otherwise (or for ``layers['counts']``) None: the new cells' counts are then found as
        the tool finds them (``layers['counts']``, else ``X``).
        """
        match = re.fullmatch(r"layers\[(.+)\]", self.preprocessing.get("counts_from", ""))
        if match is None:
            return None
        try:
            name = ast.literal_eval(match.group(1))
        except (ValueError, SyntaxError):
            return None
        # 'counts' is where the default looks first anyway, and its refusal then says so
        found = isinstance(name, str) and name in adata.layers and name != "counts"
        return name if found else None

    @staticmethod
    def build_network(config: dict, n_input: int) -> torch.nn.Module:
        return ZINBAutoencoder(
            n_input,
            encoder_hidden=tuple(config["encoder_hidden"]),
            latent_dim=config["latent_dim"],
            decoder_hidden=tuple(config["decoder_hidden"]),
            n_batches=len(config.get("batch_categories") or ()),
            precision=config.get("precision", "float32"),  # saved before the option existed
        )

    def feeder(
        self,
        adata: AnnData,
        *,
        layer: str | None,
        device: torch.device,
        batch_key: str | None = None,
    ) -> CellFeeder:
        codes = self.batch_codes(adata, batch_key)
        columns = match_features(adata.var_names, self.features)
        if layer is None:
            layer = self.training_layer(adata)
        # judged on the model's genes: the others may be anything (mask_var left them out)
        matrix, where, summary = checked_counts(adata, layer, columns=columns[columns >= 0])
        warn_if_not_like_raw_counts(summary, where, mapping=True)
        source = RowSource(matrix, columns=columns)
        pre = self.preprocessing
        factors, _ = size_factors(
            source,
            pre["median_library_size"],
            cell_names=adata.obs_names,
            genes="the model's genes",
            remedy="The model cannot place them; map the other cells.",
        )
        return CellFeeder(
            source,
            device=device,
            size_factors=factors.astype(np.float32),
            gene_mean=np.asarray(pre["gene_mean"], dtype=np.float32),
            gene_scale=np.asarray(pre["gene_scale"], dtype=np.float32),
            max_value=pre.get("max_value"),
            batch_codes=codes,
        )


class DESC(TrainedModel):
    """A trained DESC model (stacked autoencoder, of which the encoder is used, and centroids).

    Get one with ``tl.desc(adata, return_model=True)`` or ``DESC.load(directory)`` (there is
    no ``DESC.fit``: training lives in :mod:`scdeepclust.tl`, which builds on this module). New
    cells are read from the same place as the training cells (``X``, the layer, or
    ``obsm[use_rep]``) and must be preprocessed the same way (normalisation, log, scaling); for
    ``use_rep`` they must be projected into the same space (e.g. with the training PCA
    loadings).
    """

    method = "desc"

    @staticmethod
    def build_network(config: dict, n_input: int) -> torch.nn.Module:
        return StackedAutoencoder(
            n_input,
            tuple(config["hidden"]),
            n_batches=len(config.get("batch_categories") or ()),
            precision=config.get("precision", "float32"),  # saved before the option existed
        )

    def feeder(
        self,
        adata: AnnData,
        *,
        layer: str | None,
        device: torch.device,
        batch_key: str | None = None,
    ) -> CellFeeder:
        codes = self.batch_codes(adata, batch_key)
        source = self.preprocessing["input"]
        if source["kind"] == "obsm":
            if layer is not None:
                raise ValueError(
                    f"This model reads adata.obsm[{source['key']!r}]; `layer` does not apply."
                )
            matrix, where = input_matrix(adata, use_rep=source["key"])
            stored = adata.obsm[source["key"]]
            if "column_names" in source and isinstance(stored, pd.DataFrame):
                columns = _named_columns(stored.columns, source["column_names"], where)
            elif matrix.shape[1] != source["n_columns"]:
                raise ValueError(
                    f"adata.{where} has {matrix.shape[1]} columns; the model was trained on "
                    f"{source['n_columns']}. Project the new cells into the same space."
                )
            else:
                columns = np.asarray([int(f) for f in self.features])
        else:
            if layer is None and source["kind"] == "layer":
                layer = source["key"]
                if layer not in adata.layers:
                    raise KeyError(
                        f"This model was trained on layers[{layer!r}], which adata lacks "
                        f"(layers: {layer_names(adata)}); name the layer of the new cells that "
                        "holds the same values with `layer=`."
                    )
            columns = match_features(adata.var_names, self.features)
            matrix, where = input_matrix(adata, layer=layer, columns=columns[columns >= 0])
        # judged on the model's genes: the others may be anything (mask_var left them out)
        summary = scan_matrix(
            matrix,
            where=where,
            gene_scales=source["kind"] != "obsm",
            columns=columns[columns >= 0],
        )
        check_finite(summary, where)
        pre = self.preprocessing
        scaled = pre.get("gene_mean") is not None
        if source["kind"] != "obsm":
            trained_on_negatives = pre.get("input_has_negatives")  # None: older models
            warn_if_counts(
                summary,
                where,
                model_scales=scaled,
                trained_on_negatives=trained_on_negatives,
                trained_gene_scale=pre.get("input_gene_scale"),
            )
            warn_if_transformed_counts(
                summary, where, then="the steps the model's training cells went through"
            )
            # not where the training cells had negative values themselves (ComBat, residuals)
            if scaled and trained_on_negatives is False:
                warn_if_scaled_for_a_scaling_model(summary, where)
                warn_if_normalised_unlike_training(summary, where, pre.get("input_gene_scale"))
            # the model z-scores them itself, or was trained on such cells (models saved
            # before the training input's scale was kept say nothing)
            trained_scaled = pre.get("input_gene_scale", 0.0) >= SCALED_GENE_SCALE
            warned = False
            if not scaled and self.batch_key is None and trained_scaled:
                warned = warn_if_off_scale(summary, where, mapping=True) or warn_if_unscaled(
                    summary,
                    where,
                    remedy="Prepare the new cells as the model's were: "
                    + (
                        f"{SCALE_AS_TRAINED_UNCENTRED} (its training cells had no negative values)."
                        if trained_on_negatives is False
                        else f"{SCALE_AS_TRAINED}."
                    ),
                )
            # read as given: scaled or not, as the training cells were
            if not scaled and trained_on_negatives is not None and not warned:
                warn_if_prepared_unlike_training(
                    summary,
                    where,
                    trained_on_negatives=trained_on_negatives,
                    trained_gene_scale=pre.get("input_gene_scale"),
                )
        if summary.zero_rows.any():  # scDCC's size factors refuse them; here they get a label
            examples = list(adata.obs_names[summary.zero_rows][:3])
            what = "columns" if source["kind"] == "obsm" else "genes"
            warnings.warn(
                f"{int(summary.zero_rows.sum())} cell(s) are all zero in adata.{where} in the "
                f"model's {what} (e.g. {examples}): they carry no information and all land "
                "where the zero vector does, so their cluster says nothing about them. Leave "
                "them out of the mapping.",
                UserWarning,
                stacklevel=caller_stacklevel(),
            )
        return CellFeeder(
            RowSource(matrix, columns=columns),
            device=device,
            gene_mean=np.asarray(pre["gene_mean"], dtype=np.float32) if scaled else None,
            gene_scale=np.asarray(pre["gene_scale"], dtype=np.float32) if scaled else None,
            batch_codes=codes,
        )


def _finish_interrupted_save(directory: Path) -> None:
    """Rename the weights that `model.json` names to ``weights.pt`` where a save stopped first."""
    next_weights = directory / NEXT_WEIGHTS_FILE
    if not (next_weights.exists() and (directory / CONFIG_FILE).exists()):
        return
    try:
        digest = read_json(directory / CONFIG_FILE).get("weights_sha256")
    except ValueError:  # not model.json's JSON: nothing of a model to keep
        return
    if digest is not None and file_digest(next_weights) == digest:
        os.replace(next_weights, directory / WEIGHTS_FILE)


def _saved_weights(directory: Path, digest: str | None) -> tuple[Path, bytes]:
    """Return the weights file that `model.json` was saved with, and its bytes.

    That is ``weights.pt``, or ``weights.next.pt`` where a save stopped after writing
    ``model.json`` and before renaming the new weights. Files of earlier versions hold no
    digest: ``weights.pt``. The bytes whose digest matched are the ones to load: opened
    again, the file could be another save's by then.
    """
    weights = directory / WEIGHTS_FILE
    if digest is None:
        try:
            return weights, weights.read_bytes()
        except FileNotFoundError:
            raise FileNotFoundError(f"No such file: {weights}") from None
    # weights.next.pt first: a save renames it to weights.pt, so that read second, the new
    # weights are found in one file or the other
    for candidate in (directory / NEXT_WEIGHTS_FILE, weights):
        try:
            data = candidate.read_bytes()
        except FileNotFoundError:  # also where another save renamed it meanwhile
            continue
        if hashlib.sha256(data).hexdigest() == digest:
            return candidate, data
    if not weights.exists():
        raise FileNotFoundError(
            f"{directory} holds {CONFIG_FILE} but not the {WEIGHTS_FILE} it was saved with. "
            "Save the model again."
        )
    raise ValueError(
        f"{weights} is not the file {CONFIG_FILE} was saved with: a save that did not finish, "
        "or files of two models put together. Save the model again (overwrite=True); where "
        "another process is saving into the folder, load it when that is done."
    )


def _named_columns(present: pd.Index, trained: list[str], where: str) -> np.ndarray:
    """Positions in `present` of the columns a model was trained on (a DataFrame's, by name)."""
    present = pd.Index(present.astype(str))
    repeated = sorted(set(present[present.duplicated()]) & set(trained))
    if repeated:
        raise ValueError(
            f"adata.{where} has more than one column named {repeated[:3]}; the model's columns "
            "are matched by name. Give each column its own name."
        )
    first = {name: at for at, name in reversed(list(enumerate(present)))}
    positions = np.asarray([first.get(name, -1) for name in trained], dtype=np.int64)
    if (positions < 0).any():
        missing = [name for name, at in zip(trained, positions) if at < 0]
        raise ValueError(
            f"adata.{where} lacks {len(missing)} of the {len(trained)} columns the model was "
            f"trained on (e.g. {missing[:3]}); a DataFrame's columns are matched by name. "
            "Project the new cells into the same space, with the same column names."
        )
    return positions


MODEL_CLASSES: dict[str, type[TrainedModel]] = {"scdcc": SCDCC, "desc": DESC}


def load(directory: str | PathLike, *, device: str | torch.device = "cpu") -> TrainedModel:
    """Load a saved `SCDCC` or `DESC` model, whichever `directory` holds.

    Parameters
    ----------
    directory
        A folder written by `TrainedModel.save`.
    device
        "cpu" (the default: a model saved on a GPU machine loads anywhere), "cuda" or "auto".
    """
    return TrainedModel.load(directory, device=device)
