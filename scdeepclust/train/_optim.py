"""The optimizers of the training loops: Adam, SGD with momentum and Adadelta.

They make the same updates as `torch.optim`'s (Adam with torch's fused kernel, SGD and
Adadelta in the order of operations of torch's single-tensor form, which torch uses on CPU), to
the bit on CPU, without what `torch.optim.Optimizer` wraps each step in: its first step in a
process imports `torch._dynamo` (1.4-2.6 s, more than DESC's clustering stage on 10X PBMC:
a tool's first call paid it, every call of the command line too), and every step passes
through a profiler record, hooks and `torch._dynamo.graph_break` (0.13 ms of a 0.28 ms Adam
step over a 2,000 x 64 encoder and decoder layer). The training loops use `param_groups`,
`state`, `zero_grad`, `step`, `state_dict` and `load_state_dict`, which these keep in torch's
form, so that a checkpoint written with `torch.optim` loads into them, and the loops take
torch's optimizers as well.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch


class Optimizer:
    """One group of parameters, their per-parameter state, and the update of `_update`."""

    def __init__(self, params: Iterable[torch.nn.Parameter], **hyperparameters) -> None:
        self.param_groups = [{"params": list(params), **hyperparameters}]
        self.state: dict[torch.Tensor, dict[str, torch.Tensor]] = {}

    @property
    def _group(self) -> dict:
        return self.param_groups[0]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self._group["params"]:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.detach_().zero_()

    @torch.no_grad()
    def step(self) -> None:
        with_gradient = [p for p in self._group["params"] if p.grad is not None]
        if with_gradient:
            self._update(with_gradient)

    def _update(self, params: list[torch.Tensor]) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict:
        """Torch's layout: state by the parameter's position, hyperparameters by group."""
        params = self._group["params"]
        position = {p: i for i, p in enumerate(params)}
        hyperparameters = {k: v for k, v in self._group.items() if k != "params"}
        return {
            "state": {position[p]: dict(state) for p, state in self.state.items()},
            "param_groups": [{**hyperparameters, "params": list(range(len(params)))}],
        }

    def load_state_dict(self, state_dict: dict) -> None:
        """Take the saved per-parameter state; keep this optimizer's hyperparameters.

        The state is copied onto each parameter's device, its averages in the parameter's dtype.
        """
        params = self._group["params"]
        self.state = {
            params[int(i)]: {
                key: _onto(value, params[int(i)], keep_dtype=key == "step")
                for key, value in state.items()
            }
            for i, state in state_dict["state"].items()
        }


def _onto(value, param: torch.Tensor, *, keep_dtype: bool):
    if not isinstance(value, torch.Tensor):
        return value
    dtype = value.dtype if keep_dtype or not value.is_floating_point() else param.dtype
    return value.to(device=param.device, dtype=dtype, copy=True)


class FusedAdam(Optimizer):
    """Adam through torch's fused kernel, as `torch.optim.Adam(fused=True)` makes it."""

    def __init__(
        self,
        params: Iterable[torch.nn.Parameter],
        *,
        lr: float,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        amsgrad: bool = False,
    ) -> None:
        super().__init__(params, lr=lr, betas=tuple(betas), eps=eps, amsgrad=amsgrad)

    def _update(self, params: list[torch.Tensor]) -> None:
        group = self._group
        by_kind: dict[tuple, list[torch.Tensor]] = {}
        for p in params:  # the kernel takes one device and dtype per call
            by_kind.setdefault((p.device, p.dtype), []).append(p)
        for same_kind in by_kind.values():
            states = [self._state_of(p) for p in same_kind]
            steps = [s["step"] for s in states]
            torch._foreach_add_(steps, 1)
            torch._fused_adam_(
                same_kind,
                [p.grad for p in same_kind],
                [s["exp_avg"] for s in states],
                [s["exp_avg_sq"] for s in states],
                [s["max_exp_avg_sq"] for s in states] if group["amsgrad"] else [],
                steps,
                amsgrad=group["amsgrad"],
                lr=group["lr"],
                beta1=group["betas"][0],
                beta2=group["betas"][1],
                weight_decay=0.0,
                eps=group["eps"],
                maximize=False,
                grad_scale=None,
                found_inf=None,
            )

    def _state_of(self, p: torch.Tensor) -> dict[str, torch.Tensor]:
        state = self.state.get(p)
        if state is None:
            state = self.state[p] = {
                # float32 on the parameter's device, as the fused kernel reads it
                "step": torch.zeros((), dtype=torch.float32, device=p.device),
                "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format),
            }
            if self._group["amsgrad"]:
                state["max_exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        return state


class SGD(Optimizer):
    """SGD with (heavy-ball) momentum, as `torch.optim.SGD(lr=..., momentum=...)`."""

    def __init__(self, params: Iterable[torch.nn.Parameter], *, lr: float, momentum: float = 0.0):
        super().__init__(params, lr=lr, momentum=momentum)

    def _update(self, params: list[torch.Tensor]) -> None:
        lr, momentum = self._group["lr"], self._group["momentum"]
        for p in params:
            update = p.grad
            if momentum != 0:
                state = self.state.setdefault(p, {})
                buffer = state.get("momentum_buffer")
                if buffer is None:
                    buffer = state["momentum_buffer"] = update.detach().clone()
                else:
                    buffer.mul_(momentum).add_(update)
                update = buffer
            p.add_(update, alpha=-lr)


class Adadelta(Optimizer):
    """Adadelta, as `torch.optim.Adadelta(lr=..., rho=..., eps=...)`."""

    def __init__(
        self, params: Iterable[torch.nn.Parameter], *, lr: float, rho: float, eps: float = 1e-6
    ) -> None:
        super().__init__(params, lr=lr, rho=rho, eps=eps)

    def _update(self, params: list[torch.Tensor]) -> None:
        lr, rho, eps = self._group["lr"], self._group["rho"], self._group["eps"]
        for p in params:
            state = self.state.get(p)
            if state is None:
                state = self.state[p] = {
                    "square_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                    "acc_delta": torch.zeros_like(p, memory_format=torch.preserve_format),
                }
            grad, square_avg, acc_delta = p.grad, state["square_avg"], state["acc_delta"]
            square_avg.mul_(rho).addcmul_(grad, grad, value=1 - rho)
            std = square_avg.add(eps).sqrt_()
            delta = acc_delta.add(eps).sqrt_().div_(std).mul_(grad)
            acc_delta.mul_(rho).addcmul_(delta, delta, value=1 - rho)
            p.add_(delta, alpha=-lr)


# What the training loops accept: these, or torch's own (the Adam of a torch without a fused
# kernel for the parameters' device, or an optimizer a caller made).
TrainingOptimizer = Optimizer | torch.optim.Optimizer


def adam(params: Iterable[torch.nn.Parameter], *, lr: float, amsgrad: bool = False):
    """Make an Adam optimizer.

    `FusedAdam` where this torch has a fused kernel for the parameters' device, else torch's
    multi-tensor ("foreach") Adam: the same updates up to float rounding.
    """
    params = list(params)
    devices = {p.device.type for p in params}
    if hasattr(torch, "_fused_adam_") and devices <= {"cpu", "cuda"}:
        return FusedAdam(params, lr=lr, amsgrad=amsgrad)
    return torch.optim.Adam(params, lr=lr, amsgrad=amsgrad, foreach=True)


def sgd(params: Iterable[torch.nn.Parameter], *, lr: float, momentum: float) -> SGD:
    return SGD(params, lr=lr, momentum=momentum)


def adadelta(params: Iterable[torch.nn.Parameter], *, lr: float, rho: float) -> Adadelta:
    return Adadelta(params, lr=lr, rho=rho)


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


def zero_vanishing_averages(optimizer: TrainingOptimizer) -> None:
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
