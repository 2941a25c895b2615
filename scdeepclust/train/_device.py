"""Device choice and seeding."""

from __future__ import annotations

import contextlib
import math
import numbers
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from .._process import ProcessWideOverride
from ..nn import PRECISIONS


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Resolve a device request: "auto" means CUDA when available, else CPU.

    An explicit CUDA request without CUDA fails here rather than deep inside torch.
    """
    if isinstance(device, torch.device):
        device = str(device)
    if isinstance(device, numbers.Integral) and not isinstance(device, bool):
        device = f"cuda:{device}"  # torch's meaning of a bare index
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(
            f"device={device!r} is not a device torch knows; use 'auto', 'cpu', 'cuda' or 'cuda:N'."
        ) from err
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(
            f"device={device!r}: scdeepclust trains on the CPU or on CUDA GPUs only; use 'auto', "
            "'cpu', 'cuda' or 'cuda:N'."
        )
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} was requested but CUDA is not available in this torch build "
            f"({torch.__version__}). Use device='cpu' or device='auto'."
        )
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(
            f"device={device!r}: this machine has {torch.cuda.device_count()} CUDA device(s), "
            f"numbered from 0; use 'cuda' or 'cuda:0'."
        )
    return dev


def check_precision(precision: str, device: torch.device) -> None:
    """Check a `precision` request against what `device` can do."""
    if precision not in PRECISIONS:
        raise ValueError(
            f"precision={precision!r} is not one of {', '.join(map(repr, PRECISIONS))}: "
            "'float32' computes everything in float32, 'bfloat16' runs the network's layers in "
            "bfloat16 (for speed on CPUs with AMX or AVX-512 BF16 and on recent GPUs)."
        )
    if precision == "bfloat16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ValueError(
            f"precision='bfloat16' was requested on {torch.cuda.get_device_name(device)}, which "
            "does not compute in bfloat16; use precision='float32'."
        )


# Process-wide: set while any run is open in any thread, the caller's value restored after the
# last (see ProcessWideOverride).
_FLOAT32_DEFAULT = ProcessWideOverride(
    torch.get_default_dtype, torch.set_default_dtype, lambda _: torch.float32
)
_FULL_PRECISION_MATMUL = ProcessWideOverride(
    torch.get_float32_matmul_precision, torch.set_float32_matmul_precision, lambda _: "highest"
)


@contextlib.contextmanager
def standard_torch_mode():
    """Compute as the options chose, whatever autocast, grad mode or default dtype is set.

    Those the caller's code has set are put aside inside the block. Without it a caller's
    ``torch.autocast`` ran the float32 layers, the components and the distances in bfloat16
    (simulated 3 groups: ARI 1.0 -> 0.10, recorded as float32), ``torch.no_grad`` or
    ``torch.inference_mode`` stopped training with torch's "does not require grad", a
    float64 default dtype built float64 layers the float32 data could not pass through, and
    ``torch.set_float32_matmul_precision("medium")`` let float32 products round through
    bfloat16 on CPUs that have it (TF32 on GPUs with "high"): simulated data, scDCC's
    embedding moved by up to 0.3. The bfloat16 `precision` opens its own autocast inside this
    block. Autocast and grad modes are the thread's own; the default dtype and the matmul
    precision are the process's, held while any run is open.
    """
    with (
        _FLOAT32_DEFAULT(),
        _FULL_PRECISION_MATMUL(),
        torch.inference_mode(False),
        torch.enable_grad(),
        torch.autocast("cpu", enabled=False),
        torch.autocast("cuda", enabled=False),
    ):
        yield


def initial_network(build: Callable[[], nn.Module], random_state: int | None) -> nn.Module:
    """Build a network on the CPU with initial weights drawn from a generator of its own.

    The layers are made on the meta device, where they draw nothing, then given torch's
    default initial weights from a CPU generator seeded by `random_state`: the weights torch's
    global generator gave once seeded so, as layers are made in the order they are registered.
    The global generator is not touched, so code drawing from it in another thread takes no
    draw of the run's, nor the run one of its (same seed, other labels, when it was seeded
    for the build), and runs in several threads need no lock. Nothing trained draws from it
    either: training draws from generators of its own (`torch_generator`,
    `dropout_generator`).
    """
    with torch.device("meta"):
        network = build()
    network = network.to_empty(device="cpu")
    generator = torch.Generator().manual_seed(_seed(random_state))
    with torch.no_grad():
        for name, layer in network.named_modules():
            if isinstance(layer, nn.Linear):  # nn.Linear.reset_parameters with the generator
                nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
                if layer.bias is not None:
                    bound = 1 / math.sqrt(layer.in_features) if layer.in_features > 0 else 0
                    nn.init.uniform_(layer.bias, -bound, bound, generator=generator)
            elif isinstance(layer, nn.Embedding):  # the batch shifts, which start at zero
                nn.init.zeros_(layer.weight)
            elif (
                next(layer.parameters(recurse=False), None) is not None
                or next(layer.buffers(recurse=False), None) is not None
            ):
                raise TypeError(
                    f"initial_network has no initial values for {name!r}, a "
                    f"{type(layer).__name__}: add them beside nn.Linear's."
                )
    return network


def _seed(random_state: int | None) -> int:
    return 0 if random_state is None else int(random_state)


def numpy_rng(random_state: int | None) -> np.random.Generator:
    return np.random.default_rng(random_state)


def dropout_generator(random_state: int | None) -> torch.Generator:
    """Return the CPU generator of DESC's dropout: the stream the global one gave once seeded.

    Its own object, so that threads and the caller's code do not share it, and that a
    checkpoint saves it.
    """
    return torch.Generator().manual_seed(_seed(random_state))


def torch_generator(random_state: int | None, device: torch.device) -> torch.Generator:
    gen = torch.Generator(device=device)
    # one past the seed: a stream other than the layers' and the dropout's
    gen.manual_seed(0 if random_state is None else int(random_state) + 1)
    return gen
