"""Helpers shared by the tests."""

import contextlib
import os
from pathlib import Path

import numpy as np
import pytest
import torch

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

# Few epochs: tests check behaviour, the benchmarks check accuracy and speed.
FAST = dict(pretrain_epochs=4, max_epochs=4, progress=False, batch_size=64)

# Where the device-placement tests train: "cpu" here, "cuda" on a machine with a GPU (the
# other tests use the tools' default, device="auto").
TEST_DEVICE = os.environ.get("SCDEEPCLUST_TEST_DEVICE", "cpu")


@contextlib.contextmanager
def default_device_meta():
    """Within the block, tensors created without a device are meta tensors, which fail beside
    real ones; the previous default is restored afterwards, also on failure.

    Optimizer steps are exempt: torch's own optimizers keep their step counters as host
    scalars by design (they mix with tensors on any device), and that is torch's code."""
    from torch.optim.optimizer import (
        register_optimizer_step_post_hook,
        register_optimizer_step_pre_hook,
    )

    inside_step = []

    def enter_step(*_):
        inside_step.append(torch.device("cpu"))
        inside_step[-1].__enter__()

    def leave_step(*_):
        inside_step.pop().__exit__(None, None, None)

    previous = torch.get_default_device()
    hooks = [register_optimizer_step_pre_hook(enter_step)]
    hooks.append(register_optimizer_step_post_hook(leave_step))
    torch.set_default_device("meta")
    try:
        yield
    finally:
        while inside_step:  # a step that raised never reached its post hook
            leave_step()
        for hook in hooks:
            hook.remove()
        # None rather than "cpu": a default device set at all slows every later torch call
        torch.set_default_device(None if previous.type == "cpu" else previous)


def shared_file(name: str) -> Path:
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"{path} not found: the shared datasets live in ../shared/data beside the repo")
    return path


def count_calls(monkeypatch, owner, name: str) -> list:
    """Replace `owner.name` by a pass-through that records each call; return the record."""
    calls = []
    original = getattr(owner, name)

    def counted(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, counted)
    return calls


def snapshot(adata):
    """Keys and arrays of an AnnData, to check a call left it exactly as it was."""

    def dense(m):
        return m.toarray() if hasattr(m, "toarray") else np.asarray(m)

    return {
        "obs": adata.obs.copy(),
        "var": adata.var.copy(),
        "X": dense(adata.X).copy(),
        "layers": {k: dense(v).copy() for k, v in adata.layers.items()},
        "obsm": {k: np.asarray(v).copy() for k, v in adata.obsm.items()},
        "uns": sorted(adata.uns.keys()),
    }


def assert_unchanged(adata, before):
    after = snapshot(adata)
    assert list(after["obs"].columns) == list(before["obs"].columns)
    assert after["obs"].equals(before["obs"])
    assert after["var"].equals(before["var"])
    np.testing.assert_array_equal(after["X"], before["X"])
    assert after["layers"].keys() == before["layers"].keys()
    for k in before["layers"]:
        np.testing.assert_array_equal(after["layers"][k], before["layers"][k])
    assert after["obsm"].keys() == before["obsm"].keys()
    assert after["uns"] == before["uns"]


def distributed_case():
    """Data and options of the data-parallel test, shared by the test and its torchrun
    workers: 4 well-separated simulated groups, counts in layers['counts'] for scDCC and
    scaled log-normalised values in X for DESC."""
    import scanpy as sc

    import scdeepclust as sdc

    adata = sdc.datasets.simulate(
        n_cells=300, n_genes=100, n_groups=4, de_fraction=0.3, de_log_fold=2.0, random_state=1
    )
    adata.layers["counts"] = adata.X.copy()
    sc.pp.normalize_total(adata)
    sc.pp.log1p(adata)
    sc.pp.scale(adata)
    common = dict(device="cpu", progress=False, batch_size=64)
    return adata, {
        "scdcc": dict(pretrain_epochs=10, max_epochs=8, **common),
        "desc": dict(n_clusters=4, pretrain_epochs=8, max_epochs=8, **common),
    }
