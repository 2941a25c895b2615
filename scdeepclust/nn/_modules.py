"""Torch modules shared by the methods: MLP blocks, autoencoders, the clustering layer."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F


def denoising_dropout(x: torch.Tensor, p: float) -> torch.Tensor:
    """Training-mode dropout, as ``F.dropout(x, p, True)``, from the global torch RNG.

    On the CPU the mask comes from ``torch.rand``: torch's CPU dropout draws its Bernoulli
    numbers one by one, 4.8 ms for a minibatch of 256 x 2,000 against 2.2 ms this way (2 cores),
    about a fifth of DESC's pretraining time there. Elsewhere it is `F.dropout`.
    """
    if p == 0:
        return x
    if x.device.type != "cpu":
        return F.dropout(x, p, True)
    keep = torch.rand(x.shape, dtype=x.dtype, device=x.device) >= p
    return x * keep * (1.0 / (1.0 - p))


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


class ZINBAutoencoder(nn.Module):
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
    ):
        super().__init__()
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

    def encode(self, x: torch.Tensor, batch_code: torch.Tensor | None = None) -> torch.Tensor:
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
        if self.decoder_batch is None or len(self.decoder) == 0:
            h = self.decoder(z)
        else:
            h = self.decoder[1:](_shifted(self.decoder[0](z), self.decoder_batch, batch_code))
        heads = _shifted(self.zinb_heads(h), self.heads_batch, batch_code)
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


class StackedAutoencoder(nn.Module):
    """DESC's stacked autoencoder, built from layer pairs so it can be pretrained greedily.

    ReLU hidden layers, tanh on the embedding layer, a mirrored decoder with a linear output.

    With `n_batches` > 0 it is conditional on the batch: the batch enters the first encoder
    layer and every decoder layer (as scVI injects covariates into its decoder).
    """

    def __init__(self, n_input: int, hidden: Sequence[int], *, n_batches: int = 0):
        super().__init__()
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
        for i in range(self.depth if depth is None else depth):
            x = self.encoder_activation(i, self._encoder_pre(i, x, batch_code))
        return x

    def decode(self, z: torch.Tensor, batch_code: torch.Tensor | None = None) -> torch.Tensor:
        for i in reversed(range(self.depth)):
            z = self.decoder_activation(i, self._decoder_pre(i, z, batch_code))
        return z

    def layer_pair(
        self, i: int, h: torch.Tensor, dropout: float, batch_code: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Run the denoising autoencoder of layer i alone, for greedy layer-wise pretraining.

        It reconstructs its input h from a dropped-out copy.
        """
        code = self.encoder_activation(
            i, self._encoder_pre(i, denoising_dropout(h, dropout), batch_code)
        )
        return self.decoder_activation(
            i, self._decoder_pre(i, denoising_dropout(code, dropout), batch_code)
        )

    def layer_parameters(self, i: int) -> list[nn.Parameter]:
        """Return what greedy pretraining of layer pair i trains, batch inputs included."""
        params = [*self.encoder_layers[i].parameters(), *self.decoder_layers[i].parameters()]
        if i == 0 and self.encoder_batch is not None:
            params += list(self.encoder_batch.parameters())
        if self.decoder_batch is not None:
            params += list(self.decoder_batch[i].parameters())
        return params
