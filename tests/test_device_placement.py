"""Device placement, checked without a GPU.

Both tools run end to end while torch's default device is "meta": a tensor that the package
creates without saying where (``torch.zeros(n)``, ``torch.tensor([...])``, a module built and
never moved) is a meta tensor, and the first operation that mixes it with the real tensors of
the run fails, as a CPU tensor beside CUDA tensors would on a GPU. The runs use the test device
(`SCDEEPCLUST_TEST_DEVICE`, default "cpu")."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scanpy as sc
import torch

import scdeepclust as sdc
from _helpers import TEST_DEVICE, count_calls, default_device_meta
from scdeepclust.data import _feeding
from scdeepclust.models import DESC, SCDCC
from scdeepclust.train import _loops

QUICK = dict(pretrain_epochs=2, max_epochs=3, progress=False, batch_size=32, device=TEST_DEVICE)


def batched_counts(seed: int = 3):
    """150 cells in 3 groups and 2 batches, counts in X and layers['counts']."""
    return sdc.datasets.simulate(
        150, 60, 3, de_fraction=0.3, de_log_fold=2.0, n_batches=2, random_state=seed
    )


def scaled(adata):
    adata = adata.copy()
    sc.pp.normalize_total(adata)
    sc.pp.log1p(adata)
    return adata


def test_the_guard_fails_on_a_tensor_created_without_device(monkeypatch):
    """A clustering loss that forgets `device=` must fail the run under the guard (and only
    under it): otherwise the tests below could not fail."""
    adata = batched_counts()
    original = _loops.kl_divergence

    def forgetful(p, q):
        weight = torch.ones(len(q))  # no device: the mistake the guard is there to catch
        return original(p, q) * weight.mean()

    monkeypatch.setattr(_loops, "kl_divergence", forgetful)
    sdc.tl.scdcc(adata, 3, copy=True, **QUICK)  # fine where everything is on the CPU
    with default_device_meta(), pytest.raises((RuntimeError, NotImplementedError)):
        sdc.tl.scdcc(adata, 3, copy=True, **QUICK)


def test_the_guard_restores_the_default_device_after_a_failure():
    with pytest.raises(RuntimeError, match="inside"), default_device_meta():
        assert torch.zeros(1).device.type == "meta"
        raise RuntimeError("inside the block")
    assert torch.zeros(1).device.type == "cpu"


def rows_on_device(monkeypatch, on: bool) -> None:
    """Keep the rows on the device, as on a GPU where they fit, or read them per minibatch."""
    monkeypatch.setattr(_feeding, "keeps_rows", lambda source, device: on)


RESIDENT = pytest.mark.parametrize("resident", [False, True], ids=["host-rows", "device-rows"])


@RESIDENT
def test_scdcc_with_constraints_batches_and_mapping(resident, monkeypatch, tmp_path):
    """Pretraining, clustering with known labels, must-link / cannot-link pairs and batches,
    mapping new cells, saving and loading the model."""
    rows_on_device(monkeypatch, resident)
    adata = batched_counts()
    train, new = adata[:110].copy(), adata[110:].copy()
    group = train.obs["group"].astype(object).to_numpy()
    known = group.copy()
    unknown = np.flatnonzero(np.random.default_rng(0).random(train.n_obs) > 0.3)
    known[unknown] = np.nan
    train.obs["known"] = pd.Categorical(known)
    # explicit pairs among the unlabelled cells, so that they cannot contradict the labels
    same = [c for c in unknown if group[c] == group[unknown[0]]]
    other = [c for c in unknown if group[c] != group[unknown[0]]]
    with default_device_meta():
        model = sdc.tl.scdcc(
            train,
            3,
            label_key="known",
            must_link=[same[:2]],
            cannot_link=[[same[0], other[0]]],
            batch_key="batch",
            return_model=True,
            **QUICK,
        )
        sdc.tl.map_to_model(new, model, device=TEST_DEVICE)
        model.save(tmp_path / "model")
        loaded = SCDCC.load(tmp_path / "model", device=TEST_DEVICE)
        again = loaded.get_latent_representation(new, device=TEST_DEVICE)
        labels = loaded.predict(new, device=TEST_DEVICE)
    assert train.obsm["X_scdcc"].shape == (110, 32) and np.isfinite(train.obsm["X_scdcc"]).all()
    np.testing.assert_allclose(again, new.obsm["X_scdcc"], atol=1e-5)
    np.testing.assert_array_equal(labels, new.obs["scdcc"].astype(int))


@RESIDENT
def test_desc_with_batches_scaling_and_mapping(resident, monkeypatch, tmp_path):
    """Layer-wise and end-to-end pretraining, Leiden and k-means initialisation, scaling
    inside, batches, mapping new cells, saving and loading the model."""
    rows_on_device(monkeypatch, resident)
    adata = scaled(batched_counts())
    train, new = adata[:110].copy(), adata[110:].copy()
    with default_device_meta():
        sdc.tl.desc(train, resolution=0.5, key_added="leiden_init", **QUICK)
        model = sdc.tl.desc(
            train, n_clusters=3, scale=True, batch_key="batch", return_model=True, **QUICK
        )
        sdc.tl.map_to_model(new, model, device=TEST_DEVICE)
        model.save(tmp_path / "model")
        again = DESC.load(tmp_path / "model", device=TEST_DEVICE).get_latent_representation(
            new, device=TEST_DEVICE
        )
    assert np.isfinite(train.obsm["X_desc"]).all() and "leiden_init" in train.obs
    np.testing.assert_allclose(again, new.obsm["X_desc"], atol=1e-5)


@pytest.mark.parametrize("tool", ["scdcc", "desc"])
def test_checkpoint_and_resume(tool, tmp_path, monkeypatch):
    """An interrupted run resumed from its checkpoint: restored weights, optimizer state, RNGs
    and DEC target must land where the run computes."""
    adata = batched_counts()
    if tool == "desc":
        adata = scaled(adata)
    fn = sdc.tl.scdcc if tool == "scdcc" else sdc.tl.desc
    options = dict(QUICK, max_epochs=4, tol=0, checkpoint_dir=tmp_path, checkpoint_every=1)
    original, calls = _loops.kl_divergence, {"n": 0}

    def interrupted(p, q):
        calls["n"] += 1
        if calls["n"] == 12:  # 5 steps per epoch: in the third clustering epoch
            raise KeyboardInterrupt
        return original(p, q)

    with default_device_meta():
        with monkeypatch.context() as m:
            m.setattr(_loops, "kl_divergence", interrupted)
            with pytest.raises(KeyboardInterrupt):
                fn(adata, n_clusters=3, copy=True, **options)
        with monkeypatch.context() as m:
            steps = count_calls(m, _loops, "kl_divergence")
            resumed = fn(adata, n_clusters=3, copy=True, resume=True, **options)
    assert calls["n"] == 12 and np.isfinite(resumed.obsm[f"X_{tool}"]).all()
    # from the checkpoint after the second epoch: the last two, not the whole stage again
    assert len(steps) == 2 * 5


def test_device_requests_are_checked_before_any_work(monkeypatch):
    from scdeepclust.train import resolve_device

    assert resolve_device("cpu:0") == torch.device("cpu", 0)
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    for device in ("meta", "mps", "xpu"):
        with pytest.raises(ValueError, match="on the CPU or on CUDA GPUs only"):
            resolve_device(device)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("auto") == resolve_device() == torch.device("cuda")  # the GPU it sees
    assert resolve_device(1) == torch.device("cuda", 1)  # a bare index, as torch reads it
    with pytest.raises(ValueError, match=r"has 2 CUDA device\(s\), numbered from 0"):
        resolve_device("cuda:2")


def test_a_bool_is_no_device_index():
    """True is an int to Python but no device to ask for: it is refused as such, not read as
    the index of a CUDA device (torch's meaning of a bare int); so are other values torch
    refuses with a TypeError."""
    from scdeepclust.train import resolve_device

    for device in (True, False, 1.5, None):
        with pytest.raises(ValueError, match=rf"device={device} is not a device torch knows"):
            resolve_device(device)
