"""The training loops' optimizers: torch's updates without torch.optim's step machinery."""

import copy
import subprocess
import sys

import pytest
import torch

from scdeepclust.train._optim import SGD, Adadelta, FusedAdam

# (torch's optimizer, ours) with the settings the tools use
PAIRS = {
    "adam": (
        lambda ps: torch.optim.Adam(ps, lr=1e-2, fused=True),
        lambda ps: FusedAdam(ps, lr=1e-2),
    ),
    "adam-amsgrad": (
        lambda ps: torch.optim.Adam(ps, lr=1e-2, amsgrad=True, fused=True),
        lambda ps: FusedAdam(ps, lr=1e-2, amsgrad=True),
    ),
    "sgd": (
        lambda ps: torch.optim.SGD(ps, lr=1e-2, momentum=0.9),
        lambda ps: SGD(ps, lr=1e-2, momentum=0.9),
    ),
    "adadelta": (
        lambda ps: torch.optim.Adadelta(ps, lr=1.0, rho=0.95),
        lambda ps: Adadelta(ps, lr=1.0, rho=0.95),
    ),
}


def parameters():
    g = torch.Generator().manual_seed(0)
    shapes = [(6, 4), (4,), (4, 6)]
    return [torch.nn.Parameter(torch.randn(s, generator=g)) for s in shapes]


def train(optimizer, params, steps, *, seed=1, skip_last_grad=False):
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        for i, p in enumerate(params):
            if not (skip_last_grad and i == len(params) - 1):
                p.grad = torch.randn(p.shape, generator=g)
        optimizer.step()


@pytest.mark.parametrize("name", PAIRS)
def test_updates_are_torchs_to_the_bit(name):
    """Also where a parameter gets no gradient: it is left alone, as torch leaves it."""
    for skip in (False, True):
        theirs, ours = parameters(), parameters()
        make_theirs, make_ours = PAIRS[name]
        train(make_theirs(theirs), theirs, 9, skip_last_grad=skip)
        train(make_ours(ours), ours, 9, skip_last_grad=skip)
        for a, b in zip(theirs, ours, strict=True):
            assert torch.equal(a, b)
        assert not torch.equal(ours[0], parameters()[0])  # the test moved something


@pytest.mark.parametrize("name", PAIRS)
@pytest.mark.parametrize("saved_by", ["ours", "torch"])
def test_a_saved_state_resumes_the_same_updates(name, saved_by):
    """A run saved after 4 steps and resumed in a fresh optimizer ends where an uninterrupted
    one does, also from a state that torch's optimizer saved (checkpoints of earlier versions);
    the resumed run works on a copy of the saved state."""
    make_theirs, make_ours = PAIRS[name]
    uninterrupted = parameters()
    optimizer = make_ours(uninterrupted)
    train(optimizer, uninterrupted, 4)
    train(optimizer, uninterrupted, 5, seed=2)

    first = parameters()
    saving = (make_ours if saved_by == "ours" else make_theirs)(first)
    train(saving, first, 4)
    state = saving.state_dict()
    saved = copy.deepcopy(state)
    resumed = [torch.nn.Parameter(p.detach().clone()) for p in first]
    resuming = make_ours(resumed)
    resuming.load_state_dict(state)
    train(resuming, resumed, 5, seed=2)
    for a, b in zip(uninterrupted, resumed, strict=True):
        assert torch.equal(a, b)
    for i, values in saved["state"].items():
        for key, value in values.items():
            assert torch.equal(state["state"][i][key], value)


def test_a_tool_call_does_not_import_torch_dynamo():
    """torch.optim's first step imports torch._dynamo, which cost a tool's first call in a
    process 1.4-2.6 s; the tools' optimizers leave it unimported."""
    script = (
        "import sys, scdeepclust as sdc\n"
        "a = sdc.datasets.simulate(120, 60, 3, random_state=0)\n"
        "sdc.tl.scdcc(a, n_clusters=3, pretrain_epochs=2, max_epochs=2, progress=False)\n"
        "b = sdc.datasets.simulate(120, 60, 3, random_state=0)\n"
        "sdc.pp.recipe(b, 'desc')\n"
        "sdc.tl.desc(b, n_clusters=3, pretrain_epochs=2, max_epochs=2, progress=False)\n"
        "assert 'scdcc' in a.obs and 'desc' in b.obs\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "False"


@pytest.mark.parametrize("name", PAIRS)
def test_updates_are_torchs_to_the_bit_with_gradients_zeroed_in_place(name):
    """`zero_grad(set_to_none=False)` and gradients accumulated into the same tensors by
    backward, as a caller's loop may do: the same updates as torch's. Kills O2 (SGD's momentum
    buffer starts as the gradient tensor itself, which the next zero_grad then zeroes) and O9
    (zero_grad(set_to_none=False) leaves the gradients to accumulate)."""
    make_theirs, make_ours = PAIRS[name]
    theirs, ours = parameters(), parameters()
    for params, optimizer in ((theirs, make_theirs(theirs)), (ours, make_ours(ours))):
        g = torch.Generator().manual_seed(1)
        for _ in range(9):
            optimizer.zero_grad(set_to_none=False)
            weights = [torch.randn(p.shape, generator=g) for p in params]
            sum((p * w).sum() + p.pow(2).sum() for p, w in zip(params, weights)).backward()
            optimizer.step()
    for a, b in zip(theirs, ours, strict=True):
        assert torch.equal(a, b)
    assert not torch.equal(ours[0], parameters()[0])


@pytest.mark.parametrize("name", PAIRS)
def test_a_loaded_state_takes_the_parameters_dtype(name):
    """Averages saved in another dtype (e.g. by a float64 run) are loaded in the parameters'
    dtype; Adam's step count keeps its own (float32, as the fused kernel reads it). Kills O4
    (every saved tensor kept in its saved dtype)."""
    make_theirs, make_ours = PAIRS[name]
    first = parameters()
    saving = make_ours(first)
    train(saving, first, 2)
    state = saving.state_dict()
    for values in state["state"].values():
        for key, value in values.items():
            if key != "step":
                values[key] = value.double()
    resumed = parameters()
    resuming = make_ours(resumed)
    resuming.load_state_dict(state)
    saved_step_dtype = torch.float32  # Adam's step count, as the fused kernel reads it
    for values in resuming.state.values():
        for key, value in values.items():
            assert value.dtype == (saved_step_dtype if key == "step" else torch.float32)
    train(resuming, resumed, 2)
