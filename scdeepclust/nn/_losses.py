"""Losses as functions: ZINB likelihood, DEC target and KL, pairwise constraint losses."""

from __future__ import annotations

import functools

import numpy as np
import torch
from torch.nn import functional as F

from ._modules import ZINBParameters

EPS = 1e-8


def zinb_nll(counts: torch.Tensor, params: ZINBParameters, *, reduce: bool = True) -> torch.Tensor:
    """Exact negative log-likelihood of counts under a zero-inflated negative binomial.

    Computed in log space (log-sum-exp for the zero case, softplus for the dropout), so it stays
    finite in float32 for extreme means and dispersions. Mean over all entries when `reduce`
    (so its scale does not grow with the number of genes and a weight such as scDCC's `gamma`
    means the same on any data), else per entry.
    """
    if reduce:
        tensors = (counts, params.log_mean, params.dispersion, params.dropout_logits)
        dtype = functools.reduce(torch.promote_types, (t.dtype for t in tensors))
        return _MeanZINBNLL.apply(*(t.to(dtype) for t in tensors))
    theta = params.dispersion
    log_mu = params.log_mean
    log_theta = theta.log()
    log_theta_mu = torch.logaddexp(log_theta, log_mu)
    log_nb_zero = theta * (log_theta - log_theta_mu)
    logits = params.dropout_logits
    log_zero = torch.logaddexp(logits, log_nb_zero) - F.softplus(logits)
    log_nonzero = _log_nonzero(
        counts, theta, log_nb_zero, counts * (log_mu - log_theta_mu), F.softplus(logits)
    )
    return -torch.where(counts > 0, log_nonzero, log_zero)


def _nonzero_positions(counts: torch.Tensor) -> torch.Tensor:
    """Flat positions of the non-zero counts, ascending (int64, on the counts' device)."""
    present = counts.detach().reshape(-1) > 0
    if present.device.type == "cpu":
        # numpy's flatnonzero is faster than torch.nonzero on the CPU (0.8 against 2.2 ms for
        # a 256 x 2,000 minibatch, of a 45-50 ms scDCC step on 2 cores), with the same positions.
        return torch.from_numpy(np.flatnonzero(present.numpy()).astype(np.int64, copy=False))
    return torch.nonzero(present).squeeze(1)


def _log_nonzero(x, theta, log_nb_zero, x_log_mu_ratio, softplus_logits):
    """Log ZINB(x) for x > 0: log(1 - pi) + log NB(x); log NB(x) contains log NB(0)."""
    return (
        torch.lgamma(x + theta)
        - torch.lgamma(theta)
        - torch.lgamma(x + 1)
        + log_nb_zero
        + x_log_mu_ratio
        - softplus_logits
    )


class _MeanZINBNLL(torch.autograd.Function):
    """The mean ZINB negative log-likelihood with its gradient written out.

    Training spends most of its non-matmul time here: differentiated by autograd step by step,
    the formula leaves many intermediate (cells x genes) tensors and gradient sums behind,
    which the closed form avoids (with fused Adam: scDCC's epoch 15.84 -> 13.95 s on 100,000
    cells, benchmarks/scaling.py). Count matrices are mostly zeros, so the lgamma/digamma
    terms are evaluated on the non-zero entries only, found once per call.

    With t = theta, m = mu, r = log(t / (t + m)), w = m / (t + m), g = dropout logit and
    n0 = t * r = log NB(0):
      x = 0:  L = logaddexp(g, n0) - softplus(g); with s = sigmoid(n0 - g), P(not dropout | 0),
              dL/dg = sigmoid(g - n0) - sigmoid(g), dL/dt = s (r + w), dL/dlog m = -s t w;
      x > 0:  L = lgamma(x + t) - lgamma(t) - lgamma(x + 1) + n0 + x log(m / (t + m)) - softplus(g),
              dL/dg = -sigmoid(g), dL/dt = digamma(x + t) - digamma(t) + r + w - x / (t + m),
              dL/dlog m = t (x - m) / (t + m).
    """

    @staticmethod
    def forward(ctx, counts, log_mean, theta, logits):
        log_theta = theta.log()
        log_theta_mu = torch.logaddexp(log_theta, log_mean)
        log_ratio = log_theta.sub_(log_theta_mu)
        log_nb_zero = theta * log_ratio
        softplus_logits = F.softplus(logits)
        log_zero = torch.logaddexp(logits, log_nb_zero).sub_(softplus_logits)
        nonzero = _nonzero_positions(counts)

        def at(t):
            return t.reshape(-1).index_select(0, nonzero)

        x = at(counts)
        log_nonzero = _log_nonzero(
            x,
            at(theta),
            at(log_nb_zero),
            x * (at(log_mean) - at(log_theta_mu)),
            at(softplus_logits),
        )
        total = log_zero.sum() - at(log_zero).sum() + log_nonzero.sum()
        ctx.save_for_backward(
            nonzero, x, log_mean, theta, logits, log_theta_mu, log_ratio, log_nb_zero
        )
        return -total / counts.numel()

    @staticmethod
    def backward(ctx, grad_output):
        nonzero, x, log_mean, theta, logits, log_theta_mu, log_ratio, log_nb_zero = (
            ctx.saved_tensors
        )
        scale = -grad_output / theta.numel()

        def at(t):
            return t.reshape(-1).index_select(0, nonzero)

        def put(full, values):
            # Gradients of non-contiguous (e.g. transposed) parameters inherit their layout, and
            # reshape(-1) of such a tensor is a copy that would take the writes.
            full = full.contiguous()
            full.view(-1).index_copy_(0, nonzero, values)
            return full.mul_(scale)

        w = (log_mean - log_theta_mu).exp_()  # m / (t + m), without cancellation for small m
        not_dropout = torch.sigmoid(log_nb_zero - logits)
        dropout_prior = torch.sigmoid(logits)
        d_logits = (1 - not_dropout).sub_(dropout_prior)
        d_theta = not_dropout * (log_ratio + w)
        d_log_mean = (not_dropout * theta).mul_(w).neg_()
        t, w_nz, r_nz = at(theta), at(w), at(log_ratio)
        d_theta_nz = (
            torch.digamma(x + t) - torch.digamma(t) + r_nz + w_nz - x * at(log_theta_mu).neg().exp()
        )
        d_log_mean_nz = r_nz.exp() * x - t * w_nz
        return (
            None,
            put(d_log_mean, d_log_mean_nz),
            put(d_theta, d_theta_nz),
            put(d_logits, at(dropout_prior).neg()),
        )


def target_distribution(
    q: torch.Tensor,
    frequency: torch.Tensor | None = None,
    balance: float = 1.0,
    prior: torch.Tensor | None = None,
) -> torch.Tensor:
    """DEC's sharpened target: q^2 / cluster frequency^balance (x prior), normalised per cell.

    `frequency`: the per-cluster sums of q over all cells, when `q` holds only some of them
    (default: ``q.sum(0)``). `balance` 1 is DEC's target, which favours clusters of equal size;
    0 leaves the cluster sizes to the data. `prior` (cells x clusters, positive, on q's
    device) weighs each cell's clusters by outside evidence, e.g. a classifier of known labels.
    """
    frequency = q.sum(0) if frequency is None else frequency
    weight = q.pow(2)
    if balance:
        weight = weight / frequency.clamp_min(EPS).pow(balance)
    if prior is not None:
        weight = weight * prior
    total = weight.sum(1, keepdim=True)
    # frequency^balance grows as (cells / clusters)^balance: with balance 2-4 on thousands of
    # cells, or a strong prior, the weights of a cell sum to less than EPS (or underflow), and
    # dividing by the clamped sum no longer gives a distribution. Those cells' targets are
    # computed again from logarithms; the others keep the direct form.
    small = ~(total >= EPS).squeeze(1)
    if not bool(small.any()):
        return weight / total
    target = weight / total.clamp_min(EPS)
    log_weight = 2 * q[small].clamp_min(EPS).log()
    if balance:
        log_weight = log_weight - balance * frequency.clamp_min(EPS).log()
    if prior is not None:
        log_weight = log_weight + prior[small].clamp_min(torch.finfo(prior.dtype).tiny).log()
    target[small] = torch.softmax(log_weight, dim=1)
    return target


def kl_divergence(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """KL(p || q) per cell, averaged over cells."""
    return (p * (torch.log(p.clamp_min(EPS)) - torch.log(q.clamp_min(EPS)))).sum(1).mean()


def must_link_loss(q_a: torch.Tensor, q_b: torch.Tensor) -> torch.Tensor:
    """-log P(both cells in the same cluster), averaged over pairs."""
    return -torch.log((q_a * q_b).sum(1).clamp_min(EPS)).mean()


def known_class_loss(q: torch.Tensor, clusters: torch.Tensor) -> torch.Tensor:
    """-log P(each cell in its known cluster), averaged over cells."""
    return -torch.log(q.gather(1, clusters[:, None]).squeeze(1).clamp_min(EPS)).mean()


def cannot_link_loss(q_a: torch.Tensor, q_b: torch.Tensor) -> torch.Tensor:
    """-log P(the cells in different clusters), averaged over pairs."""
    return -torch.log((1 - (q_a * q_b).sum(1)).clamp_min(EPS)).mean()


def batch_mixing_mmd(
    z: torch.Tensor, batch_code: torch.Tensor, scales: tuple[float, ...] = (0.1, 0.3, 1.0)
) -> torch.Tensor:
    """Batch-mixing penalty: the squared maximum mean discrepancy (MMD) of batch vs. rest.

    The squared MMD between each batch's cells and the other cells of the minibatch, averaged
    over the batches present (with 2 or more cells on both sides).

    Gaussian kernels exp(-d^2 / (scale x median d^2)), averaged over `scales`, with the median
    squared pairwise distance in `z` taken without gradient: the penalty cannot be lowered by
    scaling the latent space. Unbiased estimate (a cell is not compared with itself; the biased
    one rewards collapsing the cells together). All batches at once from the one-hot batch
    matrix M: with A = M' K M, for batch b against the rest r, the kernel sums are A_bb,
    row_b - A_bb and total - 2 row_b + A_bb (row_b: row sum of A). Zero when no batch has
    2 or more cells on both sides.
    """
    n = z.shape[0]
    onehot = F.one_hot(batch_code, int(batch_code.max()) + 1).to(z.dtype)
    n_b = onehot.sum(0)
    n_r = n - n_b
    present = (n_b > 1) & (n_r > 1)
    if not bool(present.any()):
        return z.new_zeros(())
    sq = (z.pow(2).sum(1, keepdim=True) - 2 * z @ z.T + z.pow(2).sum(1)).clamp_min(0)
    off_diagonal = ~torch.eye(n, dtype=torch.bool, device=z.device)
    median = sq.detach()[off_diagonal].median().clamp_min(EPS)
    kernel = sum(torch.exp(-sq / (scale * median)) for scale in scales) / len(scales)
    kernel = kernel * off_diagonal  # no self-pairs
    a = onehot.T @ kernel @ onehot
    within = a.diagonal()
    row = a.sum(1)
    rest = a.sum() - 2 * row + within
    n_b, n_r = n_b[present], n_r[present]
    mmd = (
        within[present] / (n_b * (n_b - 1))
        + rest[present] / (n_r * (n_r - 1))
        - 2 * (row - within)[present] / (n_b * n_r)
    )
    return mmd.mean()
