"""Torch modules shared by the methods: MLP blocks, autoencoders, the clustering layer."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

# Masks per bank (two banks); fewer for inputs so wide that a bank would pass
# MASK_BANK_MAX_BYTES, but never fewer than a minibatch has rows.
MASK_BANK_ROWS = 2048
MASK_BANK_MAX_BYTES = 32 * 2**20


class DropoutMasks:
    """Denoising dropout of a fixed width whose masks come from two banks drawn once.

    A fresh mask per entry (`torch.rand` over 256 x 2,000, a comparison, two multiplies) took
    about a fifth of DESC's pretraining on the CPU (10X PBMC: 1.7 of 8.3 s). Here each call
    multiplies a minibatch by `len(x)` consecutive rows of each of two banks of Bernoulli
    masks, each bank's slice starting at its own row drawn from the CPU generator `offsets`
    (torch's global one if None): two multiplies. The banks keep an entry with probability
    sqrt(1 - p) each, so their product keeps it with probability 1 - p (one bank also carries
    the 1 / (1 - p) scaling), and a cell meets one of rows x rows masks (about 4 million), from
    a minibatch that is itself a fresh random draw of cells. The banks come from their own
    `seed`, on the CPU, so every device applies the same masks.
    """

    def __init__(
        self,
        width: int,
        p: float,
        *,
        seed: int,
        offsets: torch.Generator | None = None,
        max_rows: int,
        device: torch.device | str,
    ):
        if not 0 < p < 1:
            raise ValueError(f"dropout rate must be in (0, 1), got {p}.")
        self.max_rows = int(max_rows)
        self.offsets = offsets
        self.rows = max(min(MASK_BANK_ROWS, MASK_BANK_MAX_BYTES // (4 * width)), self.max_rows)
        generator = torch.Generator().manual_seed(int(seed))
        uniform = torch.rand((2, self.rows, width), generator=generator, device="cpu")
        banks = (uniform < math.sqrt(1.0 - p)).to(torch.float32)
        banks[0] *= 1.0 / (1.0 - p)
        # the first max_rows masks repeated at the end: a slice from any start never wraps
        self._banks = torch.cat([banks, banks[:, : self.max_rows]], dim=1).to(device)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        n = len(x)
        if n > self.max_rows:
            raise ValueError(f"{n} rows exceed the {self.max_rows} of a dropout minibatch.")
        a, b = torch.randint(self.rows, (2,), generator=self.offsets, device="cpu").tolist()
        return x * self._banks[0, a : a + n].to(x.dtype) * self._banks[1, b : b + n].to(x.dtype)


# What a network's layers compute in. "bfloat16" runs the linear layers under torch's autocast
# (float32 weights, optimiser and losses; bfloat16 products): on a 2-core CPU with AMX
# `benchmarks/scaling.py --precision bfloat16` measured 1,068-2,226 GFLOP/s on training's
# shapes, against 236-291 in float32.
PRECISIONS = ("float32", "bfloat16")


class ComputePrecision:
    """What both autoencoders share: their layers run in `precision`, their outputs are float32.

    Kept with the network (and saved in its configuration), so that training, inference and a
    saved model mapping new cells all compute the same way.
    """

    precision: str  # set by each network's __init__

    def _layers_in(self, x: torch.Tensor) -> contextlib.AbstractContextManager:
        if self.precision == "float32":  # also where a caller's autocast is open
            return torch.autocast(x.device.type, enabled=False)
        # No weight cache: inside an enclosing autocast block (the tools open one, and so may a
        # caller) the cache lives until that block ends, and later steps would compute with
        # the bfloat16 copies of weights the optimiser has since changed.
        return torch.autocast(x.device.type, dtype=torch.bfloat16, cache_enabled=False)


def mlp(
    sizes: Sequence[int], *, dropout: float = 0.0, last_activation: bool = True
) -> nn.Sequential:
    """Linear layers of the given sizes with ReLU between them (and after the last if asked)."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(n_in, n_out))
        if last_activation or i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def batch_shift(n_batches: int, width: int) -> nn.Embedding | None:
    """Make a learned per-batch offset of a layer's pre-activation.

    The same as giving the layer the one-hot batch as extra inputs (a conditional autoencoder, as in
    scVI), without building the one-hot matrix. Starts at zero, i.e. as the unconditioned network;
    `None` without batches.
    """
    if n_batches <= 0:
        return None
    shift = nn.Embedding(n_batches, width)
    nn.init.zeros_(shift.weight)
    return shift


def _shifted(h: torch.Tensor, shift: nn.Embedding | None, batch_code: torch.Tensor | None):
    if shift is None:
        return h
    if batch_code is None:
        raise ValueError("This network was trained with batches: give each cell's batch code.")
    return h + shift(batch_code)


@dataclass
class ZINBParameters:
    """Zero-inflated negative binomial parameters per cell and gene.

    Kept in log space where that is what the likelihood needs.
    """

    log_mean: torch.Tensor  # log of the mean count, size factor included
    dispersion: torch.Tensor  # inverse dispersion theta > 0
    dropout_logits: torch.Tensor  # logit of the zero-inflation probability

    @property
    def mean(self) -> torch.Tensor:
        return self.log_mean.exp()

    @property
    def dropout(self) -> torch.Tensor:
        return torch.sigmoid(self.dropout_logits)


# Output ranges of the ZINB heads, as in scDeepCluster: mean in [1e-5, 1e6] (before the size
# factor), dispersion in [1e-4, 1e4].
LOG_MEAN_RANGE = (math.log(1e-5), math.log(1e6))
DISPERSION_RANGE = (1e-4, 1e4)


class ZINBAutoencoder(ComputePrecision, nn.Module):
    """Autoencoder whose decoder gives the parameters of a ZINB distribution of the counts.

    With `n_batches` > 0 it is conditional on the batch: the batch enters the encoder's first
    layer, the decoder's first layer and the ZINB heads (so the mean, dispersion and dropout of
    each gene may differ by batch), and the latent space need not encode it.
    """

    def __init__(
        self,
        n_input: int,
        *,
        encoder_hidden: Sequence[int] = (256, 64),
        latent_dim: int = 32,
        decoder_hidden: Sequence[int] = (64, 256),
        n_batches: int = 0,
        precision: str = "float32",
    ):
        super().__init__()
        self.precision = precision
        self.encoder = mlp([n_input, *encoder_hidden])
        self.to_latent = nn.Linear(encoder_hidden[-1] if encoder_hidden else n_input, latent_dim)
        self.decoder = mlp([latent_dim, *decoder_hidden])
        width = decoder_hidden[-1] if decoder_hidden else latent_dim
        # Mean, dispersion and dropout heads as one matrix multiply.
        self.zinb_heads = nn.Linear(width, 3 * n_input)
        self.latent_dim = latent_dim
        # Created last: without batches the other parameters draw the same random numbers.
        self.encoder_batch = batch_shift(
            n_batches, encoder_hidden[0] if encoder_hidden else latent_dim
        )
        self.decoder_batch = batch_shift(n_batches, decoder_hidden[0]) if decoder_hidden else None
        self.heads_batch = batch_shift(n_batches, 3 * n_input)

    @torch.no_grad()
    def scale_initial_mean(self, factor: float) -> None:
        """Multiply every gene's mean, before the size factor, by `factor` (before training).

        The mean head's output is that log mean: its bias, drawn near 0 (means near 1), moves
        by log(factor).
        """
        if not factor > 0:
            raise ValueError(f"factor must be positive, not {factor}.")
        n_genes = self.zinb_heads.out_features // 3
        self.zinb_heads.bias[:n_genes] += math.log(factor)

    def encode(self, x: torch.Tensor, batch_code: torch.Tensor | None = None) -> torch.Tensor:
        with self._layers_in(x):
            return self._encode(x, batch_code).float()

    def _encode(self, x: torch.Tensor, batch_code: torch.Tensor | None) -> torch.Tensor:
        if self.encoder_batch is None:
            return self.to_latent(self.encoder(x))
        if len(self.encoder) == 0:
            return _shifted(self.to_latent(x), self.encoder_batch, batch_code)
        h = _shifted(self.encoder[0](x), self.encoder_batch, batch_code)
        return self.to_latent(self.encoder[1:](h))

    def decode(
        self,
        z: torch.Tensor,
        size_factors: torch.Tensor,
        batch_code: torch.Tensor | None = None,
    ) -> ZINBParameters:
        with self._layers_in(z):
            if self.decoder_batch is None or len(self.decoder) == 0:
                h = self.decoder(z)
            else:
                h = self.decoder[1:](_shifted(self.decoder[0](z), self.decoder_batch, batch_code))
            heads = self.zinb_heads(h)
        # the likelihood's logs and clamps stay in float32
        heads = _shifted(heads.float(), self.heads_batch, batch_code)
        mean_out, dispersion_out, dropout_logits = heads.chunk(3, dim=1)
        log_mean = mean_out.clamp(*LOG_MEAN_RANGE) + size_factors.log()[:, None]
        dispersion = F.softplus(dispersion_out).clamp(*DISPERSION_RANGE)
        return ZINBParameters(log_mean, dispersion, dropout_logits)


class ClusteringLayer(nn.Module):
    """Soft assignment of embedded cells to trainable centroids.

    kernel="t": Student's t with `alpha` degrees of freedom (DEC); kernel="gaussian":
    q proportional to exp(-||z - mu||^2 / 2), as DESC offers.
    """

    def __init__(self, centroids: torch.Tensor, *, kernel: str = "t", alpha: float = 1.0):
        super().__init__()
        if kernel not in {"t", "gaussian"}:
            raise ValueError(f"kernel must be 't' or 'gaussian', not {kernel!r}.")
        self.centroids = nn.Parameter(centroids.detach().clone().float())
        self.kernel = kernel
        self.alpha = alpha

    @property
    def n_clusters(self) -> int:
        return self.centroids.shape[0]

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        sq_dist = (
            z.pow(2).sum(1, keepdim=True) - 2 * z @ self.centroids.T + self.centroids.pow(2).sum(1)
        ).clamp_min(0)
        if self.kernel == "t":
            logits = -(self.alpha + 1) / 2 * torch.log1p(sq_dist / self.alpha)
        else:
            logits = -sq_dist / 2
        return torch.softmax(logits, dim=1)


class StackedAutoencoder(ComputePrecision, nn.Module):
    """DESC's stacked autoencoder, built from layer pairs so it can be pretrained greedily.

    ReLU hidden layers, tanh on the embedding layer, a mirrored decoder with a linear output.

    With `n_batches` > 0 it is conditional on the batch: the batch enters the first encoder
    layer and every decoder layer (as scVI injects covariates into its decoder).
    """

    def __init__(
        self,
        n_input: int,
        hidden: Sequence[int],
        *,
        n_batches: int = 0,
        precision: str = "float32",
    ):
        super().__init__()
        self.precision = precision
        if not hidden:
            raise ValueError("hidden must name at least one layer size.")
        sizes = [n_input, *hidden]
        self.encoder_layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        # decoder_layers[i] maps layer i+1's width back to layer i's width.
        self.decoder_layers = nn.ModuleList(nn.Linear(b, a) for a, b in zip(sizes[:-1], sizes[1:]))
        self.latent_dim = hidden[-1]
        self.widths = tuple(sizes)
        self.encoder_batch = batch_shift(n_batches, sizes[1])
        self.decoder_batch = (
            nn.ModuleList(batch_shift(n_batches, width) for width in sizes[:-1])
            if n_batches > 0
            else None
        )

    def encoder_parameters(self) -> list[nn.Parameter]:
        """Return what the clustering stage trains: the encoder layers and their batch input."""
        params = list(self.encoder_layers.parameters())
        return params if self.encoder_batch is None else [*params, *self.encoder_batch.parameters()]

    def _encoder_pre(self, i: int, h: torch.Tensor, batch_code: torch.Tensor | None):
        out = self.encoder_layers[i](h)
        return _shifted(out, self.encoder_batch, batch_code) if i == 0 else out

    def _decoder_pre(self, i: int, h: torch.Tensor, batch_code: torch.Tensor | None):
        out = self.decoder_layers[i](h)
        if self.decoder_batch is None:
            return out
        return _shifted(out, self.decoder_batch[i], batch_code)

    @property
    def depth(self) -> int:
        return len(self.encoder_layers)

    def encoder_activation(self, i: int, h: torch.Tensor) -> torch.Tensor:
        return torch.tanh(h) if i == self.depth - 1 else F.relu(h)

    def decoder_activation(self, i: int, h: torch.Tensor) -> torch.Tensor:
        return h if i == 0 else F.relu(h)

    def encode(
        self, x: torch.Tensor, depth: int | None = None, batch_code: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Apply the first `depth` encoder layers (all by default)."""
        with self._layers_in(x):
            for i in range(self.depth if depth is None else depth):
                x = self._code(i, x, batch_code)
            return x.float()

    def encode_layer(
        self, i: int, h: torch.Tensor, batch_code: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Apply encoder layer i alone to the output `h` of the layers before it."""
        with self._layers_in(h):
            return self._code(i, h, batch_code).float()

    def _code(self, i: int, h: torch.Tensor, batch_code: torch.Tensor | None) -> torch.Tensor:
        return self.encoder_activation(i, self._encoder_pre(i, h, batch_code))

    def decode(self, z: torch.Tensor, batch_code: torch.Tensor | None = None) -> torch.Tensor:
        with self._layers_in(z):
            for i in reversed(range(self.depth)):
                z = self.decoder_activation(i, self._decoder_pre(i, z, batch_code))
            return z.float()

    def layer_pair(
        self,
        i: int,
        h: torch.Tensor,
        batch_code: torch.Tensor | None = None,
        *,
        drop_input: DropoutMasks | None = None,
        drop_code: DropoutMasks | None = None,
    ) -> torch.Tensor:
        """Run the denoising autoencoder of layer i alone, for greedy layer-wise pretraining.

        It reconstructs its input h from a copy dropped out by `drop_input`, through a code
        dropped out by `drop_code` (no dropout where they are `None`).
        """
        if drop_input is not None:
            h = drop_input(h)
        with self._layers_in(h):
            code = self._code(i, h, batch_code)
            if drop_code is not None:
                code = drop_code(code)
            return self.decoder_activation(i, self._decoder_pre(i, code, batch_code)).float()

    def layer_parameters(self, i: int) -> list[nn.Parameter]:
        """Return what greedy pretraining of layer pair i trains, batch inputs included."""
        params = [*self.encoder_layers[i].parameters(), *self.decoder_layers[i].parameters()]
        if i == 0 and self.encoder_batch is not None:
            params += list(self.encoder_batch.parameters())
        if self.decoder_batch is not None:
            params += list(self.decoder_batch[i].parameters())
        return params
