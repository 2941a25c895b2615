"""Trained models: return_model, save / load (safe, versioned), mapping new cells, and
checkpoints that let an interrupted run continue."""

from __future__ import annotations

import copy
import json
import os
import pickle
import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scanpy as sc
import torch
from scipy import sparse
from sklearn.metrics import adjusted_rand_score

import scdeepclust as sdc
from _helpers import (
    ONE_EPOCH,
    assert_unchanged,
    big_endian_csr,
    count_calls,
    counts_data,
    fail_desc_at_resolution,
    shared_file,
    snapshot,
)
from scdeepclust.models import DESC, SCDCC
from scdeepclust.train import _loops

TRAIN = dict(pretrain_epochs=20, max_epochs=10, progress=False, batch_size=64)


@pytest.fixture(scope="module")
def split():
    """300 simulated cells: the first 200 to train on, the other 100 to map."""
    adata = sdc.datasets.simulate(300, 120, 3, de_fraction=0.3, de_log_fold=2.0, random_state=11)
    return adata[:200].copy(), adata[200:].copy()


@pytest.fixture(scope="module")
def scdcc_model(split):
    train, _ = split
    train = train.copy()
    model = sdc.tl.scdcc(train, 3, return_model=True, **TRAIN)
    return train, model


def test_return_model_and_copy(split):
    train, _ = split
    before = snapshot(train)
    fast = dict(pretrain_epochs=1, max_epochs=1, progress=False, batch_size=64)
    out, model = sdc.tl.scdcc(train, 3, copy=True, return_model=True, **fast)
    assert_unchanged(train, before)
    assert isinstance(model, SCDCC) and isinstance(model, sdc.models.TrainedModel)
    assert "scdcc" in out.obs and model.n_clusters == 3 and model.latent_dim == 32
    assert model.features == list(train.var_names)
    # the model reproduces the written result on the training cells: the embedding, the soft
    # assignments and their highest entry (the refined labels need the training cells' classifier)
    again = sdc.tl.map_to_model(train, model, copy=True, key_added="again")
    np.testing.assert_allclose(again.obsm["X_again"], out.obsm["X_scdcc"], atol=1e-5)
    np.testing.assert_allclose(again.obsm["again_probs"], out.obsm["scdcc_probs"], atol=1e-5)
    np.testing.assert_array_equal(again.obs["again"].astype(int), out.obsm["scdcc_probs"].argmax(1))
    plain = sdc.tl.scdcc(train, 3, refine=0, copy=True, return_model=True, **fast)
    mapped = sdc.tl.map_to_model(train, plain[1], copy=True, key_added="again")
    np.testing.assert_array_equal(mapped.obs["again"], plain[0].obs["scdcc"])
    assert sdc.tl.scdcc(train, 3, copy=True, **fast).n_obs == train.n_obs  # no model: AnnData
    # the model holds the settings as run (tol, refine, pretrain_balance were the unresolved
    # defaults there), and so do the params, max_value and n_pairs included
    params = out.uns["scdcc"]["params"]
    for name, value in params.items():
        assert np.array_equal(np.asarray(model.config[name]), np.asarray(value)), name
    assert params["tol"] is not None and params["pretrain_balance"] is not None
    with pytest.warns(UserWarning, match="n_pairs=50 has no effect"):  # recorded all the same
        given = sdc.tl.scdcc(train, 3, copy=True, max_value=10.0, n_pairs=50, **fast)
    assert {"max_value": 10.0, "n_pairs": 50}.items() <= dict(given.uns["scdcc"]["params"]).items()


def test_mapping_new_cells_scdcc(scdcc_model, split):
    train, model = scdcc_model
    _, test = split
    test = test.copy()
    before = snapshot(test)
    out = sdc.tl.map_to_model(test, model, copy=True)
    assert_unchanged(test, before)
    trained_ari = adjusted_rand_score(train.obs["group"], train.obs["scdcc"])
    mapped_ari = adjusted_rand_score(out.obs["group"], out.obs["scdcc"])
    print(f"scDCC ARI: trained {trained_ari:.3f}, mapped {mapped_ari:.3f}")
    assert trained_ari > 0.9 and mapped_ari > trained_ari - 0.1
    probs = out.obsm["scdcc_probs"]
    assert probs.shape == (test.n_obs, 3)
    np.testing.assert_allclose(probs.sum(1), 1, rtol=1e-5)
    np.testing.assert_allclose(out.obs["scdcc_confidence"], probs.max(1))
    assert list(out.obs["scdcc"].cat.categories) == ["0", "1", "2"]
    assert out.uns["scdcc"]["params"]["model_key"] == "scdcc"
    assert out.uns["scdcc"]["n_genes_missing"] == 0
    # mapping trains and searches nothing: the plots of training say so
    with pytest.raises(ValueError, match=r"mapped onto a trained model .* no history"):
        sdc.pl.history(out, "scdcc", show=False)
    with pytest.raises(KeyError, match=r"mapped onto a trained model .* searches nothing"):
        sdc.pl.n_clusters(out, "scdcc", show=False)


def test_scdcc_model_reads_new_cells_from_its_training_layer(split, tmp_path):
    train, test = split
    train, test = train.copy(), test.copy()
    for adata in (train, test):  # counts under another name, X log-normalised
        adata.layers["umi"] = adata.layers.pop("counts")
        sc.pp.normalize_total(adata)
        sc.pp.log1p(adata)
    fast = dict(pretrain_epochs=2, max_epochs=1, progress=False, batch_size=64)
    model = sdc.tl.scdcc(train, 3, layer="umi", return_model=True, **fast)
    model.save(tmp_path / "m")
    loaded = SCDCC.load(tmp_path / "m")
    expected = model.predict(test, layer="umi", soft=True)
    for m in (model, loaded):
        np.testing.assert_array_equal(m.predict(test, soft=True), expected)
    # new cells without that layer: their counts are found as the tool finds them
    renamed = test.copy()
    renamed.layers["counts"] = renamed.layers.pop("umi")
    np.testing.assert_array_equal(model.predict(renamed, soft=True), expected)
    del renamed.layers["counts"]
    with pytest.raises(ValueError, match=r"adata.X does not hold raw counts"):
        model.predict(renamed)
    # a model of the default layers['counts'] keeps the default's advice where that layer
    # holds other values and X the counts
    default = sdc.tl.scdcc(split[0].copy(), 3, return_model=True, **fast)
    swapped = split[1].copy()
    swapped.X = swapped.layers["counts"].copy()
    sc.pp.log1p(swapped, layer="counts")
    with pytest.raises(ValueError, match=r"if adata.X holds them, rename that layer"):
        default.predict(swapped)


def test_predict_and_latent_return_what_map_to_model_writes(scdcc_model, split):
    _, model = scdcc_model
    _, test = split
    test = test.copy()
    before = snapshot(test)
    labels = model.predict(test)
    probs = model.predict(test, soft=True)
    embedding = model.get_latent_representation(test)
    assert_unchanged(test, before)
    for key, values in before["obsm"].items():
        np.testing.assert_array_equal(test.obsm[key], values)
    assert labels.shape == (test.n_obs,) and np.issubdtype(labels.dtype, np.integer)
    assert probs.shape == (test.n_obs, 3) and probs.dtype == np.float32
    assert embedding.shape == (test.n_obs, 32) and embedding.dtype == np.float32
    np.testing.assert_array_equal(labels, probs.argmax(1))

    written = sdc.tl.map_to_model(test, model, copy=True)
    np.testing.assert_array_equal(labels.astype(str), written.obs["scdcc"].astype(str))
    np.testing.assert_array_equal(probs, written.obsm["scdcc_probs"])
    np.testing.assert_array_equal(embedding, written.obsm["X_scdcc"])


def _raised(call) -> tuple[type, str]:
    with pytest.raises(Exception) as info:
        call()
    return type(info.value), str(info.value)


def test_predict_refuses_what_map_to_model_refuses(scdcc_model, split):
    _, model = scdcc_model
    _, test = split
    renamed = test.copy()
    renamed.var_names = [f"ENSG{i}" for i in range(test.n_vars)]
    duplicated = test.copy()
    duplicated.var_names = ["g"] * test.n_vars
    lognorm = test.copy()
    del lognorm.layers["counts"]
    sc.pp.log1p(lognorm)
    bad = {
        "not an AnnData": test.X,
        "no cells": test[:0].copy(),
        "no gene in common": renamed,
        "duplicate gene names": duplicated,
        "not counts": lognorm,
    }
    for what, adata in bad.items():
        expected = _raised(lambda a=adata: sdc.tl.map_to_model(a, model, copy=True))
        for call in (model.predict, model.get_latent_representation):
            assert _raised(lambda a=adata, c=call: c(a)) == expected, (what, call.__name__)
    with pytest.raises(TypeError, match="unexpected keyword argument 'key_added'"):
        model.predict(test, key_added="mapped")  # writing is map_to_model's


def test_gene_matching_by_name(scdcc_model, split):
    _, model = scdcc_model
    _, test = split
    ref = sdc.tl.map_to_model(test, model, copy=True)
    # reordered genes and extra genes: the same result
    shuffled = test[:, np.random.default_rng(0).permutation(test.n_vars)].copy()
    extra = sc.AnnData(
        np.ones((test.n_obs, 3), np.float32),
        obs=test.obs[[]],
        var=dict(index=["extra1", "extra2", "extra3"]),
    )
    extra.layers["counts"] = extra.X.copy()
    wider = sc.concat([shuffled, extra], axis=1, merge="first")
    out = sdc.tl.map_to_model(wider, model, copy=True)
    np.testing.assert_allclose(out.obsm["X_scdcc"], ref.obsm["X_scdcc"], atol=1e-5)
    # missing genes: zeros, with a warning that says how many
    fewer = test[:, 10:].copy()
    with pytest.warns(UserWarning, match=r"10 of the model's 120 genes .*\(e.g. \['gene0'") as w:
        out = sdc.tl.map_to_model(fewer, model, copy=True)
    assert w[0].filename == __file__  # the warning points at the caller's line
    with pytest.warns(UserWarning, match=r"10 of the model's 120 genes are not in adata") as w:
        np.testing.assert_array_equal(model.predict(fewer), out.obs["scdcc"].astype(int))
    assert w[0].filename == __file__
    assert out.uns["scdcc"]["n_genes_missing"] == 10
    with pytest.warns(UserWarning, match=r"1 of the model's 120 genes .*\(e.g. \['gene0'"):
        one_fewer = sdc.tl.map_to_model(test[:, 1:].copy(), model, copy=True)
    assert one_fewer.uns["scdcc"]["n_genes_missing"] == 1
    assert adjusted_rand_score(test.obs["group"], out.obs["scdcc"]) > 0.8
    # none in common, or names that cannot be matched
    other = test.copy()
    other.var_names = [f"ENSG{i}" for i in range(test.n_vars)]
    with pytest.raises(ValueError, match=r"None of the model's 120 genes .*\(model: \['gene0'"):
        sdc.tl.map_to_model(other, model, copy=True)
    other.var_names = ["g"] * test.n_vars  # repeated, but no gene of the model
    with pytest.raises(ValueError, match=r"None of the model's 120 genes .*adata: \['g', 'g'"):
        sdc.tl.map_to_model(other, model, copy=True)
    other.var_names = ["gene0"] * test.n_vars
    with pytest.raises(ValueError, match=r"adata\.var_names repeat genes of the model \(e\.g\. "):
        sdc.tl.map_to_model(other, model, copy=True)
    with pytest.raises(ValueError, match="does not hold raw counts"):
        lognorm = test.copy()
        del lognorm.layers["counts"]
        sc.pp.log1p(lognorm)
        sdc.tl.map_to_model(lognorm, model)


def test_repeated_names_of_genes_the_model_does_not_read_leave_its_genes_matched(
    scdcc_model, split
):
    """Positions among the unique names were taken as positions in var_names: every gene of
    the model after the repeated ones read another gene's column."""
    import anndata as ad

    from scdeepclust.models._trained import match_features

    assert list(match_features(pd.Index(["x", "x", "a", "b"]), ["a", "b"])) == [2, 3]
    _, model = scdcc_model
    test = split[1]
    extra = sparse.csr_matrix(np.ones((test.n_obs, 2), dtype=np.float32))
    padded = ad.concat(
        [ad.AnnData(extra, obs=test.obs[[]], var=pd.DataFrame(index=["dup", "dup"])), test],
        axis=1,
        merge="first",
    )
    padded.layers["counts"] = sparse.hstack([extra, test.layers["counts"]]).tocsr()
    np.testing.assert_array_equal(model.predict(padded), model.predict(test))


def test_repeated_gene_names_and_cells_without_the_models_genes(scdcc_model, split):
    """Repeated names: a warning in training, no model (it could not match genes by name);
    a cell without counts in the model's genes is named when it is refused."""
    train, model = scdcc_model
    doubled = split[0][:60].copy()
    names = list(doubled.var_names)
    names[1] = names[0]
    doubled.var_names = names
    with pytest.warns(UserWarning, match=r"adata.var_names are not unique \(e.g. \['gene0'\]\)"):
        sdc.tl.scdcc(doubled, 3, copy=True, **TRAIN)
    with pytest.raises(ValueError, match=r"var_names are not unique .* a model of this run"):
        sdc.tl.scdcc(doubled, 3, return_model=True, copy=True, **TRAIN)
    model_with_repeats = copy.copy(model)
    model_with_repeats.features = names
    with pytest.raises(ValueError, match=r"This model's genes have repeated names"):
        model_with_repeats.predict(split[1])
    cells = split[1][:5].copy()
    cells.layers["counts"] = cells.layers["counts"].toarray()
    cells.layers["counts"][0] = 0
    with pytest.raises(ValueError, match=r"1 cell\(s\) \(e.g. \['cell.*'\]\) have no counts"):
        model.predict(cells)


def test_save_load_round_trip(scdcc_model, split, tmp_path):
    train, model = scdcc_model
    _, test = split
    path = model.save(tmp_path / "m")
    meta = json.loads((path / "model.json").read_text())
    assert meta["format_version"] == sdc.models.MODEL_FORMAT_VERSION
    assert meta["method"] == "scdcc" and meta["scdeepclust_version"] == sdc.__version__
    assert meta["features"] == list(train.var_names)
    pre = meta["preprocessing"]
    lib = np.asarray(train.layers["counts"].sum(1)).ravel()
    assert pre["median_library_size"] == pytest.approx(np.median(lib))
    assert len(pre["gene_mean"]) == len(pre["gene_scale"]) == train.n_vars
    assert pre["counts_from"] == "layers['counts']"
    assert np.asarray(meta["centroids"]).shape == (3, 32)
    assert meta["config"]["latent_dim"] == 32
    assert model.confidence_map is None and "confidence_map" not in meta
    # weights are a plain state dict, loadable without executing code
    state = torch.load(path / "weights.pt", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())

    for loaded in (sdc.models.load(path), SCDCC.load(path)):
        assert type(loaded) is SCDCC and loaded.key_added == "scdcc"
        np.testing.assert_array_equal(loaded.centroids, model.centroids)
        a = sdc.tl.map_to_model(test, model, copy=True)
        b = sdc.tl.map_to_model(test, str(path), copy=True)  # a path works too
        np.testing.assert_array_equal(a.obsm["X_scdcc"], b.obsm["X_scdcc"])
        np.testing.assert_array_equal(a.obs["scdcc"], b.obs["scdcc"])
        np.testing.assert_array_equal(a.obs["scdcc_confidence"], b.obs["scdcc_confidence"])

    # loading builds layers whose initial weights it replaces: the caller's RNG stays as it was
    torch.manual_seed(5)
    state = torch.random.get_rng_state()
    sdc.models.load(path)
    sdc.tl.map_to_model(test, str(path), copy=True)
    assert torch.equal(torch.random.get_rng_state(), state)

    with pytest.raises(FileExistsError, match="already holds a model.*overwrite=True"):
        model.save(path)
    model.save(path, overwrite=True)
    config_only = tmp_path / "config_only"  # a save cut short, or another run's settings
    config_only.mkdir()
    (config_only / "model.json").write_text("{}")
    with pytest.raises(FileExistsError, match=r"already holds a model \(model\.json\)"):
        model.save(config_only)
    assert (config_only / "model.json").read_text() == "{}"
    with pytest.raises(ValueError, match="holds a SCDCC model, not a DESC"):
        DESC.load(path)


def test_newer_format_is_refused(scdcc_model, tmp_path):
    _, model = scdcc_model
    path = model.save(tmp_path / "m")
    meta = json.loads((path / "model.json").read_text())
    meta["format_version"] = 99
    (path / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"format version 99.*reads format versions up to 1\. "):
        sdc.models.load(path)
    meta["format_version"] = sdc.models.MODEL_FORMAT_VERSION + 1  # the next one, not only 99
    (path / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="Upgrade scdeepclust"):
        sdc.models.load(path)


def test_model_files_not_written_by_save_are_refused_by_name(scdcc_model, tmp_path):
    _, model = scdcc_model
    path = model.save(tmp_path / "m")
    meta = json.loads((path / "model.json").read_text())
    edits = [
        ([meta], "is not a model written by scdeepclust"),  # a list, not the object
        ({**meta, "format_version": True}, "is not a model written by scdeepclust"),
        ({k: v for k, v in meta.items() if k != "centroids"}, r"lacks \['centroids'\]"),
    ]
    for edited, match in edits:
        (path / "model.json").write_text(json.dumps(edited))
        with pytest.raises(ValueError, match=match):
            sdc.models.load(path)


class _Exploit:
    def __reduce__(self):
        import os

        return (os.system, ("touch EXPLOITED",))


def test_loading_never_executes_code(scdcc_model, tmp_path, monkeypatch):
    _, model = scdcc_model
    path = model.save(tmp_path / "m")
    monkeypatch.chdir(tmp_path)
    with open(path / "weights.pt", "wb") as f:
        pickle.dump({"weights": _Exploit()}, f, protocol=2)
    with pytest.raises(ValueError, match="is not the file model.json was saved with"):
        sdc.models.load(path)
    # a file of an earlier version, without the weights' digest, reaches the loader itself
    meta = json.loads((path / "model.json").read_text())
    del meta["weights_sha256"]
    (path / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="could not be loaded as weights"):
        sdc.models.load(path)
    assert not (tmp_path / "EXPLOITED").exists()


def test_desc_model_maps_new_cells(split, tmp_path):
    train, test = (a.copy() for a in split)
    for a in (train, test):
        sc.pp.normalize_total(a, target_sum=1e4)
        sc.pp.log1p(a)
    model = sdc.tl.desc(
        train,
        n_clusters=3,
        return_model=True,
        pretrain_epochs=15,
        max_epochs=10,
        progress=False,
        batch_size=64,
    )
    assert isinstance(model, DESC)
    # the input as read (no z-scoring of its own), and its genes' scale, which mapped cells
    # are checked against
    assert model.preprocessing.keys() == {"input", "input_gene_scale", "input_has_negatives"}
    assert model.preprocessing["input"] == {"kind": "X", "key": None}
    loaded = sdc.models.load(model.save(tmp_path / "d"))
    assert loaded.confidence_map.as_dict() == model.confidence_map.as_dict()
    sdc.tl.map_to_model(test, loaded)
    np.testing.assert_array_equal(loaded.predict(test), test.obs["desc"].astype(int))
    # mapped cells on the scale fitted to the training cells
    mapped_soft = test.obsm["desc_probs"].max(1)
    np.testing.assert_allclose(test.obs["desc_confidence"], model.confidence_map(mapped_soft))
    trained_ari = adjusted_rand_score(train.obs["group"], train.obs["desc"])
    mapped_ari = adjusted_rand_score(test.obs["group"], test.obs["desc"])
    print(f"DESC ARI: trained {trained_ari:.3f}, mapped {mapped_ari:.3f}")
    assert trained_ari > 0.9 and mapped_ari > trained_ari - 0.1
    # raw counts where the model read log-normalised values: the warning tl.desc gives
    with pytest.warns(UserWarning, match=r"adata.X looks like raw counts"):
        loaded.predict(split[1])
    # several resolutions: one model per key
    models = sdc.tl.desc(
        train,
        resolution=[0.3, 1.0],
        return_model=True,
        pretrain_epochs=2,
        max_epochs=1,
        progress=False,
        batch_size=64,
    )
    assert set(models) == {"desc_0.3", "desc_1.0"}
    assert all(m.key_added == k for k, m in models.items())
    with pytest.raises(TypeError, match=r"map onto one of them, e.g. model\['desc_0.3'\]"):
        sdc.tl.map_to_model(test, models)


def test_desc_model_of_a_layer_says_which_layer_new_cells_lack(split):
    train, test = (a.copy() for a in split)
    for a in (train, test):
        a.layers["lognorm"] = np.log1p(a.layers["counts"].toarray())
    fast = dict(n_clusters=3, pretrain_epochs=2, max_epochs=1, progress=False, batch_size=64)
    model = sdc.tl.desc(train, layer="lognorm", return_model=True, **fast)
    expected = model.predict(test)
    test.layers["logged"] = test.layers.pop("lognorm")
    with pytest.raises(KeyError, match=r"trained on layers\['lognorm'\], which adata lacks"):
        model.predict(test)
    np.testing.assert_array_equal(model.predict(test, layer="logged"), expected)


def test_desc_model_warns_about_new_cells_as_training_would(split):
    train, test = (a.copy() for a in split)
    for a in (train, test):
        sc.pp.normalize_total(a, target_sum=1e4)
        sc.pp.log1p(a)
    sc.pp.scale(train)
    fast = dict(n_clusters=3, pretrain_epochs=2, max_epochs=1, progress=False, batch_size=64)
    model = sdc.tl.desc(train, return_model=True, **fast)
    # normalised but neither logged nor scaled: far from the z-scores the model read
    unlogged = split[1].copy()
    sc.pp.normalize_total(unlogged, target_sum=1e4)
    with pytest.warns(UserWarning, match=r"root mean square is .* Prepare the new cells as"):
        model.predict(unlogged)
    # a cell without values in the model's genes lands where the zero vector does
    sc.pp.scale(test)
    empty = test.copy()
    empty.X[0] = 0
    with pytest.warns(UserWarning, match=r"1 cell\(s\) are all zero in adata.X in the model's"):
        model.predict(empty)
    with warnings.catch_warnings():  # cells prepared as the model's: not a word
        warnings.simplefilter("error", UserWarning)
        model.predict(test)


def _log_normalised_as_pbmc(split):
    """`split` log-normalised, dense, its genes spread as 10X PBMC's (a median SD of 0.6)."""
    train, test = (a.copy() for a in split)
    for a in (train, test):
        sc.pp.normalize_total(a, target_sum=1e4)
        sc.pp.log1p(a)
        a.X = a.X.toarray() if hasattr(a.X, "toarray") else a.X
        a.X *= 0.6 / np.median(a.X.std(0))  # no "not scaled" warning
    return train, test


def test_desc_model_warns_of_new_cells_scaled_otherwise_than_its_training_cells(split):
    """New cells log-normalised for a model of scaled ones, or scaled for a model of
    log-normalised ones, were mapped silently where the genes' spread passed the unscaled check
    (10X PBMC: median gene SD 0.53; 46% and 75% of 500 new cells changed cluster)."""
    train, test = _log_normalised_as_pbmc(split)
    scaled_train, scaled_test = train.copy(), test.copy()
    sc.pp.scale(scaled_train)
    sc.pp.scale(scaled_test)
    fast = dict(n_clusters=3, pretrain_epochs=2, max_epochs=1, progress=False, batch_size=64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        of_scaled = sdc.tl.desc(scaled_train, return_model=True, copy=True, **fast)[1]
        of_lognorm = sdc.tl.desc(train, return_model=True, copy=True, **fast)[1]
    for model, wrong, right, message in (
        (
            of_scaled,
            test,
            scaled_test,
            r"no negative values, but .* scale them with the training cells' gene means",
        ),
        (of_lognorm, scaled_test, test, r"negative values, as scaled .* had none .*adata.raw"),
    ):
        with pytest.warns(UserWarning, match=message) as caught:
            model.predict(wrong)
        assert len(caught) == 1
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)
            model.predict(right)
            # cells of one type spread less than all the types: no sign of other preparation
            model.predict(right[right.obs["group"] == right.obs["group"].iloc[0]].copy())


def test_advice_on_new_cells_follows_how_the_training_cells_were_prepared(split):
    """Negative values alone took a model of ComBat-corrected cells for one of scaled cells,
    and one of cells scaled without centring for one of log-normalised cells: following the
    advice (sc.pp.scale; leave it out) lost the cells (ARI against the training labels 0.88
    -> 0.31) or led from one warning to the other."""
    train, test = (a.copy() for a in split)
    for a in (train, test):
        sc.pp.normalize_total(a, target_sum=1e4)
        sc.pp.log1p(a)
        a.X = a.X.toarray() if hasattr(a.X, "toarray") else a.X
    corrected_train, corrected_test = train.copy(), test.copy()
    shrink = 0.3 / np.median(train.X.std(0))  # ComBat's: centred genes, spread as logged
    for a in (corrected_train, corrected_test):
        a.X = (a.X - a.X.mean(0)) * shrink
    uncentred_train, uncentred_test = train.copy(), test.copy()
    sc.pp.scale(uncentred_train, zero_center=False)
    sc.pp.scale(uncentred_test, zero_center=False)
    fast = dict(n_clusters=3, pretrain_epochs=2, max_epochs=1, progress=False, batch_size=64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        of_corrected = sdc.tl.desc(corrected_train, return_model=True, copy=True, **fast)[1]
        of_uncentred = sdc.tl.desc(uncentred_train, return_model=True, copy=True, **fast)[1]
    scaled_corrected = corrected_test.copy()
    sc.pp.scale(scaled_corrected)
    centred = uncentred_test.copy()
    sc.pp.scale(centred)
    for model, new, message in (
        (of_corrected, test, r"\(corrected without scaling.*same correction .* not sc.pp.scale"),
        (of_corrected, scaled_corrected, r"genes spread .* times as much .* leave out sc.pp.scale"),
        (
            of_uncentred,
            centred,
            r"\(scaled without centring.*divide each gene by the training cells' standard",
        ),
    ):
        with pytest.warns(UserWarning, match=message) as caught:
            model.predict(new)
        assert len(caught) == 1, [str(w.message) for w in caught]
    for model, new in ((of_corrected, corrected_test), (of_uncentred, uncentred_test)):
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)
            model.predict(new)


def test_the_advice_on_new_cells_fits_the_models_own_scaling(split, scdcc_model):
    """Mapping counts onto a DESC model that z-scores genes itself (`scale=True`) said to run
    sc.pp.scale first "or pass use_rep" (no option of predict); following it scaled the cells
    twice, silently (ARI against the training labels 0.58 -> 0.49). An scDCC model's advice on
    multiplied counts named re-running tl.desc."""
    train, test = (a.copy() for a in split)
    for a in (train, test):
        sc.pp.normalize_total(a)
        sc.pp.log1p(a)
    fast = dict(n_clusters=3, pretrain_epochs=2, max_epochs=1, progress=False, batch_size=64)
    scaling = sdc.tl.desc(train.copy(), scale=True, return_model=True, **fast)
    with pytest.warns(UserWarning, match=r"raw counts\. This model z-scores each gene itself") as w:
        scaling.predict(split[1].copy())
    assert not any("use_rep" in str(x.message) for x in w)
    scaled = test.copy()
    sc.pp.scale(scaled)
    with pytest.warns(UserWarning, match=r"negative values, as scaled data have, but this model"):
        scaling.predict(scaled)
    with warnings.catch_warnings():  # log-normalised, as it was trained: not a word
        warnings.simplefilter("error", UserWarning)
        scaling.predict(test)
    centred = train.copy()  # trained on values with negatives: such cells are as it knows them
    centred.X = centred.X.toarray() - 0.5
    on_negatives = sdc.tl.desc(centred, scale=True, return_model=True, **fast)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        on_negatives.predict(scaled)
    with warnings.catch_warnings():  # unscaled: said in training
        warnings.simplefilter("ignore", UserWarning)
        unscaled = sdc.tl.desc(train.copy(), return_model=True, **fast)
    corrected = train.copy()  # centred, as ComBat or regress_out leave genes: not scaled
    corrected.X = corrected.X.toarray() - corrected.X.toarray().mean(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        of_corrected = sdc.tl.desc(corrected, return_model=True, **fast)
    with pytest.warns(UserWarning, match=r"raw counts\. .* sc.pp.log1p and the same correction"):
        of_corrected.predict(split[1].copy())
    sc.pp.scale(train)
    plain = sdc.tl.desc(train, return_model=True, **fast)
    with pytest.warns(UserWarning, match=r"raw counts\. .* then scale them with the training"):
        plain.predict(split[1].copy())
    with pytest.warns(UserWarning, match=r"raw counts\. Prepare .* not sc.pp.scale \(they had no"):
        unscaled.predict(split[1].copy())  # log-normalised, as it was trained
    multiplied = split[1].copy()
    multiplied.layers["counts"] = multiplied.layers["counts"] * 1000
    with pytest.warns(UserWarning, match=r"do not step like raw counts") as w:
        scdcc_model[1].predict(multiplied)
    assert not any("tl.desc" in str(x.message) for x in w)


def _rep_model(train, **kwargs):
    """A DESC model of `train.obsm['X_rep']`, trained briefly."""
    return sdc.tl.desc(
        train,
        use_rep="X_rep",
        n_clusters=3,
        return_model=True,
        pretrain_epochs=2,
        max_epochs=1,
        progress=False,
        batch_size=64,
        **kwargs,
    )


def test_desc_use_rep_model(split):
    train, test = (a.copy() for a in split)
    train.obsm["X_rep"] = np.log1p(train.layers["counts"][:, :20].toarray())
    test.obsm["X_rep"] = np.log1p(test.layers["counts"][:, :20].toarray())
    model = _rep_model(train)
    assert model.preprocessing["input"] == {"kind": "obsm", "key": "X_rep", "n_columns": 20}
    sdc.tl.map_to_model(test, model, key_added="mapped")
    assert test.obsm["X_mapped"].shape == (test.n_obs, 32)
    np.testing.assert_array_equal(model.get_latent_representation(test), test.obsm["X_mapped"])
    # the model reads obsm only: cells without genes are mapped too
    genes_less = sc.AnnData(obs=test.obs[[]].copy(), obsm={"X_rep": test.obsm["X_rep"]})
    np.testing.assert_array_equal(model.predict(genes_less), test.obs["mapped"].astype(int))
    sdc.tl.map_to_model(genes_less, model, key_added="mapped")  # written as well
    np.testing.assert_array_equal(genes_less.obs["mapped"], test.obs["mapped"])
    test.obsm["X_rep"] = test.obsm["X_rep"][:, :5]
    with pytest.raises(ValueError, match="has 5 columns; the model was trained on 20"):
        model.predict(test)


def test_a_dataframe_in_obsm_is_mapped_by_column_name(split):
    # Its columns were taken by position: the same columns in another order mapped 17% of the
    # cells as before, without a word.

    train, test = (a.copy() for a in split)
    names = [f"PC{i}" for i in range(12)]
    for adata in (train, test):
        values = np.log1p(adata.layers["counts"][:, :12].toarray())
        adata.obsm["X_rep"] = pd.DataFrame(values, index=adata.obs_names, columns=names)
    model = _rep_model(train)
    assert model.preprocessing["input"]["column_names"] == names
    want = model.get_latent_representation(test)
    test.obsm["X_rep"] = test.obsm["X_rep"][names[::-1]]
    np.testing.assert_array_equal(model.get_latent_representation(test), want)
    reordered = test.obsm["X_rep"]
    # a plain array of those columns is read by position
    test.obsm["X_rep"] = reordered[names].to_numpy()
    np.testing.assert_array_equal(model.get_latent_representation(test), want)
    # repeated names of columns the model does not read do not matter
    extra = pd.DataFrame(np.ones((test.n_obs, 2)), index=test.obs_names, columns=["x", "x"])
    test.obsm["X_rep"] = pd.concat([extra, reordered], axis=1)
    np.testing.assert_array_equal(model.get_latent_representation(test), want)
    test.obsm["X_rep"] = reordered
    test.obsm["X_rep"] = test.obsm["X_rep"].rename(columns={"PC3": "pc3"})
    with pytest.raises(ValueError, match=r"lacks 1 of the 12 columns.*\['PC3'\]"):
        model.predict(test)
    # an all-zero column is left out of training, and of the names matched
    train.obsm["X_rep"]["PC5"] = 0.0
    sparse_model = _rep_model(train)
    assert "PC5" not in sparse_model.preprocessing["input"]["column_names"]
    assert sparse_model.get_latent_representation(train).shape == (train.n_obs, 32)
    # pandas' nullable floats are numbers too (they were refused as "dtype object")
    train.obsm["X_rep"] = train.obsm["X_rep"].astype("Float64")
    _rep_model(train)


def test_a_read_only_input_is_read_without_torch_warning(split):
    adata = split[0].copy()
    x = np.log1p(adata.layers["counts"].toarray()).astype(np.float32)
    x.flags.writeable = False
    adata.X = x
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="The given NumPy array is not writable")
        sdc.tl.desc(adata, n_clusters=3, pretrain_epochs=2, max_epochs=1, progress=False)


# -- checkpoints ----------------------------------------------------------------------------

CKPT = dict(pretrain_epochs=4, max_epochs=4, progress=False, batch_size=64, tol=0)


def _interrupt_after(monkeypatch, n_calls):
    """Make the clustering loss raise KeyboardInterrupt on its n-th call."""
    original, calls = _loops.kl_divergence, {"n": 0}

    def flaky(p, q):
        calls["n"] += 1
        if calls["n"] == n_calls:
            raise KeyboardInterrupt
        return original(p, q)

    monkeypatch.setattr(_loops, "kl_divergence", flaky)


def _interrupt_dropout_after(monkeypatch, n_calls):
    """Make DESC's dropout masks raise KeyboardInterrupt on their n-th use."""
    from scdeepclust.nn import _modules

    original, calls = _modules.DropoutMasks.__call__, {"n": 0}

    def flaky(self, x):
        calls["n"] += 1
        if calls["n"] == n_calls:
            raise KeyboardInterrupt
        return original(self, x)

    monkeypatch.setattr(_modules.DropoutMasks, "__call__", flaky)


@pytest.mark.parametrize("tool", ["scdcc", "desc"])
def test_resume_after_interruption_gives_the_same_result(tool, split, tmp_path, monkeypatch):
    adata = split[0][:120].copy()
    if tool == "desc":
        sc.pp.normalize_total(adata)
        sc.pp.log1p(adata)

    def run(**kwargs):
        fn = sdc.tl.scdcc if tool == "scdcc" else sdc.tl.desc
        return fn(adata, n_clusters=3, copy=True, **CKPT, **kwargs)

    with monkeypatch.context() as m:
        steps_whole = count_calls(m, _loops, "_optimizer_step")
        reference = run()
    ckpt = tmp_path / "ckpt"
    with monkeypatch.context() as m:
        _interrupt_after(m, 2 * 2 + 1)  # 2 batches per epoch: in the 3rd clustering epoch
        with pytest.raises(KeyboardInterrupt):
            run(checkpoint_dir=ckpt, checkpoint_every=2)
    assert (ckpt / "checkpoint.pt").exists()
    saved = torch.load(ckpt / "checkpoint.pt", weights_only=True)
    stages = saved["stages"]
    clustering = [s for s in stages if s.startswith("clustering")][0]
    assert not stages[clustering]["done"] and stages[clustering]["epoch"] == 1
    assert all(s["done"] for name, s in stages.items() if name != clustering)
    assert {"model", "clustering"} <= set(stages[clustering]["modules"])
    assert "optimizer" in stages[clustering] and "rng" in stages[clustering]

    with pytest.raises(FileExistsError, match="resume=True"):
        run(checkpoint_dir=ckpt)
    with pytest.raises(ValueError, match=r"checkpoint_dir '.*checkpoint.pt' is a file"):
        run(checkpoint_dir=ckpt / "checkpoint.pt")
    with pytest.raises(ValueError, match="other settings or other data") as refused:
        run(checkpoint_dir=ckpt, resume=True, random_state=5)
    assert "they differ in config.random_state: 0 then, 5 now" in str(refused.value)
    with monkeypatch.context() as m:
        steps_resumed = count_calls(m, _loops, "_optimizer_step")
        resumed = run(checkpoint_dir=ckpt, resume=True)
    # resumed, not trained again from the start (which a seeded run would match to the bit):
    # only the clustering epochs after the saved one are trained
    assert len(steps_resumed) == 2 * 2 < len(steps_whole)  # two epochs after the saved one
    key = tool
    np.testing.assert_array_equal(resumed.obsm[f"X_{key}"], reference.obsm[f"X_{key}"])
    np.testing.assert_array_equal(resumed.obs[key], reference.obs[key])
    for name, values in reference.uns[key]["history"].items():
        np.testing.assert_allclose(resumed.uns[key]["history"][name], values, err_msg=name)
    # a finished run resumes to the same result at once
    again = run(checkpoint_dir=ckpt, resume=True)
    np.testing.assert_array_equal(again.obsm[f"X_{key}"], reference.obsm[f"X_{key}"])


def _relabelled(adata, column, every_other_from):
    labelled = np.arange(adata.n_obs) % 2 == every_other_from
    adata.obs[column] = adata.obs["group"].astype(object).where(labelled)


@pytest.mark.parametrize("tool", ["scdcc", "desc"])
def test_a_checkpoint_is_resumed_only_by_the_same_data_and_settings(tool, split, tmp_path):
    """Other cells of the same shape, the genes in another order, other labels (scdcc) or
    another `scale` (desc) would continue a run that trained on something else."""
    adata = split[0][:100].copy()
    if tool == "desc":
        sc.pp.normalize_total(adata)
        sc.pp.log1p(adata)
    _relabelled(adata, "known", 0)
    _relabelled(adata, "other_known", 1)
    fn = sdc.tl.scdcc if tool == "scdcc" else sdc.tl.desc
    options = {"label_key": "known"} if tool == "scdcc" else {}
    ckpt = tmp_path / "ckpt"
    fn(adata, n_clusters=3, copy=True, checkpoint_dir=ckpt, **CKPT, **options)

    other_cells = split[0][100:200].copy()
    other_cells.obs_names = adata.obs_names
    if tool == "desc":
        sc.pp.normalize_total(other_cells)
        sc.pp.log1p(other_cells)
    _relabelled(other_cells, "known", 0)
    genes_reordered = adata[:, np.random.default_rng(0).permutation(adata.n_vars)].copy()
    changes = [(other_cells, {}), (genes_reordered, {})]
    changes.append(
        (adata, {"label_key": "other_known"}) if tool == "scdcc" else (adata, {"scale": True})
    )
    for data, change in changes:
        with pytest.raises(ValueError, match="other settings or other data"):
            fn(
                data,
                n_clusters=3,
                copy=True,
                checkpoint_dir=ckpt,
                resume=True,
                **CKPT,
                **{**options, **change},
            )
    fn(adata, n_clusters=3, copy=True, checkpoint_dir=ckpt, resume=True, **CKPT, **options)


def test_a_desc_checkpoint_is_resumed_with_other_resolutions(split, tmp_path, monkeypatch):
    # A failing resolution's advice, leave it out, refused the checkpoint (its resolutions
    # were part of the run), so the pretraining and finished resolutions could not be reused
    adata = split[0].copy()
    sc.pp.normalize_total(adata)
    sc.pp.log1p(adata)
    ckpt = tmp_path / "ckpt"
    options = dict(CKPT, copy=True, checkpoint_dir=ckpt)
    with monkeypatch.context() as patched:
        fail_desc_at_resolution(patched, 3)
        with pytest.raises(ValueError) as failed:
            sdc.tl.desc(adata, resolution=[0.8, 3], **options)
    assert "with resume=True the checkpoint gives them the pretraining" in failed.value.__notes__[0]
    steps = count_calls(monkeypatch, _loops, "_optimizer_step")
    resumed = sdc.tl.desc(adata, resolution=[0.8, 1.5], resume=True, **options)
    n_resumed = len(steps)
    fresh = sdc.tl.desc(adata, resolution=[0.8, 1.5], **dict(CKPT, copy=True))
    # only resolution 1.5's clustering stage was left to train: no pretraining, nor 0.8's
    per_stage = CKPT["max_epochs"] * -(-adata.n_obs // CKPT["batch_size"])
    assert n_resumed == per_stage and len(steps) > 3 * per_stage
    for key in ("desc_0.8", "desc_1.5"):
        np.testing.assert_array_equal(resumed.obsm[f"X_{key}"], fresh.obsm[f"X_{key}"])
        np.testing.assert_array_equal(resumed.obs[key], fresh.obs[key])


def test_a_desc_checkpoint_of_the_previous_version_is_resumed(split, tmp_path):
    # Earlier versions put the resolutions in the checkpoint's fingerprint: their checkpoints
    # were refused by the very call that wrote them ("they differ in resolutions")
    from scdeepclust._serialization import load_tensors, save_tensors
    from scdeepclust.train._checkpoint import CHECKPOINT_FILE, run_fingerprint

    adata = split[0].copy()
    sc.pp.normalize_total(adata)
    sc.pp.log1p(adata)
    ckpt = tmp_path / "ckpt"
    options = dict(CKPT, copy=True, checkpoint_dir=ckpt, resolution=[0.8, 1.5])
    first = sdc.tl.desc(adata, **options)
    path = ckpt / CHECKPOINT_FILE
    saved = load_tensors(path)
    settings = json.loads(saved["settings"])
    settings["resolutions"] = [0.8, 1.5]  # as the previous version wrote them
    saved.update(settings=json.dumps(settings), fingerprint=run_fingerprint(**settings))
    save_tensors(path, saved)
    again = sdc.tl.desc(adata, resume=True, **options)
    for key in ("desc_0.8", "desc_1.5"):
        np.testing.assert_array_equal(again.obsm[f"X_{key}"], first.obsm[f"X_{key}"])
    # other settings are still refused, and only they are named
    with pytest.raises(ValueError, match=r"they differ in config.lr: 0.01 then, 0.5 now. Use"):
        sdc.tl.desc(adata, resume=True, lr=0.5, **options)


@pytest.mark.parametrize("tool", ["scdcc", "desc"])
def test_a_checkpoint_is_not_resumed_on_cells_moved_to_other_batches(tool, split, tmp_path):
    # the batches' names were in the run, not which cell is in which: a call on the same
    # cells reassigned to the batches resumed the network trained on the old assignment
    from scdeepclust._serialization import load_tensors, save_tensors
    from scdeepclust.train._checkpoint import CHECKPOINT_FILE, run_fingerprint

    adata = split[0][:120].copy()
    if tool == "desc":
        sc.pp.normalize_total(adata)
        sc.pp.log1p(adata)
    adata.obs["batch"] = np.where(np.arange(adata.n_obs) % 2, "a", "b")
    fn = getattr(sdc.tl, tool)
    ckpt = tmp_path / "ckpt"
    options = dict(CKPT, n_clusters=3, copy=True, checkpoint_dir=ckpt, batch_key="batch")
    first = fn(adata, **options)
    moved = adata.copy()
    moved.obs["batch"] = np.where(np.arange(adata.n_obs) % 3, "a", "b")
    with pytest.raises(ValueError, match=r"they differ in batch_codes"):
        fn(moved, resume=True, **options)
    # a checkpoint written before the assignment identified a run still resumes
    path = ckpt / CHECKPOINT_FILE
    saved = load_tensors(path)
    settings = json.loads(saved["settings"])
    del settings["batch_codes"]
    saved.update(settings=json.dumps(settings), fingerprint=run_fingerprint(**settings))
    save_tensors(path, saved)
    again = fn(adata, resume=True, **options)
    np.testing.assert_array_equal(again.obsm[f"X_{tool}"], first.obsm[f"X_{tool}"])
    with pytest.raises(ValueError, match=r"they differ in config.lr"):
        fn(adata, resume=True, **{**options, "lr": 0.5})


def test_a_desc_checkpoint_of_a_representation_z_scored_within_batches_is_refused(split, tmp_path):
    # before this version use_rep with batch_key was z-scored within each batch; it is now only
    # centred, and the network of such a checkpoint would carry on with other input
    from scdeepclust._serialization import load_tensors, save_tensors
    from scdeepclust.train._checkpoint import CHECKPOINT_FILE, run_fingerprint

    adata = split[0][:120].copy()
    adata.obsm["X_rep"] = np.random.default_rng(0).normal(size=(adata.n_obs, 8))
    adata.obs["batch"] = np.where(np.arange(adata.n_obs) % 2, "a", "b")
    ckpt = tmp_path / "ckpt"
    options = dict(
        CKPT, n_clusters=3, copy=True, checkpoint_dir=ckpt, batch_key="batch", use_rep="X_rep"
    )
    sdc.tl.desc(adata, **options)
    path = ckpt / CHECKPOINT_FILE
    saved = load_tensors(path)
    settings = json.loads(saved["settings"])
    for added in ("rep_scaling", "batch_codes"):  # as the previous version wrote it
        del settings[added]
    saved.update(settings=json.dumps(settings), fingerprint=run_fingerprint(**settings))
    save_tensors(path, saved)
    with pytest.raises(ValueError, match=r"they differ in rep_scaling: '\(absent\)' then"):
        sdc.tl.desc(adata, resume=True, **options)


def test_desc_resumed_inside_layerwise_pretraining_gives_the_same_result(
    split, tmp_path, monkeypatch
):
    """Stopped inside a layer's denoising pretraining, a resumed run meets the dropout masks the
    run never stopped met (banks from their seeds, slices from the checkpointed generator), also
    from a checkpoint written when dropout drew from the global generator."""
    adata = split[0][:120].copy()
    sc.pp.normalize_total(adata)
    sc.pp.log1p(adata)

    def run(**kwargs):
        return sdc.tl.desc(adata, n_clusters=3, copy=True, **CKPT, **kwargs)

    reference = run()
    ckpt = tmp_path / "ckpt"
    with monkeypatch.context() as m:
        _interrupt_dropout_after(m, 4 * 2 + 3)  # input and code masks, 2 batches an epoch
        with pytest.raises(KeyboardInterrupt):
            run(checkpoint_dir=ckpt, checkpoint_every=2)  # in layer 1's 3rd epoch
    saved = torch.load(ckpt / "checkpoint.pt", weights_only=True)
    stages = saved["stages"]
    assert list(stages) == ["layer1"]
    assert not stages["layer1"]["done"] and stages["layer1"]["epoch"] == 1
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    rng = stages["layer1"]["rng"]
    rng["global"] = rng["torch"].pop("dropout")  # as checkpoints had it before this release
    torch.save(saved, legacy / "checkpoint.pt")
    for directory in (ckpt, legacy):
        resumed = run(checkpoint_dir=directory, resume=True)
        np.testing.assert_array_equal(resumed.obsm["X_desc"], reference.obsm["X_desc"])
        for name, values in reference.uns["desc"]["history"].items():
            np.testing.assert_allclose(resumed.uns["desc"]["history"][name], values, err_msg=name)


def test_resumed_pretraining_keeps_the_clean_up_schedule_of_the_optimizer(
    split, tmp_path, monkeypatch
):
    """The vanishing optimizer averages are zeroed at the same Adam steps whether or not a
    stage was interrupted and resumed."""
    adata = split[0][:120].copy()
    sc.pp.normalize_total(adata)
    sc.pp.log1p(adata)
    monkeypatch.setattr(_loops, "VANISHING_EVERY", 3)
    original_clean_up = _loops.zero_vanishing_averages

    def run(cleaned, **kwargs):
        def recorded(optimizer):
            steps = [s["step"] for s in optimizer.state.values() if "step" in s]
            cleaned.append(int(steps[0]) if steps else None)
            original_clean_up(optimizer)

        monkeypatch.setattr(_loops, "zero_vanishing_averages", recorded)
        return sdc.tl.desc(adata, n_clusters=3, copy=True, **CKPT, **kwargs)

    uninterrupted = []
    run(uninterrupted)
    ckpt = tmp_path / "ckpt"
    before, after = [], []
    with monkeypatch.context() as m:
        _interrupt_dropout_after(m, 4 * 2 + 3)
        with pytest.raises(KeyboardInterrupt):
            run(before, checkpoint_dir=ckpt, checkpoint_every=2)
    run(after, checkpoint_dir=ckpt, resume=True)
    first_stage = [3, 6]  # layer 1's Adam steps 3 and 6 of its 8 (4 epochs of 2 batches)
    assert uninterrupted[:2] == first_stage
    assert before == [3] and after[:1] == [6]  # saved after step 4, stopped in step 5
    assert before + after == uninterrupted


def test_resume_without_checkpoint_starts_afresh(split, tmp_path):
    adata = split[0][:80].copy()
    with pytest.warns(UserWarning, match="resume=True, but there is no checkpoint in") as caught:
        pass_through = sdc.tl.scdcc(
            adata,
            3,
            copy=True,
            checkpoint_dir=tmp_path / "new",
            resume=True,
            pretrain_epochs=1,
            max_epochs=1,
            progress=False,
            batch_size=64,
        )
    assert "scdcc" in pass_through.obs
    assert caught[0].filename == __file__  # the user's line (it named one in the package)


def test_real_data_mapping():
    """10X PBMC subsample (skipped without the shared data): train on 400 cells, map 200. Few
    epochs, to keep the suite fast: this checks the mapping, not the accuracy."""
    adata = sdc.datasets.read_h5(shared_file("10X_PBMC_top2000.h5"))
    idx = np.random.default_rng(0).choice(adata.n_obs, 600, replace=False)
    adata = adata[idx].copy()
    sc.pp.filter_genes(adata, min_counts=1)
    train, test = adata[:400].copy(), adata[400:].copy()
    k = train.obs["label"].nunique()
    model = sdc.tl.scdcc(
        train,
        k,
        n_top_genes=300,
        return_model=True,
        pretrain_epochs=10,
        max_epochs=5,
        progress=False,
    )
    assert len(model.features) == 300
    again = sdc.tl.map_to_model(train, model, key_added="again", copy=True)
    # the highest soft assignment among the clusters the training left cells in; the refined
    # labels need the training cells' classifier
    assert model.empty_clusters == list(train.uns["scdcc"]["empty_clusters"])
    among_populated = train.obsm["scdcc_probs"].copy()
    among_populated[:, model.empty_clusters] = -1
    np.testing.assert_array_equal(again.obs["again"].astype(int), among_populated.argmax(1))
    sdc.tl.map_to_model(test, model)
    trained_ari = adjusted_rand_score(train.obs["label"], train.obs["scdcc"])
    mapped_ari = adjusted_rand_score(test.obs["label"], test.obs["scdcc"])
    assert mapped_ari > trained_ari - 0.15, (trained_ari, mapped_ari)


def test_desc_default_pretraining_on_many_cells_draws_a_subset_per_epoch():
    """By default a DESC pretraining stage sees about PRETRAIN_CELL_VISITS cells: whole epochs
    up to 20,000 cells, random subsets beyond; given epochs are always whole."""
    from scdeepclust.data import CellFeeder, RowSource
    from scdeepclust.models._desc import PRETRAIN_CELL_VISITS, DESCConfig

    config = DESCConfig()
    assert config.resolved_pretrain_epoch_cells(8_617) is None
    assert config.resolved_pretrain_epoch_cells(20_000) is None
    for n in (100_000, 1_000_000):
        cells = config.resolved_pretrain_epoch_cells(n)
        assert cells < n
        visits = cells * config.resolved_pretrain_epochs(n)
        assert PRETRAIN_CELL_VISITS - cells < visits <= PRETRAIN_CELL_VISITS
    assert DESCConfig(pretrain_epochs=3).resolved_pretrain_epoch_cells(1_000_000) is None

    feeder = CellFeeder(
        RowSource(np.arange(1000, dtype=np.float32)[:, None]), device=torch.device("cpu")
    )
    rng = np.random.default_rng(0)
    seen = np.concatenate([b.index.numpy() for b in feeder.minibatches(64, rng, n_cells=300)])
    assert len(seen) == 300 and len(np.unique(seen)) == 300
    whole = np.concatenate([b.index.numpy() for b in feeder.minibatches(64, rng)])
    assert np.array_equal(np.sort(whole), np.arange(1000))


def test_a_checkpoint_of_other_settings_names_them(tmp_path):
    """The refusal named no setting: an identical call under another version looked wrong."""
    from scdeepclust._serialization import load_tensors, save_tensors
    from scdeepclust.train._checkpoint import TrainingCheckpoint, run_fingerprint

    def settings(init, digest="d1"):
        return {"method": "scdcc", "config": {"init": init, "tol": 0.001}, "data": digest}

    first = settings("kmeans")
    checkpoint = TrainingCheckpoint(
        tmp_path, every=1, resume=False, fingerprint=run_fingerprint(**first), settings=first
    )
    checkpoint.save("pretraining", epoch=0, done=False, history={})
    now = settings("leiden", digest="d2")
    with pytest.raises(ValueError, match="other settings or other data") as refused:
        TrainingCheckpoint(tmp_path, every=1, resume=True, fingerprint="x", settings=now)
    assert (
        "they differ in data: 'd1' then, 'd2' now; config.init: 'kmeans' then, 'leiden' now "
        "(a digest of the data)" in str(refused.value)
    )
    # another tool differs in every config entry: which tool wrote it comes first
    other = {"method": "desc", "config": {f"option{i}": i for i in range(10)}, "data": "d1"}
    with pytest.raises(ValueError, match="they differ in method: 'scdcc' then, 'desc' now; "):
        TrainingCheckpoint(tmp_path, every=1, resume=True, fingerprint="x", settings=other)
    # written before the settings were kept: the version, and why the same call may not match
    saved = load_tensors(checkpoint.path)
    del saved["settings"]
    save_tensors(checkpoint.path, saved)
    with pytest.raises(ValueError, match=r"written by scdeepclust \S+, which did not keep its"):
        TrainingCheckpoint(tmp_path, every=1, resume=True, fingerprint="x", settings=now)


@pytest.mark.parametrize("tool", ["scdcc", "desc"])
def test_a_checkpoint_folder_that_cannot_be_written_is_refused_before_training(
    tool, tmp_path, monkeypatch
):
    """Found at the first save, after checkpoint_every epochs of training were lost."""
    import errno

    from scdeepclust.train import _checkpoint

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(_checkpoint.tempfile, "TemporaryFile", read_only)
    trained = []
    monkeypatch.setattr(_checkpoint.TrainingCheckpoint, "save", lambda *a, **k: trained.append(1))
    adata = sdc.datasets.simulate(60, 40, 2, random_state=0)
    before = adata.copy()
    with pytest.raises(OSError, match=r"cannot be written \(Read-only file system\): give a"):
        getattr(sdc.tl, tool)(adata, n_clusters=2, checkpoint_dir=tmp_path / "ck", progress=False)
    assert not trained and adata.obs.equals(before.obs) and not adata.uns
    # resuming saves too: its folder is checked as well
    (tmp_path / "ck").mkdir(exist_ok=True)
    (tmp_path / "ck" / _checkpoint.CHECKPOINT_FILE).write_bytes(b"")
    with pytest.raises(OSError, match=r"cannot be written \(Read-only file system\)"):
        getattr(sdc.tl, tool)(
            adata, n_clusters=2, checkpoint_dir=tmp_path / "ck", resume=True, progress=False
        )


def test_a_checkpoint_of_another_number_of_genes_names_mask_var(tmp_path):
    """The genes read changed under an unchanged call once var['highly_variable'] was read."""
    from scdeepclust.train._checkpoint import TrainingCheckpoint, run_fingerprint

    every_gene = {"method": "desc", "shape": [120, 60], "data": "d1"}
    checkpoint = TrainingCheckpoint(
        tmp_path,
        every=1,
        resume=False,
        fingerprint=run_fingerprint(**every_gene),
        settings=every_gene,
    )
    checkpoint.save("pretraining", epoch=0, done=False, history={})
    marked = {**every_gene, "shape": [120, 20], "data": "d2"}
    with pytest.raises(ValueError, match=r"genes read differs.*mask_var \(None: every gene\)"):
        TrainingCheckpoint(tmp_path, every=1, resume=True, fingerprint="x", settings=marked)
    other_cells = {**every_gene, "shape": [90, 60], "data": "d2"}
    with pytest.raises(ValueError, match="other settings") as refused:
        TrainingCheckpoint(tmp_path, every=1, resume=True, fingerprint="x", settings=other_cells)
    assert "mask_var" not in str(refused.value)
    # an obsm input has columns, not genes
    wider = {**every_gene, "input": "obsm['X_pca']"}
    checkpoint.settings = wider
    checkpoint.fingerprint = run_fingerprint(**wider)
    checkpoint.save("pretraining", epoch=0, done=False, history={})
    narrower = {**wider, "shape": [120, 20]}
    with pytest.raises(ValueError, match="other settings") as refused:
        TrainingCheckpoint(tmp_path, every=1, resume=True, fingerprint="x", settings=narrower)
    assert "mask_var" not in str(refused.value)


def _interrupted(*args, **kwargs):
    raise KeyboardInterrupt


def _interrupted_at_rename(n: int):
    """os.replace, interrupted at its `n`th call (a save's: the weights', model.json's, then
    the new weights' own)."""
    replace, renames = os.replace, []

    def rename(*args, **kwargs):
        renames.append(args)
        if len(renames) == n:
            raise KeyboardInterrupt
        return replace(*args, **kwargs)

    return rename


@pytest.mark.parametrize("stop", ["hashing the new weights", "writing model.json", "renaming"])
def test_a_save_that_stops_anywhere_leaves_a_model_to_load(
    scdcc_model, tmp_path, monkeypatch, stop
):
    """Stopped after the new weights, a save left the old model.json beside them: load refused
    the pair, and the old model was lost as well."""
    import scdeepclust.models._trained as trained

    _, model = scdcc_model
    path = model.save(tmp_path / "m")
    other = sdc.models.load(path)
    with torch.no_grad():
        next(other.network.parameters()).add_(1.0)
    with monkeypatch.context() as m:
        if stop == "renaming":
            m.setattr(trained.os, "replace", _interrupted_at_rename(3))
        else:
            m.setattr(
                trained,
                "file_digest" if stop == "hashing the new weights" else "write_json",
                _interrupted,
            )
        with pytest.raises(KeyboardInterrupt):
            other.save(path, overwrite=True)
    expected = other if stop == "renaming" else model
    assert torch.equal(
        next(sdc.models.load(path).network.parameters()), next(expected.network.parameters())
    )
    assert not [f.name for f in path.iterdir() if "partial" in f.name]
    # the next save finishes what the stopped one left
    other.save(path, overwrite=True)
    assert sorted(f.name for f in path.iterdir()) == ["model.json", "weights.pt"]
    assert torch.equal(
        next(sdc.models.load(path).network.parameters()), next(other.network.parameters())
    )


def _saved_and_two_altered(scdcc_model, tmp_path):
    """The model saved, its folder, and two loaded copies whose weights differ from it."""
    _, model = scdcc_model
    path = model.save(tmp_path / "m")
    others = [sdc.models.load(path) for _ in range(2)]
    for step, other in enumerate(others, start=1):
        with torch.no_grad():
            next(other.network.parameters()).add_(step)
    return model, path, others


def test_a_save_after_a_stopped_one_keeps_a_model_to_load(scdcc_model, tmp_path, monkeypatch):
    """A save stopped before its rename, then another stopped before its model.json: the
    second overwrote the weights the first's model.json named, and neither model loaded."""
    import scdeepclust.models._trained as trained

    _, path, models = _saved_and_two_altered(scdcc_model, tmp_path)
    with monkeypatch.context() as m:
        m.setattr(trained.os, "replace", _interrupted_at_rename(3))
        with pytest.raises(KeyboardInterrupt):
            models[0].save(path, overwrite=True)
    with monkeypatch.context() as m:
        m.setattr(trained, "write_json", _interrupted)
        with pytest.raises(KeyboardInterrupt):
            models[1].save(path, overwrite=True)
    assert torch.equal(
        next(sdc.models.load(path).network.parameters()), next(models[0].network.parameters())
    )


def test_weights_that_are_not_the_saved_ones_are_refused_on_loading(scdcc_model, tmp_path):
    _, model = scdcc_model
    path = model.save(tmp_path / "m")
    other = sdc.models.load(path)
    with torch.no_grad():
        next(other.network.parameters()).add_(1.0)
    elsewhere = other.save(tmp_path / "other")
    (elsewhere / "weights.pt").replace(path / "weights.pt")  # two models' files put together
    with pytest.raises(ValueError, match="is not the file model.json was saved with"):
        sdc.models.load(path)
    (path / "model.json").unlink()  # a first save that stopped there
    with pytest.raises(FileNotFoundError, match="holds weights.pt but no model.json"):
        sdc.models.load(path)


@pytest.mark.parametrize("digest", [True, False], ids=["saved now", "saved without a digest"])
@pytest.mark.parametrize("lands", ["after model.json is read", "after the weights are read"])
def test_a_save_by_another_process_during_a_load_gives_one_model_whole(
    scdcc_model, tmp_path, monkeypatch, lands, digest
):
    """load read model.json, checked the digest of weights.pt, then opened weights.pt again: a
    save landing in between gave one model's centroids with the other's weights, silently (a
    helper's save/load loop: 2.4% of loads), or a refusal as a save that did not finish. The
    model.json of earlier versions holds no digest: there too."""
    import scdeepclust.models._trained as trained

    model, path, (other, _) = _saved_and_two_altered(scdcc_model, tmp_path)
    if not digest:
        meta = json.loads((path / "model.json").read_text())
        del meta["weights_sha256"]
        (path / "model.json").write_text(json.dumps(meta))
    other.centroids = other.centroids + 1.0
    patched = "_saved_weights" if lands == "after model.json is read" else "load_tensors"
    real, calls = getattr(trained, patched), []

    def saved_meanwhile(*args, **kwargs):
        if not calls:
            other.save(path, overwrite=True)
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(trained, patched, saved_meanwhile)
    loaded = sdc.models.load(path)
    source = other if np.array_equal(loaded.centroids, other.centroids) else model
    assert np.array_equal(loaded.centroids, source.centroids)
    for name, value in loaded.network.state_dict().items():
        assert torch.equal(value, source.network.state_dict()[name]), name
    assert source is (other if lands == "after model.json is read" else model)


def test_a_save_renaming_its_weights_between_the_two_reads_of_a_load_gives_its_model(
    scdcc_model, tmp_path, monkeypatch
):
    """load read model.json (B's), then weights.pt (still A's), and the other process renamed
    weights.next.pt to weights.pt before load read weights.next.pt: the folder held B whole
    throughout, and load refused it as "a save that did not finish" (the reviewer's loop of
    saves and loads: about 4% of the loads)."""
    import hashlib
    import shutil

    import scdeepclust.models._trained as trained

    model, path, (other, _) = _saved_and_two_altered(scdcc_model, tmp_path)
    other.centroids = other.centroids + 1.0
    other_path = other.save(tmp_path / "other")
    # the other process's save of B, between its model.json and its rename
    shutil.copy(other_path / "model.json", path / "model.json")
    shutil.copy(other_path / "weights.pt", path / "weights.next.pt")
    real, calls = hashlib.sha256, []

    class RenamedWhileHashing:
        @staticmethod
        def sha256(data=b""):
            if not calls and (path / "weights.next.pt").exists():
                os.replace(path / "weights.next.pt", path / "weights.pt")  # the save finishes
            calls.append(1)
            return real(data)

    monkeypatch.setattr(trained, "hashlib", RenamedWhileHashing)
    loaded = sdc.models.load(path)
    assert np.array_equal(loaded.centroids, other.centroids)
    for name, value in loaded.network.state_dict().items():
        assert torch.equal(value, other.network.state_dict()[name]), name


def test_a_checkpoint_that_fails_to_save_describes_what_its_file_holds(tmp_path, monkeypatch):
    """After a failed save the interruption's message named a state never written."""
    import scdeepclust.train._checkpoint as ckpt

    checkpoint = ckpt.TrainingCheckpoint(tmp_path, every=1, resume=False, fingerprint="f")
    checkpoint.save("pretraining", epoch=3, done=False, history={})
    described = checkpoint.describe()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(ckpt, "save_tensors", interrupted)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save("pretraining", epoch=5, done=False, history={})
    assert checkpoint.describe() == described


def test_a_model_trained_on_known_labels_names_its_clusters_classes(split, tmp_path):
    train, test = (a.copy() for a in split)
    known = train.obs["group"].astype(str).where(np.arange(train.n_obs) % 4 == 0)
    train.obs["known"] = known.map({"0": "B cell", "1": "T cell", "2": "monocyte"})
    fast = dict(pretrain_epochs=2, max_epochs=2, progress=False, batch_size=64)
    model = sdc.tl.scdcc(train, 3, label_key="known", return_model=True, **fast)
    classes = list(train.uns["scdcc"]["label_classes"])
    assert classes == ["B cell", "T cell", "monocyte"] and model.label_classes == classes
    model.save(tmp_path / "labelled")
    mapped = sdc.tl.map_to_model(test, sdc.models.load(tmp_path / "labelled"), copy=True)
    assert list(mapped.uns["scdcc"]["label_classes"]) == classes
    # without known labels nothing is recorded, saved or mapped
    plain = sdc.tl.scdcc(split[0].copy(), 3, return_model=True, **fast)
    plain = sdc.models.load(plain.save(tmp_path / "plain"))
    assert plain.label_classes is None
    assert "label_classes" not in sdc.tl.map_to_model(test, plain, copy=True).uns["scdcc"]


def test_a_resumed_stage_keeps_its_plateau_count(tmp_path):
    """The plateau stopper's state is saved with the stage and restored on resume: a constant
    loss with patience 3 stops after 4 epochs, interrupted in its third epoch or not. Kills P12
    (the resumed stage starts a fresh stopper and runs 2 epochs more)."""
    from scdeepclust.data import CellFeeder, RowSource
    from scdeepclust.train import PlateauStopper, sgd
    from scdeepclust.train._checkpoint import TrainingCheckpoint
    from scdeepclust.train._loops import fit_epochs

    class Interrupted(Exception):
        pass

    feeder = CellFeeder(RowSource(np.zeros((8, 1), np.float32)), device=torch.device("cpu"))

    def run(directory, interrupt_at=None, resume=False):
        w = torch.nn.Parameter(torch.zeros(1))
        calls = []

        def step_loss(batch):
            calls.append(1)
            if len(calls) == interrupt_at:
                raise Interrupted
            return {"loss": (w * 0).sum() + 1.0}

        checkpoint = TrainingCheckpoint(directory, every=1, resume=resume, fingerprint="run")
        return fit_epochs(
            feeder,
            step_loss,
            sgd([w], lr=0.1, momentum=0.0),
            n_epochs=10,
            batch_size=4,
            rng=np.random.default_rng(0),
            stopper=PlateauStopper(patience=3),
            progress=False,
            checkpoint=checkpoint,
        )

    assert len(run(tmp_path / "whole")["loss"]) == 4
    with pytest.raises(Interrupted):
        run(tmp_path / "parts", interrupt_at=5)  # 2 steps per epoch: in the third epoch
    assert len(run(tmp_path / "parts", resume=True)["loss"]) == 4


def test_a_dataframe_without_distinct_column_names_is_mapped_by_position(split):
    """A DataFrame in obsm whose columns repeat a name cannot be matched by name: the model
    keeps no names, takes the columns by position, and maps the cells it was trained on."""

    train = split[0].copy()
    values = np.log1p(train.layers["counts"][:, :12].toarray())
    names = [f"PC{i}" for i in range(10)] + ["PC0", "PC1"]
    train.obsm["X_rep"] = pd.DataFrame(values, index=train.obs_names, columns=names)
    model = _rep_model(train)
    assert "column_names" not in model.preprocessing["input"]
    assert model.predict(train).shape == (train.n_obs,)


def test_a_scdcc_model_clips_mapped_cells_at_its_max_value(split):
    """`max_value` clips the z-scored input in training; the returned model keeps it, so that
    the cells it was trained on are embedded as in training when mapped."""
    train = split[0].copy()
    fast = dict(pretrain_epochs=1, max_epochs=1, progress=False, batch_size=64)
    out, model = sdc.tl.scdcc(train, 3, max_value=0.5, copy=True, return_model=True, **fast)
    assert model.preprocessing["max_value"] == 0.5
    np.testing.assert_allclose(
        model.get_latent_representation(out), out.obsm["X_scdcc"], rtol=1e-4, atol=1e-5
    )


def test_mapped_clusters_take_the_colours_scanpy_gives_them_in_the_reference(scdcc_model, split):
    """New cells that fall into the reference's cluster "2" alone were coloured as scanpy's
    first category, not as "2" is in the reference's plots."""
    train, model = scdcc_model
    reference = train.copy()
    sc.pl.embedding(reference, basis="X_scdcc", color="scdcc", show=False)
    colours = dict(zip(reference.obs["scdcc"].cat.categories, reference.uns["scdcc_colors"]))
    new = split[1]
    last = new[model.predict(new) == 2].copy()
    sdc.tl.map_to_model(last, model)
    assert list(last.obs["scdcc"].cat.categories) == ["2"]
    assert list(last.uns["scdcc_colors"]) == [colours["2"]]
    mixed = sdc.tl.map_to_model(new, model, copy=True)
    assert list(mixed.uns["scdcc_colors"]) == [
        colours[c] for c in mixed.obs["scdcc"].cat.categories
    ]
    # cluster 0 emptied in training: the reference's categories were "1", "2"
    emptied = copy.copy(model)
    emptied.empty_clusters = [0]
    sdc.tl.map_to_model(last, emptied)
    assert list(last.uns["scdcc_colors"]) == [list(reference.uns["scdcc_colors"])[1]]


def test_a_single_new_cell_is_mapped(scdcc_model, split):
    _, model = scdcc_model
    one = split[1][:1].copy()
    out = sdc.tl.map_to_model(one, model, copy=True)
    assert out.n_obs == 1 and out.obsm["scdcc_probs"].shape == (1, 3)
    np.testing.assert_array_equal(out.obs["scdcc"].astype(int), model.predict(split[1])[:1])


def test_mapping_refuses_a_key_that_would_overwrite_the_models_input(split):
    train, test = (a.copy() for a in split)
    train.obsm["X_rep"] = np.log1p(train.layers["counts"][:, :20].toarray())
    test.obsm["X_rep"] = np.log1p(test.layers["counts"][:, :20].toarray())
    model = _rep_model(train)
    before = test.obsm["X_rep"].copy()
    with pytest.raises(ValueError, match=r"would write over adata.obsm\['X_rep'\]"):
        sdc.tl.map_to_model(test, model, key_added="rep")
    np.testing.assert_array_equal(test.obsm["X_rep"], before)


def test_mapping_again_under_a_key_warns_of_the_results_it_replaces(scdcc_model, split):
    _, model = scdcc_model
    test = split[1].copy()
    sdc.tl.map_to_model(test, model, key_added="mapped")
    with pytest.warns(UserWarning, match=r"obs\['mapped'\].* will be overwritten"):
        sdc.tl.map_to_model(test, model, key_added="mapped")
    with warnings.catch_warnings():  # a copy: the caller's results stay as they were
        warnings.filterwarnings("error", message=".*will be overwritten")
        sdc.tl.map_to_model(test, model, key_added="mapped", copy=True)


def test_mapping_refuses_an_empty_dict_of_models(split):
    with pytest.raises(TypeError, match=r"not dict\.$"):
        sdc.tl.map_to_model(split[1].copy(), {})


def test_mapping_refuses_a_key_that_files_cannot_hold(scdcc_model, split):
    _, model = scdcc_model
    test = split[1].copy()
    # zarr reads '\\' as a separator too (an uns entry lost, or the file unreadable), and
    # keys named as its metadata files fail adata.write_zarr
    for key in ("a/b", "a\\b", "zarr.json", ".zattrs", "x_colors", " "):
        with pytest.raises(ValueError, match="key_added"):
            sdc.tl.map_to_model(test, model, key_added=key)
    assert not {"a/b", "a\\b", "zarr.json", "x_colors"} & set(test.obs)


def test_mapping_onto_a_lazily_read_anndata_that_fails_while_writing_leaves_it_unchanged(
    scdcc_model, split, tmp_path, monkeypatch
):
    """The rollback deleted the obs columns it had added, and read_lazy's obs has no
    __delitem__: AttributeError('__delitem__') replaced the error, and the columns stayed."""
    pytest.importorskip("xarray")
    import anndata as ad

    from scdeepclust import _results

    _, model = scdcc_model
    split[1].write_h5ad(tmp_path / "new.h5ad")
    lazy = ad.experimental.read_lazy(tmp_path / "new.h5ad")
    columns = sorted(lazy.obs.columns)
    real = _results._entries
    # an entry that fails as it is assigned, after obs and obsm were written
    monkeypatch.setattr(
        _results, "_entries", lambda k, r: real(k, r) + [("obsm", "bad", np.zeros((1, 1)))]
    )
    with pytest.raises(ValueError, match="bad"):
        sdc.tl.map_to_model(lazy, model, key_added="mapped")
    assert sorted(lazy.obs.columns) == columns
    assert "mapped" not in lazy.uns and "X_mapped" not in lazy.obsm


def test_a_models_own_key_that_files_cannot_hold_is_named_as_the_models(scdcc_model, split):
    """A model saved by an earlier version under key 'run\\1' was refused with a message about
    a key_added argument the caller never passed."""
    _, model = scdcc_model
    old = copy.copy(model)
    old.key_added = "run\\1"
    with pytest.raises(ValueError, match=r"contains .* It is the model's key_added"):
        sdc.tl.map_to_model(split[1].copy(), old)
    mapped = sdc.tl.map_to_model(split[1].copy(), old, key_added="run_1", copy=True)
    assert "run_1" in mapped.obs


def test_mapping_that_fails_after_its_results_are_made_leaves_adata_unchanged(
    scdcc_model, split, monkeypatch
):
    """map_to_model wrote its results, then read obs[key]'s categories for their colours: an
    error there (as on read_lazy's obs, without pandas' .cat) left results without colours."""
    from scdeepclust.tl import _map

    _, model = scdcc_model
    test = split[1].copy()
    before = snapshot(test)

    def fail(*args, **kwargs):
        raise RuntimeError("colours failed")

    monkeypatch.setattr(_map, "_reference_colors", fail)
    with pytest.raises(RuntimeError, match="colours failed"):
        sdc.tl.map_to_model(test, model, key_added="mapped")
    assert_unchanged(test, before)


def test_mapping_onto_a_lazily_read_anndata_writes_its_results_with_their_colours(
    scdcc_model, split, tmp_path
):
    """AttributeError: 'DataArray' object has no attribute 'cat', after the results were
    written (anndata.experimental.read_lazy's obs holds xarray arrays)."""
    pytest.importorskip("xarray")
    import anndata as ad

    _, model = scdcc_model
    split[1].write_h5ad(tmp_path / "new.h5ad")
    lazy = ad.experimental.read_lazy(tmp_path / "new.h5ad")
    sdc.tl.map_to_model(lazy, model, key_added="mapped")
    loaded = lazy.to_memory()
    expected = sdc.tl.map_to_model(split[1].copy(), model, key_added="mapped", copy=True)
    assert list(loaded.uns["mapped_colors"]) == list(expected.uns["mapped_colors"])
    np.testing.assert_array_equal(loaded.obs["mapped"], expected.obs["mapped"])


def test_empty_clusters_given_in_any_order_are_kept_sorted_and_take_no_cells(
    scdcc_model, split, tmp_path
):
    from scdeepclust.train._confidence import ConfidenceMap

    _, model = scdcc_model
    linear = ConfidenceMap(np.array([0.0, 1.0], np.float32), np.array([0.2, 0.9], np.float32))
    emptied = type(model)(
        model.network,
        model.centroids,
        config=model.config,
        features=model.features,
        preprocessing=model.preprocessing,
        key_added=model.key_added,
        confidence_map=linear,
        empty_clusters=[2, 0],
    )
    assert emptied.empty_clusters == [0, 2]
    emptied.save(tmp_path / "m")
    loaded = sdc.models.load(tmp_path / "m")
    assert loaded.empty_clusters == [0, 2]
    for m in (emptied, loaded):
        out = sdc.tl.map_to_model(split[1], m, copy=True)
        assert set(out.obs["scdcc"].astype(int)) == {1}
        np.testing.assert_allclose(
            out.obs["scdcc_confidence"], linear(out.obsm["scdcc_probs"][:, 1]), rtol=1e-6
        )


def test_new_cells_off_scale_get_one_warning_and_older_models_none_on_negatives(split):
    train, test = _log_normalised_as_pbmc(split)
    scaled_train = train.copy()
    sc.pp.scale(scaled_train)
    fast = dict(n_clusters=3, pretrain_epochs=2, max_epochs=1, progress=False, batch_size=64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = sdc.tl.desc(scaled_train, return_model=True, copy=True, **fast)[1]
    unlogged = split[1].copy()
    sc.pp.normalize_total(unlogged, target_sum=1e4)
    # far off scale, and without the training cells' negative values: one warning says it
    with pytest.warns(UserWarning, match=r"root mean square is") as caught:
        model.predict(unlogged)
    assert len(caught) == 1
    lognorm = unlogged.copy()
    sc.pp.log1p(lognorm)
    lognorm.X = lognorm.X.toarray() if hasattr(lognorm.X, "toarray") else lognorm.X
    lognorm.X *= 0.15 / np.median(lognorm.X.std(0))  # the spread of unscaled genes
    with pytest.warns(UserWarning, match=r"looks normalised but not scaled") as caught:
        model.predict(lognorm)
    assert len(caught) == 1
    # counts, raw or log-transformed: their own warning alone
    raw = split[1].copy()
    logged_counts = raw.copy()
    logged_counts.X = np.log1p(logged_counts.X.toarray())
    for cells, said in ((raw, r"looks like raw counts"), (logged_counts, r"holds log1p")):
        with pytest.warns(UserWarning, match=said) as caught:
            model.predict(cells)
        assert len(caught) == 1
    # a model saved before the training cells' negative values were kept says nothing of them
    del model.preprocessing["input_has_negatives"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        model.predict(test)


def _scaling_desc_model(train):
    """A short DESC run that z-scores genes itself (scale=True), for the mapping checks."""
    fast = dict(n_clusters=3, pretrain_epochs=2, max_epochs=1, progress=False, batch_size=64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sdc.tl.desc(train, scale=True, return_model=True, copy=True, **fast)[1]


def test_scaled_cells_for_a_scaling_model_get_one_warning(split):
    train, test = (a.copy() for a in split)
    for a in (train, test):
        sc.pp.normalize_total(a)
        sc.pp.log1p(a)
    scaling = _scaling_desc_model(train)
    test.X = test.X.toarray()
    sc.pp.scale(test)
    with pytest.warns(UserWarning, match=r"but this model z-scores each gene itself") as caught:
        scaling.predict(test)
    assert len(caught) == 1


def test_cells_normalised_to_another_total_for_a_scaling_model_are_warned_of(split):
    """The model scales them with its training cells' statistics: genes that spread far more
    (normalised to a larger total) landed elsewhere, silently."""
    train, test = (a.copy() for a in split)
    median = float(np.median(np.asarray(train.X.sum(axis=1)).ravel()))
    sc.pp.normalize_total(train)
    sc.pp.log1p(train)
    scaling = _scaling_desc_model(train)
    as_trained = test.copy()
    sc.pp.normalize_total(as_trained, target_sum=median)
    sc.pp.log1p(as_trained)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        scaling.predict(as_trained)
    sc.pp.normalize_total(test, target_sum=10 * median)
    sc.pp.log1p(test)
    with pytest.warns(UserWarning, match=r"genes spread [\d.]+ times as much as the model's") as w:
        scaling.predict(test)
    assert len(w) == 1
    assert "log transformation as theirs; the model scales them itself" in str(w[0].message)


def test_a_few_new_cells_prepared_as_the_training_cells_are_not_warned_of():
    """The genes that vary among a few sparse cells are the ones they express, which spread
    more than all genes do among many: three cells prepared as the training cells were got the
    warning that their genes spread "2.6 times as much"."""
    adata = sdc.datasets.simulate(
        300, 120, 3, de_fraction=0.3, de_log_fold=2.0, mean_log_expression=-3.0, random_state=11
    )
    sc.pp.normalize_total(adata)
    sc.pp.log1p(adata)
    scaling = _scaling_desc_model(adata[:200].copy())
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*genes spread")
        for start in range(200, 290, 3):
            scaling.predict(adata[start : start + 3].copy())


def test_a_single_negative_value_is_one_too_many_for_a_model_of_unscaled_cells(split):
    train, test = _log_normalised_as_pbmc(split)
    fast = dict(n_clusters=3, pretrain_epochs=2, max_epochs=1, progress=False, batch_size=64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = sdc.tl.desc(train, return_model=True, copy=True, **fast)[1]
    test.X[0, 0] = -0.5
    with pytest.warns(UserWarning, match=r"has negative values, as scaled or corrected data have"):
        model.predict(test)


def test_model_json_holds_numbers_as_numbers(scdcc_model, tmp_path):
    _, model = scdcc_model
    meta = json.loads((model.save(tmp_path / "m") / "model.json").read_text())
    pre = meta["preprocessing"]
    for name in ("gene_mean", "gene_scale"):
        assert all(type(value) is float for value in pre[name]), name
    assert type(pre["median_library_size"]) is float
    assert all(type(value) is float for row in meta["centroids"] for value in row)


@pytest.mark.parametrize("options", [dict(kernel="gaussian"), dict(alpha=5.0)])
def test_a_desc_model_maps_with_the_kernel_it_was_trained_with(split, options):
    train = split[0].copy()
    sc.pp.normalize_total(train, target_sum=1e4)
    sc.pp.log1p(train)
    fast = dict(n_clusters=3, pretrain_epochs=2, max_epochs=1, progress=False, batch_size=64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # one epoch does not converge
        model = sdc.tl.desc(train, return_model=True, **options, **fast)
    np.testing.assert_allclose(
        model.predict(train, soft=True), train.obsm["desc_probs"], rtol=1e-4, atol=1e-6
    )


def test_a_model_saved_without_its_version_does_not_claim_this_one(scdcc_model, tmp_path):
    _, model = scdcc_model
    path = model.save(tmp_path / "m")
    meta = json.loads((path / "model.json").read_text())
    del meta["scdeepclust_version"]
    (path / "model.json").write_text(json.dumps(meta))
    loaded = sdc.models.load(path)
    assert loaded.trained_with == "?"
    assert repr(loaded).endswith("with scdeepclust ?)")


def test_a_scdcc_model_judges_the_counts_of_its_own_genes_only(scdcc_model, split):

    _, model = scdcc_model
    _, test = split
    expected = model.predict(test)
    other = np.full((test.n_obs, 1), -0.5, dtype=np.float32)  # a gene the model does not read
    counts = sparse.hstack([test.layers["counts"], sparse.csr_matrix(other)]).tocsr()
    wider = sc.AnnData(counts, obs=test.obs[[]].copy(), layers={"counts": counts})
    wider.var_names = [*test.var_names, "not_in_the_model"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        np.testing.assert_array_equal(model.predict(wider), expected)


def test_a_model_of_obsm_refuses_a_layer(split):
    train, test = (a.copy() for a in split)
    for adata in (train, test):
        adata.obsm["X_rep"] = np.log1p(adata.layers["counts"][:, :20].toarray())
    model = _rep_model(train)
    with pytest.raises(ValueError, match=r"reads adata.obsm\['X_rep'\]; `layer` does not apply"):
        model.predict(test, layer="counts")


def test_a_model_of_obsm_names_the_columns_in_which_new_cells_are_all_zero(split):
    train, test = (a.copy() for a in split)
    for adata in (train, test):
        adata.obsm["X_rep"] = np.log1p(adata.layers["counts"][:, :20].toarray())
    model = _rep_model(train)
    test.obsm["X_rep"][0] = 0
    zero = r"1 cell\(s\) are all zero in adata.obsm\['X_rep'\] in the model's columns"
    with pytest.warns(UserWarning, match=zero):
        model.predict(test)


def test_new_cells_scaled_as_the_warning_says_are_mapped_as_the_training_cells(split):
    """The advice was to run sc.pp.scale on the new cells, which scales them with their own
    statistics (pbmc68k_reduced: 22 of 43 held-out monocytes joined the training monocytes'
    cluster, 40 when scaled with the training cells' statistics)."""
    train, test = _log_normalised_as_pbmc(split)
    sc.pp.scale(train, max_value=10)
    fast = dict(n_clusters=3, pretrain_epochs=2, max_epochs=1, progress=False, batch_size=64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = sdc.tl.desc(train, return_model=True, copy=True, **fast)[1]
    with pytest.warns(UserWarning, match=r"`\(new\[:, ref.var_names\].X - ref.var\['mean'\]"):
        model.predict(test)
    followed = test.copy()
    ref, new = train, test  # as the warning names them
    scaled = (new[:, ref.var_names].X - ref.var["mean"].values) / ref.var["std"].values
    followed.X = np.clip(scaled, None, 10)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        model.predict(followed)


def test_an_older_model_of_scaled_cells_says_nothing_of_unscaled_new_cells(split):
    # models saved before the training input's scale (and its negative values) were kept
    train, test = _log_normalised_as_pbmc(split)
    sc.pp.scale(train)
    fast = dict(n_clusters=3, pretrain_epochs=2, max_epochs=1, progress=False, batch_size=64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = sdc.tl.desc(train, return_model=True, copy=True, **fast)[1]
    unscaled = test.copy()
    unscaled.X *= 0.15 / np.median(unscaled.X.std(0))
    with pytest.warns(
        UserWarning, match=r"looks normalised but not scaled.*scale them with the training cells'"
    ):
        model.predict(unscaled)
    del model.preprocessing["input_has_negatives"]  # its advice: scale, as the training cells
    with pytest.warns(
        UserWarning, match=r"scale them with the training cells' gene means"
    ) as caught:
        model.predict(unscaled)
    assert not any("zero_center" in str(w.message) for w in caught)
    del model.preprocessing["input_gene_scale"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        model.predict(unscaled)


def test_saves_stopped_before_their_model_json_leave_the_saved_model(
    scdcc_model, tmp_path, monkeypatch
):
    import scdeepclust.models._trained as trained

    model, path, others = _saved_and_two_altered(scdcc_model, tmp_path)
    for other in others:
        with monkeypatch.context() as m:
            m.setattr(trained, "write_json", _interrupted)
            with pytest.raises(KeyboardInterrupt):
                other.save(path, overwrite=True)
    assert torch.equal(
        next(sdc.models.load(path).network.parameters()), next(model.network.parameters())
    )


def test_a_model_json_without_its_weights_is_named_as_missing_them(scdcc_model, tmp_path):
    _, model = scdcc_model
    path = model.save(tmp_path / "m")
    (path / "weights.pt").unlink()
    with pytest.raises(FileNotFoundError, match=r"holds model.json but not the weights.pt it was"):
        sdc.models.load(path)


def test_loading_refuses_a_device_torch_does_not_know(scdcc_model, tmp_path):
    _, model = scdcc_model
    path = model.save(tmp_path / "m")
    with pytest.raises(ValueError, match=r"device='gpu' is not a device torch knows"):
        sdc.models.load(path, device="gpu")


def test_loading_a_folder_that_holds_no_model_says_so(tmp_path):
    """A folder of figures gave "No such file: .../model.json", as if the model had lost it."""
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "umap.png").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=r"figures is not a saved model: it holds no model"):
        sdc.models.load(tmp_path / "figures")
    with pytest.raises(FileNotFoundError, match=r"No model directory"):
        sdc.models.load(tmp_path / "nowhere")


def test_loading_a_file_of_a_saved_model_names_its_folder(scdcc_model, tmp_path):
    path = scdcc_model[1].save(tmp_path / "m")
    for name in ("model.json", "weights.pt"):
        with pytest.raises(FileNotFoundError, match=r"is a file of a saved model: pass its folder"):
            sdc.models.load(path / name)


def test_a_checkpoint_describes_its_stages_by_the_epochs_they_finished(tmp_path):
    from scdeepclust.train._checkpoint import TrainingCheckpoint

    checkpoint = TrainingCheckpoint(tmp_path, every=1, resume=False, fingerprint="f")
    assert checkpoint.describe() == "nothing saved yet"
    checkpoint.save("pretraining", epoch=4, done=True, history={})
    checkpoint.save("clustering", epoch=1, done=False, history={})
    assert checkpoint.describe() == "pretraining done, clustering after epoch 2"
    resumed = TrainingCheckpoint(tmp_path, every=1, resume=True, fingerprint="f")
    assert resumed.describe() == "pretraining done, clustering after epoch 2"


def test_a_finished_stage_keeps_the_weights_it_ended_with(tmp_path):
    from scdeepclust._serialization import load_tensors
    from scdeepclust.train._checkpoint import TrainingCheckpoint

    layer = torch.nn.Linear(3, 2)
    checkpoint = TrainingCheckpoint(tmp_path, every=1, resume=False, fingerprint="f")
    checkpoint.attach(modules={"model": layer})
    checkpoint.save("pretraining", epoch=0, done=True, history={})
    ended_with = layer.weight.detach().clone()
    with torch.no_grad():
        layer.weight.add_(1.0)  # trained on in the next stage
    checkpoint.save("clustering", epoch=0, done=False, history={})
    stages = load_tensors(checkpoint.path)["stages"]
    assert torch.equal(stages["pretraining"]["modules"]["model"]["weight"], ended_with)
    assert torch.equal(stages["clustering"]["modules"]["model"]["weight"], layer.weight)


def test_only_the_stage_in_progress_keeps_its_optimizer_state(tmp_path):
    from scdeepclust._serialization import load_tensors
    from scdeepclust.train import sgd
    from scdeepclust.train._checkpoint import TrainingCheckpoint

    layer = torch.nn.Linear(3, 2)
    optimizer = sgd(list(layer.parameters()), lr=0.1, momentum=0.9)
    checkpoint = TrainingCheckpoint(tmp_path, every=1, resume=False, fingerprint="f")
    checkpoint.attach(modules={"model": layer})
    checkpoint.save("pretraining", epoch=0, done=False, history={}, optimizer=optimizer)
    assert "optimizer" in load_tensors(checkpoint.path)["stages"]["pretraining"]
    checkpoint.save("pretraining", epoch=1, done=True, history={}, optimizer=optimizer)
    assert "optimizer" not in load_tensors(checkpoint.path)["stages"]["pretraining"]


def test_a_checkpoint_restores_centroids_of_another_number_of_clusters(tmp_path):
    from scdeepclust.nn import ClusteringLayer
    from scdeepclust.train._checkpoint import TrainingCheckpoint

    saved = ClusteringLayer(torch.arange(6, dtype=torch.float32).reshape(3, 2))
    checkpoint = TrainingCheckpoint(tmp_path, every=1, resume=False, fingerprint="f")
    checkpoint.attach(modules={"clustering": saved})
    checkpoint.save("clustering", epoch=0, done=False, history={})
    # a resumed run whose initialisation found 4 clusters takes the saved 3
    layer = ClusteringLayer(torch.zeros(4, 2))
    resumed = TrainingCheckpoint(tmp_path, every=1, resume=True, fingerprint="f")
    resumed.attach(modules={"clustering": layer})
    resumed.restore("clustering")
    assert torch.equal(layer.centroids, saved.centroids)


def test_a_checkpoint_of_a_newer_format_is_refused(tmp_path):
    from scdeepclust._serialization import load_tensors, save_tensors
    from scdeepclust.train._checkpoint import CHECKPOINT_FORMAT_VERSION, TrainingCheckpoint

    checkpoint = TrainingCheckpoint(tmp_path, every=1, resume=False, fingerprint="f")
    checkpoint.save("pretraining", epoch=0, done=False, history={})
    saved = load_tensors(checkpoint.path)
    saved["format_version"] = CHECKPOINT_FORMAT_VERSION + 1
    save_tensors(checkpoint.path, saved)
    with pytest.raises(ValueError, match="Upgrade scdeepclust"):
        TrainingCheckpoint(tmp_path, every=1, resume=True, fingerprint="f")


def test_a_refusal_names_six_differences_and_counts_the_others():
    from scdeepclust.train._checkpoint import _differences

    then = {"method": "scdcc", "config": {f"option{i}": i for i in range(8)}}
    now = {"method": "scdcc", "config": {f"option{i}": i + 1 for i in range(8)}}
    text = _differences({"settings": json.dumps(then)}, now)
    assert text.count(" then, ") == 6 and text.endswith("; and 2 more")


def test_run_digests_tell_data_apart_by_their_shape_type_and_text_not_their_objects():
    from dataclasses import dataclass

    from scdeepclust.train._checkpoint import array_digest, run_digest

    names = np.array([f"cell{i}" for i in range(5)], dtype=object)
    again = np.array([f"cell{i}" for i in range(5)], dtype=object)  # other str objects
    assert array_digest(names) == array_digest(again) == array_digest(names.astype(str))
    assert array_digest(np.zeros((2, 3))) != array_digest(np.zeros((3, 2)))
    assert array_digest(np.zeros(4, np.float32)) != array_digest(np.zeros(4, np.int32))

    @dataclass
    class Config:
        lr: float
        progress: bool

    # progress bars do not make another run
    assert run_digest(method="m", config=Config(0.1, True)) == run_digest(
        method="m", config=Config(0.1, False)
    )
    assert run_digest(method="m", config=Config(0.1, True)) != run_digest(
        method="m", config=Config(0.2, True)
    )


def test_an_interruption_says_how_to_continue_from_the_checkpoint(tmp_path, monkeypatch):
    import scdeepclust.train._checkpoint as ckpt

    said = []
    monkeypatch.setattr(ckpt.logg, "warning", lambda message, **kwargs: said.append(message))
    checkpoint = ckpt.TrainingCheckpoint(tmp_path, every=1, resume=False, fingerprint="f")
    checkpoint.save("pretraining", epoch=2, done=False, history={})
    with pytest.raises(KeyboardInterrupt), ckpt.report_interruption(checkpoint):
        raise KeyboardInterrupt
    assert len(said) == 1
    assert "The same call with resume=True continues from the checkpoint in" in said[0]
    assert said[0].endswith("(pretraining after epoch 3).")
    with pytest.raises(KeyboardInterrupt), ckpt.report_interruption(None):
        raise KeyboardInterrupt
    assert len(said) == 1


def test_mapping_counts_the_genes_of_adata_that_the_model_ignores(scdcc_model, split, monkeypatch):
    import scdeepclust.models._trained as trained

    _, model = scdcc_model
    _, test = split
    renamed = test.copy()
    renamed.var_names = ["unknown_gene", *test.var_names[1:]]  # one missing, one ignored
    said = []
    monkeypatch.setattr(trained.logg, "info", lambda message, **kwargs: said.append(message))
    with pytest.warns(
        UserWarning, match="1 of the model's 120 genes are not in adata.var_names"
    ) as w:
        model.predict(renamed)
    assert "right for genes without any count in these cells" in str(w[0].message)
    assert [m.strip() for m in said if "not in the model" in m] == [
        "1 genes of adata are not in the model and are ignored"
    ]


def test_a_model_of_a_representation_keeps_no_gene_scale(split):
    """obsm's columns are no genes: mapped cells are not checked against a scale of them."""
    train = split[0].copy()
    train.obsm["X_rep"] = np.log1p(train.layers["counts"][:, :20].toarray())
    model = _rep_model(train)
    assert model.preprocessing["input"]["kind"] == "obsm"
    assert "input_gene_scale" not in model.preprocessing


def _spread_summary(n_cells: int, shift: float = 0.0, scale: float = 1.0):
    """The summary of `n_cells` positive, non-integer cells (median gene SD about 1.4)."""
    from scdeepclust.pp._input import scan_matrix

    x = np.random.default_rng(0).gamma(2.0, 1.0, (n_cells, 20)).astype(np.float32)
    return scan_matrix((x - shift) * scale, gene_scales=True)


def test_the_spread_check_judges_new_cells_from_fifty_on():
    """Kills S01 (`<=`: 50 cells, the fewest judged, went unjudged)."""
    from scdeepclust.pp._input import SPREAD_MIN_CELLS, warn_if_normalised_unlike_training

    fewest = _spread_summary(SPREAD_MIN_CELLS)
    with pytest.warns(UserWarning, match=r"genes spread [\d.]+ times as much"):
        assert warn_if_normalised_unlike_training(fewest, "X", 0.3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        assert not warn_if_normalised_unlike_training(
            _spread_summary(SPREAD_MIN_CELLS - 1), "X", 0.3
        )


def test_new_cells_with_negative_values_are_not_judged_by_their_spread_for_a_scaling_model():
    """Scaled cells for a model that scales them itself get their own warning, one: kills S06
    (the spread check dropped its `n_negative` guard and said a second thing)."""
    from scdeepclust.pp._input import warn_if_normalised_unlike_training

    summary = _spread_summary(60, shift=2.0)
    assert summary.n_negative
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        assert not warn_if_normalised_unlike_training(summary, "X", 0.3)


def test_new_cells_spread_more_than_scaled_training_cells_are_told_the_training_statistics():
    """Kills S11: cells that spread more than a model's scaled training cells were told to
    prepare them "the same" way, not to scale them with the training cells' statistics."""
    from scdeepclust.pp._input import warn_if_prepared_unlike_training

    summary = _spread_summary(60, shift=2.0, scale=3.0)
    with pytest.warns(UserWarning, match=r"times as much") as caught:
        assert warn_if_prepared_unlike_training(
            summary, "X", trained_on_negatives=True, trained_gene_scale=1.0
        )
    assert "then scale them with the training cells' gene means" in str(caught[0].message)


def test_counts_for_a_model_of_negative_values_of_unknown_spread_name_both_preparations():
    """A model that kept its training cells' negative values but not their spread cannot tell
    scaled from corrected cells: kills S14 (`not scaled` took it for one of corrected cells)."""
    from scdeepclust.pp._input import scan_matrix, warn_if_counts

    counts = scan_matrix(np.random.default_rng(0).poisson(2.0, (60, 20)).astype(np.float32))
    assert counts.is_counts
    with pytest.warns(UserWarning, match=r"raw counts") as caught:
        warn_if_counts(counts, "X", model_scales=False, trained_on_negatives=True)
    assert "sc.pp.scale or the correction they had" in str(caught[0].message)


def test_new_cells_off_scale_are_told_to_scale_them_with_the_training_statistics():
    """Kills S19: the advice named the steps, not the training cells' statistics to scale with
    (sc.pp.scale on the new cells alone scales them otherwise)."""
    from scdeepclust.pp._input import warn_if_off_scale

    summary = _spread_summary(60, scale=100.0)
    with pytest.warns(UserWarning, match=r"root mean square is") as caught:
        assert warn_if_off_scale(summary, "X", mapping=True)
    said = str(caught[0].message)
    assert "then scale them with the training cells' gene means and standard deviations" in said


def test_loading_another_file_says_there_is_no_model_folder_and_a_model_file_names_its_own(
    scdcc_model, tmp_path
):
    """Kills L02 (every file was called "a file of a saved model") and L03 (the folder to pass
    was the file itself)."""
    (tmp_path / "cells.h5ad").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=r"^No model directory .*cells\.h5ad\.$"):
        sdc.models.load(tmp_path / "cells.h5ad")
    path = scdcc_model[1].save(tmp_path / "m")
    with pytest.raises(FileNotFoundError) as caught:
        sdc.models.load(path / "model.json")
    assert str(caught.value).endswith(f"pass its folder, {path}.")


def test_the_history_of_mapped_cells_is_refused_naming_the_run_to_plot(scdcc_model, split):
    """Kills H02: cells mapped onto a model (which trains nothing) drew three empty panels."""
    test = split[1].copy()
    sdc.tl.map_to_model(test, scdcc_model[1], key_added="mapped")
    with pytest.raises(ValueError, match=r"holds cells mapped onto a trained model"):
        sdc.pl.history(test, "mapped", show=False)


@pytest.fixture(scope="module")
def one_epoch_model():
    adata = counts_data()
    return sdc.tl.scdcc(adata, 3, return_model=True, random_state=0, **ONE_EPOCH)


# M009
def test_a_model_predicts_a_single_cell(one_epoch_model):
    """Prediction takes one cell (its minimum): the counts of one cell are enough to place it."""
    one = counts_data()[:1].copy()
    labels = one_epoch_model.predict(one)
    assert len(labels) == 1


# M010
def test_predicting_on_a_backed_adata_reads_it_without_the_results_warning(
    one_epoch_model, tmp_path
):
    """A model reading a backed AnnData (or a view of one) writes nothing to it: neither the
    warning about results kept in memory nor the refusal of a backed view applies."""
    adata = counts_data()
    del adata.layers["counts"]  # counts in X, read from the file
    adata.write_h5ad(tmp_path / "data.h5ad")
    backed = ad.read_h5ad(tmp_path / "data.h5ad", backed="r")
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="adata is backed")
        assert len(one_epoch_model.predict(backed)) == adata.n_obs
        assert len(one_epoch_model.predict(backed[:20])) == 20
    backed.file.close()


# M016
def test_a_model_predicts_on_a_view_beside_a_big_endian_layer(one_epoch_model):
    """A reader writes nothing to the view, which is never made actual: a big-endian sparse
    matrix that it does not read (another layer) is not refused, and the cells are placed as
    without it."""
    parent = counts_data()
    parent.layers["spliced"] = big_endian_csr(parent.layers["counts"])
    view = parent[:40]
    labels = one_epoch_model.predict(view)
    assert view.is_view
    expected = one_epoch_model.predict(counts_data()[:40].copy())
    np.testing.assert_array_equal(np.asarray(labels), np.asarray(expected))
    # the matrix it reads, which scipy cannot slice for the view: refused in words, with the
    # line that converts it in the parent (scipy's bare "does not support dtype >f4" before)
    parent.layers["counts"] = parent.layers.pop("spliced")
    with pytest.raises(ValueError, match=r"adata\.layers\['counts'\] is a sparse matrix of '>f4'"):
        one_epoch_model.predict(parent[:40])
    data = parent.layers["counts"].data
    parent.layers["counts"].data = data.astype(data.dtype.newbyteorder("="))  # the advice
    np.testing.assert_array_equal(np.asarray(one_epoch_model.predict(parent[:40])), expected)


# M099, M100
@pytest.mark.parametrize("trained_gene_scale", [1.0, 0.5])
def test_counts_for_a_model_of_uncentred_scaled_cells_are_not_told_to_centre(trained_gene_scale):
    """A model trained on cells without negative values (sc.pp.scale(zero_center=False), spread
    1, or log-normalised, spread 0.5): counts given to it are told to be log-normalised, neither
    scaled with means nor corrected."""
    from scdeepclust.pp._input import scan_matrix, warn_if_counts

    summary = scan_matrix(counts_data().layers["counts"], steps=True, gene_scales=True)
    with pytest.warns(
        UserWarning, match=r"looks like raw counts.*not sc.pp.scale \(they had no negative"
    ) as record:
        warn_if_counts(
            summary,
            "X",
            model_scales=False,
            trained_on_negatives=False,
            trained_gene_scale=trained_gene_scale,
        )
    assert "gene means" not in str(record[0].message) and "correction" not in str(record[0].message)


# M103
def test_one_negative_value_tells_a_scaling_model_the_cells_were_scaled():
    from scdeepclust.pp._input import scan_matrix, warn_if_scaled_for_a_scaling_model

    values = np.log1p(counts_data().layers["counts"].toarray())
    values[0, 0] = -0.1
    summary = scan_matrix(values, steps=True, gene_scales=True)
    with pytest.warns(UserWarning, match=r"adata.X has negative values, as scaled data have"):
        warn_if_scaled_for_a_scaling_model(summary, "X")


# M106
def test_fewer_than_fifty_new_cells_are_not_judged_by_their_spread():
    """Among a few cells the median spread counts only the expressed genes: 20 new cells that
    spread 3 times as much as the training cells get no warning (50 do)."""
    from scdeepclust.pp._input import scan_matrix, warn_if_normalised_unlike_training

    rng = np.random.default_rng(0)
    for n_cells, warns in ((20, False), (50, True)):
        values = np.abs(rng.normal(3.0, 1.5, (n_cells, 30)))
        summary = scan_matrix(values, steps=True, gene_scales=True)
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            warned = warn_if_normalised_unlike_training(summary, "X", trained_gene_scale=0.4)
        assert warned is warns and len(record) == int(warns)


# M111
def test_a_model_whose_training_genes_did_not_spread_judges_no_spread():
    """A training spread of 0 (recorded for constant training cells) gives no ratio to judge:
    no warning, no division by zero."""
    from scdeepclust.pp._input import scan_matrix, warn_if_normalised_unlike_training

    values = np.abs(np.random.default_rng(0).normal(3.0, 1.5, (60, 30)))
    summary = scan_matrix(values, steps=True, gene_scales=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert warn_if_normalised_unlike_training(summary, "X", trained_gene_scale=0.0) is False


# M112
def test_new_cells_spreading_exactly_twice_as_much_are_not_warned_of():
    """SPREAD_FACTOR (2) is the most that cells prepared as the training ones spread."""
    from scdeepclust.pp._input import scan_matrix, warn_if_normalised_unlike_training

    values = np.abs(np.random.default_rng(0).normal(3.0, 1.5, (60, 30)))
    summary = scan_matrix(values, steps=True, gene_scales=True)
    half = summary.median_gene_scale / 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert warn_if_normalised_unlike_training(summary, "X", trained_gene_scale=half) is False
    with pytest.warns(UserWarning, match="spread 2.1 times as much"):
        warn_if_normalised_unlike_training(summary, "X", trained_gene_scale=half / 1.05)


def test_a_model_reading_x_of_a_view_in_another_byte_order_refuses_in_words(one_epoch_model):
    """The X branch of input_matrix: the view's X, which scipy cannot slice, refused in words."""
    parent = counts_data()
    parent.X = big_endian_csr(parent.layers.pop("counts"))
    with pytest.raises(ValueError, match=r"adata\.X is a sparse matrix of '>f4'"):
        one_epoch_model.predict(parent[:40])


def test_a_model_reading_obsm_of_a_view_in_another_byte_order_refuses_in_words():
    """The use_rep branch of input_matrix: a DESC model of obsm['X_pca'] predicting on a view
    whose parent keeps that embedding as a '>f4' sparse matrix."""
    import scanpy as sc

    adata = sdc.datasets.simulate(120, 60, 3, random_state=0)
    sc.pp.normalize_total(adata)
    sc.pp.log1p(adata)
    sc.pp.pca(adata, n_comps=10)
    model = sdc.tl.desc(
        adata, n_clusters=3, use_rep="X_pca", return_model=True, random_state=0, **ONE_EPOCH
    )
    parent = adata.copy()
    parent.obsm["X_pca"] = big_endian_csr(parent.obsm["X_pca"])
    with pytest.raises(ValueError, match=r"adata\.obsm\['X_pca'\] is a sparse matrix of '>f4'"):
        model.predict(parent[:40])


def test_a_model_given_a_mudata_is_not_told_to_pull_columns_it_does_not_write(one_epoch_model):
    """check_adata(writes=False) (a model's readers): the MuData advice stops at the modality."""

    class MuData:
        __module__ = "mudata._core.mudata"
        layers = None

    with pytest.raises(TypeError, match=r"mod\['rna'\]`\.$"):
        one_epoch_model.predict(MuData())
