"""Losses as functions: ZINB likelihood, DEC target and KL, pairwise constraint losses."""

from __future__ import annotations

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
    theta = params.dispersion
    log_mu = params.log_mean
    log_theta = theta.log()
    log_theta_mu = torch.logaddexp(log_theta, log_mu)
    # log NB(0) = theta * log(theta / (theta + mu)); it also appears in log NB(x) for x > 0.
    log_nb_zero = theta * (log_theta - log_theta_mu)
    logits = params.dropout_logits
    log_one_minus_pi = -F.softplus(logits)
    log_pi = logits + log_one_minus_pi
    log_zero = torch.logaddexp(log_pi, log_one_minus_pi + log_nb_zero)

    def log_nonzero(x, theta, log_mu, log_theta_mu, log_nb_zero, log_one_minus_pi):
        return (
            log_one_minus_pi
            + torch.lgamma(x + theta)
            - torch.lgamma(theta)
            - torch.lgamma(x + 1)
            + log_nb_zero
            + x * (log_mu - log_theta_mu)
        )

    if not reduce:
        full = log_nonzero(counts, theta, log_mu, log_theta_mu, log_nb_zero, log_one_minus_pi)
        return -torch.where(counts > 0, full, log_zero)
    # The lgamma terms (and their digamma gradients) dominate the cost; count matrices are
    # mostly zeros, so evaluate them on the non-zero entries only. Their positions are found
    # once and gathered with index_select (backward: index_add), not by boolean masks, each of
    # which would search the mask again, forward and backward.
    nz = counts > 0
    flat = torch.nonzero(nz.reshape(-1)).squeeze(1)

    def at_nonzero(t: torch.Tensor) -> torch.Tensor:
        return t.reshape(-1).index_select(0, flat)

    nonzero = log_nonzero(
        at_nonzero(counts),
        at_nonzero(theta),
        at_nonzero(log_mu),
        at_nonzero(log_theta_mu),
        at_nonzero(log_nb_zero),
        at_nonzero(log_one_minus_pi),
    )
    total = log_zero.masked_fill(nz, 0.0).sum() + nonzero.sum()
    return -total / counts.numel()


def target_distribution(q: torch.Tensor, frequency: torch.Tensor | None = None) -> torch.Tensor:
    """DEC's sharpened target: q^2 / cluster frequency, normalised per cell. `frequency`:
    the per-cluster sums of q over all cells, when `q` holds only some of them (default:
    ``q.sum(0)``)."""
    frequency = q.sum(0) if frequency is None else frequency
    weight = q.pow(2) / frequency.clamp_min(EPS)
    return weight / weight.sum(1, keepdim=True)


def kl_divergence(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """KL(p || q) per cell, averaged over cells."""
    return (p * (torch.log(p.clamp_min(EPS)) - torch.log(q.clamp_min(EPS)))).sum(1).mean()


def must_link_loss(q_a: torch.Tensor, q_b: torch.Tensor) -> torch.Tensor:
    """-log P(both cells in the same cluster), averaged over pairs."""
    return -torch.log((q_a * q_b).sum(1).clamp_min(EPS)).mean()


def cannot_link_loss(q_a: torch.Tensor, q_b: torch.Tensor) -> torch.Tensor:
    """-log P(the cells in different clusters), averaged over pairs."""
    return -torch.log((1 - (q_a * q_b).sum(1)).clamp_min(EPS)).mean()
