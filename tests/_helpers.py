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
# one epoch of each stage: for tests of what reaches the training, not of what it learns
ONE_EPOCH = dict(FAST, pretrain_epochs=1, max_epochs=1)

# Where the device-placement tests train: "cpu" here, "cuda" on a machine with a GPU (the
# other tests use the tools' default, device="auto").
TEST_DEVICE = os.environ.get("SCDEEPCLUST_TEST_DEVICE", "cpu")


@contextlib.contextmanager
def default_device_meta():
    """Within the block, tensors created without a device are meta tensors, which fail beside
    real ones; the previous default is restored afterwards, also on failure. The tools'
    optimizers are covered too: they place their state on each parameter's device."""
    previous = torch.get_default_device()
    torch.set_default_device("meta")
    try:
        yield
    finally:
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


def record_keyword(monkeypatch, owner, name: str, *keywords: str) -> list:
    """Replace `owner.name` by a pass-through that records the keyword arguments `keywords`
    of each call (their value, or a tuple of several; None where absent); return the record.
    """
    seen = []
    original = getattr(owner, name)

    def recording(*args, **kwargs):
        values = tuple(kwargs.get(k) for k in keywords)
        seen.append(values[0] if len(values) == 1 else values)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, recording)
    return seen


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


def fail_desc_at_resolution(monkeypatch, resolution) -> None:
    """Make tl.desc's clustering stage fail at `resolution` (the others run as they do)."""
    import scdeepclust.tl._desc as desc_module

    cluster = desc_module.cluster_desc

    def failing(feeder, pretrained, config, res, **kw):
        if res == resolution:
            raise ValueError(f"Leiden at resolution={resolution} found ...")
        return cluster(feeder, pretrained, config, res, **kw)

    monkeypatch.setattr(desc_module, "cluster_desc", failing)


def with_known_labels(adata, column: str = "known"):
    """Give `adata` obs[column]: the simulated groups, with every third cell unlabelled."""
    labels = adata.obs["group"].astype(object).copy()
    labels.iloc[::3] = np.nan
    adata.obs[column] = labels
    return adata


def counts_data(n_cells: int = 90, n_genes: int = 30):
    """Small simulated counts in 3 groups (also in layers['counts']), for the input checks."""
    import scdeepclust as sdc

    return sdc.datasets.simulate(
        n_cells, n_genes, 3, de_fraction=0.3, de_log_fold=2.0, random_state=2
    )


def big_endian_csr(matrix):
    """`matrix` as a CSR matrix of big-endian float32 values, as some files store it."""
    from scipy import sparse

    m = sparse.csr_matrix(matrix)
    return sparse.csr_matrix((m.data.astype(">f4"), m.indices, m.indptr), shape=m.shape)
