"""Optimizers as the training loops build them."""

from __future__ import annotations

from collections.abc import Iterable

import torch


def adam(params: Iterable[torch.nn.Parameter], *, lr: float, amsgrad: bool = False):
    """Make an Adam optimizer, with its fused kernel where this torch has one.

    It uses the fused kernel (one pass over all parameters per step instead of one per operation and
    tensor) where this torch has one for the parameters' device: CUDA, and CPU from torch 2.4.
    Elsewhere the multi-tensor ("foreach") form; the updates are the same up to float rounding.
    """
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, amsgrad=amsgrad, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(params, lr=lr, amsgrad=amsgrad, foreach=True)
