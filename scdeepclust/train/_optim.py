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


# The optimizers' running averages (Adam's moments, SGD's momentum, Adadelta's averages) of a
# weight whose gradient is exactly zero step after step shrink by their decay (0.9-0.999 as the
# tools set them) per step, and Adam's first moment is a subnormal float (below 1.2e-38) within
# some 800 steps, on which x86 CPUs compute many times slower, in every later step. Such weights
# are common on sparse input that is not centred: the first layer's weights of genes that no cell
# of a minibatch expresses. In DESC's pretraining on a million simulated cells
# (benchmarks/scaling.py) Adam took 4.7-5.2 ms of a 7 ms step; with the averages below VANISHING
# zeroed, 0.4-0.5 ms, and the pretraining 41.9-47.1 s against 50.1-51.5 (scDCC's: 109 s per epoch
# against 143). Averages this small move no weight (Adam's update is then below 1e-22 x lr), so
# they are zeroed before they get there: between two clean-ups an average shrinks at most by
# 0.9^64 ~ 1e-3, which keeps it far above the subnormals. (Setting the CPU to flush subnormals
# would change the caller's process, and from the calling thread it does not reach the threads
# torch already computes in.)
VANISHING = 1e-30
VANISHING_EVERY = 64


def zero_vanishing_averages(optimizer: torch.optim.Optimizer) -> None:
    """Set the optimizer's running averages below `VANISHING` in magnitude to zero.

    On CPU tensors only: GPUs compute on subnormal floats at full speed.
    """
    for state in optimizer.state.values():
        for value in state.values():
            if (
                isinstance(value, torch.Tensor)
                and value.dim() > 0  # not Adam's step count
                and value.is_floating_point()
                and value.device.type == "cpu"
            ):
                value.masked_fill_(value.abs() < VANISHING, 0.0)
