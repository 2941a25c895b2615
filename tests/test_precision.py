"""`precision="bfloat16"`: the networks' layers in bfloat16, everything else in float32."""

from __future__ import annotations

import numpy as np
import pytest
import scanpy as sc
import torch
from sklearn.metrics import adjusted_rand_score

import scdeepclust as sdc
from _helpers import TEST_DEVICE
from scdeepclust._cli import main
from scdeepclust.nn import PRECISIONS, StackedAutoencoder, ZINBAutoencoder
from scdeepclust.train import check_precision, standard_torch_mode

FAST = dict(pretrain_epochs=20, max_epochs=10, progress=False, batch_size=64)


def _twin(make):
    """The same network twice, in float32 and in bfloat16, with the same weights."""
    torch.manual_seed(0)
    full = make("float32")
    half = make("bfloat16")
    half.load_state_dict(full.state_dict())
    return full, half


def test_zinb_autoencoder_in_bfloat16_stays_close_and_returns_float32():
    full, half = _twin(
        lambda p: ZINBAutoencoder(200, encoder_hidden=(64,), latent_dim=8, precision=p)
    )
    x, sf = torch.randn(32, 200), torch.rand(32) + 0.5
    z_full, z_half = full.encode(x), half.encode(x)
    assert z_half.dtype == torch.float32
    assert not torch.equal(z_full, z_half)  # it really computed in bfloat16
    torch.testing.assert_close(z_half, z_full, rtol=0.05, atol=0.05)
    p_full, p_half = full.decode(z_full, sf), half.decode(z_full, sf)
    for name in ("log_mean", "dispersion", "dropout_logits"):
        got, want = getattr(p_half, name), getattr(p_full, name)
        assert got.dtype == torch.float32
        torch.testing.assert_close(got, want, rtol=0.05, atol=0.05)
    # gradients reach the float32 weights
    loss = sdc.nn.zinb_nll(torch.poisson(p_half.mean.detach()), half.decode(half.encode(x), sf))
    loss.backward()
    for p in half.parameters():
        assert p.grad is not None and p.grad.dtype == torch.float32
        assert torch.isfinite(p.grad).all()


def test_stacked_autoencoder_in_bfloat16_stays_close_and_returns_float32():
    full, half = _twin(lambda p: StackedAutoencoder(100, (32, 8), precision=p))
    x = torch.randn(16, 100)
    for method in ("encode", "decode"):
        arg = x if method == "encode" else full.encode(x)
        got, want = getattr(half, method)(arg), getattr(full, method)(arg)
        assert got.dtype == torch.float32
        torch.testing.assert_close(got, want, rtol=0.05, atol=0.05)
    got, want = half.layer_pair(0, x), full.layer_pair(0, x)
    assert got.dtype == torch.float32 and not torch.equal(got, want)
    torch.testing.assert_close(got, want, rtol=0.05, atol=0.05)
    assert half.encode_layer(0, x).dtype == torch.float32


def test_check_precision():
    for precision in PRECISIONS:
        check_precision(precision, torch.device("cpu"))  # accepted: no error
    with pytest.raises(ValueError, match=r"precision='float16' is not one of 'float32', 'bf"):
        check_precision("float16", torch.device("cpu"))


def test_bfloat16_is_refused_on_a_gpu_without_it(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a, **k: "Tesla V100")
    with pytest.raises(ValueError, match=r"on Tesla V100, which does not compute in bfloat16"):
        check_precision("bfloat16", torch.device("cuda"))


@pytest.mark.parametrize("tool", ["scdcc", "desc"])
def test_tools_in_bfloat16_find_the_groups_reproducibly(tool, sim):
    adata = sim.copy()
    kwargs = dict(FAST, device=TEST_DEVICE, precision="bfloat16")
    if tool == "desc":
        sc.pp.normalize_total(adata)
        sc.pp.log1p(adata)
        sc.pp.scale(adata)
        kwargs["n_clusters"] = 3
        first = sdc.tl.desc(adata, copy=True, **kwargs)
        again = sdc.tl.desc(adata, copy=True, **kwargs)
    else:
        first = sdc.tl.scdcc(adata, 3, copy=True, **kwargs)
        again = sdc.tl.scdcc(adata, 3, copy=True, **kwargs)
    assert adjusted_rand_score(adata.obs["group"], first.obs[tool]) > 0.9
    assert first.obsm[f"X_{tool}"].dtype == np.float32
    assert first.uns[tool]["params"]["precision"] == "bfloat16"
    np.testing.assert_array_equal(first.obs[tool], again.obs[tool])
    np.testing.assert_array_equal(first.obsm[f"X_{tool}"], again.obsm[f"X_{tool}"])


def test_a_saved_bfloat16_model_maps_cells_as_it_was_trained(sim, tmp_path):
    adata = sim.copy()
    out, model = sdc.tl.scdcc(adata, 3, copy=True, return_model=True, precision="bfloat16", **FAST)
    assert model.network.precision == "bfloat16"
    loaded = sdc.models.load(model.save(tmp_path / "m"))
    assert loaded.network.precision == "bfloat16"
    mapped = sdc.tl.map_to_model(adata, loaded, copy=True)
    np.testing.assert_array_equal(mapped.obs["scdcc"], out.obs["scdcc"])
    # a model saved before the option existed computes in float32
    config = {k: v for k, v in model.config.items() if k != "precision"}
    assert type(model).build_network(config, adata.n_vars).precision == "float32"


def test_cli_precision_option(sim, tmp_path):
    path, out = tmp_path / "sim.h5ad", tmp_path / "p.h5ad"
    sim.write_h5ad(path)
    args = ["run", str(path), "-m", "scdcc", "-k", "3", "-o", str(out), "-q"]
    short = ["--pretrain-epochs", "2", "--max-epochs", "1"]
    assert main([*args, *short, "--precision", "bfloat16"]) == 0
    assert sc.read_h5ad(out).uns["scdcc"]["params"]["precision"] == "bfloat16"
    with pytest.raises(SystemExit):
        main([*args, "--precision", "float16"])


def _float64_default():
    """`torch.set_default_dtype(torch.float64)` for the block."""
    import contextlib

    @contextlib.contextmanager
    def block():
        torch.set_default_dtype(torch.float64)
        try:
            yield
        finally:
            torch.set_default_dtype(torch.float32)

    return block()


def _matmul_precision(level):
    """`torch.set_float32_matmul_precision(level)` for the block."""
    import contextlib

    @contextlib.contextmanager
    def block():
        torch.set_float32_matmul_precision(level)
        try:
            yield
        finally:
            torch.set_float32_matmul_precision("highest")

    return block()


CALLER_MODES = {
    "autocast": lambda: torch.autocast(torch.device(TEST_DEVICE).type, dtype=torch.bfloat16),
    "no_grad": torch.no_grad,
    "inference_mode": torch.inference_mode,
    "float64_default": _float64_default,
    "matmul_medium": lambda: _matmul_precision("medium"),
}


@pytest.mark.parametrize("mode", CALLER_MODES)
def test_a_torch_mode_open_in_the_callers_code_changes_nothing(sim, tmp_path, mode):
    # A caller's autocast ran the float32 run partly in bfloat16 (ARI 1.0 -> 0.10, recorded as
    # float32); no_grad / inference_mode stopped training; a float64 default dtype failed in
    # torch's "mat1 and mat2 must have the same dtype".
    short = dict(FAST, pretrain_epochs=3, max_epochs=2, device=TEST_DEVICE)
    want, model = sdc.tl.scdcc(sim, 3, copy=True, return_model=True, **short)
    path = model.save(tmp_path / "m")
    want_mapped = sdc.tl.map_to_model(sim, model, copy=True, device=TEST_DEVICE)
    with CALLER_MODES[mode]():
        got = sdc.tl.scdcc(sim, 3, copy=True, **short)
        loaded = sdc.models.load(path, device=TEST_DEVICE)
        mapped = sdc.tl.map_to_model(sim, loaded, copy=True, device=TEST_DEVICE)
        latent = loaded.get_latent_representation(sim, device=TEST_DEVICE)
    assert torch.get_default_dtype() == torch.float32
    np.testing.assert_array_equal(got.obsm["X_scdcc"], want.obsm["X_scdcc"])
    np.testing.assert_array_equal(got.obs["scdcc"], want.obs["scdcc"])
    assert latent.dtype == np.float32
    np.testing.assert_allclose(latent, want.obsm["X_scdcc"], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(mapped.obs["scdcc"], want_mapped.obs["scdcc"])


def test_a_float64_default_dtype_is_left_as_the_caller_set_it(scaled):
    with _float64_default():
        sdc.tl.desc(scaled, n_clusters=3, copy=True, **FAST, device=TEST_DEVICE)
        assert torch.get_default_dtype() == torch.float64


@pytest.mark.parametrize("level", ["high", "medium"])
def test_float32_products_run_at_full_precision_whatever_the_caller_set(level):
    # "medium" let float32 products round through bfloat16 on CPUs that have it (simulated
    # data: scDCC's embedding moved by up to 0.3, recorded as float32); "high" is TF32 on GPUs.
    seen = []
    with _matmul_precision(level):
        with standard_torch_mode():
            seen.append(torch.get_float32_matmul_precision())
        seen.append(torch.get_float32_matmul_precision())
    assert seen == ["highest", level]


def test_bfloat16_runs_inside_a_callers_autocast_as_outside(sim):
    # The layers' own autocast kept its weight cache while an enclosing autocast was open, so
    # later steps computed with stale bfloat16 copies of weights the optimiser had changed.
    short = dict(FAST, pretrain_epochs=3, max_epochs=2, device=TEST_DEVICE, precision="bfloat16")
    want = sdc.tl.scdcc(sim, 3, copy=True, **short)
    with torch.autocast(torch.device(TEST_DEVICE).type, dtype=torch.bfloat16):
        got = sdc.tl.scdcc(sim, 3, copy=True, **short)
    np.testing.assert_array_equal(got.obsm["X_scdcc"], want.obsm["X_scdcc"])


@pytest.mark.parametrize("mode", CALLER_MODES)
def test_desc_in_a_callers_torch_mode_as_outside(scaled, mode):
    short = dict(FAST, pretrain_epochs=3, max_epochs=2, device=TEST_DEVICE, n_clusters=3)
    want = sdc.tl.desc(scaled, copy=True, **short)
    with CALLER_MODES[mode]():
        got = sdc.tl.desc(scaled, copy=True, **short)
    np.testing.assert_array_equal(got.obsm["X_desc"], want.obsm["X_desc"])


def test_float32_networks_compute_in_float32_inside_a_callers_autocast():
    """A network called directly (not through a tool, which leaves the caller's torch modes
    anyway) inside a caller's autocast still computes its float32 layers in float32. Kills M13
    (the float32 path no longer disables an enclosing autocast)."""
    torch.manual_seed(0)
    zinb = ZINBAutoencoder(200, encoder_hidden=(64,), latent_dim=8)
    stacked = StackedAutoencoder(100, (32, 8))
    x, y = torch.randn(32, 200), torch.randn(16, 100)
    want = (zinb.encode(x), stacked.encode(y), stacked.layer_pair(0, y))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = (zinb.encode(x), stacked.encode(y), stacked.layer_pair(0, y))
    for g, w in zip(got, want):
        assert torch.equal(g, w)
